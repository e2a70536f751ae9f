//! Prescribing_IssueRecord → canonical medications (one row per issue).
//!
//! EMIS quirks handled here: `CodeId` is looked up in `Coding_DrugCode` for the
//! dm+d product; a CodeId without a coding row yet is quarantined and retried; a
//! coding row without `DmdProductCodeId` is a local drug: `unmapped`.

use std::collections::{BTreeMap, HashMap};

use datafusion::arrow::array::RecordBatch;

use super::effective_date;
use super::tables::{CODING_DRUG_CODE, PRESCRIBING_ISSUE_RECORD};
use crate::canonical::tables::{MedicationRow, MedicationsBuilder};
use crate::canonical::{CanonicalTable, Provenance};
use crate::ingest::quarantine::{QuarantineBuilder, Reason};
use crate::source::columns::{Columns, date, float, int, raw_text, text};
use crate::source::derive::{DerivedTable, PatientIndex, count};

fn drug_codes(coding: &RecordBatch) -> HashMap<i64, (Option<i64>, Option<String>)> {
    let c = Columns::new(coding);
    let (id, dmd, term) = (c.i64("CodeId"), c.i64("DmdProductCodeId"), c.str("Term"));
    (0..coding.num_rows())
        .filter_map(|i| {
            Some((
                int(id, i)?,
                (
                    int(dmd, i).filter(|d| *d > 0),
                    text(term, i).map(String::from),
                ),
            ))
        })
        .collect()
}

pub(super) fn derive(
    practice: &str,
    issues: &RecordBatch,
    coding: &RecordBatch,
    patients: &PatientIndex,
    quarantine: &mut QuarantineBuilder,
) -> DerivedTable {
    let codes = drug_codes(coding);
    let c = Columns::new(issues);
    let origin = c.origin();
    let (guid, patient, code_id) = (
        c.str("IssueRecordGuid"),
        c.str("PatientGuid"),
        c.i64("CodeId"),
    );
    let (effective, precision_col) = (c.date("EffectiveDate"), c.str("EffectiveDatePrecision"));
    let (dosage, quantity, quantity_unit, course) = (
        c.str("Dosage"),
        c.f64("Quantity"),
        c.str("QuantityUnit"),
        c.i64("CourseDurationInDays"),
    );

    let mut medications = MedicationsBuilder::default();
    let mut quarantined = BTreeMap::new();
    for i in 0..issues.num_rows() {
        let row_id = text(guid, i).unwrap_or_default();
        let mut reject = |reason: Reason, detail: String| {
            quarantine.push(
                &PRESCRIBING_ISSUE_RECORD,
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
        let Some((dmd, term)) = codes.get(&code) else {
            reject(
                Reason::UnknownCodeId,
                format!(
                    "CodeId {code} has no {} row yet; it is retried on every ingest",
                    CODING_DRUG_CODE.name
                ),
            );
            continue;
        };
        let (issue_date, date_precision, flag) = match effective_date(
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
        let source_code = code.to_string();
        medications.append(
            &MedicationRow {
                person_key: &facts.person_key,
                patient_id,
                issue_date,
                date_precision,
                date_flag: flag,
                code_system: "emis_code_id",
                source_code: &source_code,
                source_term: term.as_deref(),
                dmd_code: *dmd,
                mapping_kind: if dmd.is_some() { "exact" } else { "unmapped" },
                dosage: raw_text(dosage, i),
                quantity: float(quantity, i),
                quantity_unit: text(quantity_unit, i),
                course_days: int(course, i),
            },
            &Provenance {
                practice,
                supplier: "emis",
                source_table: PRESCRIBING_ISSUE_RECORD.name,
                source_row_id: row_id,
                extract_id: origin.extract_id.value(i),
                extracted_at: origin.extracted_at(i),
            },
        );
    }
    DerivedTable {
        table: CanonicalTable::Medications,
        source_table: PRESCRIBING_ISSUE_RECORD.name,
        batch: medications.finish(),
        source_rows: issues.num_rows() as u64,
        quarantined,
    }
}
