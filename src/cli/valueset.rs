//! `phm valueset list|expand|diff`: list value set definitions, expand one
//! against a compiled release (table or CSV, with its hash), compare two
//! versions.

use std::fmt::Write as _;
use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{Failure, emit, exit, open_release};
use crate::valueset::{self, Catalogue, Error, expand};

#[derive(Debug, Args)]
pub struct ValuesetArgs {
    #[command(subcommand)]
    pub command: ValuesetCommand,
}

#[derive(Debug, Subcommand)]
pub enum ValuesetCommand {
    /// List value sets: id, version, status, title.
    List(ListArgs),
    /// Expand ID[@VERSION] (latest version when none is given) against a release.
    Expand(ExpandArgs),
    /// Codes added and removed from A to B (each ID@VERSION).
    Diff(DiffArgs),
}

#[derive(Debug, Args)]
pub struct Dirs {
    /// Folder of value set definitions (<ID>/<version>.toml); repeat to combine folders.
    #[arg(long, default_value = "valuesets")]
    pub dir: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub dirs: Dirs,
}

#[derive(Debug, Args)]
pub struct ExpandArgs {
    /// ID or ID@VERSION.
    pub value_set: String,
    /// A release folder written by `phm terminology import`.
    #[arg(long)]
    pub release: PathBuf,
    #[command(flatten)]
    pub dirs: Dirs,
    /// Write the rows as CSV here instead of printing a table.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// ID@VERSION (the older).
    pub a: String,
    /// ID@VERSION (the newer); leave out to compare one version against two releases.
    pub b: Option<String>,
    /// Compare expansions against this release (give two, and one value set, to
    /// compare that version across releases); without it, the listed codes.
    #[arg(long)]
    pub release: Vec<PathBuf>,
    #[command(flatten)]
    pub dirs: Dirs,
}

/// `writeln!` into the output buffer (writing to a `String` cannot fail).
macro_rules! put {
    ($out:expr, $($arg:tt)*) => {
        writeln!($out, $($arg)*).expect("writing to a String")
    };
}

fn failure(e: Error) -> Failure {
    let code = match &e {
        Error::Io { .. } => exit::INTERNAL,
        Error::Release(crate::terminology::Error::Io { .. }) => exit::INTERNAL,
        Error::Release(_) => exit::DATA,
        _ => exit::USAGE,
    };
    Failure::new(code, e)
}

pub fn run(args: ValuesetArgs) -> Result<u8, Failure> {
    let mut out = String::new();
    match args.command {
        ValuesetCommand::List(a) => {
            let catalogue = Catalogue::load(&a.dirs.dir).map_err(failure)?;
            put!(out, "{:<24} {:<12} {:<9} title", "id", "version", "status");
            for set in catalogue.iter() {
                put!(
                    out,
                    "{:<24} {:<12} {:<9} {}",
                    set.id,
                    set.version,
                    set.status,
                    set.title
                );
            }
            emit(&out)
        }
        ValuesetCommand::Expand(a) => {
            let catalogue = Catalogue::load(&a.dirs.dir).map_err(failure)?;
            let set = catalogue.get(&a.value_set).map_err(failure)?;
            let release = open_release(&a.release)?;
            let expansion = expand(&catalogue, set, &release).map_err(failure)?;
            let summary = format!(
                "{}@{} against release {}: {} codes, sha256 {}",
                expansion.id,
                expansion.version,
                expansion.release_id,
                expansion.rows.len(),
                expansion.hash
            );
            match &a.out {
                Some(file) => {
                    std::fs::write(file, expansion.to_csv())
                        .map_err(|e| failure(valueset::io(file)(e)))?;
                    put!(out, "{summary}; written to {}", file.display());
                }
                None => {
                    put!(
                        out,
                        "{:<18} {:<6} {:<40} term",
                        "code",
                        "active",
                        "how_included"
                    );
                    for r in &expansion.rows {
                        put!(
                            out,
                            "{:<18} {:<6} {:<40} {}",
                            r.code,
                            r.active,
                            r.how_included,
                            r.term.replace('\n', " ")
                        );
                    }
                    put!(out, "{summary}");
                }
            }
            emit(&out)
        }
        ValuesetCommand::Diff(a) => {
            let catalogue = Catalogue::load(&a.dirs.dir).map_err(failure)?;
            let x = catalogue.get(&a.a).map_err(failure)?;
            let (title, against, left, right) = match (&a.b, &a.release[..]) {
                (Some(b), releases) if releases.len() <= 1 => {
                    let y = catalogue.get(b).map_err(failure)?;
                    let title = format!("{} -> {}", x.key(), y.key());
                    match releases.first() {
                        Some(dir) => {
                            let release = open_release(dir)?;
                            let left = expand(&catalogue, x, &release).map_err(failure)?;
                            let right = expand(&catalogue, y, &release).map_err(failure)?;
                            (
                                title,
                                format!("release {}", release.id()),
                                left.terms(),
                                right.terms(),
                            )
                        }
                        None => (
                            title,
                            "listed codes".to_string(),
                            valueset::expand::listed(x).map_err(failure)?,
                            valueset::expand::listed(y).map_err(failure)?,
                        ),
                    }
                }
                (None, [old, new]) => {
                    let (old, new) = (open_release(old)?, open_release(new)?);
                    let left = expand(&catalogue, x, &old).map_err(failure)?;
                    let right = expand(&catalogue, x, &new).map_err(failure)?;
                    (
                        x.key(),
                        format!("release {} -> {}", old.id(), new.id()),
                        left.terms(),
                        right.terms(),
                    )
                }
                _ => {
                    return Err(Failure::new(
                        exit::USAGE,
                        "give two versions (ID@V ID@W, with at most one --release) or one version and two --release folders",
                    ));
                }
            };
            let d = valueset::diff(&left, &right);
            put!(
                out,
                "{title} ({against}): {} added, {} removed",
                d.added.len(),
                d.removed.len()
            );
            for (code, term) in &d.added {
                put!(out, "+\t{code}\t{}", term.replace('\n', " "));
            }
            for (code, term) in &d.removed {
                put!(out, "-\t{code}\t{}", term.replace('\n', " "));
            }
            emit(&out)
        }
    }
}
