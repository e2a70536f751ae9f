//! What both adapters share when they turn a practice's source state into
//! canonical tables: person keys, date and value flags, and the result type.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use datafusion::arrow::array::RecordBatch;

use crate::source::read::state_schema;
use crate::source::table::TableSpec;
use sha2::{Digest, Sha256};

use crate::canonical::CanonicalTable;
use crate::canonical::units::canonical_unit;
use crate::ingest::quarantine::{QuarantineBuilder, Reason};
use crate::nhs_number::{self, NhsNumberStatus};
use crate::store::StoreError;

/// A canonical table derived from one source table, with its reconciliation.
pub struct DerivedTable {
    pub table: CanonicalTable,
    pub source_table: &'static str,
    pub batch: RecordBatch,
    /// Rows in the source table's state: `loaded + quarantined`.
    pub source_rows: u64,
    pub quarantined: BTreeMap<Reason, u64>,
}

impl DerivedTable {
    pub fn loaded(&self) -> u64 {
        self.batch.num_rows() as u64
    }
    pub fn reconciles(&self) -> bool {
        self.source_rows == self.loaded() + self.quarantined.values().sum::<u64>()
    }
}

/// What events need to know about their patient.
#[derive(Debug, Clone)]
pub struct PatientFacts {
    pub person_key: String,
    pub date_of_birth: Option<i32>,
    pub date_of_death: Option<i32>,
}

pub type PatientIndex = HashMap<String, PatientFacts>;

/// Links records of one person across practices.
///
/// A verified NHS number gives `N` + the first 16 hex digits of its SHA-256, the
/// same at every practice. Without one, the record stays separate:
/// `L` + a hash of practice and source patient id. The key is internal to the
/// store; outputs carry keyed pseudonyms instead.
pub fn person_key(
    practice: &str,
    patient_id: &str,
    nhs: Option<&str>,
) -> (String, NhsNumberStatus) {
    let status = NhsNumberStatus::of(nhs);
    let material = match (status, nhs.and_then(nhs_number::normalise)) {
        (NhsNumberStatus::Verified, Some(digits)) => format!("nhs:{digits}"),
        _ => format!("local:{practice}:{patient_id}"),
    };
    let prefix = if material.starts_with("nhs:") {
        "N"
    } else {
        "L"
    };
    let digest = Sha256::digest(material.as_bytes());
    (format!("{prefix}{}", &hex::encode(digest)[..16]), status)
}

/// The date-quality flag of an event on `day` (`None` when the date is unknown:
/// the caller flags that). One flag per row, most serious first.
pub fn date_flag(day: i32, patient: &PatientFacts, extracted_day: i32) -> Option<&'static str> {
    if day > extracted_day {
        Some("future")
    } else if patient.date_of_death.is_some_and(|d| day > d) {
        Some("after_death")
    } else if patient.date_of_birth.is_some_and(|b| day < b) {
        Some("before_birth")
    } else {
        None
    }
}

/// A date of birth as the store keeps it, with its flag: one after the
/// extraction date (including the year-9999 "no date" some systems write) is
/// not a birth date at all, so it is dropped (the person's age is unknown)
/// and flagged `future` rather than making them a negative age.
pub fn birth_date(day: Option<i32>, extracted_day: i32) -> (Option<i32>, Option<&'static str>) {
    match day {
        Some(d) if d > extracted_day => (None, Some("future")),
        other => (other, None),
    }
}

/// A numeric value as the store keeps it, with its flag: NaN and ±infinity
/// are no measurement, so the value is dropped and flagged
/// `non_finite_value`; otherwise [`value_flag`] judges the unit.
pub fn measured(value: Option<f64>, unit: Option<&str>) -> (Option<f64>, Option<&'static str>) {
    match value {
        Some(v) if !v.is_finite() => (None, Some("non_finite_value")),
        v => (v, value_flag(v, unit)),
    }
}

/// The value-quality flag of a numeric value with its source unit.
pub fn value_flag(value: Option<f64>, unit: Option<&str>) -> Option<&'static str> {
    value?;
    match unit.map(str::trim).filter(|u| !u.is_empty()) {
        None => Some("missing_unit"),
        Some(u) if canonical_unit(u).is_none() => Some("unknown_unit"),
        Some(_) => None,
    }
}

/// A practice's source state as the adapters read it to derive the
/// canonical tables: small tables (patients, registrations, code look-ups)
/// whole, large ones (observations, issues, codes, medications) a batch at a
/// time, so no large table is ever held whole.
pub trait StateSource {
    /// The whole state of `spec` (an empty batch when the practice has none).
    fn whole(&self, spec: &'static TableSpec) -> Result<RecordBatch, StoreError>;
    /// The state of `spec` in batches, given to `f` one by one; at least one
    /// batch (an empty one when the practice has none).
    fn batches(
        &self,
        spec: &'static TableSpec,
        f: &mut dyn FnMut(RecordBatch) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;
}

/// Where the adapters put what they derive: each canonical table's rows, in
/// parts, at least one part per table (empty when nothing was derived).
pub trait CanonicalSink {
    fn push(&mut self, part: DerivedTable) -> Result<(), StoreError>;
}

/// What a derivation found besides its rows.
pub struct Derivation {
    pub quarantine: QuarantineBuilder,
    /// Code systems present on the practice's coded rows.
    pub code_systems: BTreeSet<&'static str>,
}

/// An empty batch of `spec`'s state schema.
pub fn empty_state(spec: &TableSpec) -> RecordBatch {
    RecordBatch::new_empty(state_schema(spec))
}

/// Counts one quarantine reason.
pub fn count(reasons: &mut BTreeMap<Reason, u64>, reason: Reason) {
    *reasons.entry(reason).or_default() += 1;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(dob: Option<i32>, dod: Option<i32>) -> PatientFacts {
        PatientFacts {
            person_key: "k".into(),
            date_of_birth: dob,
            date_of_death: dod,
        }
    }

    #[test]
    fn date_flags() {
        // (event day, birth, death, extracted day, expected)
        let cases = [
            (100, Some(50), None, 200, None),
            (40, Some(50), None, 200, Some("before_birth")),
            (150, Some(50), Some(120), 200, Some("after_death")),
            (250, Some(50), None, 200, Some("future")),
            (250, Some(50), Some(120), 200, Some("future")),
            (200, Some(50), None, 200, None),
        ];
        for (day, dob, dod, extracted, expected) in cases {
            assert_eq!(
                date_flag(day, &facts(dob, dod), extracted),
                expected,
                "{day} {dob:?} {dod:?}"
            );
        }
    }

    #[test]
    fn value_flags() {
        let cases = [
            (None, None, None),
            (Some(120.0), Some("mmHg"), None),
            (Some(120.0), Some("mm Hg"), None),
            (Some(120.0), None, Some("missing_unit")),
            (Some(120.0), Some("  "), Some("missing_unit")),
            (Some(120.0), Some("furlongs"), Some("unknown_unit")),
        ];
        for (value, unit, expected) in cases {
            assert_eq!(value_flag(value, unit), expected, "{value:?} {unit:?}");
        }
    }

    #[test]
    fn person_keys_link_only_verified_numbers() {
        let (a, sa) = person_key("A81001", "p1", Some("9434765919"));
        let (b, _) = person_key("B82005", "p9", Some("943 476 5919"));
        let (c, sc) = person_key("A81001", "p1", Some("9434765910"));
        let (d, _) = person_key("B82005", "p9", Some("9434765910"));
        assert_eq!(a, b, "same verified number links");
        assert_eq!(sa, NhsNumberStatus::Verified);
        assert_ne!(c, d, "invalid numbers never link");
        assert_eq!(sc, NhsNumberStatus::Invalid);
        assert!(a.starts_with('N') && c.starts_with('L'));
        let (e, se) = person_key("A81001", "p1", Some("0000000000"));
        let (f, _) = person_key("B82005", "p9", Some("0000000000"));
        assert_ne!(e, f, "placeholder numbers never link");
        assert_eq!(se, NhsNumberStatus::Placeholder);
        assert!(e.starts_with('L'));
    }

    #[test]
    fn values_that_are_no_measurement() {
        // (value, unit, kept value, flag)
        let cases = [
            (Some(f64::NAN), Some("mmHg"), None, Some("non_finite_value")),
            (
                Some(f64::INFINITY),
                Some("mmHg"),
                None,
                Some("non_finite_value"),
            ),
            (
                Some(f64::NEG_INFINITY),
                None,
                None,
                Some("non_finite_value"),
            ),
            (Some(48.0), Some("mmol/mol"), Some(48.0), None),
            (Some(48.0), None, Some(48.0), Some("missing_unit")),
            (None, Some("mmHg"), None, None),
        ];
        for (value, unit, kept, flag) in cases {
            assert_eq!(measured(value, unit), (kept, flag), "{value:?} {unit:?}");
        }
    }

    #[test]
    fn births_after_the_extract_are_dropped_and_flagged() {
        // 2026-03-31 is day 20543; 9999-12-31 is day 2932896.
        let extracted = 20543;
        let cases = [
            (Some(7000), (Some(7000), None)),
            (Some(extracted), (Some(extracted), None)),
            (Some(extracted + 1), (None, Some("future"))),
            (Some(2932896), (None, Some("future"))),
            (None, (None, None)),
        ];
        for (day, expected) in cases {
            assert_eq!(birth_date(day, extracted), expected, "{day:?}");
        }
    }
}
