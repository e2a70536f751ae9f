//! The cohort and data-quality plans on a real Ballista cluster: a scheduler
//! and two executors started in this process on localhost, driven by the
//! phm binary (`--engine ballista://localhost:PORT`). Every shipped cohort
//! and the DQ stage must write the same bytes as on one machine; an engine
//! that cannot be reached fails before anything is written.
#![cfg(feature = "ballista")]

mod common;

use std::path::Path;

use common::{dq, import_fixture, ingest, phm, small_network, stderr, tree_hashes};

const INDEX: &str = "2026-03-31";

fn cohort_args(store: &Path, release: &Path, out: &Path, engine: &str) -> Vec<String> {
    let path = |p: &Path| p.to_str().unwrap().to_string();
    [
        "cohort",
        "run",
        "--all",
        "--index-date",
        INDEX,
        "--store",
        &path(store),
        "--release",
        &path(release),
        "--out",
        &path(out),
        "--engine",
        engine,
    ]
    .map(String::from)
    .to_vec()
}

fn cohort_run(store: &Path, release: &Path, out: &Path, engine: &str) -> std::process::Output {
    let args = cohort_args(store, release, out, engine);
    phm(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// Two trees hold the same files with the same bytes; the differences named.
fn assert_same_tree(local: &Path, cluster: &Path) {
    let (a, b) = (tree_hashes(local), tree_hashes(cluster));
    assert!(!a.is_empty(), "{}: nothing written", local.display());
    let differing: Vec<String> = a
        .keys()
        .chain(b.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| k.display().to_string())
        .collect();
    assert!(
        differing.is_empty(),
        "local and cluster outputs differ in {differing:?}"
    );
}

/// A cluster started in this process and an ingested small network with
/// the fixture release, in a folder of their own.
struct Setup {
    cluster: phm::session_ballista::LocalCluster,
    engine: String,
    work: tempfile::TempDir,
    store: std::path::PathBuf,
    release: std::path::PathBuf,
    /// The scheduler's; held, not read. Last: the executors' runtimes stop
    /// before it.
    _runtime: tokio::runtime::Runtime,
}

fn setup(cores: usize, memory: Option<usize>, seed: u64) -> Setup {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let cluster = phm::session_ballista::start_local_cluster(&runtime, 2, cores, memory).unwrap();
    let engine = cluster.engine().to_string();
    let work = tempfile::tempdir().unwrap();
    let (landing, store, release) = (
        work.path().join("landing"),
        work.path().join("store"),
        work.path().join("release"),
    );
    small_network(&landing, seed);
    assert!(import_fixture(&release).status.success());
    assert_eq!(ingest(&landing, &store).status.code(), Some(0));
    Setup {
        cluster,
        engine,
        work,
        store,
        release,
        _runtime: runtime,
    }
}

#[test]
fn shipped_cohorts_and_dq_on_a_cluster_equal_local_runs() {
    let setup = setup(2, None, 23);
    let (store, release, cluster) = (&setup.store, &setup.release, &setup.engine);
    let work = setup.work.path();

    let (local, remote) = (work.join("local"), work.join("cluster"));
    let l = cohort_run(store, release, &local, "local");
    let r = cohort_run(store, release, &remote, cluster);
    assert_eq!(l.status.code(), Some(0), "local: {}", stderr(&l));
    assert_eq!(r.status.code(), Some(0), "cluster: {}", stderr(&r));
    assert_same_tree(&local, &remote);
    // Every cohort wrote its files, and somebody is in the network's cohorts.
    let membership = tree_hashes(&remote)
        .keys()
        .filter(|p| p.ends_with("membership.parquet"))
        .count();
    assert!(membership >= 10, "{membership} membership files");
    assert!(!remote.join(".work").exists(), "the work folder is removed");

    let (local, remote) = (work.join("dq-local"), work.join("dq-cluster"));
    let l = dq(store, release, &local, INDEX, &["--engine", "local"]);
    let r = dq(store, release, &remote, INDEX, &["--engine", cluster]);
    assert_eq!(l.status.code(), r.status.code(), "cluster: {}", stderr(&r));
    assert_same_tree(&local, &remote);
}

/// An executor that dies under a run: Ballista hands its tasks to the other
/// (the run then writes what a local run writes), or the run fails with the
/// infrastructure code and its output folder has no completion marker, so
/// nothing reads it. Never a marker over partial results.
#[test]
fn an_executor_killed_mid_run_never_publishes_partial_results() {
    let mut setup = setup(1, None, 11);
    let (store, release, engine) = (&setup.store, &setup.release, setup.engine.clone());
    let work = setup.work.path().to_path_buf();
    let local = work.join("local");
    assert_eq!(
        cohort_run(store, release, &local, "local").status.code(),
        Some(0)
    );

    let out = work.join("cluster");
    let args = cohort_args(store, release, &out, &engine);
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_phm"))
        .args(&args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("PHM_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Mid-run: the slice is being built once the work folder exists.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !out.join(".work").exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    setup.cluster.kill_executor(1);
    let o = child.wait_with_output().unwrap();

    match o.status.code() {
        Some(0) => assert_same_tree(&local, &out),
        Some(6) => {
            assert!(
                !out.join("run.json").exists(),
                "a failed run left a completion marker"
            );
            assert!(stderr(&o).contains("hint:"), "{}", stderr(&o));
        }
        other => panic!("exit {other:?}: {}", stderr(&o)),
    }
    eprintln!("after the kill: exit {:?}", o.status.code());
}

#[test]
fn an_unreachable_scheduler_fails_before_anything_is_written() {
    // A port nobody listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let engine = format!("ballista://127.0.0.1:{port}");
    let work = tempfile::tempdir().unwrap();
    let (landing, store, release) = (
        work.path().join("landing"),
        work.path().join("store"),
        work.path().join("release"),
    );
    small_network(&landing, 5);
    assert!(import_fixture(&release).status.success());
    assert_eq!(ingest(&landing, &store).status.code(), Some(0));

    let out = work.path().join("out");
    let o = cohort_run(&store, &release, &out, &engine);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    let message = stderr(&o);
    assert!(
        message.contains(&format!("cannot reach the Ballista scheduler at {engine}"))
            && message.contains("hint:"),
        "{message}"
    );
    assert!(!out.exists(), "nothing is written");

    let o = dq(&store, &release, &out, INDEX, &["--engine", &engine]);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert!(!out.exists(), "nothing is written");
}

/// Executors whose memory pools are too small for the plans: the run fails
/// as a local run does (the stage, that memory ran out, what to raise) and
/// leaves no completion marker, so nothing reads its folder.
#[test]
fn executors_out_of_memory_fail_the_run_and_publish_nothing() {
    let setup = setup(1, Some(1 << 20), 7);
    let (store, release, engine) = (&setup.store, &setup.release, &setup.engine);
    let work = setup.work.path();

    let out = work.join("out");
    let o = cohort_run(store, release, &out, engine);
    let message = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{message}");
    assert!(
        message.contains("the cohort stage ran out of memory")
            && message.contains("executors' --memory-pool-size"),
        "{message}"
    );
    assert!(
        !out.join("run.json").exists(),
        "a failed run left a completion marker"
    );

    let dq_out = work.join("dq");
    let o = dq(store, release, &dq_out, INDEX, &["--engine", engine]);
    let message = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{message}");
    assert!(message.contains("ran out of memory"), "{message}");
    assert!(
        !dq_out.join("dq.json").exists(),
        "a failed assessment left a report"
    );
}

/// `phm cluster` serves until it is stopped, by Ctrl-C or by SIGTERM (its
/// executors listen for both as well), and then exits cleanly.
#[test]
fn phm_cluster_stops_on_sigterm() {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_phm"))
        .args(["cluster", "--executors", "1", "--cores", "1"])
        .env_remove("PHM_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains("--engine ballista://localhost:"), "{line}");
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert_eq!(status.code(), Some(0));
            break;
        }
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("phm cluster still running 20 s after SIGTERM");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
