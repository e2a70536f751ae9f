//! A practice whose extract shares no prescribing (`phm synth --without-prescribing`):
//! its deliveries carry no medication tables, it ingests and reconciles, and its
//! capability profile lacks `medications`; a medication file a manifest lists is
//! still required on disk.

mod common;

use std::fs;
use std::path::Path;

use common::*;
use phm::source::manifest::{Manifest, ManifestFile};
use phm::store::state::PracticeState;
use phm::synth::truth::GroundTruth;

const MEDICATION_TABLES: &[&str] = &[
    "Prescribing_DrugRecord",
    "Prescribing_IssueRecord",
    "SRPrimaryCareMedication",
];

fn synth(out: &Path, emis_share: &str, practices: &str, without: &str) -> GroundTruth {
    let o = phm(&[
        "synth",
        "--out",
        out.to_str().unwrap(),
        "--practices",
        practices,
        "--patients",
        "600",
        "--seed",
        "31",
        "--emis-share",
        emis_share,
        "--without-prescribing",
        without,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    GroundTruth::read(out).unwrap()
}

fn canonical_rows(store: &Path, table: &str, ods: &str) -> u64 {
    let path = store
        .join("canonical")
        .join(table)
        .join(format!("practice={ods}"))
        .join("data.parquet");
    if path.exists() {
        read_batch(&path).num_rows() as u64
    } else {
        0
    }
}

fn report(store: &Path) -> serde_json::Value {
    serde_json::from_slice(&fs::read(store.join("reports/ingest.json")).unwrap()).unwrap()
}

#[test]
fn a_practice_without_prescribing_ingests_and_lacks_medications() {
    for (supplier, share) in [("emis", "1"), ("tpp", "0")] {
        let work = tempfile::tempdir().unwrap();
        let (landing, store) = (work.path().join("landing"), work.path().join("store"));
        let truth = synth(&landing, share, "2", "1");
        let last = truth.practices.last().unwrap();
        assert_eq!(truth.without_prescribing, vec![last.ods.clone()]);
        assert_eq!(last.supplier.as_str(), supplier);
        assert_eq!(last.expected_rows["medications"], 0);
        for d in deliveries(&landing, &last.ods) {
            let m = Manifest::read(&d).unwrap();
            assert!(
                m.files
                    .iter()
                    .all(|f| !MEDICATION_TABLES.contains(&f.table.as_str())),
                "{d:?}"
            );
        }

        let out = ingest(&landing, &store);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{supplier}: {}\n{}",
            stdout(&out),
            stderr(&out)
        );
        let report = report(&store);
        for p in report["practices"].as_array().unwrap() {
            assert_eq!(p["status"], "ingested", "{supplier}: {p}");
            for d in p["deliveries"].as_array().unwrap() {
                for t in d["tables"].as_array().unwrap() {
                    assert_eq!(t["reconciles"], true, "{supplier}: {t}");
                }
            }
            for c in p["canonical"].as_array().unwrap() {
                assert_eq!(c["reconciles"], true, "{supplier}: {c}");
            }
        }

        for p in &truth.practices {
            for (table, expected) in &p.expected_rows {
                assert_eq!(
                    canonical_rows(&store, table, &p.ods),
                    *expected,
                    "{supplier}: {} {table}",
                    p.ods
                );
            }
            let state = PracticeState::read(&store.join("practices").join(&p.ods))
                .unwrap()
                .unwrap();
            let capability = &state.capability;
            let has_medications = capability
                .canonical_tables
                .iter()
                .any(|t| t == "medications");
            if p.ods == last.ods {
                assert!(!has_medications, "{supplier}: {capability:?}");
                assert_eq!(
                    capability.canonical_tables,
                    ["patients", "registrations", "events"],
                    "{supplier}"
                );
                assert!(!capability.code_systems.iter().any(|s| s == "dmd"));
                assert!(
                    capability
                        .source_tables
                        .keys()
                        .all(|t| !MEDICATION_TABLES.contains(&t.as_str())),
                    "{supplier}: {capability:?}"
                );
            } else {
                assert!(has_medications, "{supplier}: {capability:?}");
            }
        }

        // Ingesting the same landing zone again changes nothing.
        let before = tree_hashes(&store.join("canonical"));
        let again = ingest(&landing, &store);
        assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
        assert_eq!(before, tree_hashes(&store.join("canonical")));
    }
}

#[test]
fn a_medication_file_listed_in_a_manifest_must_still_be_on_disk() {
    let work = tempfile::tempdir().unwrap();
    let (landing, store) = (work.path().join("landing"), work.path().join("store"));
    let truth = synth(&landing, "0.5", "3", "1");
    let without = truth.without_prescribing[0].clone();
    let (with_a, with_b) = (&truth.practices[0].ods, &truth.practices[1].ods);

    // A practice that shares prescribing loses a medication file its manifest lists.
    let delivery = &deliveries(&landing, with_a)[1];
    let m = Manifest::read(delivery).unwrap();
    let file = m
        .files
        .iter()
        .find(|f| MEDICATION_TABLES.contains(&f.table.as_str()))
        .unwrap();
    fs::remove_file(delivery.join(&file.path)).unwrap();
    // The practice without prescribing gets a manifest entry for a file that is not there.
    let delivery = &deliveries(&landing, &without)[0];
    let mut m = Manifest::read(delivery).unwrap();
    let supplier_table = match m.supplier.as_str() {
        "emis" => "Prescribing_IssueRecord",
        _ => "SRPrimaryCareMedication",
    };
    m.files.push(ManifestFile {
        table: supplier_table.to_string(),
        path: format!("{supplier_table}.parquet"),
        rows: 0,
        sha256: "0".repeat(64),
    });
    m.write(delivery).unwrap();

    let out = ingest(&landing, &store);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(3), "{text}\n{}", stderr(&out));
    for damaged in [with_a, &without] {
        assert!(text.contains(&format!("rejected {damaged}:")), "{text}");
        assert!(!store.join("practices").join(damaged).exists());
    }
    assert!(
        text.contains("file listed in the manifest is missing"),
        "{text}"
    );
    let state = PracticeState::read(&store.join("practices").join(with_b))
        .unwrap()
        .expect("the undamaged practice is ingested");
    assert!(
        state
            .capability
            .canonical_tables
            .iter()
            .any(|t| t == "medications")
    );
}

#[test]
fn more_practices_without_prescribing_than_practices_is_a_usage_error() {
    let work = tempfile::tempdir().unwrap();
    let out = phm(&[
        "synth",
        "--out",
        work.path().join("landing").to_str().unwrap(),
        "--practices",
        "2",
        "--patients",
        "600",
        "--without-prescribing",
        "3",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--without-prescribing"),
        "{}",
        stderr(&out)
    );
    assert!(!work.path().join("landing").exists());
}
