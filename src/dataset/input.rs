//! The URL table, read as a stream of rows: txt (a URL a line), csv, tsv, jsonl
//! and parquet. Every data row gets the next row number, even one whose URL is
//! missing or invalid, so keys depend only on a row's place in the table. Only
//! one parquet row group (or one line) is held at a time: a table of millions
//! never sits in memory.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

/// How the table is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputFormat {
    Txt,
    Csv,
    Tsv,
    Jsonl,
    Parquet,
}

named!(InputFormat {
    Txt => "txt": "one URL a line",
    Csv => "csv": "comma-separated, with a header line",
    Tsv => "tsv": "tab-separated, with a header line",
    Jsonl => "jsonl": "one JSON object a line",
    Parquet => "parquet": "a parquet table",
});

impl InputFormat {
    /// The format a file name suggests (`urls.tsv`, `part-0.parquet`, `x.json`).
    pub fn guess(path: &Path) -> Option<InputFormat> {
        let extension = path.extension()?.to_str()?.to_ascii_lowercase();
        Some(match extension.as_str() {
            "txt" => InputFormat::Txt,
            "csv" => InputFormat::Csv,
            "tsv" => InputFormat::Tsv,
            "jsonl" | "json" | "ndjson" => InputFormat::Jsonl,
            "parquet" => InputFormat::Parquet,
            _ => return None,
        })
    }
}

/// Which columns matter.
#[derive(Debug, Clone)]
pub struct Columns {
    pub url: String,
    pub caption: Option<String>,
    /// Copied into each sample's metadata.
    pub save: Vec<String>,
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
}

/// The rows of a table, as an iterator; a row the format cannot parse (a broken
/// JSON line) is an error naming its line, and reading stops there, since later
/// row numbers could no longer be trusted.
pub type Rows = Box<dyn Iterator<Item = Result<Row, InputError>> + Send>;

/// Opens `path` as `format`; the columns are checked against the header (csv,
/// tsv, parquet) before any row is read.
pub fn open(path: &Path, format: InputFormat, columns: &Columns) -> Result<Rows, InputError> {
    let io_error = |source| InputError::Io {
        path: path.to_path_buf(),
        source,
    };
    let label = path.display().to_string();
    match format {
        InputFormat::Txt => {
            let lines = BufReader::new(File::open(path).map_err(io_error)?).lines();
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
                .from_reader(File::open(path).map_err(io_error)?);
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
            let lines = BufReader::new(File::open(path).map_err(io_error)?).lines();
            let columns = columns.clone();
            let mut number = 0;
            Ok(Box::new(lines.enumerate().filter_map(
                move |(index, line)| {
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
                },
            )))
        }
        InputFormat::Parquet => parquet_rows(path, columns),
    }
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

fn parquet_rows(path: &Path, columns: &Columns) -> Result<Rows, InputError> {
    use parquet::file::reader::{FileReader, SerializedFileReader};

    let file = File::open(path).map_err(|source| InputError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let bad = |error: parquet::errors::ParquetError| InputError::Bad {
        origin: path.display().to_string(),
        message: error.to_string(),
    };
    let reader = SerializedFileReader::new(file).map_err(bad)?;
    let schema = reader.metadata().file_metadata().schema_descr_ptr();
    let names: Vec<String> = schema
        .columns()
        .iter()
        .map(|column| column.name().to_string())
        .collect();
    let wanted = std::iter::once(&columns.url)
        .chain(columns.caption.as_ref())
        .chain(&columns.save);
    for column in wanted {
        if !names.contains(column) {
            return Err(InputError::MissingColumn {
                path: path.to_path_buf(),
                column: column.clone(),
                found: names.join(", "),
            });
        }
    }
    let label = path.display().to_string();
    let columns = columns.clone();
    // The row iterator reads one row group at a time.
    let rows = parquet::record::reader::RowIter::from_file_into(Box::new(reader));
    Ok(Box::new(rows.enumerate().map(move |(index, row)| {
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
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(name: &str, text: &str, columns: &Columns) -> Vec<Row> {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join(name);
        std::fs::write(&path, text).unwrap();
        let format = InputFormat::guess(&path).unwrap();
        open(&path, format, columns)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
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
        let txt = read(
            "u.txt",
            "\u{FEFF}http://a/1\nhttp://a/2\n",
            &Columns::default(),
        );
        assert_eq!(txt[0].url, "http://a/1");
        let jsonl = read(
            "t.jsonl",
            "\u{FEFF}{\"url\": \"http://a/x\"}\n",
            &Columns::default(),
        );
        assert_eq!(jsonl[0].url, "http://a/x");
        let csv = read("t.csv", "\u{FEFF}url\nhttp://a/y\n", &Columns::default());
        assert_eq!(csv[0].url, "http://a/y");
    }

    #[test]
    fn a_missing_column_is_named() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("t.csv");
        std::fs::write(&path, "link,text\n").unwrap();
        let error = open(&path, InputFormat::Csv, &Columns::default())
            .err()
            .unwrap();
        assert!(
            error.to_string().contains("no column named \"url\""),
            "{error}"
        );
    }
}
