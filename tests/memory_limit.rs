//! A memory limit the data cannot fit in. The cohort and data-quality stages
//! fail with one message naming the stage and the limit, and publish nothing:
//! no completion marker, no report, and no earlier run's report left beside
//! the failed run's files.
//!
//! The command line takes at least 64 MiB, which the small test network fits
//! in; the library is given 1 MiB, which real DataFusion operators cannot
//! work within, so the refusal here is the engine's own.

#[path = "cohort_support/mod.rs"]
mod cohort_support;
mod common;

use chrono::NaiveDate;
use phm::cohort::engine::{RunOptions, marker, run};
use phm::session::Session;

const TOO_LITTLE: usize = 1 << 20;

fn index() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, 31).unwrap()
}

fn store(dir: &std::path::Path) -> std::path::PathBuf {
    let (landing, store) = (dir.join("landing"), dir.join("store"));
    common::small_network(&landing, 31);
    let o = common::ingest(&landing, &store);
    assert!(o.status.success(), "ingest: {}", common::stderr(&o));
    store
}

#[test]
fn a_cohort_run_that_cannot_fit_names_the_stage_and_the_limit_and_publishes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store(tmp.path());
    let out = tmp.path().join("out");
    let options = RunOptions {
        index_date: index(),
        out: out.clone(),
        person: None,
        memory_limit: Some(TOO_LITTLE),
        work_memory: None,
        release_id: "fixture".into(),
        session: None,
        explain_plans: false,
    };
    let err = run(&store, &cohort_support::shipped(), &options).expect_err("1 MiB is too little");
    let message = err.to_string();
    assert!(
        matches!(
            err,
            phm::cohort::Error::OutOfMemory {
                limit: Some(TOO_LITTLE),
                ..
            }
        ),
        "{message}"
    );
    assert!(
        message.starts_with("the cohort stage ran out of memory within --memory-limit 1 MiB ("),
        "{message}"
    );
    assert!(
        message.contains("nothing was published; hint: raise --memory-limit"),
        "{message}"
    );
    assert!(!message.contains('\n'), "{message}");
    assert!(
        !out.join(marker::RUN_FILE).exists(),
        "a failed run left a completion marker"
    );
}

#[test]
fn a_dq_run_that_cannot_fit_leaves_no_report_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store(tmp.path());
    let release = tmp.path().join("release");
    let o = common::import_fixture(&release);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let out = tmp.path().join("dq");
    // An earlier run's report, which the failed run must not leave in place.
    let o = common::dq(
        &store,
        &release,
        &out,
        "2026-03-31",
        &["--memory-limit", "64MiB"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", common::stderr(&o));
    assert!(out.join("dq.json").is_file());

    let session = Session::local(Some(TOO_LITTLE)).unwrap();
    let config = phm::quality::Config::default();
    let err = phm::quality::run(&phm::quality::Options {
        store: &store,
        release: &release,
        release_id: "fixture",
        out: &out,
        as_of: index(),
        config: &config,
        practices: &[],
        session: Some(&session),
    })
    .expect_err("1 MiB is too little");
    let phm::quality::Error::Engine(df) = &err else {
        panic!("not an engine error: {err}");
    };
    assert!(phm::session::out_of_memory(df).is_some(), "{err}");
    assert!(
        !out.join("dq.json").exists(),
        "the earlier report outlived a failed run"
    );
    let message = phm::session::out_of_memory_message(
        "data-quality",
        session.memory_limit(),
        &phm::session::out_of_memory(df).unwrap(),
    );
    assert!(
        message
            .starts_with("the data-quality stage ran out of memory within --memory-limit 1 MiB ("),
        "{message}"
    );
}
