//! Per-practice state kept with the canonical data: which deliveries have been
//! applied, and the practice's capability profile.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};

use super::{Result, StoreError, io};
use crate::source::manifest::{ExtractKind, Supplier};

pub const STATE_FILE: &str = "state.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IngestedDelivery {
    pub extract_id: String,
    pub kind: ExtractKind,
    pub extracted_at: NaiveDateTime,
    /// SHA-256 of the delivery's manifest.json: the same extract id with another
    /// manifest is a different delivery and is refused.
    pub manifest_sha256: String,
}

/// What a practice's data can answer (DESIGN.md, "capability profile"). A cohort
/// needing a table or code system a practice lacks reports it *unavailable*.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Capability {
    pub supplier: Supplier,
    pub schema_version: String,
    /// Source tables present in the state, with their row counts.
    pub source_tables: BTreeMap<String, u64>,
    /// Canonical tables holding at least one row.
    pub canonical_tables: Vec<String>,
    pub code_systems: Vec<String>,
    pub latest_extracted_at: NaiveDateTime,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PracticeState {
    pub practice: String,
    pub supplier: Supplier,
    pub deliveries: Vec<IngestedDelivery>,
    pub capability: Capability,
}

impl PracticeState {
    pub fn read(practice_dir: &Path) -> Result<Option<PracticeState>> {
        let path = practice_dir.join(STATE_FILE);
        if !path.exists() {
            return Ok(None);
        }
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StoreError::State {
                path,
                message: e.to_string(),
            })
    }

    pub fn write(&self, practice_dir: &Path) -> Result<()> {
        let path = practice_dir.join(STATE_FILE);
        let json = serde_json::to_vec_pretty(self).expect("state serialises");
        std::fs::write(&path, json).map_err(io(&path))
    }

    pub fn latest(&self) -> Option<&IngestedDelivery> {
        self.deliveries.iter().max_by_key(|d| d.extracted_at)
    }
}
