use std::process::ExitCode;

use phm::cli;

/// mimalloc returns freed memory to the system, where glibc's arenas held on
/// to it: ingest's peak memory follows its memory limit (see Cargo.toml).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = cli::parse();
    cli::init_logging(cli.log_format, cli.verbose);
    match cli::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            eprintln!("error: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}
