//! `phm dq` end to end: every injected defect class with a check is found at
//! its injected count per practice (counts from the generator's ground truth,
//! never from phm's output); the practice states stay distinct; the rows
//! files name source locations only; the committed schema and snapshot hold.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use common::*;
use datafusion::arrow::array::{Array, StringArray};
use phm::synth::truth::{DefectKind, GroundTruth};
use serde_json::Value;

/// The check that counts a defect kind's rows (none for kinds ingest absorbs).
fn check_of(kind: DefectKind) -> Option<&'static str> {
    use DefectKind::*;
    Some(match kind {
        InvalidNhsNumber => "patients.nhs_number_invalid",
        MissingNhsNumber => "patients.nhs_number_missing",
        DummyPatient => "patients.test_patient",
        EventBeforeBirth => "events.before_birth",
        EventAfterDeath => "events.after_death",
        FutureDated => "events.future",
        MissingUnit => "measurements.missing_unit",
        UnknownUnit => "measurements.unknown_unit",
        PlaceholderZero => "measurements.placeholder_value",
        UnmappedLocalCode => "codes.events_unmapped",
        FloorDate => "events.floor_date",
        UnknownDatePrecision => "events.unknown_date",
        // Ingest resolves a late coding row and loads a duplicate once: no trace left.
        LateCodingRow | DuplicateRow => return None,
    })
}

/// Ingests every delivery of a generated network and returns (store, release).
fn ingested(work: &Path, truth_dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (store, release) = (work.join("store"), work.join("release"));
    let out = import_fixture(&release);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = ingest(truth_dir, &store);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    (store, release)
}

fn report_of(out: &Path) -> Value {
    report(out)
}

fn report(out: &Path) -> Value {
    serde_json::from_slice(&fs::read(out.join("dq.json")).unwrap()).unwrap()
}

fn check<'a>(practice: &'a Value, id: &str) -> &'a Value {
    practice["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no check {id}"))
}

/// Injected defects per (practice, check), each located row counted once.
fn expected(truth: &GroundTruth) -> BTreeMap<(String, &'static str), u64> {
    let mut rows: BTreeSet<(String, &'static str, String, String)> = BTreeSet::new();
    for d in &truth.defects {
        if let Some(id) = check_of(d.kind) {
            rows.insert((d.practice.clone(), id, d.table.clone(), d.row_id.clone()));
        }
    }
    let mut out = BTreeMap::new();
    for p in &truth.practices {
        for kind in truth.defect_rates.keys() {
            if let Some(id) = check_of(*kind) {
                out.insert((p.ods.clone(), id), 0);
            }
        }
    }
    for (practice, id, _, _) in rows {
        *out.get_mut(&(practice, id)).unwrap() += 1;
    }
    out
}

#[test]
fn every_injected_defect_is_found_at_its_count_per_practice() {
    let work = tempfile::tempdir().unwrap();
    let landing = work.path().join("landing");
    let truth = small_network(&landing, 7);
    let (store, release) = ingested(work.path(), &landing);
    let out = work.path().join("dq");
    let run = dq(&store, &release, &out, &truth.as_of.to_string(), &[]);
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}{}",
        stdout(&run),
        stderr(&run)
    );
    let report = report(&out);
    assert_eq!(report["as_of"], truth.as_of.to_string());

    let expected = expected(&truth);
    let mut found_some = BTreeSet::new();
    for ((ods, id), count) in &expected {
        let p = report["practices"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["practice"] == ods.as_str())
            .unwrap();
        assert_eq!(p["status"], "ok");
        let c = check(p, id);
        assert_eq!(c["numerator"].as_u64(), Some(*count), "{ods} {id}: {c}");
        assert_eq!(
            c["rows_listed"].as_u64(),
            Some((*count).min(1000)),
            "{ods} {id}"
        );
        if *count > 0 {
            found_some.insert(*id);
        }
    }
    // The generator's moves end one registration before (or on the day) the
    // next starts, so no one is registered at two practices at once.
    for p in report["practices"].as_array().unwrap() {
        let c = check(p, "patients.registered_elsewhere");
        assert_eq!(c["numerator"].as_u64(), Some(0), "{}: {c}", p["practice"]);
    }
    // The network injects every kind somewhere, so every mapped check was exercised.
    for kind in truth.defect_rates.keys() {
        if let Some(id) = check_of(*kind) {
            assert!(
                found_some.contains(id),
                "no {kind:?} injected, {id} untested"
            );
        }
    }

    // The rows file lists exactly the injected rows, by source location only.
    for p in &truth.practices {
        let batch = read_batch(&out.join(format!("practice/{}/dq_rows.parquet", p.ods)));
        let names: Vec<String> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(
            names,
            ["check_id", "source_table", "source_row_id", "extract_id"]
        );
        let col = |n: &str| {
            batch
                .column_by_name(n)
                .unwrap()
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap()
                .clone()
        };
        let (checks, tables, ids) = (col("check_id"), col("source_table"), col("source_row_id"));
        let listed: BTreeSet<(String, String, String)> = (0..batch.num_rows())
            .filter(|i| !checks.is_null(*i))
            .map(|i| {
                (
                    checks.value(i).to_string(),
                    tables.value(i).to_string(),
                    ids.value(i).to_string(),
                )
            })
            .collect();
        for d in truth.defects.iter().filter(|d| d.practice == p.ods) {
            if let Some(id) = check_of(d.kind) {
                assert!(
                    listed.contains(&(id.to_string(), d.table.clone(), d.row_id.clone())),
                    "{} {:?} row {} not listed",
                    p.ods,
                    d.kind,
                    d.row_id
                );
            }
        }
    }
}

#[test]
fn no_delivery_rejected_and_empty_are_distinct_and_never_zero() {
    let work = tempfile::tempdir().unwrap();
    let generated = work.path().join("generated");
    let truth = network(&generated, 5, 60);
    let landing = work.path().join("landing");
    copy_dir(&generated, &landing);
    let ods: Vec<String> = truth.practices.iter().map(|p| p.ods.clone()).collect();
    // 1: the practice folder holds no delivery.
    for d in deliveries(&landing, &ods[0]) {
        fs::remove_dir_all(d).unwrap();
    }
    // 2: a delivery whose file does not match its manifest's hash.
    let first = deliveries(&landing, &ods[1]).remove(0);
    let manifest = phm::source::manifest::Manifest::read(&first).unwrap();
    let file = first.join(&manifest.files[0].path);
    let mut bytes = fs::read(&file).unwrap();
    bytes.push(0);
    fs::write(&file, bytes).unwrap();
    // 3: deliveries whose patient files hold no rows.
    for d in deliveries(&landing, &ods[2]) {
        let m = phm::source::manifest::Manifest::read(&d).unwrap();
        for f in &m.files {
            if f.table == "Admin_Patient" || f.table == "SRPatient" {
                let table = f.table.clone();
                rewrite_table(&d, &table, |b| b.slice(0, 0));
            }
        }
    }
    let (store, release) = (work.path().join("store"), work.path().join("release"));
    assert!(import_fixture(&release).status.success());
    let out = ingest(&landing, &store);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );

    // A member practice never seen at all is no_delivery too.
    let config = work.path().join("dq.toml");
    fs::write(&config, "practices = [\"Z99999\"]\n").unwrap();
    let out_dir = work.path().join("dq");
    // Rows left by an earlier run, when the practice was assessed, must go.
    let stale = out_dir.join(format!("practice/{}/dq_rows.parquet", ods[1]));
    fs::create_dir_all(stale.parent().unwrap()).unwrap();
    fs::write(&stale, b"earlier run").unwrap();
    let run = dq(
        &store,
        &release,
        &out_dir,
        "2026-03-31",
        &["--config", config.to_str().unwrap()],
    );
    assert_eq!(
        run.status.code(),
        Some(3),
        "{}{}",
        stdout(&run),
        stderr(&run)
    );
    let report = report(&out_dir);
    let status: BTreeMap<&str, &str> = report["practices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["practice"].as_str().unwrap(),
                p["status"].as_str().unwrap(),
            )
        })
        .collect();
    let expected: BTreeMap<&str, &str> = [
        (ods[0].as_str(), "no_delivery"),
        (ods[1].as_str(), "rejected"),
        (ods[2].as_str(), "empty"),
        ("Z99999", "no_delivery"),
    ]
    .into_iter()
    .collect();
    assert_eq!(status, expected);
    assert!(
        !stale.exists(),
        "an earlier run's rows outlived the practice's rejection"
    );
    for p in report["practices"].as_array().unwrap() {
        for c in p["checks"].as_array().unwrap() {
            assert_eq!(
                c["status"], "not_evaluated",
                "{} {}",
                p["practice"], c["id"]
            );
            for figure in ["numerator", "denominator", "percentage", "days"] {
                assert!(
                    c[figure].is_null(),
                    "{} {} {figure}",
                    p["practice"],
                    c["id"]
                );
            }
        }
        assert!(p["rows_file"].is_null());
    }
}

#[test]
fn committed_schema_is_the_generated_one() {
    let generated = phm::quality::report::schema_json();
    let path = repo("docs/dq.schema.json");
    if std::env::var_os("PHM_WRITE_SCHEMA").is_some() {
        fs::write(&path, &generated).unwrap();
    }
    let committed = fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/dq.schema.json differs from the schema of phm::quality::DqReport; regenerate it with PHM_WRITE_SCHEMA=1 cargo test --test dq committed_schema"
    );
}

#[test]
fn dq_json_of_a_tiny_network() {
    let work = tempfile::tempdir().unwrap();
    let landing = work.path().join("landing");
    let _truth = network(&landing, 3, 30);
    let (store, release) = ingested(work.path(), &landing);
    let out = work.path().join("dq");
    let run = dq(&store, &release, &out, "2026-04-10", &[]);
    assert!(run.status.code() == Some(0), "{}", stderr(&run));
    let mut report = report(&out);
    report["store"] = Value::String("[store]".into());
    insta::assert_json_snapshot!(report);
}

/// `batch` with column `name` replaced by `values` (one value per row).
fn with_column(
    batch: &datafusion::arrow::array::RecordBatch,
    name: &str,
    values: datafusion::arrow::array::ArrayRef,
) -> datafusion::arrow::array::RecordBatch {
    let at = batch.schema().index_of(name).unwrap();
    let mut columns = batch.columns().to_vec();
    columns[at] =
        datafusion::arrow::compute::cast(&values, batch.schema().field(at).data_type()).unwrap();
    datafusion::arrow::array::RecordBatch::try_new(batch.schema(), columns).unwrap()
}

/// Appends to a practice's canonical file one copy of a chosen row per edit,
/// each copy with its columns set as the edit says.
fn append(
    store: &Path,
    table: &str,
    ods: &str,
    pick: impl Fn(&datafusion::arrow::array::RecordBatch, usize) -> bool,
    edits: &[&[(&str, datafusion::arrow::array::ArrayRef)]],
) {
    let path = store
        .join("canonical")
        .join(table)
        .join(format!("practice={ods}"))
        .join("data.parquet");
    let batch = read_batch(&path);
    let row = (0..batch.num_rows()).find(|i| pick(&batch, *i)).unwrap();
    let mut parts = vec![batch.clone()];
    for edit in edits {
        let mut copy = batch.slice(row, 1);
        for (name, value) in *edit {
            copy = with_column(&copy, name, value.clone());
        }
        parts.push(copy);
    }
    write_batch(
        &path,
        &datafusion::arrow::compute::concat_batches(&batch.schema(), &parts).unwrap(),
    );
}

/// Checks no synthetic defect exercises, on rows planted in a store: each
/// expected count is the number of rows planted (the unplanted store has
/// none of them, as the tiny network's snapshot shows).
#[test]
fn planted_rows_are_counted_by_the_checks_no_generator_defect_reaches() {
    use datafusion::arrow::array::{ArrayRef, Date32Array, Float64Array, Int64Array};
    use std::sync::Arc;
    let work = tempfile::tempdir().unwrap();
    let landing = work.path().join("landing");
    let truth = network(&landing, 3, 30);
    let (store, release) = ingested(work.path(), &landing);
    let ods = truth.practices[0].ods.clone();
    let text = |s: &str| -> ArrayRef { Arc::new(StringArray::from(vec![s])) };
    let none = || -> ArrayRef { Arc::new(StringArray::from(vec![None::<&str>])) };
    let int = |v: i64| -> ArrayRef { Arc::new(Int64Array::from(vec![v])) };
    let day = |d: &str| -> ArrayRef {
        let d = chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap();
        let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
        Arc::new(Date32Array::from(vec![(d - epoch).num_days() as i32]))
    };
    let strings = |b: &datafusion::arrow::array::RecordBatch, c: &str, i: usize| {
        let a = b
            .column_by_name(c)
            .unwrap()
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap()
            .clone();
        (!a.is_null(i)).then(|| a.value(i).to_string())
    };
    // Two records of one practice with the same verified NHS number (a
    // person who moved carries no other record here).
    append(
        &store,
        "patients",
        &ods,
        |b, i| strings(b, "nhs_number_status", i).as_deref() == Some("verified"),
        &[&[
            ("source_row_id", text("dq-dup")),
            ("patient_id", text("dq-dup")),
        ]],
    );
    let clean: &[(&str, ArrayRef)] = &[("date_flag", none()), ("value_flag", none())];
    let event = |id: &str, concept: i64, value: f64, unit: &str| -> Vec<(&'static str, ArrayRef)> {
        let mut e: Vec<(&'static str, ArrayRef)> =
            clean.iter().map(|(n, v)| (*n, v.clone())).collect();
        e.push(("source_row_id", text(id)));
        e.push(("snomed_concept_id", int(concept)));
        e.push(("mapping_kind", text("exact")));
        e.push(("code_system", text("snomed")));
        e.push(("source_code", text(&concept.to_string())));
        e.push(("value", Arc::new(Float64Array::from(vec![value]))));
        e.push(("unit", text(unit)));
        e
    };
    let sbp = event("dq-sbp", 271649006, 400.0, "mm Hg");
    let sbp_ok = event("dq-sbp-ok", 271649006, 300.0, "mmHg");
    let weight = event("dq-weight", 27113001, 70000.0, "kg");
    let inactive = event("dq-inactive", 134560000, 1.0, "kg");
    let unknown = event("dq-unknown", 1, 1.0, "kg");
    append(
        &store,
        "events",
        &ods,
        |_, _| true,
        &[&sbp, &sbp_ok, &weight, &inactive, &unknown],
    );
    append(
        &store,
        "medications",
        &ods,
        |_, _| true,
        &[&[("source_row_id", text("dq-dmd")), ("dmd_code", int(1))]],
    );
    append(
        &store,
        "registrations",
        &ods,
        |_, _| true,
        &[
            &[
                ("source_row_id", text("dq-backwards")),
                ("person_key", text("Ldq1")),
                ("registration_type", text("temporary")),
                ("start_date", day("2020-01-10")),
                ("end_date", day("2020-01-01")),
            ],
            &[
                ("source_row_id", text("dq-overlap-1")),
                ("person_key", text("Ldq2")),
                ("registration_type", text("gms")),
                ("start_date", day("2019-01-01")),
                ("end_date", Arc::new(Date32Array::from(vec![None::<i32>]))),
            ],
            &[
                ("source_row_id", text("dq-overlap-2")),
                ("person_key", text("Ldq2")),
                ("registration_type", text("gms")),
                ("start_date", day("2020-01-01")),
                ("end_date", day("2021-01-01")),
            ],
            // Ends the day the next starts: a transfer, not an overlap.
            &[
                ("source_row_id", text("dq-transfer-1")),
                ("person_key", text("Ldq3")),
                ("registration_type", text("gms")),
                ("start_date", day("2019-01-01")),
                ("end_date", day("2020-01-01")),
            ],
            &[
                ("source_row_id", text("dq-transfer-2")),
                ("person_key", text("Ldq3")),
                ("registration_type", text("gms")),
                ("start_date", day("2020-01-01")),
                ("end_date", Arc::new(Date32Array::from(vec![None::<i32>]))),
            ],
        ],
    );
    let out = work.path().join("dq");
    let run = dq(&store, &release, &out, "2026-04-01", &["--practice", &ods]);
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}{}",
        stdout(&run),
        stderr(&run)
    );
    let report = report(&out);
    let p = &report["practices"][0];
    assert_eq!(p["practice"], ods.as_str());
    #[rustfmt::skip]
    let expected: &[(&str, u64)] = &[
        ("patients.duplicate_in_practice", 2),
        ("measurements.implausible_systolic_bp", 1),
        ("measurements.implausible_weight", 1),
        ("codes.events_inactive", 1),
        ("codes.events_not_in_release", 1),
        ("medications.dmd_not_in_release", 1),
        ("registrations.ends_before_start", 1),
        ("registrations.overlapping", 2),
    ];
    for (id, n) in expected {
        assert_eq!(
            check(p, id)["numerator"].as_u64(),
            Some(*n),
            "{id}: {}",
            check(p, id)
        );
    }
    // A person who moved, registered again at the practice left while still
    // registered at the one joined: registered at two practices at once.
    let moved = truth.moves.iter().find(|m| m.linkable).unwrap();
    let (from, patient) = &moved.from;
    let patients = read_batch(
        &store
            .join("canonical/patients")
            .join(format!("practice={from}"))
            .join("data.parquet"),
    );
    let key = (0..patients.num_rows())
        .find(|i| strings(&patients, "patient_id", *i).as_deref() == Some(patient.as_str()))
        .map(|i| strings(&patients, "person_key", i).unwrap())
        .unwrap();
    append(
        &store,
        "registrations",
        from,
        |_, _| true,
        &[&[
            ("source_row_id", text("dq-again")),
            ("person_key", text(&key)),
            ("registered_at", text(from)),
            ("registration_type", text("gms")),
            // Inside the joined registration (2020-12-07 to 2025-08-23 in this network).
            ("start_date", day("2024-01-01")),
            ("end_date", Arc::new(Date32Array::from(vec![None::<i32>]))),
        ]],
    );
    let again = work.path().join("dq-again");
    let run = dq(
        &store,
        &release,
        &again,
        "2026-04-01",
        &["--practice", from],
    );
    assert_eq!(run.status.code(), Some(0), "{}", stderr(&run));
    let c = check(
        &report_of(&again)["practices"][0],
        "patients.registered_elsewhere",
    )
    .clone();
    assert_eq!(c["numerator"].as_u64(), Some(1), "{c}");

    let rows = read_batch(&out.join(format!("practice/{ods}/dq_rows.parquet")));
    let listed: BTreeSet<(String, String)> = (0..rows.num_rows())
        .map(|i| {
            (
                strings(&rows, "check_id", i).unwrap(),
                strings(&rows, "source_row_id", i).unwrap(),
            )
        })
        // The copied rows keep what else they were (a moved patient, say):
        // only the checks planted for are compared.
        .filter(|(check, id)| id.starts_with("dq-") && expected.iter().any(|(e, _)| e == check))
        .collect();
    let want: BTreeSet<(String, String)> = [
        ("patients.duplicate_in_practice", "dq-dup"),
        ("measurements.implausible_systolic_bp", "dq-sbp"),
        ("measurements.implausible_weight", "dq-weight"),
        ("codes.events_inactive", "dq-inactive"),
        ("codes.events_not_in_release", "dq-unknown"),
        ("medications.dmd_not_in_release", "dq-dmd"),
        ("registrations.ends_before_start", "dq-backwards"),
        ("registrations.overlapping", "dq-overlap-1"),
        ("registrations.overlapping", "dq-overlap-2"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(listed, want);
}
