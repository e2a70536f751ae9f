//! `phm report` end to end: a small network is ingested, two cohorts run
//! with a key, `phm dq` assesses the store, and the report is checked as
//! text (self-contained, key elements, no identifier of the store) and in
//! headless Chromium (no console message, no resource loaded, the key
//! elements in the rendered DOM, a screenshot kept with the test output).
//!
//! Chromium is required: without it the test fails and says how to install
//! it (`apt-get install chromium`); `PHM_CHROMIUM` names another binary.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use common::browser::{open, run_chromium};
use common::*;
use datafusion::arrow::array::{Array, RecordBatch, StringArray};

const KEY: &[u8] = b"forty bytes of key material for the test";
const COHORTS: [&str; 2] = ["DM_REG", "CKD_3_5"];

fn strings<'a>(b: &'a RecordBatch, c: &str) -> &'a StringArray {
    b.column_by_name(c)
        .unwrap_or_else(|| panic!("no column {c}"))
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap_or_else(|| panic!("{c} is not Utf8"))
}

#[test]
fn chromium_problem_detection_catches_a_script_error_and_a_missing_image() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &str, &[&str]); 3] = [
        (
            "script.html",
            "<!DOCTYPE html><html><head><title>t</title></head><body><h1>x</h1><script>undefinedFunction();</script></body></html>",
            &["undefinedFunction is not defined"],
        ),
        (
            "image.html",
            "<!DOCTYPE html><html><head><title>t</title></head><body><h1>x</h1><img src=\"missing.png\" alt=\"\"></body></html>",
            &["missing.png"],
        ),
        (
            "clean.html",
            "<!DOCTYPE html><html><head><title>t</title></head><body><h1>x</h1></body></html>",
            &[],
        ),
    ];
    for (name, text, expected) in cases {
        let page = dir.path().join(name);
        fs::write(&page, text).unwrap();
        let (dom, problems) = open(&page);
        assert!(dom.contains("<h1>x</h1>"), "{name}: DOM {dom:?}");
        assert_eq!(problems.len(), expected.len(), "{name}: {problems:#?}");
        for (want, got) in expected.iter().zip(&problems) {
            assert!(got.contains(want), "{name}: {got:?} lacks {want:?}");
        }
    }
}

/// Identifiers of the store (person keys, NHS numbers, patient ids) and the
/// run's pseudonyms: none may reach the report.
fn identifiers(store: &Path, out: &Path) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for part in fs::read_dir(store.join("canonical/patients")).unwrap() {
        let b = read_batch(&part.unwrap().path().join("data.parquet"));
        for column in ["person_key", "nhs_number", "patient_id"] {
            let values = datafusion::arrow::compute::cast(
                b.column_by_name(column).unwrap(),
                &datafusion::arrow::datatypes::DataType::Utf8,
            )
            .unwrap();
            let values = values.as_any().downcast_ref::<StringArray>().unwrap();
            for i in 0..values.len() {
                // Short values (a TPP patient id of a few digits) would match
                // any number on the page.
                if values.is_valid(i) && values.value(i).len() >= 8 {
                    ids.insert(values.value(i).to_string());
                }
            }
        }
    }
    for entry in fs::read_dir(out.join("network")).unwrap() {
        let b = read_batch(&entry.unwrap().path().join("membership.parquet"));
        let pseudonyms = strings(&b, "pseudonym");
        for i in 0..b.num_rows() {
            ids.insert(pseudonyms.value(i).to_string());
        }
    }
    ids
}

#[test]
fn report_of_a_run_and_its_dq_is_self_contained_and_renders_in_chromium() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let (landing, store, release, out, dq) = (
        w.join("landing"),
        w.join("store"),
        w.join("release"),
        w.join("out"),
        w.join("dq"),
    );
    network(&landing, 61, 900);
    assert!(import_fixture(&release).status.success());
    assert_eq!(ingest(&landing, &store).status.code(), Some(0));
    let key = w.join("network.key");
    fs::write(&key, KEY).unwrap();
    let path = |p: &Path| p.to_str().unwrap().to_string();
    let mut args: Vec<String> = ["cohort", "run"].map(String::from).to_vec();
    args.extend(COHORTS.map(String::from));
    args.extend(
        [
            "--store",
            &path(&store),
            "--release",
            &path(&release),
            "--index-date",
            "2026-03-31",
            "--out",
            &path(&out),
            "--key-file",
            &path(&key),
        ]
        .map(String::from),
    );
    let o = phm(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(matches!(o.status.code(), Some(0 | 3)), "{}", stderr(&o));
    let o = phm(&[
        "dq",
        "--store",
        &path(&store),
        "--release",
        &path(&release),
        "--out",
        &path(&dq),
        "--as-of",
        "2026-03-31",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = phm(&["report", "--run", &path(&out), "--dq", &path(&dq)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let page = out.join("report.html");
    assert_eq!(stdout(&o), format!("report: {}\n", page.display()));
    let html = fs::read_to_string(&page).unwrap();

    // Self-contained: nothing to fetch, nothing to run.
    for banned in [
        "src=\"http://",
        "src=\"https://",
        "href=\"http://",
        "href=\"https://",
        "<script",
        "<link",
        "<img",
        "<iframe",
        "@import",
        "url(",
    ] {
        assert!(!html.contains(banned), "the report holds {banned:?}");
    }
    // Key elements.
    assert_eq!(html.matches("<h1").count(), 1);
    assert!(html.contains("<table class=\"scorecard\">"));
    assert!(html.contains("id=\"check-events.future\""));
    assert!(html.contains("<section id=\"lineage\">"));
    for cohort in COHORTS {
        assert!(
            html.contains(&format!("<section id=\"cohort-{cohort}@")),
            "{cohort}"
        );
    }
    assert_eq!(html.matches("<svg role=\"img\"").count(), COHORTS.len());
    // Nothing that names a person.
    let leaked: Vec<String> = identifiers(&store, &out)
        .into_iter()
        .filter(|id| html.contains(id.as_str()))
        .collect();
    assert!(leaked.is_empty(), "identifiers in the report: {leaked:?}");

    // Scoped to one practice: only its column in the scorecard.
    let truth_practices: Vec<String> = fs::read_dir(store.join("practices"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let one = truth_practices.iter().min().unwrap();
    let scoped = w.join("one.html");
    let o = phm(&[
        "report",
        "--run",
        &path(&out),
        "--dq",
        &path(&dq),
        "--out",
        &path(&scoped),
        "--practice",
        one,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let scoped_html = fs::read_to_string(&scoped).unwrap();
    assert!(scoped_html.contains(&format!("scoped to practice <strong>{one}</strong>")));
    for other in truth_practices.iter().filter(|p| *p != one) {
        assert!(
            !scoped_html.contains(&format!("<th scope=\"col\">{other}</th>")),
            "{other} in the scoped scorecard"
        );
    }

    // In the browser.
    let (dom, problems) = open(&page);
    assert!(problems.is_empty(), "the page misbehaved: {problems:#?}");
    assert!(dom.contains("<h1>Network report</h1>"));
    assert!(dom.contains("class=\"scorecard\""));
    assert!(dom.contains("<section id=\"lineage\">"));
    assert_eq!(dom.matches("<svg role=\"img\"").count(), COHORTS.len());
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("report-screenshot");
    fs::create_dir_all(&shots).unwrap();
    let shot = shots.join("report.png");
    let _ = fs::remove_file(&shot);
    run_chromium(
        &page,
        &[
            format!("--screenshot={}", shot.display()),
            "--window-size=1280,4000".into(),
        ],
    );
    let png = fs::read(&shot).unwrap_or_default();
    assert!(
        png.starts_with(b"\x89PNG"),
        "no screenshot at {}",
        shot.display()
    );
    println!("report screenshot: {}", shot.display());
}
