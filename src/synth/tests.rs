//! End-to-end tests of the generator on small networks: determinism, manifests,
//! NHS numbers, defects, and an independent re-count of the written files with each
//! supplier's delta semantics against the ground truth.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};

use datafusion::arrow::array::{
    Array, BooleanArray, Int8Array, Int64Array, RecordBatch, StringArray,
};
use datafusion::arrow::compute::concat_batches;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::nhs_number::is_valid;
use crate::source::manifest::{Manifest, Supplier, sha256_file};
use crate::source::table::{DeleteMarker, TableSpec};
use crate::source::{emis, tpp};
use crate::synth::defects::ALL_KINDS;
use crate::synth::truth::{DefectKind, GroundTruth, PracticeTruth};
use crate::synth::{SynthConfig, SynthError, generate};

/// A small two-practice network configuration writing to `out`.
pub(crate) fn config(out: PathBuf) -> SynthConfig {
    SynthConfig {
        out,
        practices: 2,
        patients: 300,
        seed: 20260331,
        emis_share: 0.5,
        deltas: 2,
        as_of: chrono::NaiveDate::from_ymd_opt(2026, 3, 31).unwrap(),
        defect_rates: SynthConfig::default_defect_rates(),
    }
}

fn read(path: &Path) -> RecordBatch {
    let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap()).unwrap();
    let schema = builder.schema().clone();
    let batches: Vec<RecordBatch> = builder.build().unwrap().map(Result::unwrap).collect();
    concat_batches(&schema, &batches).unwrap()
}

fn strings<'a>(batch: &'a RecordBatch, column: &str) -> &'a StringArray {
    batch
        .column_by_name(column)
        .unwrap()
        .as_any()
        .downcast_ref()
        .unwrap()
}

fn ints<'a>(batch: &'a RecordBatch, column: &str) -> &'a Int64Array {
    batch
        .column_by_name(column)
        .unwrap()
        .as_any()
        .downcast_ref()
        .unwrap()
}

fn text(a: &StringArray, i: usize) -> Option<&str> {
    a.is_valid(i).then(|| a.value(i))
}

fn int(a: &Int64Array, i: usize) -> Option<i64> {
    a.is_valid(i).then(|| a.value(i))
}

/// A cell as a key string (strings as-is, integers in decimal).
fn cell(batch: &RecordBatch, column: &str, i: usize) -> Option<String> {
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

fn is_delete(spec: &TableSpec, batch: &RecordBatch, i: usize) -> bool {
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
fn deliveries(root: &Path, practice: &PracticeTruth) -> Vec<(PathBuf, Manifest)> {
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

fn table_file(dir: &Path, manifest: &Manifest, table: &str) -> RecordBatch {
    let file = manifest
        .files
        .iter()
        .find(|f| f.table == table)
        .unwrap_or_else(|| panic!("no {table} in {dir:?}"));
    read(&dir.join(&file.path))
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
fn recount(root: &Path, practice: &PracticeTruth, truth: &GroundTruth) -> BTreeMap<String, u64> {
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
                    let value: &datafusion::arrow::array::Float64Array = batch
                        .column_by_name("NumericValue")
                        .unwrap()
                        .as_any()
                        .downcast_ref()
                        .unwrap();
                    assert!(value.is_valid(i), "NumericValue is never null");
                }
            }
        });
        let batch = table_file(&dir, &manifest, medication_spec.name);
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

/// Every file under `root`, relative path → SHA-256.
fn hashes(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let relative = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.insert(relative, sha256_file(&path).unwrap());
            }
        }
    }
    out
}

fn generate_small(cfg: &SynthConfig) -> GroundTruth {
    generate(cfg).unwrap_or_else(|e| panic!("generation failed: {e}"))
}

#[test]
fn same_config_gives_identical_bytes() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let truth_a = generate_small(&config(a.path().to_path_buf()));
    let truth_b = generate_small(&config(b.path().to_path_buf()));
    assert_eq!(truth_a, truth_b);
    let (ha, hb) = (hashes(a.path()), hashes(b.path()));
    assert!(ha.len() > 20);
    assert_eq!(ha, hb);

    let c = tempfile::tempdir().unwrap();
    generate_small(&SynthConfig {
        seed: 7,
        ..config(c.path().to_path_buf())
    });
    assert_ne!(
        hashes(c.path()).get("ground_truth.json"),
        ha.get("ground_truth.json")
    );
}

#[test]
fn network_shape_manifests_and_recount() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = SynthConfig {
        practices: 3,
        patients: 450,
        ..config(dir.path().to_path_buf())
    };
    let truth = generate_small(&cfg);
    assert_eq!(truth, GroundTruth::read(dir.path()).unwrap());
    let suppliers: BTreeSet<Supplier> = truth.practices.iter().map(|p| p.supplier).collect();
    assert_eq!(suppliers.len(), 2, "both suppliers appear");
    assert!(
        !truth.moves.is_empty(),
        "some people moved between member practices"
    );

    for practice in &truth.practices {
        assert_eq!(practice.deliveries.len(), cfg.deltas + 1);
        assert!(
            practice.deliveries.windows(2).all(|w| w[0] < w[1]),
            "extract ids sort in delivery order"
        );
        assert!(
            !practice.deleted_patients.is_empty(),
            "each practice deletes a patient in a delta"
        );
        for (k, (dir, manifest)) in deliveries(dir.path(), practice).into_iter().enumerate() {
            manifest.verify(&dir).unwrap_or_else(|e| panic!("{e}"));
            let (tables, version): (&[&TableSpec], &str) = match practice.supplier {
                Supplier::Emis => (emis::tables::ALL, emis::tables::SCHEMA_VERSION),
                Supplier::Tpp => (tpp::tables::ALL, tpp::tables::SCHEMA_VERSION),
            };
            assert_eq!(manifest.schema_version, version);
            assert_eq!(manifest.practice, practice.ods);
            let listed: Vec<&str> = manifest.files.iter().map(|f| f.table.as_str()).collect();
            let expected: Vec<&str> = tables.iter().map(|t| t.name).collect();
            assert_eq!(listed, expected);
            for file in &manifest.files {
                let spec = tables.iter().find(|t| t.name == file.table).unwrap();
                assert_eq!(
                    read(&dir.join(&file.path)).schema(),
                    spec.schema(),
                    "{}",
                    file.path
                );
                if practice.supplier == Supplier::Emis {
                    assert!(
                        file.path.contains(&format!("_{}_", file.table)),
                        "{}",
                        file.path
                    );
                    assert!(
                        file.path
                            .starts_with(manifest.extract_id.split('_').nth(1).unwrap()),
                        "{}",
                        file.path
                    );
                }
            }
            assert_eq!(
                manifest.kind == crate::source::manifest::ExtractKind::Full,
                k == 0
            );
        }
        assert_eq!(
            recount(dir.path(), practice, &truth),
            practice.expected_rows,
            "{}",
            practice.ods
        );
        assert!(practice.expected_quarantine.is_empty());
    }
    let events: u64 = truth
        .practices
        .iter()
        .map(|p| p.expected_rows["events"])
        .sum();
    let medications: u64 = truth
        .practices
        .iter()
        .map(|p| p.expected_rows["medications"])
        .sum();
    let per_patient = (events + medications) as f64 / cfg.patients as f64;
    assert!(
        (250.0..=900.0).contains(&per_patient),
        "{per_patient:.0} event and medication rows per patient"
    );
}

#[test]
fn tpp_batches_have_a_srmanifest_and_an_srcode_rebulk() {
    let dir = tempfile::tempdir().unwrap();
    let truth = generate_small(&SynthConfig {
        emis_share: 0.0,
        practices: 1,
        patients: 150,
        ..config(dir.path().to_path_buf())
    });
    let practice = &truth.practices[0];
    let mut rebulks = 0;
    for (k, (dir, manifest)) in deliveries(dir.path(), practice).into_iter().enumerate() {
        let srmanifest = table_file(&dir, &manifest, "SRManifest");
        let names = strings(&srmanifest, "FileName");
        let delta = strings(&srmanifest, "IsDelta");
        let reference = strings(&srmanifest, "IsReference");
        assert_eq!(srmanifest.num_rows(), manifest.files.len() - 1);
        for i in 0..srmanifest.num_rows() {
            let is_reference = matches!(names.value(i), "SRCtv3ToSnomed" | "SRMapping");
            assert_eq!(reference.value(i) == "Y", is_reference);
            if k == 0 || is_reference {
                assert_eq!(delta.value(i), "N");
            }
            if k > 0 && names.value(i) == "SRCode" && delta.value(i) == "N" {
                rebulks += 1;
            }
        }
        let codes = table_file(&dir, &manifest, "SRCode");
        let snomed = strings(&codes, "SNOMEDCode");
        let missing = (0..codes.num_rows())
            .filter(|i| matches!(text(snomed, *i), Some("" | "-1")))
            .count();
        if codes.num_rows() > 1000 {
            let share = missing as f64 / codes.num_rows() as f64;
            assert!(
                (0.05..0.2).contains(&share),
                "{share:.3} of SRCode rows lack a SNOMED code"
            );
        }
    }
    assert_eq!(rebulks, 1);
}

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
                            let dates: &datafusion::arrow::array::Date32Array = batch
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
                            let value: &datafusion::arrow::array::Float64Array = batch
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

#[test]
fn invalid_configurations_are_refused() {
    let base = config(PathBuf::from("/nonexistent"));
    let cases = [
        SynthConfig {
            practices: 0,
            ..base.clone()
        },
        SynthConfig {
            patients: 5,
            ..base.clone()
        },
        SynthConfig {
            emis_share: 1.5,
            ..base.clone()
        },
        SynthConfig {
            deltas: 1000,
            ..base.clone()
        },
        SynthConfig {
            defect_rates: BTreeMap::from([(DefectKind::FloorDate, 2.0)]),
            ..base.clone()
        },
    ];
    for cfg in cases {
        assert!(
            matches!(generate(&cfg), Err(SynthError::InvalidConfig(_))),
            "{cfg:?}"
        );
    }
}

/// Throughput check at benchmark scale (release build):
/// `cargo test --release --lib synth::tests::scale -- --ignored --nocapture`.
#[test]
#[ignore]
fn scale() {
    let out = std::env::var_os("PHM_SYNTH_SCALE_OUT").map_or_else(
        || std::env::temp_dir().join("phm-synth-scale"),
        PathBuf::from,
    );
    let _ = std::fs::remove_dir_all(&out);
    let cfg = SynthConfig {
        practices: 6,
        patients: 50_000,
        ..config(out.clone())
    };
    let started = std::time::Instant::now();
    let truth = generate(&cfg).unwrap();
    let elapsed = started.elapsed();
    let mut rows = 0u64;
    for practice in &truth.practices {
        for (_, manifest) in deliveries(&out, practice) {
            rows += manifest.files.iter().map(|f| f.rows).sum::<u64>();
        }
    }
    let expected: BTreeMap<&str, u64> = ["patients", "registrations", "events", "medications"]
        .into_iter()
        .map(|t| (t, truth.practices.iter().map(|p| p.expected_rows[t]).sum()))
        .collect();
    println!(
        "{} practices, {} patients, {} deltas: {elapsed:.1?}",
        cfg.practices, cfg.patients, cfg.deltas
    );
    println!(
        "rows written (all files): {rows}; expected canonical rows: {expected:?}; defects: {}",
        truth.defects.len()
    );
}

#[test]
#[ignore]
fn volume_breakdown() {
    use crate::synth::population::Network;
    use crate::synth::record::Timeline;
    use crate::synth::schedule::{Schedule, day_number};
    let cfg = SynthConfig {
        practices: 1,
        patients: 3000,
        ..config(PathBuf::new())
    };
    let network = Network::plan(&cfg);
    let schedule = Schedule::new(cfg.as_of, cfg.deltas);
    let as_of = day_number(cfg.as_of);
    let mut bands: BTreeMap<u32, (u64, u64, u64, u64, u64)> = BTreeMap::new();
    let mut tl = Timeline::default();
    let mut ids = 0;
    for (n, plan) in network.practices[0].records.iter().enumerate() {
        let person = &network.persons[plan.person as usize];
        let rec = crate::synth::record::PatientRecord {
            id: 1,
            number: n as u32,
            person,
            plan,
            first: 0,
            deleted_at: None,
            changed_at: None,
            defect: None,
            episodes: vec![],
            last_event_day: schedule
                .last_entry_day()
                .min(plan.end.map_or(i32::MAX, |e| e - 1))
                .min(person.death.unwrap_or(i32::MAX)),
            last_entry_day: schedule.last_entry_day(),
        };
        let profile = crate::synth::conditions::Profile::draw(cfg.seed, person, as_of);
        let mut rng = crate::synth::sampling::stream(
            1,
            crate::synth::sampling::Purpose::Clinical,
            0,
            n as u64,
        );
        crate::synth::clinical::build(&rec, &profile, 6, &mut rng, &mut ids, &mut tl);
        let band = (person.age_on(as_of) / 10.0) as u32 * 10;
        let numeric = tl.events.iter().filter(|e| e.value.is_some()).count() as u64;
        let e = bands.entry(band).or_default();
        e.0 += 1;
        e.1 += tl.events.len() as u64;
        e.2 += tl.issues.len() as u64;
        e.3 += numeric;
        e.4 += tl.encounters.len() as u64;
    }
    let (mut n, mut rows) = (0, 0);
    for (band, (count, events, issues, numeric, enc)) in &bands {
        println!(
            "{band:>3}: n={count:>5} events/p={:>6.0} numeric/p={:>6.0} issues/p={:>6.0} encounters/p={:>5.0}",
            *events as f64 / *count as f64,
            *numeric as f64 / *count as f64,
            *issues as f64 / *count as f64,
            *enc as f64 / *count as f64
        );
        n += count;
        rows += events + issues;
    }
    println!("rows per patient: {:.0}", rows as f64 / n as f64);
}
