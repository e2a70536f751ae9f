//! `explain`: what a clinical lead reads for an included, an excluded, a
//! near-miss, an unevaluated person and one registered outside the network, written out by hand from the tiny
//! store below; and the one-person run `phm cohort explain` uses decides
//! exactly as the full run does.

#[path = "cohort_support/mod.rs"]
mod cohort_support;

use std::path::Path;

use cohort_support::{StoreRows, date, terminology};
use phm::cohort::engine::{RunOptions, read_outcomes, run};
use phm::cohort::{Cohort, bind, explain, file};

const DEFINITION: &str = r#"
id = "SPEC_EXPLAIN"
version = "1"
title = "Diabetes register (explain)"
status = "draft"
owner = "spec"
description = "Unresolved diabetes, aged 17 or over."
index_date = "parameter"
otherwise = "select"

[valuesets]
DM_COD = "20250627"
DMRES_COD = "20250627"

[population]
age = { min = 17 }

[criteria.dm_latest]
kind = "latest"
valueset = "DM_COD"

[criteria.dm_resolved]
kind = "exists"
valueset = "DMRES_COD"
window = { after = "dm_latest" }

[[rules]]
name = "diagnosed"
when = "not dm_latest"
then = "reject"
near_miss = false

[[rules]]
name = "unresolved"
when = "dm_resolved"
then = "reject"
"#;

const PATIENTS: &str = "
person     | practice | dob
included   | A81001   | 1960-01-01
resolved   | A81001   | 1960-01-01
none       | A81001   | 1960-01-01
elsewhere  | B82005   | 1960-01-01
moved_out  | A81001   | 1960-01-01
";
// moved_out: A81001's own registration ended; its registration history says
// Z99999 (no extract in the store) since 2024-07-01.
const REGISTRATIONS: &str = "
person     | practice | at     | start      | end
included   | A81001   |        | 2000-01-01 |
resolved   | A81001   |        | 2000-01-01 |
none       | A81001   |        | 2000-01-01 |
elsewhere  | B82005   |        | 2000-01-01 |
moved_out  | A81001   |        | 2000-01-01 | 2024-06-30
moved_out  | A81001   | Z99999 | 2024-07-01 |
";
const EVENTS: &str = "
row | person    | practice | date       | concept
e1  | included  | A81001   | 2018-05-01 | 44054006
e2  | included  | A81001   | 2019-03-02 | 44054006
e3  | resolved  | A81001   | 2019-03-02 | 44054006
e4  | resolved  | A81001   | 2020-07-15 | 315051004
e5  | elsewhere | B82005   | 2019-03-02 | 44054006
e6  | moved_out | A81001   | 2019-03-02 | 44054006
";

fn setup(dir: &Path) -> Cohort {
    let rows = StoreRows::from_tables(PATIENTS, REGISTRATIONS, EVENTS, "");
    rows.write(&dir.join("store"));
    // B82005's extract holds no events: unavailable, never "no diabetes".
    let state = dir.join("store/practices/B82005/state.json");
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    json["capability"]["canonical_tables"] = serde_json::json!(["patients", "registrations"]);
    std::fs::write(&state, serde_json::to_vec_pretty(&json).unwrap()).unwrap();
    let t = terminology();
    let def = file::parse(Path::new("SPEC_EXPLAIN/1.toml"), DEFINITION, &t.catalogue).unwrap();
    bind(def, &t.catalogue, &t.release).unwrap()
}

fn options(out: &Path, person: Option<&str>) -> RunOptions {
    RunOptions {
        index_date: date("2025-03-31"),
        out: out.to_path_buf(),
        person: person.map(str::to_string),
        memory_limit: None,
        work_memory: None,
        release_id: "fixture".into(),
        session: None,
        explain_plans: false,
    }
}

fn narrative(dir: &Path, cohort: &Cohort, person: &str) -> String {
    let out = dir.join(format!("one-{person}"));
    let runs = run(
        &dir.join("store"),
        std::slice::from_ref(cohort),
        &options(&out, Some(person)),
    )
    .unwrap();
    let e = explain::read(&runs[0].dir, &cohort.def.key(), person)
        .unwrap()
        .unwrap_or_else(|| panic!("{person} not in the one-person run"));
    explain::narrative(&cohort.def, date("2025-03-31"), &e)
}

#[test]
fn narratives_for_every_kind_of_person() {
    let dir = tempfile::tempdir().unwrap();
    let cohort = setup(dir.path());

    let included = narrative(dir.path(), &cohort, "included");
    assert_eq!(
        included,
        "\
SPEC_EXPLAIN@1 — Diabetes register (explain), index date 2025-03-31
Person included registered at A81001 on the index date.
Included: no rule fired; otherwise select.
Rules, in order:
  1. diagnosed — reject when not dm_latest: does not hold → next rule
  2. unresolved — reject when dm_resolved: does not hold → next rule
Criteria:
  dm_latest [true] — latest DM_COD@20250627 event, on or before index: met
      evidence: 44054006 |spec event| on 2019-03-02 at A81001 (EMIS, CareRecord_Observation row e2, source code snomed 44054006, exact)
  dm_resolved [false] — any DMRES_COD@20250627 event, after dm_latest, on or before index: no matching event in the window; 0 qualifying
"
    );

    let resolved = narrative(dir.path(), &cohort, "resolved");
    assert!(
        resolved.contains("Excluded: rule 2 (unresolved)."),
        "{resolved}"
    );
    assert!(
        resolved.contains("2. unresolved — reject when dm_resolved: holds → rejected"),
        "{resolved}"
    );
    assert!(resolved.contains("row e4"), "{resolved}");
    assert!(
        resolved.contains(
            "Near miss: only rule \"unresolved\" stands between this person and the cohort."
        ),
        "{resolved}"
    );

    let none = narrative(dir.path(), &cohort, "none");
    assert!(none.contains("Excluded: rule 1 (diagnosed)."), "{none}");
    assert!(
        none.contains("2. unresolved — reject when dm_resolved: not reached"),
        "{none}"
    );
    assert!(
        none.contains("dm_resolved [false] — any DMRES_COD@20250627 event, after dm_latest, on or before index: the criterion it is anchored on chose no event"),
        "{none}"
    );
    assert!(none.contains("Not a near miss."), "{none}");

    let elsewhere = narrative(dir.path(), &cohort, "elsewhere");
    assert_eq!(
        elsewhere,
        "\
SPEC_EXPLAIN@1 — Diabetes register (explain), index date 2025-03-31
Person elsewhere registered at B82005 on the index date.
Not evaluated — practice B82005 is unavailable for this cohort (its extract lacks a table the cohort needs, or its data in the store is damaged or incomplete: see the run's warnings); this is neither an inclusion nor an exclusion.
"
    );

    let moved_out = narrative(dir.path(), &cohort, "moved_out");
    assert_eq!(
        moved_out,
        "\
SPEC_EXPLAIN@1 — Diabetes register (explain), index date 2025-03-31
Person moved_out registered at no practice of the network on the index date.
Excluded — not in the base population: registered on the index date at an organisation whose own extract is not in the store, as a practice's registration history shows.
"
    );
}

#[test]
fn one_person_run_decides_as_the_full_run() {
    let dir = tempfile::tempdir().unwrap();
    let cohort = setup(dir.path());
    let store = dir.path().join("store");
    let full = dir.path().join("full");
    run(&store, std::slice::from_ref(&cohort), &options(&full, None)).unwrap();
    let all = read_outcomes(&full.join(cohort.def.key())).unwrap();
    assert_eq!(all.len(), 5);
    for person in &all {
        let out = dir.path().join(format!("p-{}", person.person_key));
        let runs = run(
            &store,
            std::slice::from_ref(&cohort),
            &options(&out, Some(&person.person_key)),
        )
        .unwrap();
        let one = read_outcomes(&runs[0].dir).unwrap();
        assert_eq!(one.len(), 1, "{}", person.person_key);
        assert_eq!(&one[0], person);
    }
}

#[test]
fn unknown_person_is_absent_not_empty() {
    let dir = tempfile::tempdir().unwrap();
    let cohort = setup(dir.path());
    let out = dir.path().join("nobody");
    let runs = run(
        &dir.path().join("store"),
        std::slice::from_ref(&cohort),
        &options(&out, Some("no-such-key")),
    )
    .unwrap();
    assert!(
        explain::read(&runs[0].dir, &cohort.def.key(), "no-such-key")
            .unwrap()
            .is_none()
    );
}
