//! Reading one supplier Parquet file, checked against its [`TableSpec`].
//!
//! Columns are matched by name (suppliers reorder and add columns between schema
//! versions); a missing column or an incompatible type is an error naming the
//! column and the schema version phm expects. The result is normalised to the
//! spec's column order and types, with four provenance columns appended.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::NaiveDateTime;
use datafusion::arrow::array::{
    ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::compute::{cast, concat_batches};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::source::table::TableSpec;

/// Appended to every source row held in the store: which delivery, file and row it came from.
pub const EXTRACT_ID: &str = "_phm_extract_id";
pub const EXTRACTED_AT: &str = "_phm_extracted_at";
pub const SOURCE_FILE: &str = "_phm_source_file";
pub const SOURCE_ROW: &str = "_phm_source_row";

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(
        "{path}: not a readable Parquet file: {message}; hint: the file is truncated or not Parquet; re-send the delivery"
    )]
    NotParquet { path: PathBuf, message: String },
    #[error(
        "{path}: table {table} has no column `{column}` (expected by {supplier} schema version {version}){renamed}; hint: the extract's schema differs from what phm reads; nothing from this delivery was loaded"
    )]
    MissingColumn {
        path: PathBuf,
        table: &'static str,
        column: &'static str,
        supplier: &'static str,
        version: &'static str,
        renamed: String,
    },
    #[error(
        "{path}: column `{column}` of {table} has type {actual}, expected {expected} ({supplier} schema version {version}); hint: the extract's schema differs from what phm reads; nothing from this delivery was loaded"
    )]
    WrongType {
        path: PathBuf,
        table: &'static str,
        column: &'static str,
        // Boxed: keeps every `Result<_, ReadError>` small.
        actual: Box<DataType>,
        expected: Box<DataType>,
        supplier: &'static str,
        version: &'static str,
    },
}

/// Which delivery a file belongs to, stamped onto every row read from it.
#[derive(Debug, Clone)]
pub struct Origin<'a> {
    pub supplier: &'static str,
    pub schema_version: &'static str,
    pub extract_id: &'a str,
    pub extracted_at: NaiveDateTime,
    /// Path relative to the landing zone, as reported in quarantine rows.
    pub file_label: &'a str,
}

/// The spec's schema plus the provenance columns.
pub fn state_schema(spec: &TableSpec) -> SchemaRef {
    let mut fields: Vec<Field> = spec
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new(EXTRACT_ID, DataType::Utf8, false));
    fields.push(Field::new(
        EXTRACTED_AT,
        DataType::Timestamp(TimeUnit::Microsecond, None),
        false,
    ));
    fields.push(Field::new(SOURCE_FILE, DataType::Utf8, false));
    fields.push(Field::new(SOURCE_ROW, DataType::Int64, false));
    Arc::new(Schema::new(fields))
}

fn compatible(actual: &DataType, expected: &DataType) -> bool {
    use DataType::*;
    actual == expected
        || matches!(
            (actual, expected),
            (LargeUtf8 | Utf8View, Utf8)
                | (Timestamp(_, _), Timestamp(_, _))
                | (Date64, Date32)
                | (Int32 | Int16 | Int8, Int64)
                | (Int16, Int8)
                | (Float32, Float64)
        )
}

/// Reads `path` as table `spec`, returning one batch in the state schema.
pub fn read_source_file(
    path: &Path,
    spec: &'static TableSpec,
    origin: &Origin<'_>,
) -> Result<RecordBatch, ReadError> {
    let batches = SourceBatches::open(path, spec, origin)?.collect::<Result<Vec<_>, _>>()?;
    concat_batches(&state_schema(spec), &batches).map_err(|e| ReadError::NotParquet {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// `path` read as table `spec` batch by batch, each in the state schema with
/// its provenance: the file's schema is checked once, on opening, and a batch
/// is normalised as it is read, so a file of any size is held one batch at a
/// time. `_phm_source_row` counts on across batches.
pub struct SourceBatches {
    path: PathBuf,
    spec: &'static TableSpec,
    reader: datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReader,
    projection: Vec<usize>,
    extract_id: String,
    extracted_at: NaiveDateTime,
    file_label: String,
    next_row: i64,
}

/// Rows per batch read from a supplier file.
const READ_BATCH_ROWS: usize = 64 * 1024;

impl SourceBatches {
    pub fn open(
        path: &Path,
        spec: &'static TableSpec,
        origin: &Origin<'_>,
    ) -> Result<SourceBatches, ReadError> {
        let not_parquet = |message: String| ReadError::NotParquet {
            path: path.to_path_buf(),
            message,
        };
        let file = File::open(path).map_err(|e| not_parquet(e.to_string()))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(|e| not_parquet(e.to_string()))?;
        let file_schema = builder.schema().clone();

        let mut projection = Vec::with_capacity(spec.columns.len());
        for (column, ty) in spec.columns {
            let Some((index, field)) = file_schema.column_with_name(column) else {
                return Err(ReadError::MissingColumn {
                    path: path.to_path_buf(),
                    table: spec.name,
                    column,
                    supplier: origin.supplier,
                    version: origin.schema_version,
                    renamed: renamed_hint(&file_schema, spec, column),
                });
            };
            if !compatible(field.data_type(), &ty.data_type()) {
                return Err(ReadError::WrongType {
                    path: path.to_path_buf(),
                    table: spec.name,
                    column,
                    actual: Box::new(field.data_type().clone()),
                    expected: Box::new(ty.data_type()),
                    supplier: origin.supplier,
                    version: origin.schema_version,
                });
            }
            projection.push(index);
        }
        let extra: Vec<&str> = file_schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .filter(|name| spec.column_index(name).is_none())
            .collect();
        if !extra.is_empty() {
            tracing::warn!(file = %path.display(), table = spec.name, columns = ?extra, "columns phm does not read are ignored");
        }
        let reader = builder
            .with_batch_size(READ_BATCH_ROWS)
            .build()
            .map_err(|e| not_parquet(e.to_string()))?;
        Ok(SourceBatches {
            path: path.to_path_buf(),
            spec,
            reader,
            projection,
            extract_id: origin.extract_id.to_string(),
            extracted_at: origin.extracted_at,
            file_label: origin.file_label.to_string(),
            next_row: 0,
        })
    }
}

impl Iterator for SourceBatches {
    type Item = Result<RecordBatch, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        let batch = self.reader.next()?;
        let not_parquet = |message: String| ReadError::NotParquet {
            path: self.path.clone(),
            message,
        };
        let batch = match batch.and_then(|b| normalise(&b, &self.projection, self.spec)) {
            Ok(b) => b,
            Err(e) => return Some(Err(not_parquet(e.to_string()))),
        };
        let origin = Origin {
            supplier: "",
            schema_version: "",
            extract_id: &self.extract_id,
            extracted_at: self.extracted_at,
            file_label: &self.file_label,
        };
        let first = self.next_row;
        self.next_row += batch.num_rows() as i64;
        Some(Ok(with_origin_from(batch, self.spec, &origin, first)))
    }
}

fn normalise(
    batch: &RecordBatch,
    projection: &[usize],
    spec: &TableSpec,
) -> datafusion::arrow::error::Result<RecordBatch> {
    let columns = projection
        .iter()
        .zip(spec.columns)
        .map(|(i, (_, ty))| {
            let col = batch.column(*i);
            if col.data_type() == &ty.data_type() {
                Ok(col.clone())
            } else {
                cast(col, &ty.data_type())
            }
        })
        .collect::<datafusion::arrow::error::Result<Vec<ArrayRef>>>()?;
    RecordBatch::try_new(spec.schema(), columns)
}

/// Appends the provenance columns of `origin` to a batch in the spec schema.
pub fn with_origin(data: RecordBatch, spec: &TableSpec, origin: &Origin<'_>) -> RecordBatch {
    with_origin_from(data, spec, origin, 0)
}

/// [`with_origin`] for rows that start at row `first` of their file.
fn with_origin_from(
    data: RecordBatch,
    spec: &TableSpec,
    origin: &Origin<'_>,
    first: i64,
) -> RecordBatch {
    let n = data.num_rows();
    let mut columns = data.columns().to_vec();
    columns.push(Arc::new(StringArray::from(vec![origin.extract_id; n])));
    columns.push(Arc::new(TimestampMicrosecondArray::from(vec![
        origin
            .extracted_at
            .and_utc()
            .timestamp_micros(
            );
        n
    ])));
    columns.push(Arc::new(StringArray::from(vec![origin.file_label; n])));
    columns.push(Arc::new(Int64Array::from_iter_values(
        first..first + n as i64,
    )));
    RecordBatch::try_new(state_schema(spec), columns)
        .expect("state schema matches spec plus origin")
}

/// " (a column `X` is present that phm does not read — renamed?)" when exactly one
/// unknown column is present: test packs misspell columns.
fn renamed_hint(file_schema: &Schema, spec: &TableSpec, missing: &str) -> String {
    let unknown: Vec<&str> = file_schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .filter(|name| spec.column_index(name).is_none())
        .collect();
    let close = unknown
        .iter()
        .find(|u| u.eq_ignore_ascii_case(missing) || edit_distance(u, missing) <= 2);
    match close {
        Some(name) => format!("; found `{name}` instead — renamed or misspelt?"),
        None => String::new(),
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_cases() {
        let cases = [
            ("NhsNumber", "NhsNumber", 0),
            ("NhsNumbr", "NhsNumber", 1),
            ("CodeId", "CodeID", 1),
            ("a", "xyz", 3),
        ];
        for (a, b, d) in cases {
            assert_eq!(edit_distance(a, b), d, "{a} {b}");
        }
    }

    #[test]
    fn type_compatibility() {
        use DataType::*;
        let cases = [
            (Utf8, Utf8, true),
            (LargeUtf8, Utf8, true),
            (Int32, Int64, true),
            (Utf8, Int64, false),
            (Float64, Int64, false),
            (
                Timestamp(TimeUnit::Millisecond, None),
                Timestamp(TimeUnit::Microsecond, None),
                true,
            ),
            (Boolean, Utf8, false),
        ];
        for (actual, expected, ok) in cases {
            assert_eq!(compatible(&actual, &expected), ok, "{actual} → {expected}");
        }
    }
}
