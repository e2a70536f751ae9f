//! `phm cohort run` and `phm cohort explain` through the real binary: outputs,
//! exit codes a scheduler can act on, and the messages a user reads.

#[path = "cohort_support/mod.rs"]
mod cohort_support;
mod common;

use std::path::Path;

use cohort_support::StoreRows;

/// Two practices; B82005's extract has no prescribing (medications absent).
fn store(dir: &Path) {
    let rows = StoreRows::from_tables(
        "
person | practice | dob
dm     | A81001   | 1960-01-01
af     | A81001   | 1950-01-01
other  | B82005   | 1970-01-01
",
        "
person | practice | start
dm     | A81001   | 2000-01-01
af     | A81001   | 2000-01-01
other  | B82005   | 2000-01-01
",
        "
row | person | practice | date       | concept
e1  | dm     | A81001   | 2019-03-02 | 44054006
e2  | af     | A81001   | 2020-01-10 | 49436004
e3  | other  | B82005   | 2020-01-10 | 49436004
",
        "
row | person | practice | date       | dmd
m1  | dm     | A81001   | 2026-01-05 | 123
",
    );
    rows.write(dir);
}

fn release(dir: &Path) -> String {
    let out = dir.join("fixture");
    let o = common::import_fixture(&out);
    assert!(o.status.success(), "{}", common::stderr(&o));
    out.to_str().unwrap().to_string()
}

#[test]
fn run_explain_and_exit_codes() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    store_dir(&store);
    let release = release(tmp.path());
    let out = tmp.path().join("out");
    let (s, o) = (store.to_str().unwrap(), out.to_str().unwrap());
    let run = |cohorts: &[&str], store: &str, index: Option<&str>| {
        let mut args = vec!["cohort", "run"];
        args.extend_from_slice(cohorts);
        args.extend(["--store", store, "--release", &release, "--out", o]);
        if let Some(d) = index {
            args.extend(["--index-date", d]);
        }
        common::phm(&args)
    };

    // A parameter index date must be given: usage error, nothing written.
    let r = run(&["DM_REG"], s, None);
    assert_eq!(r.status.code(), Some(2), "{}", common::stderr(&r));
    assert!(
        common::stderr(&r).contains("--index-date"),
        "{}",
        common::stderr(&r)
    );
    assert!(!out.exists());

    // An unknown cohort is a usage error naming what exists.
    let r = run(&["NO_SUCH"], s, Some("2026-03-31"));
    assert_eq!(r.status.code(), Some(2), "{}", common::stderr(&r));
    assert!(
        common::stderr(&r).contains("NO_SUCH"),
        "{}",
        common::stderr(&r)
    );

    // A store that is not there is a usage error (the command points at a
    // place phm cannot use), not an empty cohort.
    let missing = tmp.path().join("no-store");
    let r = run(&["DM_REG"], missing.to_str().unwrap(), Some("2026-03-31"));
    assert_eq!(r.status.code(), Some(2), "{}", common::stderr(&r));
    assert!(!common::stderr(&r).is_empty());

    // DM_REG reads events only: both practices answer; exit 0.
    let r = run(&["DM_REG"], s, Some("2026-03-31"));
    assert_eq!(r.status.code(), Some(0), "{}", common::stderr(&r));
    let table = common::stdout(&r);
    let row = |p: &str| {
        table
            .lines()
            .find(|l| l.starts_with(p))
            .unwrap_or_else(|| panic!("no {p} row in\n{table}"))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    assert_eq!(row("A81001"), ["A81001", "1"], "{table}");
    assert_eq!(row("B82005"), ["B82005", "0"], "{table}");
    assert_eq!(row("network"), ["network", "1"], "{table}");
    for f in [
        "membership",
        "explanations",
        "near_misses",
        "attrition",
        "combinations",
    ] {
        for ext in ["parquet", "csv"] {
            assert!(
                out.join(format!("DM_REG@2025.1/{f}.{ext}")).is_file(),
                "{f}.{ext}"
            );
        }
    }
    let membership = std::fs::read_to_string(out.join("DM_REG@2025.1/membership.csv")).unwrap();
    assert!(
        membership
            .lines()
            .any(|l| l.starts_with("dm,A81001,in_population,true")),
        "{membership}"
    );

    // AF_NO_DOAC reads medications: B82005 has none, so it is unavailable
    // (not zero) and the run says so with exit code 3.
    let r = run(&["AF_NO_DOAC", "AF_REG"], s, Some("2026-03-31"));
    assert_eq!(r.status.code(), Some(3), "{}", common::stderr(&r));
    let table = common::stdout(&r);
    let b = table.lines().find(|l| l.starts_with("B82005")).unwrap();
    assert_eq!(
        b.split_whitespace().collect::<Vec<_>>(),
        ["B82005", "unavailable", "1"],
        "{table}"
    );
    assert!(table.contains("unknown, not zero"), "{table}");

    // Explain: narrative and JSON for the included person.
    let r = common::phm(&[
        "cohort",
        "explain",
        "DM_REG",
        "--patient",
        "dm",
        "--store",
        s,
        "--release",
        &release,
        "--index-date",
        "2026-03-31",
    ]);
    assert_eq!(r.status.code(), Some(0), "{}", common::stderr(&r));
    let text = common::stdout(&r);
    assert!(text.contains("Included"), "{text}");
    assert!(
        text.contains("44054006 |spec event| on 2019-03-02 at A81001"),
        "{text}"
    );
    let r = common::phm(&[
        "cohort",
        "explain",
        "DM_REG",
        "--patient",
        "af",
        "--store",
        s,
        "--release",
        &release,
        "--index-date",
        "2026-03-31",
        "--format",
        "json",
    ]);
    assert_eq!(r.status.code(), Some(0), "{}", common::stderr(&r));
    let json: serde_json::Value = serde_json::from_str(&common::stdout(&r)).unwrap();
    assert_eq!(json["included"], serde_json::json!(false));
    assert_eq!(json["deciding_rule"], serde_json::json!("diagnosed"));
    assert_eq!(json["near_miss_rule"], serde_json::Value::Null);

    // A person the store does not hold: exit 3 and a hint, not an empty story.
    let r = common::phm(&[
        "cohort",
        "explain",
        "DM_REG",
        "--patient",
        "nobody",
        "--store",
        s,
        "--release",
        &release,
        "--index-date",
        "2026-03-31",
    ]);
    assert_eq!(r.status.code(), Some(3), "{}", common::stderr(&r));
    assert!(
        common::stderr(&r).contains("not in the store"),
        "{}",
        common::stderr(&r)
    );
    assert!(common::stdout(&r).is_empty());

    // An index date after the latest extract is answered, with a warning naming it.
    let r = run(&["DM_REG"], s, Some("2027-03-31"));
    assert_eq!(r.status.code(), Some(0), "{}", common::stderr(&r));
    let err = common::stderr(&r);
    assert!(
        err.contains("warning") && err.contains("2026-06-30"),
        "{err}"
    );
}

fn store_dir(dir: &Path) {
    store(dir);
    // B82005 sent no prescribing: its capability lacks medications.
    let state = dir.join("practices/B82005/state.json");
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    json["capability"]["canonical_tables"] =
        serde_json::json!(["events", "patients", "registrations"]);
    std::fs::write(&state, serde_json::to_vec_pretty(&json).unwrap()).unwrap();
}

/// A person whose inclusion hinges on a refused value is printed beside the
/// included, never in them, and `explain` says so in words.
#[test]
fn undetermined_persons_are_printed_beside_the_included() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    // low: two eGFRs below 60, 152 days apart: included in CKD_3_5.
    // unitless: the same, then 61 with no unit five days before the index
    // date: may have recovered, so undetermined.
    StoreRows::from_tables(
        "
person   | practice | dob
low      | A81001   | 1960-01-01
unitless | A81001   | 1960-01-01
",
        "
person   | practice | start
low      | A81001   | 2000-01-01
unitless | A81001   | 2000-01-01
",
        "
row | person   | practice | date       | concept          | value | unit
e1  | low      | A81001   | 2025-01-01 | 1011481000000105 | 50    | mL/min/1.73m2
e2  | low      | A81001   | 2025-06-01 | 1011481000000105 | 45    | mL/min/1.73m2
e3  | unitless | A81001   | 2025-01-01 | 1011481000000105 | 50    | mL/min/1.73m2
e4  | unitless | A81001   | 2025-06-01 | 1011481000000105 | 45    | mL/min/1.73m2
e5  | unitless | A81001   | 2026-03-26 | 1011481000000105 | 61    |
",
        "",
    )
    .write(&store);
    let release = release(tmp.path());
    let out = tmp.path().join("out");
    let (s, o) = (store.to_str().unwrap(), out.to_str().unwrap());
    let r = common::phm(&[
        "cohort",
        "run",
        "CKD_3_5",
        "--store",
        s,
        "--release",
        &release,
        "--out",
        o,
        "--index-date",
        "2026-03-31",
    ]);
    assert_eq!(r.status.code(), Some(0), "{}", common::stderr(&r));
    let table = common::stdout(&r);
    let row = |p: &str| {
        table
            .lines()
            .find(|l| l.starts_with(p))
            .unwrap_or_else(|| panic!("no {p} row in\n{table}"))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    assert_eq!(row("A81001"), ["A81001", "1", "+1?"], "{table}");
    assert_eq!(row("network"), ["network", "1", "+1?"], "{table}");
    assert!(table.contains("+N? persons undetermined"), "{table}");
    assert!(
        table.contains("2 in population, 1 included, 1 undetermined"),
        "{table}"
    );
    let membership = std::fs::read_to_string(out.join("CKD_3_5@2025.1/membership.csv")).unwrap();
    assert!(
        membership.contains("unitless,A81001,in_population,,undetermined,recovered,"),
        "{membership}"
    );

    let r = common::phm(&[
        "cohort",
        "explain",
        "CKD_3_5",
        "--patient",
        "unitless",
        "--store",
        s,
        "--release",
        &release,
        "--index-date",
        "2026-03-31",
    ]);
    assert_eq!(r.status.code(), Some(0), "{}", common::stderr(&r));
    let text = common::stdout(&r);
    assert!(
        text.contains(
            "Undetermined — neither included nor excluded: rule 1 (recovered) could not decide"
        ),
        "{text}"
    );
    assert!(text.contains("egfr_latest_normal [undetermined]"), "{text}");
    assert!(text.contains("value 61 (no unit)"), "{text}");
}
