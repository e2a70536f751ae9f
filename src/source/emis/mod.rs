//! EMIS Web adapter: Admin_Patient, CareRecord_Observation and
//! Prescribing_IssueRecord into canonical patients, registrations, events and
//! medications (EXTRACTS.md, "EMIS Web extract").

mod events;
mod medications;
mod patients;
pub mod tables;

use std::collections::{BTreeSet, HashMap};

use datafusion::arrow::array::RecordBatch;

use crate::ingest::quarantine::QuarantineBuilder;
use crate::source::derive::Derived;
use crate::source::read::state_schema;
use crate::source::table::TableSpec;

/// State batches of a practice, by table name; an absent table is empty.
pub type States = HashMap<&'static str, RecordBatch>;

fn state<'a>(
    states: &'a States,
    spec: &'static TableSpec,
    empty: &'a mut Option<RecordBatch>,
) -> &'a RecordBatch {
    match states.get(spec.name) {
        Some(b) => b,
        None => empty.insert(RecordBatch::new_empty(state_schema(spec))),
    }
}

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

pub fn derive(practice: &str, states: &States) -> Derived {
    let mut quarantine = QuarantineBuilder::new(practice, "emis");
    let (mut e1, mut e2, mut e3, mut e4, mut e5) = (None, None, None, None, None);
    let admin = state(states, &tables::ADMIN_PATIENT, &mut e1);
    let (patients, registrations, index) = patients::derive(practice, admin, &mut quarantine);
    let clinical_codes = state(states, &tables::CODING_CLINICAL_CODE, &mut e2);
    let observations = state(states, &tables::CARE_RECORD_OBSERVATION, &mut e3);
    let events = events::derive(
        practice,
        observations,
        clinical_codes,
        &index,
        &mut quarantine,
    );
    let drug_codes = state(states, &tables::CODING_DRUG_CODE, &mut e4);
    let issues = state(states, &tables::PRESCRIBING_ISSUE_RECORD, &mut e5);
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
