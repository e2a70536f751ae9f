//! `phm demo`, the README's first command, on a small network: it builds the
//! release, synthesises, ingests (printing the reconciliation table), runs
//! every shipped cohort, shows the practice without prescribing as unavailable
//! (not zero); a rerun reuses what is there, shows the stored counts as
//! unchanged (not zero) and prints the same cohort table; a rerun with other
//! parameters rebuilds the network rather than showing the old one.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use phm::synth::truth::GroundTruth;

/// The ingest table's practice rows: ODS → (status, patients, events, medications).
fn ingest_rows(text: &str) -> BTreeMap<String, (String, String, String, String)> {
    text.lines()
        .skip_while(|l| !l.starts_with("practice supp"))
        .skip(1)
        .take_while(|l| !l.starts_with("persons linked") && !l.starts_with("unchanged:"))
        .map(|l| {
            let c: Vec<&str> = l.split_whitespace().collect();
            (
                c[0].to_string(),
                (c[2].into(), c[3].into(), c[4].into(), c[5].into()),
            )
        })
        .collect()
}

/// What the ground truth says each practice must hold after all deliveries.
fn expected_rows(landing: &Path) -> BTreeMap<String, (String, String, String)> {
    let truth = GroundTruth::read(landing).unwrap();
    truth
        .practices
        .iter()
        .map(|p| {
            let n = |t: &str| p.expected_rows.get(t).copied().unwrap_or(0).to_string();
            (
                p.ods.clone(),
                (n("patients"), n("events"), n("medications")),
            )
        })
        .collect()
}

/// Everything after the ingest table: the cohort table, explanation, outputs.
fn after_ingest(text: &str) -> &str {
    &text[text
        .find("Persons included")
        .unwrap_or_else(|| panic!("{text}"))..]
}

fn counts(
    rows: &BTreeMap<String, (String, String, String, String)>,
    status: &str,
) -> BTreeMap<String, (String, String, String)> {
    rows.iter()
        .map(|(ods, (s, p, e, m))| {
            assert_eq!(s, status, "{ods}");
            (ods.clone(), (p.clone(), e.clone(), m.clone()))
        })
        .collect()
}

#[test]
fn demo_runs_end_to_end_and_reruns_the_same() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let args = [
        "demo",
        "--dir",
        dir.to_str().unwrap(),
        "--practices",
        "3",
        "--patients",
        "900",
    ];
    let first = common::phm(&args);
    assert_eq!(first.status.code(), Some(0), "{}", common::stderr(&first));
    let text = common::stdout(&first);

    // The ingest table, with what the generator says each practice must hold.
    let truth = expected_rows(&dir.join("landing"));
    assert_eq!(truth.len(), 3);
    assert_eq!(counts(&ingest_rows(&text), "ingested"), truth, "{text}");

    let cohorts: Vec<String> = std::fs::read_dir(common::repo("cohorts"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let cohort_table = after_ingest(&text);
    let header = cohort_table
        .lines()
        .find(|l| l.starts_with("practice"))
        .unwrap_or_else(|| panic!("no table in\n{text}"));
    for id in &cohorts {
        assert!(
            header.split_whitespace().any(|h| h == id),
            "{id} missing from {header}"
        );
        assert!(
            dir.join(format!("out/network/{id}@2025.1/membership.parquet"))
                .is_file(),
            "{id}"
        );
        // The engine's identifiable folders are gone once the tiers are written.
        assert!(!dir.join(format!("out/{id}@2025.1")).exists(), "{id}");
    }
    // Three practice rows and the network row; the last practice delivered no
    // prescribing, so the medication cohorts say unavailable for it.
    let rows: Vec<&str> = cohort_table
        .lines()
        .skip_while(|l| !l.starts_with("practice"))
        .skip(1)
        .take(4)
        .collect();
    assert_eq!(rows.len(), 4, "{text}");
    assert!(rows[3].starts_with("network"), "{text}");
    let unavailable: Vec<&&str> = rows.iter().filter(|r| r.contains("unavailable")).collect();
    assert_eq!(unavailable.len(), 1, "{text}");
    let column = |name: &str| header.split_whitespace().position(|h| h == name).unwrap();
    let cells: Vec<&str> = unavailable[0].split_whitespace().collect();
    assert_eq!(cells[column("AF_NO_DOAC")], "unavailable", "{text}");
    assert_eq!(cells[column("MEDRVW_DUE")], "unavailable", "{text}");
    assert_ne!(cells[column("DM_REG")], "unavailable", "{text}");
    assert!(text.contains("unknown, not zero"), "{text}");
    assert!(
        text.contains("Example explanation:\nDM_REG@2025.1"),
        "{text}"
    );
    assert!(text.contains("Included"), "{text}");
    // The example names its person by pseudonym, with the command that asks
    // for it the same way; no store person key reaches the console.
    assert!(
        text.contains("explain DM_REG@2025.1 --patient P") && text.contains("--key-file"),
        "{text}"
    );
    for practice in std::fs::read_dir(dir.join("store/canonical/patients")).unwrap() {
        let patients = common::read_batch(&practice.unwrap().path().join("data.parquet"));
        let keys = patients
            .column_by_name("person_key")
            .unwrap()
            .as_any()
            .downcast_ref::<datafusion::arrow::array::StringArray>()
            .unwrap();
        for key in keys.iter().flatten() {
            assert!(!text.contains(key), "person key {key} on the demo's stdout");
        }
    }

    // The shareable tiers, the manifest and the audit record, with a key the
    // demo generated for itself, readable by its owner only.
    {
        use std::os::unix::fs::PermissionsExt;
        let key = dir.join("demo.key");
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o077,
            0
        );
        assert!(common::stderr(&first).contains("generated a pseudonym key"));
        let membership =
            common::read_batch(&dir.join("out/network/DM_REG@2025.1/membership.parquet"));
        assert!(membership.schema().field_with_name("person_key").is_err());
        assert!(membership.schema().field_with_name("pseudonym").is_ok());
        assert!(dir.join("out/network/DM_REG@2025.1/counts.csv").is_file());
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("out/manifest.json")).unwrap()).unwrap();
        assert_eq!(manifest["disclosure"]["threshold"], 7);
        let audit = phm::output::audit::read(&dir.join("store")).unwrap();
        assert_eq!(audit.len(), 1);
        assert_eq!(audit[0].purpose.as_deref(), Some("phm demo"));
        assert!(text.contains("Shareable outputs"), "{text}");
    }

    // Data quality beside the run, and the report inside it, named last.
    assert!(dir.join("dq/dq.json").is_file());
    let report = dir.join("out/report.html");
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(html.contains("<table class=\"scorecard\">"));
    // A funnel plot per cohort, unless the network's prevalence is
    // suppressed (then the page says so instead).
    assert_eq!(html.matches("<h4>Funnel plot</h4>").count(), cohorts.len());
    let drawn = html.matches("<svg role=\"img\"").count();
    let not_drawn = html.matches("so no funnel plot is drawn").count();
    assert_eq!(drawn + not_drawn, cohorts.len());
    assert!(drawn > 0);
    // The practice without prescribing: unavailable in the medication
    // cohorts' counts, in words, and listed as not plotted.
    assert!(html.contains("<td class=\"state unavailable\">unavailable</td>"));
    assert!(html.contains("(the cohort could not be evaluated there)"));
    let last = text.lines().last().unwrap();
    assert_eq!(last, format!("Report: {}", report.display()), "{text}");
    // The demo's own report, in headless Chromium: nothing on the console,
    // nothing loaded besides the page, the scorecard and the plots built.
    let (dom, problems) = common::browser::open(&report);
    assert!(problems.is_empty(), "{problems:#?}");
    assert!(dom.contains("<h1>") && dom.contains("<table class=\"scorecard\">"));
    assert_eq!(dom.matches("<svg role=\"img\"").count(), drawn);

    // A rerun reuses the release and landing zone; ingest is a no-op.
    let second = common::phm(&args);
    assert_eq!(second.status.code(), Some(0), "{}", common::stderr(&second));
    let err = common::stderr(&second);
    assert!(
        !err.contains("synthesising") && !err.contains("building the fixture"),
        "{err}"
    );
    // The ingest table shows what the store holds, unchanged: not zero.
    let again = common::stdout(&second);
    assert_eq!(counts(&ingest_rows(&again), "unchanged"), truth, "{again}");
    assert_eq!(after_ingest(&again), after_ingest(&text));

    // Other parameters: a new network, never the old one's results.
    let other = [
        "demo",
        "--dir",
        dir.to_str().unwrap(),
        "--practices",
        "2",
        "--patients",
        "600",
        "--seed",
        "7",
    ];
    let third = common::phm(&other);
    assert_eq!(third.status.code(), Some(0), "{}", common::stderr(&third));
    let err = common::stderr(&third);
    assert!(
        err.contains("rebuilding it for --practices 2 --patients 600 --seed 7"),
        "{err}"
    );
    let rebuilt = common::stdout(&third);
    let new_truth = expected_rows(&dir.join("landing"));
    assert_eq!(GroundTruth::read(&dir.join("landing")).unwrap().seed, 7);
    assert_eq!(new_truth.len(), 2);
    assert_eq!(
        counts(&ingest_rows(&rebuilt), "ingested"),
        new_truth,
        "{rebuilt}"
    );
    let included: Vec<&str> = after_ingest(&rebuilt)
        .lines()
        .skip_while(|l| !l.starts_with("practice"))
        .skip(1)
        .take_while(|l| !l.starts_with("network"))
        .collect();
    let practices: Vec<&str> = included
        .iter()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(
        practices,
        new_truth.keys().map(String::as_str).collect::<Vec<_>>(),
        "{rebuilt}"
    );
}
