//! Ground truth written beside a synthetic network (`ground_truth.json`): every
//! injected defect with where it is, and the state ingest must reach.
//!
//! This is the contract the end-to-end tests check ingest against. How ingest is
//! expected to treat each defect kind is documented on [`DefectKind`].

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::source::manifest::Supplier;

pub const GROUND_TRUTH_FILE: &str = "ground_truth.json";

/// An injected data-quality defect and the handling ingest owes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DefectKind {
    /// NHS number fails Modulus 11 → patient `nhs_number_status = invalid`, never linked.
    InvalidNhsNumber,
    /// NHS number null/empty → `nhs_number_status = missing`, never linked.
    MissingNhsNumber,
    /// EMIS `PatientTypeDescription` " Dummy"/`DummyType`, TPP `TestPatient` → `is_test_patient`.
    DummyPatient,
    /// Event dated before the patient's birth → event `date_flag = before_birth`.
    EventBeforeBirth,
    /// Event dated after the patient's death → `date_flag = after_death`.
    EventAfterDeath,
    /// Event dated after its delivery's extraction date → `date_flag = future`.
    FutureDated,
    /// Numeric value with no unit → `value_flag = missing_unit`.
    MissingUnit,
    /// Numeric value with a unit phm does not know → `value_flag = unknown_unit`.
    UnknownUnit,
    /// TPP `IsNumeric = true` with `NumericValue` 0 or −1 → value null, `value_flag = placeholder_value`.
    PlaceholderZero,
    /// EMIS local CodeId (no SNOMED) or TPP Y-code without map → `mapping_kind = unmapped`.
    UnmappedLocalCode,
    /// EMIS row whose CodeId's coding row arrives in a later delivery: quarantined
    /// `unknown_code_id` until then, loaded once it arrives.
    LateCodingRow,
    /// An exact duplicate row in the same file → counted `duplicate`, loaded once.
    DuplicateRow,
    /// TPP `DateEvent` 1900-01-01 → event date null, `date_flag = floor_date`.
    FloorDate,
    /// EMIS `EffectiveDatePrecision = U` → event date null, `date_flag = unknown_date`.
    UnknownDatePrecision,
}

/// One injected defect, located by practice, source table and source row id
/// (EMIS: the row's record GUID; TPP: `RowIdentifier` in decimal).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Defect {
    pub kind: DefectKind,
    pub practice: String,
    pub table: String,
    pub row_id: String,
    /// The delivery that introduced the defect.
    pub extract_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PracticeTruth {
    pub ods: String,
    pub supplier: Supplier,
    /// Delivery extract ids in the order they must be ingested.
    pub deliveries: Vec<String>,
    /// Canonical table (`patients`, `registrations`, `events`, `medications`) →
    /// rows the store must hold for this practice after all deliveries.
    pub expected_rows: BTreeMap<String, u64>,
    /// Rows still quarantined after all deliveries, by reason.
    pub expected_quarantine: BTreeMap<String, u64>,
    /// Source patient ids deleted by a delta (their other rows must be gone too).
    pub deleted_patients: Vec<String>,
}

/// A person registered at two member practices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Move {
    /// (practice ODS, source patient id) at the practice left, then the one joined.
    pub from: (String, String),
    pub to: (String, String),
    /// True when both records carry the same valid NHS number, so they must share one person key.
    pub linkable: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroundTruth {
    pub seed: u64,
    pub as_of: NaiveDate,
    pub practices: Vec<PracticeTruth>,
    /// Configured rate per defect kind (fraction of eligible rows).
    pub defect_rates: BTreeMap<DefectKind, f64>,
    pub defects: Vec<Defect>,
    pub moves: Vec<Move>,
    /// Practices whose deliveries carry no medication tables (no prescribing is
    /// shared): their expected `medications` rows are 0, and their capability
    /// profile must not list `medications`. Omitted from the file when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub without_prescribing: Vec<String>,
}

impl GroundTruth {
    pub fn read(dir: &std::path::Path) -> std::io::Result<GroundTruth> {
        let bytes = std::fs::read(dir.join(GROUND_TRUTH_FILE))?;
        serde_json::from_slice(&bytes).map_err(std::io::Error::other)
    }
}
