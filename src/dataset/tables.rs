//! Where a table is: a local file, folder or glob (read by [`input`]), or
//! one object or a prefix of them in a bucket (`s3://bucket/tables/`,
//! `gs://`, `az://`). A bucket's tables are downloaded whole to a folder of
//! this run's own in the bucket's local cache folder, then read as a local
//! folder is (the same files, sorted by name, each starting a shard); the
//! folder goes when the rows are dropped. Any other `scheme://` is a usage
//! error, never a local path.

use std::path::Path;

use super::input::{self, Columns, InputError, InputFormat, Rows, Table};
use crate::fs::store::{self, Bucket};

/// Opens the table `table` names, local or in a bucket (see the module's
/// note), as [`input::open_table`] does.
pub fn open(
    table: &Path,
    format: Option<InputFormat>,
    columns: &Columns,
    samples_per_shard: u64,
) -> Result<Table, InputError> {
    let Some(text) = table.to_str().filter(|text| store::scheme(text).is_some()) else {
        return input::open_table(table, format, columns, samples_per_shard);
    };
    let bad = |message: String| InputError::Bad {
        origin: text.to_string(),
        message,
    };
    let bucket = Bucket::open(text).map_err(|error| bad(error.reason()))?;
    let cache = bucket.cache_folder();
    std::fs::create_dir_all(&cache).map_err(|source| InputError::Io {
        path: cache.clone(),
        source,
    })?;
    // A folder of this run's own: queue workers on one machine download the
    // same table at once.
    let folder = tempfile::Builder::new()
        .prefix(".tables-")
        .tempdir_in(&cache)
        .map_err(|source| InputError::Io {
            path: cache.clone(),
            source,
        })?;
    let single =
        !text.ends_with('/') && bucket.exists("").map_err(|error| bad(error.to_string()))?;
    let names = match single {
        true => vec![String::new()],
        false => {
            let names = bucket.list("").map_err(|error| bad(error.to_string()))?;
            // What a local folder's listing keeps (see `input::table_files`).
            names
                .into_iter()
                .filter(|name| {
                    let hidden = name.starts_with(['.', '_']);
                    !hidden && (format.is_some() || InputFormat::guess(Path::new(name)).is_some())
                })
                .collect()
        }
    };
    if names.is_empty() {
        return Err(InputError::Empty {
            path: table.to_path_buf(),
        });
    }
    for name in &names {
        let file_name = match name.as_str() {
            "" => text.rsplit('/').next().unwrap_or("table"),
            name => name,
        };
        let local = folder.path().join(file_name);
        bucket
            .download(name, &local)
            .map_err(|error| bad(format!("cannot download it: {error}")))?;
    }
    let local = match single {
        true => folder
            .path()
            .join(text.rsplit('/').next().unwrap_or("table")),
        false => folder.path().to_path_buf(),
    };
    let mut table = input::open_table(&local, format, columns, samples_per_shard)?;
    table.rows = Box::new(Downloaded {
        rows: table.rows,
        _folder: folder,
    });
    Ok(table)
}

/// Rows read from downloaded tables, which stay as long as the rows are read.
struct Downloaded {
    rows: Rows,
    _folder: tempfile::TempDir,
}

impl Iterator for Downloaded {
    type Item = <Rows as Iterator>::Item;

    fn next(&mut self) -> Option<Self::Item> {
        self.rows.next()
    }
}
