//! The command line: argument parsing, logging set-up and exit codes.
//!
//! stdout carries only data and summaries; logs go to stderr (human on a
//! terminal, `--log-format json` for schedulers). Only this module reads the
//! wall clock or the environment.

#[cfg(feature = "ballista")]
mod cluster;
mod cohort;
mod cohort_run;
mod demo;
mod dq;
mod ingest;
mod key;
mod progress;
mod reidentify;
mod report;
mod run;
mod status;
mod store;
mod synth;
mod terminology;
mod valueset;

use std::io::IsTerminal;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

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
    /// `phm run`: published, but some expected practices are missing or
    /// were refused (named in the run's status.json).
    pub const PARTIAL: u8 = 5;
    /// The engine could not be reached or failed under the run (a Ballista
    /// scheduler or executor); nothing was published.
    pub const INFRASTRUCTURE: u8 = 6;
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
    /// Turn pseudonyms back into a practice's own patients (audited).
    Reidentify(reidentify::ReidentifyArgs),
    /// Per-practice data quality of a store: dq.json and rows to fix at source.
    Dq(dq::DqArgs),
    /// One self-contained HTML page from a finished run and a dq report.
    Report(report::ReportArgs),
    /// Run a pipeline file: ingest, cohorts, data quality, report; published atomically.
    Run(run::RunArgs),
    /// The last pipeline runs on a store: outcome, exit code, missing practices.
    Status(status::StatusArgs),
    /// Look after the store: withdraw a practice and delete its data (audited).
    Store(store::StoreArgs),
    /// A Ballista scheduler and executors in this process, until stopped.
    #[cfg(feature = "ballista")]
    Cluster(cluster::ClusterArgs),
}

/// Examples shown after each subcommand's `--help`, by subcommand path: a flat
/// list of like things. Every one is parsed by a test, so none can rot; the
/// paths are the README tour's.
const EXAMPLES: &[(&str, &[&str])] = &[
    (
        "synth",
        &["phm synth --out landing --practices 3 --patients 2000 --seed 7"],
    ),
    (
        "ingest",
        &[
            "phm ingest --landing landing --store store",
            "phm ingest --landing landing --store store --release release --report ingest.json",
        ],
    ),
    (
        "terminology",
        &["phm terminology import --rf2 terminology/fixture/rf2 --out release"],
    ),
    (
        "terminology import",
        &[
            "phm terminology import --rf2 terminology/fixture/rf2 --dmd terminology/fixture/dmd --ctv3-map terminology/fixture/ctv3/SRCtv3ToSnomed.txt --out release",
        ],
    ),
    (
        "terminology fixture",
        &["phm terminology fixture --codelists fixtures/codelists --out terminology/fixture"],
    ),
    ("valueset", &["phm valueset list"]),
    ("valueset list", &["phm valueset list --dir valuesets"]),
    (
        "valueset expand",
        &["phm valueset expand HYP_COD --release release"],
    ),
    (
        "valueset diff",
        &["phm valueset diff DM_COD@20200812 DM_COD@20250627 --release release"],
    ),
    ("cohort", &["phm cohort show DM_REG"]),
    (
        "cohort validate",
        &["phm cohort validate --release release"],
    ),
    ("cohort show", &["phm cohort show DM_REG --release release"]),
    (
        "cohort run",
        &[
            "phm cohort run DM_REG CKD_3_5 --store store --release release --index-date 2026-03-31 --out out",
            "phm cohort run --all --store store --release release --index-date 2026-03-31 --out out",
            "phm cohort run DM_REG --store store --release release --index-date 2026-03-31 --out out --key-file network.key --purpose \"diabetes audit\"",
        ],
    ),
    (
        "cohort explain",
        &[
            "phm cohort explain DM_REG --patient N24a8e55b7f526b0f --store store --release release --index-date 2026-03-31",
        ],
    ),
    (
        "dq",
        &["phm dq --store store --release release --out dq --as-of 2026-03-31"],
    ),
    (
        "report",
        &[
            "phm report --run out --dq dq",
            "phm report --run out --dq dq --out report.html --practice A81001",
        ],
    ),
    (
        "reidentify",
        &[
            "phm reidentify --store store --practice A81001 --purpose \"diabetes recall\" --key-file network.key P3f2a09c1d2e3f405162738495a6b7c8d",
        ],
    ),
    (
        "run",
        &[
            "phm run pipelines/demo.toml",
            "phm run pipelines/demo.toml --as-of 2026-04-01 --force",
        ],
    ),
    (
        "status",
        &[
            "phm status --store demo/store",
            "phm status --store demo/store --last 3 --format json",
        ],
    ),
    (
        "store",
        &["phm store remove-practice A81001 --store store --reason \"practice closed\""],
    ),
    (
        "store remove-practice",
        &[
            "phm store remove-practice A81001 --store store --reason \"data-sharing agreement ended\" --yes",
        ],
    ),
    (
        "demo",
        &[
            "phm demo",
            "phm demo --dir /tmp/demo --practices 3 --patients 2000 --seed 7",
        ],
    ),
];

/// The command line with every subcommand's examples attached.
pub fn command() -> clap::Command {
    let cmd = EXAMPLES
        .iter()
        .fold(Cli::command(), |cmd, (path, examples)| {
            let path: Vec<&str> = path.split(' ').collect();
            with_examples(cmd, &path, examples)
        });
    #[cfg(feature = "ballista")]
    let cmd = with_examples(cmd, &["cluster"], &["phm cluster --executors 2 --cores 1"]);
    cmd
}

fn with_examples(cmd: clap::Command, path: &[&str], examples: &[&str]) -> clap::Command {
    match path {
        [] => {
            let text = examples
                .iter()
                .fold(String::from("Examples:"), |t, e| format!("{t}\n  {e}"));
            cmd.after_help(text)
        }
        [first, rest @ ..] => cmd.mut_subcommand(*first, |c| with_examples(c, rest, examples)),
    }
}

/// Parses the process's arguments (exits with clap's message on a usage error).
pub fn parse() -> Cli {
    let matches = command().get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
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
    let progress = progress::Progress::new(cli.log_format, cli.verbose);
    match cli.command {
        Command::Synth(args) => synth::run(args),
        Command::Ingest(args) => ingest::run(args, progress),
        Command::Terminology(args) => terminology::run(args),
        Command::Valueset(args) => valueset::run(args),
        Command::Cohort(args) => cohort::run(args),
        Command::Demo(args) => demo::run(args, progress),
        Command::Reidentify(args) => reidentify::run(args),
        Command::Dq(args) => dq::run(args),
        Command::Report(args) => report::run(args),
        Command::Run(args) => run::run(args, progress),
        Command::Status(args) => status::run(args),
        Command::Store(args) => store::run(args),
        #[cfg(feature = "ballista")]
        Command::Cluster(args) => cluster::run(args),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every subcommand, with its path (`cohort run`).
    fn subcommands(cmd: &clap::Command, path: String, out: &mut Vec<(String, clap::Command)>) {
        for sub in cmd.get_subcommands() {
            let p = format!("{path} {}", sub.get_name()).trim().to_string();
            out.push((p.clone(), sub.clone()));
            subcommands(sub, p, out);
        }
    }

    fn all() -> Vec<(String, clap::Command)> {
        let mut cmd = command();
        cmd.build();
        let mut out = Vec::new();
        subcommands(&cmd, String::new(), &mut out);
        out.retain(|(p, _)| !p.split(' ').any(|w| w == "help"));
        out
    }

    /// Words as a shell splits them, for examples that quote a phrase.
    fn shell_words(line: &str) -> Vec<String> {
        let (mut words, mut word, mut quoted, mut any) = (Vec::new(), String::new(), false, false);
        for c in line.chars() {
            match c {
                '"' => {
                    quoted = !quoted;
                    any = true;
                }
                c if c.is_whitespace() && !quoted => {
                    if any {
                        words.push(std::mem::take(&mut word));
                        any = false;
                    }
                }
                c => {
                    word.push(c);
                    any = true;
                }
            }
        }
        if any {
            words.push(word);
        }
        words
    }

    #[test]
    fn every_subcommand_has_an_example_that_parses_to_it() {
        let mut missing = Vec::new();
        for (path, sub) in all() {
            let Some(after) = sub.get_after_help() else {
                missing.push(path);
                continue;
            };
            let text = after.to_string();
            let examples: Vec<&str> = text
                .lines()
                .filter_map(|l| l.trim().strip_prefix("phm "))
                .collect();
            assert!(!examples.is_empty(), "{path}: no example in {text:?}");
            for e in examples {
                let argv = std::iter::once("phm".to_string()).chain(shell_words(e));
                if let Err(err) = Cli::try_parse_from(argv) {
                    panic!("{path}: `phm {e}` does not parse: {err}");
                }
                assert!(
                    e.starts_with(&format!("{path} ")) || e == path,
                    "{path}: example `phm {e}` runs another subcommand"
                );
            }
        }
        assert!(
            missing.is_empty(),
            "subcommands without an example: {missing:?}"
        );
    }

    #[test]
    fn every_argument_is_described() {
        let mut cmd = command();
        cmd.build();
        let mut commands = vec![(String::from("phm"), cmd.clone())];
        commands.extend(all());
        let mut undescribed = Vec::new();
        for (path, sub) in commands {
            for arg in sub.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    undescribed.push(format!("{path}: {id}"));
                }
            }
        }
        assert!(
            undescribed.is_empty(),
            "arguments without a description: {undescribed:?}"
        );
    }
}
