//! The ingest report: per practice, per delivery, per table, counts that reconcile.
//!
//! Two balances are kept, both checked:
//! - per delivery and source table: `rows_in = applied + superseded + duplicate + deleted + quarantined`;
//! - per canonical table: `source_rows = loaded + quarantined` over the state after
//!   the run (so a row quarantined earlier for an unknown code and resolved now
//!   counts as loaded).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use chrono::NaiveDateTime;
use serde::Serialize;

use crate::source::manifest::{ExtractKind, Supplier};
use crate::source::merge::MergeCounts;
use crate::store::state::Capability;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PracticeStatus {
    /// New deliveries were applied.
    Ingested,
    /// Every delivery in the landing zone was already in the store.
    UpToDate,
    /// Refused; the store is unchanged for this practice.
    Rejected,
}

#[derive(Debug, Clone, Serialize)]
pub struct TableCounts {
    pub table: String,
    #[serde(flatten)]
    pub counts: MergeCounts,
    pub reconciles: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeliveryReport {
    pub extract_id: String,
    pub kind: ExtractKind,
    pub extracted_at: NaiveDateTime,
    pub tables: Vec<TableCounts>,
    /// Rows already in the store removed because their patient was deleted.
    pub deleted_with_patient: BTreeMap<String, u64>,
    /// Tables in the delivery that phm does not read (hashed and counted only).
    pub unread_tables: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CanonicalCounts {
    pub table: String,
    pub source_table: String,
    pub source_rows: u64,
    pub loaded: u64,
    pub quarantined: u64,
    pub quarantine_reasons: BTreeMap<String, u64>,
    pub reconciles: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct PracticeReport {
    pub practice: String,
    pub supplier: Option<Supplier>,
    pub status: PracticeStatus,
    /// Why the practice was rejected: what, where, and what is safe to do next.
    pub error: Option<String>,
    pub deliveries: Vec<DeliveryReport>,
    pub canonical: Vec<CanonicalCounts>,
    /// Column → value → rows, over the canonical tables after the run
    /// (`date_flag`, `value_flag`, `mapping_kind`, `nhs_number_status`, …).
    pub flags: BTreeMap<String, BTreeMap<String, u64>>,
    pub capability: Option<Capability>,
}

impl PracticeReport {
    pub fn rejected(practice: &str, error: String) -> Self {
        PracticeReport {
            practice: practice.to_string(),
            supplier: None,
            status: PracticeStatus::Rejected,
            error: Some(error),
            deliveries: Vec::new(),
            canonical: Vec::new(),
            flags: BTreeMap::new(),
            capability: None,
        }
    }

    /// Every delivery was already in the store; `previous` is what the store holds.
    pub fn up_to_date(practice: &str, previous: Option<crate::store::PracticeState>) -> Self {
        PracticeReport {
            status: PracticeStatus::UpToDate,
            error: None,
            supplier: previous.as_ref().map(|s| s.supplier),
            capability: previous.map(|s| s.capability),
            ..PracticeReport::rejected(practice, String::new())
        }
    }

    pub fn reconciles(&self) -> bool {
        self.deliveries
            .iter()
            .all(|d| d.tables.iter().all(|t| t.reconciles))
            && self.canonical.iter().all(|c| c.reconciles)
    }

    /// Rows this report quarantines: every canonical table's (registrations
    /// included) plus the rows of this run's deliveries that had no key.
    pub fn quarantined(&self) -> u64 {
        let canonical: u64 = self.canonical.iter().map(|c| c.quarantined).sum();
        let unkeyed: u64 = self
            .deliveries
            .iter()
            .flat_map(|d| &d.tables)
            .map(|t| t.counts.quarantined)
            .sum();
        canonical + unkeyed
    }
}

/// What an up-to-date practice holds in the store, from the row counts in the
/// committed Parquet files' footers (no table is scanned). The report of an
/// up-to-date practice carries no counts of its own, and its summary line must
/// not read as an empty practice.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredCounts {
    /// `None`: the file is missing or its footer cannot be read (see `problems`).
    pub patients: Option<u64>,
    pub events: Option<u64>,
    pub medications: Option<u64>,
    pub quarantined: Option<u64>,
    /// What could not be read, with the file.
    pub problems: Vec<String>,
}

impl StoredCounts {
    /// Reads `ods`'s committed files in the store at `root` (the layout of
    /// [`crate::store`]: `canonical/<table>/practice=<ODS>/data.parquet`,
    /// `quarantine/practice=<ODS>/data.parquet`).
    pub fn read(root: &Path, ods: &str) -> StoredCounts {
        let partition = format!("practice={ods}");
        let mut problems = Vec::new();
        let mut rows = |path: PathBuf| match footer_rows(&path) {
            Ok(n) => Some(n),
            Err(e) => {
                problems.push(format!("{}: {e}", path.display()));
                None
            }
        };
        let canonical = |table: &str| {
            root.join("canonical")
                .join(table)
                .join(&partition)
                .join("data.parquet")
        };
        StoredCounts {
            patients: rows(canonical("patients")),
            events: rows(canonical("events")),
            medications: rows(canonical("medications")),
            quarantined: rows(
                root.join("quarantine")
                    .join(&partition)
                    .join("data.parquet"),
            ),
            problems,
        }
    }
}

/// The row count a Parquet file's footer records.
fn footer_rows(path: &Path) -> Result<u64, String> {
    use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let reader = SerializedFileReader::new(file).map_err(|e| e.to_string())?;
    u64::try_from(reader.metadata().file_metadata().num_rows()).map_err(|e| e.to_string())
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct PersonLinkage {
    /// People whose verified NHS number appears at more than one practice.
    pub linked_across_practices: u64,
    /// Patient records without a verified NHS number, kept separate.
    pub unverified_records: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct IngestReport {
    pub landing: PathBuf,
    pub store: PathBuf,
    /// The release whose history mapped inactive codes, when one was given.
    pub terminology_release: Option<String>,
    pub practices: Vec<PracticeReport>,
    pub persons: PersonLinkage,
}

impl IngestReport {
    pub fn rejected(&self) -> impl Iterator<Item = &PracticeReport> {
        self.practices
            .iter()
            .filter(|p| p.status == PracticeStatus::Rejected)
    }

    pub fn reconciles(&self) -> bool {
        self.practices.iter().all(PracticeReport::reconciles)
    }

    /// What up-to-date practices hold in the store (see [`StoredCounts`]).
    pub fn stored_counts(&self) -> BTreeMap<String, StoredCounts> {
        self.practices
            .iter()
            .filter(|p| p.status == PracticeStatus::UpToDate)
            .map(|p| {
                (
                    p.practice.clone(),
                    StoredCounts::read(&self.store, &p.practice),
                )
            })
            .collect()
    }

    /// The human summary printed after an ingest, reading what up-to-date
    /// practices hold from the store's footers.
    pub fn summary(&self) -> String {
        self.summary_with(&self.stored_counts())
    }

    /// The human summary; `stored` gives an up-to-date practice's counts,
    /// which its report does not carry. Its status reads `unchanged`: the
    /// counts are the store's, not zero, and nothing was applied.
    pub fn summary_with(&self, stored: &BTreeMap<String, StoredCounts>) -> String {
        let mut out = String::new();
        let row = |out: &mut String, cells: [&str; 9]| {
            let [
                practice,
                supplier,
                status,
                patients,
                events,
                medications,
                quarantined,
                deleted,
                reconciles,
            ] = cells;
            let _ = writeln!(
                out,
                "{practice:<8} {supplier:<5} {status:<10} {patients:>9} {events:>10} {medications:>13} {quarantined:>11} {deleted:>11}  {reconciles}",
            );
        };
        row(
            &mut out,
            [
                "practice",
                "supp",
                "status",
                "patients",
                "events",
                "medications",
                "quarantined",
                "deleted",
                "reconciles",
            ],
        );
        let unknown = |n: Option<u64>| n.map_or_else(|| "?".to_string(), |n| n.to_string());
        let mut problems = Vec::new();
        for p in &self.practices {
            let supplier = p.supplier.map_or("-", Supplier::as_str);
            match p.status {
                PracticeStatus::Rejected => row(
                    &mut out,
                    [
                        &p.practice,
                        supplier,
                        "REJECTED",
                        "-",
                        "-",
                        "-",
                        "-",
                        "-",
                        "-",
                    ],
                ),
                PracticeStatus::UpToDate => {
                    let s = stored
                        .get(&p.practice)
                        .cloned()
                        .unwrap_or_else(|| StoredCounts {
                            problems: vec![format!("{}: not read from the store", p.practice)],
                            ..StoredCounts::default()
                        });
                    problems.extend(s.problems.iter().map(|e| (p.practice.clone(), e.clone())));
                    row(
                        &mut out,
                        [
                            &p.practice,
                            supplier,
                            "unchanged",
                            &unknown(s.patients),
                            &unknown(s.events),
                            &unknown(s.medications),
                            &unknown(s.quarantined),
                            "-",
                            "-",
                        ],
                    );
                }
                PracticeStatus::Ingested => {
                    let loaded = |t: &str| {
                        p.canonical
                            .iter()
                            .find(|c| c.table == t)
                            .map_or(0, |c| c.loaded)
                            .to_string()
                    };
                    let deleted: u64 = p
                        .deliveries
                        .iter()
                        .flat_map(|d| &d.tables)
                        .map(|t| t.counts.deleted)
                        .sum();
                    row(
                        &mut out,
                        [
                            &p.practice,
                            supplier,
                            "ingested",
                            &loaded("patients"),
                            &loaded("events"),
                            &loaded("medications"),
                            &p.quarantined().to_string(),
                            &deleted.to_string(),
                            if p.reconciles() { "yes" } else { "NO" },
                        ],
                    );
                }
            }
        }
        if self
            .practices
            .iter()
            .any(|p| p.status == PracticeStatus::UpToDate)
        {
            let _ = writeln!(
                out,
                "unchanged: every delivery was already in the store; counts are what the store holds"
            );
        }
        for (practice, problem) in &problems {
            let _ = writeln!(
                out,
                "{practice}: stored counts unknown (?): {problem}; hint: the store may be damaged; run phm ingest on a new store from the landing zone"
            );
        }
        let _ = writeln!(
            out,
            "persons linked across practices: {}; patient records without a verified NHS number: {}",
            self.persons.linked_across_practices, self.persons.unverified_records
        );
        for p in self.rejected() {
            let _ = writeln!(
                out,
                "rejected {}: {}",
                p.practice,
                p.error.as_deref().unwrap_or_default()
            );
        }
        out
    }
}
