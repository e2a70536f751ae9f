//! The run-level completion marker, `OUT/run.json`: written last, after every
//! cohort's folder is in place, listing the cohorts and their status. A run
//! folder without it was left by a run that was interrupted or failed (some
//! cohort folders may be complete, others missing or from an earlier run), and
//! nothing reads its outputs.
//!
//! A run starts by removing the marker of the previous run into the same
//! folder, that run's `report.html` (written by `phm report`; it describes
//! the previous run) and what an interrupted run left: its half-written
//! cohort folders (`.<ID>@<version>.tmp-<pid>`, `.<ID>@<version>.old-<pid>`)
//! and `.work/`.

use std::path::Path;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::{CohortRun, io};
use crate::cohort::{Error, Result};

/// The marker's file name in the output folder.
pub const RUN_FILE: &str = "run.json";

/// What `OUT/run.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub cohorts: Vec<RunCohort>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunCohort {
    /// `ID@version`, also the cohort's folder name.
    pub cohort: String,
    pub index_date: NaiveDate,
    /// `complete`, or `partial` when some practices were unavailable (their
    /// counts are unknown, not zero).
    pub status: String,
    pub unavailable: Vec<String>,
}

/// The report `phm report` writes into a run's folder by default.
pub const REPORT_FILE: &str = "report.html";

/// What a cohort run writes at the top of its output folder: cohort folders
/// (`ID@version`), the two tiers, the manifest, the marker, and its work and
/// half-written folders (dot-names); and the run's report.
fn written_by_a_run(name: &str) -> bool {
    name.contains('@')
        || name.starts_with('.')
        || matches!(
            name,
            RUN_FILE | "manifest.json" | "network" | "practice" | REPORT_FILE
        )
}

/// Readies `out` for a run: refuses a folder holding anything a run did not
/// write, creates it, removes the previous run's marker and the debris of an
/// interrupted run.
pub fn prepare(out: &Path) -> Result<()> {
    let usable = |source: std::io::Error| {
        Error::Usage(format!(
            "{}: phm cannot write the run's outputs here: {source}; hint: --out takes a folder phm can create and write (not a file); check the path and its permissions",
            out.display()
        ))
    };
    std::fs::create_dir_all(out).map_err(usable)?;
    let mut foreign: Vec<String> = std::fs::read_dir(out)
        .map_err(usable)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| !written_by_a_run(name))
        .collect();
    if !foreign.is_empty() {
        foreign.sort();
        return Err(Error::Usage(format!(
            "{}: the folder holds files no phm cohort run wrote ({}); hint: a run replaces what a previous run wrote there and nothing else; choose an empty folder, or one a previous `phm cohort run` wrote",
            out.display(),
            foreign.join(", ")
        )));
    }
    for stale in [RUN_FILE, REPORT_FILE] {
        match std::fs::remove_file(out.join(stale)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(usable(e)),
            _ => {}
        }
    }
    let mut removed = Vec::new();
    for entry in std::fs::read_dir(out).map_err(usable)? {
        let entry = entry.map_err(usable)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let debris = name == ".work"
            || name == ".engine"
            || (name.starts_with('.') && (name.contains(".tmp-") || name.contains(".old-")));
        if debris {
            let path = entry.path();
            if path.is_dir() {
                std::fs::remove_dir_all(&path).map_err(io(&path))?;
            } else {
                std::fs::remove_file(&path).map_err(io(&path))?;
            }
            removed.push(name);
        }
    }
    if !removed.is_empty() {
        tracing::warn!(
            "{}: removed what an interrupted run left: {}",
            out.display(),
            removed.join(", ")
        );
    }
    Ok(())
}

/// Writes `out/run.json`, last: the run is complete.
pub fn finish(out: &Path, runs: &[(NaiveDate, CohortRun)]) -> Result<()> {
    let record = RunRecord {
        cohorts: runs
            .iter()
            .map(|(date, r)| RunCohort {
                cohort: r.key.clone(),
                index_date: *date,
                status: if r.unavailable.is_empty() {
                    "complete"
                } else {
                    "partial"
                }
                .to_string(),
                unavailable: r.unavailable.clone(),
            })
            .collect(),
    };
    let path = out.join(RUN_FILE);
    let tmp = out.join(format!(".{RUN_FILE}.tmp-{}", std::process::id()));
    let mut text = serde_json::to_string_pretty(&record).expect("run record serialises");
    text.push('\n');
    std::fs::write(&tmp, text).map_err(io(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(io(&path))
}

/// The marker of the run in `out`; `None` when there is none.
pub fn read(out: &Path) -> Result<Option<RunRecord>> {
    let path = out.join(RUN_FILE);
    match std::fs::read(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(&path)(e)),
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            Error::Store(format!(
                "{}: unreadable run record ({e}); hint: run `phm cohort run` into {} again",
                path.display(),
                out.display()
            ))
        }),
    }
}

/// Refuses the outputs in `cohort_dir` unless the run that wrote them
/// finished: its folder's `run.json` lists this cohort.
pub fn require(cohort_dir: &Path) -> Result<()> {
    let out = cohort_dir.parent().unwrap_or(Path::new("."));
    let name = cohort_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let marker = out.join(RUN_FILE);
    let unfinished = |why: String| {
        Error::Store(format!(
            "{}: {why}: the run that wrote it did not finish (interrupted or failed), so its outputs may be incomplete or mixed with an earlier run's; hint: run `phm cohort run` into {} again",
            cohort_dir.display(),
            out.display()
        ))
    };
    let bytes = match std::fs::read(&marker) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(unfinished(format!("no {}", marker.display())));
        }
        r => r.map_err(io(&marker))?,
    };
    let record: RunRecord = serde_json::from_slice(&bytes)
        .map_err(|e| unfinished(format!("{} is unreadable ({e})", marker.display())))?;
    if !record.cohorts.iter().any(|c| c.cohort == name) {
        return Err(unfinished(format!(
            "{} does not list {name}",
            marker.display()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a folder holds before a run, and whether the run may use it.
    #[test]
    fn a_previous_runs_report_is_accepted_and_removed_a_foreign_file_refused() {
        let cases: [(&[&str], bool); 4] = [
            (&[], true),
            (&[RUN_FILE, "manifest.json", REPORT_FILE], true),
            (&[".report.html.tmp-12"], true),
            (&[REPORT_FILE, "analysis.xlsx"], false),
        ];
        for (files, usable) in cases {
            let dir = tempfile::tempdir().unwrap();
            for f in files {
                std::fs::write(dir.path().join(f), b"x").unwrap();
            }
            let prepared = prepare(dir.path());
            assert_eq!(prepared.is_ok(), usable, "{files:?}: {prepared:?}");
            if usable {
                for stale in [RUN_FILE, REPORT_FILE, ".report.html.tmp-12"] {
                    assert!(!dir.path().join(stale).exists(), "{files:?}: {stale} left");
                }
                assert_eq!(
                    dir.path().join("manifest.json").exists(),
                    files.contains(&"manifest.json")
                );
            } else {
                assert!(dir.path().join("analysis.xlsx").exists());
                assert!(dir.path().join(REPORT_FILE).exists());
            }
        }
    }
}
