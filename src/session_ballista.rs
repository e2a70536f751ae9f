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
fn config() -> SessionConfig {
    with_settings(SessionConfig::new_with_ballista(), 4)
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

/// A Ballista scheduler and `executors` executors of `cores` task slots
/// each, running on `runtime` inside this process and listening on
/// localhost; returns the scheduler's port. They stop with the runtime.
pub fn start_local_cluster(
    runtime: &tokio::runtime::Runtime,
    executors: usize,
    cores: usize,
) -> Result<u16, String> {
    runtime.block_on(async {
        let addr = ballista_scheduler::standalone::new_standalone_scheduler()
            .await
            .map_err(|e| format!("cannot start a scheduler: {e}"))?;
        let url = format!("http://localhost:{}", addr.port());
        let mut tries = 0;
        let scheduler = loop {
            match SchedulerGrpcClient::connect(url.clone()).await {
                Ok(c) => break c,
                Err(e) if tries > 100 => {
                    return Err(format!("the scheduler at {url} does not answer: {e}"));
                }
                Err(_) => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        for _ in 0..executors {
            ballista_executor::new_standalone_executor(
                scheduler.clone(),
                cores,
                BallistaCodec::default(),
            )
            .await
            .map_err(|e| format!("cannot start an executor: {e}"))?;
        }
        Ok(addr.port())
    })
}
