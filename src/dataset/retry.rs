//! `--retry-failed`: the failed samples of complete shards downloaded again,
//! and each shard they belong to rewritten with them, keys unchanged.
//!
//! The shard's own files are the source of everything else: its metadata
//! parquet gives each sample's fields and which ones failed, its data (the
//! tar, the folder, or the image column) the images of the others, so a
//! retry needs no spool of the run that built it. The retried samples are
//! spooled as any others; once all of a shard's are, the shard is written
//! again through the same writer as the first time, under temporary names
//! renamed over the old files, its stats last. Samples that were not retried
//! come out byte for byte as they were. Opted-out samples are not retried: the
//! server said no.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::PathBuf;

use anyhow::Context as _;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::{Field, Row};
use serde_json::{Map, Value};

use super::column::{self, SavedColumns};
use super::sample::{OPTED_OUT_REASON, SIZE_COLUMNS, Sample, Status};
use super::shard::{Layout, OutputFormat, Stats};
use crate::Named;
use crate::fs::spool::Spool;
use crate::image::resize::Sizes;

/// Whether a sample of this status is fetched again.
fn retried(status: Status) -> bool {
    matches!(status, Status::FailedToDownload | Status::FailedToResize)
}

/// The rows of complete shard `shard` whose samples failed.
pub fn failed_rows(layout: &Layout, shard: u64) -> anyhow::Result<BTreeSet<u64>> {
    let (samples, _) = read_samples(layout, shard)?;
    Ok(samples
        .iter()
        .filter(|sample| retried(sample.status))
        .filter_map(|sample| layout.keys.row_of_key(&sample.key))
        .collect())
}

fn metadata_path(layout: &Layout, shard: u64) -> PathBuf {
    layout
        .output
        .local_folder()
        .join(format!("{}.parquet", layout.keys.shard_name(shard)))
}

/// A complete shard's samples from its metadata parquet (without images),
/// and its saved columns' types as that file declares them.
fn read_samples(layout: &Layout, shard: u64) -> anyhow::Result<(Vec<Sample>, SavedColumns)> {
    let path = metadata_path(layout, shard);
    let reader = SerializedFileReader::new(
        File::open(&path).with_context(|| format!("cannot read {}", path.display()))?,
    )
    .with_context(|| format!("cannot read {}", path.display()))?;
    let fields = column::ParquetColumns::of(&reader);
    let saved = layout
        .saved_columns
        .iter()
        .map(|(name, declared)| {
            let kind = fields.type_of(name).unwrap_or_else(|| declared.clone());
            (name.clone(), kind)
        })
        .collect();
    let image_column = image_column(layout);
    let mut samples = Vec::new();
    for (index, row) in reader
        .get_row_iter(None)
        .with_context(|| format!("cannot read {}", path.display()))?
        .enumerate()
    {
        let row = row.with_context(|| format!("{} row {}", path.display(), index + 1))?;
        let object: Map<String, Value> = row
            .get_column_iter()
            .filter(|(name, _)| Some(name.as_str()) != image_column)
            .map(|(name, field)| (name.clone(), field.to_json_value()))
            .collect();
        let sample = sample_of(&object, layout)
            .with_context(|| format!("{} row {}: not a sample", path.display(), index + 1))?;
        samples.push(sample);
    }
    Ok((samples, saved))
}

/// The column holding images, in a shard of parquet output.
fn image_column(layout: &Layout) -> Option<&'static str> {
    (layout.output_format == OutputFormat::Parquet).then(|| layout.encode_format.extension())
}

/// A sample as its metadata row records it.
fn sample_of(row: &Map<String, Value>, layout: &Layout) -> Option<Sample> {
    let text = |name: &str| row.get(name).and_then(Value::as_str).map(str::to_string);
    let number = |name: &str| {
        row.get(name)
            .and_then(Value::as_u64)
            .map(|value| value as u32)
    };
    let status: Status = serde_json::from_value(row.get("status")?.clone()).ok()?;
    Some(Sample {
        key: text("key")?,
        url: text("url")?,
        caption: text("caption"),
        saved: layout
            .saved_columns
            .iter()
            .map(|(name, _)| (name.clone(), row.get(name).cloned().unwrap_or(Value::Null)))
            .collect(),
        status,
        // The counts by reason are the shard's stats': an opted-out sample's
        // is fixed, and every failed one is retried, its reason new.
        reason: match status {
            Status::Success => None,
            Status::OptedOut => Some(OPTED_OUT_REASON.to_string()),
            other => Some(other.name().to_string()),
        },
        error_message: text("error_message"),
        sizes: match SIZE_COLUMNS.map(number) {
            [
                Some(width),
                Some(height),
                Some(original_width),
                Some(original_height),
            ] => Some(Sizes {
                width,
                height,
                original_width,
                original_height,
            }),
            _ => None,
        },
        hash: layout.fields.hash.and_then(|hash| text(hash.name())),
        exif: text("exif"),
        download_seconds: 0.0,
        process_seconds: 0.0,
    })
}

/// Where a complete shard keeps its images.
enum Images {
    /// A tar: each member's offset and size.
    Tar {
        file: File,
        members: HashMap<String, (u64, u64)>,
    },
    Folder(PathBuf),
    /// The image column, read in order, a row at a time.
    Parquet {
        rows: parquet::record::reader::RowIter<'static>,
        column: &'static str,
    },
}

impl Images {
    fn open(layout: &Layout, shard: u64) -> anyhow::Result<Images> {
        let name = layout.keys.shard_name(shard);
        Ok(match layout.output_format {
            OutputFormat::Webdataset => {
                let path = layout.output.local_folder().join(format!("{name}.tar"));
                let context = || format!("cannot read {}", path.display());
                let mut archive = tar::Archive::new(File::open(&path).with_context(context)?);
                let mut members = HashMap::new();
                for entry in archive.entries().with_context(context)? {
                    let entry = entry.with_context(context)?;
                    let member = entry.path().with_context(context)?.display().to_string();
                    members.insert(member, (entry.raw_file_position(), entry.size()));
                }
                Images::Tar {
                    file: File::open(&path).with_context(context)?,
                    members,
                }
            }
            OutputFormat::Files => Images::Folder(layout.output.local_folder().join(name)),
            OutputFormat::Parquet => {
                let path = metadata_path(layout, shard);
                let reader = SerializedFileReader::new(
                    File::open(&path).with_context(|| format!("cannot read {}", path.display()))?,
                )
                .with_context(|| format!("cannot read {}", path.display()))?;
                Images::Parquet {
                    rows: parquet::record::reader::RowIter::from_file_into(Box::new(reader)),
                    column: layout.encode_format.extension(),
                }
            }
        })
    }

    /// The image of the next sample, `key`, when it is a success (parquet
    /// rows are read for every sample, in order).
    fn next(&mut self, key: &str, extension: &str, success: bool) -> io::Result<Vec<u8>> {
        let member = format!("{key}.{extension}");
        match self {
            Images::Parquet { rows, column } => {
                let row: Row = rows
                    .next()
                    .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "fewer rows"))?
                    .map_err(io::Error::other)?;
                let image = row.get_column_iter().find_map(|(name, field)| match field {
                    Field::Bytes(bytes) if name == column => Some(bytes.data().to_vec()),
                    _ => None,
                });
                Ok(image.unwrap_or_default())
            }
            _ if !success => Ok(Vec::new()),
            Images::Tar { file, members } => {
                let &(offset, size) = members.get(&member).ok_or_else(|| {
                    io::Error::new(io::ErrorKind::NotFound, format!("no member {member}"))
                })?;
                file.seek(SeekFrom::Start(offset))?;
                let mut image = vec![0; size as usize];
                file.read_exact(&mut image)?;
                Ok(image)
            }
            Images::Folder(folder) => std::fs::read(folder.join(&member)),
        }
    }
}

/// Writes complete shard `shard` again: each sample retried by this run
/// (in `spool`) in place of the failed one, every other as the shard holds
/// it; its stats counted again, with the time spent on it before. The
/// caller removes the spool once the shard is written.
pub fn rewrite_shard(layout: &Layout, shard: u64, spool: &Spool) -> anyhow::Result<Stats> {
    let (samples, saved) = read_samples(layout, shard)?;
    let earlier = layout.read_stats(shard).with_context(|| {
        format!(
            "cannot read {}",
            layout.output.describe(&layout.stats_name(shard))
        )
    })?;
    let mut images = Images::open(layout, shard)?;
    let extension = layout.encode_format.extension();
    let base = Stats {
        download_seconds: earlier.download_seconds,
        process_seconds: earlier.process_seconds,
        ..Stats::default()
    };
    let count = samples.len() as u64;
    let spooled = |sample: &Sample| -> Option<u64> {
        let row = layout.keys.row_of_key(&sample.key)?;
        (retried(sample.status) && spool.contains(row)).then_some(row)
    };
    let load = |index: u64| -> io::Result<(Sample, Vec<u8>)> {
        let sample = &samples[index as usize];
        let old = images.next(&sample.key, extension, sample.status == Status::Success);
        match spooled(sample) {
            Some(row) => layout.unspool_row(spool, row),
            None => Ok((sample.clone(), old?)),
        }
    };
    layout.build(shard, count, &saved, load, base)
}
