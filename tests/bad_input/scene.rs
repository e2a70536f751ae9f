//! What a case works on: a fresh copy of the pristine inputs, and the check
//! that nothing was lost.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::common::*;

/// Built once per suite run: a small synthetic network, the fixture
/// terminology release and a store ingested from the network.
pub struct Pristine {
    _dir: tempfile::TempDir,
    pub landing: PathBuf,
    pub store: PathBuf,
    pub release: PathBuf,
    pub practices: Vec<String>,
    pub emis: String,
    pub tpp: String,
}

impl Pristine {
    pub fn build() -> Pristine {
        let dir = tempfile::tempdir().unwrap();
        let landing = dir.path().join("landing");
        let store = dir.path().join("store");
        let release = dir.path().join("release");
        // Small: every case copies it and runs phm on it.
        let truth = network(&landing, 11, 300);
        let (emis, tpp) = one_of_each(&truth);
        let out = import_fixture(&release);
        assert!(out.status.success(), "fixture import: {}", stderr(&out));
        let out = ingest(&landing, &store);
        assert!(out.status.success(), "pristine ingest: {}", stderr(&out));
        Pristine {
            _dir: dir,
            landing,
            store,
            release,
            practices: truth.practices.iter().map(|p| p.ods.clone()).collect(),
            emis,
            tpp,
        }
    }
}

/// One case's working folder.
pub struct Scene<'a> {
    pristine: &'a Pristine,
    work: tempfile::TempDir,
    /// The practice a case damaged before an ingest: it must end with nothing
    /// in the store while every other practice is ingested.
    damaged: Option<String>,
    ingested_into: Option<PathBuf>,
}

impl<'a> Scene<'a> {
    pub fn new(pristine: &'a Pristine) -> Scene<'a> {
        Scene {
            pristine,
            work: tempfile::tempdir().unwrap(),
            damaged: None,
            ingested_into: None,
        }
    }

    pub fn work(&self) -> &Path {
        self.work.path()
    }

    pub fn emis(&self) -> String {
        self.pristine.emis.clone()
    }

    pub fn tpp(&self) -> String {
        self.pristine.tpp.clone()
    }

    /// A fresh copy of the landing zone (copied on first use).
    pub fn landing(&self) -> PathBuf {
        let landing = self.work().join("landing");
        if !landing.exists() {
            copy_dir(&self.pristine.landing, &landing);
        }
        landing
    }

    /// A fresh copy of the ingested store (copied on first use).
    pub fn store(&self) -> PathBuf {
        let store = self.work().join("store");
        if !store.exists() {
            copy_dir(&self.pristine.store, &store);
        }
        store
    }

    /// The fixture terminology release, shared: read it, never damage it.
    pub fn release(&self) -> PathBuf {
        self.pristine.release.clone()
    }

    /// A copy of the release to damage.
    pub fn release_copy(&self) -> PathBuf {
        let release = self.work().join("release");
        if !release.exists() {
            copy_dir(&self.pristine.release, &release);
        }
        release
    }

    /// Marks the practice a case damaged (see [`Scene::losses`]).
    pub fn damaged(&mut self, ods: &str) {
        self.damaged = Some(ods.to_string());
    }

    /// Ingests the scene's landing zone into a new store.
    pub fn ingest(&mut self) -> Output {
        let store = self.work().join("new-store");
        self.ingested_into = Some(store.clone());
        ingest(&self.landing(), &store)
    }

    /// What the case lost: after an ingest, the damaged practice must have
    /// nothing in the store and every other practice must be in it.
    pub fn losses(&self) -> Vec<String> {
        let (Some(store), Some(damaged)) = (&self.ingested_into, &self.damaged) else {
            return Vec::new();
        };
        let mut lost = Vec::new();
        if store.join("practices").join(damaged).exists() {
            lost.push(format!("state written for the refused practice {damaged}"));
        }
        for table in ["patients", "registrations", "events", "medications"] {
            let dir = store
                .join("canonical")
                .join(table)
                .join(format!("practice={damaged}"));
            if dir.exists() {
                lost.push(format!(
                    "{table} written for the refused practice {damaged}"
                ));
            }
        }
        for ods in self.pristine.practices.iter().filter(|o| *o != damaged) {
            if !store
                .join("practices")
                .join(ods)
                .join("state.json")
                .exists()
            {
                lost.push(format!("{ods} was not ingested"));
            }
        }
        lost
    }
}
