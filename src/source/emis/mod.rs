//! EMIS Web adapter: Admin_Patient, CareRecord_Observation and
//! Prescribing_IssueRecord into canonical patients, registrations, events and
//! medications (EXTRACTS.md, "EMIS Web extract").

mod events;
mod medications;
mod patients;
pub mod tables;

use std::collections::BTreeSet;

use crate::ingest::quarantine::QuarantineBuilder;
use crate::source::derive::{CanonicalSink, Derivation, PatientFacts, StateSource, date_flag};
use crate::store::StoreError;

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

/// Derives the canonical tables of an EMIS practice from its source state
/// into `out`; observations and issues are read a batch at a time.
pub fn derive(
    practice: &str,
    state: &dyn StateSource,
    out: &mut dyn CanonicalSink,
) -> Result<Derivation, StoreError> {
    let mut quarantine = QuarantineBuilder::new(practice, "emis");
    let admin = &state.whole(&tables::ADMIN_PATIENT)?;
    let (patients, registrations, index) = patients::derive(practice, admin, &mut quarantine);
    out.push(patients)?;
    out.push(registrations)?;
    let clinical_codes = &state.whole(&tables::CODING_CLINICAL_CODE)?;
    let mut events_loaded = 0;
    state.batches(&tables::CARE_RECORD_OBSERVATION, &mut |observations| {
        let events = events::derive(
            practice,
            &observations,
            clinical_codes,
            &index,
            &mut quarantine,
        );
        events_loaded += events.loaded();
        out.push(events)
    })?;
    let drug_codes = &state.whole(&tables::CODING_DRUG_CODE)?;
    let mut medications_loaded = 0;
    state.batches(&tables::PRESCRIBING_ISSUE_RECORD, &mut |issues| {
        let medications =
            medications::derive(practice, &issues, drug_codes, &index, &mut quarantine);
        medications_loaded += medications.loaded();
        out.push(medications)
    })?;
    let mut code_systems = BTreeSet::new();
    if events_loaded > 0 || medications_loaded > 0 {
        code_systems.insert("emis_code_id");
    }
    if events_loaded > 0 {
        code_systems.insert("snomed");
    }
    if medications_loaded > 0 {
        code_systems.insert("dmd");
    }
    Ok(Derivation {
        quarantine,
        code_systems,
    })
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
