//! Spec cases: each `tests/cohort_spec/*.toml` is one boundary of
//! `docs/cohort-language.md` written down as a cohort definition, a tiny store
//! (ASCII tables) and the outcome expected per patient. Every case runs through
//! both the DataFusion engine and the reference evaluator; each must give the
//! expected outcome, and the two must agree person by person on everything
//! (`outcome::differences`).
//!
//! Case file keys: `title`, `index` (YYYY-MM-DD), `definition` (the cohort
//! TOML) or `cohort` (a shipped definition, `ID/version` under `cohorts/`),
//! `patients`, `registrations`, `events`, `medications` (tables, see
//! `cohort_support::StoreRows::from_tables`), `capability` (practice → its
//! canonical tables, to simulate a practice lacking one), and `[expect.PERSON]`
//! with `status`, `practice`, `included` (`true`, `false` or
//! `"undetermined"`), `rule` (the deciding rule),
//! `near_miss`, and `[expect.PERSON.criteria.NAME]` with `verdict` (`true`,
//! `false` or `"undetermined"`), `reason`,
//! `evidence` (an event's `row`; absent = no evidence), and optionally `count`,
//! `value`, `refused` (`reason` may be left out only where the doc leaves it
//! open). Omitted `included`/`rule`/`near_miss` mean "none".
//!
//! `PHM_SPEC_CASE=<file stem>` runs one case.

#[path = "cohort_support/mod.rs"]
mod cohort_support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cohort_support::{StoreRows, date, repo, terminology};
use phm::cohort::outcome::{PersonOutcome, differences};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    title: String,
    index: String,
    #[serde(default)]
    definition: Option<String>,
    #[serde(default)]
    cohort: Option<String>,
    patients: String,
    #[serde(default)]
    registrations: String,
    #[serde(default)]
    events: String,
    #[serde(default)]
    medications: String,
    #[serde(default)]
    capability: BTreeMap<String, Vec<String>>,
    expect: BTreeMap<String, Expect>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    status: String,
    practice: Option<String>,
    included: Option<ThreeValued>,
    rule: Option<String>,
    near_miss: Option<String>,
    #[serde(default)]
    criteria: BTreeMap<String, ExpectCriterion>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectCriterion {
    verdict: ThreeValued,
    /// Absent: not checked (where the doc leaves the reason open).
    reason: Option<String>,
    evidence: Option<String>,
    count: Option<u64>,
    value: Option<f64>,
    refused: Option<u64>,
}

/// `true`, `false` or `"undetermined"` in a case file.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ThreeValued {
    Known(bool),
    Word(String),
}

impl ThreeValued {
    fn value(&self) -> Option<bool> {
        match self {
            ThreeValued::Known(b) => Some(*b),
            ThreeValued::Word(w) if w == "undetermined" => None,
            ThreeValued::Word(w) => panic!("{w:?}: write true, false or \"undetermined\""),
        }
    }
}

fn case_files() -> Vec<PathBuf> {
    let only = std::env::var("PHM_SPEC_CASE").ok();
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo("tests/cohort_spec"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .filter(|p| {
            only.as_deref()
                .is_none_or(|o| p.file_stem().is_some_and(|s| s == o))
        })
        .collect();
    files.sort();
    files
}

/// Differences between what a case expects and what an evaluator produced.
fn check(case: &Case, rows: &StoreRows, got: &[PersonOutcome]) -> Vec<String> {
    let mut out = Vec::new();
    let got: BTreeMap<&str, &PersonOutcome> =
        got.iter().map(|p| (p.person_key.as_str(), p)).collect();
    for key in got.keys() {
        if !case.expect.contains_key(*key) {
            out.push(format!("{key}: has an outcome but no [expect.{key}]"));
        }
    }
    for (key, e) in &case.expect {
        let Some(p) = got.get(key.as_str()) else {
            out.push(format!("{key}: expected, but has no outcome"));
            continue;
        };
        let mut field = |name: &str, want: String, have: String| {
            if want != have {
                out.push(format!("{key}: {name}: expected {want}, got {have}"));
            }
        };
        field("status", e.status.clone(), p.status.name().to_string());
        if let Some(practice) = &e.practice {
            field(
                "practice",
                format!("{practice:?}"),
                format!("{:?}", p.practice.as_deref().unwrap_or("")),
            );
        }
        // An undetermined person is in the base population with no decision.
        field(
            "included",
            format!("{:?}", e.included.as_ref().and_then(ThreeValued::value)),
            format!("{:?}", p.included),
        );
        field(
            "outcome",
            format!(
                "{:?}",
                e.included
                    .as_ref()
                    .map(|i| i.value().map_or("undetermined", |b| if b {
                        "included"
                    } else {
                        "excluded"
                    }))
            ),
            format!("{:?}", p.outcome()),
        );
        field(
            "rule",
            format!("{:?}", e.rule),
            format!("{:?}", p.deciding_rule),
        );
        field(
            "near_miss",
            format!("{:?}", e.near_miss),
            format!("{:?}", p.near_miss_rule),
        );
        for (name, ec) in &e.criteria {
            let Some(c) = p.criteria.get(name) else {
                out.push(format!("{key}: criterion {name}: expected, not evaluated"));
                continue;
            };
            let mut field = |what: &str, want: String, have: String| {
                if want != have {
                    out.push(format!("{key}: {name}.{what}: expected {want}, got {have}"));
                }
            };
            field(
                "verdict",
                format!("{:?}", ec.verdict.value()),
                format!("{:?}", c.verdict),
            );
            if let Some(reason) = &ec.reason {
                field("reason", reason.clone(), c.reason.name().to_string());
            }
            let evidence = ec.evidence.as_ref().map(|row| {
                rows.evidence_id(row).unwrap_or_else(|| {
                    panic!("{}: evidence row {row:?} is in no table", case.title)
                })
            });
            field(
                "evidence",
                format!("{evidence:?}"),
                format!("{:?}", c.evidence),
            );
            if let Some(n) = ec.count {
                field("count", n.to_string(), c.count.to_string());
            }
            if let Some(n) = ec.refused {
                field("refused", n.to_string(), c.refused.to_string());
            }
            if let Some(v) = ec.value {
                let close = c
                    .value
                    .is_some_and(|x| (x - v).abs() <= 1e-6 * v.abs().max(1.0));
                if !close {
                    field("value", format!("Some({v})"), format!("{:?}", c.value));
                }
            }
        }
    }
    out
}

/// Runs one case; returns the problems found (empty when it passes).
fn run_case(path: &Path, tmp: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let case: Case = toml::from_str(&text)
        .unwrap_or_else(|e| panic!("{}: not a spec case: {e}", path.display()));
    let t = terminology();
    let (def_path, definition) = match (&case.definition, &case.cohort) {
        (Some(text), None) => (path.with_extension("definition.toml"), text.clone()),
        (None, Some(shipped)) => {
            let p = repo(&format!("cohorts/{shipped}.toml"));
            let text =
                std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, text)
        }
        _ => return vec!["give exactly one of `definition` and `cohort`".to_string()],
    };
    let def = match phm::cohort::file::parse(&def_path, &definition, &t.catalogue) {
        Ok(d) => d,
        Err(e) => return vec![format!("the definition does not parse: {e}")],
    };
    let cohort = phm::cohort::bind(def, &t.catalogue, &t.release).unwrap();
    let index = date(&case.index);
    let mut rows = StoreRows::from_tables(
        &case.patients,
        &case.registrations,
        &case.events,
        &case.medications,
    );
    rows.capability = case.capability.clone();
    let store = tmp.join("store");
    rows.write(&store);

    let mut problems = Vec::new();
    let reference = cohort_support::reference(&store, std::slice::from_ref(&cohort), index)
        .pop()
        .unwrap();
    for p in check(&case, &rows, &reference) {
        problems.push(format!("reference: {p}"));
    }
    let engine = cohort_support::engine(
        &store,
        std::slice::from_ref(&cohort),
        index,
        &tmp.join("out"),
    )
    .pop()
    .unwrap();
    for p in check(&case, &rows, &engine) {
        problems.push(format!("engine: {p}"));
    }
    for d in differences(&engine, &reference) {
        problems.push(format!("engine (left) vs reference (right): {d}"));
    }
    problems
}

#[test]
fn spec_cases() {
    let files = case_files();
    assert!(!files.is_empty(), "no spec cases found");
    let mut failures = Vec::new();
    for path in &files {
        let tmp = tempfile::tempdir().unwrap();
        let problems = run_case(path, tmp.path());
        if !problems.is_empty() {
            failures.push(format!(
                "{}:\n    {}",
                path.file_name().unwrap().to_string_lossy(),
                problems.join("\n    ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} spec cases failed:\n\n{}",
        failures.len(),
        files.len(),
        failures.join("\n\n")
    );
}
