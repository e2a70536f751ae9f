//! `phm report --run OUT --dq DQ [--out FILE] [--practice ODS]`: the network
//! report, one self-contained HTML page (`docs/report.md`).

use std::path::{Path, PathBuf};

use clap::Args;

use super::{Failure, emit, exit};
use crate::report::{self, Error, Inputs};

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A finished `phm cohort run` with a key: its --out folder.
    #[arg(long)]
    pub run: PathBuf,
    /// A `phm dq` output folder (holding dq.json).
    #[arg(long)]
    pub dq: PathBuf,
    /// The HTML file to write (default: RUN/report.html).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Scope the report to one practice (its code, e.g. A81001).
    #[arg(long)]
    pub practice: Option<String>,
}

fn failure(e: Error) -> Failure {
    let code = match &e {
        Error::Usage(_) => exit::USAGE,
        Error::Input { .. } => exit::DATA,
    };
    Failure::new(code, e)
}

pub fn run(args: ReportArgs) -> Result<u8, Failure> {
    let model = report::read(&Inputs {
        run: &args.run,
        dq: &args.dq,
        practice: args.practice.as_deref(),
    })
    .map_err(failure)?;
    let html = report::html::render(&model);
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| report::default_out(&args.run));
    write_page(&out, &html)?;
    emit(&format!("report: {}\n", out.display()))
}

/// Writes the page aside, then renames it into place: a reader never sees
/// half a page.
pub(super) fn write_page(out: &Path, html: &str) -> Result<(), Failure> {
    let unwritable = |e: std::io::Error| {
        Failure::new(
            exit::USAGE,
            format!(
                "{}: phm cannot write the report here: {e}; hint: --out takes a file path in a folder phm can write",
                out.display()
            ),
        )
    };
    let name = out
        .file_name()
        .ok_or_else(|| unwritable(std::io::Error::other("not a file name")))?;
    let tmp = out.with_file_name(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    std::fs::write(&tmp, html).map_err(unwritable)?;
    std::fs::rename(&tmp, out).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        unwritable(e)
    })
}
