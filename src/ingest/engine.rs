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

/// The default `--memory-limit` of `phm ingest`.
pub const DEFAULT_MEMORY_LIMIT: MemoryLimit = MemoryLimit(2 << 30);

/// The smallest limit ingest accepts: below it a sort cannot hold the
/// batches it must merge, however much it spills.
const MIN_MEMORY: usize = 64 << 20;

/// A memory limit in bytes, written as `2GiB`, `512MiB` or a whole number of
/// MiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryLimit(pub usize);

impl MemoryLimit {
    pub fn bytes(self) -> usize {
        self.0
    }
}

impl std::fmt::Display for MemoryLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mib = self.0 >> 20;
        if mib % 1024 == 0 {
            write!(f, "{} GiB", mib / 1024)
        } else {
            write!(f, "{mib} MiB")
        }
    }
}

impl std::str::FromStr for MemoryLimit {
    type Err = String;

    fn from_str(text: &str) -> Result<MemoryLimit, String> {
        let t = text.trim();
        let (number, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
            Some(at) => t.split_at(at),
            None => (t, "MiB"),
        };
        let shift = match unit.trim() {
            "GiB" | "G" | "GB" => 30,
            "MiB" | "M" | "MB" => 20,
            _ => {
                return Err(format!(
                    "{text:?} is not a memory size; hint: write it as 2GiB, 512MiB or a whole number of MiB"
                ));
            }
        };
        let n: usize = number.parse().map_err(|_| {
            format!("{text:?} is not a memory size; hint: write it as 2GiB, 512MiB or a whole number of MiB")
        })?;
        let bytes = n
            .checked_shl(shift)
            .filter(|b| b >> shift == n)
            .ok_or_else(|| format!("{text:?} is larger than this machine can address"))?;
        if bytes < MIN_MEMORY {
            return Err(format!(
                "{text} is too little for ingest; hint: give at least {} MiB",
                MIN_MEMORY >> 20
            ));
        }
        Ok(MemoryLimit(bytes))
    }
}

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
    matches!(e.find_root(), DataFusionError::ResourcesExhausted(_))
}

fn mentions_spill(e: &DataFusionError) -> bool {
    let text = e.to_string();
    text.contains("No space left") || text.contains("spill") || text.contains("Permission denied")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes() {
        let cases = [
            ("2GiB", Some(2usize << 30)),
            ("512MiB", Some(512 << 20)),
            ("512", Some(512 << 20)),
            ("3G", Some(3 << 30)),
            (" 100 MiB ", Some(100 << 20)),
            ("63MiB", None),
            ("0", None),
            ("2TiB", None),
            ("two", None),
            ("1.5GiB", None),
        ];
        for (text, expected) in cases {
            let got = text.parse::<MemoryLimit>().ok().map(MemoryLimit::bytes);
            assert_eq!(got, expected, "{text}");
        }
        assert_eq!(DEFAULT_MEMORY_LIMIT.to_string(), "2 GiB");
        assert_eq!(MemoryLimit(512 << 20).to_string(), "512 MiB");
    }

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
