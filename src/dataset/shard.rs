//! Shards: which samples go in which, their keys, and writing a finished shard.
//!
//! Keys are img2dataset's: `10^d x shard + index`, zero-padded to `d + s`
//! digits, where `d` is the digits an index needs (`ceil(log10(samples per
//! shard))`) and `s` the digits of a shard's name (`--oom-shard-count`, 5 by
//! default); so with 10,000 per shard, row 10,012 is `000010012`, and shard
//! names are `00001`.
//!
//! A shard is written from its spool in key order, each file under a temporary
//! name in the work folder, then moved to the output's store (renamed into a
//! folder, uploaded to a bucket prefix): the data (`00000.tar`, the `00000/`
//! folder, or the `00000.parquet` that holds the images), the metadata
//! `00000.parquet`, and last `00000_stats.json`, whose presence marks the
//! shard complete. Tar members have fixed times, owners and modes, and parquet files
//! carry no timestamps, so a shard's bytes depend only on its samples.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::fs::store::Store;

use serde::{Deserialize, Serialize};

use super::column::ColumnType;
use super::sample::{Fields, Sample, Status, unspool};
use crate::fs::spool::Spool;
use crate::image::resize::EncodeFormat;

/// The work folder inside the output folder (for a bucket, inside its local
/// cache folder): the shards' spools, shards being written, downloads of
/// worker processes.
pub const WORK_FOLDER: &str = ".grab-dataset";

/// Digits of a shard's name by default, as img2dataset's default `oom_shard_count`.
pub const SHARD_DIGITS: usize = 5;

/// How shards are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Files,
    Webdataset,
    Parquet,
}

named!(OutputFormat {
    Files => "files": "a folder per shard: KEY.jpg, KEY.json, KEY.txt",
    Webdataset => "webdataset": "a tar per shard holding KEY.jpg, KEY.json, KEY.txt",
    Parquet => "parquet": "a parquet file per shard with the image bytes in a column",
});

/// Which row goes in which shard, under which key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keys {
    pub samples_per_shard: u64,
    index_digits: u32,
    /// Digits of a shard's name (img2dataset's `oom_shard_count`).
    pub shard_digits: usize,
}

impl Keys {
    /// Keys for `samples_per_shard`, shard names of `shard_digits` digits.
    pub fn new(samples_per_shard: u64, shard_digits: usize) -> Keys {
        let samples_per_shard = samples_per_shard.max(1);
        // ceil(log10(n)), in integers.
        let mut index_digits = 0;
        while 10u64.pow(index_digits) < samples_per_shard {
            index_digits += 1;
        }
        Keys {
            samples_per_shard,
            index_digits,
            shard_digits: shard_digits.max(1),
        }
    }

    pub fn shard_of(&self, row: u64) -> u64 {
        row / self.samples_per_shard
    }

    pub fn key(&self, row: u64) -> String {
        let (shard, index) = (row / self.samples_per_shard, row % self.samples_per_shard);
        let width = self.index_digits as usize + self.shard_digits;
        format!("{:0width$}", 10u64.pow(self.index_digits) * shard + index)
    }

    /// The shard a key of these keys belongs to.
    pub fn shard_of_key(&self, key: &str) -> Option<u64> {
        let number: u64 = key.parse().ok()?;
        Some(number / 10u64.pow(self.index_digits))
    }

    /// A shard's name: its number in `shard_digits` digits (more when it needs them).
    pub fn shard_name(&self, shard: u64) -> String {
        format!("{shard:0width$}", width = self.shard_digits)
    }

    /// The row a key of these keys was made from.
    pub fn row_of_key(&self, key: &str) -> Option<u64> {
        let number: u64 = key.parse().ok()?;
        let scale = 10u64.pow(self.index_digits);
        Some(number / scale * self.samples_per_shard + number % scale)
    }
}

/// A shard's name in the default digits, for labels outside a run.
pub fn shard_name(shard: u64) -> String {
    format!("{shard:0SHARD_DIGITS$}")
}

/// Counts of one shard or of a whole run. The fields after img2dataset's
/// four counts default to none, so a folder img2dataset built (whose stats
/// have only those) can be continued and summed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub count: u64,
    pub successes: u64,
    pub failed_to_download: u64,
    pub failed_to_resize: u64,
    #[serde(default)]
    pub opted_out: u64,
    /// Failures by reason (`HTTP 404 Not Found`, `cannot decode`...).
    #[serde(default)]
    pub failures: BTreeMap<String, u64>,
    /// Summed over the samples this shard's run fetched (not those reused).
    #[serde(default)]
    pub download_seconds: f64,
    #[serde(default)]
    pub process_seconds: f64,
}

impl Stats {
    pub fn add_sample(&mut self, sample: &Sample) {
        self.count += 1;
        match sample.status {
            Status::Success => self.successes += 1,
            Status::FailedToDownload => self.failed_to_download += 1,
            Status::FailedToResize => self.failed_to_resize += 1,
            Status::OptedOut => self.opted_out += 1,
        }
        if let Some(reason) = &sample.reason {
            *self.failures.entry(reason.clone()).or_default() += 1;
        }
        self.download_seconds += sample.download_seconds;
        self.process_seconds += sample.process_seconds;
    }

    pub fn add(&mut self, other: &Stats) {
        self.count += other.count;
        self.successes += other.successes;
        self.failed_to_download += other.failed_to_download;
        self.failed_to_resize += other.failed_to_resize;
        self.opted_out += other.opted_out;
        for (reason, count) in &other.failures {
            *self.failures.entry(reason.clone()).or_default() += count;
        }
        self.download_seconds += other.download_seconds;
        self.process_seconds += other.process_seconds;
    }
}

/// The stats of every complete shard in `output`, whichever run or worker
/// wrote it (every `NNNNN_stats.json`), summed, and how many shards they are.
pub fn folder_stats(output: &Store) -> anyhow::Result<(Stats, u64)> {
    sum_stats(output, &stats_names(output)?)
}

/// The shard stats `names` in `output`, summed, and how many they are.
pub fn sum_stats(output: &Store, names: &[String]) -> anyhow::Result<(Stats, u64)> {
    use anyhow::Context as _;
    let mut total = Stats::default();
    let mut shards = 0;
    for name in names {
        let described = output.describe(name);
        let bytes = output
            .read(name)
            .with_context(|| format!("cannot read {described}"))?
            .with_context(|| format!("{described} went away while read"))?;
        let stats: Stats = serde_json::from_slice(&bytes)
            .with_context(|| format!("{described} is not a shard's stats"))?;
        total.add(&stats);
        shards += 1;
    }
    Ok((total, shards))
}

/// The names of every complete shard's stats in `output`, sorted.
pub fn stats_names(output: &Store) -> anyhow::Result<Vec<String>> {
    use anyhow::Context as _;
    let names = output
        .names()
        .with_context(|| format!("cannot list {output}"))?;
    Ok(names
        .into_iter()
        .filter(|name| {
            name.strip_suffix("_stats.json").is_some_and(|number| {
                // Any number of digits: `--oom-shard-count` chooses them.
                !number.is_empty() && number.bytes().all(|byte| byte.is_ascii_digit())
            })
        })
        .collect())
}

/// Where a run's files go.
#[derive(Debug, Clone)]
pub struct Layout {
    /// Where shards and their stats go: a folder or a bucket prefix.
    pub output: Store,
    /// The local work folder ([`WORK_FOLDER`] in the output folder, or in a
    /// bucket's cache folder).
    pub work: PathBuf,
    pub output_format: OutputFormat,
    pub encode_format: EncodeFormat,
    pub keys: Keys,
    /// The `--save-cols` names (and `--bbox-col`'s), the metadata's extra
    /// columns, with the types the table declares (or that its values will tell).
    pub saved_columns: Vec<(String, ColumnType)>,
    /// The hash and EXIF fields.
    pub fields: Fields,
    /// A caption column was given: every saved image gets its `KEY.txt`,
    /// empty where the caption is null, as img2dataset writes it (so a
    /// loader that pairs images with texts finds every pair).
    pub captions: bool,
}

impl Layout {
    pub fn work(&self) -> PathBuf {
        self.work.clone()
    }

    /// The folder of shard `shard`'s spool: its finished samples, one
    /// record each, in a log ([`crate::fs::spool`]).
    pub fn spool_folder(&self, shard: u64) -> PathBuf {
        self.work().join("spool").join(self.keys.shard_name(shard))
    }

    /// The file whose presence says the shard is complete.
    pub fn stats_name(&self, shard: u64) -> String {
        format!("{}_stats.json", self.keys.shard_name(shard))
    }

    /// Whether the shard's stats are in the output. A bucket that cannot be
    /// asked counts as no: the shard is built again, to the same bytes, and
    /// its upload says what is wrong with the bucket.
    pub fn is_complete(&self, shard: u64) -> bool {
        self.output.exists(&self.stats_name(shard)).unwrap_or(false)
    }

    /// A complete shard's stats, as its file says.
    pub fn read_stats(&self, shard: u64) -> io::Result<Stats> {
        let name = self.stats_name(shard);
        let described = self.output.describe(&name);
        let bytes = self.output.read(&name)?.ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, format!("{described}: not found"))
        })?;
        serde_json::from_slice(&bytes).map_err(|error| {
            io::Error::new(io::ErrorKind::InvalidData, format!("{described}: {error}"))
        })
    }

    /// Writes shard `shard` of `count` samples from its spool, in key order,
    /// reading one record at a time (the caller removes the spool once the
    /// shard is in place). Errors name the path they were about.
    pub fn write_shard(&self, shard: u64, count: u64, spool: &Spool) -> anyhow::Result<Stats> {
        let first = shard * self.keys.samples_per_shard;
        let load = |index: u64| self.unspool_row(spool, first + index);
        // Types not declared by the table come from the shard's values.
        let saved = match self.saved_columns.iter().any(|(_, kind)| kind.inferred()) {
            false => self.saved_columns.clone(),
            true => {
                let samples = (0..count)
                    .map(|index| load(index).map(|(sample, _)| sample))
                    .collect::<io::Result<Vec<_>>>()?;
                self.resolve(&samples)
            }
        };
        self.build(shard, count, &saved, load, Stats::default())
    }

    /// The saved columns' types for these samples.
    pub fn resolve(&self, samples: &[Sample]) -> Vec<(String, ColumnType)> {
        self.saved_columns
            .iter()
            .enumerate()
            .map(|(position, (name, kind))| {
                let values = samples
                    .iter()
                    .filter_map(|sample| sample.saved.get(position).map(|(_, value)| value));
                (name.clone(), kind.resolve(values))
            })
            .collect()
    }

    /// The spooled sample of `row`; an error names its key and its log.
    pub fn unspool_row(&self, spool: &Spool, row: u64) -> io::Result<(Sample, Vec<u8>)> {
        unspool(spool, row).map_err(|error| {
            io::Error::new(
                error.kind(),
                format!(
                    "cannot read the spooled sample {}: {error}",
                    self.keys.key(row)
                ),
            )
        })
    }

    /// Writes shard `shard` of `count` samples, the `index`th given by
    /// `load` (called once each, in order), with its saved columns of types
    /// `saved`: each file under a temporary name, then renamed into place,
    /// the stats last. `base` is added to the samples' stats (time an earlier
    /// run spent on the shard).
    pub fn build(
        &self,
        shard: u64,
        count: u64,
        saved: &[(String, ColumnType)],
        mut load: impl FnMut(u64) -> io::Result<(Sample, Vec<u8>)>,
        base: Stats,
    ) -> anyhow::Result<Stats> {
        use anyhow::Context as _;
        let name = self.keys.shard_name(shard);
        let building = self.work().join("building");
        fs::create_dir_all(&building)
            .with_context(|| format!("cannot create {}", building.display()))?;
        // Each sample's saved values as its column's type holds them, in
        // its JSON as in the table.
        let mut load = move |index: u64| {
            load(index).map(|(mut sample, image)| {
                for ((_, value), (_, kind)) in sample.saved.iter_mut().zip(saved) {
                    *value = kind.convert(value);
                }
                (sample, image)
            })
        };
        let extension = self.encode_format.extension();
        // One sample in memory at a time (a row group of them for parquet);
        // the metadata kept for the shard's table is small.
        let mut kept = Vec::with_capacity(count as usize);
        let mut stats = base;
        // Data first, then metadata, then the stats that mark the shard done.
        let mut moves: Vec<(PathBuf, String)> = Vec::new();
        let data = match self.output_format {
            OutputFormat::Webdataset => Some(building.join(format!("{name}.tar"))),
            OutputFormat::Files => Some(building.join(&name)),
            OutputFormat::Parquet => None,
        };
        if let Some(data) = &data {
            let mut sink = match self.output_format {
                OutputFormat::Webdataset => Members::tar(data),
                _ => Members::folder(data),
            }
            .with_context(|| format!("cannot write {}", data.display()))?;
            for index in 0..count {
                let (sample, image) = load(index)?;
                if sample.status == Status::Success {
                    sink.sample(&sample, &image, extension, self)
                        .with_context(|| format!("cannot write {}", data.display()))?;
                }
                stats.add_sample(&sample);
                kept.push(sample);
            }
            sink.finish()
                .with_context(|| format!("cannot write {}", data.display()))?;
            let name = data.file_name().expect("a shard has a name");
            moves.push((data.clone(), name.to_string_lossy().into_owned()));
        }
        let metadata = building.join(format!("{name}.parquet"));
        let written = match self.output_format {
            OutputFormat::Parquet => super::table::write_table(
                &metadata,
                count,
                saved,
                &self.fields,
                Some(extension),
                |index| {
                    let (sample, image) = load(index)?;
                    stats.add_sample(&sample);
                    Ok((sample, image))
                },
            ),
            _ => super::table::write_table(&metadata, count, saved, &self.fields, None, |index| {
                Ok((kept[index as usize].clone(), Vec::new()))
            }),
        };
        written.with_context(|| format!("cannot write {}", metadata.display()))?;
        moves.push((metadata, format!("{name}.parquet")));
        let stats_file = building.join(format!("{name}_stats.json"));
        let mut stats_text = serde_json::to_vec_pretty(&stats).expect("stats serialise to JSON");
        stats_text.push(b'\n');
        fs::write(&stats_file, stats_text)
            .with_context(|| format!("cannot write {}", stats_file.display()))?;
        moves.push((stats_file, self.stats_name(shard)));
        for (from, to) in moves {
            // An earlier run's folder for an unfinished shard is replaced whole.
            self.output.publish(&from, &to).with_context(|| {
                format!(
                    "cannot move {} to {}",
                    from.display(),
                    self.output.describe(&to)
                )
            })?;
        }
        Ok(stats)
    }
}

/// The highest shard number in `directory`: of a complete shard (its
/// `NNNNN_stats.json`) or of one begun (its spool folder); none in a folder
/// no run wrote to.
pub fn highest_shard(directory: &Path) -> io::Result<Option<u64>> {
    let number_of = |name: &str, suffix: &str| -> Option<u64> {
        let number = name.strip_suffix(suffix)?;
        if number.is_empty() || !number.bytes().all(|byte| byte.is_ascii_digit()) {
            return None;
        }
        number.parse().ok()
    };
    let mut highest = None;
    let mut scan = |folder: &Path, suffix: &str| -> io::Result<()> {
        let entries = match fs::read_dir(folder) {
            Ok(entries) => entries,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(error) => return Err(error),
        };
        for entry in entries {
            let name = entry?.file_name();
            if let Some(number) = name.to_str().and_then(|name| number_of(name, suffix)) {
                highest = highest.max(Some(number));
            }
        }
        Ok(())
    };
    scan(directory, "_stats.json")?;
    scan(&directory.join(WORK_FOLDER).join("spool"), "")?;
    Ok(highest)
}

/// Where a shard's members go: a tar, or a folder of files.
enum Members {
    Tar(tar::Builder<BufWriter<File>>),
    Folder(PathBuf),
}

impl Members {
    fn tar(path: &Path) -> io::Result<Members> {
        Ok(Members::Tar(tar::Builder::new(BufWriter::new(
            File::create(path)?,
        ))))
    }

    fn folder(path: &Path) -> io::Result<Members> {
        if path.exists() {
            fs::remove_dir_all(path)?;
        }
        fs::create_dir_all(path)?;
        Ok(Members::Folder(path.to_path_buf()))
    }

    /// `KEY.EXT`, `KEY.txt` when the layout has captions, `KEY.json`.
    fn sample(
        &mut self,
        sample: &Sample,
        image: &[u8],
        extension: &str,
        layout: &Layout,
    ) -> io::Result<()> {
        let key = &sample.key;
        self.member(&format!("{key}.{extension}"), image)?;
        if layout.captions {
            let caption = sample.caption.as_deref().unwrap_or_default();
            self.member(&format!("{key}.txt"), caption.as_bytes())?;
        }
        self.member(
            &format!("{key}.json"),
            &sample.metadata_json(&layout.fields),
        )
    }

    /// A tar member has a fixed time, owner and mode: the same bytes whenever written.
    fn member(&mut self, name: &str, data: &[u8]) -> io::Result<()> {
        match self {
            Members::Tar(builder) => {
                let mut header = tar::Header::new_ustar();
                header.set_size(data.len() as u64);
                header.set_mode(0o644);
                header.set_mtime(0);
                header.set_uid(0);
                header.set_gid(0);
                header.set_entry_type(tar::EntryType::Regular);
                builder.append_data(&mut header, name, data)
            }
            Members::Folder(folder) => fs::write(folder.join(name), data),
        }
    }

    fn finish(self) -> io::Result<()> {
        match self {
            Members::Tar(builder) => builder.into_inner()?.flush(),
            Members::Folder(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_img2datasets() {
        let keys = Keys::new(10_000, SHARD_DIGITS);
        assert_eq!(keys.key(10_012), "000010012");
        assert_eq!(keys.key(0), "000000000");
        assert_eq!(keys.shard_of(10_012), 1);
        assert_eq!(keys.shard_of_key("000010012"), Some(1));
        assert_eq!(Keys::new(10, 5).shard_of_key("000023"), Some(2));
        let small = Keys::new(10, 5);
        assert_eq!(small.key(23), "000023");
        assert_eq!(Keys::new(5000, 5).key(5001), "000010001");
        assert_eq!(Keys::new(1, 5).key(7), "00007");
        assert_eq!(shard_name(3), "00003");
        assert_eq!(keys.shard_name(3), "00003");
        assert_eq!(keys.row_of_key("000010012"), Some(10_012));
        assert_eq!(Keys::new(25, 5).row_of_key("0000301"), Some(76));
    }

    #[test]
    fn oom_shard_count_sets_the_digits_of_shard_names_and_keys() {
        // img2dataset's compute_key with oom_shard_count=8, 10,000 per shard.
        let keys = Keys::new(10_000, 8);
        assert_eq!(keys.shard_name(3), "00000003");
        assert_eq!(keys.key(30_005), "000000030005");
        assert_eq!(keys.shard_of_key("000000030005"), Some(3));
        assert_eq!(keys.row_of_key("000000030005"), Some(30_005));
        // Two digits, and a shard number that needs three: wider, never cut.
        let keys = Keys::new(10, 2);
        assert_eq!(keys.shard_name(123), "123");
        assert_eq!(keys.key(5), "005");
    }
}
