//! `phm run PIPELINE` on a small network: a run publishes a complete run
//! folder and points `latest` at it; a rerun of the same inputs does nothing;
//! `--force` redoes it with the same output bytes; a missing expected
//! practice makes the run partial (exit 5), named in status.json; a second
//! run on a store another run holds exits 4 and changes nothing; a wrong
//! pipeline file is refused (exit 2) before anything is written; a
//! practice withdrawn with `phm store remove-practice` is deleted from the
//! store with an audit record, and its deliveries are refused from then on.

mod common;

use std::path::{Path, PathBuf};

use common::{phm, repo, small_network, stderr, stdout, tree_hashes};
use serde_json::Value;

/// A pipeline over the network in `dir/landing`, expecting `expected`.
fn pipeline(dir: &Path, expected: &[&str], extra: &str) -> PathBuf {
    let quoted: Vec<String> = expected.iter().map(|p| format!("\"{p}\"")).collect();
    let text = format!(
        r#"landing = "landing"
store = "store"
release = "release"
output = "out"
cohorts = ["DM_REG@2025.1", "HYP_REG@2025.1"]
cohort_definitions = "{cohorts}"
valuesets = "{valuesets}"
index_date = "last-day-of-previous-month"
expected_practices = [{expected}]
keep_runs = 2
{extra}
[pseudonymisation]
key_file = "test.key"
purpose = "pipeline test"

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

/// A network, its release and a key in `dir`; the practices' ODS codes.
fn setup(dir: &Path) -> Vec<String> {
    let truth = small_network(&dir.join("landing"), 17);
    let out = common::import_fixture(&dir.join("release"));
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::write(dir.join("test.key"), format!("{}\n", "ab".repeat(32))).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.join("test.key"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
    }
    truth.practices.iter().map(|p| p.ods.clone()).collect()
}

fn run(pipeline: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["run", pipeline.to_str().unwrap()];
    if !extra.contains(&"--as-of") {
        args.extend_from_slice(&["--as-of", "2026-04-02"]);
    }
    args.extend_from_slice(extra);
    phm(&args)
}

fn latest(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("out/latest"))
        .unwrap()
        .trim()
        .to_string()
}

fn status(run_dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(run_dir.join("status.json")).unwrap()).unwrap()
}

/// What a run folder holds, except the two files that describe the run
/// itself (its status, with timings and time of publication, and the ingest
/// report, which says what that run's ingest applied).
fn outputs(run_dir: &Path) -> std::collections::BTreeMap<PathBuf, String> {
    let mut h = tree_hashes(run_dir);
    h.retain(|p, _| {
        let name = p.to_string_lossy();
        name != "status.json" && name != "ingest.json"
    });
    h
}

#[test]
fn a_run_publishes_reruns_do_nothing_and_force_gives_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let practices = setup(dir.path());
    let expected: Vec<&str> = practices.iter().map(String::as_str).collect();
    let p = pipeline(dir.path(), &expected, "");

    let first = run(&p, &[]);
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let id = latest(dir.path());
    let run_dir = dir.path().join("out/runs").join(&id);
    let s = status(&run_dir);
    assert_eq!(s["outcome"], "succeeded");
    assert_eq!(s["exit_code"], 0);
    assert_eq!(s["run_id"], id.as_str());
    // The rule, against --as-of 2026-04-02.
    assert_eq!(s["index_date"], "2026-03-31");
    assert_eq!(s["practices"]["missing"], Value::Array(vec![]));
    for f in ["report.html", "manifest.json", "dq/dq.json", "ingest.json"] {
        assert!(run_dir.join(f).is_file(), "{f} missing from the run");
    }
    assert!(run_dir.join("network/DM_REG@2025.1").is_dir());
    let stray: Vec<String> = std::fs::read_dir(dir.path().join("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(stray.is_empty(), "left behind: {stray:?}");
    let text = stdout(&first);
    assert!(text.contains(&format!("Run {id} succeeded")), "{text}");
    let published = outputs(&run_dir);
    assert!(published.len() > 5, "{published:?}");

    // The store's history, for the scheduler.
    let st = phm(&[
        "status",
        "--store",
        dir.path().join("store").to_str().unwrap(),
    ]);
    assert_eq!(st.status.code(), Some(0), "{}", stderr(&st));
    let line = stdout(&st)
        .lines()
        .find(|l| l.contains(&id))
        .unwrap_or_else(|| panic!("{}", stdout(&st)))
        .to_string();
    assert!(line.contains("succeeded"), "{line}");

    // The same inputs: nothing to do, the same exit code, nothing rewritten.
    let whole = tree_hashes(&run_dir);
    let again = run(&p, &[]);
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    assert!(
        stdout(&again).contains("already published"),
        "{}",
        stdout(&again)
    );
    assert_eq!(
        tree_hashes(&run_dir),
        whole,
        "a no-op rerun rewrote the run"
    );

    // --force: run again, the same outputs, byte for byte.
    let forced = run(&p, &["--force"]);
    assert_eq!(forced.status.code(), Some(0), "{}", stderr(&forced));
    assert_eq!(latest(dir.path()), id);
    assert_eq!(outputs(&run_dir), published, "a forced rerun differs");

    // New inputs (another as-of month): a new run id, published beside.
    let next = run(&p, &["--as-of", "2026-05-02"]);
    assert_eq!(next.status.code(), Some(0), "{}", stderr(&next));
    let next_id = latest(dir.path());
    assert_ne!(next_id, id);
    assert_eq!(
        status(&dir.path().join("out/runs").join(&next_id))["index_date"],
        "2026-04-30"
    );
}

#[test]
fn a_missing_expected_practice_makes_the_run_partial() {
    let dir = tempfile::tempdir().unwrap();
    let practices = setup(dir.path());
    let mut expected: Vec<&str> = practices.iter().map(String::as_str).collect();
    expected.push("Z99999");
    let p = pipeline(dir.path(), &expected, "");
    let out = run(&p, &["-v", "--log-format", "json"]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    let id = latest(dir.path());
    // For the scheduler's log: every stderr line is a JSON object, and each
    // stage's lines carry the stage and the run id; a practice's ingest
    // lines carry the practice inside the ingest stage.
    let lines: Vec<Value> = stderr(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let in_stage = |stage: &str| {
        lines.iter().any(|l| {
            l["span"]["stage"] == stage
                || l["spans"].as_array().is_some_and(|s| {
                    s.iter()
                        .any(|s| s["stage"] == stage && s["run"] == id.as_str())
                })
        })
    };
    for stage in ["ingest", "cohorts", "data quality", "report"] {
        assert!(in_stage(stage), "no log line in stage {stage}");
    }
    assert!(
        lines.iter().any(|l| {
            l["span"]["practice"] == practices[0].as_str() && l["spans"][0]["stage"] == "ingest"
        }),
        "no ingest line of {} inside the ingest stage",
        practices[0]
    );
    let s = status(&dir.path().join("out/runs").join(&id));
    assert_eq!(s["outcome"], "partial");
    assert_eq!(s["exit_code"], 5);
    assert_eq!(s["practices"]["missing"], serde_json::json!(["Z99999"]));
    assert!(stdout(&out).contains("Z99999"), "{}", stdout(&out));
    // A rerun of the same inputs says so again, with the same code.
    let again = run(&p, &[]);
    assert_eq!(again.status.code(), Some(5), "{}", stderr(&again));
    let st = phm(&[
        "status",
        "--store",
        dir.path().join("store").to_str().unwrap(),
        "--format",
        "json",
    ]);
    let history: Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(history[0]["outcome"], "partial");
    assert_eq!(history[0]["exit_code"], 5);
    assert_eq!(history[0]["missing"], serde_json::json!(["Z99999"]));
}

#[test]
fn an_output_root_that_cannot_be_written_publishes_nothing_and_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let practices = setup(dir.path());
    let expected: Vec<&str> = practices.iter().map(String::as_str).collect();
    let p = pipeline(dir.path(), &expected, "");
    // A file where the output root should be: no folder can be made in it.
    std::fs::write(dir.path().join("out"), "not a folder").unwrap();
    let out = run(&p, &[]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("out") && err.contains("nothing was published"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out")).unwrap(),
        "not a folder"
    );
    let st = phm(&[
        "status",
        "--store",
        dir.path().join("store").to_str().unwrap(),
    ]);
    let text = stdout(&st);
    assert!(
        text.contains("failed") && text.contains("nothing was published"),
        "{text}"
    );
}

#[test]
fn a_second_run_on_a_held_store_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let practices = setup(dir.path());
    let expected: Vec<&str> = practices.iter().map(String::as_str).collect();
    let p = pipeline(dir.path(), &expected, "");
    let held = phm::pipeline::publish::RunLock::take(&dir.path().join("store")).unwrap();
    let before = tree_hashes(dir.path());
    let out = run(&p, &[]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("another phm run holds this store"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        tree_hashes(dir.path()),
        before,
        "a refused run wrote something"
    );
    drop(held);
    let out = run(&p, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn a_wrong_pipeline_file_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let practices = setup(dir.path());
    let expected: Vec<&str> = practices.iter().map(String::as_str).collect();
    let cases: Vec<(&str, Box<dyn Fn(&str) -> String>, &str)> = vec![
        (
            "an unknown key",
            Box::new(|t: &str| t.replace("keep_runs = 2", "keep_runs = 2\nkeep_rnus = 3")),
            "line 11: unknown field `keep_rnus`",
        ),
        (
            "a cohort not pinned to a version",
            Box::new(|t: &str| t.replace("\"HYP_REG@2025.1\"", "\"HYP_REG\"")),
            "not pinned to a version",
        ),
        (
            "a cohort version that does not exist",
            Box::new(|t: &str| t.replace("HYP_REG@2025.1", "HYP_REG@1999.1")),
            "HYP_REG",
        ),
        (
            "an index date that is neither a date nor a rule",
            Box::new(|t: &str| t.replace("last-day-of-previous-month", "yesterday")),
            "neither a date",
        ),
        (
            "a key file that is not there",
            Box::new(|t: &str| t.replace("test.key", "missing.key")),
            "missing.key",
        ),
    ];
    let p = pipeline(dir.path(), &expected, "");
    let good = std::fs::read_to_string(&p).unwrap();
    for (what, change, says) in cases {
        std::fs::write(&p, change(&good)).unwrap();
        let out = run(&p, &[]);
        assert_eq!(out.status.code(), Some(2), "{what}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{what}: {}", stderr(&out));
        assert!(
            !dir.path().join("store").exists(),
            "{what}: the store was written"
        );
        assert!(
            !dir.path().join("out").exists(),
            "{what}: outputs were written"
        );
    }
}

#[test]
fn the_committed_schema_is_the_code_s() {
    let generated = phm::pipeline::schema_json();
    let path = repo("docs/pipeline.schema.json");
    if std::env::var("PHM_WRITE_SCHEMA").is_ok() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/pipeline.schema.json differs from the schema of phm::pipeline::PipelineFile; regenerate it with PHM_WRITE_SCHEMA=1 cargo test --test pipeline_run committed_schema"
    );
}

#[test]
fn the_shipped_demo_pipeline_parses() {
    let p = phm::pipeline::Pipeline::read(&repo("pipelines/demo.toml")).unwrap();
    assert_eq!(p.file.cohorts.len(), 10);
    assert!(p.file.demo.is_some());
}

/// The store's files but its lock files, which hold the last holder's pid.
fn store_files(store: &Path) -> std::collections::BTreeMap<PathBuf, String> {
    let mut h = tree_hashes(store);
    h.retain(|p, _| !p.to_string_lossy().ends_with("lock"));
    h
}

/// Every file under `root` whose path names practice `ods`.
fn files_of(root: &Path, ods: &str) -> Vec<PathBuf> {
    tree_hashes(root)
        .into_keys()
        .filter(|p| p.to_string_lossy().contains(ods))
        .collect()
}

#[test]
fn a_withdrawn_practice_is_deleted_audited_and_refused_from_then_on() {
    let dir = tempfile::tempdir().unwrap();
    let practices = setup(dir.path());
    let expected: Vec<&str> = practices.iter().map(String::as_str).collect();
    let p = pipeline(dir.path(), &expected, "");
    let first = run(&p, &[]);
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let first_run = dir.path().join("out/runs").join(latest(dir.path()));
    let store = dir.path().join("store");
    let (gone, kept) = (&practices[0], &practices[1]);
    assert!(!files_of(&store, gone).is_empty());
    let kept_before: Vec<(PathBuf, String)> = tree_hashes(&store)
        .into_iter()
        .filter(|(p, _)| p.to_string_lossy().contains(kept.as_str()))
        .collect();

    let remove = |extra: &[&str]| {
        let mut args = vec![
            "store",
            "remove-practice",
            gone.as_str(),
            "--store",
            store.to_str().unwrap(),
            "--reason",
            "data-sharing agreement ended",
        ];
        args.extend_from_slice(extra);
        phm(&args)
    };
    // Without --yes: what would go, and nothing removed.
    let before = store_files(&store);
    let dry = remove(&[]);
    assert_eq!(dry.status.code(), Some(2), "{}", stderr(&dry));
    assert!(stdout(&dry).contains("would remove"), "{}", stdout(&dry));
    assert!(stderr(&dry).contains("--yes"), "{}", stderr(&dry));
    assert_eq!(store_files(&store), before, "a dry run changed the store");

    let done = remove(&["--yes"]);
    assert_eq!(done.status.code(), Some(0), "{}", stderr(&done));
    let text = stdout(&done);
    // The copies phm does not delete are named: the published run, the landing folder.
    assert!(
        text.contains(&first_run.canonicalize().unwrap().display().to_string()),
        "{text}"
    );
    assert!(text.contains("landing"), "{text}");
    let left: Vec<PathBuf> = files_of(&store, gone)
        .into_iter()
        .filter(|p| !p.starts_with("withdrawn"))
        .collect();
    assert!(left.is_empty(), "still in the store: {left:?}");
    let kept_after: Vec<(PathBuf, String)> = tree_hashes(&store)
        .into_iter()
        .filter(|(p, _)| p.to_string_lossy().contains(kept.as_str()))
        .collect();
    assert_eq!(kept_after, kept_before, "another practice's files changed");
    let record: Value = serde_json::from_slice(
        &std::fs::read(store.join(format!("withdrawn/{gone}.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(record["reason"], "data-sharing agreement ended");
    assert!(record["patients"].as_u64().unwrap() > 0, "{record}");
    let audit = std::fs::read_to_string(store.join("audit/audit.jsonl")).unwrap();
    let last: Value = serde_json::from_str(audit.lines().last().unwrap()).unwrap();
    assert_eq!(last["action"], "store remove-practice");
    assert_eq!(last["practice"], gone.as_str());
    assert_eq!(last["purpose"], "data-sharing agreement ended");

    // The next run is a new run (the store changed), refuses the practice's
    // deliveries still in the landing zone, and is partial: loud, not silent.
    let next = run(&p, &[]);
    assert_eq!(next.status.code(), Some(5), "{}", stderr(&next));
    let id = latest(dir.path());
    let s = status(&dir.path().join("out/runs").join(&id));
    let rejected = s["practices"]["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 1, "{s}");
    assert_eq!(rejected[0]["practice"], gone.as_str());
    assert!(
        rejected[0]["error"].as_str().unwrap().contains("withdrawn"),
        "{s}"
    );
    assert!(
        files_of(&store, gone)
            .iter()
            .all(|p| p.starts_with("withdrawn")),
        "the run brought the practice back"
    );

    // Its landing folder removed and the pipeline no longer expecting it:
    // a clean run without it.
    std::fs::remove_dir_all(dir.path().join("landing").join(gone)).unwrap();
    let rest: Vec<&str> = expected.iter().copied().filter(|e| e != gone).collect();
    let p = pipeline(dir.path(), &rest, "");
    let clean = run(&p, &[]);
    assert_eq!(clean.status.code(), Some(0), "{}", stderr(&clean));
}
