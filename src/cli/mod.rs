//! The command line: argument parsing, logging set-up and exit codes.
//!
//! stdout carries only data and summaries; logs go to stderr (human on a
//! terminal, `--log-format json` for schedulers). Only this module reads the
//! wall clock or the environment.

mod cohort;
mod cohort_run;
mod demo;
mod dq;
mod ingest;
mod synth;
mod terminology;
mod valueset;

use std::io::IsTerminal;

use clap::{Parser, Subcommand, ValueEnum};

/// Exit codes a scheduler can act on.
pub mod exit {
    /// Everything asked for was done.
    pub const OK: u8 = 0;
    /// An internal error: a bug in phm.
    pub const INTERNAL: u8 = 1;
    /// The command or a definition was wrong; nothing was read or written.
    pub const USAGE: u8 = 2;
    /// Some input was refused (e.g. a practice's delivery); the rest was done.
    pub const DATA: u8 = 3;
    /// Another phm process holds the store.
    pub const LOCKED: u8 = 4;
}

#[derive(Debug, Parser)]
#[command(
    name = "phm",
    version,
    about = "Population-health analytics for English general practice"
)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    /// More log detail (-v info, -vv debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate a synthetic PCN's EMIS and TPP deliveries (deterministic per seed).
    Synth(synth::SynthArgs),
    /// Ingest deliveries from a landing zone into the canonical store.
    Ingest(ingest::IngestArgs),
    /// Compile SNOMED CT / dm+d / CTV3 releases; write the fixture release.
    Terminology(terminology::TerminologyArgs),
    /// List, expand and compare versioned value sets.
    Valueset(valueset::ValuesetArgs),
    /// Validate, show, run and explain cohort definitions.
    Cohort(cohort::CohortArgs),
    /// Build, ingest and run every shipped cohort on a small synthetic network.
    Demo(demo::DemoArgs),
    /// Per-practice data quality of a store: dq.json and rows to fix at source.
    Dq(dq::DqArgs),
}

/// An error with the exit code it maps to.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub fn new(code: u8, message: impl std::fmt::Display) -> Self {
        Failure {
            code,
            message: message.to_string(),
        }
    }
}

/// Opens a compiled terminology release. A folder that is not one is a usage
/// error with a hint; a release that cannot be read is a data error.
pub(crate) fn open_release(dir: &std::path::Path) -> Result<crate::terminology::Release, Failure> {
    let manifest = dir.join(crate::terminology::release::MANIFEST);
    if !manifest.is_file() {
        return Err(Failure::new(
            exit::USAGE,
            format!(
                "{}: not a compiled release (no {}); hint: --release takes a folder written by `phm terminology import`",
                dir.display(),
                crate::terminology::release::MANIFEST
            ),
        ));
    }
    crate::terminology::Release::open(dir).map_err(|e| {
        let code = match e {
            crate::terminology::Error::Io { .. } => exit::INTERNAL,
            _ => exit::DATA,
        };
        Failure::new(code, e)
    })
}

/// Writes `text` to stdout; a closed pipe (`| head`) is not an error.
pub(crate) fn emit(text: &str) -> Result<u8, Failure> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Failure::new(exit::INTERNAL, format!("stdout: {e}")))
        }
        _ => Ok(exit::OK),
    }
}

pub fn init_logging(format: LogFormat, verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    // `-v`/`-vv` raise phm's own detail only: other crates stay at warn, so
    // their debug lines (DataFusion prints Parquet column statistics, which
    // hold person keys) reach the log only when PHM_LOG names them.
    let filter = tracing_subscriber::EnvFilter::try_from_env("PHM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("warn,phm={level}")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Human => builder.with_ansi(std::io::stderr().is_terminal()).init(),
    }
}

pub fn run(cli: Cli) -> Result<u8, Failure> {
    match cli.command {
        Command::Synth(args) => synth::run(args),
        Command::Ingest(args) => ingest::run(args),
        Command::Terminology(args) => terminology::run(args),
        Command::Valueset(args) => valueset::run(args),
        Command::Cohort(args) => cohort::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Dq(args) => dq::run(args),
    }
}
