//! The query engine ingest runs in: one DataFusion session for the whole
//! ingest, with one memory pool shared by every practice and a spill folder.
//!
//! Invariants:
//! - memory held by DataFusion operators (sorts, windows, aggregates) never
//!   exceeds the limit: past it, they spill to the spill folder or fail with
//!   [`EngineError::is_out_of_memory`];
//! - the spill folder is checked for writing before any practice starts, so
//!   an unwritable folder is one clear error, not a failure half-way;
//! - nothing here reads the clock or the environment.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::error::DataFusionError;
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};

pub use crate::session::MemoryLimit;

/// The default `--memory-limit` of `phm ingest`.
pub const DEFAULT_MEMORY_LIMIT: MemoryLimit = MemoryLimit(2 << 30);

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(
        "{path}: the spill folder cannot be written: {source}; hint: pass --spill-dir with a writable folder on a disk with free space"
    )]
    SpillDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start the query engine: {0}")]
    Start(String),
}

/// One DataFusion session and the async runtime that drives it; practices
/// on several threads share it, and so share its memory pool.
pub struct Engine {
    runtime: tokio::runtime::Runtime,
    ctx: SessionContext,
    limit: MemoryLimit,
    spill_dir: PathBuf,
}

impl Engine {
    /// An engine whose pool is half of `limit` (the merges get the other
    /// half), spilling into `spill_dir` (created if needed).
    pub fn new(limit: MemoryLimit, spill_dir: &Path) -> Result<Engine, EngineError> {
        let spill = |source| EngineError::SpillDir {
            path: spill_dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(spill_dir).map_err(spill)?;
        // A sort finds out that it cannot spill only when it must: find out now.
        let probe = spill_dir.join(".phm-write-check");
        std::fs::write(&probe, b"phm").map_err(spill)?;
        std::fs::remove_file(&probe).map_err(spill)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("phm-ingest")
            .build()
            .map_err(|e| EngineError::Start(e.to_string()))?;
        let mut config = SessionConfig::new()
            .with_target_partitions(2)
            .with_information_schema(false);
        // Canonical files hold plain Utf8, as the cohort engine reads them.
        config
            .options_mut()
            .execution
            .parquet
            .schema_force_view_types = false;
        let env = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(FairSpillPool::new(limit.bytes() / 2)))
            .with_temp_file_path(spill_dir)
            .build()
            .map_err(|e| EngineError::Start(e.to_string()))?;
        Ok(Engine {
            runtime,
            ctx: SessionContext::new_with_config_rt(config, Arc::new(env)),
            limit,
            spill_dir: spill_dir.to_path_buf(),
        })
    }

    pub fn ctx(&self) -> &SessionContext {
        &self.ctx
    }

    pub fn limit(&self) -> MemoryLimit {
        self.limit
    }

    /// Runs a plan's future to completion on the engine's runtime.
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }

    /// A DataFusion failure while `stage` ran, said for the person who must act:
    /// out of memory names the limit and what to set; a spill failure names
    /// the folder.
    pub fn explain(&self, stage: &str, e: &DataFusionError) -> String {
        if is_out_of_memory(e) {
            format!(
                "{stage} ran out of memory within --memory-limit ({}): {}; nothing of this practice's delivery was stored; hint: raise --memory-limit (or the pipeline's memory_limit), or ingest fewer practices at once",
                self.limit,
                e.find_root()
            )
        } else if mentions_spill(e) {
            format!(
                "{stage} could not spill to {}: {e}; nothing of this practice's delivery was stored; hint: free space there or pass --spill-dir with a larger disk",
                self.spill_dir.display()
            )
        } else {
            format!("{stage}: {e}")
        }
    }
}

/// Whether `e` (or what it wraps) is DataFusion's out-of-memory error.
pub fn is_out_of_memory(e: &DataFusionError) -> bool {
    crate::session::out_of_memory(e).is_some()
}

fn mentions_spill(e: &DataFusionError) -> bool {
    let text = e.to_string();
    text.contains("No space left") || text.contains("spill") || text.contains("Permission denied")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unwritable_spill_folder_is_refused_up_front() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-folder");
        std::fs::write(&file, b"x").unwrap();
        let err = Engine::new(DEFAULT_MEMORY_LIMIT, &file.join("spill"))
            .err()
            .expect("a file is no folder");
        assert!(matches!(err, EngineError::SpillDir { .. }), "{err}");
        assert!(err.to_string().contains("--spill-dir"), "{err}");
    }
}
