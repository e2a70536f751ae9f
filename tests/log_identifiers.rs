//! No identifier reaches a log: ingest and a cohort run at `-vv`, in both log
//! formats, print no NHS number, store person key, name or postcode of the
//! landing data (third-party crates' debug lines, which print Parquet column
//! statistics, stay out unless PHM_LOG asks for them by name).

mod common;

use std::collections::BTreeSet;
use std::fs;

use common::*;
use datafusion::arrow::array::{Array, StringArray};

/// Every value of the named string columns in the deliveries' `table` files.
fn landing_values(landing: &std::path::Path, table: &str, columns: &[&str]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for practice in fs::read_dir(landing).unwrap() {
        let practice = practice.unwrap().path();
        if !practice.is_dir() {
            continue;
        }
        for delivery in deliveries(landing, practice.file_name().unwrap().to_str().unwrap()) {
            let m = phm::source::manifest::Manifest::read(&delivery).unwrap();
            for f in m.files.iter().filter(|f| f.table == table) {
                let batch = read_batch(&delivery.join(&f.path));
                for c in columns {
                    let a = batch
                        .column_by_name(c)
                        .unwrap()
                        .as_any()
                        .downcast_ref::<StringArray>()
                        .unwrap();
                    out.extend(
                        a.iter()
                            .flatten()
                            .filter(|v| v.trim().len() >= 4)
                            .map(str::to_string),
                    );
                }
            }
        }
    }
    out
}

#[test]
fn verbose_logs_carry_no_identifier() {
    let work = tempfile::tempdir().unwrap();
    let (landing, store, release, out) = (
        work.path().join("landing"),
        work.path().join("store"),
        work.path().join("release"),
        work.path().join("out"),
    );
    network(&landing, 31, 300);
    assert!(import_fixture(&release).status.success());

    let mut identifiers = BTreeSet::new();
    identifiers.extend(landing_values(
        &landing,
        "Admin_Patient",
        &["NhsNumber", "GivenName", "Surname", "Postcode"],
    ));
    identifiers.extend(landing_values(
        &landing,
        "SRPatient",
        &["NHSNumber", "FirstName", "Surname"],
    ));
    assert!(
        identifiers.len() > 300,
        "identifiers collected: {}",
        identifiers.len()
    );

    let mut logs = String::new();
    for format in ["human", "json"] {
        let run_store = work.path().join(format!("store-{format}"));
        // Runs phm at -vv in this log format; every line it prints is kept.
        let mut logged = |args: &[&str]| -> std::process::Output {
            let mut all = vec!["-vv", "--log-format", format];
            all.extend_from_slice(args);
            let o = phm(&all);
            logs.push_str(&stderr(&o));
            logs.push_str(&stdout(&o));
            o
        };
        let o = logged(&[
            "ingest",
            "--landing",
            landing.to_str().unwrap(),
            "--store",
            run_store.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let o = logged(&[
            "cohort",
            "run",
            "DM_REG",
            "--store",
            run_store.to_str().unwrap(),
            "--release",
            release.to_str().unwrap(),
            "--index-date",
            "2026-03-31",
            "--out",
            out.join(format).to_str().unwrap(),
        ]);
        assert!(matches!(o.status.code(), Some(0 | 3)), "{}", stderr(&o));
        // The keyed run's publish step, data quality, the report and an
        // explanation asked by pseudonym log too.
        let key = work.path().join("network.key");
        fs::write(&key, b"forty bytes of key material for the test").unwrap();
        let (shared, dq) = (
            out.join(format!("{format}-shared")),
            out.join(format!("{format}-dq")),
        );
        let o = logged(&[
            "cohort",
            "run",
            "DM_REG",
            "--store",
            run_store.to_str().unwrap(),
            "--release",
            release.to_str().unwrap(),
            "--index-date",
            "2026-03-31",
            "--out",
            shared.to_str().unwrap(),
            "--key-file",
            key.to_str().unwrap(),
        ]);
        assert!(matches!(o.status.code(), Some(0 | 3)), "{}", stderr(&o));
        let o = logged(&[
            "dq",
            "--store",
            run_store.to_str().unwrap(),
            "--release",
            release.to_str().unwrap(),
            "--out",
            dq.to_str().unwrap(),
            "--as-of",
            "2026-03-31",
        ]);
        assert!(matches!(o.status.code(), Some(0 | 3)), "{}", stderr(&o));
        let o = logged(&[
            "report",
            "--run",
            shared.to_str().unwrap(),
            "--dq",
            dq.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let membership = read_batch(&shared.join("network/DM_REG@2025.1/membership.parquet"));
        let pseudonym = membership
            .column_by_name("pseudonym")
            .unwrap()
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap()
            .value(0)
            .to_string();
        let o = logged(&[
            "cohort",
            "explain",
            "DM_REG",
            "--patient",
            &pseudonym,
            "--key-file",
            key.to_str().unwrap(),
            "--store",
            run_store.to_str().unwrap(),
            "--release",
            release.to_str().unwrap(),
            "--index-date",
            "2026-03-31",
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        if format == "human" {
            fs::rename(&run_store, &store).unwrap();
        }
    }
    assert!(logs.lines().count() > 20, "the runs logged little:\n{logs}");

    // Person keys of the store.
    for table in ["patients"] {
        for part in fs::read_dir(store.join("canonical").join(table)).unwrap() {
            let batch = read_batch(&part.unwrap().path().join("data.parquet"));
            let keys = batch
                .column_by_name("person_key")
                .unwrap()
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap();
            identifiers.extend((0..keys.len()).map(|i| keys.value(i).to_string()));
        }
    }
    let found: Vec<&String> = identifiers
        .iter()
        .filter(|id| logs.contains(id.as_str()))
        .collect();
    assert!(
        found.is_empty(),
        "identifiers in the logs: {:?}",
        &found[..found.len().min(10)]
    );
}
