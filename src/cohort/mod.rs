//! Cohort definitions: read, validate, bind to a terminology release, evaluate.
//!
//! Stages (STYLE.md "Stages have their own types"): [`file`] reads
//! `cohorts/<ID>/<version>.toml` into a validated [`model::Definition`]
//! (no terminology or patient data read; errors name the line); [`bind`]
//! expands its value sets against a release into a [`Cohort`]; [`engine`]
//! compiles cohorts into DataFusion plans over the canonical store and writes
//! the run's outputs; [`reference`] is an independent, plain-Rust evaluator of
//! the same semantics used to check the engine. [`outcome`] is the per-person
//! result both produce; [`explain`] reads one person's rows back from a run's
//! outputs and tells them as a narrative or JSON. Semantics:
//! `docs/cohort-language.md`.

pub mod engine;
pub mod explain;
pub mod file;
pub mod model;
pub mod outcome;
pub mod reference;

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::terminology::Release;
use crate::valueset::{Catalogue, Expansion};
pub use model::Definition;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A malformed or invalid definition; nothing has been read.
    #[error("{path}:{line}:{column}: {message}")]
    Definition {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error(transparent)]
    ValueSet(#[from] crate::valueset::Error),
    /// The run was asked for something it cannot do (no index date, unknown cohort).
    #[error("{0}")]
    Usage(String),
    /// The store cannot answer (missing table, unreadable file).
    #[error("{0}")]
    Store(String),
    #[error("query failed: {0}")]
    Engine(#[from] datafusion::error::DataFusionError),
    /// The memory pool refused a query operator that cannot spill; nothing
    /// of the run was published.
    #[error("{}", crate::session::out_of_memory_message("cohort", *limit, detail))]
    OutOfMemory {
        /// The pool's limit in bytes; `None` on a cluster (each executor
        /// sets its own).
        limit: Option<usize>,
        /// The engine's first line: what asked for how much.
        detail: String,
    },
    #[error("arrow: {0}")]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    #[error("parquet: {0}")]
    Parquet(#[from] datafusion::parquet::errors::ParquetError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A definition with its value sets expanded against one release.
#[derive(Debug, Clone)]
pub struct Cohort {
    pub def: Definition,
    /// By value set id.
    pub expansions: BTreeMap<String, Expansion>,
}

impl Cohort {
    /// The codes a criterion matches (union of its value sets); `None` for `any_code`.
    pub fn codes(&self, criterion: &model::Criterion) -> Option<std::collections::BTreeSet<u64>> {
        if criterion.any_code {
            return None;
        }
        Some(
            criterion
                .valuesets
                .iter()
                .flat_map(|id| self.expansions[id].rows.iter().map(|r| r.code))
                .collect(),
        )
    }
}

/// Expands every value set the definition pins against `release`.
pub fn bind(def: Definition, catalogue: &Catalogue, release: &Release) -> Result<Cohort> {
    let mut expansions = BTreeMap::new();
    for (id, version) in &def.valuesets {
        let set = catalogue.resolve(id, Some(version))?;
        expansions.insert(
            id.clone(),
            crate::valueset::expand(catalogue, set, release)?,
        );
    }
    Ok(Cohort { def, expansions })
}
