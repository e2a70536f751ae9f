//! The store and a run's outputs after something went wrong: a table file
//! lost after ingest, an ingest killed part-way (`kill -9`) and completed by
//! the next ingest, and a cohort run killed part-way.

mod common;

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use common::*;

const INDEX: &str = "2026-03-31";

/// `phm cohort run DM_REG` on `store` into `out`.
fn run_dm_reg(store: &Path, release: &Path, out: &Path) -> std::process::Output {
    phm(&[
        "cohort",
        "run",
        "DM_REG",
        "--index-date",
        INDEX,
        "--store",
        store.to_str().unwrap(),
        "--release",
        release.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ])
}

/// The cell of `practice` in a run's table (first cohort column).
fn cell(table: &str, practice: &str) -> String {
    table
        .lines()
        .find(|l| l.starts_with(practice))
        .unwrap_or_else(|| panic!("no {practice} row in\n{table}"))
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string()
}

/// Polls `done` until it holds, failing if `child` ends first.
fn wait_for(child: &mut Child, what: &str, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("phm ended ({status}) before {what}");
        }
        assert!(start.elapsed() < Duration::from_secs(300), "no {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn kill(child: &mut Child) {
    assert!(
        child.try_wait().unwrap().is_none(),
        "phm ended before the kill"
    );
    child.kill().unwrap(); // SIGKILL: no destructor runs
    child.wait().unwrap();
}

fn committed(store: &Path, practices: &[String]) -> Vec<String> {
    practices
        .iter()
        .filter(|p| store.join("practices").join(p).join("state.json").is_file())
        .cloned()
        .collect()
}

/// Every file of each practice in the store is recorded in its state.json
/// with its size and SHA-256 (hashed here independently), and nothing else is.
fn records_match_disk(store: &Path, practices: &[String]) {
    for ods in practices {
        let state: serde_json::Value = serde_json::from_slice(
            &std::fs::read(store.join("practices").join(ods).join("state.json")).unwrap(),
        )
        .unwrap();
        let recorded: std::collections::BTreeMap<String, (u64, String)> = state["files"]
            .as_array()
            .expect("state.json records the practice's files")
            .iter()
            .map(|f| {
                (
                    f["path"].as_str().unwrap().to_string(),
                    (
                        f["bytes"].as_u64().unwrap(),
                        f["sha256"].as_str().unwrap().to_string(),
                    ),
                )
            })
            .collect();
        let partition = format!("practice={ods}");
        let mut on_disk = std::collections::BTreeMap::new();
        let places = ["patients", "registrations", "events", "medications"]
            .iter()
            .map(|t| Path::new("canonical").join(t).join(&partition))
            .chain([
                Path::new("quarantine").join(&partition),
                Path::new("practices").join(ods),
            ]);
        for place in places {
            for (rel, sha) in tree_hashes(&store.join(&place)) {
                let path = place.join(&rel);
                if rel == Path::new("state.json") {
                    continue;
                }
                let bytes = std::fs::metadata(store.join(&path)).unwrap().len();
                on_disk.insert(path.to_str().unwrap().to_string(), (bytes, sha));
            }
        }
        assert!(on_disk.keys().any(|p| p.starts_with("canonical/events/")));
        assert_eq!(recorded, on_disk, "practice {ods}");
    }
}

#[test]
fn a_deleted_table_file_makes_its_practice_unavailable_not_zero() {
    let work = tempfile::tempdir().unwrap();
    let (landing, store, release) = (
        work.path().join("landing"),
        work.path().join("store"),
        work.path().join("release"),
    );
    let truth = small_network(&landing, 21);
    let (emis, _) = one_of_each(&truth);
    assert!(import_fixture(&release).status.success());
    assert_eq!(ingest(&landing, &store).status.code(), Some(0));
    let practices: Vec<String> = truth.practices.iter().map(|p| p.ods.clone()).collect();
    records_match_disk(&store, &practices);

    let before = run_dm_reg(&store, &release, &work.path().join("before"));
    assert_eq!(before.status.code(), Some(0), "{}", stderr(&before));
    let counted: u64 = cell(&stdout(&before), &emis).parse().unwrap();

    let events = store
        .join("canonical/events")
        .join(format!("practice={emis}"))
        .join("data.parquet");
    std::fs::remove_file(&events).unwrap();
    let after = run_dm_reg(&store, &release, &work.path().join("after"));
    assert_eq!(after.status.code(), Some(3), "{}", stderr(&after));
    assert_eq!(
        cell(&stdout(&after), &emis),
        "unavailable",
        "{}",
        stdout(&after)
    );
    assert!(
        stderr(&after).contains(&format!("{}: missing", events.display())),
        "{}",
        stderr(&after)
    );
    // The other practices count as before.
    for p in truth
        .practices
        .iter()
        .map(|p| &p.ods)
        .filter(|p| **p != emis)
    {
        assert_eq!(cell(&stdout(&after), p), cell(&stdout(&before), p));
    }
    assert!(counted > 0);
}

#[test]
fn an_ingest_killed_midway_is_reported_then_completed_by_the_next_ingest() {
    let work = tempfile::tempdir().unwrap();
    let (landing, store, clean, release) = (
        work.path().join("landing"),
        work.path().join("store"),
        work.path().join("clean"),
        work.path().join("release"),
    );
    let truth = small_network(&landing, 22);
    let practices: Vec<String> = truth.practices.iter().map(|p| p.ods.clone()).collect();
    assert!(import_fixture(&release).status.success());
    let out = ingest(&landing, &clean);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    // Killed once the first practice has committed.
    let mut child = spawn(&[
        "ingest",
        "--landing",
        landing.to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
    ]);
    wait_for(&mut child, "a practice committed", || {
        !committed(&store, &practices).is_empty()
    });
    kill(&mut child);
    let done = committed(&store, &practices);
    let missing: Vec<&String> = practices.iter().filter(|p| !done.contains(p)).collect();
    assert!(
        !missing.is_empty(),
        "every practice committed before the kill"
    );
    assert!(store.join("ingest-in-progress.json").is_file());

    // A cohort run says the store is incomplete and names what is missing.
    let r = run_dm_reg(&store, &release, &work.path().join("out-crashed"));
    assert_eq!(r.status.code(), Some(3), "{}", stderr(&r));
    for p in &missing {
        let says = format!(
            "practice {p} is unavailable: missing from the store: an ingest did not finish applying"
        );
        assert!(stderr(&r).contains(&says), "{says}\n{}", stderr(&r));
        assert_eq!(cell(&stdout(&r), p), "unavailable");
    }
    assert!(
        stderr(&r).contains("run `phm ingest` again with the same --landing and --store"),
        "{}",
        stderr(&r)
    );

    // What the message says to do works, with no manual step: the lock
    // died with the killed process.
    let again = ingest(&landing, &store);
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    assert!(!store.join("ingest-in-progress.json").exists());
    let staged = store.join(".staging");
    assert!(
        !staged.exists() || std::fs::read_dir(&staged).unwrap().next().is_none(),
        "a staged update left in {}",
        staged.display()
    );
    records_match_disk(&store, &practices);
    for dir in ["canonical", "quarantine", "practices"] {
        assert_eq!(
            tree_hashes(&store.join(dir)),
            tree_hashes(&clean.join(dir)),
            "{dir}/ differs from a clean ingest"
        );
    }
    let r = run_dm_reg(&store, &release, &work.path().join("out-recovered"));
    assert_eq!(r.status.code(), Some(0), "{}", stderr(&r));
    let c = run_dm_reg(&clean, &release, &work.path().join("out-clean"));
    assert_eq!(stdout(&c).lines().next(), stdout(&r).lines().next());
    for p in &practices {
        assert_eq!(cell(&stdout(&r), p), cell(&stdout(&c), p));
    }
}

#[test]
fn a_cohort_run_killed_midway_leaves_a_folder_nothing_reads() {
    let work = tempfile::tempdir().unwrap();
    let (landing, store, release, out) = (
        work.path().join("landing"),
        work.path().join("store"),
        work.path().join("release"),
        work.path().join("out"),
    );
    small_network(&landing, 23);
    assert!(import_fixture(&release).status.success());
    assert_eq!(ingest(&landing, &store).status.code(), Some(0));
    let args = |out: &Path| -> Vec<String> {
        ["cohort", "run", "--all", "--index-date", INDEX, "--store"]
            .iter()
            .map(|s| s.to_string())
            .chain([
                store.to_str().unwrap().to_string(),
                "--release".into(),
                release.to_str().unwrap().to_string(),
                "--out".into(),
                out.to_str().unwrap().to_string(),
            ])
            .collect()
    };
    let full = phm(&args(&out).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        matches!(full.status.code(), Some(0 | 3)),
        "{}",
        stderr(&full)
    );
    let marker = out.join("run.json");
    assert!(marker.is_file());
    let person = std::fs::read_to_string(out.join("DM_REG@2025.1/membership.csv"))
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .to_string();
    let explain = || {
        phm(&[
            "cohort",
            "explain",
            "DM_REG",
            "--patient",
            &person,
            "--run",
            out.to_str().unwrap(),
            "--release",
            release.to_str().unwrap(),
        ])
    };
    assert_eq!(explain().status.code(), Some(0), "{}", stderr(&explain()));

    // A second run into the same folder, killed once it has started: the
    // first run's complete-looking folders are still there, the marker not.
    let argv = args(&out);
    let mut child = spawn(&argv.iter().map(String::as_str).collect::<Vec<_>>());
    wait_for(&mut child, "the run started", || {
        !marker.exists() && out.join(".work").exists()
    });
    kill(&mut child);
    assert!(out.join("DM_REG@2025.1/membership.parquet").is_file());
    let refused = explain();
    assert_eq!(refused.status.code(), Some(3), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("the run that wrote it did not finish"),
        "{}",
        stderr(&refused)
    );

    // The next run cleans up after it and finishes with its marker.
    let again = phm(&argv.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(
        again.status.code(),
        full.status.code(),
        "{}",
        stderr(&again)
    );
    assert!(marker.is_file());
    let left: Vec<PathBuf> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    assert_eq!(explain().status.code(), Some(0));
}
