//! Where the plans of the cohort and data-quality stages run: this machine
//! (a DataFusion session under a memory pool that spills) or a Ballista
//! cluster (`--engine ballista://HOST:PORT`, built with the `ballista`
//! feature). The stages build the same plans either way; on a cluster their
//! intermediate results are Parquet files in the run's work folder, which
//! every executor must be able to read (`docs/operations.md`, "Beyond one
//! machine").
//!
//! Also what every stage shares about memory: the `--memory-limit` size
//! ([`MemoryLimit`]) and the one-line message of a stage that ran out.

use std::fmt;
use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;

use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};

/// The smallest memory limit any stage accepts: below it a sort cannot hold
/// the batches it must merge, however much it spills.
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
                "{} is too little for the query engine; hint: give at least {} MiB",
                text.trim(),
                MIN_MEMORY >> 20
            ));
        }
        Ok(MemoryLimit(bytes))
    }
}

/// The engine's first line when `e` is the memory pool refusing an
/// operator (a hash table, a buffer that cannot spill), wherever it is
/// wrapped, on this machine or on a cluster's executor; `None` for any
/// other failure.
pub fn out_of_memory(e: &datafusion::error::DataFusionError) -> Option<String> {
    match e.find_root() {
        datafusion::error::DataFusionError::ResourcesExhausted(what) => Some(first_line(what)),
        other => remote_out_of_memory(&other.to_string()),
    }
}

/// A cluster returns an executor's failure as text: Ballista 55 reports
/// `Job … failed: … Task failed due to runtime execution error:
/// DataFusionError(…ResourcesExhausted("…"))` inside an execution error.
/// The pool's own words, when that text holds them.
fn remote_out_of_memory(text: &str) -> Option<String> {
    const MARK: &str = "ResourcesExhausted(\"";
    let rest = &text[text.find(MARK)? + MARK.len()..];
    let what = rest.find("\")").map_or(rest, |end| &rest[..end]);
    Some(first_line(what))
}

/// The first line of `text`, trimmed.
pub(crate) fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().trim().to_string()
}

/// An engine error on one line, for a message that must stay one line (a
/// cluster's error text can span several).
pub fn one_line(e: &impl std::fmt::Display) -> String {
    e.to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// What a stage that ran out of memory tells its user: the stage, the limit,
/// the engine's words and what to do next.
pub fn out_of_memory_message(stage: &str, limit: Option<usize>, detail: &str) -> String {
    let within = match limit {
        Some(bytes) => format!("within --memory-limit {}", MemoryLimit(bytes)),
        None => "within its memory pool".to_string(),
    };
    format!(
        "the {stage} stage ran out of memory {within} ({detail}); nothing was published; hint: raise --memory-limit (or the executors' --memory-pool-size on a cluster) and run again"
    )
}

/// Where plans run, as the command line and pipeline files name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineSpec {
    /// This machine: `local`.
    Local,
    /// A Ballista scheduler: `ballista://HOST:PORT`.
    Ballista { host: String, port: u16 },
}

impl FromStr for EngineSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<EngineSpec, String> {
        if s == "local" {
            return Ok(EngineSpec::Local);
        }
        let hint = "hint: `local`, or `ballista://HOST:PORT` for a Ballista scheduler (port 50050 by default)";
        let Some(rest) = s.strip_prefix("ballista://") else {
            return Err(format!("engine {s:?} is not known; {hint}"));
        };
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or_else(|| format!("engine {s:?} names no port; {hint}"))?;
        let port: u16 = port
            .parse()
            .map_err(|_| format!("engine {s:?}: {port:?} is not a port number; {hint}"))?;
        if host.is_empty() || host.contains('/') {
            return Err(format!("engine {s:?}: {host:?} is not a host name; {hint}"));
        }
        Ok(EngineSpec::Ballista {
            host: host.to_string(),
            port,
        })
    }
}

impl fmt::Display for EngineSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineSpec::Local => f.write_str("local"),
            EngineSpec::Ballista { host, port } => write!(f, "ballista://{host}:{port}"),
        }
    }
}

/// Why a session could not start.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("cannot start the query runtime: {0}")]
    Runtime(std::io::Error),
    #[error(
        "this phm was built without Ballista, so it cannot run on {0}; hint: build it with `cargo build --release --features ballista`, or use engine `local`"
    )]
    NotBuilt(EngineSpec),
    #[error(
        "cannot reach the Ballista scheduler at {spec}: {reason}; hint: check that the scheduler is running and listening on that address (`docs/operations.md`, \"Beyond one machine\"); nothing was written"
    )]
    Unreachable { spec: EngineSpec, reason: String },
    #[error("cannot configure the query engine: {0}")]
    Engine(#[from] datafusion::error::DataFusionError),
}

/// A DataFusion session and the runtime its plans are driven from.
#[derive(Clone)]
pub struct Session {
    runtime: Arc<tokio::runtime::Runtime>,
    ctx: SessionContext,
    spec: EngineSpec,
    /// The pool's limit on this machine, in bytes.
    memory_limit: Option<usize>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Session({})", self.spec)
    }
}

/// The settings every stage's plans expect, wherever they run.
pub fn config(threads: usize) -> SessionConfig {
    with_settings(SessionConfig::new(), threads)
}

/// `config` with the settings every stage's plans expect.
pub fn with_settings(config: SessionConfig, threads: usize) -> SessionConfig {
    let mut config = config
        .with_target_partitions(threads)
        .with_information_schema(false);
    // Outputs and the readers of intermediate files expect plain Utf8 strings.
    config
        .options_mut()
        .execution
        .parquet
        .schema_force_view_types = false;
    // Intermediate files are read once or twice, soon after: cheap compression.
    config.options_mut().execution.parquet.compression = Some("lz4_raw".to_string());
    // The cohort slice keeps a small share of the event rows: evaluating the
    // code filter while decoding skips the other columns of the rows it drops.
    config.options_mut().execution.parquet.pushdown_filters = true;
    config.options_mut().execution.parquet.reorder_filters = true;
    config
}

/// The cores this machine offers.
pub fn threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn runtime(threads: usize) -> Result<tokio::runtime::Runtime, SessionError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .map_err(SessionError::Runtime)
}

impl Session {
    /// A session on this machine; `memory_limit` (bytes) bounds the pool,
    /// past which sorts and aggregates spill.
    pub fn local(memory_limit: Option<usize>) -> Result<Session, SessionError> {
        let threads = threads();
        let mut rt = RuntimeEnvBuilder::new();
        if let Some(limit) = memory_limit {
            rt = rt.with_memory_limit(limit, 1.0);
        }
        Ok(Session {
            runtime: Arc::new(runtime(threads)?),
            ctx: SessionContext::new_with_config_rt(config(threads), Arc::new(rt.build()?)),
            spec: EngineSpec::Local,
            memory_limit,
        })
    }

    /// A session on the engine `spec` names. On a cluster, the memory limit
    /// is the executors' own (`docs/operations.md`).
    pub fn open(spec: &EngineSpec, memory_limit: Option<usize>) -> Result<Session, SessionError> {
        match spec {
            EngineSpec::Local => Session::local(memory_limit),
            #[cfg(feature = "ballista")]
            EngineSpec::Ballista { host, port } => {
                crate::session_ballista::connect(host, *port, spec, runtime(threads())?)
            }
            #[cfg(not(feature = "ballista"))]
            EngineSpec::Ballista { .. } => Err(SessionError::NotBuilt(spec.clone())),
        }
    }

    /// A session whose context was built elsewhere (e.g. an in-process
    /// Ballista cluster), driven from `runtime`.
    pub fn from_parts(
        runtime: Arc<tokio::runtime::Runtime>,
        ctx: SessionContext,
        spec: EngineSpec,
    ) -> Session {
        Session {
            runtime,
            ctx,
            spec,
            memory_limit: None,
        }
    }

    /// The memory pool's limit of a local session, in bytes.
    pub fn memory_limit(&self) -> Option<usize> {
        self.memory_limit
    }

    pub fn ctx(&self) -> &SessionContext {
        &self.ctx
    }

    pub fn spec(&self) -> &EngineSpec {
        &self.spec
    }

    /// Whether plans run on other processes: then no plan may hold
    /// in-memory tables, and intermediate results go to shared files.
    pub fn distributed(&self) -> bool {
        self.spec != EngineSpec::Local
    }

    /// Drives `f` to completion on the session's runtime.
    pub fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }
}

#[cfg(test)]
mod tests {
    use super::{EngineSpec, MemoryLimit, out_of_memory};
    use datafusion::error::DataFusionError;

    #[test]
    fn an_executors_memory_failure_is_recognised_in_the_clusters_text() {
        // As Ballista 55 returned it to the client, newline included.
        let remote = DataFusionError::Execution(
            "Job 038J60QQA2001 failed: Job failed due to stage 3 failed: Task failed due to runtime execution error: DataFusionError(Shared(Context(\"Not enough memory to continue external sort.\", ResourcesExhausted(\"Failed to allocate additional 10.0 MB for ExternalSorterMerge[0] with 0.0 B already allocated for this reservation - 1024.0 KB remain available for the total memory pool: fair(pool_size: 1024.0 KB)\"))))\n".into(),
        );
        assert_eq!(
            out_of_memory(&remote).as_deref(),
            Some(
                "Failed to allocate additional 10.0 MB for ExternalSorterMerge[0] with 0.0 B already allocated for this reservation - 1024.0 KB remain available for the total memory pool: fair(pool_size: 1024.0 KB)"
            )
        );
        let local = DataFusionError::Context(
            "sorting".into(),
            Box::new(DataFusionError::ResourcesExhausted(
                "pool full\nmore".into(),
            )),
        );
        assert_eq!(out_of_memory(&local).as_deref(), Some("pool full"));
        let lost = DataFusionError::Execution(
            "Job 1 failed: Task failed due to runtime execution error: executor lost".into(),
        );
        assert_eq!(out_of_memory(&lost), None);
    }

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
        assert_eq!(MemoryLimit(2 << 30).to_string(), "2 GiB");
        assert_eq!(MemoryLimit(512 << 20).to_string(), "512 MiB");
    }

    #[test]
    fn engine_specs_parse_and_print_back() {
        assert_eq!("local".parse::<EngineSpec>(), Ok(EngineSpec::Local));
        let b: EngineSpec = "ballista://10.0.0.5:50050".parse().unwrap();
        assert_eq!(
            b,
            EngineSpec::Ballista {
                host: "10.0.0.5".into(),
                port: 50050
            }
        );
        assert_eq!(b.to_string(), "ballista://10.0.0.5:50050");
        for bad in [
            "",
            "Local",
            "ballista://",
            "ballista://host",
            "ballista://:50050",
            "ballista://host:port",
            "ballista://host:70000",
            "df://host:50050",
        ] {
            let e = bad.parse::<EngineSpec>().unwrap_err();
            assert!(e.contains("hint:"), "{bad}: {e}");
        }
    }
}
