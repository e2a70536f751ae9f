//! Bad deliveries beyond the one-line cases of `tests/bad_input`: a late
//! delivery leaves the store byte-identical, and a locked store has its own
//! exit code.

mod common;

use std::fs;
use std::io::Write;

use common::*;
use phm::source::manifest::Manifest;

#[test]
fn a_delivery_older_than_the_store_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let landing = work.path().join("landing");
    let store = work.path().join("store");
    let truth = small_network(&landing, 12);
    let (emis, _) = one_of_each(&truth);
    assert_eq!(ingest(&landing, &store).status.code(), Some(0));
    let before = tree_hashes(&store.join("canonical"));

    // A delivery that arrives late: extracted before the store's latest.
    let first = &deliveries(&landing, &emis)[0];
    let late = landing.join(&emis).join("late-delivery");
    copy_dir(first, &late);
    let mut m = Manifest::read(&late).unwrap();
    m.extract_id = "late-delivery".into();
    m.kind = phm::source::manifest::ExtractKind::Delta;
    m.write(&late).unwrap();

    let out = ingest(&landing, &store);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stdout(&out).contains("is older than"), "{}", stdout(&out));
    assert_eq!(
        before,
        tree_hashes(&store.join("canonical")),
        "store changed"
    );
}

#[test]
fn a_locked_store_is_refused_with_its_own_exit_code() {
    let work = tempfile::tempdir().unwrap();
    let landing = work.path().join("landing");
    let store = work.path().join("store");
    small_network(&landing, 13);
    fs::create_dir_all(&store).unwrap();
    // A live holder: this process takes the OS lock phm takes.
    let mut lock = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(store.join(".lock"))
        .unwrap();
    lock.try_lock().unwrap();
    write!(lock, "{}", std::process::id()).unwrap();
    let out = ingest(&landing, &store);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let pid = format!("locked by another phm process (pid {})", std::process::id());
    assert!(stderr(&out).contains(&pid), "{}", stderr(&out));
    assert!(!stderr(&out).contains("delete"), "{}", stderr(&out));
    assert!(!store.join("canonical").exists());

    // The holder ends: its `.lock` file stays, and blocks nothing.
    drop(lock);
    assert!(store.join(".lock").exists());
    let out = ingest(&landing, &store);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}
