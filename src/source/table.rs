//! Declarative description of a supplier source table: its columns and Parquet
//! types, its primary key, and how the supplier marks deletes and versions.
//!
//! Both the synthetic generator and the ingest adapters read these specs, so a
//! generated file and the adapter that reads it can never disagree on a column.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// Parquet/Arrow type of a source column (see EXTRACTS.md, "Parquet types").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    Str,
    I64,
    I8,
    F64,
    Bool,
    /// `date32`
    Date,
    /// `timestamp(µs)` without time zone (TPP date-times)
    Ts,
}

impl Ty {
    pub fn data_type(self) -> DataType {
        match self {
            Ty::Str => DataType::Utf8,
            Ty::I64 => DataType::Int64,
            Ty::I8 => DataType::Int8,
            Ty::F64 => DataType::Float64,
            Ty::Bool => DataType::Boolean,
            Ty::Date => DataType::Date32,
            Ty::Ts => DataType::Timestamp(TimeUnit::Microsecond, None),
        }
    }
}

/// How a supplier marks a row as deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteMarker {
    /// EMIS: boolean column `Deleted` is true.
    EmisDeleted,
    /// TPP: int8 column `RemovedData` is 1; the row is sparse.
    TppRemovedData,
    /// The table carries no deletes.
    None,
}

/// One supplier table.
#[derive(Debug)]
pub struct TableSpec {
    pub name: &'static str,
    pub columns: &'static [(&'static str, Ty)],
    /// Columns forming the primary key, in order.
    pub key: &'static [&'static str],
    /// Column whose highest value wins per key (EMIS `ProcessingId`); `None` means
    /// the later occurrence wins (TPP: later delivery, later row in a file).
    pub version: Option<&'static str>,
    pub delete: DeleteMarker,
    /// Column naming the patient the row belongs to, for patient-level deletes.
    pub patient: Option<&'static str>,
}

impl TableSpec {
    /// The Arrow schema of the table as phm writes and expects it; every column nullable.
    pub fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(
            self.columns
                .iter()
                .map(|(name, ty)| Field::new(*name, ty.data_type(), true))
                .collect::<Vec<_>>(),
        ))
    }

    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|(n, _)| *n == name)
    }
}
