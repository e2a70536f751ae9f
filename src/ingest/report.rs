//! The ingest report: per practice, per delivery, per table, counts that reconcile.
//!
//! Two balances are kept, both checked:
//! - per delivery and source table: `rows_in = applied + superseded + duplicate + deleted + quarantined`;
//! - per canonical table: `source_rows = loaded + quarantined` over the state after
//!   the run (so a row quarantined earlier for an unknown code and resolved now
//!   counts as loaded).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

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

    /// The human summary printed after an ingest.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<8} {:<5} {:<10} {:>9} {:>10} {:>13} {:>11} {:>11}  reconciles",
            "practice",
            "supp",
            "status",
            "patients",
            "events",
            "medications",
            "quarantined",
            "deleted",
        );
        for p in &self.practices {
            let loaded = |t: &str| {
                p.canonical
                    .iter()
                    .find(|c| c.table == t)
                    .map_or(0, |c| c.loaded)
            };
            let quarantined: u64 = p
                .canonical
                .iter()
                .filter(|c| c.table != "registrations")
                .map(|c| c.quarantined)
                .sum();
            let deleted: u64 = p
                .deliveries
                .iter()
                .flat_map(|d| &d.tables)
                .map(|t| t.counts.deleted)
                .sum();
            let status = match p.status {
                PracticeStatus::Ingested => "ingested",
                PracticeStatus::UpToDate => "up-to-date",
                PracticeStatus::Rejected => "REJECTED",
            };
            let supplier = p.supplier.map_or("-", Supplier::as_str);
            if p.status == PracticeStatus::Rejected {
                let _ = writeln!(
                    out,
                    "{:<8} {:<5} {:<10} {:>9} {:>10} {:>13} {:>11} {:>11}  -",
                    p.practice, supplier, status, "-", "-", "-", "-", "-"
                );
                continue;
            }
            let _ = writeln!(
                out,
                "{:<8} {:<5} {:<10} {:>9} {:>10} {:>13} {:>11} {:>11}  {}",
                p.practice,
                supplier,
                status,
                loaded("patients"),
                loaded("events"),
                loaded("medications"),
                quarantined,
                deleted,
                if p.reconciles() { "yes" } else { "NO" }
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
