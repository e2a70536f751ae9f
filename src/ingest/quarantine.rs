//! The quarantine table: rows that could not be loaded, with the reason and the
//! source location (file, row, row id), and the row itself as JSON so nothing is lost.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int64Builder, RecordBatch, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use crate::source::columns::{Columns, row_json};
use crate::source::table::TableSpec;

/// Why a row was not loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    /// A key column is null or empty, so deltas cannot be applied to the row.
    MissingKey,
    /// The row names a patient the practice's patient table does not hold.
    OrphanPatient,
    /// EMIS CodeId with no coding row yet; re-resolved on every later ingest.
    UnknownCodeId,
    /// No code at all (EMIS CodeId null; TPP CTV3 and SNOMED both empty).
    MissingCode,
    /// EMIS date precision not one of U, Y, YM, YMD, YMDT.
    InvalidDatePrecision,
    /// EMIS `ProcessingId` missing or below zero: the row cannot be ordered
    /// against the state, so it is neither applied nor called stale.
    InvalidProcessingId,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::MissingKey => "missing_key",
            Reason::OrphanPatient => "orphan_patient",
            Reason::UnknownCodeId => "unknown_code_id",
            Reason::MissingCode => "missing_code",
            Reason::InvalidDatePrecision => "invalid_date_precision",
            Reason::InvalidProcessingId => "invalid_processing_id",
        }
    }
}

pub fn schema() -> SchemaRef {
    let s = |n: &str| Field::new(n, DataType::Utf8, true);
    Arc::new(Schema::new(vec![
        s("practice"),
        s("supplier"),
        s("source_table"),
        s("source_file"),
        Field::new("source_row", DataType::Int64, true),
        s("source_row_id"),
        s("extract_id"),
        s("reason"),
        s("detail"),
        s("raw"),
    ]))
}

/// Collects quarantined rows for one practice.
pub struct QuarantineBuilder {
    practice: String,
    supplier: &'static str,
    cols: [StringBuilder; 9],
    row: Int64Builder,
    len: usize,
}

impl QuarantineBuilder {
    pub fn new(practice: &str, supplier: &'static str) -> Self {
        QuarantineBuilder {
            practice: practice.to_string(),
            supplier,
            cols: Default::default(),
            row: Int64Builder::new(),
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Quarantines row `i` of a state batch of table `spec`.
    pub fn push(
        &mut self,
        spec: &TableSpec,
        state: &Columns<'_>,
        i: usize,
        row_id: Option<&str>,
        reason: Reason,
        detail: String,
    ) {
        let origin = state.origin();
        let [
            practice,
            supplier,
            table,
            file,
            row_id_col,
            extract,
            reason_col,
            detail_col,
            raw,
        ] = &mut self.cols;
        practice.append_value(&self.practice);
        supplier.append_value(self.supplier);
        table.append_value(spec.name);
        file.append_value(origin.file.value(i));
        self.row.append_value(origin.row.value(i));
        row_id_col.append_option(row_id);
        extract.append_value(origin.extract_id.value(i));
        reason_col.append_value(reason.as_str());
        detail_col.append_value(detail);
        raw.append_value(row_json(state.batch, spec.columns.len(), i));
        self.len += 1;
    }

    pub fn finish(mut self) -> RecordBatch {
        let [
            practice,
            supplier,
            table,
            file,
            row_id,
            extract,
            reason,
            detail,
            raw,
        ] = &mut self.cols;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(practice.finish()),
            Arc::new(supplier.finish()),
            Arc::new(table.finish()),
            Arc::new(file.finish()),
            Arc::new(self.row.finish()),
            Arc::new(row_id.finish()),
            Arc::new(extract.finish()),
            Arc::new(reason.finish()),
            Arc::new(detail.finish()),
            Arc::new(raw.finish()),
        ];
        RecordBatch::try_new(schema(), columns).expect("quarantine schema")
    }
}
