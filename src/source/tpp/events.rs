//! SRCode → canonical events.
//!
//! TPP quirks handled here:
//! - Every coded row has a CTV3 code and, from v90, a SNOMED code. Where
//!   `SNOMEDCode` is empty or ≤ 0 the CTV3 code is mapped with `SRCtv3ToSnomed`
//!   (`ctv3_map`); local Y-codes may have no map (`unmapped`).
//! - `NumericValue` is never null: use value and unit only when `IsNumeric` is
//!   true; a numeric row holding 0 or −1 is a placeholder (`placeholder_value`).
//! - 1900-01-01 is the floor for undated events (`date_flag = floor_date`).
//! - Rows may be recorded at another organisation (`IDOrganisationDoneAt`).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use datafusion::arrow::array::RecordBatch;

use super::tables::SR_CODE;
use crate::canonical::tables::{EventRow, EventsBuilder};
use crate::canonical::{CanonicalTable, Provenance};
use crate::ingest::quarantine::{QuarantineBuilder, Reason};
use crate::source::columns::{Columns, FLOOR_DAYS, flag, float, int, raw_text, text, ts_day};
use crate::source::derive::{DerivedTable, PatientIndex, count, date_flag, measured};

/// A SNOMED code as TPP sends it: empty, "-1", "0" or non-numeric mean "none".
pub(super) fn snomed(raw: Option<&str>) -> Option<i64> {
    raw?.parse::<i64>().ok().filter(|c| *c > 0)
}

/// The TPP placeholder values that mean "no value" on a numeric row.
fn is_placeholder(value: f64) -> bool {
    value == 0.0 || value == -1.0
}

fn ctv3_map(map: &RecordBatch) -> HashMap<String, i64> {
    let c = Columns::new(map);
    let (ctv3, sct) = (c.str("Ctv3Code"), c.str("SnomedCode"));
    (0..map.num_rows())
        // CTV3 codes are case-sensitive: never fold them.
        .filter_map(|i| Some((raw_text(ctv3, i)?.to_string(), snomed(text(sct, i))?)))
        .collect()
}

pub(super) fn derive(
    practice: &str,
    sr_code: &RecordBatch,
    map: &RecordBatch,
    patients: &PatientIndex,
    quarantine: &mut QuarantineBuilder,
) -> (DerivedTable, BTreeSet<&'static str>) {
    let ctv3_to_snomed = ctv3_map(map);
    let c = Columns::new(sr_code);
    let origin = c.origin();
    let (row_id, patient, date_event) = (
        c.i64("RowIdentifier"),
        c.i64("IDPatient"),
        c.ts("DateEvent"),
    );
    let (ctv3, ctv3_text, sct, sct_text) = (
        c.str("CTV3Code"),
        c.str("CTV3Text"),
        c.str("SNOMEDCode"),
        c.str("SNOMEDText"),
    );
    let (is_numeric, value_col, unit_col, comparator) = (
        c.bool("IsNumeric"),
        c.f64("NumericValue"),
        c.str("NumericUnit"),
        c.str("NumericComparator"),
    );
    let (done_at, org) = (c.str("IDOrganisationDoneAt"), c.str("IDOrganisation"));

    let mut events = EventsBuilder::default();
    let mut quarantined = BTreeMap::new();
    let mut code_systems = BTreeSet::new();
    for i in 0..sr_code.num_rows() {
        let id = int(row_id, i).unwrap_or_default().to_string();
        let patient_id = int(patient, i).map(|p| p.to_string()).unwrap_or_default();
        let Some(facts) = patients.get(&patient_id) else {
            quarantine.push(
                &SR_CODE,
                &c,
                i,
                Some(&id),
                Reason::OrphanPatient,
                format!("IDPatient {patient_id} is not in SRPatient"),
            );
            count(&mut quarantined, Reason::OrphanPatient);
            continue;
        };
        let sct_code = text(sct, i);
        let ctv3_code = raw_text(ctv3, i).filter(|c| !c.trim().is_empty());
        let (code_system, source_code, term, concept, mapping_kind) =
            match (snomed(sct_code), ctv3_code) {
                (Some(concept), _) => (
                    "snomed",
                    sct_code.unwrap_or_default(),
                    text(sct_text, i),
                    Some(concept),
                    "exact",
                ),
                (None, Some(ctv3)) => match ctv3_to_snomed.get(ctv3) {
                    Some(concept) => ("ctv3", ctv3, text(ctv3_text, i), Some(*concept), "ctv3_map"),
                    None => ("ctv3", ctv3, text(ctv3_text, i), None, "unmapped"),
                },
                (None, None) => {
                    quarantine.push(
                        &SR_CODE,
                        &c,
                        i,
                        Some(&id),
                        Reason::MissingCode,
                        "CTV3Code and SNOMEDCode are both empty".into(),
                    );
                    count(&mut quarantined, Reason::MissingCode);
                    continue;
                }
            };
        code_systems.insert(code_system);
        let (event_date, date_flag) = match ts_day(date_event, i) {
            None => (None, Some("unknown_date")),
            Some(FLOOR_DAYS) => (None, Some("floor_date")),
            Some(day) => (Some(day), date_flag(day, facts, origin.extracted_day(i))),
        };
        let numeric = flag(is_numeric, i);
        let raw_value = float(value_col, i).filter(|_| numeric);
        let placeholder = raw_value.is_some_and(is_placeholder);
        let unit = raw_text(unit_col, i).filter(|_| numeric);
        let (value, flag_of_value) = measured(raw_value.filter(|v| !is_placeholder(*v)), unit);
        events.append(
            &EventRow {
                person_key: &facts.person_key,
                patient_id: &patient_id,
                event_date,
                date_precision: if event_date.is_some() { "YMD" } else { "U" },
                date_flag,
                recorded_at: text(done_at, i).or(text(org, i)),
                code_system,
                source_code,
                source_term: term,
                snomed_concept_id: concept,
                mapping_kind,
                value,
                comparator: text(comparator, i).filter(|_| value.is_some()),
                unit,
                value_flag: if placeholder {
                    Some("placeholder_value")
                } else {
                    flag_of_value
                },
                parent_event_id: None,
            },
            &Provenance {
                practice,
                supplier: "tpp",
                source_table: SR_CODE.name,
                source_row_id: &id,
                extract_id: origin.extract_id.value(i),
                extracted_at: origin.extracted_at(i),
            },
        );
    }
    let table = DerivedTable {
        table: CanonicalTable::Events,
        source_table: SR_CODE.name,
        batch: events.finish(),
        source_rows: sr_code.num_rows() as u64,
        quarantined,
    };
    (table, code_systems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snomed_codes_as_sent() {
        let cases = [
            (Some("44054006"), Some(44054006)),
            (Some("-1"), None),
            (Some("0"), None),
            (Some("X"), None),
            (None, None),
        ];
        for (raw, expected) in cases {
            assert_eq!(snomed(raw), expected, "{raw:?}");
        }
    }

    #[test]
    fn placeholders() {
        let cases = [
            (0.0, true),
            (-1.0, true),
            (0.5, false),
            (140.0, false),
            (-2.0, false),
        ];
        for (value, expected) in cases {
            assert_eq!(is_placeholder(value), expected, "{value}");
        }
    }
}
