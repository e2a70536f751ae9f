//! Values no adapter may pass as they came: placeholder NHS numbers, a
//! `ProcessingId` below zero, NaN and infinite values, dates of birth after
//! the extract. Each is flagged or quarantined with a reason, and counted.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use common::*;
use datafusion::arrow::array::{
    Array, ArrayRef, Date32Array, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};

/// `batch` with column `name` replaced by `f(old column)`.
fn replace(batch: RecordBatch, name: &str, f: impl FnOnce(&ArrayRef) -> ArrayRef) -> RecordBatch {
    let i = batch.schema().index_of(name).unwrap();
    let mut cols = batch.columns().to_vec();
    cols[i] = f(&cols[i]);
    RecordBatch::try_new(batch.schema(), cols).unwrap()
}

fn strings(a: &ArrayRef) -> Vec<Option<String>> {
    let a = a.as_any().downcast_ref::<StringArray>().unwrap();
    a.iter().map(|v| v.map(str::to_string)).collect()
}

fn store_table(store: &Path, table: &str, ods: &str) -> RecordBatch {
    read_batch(
        &store
            .join("canonical")
            .join(table)
            .join(format!("practice={ods}"))
            .join("data.parquet"),
    )
}

fn column<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> &'a T {
    batch
        .column_by_name(name)
        .unwrap()
        .as_any()
        .downcast_ref::<T>()
        .unwrap()
}

#[test]
fn placeholder_nhs_numbers_are_never_verified_and_never_link() {
    let work = tempfile::tempdir().unwrap();
    let (landing, store) = (work.path().join("landing"), work.path().join("store"));
    let truth = small_network(&landing, 21);
    let (emis, tpp) = one_of_each(&truth);
    // Three patients at each practice carry 0000000000, which passes Modulus 11.
    let zeros = |a: &ArrayRef| -> ArrayRef {
        let mut v = strings(a);
        for x in v.iter_mut().take(3) {
            *x = Some("0000000000".into());
        }
        Arc::new(StringArray::from(v))
    };
    rewrite_table(&deliveries(&landing, &emis)[0], "Admin_Patient", |b| {
        replace(b, "NhsNumber", zeros)
    });
    rewrite_table(&deliveries(&landing, &tpp)[0], "SRPatient", |b| {
        replace(b, "NHSNumber", zeros)
    });
    let out = ingest(&landing, &store);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    let mut keys = BTreeSet::new();
    for ods in [&emis, &tpp] {
        let patients = store_table(&store, "patients", ods);
        let numbers = column::<StringArray>(&patients, "nhs_number");
        let status = column::<StringArray>(&patients, "nhs_number_status");
        let key = column::<StringArray>(&patients, "person_key");
        let held: Vec<usize> = (0..patients.num_rows())
            .filter(|i| numbers.is_valid(*i) && numbers.value(*i) == "0000000000")
            .collect();
        assert_eq!(held.len(), 3, "{ods}");
        for i in held {
            assert_eq!(status.value(i), "placeholder", "{ods} row {i}");
            assert!(key.value(i).starts_with('L'), "{ods}: a placeholder linked");
            keys.insert(key.value(i).to_string());
        }
    }
    assert_eq!(keys.len(), 6, "six records with 0000000000 are six people");

    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(store.join("reports/ingest.json")).unwrap()).unwrap();
    for ods in [&emis, &tpp] {
        let practice = report["practices"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["practice"] == ods.as_str())
            .unwrap();
        assert_eq!(
            practice["flags"]["patients.nhs_number_status"]["placeholder"], 3,
            "{ods}: placeholders counted in the report"
        );
    }
}

#[test]
fn bad_values_are_flagged_or_quarantined_and_counted() {
    let work = tempfile::tempdir().unwrap();
    let (landing, store) = (work.path().join("landing"), work.path().join("store"));
    let truth = small_network(&landing, 22);
    let (emis, tpp) = one_of_each(&truth);
    let bulk = deliveries(&landing, &emis)[0].clone();

    // Two observations with a ProcessingId below zero; two with NaN and +inf.
    let mut negative_ids = Vec::new();
    let mut non_finite_ids = Vec::new();
    rewrite_table(&bulk, "CareRecord_Observation", |b| {
        let guids = strings(b.column_by_name("ObservationGuid").unwrap());
        let values = column::<Float64Array>(&b, "Value");
        let with_value: Vec<usize> = (0..b.num_rows()).filter(|i| values.is_valid(*i)).collect();
        non_finite_ids = vec![guids[with_value[0]].clone(), guids[with_value[1]].clone()];
        negative_ids = vec![guids[with_value[2]].clone(), guids[with_value[3]].clone()];
        let (nan_rows, neg_rows) = (
            (with_value[0], with_value[1]),
            (with_value[2], with_value[3]),
        );
        let b = replace(b, "Value", |a| {
            let a = a.as_any().downcast_ref::<Float64Array>().unwrap();
            let mut v: Vec<Option<f64>> = a.iter().collect();
            v[nan_rows.0] = Some(f64::NAN);
            v[nan_rows.1] = Some(f64::INFINITY);
            Arc::new(Float64Array::from(v))
        });
        replace(b, "ProcessingId", |a| {
            let a = a.as_any().downcast_ref::<Int64Array>().unwrap();
            let mut v: Vec<Option<i64>> = a.iter().collect();
            v[neg_rows.0] = Some(-1);
            v[neg_rows.1] = Some(-7);
            Arc::new(Int64Array::from(v))
        })
    });
    // Dates of birth in year 9999 at both practices.
    let mut emis_patient = None;
    rewrite_table(&bulk, "Admin_Patient", |b| {
        emis_patient = strings(b.column_by_name("PatientGuid").unwrap())[0].clone();
        replace(b, "DateOfBirth", |a| {
            let a = a.as_any().downcast_ref::<Date32Array>().unwrap();
            let mut v: Vec<Option<i32>> = a.iter().collect();
            v[0] = Some(2_932_896); // 9999-12-31
            Arc::new(Date32Array::from(v))
        })
    });
    let mut tpp_patient = None;
    rewrite_table(&deliveries(&landing, &tpp)[0], "SRPatient", |b| {
        tpp_patient = Some(
            column::<Int64Array>(&b, "RowIdentifier")
                .value(0)
                .to_string(),
        );
        replace(b, "DateBirth", |a| {
            let a = a
                .as_any()
                .downcast_ref::<TimestampMicrosecondArray>()
                .unwrap();
            let mut v: Vec<Option<i64>> = a.iter().collect();
            v[0] = Some(2_932_896 * 86_400 * 1_000_000);
            Arc::new(TimestampMicrosecondArray::from(v))
        })
    });

    let out = ingest(&landing, &store);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    // ProcessingId below zero: quarantined with its reason, not loaded.
    let quarantine = read_batch(
        &store
            .join("quarantine")
            .join(format!("practice={emis}"))
            .join("data.parquet"),
    );
    let reasons = column::<StringArray>(&quarantine, "reason");
    let row_ids = column::<StringArray>(&quarantine, "source_row_id");
    let mut quarantined: Vec<Option<String>> = (0..quarantine.num_rows())
        .filter(|i| reasons.value(*i) == "invalid_processing_id")
        .map(|i| Some(row_ids.value(i).to_string()))
        .collect();
    quarantined.sort();
    let mut expected = negative_ids.clone();
    expected.sort();
    assert_eq!(quarantined, expected);

    let events = store_table(&store, "events", &emis);
    let ids = column::<StringArray>(&events, "source_row_id");
    let flags = column::<StringArray>(&events, "value_flag");
    let values = column::<Float64Array>(&events, "value");
    for i in 0..events.num_rows() {
        let id = Some(ids.value(i).to_string());
        assert!(!negative_ids.contains(&id), "a quarantined row was loaded");
        if non_finite_ids.contains(&id) {
            assert!(values.is_null(i), "a non-finite value was kept");
            assert_eq!(flags.value(i), "non_finite_value");
        }
        if values.is_valid(i) {
            assert!(values.value(i).is_finite());
        }
    }

    // Dates of birth after the extract: dropped and flagged.
    for (ods, id) in [(&emis, &emis_patient), (&tpp, &tpp_patient)] {
        let patients = store_table(&store, "patients", ods);
        let ids = column::<StringArray>(&patients, "patient_id");
        let i = (0..patients.num_rows())
            .find(|i| Some(ids.value(*i).to_string()) == *id)
            .unwrap();
        assert!(column::<Date32Array>(&patients, "date_of_birth").is_null(i));
        assert_eq!(
            column::<StringArray>(&patients, "date_of_birth_flag").value(i),
            "future",
            "{ods}"
        );
    }

    // Every row reconciles, and the report counts each reason.
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(store.join("reports/ingest.json")).unwrap()).unwrap();
    let practice = report["practices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["practice"] == emis.as_str())
        .unwrap();
    assert_eq!(
        practice["flags"]["events.value_flag"]["non_finite_value"],
        2
    );
    assert_eq!(
        practice["flags"]["patients.date_of_birth_flag"]["future"],
        1
    );
    let text = serde_json::to_string(practice).unwrap();
    assert!(!text.contains("\"reconciles\":false"), "{text}");
}
