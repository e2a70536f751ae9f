//! `phm cohort validate|show` run as the real binary: the shipped cohorts
//! validate and bind against the imported fixture release, `show` prints a
//! definition, and broken definitions fail with exit 2 naming file and line.

use std::path::Path;
use std::process::Output;

mod common;
use common::{import_fixture, phm, repo, stderr, stdout};

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}: {}",
        o.status.code(),
        stderr(o)
    );
    stdout(o)
}

/// Writes `files` (path, text) under `dir`.
fn write(dir: &Path, files: &[(&str, &str)]) {
    for (rel, text) in files {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}

const GOOD: &str = r#"id = "GOOD"
version = "2025.1"
title = "t"
status = "draft"
owner = "o"
description = "d"
index_date = "parameter"

[valuesets]
DM_COD = "20250627"

[criteria.dm_latest]
kind = "latest"
valueset = "DM_COD"

[[rules]]
name = "diagnosed"
when = "dm_latest"
then = "select"
"#;

#[test]
fn shipped_cohorts_validate_and_show() {
    let tmp = tempfile::tempdir().unwrap();
    let release = tmp.path().join("fixture-release");
    let imported = import_fixture(&release);
    assert!(imported.status.success(), "{}", stderr(&imported));
    let release = release.to_str().unwrap();

    let shipped: Vec<String> = std::fs::read_dir(repo("cohorts"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .map(|p| p.file_name().unwrap().to_str().unwrap().to_string())
        .collect();
    assert!(shipped.len() >= 10, "{shipped:?}");

    for args in [
        vec!["cohort", "validate"],
        vec!["cohort", "validate", "--release", release],
    ] {
        let out = ok(&phm(&args));
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines.len() >= shipped.len(), "{out}");
        assert!(lines.iter().all(|l| l.starts_with("ok ")), "{out}");
        for id in &shipped {
            assert!(out.contains(&format!("ok {id}@")), "{id}: {out}");
        }
        assert!(
            out.contains("ok DM_REG@2025.1 (2 criteria, 2 rules"),
            "{out}"
        );
    }
    let out = ok(&phm(&[
        "cohort",
        "validate",
        "DM_REG",
        "CKD_3_5@2025.1",
        "--release",
        release,
    ]));
    assert!(out.contains("2 value sets expanded against"), "{out}");
    assert_eq!(out.lines().count(), 2, "{out}");

    let out = ok(&phm(&["cohort", "show", "DM_REG", "--release", release]));
    for want in [
        "DM_REG@2025.1  Diabetes register",
        "Index date: given by the run (--index-date)",
        "aged 17 or over",
        "dm_latest: Latest diabetes diagnosis",
        "the latest event coded in DM_COD dated on or before the index date",
        "dated after the date of dm_latest and on or before the index date",
        "1. diagnosed: if not dm_latest, reject",
        "2. unresolved: if dm_resolved, reject",
        "Otherwise: select",
        "codes  sha256 ",
    ] {
        assert!(out.contains(want), "{want:?} not in\n{out}");
    }
    let out = ok(&phm(&["cohort", "show", "DM_HBA1C_58@2025.1"]));
    assert!(
        out.contains("dated after the index date − 12 months and on or before the index date; its value is at most 58 mmol/mol"),
        "{out}"
    );
    assert!(!out.contains("sha256"), "{out}");
}

#[test]
fn broken_definitions_fail_with_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let bad_rule = GOOD
        .replace("\"GOOD\"", "\"BAD_RULE\"")
        .replace("when = \"dm_latest\"", "when = \"dm_latest and dm_gone\"");
    let bad_syntax = GOOD
        .replace("\"GOOD\"", "\"BAD_SYNTAX\"")
        .replace("title = \"t\"", "title = \"t");
    let bad_version = GOOD
        .replace("\"GOOD\"", "\"BAD_PIN\"")
        .replace("DM_COD = \"20250627\"", "DM_COD = \"1999\"");
    let wrong_folder = GOOD.to_string();
    write(
        tmp.path(),
        &[
            ("GOOD/2025.1.toml", GOOD),
            ("BAD_RULE/2025.1.toml", &bad_rule),
            ("BAD_SYNTAX/2025.1.toml", &bad_syntax),
            ("BAD_PIN/2025.1.toml", &bad_version),
            ("ELSEWHERE/2025.1.toml", &wrong_folder),
        ],
    );
    let dir = tmp.path().to_str().unwrap();
    let o = phm(&["cohort", "validate", "--cohorts", dir]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let (out, err) = (stdout(&o), stderr(&o));
    assert_eq!(out, "ok GOOD@2025.1 (1 criterion, 1 rule)\n");
    let sep = std::path::MAIN_SEPARATOR;
    for want in [
        format!(
            "BAD_RULE{sep}2025.1.toml:18:23: rule \"diagnosed\" names `dm_gone`, which is not a criterion"
        ),
        format!("BAD_SYNTAX{sep}2025.1.toml:3:"),
        format!(
            "BAD_PIN{sep}2025.1.toml:10:10: value set DM_COD has no version \"1999\"; hint: versions of DM_COD: 20200812, 20210127, 20250627"
        ),
        format!(
            "ELSEWHERE{sep}2025.1.toml:1:6: id \"GOOD\" does not match the folder \"ELSEWHERE\""
        ),
        "4 of 5 cohort definitions failed validation".to_string(),
    ] {
        assert!(err.contains(&want), "{want:?} not in\n{err}");
    }

    // One named definition, an unknown cohort, a missing folder.
    let cases: [(&[&str], i32, &str); 4] = [
        (&["cohort", "validate", "GOOD", "--cohorts", dir], 0, ""),
        (
            &["cohort", "validate", "NOPE", "--cohorts", dir],
            2,
            "cohort \"NOPE\" not found",
        ),
        (
            &["cohort", "show", "BAD_RULE", "--cohorts", dir],
            2,
            "BAD_RULE{sep}2025.1.toml:18:23:",
        ),
        (
            &["cohort", "validate", "--cohorts", "no/such/dir"],
            2,
            "no/such/dir: no such folder",
        ),
    ];
    for (args, code, want) in cases {
        let o = phm(args);
        let want = want.replace("{sep}", &sep.to_string());
        assert_eq!(o.status.code(), Some(code), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(&want), "{args:?}: {}", stderr(&o));
    }
}
