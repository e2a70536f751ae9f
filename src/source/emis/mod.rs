//! EMIS Web adapter: Admin_Patient, CareRecord_Observation and
//! Prescribing_IssueRecord into canonical patients, registrations, events and
//! medications (EXTRACTS.md, "EMIS Web extract").

mod events;
mod medications;
mod patients;
pub mod tables;

use std::collections::BTreeSet;

use crate::ingest::quarantine::QuarantineBuilder;
pub use crate::source::derive::States;
use crate::source::derive::{Derived, PatientFacts, date_flag, state_of};

/// EMIS date precisions (`U` = unknown: the row has no usable date).
pub(crate) fn precision(raw: Option<&str>) -> Option<&'static str> {
    match raw {
        // A missing precision on a dated row is read as a full date.
        None => Some("YMD"),
        Some("U") => Some("U"),
        Some("Y") => Some("Y"),
        Some("YM") => Some("YM"),
        Some("YMD") => Some("YMD"),
        Some("YMDT") => Some("YMDT"),
        Some(_) => None,
    }
}

/// An EMIS effective date read with its precision: (day, precision, date flag).
/// `U` or no date gives no day and `unknown_date`; an undefined precision is the
/// quarantine detail.
pub(crate) fn effective_date(
    raw_precision: Option<&str>,
    day: Option<i32>,
    facts: &PatientFacts,
    extracted_day: i32,
) -> Result<(Option<i32>, &'static str, Option<&'static str>), String> {
    let Some(precision) = precision(raw_precision) else {
        return Err(format!(
            "EffectiveDatePrecision {:?} is not U, Y, YM, YMD or YMDT",
            raw_precision.unwrap_or_default()
        ));
    };
    Ok(match (precision, day) {
        ("U", _) | (_, None) => (None, "U", Some("unknown_date")),
        (_, Some(day)) => (Some(day), precision, date_flag(day, facts, extracted_day)),
    })
}

pub fn derive(practice: &str, states: &States) -> Derived {
    let mut quarantine = QuarantineBuilder::new(practice, "emis");
    let admin = &state_of(states, &tables::ADMIN_PATIENT);
    let (patients, registrations, index) = patients::derive(practice, admin, &mut quarantine);
    let clinical_codes = &state_of(states, &tables::CODING_CLINICAL_CODE);
    let observations = &state_of(states, &tables::CARE_RECORD_OBSERVATION);
    let events = events::derive(
        practice,
        observations,
        clinical_codes,
        &index,
        &mut quarantine,
    );
    let drug_codes = &state_of(states, &tables::CODING_DRUG_CODE);
    let issues = &state_of(states, &tables::PRESCRIBING_ISSUE_RECORD);
    let medications = medications::derive(practice, issues, drug_codes, &index, &mut quarantine);
    let mut code_systems = BTreeSet::new();
    if events.loaded() > 0 || medications.loaded() > 0 {
        code_systems.insert("emis_code_id");
    }
    if events.loaded() > 0 {
        code_systems.insert("snomed");
    }
    if medications.loaded() > 0 {
        code_systems.insert("dmd");
    }
    Derived {
        tables: vec![patients, registrations, events, medications],
        quarantine,
        code_systems,
    }
}

#[cfg(test)]
mod tests {
    use super::precision;

    #[test]
    fn date_precisions() {
        let cases = [
            (None, Some("YMD")),
            (Some("U"), Some("U")),
            (Some("Y"), Some("Y")),
            (Some("YM"), Some("YM")),
            (Some("YMD"), Some("YMD")),
            (Some("YMDT"), Some("YMDT")),
            (Some("D"), None),
            (Some("ymd"), None),
        ];
        for (raw, expected) in cases {
            assert_eq!(precision(raw), expected, "{raw:?}");
        }
    }
}
