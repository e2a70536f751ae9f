//! The store and the outputs folder when something has happened to them: a
//! file deleted, truncated or damaged after ingest, an ingest or a cohort run
//! that did not finish, a lock left by a dead process or held by a live one,
//! and places phm cannot write.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::common::*;
use crate::scene::Scene;
use crate::{Case, case};

#[rustfmt::skip]
pub const CASES: &[Case] = &[
    case!("store: deleted events file", 3, "is unavailable: its files in the store are not as its last ingest wrote them", deleted_events_file),
    case!("store: truncated events file", 3, "when it was written", truncated_file),
    case!("store: corrupt footer on read", 3, "cannot read Parquet", corrupt_footer),
    case!("store: state without file records", 3, "did not record their files", state_without_records),
    case!("store: ingest onto a damaged practice", 3, "not as its last ingest wrote them", ingest_onto_damaged),
    case!("store: incomplete ingest", 3, "an ingest did not finish applying never-applied", incomplete_ingest),
    case!("store: stale lock of a dead process", 0, "unchanged", stale_lock),
    case!("store: lock held by a live process", 4, "locked by another phm process", live_lock),
    case!("store: --store is a file", 2, "phm cannot use this as a store", store_is_a_file),
    case!("store: --store is not a store", 2, "not a phm store", not_a_store),
    case!("run: --memory-limit-mib 0", 2, "too little for the query engine", memory_limit_zero),
    case!("run: unwritable --out", 2, "phm cannot write the run's outputs here", unwritable_out),
    case!("run: --out is a file", 2, "phm cannot write the run's outputs here", out_is_a_file),
    case!("run: out folder of an interrupted run", 0, "removed what an interrupted run left", interrupted_run_out),
    case!("demo: --dir is a file", 2, "phm cannot use this as the demo's working folder", demo_dir_is_a_file),
    case!("run: explain on a run without its marker", 3, "the run that wrote it did not finish", explain_unfinished_run),
    case!("cohort run: --out holds files no run wrote", 2, "the folder holds files no phm cohort run wrote (analysis.xlsx)", out_holds_other_files),
];

/// `phm cohort run DM_REG` on `store` into `out`.
fn run_dm_reg(s: &Scene, store: &Path, out: &Path, extra: &[&str]) -> Output {
    let release = s.release();
    let mut args = vec![
        "cohort",
        "run",
        "DM_REG",
        "--index-date",
        "2026-03-31",
        "--store",
        store.to_str().unwrap(),
        "--release",
        release.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    phm(&args)
}

fn events_file(s: &Scene, ods: &str) -> PathBuf {
    s.store()
        .join("canonical/events")
        .join(format!("practice={ods}"))
        .join("data.parquet")
}

fn deleted_events_file(s: &mut Scene) -> Output {
    fs::remove_file(events_file(s, &s.emis())).unwrap();
    run_dm_reg(s, &s.store(), &s.work().join("out"), &[])
}

fn truncated_file(s: &mut Scene) -> Output {
    let path = events_file(s, &s.tpp());
    let bytes = fs::read(&path).unwrap();
    fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    run_dm_reg(s, &s.store(), &s.work().join("out"), &[])
}

/// The same size, the last bytes (footer length and magic) overwritten.
fn corrupt_footer(s: &mut Scene) -> Output {
    let path = events_file(s, &s.emis());
    let mut bytes = fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n - 8..].copy_from_slice(b"\xff\xff\xff\x7fXXXX");
    fs::write(&path, bytes).unwrap();
    run_dm_reg(s, &s.store(), &s.work().join("out"), &[])
}

/// A store from before phm recorded each practice's files.
fn state_without_records(s: &mut Scene) -> Output {
    let path = s.store().join("practices").join(s.tpp()).join("state.json");
    let mut state: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    state.as_object_mut().unwrap().remove("files").unwrap();
    fs::write(&path, serde_json::to_vec_pretty(&state).unwrap()).unwrap();
    run_dm_reg(s, &s.store(), &s.work().join("out"), &[])
}

/// An ingest does not build on a practice whose stored files are damaged.
fn ingest_onto_damaged(s: &mut Scene) -> Output {
    fs::remove_file(events_file(s, &s.emis())).unwrap();
    ingest(&s.landing(), &s.store())
}

/// What a crashed ingest leaves: its record naming an extract it never applied.
fn incomplete_ingest(s: &mut Scene) -> Output {
    let record = serde_json::json!({
        "pid": 999_999,
        "practices": [{
            "practice": s.tpp(),
            "extracts": [{"extract_id": "never-applied", "extracted_at": "2026-04-30T00:00:00"}],
        }],
    });
    fs::write(
        s.store().join("ingest-in-progress.json"),
        serde_json::to_vec_pretty(&record).unwrap(),
    )
    .unwrap();
    run_dm_reg(s, &s.store(), &s.work().join("out"), &[])
}

/// A `.lock` file whose process is gone: the OS lock died with it.
fn stale_lock(s: &mut Scene) -> Output {
    fs::write(s.store().join(".lock"), "999999").unwrap();
    ingest(&s.landing(), &s.store())
}

/// This test process holds the lock while phm runs.
fn live_lock(s: &mut Scene) -> Output {
    let lock = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(s.store().join(".lock"))
        .unwrap();
    lock.try_lock().unwrap();
    let out = ingest(&s.landing(), &s.store());
    drop(lock);
    out
}

fn store_is_a_file(s: &mut Scene) -> Output {
    let file = s.work().join("store-file");
    fs::write(&file, "not a folder").unwrap();
    ingest(&s.landing(), &file)
}

fn not_a_store(s: &mut Scene) -> Output {
    let empty = s.work().join("empty");
    fs::create_dir_all(&empty).unwrap();
    run_dm_reg(s, &empty, &s.work().join("out"), &[])
}

fn memory_limit_zero(s: &mut Scene) -> Output {
    run_dm_reg(
        s,
        &s.store(),
        &s.work().join("out"),
        &["--memory-limit-mib", "0"],
    )
}

/// A folder phm may not write in. Root may write anywhere a mode forbids,
/// so as root the out folder is one the kernel refuses to create (`/sys`).
fn unwritable_out(s: &mut Scene) -> Output {
    use std::os::unix::fs::PermissionsExt;
    let locked = s.work().join("read-only");
    fs::create_dir_all(&locked).unwrap();
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o555)).unwrap();
    let root = fs::write(locked.join("probe"), "").is_ok();
    let out = if root {
        PathBuf::from("/sys/phm-bad-input-out")
    } else {
        locked.join("out")
    };
    let result = run_dm_reg(s, &s.store(), &out, &[]);
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o755)).unwrap();
    result
}

fn out_is_a_file(s: &mut Scene) -> Output {
    let file = s.work().join("out-file");
    fs::write(&file, "not a folder").unwrap();
    run_dm_reg(s, &s.store(), &file, &[])
}

fn demo_dir_is_a_file(s: &mut Scene) -> Output {
    let file = s.work().join("demo-file");
    fs::write(&file, "not a folder").unwrap();
    phm(&["demo", "--dir", file.to_str().unwrap()])
}

/// A run killed before its marker, with a half-written cohort folder and
/// its work folder left behind; the next run into the same folder cleans up.
fn interrupted_run_out(s: &mut Scene) -> Output {
    let out = s.work().join("out");
    let first = run_dm_reg(s, &s.store(), &out, &[]);
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    fs::remove_file(out.join("run.json")).unwrap();
    fs::create_dir_all(out.join(".DM_REG@2025.1.tmp-999999")).unwrap();
    fs::create_dir_all(out.join(".work/run-999999-1")).unwrap();
    let again = run_dm_reg(s, &s.store(), &out, &[]);
    for debris in [".DM_REG@2025.1.tmp-999999", ".work"] {
        assert!(
            !out.join(debris).exists(),
            "{debris} left in {}",
            out.display()
        );
    }
    assert!(out.join("run.json").is_file(), "no marker after the rerun");
    again
}

fn explain_unfinished_run(s: &mut Scene) -> Output {
    let out = s.work().join("out");
    let first = run_dm_reg(s, &s.store(), &out, &[]);
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let membership = fs::read_to_string(out.join("DM_REG@2025.1/membership.csv")).unwrap();
    let person = membership
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .to_string();
    // Readable while the marker is there...
    let release = s.release();
    let explain = |out: &Path| {
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
    let ok = explain(&out);
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    // ...refused once it is gone, as after a run killed before its end.
    fs::remove_file(out.join("run.json")).unwrap();
    explain(&out)
}

/// A cohort run into a folder that holds someone else's files.
fn out_holds_other_files(s: &mut Scene) -> Output {
    let out = s.work().join("out");
    fs::create_dir_all(&out).unwrap();
    fs::write(out.join("analysis.xlsx"), b"not phm's").unwrap();
    let (store, release) = (s.store(), s.release());
    let o = crate::common::phm(&[
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
    ]);
    assert!(
        out.join("analysis.xlsx").exists(),
        "a foreign file was removed"
    );
    o
}
