//! Sessions on an Apache DataFusion Ballista cluster (the `ballista`
//! feature): a client of a scheduler at `ballista://HOST:PORT`, and a
//! scheduler with executors inside this process, for tests and for trying a
//! cluster out on one machine.

use std::sync::Arc;
use std::time::Duration;

use ballista::prelude::{SessionConfigExt, SessionContextExt};
use ballista_core::serde::BallistaCodec;
use ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient;
use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::session::{EngineSpec, Session, SessionError, with_settings};

/// How long a new session waits for the cluster to run a first, trivial
/// query: the scheduler and at least one executor must answer.
const PROBE: Duration = Duration::from_secs(60);

/// The client's settings: Ballista's own, then phm's. Partitions: the
/// executors' cores are not known here; four per executor of two cores
/// keeps every core of a small cluster busy.
///
/// Ballista 55's adaptive planner is off: on the cohort plans (left joins of
/// aggregates over a work file) it kept re-planning one query into
/// thousands of one-millisecond stages without finishing.
///
/// Joins stay Ballista's sort-merge joins. With DataFusion's hash joins
/// (`prefer_hash_join`), a small build side becomes a broadcast
/// (`CollectLeft`), and each task then answers an outer join from its own
/// copy: COPD_REG lost the `anchor_missing` verdicts of its left join and
/// rejected 183 of 247 people a local run kept. The slice and evidence
/// plans instead carry their code lists as literals, so the large side is
/// filtered in the scan before it is shuffled.
fn config() -> SessionConfig {
    with_settings(
        SessionConfig::new_with_ballista().with_ballista_adaptive_query_planner(false),
        4,
    )
}

/// A session on the scheduler at `host:port`, checked by a first query so
/// that an unreachable cluster fails before a run writes anything.
pub fn connect(
    host: &str,
    port: u16,
    spec: &EngineSpec,
    runtime: tokio::runtime::Runtime,
) -> Result<Session, SessionError> {
    let runtime = Arc::new(runtime);
    let unreachable = |reason: String| SessionError::Unreachable {
        spec: spec.clone(),
        reason,
    };
    let ctx = runtime.block_on(async {
        let state = SessionStateBuilder::new()
            .with_default_features()
            .with_config(config())
            .build();
        let ctx = SessionContext::remote_with_state(&format!("df://{host}:{port}"), state)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        probe(&ctx).await.map_err(unreachable)?;
        Ok::<_, SessionError>(ctx)
    })?;
    Ok(Session::from_parts(runtime, ctx, spec.clone()))
}

/// Runs `SELECT 1` on the cluster.
async fn probe(ctx: &SessionContext) -> Result<(), String> {
    use datafusion::logical_expr::{LogicalPlanBuilder, lit};
    let plan = LogicalPlanBuilder::values(vec![vec![lit(1i64)]])
        .and_then(|b| b.build())
        .map_err(|e| e.to_string())?;
    let df = datafusion::dataframe::DataFrame::new(ctx.state(), plan);
    match tokio::time::timeout(PROBE, df.collect()).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(first_line(&e.to_string())),
        Err(_) => Err(format!(
            "no answer to a first query within {} s (is an executor registered with the scheduler?)",
            PROBE.as_secs()
        )),
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_string()
}

/// How soon the in-process scheduler gives up on a silent executor and
/// hands its tasks to another (Ballista's default is 180 s; executors poll
/// every few seconds).
const EXECUTOR_TIMEOUT_SECONDS: u64 = 15;

/// A Ballista scheduler and executors inside this process, on localhost.
/// The scheduler runs on the runtime it was started from; each executor on
/// a runtime of its own, so that one can be stopped alone.
pub struct LocalCluster {
    pub port: u16,
    executors: Vec<Option<tokio::runtime::Runtime>>,
}

impl LocalCluster {
    /// `ballista://localhost:PORT`.
    pub fn engine(&self) -> EngineSpec {
        EngineSpec::Ballista {
            host: "localhost".into(),
            port: self.port,
        }
    }

    /// Stops executor `i` at once, as if its machine had died.
    pub fn kill_executor(&mut self, i: usize) {
        if let Some(rt) = self.executors.get_mut(i).and_then(Option::take) {
            rt.shutdown_background();
        }
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for rt in self.executors.drain(..).flatten() {
            rt.shutdown_background();
        }
    }
}

/// Starts a scheduler on `runtime` and `executors` executors of `cores`
/// task slots each; they stop when the runtime and the cluster are dropped.
pub fn start_local_cluster(
    runtime: &tokio::runtime::Runtime,
    executors: usize,
    cores: usize,
) -> Result<LocalCluster, String> {
    let port = runtime.block_on(start_scheduler())?;
    let mut cluster = LocalCluster {
        port,
        executors: Vec::new(),
    };
    for _ in 0..executors {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cores.max(1))
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start a runtime: {e}"))?;
        rt.block_on(async {
            let scheduler = connect_scheduler(port).await?;
            ballista_executor::new_standalone_executor(scheduler, cores, BallistaCodec::default())
                .await
                .map_err(|e| format!("cannot start an executor: {e}"))
        })?;
        cluster.executors.push(Some(rt));
    }
    Ok(cluster)
}

async fn connect_scheduler(
    port: u16,
) -> Result<SchedulerGrpcClient<tonic::transport::Channel>, String> {
    let url = format!("http://localhost:{port}");
    let mut tries = 0;
    loop {
        match SchedulerGrpcClient::connect(url.clone()).await {
            Ok(c) => return Ok(c),
            Err(e) if tries > 100 => {
                return Err(format!("the scheduler at {url} does not answer: {e}"));
            }
            Err(_) => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Ballista's standalone scheduler (`ballista_scheduler::standalone`), with
/// a short executor timeout; returns its port.
async fn start_scheduler() -> Result<u16, String> {
    use ballista_core::config::TaskSchedulingPolicy;
    use ballista_core::extension::SessionConfigExt as _;
    use ballista_core::serde::protobuf::scheduler_grpc_server::SchedulerGrpcServer;
    use ballista_core::utils::{
        GrpcServerConfig, create_grpc_server, default_config_producer, default_session_builder,
    };
    use ballista_scheduler::cluster::BallistaCluster;
    use ballista_scheduler::config::SchedulerConfig;
    use ballista_scheduler::scheduler_server::SchedulerServer;
    use datafusion_proto::protobuf::{LogicalPlanNode, PhysicalPlanNode};
    let err = |what: &str| {
        let what = what.to_string();
        move |e: ballista_core::error::BallistaError| format!("{what}: {e}")
    };
    let config_producer: ballista_core::ConfigProducer = Arc::new(default_config_producer);
    let max_message = config_producer().ballista_grpc_client_max_message_size();
    let cluster = BallistaCluster::new_memory(
        "localhost:50050",
        Arc::new(default_session_builder),
        config_producer,
    );
    let mut config =
        SchedulerConfig::default().with_scheduler_policy(TaskSchedulingPolicy::PullStaged);
    config.executor_timeout_seconds = EXECUTOR_TIMEOUT_SECONDS;
    config.expire_dead_executor_interval_seconds = 2;
    // No second attempt of a task or a stage: a failure fails the query.
    // With retries, a run whose executor was killed mid-run finished with
    // rows counted twice (tests/ballista_cluster.rs).
    config.task_max_failures = 1;
    config.stage_max_failures = 1;
    let mut server: SchedulerServer<LogicalPlanNode, PhysicalPlanNode> = SchedulerServer::new(
        "localhost:50050".to_owned(),
        cluster,
        BallistaCodec::default(),
        Arc::new(config),
        ballista_scheduler::metrics::default_metrics_collector()
            .map_err(err("scheduler metrics"))?,
    );
    server
        .init()
        .await
        .map_err(err("cannot start a scheduler"))?;
    let grpc = SchedulerGrpcServer::new(server)
        .max_decoding_message_size(max_message)
        .max_encoding_message_size(max_message);
    let listener = tokio::net::TcpListener::bind("localhost:0")
        .await
        .map_err(|e| format!("cannot listen on localhost: {e}"))?;
    let port = listener
        .local_addr()
        .map_err(|e| format!("cannot listen on localhost: {e}"))?
        .port();
    tokio::spawn(
        create_grpc_server(&GrpcServerConfig::default())
            .add_service(grpc)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    Ok(port)
}
