//! `phm run` killed with SIGKILL at points spread over its whole run
//! (ingest, cohorts, outputs, data quality, report, publication), and two
//! runs started at once on one store, through the real binary only.
//!
//! Kill points: fractions of a measured clean run's duration, the same
//! fractions every time (nothing asserts on time). Each kill starts from the
//! same inputs in the same folder, so a clean run's outputs are comparable
//! byte for byte. After each kill:
//! - nothing half-published: `latest`, when there is one, names a run in
//!   `runs/`, and every run in `runs/` is complete: its status and outputs
//!   are the clean run's;
//! - a rerun exits 0 and publishes the clean run's outputs, byte for byte,
//!   under the same run id, leaves nothing staged behind, and leaves the
//!   store's data (canonical rows, quarantine, supplier state) the clean
//!   run's, byte for byte.
//!
//! `PHM_KILL_POINTS=N` runs N evenly spread points instead of 20 (the longer
//! run in `benches/README.md`).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{copy_dir, import_fixture, network_of, repo, stderr, tree_hashes};

const PATIENTS: usize = 60;

fn pipeline(dir: &Path, expected: &[String]) -> PathBuf {
    let quoted: Vec<String> = expected.iter().map(|p| format!("\"{p}\"")).collect();
    let text = format!(
        r#"landing = "landing"
store = "store"
release = "release"
output = "out"
cohorts = ["DM_REG@2025.1", "HYP_REG@2025.1"]
cohort_definitions = "{cohorts}"
valuesets = "{valuesets}"
index_date = "2026-03-31"
expected_practices = [{expected}]
keep_runs = 3

[pseudonymisation]
key_file = "test.key"
purpose = "pipeline kill test"

[disclosure]
threshold = 7
base = 5
"#,
        cohorts = repo("cohorts").display(),
        valuesets = repo("valuesets").display(),
        expected = quoted.join(", "),
    );
    let path = dir.join("nightly.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn command(p: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_phm"));
    c.args(["run", p.to_str().unwrap(), "--as-of", "2026-04-02"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("PHM_LOG");
    c
}

/// The run's outputs: every file of the run folder except its status and
/// ingest report, which describe the run rather than its results.
fn outputs(run_dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut h = tree_hashes(run_dir);
    h.retain(|p, _| {
        let name = p.to_string_lossy();
        name != "status.json" && name != "ingest.json"
    });
    h
}

/// The store's data: canonical rows, quarantine and supplier state (not
/// `state.json` or reports, which record when they were written).
fn store_data(store: &Path) -> BTreeMap<PathBuf, String> {
    let mut h = tree_hashes(store);
    h.retain(|p, _| {
        p.starts_with("canonical")
            || p.starts_with("quarantine")
            || p.extension().is_some_and(|e| e == "parquet")
    });
    h
}

fn published_runs(out: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(out.join("runs")) else {
        return Vec::new();
    };
    entries.map(|e| e.unwrap().path()).collect()
}

/// The inputs of a run in `dir`: a two-practice network, the fixture
/// release, a key and the pipeline file `nightly.toml`.
fn prepare(dir: &Path) {
    let truth = network_of(&dir.join("landing"), 23, 2, PATIENTS);
    let out = import_fixture(&dir.join("release"));
    assert!(out.status.success(), "{}", stderr(&out));
    let key = dir.join("test.key");
    std::fs::write(&key, format!("{}\n", "cd".repeat(32))).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let expected: Vec<String> = truth.practices.iter().map(|p| p.ods.clone()).collect();
    pipeline(dir, &expected);
}

fn latest(out: &Path) -> String {
    std::fs::read_to_string(out.join("latest"))
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn two_runs_on_one_store_at_once_one_runs_and_the_other_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = dir.path().join("inputs");
    prepare(&inputs);
    let clean = dir.path().join("clean");
    copy_dir(&inputs, &clean);
    let out = command(&clean.join("nightly.toml")).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    let work = dir.path().join("work");
    copy_dir(&inputs, &work);
    let p = work.join("nightly.toml");
    let first = command(&p)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The second starts once the first holds the store: the lock file names it.
    let pid = first.id().to_string();
    let waited = Instant::now();
    while std::fs::read_to_string(work.join("store/.run.lock")).unwrap_or_default() != pid {
        assert!(
            waited.elapsed() < Duration::from_secs(120),
            "the first run never took the lock"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let second = command(&p).output().unwrap();
    let first = first.wait_with_output().unwrap();
    assert_eq!(
        second.status.code(),
        Some(4),
        "the second run: {}",
        stderr(&second)
    );
    let said = stderr(&second);
    assert!(
        said.contains("another phm run holds this store") && said.contains(&pid),
        "{said}"
    );
    assert_eq!(
        first.status.code(),
        Some(0),
        "the first run: {}",
        stderr(&first)
    );
    let out_dir = work.join("out");
    assert_eq!(
        std::fs::read_dir(out_dir.join("runs")).unwrap().count(),
        1,
        "one run published"
    );
    // The run published is a clean run's: the same bytes as a run alone in
    // the same folder (the data-quality report names its store's path).
    let published = outputs(&out_dir.join("runs").join(latest(&out_dir)));
    let alone = command(&p).arg("--force").output().unwrap();
    assert_eq!(alone.status.code(), Some(0), "{}", stderr(&alone));
    assert_eq!(
        outputs(&out_dir.join("runs").join(latest(&out_dir))),
        published
    );
    assert_eq!(
        store_data(&work.join("store")),
        store_data(&clean.join("store")),
        "the store differs from a run alone's"
    );
}

#[test]
fn a_killed_run_publishes_nothing_half_done_and_a_rerun_equals_a_clean_run() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = dir.path().join("inputs");
    prepare(&inputs);

    let work = dir.path().join("work");
    let fresh = || {
        if work.exists() {
            std::fs::remove_dir_all(&work).unwrap();
        }
        copy_dir(&inputs, &work);
        work.join("nightly.toml")
    };

    // A clean run: its duration spreads the kill points, its outputs are the reference.
    let p = fresh();
    let started = Instant::now();
    let clean = command(&p).output().unwrap();
    let took = started.elapsed();
    assert_eq!(clean.status.code(), Some(0), "{}", stderr(&clean));
    let id = std::fs::read_to_string(work.join("out/latest"))
        .unwrap()
        .trim()
        .to_string();
    let reference = outputs(&work.join("out/runs").join(&id));
    assert!(reference.len() > 5);
    let reference_store = store_data(&work.join("store"));
    assert!(!reference_store.is_empty());

    let points: usize = std::env::var("PHM_KILL_POINTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20);
    let mut published_at_kill = 0;
    for k in 0..points {
        let fraction = (k as f64 + 0.5) / points as f64;
        let p = fresh();
        let mut child = command(&p)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_secs_f64(took.as_secs_f64() * fraction));
        let _ = child.kill();
        let _ = child.wait();
        let out_dir = work.join("out");

        // As left: nothing half-published.
        let runs = published_runs(&out_dir);
        for run in &runs {
            assert_eq!(
                run.file_name().unwrap().to_string_lossy(),
                id,
                "kill at {fraction:.3}: an unexpected run folder"
            );
            assert!(
                run.join("status.json").is_file(),
                "kill at {fraction:.3}: a published run without its status"
            );
            assert_eq!(
                outputs(run),
                reference,
                "kill at {fraction:.3}: a published run differs from a clean run's"
            );
        }
        if let Ok(latest) = std::fs::read_to_string(out_dir.join("latest")) {
            assert!(
                out_dir
                    .join("runs")
                    .join(latest.trim())
                    .join("status.json")
                    .is_file(),
                "kill at {fraction:.3}: latest names a run that is not published"
            );
        }
        published_at_kill += usize::from(!runs.is_empty());

        // A rerun completes it: the clean run's outputs, nothing staged left.
        let rerun = command(&p).output().unwrap();
        assert_eq!(
            rerun.status.code(),
            Some(0),
            "kill at {fraction:.3}: {}",
            stderr(&rerun)
        );
        assert_eq!(
            std::fs::read_to_string(out_dir.join("latest"))
                .unwrap()
                .trim(),
            id,
            "kill at {fraction:.3}"
        );
        assert_eq!(
            outputs(&out_dir.join("runs").join(&id)),
            reference,
            "kill at {fraction:.3}: the rerun's outputs differ from a clean run's"
        );
        assert_eq!(
            store_data(&work.join("store")),
            reference_store,
            "kill at {fraction:.3}: the store after the rerun differs from a clean run's"
        );
        let staged: Vec<String> = std::fs::read_dir(&out_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(staged.is_empty(), "kill at {fraction:.3}: left {staged:?}");
    }
    // The points reach past publication at least once, and not every time.
    assert!(
        published_at_kill < points,
        "every kill came after publication: the points do not cover the run"
    );
}
