//! `phm report` given a run that did not finish, no dq.json, a practice
//! neither knows, or an --out it cannot write: usage errors (exit 2), and no
//! report is written.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::common::*;
use crate::scene::Scene;
use crate::{Case, case};

#[rustfmt::skip]
pub const CASES: &[Case] = &[
    case!("report of a run without run.json", 2, "no run.json: not the folder of a finished cohort run", unfinished_run),
    case!("report without dq.json", 2, "dq.json: not found; hint: --dq takes the folder", missing_dq),
    case!("report of a practice not in the store", 2, "practice Z99999 is not in the run's store or", unknown_practice),
    case!("report --out that cannot be written", 2, "phm cannot write the report here", unwritable_out),
];

const KEY: &str = "a key of forty bytes, for the tests only\n";

/// A finished run of one cohort with a key, and a dq folder, in the scene.
fn finished(s: &Scene) -> (PathBuf, PathBuf) {
    let (store, release) = (s.store(), s.release());
    let (out, dq, key) = (
        s.work().join("out"),
        s.work().join("dq"),
        s.work().join("key"),
    );
    fs::write(&key, KEY).unwrap();
    let o = phm(&[
        "cohort",
        "run",
        "DM_REG",
        "--store",
        store.to_str().unwrap(),
        "--release",
        release.to_str().unwrap(),
        "--index-date",
        "2026-03-31",
        "--out",
        out.to_str().unwrap(),
        "--key-file",
        key.to_str().unwrap(),
    ]);
    assert!(
        matches!(o.status.code(), Some(0 | 3)),
        "cohort run: {}",
        stderr(&o)
    );
    let o = phm(&[
        "dq",
        "--store",
        store.to_str().unwrap(),
        "--release",
        release.to_str().unwrap(),
        "--out",
        dq.to_str().unwrap(),
        "--as-of",
        "2026-03-31",
    ]);
    assert!(matches!(o.status.code(), Some(0 | 3)), "dq: {}", stderr(&o));
    (out, dq)
}

/// Runs `phm report`; a refused report writes no page.
fn report(run: &Path, dq: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "report",
        "--run",
        run.to_str().unwrap(),
        "--dq",
        dq.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let o = phm(&args);
    assert!(
        !run.join("report.html").exists(),
        "a refused report wrote report.html"
    );
    o
}

fn unfinished_run(s: &mut Scene) -> Output {
    let (out, dq) = finished(s);
    // What an interrupted run leaves: its outputs without the marker.
    fs::remove_file(out.join("run.json")).unwrap();
    report(&out, &dq, &[])
}

fn missing_dq(s: &mut Scene) -> Output {
    let (out, _) = finished(s);
    report(&out, &s.work().join("no-dq-here"), &[])
}

fn unknown_practice(s: &mut Scene) -> Output {
    let (out, dq) = finished(s);
    report(&out, &dq, &["--practice", "Z99999"])
}

fn unwritable_out(s: &mut Scene) -> Output {
    let (out, dq) = finished(s);
    let file = s.work().join("a-file");
    fs::write(&file, b"not a folder").unwrap();
    let target = file.join("report.html");
    report(&out, &dq, &["--out", target.to_str().unwrap()])
}
