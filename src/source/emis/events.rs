//! CareRecord_Observation → canonical events.
//!
//! EMIS quirks handled here:
//! - Rows carry a local `CodeId`; `Coding_ClinicalCode` maps it to SNOMED CT.
//!   A CodeId without a coding row yet is quarantined `unknown_code_id` and
//!   re-resolved on every later ingest (the coding row may arrive later). A
//!   coding row without `SnomedCTConceptId` is an EMIS local code: `unmapped`.
//! - Dates carry a precision: `U` means no usable date (`date_flag = unknown_date`);
//!   `Y`/`YM` dates are already padded to the first of the year/month.
//! - A missing numeric value is null (not 0). Blood pressure is a parent row with
//!   systolic and diastolic children via `ParentObservationGuid`.

use std::collections::{BTreeMap, HashMap};

use datafusion::arrow::array::RecordBatch;

use super::effective_date;
use super::tables::{CARE_RECORD_OBSERVATION, CODING_CLINICAL_CODE};
use crate::canonical::tables::{EventRow, EventsBuilder};
use crate::canonical::{CanonicalTable, Provenance};
use crate::ingest::quarantine::{QuarantineBuilder, Reason};
use crate::source::columns::{Columns, date, float, int, raw_text, text};
use crate::source::derive::{DerivedTable, PatientIndex, count, measured};

/// CodeId → (SNOMED concept if national, term).
pub(super) fn clinical_codes(coding: &RecordBatch) -> HashMap<i64, (Option<i64>, Option<String>)> {
    let c = Columns::new(coding);
    let (id, snomed, term) = (c.i64("CodeId"), c.i64("SnomedCTConceptId"), c.str("Term"));
    (0..coding.num_rows())
        .filter_map(|i| {
            Some((
                int(id, i)?,
                (
                    int(snomed, i).filter(|s| *s > 0),
                    text(term, i).map(String::from),
                ),
            ))
        })
        .collect()
}

pub(super) fn derive(
    practice: &str,
    observations: &RecordBatch,
    coding: &RecordBatch,
    patients: &PatientIndex,
    quarantine: &mut QuarantineBuilder,
) -> DerivedTable {
    let codes = clinical_codes(coding);
    let c = Columns::new(observations);
    let origin = c.origin();
    let (guid, patient, code_id) = (
        c.str("ObservationGuid"),
        c.str("PatientGuid"),
        c.i64("CodeId"),
    );
    let (effective, precision_col, parent) = (
        c.date("EffectiveDate"),
        c.str("EffectiveDatePrecision"),
        c.str("ParentObservationGuid"),
    );
    let (value, unit) = (c.f64("Value"), c.str("NumericUnit"));

    let mut events = EventsBuilder::default();
    let mut quarantined = BTreeMap::new();
    for i in 0..observations.num_rows() {
        let row_id = text(guid, i).unwrap_or_default();
        let mut reject = |reason: Reason, detail: String| {
            quarantine.push(
                &CARE_RECORD_OBSERVATION,
                &c,
                i,
                Some(row_id),
                reason,
                detail,
            );
            count(&mut quarantined, reason);
        };
        let patient_id = text(patient, i).unwrap_or_default();
        let Some(facts) = patients.get(patient_id) else {
            reject(
                Reason::OrphanPatient,
                format!("PatientGuid {patient_id} is not in Admin_Patient"),
            );
            continue;
        };
        let Some(code) = int(code_id, i) else {
            reject(Reason::MissingCode, "CodeId is null".into());
            continue;
        };
        let Some((snomed, term)) = codes.get(&code) else {
            reject(
                Reason::UnknownCodeId,
                format!(
                    "CodeId {code} has no {} row yet; it is retried on every ingest",
                    CODING_CLINICAL_CODE.name
                ),
            );
            continue;
        };
        let (event_date, date_precision, flag) = match effective_date(
            text(precision_col, i),
            date(effective, i),
            facts,
            origin.extracted_day(i),
        ) {
            Ok(d) => d,
            Err(detail) => {
                reject(Reason::InvalidDatePrecision, detail);
                continue;
            }
        };
        let unit = raw_text(unit, i);
        let (value, value_flag) = measured(float(value, i), unit);
        let source_code = code.to_string();
        events.append(
            &EventRow {
                person_key: &facts.person_key,
                patient_id,
                event_date,
                date_precision,
                date_flag: flag,
                recorded_at: Some(practice),
                code_system: "emis_code_id",
                source_code: &source_code,
                source_term: term.as_deref(),
                snomed_concept_id: *snomed,
                mapping_kind: if snomed.is_some() {
                    "exact"
                } else {
                    "unmapped"
                },
                value,
                comparator: None,
                unit,
                value_flag,
                parent_event_id: text(parent, i),
            },
            &Provenance {
                practice,
                supplier: "emis",
                source_table: CARE_RECORD_OBSERVATION.name,
                source_row_id: row_id,
                extract_id: origin.extract_id.value(i),
                extracted_at: origin.extracted_at(i),
            },
        );
    }
    DerivedTable {
        table: CanonicalTable::Events,
        source_table: CARE_RECORD_OBSERVATION.name,
        batch: events.finish(),
        source_rows: observations.num_rows() as u64,
        quarantined,
    }
}
