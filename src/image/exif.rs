//! A body's EXIF tags as img2dataset records them in its `exif` field: a JSON
//! object (Python's `json.dumps` layout and escaping) of `"IFD Tag": "value"`,
//! the names exifread's `process_file(details=False)` gives them (`Image
//! Make`, `EXIF DateTimeOriginal`, `GPS GPSLatitude`, `Thumbnail ...`), with
//! the maker note, user comment and XMP packet left out as it leaves them out.
//! A body without EXIF (or whose EXIF cannot be read) gives `{}`, as exifread's
//! empty answer does.
//!
//! Values are written as exifread prints raw values (`72`, `1/100`, `[1, 2,
//! 3]`, a string), lists past 20 values cut as it cuts them; exifread's
//! labels for enumerated tags (`Horizontal (normal)` for an orientation of
//! 1) are not reproduced: such a tag holds its number.

use std::io::Cursor;

use exif::{Context, Field, In, Tag, Value};

/// The tags exifread skips without `details`: UserComment, MakerNote, and
/// the XMP packet (ApplicationNotes).
const SKIPPED: [u16; 3] = [0x9286, 0x927c, 0x02bc];

/// exifread truncates lists longer than this (other than strings and bytes).
const LIST_LIMIT: usize = 20;

/// The `exif` field of a body: a JSON object as text.
pub fn tags_json(body: &[u8]) -> String {
    let Ok(exif) = exif::Reader::new().read_from_container(&mut Cursor::new(body)) else {
        return "{}".to_string();
    };
    let entries: Vec<String> = exif
        .fields()
        .filter(|field| !SKIPPED.contains(&field.tag.number()))
        .map(|field| {
            format!(
                "{}: {}",
                python_string(&name(field)),
                python_string(value(&field.value).trim())
            )
        })
        .collect();
    format!("{{{}}}", entries.join(", "))
}

/// exifread's name: the IFD, a space, the tag.
fn name(field: &Field) -> String {
    let ifd = match field.tag.context() {
        Context::Tiff if field.ifd_num == In::PRIMARY => "Image".to_string(),
        Context::Tiff if field.ifd_num == In::THUMBNAIL => "Thumbnail".to_string(),
        Context::Tiff => format!("IFD {}", field.ifd_num.index()),
        Context::Exif => "EXIF".to_string(),
        Context::Gps => "GPS".to_string(),
        Context::Interop => "Interoperability".to_string(),
        _ => "Unknown".to_string(),
    };
    let tag = match field.tag {
        // exifread's names for the pointers to the other IFDs.
        Tag::ExifIFDPointer => "ExifOffset".to_string(),
        Tag::GPSInfoIFDPointer => "GPSInfo".to_string(),
        Tag::InteropIFDPointer => "InteroperabilityOffset".to_string(),
        tag if tag.description().is_none() => format!("Tag 0x{:04X}", tag.number()),
        tag => tag.to_string(),
    };
    format!("{ifd} {tag}")
}

/// exifread's printable form of a raw value.
fn value(value: &Value) -> String {
    fn list<T: ToString>(values: &[T]) -> String {
        match values {
            [one] => one.to_string(),
            _ if values.len() > LIST_LIMIT => {
                let shown: Vec<String> = values[..LIST_LIMIT].iter().map(T::to_string).collect();
                format!("[{}, ... ]", shown.join(", "))
            }
            _ => {
                let shown: Vec<String> = values.iter().map(T::to_string).collect();
                format!("[{}]", shown.join(", "))
            }
        }
    }
    /// Signed or unsigned ratios (numerator, denominator), each reduced.
    fn ratios(parts: impl Iterator<Item = (i64, i64)>) -> String {
        let texts: Vec<String> = parts
            .map(|(numerator, denominator)| ratio_text(numerator, denominator))
            .collect();
        list(&texts)
    }
    match value {
        Value::Ascii(strings) => strings
            .iter()
            .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
            .collect::<Vec<_>>()
            .join(" "),
        Value::Byte(bytes) => list(bytes),
        Value::Short(values) => list(values),
        Value::Long(values) => list(values),
        Value::SByte(values) => list(values),
        Value::SShort(values) => list(values),
        Value::SLong(values) => list(values),
        Value::Float(values) => list(values),
        Value::Double(values) => list(values),
        Value::Rational(values) => ratios(
            values
                .iter()
                .map(|ratio| (i64::from(ratio.num), i64::from(ratio.denom))),
        ),
        Value::SRational(values) => ratios(
            values
                .iter()
                .map(|ratio| (i64::from(ratio.num), i64::from(ratio.denom))),
        ),
        // Version strings and the like are text; other bytes are numbers.
        Value::Undefined(bytes, _) if bytes.iter().all(|byte| (0x20..0x7f).contains(byte)) => {
            String::from_utf8_lossy(bytes).into_owned()
        }
        Value::Undefined(bytes, _) => list(bytes),
        Value::Unknown(..) => String::new(),
    }
}

/// A ratio reduced, as Python's `Fraction` prints it: `1/100`, or `72`.
fn ratio_text(numerator: i64, denominator: i64) -> String {
    if denominator == 0 {
        return format!("{numerator}/0");
    }
    let divisor = greatest_common_divisor(numerator.abs(), denominator.abs()).max(1);
    let sign = if denominator < 0 { -1 } else { 1 };
    let (numerator, denominator) = (sign * numerator / divisor, sign * denominator / divisor);
    match denominator {
        1 => numerator.to_string(),
        _ => format!("{numerator}/{denominator}"),
    }
}

fn greatest_common_divisor(mut a: i64, mut b: i64) -> i64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// A JSON string as Python's `json.dumps` writes it: every character past
/// ASCII as `\uXXXX` (surrogate pairs above the basic plane).
fn python_string(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for character in text.chars() {
        match character {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            '\r' => quoted.push_str("\\r"),
            '\t' => quoted.push_str("\\t"),
            '\u{8}' => quoted.push_str("\\b"),
            '\u{c}' => quoted.push_str("\\f"),
            ' '..='~' => quoted.push(character),
            _ => {
                let mut units = [0u16; 2];
                for unit in character.encode_utf16(&mut units) {
                    quoted.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    quoted.push('"');
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A JPEG whose EXIF has an orientation, a make and a resolution.
    fn jpeg_with_exif() -> Vec<u8> {
        // Big-endian TIFF, IFD0 with three entries: Make (ASCII "Cam\0"),
        // Orientation (SHORT 6), XResolution (RATIONAL at offset 50: 144/2).
        let mut tiff = b"MM\0\x2a\0\0\0\x08\0\x03".to_vec();
        tiff.extend_from_slice(&[0x01, 0x0f, 0, 2, 0, 0, 0, 4, b'C', b'a', b'm', 0]);
        tiff.extend_from_slice(&[0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0]);
        tiff.extend_from_slice(&[0x01, 0x1a, 0, 5, 0, 0, 0, 1, 0, 0, 0, 50]);
        tiff.extend_from_slice(&[0, 0, 0, 0]);
        assert_eq!(tiff.len(), 50);
        tiff.extend_from_slice(&[0, 0, 0, 144, 0, 0, 0, 2]);
        let mut segment = b"Exif\0\0".to_vec();
        segment.extend_from_slice(&tiff);
        let mut bytes = Vec::new();
        let mut encoder = jpeg_encoder::Encoder::new(&mut bytes, 90);
        encoder.add_app_segment(1, segment).unwrap();
        encoder
            .encode(&[0u8; 3 * 4 * 4], 4, 4, jpeg_encoder::ColorType::Rgb)
            .unwrap();
        bytes
    }

    #[test]
    fn tags_are_named_and_printed_as_exifread_does() {
        let json: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&tags_json(&jpeg_with_exif())).unwrap();
        assert_eq!(json["Image Make"], "Cam");
        assert_eq!(json["Image Orientation"], "6");
        assert_eq!(json["Image XResolution"], "72");
        assert_eq!(json.len(), 3);
    }

    #[test]
    fn no_exif_is_an_empty_object() {
        assert_eq!(tags_json(b"not an image"), "{}");
        let png = crate::gallery::encode("x", 8, 8, crate::gallery::Format::Png);
        assert_eq!(tags_json(&png), "{}");
    }

    #[test]
    fn strings_and_ratios_are_written_as_python_writes_them() {
        assert_eq!(python_string("café \"x\""), r#""caf\u00e9 \"x\"""#);
        assert_eq!(python_string("😀"), r#""\ud83d\ude00""#);
        assert_eq!(ratio_text(10, 1000), "1/100");
        assert_eq!(ratio_text(-4, -2), "2");
        assert_eq!(value(&Value::Short(vec![1, 2, 3])), "[1, 2, 3]");
        let long: Vec<u16> = (0..25).collect();
        assert!(value(&Value::Short(long)).ends_with("19, ... ]"));
    }
}
