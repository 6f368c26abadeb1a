//! The type a saved column (`--save-cols`) keeps in the output: taken from
//! the input, so that a score of 0.31 stays a double and `face_bboxes` stays
//! a list of lists of doubles, in the shard's parquet and in each sample's
//! JSON alike.
//!
//! A parquet table declares its types, and they are kept (nested lists
//! included); types a JSON value cannot carry back (dates, timestamps,
//! decimals, binary, maps) are saved as the text parquet's record reader
//! gives them. A text table (csv, tsv) or a JSON one declares none: as
//! img2dataset's pyarrow readers do for a file, the type is inferred from the
//! values, here those of the shard being written (so a shard's bytes depend
//! on its samples only): csv cells that are all integers make an int64
//! column, all numbers a double one, all `true`/`false` a boolean one, and
//! anything else stays text; JSON numbers, booleans, strings and arrays make
//! their types, integers and fractions together a double.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Saved columns by name, with their types.
pub type SavedColumns = Vec<(String, ColumnType)>;

/// A saved column's type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnType {
    Boolean,
    Int32,
    Int64,
    Float,
    Double,
    Text,
    /// A list of values of one type (pyarrow's `list<...>`).
    List(Box<ColumnType>),
    /// Not declared: inferred from the shard's csv cells (text).
    FromText,
    /// Not declared: inferred from the shard's JSON values.
    FromJson,
}

impl ColumnType {
    /// The name a user reads in messages and in the settings record.
    pub fn name(&self) -> String {
        match self {
            ColumnType::Boolean => "bool".into(),
            ColumnType::Int32 => "int32".into(),
            ColumnType::Int64 => "int64".into(),
            ColumnType::Float => "float".into(),
            ColumnType::Double => "double".into(),
            ColumnType::Text => "string".into(),
            ColumnType::List(element) => format!("list<{}>", element.name()),
            ColumnType::FromText => "inferred from text".into(),
            ColumnType::FromJson => "inferred from JSON".into(),
        }
    }

    /// Whether the type is still to be inferred from values.
    pub fn inferred(&self) -> bool {
        matches!(self, ColumnType::FromText | ColumnType::FromJson)
    }

    /// The concrete type for these values (a declared type stays as it is).
    pub fn resolve<'a>(&self, values: impl Iterator<Item = &'a Value>) -> ColumnType {
        match self {
            ColumnType::FromText => {
                let mut kind: Option<ColumnType> = None;
                for value in values {
                    let text = match value {
                        Value::String(text) if NULL_CELLS.contains(&text.as_str()) => continue,
                        Value::String(text) => text,
                        Value::Null => continue,
                        _ => return ColumnType::Text,
                    };
                    let this = if text.parse::<i64>().is_ok() {
                        ColumnType::Int64
                    } else if boolean_of(text).is_some() {
                        ColumnType::Boolean
                    } else if text.parse::<f64>().is_ok() {
                        ColumnType::Double
                    } else {
                        return ColumnType::Text;
                    };
                    kind = match (kind, this) {
                        (None, this) => Some(this),
                        (Some(left), right) => match merge(&left, &right) {
                            ColumnType::Text => return ColumnType::Text,
                            merged => Some(merged),
                        },
                    };
                }
                // A column of empty cells: pyarrow's null type, kept as text.
                kind.unwrap_or(ColumnType::Text)
            }
            ColumnType::FromJson => {
                let mut kind: Option<ColumnType> = None;
                for value in values {
                    if let Some(this) = json_type(value) {
                        kind = Some(match kind {
                            None => this,
                            Some(left) => merge(&left, &this),
                        });
                    }
                }
                known(kind.unwrap_or(ColumnType::Text))
            }
            declared => declared.clone(),
        }
    }

    /// `value` as this (concrete) type holds it: csv text parsed, integers
    /// of a double column as doubles, anything that does not fit as its
    /// text; null where there is no value.
    pub fn convert(&self, value: &Value) -> Value {
        match (self, value) {
            (_, Value::Null) => Value::Null,
            (ColumnType::Text, Value::String(_)) => value.clone(),
            (ColumnType::Text, other) => Value::String(other.to_string()),
            (_, Value::String(text)) if text.is_empty() => Value::Null,
            (ColumnType::Boolean, Value::String(text)) => {
                boolean_of(text).map_or(Value::Null, Value::Bool)
            }
            (ColumnType::Boolean, Value::Bool(_)) => value.clone(),
            (ColumnType::Int32 | ColumnType::Int64, Value::String(text)) => {
                text.parse::<i64>().map_or(Value::Null, Value::from)
            }
            (ColumnType::Int32 | ColumnType::Int64, Value::Number(number))
                if number.is_i64() || number.is_u64() =>
            {
                value.clone()
            }
            (ColumnType::Float | ColumnType::Double, Value::String(text)) => text
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map_or(Value::Null, Value::Number),
            (ColumnType::Float | ColumnType::Double, Value::Number(number)) => number
                .as_f64()
                .and_then(serde_json::Number::from_f64)
                .map_or(Value::Null, Value::Number),
            (ColumnType::List(element), Value::Array(items)) => {
                Value::Array(items.iter().map(|item| element.convert(item)).collect())
            }
            _ => Value::Null,
        }
    }
}

/// The cells pyarrow's csv reader takes for null (its `null_values`): they
/// make no column text, and are null in a number or boolean one (a text
/// column keeps them, as pyarrow's does).
const NULL_CELLS: [&str; 17] = [
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
    "N/A", "NA", "NULL", "NaN", "n/a", "nan", "null",
];

/// csv's booleans, as pyarrow's reader takes them.
fn boolean_of(text: &str) -> Option<bool> {
    match text {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

/// The type of one JSON value; none for null.
fn json_type(value: &Value) -> Option<ColumnType> {
    Some(match value {
        Value::Null => return None,
        Value::Bool(_) => ColumnType::Boolean,
        Value::Number(number) if number.is_f64() => ColumnType::Double,
        Value::Number(_) => ColumnType::Int64,
        Value::String(_) | Value::Object(_) => ColumnType::Text,
        Value::Array(items) => {
            let element = items
                .iter()
                .filter_map(json_type)
                .reduce(|left, right| merge(&left, &right));
            // Empty lists say nothing of their elements (yet).
            ColumnType::List(Box::new(element.unwrap_or(ColumnType::FromJson)))
        }
    })
}

/// An inferred type with elements no value told (only empty lists) as text.
fn known(kind: ColumnType) -> ColumnType {
    match kind {
        ColumnType::FromJson => ColumnType::Text,
        ColumnType::List(element) => ColumnType::List(Box::new(known(*element))),
        other => other,
    }
}

/// The type holding values of both: integers and doubles make doubles,
/// lists merge their elements, an unknown element takes the other's type,
/// anything else is text.
fn merge(left: &ColumnType, right: &ColumnType) -> ColumnType {
    use ColumnType::*;
    match (left, right) {
        (left, right) if left == right => left.clone(),
        (FromJson, other) | (other, FromJson) => other.clone(),
        (Int64 | Double, Int64 | Double) => Double,
        (List(left), List(right)) => List(Box::new(merge(left, right))),
        _ => Text,
    }
}

/// A parquet file's top-level columns, as its schema declares them: a list or
/// struct column (`face_bboxes`) is one field, named as a whole, as pyarrow
/// and pandas name it.
pub struct ParquetColumns(Vec<parquet::schema::types::TypePtr>);

impl ParquetColumns {
    pub fn of(reader: &impl parquet::file::reader::FileReader) -> Self {
        ParquetColumns(
            reader
                .metadata()
                .file_metadata()
                .schema_descr()
                .root_schema()
                .get_fields()
                .to_vec(),
        )
    }

    pub fn names(&self) -> Vec<String> {
        self.0
            .iter()
            .map(|field| field.name().to_string())
            .collect()
    }

    /// The type column `name` is saved as, if the file has it.
    pub fn type_of(&self, name: &str) -> Option<ColumnType> {
        self.0
            .iter()
            .find(|field| field.name() == name)
            .map(|field| of_parquet(field))
    }
}

/// The type a parquet field (a top-level column of the input) is saved as.
pub fn of_parquet(field: &parquet::schema::types::Type) -> ColumnType {
    use parquet::basic::{ConvertedType, LogicalType, Type as Physical};
    let info = field.get_basic_info();
    if field.is_group() {
        let list = matches!(info.logical_type_ref(), Some(LogicalType::List))
            || info.converted_type() == ConvertedType::LIST;
        let fields = field.get_fields();
        if !list || fields.len() != 1 {
            return ColumnType::Text;
        }
        let repeated = &fields[0];
        // Three levels (`repeated group list { element }`), or the legacy two
        // (`repeated int32 element`).
        let element = match repeated.is_group() && repeated.get_fields().len() == 1 {
            true => &repeated.get_fields()[0],
            false => repeated,
        };
        return match of_parquet(element) {
            ColumnType::Text if element.is_group() => ColumnType::Text,
            element => ColumnType::List(Box::new(element)),
        };
    }
    let logical = info.logical_type_ref().cloned();
    let converted = info.converted_type();
    match field.get_physical_type() {
        Physical::BOOLEAN => ColumnType::Boolean,
        Physical::INT32 => match (logical, converted) {
            (Some(LogicalType::Integer(integer)), _) if integer.is_signed => ColumnType::Int32,
            // Unsigned 32-bit values need 64 bits signed.
            (Some(LogicalType::Integer(_)), _)
            | (None, ConvertedType::UINT_8 | ConvertedType::UINT_16 | ConvertedType::UINT_32) => {
                ColumnType::Int64
            }
            (
                None,
                ConvertedType::NONE
                | ConvertedType::INT_8
                | ConvertedType::INT_16
                | ConvertedType::INT_32,
            ) => ColumnType::Int32,
            // Dates, times, decimals: the reader's text.
            _ => ColumnType::Text,
        },
        Physical::INT64 => match (logical, converted) {
            (Some(LogicalType::Integer(integer)), _) if integer.is_signed => ColumnType::Int64,
            (None, ConvertedType::NONE | ConvertedType::INT_64) => ColumnType::Int64,
            _ => ColumnType::Text,
        },
        Physical::FLOAT => ColumnType::Float,
        Physical::DOUBLE => ColumnType::Double,
        _ => ColumnType::Text,
    }
}

/// Definition and repetition levels and the present leaf values of one
/// column: Dremel's shredding, for a column whose every level is optional
/// (a nullable list of nullable elements, as pyarrow writes them).
#[derive(Debug, Default, PartialEq)]
pub struct Levels {
    pub definitions: Vec<i16>,
    pub repetitions: Vec<i16>,
    pub values: Vec<Value>,
}

impl Levels {
    /// Adds one row's `value`, of (concrete) type `kind`.
    pub fn add(&mut self, value: &Value, kind: &ColumnType) {
        self.shred(value, kind, 0, 0, 0);
    }

    /// `defined`: optional or repeated levels above that are present;
    /// `repetition`: the level the first leaf written repeats at; `depth`:
    /// the repeated levels above.
    fn shred(
        &mut self,
        value: &Value,
        kind: &ColumnType,
        defined: i16,
        repetition: i16,
        depth: i16,
    ) {
        match (kind, value) {
            (ColumnType::List(element), Value::Array(items)) if !items.is_empty() => {
                for (index, item) in items.iter().enumerate() {
                    let repeats_at = if index == 0 { repetition } else { depth + 1 };
                    // The list's optional group and its repeated one.
                    self.shred(item, element, defined + 2, repeats_at, depth + 1);
                }
            }
            // An empty list: its group is there, no element.
            (ColumnType::List(_), Value::Array(_)) => self.push(defined + 1, repetition, None),
            (ColumnType::List(_), _) | (_, Value::Null) => self.push(defined, repetition, None),
            (_, value) => self.push(defined + 1, repetition, Some(value.clone())),
        }
    }

    fn push(&mut self, definition: i16, repetition: i16, value: Option<Value>) {
        self.definitions.push(definition);
        self.repetitions.push(repetition);
        self.values.extend(value);
    }
}

/// The innermost type of a (possibly nested) list, and how many lists deep.
pub fn leaf_of(kind: &ColumnType) -> (&ColumnType, usize) {
    match kind {
        ColumnType::List(element) => {
            let (leaf, depth) = leaf_of(element);
            (leaf, depth + 1)
        }
        leaf => (leaf, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_cells_infer_as_pyarrow_reads_csv() {
        let infer = |cells: &[&str]| {
            let values: Vec<Value> = cells.iter().map(|cell| json!(cell)).collect();
            ColumnType::FromText.resolve(values.iter())
        };
        assert_eq!(infer(&["1", "", "22"]), ColumnType::Int64);
        assert_eq!(infer(&["1", "0.31"]), ColumnType::Double);
        assert_eq!(infer(&["true", "False"]), ColumnType::Boolean);
        assert_eq!(infer(&["007", "cat"]), ColumnType::Text);
        assert_eq!(infer(&["1", "true"]), ColumnType::Text);
        assert_eq!(infer(&["", ""]), ColumnType::Text);
        // pyarrow's null words are null, in any column.
        assert_eq!(infer(&["1", "NA", "n/a", "3"]), ColumnType::Int64);
        assert_eq!(infer(&["0.5", "NaN", "null"]), ColumnType::Double);
        assert_eq!(ColumnType::Int64.convert(&json!("n/a")), Value::Null);
        assert_eq!(ColumnType::Double.convert(&json!("NaN")), Value::Null);
        assert_eq!(ColumnType::Text.convert(&json!("NA")), json!("NA"));
        assert_eq!(ColumnType::Double.convert(&json!("0.31")), json!(0.31));
        assert_eq!(ColumnType::Double.convert(&json!("")), Value::Null);
        assert_eq!(ColumnType::Text.convert(&json!("007")), json!("007"));
    }

    #[test]
    fn json_values_infer_their_types() {
        let values = [json!(2), json!(0.31), Value::Null];
        assert_eq!(
            ColumnType::FromJson.resolve(values.iter()),
            ColumnType::Double
        );
        assert_eq!(ColumnType::Double.convert(&json!(2)), json!(2.0));
        let boxes = [json!([[0.1, 0.2, 0.3, 0.4]]), json!([])];
        let list = ColumnType::List(Box::new(ColumnType::List(Box::new(ColumnType::Double))));
        assert_eq!(ColumnType::FromJson.resolve(boxes.iter()), list);
        assert_eq!(list.name(), "list<list<double>>");
    }

    #[test]
    fn nested_lists_shred_into_dremel_levels() {
        let kind = ColumnType::List(Box::new(ColumnType::List(Box::new(ColumnType::Double))));
        let mut levels = Levels::default();
        for row in [
            json!([[1.0, 2.0], [3.0]]),
            Value::Null,
            json!([]),
            json!([[], null, [null]]),
        ] {
            levels.add(&row, &kind);
        }
        assert_eq!(levels.values, [json!(1.0), json!(2.0), json!(3.0)]);
        // Levels: list 1, its repeated group 2, inner list 3, its repeated
        // group 4, the element 5.
        assert_eq!(levels.definitions, [5, 5, 5, 0, 1, 3, 2, 4]);
        assert_eq!(levels.repetitions, [0, 2, 1, 0, 0, 0, 1, 1]);
    }
}
