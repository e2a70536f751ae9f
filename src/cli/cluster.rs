//! `phm cluster --executors N --cores C`: a Ballista scheduler and N
//! executors inside this process, on localhost, until stopped (Ctrl-C or
//! SIGTERM). For trying `--engine ballista://…` on one machine and for the
//! benchmarks; a real cluster runs Ballista's own scheduler and executors
//! (`docs/operations.md`, "Beyond one machine").

use clap::Args;

use super::{Failure, emit, exit};

#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// Executors to start.
    #[arg(long, default_value_t = 2)]
    pub executors: usize,
    /// Task slots of each executor.
    #[arg(long, default_value_t = 2)]
    pub cores: usize,
    /// Each executor's memory pool, shared by its task slots (e.g. 4GiB):
    /// sorts and aggregates spill beyond it. Left out, Ballista sizes it
    /// from the machine's memory.
    #[arg(long, value_name = "SIZE")]
    pub memory_limit: Option<crate::session::MemoryLimit>,
}

pub fn run(args: ClusterArgs) -> Result<u8, Failure> {
    if args.executors == 0 || args.cores == 0 {
        return Err(Failure::new(
            exit::USAGE,
            "--executors and --cores must be at least 1",
        ));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(exit::INTERNAL, format!("cannot start a runtime: {e}")))?;
    let cluster = crate::session_ballista::start_local_cluster(
        &runtime,
        args.executors,
        args.cores,
        args.memory_limit.map(crate::session::MemoryLimit::bytes),
    )
    .map_err(|e| Failure::new(exit::INFRASTRUCTURE, e))?;
    emit(&format!(
        "a Ballista scheduler and {} executors of {} cores are listening: --engine {}\n",
        args.executors,
        args.cores,
        cluster.engine()
    ))?;
    // The executors listen for these signals too, so neither ends the
    // process by itself: wait for either here.
    runtime.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    });
    drop(cluster);
    Ok(exit::OK)
}
