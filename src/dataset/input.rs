//! The URL table, read as a stream of rows: txt (a URL a line), csv, tsv,
//! jsonl, a JSON array of records, and parquet in every codec; text tables
//! also compressed (`.gz`, `.zst`, `.bz2`). The table may be one file, a
//! folder of them or a glob, read in sorted order; as img2dataset does, each
//! file starts a new shard, and shard numbers go on across files. Every data
//! row gets the next row number, even one whose URL is missing or invalid, so
//! keys depend only on a row's place in the table. Only one parquet row group
//! (or one line, or a few elements of a JSON array: `array`) is held at a
//! time: a table of millions never sits in memory.

mod array;

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::column::ColumnType;
use crate::Named;

/// How the table is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputFormat {
    Txt,
    Csv,
    Tsv,
    Jsonl,
    Json,
    Parquet,
}

named!(InputFormat {
    Txt => "txt": "one URL a line",
    Csv => "csv": "comma-separated, with a header line",
    Tsv => "tsv": "tab-separated, with a header line",
    Jsonl => "jsonl": "one JSON object a line",
    Json => "json": "a JSON array of objects (pandas' to_json(orient='records'))",
    Parquet => "parquet": "a parquet table",
});

/// How a text table file is compressed, from its last extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compression {
    None,
    Gzip,
    Zstd,
    Bzip2,
}

impl Compression {
    fn of(path: &Path) -> Compression {
        match extension(path).as_deref() {
            Some("gz") => Compression::Gzip,
            Some("zst") => Compression::Zstd,
            Some("bz2") => Compression::Bzip2,
            _ => Compression::None,
        }
    }

    /// The file's bytes, decompressed as they are read.
    fn reader(self, file: File) -> io::Result<Box<dyn Read + Send>> {
        Ok(match self {
            Compression::None => Box::new(file),
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(file)),
            Compression::Zstd => Box::new(zstd::Decoder::new(file)?),
            Compression::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(file)),
        })
    }
}

fn extension(path: &Path) -> Option<String> {
    Some(path.extension()?.to_str()?.to_ascii_lowercase())
}

impl InputFormat {
    /// The format a file name suggests (`urls.tsv`, `part-0.parquet`,
    /// `x.jsonl.gz`); `.json` is taken for JSON lines, as most datasets write
    /// it, and the reader takes a file that opens with `[` for an array.
    pub fn guess(path: &Path) -> Option<InputFormat> {
        let inner = match Compression::of(path) {
            Compression::None => path.to_path_buf(),
            _ => path.with_extension(""),
        };
        Some(match extension(&inner)?.as_str() {
            "txt" => InputFormat::Txt,
            "csv" => InputFormat::Csv,
            "tsv" => InputFormat::Tsv,
            "jsonl" | "json" | "ndjson" => InputFormat::Jsonl,
            "parquet" => InputFormat::Parquet,
            _ => return None,
        })
    }
}

/// The table files `input` names, in the order they are read: the file
/// itself, a folder's table files (those whose format can be told from
/// their name, with `format` given: every file but hidden ones) sorted by
/// name, or the files a glob pattern matches, sorted.
pub fn table_files(input: &Path, format: Option<InputFormat>) -> Result<Vec<PathBuf>, InputError> {
    let text = input.to_string_lossy();
    let mut files = if input.is_dir() {
        let entries = std::fs::read_dir(input).map_err(|source| InputError::Io {
            path: input.to_path_buf(),
            source,
        })?;
        entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| path.is_file())
            .filter(|path| {
                let hidden = path
                    .file_name()
                    .is_some_and(|name| name.to_string_lossy().starts_with(['.', '_']));
                !hidden && (format.is_some() || InputFormat::guess(path).is_some())
            })
            .collect::<Vec<_>>()
    } else if !input.exists() && text.contains(['*', '?', '[']) {
        let pattern = glob::glob(&text).map_err(|error| InputError::Bad {
            origin: text.to_string(),
            message: format!("not a valid glob pattern: {error}"),
        })?;
        pattern
            .filter_map(Result::ok)
            .filter(|path| path.is_file())
            .collect()
    } else {
        return Ok(vec![input.to_path_buf()]);
    };
    files.sort();
    if files.is_empty() {
        return Err(InputError::Empty {
            path: input.to_path_buf(),
        });
    }
    Ok(files)
}

/// Which columns matter. A queue job carries them under img2dataset's flag
/// names (`url_col`, `caption_col`, `save_cols`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Columns {
    #[serde(rename = "url_col")]
    pub url: String,
    #[serde(rename = "caption_col")]
    pub caption: Option<String>,
    /// Copied into each sample's metadata.
    #[serde(rename = "save_cols")]
    pub save: Vec<String>,
}

/// The metadata fields a sample has of its own, which no saved column may
/// take: a second `width` or `status` beside grab's would make a parquet
/// shard that pyarrow and pandas refuse to read (img2dataset refuses the
/// same names).
pub const RESERVED_COLUMNS: [&str; 13] = [
    "key",
    "caption",
    "url",
    "width",
    "height",
    "original_width",
    "original_height",
    "status",
    "error_message",
    "exif",
    "md5",
    "sha256",
    "sha512",
];

impl Columns {
    /// The columns, or a message naming the saved ones whose names the
    /// metadata keeps for its own fields.
    pub fn checked(self) -> Result<Columns, String> {
        let reserved: Vec<&str> = self
            .save
            .iter()
            .map(String::as_str)
            .filter(|name| RESERVED_COLUMNS.contains(name))
            .collect();
        match reserved.is_empty() {
            true => Ok(self),
            false => Err(format!(
                "--save-cols cannot save {}: each sample's metadata has a field of that name",
                reserved.join(", ")
            )),
        }
    }
}

impl Default for Columns {
    fn default() -> Columns {
        Columns {
            url: "url".to_string(),
            caption: None,
            save: Vec::new(),
        }
    }
}

/// One data row of the table.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The row's place among the data rows, from 0: what its key is made of.
    pub number: u64,
    /// Where it is, for messages: `urls.csv:13`, `part.parquet row 12`.
    pub origin: String,
    /// The URL column's text; empty when the row has none.
    pub url: String,
    pub caption: Option<String>,
    /// The `--save-cols` values, in the order asked for (null when missing).
    pub saved: Vec<(String, Value)>,
}

/// A table that cannot be read at all (a usage error), or stopped being readable.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: no column named {column:?} (columns: {found})")]
    MissingColumn {
        path: PathBuf,
        column: String,
        found: String,
    },
    #[error("{origin}: {message}")]
    Bad { origin: String, message: String },
    #[error(
        "{path}: no table files there (txt, csv, tsv, jsonl, json, parquet, or those of --input-format; .gz, .zst, .bz2 too)"
    )]
    Empty { path: PathBuf },
    #[error("cannot tell the format of {path} from its name: give --input-format {formats}")]
    UnknownFormat { path: PathBuf, formats: String },
}

/// The rows of a table, as an iterator; a row the format cannot parse (a broken
/// JSON line) is an error naming its line, and reading stops there, since later
/// row numbers could no longer be trusted.
pub type Rows = Box<dyn Iterator<Item = Result<Row, InputError>> + Send>;

/// An opened table: its rows, the types its saved columns keep, and the
/// files it is made of (for the settings kept with the output).
pub struct Table {
    pub rows: Rows,
    /// One per `--save-cols` name, in that order.
    pub saved_types: Vec<ColumnType>,
    pub files: Vec<TableFile>,
}

/// One file of a table, as the settings record names it: by its name and
/// size, so that moving the table elsewhere changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TableFile {
    pub name: String,
    pub bytes: u64,
}

/// Opens the table `input` names (a file, a folder of them, a glob; see
/// [`table_files`]), each file as `format` or as its name says. Every file's
/// columns are checked before any row is read; each file after the first
/// starts at the first row of a new shard of `samples_per_shard`. With the
/// rows comes what the table says of itself: its saved columns' types (those
/// of the first file, inferred from the values where the files disagree) and
/// its files.
pub fn open_table(
    input: &Path,
    format: Option<InputFormat>,
    columns: &Columns,
    samples_per_shard: u64,
) -> Result<Table, InputError> {
    let files = table_files(input, format)?;
    let mut formats = Vec::with_capacity(files.len());
    let mut saved_types: Option<Vec<ColumnType>> = None;
    let mut described = Vec::with_capacity(files.len());
    for file in &files {
        let format = format.or_else(|| InputFormat::guess(file)).ok_or_else(|| {
            InputError::UnknownFormat {
                path: file.clone(),
                formats: InputFormat::ALL
                    .iter()
                    .map(|format| format.name())
                    .collect::<Vec<_>>()
                    .join("|"),
            }
        })?;
        let bytes = std::fs::metadata(file)
            .map_err(|source| InputError::Io {
                path: file.clone(),
                source,
            })?
            .len();
        described.push(TableFile {
            name: file.file_name().map_or_else(
                || file.display().to_string(),
                |name| name.to_string_lossy().into_owned(),
            ),
            bytes,
        });
        let (rows, types) = open_file(file, format, columns)?;
        saved_types = Some(match saved_types {
            None => types,
            Some(earlier) if earlier == types => earlier,
            // Files that disagree: the values say.
            Some(_) => vec![ColumnType::FromJson; columns.save.len()],
        });
        if files.len() == 1 {
            return Ok(Table {
                rows,
                saved_types: saved_types.unwrap_or_default(),
                files: described,
            });
        }
        // Opened for its columns only; read when its turn comes.
        drop(rows);
        formats.push(format);
    }
    let columns = columns.clone();
    let samples_per_shard = samples_per_shard.max(1);
    let mut next = 0u64;
    let mut tables = files.into_iter().zip(formats);
    let mut current: Option<Rows> = None;
    let mut first_of_file = 0u64;
    let rows: Rows = Box::new(std::iter::from_fn(move || {
        loop {
            if let Some(rows) = current.as_mut() {
                match rows.next() {
                    Some(Ok(mut row)) => {
                        row.number += first_of_file;
                        next = row.number + 1;
                        return Some(Ok(row));
                    }
                    Some(Err(error)) => return Some(Err(error)),
                    None => current = None,
                }
            }
            let (file, format) = tables.next()?;
            first_of_file = next.div_ceil(samples_per_shard) * samples_per_shard;
            match open_file(&file, format, &columns) {
                Ok((rows, _)) => current = Some(rows),
                Err(error) => return Some(Err(error)),
            }
        }
    }));
    Ok(Table {
        rows,
        saved_types: saved_types.unwrap_or_default(),
        files: described,
    })
}

/// Opens one table file as `format`, with its saved columns' types; the
/// columns are checked against its header (csv, tsv, parquet) or first
/// record (jsonl, json) before any row is read.
fn open_file(
    path: &Path,
    format: InputFormat,
    columns: &Columns,
) -> Result<(Rows, Vec<ColumnType>), InputError> {
    // Only parquet declares its types; the others' come from their values.
    let kind = match format {
        InputFormat::Parquet => return parquet_rows(path, columns),
        InputFormat::Jsonl | InputFormat::Json => ColumnType::FromJson,
        InputFormat::Txt | InputFormat::Csv | InputFormat::Tsv => ColumnType::FromText,
    };
    let rows = open_text(path, format, columns)?;
    Ok((rows, vec![kind; columns.save.len()]))
}

/// A table file's rows, in any format.
fn open_text(path: &Path, format: InputFormat, columns: &Columns) -> Result<Rows, InputError> {
    let io_error = |source| InputError::Io {
        path: path.to_path_buf(),
        source,
    };
    let label = path.display().to_string();
    let text = || -> Result<Box<dyn Read + Send>, InputError> {
        let file = File::open(path).map_err(io_error)?;
        Compression::of(path).reader(file).map_err(io_error)
    };
    match format {
        InputFormat::Txt => {
            let lines = BufReader::new(text()?).lines();
            let mut number = 0;
            Ok(Box::new(lines.enumerate().filter_map(
                move |(index, line)| {
                    let origin = format!("{label}:{}", index + 1);
                    let line = match line {
                        Ok(line) => line,
                        Err(error) => {
                            return Some(Err(InputError::Bad {
                                origin,
                                message: error.to_string(),
                            }));
                        }
                    };
                    let url = without_byte_order_mark(&line).trim();
                    if url.is_empty() {
                        return None;
                    }
                    number += 1;
                    Some(Ok(Row {
                        number: number - 1,
                        origin,
                        url: url.to_string(),
                        caption: None,
                        saved: Vec::new(),
                    }))
                },
            )))
        }
        InputFormat::Csv | InputFormat::Tsv => {
            let delimiter = if format == InputFormat::Csv {
                b','
            } else {
                b'\t'
            };
            let mut reader = csv::ReaderBuilder::new()
                .delimiter(delimiter)
                .flexible(true)
                .from_reader(text()?);
            let header: Vec<String> = reader
                .headers()
                .map_err(|error| InputError::Bad {
                    origin: format!("{label}:1"),
                    message: error.to_string(),
                })?
                .iter()
                .map(str::to_string)
                .collect();
            let position = |column: &str| {
                header
                    .iter()
                    .position(|name| name == column)
                    .ok_or_else(|| InputError::MissingColumn {
                        path: path.to_path_buf(),
                        column: column.to_string(),
                        found: header.join(", "),
                    })
            };
            let url = position(&columns.url)?;
            let caption = columns.caption.as_deref().map(position).transpose()?;
            let saved = columns
                .save
                .iter()
                .map(|column| Ok((column.clone(), position(column)?)))
                .collect::<Result<Vec<_>, InputError>>()?;
            let mut number = 0;
            Ok(Box::new(reader.into_records().map(move |record| {
                let record = record.map_err(|error| InputError::Bad {
                    origin: format!(
                        "{label}:{}",
                        error.position().map_or(0, |position| position.line())
                    ),
                    message: error.to_string(),
                })?;
                let line = record.position().map_or(0, |position| position.line());
                let field = |index: usize| record.get(index).map(str::to_string);
                number += 1;
                Ok(Row {
                    number: number - 1,
                    origin: format!("{label}:{line}"),
                    url: field(url).unwrap_or_default().trim().to_string(),
                    caption: caption.and_then(field),
                    saved: saved
                        .iter()
                        .map(|(name, index)| {
                            (
                                name.clone(),
                                field(*index).map_or(Value::Null, Value::String),
                            )
                        })
                        .collect(),
                })
            })))
        }
        InputFormat::Jsonl => {
            let mut lines = BufReader::new(text()?).lines().enumerate().peekable();
            // The first record names the columns there are, as a header would.
            while let Some((_, Ok(line))) = lines.peek() {
                let line = without_byte_order_mark(line);
                if line.trim_start().starts_with('[') {
                    // One JSON array (pandas' `to_json(orient='records')`),
                    // whatever the file's name said.
                    return json_array_rows(text()?, path, columns);
                }
                if !line.trim().is_empty() {
                    if let Ok(first) = serde_json::from_str::<Map<String, Value>>(line) {
                        check_columns(path, first.keys(), columns)?;
                    }
                    break;
                }
                lines.next();
            }
            let columns = columns.clone();
            let mut number = 0;
            Ok(Box::new(lines.filter_map(move |(index, line)| {
                let origin = format!("{label}:{}", index + 1);
                let parsed = line.map_err(|error| error.to_string()).and_then(|line| {
                    let line = without_byte_order_mark(&line);
                    if line.trim().is_empty() {
                        return Ok(None);
                    }
                    serde_json::from_str::<Map<String, Value>>(line)
                        .map(Some)
                        .map_err(|error| format!("not a JSON object: {error}"))
                });
                let object = match parsed {
                    Ok(Some(object)) => object,
                    Ok(None) => return None,
                    Err(message) => return Some(Err(InputError::Bad { origin, message })),
                };
                number += 1;
                Some(Ok(row_of_object(number - 1, origin, &object, &columns)))
            })))
        }
        InputFormat::Json => json_array_rows(text()?, path, columns),
        InputFormat::Parquet => Ok(parquet_rows(path, columns)?.0),
    }
}

/// A JSON array's rows, a record at a time (`array`); its first record
/// names the columns there are, as a JSON line's does. What is not an array
/// at all is an error before any row; a bad element ends the rows there.
fn json_array_rows(
    reader: Box<dyn Read + Send>,
    path: &Path,
    columns: &Columns,
) -> Result<Rows, InputError> {
    let label = path.display().to_string();
    let mut reader = BufReader::new(reader);
    // An editor's byte-order mark before the opening bracket.
    if reader
        .fill_buf()
        .is_ok_and(|start| start.starts_with("\u{FEFF}".as_bytes()))
    {
        reader.consume("\u{FEFF}".len());
    }
    let records = array::records(reader).map_err(|source| InputError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut records = records.peekable();
    // No array there at all: an error before any row, as for a bad header.
    if let Some(Err(misread)) =
        records.next_if(|record| matches!(record, Err(array::Misread { record: None, .. })))
    {
        return Err(misread_error(&label, misread));
    }
    if let Some(Ok(first)) = records.peek() {
        check_columns(path, first.keys(), columns)?;
    }
    let columns = columns.clone();
    Ok(Box::new(records.zip(0u64..).map(move |(record, index)| {
        let object = record.map_err(|misread| misread_error(&label, misread))?;
        let origin = format!("{label} record {}", index + 1);
        Ok(row_of_object(index, origin, &object, &columns))
    })))
}

/// Where a JSON array stopped being readable: the record, or the array.
fn misread_error(label: &str, misread: array::Misread) -> InputError {
    match misread.record {
        Some(record) => InputError::Bad {
            origin: format!("{label} record {record}"),
            message: format!("not a JSON object: {}", misread.error),
        },
        None => InputError::Bad {
            origin: label.to_string(),
            message: format!("not a JSON array of objects: {}", misread.error),
        },
    }
}

/// Every column asked for must be among `found`: a usage error naming the
/// ones there are, the same for every format.
fn check_columns<'a>(
    path: &Path,
    found: impl IntoIterator<Item = &'a String>,
    columns: &Columns,
) -> Result<(), InputError> {
    let found: Vec<&String> = found.into_iter().collect();
    let wanted = std::iter::once(&columns.url)
        .chain(columns.caption.as_ref())
        .chain(&columns.save);
    for column in wanted {
        if !found.contains(&column) {
            return Err(InputError::MissingColumn {
                path: path.to_path_buf(),
                column: column.clone(),
                found: found
                    .iter()
                    .map(|name| name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
    }
    Ok(())
}

/// A line without the byte-order mark an editor may put at a file's start
/// (or `cat` in the middle of joined files). csv's reader drops it itself.
fn without_byte_order_mark(line: &str) -> &str {
    line.strip_prefix('\u{FEFF}').unwrap_or(line)
}

/// Text for a cell: strings as they are, other values as JSON.
fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(text) => Some(text.clone()),
        other => Some(other.to_string()),
    }
}

fn row_of_object(
    number: u64,
    origin: String,
    object: &Map<String, Value>,
    columns: &Columns,
) -> Row {
    let cell = |name: &str| object.get(name).and_then(text_of);
    Row {
        number,
        origin,
        url: cell(&columns.url).unwrap_or_default().trim().to_string(),
        caption: columns.caption.as_deref().and_then(cell),
        saved: columns
            .save
            .iter()
            .map(|name| {
                (
                    name.clone(),
                    object.get(name).cloned().unwrap_or(Value::Null),
                )
            })
            .collect(),
    }
}

fn parquet_rows(path: &Path, columns: &Columns) -> Result<(Rows, Vec<ColumnType>), InputError> {
    use parquet::file::reader::SerializedFileReader;

    let file = File::open(path).map_err(|source| InputError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let bad = |error: parquet::errors::ParquetError| InputError::Bad {
        origin: path.display().to_string(),
        message: error.to_string(),
    };
    let reader = SerializedFileReader::new(file).map_err(bad)?;
    let fields = super::column::ParquetColumns::of(&reader);
    check_columns(path, &fields.names(), columns)?;
    let types = columns
        .save
        .iter()
        .map(|name| fields.type_of(name).unwrap_or(ColumnType::FromJson))
        .collect();
    let label = path.display().to_string();
    let columns = columns.clone();
    // The row iterator reads one row group at a time.
    let rows = parquet::record::reader::RowIter::from_file_into(Box::new(reader));
    let rows: Rows = Box::new(rows.enumerate().map(move |(index, row)| {
        let origin = format!("{label} row {}", index + 1);
        let row = row.map_err(|error| InputError::Bad {
            origin: origin.clone(),
            message: error.to_string(),
        })?;
        let object = match row.to_json_value() {
            Value::Object(object) => object,
            _ => Map::new(),
        };
        Ok(row_of_object(index as u64, origin, &object, &columns))
    }));
    Ok((rows, types))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    fn read(name: &str, text: &str, columns: &Columns) -> Vec<Row> {
        read_as(name, text.as_bytes(), None, columns)
            .into_iter()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// Every row of a table file holding `bytes`, errors too.
    fn read_as(
        name: &str,
        bytes: &[u8],
        format: Option<InputFormat>,
        columns: &Columns,
    ) -> Vec<Result<Row, InputError>> {
        let (_folder, path) = crate::fs::scratch_file(name);
        std::fs::write(&path, bytes).unwrap();
        open_table(&path, format, columns, 10)
            .unwrap()
            .rows
            .collect()
    }

    /// A row but for its origin, which names the format's own places (a
    /// line, a record): number, URL, caption, saved values.
    type Contents<'a> = (u64, &'a str, Option<&'a str>, &'a [(String, Value)]);

    fn contents(rows: &[Row]) -> Vec<Contents<'_>> {
        rows.iter()
            .map(|row| {
                (
                    row.number,
                    row.url.as_str(),
                    row.caption.as_deref(),
                    row.saved.as_slice(),
                )
            })
            .collect()
    }

    #[test]
    fn every_text_format_numbers_data_rows_only() {
        let txt = read(
            "u.txt",
            "http://a/1\n\n  http://a/2 \nnot a url\n",
            &Columns::default(),
        );
        let urls: Vec<_> = txt
            .iter()
            .map(|row| (row.number, row.url.as_str()))
            .collect();
        assert_eq!(
            urls,
            [(0, "http://a/1"), (1, "http://a/2"), (2, "not a url")]
        );
        assert!(txt[1].origin.ends_with("u.txt:3"), "{}", txt[1].origin);

        let columns = Columns {
            url: "link".into(),
            caption: Some("text".into()),
            save: vec!["id".into()],
        };
        let csv = read(
            "t.csv",
            "id,link,text\n7,http://a/x,\"a, cat\"\n8,http://a/y,dog\n",
            &columns,
        );
        assert_eq!(csv[0].caption.as_deref(), Some("a, cat"));
        assert_eq!(
            csv[1].saved,
            [("id".to_string(), Value::String("8".into()))]
        );
        let tsv = read("t.tsv", "link\ttext\tid\nhttp://a/x\tcat\t7\n", &columns);
        assert_eq!(
            (tsv[0].url.as_str(), tsv[0].caption.as_deref()),
            ("http://a/x", Some("cat"))
        );
        let jsonl = read(
            "t.jsonl",
            "{\"link\": \"http://a/x\", \"text\": \"cat\", \"id\": 7}\n\n{\"text\": \"no url\"}\n",
            &columns,
        );
        assert_eq!(jsonl.len(), 2);
        assert_eq!(jsonl[0].saved, [("id".to_string(), Value::from(7))]);
        assert_eq!((jsonl[1].number, jsonl[1].url.as_str()), (1, ""));
    }

    #[test]
    fn a_byte_order_mark_is_not_part_of_the_first_row() {
        for (name, text, first_url) in [
            ("u.txt", "\u{FEFF}http://a/1\nhttp://a/2\n", "http://a/1"),
            (
                "t.jsonl",
                "\u{FEFF}{\"url\": \"http://a/x\"}\n",
                "http://a/x",
            ),
            ("t.csv", "\u{FEFF}url\nhttp://a/y\n", "http://a/y"),
        ] {
            let rows = read(name, text, &Columns::default());
            assert_eq!(rows[0].url, first_url, "{name}");
        }
        let array = read_as(
            "t.json",
            "\u{FEFF}[{\"url\": \"http://a/z\"}]".as_bytes(),
            Some(InputFormat::Json),
            &Columns::default(),
        );
        assert_eq!(array[0].as_ref().unwrap().url, "http://a/z");
    }

    #[test]
    fn a_json_array_gives_the_rows_its_records_give_as_json_lines() {
        use std::io::Write as _;
        let columns = Columns {
            url: "link".into(),
            caption: Some("text".into()),
            save: vec!["id".into(), "score".into()],
        };
        let records = [
            r#"{"link": "http://a/x", "text": "cat", "id": 7, "score": [0.5, 1]}"#,
            r#"{"text": "no url", "id": "8"}"#,
            r#"{"link": " http://a/y ", "text": null, "id": {"n": 9}, "score": 2}"#,
        ];
        let lines = read("t.jsonl", &(records.join("\n") + "\n"), &columns);
        // As pandas writes it, and pretty-printed over several lines.
        let compact = format!("[{}]", records.join(","));
        let pretty = format!("[\n  {}\n]\n", records.join(",\n  "));
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), Default::default());
        gzip.write_all(pretty.as_bytes()).unwrap();
        for (name, bytes) in [
            ("t.json", compact.into_bytes()),
            ("t.json", pretty.into_bytes()),
            ("t.json.gz", gzip.finish().unwrap()),
        ] {
            let rows: Vec<Row> = read_as(name, &bytes, Some(InputFormat::Json), &columns)
                .into_iter()
                .collect::<Result<_, _>>()
                .unwrap();
            assert_eq!(contents(&rows), contents(&lines), "{name}");
            assert!(rows[2].origin.ends_with("record 3"), "{}", rows[2].origin);
        }
        let empty = read_as("t.json", b" [ ] ", Some(InputFormat::Json), &columns);
        assert!(empty.is_empty());
    }

    #[test]
    fn a_bad_element_of_a_json_array_ends_its_rows_there() {
        let text = "[\n{\"url\": \"http://a/1\"},\n{\"url\": \"http://a/2\"},\n{\"url\": \"http://a/3\" \"id\": 3},\n{\"url\": \"http://a/4\"}\n]";
        let rows = read_as(
            "t.json",
            text.as_bytes(),
            Some(InputFormat::Json),
            &Columns::default(),
        );
        assert_eq!(rows.len(), 3, "{rows:?}");
        let urls: Vec<&str> = rows[..2]
            .iter()
            .map(|row| row.as_ref().unwrap().url.as_str())
            .collect();
        assert_eq!(urls, ["http://a/1", "http://a/2"]);
        let error = rows[2].as_ref().unwrap_err().to_string();
        assert!(
            error.contains("t.json record 3: not a JSON object: ")
                && error.ends_with("at line 4 column 22"),
            "{error}"
        );
        // What is no array at all fails before any row.
        let (_folder, path) = crate::fs::scratch_file("t.json");
        std::fs::write(&path, r#"{"url": "http://a/1"}"#).unwrap();
        let error = open_table(&path, Some(InputFormat::Json), &Columns::default(), 10)
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("not a JSON array of objects"), "{error}");
    }

    /// A JSON array of `count` records of one length, made as it is read,
    /// counting the bytes read so far.
    struct GeneratedArray {
        count: u64,
        made: u64,
        pending: Vec<u8>,
        at: usize,
        read: Arc<AtomicU64>,
    }

    impl GeneratedArray {
        const RECORD: usize = r#"{"url": "http://a/000000", "id": 0}"#.len() + 1;

        fn new(count: u64) -> (GeneratedArray, Arc<AtomicU64>) {
            let read = Arc::new(AtomicU64::new(0));
            let array = GeneratedArray {
                count,
                made: 0,
                pending: b"[".to_vec(),
                at: 0,
                read: read.clone(),
            };
            (array, read)
        }

        /// The bytes up to the end of record `number` (from 1).
        fn through(number: u64) -> u64 {
            1 + number * Self::RECORD as u64
        }
    }

    impl Read for GeneratedArray {
        fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
            use std::io::Write as _;
            if self.at == self.pending.len() {
                self.pending.clear();
                self.at = 0;
                if self.made < self.count {
                    let n = self.made;
                    let separator = if n + 1 < self.count { ',' } else { ']' };
                    write!(
                        self.pending,
                        "{{\"url\": \"http://a/{n:06}\", \"id\": {}}}{separator}",
                        n % 10
                    )?;
                    assert_eq!(self.pending.len(), Self::RECORD);
                    self.made += 1;
                } else {
                    return Ok(0);
                }
            }
            let length = buffer.len().min(self.pending.len() - self.at);
            buffer[..length].copy_from_slice(&self.pending[self.at..self.at + length]);
            self.at += length;
            self.read.fetch_add(length as u64, Ordering::SeqCst);
            Ok(length)
        }
    }

    #[test]
    fn a_json_array_is_read_a_few_records_ahead_of_its_rows() {
        const COUNT: u64 = 300_000;
        // Well under the array's 10 MiB: a buffer and the records parsed ahead.
        const AHEAD: u64 = 256 * 1024;
        let path = Path::new("big.json");
        let (array, read) = GeneratedArray::new(COUNT);
        let mut rows = json_array_rows(Box::new(array), path, &Columns::default()).unwrap();
        let first = rows.next().unwrap().unwrap();
        assert_eq!((first.number, first.url.as_str()), (0, "http://a/000000"));
        let at_first = read.load(Ordering::SeqCst);
        assert!(at_first < AHEAD, "{at_first} bytes read for the first row");
        let mut count = 1;
        for row in rows {
            let row = row.unwrap();
            assert_eq!(row.number, count);
            count += 1;
            if count % 50_000 == 0 {
                let ahead = read
                    .load(Ordering::SeqCst)
                    .saturating_sub(GeneratedArray::through(count));
                assert!(ahead < AHEAD, "{ahead} bytes ahead at row {count}");
            }
        }
        assert_eq!(count, COUNT);
        assert_eq!(read.load(Ordering::SeqCst), GeneratedArray::through(COUNT));

        // Rows given up on stop the reading.
        let (array, read) = GeneratedArray::new(COUNT);
        let mut rows = json_array_rows(Box::new(array), path, &Columns::default()).unwrap();
        assert!(rows.next().unwrap().is_ok());
        drop(rows);
        let at_drop = read.load(Ordering::SeqCst);
        assert!(
            at_drop < AHEAD,
            "{at_drop} bytes read after the rows were dropped"
        );
    }

    #[test]
    fn a_missing_column_is_named() {
        let (_folder, path) = crate::fs::scratch_file("t.csv");
        std::fs::write(&path, "link,text\n").unwrap();
        let error = open_table(&path, Some(InputFormat::Csv), &Columns::default(), 10)
            .err()
            .unwrap();
        assert!(
            error.to_string().contains("no column named \"url\""),
            "{error}"
        );
    }
}
