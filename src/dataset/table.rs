//! A shard's parquet file: one row per sample, in key order, with key, url,
//! caption, the saved columns (as text), status, error, sizes and sha256, and
//! for `--output-format parquet` the image bytes in a column named after the
//! encode format. Written with parquet's own column writers (no arrow: it would
//! add minutes of build for no need here), uncompressed, since the image bytes
//! are compressed already and the rest is small.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use parquet::basic::{LogicalType, Repetition, Type as Physical};
use parquet::data_type::{ByteArray, ByteArrayType, Int32Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::{ColumnPath, Type};

use super::sample::Sample;

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

/// Writes `samples` to `path`.
pub fn write_metadata(
    path: &Path,
    samples: &[(Sample, Vec<u8>)],
    saved_columns: &[String],
    image_column: Option<&str>,
) -> parquet::errors::Result<()> {
    let text = |pick: &dyn Fn(&Sample) -> Option<String>| {
        Column::Text(samples.iter().map(|(sample, _)| pick(sample)).collect())
    };
    let number = |pick: &dyn Fn(&Sample) -> Option<u32>| {
        Column::Number(samples.iter().map(|(sample, _)| pick(sample)).collect())
    };
    let mut columns: Vec<(String, bool, Column)> = vec![
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
        (
            "sha256".into(),
            false,
            text(&|sample| sample.sha256.clone()),
        ),
    ]);
    let mut properties = WriterProperties::builder();
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
        // A dictionary of distinct images only costs time.
        properties = properties.set_column_dictionary_enabled(ColumnPath::from(name), false);
    }
    let mut fields = Vec::new();
    for (name, required, column) in &columns {
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
    writer.close()?;
    Ok(())
}
