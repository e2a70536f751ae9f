//! Where the plans of the cohort and data-quality stages run: this machine
//! (a DataFusion session under a memory pool that spills) or a Ballista
//! cluster (`--engine ballista://HOST:PORT`, built with the `ballista`
//! feature). The stages build the same plans either way; on a cluster their
//! intermediate results are Parquet files in the run's work folder, which
//! every executor must be able to read (`docs/operations.md`, "Beyond one
//! machine").

use std::fmt;
use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;

use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};

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
    use super::EngineSpec;

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
