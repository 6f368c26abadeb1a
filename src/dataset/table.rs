//! A shard's parquet file: one row per sample, in key order, with key, url,
//! caption, the saved columns (each of its [`ColumnType`], lists nested as
//! pyarrow writes them), status, error, sizes, `exif` and the hash (named
//! after its type, as img2dataset names it), and for `--output-format
//! parquet` the image bytes in a column named after the encode format.
//! Written with parquet's own column writers (no arrow: it would add minutes
//! of build for the few types saved columns take), snappy but for the image
//! bytes, which are compressed already.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use parquet::basic::Compression;
use parquet::basic::{LogicalType, Repetition, Type as Physical};
use parquet::data_type::{
    BoolType, ByteArray, ByteArrayType, DataType, DoubleType, FloatType, Int32Type, Int64Type,
};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::{ColumnPath, Type};

use super::column::{ColumnType, Levels, leaf_of};
use super::sample::{Fields, SIZE_COLUMNS, Sample, size_columns};
use crate::Named;

/// A column's values: optional text, optional integer, optional bytes, or a
/// saved column's values of its type.
enum Column {
    Text(Vec<Option<String>>),
    Number(Vec<Option<u32>>),
    Bytes(Vec<Option<Vec<u8>>>),
    Saved(ColumnType, Vec<serde_json::Value>),
}

/// A saved column's field: a leaf of its type, or pyarrow's three-level list
/// (`optional group NAME (LIST) { repeated group list { optional ELEMENT element } }`).
fn saved_field(name: &str, kind: &ColumnType) -> parquet::errors::Result<Type> {
    let leaf = |physical: Physical| Type::primitive_type_builder(name, physical);
    let builder = match kind {
        ColumnType::List(element) => {
            let list = Type::group_type_builder("list")
                .with_repetition(Repetition::REPEATED)
                .with_fields(vec![Arc::new(saved_field("element", element)?)])
                .build()?;
            return Type::group_type_builder(name)
                .with_repetition(Repetition::OPTIONAL)
                .with_logical_type(Some(LogicalType::List))
                .with_fields(vec![Arc::new(list)])
                .build();
        }
        ColumnType::Boolean => leaf(Physical::BOOLEAN),
        ColumnType::Int32 => leaf(Physical::INT32),
        ColumnType::Int64 => leaf(Physical::INT64),
        ColumnType::Float => leaf(Physical::FLOAT),
        ColumnType::Double => leaf(Physical::DOUBLE),
        ColumnType::Text | ColumnType::FromText | ColumnType::FromJson => {
            leaf(Physical::BYTE_ARRAY).with_logical_type(Some(LogicalType::String))
        }
    };
    builder.with_repetition(Repetition::OPTIONAL).build()
}

/// Rows per row group: with images in the file, a group's bytes are what a
/// writer holds in memory at once.
pub const ROW_GROUP: u64 = 256;

/// Writes `count` samples to `path`, fetching each with `load` (its metadata and,
/// for an image column, its image), one row group at a time. `saved_columns`
/// are the saved columns' names and (concrete) types.
pub fn write_table(
    path: &Path,
    count: u64,
    saved_columns: &[(String, ColumnType)],
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
            Column::Saved(kind, _) => {
                fields.push(Arc::new(saved_field(name, kind)?));
                continue;
            }
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
    saved_columns: &[(String, ColumnType)],
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
    for (position, (name, kind)) in saved_columns.iter().enumerate() {
        let values = samples
            .iter()
            .map(|(sample, _)| {
                sample
                    .saved
                    .get(position)
                    .map_or(serde_json::Value::Null, |(_, value)| kind.convert(value))
            })
            .collect();
        columns.push((name.clone(), false, Column::Saved(kind.clone(), values)));
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
    ]);
    for (index, name) in SIZE_COLUMNS.into_iter().enumerate() {
        let side = number(&|sample| size_columns(sample.sizes)[index]);
        columns.push((name.into(), false, side));
    }
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
        match column {
            Column::Text(values) => {
                write_optional::<ByteArrayType, _>(&mut writer, values, *required, |value| {
                    ByteArray::from(value.as_str())
                })?
            }
            Column::Number(values) => {
                write_optional::<Int32Type, _>(&mut writer, values, *required, |value| {
                    *value as i32
                })?
            }
            Column::Bytes(values) => {
                write_optional::<ByteArrayType, _>(&mut writer, values, *required, |value| {
                    ByteArray::from(value.clone())
                })?
            }
            Column::Saved(kind, values) => write_saved(&mut writer, kind, values)?,
        }
        writer.close()?;
    }
    group.close()?;
    Ok(())
}

/// A column of values that may be missing: the present ones, with definition
/// levels (1 where a value is present, 0 where null) unless the column is
/// required.
fn write_optional<T: DataType, V>(
    writer: &mut parquet::file::writer::SerializedColumnWriter<'_>,
    values: &[Option<V>],
    required: bool,
    convert: impl Fn(&V) -> T::T,
) -> parquet::errors::Result<()> {
    let definitions: Vec<i16> = values
        .iter()
        .map(|value| i16::from(value.is_some()))
        .collect();
    let column = Leveled {
        writer,
        definitions: (!required).then_some(definitions.as_slice()),
        repetitions: None,
    };
    column.write::<T>(values.iter().flatten().map(convert))
}

/// A saved column's values, shredded into levels for its leaf column.
fn write_saved(
    writer: &mut parquet::file::writer::SerializedColumnWriter<'_>,
    kind: &ColumnType,
    values: &[serde_json::Value],
) -> parquet::errors::Result<()> {
    let mut levels = Levels::default();
    for value in values {
        levels.add(value, kind);
    }
    let (leaf, depth) = leaf_of(kind);
    let definitions = Some(levels.definitions.as_slice());
    let repetitions = (depth > 0).then_some(levels.repetitions.as_slice());
    let present = &levels.values;
    let integer = |value: &serde_json::Value| {
        value
            .as_i64()
            .or_else(|| value.as_u64().map(|value| value as i64))
            .unwrap_or_default()
    };
    let double = |value: &serde_json::Value| value.as_f64().unwrap_or_default();
    let column = Leveled {
        writer,
        definitions,
        repetitions,
    };
    match leaf {
        ColumnType::Boolean => {
            column.write::<BoolType>(present.iter().map(|value| value.as_bool() == Some(true)))
        }
        ColumnType::Int32 => {
            column.write::<Int32Type>(present.iter().map(|value| integer(value) as i32))
        }
        ColumnType::Int64 => column.write::<Int64Type>(present.iter().map(integer)),
        ColumnType::Float => {
            column.write::<FloatType>(present.iter().map(|value| double(value) as f32))
        }
        ColumnType::Double => column.write::<DoubleType>(present.iter().map(double)),
        _ => column.write::<ByteArrayType>(present.iter().map(|value| match value {
            serde_json::Value::String(text) => ByteArray::from(text.as_str()),
            other => ByteArray::from(other.to_string().as_str()),
        })),
    }
}

/// A leaf column's writer, with the levels its values go with.
struct Leveled<'a, 'file> {
    writer: &'a mut parquet::file::writer::SerializedColumnWriter<'file>,
    definitions: Option<&'a [i16]>,
    repetitions: Option<&'a [i16]>,
}

impl Leveled<'_, '_> {
    /// The column's values, of the Parquet type `T`.
    fn write<T: DataType>(self, values: impl Iterator<Item = T::T>) -> parquet::errors::Result<()> {
        let values: Vec<T::T> = values.collect();
        self.writer
            .typed::<T>()
            .write_batch(&values, self.definitions, self.repetitions)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::input::Row;
    use crate::dataset::sample::Status;
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use serde_json::{Value, json};

    #[test]
    fn rows_span_row_groups_in_order_with_nulls_where_missing() {
        let (_folder, path) = crate::fs::scratch_file("t.parquet");
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
            sample.sizes = index
                .is_multiple_of(2)
                .then_some(crate::image::resize::Sizes {
                    width: index as u32,
                    height: 1,
                    original_width: 2,
                    original_height: 2,
                });
            Ok((sample, vec![index as u8; 3]))
        };
        let saved = [("id".to_string(), ColumnType::Int64)];
        write_table(&path, count, &saved, &Fields::default(), Some("jpg"), load).unwrap();
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
        assert_eq!(last["id"], 5);
        assert_eq!(rows[4]["width"], 4);
        assert_eq!(rows[5]["width"], serde_json::Value::Null);
        assert_eq!(rows[5]["jpg"], serde_json::Value::Null);
        assert_ne!(rows[4]["jpg"], serde_json::Value::Null);
    }

    #[test]
    fn saved_columns_keep_their_types_and_nested_lists_read_back() {
        let (_folder, path) = crate::fs::scratch_file("t.parquet");
        let boxes = ColumnType::List(Box::new(ColumnType::List(Box::new(ColumnType::Double))));
        let saved = [
            ("score".to_string(), ColumnType::Double),
            ("face_bboxes".to_string(), boxes),
            ("ok".to_string(), ColumnType::Boolean),
        ];
        let values = [
            (json!(0.31), json!([[0.1, 0.2], [0.3]]), json!(true)),
            (Value::Null, Value::Null, Value::Null),
            (json!(2), json!([]), json!(false)),
        ];
        let load = |index: u64| {
            let (score, boxes, ok) = values[index as usize].clone();
            let row = Row {
                number: index,
                origin: String::new(),
                url: "http://a/x".into(),
                caption: None,
                saved: vec![
                    ("score".into(), score),
                    ("face_bboxes".into(), boxes),
                    ("ok".into(), ok),
                ],
            };
            let sample = Sample::failed(
                &row,
                format!("{index}"),
                Status::Success,
                String::new(),
                String::new(),
            );
            Ok((sample, Vec::new()))
        };
        write_table(&path, 3, &saved, &Fields::default(), None, load).unwrap();
        let reader = SerializedFileReader::new(File::open(&path).unwrap()).unwrap();
        let rows: Vec<Value> = reader
            .get_row_iter(None)
            .unwrap()
            .map(|row| row.unwrap().to_json_value())
            .collect();
        assert_eq!(rows[0]["score"], json!(0.31));
        assert_eq!(rows[0]["face_bboxes"], json!([[0.1, 0.2], [0.3]]));
        assert_eq!(rows[0]["ok"], json!(true));
        assert_eq!(rows[1]["face_bboxes"], Value::Null);
        assert_eq!(rows[2]["score"], json!(2.0));
        assert_eq!(rows[2]["face_bboxes"], json!([]));
        let schema = reader.metadata().file_metadata().schema_descr();
        let score = schema.column(3);
        assert_eq!(score.physical_type(), parquet::basic::Type::DOUBLE);
    }
}
