//! Defect injection end to end: every kind appears, each can be injected alone, each
//! recorded defect is visible in the row and file it names, and NHS numbers are
//! synthetic and valid except where a defect says otherwise.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use datafusion::arrow::array::{Date32Array, Float64Array};

use crate::nhs_number::is_valid;
use crate::source::manifest::Supplier;
use crate::source::{emis, tpp};
use crate::synth::SynthConfig;
use crate::synth::defects::ALL_KINDS;
use crate::synth::tests::recount::{
    cell, deliveries, is_delete, recount, strings, table_file, text,
};
use crate::synth::tests::{config, generate_small};
use crate::synth::truth::DefectKind;

#[test]
fn nhs_numbers_are_synthetic_and_valid_except_defects() {
    let dir = tempfile::tempdir().unwrap();
    let rates = BTreeMap::from([
        (DefectKind::InvalidNhsNumber, 0.05),
        (DefectKind::MissingNhsNumber, 0.05),
    ]);
    let truth = generate_small(&SynthConfig {
        defect_rates: rates,
        ..config(dir.path().to_path_buf())
    });
    let defective: HashMap<&str, DefectKind> = truth
        .defects
        .iter()
        .map(|d| (d.row_id.as_str(), d.kind))
        .collect();
    let mut seen = [0usize; 3];
    for practice in &truth.practices {
        for (dir, manifest) in deliveries(dir.path(), practice) {
            let (table, id_column, nhs_column) = match practice.supplier {
                Supplier::Emis => ("Admin_Patient", "PatientGuid", "NhsNumber"),
                Supplier::Tpp => ("SRPatient", "RowIdentifier", "NHSNumber"),
            };
            let batch = table_file(&dir, &manifest, table);
            let numbers = strings(&batch, nhs_column);
            for i in 0..batch.num_rows() {
                if is_delete(
                    if table == "SRPatient" {
                        &tpp::tables::SR_PATIENT
                    } else {
                        &emis::tables::ADMIN_PATIENT
                    },
                    &batch,
                    i,
                ) {
                    continue;
                }
                let id = cell(&batch, id_column, i).unwrap();
                let number = text(numbers, i).unwrap_or("");
                match defective.get(id.as_str()) {
                    Some(DefectKind::MissingNhsNumber) => {
                        assert!(number.is_empty());
                        seen[0] += 1;
                    }
                    Some(DefectKind::InvalidNhsNumber) => {
                        assert!(number.starts_with("999") && !is_valid(number), "{number}");
                        seen[1] += 1;
                    }
                    _ => {
                        assert!(number.starts_with("999") && is_valid(number), "{number}");
                        seen[2] += 1;
                    }
                }
            }
        }
    }
    assert!(seen.iter().all(|n| *n > 0), "{seen:?}");
}

#[test]
fn every_defect_kind_appears_at_a_high_rate() {
    let dir = tempfile::tempdir().unwrap();
    let rates: BTreeMap<DefectKind, f64> = ALL_KINDS.iter().map(|k| (*k, 0.05)).collect();
    let cfg = SynthConfig {
        patients: 200,
        deltas: 1,
        defect_rates: rates,
        ..config(dir.path().to_path_buf())
    };
    let truth = generate_small(&cfg);
    let found: BTreeSet<DefectKind> = truth.defects.iter().map(|d| d.kind).collect();
    assert_eq!(found, ALL_KINDS.iter().copied().collect::<BTreeSet<_>>());
    for practice in &truth.practices {
        assert_eq!(
            recount(dir.path(), practice, &truth),
            practice.expected_rows,
            "{}",
            practice.ods
        );
    }
    let mut seen = HashSet::new();
    for d in &truth.defects {
        assert!(
            seen.insert((&d.row_id, &d.extract_id, d.kind)),
            "defect recorded twice: {d:?}"
        );
        assert!(
            truth
                .practices
                .iter()
                .any(|p| p.ods == d.practice && p.deliveries.contains(&d.extract_id))
        );
    }
}

#[test]
fn each_defect_kind_alone_at_rate_one() {
    for kind in ALL_KINDS {
        let dir = tempfile::tempdir().unwrap();
        let cfg = SynthConfig {
            patients: 100,
            deltas: 1,
            defect_rates: BTreeMap::from([(kind, 1.0)]),
            ..config(dir.path().to_path_buf())
        };
        let truth = generate_small(&cfg);
        assert!(
            truth.defects.iter().any(|d| d.kind == kind),
            "{kind:?} never injected"
        );
        assert!(
            truth.defects.iter().all(|d| d.kind == kind),
            "{kind:?}: other kinds injected"
        );
    }
}

#[test]
fn defects_are_visible_where_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let rates: BTreeMap<DefectKind, f64> = ALL_KINDS.iter().map(|k| (*k, 0.03)).collect();
    let truth = generate_small(&SynthConfig {
        defect_rates: rates,
        deltas: 1,
        ..config(dir.path().to_path_buf())
    });
    for practice in &truth.practices {
        for (dir, manifest) in deliveries(dir.path(), practice) {
            let extracted = crate::synth::schedule::day_number(manifest.extracted_at.date());
            let here: Vec<_> = truth
                .defects
                .iter()
                .filter(|d| d.practice == practice.ods && d.extract_id == manifest.extract_id)
                .collect();
            let tables: BTreeSet<&str> = here.iter().map(|d| d.table.as_str()).collect();
            for table in tables {
                let batch = table_file(&dir, &manifest, table);
                let id_column = match table {
                    "Admin_Patient" => "PatientGuid",
                    "CareRecord_Observation" => "ObservationGuid",
                    "Prescribing_IssueRecord" => "IssueRecordGuid",
                    _ => "RowIdentifier",
                };
                let mut rows_by_id: HashMap<String, Vec<usize>> = HashMap::new();
                for i in 0..batch.num_rows() {
                    rows_by_id
                        .entry(cell(&batch, id_column, i).unwrap())
                        .or_default()
                        .push(i);
                }
                for d in here.iter().filter(|d| d.table == table) {
                    let rows = rows_by_id
                        .get(&d.row_id)
                        .unwrap_or_else(|| panic!("{d:?} not in its file"));
                    let i = rows[0];
                    let emis = practice.supplier == Supplier::Emis;
                    match d.kind {
                        DefectKind::DuplicateRow => assert!(rows.len() >= 2, "{d:?}"),
                        DefectKind::FutureDated if emis => {
                            let dates: &Date32Array = batch
                                .column_by_name("EffectiveDate")
                                .unwrap()
                                .as_any()
                                .downcast_ref()
                                .unwrap();
                            assert!(dates.value(i) > extracted);
                        }
                        DefectKind::UnknownDatePrecision => {
                            assert_eq!(
                                text(strings(&batch, "EffectiveDatePrecision"), i),
                                Some("U")
                            );
                        }
                        DefectKind::MissingUnit if emis => {
                            assert!(text(strings(&batch, "NumericUnit"), i).is_none())
                        }
                        DefectKind::MissingUnit => {
                            assert_eq!(text(strings(&batch, "NumericUnit"), i), Some(""))
                        }
                        DefectKind::UnknownUnit => {
                            let unit = text(strings(&batch, "NumericUnit"), i).unwrap();
                            assert!(
                                crate::canonical::units::canonical_unit(unit).is_none(),
                                "{unit}"
                            );
                        }
                        DefectKind::PlaceholderZero => {
                            let value: &Float64Array = batch
                                .column_by_name("NumericValue")
                                .unwrap()
                                .as_any()
                                .downcast_ref()
                                .unwrap();
                            assert!(value.value(i) == 0.0 || value.value(i) == -1.0);
                        }
                        _ => {}
                    }
                }
            }
        }
    }
}
