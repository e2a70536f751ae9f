//! Atomic publication of a run's folder under the output root, the `latest`
//! pointer, retention, and the run lock.
//!
//! Layout of the output root:
//!
//! ```text
//! OUTPUT/
//!   runs/<run id>/        published runs, each complete (status.json last in)
//!   latest                the newest published run's id (one line)
//!   .tmp-<run id>/        a run being written; never read as published
//!   .old-<run id>/        a run being replaced by `--force`
//! ```
//!
//! A run is written under `.tmp-<run id>` and renamed into `runs/` only when
//! complete; `latest` is replaced (written beside, then renamed) after that.
//! Renames within one filesystem are atomic, so a crash at any point leaves
//! either the old publication or the new one, never half of one.
//! [`recover`] tidies what a crash left: a `.tmp-*` folder is removed; an
//! `.old-*` folder whose run is no longer in `runs/` is put back.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::status::RunStatus;

pub const RUNS_DIR: &str = "runs";
pub const LATEST_FILE: &str = "latest";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path}: another phm run holds this store (pid {pid}); hint: wait for it to finish; the lock is released when that process ends, even if it crashes, so there is never a stale lock to break"
    )]
    Locked { path: PathBuf, pid: String },
}

type Result<T, E = Error> = std::result::Result<T, E>;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The run lock of a store: `STORE/.run.lock`, an operating-system file
/// lock held for the life of this value. The OS releases it when the process
/// ends, crashed or killed, so it can never go stale and there is no lock to
/// break by hand. The file holds the holder's pid while it runs and is
/// emptied when the holder finishes; a pid found there by the next run is a
/// run that was killed or crashed ([`RunLock::interrupted`]).
pub struct RunLock {
    file: File,
    interrupted: Option<String>,
}

impl RunLock {
    pub fn take(store: &Path) -> Result<RunLock> {
        fs::create_dir_all(store).map_err(io(store))?;
        let path = store.join(RUN_LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io(&path))?;
        match file.try_lock() {
            Ok(()) => {
                let before = fs::read_to_string(&path).unwrap_or_default();
                let interrupted = Some(before.trim().to_string()).filter(|p| !p.is_empty());
                let _ = file.set_len(0);
                let _ = write!(file, "{}", std::process::id());
                let _ = file.sync_all();
                Ok(RunLock { file, interrupted })
            }
            Err(fs::TryLockError::WouldBlock) => Err(Error::Locked {
                pid: fs::read_to_string(&path)
                    .unwrap_or_default()
                    .trim()
                    .to_string(),
                path,
            }),
            Err(fs::TryLockError::Error(e)) => Err(Error::Io { path, source: e }),
        }
    }

    /// The pid of the previous holder when it ended without finishing
    /// (killed, crashed, the machine stopped).
    pub fn interrupted(&self) -> Option<&str> {
        self.interrupted.as_deref()
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // A finished holder leaves the file empty; the OS lock goes with the file.
        let _ = self.file.set_len(0);
    }
}

/// The pid a run lock file names when its holder ended without finishing,
/// or holds it still; read without taking the lock.
pub fn lock_holder(store: &Path) -> Option<String> {
    let pid = fs::read_to_string(store.join(RUN_LOCK_FILE)).ok()?;
    let pid = pid.trim();
    (!pid.is_empty() && pid.chars().all(|c| c.is_ascii_digit())).then(|| pid.to_string())
}

pub const RUN_LOCK_FILE: &str = ".run.lock";

/// Where a run with this id is written before it is published (emptied).
pub fn staging(output: &Path, run_id: &str) -> Result<PathBuf> {
    let dir = output.join(format!(".tmp-{run_id}"));
    if dir.exists() {
        fs::remove_dir_all(&dir).map_err(io(&dir))?;
    }
    fs::create_dir_all(&dir).map_err(io(&dir))?;
    Ok(dir)
}

/// The folder of a published run.
pub fn published(output: &Path, run_id: &str) -> PathBuf {
    output.join(RUNS_DIR).join(run_id)
}

/// The run id `latest` names, if any.
pub fn latest(output: &Path) -> Option<String> {
    let text = fs::read_to_string(output.join(LATEST_FILE)).ok()?;
    let id = text.trim();
    (!id.is_empty()).then(|| id.to_string())
}

/// Publishes the staged run `tmp` as `runs/<run_id>` (replacing one already
/// there), then points `latest` at it.
pub fn publish(output: &Path, tmp: &Path, run_id: &str) -> Result<PathBuf> {
    let runs = output.join(RUNS_DIR);
    fs::create_dir_all(&runs).map_err(io(&runs))?;
    sync_dir(tmp)?;
    let dest = runs.join(run_id);
    if dest.exists() {
        let old = output.join(format!(".old-{run_id}"));
        if old.exists() {
            fs::remove_dir_all(&old).map_err(io(&old))?;
        }
        fs::rename(&dest, &old).map_err(io(&dest))?;
        fs::rename(tmp, &dest).map_err(io(&dest))?;
        fs::remove_dir_all(&old).map_err(io(&old))?;
    } else {
        fs::rename(tmp, &dest).map_err(io(&dest))?;
    }
    sync_dir(&runs)?;
    let next = output.join(".latest.tmp");
    let mut file = File::create(&next).map_err(io(&next))?;
    writeln!(file, "{run_id}").map_err(io(&next))?;
    file.sync_all().map_err(io(&next))?;
    let latest = output.join(LATEST_FILE);
    fs::rename(&next, &latest).map_err(io(&latest))?;
    sync_dir(output)?;
    Ok(dest)
}

/// Tidies what an interrupted run left under `output`: staged runs are
/// removed, and a run that `--force` was replacing is put back when its
/// replacement never arrived. Returns what was done, for the log.
pub fn recover(output: &Path) -> Result<Vec<String>> {
    let mut done = Vec::new();
    let Ok(entries) = fs::read_dir(output) else {
        return Ok(done);
    };
    for entry in entries.filter_map(std::result::Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if name.starts_with(".tmp-") || name == ".latest.tmp" {
            if path.is_dir() {
                fs::remove_dir_all(&path).map_err(io(&path))?;
            } else {
                fs::remove_file(&path).map_err(io(&path))?;
            }
            done.push(format!(
                "removed {}, left by an interrupted run",
                path.display()
            ));
        } else if let Some(id) = name.strip_prefix(".old-") {
            let dest = published(output, id);
            if dest.exists() {
                fs::remove_dir_all(&path).map_err(io(&path))?;
            } else {
                fs::rename(&path, &dest).map_err(io(&path))?;
                done.push(format!(
                    "restored {}: its replacement was interrupted",
                    dest.display()
                ));
            }
        }
    }
    Ok(done)
}

/// Removes published runs beyond the newest `keep` (by publication time),
/// never the one `latest` names. Returns the ids removed.
pub fn retain(output: &Path, keep: usize) -> Result<Vec<String>> {
    let runs = output.join(RUNS_DIR);
    let latest = latest(output);
    let mut published: Vec<(chrono::NaiveDateTime, String, PathBuf)> = Vec::new();
    let Ok(entries) = fs::read_dir(&runs) else {
        return Ok(Vec::new());
    };
    for entry in entries.filter_map(std::result::Result::ok) {
        let path = entry.path();
        let id = entry.file_name().to_string_lossy().into_owned();
        // A folder without a readable status is not a run phm published: left alone.
        if let Ok(status) = RunStatus::read(&path) {
            published.push((status.published_at, id, path));
        }
    }
    published.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)));
    let mut removed = Vec::new();
    for (_, id, path) in published.into_iter().skip(keep) {
        if latest.as_deref() == Some(id.as_str()) {
            continue;
        }
        fs::remove_dir_all(&path).map_err(io(&path))?;
        removed.push(id);
    }
    Ok(removed)
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|f| f.sync_all()).map_err(io(dir))
}

#[cfg(test)]
mod tests {
    use super::super::status::{Outcome, PracticeOutcomes, RunStatus};
    use super::*;

    fn status(id: &str, minute: u32) -> RunStatus {
        RunStatus {
            run_id: id.into(),
            pipeline: "p.toml".into(),
            outcome: Outcome::Succeeded,
            exit_code: 0,
            as_of: chrono::NaiveDate::from_ymd_opt(2026, 3, 31).unwrap(),
            index_date: chrono::NaiveDate::from_ymd_opt(2026, 3, 31).unwrap(),
            release: "r".into(),
            cohorts: vec![],
            practices: PracticeOutcomes {
                expected: vec![],
                landed: vec![],
                missing: vec![],
                rejected: vec![],
                unexpected: vec![],
            },
            stages: vec![],
            published_at: chrono::NaiveDate::from_ymd_opt(2026, 4, 1)
                .unwrap()
                .and_hms_opt(3, minute, 0)
                .unwrap(),
            phm_version: "0".into(),
        }
    }

    fn stage_run(output: &Path, id: &str, minute: u32) -> PathBuf {
        let tmp = staging(output, id).unwrap();
        fs::write(tmp.join("membership.parquet"), id).unwrap();
        status(id, minute).write(&tmp).unwrap();
        tmp
    }

    #[test]
    fn publish_replaces_and_points_latest() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        let tmp = stage_run(out, "aaaa", 1);
        publish(out, &tmp, "aaaa").unwrap();
        assert!(!tmp.exists());
        assert_eq!(latest(out).as_deref(), Some("aaaa"));
        let tmp = stage_run(out, "bbbb", 2);
        fs::write(tmp.join("membership.parquet"), "new").unwrap();
        publish(out, &tmp, "bbbb").unwrap();
        assert_eq!(latest(out).as_deref(), Some("bbbb"));
        // Replacing a published run (--force).
        let tmp = stage_run(out, "aaaa", 3);
        fs::write(tmp.join("membership.parquet"), "again").unwrap();
        publish(out, &tmp, "aaaa").unwrap();
        assert_eq!(
            fs::read_to_string(published(out, "aaaa").join("membership.parquet")).unwrap(),
            "again"
        );
        assert_eq!(latest(out).as_deref(), Some("aaaa"));
        let names: Vec<String> = fs::read_dir(out)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(names.is_empty(), "{names:?}");
    }

    #[test]
    fn recover_removes_staged_runs_and_restores_an_interrupted_replacement() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        let tmp = stage_run(out, "aaaa", 1);
        publish(out, &tmp, "aaaa").unwrap();
        // A crash between moving the old run aside and moving the new one in.
        fs::rename(published(out, "aaaa"), out.join(".old-aaaa")).unwrap();
        stage_run(out, "aaaa", 2);
        let done = recover(out).unwrap();
        assert_eq!(done.len(), 2, "{done:?}");
        assert!(published(out, "aaaa").join("status.json").is_file());
        assert!(!out.join(".tmp-aaaa").exists());
        assert!(!out.join(".old-aaaa").exists());
        assert_eq!(
            fs::read_to_string(published(out, "aaaa").join("membership.parquet")).unwrap(),
            "aaaa"
        );
    }

    #[test]
    fn retention_keeps_the_newest_and_latest() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        for (id, minute) in [("r1", 1), ("r2", 2), ("r3", 3), ("r4", 4)] {
            let tmp = stage_run(out, id, minute);
            publish(out, &tmp, id).unwrap();
        }
        // `latest` names an older run (a --force rerun of it would do this).
        let tmp = stage_run(out, "r1", 0);
        publish(out, &tmp, "r1").unwrap();
        let mut removed = retain(out, 2).unwrap();
        removed.sort();
        assert_eq!(removed, vec!["r2".to_string()]);
        for id in ["r1", "r3", "r4"] {
            assert!(published(out, id).exists(), "{id}");
        }
    }

    #[test]
    fn a_second_lock_on_one_store_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let first = RunLock::take(dir.path()).unwrap();
        let second = RunLock::take(dir.path());
        assert!(
            matches!(second, Err(Error::Locked { .. })),
            "second lock taken"
        );
        drop(first);
        let again = RunLock::take(dir.path()).unwrap();
        assert_eq!(again.interrupted(), None, "the first holder finished");
    }

    #[test]
    fn a_holder_that_never_finished_is_reported_by_the_next() {
        let dir = tempfile::tempdir().unwrap();
        // What a killed holder leaves: its pid, and no OS lock.
        fs::write(dir.path().join(RUN_LOCK_FILE), "4242").unwrap();
        assert_eq!(lock_holder(dir.path()).as_deref(), Some("4242"));
        let lock = RunLock::take(dir.path()).unwrap();
        assert_eq!(lock.interrupted(), Some("4242"));
        drop(lock);
        assert_eq!(lock_holder(dir.path()), None);
    }
}
