//! A shard's parquet file: one row per sample, in key order, with key, url,
//! caption, the saved columns (as text), status, error, sizes, `exif` and the
//! hash (named after its type, as img2dataset names it), and
//! for `--output-format parquet` the image bytes in a column named after the
//! encode format. Written with parquet's own column writers (no arrow: it would
//! add minutes of build for no need here), uncompressed, since the image bytes
//! are compressed already and the rest is small.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use parquet::basic::Compression;
use parquet::basic::{LogicalType, Repetition, Type as Physical};
use parquet::data_type::{ByteArray, ByteArrayType, Int32Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::{ColumnPath, Type};

use super::sample::{Fields, Sample};
use crate::Named;

/// A column's values: optional text, optional integer, or optional bytes.
enum Column {
    Text(Vec<Option<String>>),
    Number(Vec<Option<u32>>),
    Bytes(Vec<Option<Vec<u8>>>),
}

fn text_of(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::Null => None,
        serde_json::Value::String(text) => Some(text.clone()),
        other => Some(other.to_string()),
    }
}

/// Rows per row group: with images in the file, a group's bytes are what a
/// writer holds in memory at once.
pub const ROW_GROUP: u64 = 256;

/// Writes `count` samples to `path`, fetching each with `load` (its metadata and,
/// for an image column, its image), one row group at a time.
pub fn write_table(
    path: &Path,
    count: u64,
    saved_columns: &[String],
    metadata_fields: &Fields,
    image_column: Option<&str>,
    mut load: impl FnMut(u64) -> std::io::Result<(Sample, Vec<u8>)>,
) -> Result<(), TableError> {
    // Snappy, as pyarrow and Spark write by default.
    let mut properties = WriterProperties::builder().set_compression(Compression::SNAPPY);
    if let Some(name) = image_column {
        // A dictionary of distinct images only costs time, and encoded
        // images do not compress: both would cost CPU for nothing.
        properties = properties
            .set_column_dictionary_enabled(ColumnPath::from(name), false)
            .set_column_compression(ColumnPath::from(name), Compression::UNCOMPRESSED);
    }
    let empty = columns_of(&[], saved_columns, metadata_fields, image_column);
    let mut fields = Vec::new();
    for (name, required, column) in &empty {
        let repetition = if *required {
            Repetition::REQUIRED
        } else {
            Repetition::OPTIONAL
        };
        let field = match column {
            Column::Text(_) => Type::primitive_type_builder(name, Physical::BYTE_ARRAY)
                .with_logical_type(Some(LogicalType::String)),
            Column::Number(_) => Type::primitive_type_builder(name, Physical::INT32),
            Column::Bytes(_) => Type::primitive_type_builder(name, Physical::BYTE_ARRAY),
        };
        fields.push(Arc::new(field.with_repetition(repetition).build()?));
    }
    let schema = Arc::new(
        Type::group_type_builder("sample")
            .with_fields(fields)
            .build()?,
    );
    let mut writer =
        SerializedFileWriter::new(File::create(path)?, schema, Arc::new(properties.build()))?;
    let mut first = 0;
    while first < count {
        let last = (first + ROW_GROUP).min(count);
        let samples = (first..last)
            .map(&mut load)
            .collect::<std::io::Result<Vec<_>>>()?;
        write_group(
            &mut writer,
            &columns_of(&samples, saved_columns, metadata_fields, image_column),
        )?;
        first = last;
    }
    writer.close()?;
    Ok(())
}

/// A table that could not be written: its file, or a sample it needed.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error(transparent)]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

type Columns = Vec<(String, bool, Column)>;

/// The columns of `samples`: name, whether required, values.
fn columns_of(
    samples: &[(Sample, Vec<u8>)],
    saved_columns: &[String],
    fields: &Fields,
    image_column: Option<&str>,
) -> Columns {
    let text = |pick: &dyn Fn(&Sample) -> Option<String>| {
        Column::Text(samples.iter().map(|(sample, _)| pick(sample)).collect())
    };
    let number = |pick: &dyn Fn(&Sample) -> Option<u32>| {
        Column::Number(samples.iter().map(|(sample, _)| pick(sample)).collect())
    };
    let mut columns: Columns = vec![
        ("key".into(), true, text(&|sample| Some(sample.key.clone()))),
        ("url".into(), true, text(&|sample| Some(sample.url.clone()))),
        (
            "caption".into(),
            false,
            text(&|sample| sample.caption.clone()),
        ),
    ];
    for (position, name) in saved_columns.iter().enumerate() {
        columns.push((
            name.clone(),
            false,
            text(&|sample| {
                sample
                    .saved
                    .get(position)
                    .and_then(|(_, value)| text_of(value))
            }),
        ));
    }
    columns.extend([
        (
            "status".into(),
            true,
            text(&|sample| Some(sample.status.name().to_string())),
        ),
        (
            "error_message".into(),
            false,
            text(&|sample| sample.error_message.clone()),
        ),
        ("width".into(), false, number(&|sample| sample.width)),
        ("height".into(), false, number(&|sample| sample.height)),
        (
            "original_width".into(),
            false,
            number(&|sample| sample.original_width),
        ),
        (
            "original_height".into(),
            false,
            number(&|sample| sample.original_height),
        ),
    ]);
    if fields.exif {
        columns.push(("exif".into(), false, text(&|sample| sample.exif.clone())));
    }
    if let Some(hash) = fields.hash {
        columns.push((
            hash.name().into(),
            false,
            text(&|sample| sample.hash.clone()),
        ));
    }
    if let Some(name) = image_column {
        columns.push((
            name.to_string(),
            false,
            Column::Bytes(
                samples
                    .iter()
                    .map(|(sample, image)| {
                        (sample.status == super::sample::Status::Success).then(|| image.clone())
                    })
                    .collect(),
            ),
        ));
    }
    columns
}

fn write_group(
    writer: &mut SerializedFileWriter<File>,
    columns: &Columns,
) -> parquet::errors::Result<()> {
    let mut group = writer.next_row_group()?;
    let mut index = 0;
    while let Some(mut writer) = group.next_column()? {
        let (_, required, column) = &columns[index];
        index += 1;
        // Definition levels: 1 where a value is present, 0 where null.
        let levels =
            |present: Vec<bool>| -> Vec<i16> { present.into_iter().map(i16::from).collect() };
        match column {
            Column::Text(values) => {
                let present: Vec<ByteArray> = values
                    .iter()
                    .flatten()
                    .map(|value| ByteArray::from(value.as_str()))
                    .collect();
                let definitions = levels(values.iter().map(Option::is_some).collect());
                writer.typed::<ByteArrayType>().write_batch(
                    &present,
                    (!required).then_some(definitions.as_slice()),
                    None,
                )?;
            }
            Column::Number(values) => {
                let present: Vec<i32> =
                    values.iter().flatten().map(|&value| value as i32).collect();
                let definitions = levels(values.iter().map(Option::is_some).collect());
                writer
                    .typed::<Int32Type>()
                    .write_batch(&present, Some(&definitions), None)?;
            }
            Column::Bytes(values) => {
                let present: Vec<ByteArray> = values
                    .iter()
                    .flatten()
                    .map(|value| ByteArray::from(value.clone()))
                    .collect();
                let definitions = levels(values.iter().map(Option::is_some).collect());
                writer
                    .typed::<ByteArrayType>()
                    .write_batch(&present, Some(&definitions), None)?;
            }
        }
        writer.close()?;
    }
    group.close()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::input::Row;
    use crate::dataset::sample::Status;
    use parquet::file::reader::{FileReader, SerializedFileReader};

    #[test]
    fn rows_span_row_groups_in_order_with_nulls_where_missing() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("t.parquet");
        let count = ROW_GROUP * 2 + 7;
        let row = Row {
            number: 0,
            origin: String::new(),
            url: "http://a/x".into(),
            caption: None,
            saved: vec![("id".into(), serde_json::Value::from(5))],
        };
        let load = |index: u64| {
            let status = if index.is_multiple_of(2) {
                Status::Success
            } else {
                Status::FailedToResize
            };
            let mut sample = crate::dataset::sample::Sample::failed(
                &row,
                format!("{index:06}"),
                status,
                String::new(),
                String::new(),
            );
            sample.width = index.is_multiple_of(2).then_some(index as u32);
            Ok((sample, vec![index as u8; 3]))
        };
        let fields = Fields::default();
        write_table(
            &path,
            count,
            &["id".to_string()],
            &fields,
            Some("jpg"),
            load,
        )
        .unwrap();
        let reader = SerializedFileReader::new(File::open(&path).unwrap()).unwrap();
        assert_eq!(reader.metadata().num_row_groups(), 3);
        let rows: Vec<serde_json::Value> = reader
            .get_row_iter(None)
            .unwrap()
            .map(|row| row.unwrap().to_json_value())
            .collect();
        assert_eq!(rows.len() as u64, count);
        let last = &rows[(count - 1) as usize];
        assert_eq!(last["key"], format!("{:06}", count - 1));
        assert_eq!(last["id"], "5");
        assert_eq!(rows[4]["width"], 4);
        assert_eq!(rows[5]["width"], serde_json::Value::Null);
        assert_eq!(rows[5]["jpg"], serde_json::Value::Null);
        assert_ne!(rows[4]["jpg"], serde_json::Value::Null);
    }
}
