//! One sample as it is kept between arriving and its shard being written: its
//! metadata and its image bytes, a record of its shard's spool
//! ([`crate::fs::spool`]) under its row number. A record counts only whole
//! (its checksum holds), so after a kill every record is a finished sample
//! that a re-run reuses instead of downloading again; and a shard is
//! assembled from its spool in key order, whatever order its samples
//! arrived in.

use std::io;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::recipe::HashType;
use crate::Named;
use crate::fs::spool::Spool;
use crate::image::resize::Sizes;

/// How a sample ended (img2dataset's statuses, and `opted_out`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Success,
    FailedToDownload,
    FailedToResize,
    /// The server's `X-Robots-Tag` said not to use it.
    OptedOut,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Success => "success",
            Status::FailedToDownload => "failed_to_download",
            Status::FailedToResize => "failed_to_resize",
            Status::OptedOut => "opted_out",
        }
    }
}

/// The metadata fields a run's options decide, as img2dataset's do: the
/// hash's, named after its type (`sha256` by default, none with
/// `--compute-hash none`), and `exif` (unless `--no-extract-exif`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fields {
    pub hash: Option<HashType>,
    pub exif: bool,
}

impl Default for Fields {
    fn default() -> Fields {
        Fields {
            hash: Some(HashType::Sha256),
            exif: true,
        }
    }
}
/// The failure reason of an opted-out sample, in a shard's stats.
pub const OPTED_OUT_REASON: &str = "opted out by X-Robots-Tag";

/// img2dataset's columns of a sample's [`Sizes`], in the order of
/// [`size_columns`].
pub const SIZE_COLUMNS: [&str; 4] = ["width", "height", "original_width", "original_height"];

/// The values of the [`SIZE_COLUMNS`], none where the sample has no image.
pub fn size_columns(sizes: Option<Sizes>) -> [Option<u32>; 4] {
    match sizes {
        Some(sizes) => sizes.sides().map(Some),
        None => [None; 4],
    }
}

/// What is known of one sample once it is done.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub key: String,
    pub url: String,
    pub caption: Option<String>,
    /// The `--save-cols` values, in the order asked for.
    pub saved: Vec<(String, Value)>,
    pub status: Status,
    pub error_message: Option<String>,
    /// The error without particulars, for counting failures by reason.
    pub reason: Option<String>,
    /// The image's sides, for a sample that has one. Flattened, so the
    /// spooled record keeps img2dataset's four fields (and a record that
    /// has them null reads as none).
    #[serde(flatten)]
    pub sizes: Option<Sizes>,
    /// The `--compute-hash` digest of the downloaded body (as img2dataset,
    /// the bytes downloaded, not those saved), for a success.
    #[serde(default)]
    pub hash: Option<String>,
    /// The body's EXIF tags as a JSON object's text, for a success.
    #[serde(default)]
    pub exif: Option<String>,
    /// Time spent downloading and processing, for the shard's stats.
    #[serde(default)]
    pub download_seconds: f64,
    #[serde(default)]
    pub process_seconds: f64,
}

impl Sample {
    /// A sample that ended before it had an image.
    pub fn failed(
        row: &super::input::Row,
        key: String,
        status: Status,
        error: String,
        reason: String,
    ) -> Sample {
        Sample {
            key,
            url: row.url.clone(),
            caption: row.caption.clone(),
            saved: row.saved.clone(),
            status,
            error_message: Some(error),
            reason: Some(reason),
            sizes: None,
            hash: None,
            exif: None,
            download_seconds: 0.0,
            process_seconds: 0.0,
        }
    }

    /// The metadata users read (`KEY.json`), img2dataset's fields and the saved
    /// columns; keys in sorted order, so the bytes depend only on the values.
    pub fn metadata_json(&self, fields: &Fields) -> Vec<u8> {
        let mut object = Map::new();
        for (name, value) in &self.saved {
            object.insert(name.clone(), value.clone());
        }
        let number = |value: Option<u32>| value.map_or(Value::Null, Value::from);
        let text = |value: &Option<String>| value.clone().map_or(Value::Null, Value::String);
        object.insert("key".into(), Value::String(self.key.clone()));
        object.insert("url".into(), Value::String(self.url.clone()));
        object.insert("caption".into(), text(&self.caption));
        object.insert("status".into(), Value::String(self.status.name().into()));
        object.insert("error_message".into(), text(&self.error_message));
        for (name, side) in SIZE_COLUMNS.into_iter().zip(size_columns(self.sizes)) {
            object.insert(name.into(), number(side));
        }
        if fields.exif {
            object.insert("exif".into(), text(&self.exif));
        }
        if let Some(hash) = fields.hash {
            object.insert(hash.name().into(), text(&self.hash));
        }
        serde_json::to_vec(&Value::Object(object)).expect("metadata serialises to JSON")
    }
}

/// Spools `sample` as the record of `row`: the metadata's length as 8
/// little-endian bytes, the metadata as JSON, then the image bytes (none
/// for a failure), in one write.
pub fn spool(spool: &mut Spool, row: u64, sample: &Sample, image: &[u8]) -> io::Result<()> {
    let metadata = serde_json::to_vec(sample).map_err(io::Error::other)?;
    let length = (metadata.len() as u64).to_le_bytes();
    spool.append(row, &[&length, &metadata, image])
}

/// The spooled sample of `row`; an error names the log, or the row when
/// the spool has no record of it.
pub fn unspool(spool: &Spool, row: u64) -> io::Result<(Sample, Vec<u8>)> {
    let record = spool.read(row)?.ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "no spooled sample of row {row} in {}",
                spool.folder().display()
            ),
        )
    })?;
    decode(record).map_err(|error| {
        io::Error::new(
            error.kind(),
            format!(
                "the record of row {row} in {}: {error}",
                spool.log_path().display()
            ),
        )
    })
}

/// A sample from its record's payload.
fn decode(mut record: Vec<u8>) -> io::Result<(Sample, Vec<u8>)> {
    let invalid = || io::Error::new(io::ErrorKind::InvalidData, "not a spooled sample");
    let length: [u8; 8] = record
        .get(..8)
        .ok_or_else(invalid)?
        .try_into()
        .map_err(|_| invalid())?;
    let end = usize::try_from(u64::from_le_bytes(length))
        .ok()
        .and_then(|length| length.checked_add(8))
        .ok_or_else(invalid)?;
    let metadata = record.get(8..end).ok_or_else(invalid)?;
    let sample: Sample = serde_json::from_slice(metadata).map_err(|_| invalid())?;
    // The image moved to the front of the record's buffer: no second one.
    record.drain(..end);
    Ok((sample, record))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spooled_sample_reads_back_whole() {
        let folder = tempfile::tempdir().unwrap();
        let row = super::super::input::Row {
            number: 3,
            origin: "t.csv:4".into(),
            url: "http://a/x".into(),
            caption: Some("cat".into()),
            saved: vec![("id".into(), Value::from(7))],
        };
        let mut sample = Sample::failed(
            &row,
            "000003".into(),
            Status::Success,
            String::new(),
            String::new(),
        );
        let failed = sample.clone();
        sample.sizes = Some(Sizes {
            width: 4,
            height: 3,
            original_width: 8,
            original_height: 6,
        });
        sample.hash = Some("ab".into());
        let mut log = Spool::open(&folder.path().join("00000")).unwrap();
        spool(&mut log, 3, &sample, b"image bytes").unwrap();
        assert_eq!(
            unspool(&log, 3).unwrap(),
            (sample.clone(), b"image bytes".to_vec())
        );
        spool(&mut log, 5, &failed, b"").unwrap();
        assert_eq!(unspool(&log, 5).unwrap(), (failed.clone(), Vec::new()));
        // A record spooled before the sizes were one field names each, null
        // where there is no image: it reads as the same sample.
        let mut metadata = serde_json::to_value(&failed).unwrap();
        for name in SIZE_COLUMNS {
            metadata[name] = Value::Null;
        }
        let metadata = serde_json::to_vec(&metadata).unwrap();
        let mut record = (metadata.len() as u64).to_le_bytes().to_vec();
        record.extend_from_slice(&metadata);
        assert_eq!(decode(record).unwrap(), (failed, Vec::new()));
        let missing = unspool(&log, 4).unwrap_err();
        assert!(missing.to_string().contains("row 4"), "{missing}");
        let json: Value =
            serde_json::from_slice(&sample.metadata_json(&Fields::default())).unwrap();
        assert_eq!(json["id"], 7);
        assert_eq!(json["width"], 4);
        assert_eq!(json["caption"], "cat");
        assert_eq!(json["sha256"], "ab");
        assert_eq!(json["exif"], Value::Null);
        let fields = Fields {
            hash: Some(HashType::Md5),
            exif: false,
        };
        let json: Value = serde_json::from_slice(&sample.metadata_json(&fields)).unwrap();
        assert_eq!(json["md5"], "ab");
        assert!(json.get("sha256").is_none() && json.get("exif").is_none());
        log.append(5, &[b"short"]).unwrap();
        let error = unspool(&log, 5).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        assert!(error.to_string().contains("row 5"), "{error}");
    }
}
