//! Bad deliveries: each gets a non-zero exit, a one-line message saying what,
//! where and what is safe to do next, and leaves the store untouched for that
//! practice while the other practices are ingested.

mod common;

use std::fs;
use std::path::Path;
use std::sync::Arc;

use common::*;
use datafusion::arrow::array::{RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use phm::source::manifest::Manifest;

struct Case {
    name: &'static str,
    /// Damages the landing zone; gets (landing, EMIS practice, TPP practice) and
    /// returns the practice it damaged.
    damage: fn(&Path, &str, &str) -> String,
    expected: &'static [&'static str],
}

fn first_file(delivery: &Path) -> std::path::PathBuf {
    delivery.join(&Manifest::read(delivery).unwrap().files[0].path)
}

const CASES: &[Case] = &[
    Case {
        name: "missing manifest",
        damage: |landing, emis, _| {
            fs::remove_file(deliveries(landing, emis)[1].join("manifest.json")).unwrap();
            emis.into()
        },
        expected: &["no manifest.json", "hint:"],
    },
    Case {
        name: "hash mismatch",
        damage: |landing, _, tpp| {
            let path = first_file(&deliveries(landing, tpp)[0]);
            let mut bytes = fs::read(&path).unwrap();
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0xff;
            fs::write(&path, bytes).unwrap();
            tpp.into()
        },
        expected: &["SHA-256 mismatch", "manifest says", "re-send"],
    },
    Case {
        name: "row count mismatch",
        damage: |landing, emis, _| {
            let d = &deliveries(landing, emis)[0];
            let mut m = Manifest::read(d).unwrap();
            m.files[0].rows += 1;
            m.write(d).unwrap();
            emis.into()
        },
        expected: &["row count mismatch"],
    },
    Case {
        name: "truncated Parquet",
        damage: |landing, emis, _| {
            let d = &deliveries(landing, emis)[0];
            let mut m = Manifest::read(d).unwrap();
            let path = d.join(&m.files[0].path);
            let bytes = fs::read(&path).unwrap();
            fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
            m.files[0].sha256 = phm::source::manifest::sha256_file(&path).unwrap();
            m.write(d).unwrap();
            emis.into()
        },
        expected: &["not a readable Parquet file", "truncated"],
    },
    Case {
        name: "renamed column",
        damage: |landing, emis, _| {
            rewrite_table(&deliveries(landing, emis)[0], "Admin_Patient", |b| {
                rename_column(b, "NhsNumber", "NhsNumbr")
            });
            emis.into()
        },
        expected: &["no column `NhsNumber`", "schema version 5.4", "NhsNumbr"],
    },
    Case {
        name: "wrong column type",
        damage: |landing, _, tpp| {
            rewrite_table(&deliveries(landing, tpp)[0], "SRPatient", |b| {
                let i = b.schema().index_of("RowIdentifier").unwrap();
                let as_text: StringArray = b
                    .column(i)
                    .as_any()
                    .downcast_ref::<datafusion::arrow::array::Int64Array>()
                    .unwrap()
                    .iter()
                    .map(|v| v.map(|v| v.to_string()))
                    .collect();
                let mut fields: Vec<Field> = b
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| f.as_ref().clone())
                    .collect();
                fields[i] = Field::new("RowIdentifier", DataType::Utf8, true);
                let mut cols = b.columns().to_vec();
                cols[i] = Arc::new(as_text);
                RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap()
            });
            tpp.into()
        },
        expected: &["column `RowIdentifier` of SRPatient has type Utf8, expected Int64"],
    },
    Case {
        name: "empty delivery",
        damage: |landing, emis, _| {
            let d = &deliveries(landing, emis)[2];
            let mut m = Manifest::read(d).unwrap();
            m.files.clear();
            m.write(d).unwrap();
            emis.into()
        },
        expected: &["empty delivery"],
    },
    Case {
        name: "unknown supplier",
        damage: |landing, _, tpp| {
            let d = &deliveries(landing, tpp)[0];
            let text = fs::read_to_string(d.join("manifest.json"))
                .unwrap()
                .replace("\"tpp\"", "\"vision\"");
            fs::write(d.join("manifest.json"), text).unwrap();
            tpp.into()
        },
        expected: &["unknown supplier \"vision\""],
    },
];

#[test]
fn each_bad_delivery_is_refused_and_loses_nothing() {
    let base = tempfile::tempdir().unwrap();
    let pristine = base.path().join("pristine");
    let truth = small_network(&pristine, 11);
    let (emis, tpp) = one_of_each(&truth);
    for case in CASES {
        let work = tempfile::tempdir().unwrap();
        let landing = work.path().join("landing");
        let store = work.path().join("store");
        copy_dir(&pristine, &landing);
        let damaged = (case.damage)(&landing, &emis, &tpp);

        let out = ingest(&landing, &store);
        let err = stderr(&out);
        let out_text = stdout(&out);
        assert_eq!(
            out.status.code(),
            Some(3),
            "{}: exit code; stderr: {err}",
            case.name
        );
        for needle in case.expected {
            assert!(
                out_text.contains(needle),
                "{}: summary lacks {needle:?}:\n{out_text}",
                case.name
            );
        }
        assert!(
            out_text.contains(&format!("rejected {damaged}:")),
            "{}: {out_text}",
            case.name
        );
        // Nothing written for the damaged practice; the others are in the store.
        assert!(
            !store.join("practices").join(&damaged).exists(),
            "{}: practice state written",
            case.name
        );
        for table in ["patients", "events"] {
            assert!(
                !store
                    .join("canonical")
                    .join(table)
                    .join(format!("practice={damaged}"))
                    .exists(),
                "{}",
                case.name
            );
        }
        let others: Vec<&str> = truth
            .practices
            .iter()
            .map(|p| p.ods.as_str())
            .filter(|o| *o != damaged)
            .collect();
        for ods in others {
            assert!(
                store
                    .join("practices")
                    .join(ods)
                    .join("state.json")
                    .exists(),
                "{}: {ods} not ingested",
                case.name
            );
        }
    }
}

#[test]
fn a_delivery_older_than_the_store_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let landing = work.path().join("landing");
    let store = work.path().join("store");
    let truth = small_network(&landing, 12);
    let (emis, _) = one_of_each(&truth);
    assert_eq!(ingest(&landing, &store).status.code(), Some(0));
    let before = tree_hashes(&store.join("canonical"));

    // A delivery that arrives late: extracted before the store's latest.
    let first = &deliveries(&landing, &emis)[0];
    let late = landing.join(&emis).join("late-delivery");
    copy_dir(first, &late);
    let mut m = Manifest::read(&late).unwrap();
    m.extract_id = "late-delivery".into();
    m.kind = phm::source::manifest::ExtractKind::Delta;
    m.write(&late).unwrap();

    let out = ingest(&landing, &store);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stdout(&out).contains("is older than"), "{}", stdout(&out));
    assert_eq!(
        before,
        tree_hashes(&store.join("canonical")),
        "store changed"
    );
}

#[test]
fn a_locked_store_is_refused_with_its_own_exit_code() {
    let work = tempfile::tempdir().unwrap();
    let landing = work.path().join("landing");
    let store = work.path().join("store");
    small_network(&landing, 13);
    fs::create_dir_all(&store).unwrap();
    fs::write(store.join(".lock"), "12345").unwrap();
    let out = ingest(&landing, &store);
    assert_eq!(out.status.code(), Some(4));
    assert!(
        stderr(&out).contains("locked by another phm process (pid 12345)"),
        "{}",
        stderr(&out)
    );
    assert!(!store.join("canonical").exists());
}

#[test]
fn a_missing_landing_zone_is_a_usage_error() {
    let work = tempfile::tempdir().unwrap();
    let out = ingest(&work.path().join("nope"), &work.path().join("store"));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("landing zone not found"));
}
