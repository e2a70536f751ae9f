//! The catalogue of data-quality checks and the measurement ranges: a flat
//! list of like things, one entry per check.
//!
//! Checks follow the harmonised framework of Kahn et al. (2016), as OHDSI's
//! DataQualityDashboard uses it: *conformance* (values obey the formats and
//! vocabularies they claim), *completeness* (values are present),
//! *plausibility* (values are believable). Each check counts offending rows
//! (numerator) among the rows it applies to (denominator) for one practice;
//! it passes when the percentage is at most its threshold. Extract freshness
//! is measured in days instead. Every check is documented in
//! `docs/quality.md`; the test `catalogue_is_documented` keeps the two in step.

use serde::Serialize;

use crate::canonical::CanonicalTable;

/// Kahn et al. (2016) categories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Conformance,
    Completeness,
    Plausibility,
}

/// What a check's number is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Measure {
    /// numerator / denominator × 100; threshold in percent (0–100).
    Percent,
    /// A number of days; threshold in days.
    Days,
}

/// What a check reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    /// Rows of one canonical table (offending rows are listed).
    Table(CanonicalTable),
    /// The practice's state and quarantine (nothing to list row by row).
    Practice,
}

/// One check of the catalogue.
#[derive(Debug, Clone, Copy)]
pub struct CheckDef {
    pub id: &'static str,
    pub category: Category,
    pub subject: Subject,
    pub measure: Measure,
    pub description: &'static str,
    /// Default threshold: percent, or days for [`Measure::Days`].
    pub threshold: f64,
}

use CanonicalTable::*;
use Category::*;

const fn pct(
    id: &'static str,
    category: Category,
    table: CanonicalTable,
    threshold: f64,
    description: &'static str,
) -> CheckDef {
    CheckDef {
        id,
        category,
        subject: Subject::Table(table),
        measure: Measure::Percent,
        description,
        threshold,
    }
}

/// Every check, in report order.
#[rustfmt::skip]
pub const CHECKS: &[CheckDef] = &[
    pct("patients.nhs_number_missing", Completeness, Patients, 1.0, "patient records without an NHS number"),
    pct("patients.nhs_number_invalid", Conformance, Patients, 0.5, "patient records whose NHS number fails Modulus 11"),
    pct("patients.nhs_number_placeholder", Conformance, Patients, 0.0, "patient records carrying a placeholder NHS number"),
    pct("patients.nhs_number_unverified", Completeness, Patients, 2.0, "patient records without a verified NHS number (missing, invalid or placeholder), so never linked across practices"),
    pct("patients.test_patient", Plausibility, Patients, 0.5, "test or dummy patients"),
    pct("patients.duplicate_in_practice", Plausibility, Patients, 0.0, "patient records sharing a verified NHS number with another record of the same practice"),
    pct("patients.at_other_practice", Plausibility, Patients, 100.0, "patient records whose verified NHS number also has a record at another practice of the store (expected when a patient moved)"),
    pct("patients.registered_elsewhere", Plausibility, Patients, 0.0, "patient records of a linked person with overlapping GMS registrations at two practices"),
    pct("patients.sex_unknown", Completeness, Patients, 1.0, "patient records with sex missing or unknown (U)"),
    pct("patients.date_of_birth_missing", Completeness, Patients, 0.5, "patient records without a date of birth (including dropped ones)"),
    pct("patients.date_of_birth_flagged", Plausibility, Patients, 0.0, "patient records whose date of birth was dropped as implausible (date_of_birth_flag)"),
    pct("events.before_birth", Plausibility, Events, 0.5, "events dated before the patient's birth"),
    pct("events.after_death", Plausibility, Events, 0.5, "events dated after the patient's death"),
    pct("events.future", Plausibility, Events, 0.5, "events dated after their delivery was extracted"),
    pct("events.floor_date", Completeness, Events, 1.0, "events on a supplier floor date (undated)"),
    pct("events.unknown_date", Completeness, Events, 1.0, "events whose date is unknown"),
    pct("events.partial_date", Completeness, Events, 5.0, "events dated to the year or month only"),
    pct("codes.events_unmapped", Conformance, Events, 1.0, "events whose code has no SNOMED CT concept"),
    pct("codes.events_local_only", Conformance, Events, 2.0, "events recorded with a supplier-local code (EMIS local code, TPP Y-code), mapped or not"),
    pct("codes.events_not_in_release", Conformance, Events, 0.5, "events whose SNOMED CT concept is not in the terminology release"),
    pct("codes.events_inactive", Conformance, Events, 1.0, "events whose SNOMED CT concept is inactive in the release and had no replacement"),
    pct("codes.events_history_substituted", Conformance, Events, 5.0, "events whose inactive concept was replaced by its successor (mapping_kind history_substituted)"),
    pct("measurements.missing_unit", Conformance, Events, 1.0, "numeric values without a unit"),
    pct("measurements.unknown_unit", Conformance, Events, 1.0, "numeric values with a unit phm does not recognise"),
    pct("measurements.placeholder_value", Plausibility, Events, 0.5, "numeric rows holding a placeholder 0 or -1 (value dropped)"),
    pct("measurements.non_finite_value", Conformance, Events, 0.0, "numeric rows holding NaN or infinity (value dropped)"),
    pct("measurements.implausible_systolic_bp", Plausibility, Events, 0.1, "systolic blood pressures outside the plausible range"),
    pct("measurements.implausible_hba1c", Plausibility, Events, 0.1, "HbA1c values outside the plausible range for their unit"),
    pct("measurements.implausible_egfr", Plausibility, Events, 0.1, "eGFR values outside the plausible range"),
    pct("measurements.implausible_total_cholesterol", Plausibility, Events, 0.1, "total cholesterol values outside the plausible range"),
    pct("measurements.implausible_bmi", Plausibility, Events, 0.1, "BMI values outside the plausible range"),
    pct("measurements.implausible_weight", Plausibility, Events, 0.1, "body weights outside the plausible range"),
    pct("medications.no_dmd_code", Completeness, Medications, 1.0, "medication issues without a dm+d code"),
    pct("medications.dmd_not_in_release", Conformance, Medications, 0.5, "medication issues whose dm+d code is not in the release"),
    pct("medications.history_substituted", Conformance, Medications, 5.0, "medication issues whose previous dm+d code was replaced by the current one"),
    pct("medications.future", Plausibility, Medications, 0.5, "medication issues dated after their delivery was extracted"),
    pct("medications.unknown_date", Completeness, Medications, 1.0, "medication issues whose date is unknown"),
    pct("registrations.ends_before_start", Plausibility, Registrations, 0.0, "registrations that end before they start"),
    pct("registrations.overlapping", Plausibility, Registrations, 0.5, "GMS registrations of one patient in the practice's record that overlap another GMS registration of the same patient"),
    CheckDef { id: "practice.extract_age", category: Plausibility, subject: Subject::Practice, measure: Measure::Days, description: "days from the latest extraction to the as-of date", threshold: 7.0 },
    CheckDef { id: "practice.quarantine_rate", category: Conformance, subject: Subject::Practice, measure: Measure::Percent, description: "source rows quarantined at ingest, of rows loaded and quarantined", threshold: 1.0 },
    CheckDef { id: "practice.capability_gaps", category: Completeness, subject: Subject::Practice, measure: Measure::Percent, description: "canonical tables the practice holds no rows of, of the four", threshold: 0.0 },
];

/// The check with this id.
pub fn find(id: &str) -> Option<&'static CheckDef> {
    CHECKS.iter().find(|c| c.id == id)
}

/// A plausible range for one measure, in one unit.
#[derive(Debug, Clone, Copy)]
pub struct Range {
    /// The check it feeds (`measurements.implausible_<measure>`).
    pub check: &'static str,
    /// SNOMED CT concepts recording the measure.
    pub concepts: &'static [i64],
    /// The canonical unit (`canonical::units`) the range is in; values in
    /// another unit are not compared (unknown units are their own check).
    pub unit: &'static str,
    pub low: f64,
    pub high: f64,
}

/// Systolic blood pressure: the QOF codelist `valuesets/SYSTOLIC_BP`
/// (fixtures/codelists/opensafely-systolic-blood-pressure-qof.csv), the
/// measurement concepts only (707303003, a finding, is left out).
const SYSTOLIC_BP: &[i64] = &[
    1162737008,
    198081000000101,
    2181381000000109,
    2181401000000109,
    2181421000000100,
    251070002,
    271649006,
    314438006,
    314439003,
    314440001,
    314441002,
    314444005,
    314445006,
    314446007,
    314447003,
    314448008,
    314449000,
    314464000,
    400974009,
    407554009,
    407556006,
    413606001,
    716579001,
    72313002,
];

/// HbA1c: `valuesets/HBA1C_TESTS` (opensafely-glycated-haemoglobin-hba1c-tests.csv),
/// the level and measurement concepts (the two findings are left out).
const HBA1C: &[i64] = &[
    1003671000000109,
    144176003,
    166902009,
    313835008,
    371981000000106,
    43396009,
    491841000000105,
    999791000000106,
];

/// eGFR: `valuesets/DOAC_EGFR` (user-RachelS99-doac-estimated-glomerular-filtration-rate.csv),
/// the estimated-rate concepts that carry a value in mL/min/1.73m2.
const EGFR: &[i64] = &[
    1011481000000105,
    1011491000000107,
    1020291000000106,
    1107411000000104,
    166181000000100,
    222521000000103,
    857971000000104,
    963601000000106,
    963621000000102,
    996231000000108,
];

/// Total cholesterol: `valuesets/CHOLESTEROL_TESTS` (opensafely-cholesterol-tests.csv),
/// the level concepts (findings and pre-treatment levels included, measurements too).
const TOTAL_CHOLESTEROL: &[i64] = &[
    1005671000000105,
    1017161000000104,
    114711000000101,
    119291000000100,
    270996006,
    389608004,
    390340002,
    390956002,
    393025009,
    393981000,
    395153009,
    412808005,
    850981000000101,
    853681000000104,
];

/// BMI and body weight: the SNOMED CT observable entities phm's generator
/// and EMIS/TPP record them under (no codelist in `valuesets/` yet).
const BMI: &[i64] = &[60621009];
const WEIGHT: &[i64] = &[27113001];

/// Plausible ranges. Source: phm's own choice, as limits of physiological
/// possibility rather than clinical reference ranges, so that a value beyond
/// them is almost surely a keying or unit error (e.g. weight in grams, HbA1c
/// % keyed as mmol/mol). Documented in `docs/quality.md`; change both together.
#[rustfmt::skip]
pub const RANGES: &[Range] = &[
    Range { check: "measurements.implausible_systolic_bp", concepts: SYSTOLIC_BP, unit: "mmHg", low: 50.0, high: 300.0 },
    Range { check: "measurements.implausible_hba1c", concepts: HBA1C, unit: "mmol/mol", low: 15.0, high: 200.0 },
    Range { check: "measurements.implausible_hba1c", concepts: HBA1C, unit: "%", low: 3.0, high: 20.0 },
    Range { check: "measurements.implausible_egfr", concepts: EGFR, unit: "mL/min/1.73m2", low: 1.0, high: 200.0 },
    Range { check: "measurements.implausible_total_cholesterol", concepts: TOTAL_CHOLESTEROL, unit: "mmol/L", low: 1.0, high: 20.0 },
    Range { check: "measurements.implausible_bmi", concepts: BMI, unit: "kg/m2", low: 10.0, high: 100.0 },
    Range { check: "measurements.implausible_weight", concepts: WEIGHT, unit: "kg", low: 0.3, high: 350.0 },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_thresholds_in_range() {
        let mut ids: Vec<&str> = CHECKS.iter().map(|c| c.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), CHECKS.len());
        for c in CHECKS {
            assert!(c.threshold >= 0.0, "{}", c.id);
            if c.measure == Measure::Percent {
                assert!(c.threshold <= 100.0, "{}", c.id);
            }
        }
    }

    #[test]
    fn every_range_feeds_a_check_and_every_implausible_check_has_a_range() {
        for r in RANGES {
            assert!(find(r.check).is_some(), "{}", r.check);
            assert!(crate::canonical::units::canonical_unit(r.unit) == Some(r.unit));
            assert!(r.low < r.high);
        }
        for c in CHECKS.iter().filter(|c| c.id.contains("implausible")) {
            assert!(RANGES.iter().any(|r| r.check == c.id), "{}", c.id);
        }
    }

    #[test]
    fn catalogue_is_documented() {
        let doc = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/quality.md"),
        )
        .unwrap();
        for c in CHECKS {
            assert!(
                doc.contains(&format!("`{}`", c.id)),
                "{} not in docs/quality.md",
                c.id
            );
        }
    }
}
