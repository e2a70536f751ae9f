//! SRPrimaryCareMedication → canonical medications.
//!
//! TPP quirks handled here: `IDMultiLexDMD` is the dm+d code (−1 or empty:
//! `unmapped`); `MedicationQuantity` combines value and unit ("28 tablet");
//! medication can be future-dated (flagged `future`), and `DateMedicationEnd` is
//! only an expected end, so no course length is derived from it.

use std::collections::BTreeMap;

use datafusion::arrow::array::RecordBatch;

use super::tables::SR_PRIMARY_CARE_MEDICATION;
use crate::canonical::tables::{MedicationRow, MedicationsBuilder};
use crate::canonical::{CanonicalTable, Provenance};
use crate::ingest::quarantine::{QuarantineBuilder, Reason};
use crate::source::columns::{Columns, FLOOR_DAYS, int, raw_text, text, ts_day};
use crate::source::derive::{DerivedTable, PatientIndex, count, date_flag};

/// "28 tablet" → (28.0, "tablet"); "tablet" → (None, "tablet").
fn split_quantity(raw: Option<&str>) -> (Option<f64>, Option<&str>) {
    let Some(raw) = raw.map(str::trim).filter(|r| !r.is_empty()) else {
        return (None, None);
    };
    match raw.split_once(char::is_whitespace) {
        Some((number, unit)) => match number.parse::<f64>() {
            Ok(n) => (Some(n), Some(unit.trim()).filter(|u| !u.is_empty())),
            Err(_) => (None, Some(raw)),
        },
        None => match raw.parse::<f64>() {
            Ok(n) => (Some(n), None),
            Err(_) => (None, Some(raw)),
        },
    }
}

pub(super) fn derive(
    practice: &str,
    sr_medication: &RecordBatch,
    patients: &PatientIndex,
    quarantine: &mut QuarantineBuilder,
) -> DerivedTable {
    let c = Columns::new(sr_medication);
    let origin = c.origin();
    let (row_id, patient, date_event) = (
        c.i64("RowIdentifier"),
        c.i64("IDPatient"),
        c.ts("DateEvent"),
    );
    let (dmd, product, name) = (
        c.i64("IDMultiLexDMD"),
        c.i64("IDMultiLexProduct"),
        c.str("NameOfMedication"),
    );
    let (dosage, quantity) = (c.str("MedicationDosage"), c.str("MedicationQuantity"));

    let mut medications = MedicationsBuilder::default();
    let mut quarantined = BTreeMap::new();
    for i in 0..sr_medication.num_rows() {
        let id = int(row_id, i).unwrap_or_default().to_string();
        let patient_id = int(patient, i).map(|p| p.to_string()).unwrap_or_default();
        let Some(facts) = patients.get(&patient_id) else {
            quarantine.push(
                &SR_PRIMARY_CARE_MEDICATION,
                &c,
                i,
                Some(&id),
                Reason::OrphanPatient,
                format!("IDPatient {patient_id} is not in SRPatient"),
            );
            count(&mut quarantined, Reason::OrphanPatient);
            continue;
        };
        let dmd_code = int(dmd, i).filter(|d| *d > 0);
        let (code_system, source_code) = match (dmd_code, int(product, i).filter(|p| *p > 0)) {
            (Some(d), _) => ("dmd", d.to_string()),
            (None, Some(p)) => ("multilex", p.to_string()),
            (None, None) => {
                quarantine.push(
                    &SR_PRIMARY_CARE_MEDICATION,
                    &c,
                    i,
                    Some(&id),
                    Reason::MissingCode,
                    "IDMultiLexDMD and IDMultiLexProduct are both empty".into(),
                );
                count(&mut quarantined, Reason::MissingCode);
                continue;
            }
        };
        let (issue_date, flag) = match ts_day(date_event, i) {
            None => (None, Some("unknown_date")),
            Some(FLOOR_DAYS) => (None, Some("floor_date")),
            Some(day) => (Some(day), date_flag(day, facts, origin.extracted_day(i))),
        };
        let (qty, qty_unit) = split_quantity(raw_text(quantity, i));
        medications.append(
            &MedicationRow {
                person_key: &facts.person_key,
                patient_id: &patient_id,
                issue_date,
                date_precision: if issue_date.is_some() { "YMD" } else { "U" },
                date_flag: flag,
                code_system,
                source_code: &source_code,
                source_term: text(name, i),
                dmd_code,
                mapping_kind: if dmd_code.is_some() {
                    "exact"
                } else {
                    "unmapped"
                },
                dosage: raw_text(dosage, i),
                quantity: qty,
                quantity_unit: qty_unit,
                course_days: None,
            },
            &Provenance {
                practice,
                supplier: "tpp",
                source_table: SR_PRIMARY_CARE_MEDICATION.name,
                source_row_id: &id,
                extract_id: origin.extract_id.value(i),
                extracted_at: origin.extracted_at(i),
            },
        );
    }
    DerivedTable {
        table: CanonicalTable::Medications,
        source_table: SR_PRIMARY_CARE_MEDICATION.name,
        batch: medications.finish(),
        source_rows: sr_medication.num_rows() as u64,
        quarantined,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medication_quantities() {
        let cases = [
            (Some("28 tablet"), (Some(28.0), Some("tablet"))),
            (Some("  100 ml "), (Some(100.0), Some("ml"))),
            (Some("56"), (Some(56.0), None)),
            (Some("tablet"), (None, Some("tablet"))),
            (Some("one pack"), (None, Some("one pack"))),
            (Some(""), (None, None)),
            (None, (None, None)),
        ];
        for (raw, expected) in cases {
            assert_eq!(split_quantity(raw), expected, "{raw:?}");
        }
    }
}
