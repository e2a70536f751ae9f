//! `phm terminology import|fixture`: compile a terminology release; write the
//! fixture RF2 release.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{Failure, exit};
use crate::terminology::{Error, fixture, import};

#[derive(Debug, Args)]
pub struct TerminologyArgs {
    #[command(subcommand)]
    pub command: TerminologyCommand,
}

#[derive(Debug, Subcommand)]
pub enum TerminologyCommand {
    /// Compile RF2 snapshot(s), dm+d and the CTV3 map into a release folder.
    Import(ImportArgs),
    /// Write the fixture RF2 release (illustrative hierarchy) from OpenCodelists CSVs.
    Fixture(FixtureArgs),
}

#[derive(Debug, Args)]
pub struct FixtureArgs {
    /// Folder of OpenCodelists CSVs (with an optional older-versions/ folder).
    #[arg(long, default_value = "fixtures/codelists")]
    pub codelists: PathBuf,
    /// Folder to (re)write.
    #[arg(long, default_value = "terminology/fixture")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// An unzipped RF2 release (searched recursively for Snapshot files); repeat to merge editions.
    #[arg(long, required = true)]
    pub rf2: Vec<PathBuf>,
    /// Folder holding the dm+d XML files (f_vtm2_*.xml, f_vmp2_*.xml, f_amp2_*.xml).
    #[arg(long)]
    pub dmd: Option<PathBuf>,
    /// The CTV3 to SNOMED CT map file.
    #[arg(long)]
    pub ctv3_map: Option<PathBuf>,
    /// The release folder to create; its name is the release id.
    #[arg(long)]
    pub out: PathBuf,
}

fn failure(e: Error) -> Failure {
    let code = match &e {
        Error::Io { .. } | Error::Store(_) => exit::INTERNAL,
        Error::Input { .. } => exit::USAGE,
        _ => exit::DATA,
    };
    Failure::new(code, e)
}

pub fn run(args: TerminologyArgs) -> Result<u8, Failure> {
    match args.command {
        TerminologyCommand::Import(a) => {
            let inputs = import::Inputs {
                rf2: a.rf2,
                dmd: a.dmd,
                ctv3_map: a.ctv3_map,
            };
            let manifest = import::import(&inputs, &a.out).map_err(failure)?;
            println!(
                "release {} written to {}",
                manifest.release_id,
                a.out.display()
            );
            for (table, rows) in &manifest.rows {
                println!("  {table:<16} {rows:>10} rows");
            }
            println!("read from {} input files:", manifest.inputs.len());
            for input in &manifest.inputs {
                println!(
                    "  {:<16} {:>10} rows  {}",
                    input.kind, input.rows, input.path
                );
            }
            Ok(exit::OK)
        }
        TerminologyCommand::Fixture(a) => {
            let summary = fixture::generate(&a.codelists, &a.out).map_err(failure)?;
            println!(
                "fixture written to {}: {} concepts, {} refsets, {} files; {} codelist codes fail the Verhoeff check (listed in invalid-codes.tsv)",
                a.out.display(),
                summary.concepts,
                summary.refsets,
                summary.files.len(),
                summary.invalid_codes
            );
            Ok(exit::OK)
        }
    }
}
