//! What img2dataset's recipes ask of each sample beside resizing: the hash
//! of the downloaded bytes (`--compute-hash`), checking it against a column
//! (`--verify-hash-col`), the boxes to blur (`--bbox-col`), the `exif` field,
//! and saving the bytes as downloaded (`--disable-all-reencoding`). The
//! options and which columns they read live here; the image task applies
//! them, the image layer owns the blur and the EXIF reading.

use serde_json::Value;

use super::sample::Fields;
use crate::http::request::Algorithm;
use crate::image::blur::RelativeBox;

/// The hashes img2dataset computes, by its names (which are also the
/// metadata field that holds the hash).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashType {
    Md5,
    Sha256,
    Sha512,
}

named!(HashType {
    Md5 => "md5": "MD5, in a field named md5",
    Sha256 => "sha256": "SHA-256, in a field named sha256 (img2dataset's default)",
    Sha512 => "sha512": "SHA-512, in a field named sha512",
});

impl HashType {
    /// The downloaded bytes' digest in lowercase hex.
    pub fn digest(self, bytes: &[u8]) -> String {
        let algorithm = match self {
            HashType::Md5 => Algorithm::Md5,
            HashType::Sha256 => Algorithm::Sha256,
            HashType::Sha512 => Algorithm::Sha512,
        };
        crate::http::digest::hex_digest(algorithm, bytes)
    }
}

/// `--verify-hash-col COL` with its `--verify-hash-type`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyHash {
    pub column: String,
    pub hash: HashType,
}

/// img2dataset's message for a body whose hash is not the column's.
pub const HASH_MISMATCH: &str = "hash mismatch";

/// The per-sample options of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Recipe {
    pub compute_hash: Option<HashType>,
    pub verify_hash: Option<VerifyHash>,
    /// The column of boxes to blur.
    pub bbox_column: Option<String>,
    pub extract_exif: bool,
    /// Save the bytes as downloaded: no decoding, resizing nor encoding.
    pub disable_all_reencoding: bool,
}

impl Default for Recipe {
    /// img2dataset's defaults: SHA-256, EXIF, nothing verified or blurred.
    fn default() -> Recipe {
        Recipe {
            compute_hash: Some(HashType::Sha256),
            verify_hash: None,
            bbox_column: None,
            extract_exif: true,
            disable_all_reencoding: false,
        }
    }
}

impl Recipe {
    /// The metadata fields these options add.
    pub fn fields(&self) -> Fields {
        Fields {
            hash: self.compute_hash,
            exif: self.extract_exif,
        }
    }

    /// The columns each sample's metadata keeps: `save`, then the box column
    /// (img2dataset saves it, as DataComp's `face_bboxes`).
    pub fn saved_columns(&self, save: &[String]) -> Vec<String> {
        let mut columns = save.to_vec();
        if let Some(column) = &self.bbox_column
            && !columns.contains(column)
        {
            columns.push(column.clone());
        }
        columns
    }

    /// The columns read from the table: the saved ones, then the column of
    /// hashes to verify (read, and dropped before the sample is kept, as
    /// img2dataset drops it).
    pub fn read_columns(&self, save: &[String]) -> Vec<String> {
        let mut columns = self.saved_columns(save);
        if let Some(verify) = &self.verify_hash
            && !columns.contains(&verify.column)
        {
            columns.push(verify.column.clone());
        }
        columns
    }

    /// Whether `body` has the hash its row's verify column gives; `None`
    /// when nothing is verified. A missing or empty value is a mismatch, as
    /// it is for img2dataset; the comparison ignores case and surrounding
    /// blanks.
    pub fn verified(&self, saved: &[(String, Value)], body: &[u8]) -> Option<bool> {
        let verify = self.verify_hash.as_ref()?;
        let expected = saved
            .iter()
            .find(|(name, _)| *name == verify.column)
            .and_then(|(_, value)| value.as_str())
            .map(str::trim)
            .unwrap_or_default();
        Some(!expected.is_empty() && verify.hash.digest(body).eq_ignore_ascii_case(expected))
    }

    /// The boxes to blur in a row: none without a box column or when its
    /// value is null; otherwise a list of `[x0, y0, x1, y1]` (text holding
    /// such a list too, as a csv table has it). Anything else is the
    /// sample's error, as img2dataset's blurrer fails on it.
    pub fn boxes(&self, saved: &[(String, Value)]) -> Result<Vec<RelativeBox>, String> {
        let Some(column) = &self.bbox_column else {
            return Ok(Vec::new());
        };
        let value = saved
            .iter()
            .find(|(name, _)| name == column)
            .map_or(&Value::Null, |(_, value)| value);
        let parsed;
        let value = match value {
            Value::String(text) if text.trim().is_empty() => return Ok(Vec::new()),
            Value::String(text) => {
                parsed = serde_json::from_str::<Value>(text)
                    .map_err(|_| format!("{column}: not a list of boxes: {text}"))?;
                &parsed
            }
            other => other,
        };
        let wrong = || format!("{column}: not a list of [x0, y0, x1, y1] boxes: {value}");
        match value {
            Value::Null => Ok(Vec::new()),
            Value::Array(boxes) => boxes
                .iter()
                .map(|one| {
                    let corners = one.as_array().filter(|corners| corners.len() >= 4);
                    let corners = corners.ok_or_else(wrong)?;
                    let mut relative = [0.0; 4];
                    for (slot, corner) in relative.iter_mut().zip(corners) {
                        *slot = corner.as_f64().ok_or_else(wrong)?;
                    }
                    Ok(relative)
                })
                .collect(),
            _ => Err(wrong()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_box_column_is_saved_and_the_hash_column_only_read() {
        let recipe = Recipe {
            bbox_column: Some("face_bboxes".into()),
            verify_hash: Some(VerifyHash {
                column: "hash".into(),
                hash: HashType::Md5,
            }),
            ..Recipe::default()
        };
        let save = ["uid".to_string()];
        assert_eq!(recipe.saved_columns(&save), ["uid", "face_bboxes"]);
        assert_eq!(recipe.read_columns(&save), ["uid", "face_bboxes", "hash"]);
    }

    #[test]
    fn hashes_are_checked_against_the_column() {
        let recipe = Recipe {
            verify_hash: Some(VerifyHash {
                column: "hash".into(),
                hash: HashType::Md5,
            }),
            ..Recipe::default()
        };
        let row = |value: Value| vec![("hash".to_string(), value)];
        let md5 = "900150983cd24fb0d6963f7d28e17f72";
        assert_eq!(recipe.verified(&row(json!(md5)), b"abc"), Some(true));
        let upper = md5.to_uppercase();
        assert_eq!(recipe.verified(&row(json!(upper)), b"abc"), Some(true));
        assert_eq!(recipe.verified(&row(json!(md5)), b"abd"), Some(false));
        assert_eq!(recipe.verified(&row(Value::Null), b"abc"), Some(false));
        assert_eq!(Recipe::default().verified(&row(json!(md5)), b"abd"), None);
        assert_eq!(HashType::Sha512.digest(b"abc").len(), 128, "sha512 in hex");
    }

    #[test]
    fn boxes_come_from_lists_or_text() {
        let recipe = Recipe {
            bbox_column: Some("b".into()),
            ..Recipe::default()
        };
        let row = |value: Value| vec![("b".to_string(), value)];
        let boxes = recipe
            .boxes(&row(json!([[0.1, 0.2, 0.3, 0.4], [0, 0, 1, 1]])))
            .unwrap();
        assert_eq!(boxes, [[0.1, 0.2, 0.3, 0.4], [0.0, 0.0, 1.0, 1.0]]);
        assert_eq!(
            recipe.boxes(&row(json!("[[0.1, 0.2, 0.3, 0.4]]"))).unwrap(),
            [[0.1, 0.2, 0.3, 0.4]]
        );
        assert!(recipe.boxes(&row(Value::Null)).unwrap().is_empty());
        assert!(recipe.boxes(&row(json!([]))).unwrap().is_empty());
        assert!(recipe.boxes(&row(json!([0.1, 0.2, 0.3, 0.4]))).is_err());
        assert!(recipe.boxes(&row(json!("faces"))).is_err());
        assert!(Recipe::default().boxes(&row(json!(1))).unwrap().is_empty());
    }
}
