//! Ingest under a small `--memory-limit`: the merges split their tables into
//! buckets, and the store is the same, row for row, as under the default
//! limit. The spill folder is left empty.
//!
//! 256 MiB, not less: with two practices sorting at once, each sort reserves
//! memory for merging its spilled runs up front, and at 128 MiB those
//! reservations could leave a sort too little to hold one batch
//! (docs/ingest.md, "When the limit is too small").

mod common;

use std::path::{Path, PathBuf};

use common::*;

/// Every Parquet file of a store's canonical, quarantine and source state,
/// relative to the store.
fn parquet_files(store: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![store.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(store).unwrap().to_path_buf();
            if path.is_dir() {
                if !rel.starts_with("reports") {
                    stack.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "parquet") {
                out.push(rel);
            }
        }
    }
    out.sort();
    out
}

/// Files (not folders) left under `dir`.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

#[test]
fn a_small_memory_limit_gives_the_same_store() {
    let work = tempfile::tempdir().unwrap();
    let landing = work.path().join("landing");
    network_of(&landing, 11, 2, 400);

    let roomy = work.path().join("roomy");
    let r = ingest(&landing, &roomy);
    assert_eq!(r.status.code(), Some(0), "{}", stderr(&r));

    let tight = work.path().join("tight");
    let spill = work.path().join("spill");
    let t = phm(&[
        "-vv",
        "ingest",
        "--landing",
        landing.to_str().unwrap(),
        "--store",
        tight.to_str().unwrap(),
        "--memory-limit",
        "256MiB",
        "--spill-dir",
        spill.to_str().unwrap(),
    ]);
    assert_eq!(t.status.code(), Some(0), "{}", stderr(&t));
    // The limit made the observation and SRCode merges split into buckets.
    let split = stderr(&t)
        .lines()
        .filter(|l| l.contains("merging") && !l.contains("buckets=1 "))
        .count();
    assert!(split >= 2, "no merge was split into buckets under 256 MiB");

    let files = parquet_files(&roomy);
    assert_eq!(parquet_files(&tight), files, "the same files");
    assert!(
        files.iter().any(|f| f.starts_with("canonical/events")),
        "{files:?}"
    );
    for file in &files {
        let (a, b) = (
            parquet_rows(&roomy.join(file)),
            parquet_rows(&tight.join(file)),
        );
        assert_eq!(a.columns, b.columns, "{}: columns", file.display());
        // Row values stay out of the message: the store holds identifiers.
        assert_eq!(a.rows.len(), b.rows.len(), "{}: rows", file.display());
        assert!(a.rows == b.rows, "{}: the rows differ", file.display());
    }
    assert_eq!(
        files_under(&spill),
        Vec::<PathBuf>::new(),
        "spill files left"
    );
}
