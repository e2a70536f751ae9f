//! Reading the written Parquet files back, and an independent re-count of each
//! practice's canonical rows with the supplier's delta semantics (EMIS: highest
//! `ProcessingId` per key wins, `Deleted=true` removes; TPP: later row per
//! `RowIdentifier` wins, `RemovedData=1` removes; a deleted patient takes their rows).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};

use datafusion::arrow::array::{
    Array, BooleanArray, Float64Array, Int8Array, Int64Array, RecordBatch, StringArray,
};
use datafusion::arrow::compute::concat_batches;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::source::manifest::{Manifest, Supplier};
use crate::source::table::{DeleteMarker, TableSpec};
use crate::source::{emis, tpp};
use crate::synth::truth::{DefectKind, GroundTruth, PracticeTruth};

pub(super) fn read(path: &Path) -> RecordBatch {
    let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap()).unwrap();
    let schema = builder.schema().clone();
    let batches: Vec<RecordBatch> = builder.build().unwrap().map(Result::unwrap).collect();
    concat_batches(&schema, &batches).unwrap()
}

pub(super) fn strings<'a>(batch: &'a RecordBatch, column: &str) -> &'a StringArray {
    batch
        .column_by_name(column)
        .unwrap()
        .as_any()
        .downcast_ref()
        .unwrap()
}

pub(super) fn ints<'a>(batch: &'a RecordBatch, column: &str) -> &'a Int64Array {
    batch
        .column_by_name(column)
        .unwrap()
        .as_any()
        .downcast_ref()
        .unwrap()
}

pub(super) fn text(a: &StringArray, i: usize) -> Option<&str> {
    a.is_valid(i).then(|| a.value(i))
}

pub(super) fn int(a: &Int64Array, i: usize) -> Option<i64> {
    a.is_valid(i).then(|| a.value(i))
}

/// A cell as a key string (strings as-is, integers in decimal).
pub(super) fn cell(batch: &RecordBatch, column: &str, i: usize) -> Option<String> {
    let col = batch.column_by_name(column).unwrap();
    if col.is_null(i) {
        return None;
    }
    if let Some(s) = col.as_any().downcast_ref::<StringArray>() {
        return Some(s.value(i).to_string());
    }
    col.as_any()
        .downcast_ref::<Int64Array>()
        .map(|n| n.value(i).to_string())
}

pub(super) fn is_delete(spec: &TableSpec, batch: &RecordBatch, i: usize) -> bool {
    match spec.delete {
        DeleteMarker::EmisDeleted => {
            let b: &BooleanArray = batch
                .column_by_name("Deleted")
                .unwrap()
                .as_any()
                .downcast_ref()
                .unwrap();
            b.is_valid(i) && b.value(i)
        }
        DeleteMarker::TppRemovedData => {
            let r: &Int8Array = batch
                .column_by_name("RemovedData")
                .unwrap()
                .as_any()
                .downcast_ref()
                .unwrap();
            r.is_valid(i) && r.value(i) == 1
        }
        DeleteMarker::None => false,
    }
}

/// The deliveries of a practice in order, with their manifests.
pub(super) fn deliveries(root: &Path, practice: &PracticeTruth) -> Vec<(PathBuf, Manifest)> {
    practice
        .deliveries
        .iter()
        .map(|id| {
            let dir = root.join(&practice.ods).join(id);
            let manifest = Manifest::read(&dir).unwrap();
            (dir, manifest)
        })
        .collect()
}

pub(super) fn table_file(dir: &Path, manifest: &Manifest, table: &str) -> RecordBatch {
    optional_table_file(dir, manifest, table).unwrap_or_else(|| panic!("no {table} in {dir:?}"))
}

/// The file of `table`, `None` when the manifest does not list it.
pub(super) fn optional_table_file(
    dir: &Path,
    manifest: &Manifest,
    table: &str,
) -> Option<RecordBatch> {
    let file = manifest.files.iter().find(|f| f.table == table)?;
    Some(read(&dir.join(&file.path)))
}

/// One table's state: key → (version, patient).
#[derive(Default)]
struct State {
    rows: HashMap<String, (i64, Option<String>)>,
}

impl State {
    /// Applies a file's rows with the table's semantics; calls `on_row` for every
    /// row applied (not superseded, not a delete).
    fn apply(
        &mut self,
        spec: &TableSpec,
        batch: &RecordBatch,
        mut on_row: impl FnMut(usize),
    ) -> Vec<String> {
        let mut order: Vec<usize> = (0..batch.num_rows()).collect();
        let versions: Vec<i64> = match spec.version {
            Some(v) => (0..batch.num_rows())
                .map(|i| int(ints(batch, v), i).unwrap_or(i64::MIN))
                .collect(),
            None => vec![0; batch.num_rows()],
        };
        order.sort_by_key(|i| versions[*i]);
        let mut deleted = Vec::new();
        for i in order {
            let key: Vec<String> = spec
                .key
                .iter()
                .map(|k| cell(batch, k, i).expect("keyed"))
                .collect();
            let key = key.join("\u{1f}");
            if spec.version.is_some() && self.rows.get(&key).is_some_and(|(v, _)| *v > versions[i])
            {
                continue;
            }
            if is_delete(spec, batch, i) {
                if self.rows.remove(&key).is_some() {
                    deleted.push(key);
                }
                continue;
            }
            let patient = spec.patient.and_then(|p| cell(batch, p, i));
            self.rows.insert(key, (versions[i], patient));
            on_row(i);
        }
        deleted
    }

    fn live(&self, patients: &HashSet<String>) -> u64 {
        self.rows
            .values()
            .filter(|(_, p)| p.as_ref().is_none_or(|p| patients.contains(p)))
            .count() as u64
    }
}

/// Re-counts a practice's canonical rows from its files, checking on the way that
/// no row names a patient missing from the practice and that every code resolves
/// (in the same or an earlier delivery; `LateCodingRow` rows one delivery later).
pub(super) fn recount(
    root: &Path,
    practice: &PracticeTruth,
    truth: &GroundTruth,
) -> BTreeMap<String, u64> {
    let defect_rows = |kind: DefectKind| -> HashSet<String> {
        truth
            .defects
            .iter()
            .filter(|d| d.kind == kind && d.practice == practice.ods)
            .map(|d| d.row_id.clone())
            .collect()
    };
    let late_rows = defect_rows(DefectKind::LateCodingRow);
    let unmapped_rows = defect_rows(DefectKind::UnmappedLocalCode);
    let (patient_spec, registration_spec, event_spec, medication_spec): (
        &TableSpec,
        Option<&TableSpec>,
        &TableSpec,
        &TableSpec,
    ) = match practice.supplier {
        Supplier::Emis => (
            &emis::tables::ADMIN_PATIENT,
            None,
            &emis::tables::CARE_RECORD_OBSERVATION,
            &emis::tables::PRESCRIBING_ISSUE_RECORD,
        ),
        Supplier::Tpp => (
            &tpp::tables::SR_PATIENT,
            Some(&tpp::tables::SR_PATIENT_REGISTRATION),
            &tpp::tables::SR_CODE,
            &tpp::tables::SR_PRIMARY_CARE_MEDICATION,
        ),
    };
    let (mut patients, mut registrations, mut events, mut medications) = (
        State::default(),
        State::default(),
        State::default(),
        State::default(),
    );
    let mut clinical_codes = HashSet::new();
    let mut drug_codes = HashSet::new();
    let mut ctv3_map = HashSet::new();
    let mut awaiting_code: Vec<(String, String)> = Vec::new();
    for (dir, manifest) in deliveries(root, practice) {
        let live_patients =
            |patients: &State| patients.rows.keys().cloned().collect::<HashSet<String>>();
        match practice.supplier {
            Supplier::Emis => {
                let codes = table_file(&dir, &manifest, "Coding_ClinicalCode");
                clinical_codes
                    .extend((0..codes.num_rows()).map(|i| cell(&codes, "CodeId", i).unwrap()));
                let drugs = table_file(&dir, &manifest, "Coding_DrugCode");
                drug_codes
                    .extend((0..drugs.num_rows()).map(|i| cell(&drugs, "CodeId", i).unwrap()));
                for (guid, code) in awaiting_code.drain(..) {
                    assert!(
                        clinical_codes.contains(&code),
                        "{guid}: CodeId {code} still missing a delivery later"
                    );
                }
            }
            Supplier::Tpp => {
                let map = table_file(&dir, &manifest, "SRCtv3ToSnomed");
                ctv3_map = (0..map.num_rows())
                    .map(|i| cell(&map, "Ctv3Code", i).unwrap())
                    .collect();
            }
        }
        let batch = table_file(&dir, &manifest, patient_spec.name);
        for removed in patients.apply(patient_spec, &batch, |_| {}) {
            if practice.supplier == Supplier::Tpp {
                assert!(practice.deleted_patients.contains(&removed));
            }
        }
        let live = live_patients(&patients);
        let orphan_check = |batch: &RecordBatch, spec: &TableSpec, i: usize| {
            let patient = cell(batch, spec.patient.unwrap(), i).unwrap();
            assert!(
                live.contains(&patient),
                "{}: row {i} names patient {patient} missing from the practice",
                spec.name
            );
        };
        if let Some(spec) = registration_spec {
            let batch = table_file(&dir, &manifest, spec.name);
            registrations.apply(spec, &batch, |i| orphan_check(&batch, spec, i));
        }
        let batch = table_file(&dir, &manifest, event_spec.name);
        events.apply(event_spec, &batch, |i| {
            orphan_check(&batch, event_spec, i);
            match practice.supplier {
                Supplier::Emis => {
                    let code = cell(&batch, "CodeId", i).unwrap();
                    let guid = cell(&batch, "ObservationGuid", i).unwrap();
                    if !clinical_codes.contains(&code) {
                        assert!(
                            late_rows.contains(&guid),
                            "{guid}: CodeId {code} has no coding row"
                        );
                        awaiting_code.push((guid, code));
                    }
                }
                Supplier::Tpp => {
                    let snomed = cell(&batch, "SNOMEDCode", i).unwrap_or_default();
                    let ctv3 = cell(&batch, "CTV3Code", i).unwrap();
                    let value_missing =
                        snomed.is_empty() || snomed.parse::<i64>().is_ok_and(|s| s <= 0);
                    if value_missing && !ctv3_map.contains(&ctv3) {
                        let row = cell(&batch, "RowIdentifier", i).unwrap();
                        assert!(
                            unmapped_rows.contains(&row),
                            "{row}: CTV3 {ctv3} has no SNOMED code or map entry"
                        );
                    }
                    let value: &Float64Array = batch
                        .column_by_name("NumericValue")
                        .unwrap()
                        .as_any()
                        .downcast_ref()
                        .unwrap();
                    assert!(value.is_valid(i), "NumericValue is never null");
                }
            }
        });
        // A practice that shares no prescribing has no medication table at all.
        let Some(batch) = optional_table_file(&dir, &manifest, medication_spec.name) else {
            assert!(
                truth.without_prescribing.contains(&practice.ods),
                "no {} in {dir:?}",
                medication_spec.name
            );
            continue;
        };
        medications.apply(medication_spec, &batch, |i| {
            orphan_check(&batch, medication_spec, i);
            if practice.supplier == Supplier::Emis {
                assert!(drug_codes.contains(&cell(&batch, "CodeId", i).unwrap()));
            }
        });
    }
    assert!(
        awaiting_code.is_empty(),
        "late CodeIds never delivered: {awaiting_code:?}"
    );
    let live = patients.rows.keys().cloned().collect::<HashSet<String>>();
    let registrations = match registration_spec {
        Some(_) => registrations.live(&live),
        None => live.len() as u64,
    };
    BTreeMap::from([
        ("patients".to_string(), live.len() as u64),
        ("registrations".to_string(), registrations),
        ("events".to_string(), events.live(&live)),
        ("medications".to_string(), medications.live(&live)),
    ])
}
