//! Between files and [`Pixels`]: decoding with the pixel limit checked on the
//! header before any pixel is decoded, the EXIF orientation applied, and every
//! colour type brought to 8-bit L, LA, RGB or RGBA; encoding in the input's
//! format; and the atomic write (a temporary name in the output folder, then a
//! rename).
//!
//! Codecs: JPEG is decoded and encoded by libjpeg-turbo at Pillow's settings
//! (the image layer's `jpeg`), so a JPEG filtered gives Pillow's file byte for
//! byte; what libjpeg refuses or warns about, and CMYK, the `image` crate
//! decodes (zune-jpeg), as it does PNG (png).
//! None of them starts threads (`image`'s `rayon` feature stays off), so the
//! only parallelism is the strategy's, one image per worker.
//!
//! Choices, where Pillow has no single answer:
//! - 16-bit channels keep their high byte, as Pillow does when it opens 16-bit
//!   RGB, RGBA and LA PNGs (its `RGB;16B` unpackers).
//! - Palette and `tRNS` PNGs are expanded to RGB or RGBA (Pillow keeps mode P,
//!   which its filters refuse).
//! - JPEG is written as Pillow writes it (the same pixels give the same bytes);
//!   an alpha channel is dropped, since JPEG has none (Pillow refuses RGBA).

use std::borrow::Cow;
use std::fs::File;
use std::io::{self, Cursor, Read};
use std::path::Path;

use image::codecs::jpeg::JpegDecoder;
use image::codecs::png::{CompressionType, FilterType, PngDecoder, PngEncoder};
use image::metadata::Orientation;
use image::{
    ColorType, DynamicImage, ImageBuffer, ImageDecoder, ImageEncoder, ImageFormat, Limits,
};

use super::kernels::Pixels;
use super::{Failure, FilterError, Settings};
use crate::image::header::{ImageError as HeaderError, read_header};
use crate::image::jpeg;

/// Bytes a decoder may hold per pixel of the image: enough for 16-bit RGBA,
/// the widest thing a PNG decodes to.
const DECODER_BYTES_PER_PIXEL: u64 = 8;

/// A decoded image and the format it came in (and goes out in).
pub struct Decoded {
    pub pixels: Pixels,
    pub format: ImageFormat,
}

/// How much of a file is read to find its header. The header check parses
/// only this much, so a huge file that is not an image, or an image declaring
/// absurd dimensions, costs one bounded read.
pub const HEADER_BYTES: u64 = 1 << 20;

/// An image file whose header has been read and checked: what it declares, and
/// the file, still open, with its first bytes in the caller's buffer.
pub struct Opened {
    pub format: ImageFormat,
    pub width: u32,
    pub height: u32,
    /// Channels as decoded (and filtered): 1 to 4.
    pub channels: u8,
    /// Bytes per sample as decoded: 2 for 16-bit PNGs.
    pub sample_bytes: u8,
    /// The file's size.
    pub file_bytes: u64,
    /// The turn its EXIF orientation asks for, read with the header, when
    /// `--auto-orient` wants it applied (none otherwise).
    pub orientation: Orientation,
    file: File,
}

impl Opened {
    /// The bytes this image holds at its peak while it is filtered: the file
    /// (twice for JPEG, as zune-jpeg, its fallback decoder, takes a copy), the
    /// decoded pixels at their sample width, the second buffer the filters
    /// write into, and the encoded output, bounded by the 8-bit pixels again.
    pub fn memory_needed(&self) -> u64 {
        let file_copies = if self.format == ImageFormat::Jpeg {
            2
        } else {
            1
        };
        let pixels = u64::from(self.width) * u64::from(self.height) * u64::from(self.channels);
        self.file_bytes
            .saturating_mul(file_copies)
            .saturating_add(pixels.saturating_mul(u64::from(self.sample_bytes) + 2))
    }
}

/// Opens a file and checks its header (the check the dataset pipeline makes,
/// [`crate::image::header::read_header`]) from its first [`HEADER_BYTES`],
/// read into `file`: a file that is not a JPEG or PNG by its content, or that
/// declares more than `settings.max_pixels`, fails here, before it is read
/// whole or anything is allocated for its pixels.
pub fn open(path: &Path, settings: &Settings, file: &mut Vec<u8>) -> Result<Opened, FilterError> {
    let fail = |failure| FilterError::new(path, failure);
    let read_error = |error: io::Error| fail(Failure::Read(error.to_string()));
    let mut opened = File::open(path).map_err(read_error)?;
    let file_bytes = opened.metadata().map_err(read_error)?.len();
    file.clear();
    (&mut opened)
        .take(HEADER_BYTES)
        .read_to_end(file)
        .map_err(read_error)?;
    let mut header = match read_header(Cursor::new(&file[..]), settings.max_pixels) {
        Ok(header) => header,
        Err(HeaderError::UnknownFormat) => return Err(fail(Failure::NotAnImage)),
        Err(HeaderError::AreaTooLarge { width, height }) => {
            return Err(fail(Failure::TooManyPixels {
                width,
                height,
                limit: settings.max_pixels,
            }));
        }
        Err(HeaderError::Decode(message)) => {
            let cut = if (file.len() as u64) < file_bytes {
                format!(
                    " (no complete header in its first {} MiB)",
                    HEADER_BYTES >> 20
                )
            } else {
                String::new()
            };
            return Err(fail(Failure::Decode(format!("{message}{cut}"))));
        }
        Err(other) => return Err(fail(Failure::Decode(other.to_string()))),
    };
    if !matches!(header.format, ImageFormat::Jpeg | ImageFormat::Png) {
        return Err(fail(Failure::NotAnImage));
    }
    let (channels, sample_bytes) = layout(header.decoder.color_type()).ok_or_else(|| {
        fail(Failure::Decode(format!(
            "unsupported colour type {:?}",
            header.decoder.color_type()
        )))
    })?;
    Ok(Opened {
        format: header.format,
        width: header.width,
        height: header.height,
        channels,
        sample_bytes,
        file_bytes,
        orientation: orientation(&mut header.decoder, settings),
        file: opened,
    })
}

/// Channels and bytes per sample of the colour types JPEG and PNG decode to.
fn layout(color_type: ColorType) -> Option<(u8, u8)> {
    Some(match color_type {
        ColorType::L8 => (1, 1),
        ColorType::La8 => (2, 1),
        ColorType::Rgb8 => (3, 1),
        ColorType::Rgba8 => (4, 1),
        ColorType::L16 => (1, 2),
        ColorType::La16 => (2, 2),
        ColorType::Rgb16 => (3, 2),
        ColorType::Rgba16 => (4, 2),
        _ => return None,
    })
}

/// Reads and decodes a JPEG or PNG file. The format comes from the content, not
/// the name; the header is checked first (`open`).
pub fn decode(path: &Path, settings: &Settings) -> Result<Decoded, FilterError> {
    let mut file = Vec::new();
    let opened = open(path, settings, &mut file)?;
    decode_opened(opened, path, settings, &mut file, Vec::new())
}

/// Reads the rest of a file whose header [`open`] checked into `file` (which
/// holds its first bytes) and decodes it into `pixels` (its contents are
/// discarded, its allocation reused).
pub fn decode_opened(
    mut opened: Opened,
    path: &Path,
    settings: &Settings,
    file: &mut Vec<u8>,
    pixels: Vec<u8>,
) -> Result<Decoded, FilterError> {
    let fail = |failure| FilterError::new(path, failure);
    opened
        .file
        .read_to_end(file)
        .map_err(|error| fail(Failure::Read(error.to_string())))?;
    let bytes = &file[..];
    let decode_error = |error: image::ImageError| fail(Failure::Decode(error.to_string()));
    let pixels = match opened.format {
        ImageFormat::Jpeg => {
            check_jpeg_complete(bytes).map_err(|message| fail(Failure::Decode(message)))?;
            // libjpeg's pixels, Pillow's own: the same bytes. What it refuses
            // or warns about, and CMYK, the image crate (zune-jpeg) decodes.
            let mut buffer = pixels;
            let declared = (opened.width, opened.height);
            match jpeg::decode_into(bytes, declared, &mut buffer) {
                Some(channels) => oriented(
                    Pixels::new(declared.0, declared.1, channels, buffer),
                    opened.orientation,
                ),
                None => {
                    let decoder = JpegDecoder::new(Cursor::new(bytes)).map_err(decode_error)?;
                    decode_with(decoder, path, settings, buffer, opened.orientation)?
                }
            }
        }
        _ => {
            let decoder = PngDecoder::new(Cursor::new(bytes)).map_err(decode_error)?;
            decode_with(decoder, path, settings, pixels, opened.orientation)?
        }
    };
    Ok(Decoded {
        pixels,
        format: opened.format,
    })
}

/// zune-jpeg, like libjpeg, fills whatever a truncated file lacks with gray and
/// calls it decoded; Pillow refuses such a file ("image file is truncated"), and
/// so do we. A complete JPEG has its end-of-image marker somewhere after its first
/// scan starts (data after it, such as a motion photo's video, is allowed).
fn check_jpeg_complete(bytes: &[u8]) -> Result<(), String> {
    match first_scan(bytes) {
        // Entropy-coded data stuffs every 0xFF with 0x00, and the tables between
        // scans cannot hold FF D9, so the first FF D9 past the scan header is
        // the end marker.
        Some(scan) if !scan.windows(2).any(|pair| pair == [0xFF, 0xD9]) => {
            Err("the JPEG data is truncated (no end-of-image marker)".to_string())
        }
        // Headers too odd to walk: the decoder has the last word.
        _ => Ok(()),
    }
}

/// The bytes after the header of the first scan (SOS), found by walking the
/// marker segments from the start: the EXIF thumbnail inside APP1 carries an end
/// marker of its own, which must not count. `Some(empty)` when the file ends in
/// the headers; `None` when they cannot be walked.
fn first_scan(bytes: &[u8]) -> Option<&[u8]> {
    let mut position = 2;
    loop {
        // Fill bytes: any number of 0xFF may precede a marker.
        while bytes.get(position..position + 2) == Some(&[0xFF, 0xFF]) {
            position += 1;
        }
        let Some(&[0xFF, marker, high, low]) = bytes.get(position..position + 4) else {
            return if position + 4 > bytes.len() {
                Some(&[])
            } else {
                None
            };
        };
        position += 2 + usize::from(u16::from_be_bytes([high, low]));
        if marker == 0xDA {
            return Some(bytes.get(position..).unwrap_or(&[]));
        }
    }
}

fn decode_with(
    mut decoder: impl ImageDecoder,
    path: &Path,
    settings: &Settings,
    buffer: Vec<u8>,
    orientation: Orientation,
) -> Result<Pixels, FilterError> {
    let fail = |failure| FilterError::new(path, failure);
    let decode_error = |error: image::ImageError| fail(Failure::Decode(error.to_string()));
    let (width, height) = decoder.dimensions();
    if u64::from(width) * u64::from(height) > settings.max_pixels {
        return Err(fail(Failure::TooManyPixels {
            width,
            height,
            limit: settings.max_pixels,
        }));
    }
    // The decoder's own allocation cap, in step with the pixel limit, is the
    // second line: it also bounds what a decoder allocates besides the pixels.
    let mut limits = Limits::default();
    limits.max_alloc = Some(
        settings
            .max_pixels
            .saturating_mul(DECODER_BYTES_PER_PIXEL)
            .max(64 << 20),
    );
    decoder.set_limits(limits).map_err(decode_error)?;
    let (channels, sample_bytes) = layout(decoder.color_type()).ok_or_else(|| {
        fail(Failure::Decode(format!(
            "unsupported colour type {:?}",
            decoder.color_type()
        )))
    })?;
    let mut data = buffer;
    data.clear();
    // Within the pixel limit checked above, so this fits in memory.
    data.resize(decoder.total_bytes() as usize, 0);
    decoder.read_image(&mut data).map_err(decode_error)?;
    if sample_bytes == 2 {
        keep_high_bytes(&mut data);
    }
    Ok(oriented(
        Pixels::new(width, height, channels, data),
        orientation,
    ))
}

/// The turn the file's EXIF orientation asks for, when `--auto-orient` wants
/// it applied. The header's decoder has the EXIF block: in a JPEG it comes
/// before the pixels, in a PNG a decoder reads no further than the pixels'
/// start before it is asked.
fn orientation(decoder: &mut impl ImageDecoder, settings: &Settings) -> Orientation {
    if settings.auto_orient {
        // A broken EXIF block is no reason to refuse the pixels.
        decoder.orientation().unwrap_or(Orientation::NoTransforms)
    } else {
        Orientation::NoTransforms
    }
}

fn oriented(pixels: Pixels, orientation: Orientation) -> Pixels {
    if orientation == Orientation::NoTransforms {
        pixels
    } else {
        orient(pixels, orientation)
    }
}

/// 16-bit samples (native byte order, as decoders give them) to their high
/// bytes, in place.
fn keep_high_bytes(data: &mut Vec<u8>) {
    let samples = data.len() / 2;
    for index in 0..samples {
        let sample = u16::from_ne_bytes([data[2 * index], data[2 * index + 1]]);
        data[index] = (sample >> 8) as u8;
    }
    data.truncate(samples);
}

/// Turns and flips an image as its EXIF orientation says, through `image`'s
/// own implementation (rare enough that the copies do not matter).
fn orient(pixels: Pixels, orientation: Orientation) -> Pixels {
    let Pixels {
        width,
        height,
        channels,
        data,
    } = pixels;
    let sized = "the buffer matches the dimensions";
    let mut image = match channels {
        1 => DynamicImage::ImageLuma8(ImageBuffer::from_raw(width, height, data).expect(sized)),
        2 => DynamicImage::ImageLumaA8(ImageBuffer::from_raw(width, height, data).expect(sized)),
        3 => DynamicImage::ImageRgb8(ImageBuffer::from_raw(width, height, data).expect(sized)),
        _ => DynamicImage::ImageRgba8(ImageBuffer::from_raw(width, height, data).expect(sized)),
    };
    image.apply_orientation(orientation);
    into_pixels(image)
}

/// Any decoded image as 8-bit L, LA, RGB or RGBA, without copying when it
/// already is one of those.
pub fn into_pixels(image: DynamicImage) -> Pixels {
    let (width, height) = (image.width(), image.height());
    let high_bytes = |samples: &[u16]| samples.iter().map(|&sample| (sample >> 8) as u8).collect();
    let (channels, data) = match image {
        DynamicImage::ImageLuma8(buffer) => (1, buffer.into_raw()),
        DynamicImage::ImageLumaA8(buffer) => (2, buffer.into_raw()),
        DynamicImage::ImageRgb8(buffer) => (3, buffer.into_raw()),
        DynamicImage::ImageRgba8(buffer) => (4, buffer.into_raw()),
        DynamicImage::ImageLuma16(buffer) => (1, high_bytes(buffer.as_raw())),
        DynamicImage::ImageLumaA16(buffer) => (2, high_bytes(buffer.as_raw())),
        DynamicImage::ImageRgb16(buffer) => (3, high_bytes(buffer.as_raw())),
        DynamicImage::ImageRgba16(buffer) => (4, high_bytes(buffer.as_raw())),
        // Float images never come out of the JPEG and PNG decoders.
        other => (4, other.to_rgba8().into_raw()),
    };
    Pixels::new(width, height, channels, data)
}

/// Encodes `image` as JPEG (at `quality`) or PNG; the error is the codec's.
pub fn encode(image: &Pixels, format: ImageFormat, quality: u8) -> Result<Vec<u8>, String> {
    let mut output = Vec::new();
    encode_into(image, format, quality, &mut output)?;
    Ok(output)
}

/// [`encode`] into `output` (its contents are discarded, its allocation reused).
pub fn encode_into(
    image: &Pixels,
    format: ImageFormat,
    quality: u8,
    output: &mut Vec<u8>,
) -> Result<(), String> {
    output.clear();
    match format {
        ImageFormat::Jpeg => {
            let (data, channels) = match image.channels {
                1 => (Cow::Borrowed(&image.data[..]), jpeg::Channels::Luma),
                // JPEG has no alpha: grey and alpha is saved as grey.
                2 => (
                    Cow::Owned(image.data.iter().step_by(2).copied().collect()),
                    jpeg::Channels::Luma,
                ),
                3 => (Cow::Borrowed(&image.data[..]), jpeg::Channels::Rgb),
                _ => (Cow::Borrowed(&image.data[..]), jpeg::Channels::Rgba),
            };
            // Pillow's bytes for the same pixels (see image::jpeg).
            jpeg::encode(output, &data, image.width, image.height, channels, quality)?;
        }
        _ => {
            let colour = match image.channels {
                1 => image::ExtendedColorType::L8,
                2 => image::ExtendedColorType::La8,
                3 => image::ExtendedColorType::Rgb8,
                _ => image::ExtendedColorType::Rgba8,
            };
            PngEncoder::new_with_quality(&mut *output, CompressionType::Fast, FilterType::Adaptive)
                .write_image(&image.data, image.width, image.height, colour)
                .map_err(|error| error.to_string())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jpeg_completeness_wants_the_end_marker() {
        // SOI, an APP1 holding a thumbnail's end marker, SOS, scan data.
        let head = [
            0xFF, 0xD8, 0xFF, 0xE1, 0x00, 0x04, 0xFF, 0xD9, 0xFF, 0xDA, 0x00, 0x02,
        ];
        let complete = [&head[..], &[0x12, 0xFF, 0x00, 0xFF, 0xD9, 7, 7]].concat();
        assert!(check_jpeg_complete(&complete).is_ok());
        let truncated = [&head[..], &[0x12, 0xFF, 0x00, 0x34]].concat();
        assert!(check_jpeg_complete(&truncated).is_err());
        assert!(check_jpeg_complete(&head[..8]).is_err());
        // Not walkable: left to the decoder.
        assert!(check_jpeg_complete(&[0xFF, 0xD8, 0x01, 0x02, 0x03, 0x04]).is_ok());
    }

    #[test]
    fn sixteen_bit_samples_keep_their_high_byte_in_place() {
        let mut data: Vec<u8> = [0x12ffu16, 0xff00, 0x0080]
            .iter()
            .flat_map(|sample| sample.to_ne_bytes())
            .collect();
        keep_high_bytes(&mut data);
        assert_eq!(data, [0x12, 0xff, 0x00]);
    }

    #[test]
    fn sixteen_bit_keeps_the_high_byte() {
        let buffer =
            image::ImageBuffer::<image::Rgb<u16>, _>::from_raw(1, 1, vec![0x12ff, 0xff00, 0x0080])
                .unwrap();
        let pixels = into_pixels(DynamicImage::ImageRgb16(buffer));
        assert_eq!((pixels.channels, pixels.data), (3, vec![0x12, 0xff, 0x00]));
    }

    #[test]
    fn encoded_images_decode_to_their_size_and_channels() {
        let gray = Pixels::new(3, 2, 1, vec![0, 50, 100, 150, 200, 250]);
        let png = encode(&gray, ImageFormat::Png, 90).unwrap();
        let decoded = image::load_from_memory(&png).unwrap();
        assert_eq!(decoded.color(), image::ColorType::L8);
        assert_eq!(decoded.into_luma8().into_raw(), gray.data);
        let jpeg = encode(&gray, ImageFormat::Jpeg, 90).unwrap();
        let decoded = image::load_from_memory(&jpeg).unwrap();
        assert_eq!(decoded.color(), image::ColorType::L8);
        assert_eq!((decoded.width(), decoded.height()), (3, 2));
    }
}
