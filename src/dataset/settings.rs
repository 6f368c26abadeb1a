//! The settings that change a shard's bytes, kept with the output as
//! `settings.json` when a run starts, so that a re-run with other ones does
//! not mix two datasets in one folder (shards of 25 beside shards of 50,
//! 64-pixel images beside 256-pixel ones). A re-run with different settings
//! is refused, each difference named, unless `--incremental-mode` says what
//! the user wants, with img2dataset's meanings: `incremental` continues the
//! same dataset, `overwrite` removes the earlier output first, `extend` keeps
//! it and adds the new table's shards after the highest there.
//!
//! Read and written through [`super::read_output_file`] and
//! [`super::write_output_file`], in the folder or the bucket prefix, as
//! `stats.json` is (`overwrite` and `extend` are refused on a bucket). A field added later
//! takes `#[serde(default)]` with the value that means "as before", so a
//! folder recorded before it still compares equal.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::DatasetConfig;
use super::column::ColumnType;
use super::input::TableFile;
use crate::Named;
use crate::fs::store::Store;

/// The record's name in the output folder.
pub const SETTINGS_NAME: &str = "settings.json";

/// What a run does with an output folder that holds an earlier dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncrementalMode {
    Incremental,
    Overwrite,
    Extend,
}

named!(IncrementalMode {
    Incremental => "incremental": "continue the dataset in the folder (the default); other settings are refused",
    Overwrite => "overwrite": "remove the folder's earlier shards, stats and spool, then start over",
    Extend => "extend": "keep the folder's shards and add this table's after the highest one",
});

/// A saved column and the type it keeps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedColumn {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: ColumnType,
}

/// A table the folder was built from, and the first shard its rows went to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableRecord {
    pub first_shard: u64,
    pub files: Vec<TableFile>,
}

/// The settings that change a shard's bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetSettings {
    pub samples_per_shard: u64,
    pub output_format: String,
    pub image_size: u32,
    pub resize_mode: String,
    pub resize_only_if_bigger: bool,
    pub skip_reencode: bool,
    pub min_image_size: u32,
    pub max_image_area: u64,
    /// None for no limit.
    pub max_aspect_ratio: Option<f64>,
    pub encode_format: String,
    pub encode_quality: u8,
    pub url_col: String,
    pub caption_col: Option<String>,
    pub save_cols: Vec<SavedColumn>,
    /// Digits of shard names and keys (`--oom-shard-count`).
    pub shard_digits: usize,
    /// `--compute-hash`: the field's name, `none` for none.
    pub compute_hash: String,
    /// `--verify-hash-col` and its type: `COL (sha256)`.
    pub verify_hash: Option<String>,
    pub bbox_col: Option<String>,
    pub extract_exif: bool,
    pub disable_all_reencoding: bool,
    /// In the order they were added (`extend` adds one).
    pub tables: Vec<TableRecord>,
}

impl DatasetSettings {
    /// `config`'s settings, for a table of `files` whose saved columns have
    /// `saved_types`, starting at shard 0.
    pub fn of(
        config: &DatasetConfig,
        saved_types: &[ColumnType],
        files: &[TableFile],
    ) -> DatasetSettings {
        let image = &config.image;
        DatasetSettings {
            samples_per_shard: config.samples_per_shard,
            output_format: config.output_format.name().to_string(),
            image_size: image.image_size,
            resize_mode: image.resize_mode.name().to_string(),
            resize_only_if_bigger: image.resize_only_if_bigger,
            skip_reencode: image.skip_reencode,
            min_image_size: image.min_image_size,
            max_image_area: image.max_image_area,
            max_aspect_ratio: image
                .max_aspect_ratio
                .is_finite()
                .then_some(image.max_aspect_ratio),
            encode_format: image.encode_format.name().to_string(),
            encode_quality: image.encode_quality,
            url_col: config.columns.url.clone(),
            caption_col: config.columns.caption.clone(),
            save_cols: config
                .columns
                .save
                .iter()
                .zip(
                    saved_types
                        .iter()
                        .chain(std::iter::repeat(&ColumnType::FromJson)),
                )
                .map(|(name, kind)| SavedColumn {
                    name: name.clone(),
                    kind: kind.clone(),
                })
                .collect(),
            shard_digits: config.shard_digits,
            compute_hash: config
                .recipe
                .compute_hash
                .map_or("none", |hash| hash.name())
                .to_string(),
            verify_hash: config
                .recipe
                .verify_hash
                .as_ref()
                .map(|verify| format!("{} ({})", verify.column, verify.hash.name())),
            bbox_col: config.recipe.bbox_column.clone(),
            extract_exif: config.recipe.extract_exif,
            disable_all_reencoding: config.recipe.disable_all_reencoding,
            tables: vec![TableRecord {
                first_shard: 0,
                files: files.to_vec(),
            }],
        }
    }

    /// Each setting but the tables, as a user reads it: its name and value.
    /// A setting added to the struct gets its line here.
    fn entries(&self) -> Vec<(&'static str, String)> {
        let optional = |value: &Option<String>| value.clone().unwrap_or_else(|| "none".into());
        vec![
            ("samples per shard", self.samples_per_shard.to_string()),
            ("output format", self.output_format.clone()),
            ("image size", self.image_size.to_string()),
            ("resize mode", self.resize_mode.clone()),
            (
                "resize only if bigger",
                yes_or_no(self.resize_only_if_bigger),
            ),
            ("skip reencode", yes_or_no(self.skip_reencode)),
            ("min image size", self.min_image_size.to_string()),
            ("max image area", self.max_image_area.to_string()),
            (
                "max aspect ratio",
                self.max_aspect_ratio
                    .map_or_else(|| "none".into(), |ratio| ratio.to_string()),
            ),
            ("encode format", self.encode_format.clone()),
            ("encode quality", self.encode_quality.to_string()),
            ("shard name digits", self.shard_digits.to_string()),
            ("hash", self.compute_hash.clone()),
            ("verified hash column", optional(&self.verify_hash)),
            ("blurred boxes column", optional(&self.bbox_col)),
            ("exif", yes_or_no(self.extract_exif)),
            (
                "all reencoding disabled",
                yes_or_no(self.disable_all_reencoding),
            ),
            ("url column", self.url_col.clone()),
            ("caption column", optional(&self.caption_col)),
            (
                "saved columns",
                match self.save_cols.is_empty() {
                    true => "none".into(),
                    false => self
                        .save_cols
                        .iter()
                        .map(|column| format!("{} ({})", column.name, column.kind.name()))
                        .collect::<Vec<_>>()
                        .join(", "),
                },
            ),
        ]
    }

    /// Every setting but the tables that differs: "samples per shard: 50 in
    /// the folder, 25 now".
    pub fn differences(&self, now: &DatasetSettings) -> Vec<String> {
        self.entries()
            .into_iter()
            .zip(now.entries())
            .filter(|((_, folder), (_, now))| folder != now)
            .map(|((name, folder), (_, now))| format!("{name}: {folder} in the folder, {now} now"))
            .collect()
    }

    /// The recorded table made of `files`.
    fn table(&self, files: &[TableFile]) -> Option<&TableRecord> {
        self.tables.iter().find(|table| table.files == files)
    }
}

fn yes_or_no(value: bool) -> String {
    if value { "yes" } else { "no" }.to_string()
}

/// A table's files as a user reads them: `t.csv (1234 bytes)`.
fn describe(files: &[TableFile]) -> String {
    files
        .iter()
        .map(|file| format!("{} ({} bytes)", file.name, file.bytes))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Why a run refuses the output folder: a usage error, the command line
/// names a folder that holds another dataset.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("{folder} holds a dataset built with other settings:\n  {}\n{hint}", differences.join("\n  "))]
    Differ {
        folder: String,
        differences: Vec<String>,
        hint: String,
    },
    #[error(
        "{} holds shards but no {SETTINGS_NAME} (img2dataset or an older grab built it): give --incremental-mode incremental to continue it with these settings, overwrite to start over, or extend to add this table after it",
        .0
    )]
    Unrecorded(String),
    #[error("--incremental-mode overwrite cannot remove a folder other runs are building ({})", .0)]
    SharedOverwrite(String),
    #[error("{path} is not a settings record: {message}")]
    Unreadable { path: String, message: String },
}

/// How this run's rows go into the folder.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    /// Added to every row's shard: where an extending table starts.
    pub first_shard: u64,
    /// Said to the user before the run (an extension, a table continued).
    pub notice: Option<String>,
}

/// Compares `now` with the folder's record and applies `mode` (none given:
/// incremental, and a folder of an older grab is refused): refuses other
/// settings, removes the earlier output for `overwrite`, places the table for
/// `extend`; then records the settings. `shared`: other runs build the same
/// folder now (queue workers), so nothing is removed and a record another
/// run wrote first wins.
pub fn prepare(
    output: &Store,
    mode: Option<IncrementalMode>,
    now: DatasetSettings,
    shared: bool,
) -> anyhow::Result<Prepared> {
    let path = output.describe(SETTINGS_NAME);
    let read = || -> anyhow::Result<Option<DatasetSettings>> {
        match super::read_output_file(output, SETTINGS_NAME)? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|error| {
                SettingsError::Unreadable {
                    path: path.clone(),
                    message: error.to_string(),
                }
                .into()
            }),
        }
    };
    let files = now.tables[0].files.clone();
    let fresh = Prepared {
        first_shard: 0,
        notice: None,
    };
    if mode == Some(IncrementalMode::Overwrite) {
        if shared {
            return Err(SettingsError::SharedOverwrite(output.to_string()).into());
        }
        // A bucket is refused overwrite on the command line: only a folder
        // gets here.
        remove_earlier_output(&output.local_folder())?;
        record(output, &now, true)?;
        return Ok(fresh);
    }
    let Some(folder) = read()? else {
        let highest = highest_shard(output)?;
        let prepared = match (highest, mode) {
            (None, _) => fresh,
            (Some(_), None) => {
                return Err(SettingsError::Unrecorded(output.to_string()).into());
            }
            (Some(_), Some(IncrementalMode::Incremental)) => fresh,
            (Some(highest), Some(_)) => Prepared {
                first_shard: highest + 1,
                notice: Some(format!(
                    "{} goes in from shard {}, after the folder's",
                    describe(&files),
                    super::shard::shard_name(highest + 1)
                )),
            },
        };
        let mut now = now;
        now.tables[0].first_shard = prepared.first_shard;
        if !record(output, &now, false)? {
            // Another run recorded the folder first: compare with its record.
            return prepare(output, mode, now, shared);
        }
        return Ok(prepared);
    };
    let mut differences = folder.differences(&now);
    let extend = mode == Some(IncrementalMode::Extend);
    if !differences.is_empty() {
        let hint = match extend {
            true => "extend adds shards built as the folder's are: give the folder's settings, or --incremental-mode overwrite to start over".to_string(),
            false => "give --incremental-mode overwrite to remove the earlier output and start over, or another -o folder".to_string(),
        };
        return Err(SettingsError::Differ {
            folder: output.to_string(),
            differences,
            hint,
        }
        .into());
    }
    if let Some(table) = folder.table(&files) {
        // The same table again (a run resumed, an extension re-run): it goes
        // on where it started.
        return Ok(Prepared {
            first_shard: table.first_shard,
            notice: (table.first_shard > 0).then(|| {
                format!(
                    "{} was added from shard {}: continuing it",
                    describe(&files),
                    super::shard::shard_name(table.first_shard)
                )
            }),
        });
    }
    if !extend {
        let recorded = folder
            .tables
            .iter()
            .map(|table| describe(&table.files))
            .collect::<Vec<_>>()
            .join("; ");
        differences.push(format!(
            "input table: {recorded} in the folder, {} now",
            describe(&files)
        ));
        return Err(SettingsError::Differ {
            folder: output.to_string(),
            differences,
            hint: "give --incremental-mode extend to add this table's shards after the folder's, overwrite to start over, or another -o folder".to_string(),
        }
        .into());
    }
    let after_tables = folder
        .tables
        .iter()
        .map(|table| table.first_shard + 1)
        .max()
        .unwrap_or(0);
    let after_shards = highest_shard(output)?.map_or(0, |highest| highest + 1);
    let first_shard = after_tables.max(after_shards);
    let mut extended = folder;
    extended.tables.push(TableRecord {
        first_shard,
        files: files.clone(),
    });
    record(output, &extended, true)?;
    Ok(Prepared {
        first_shard,
        notice: Some(format!(
            "{} goes in from shard {}, after the folder's",
            describe(&files),
            super::shard::shard_name(first_shard)
        )),
    })
}

/// The highest shard number of the output: of a complete shard (in the
/// folder or the bucket) or of one begun (in the local spool).
fn highest_shard(output: &Store) -> anyhow::Result<Option<u64>> {
    let local = super::shard::highest_shard(&output.local_folder())?;
    let listed = match output {
        Store::Folder(_) => None,
        Store::Bucket(_) => super::shard::stats_names(output)?
            .iter()
            .filter_map(|name| name.strip_suffix("_stats.json")?.parse().ok())
            .max(),
    };
    Ok(local.max(listed))
}

/// Writes the record; without `replace`, false when one is there already.
fn record(output: &Store, settings: &DatasetSettings, replace: bool) -> anyhow::Result<bool> {
    let mut text = serde_json::to_vec_pretty(settings).expect("settings serialise to JSON");
    text.push(b'\n');
    match super::write_output_file(output, SETTINGS_NAME, &text, replace) {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists && !replace => Ok(false),
        Err(error) => Err(anyhow::anyhow!(
            "cannot write {}: {error}",
            output.describe(SETTINGS_NAME)
        )),
    }
}

/// Removes what dataset runs wrote in `directory` (shards, their stats and
/// metadata, `stats.json`, the record, the work folder), and nothing else: an
/// `-o` that names a folder of other files loses none of them.
pub fn remove_earlier_output(directory: &Path) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let entries = match std::fs::read_dir(directory) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => {
            return Err(error).with_context(|| format!("cannot list {}", directory.display()));
        }
    };
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", directory.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let shard = ["_stats.json", ".tar", ".parquet", ""]
            .iter()
            .any(|suffix| {
                name.strip_suffix(suffix).is_some_and(|number| {
                    !number.is_empty() && number.bytes().all(|byte| byte.is_ascii_digit())
                })
            });
        let ours = shard
            || name == super::STATS_NAME
            || name == SETTINGS_NAME
            || name == super::shard::WORK_FOLDER;
        if !ours {
            continue;
        }
        let path = entry.path();
        let removed = match path.is_dir() {
            true => std::fs::remove_dir_all(&path),
            false => std::fs::remove_file(&path),
        };
        removed.with_context(|| format!("cannot remove {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> DatasetSettings {
        let config = DatasetConfig::new("out");
        DatasetSettings::of(
            &config,
            &[],
            &[TableFile {
                name: "t.csv".into(),
                bytes: 10,
            }],
        )
    }

    #[test]
    fn each_difference_is_named_with_both_values() {
        let folder = settings();
        let mut now = settings();
        now.samples_per_shard = 25;
        now.image_size = 64;
        assert_eq!(
            folder.differences(&now),
            [
                "samples per shard: 10000 in the folder, 25 now",
                "image size: 256 in the folder, 64 now"
            ]
        );
        assert!(folder.differences(&settings()).is_empty());
    }

    #[test]
    fn a_record_reads_back_equal() {
        let folder = tempfile::tempdir().unwrap();
        let now = settings();
        let output = Store::Folder(folder.path().to_path_buf());
        let prepared = prepare(&output, None, now.clone(), false).unwrap();
        assert_eq!(prepared.first_shard, 0);
        let bytes = std::fs::read(folder.path().join(SETTINGS_NAME)).unwrap();
        let read: DatasetSettings = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(read, now);
        // The same again: continued, nothing to say.
        assert_eq!(prepare(&output, None, now, false).unwrap(), prepared);
    }
}
