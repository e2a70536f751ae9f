//! `phm ingest`: deliveries from a landing zone into the canonical store.
//!
//! Per practice, independently (one practice's bad delivery never blocks another):
//! 1. read every delivery's manifest; order by extraction time; skip those already
//!    in the store; refuse one older than the store's latest;
//! 2. verify every pending file's SHA-256 and row count before reading data;
//! 3. apply each delivery to the supplier tables' state, file to file in
//!    bounded memory (see [`crate::source::merge_files`]);
//! 4. derive the canonical tables from the whole state (so an EMIS CodeId whose
//!    coding row arrives later is resolved then), a batch of the large tables at
//!    a time, quarantining rows that cannot load; each table's file is written
//!    by a sorting plan that spills ([`canonical_files`]);
//! 5. write everything aside and commit it in one step (see [`crate::store`]).
//!
//! Memory: the engine's pool (`--memory-limit`) bounds DataFusion's sorts; a
//! merge splits its table into buckets that fit a share of the same limit; the
//! derive step holds one batch of a large table plus the practice's patients
//! and code look-ups. Practices run two at a time and share the limit.

pub mod canonical_files;
pub mod engine;
pub mod history;
pub mod linkage;
pub mod quarantine;
pub mod report;
pub mod state_files;

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::compute::concat_batches;
use rayon::prelude::*;

use crate::canonical::CanonicalTable;
use crate::source::columns::Columns;
use crate::source::derive::{CanonicalSink, DerivedTable};
use crate::source::emis;
use crate::source::manifest::{
    ExtractKind, MANIFEST_FILE, Manifest, ManifestError, Supplier, sha256_file,
};
use crate::source::merge_files::{MergeFileError, file_rows, merge_file, remove_patients_file};
use crate::source::read::{Origin, ReadError, SourceBatches, read_source_file};
use crate::source::table::TableSpec;
use crate::source::tpp;
use crate::store::state::{
    Capability, InProgress, IngestedDelivery, PendingExtract, PendingPractice, PracticeState,
};
use crate::store::{Store, StoreError, read_parquet, write_parquet};
use canonical_files::{FlagCounts, SinkError, TableSink, TableSummary};
use engine::{DEFAULT_MEMORY_LIMIT, Engine, EngineError, MemoryLimit};
use quarantine::{QuarantineBuilder, Reason};
use report::{
    CanonicalCounts, DeliveryReport, IngestReport, PracticeReport, PracticeStatus, TableCounts,
};
use state_files::StateFiles;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(
        "{path}: landing zone not found; hint: pass the folder that holds one sub-folder per practice ODS code"
    )]
    NoLanding { path: PathBuf },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// Why one practice was refused. The store is unchanged for that practice.
#[derive(Debug, thiserror::Error)]
pub enum PracticeError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A plan failed (out of memory, spill space, a damaged file): the
    /// message says which stage and what to do.
    #[error("{0}")]
    Plan(String),
    #[error(
        "{path}: practice {withdrawn}; its deliveries are not ingested; hint: remove its folder from the landing zone; to take the practice back in, delete {record} and ingest its full extract"
    )]
    Withdrawn {
        path: PathBuf,
        /// "A81001 was withdrawn from this store on … by … (reason)".
        withdrawn: String,
        record: PathBuf,
    },
    #[error(
        "{path}: manifest names practice {manifest} but sits in the folder of {folder}; hint: move the delivery to landing/{manifest}/ or fix the manifest"
    )]
    PracticeMismatch {
        path: PathBuf,
        folder: String,
        manifest: String,
    },
    #[error(
        "{path}: delivery is from {found} but practice {practice} is on {expected} in the store; hint: a supplier change needs a new full extract into a new store"
    )]
    SupplierChanged {
        path: PathBuf,
        practice: String,
        expected: Supplier,
        found: Supplier,
    },
    #[error(
        "{path}: delivery {extract_id} (extracted {extracted_at}) is older than {latest_id} (extracted {latest_at}) already in the store; hint: deliveries must be ingested in order; remove this delivery from the landing zone, or rebuild the store from all deliveries"
    )]
    OutOfOrder {
        path: PathBuf,
        extract_id: String,
        extracted_at: String,
        latest_id: String,
        latest_at: String,
    },
    #[error(
        "{path}: delivery {extract_id} was ingested before with a different manifest; hint: a re-sent delivery must keep its content; give a changed delivery a new extract id"
    )]
    ChangedDelivery { path: PathBuf, extract_id: String },
    #[error(
        "{path}: the sharing agreement is disabled (Agreements_SharingOrganisation.Disabled = true); processing stopped rather than deleting the practice's data; hint: confirm the agreement with the practice; nothing from this delivery was loaded"
    )]
    SharingDisabled { path: PathBuf },
    #[error(
        "{path}: schema version {found} is not one phm reads for {supplier} (expected {expected}); hint: nothing from this delivery was loaded"
    )]
    SchemaVersion {
        path: PathBuf,
        supplier: Supplier,
        found: String,
        expected: &'static str,
    },
    #[error(
        "{path}: the practice folder holds no deliveries; hint: a practice with no delivery is reported, never counted as zero patients"
    )]
    NoDeliveries { path: PathBuf },
    #[error(
        "{path}: a file sits in the practice folder outside any delivery; hint: every file belongs in a delivery folder beside its manifest.json; move it there or remove it, then run again"
    )]
    LooseFile { path: PathBuf },
    #[error(
        "{second}: extract {extract_id} is also in {first}; hint: the same delivery was placed twice; remove one copy, then run again"
    )]
    DuplicateExtract {
        first: PathBuf,
        second: PathBuf,
        extract_id: String,
    },
    #[error(
        "{path}: the manifest lists table {table:?}, which is not a table of {supplier} extracts{other}; hint: a misnamed table would be lost unread; fix the manifest or re-send the delivery"
    )]
    UnknownTable {
        path: PathBuf,
        table: String,
        supplier: Supplier,
        /// ` (it is a TPP table)` when the table belongs to the other supplier.
        other: String,
    },
    #[error(
        "{path}: a full extract without {missing}; hint: a bulk replaces the practice's whole record, which would then hold no patients or nobody registered; re-send the complete bulk"
    )]
    BulkIncomplete { path: PathBuf, missing: String },
    #[error(
        "{path}: the delivery holds no table phm reads (only {tables}); hint: it would be recorded as ingested while loading nothing; check that it is the right supplier's delivery"
    )]
    LoadsNothing { path: PathBuf, tables: String },
}

/// Refuses a delivery whose manifest would load nothing or lose a table:
/// a table name its supplier does not have, a bulk without the tables every
/// bulk carries, or a delivery of only tables phm does not read.
fn check_tables(dir: &Path, m: &Manifest) -> Result<(), PracticeError> {
    let path = dir.join(MANIFEST_FILE);
    let (read, unread, required) = match m.supplier {
        Supplier::Emis => (
            emis::tables::ALL,
            emis::tables::KNOWN_UNREAD,
            emis::tables::BULK_REQUIRED,
        ),
        Supplier::Tpp => (
            tpp::tables::ALL,
            tpp::tables::KNOWN_UNREAD,
            tpp::tables::BULK_REQUIRED,
        ),
    };
    let reads = |t: &str| read.iter().any(|s| s.name == t);
    for f in &m.files {
        if !reads(&f.table) && !unread.contains(&f.table.as_str()) {
            let other = match m.supplier {
                Supplier::Emis if tpp::tables::table(&f.table).is_some() => " (it is a TPP table)",
                Supplier::Tpp if emis::tables::table(&f.table).is_some() => {
                    " (it is an EMIS table)"
                }
                _ => "",
            };
            return Err(PracticeError::UnknownTable {
                path,
                table: f.table.clone(),
                supplier: m.supplier,
                other: other.to_string(),
            });
        }
    }
    if m.kind == ExtractKind::Full {
        let missing: Vec<&str> = required
            .iter()
            .copied()
            .filter(|t| !m.files.iter().any(|f| f.table == *t))
            .collect();
        if !missing.is_empty() {
            return Err(PracticeError::BulkIncomplete {
                path,
                missing: missing.join(" and "),
            });
        }
    }
    if !m.files.iter().any(|f| reads(&f.table)) {
        let tables: Vec<&str> = m.files.iter().map(|f| f.table.as_str()).collect();
        return Err(PracticeError::LoadsNothing {
            path,
            tables: tables.join(", "),
        });
    }
    Ok(())
}

struct Pending {
    dir: PathBuf,
    manifest: Manifest,
    manifest_sha256: String,
}

fn specs(supplier: Supplier) -> &'static [&'static TableSpec] {
    match supplier {
        Supplier::Emis => emis::tables::ALL,
        Supplier::Tpp => tpp::tables::ALL,
    }
}

fn schema_version(supplier: Supplier) -> &'static str {
    match supplier {
        Supplier::Emis => emis::tables::SCHEMA_VERSION,
        Supplier::Tpp => tpp::tables::SCHEMA_VERSION,
    }
}

/// Told how an ingest goes, for a progress display; `()` ignores it.
pub trait Observer: Sync {
    /// The landing zone holds `practices` practice folders.
    fn started(&self, _practices: usize) {}
    /// One practice is done: ingested, up to date or rejected.
    fn finished(&self, _practice: &PracticeReport) {}
}

impl Observer for () {}

/// How much memory ingest may use, and where it spills past that.
#[derive(Debug, Clone)]
pub struct Limits {
    pub memory: MemoryLimit,
    /// `None`: `STORE/.staging/.spill` (emptied whenever the store is opened).
    pub spill_dir: Option<PathBuf>,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            memory: DEFAULT_MEMORY_LIMIT,
            spill_dir: None,
        }
    }
}

/// Practices ingested at once; they share the memory limit.
const PARALLEL_PRACTICES: usize = 2;

/// Ingests every practice folder under `landing` into the store at `store_root`;
/// with `substitutions`, inactive codes are mapped to their active successors.
pub fn run(
    landing: &Path,
    store_root: &Path,
    substitutions: Option<&history::Substitutions>,
) -> Result<IngestReport, IngestError> {
    run_observed(landing, store_root, substitutions, &Limits::default(), &())
}

/// [`run`] within `limits`, telling `observer` as practices finish.
pub fn run_observed(
    landing: &Path,
    store_root: &Path,
    substitutions: Option<&history::Substitutions>,
    limits: &Limits,
    observer: &dyn Observer,
) -> Result<IngestReport, IngestError> {
    if !landing.is_dir() {
        return Err(IngestError::NoLanding {
            path: landing.to_path_buf(),
        });
    }
    let store = Store::open(store_root)?;
    let mut practices: Vec<(String, PathBuf)> = fs::read_dir(landing)
        .map_err(|source| StoreError::Io {
            path: landing.to_path_buf(),
            source,
        })?
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect();
    practices.sort();
    let spill_dir = limits
        .spill_dir
        .clone()
        .unwrap_or_else(|| store_root.join(".staging").join(".spill"));
    let engine = Engine::new(limits.memory, &spill_dir)?;
    store.begin_ingest(&plan(&store, &practices))?;
    observer.started(practices.len());

    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(PARALLEL_PRACTICES)
        .build()
        .map_err(|e| IngestError::Engine(EngineError::Start(e.to_string())))?;
    // Each practice's span sits in the caller's (a pipeline's stage), though
    // it runs on another thread.
    let parent = tracing::Span::current();
    let reports: Vec<PracticeReport> = pool.install(|| {
        practices
            .par_iter()
            .map(|(ods, dir)| {
                let _span =
                    tracing::info_span!(parent: &parent, "ingest", practice = %ods).entered();
                let report = ingest_practice(&store, &engine, ods, dir, substitutions)
                    .unwrap_or_else(|e| {
                        tracing::error!(practice = %ods, error = %e, "practice rejected");
                        PracticeReport::rejected(ods, e.to_string())
                    });
                observer.finished(&report);
                report
            })
            .collect()
    });
    let persons = linkage::person_linkage(
        &engine,
        &store.canonical_dir(CanonicalTable::Patients.name()),
    );
    drop(engine);
    if limits.spill_dir.is_none() {
        // The default folder is ingest's own: leave no empty folder behind.
        let _ = fs::remove_dir_all(&spill_dir);
    }
    let persons = persons?;
    let report = IngestReport {
        landing: landing.to_path_buf(),
        store: store_root.to_path_buf(),
        terminology_release: substitutions.map(|s| s.release_id.clone()),
        practices: reports,
        persons,
    };
    let reports_dir = store_root.join("reports");
    fs::create_dir_all(&reports_dir).map_err(|source| StoreError::Io {
        path: reports_dir.clone(),
        source,
    })?;
    let path = reports_dir.join("ingest.json");
    fs::write(
        &path,
        serde_json::to_vec_pretty(&report).expect("report serialises"),
    )
    .map_err(|source| StoreError::Io { path, source })?;
    store.finish_ingest()?;
    Ok(report)
}

/// What this ingest is about to apply, practice by practice, for the store's
/// in-progress record. A practice whose deliveries cannot be listed is left
/// out: it will be refused, and the store keeps it unchanged.
fn plan(store: &Store, practices: &[(String, PathBuf)]) -> InProgress {
    let practices = practices
        .iter()
        .filter_map(|(ods, dir)| {
            let state = PracticeState::read(&store.practice_dir(ods)).ok()?;
            let pending = pending_deliveries(ods, dir, state.as_ref()).ok()?;
            (!pending.is_empty()).then(|| PendingPractice {
                practice: ods.clone(),
                extracts: pending
                    .iter()
                    .map(|d| PendingExtract {
                        extract_id: d.manifest.extract_id.clone(),
                        extracted_at: d.manifest.extracted_at,
                    })
                    .collect(),
            })
        })
        .collect();
    InProgress {
        pid: std::process::id(),
        practices,
    }
}

fn pending_deliveries(
    ods: &str,
    dir: &Path,
    state: Option<&PracticeState>,
) -> Result<Vec<Pending>, PracticeError> {
    let mut deliveries = Vec::new();
    let entries = fs::read_dir(dir).map_err(|source| StoreError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut folders = Vec::new();
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        if path.is_dir() {
            folders.push(path);
        } else if !entry.file_name().to_string_lossy().starts_with('.') {
            return Err(PracticeError::LooseFile { path });
        }
    }
    folders.sort();
    for path in folders {
        let manifest = Manifest::read(&path)?;
        if manifest.practice != ods {
            return Err(PracticeError::PracticeMismatch {
                path,
                folder: ods.to_string(),
                manifest: manifest.practice,
            });
        }
        let expected = schema_version(manifest.supplier);
        if manifest.schema_version != expected {
            return Err(PracticeError::SchemaVersion {
                path,
                supplier: manifest.supplier,
                found: manifest.schema_version,
                expected,
            });
        }
        check_tables(&path, &manifest)?;
        if let Some(first) = deliveries
            .iter()
            .find(|d: &&Pending| d.manifest.extract_id == manifest.extract_id)
        {
            return Err(PracticeError::DuplicateExtract {
                first: first.dir.clone(),
                second: path,
                extract_id: manifest.extract_id,
            });
        }
        let manifest_path = path.join(MANIFEST_FILE);
        let manifest_sha256 = sha256_file(&manifest_path).map_err(|source| StoreError::Io {
            path: manifest_path,
            source,
        })?;
        deliveries.push(Pending {
            dir: path,
            manifest,
            manifest_sha256,
        });
    }
    if deliveries.is_empty() {
        return Err(PracticeError::NoDeliveries {
            path: dir.to_path_buf(),
        });
    }
    deliveries.sort_by(|a, b| {
        (a.manifest.extracted_at, &a.manifest.extract_id)
            .cmp(&(b.manifest.extracted_at, &b.manifest.extract_id))
    });

    let mut pending = Vec::new();
    for d in deliveries {
        if let Some(state) = state {
            if state.supplier != d.manifest.supplier {
                return Err(PracticeError::SupplierChanged {
                    path: d.dir,
                    practice: ods.to_string(),
                    expected: state.supplier,
                    found: d.manifest.supplier,
                });
            }
            if let Some(done) = state
                .deliveries
                .iter()
                .find(|s| s.extract_id == d.manifest.extract_id)
            {
                if done.manifest_sha256 != d.manifest_sha256 {
                    return Err(PracticeError::ChangedDelivery {
                        path: d.dir,
                        extract_id: d.manifest.extract_id,
                    });
                }
                continue; // already ingested: idempotent
            }
            if let Some(latest) = state
                .latest()
                .filter(|l| l.extracted_at >= d.manifest.extracted_at)
            {
                return Err(PracticeError::OutOfOrder {
                    path: d.dir,
                    extract_id: d.manifest.extract_id,
                    extracted_at: d.manifest.extracted_at.to_string(),
                    latest_id: latest.extract_id.clone(),
                    latest_at: latest.extracted_at.to_string(),
                });
            }
        }
        pending.push(d);
    }
    Ok(pending)
}

fn ingest_practice(
    store: &Store,
    engine: &Engine,
    ods: &str,
    dir: &Path,
    substitutions: Option<&history::Substitutions>,
) -> Result<PracticeReport, PracticeError> {
    if let Some(w) = crate::store::withdraw::withdrawal(store.root(), ods)? {
        return Err(PracticeError::Withdrawn {
            path: dir.to_path_buf(),
            withdrawn: format!(
                "{} was withdrawn from this store on {} by {} ({})",
                w.practice,
                w.at.format("%Y-%m-%d %H:%M UTC"),
                w.user,
                w.reason
            ),
            record: store
                .root()
                .join(crate::store::withdraw::WITHDRAWN_DIR)
                .join(format!("{ods}.json")),
        });
    }
    let practice_dir = store.practice_dir(ods);
    let previous = PracticeState::read(&practice_dir)?;
    if let Some(problems) = previous.as_ref().map(|p| p.check_files(store.root()))
        && !problems.is_empty()
    {
        return Err(StoreError::Damaged {
            practice: ods.to_string(),
            problems: problems
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join("; "),
        }
        .into());
    }
    let pending = pending_deliveries(ods, dir, previous.as_ref())?;
    if pending.is_empty() {
        return Ok(PracticeReport::up_to_date(ods, previous));
    }
    for d in &pending {
        d.manifest.verify(&d.dir)?;
    }
    let supplier = pending[0].manifest.supplier;
    let landing_root = dir.parent().unwrap_or(dir);

    // Everything this ingest writes goes under the practice's staging area,
    // which a crash leaves unpublished and the next open of the store removes.
    let mut staging = store.stage(ods)?;
    let scratch = staging.scratch()?;
    let budget = merge_budget(engine.limit());
    let mut states = StateFiles::in_store(&practice_dir, specs(supplier), &scratch);
    let mut rejected = load_rejected(&practice_dir)?;
    let mut deliveries = Vec::new();
    let mut ingested = previous
        .as_ref()
        .map(|s| s.deliveries.clone())
        .unwrap_or_default();
    for d in &pending {
        let m = &d.manifest;
        let started = Instant::now();
        tracing::info!(extract = %m.extract_id, kind = ?m.kind, files = m.files.len(), "applying delivery");
        if m.kind == ExtractKind::Full {
            states.clear();
        }
        let mut report = DeliveryReport {
            extract_id: m.extract_id.clone(),
            kind: m.kind,
            extracted_at: m.extracted_at,
            tables: Vec::new(),
            deleted_with_patient: BTreeMap::new(),
            unread_tables: Vec::new(),
        };
        let mut removed_patients = HashSet::new();
        // Tables merged once the patient table has been: the rows of the
        // patients it removed are left out as they are merged.
        let mut removal_done: HashSet<&str> = HashSet::new();
        let mut patients_merged = false;
        let none = HashSet::new();
        let mut delivery_rejects = QuarantineBuilder::new(ods, supplier.as_str());
        for spec in specs(supplier) {
            for file in m.files.iter().filter(|f| f.table == spec.name) {
                let path = m.path_of(&d.dir, file)?;
                let label = path
                    .strip_prefix(landing_root)
                    .unwrap_or(&path)
                    .to_string_lossy()
                    .into_owned();
                let origin = Origin {
                    supplier: supplier.as_str(),
                    schema_version: schema_version(supplier),
                    extract_id: &m.extract_id,
                    extracted_at: m.extracted_at,
                    file_label: &label,
                };
                if spec.name == emis::tables::AGREEMENTS_SHARING_ORGANISATION.name
                    && sharing_disabled(&read_source_file(&path, spec, &origin)?)
                {
                    return Err(PracticeError::SharingDisabled { path });
                }
                let delta = SourceBatches::open(&path, spec, &origin)?;
                let delta_rows = file_rows(&path)?;
                let out = states.next_file(spec);
                let outcome = merge_file(
                    spec,
                    states.get(spec),
                    delta,
                    delta_rows,
                    &out,
                    &scratch,
                    budget,
                    if patients_merged {
                        &removed_patients
                    } else {
                        &none
                    },
                )
                .map_err(|e| match e {
                    MergeFileError::Read(e) => PracticeError::Read(e),
                    MergeFileError::Store(e) => PracticeError::Store(e),
                })?;
                if outcome.removed_with_patient > 0 {
                    *report
                        .deleted_with_patient
                        .entry(spec.name.to_string())
                        .or_insert(0) += outcome.removed_with_patient;
                }
                for part in &outcome.rejected {
                    quarantine_unapplied(spec, part, &mut delivery_rejects);
                }
                removed_patients.extend(outcome.removed_patients);
                let reconciles = outcome.counts.reconciles();
                report.tables.push(TableCounts {
                    table: spec.name.to_string(),
                    counts: outcome.counts,
                    reconciles,
                });
                if !outcome.unchanged {
                    states.set(spec, out);
                }
                if patients_merged {
                    removal_done.insert(spec.name);
                }
            }
            patients_merged |= spec.patient.is_some_and(|p| spec.key == [p]);
        }
        report.unread_tables = m
            .files
            .iter()
            .filter(|f| !specs(supplier).iter().any(|s| s.name == f.table))
            .map(|f| f.table.clone())
            .collect();
        for table in &report.unread_tables {
            tracing::warn!(table = %table, extract = %m.extract_id, "table is not read by phm; its file was verified and left unread");
        }
        if !removed_patients.is_empty() {
            for spec in specs(supplier)
                .iter()
                .filter(|s| s.patient.is_some() && s.key != [s.patient.unwrap_or_default()])
                .filter(|s| !removal_done.contains(s.name))
            {
                if let Some(state) = states.get(spec).map(Path::to_path_buf) {
                    let out = states.next_file(spec);
                    let removed = remove_patients_file(spec, &state, &removed_patients, &out)?;
                    if removed > 0 {
                        report
                            .deleted_with_patient
                            .insert(spec.name.to_string(), removed);
                        states.set(spec, out);
                    }
                }
            }
        }
        if !delivery_rejects.is_empty() {
            rejected.push(delivery_rejects.finish());
        }
        ingested.push(IngestedDelivery {
            extract_id: m.extract_id.clone(),
            kind: m.kind,
            extracted_at: m.extracted_at,
            manifest_sha256: d.manifest_sha256.clone(),
        });
        deliveries.push(report);
        tracing::info!(extract = %m.extract_id, elapsed_ms = elapsed_ms(started), "delivery applied to the supplier state");
    }

    let started = Instant::now();
    let partition = format!("practice={ods}");
    let mut sinks = Sinks {
        scratch: scratch.clone(),
        substitutions,
        open: Vec::new(),
    };
    let derivation = match supplier {
        Supplier::Emis => emis::derive(ods, &states, &mut sinks),
        Supplier::Tpp => tpp::derive(ods, &states, &mut sinks),
    }?;
    tracing::info!(elapsed_ms = elapsed_ms(started), "canonical rows derived");
    let started = Instant::now();
    let mut summaries = Vec::new();
    for sink in sinks.open {
        let dir = staging.dir_for(
            Path::new("canonical")
                .join(sink.table().name())
                .join(&partition),
        )?;
        let summary = sink
            .finish(engine, &dir.join("data.parquet"))
            .map_err(|e| match e {
                SinkError::Store(e) => PracticeError::Store(e),
                SinkError::Plan { message } => PracticeError::Plan(message),
            })?;
        summaries.push(summary);
    }
    tracing::info!(elapsed_ms = elapsed_ms(started), "canonical files written");
    let started = Instant::now();
    let latest = pending
        .last()
        .expect("at least one pending delivery")
        .manifest
        .extracted_at;
    let capability = Capability {
        supplier,
        schema_version: schema_version(supplier).to_string(),
        source_tables: states.rows()?,
        canonical_tables: summaries
            .iter()
            .filter(|t| t.loaded > 0)
            .map(|t| t.table.name().to_string())
            .collect(),
        code_systems: derivation
            .code_systems
            .iter()
            .map(|s| s.to_string())
            .collect(),
        latest_extracted_at: latest,
    };
    let state = PracticeState {
        practice: ods.to_string(),
        supplier,
        deliveries: ingested,
        capability: capability.clone(),
        files: None, // recorded once written (`write_practice`)
    };
    let report = PracticeReport {
        practice: ods.to_string(),
        supplier: Some(supplier),
        status: PracticeStatus::Ingested,
        error: None,
        deliveries,
        canonical: canonical_counts(&summaries),
        flags: flags(&summaries),
        capability: Some(capability),
    };
    let mut quarantine = rejected.clone();
    if !derivation.quarantine.is_empty() {
        quarantine.push(derivation.quarantine.finish());
    }
    write_practice(store, staging, ods, &states, &rejected, quarantine, &state)?;
    tracing::info!(
        elapsed_ms = elapsed_ms(started),
        "practice committed to the store"
    );
    Ok(report)
}

fn elapsed_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// The memory one practice's merge may hold: the limit is shared by the
/// engine's pool (half) and the merges of the practices running at once.
fn merge_budget(limit: MemoryLimit) -> usize {
    limit.bytes() / 2 / PARALLEL_PRACTICES
}

/// Quarantines the delivery rows a merge could not apply.
fn quarantine_unapplied(
    spec: &'static TableSpec,
    part: &crate::source::merge_files::Rejected,
    rejects: &mut QuarantineBuilder,
) {
    let columns = Columns::new(&part.rows);
    for i in &part.missing_key {
        rejects.push(
            spec,
            &columns,
            *i as usize,
            None,
            Reason::MissingKey,
            format!("a key column of {:?} is empty", spec.key),
        );
    }
    // The record's own id: the last key column (the record GUID, or CodeId
    // for coding tables).
    let record = spec
        .key
        .last()
        .map(|k| part.rows.column_by_name(k).expect("key column"));
    for i in &part.invalid_version {
        let id = record.and_then(|c| crate::source::merge::patient_id(c, *i as usize));
        rejects.push(
            spec,
            &columns,
            *i as usize,
            id.as_deref(),
            Reason::InvalidProcessingId,
            format!(
                "{} is missing or below zero",
                spec.version.unwrap_or("the version column")
            ),
        );
    }
}

/// The canonical tables being derived, one sink per table in the order the
/// adapter first gives them; inactive codes are substituted on the way.
struct Sinks<'a> {
    scratch: PathBuf,
    substitutions: Option<&'a history::Substitutions>,
    open: Vec<TableSink>,
}

impl CanonicalSink for Sinks<'_> {
    fn push(&mut self, mut part: DerivedTable) -> Result<(), StoreError> {
        if let Some(subs) = self.substitutions {
            let substituted = match part.table {
                CanonicalTable::Events => Some(subs.apply_to_events(&part.batch)),
                CanonicalTable::Medications => Some(subs.apply_to_medications(&part.batch)),
                _ => None,
            };
            if let Some((batch, n)) = substituted {
                if n > 0 {
                    tracing::debug!(table = part.table.name(), substituted = n, release = %subs.release_id, "inactive codes mapped to active successors");
                }
                part.batch = batch;
            }
        }
        let at = match self.open.iter().position(|s| s.table() == part.table) {
            Some(at) => at,
            None => {
                self.open.push(TableSink::new(
                    part.table,
                    part.source_table,
                    &self.scratch,
                )?);
                self.open.len() - 1
            }
        };
        self.open[at].push(part)
    }
}

fn sharing_disabled(batch: &RecordBatch) -> bool {
    let c = Columns::new(batch);
    let disabled = c.bool("Disabled");
    (0..batch.num_rows()).any(|i| disabled.is_valid(i) && disabled.value(i))
}

fn load_rejected(practice_dir: &Path) -> Result<Vec<RecordBatch>, StoreError> {
    let path = practice_dir.join("rejected.parquet");
    Ok(if path.exists() {
        vec![read_parquet(&path)?]
    } else {
        Vec::new()
    })
}

fn canonical_counts(summaries: &[TableSummary]) -> Vec<CanonicalCounts> {
    summaries
        .iter()
        .map(|t| CanonicalCounts {
            table: t.table.name().to_string(),
            source_table: t.source_table.to_string(),
            source_rows: t.source_rows,
            loaded: t.loaded,
            quarantined: t.quarantined.values().sum(),
            quarantine_reasons: t
                .quarantined
                .iter()
                .map(|(r, n)| (r.as_str().to_string(), *n))
                .collect(),
            reconciles: t.reconciles(),
        })
        .collect()
}

/// Value counts of the flag columns, for the report and the data-quality checks.
fn flags(summaries: &[TableSummary]) -> FlagCounts {
    let mut out = FlagCounts::new();
    for t in summaries {
        for (column, values) in &t.flags {
            let counts = out.entry(column.clone()).or_default();
            for (value, n) in values {
                *counts.entry(value.clone()).or_default() += n;
            }
        }
    }
    out
}

fn write_practice(
    store: &Store,
    mut staging: crate::store::Staging,
    ods: &str,
    states: &StateFiles,
    rejected: &[RecordBatch],
    quarantine: Vec<RecordBatch>,
    state: &PracticeState,
) -> Result<(), StoreError> {
    let partition = format!("practice={ods}");
    let dir = staging.dir_for(Path::new("quarantine").join(&partition))?;
    let all =
        concat_batches(&quarantine::schema(), &quarantine).map_err(|e| StoreError::Parquet {
            path: dir.clone(),
            message: e.to_string(),
        })?;
    write_parquet(
        &dir.join("data.parquet"),
        &all,
        &["source_table", "source_file", "source_row"],
    )?;

    let practice = staging.dir_for(Path::new("practices").join(ods))?;
    let source = practice.join("source");
    fs::create_dir_all(&source).map_err(|e| StoreError::Io {
        path: source.clone(),
        source: e,
    })?;
    states.copy_into(&source)?;
    if !rejected.is_empty() {
        let merged =
            concat_batches(&quarantine::schema(), rejected).map_err(|e| StoreError::Parquet {
                path: practice.clone(),
                message: e.to_string(),
            })?;
        write_parquet(&practice.join("rejected.parquet"), &merged, &[])?;
    }
    staging.remove_scratch()?;
    let state = PracticeState {
        files: Some(staging.file_records()?),
        ..state.clone()
    };
    state.write(&practice)?;
    store.commit(staging)
}
