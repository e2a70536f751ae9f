//! `phm ingest` killed with SIGKILL at points spread over its run, through
//! the real binary only, so the checks hold whatever ingest does inside.
//!
//! Kill points: fractions of a measured clean run's duration (the same
//! fractions every time; nothing asserts on time), and the moment a
//! practice's commit shows (its journal, `.journal/<ODS>.json`, appears, or
//! a practice new to the store has its first folder published), which lands
//! inside that commit when the poll wins the race and after it otherwise.
//! They are taken in an ingest of a whole landing zone into an empty store,
//! and in an ingest of the deltas into a store that holds the bulks.
//!
//! After each kill:
//! - as left, before anything opens the store: every practice whose commit
//!   was not interrupted (no journal names it; a cohort run refuses a store
//!   with a journal) holds exactly what it held before the run or what a
//!   clean ingest gives it: the deliveries in its `state.json`, the files it
//!   records and the rows in them. Nothing else is published under
//!   `canonical/`, `quarantine/` or `practices/`;
//! - once the store is opened again (an ingest of an empty landing zone,
//!   which rolls an interrupted commit forward and applies nothing): the
//!   same holds for every practice;
//! - the next ingest of the landing zone completes the store: the files of a
//!   clean ingest, each with the same rows (as multisets), and the same
//!   deliveries.
//!
//! Rows are patient data: messages name files and counts, never values.

mod common;

use std::cell::OnceCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use common::*;
use phm::source::manifest::sha256_file;

/// Kill delays in an ingest of everything, as fractions of a clean one's duration.
const SPREAD: [f64; 8] = [0.05, 0.15, 0.3, 0.45, 0.55, 0.7, 0.85, 0.95];
/// Kill delays in an ingest of the deltas, as fractions of a clean one's duration.
const DELTA_SPREAD: [f64; 4] = [0.1, 0.35, 0.6, 0.9];
/// Patients across the two practices: enough for every table and delta
/// kind, few enough for some twenty debug-build ingests a test.
const PATIENTS: usize = 60;

/// What a store holds for one practice: the deliveries its `state.json`
/// lists (`None`: no state) and every file in its folders, by path relative
/// to the store.
struct Held {
    deliveries: Option<serde_json::Value>,
    files: BTreeMap<String, StoreFile>,
}

struct StoreFile {
    path: PathBuf,
    sha256: String,
    /// A Parquet file's rows, read when first compared.
    rows: OnceCell<Option<ParquetRows>>,
}

impl StoreFile {
    fn rows(&self) -> Option<&ParquetRows> {
        self.rows
            .get_or_init(|| {
                (self.path.extension().is_some_and(|e| e == "parquet"))
                    .then(|| parquet_rows(&self.path))
            })
            .as_ref()
    }

    /// The same rows (a Parquet file), or the same bytes (any other).
    /// Equal bytes hold equal rows, so with `by_rows` false they are
    /// compared first; `by_rows` compares the rows whatever the bytes.
    fn same(&self, other: &StoreFile, by_rows: bool) -> bool {
        if !by_rows && self.sha256 == other.sha256 {
            return true;
        }
        match (self.rows(), other.rows()) {
            (Some(a), Some(b)) => a == b,
            _ => self.sha256 == other.sha256,
        }
    }
}

impl Held {
    fn nothing() -> Held {
        Held {
            deliveries: None,
            files: BTreeMap::new(),
        }
    }

    fn same(&self, other: &Held, by_rows: bool) -> bool {
        self.deliveries == other.deliveries
            && self.files.len() == other.files.len()
            && self
                .files
                .iter()
                .all(|(name, f)| other.files.get(name).is_some_and(|o| f.same(o, by_rows)))
    }
}

/// The folders of practice `ods` in a store, relative to its root.
fn folders(store: &Path, ods: &str) -> Vec<PathBuf> {
    let partition = format!("practice={ods}");
    let mut out: Vec<PathBuf> = fs::read_dir(store.join("canonical"))
        .map(|d| {
            d.map(|e| {
                Path::new("canonical")
                    .join(e.unwrap().file_name())
                    .join(&partition)
            })
            .collect()
        })
        .unwrap_or_default();
    out.push(Path::new("quarantine").join(&partition));
    out.push(Path::new("practices").join(ods));
    out
}

fn held(store: &Path, ods: &str) -> Held {
    let state = store.join("practices").join(ods).join("state.json");
    let deliveries = state.is_file().then(|| {
        let state: serde_json::Value = serde_json::from_slice(&fs::read(&state).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", state.display()));
        state["deliveries"].clone()
    });
    let mut files = BTreeMap::new();
    for folder in folders(store, ods) {
        for rel in tree_hashes(&store.join(&folder)).into_keys() {
            let path = folder.join(&rel);
            if path == Path::new("practices").join(ods).join("state.json") {
                continue;
            }
            let full = store.join(&path);
            let file = StoreFile {
                sha256: sha256_file(&full).unwrap(),
                path: full,
                rows: OnceCell::new(),
            };
            files.insert(path.to_str().unwrap().replace('\\', "/"), file);
        }
    }
    Held { deliveries, files }
}

/// How `got` differs from `want`, by file name and row counts.
fn differences(got: &Held, want: &Held) -> String {
    let ids = |d: &Option<serde_json::Value>| match d {
        None => "no state".to_string(),
        Some(d) => d
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["extract_id"].as_str().unwrap_or("?").to_string())
            .collect::<Vec<_>>()
            .join(","),
    };
    let mut out = Vec::new();
    if got.deliveries != want.deliveries {
        out.push(format!(
            "deliveries [{}], expected [{}]",
            ids(&got.deliveries),
            ids(&want.deliveries)
        ));
    }
    let names: BTreeSet<&String> = got.files.keys().chain(want.files.keys()).collect();
    for name in names {
        match (got.files.get(name), want.files.get(name)) {
            (Some(_), None) => out.push(format!("{name} not expected")),
            (None, Some(_)) => out.push(format!("{name} missing")),
            (Some(g), Some(w)) if !g.same(w, true) => match (g.rows(), w.rows()) {
                (Some(g), Some(w)) => {
                    let unexpected = g.rows.iter().filter(|r| w.rows.binary_search(r).is_err());
                    out.push(format!(
                        "{name}: {} rows, expected {}; {} not expected{}",
                        g.rows.len(),
                        w.rows.len(),
                        unexpected.count(),
                        if g.columns == w.columns {
                            ""
                        } else {
                            "; other columns"
                        }
                    ))
                }
                _ => out.push(format!("{name} differs")),
            },
            _ => {}
        }
    }
    out.join("; ")
}

/// The paths a practice's `state.json` records are the files in its folders.
fn records_agree(store: &Path, ods: &str, held: &Held) {
    let state = store.join("practices").join(ods).join("state.json");
    if !state.is_file() {
        assert!(
            held.files.is_empty(),
            "practice {ods}: files without a state"
        );
        return;
    }
    let state: serde_json::Value = serde_json::from_slice(&fs::read(&state).unwrap()).unwrap();
    let recorded: BTreeSet<&str> = state["files"]
        .as_array()
        .expect("state.json records the practice's files")
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    let on_disk: BTreeSet<&str> = held.files.keys().map(String::as_str).collect();
    assert_eq!(recorded, on_disk, "practice {ods}: recorded files");
}

/// Entries under the published folders that belong to no practice of
/// `practices`, leaving out those of the practices in `skip`.
fn strays(store: &Path, practices: &[String], skip: &[String]) -> Vec<PathBuf> {
    let mut places: Vec<(PathBuf, &str)> = vec![
        (PathBuf::from("quarantine"), "practice="),
        (PathBuf::from("practices"), ""),
    ];
    if let Ok(tables) = fs::read_dir(store.join("canonical")) {
        for t in tables {
            places.push((
                Path::new("canonical").join(t.unwrap().file_name()),
                "practice=",
            ));
        }
    }
    let mut out = Vec::new();
    for (place, prefix) in places {
        let Ok(entries) = fs::read_dir(store.join(&place)) else {
            continue;
        };
        for e in entries {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            let ours = practices.iter().any(|p| name == format!("{prefix}{p}"));
            let skipped = skip
                .iter()
                .any(|p| name.starts_with(&format!("{prefix}{p}")));
            if !ours && !skipped {
                out.push(place.join(name));
            }
        }
    }
    out
}

fn journal(store: &Path, ods: &str) -> PathBuf {
    store.join(".journal").join(format!("{ods}.json"))
}

/// Whether `status` is that of a process the test killed; a run that ended
/// by itself must have succeeded.
fn was_killed(status: ExitStatus) -> bool {
    assert!(
        status.success() || status.code().is_none(),
        "phm ingest failed: {status}"
    );
    status.code().is_none()
}

/// Kills `child` once `now` holds, polling as fast as it can, or lets it
/// finish; whether it was killed.
fn kill_when(child: &mut Child, now: impl Fn() -> bool) -> bool {
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return was_killed(status);
        }
        if now() {
            child.kill().unwrap(); // SIGKILL: no destructor runs
            return was_killed(child.wait().unwrap());
        }
    }
}

fn ingest_args<'a>(landing: &'a Path, store: &'a Path) -> [&'a str; 5] {
    [
        "ingest",
        "--landing",
        landing.to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
    ]
}

/// How a kill point is found.
enum Kill {
    After(Duration),
    /// When this practice's commit shows: its journal appears or, for a
    /// practice new to the store, its first folder is published.
    AtCommit(String),
}

/// What a kill point hit, for the summary.
#[derive(Debug, Default)]
struct Tally {
    killed: usize,
    finished: usize,
    /// Kills that left a commit to roll forward.
    mid_commit: usize,
}

struct Scene {
    _work: tempfile::TempDir,
    work: PathBuf,
    landing: PathBuf,
    empty_landing: PathBuf,
    practices: Vec<String>,
    clean_store: PathBuf,
    clean: BTreeMap<String, Held>,
    /// How long the clean ingest took.
    clean_run: Duration,
}

impl Scene {
    /// Two practices, one EMIS and one TPP, with two deltas each, ingested
    /// whole into a clean store.
    fn new(seed: u64) -> Scene {
        let _work = tempfile::tempdir().unwrap();
        let work = _work.path().to_path_buf();
        let landing = work.join("landing");
        let truth = network_of(&landing, seed, 2, PATIENTS);
        let (emis, tpp) = one_of_each(&truth);
        let practices = vec![emis, tpp];
        for ods in &practices {
            assert!(deliveries(&landing, ods).len() >= 2, "{ods} has a delta");
        }
        let empty_landing = work.join("empty-landing");
        fs::create_dir_all(&empty_landing).unwrap();
        let clean_store = work.join("clean");
        let clean_run = run_to_end(&landing, &clean_store);
        let clean = snapshot(&clean_store, &practices);
        for (ods, h) in &clean {
            assert!(h.deliveries.is_some(), "{ods} ingested");
        }
        Scene {
            _work,
            work,
            landing,
            empty_landing,
            practices,
            clean_store,
            clean,
            clean_run,
        }
    }

    /// Kills an ingest of the landing zone into `store`, which holds
    /// `before`, checks the store as left and reopened, then completes it
    /// and checks it against the clean store.
    fn kill_point(
        &self,
        store: &Path,
        before: &BTreeMap<String, Held>,
        kill: Kill,
        tally: &mut Tally,
    ) {
        let mut child = spawn(&ingest_args(&self.landing, store));
        let killed = match &kill {
            Kill::After(delay) => {
                std::thread::sleep(*delay);
                kill_when(&mut child, || true)
            }
            Kill::AtCommit(ods) => {
                let journal = journal(store, ods);
                // A practice new to the store shows its commit sooner by its
                // first published folder.
                let new = before[ods].deliveries.is_none();
                kill_when(&mut child, || {
                    journal.exists()
                        || new && folders(store, ods).iter().any(|f| store.join(f).exists())
                })
            }
        };
        let at = match &kill {
            Kill::After(delay) => format!("killed after {delay:?}"),
            Kill::AtCommit(ods) => format!("killed at the commit of {ods}"),
        };

        // As left.
        let interrupted: Vec<String> = self
            .practices
            .iter()
            .filter(|p| journal(store, p).exists())
            .cloned()
            .collect();
        for ods in self.practices.iter().filter(|p| !interrupted.contains(p)) {
            self.whole(store, ods, before, &format!("{at}, as left"));
        }
        let left = strays(store, &self.practices, &interrupted);
        assert!(
            left.is_empty(),
            "{at}: published but no practice's: {left:?}"
        );

        // Reopened.
        let out = ingest(&self.empty_landing, store);
        assert_eq!(out.status.code(), Some(0), "{at}: {}", stderr(&out));
        for ods in &self.practices {
            assert!(!journal(store, ods).exists(), "{at}: journal of {ods} kept");
            self.whole(store, ods, before, &format!("{at}, reopened"));
        }
        let left = strays(store, &self.practices, &[]);
        assert!(
            left.is_empty(),
            "{at}, reopened: published but no practice's: {left:?}"
        );

        // Completed.
        let out = ingest(&self.landing, store);
        assert_eq!(out.status.code(), Some(0), "{at}: {}", stderr(&out));
        self.same_as_clean(store, &at);

        eprintln!(
            "{at}: {}; commits interrupted: {interrupted:?}",
            if killed { "killed" } else { "it had finished" }
        );
        tally.killed += usize::from(killed);
        tally.finished += usize::from(!killed);
        tally.mid_commit += usize::from(!interrupted.is_empty());
    }

    /// Practice `ods` in `store` is as `before` or as after a clean ingest.
    fn whole(&self, store: &Path, ods: &str, before: &BTreeMap<String, Held>, at: &str) {
        let got = held(store, ods);
        records_agree(store, ods, &got);
        let (b, a) = (&before[ods], &self.clean[ods]);
        assert!(
            got.same(b, false) || got.same(a, false),
            "{at}: practice {ods} is neither as before the run ({}) nor as after it ({})",
            differences(&got, b),
            differences(&got, a)
        );
    }

    /// `store` holds the files of the clean store, with the same rows and deliveries.
    fn same_as_clean(&self, store: &Path, at: &str) {
        for ods in &self.practices {
            let got = held(store, ods);
            records_agree(store, ods, &got);
            assert!(
                got.same(&self.clean[ods], true),
                "{at}, completed: practice {ods}: {}",
                differences(&got, &self.clean[ods])
            );
        }
        let files = |s: &Path| tree_hashes(s).into_keys().collect::<BTreeSet<_>>();
        assert_eq!(
            files(store),
            files(&self.clean_store),
            "{at}, completed: the store's files"
        );
        assert!(!store.join("ingest-in-progress.json").exists(), "{at}");
    }
}

fn snapshot(store: &Path, practices: &[String]) -> BTreeMap<String, Held> {
    practices
        .iter()
        .map(|p| {
            let h = held(store, p);
            records_agree(store, p, &h);
            (p.clone(), h)
        })
        .collect()
}

/// Runs an ingest the way kill points do, to its end; how long it took.
fn run_to_end(landing: &Path, store: &Path) -> Duration {
    let start = Instant::now();
    let status = spawn(&ingest_args(landing, store)).wait().unwrap();
    let took = start.elapsed();
    assert!(status.success(), "a clean ingest: {status}");
    took
}

#[test]
fn an_ingest_killed_anywhere_leaves_each_practice_whole_and_the_next_completes_it() {
    let scene = Scene::new(41);
    let before: BTreeMap<String, Held> = scene
        .practices
        .iter()
        .map(|p| (p.clone(), Held::nothing()))
        .collect();
    let mut tally = Tally::default();
    for (i, f) in SPREAD.iter().enumerate() {
        let store = scene.work.join(format!("kill-{i}"));
        let delay = scene.clean_run.mul_f64(*f);
        scene.kill_point(&store, &before, Kill::After(delay), &mut tally);
    }
    for ods in &scene.practices {
        let store = scene.work.join(format!("kill-commit-{ods}"));
        scene.kill_point(&store, &before, Kill::AtCommit(ods.clone()), &mut tally);
    }
    eprintln!("clean run {:?}; {tally:?}", scene.clean_run);
    // Not vacuous: the earliest point (a twentieth of a clean run) finds it running.
    assert!(tally.killed > 0, "no kill point found phm running");
}

#[test]
fn an_ingest_of_deltas_killed_anywhere_leaves_each_practice_whole_and_the_next_completes_it() {
    let scene = Scene::new(42);
    // The bulks alone, ingested first.
    let bulk_landing = scene.work.join("bulk-landing");
    for ods in &scene.practices {
        let first = &deliveries(&scene.landing, ods)[0];
        copy_dir(
            first,
            &bulk_landing.join(ods).join(first.file_name().unwrap()),
        );
    }
    let bulk = scene.work.join("bulk");
    let out = ingest(&bulk_landing, &bulk);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let before = snapshot(&bulk, &scene.practices);
    for ods in &scene.practices {
        assert!(
            !before[ods].same(&scene.clean[ods], true),
            "{ods}: the deltas change nothing"
        );
    }
    // The deltas on the bulks give the store of a clean ingest of everything.
    let timed = scene.work.join("deltas");
    copy_dir(&bulk, &timed);
    let delta_run = run_to_end(&scene.landing, &timed);
    scene.same_as_clean(&timed, "the deltas ingested after the bulks");

    let mut tally = Tally::default();
    for (i, f) in DELTA_SPREAD.iter().enumerate() {
        let store = scene.work.join(format!("kill-{i}"));
        copy_dir(&bulk, &store);
        let delay = delta_run.mul_f64(*f);
        scene.kill_point(&store, &before, Kill::After(delay), &mut tally);
    }
    for ods in &scene.practices {
        let store = scene.work.join(format!("kill-commit-{ods}"));
        copy_dir(&bulk, &store);
        scene.kill_point(&store, &before, Kill::AtCommit(ods.clone()), &mut tally);
    }
    eprintln!("deltas run {delta_run:?}; {tally:?}");
    assert!(tally.killed > 0, "no kill point found phm running");
}

/// A child process, killed when dropped: a failed assertion leaves no
/// stopped `phm` behind.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn signal(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .args([format!("-{signal}"), child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal}");
    if signal == "STOP" {
        // The signal is delivered asynchronously: a thread on another core
        // may run on for a moment. Wait until every thread is stopped.
        let tasks = format!("/proc/{}/task", child.id());
        let started = Instant::now();
        let stopped = || {
            std::fs::read_dir(&tasks).unwrap().flatten().all(|t| {
                // A thread that has just ended is stopped enough.
                std::fs::read_to_string(t.path().join("stat")).map_or(true, |stat| {
                    // The state follows the parenthesised command name.
                    stat.rsplit_once(") ")
                        .is_some_and(|(_, rest)| rest.starts_with('T'))
                })
            })
        };
        while !stopped() {
            assert!(started.elapsed() < Duration::from_secs(10), "not stopped");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

#[test]
fn a_second_ingest_while_one_runs_exits_with_the_lock_code() {
    let work = tempfile::tempdir().unwrap();
    let (landing, store) = (work.path().join("landing"), work.path().join("store"));
    network_of(&landing, 43, 2, PATIENTS);
    let mut child = Reaped(spawn(&ingest_args(&landing, &store)));
    // Running (it records what it is about to apply once it holds the
    // lock), then held still so it cannot finish meanwhile.
    let started = Instant::now();
    while !store.join("ingest-in-progress.json").exists() {
        assert!(
            child.0.try_wait().unwrap().is_none(),
            "phm ended before it started"
        );
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "phm never started"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    signal(&child.0, "STOP");
    let before = tree_hashes(&store);

    let second = ingest(&landing, &store);
    assert_eq!(second.status.code(), Some(4), "{}", stderr(&second));
    let holder = format!("locked by another phm process (pid {})", child.0.id());
    assert!(stderr(&second).contains(&holder), "{}", stderr(&second));
    assert_eq!(
        tree_hashes(&store),
        before,
        "the refused ingest changed the store"
    );

    signal(&child.0, "CONT");
    assert!(child.0.wait().unwrap().success());
}
