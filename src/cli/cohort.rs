//! `phm cohort validate|show`: check cohort definitions (with `--release`,
//! also expand their value sets) and print one in words for a clinician.
//!
//! Definitions: `docs/cohort-language.md`; reading and validation:
//! [`crate::cohort::file`].

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{Failure, emit, exit, open_release};
use crate::cohort::model::{
    Action, Anchor, Bound, Cmp, CountOp, Criterion, Definition, Expr, IndexDate, Kind, Table,
};
use crate::cohort::{self, file};
use crate::valueset::{Catalogue, Expansion};

#[derive(Debug, Args)]
pub struct CohortArgs {
    #[command(subcommand)]
    pub command: CohortCommand,
}

#[derive(Debug, Subcommand)]
pub enum CohortCommand {
    /// Check definitions: the ones named, or every version of every cohort.
    Validate(ValidateArgs),
    /// Print a definition in words: population, criteria, value sets, rules.
    Show(ShowArgs),
    /// Evaluate cohorts over a store: membership, explanations, near misses, attrition.
    Run(super::cohort_run::RunArgs),
    /// Why one person is or is not in a cohort, with the deciding evidence.
    Explain(super::cohort_run::ExplainArgs),
}

/// Where definitions and value sets live.
#[derive(Debug, Args)]
pub struct Folders {
    /// Cohort definitions folder (`<ID>/<version>.toml`).
    #[arg(long, default_value = "cohorts")]
    pub cohorts: PathBuf,
    /// Value set definitions folder (`<ID>/<version>.toml`).
    #[arg(long, default_value = "valuesets")]
    pub valuesets: PathBuf,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// ID (latest version) or ID@VERSION; none: every version of every cohort.
    pub keys: Vec<String>,
    #[command(flatten)]
    pub folders: Folders,
    /// Also expand every pinned value set against this release (a folder
    /// written by `phm terminology import`).
    #[arg(long)]
    pub release: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// ID (latest version) or ID@VERSION.
    pub key: String,
    /// Show each value set's expansion size and hash against this release.
    #[arg(long)]
    pub release: Option<PathBuf>,
    #[command(flatten)]
    pub folders: Folders,
}

/// `writeln!` into the output buffer (writing to a `String` cannot fail).
macro_rules! put {
    ($out:expr) => {
        writeln!($out).expect("writing to a String")
    };
    ($out:expr, $($arg:tt)*) => {
        writeln!($out, $($arg)*).expect("writing to a String")
    };
}

pub fn run(args: CohortArgs) -> Result<u8, Failure> {
    match args.command {
        CohortCommand::Validate(a) => validate(a),
        CohortCommand::Show(a) => show(a),
        CohortCommand::Run(a) => super::cohort_run::run(a),
        CohortCommand::Explain(a) => super::cohort_run::explain(a),
    }
}

/// Maps a cohort-stage error to the exit code a scheduler acts on: a
/// definition, value set or request is the user's to fix; a store that cannot
/// answer is a data error; an unreadable file or a failed query is not the
/// user's to fix.
pub(super) fn failure(e: cohort::Error) -> Failure {
    use cohort::Error;
    if let Error::Engine(df) = &e
        && let Some(detail) = crate::session::out_of_memory(df)
    {
        return failure(Error::OutOfMemory {
            limit: None,
            detail,
        });
    }
    let code = match &e {
        Error::Io { .. } | Error::ValueSet(crate::valueset::Error::Io { .. }) => exit::INTERNAL,
        Error::Definition { .. }
        | Error::ValueSet(_)
        | Error::Usage(_)
        | Error::OutOfMemory { .. } => exit::USAGE,
        Error::Store(_) => exit::DATA,
        Error::Engine(_) | Error::Arrow(_) | Error::Parquet(_) => exit::INTERNAL,
    };
    Failure::new(code, e)
}

pub(super) fn catalogue(folders: &Folders) -> Result<Catalogue, Failure> {
    if !folders.valuesets.is_dir() {
        return Err(Failure::new(
            exit::USAGE,
            format!(
                "{}: no such folder; hint: --valuesets takes the folder of value set definitions",
                folders.valuesets.display()
            ),
        ));
    }
    Catalogue::load(std::slice::from_ref(&folders.valuesets))
        .map_err(|e| failure(cohort::Error::ValueSet(e)))
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Checks every definition asked for, reporting each failure on stderr, and
/// fails (exit 2) when any did.
fn validate(args: ValidateArgs) -> Result<u8, Failure> {
    let catalogue = catalogue(&args.folders)?;
    let release = args.release.as_deref().map(open_release).transpose()?;
    let cohorts = &args.folders.cohorts;
    let keys: Vec<String> = if args.keys.is_empty() {
        let listed = file::list(cohorts).map_err(failure)?;
        listed
            .into_iter()
            .flat_map(|(id, versions)| versions.into_iter().map(move |v| format!("{id}@{v}")))
            .collect()
    } else {
        args.keys.clone()
    };
    if keys.is_empty() {
        return Err(Failure::new(
            exit::USAGE,
            format!(
                "{}: no cohort definitions; hint: definitions are <ID>/<version>.toml files",
                cohorts.display()
            ),
        ));
    }
    let mut out = String::new();
    let (mut failed, mut worst) = (0usize, exit::USAGE);
    for key in &keys {
        let checked = file::load(cohorts, key, &catalogue).and_then(|def| match &release {
            None => Ok((def, None)),
            Some(r) => cohort::bind(def, &catalogue, r).map(|c| (c.def, Some(r.id()))),
        });
        match checked {
            Ok((def, bound)) => {
                let mut line = format!(
                    "ok {} ({}, {}",
                    def.key(),
                    plural(def.criteria.len(), "criterion", "criteria"),
                    plural(def.rules.len(), "rule", "rules")
                );
                if let Some(release) = bound {
                    let sets = plural(def.valuesets.len(), "value set", "value sets");
                    line.push_str(&format!("; {sets} expanded against {release}"));
                }
                put!(out, "{line})");
            }
            Err(e) => {
                let f = failure(e);
                if f.code == exit::INTERNAL {
                    worst = exit::INTERNAL;
                }
                eprintln!("error: {}", f.message);
                failed += 1;
            }
        }
    }
    emit(&out)?;
    if failed > 0 {
        return Err(Failure::new(
            worst,
            format!(
                "{failed} of {} failed validation",
                plural(keys.len(), "cohort definition", "cohort definitions")
            ),
        ));
    }
    Ok(exit::OK)
}

fn show(args: ShowArgs) -> Result<u8, Failure> {
    let catalogue = catalogue(&args.folders)?;
    let def = file::load(&args.folders.cohorts, &args.key, &catalogue).map_err(failure)?;
    let (def, bound) = match args.release.as_deref() {
        None => (def, None),
        Some(dir) => {
            let release = open_release(dir)?;
            let c = cohort::bind(def, &catalogue, &release).map_err(failure)?;
            (c.def, Some((release.id().to_string(), c.expansions)))
        }
    };
    let titles: BTreeMap<&str, &str> = def
        .valuesets
        .iter()
        .filter_map(|(id, v)| {
            let set = catalogue.resolve(id, Some(v)).ok()?;
            Some((id.as_str(), set.title.as_str()))
        })
        .collect();
    emit(&describe(
        &def,
        &titles,
        bound.as_ref().map(|(r, e)| (r.as_str(), e)),
    ))
}

/// The definition in words. With expansions, each value set's size and hash.
fn describe(
    def: &Definition,
    titles: &BTreeMap<&str, &str>,
    bound: Option<(&str, &BTreeMap<String, Expansion>)>,
) -> String {
    let mut out = String::new();
    put!(out, "{}  {}", def.key(), def.title);
    put!(out, "status       {} (owner: {})", def.status, def.owner);
    if let Some(source) = &def.source {
        put!(out, "follows      {source}");
    }
    put!(out, "file         {}", def.path.display());
    put!(out);
    put!(out, "{}", def.description.trim());
    put!(out);
    match def.index_date {
        IndexDate::Parameter => put!(out, "Index date: given by the run (--index-date)"),
        IndexDate::Fixed(d) => put!(out, "Index date: {d}"),
    }
    put!(out);

    put!(out, "Population on the index date");
    let p = &def.population;
    put!(
        out,
        "  registered ({}) on the index date, not deregistered on it",
        p.registration_types.join(", ")
    );
    if let Some(period) = p.registered_for {
        put!(
            out,
            "  registration started at least {period} before the index date"
        );
    }
    match (p.age_min, p.age_max) {
        (Some(lo), Some(hi)) => put!(out, "  aged {lo} to {hi}"),
        (Some(lo), None) => put!(out, "  aged {lo} or over"),
        (None, Some(hi)) => put!(out, "  aged {hi} or under"),
        (None, None) => put!(out, "  any age"),
    }
    put!(out, "  alive, not a test patient");
    put!(out);

    put!(
        out,
        "Criteria (events after the index date never count unless a window says so)"
    );
    if def.criteria.is_empty() {
        put!(out, "  none");
    }
    for c in &def.criteria {
        match &c.description {
            Some(d) => put!(out, "  {}: {d}", c.name),
            None => put!(out, "  {}", c.name),
        }
        put!(out, "    {}", criterion_text(c));
    }
    put!(out);

    match bound {
        Some((release, _)) => put!(out, "Value sets (expanded against release {release})"),
        None => put!(
            out,
            "Value sets (pinned versions; give --release for their sizes)"
        ),
    }
    if def.valuesets.is_empty() {
        put!(out, "  none");
    }
    let width = def.valuesets.keys().map(String::len).max().unwrap_or(0);
    for (id, version) in &def.valuesets {
        let title = titles.get(id.as_str()).copied().unwrap_or("");
        match bound.and_then(|(_, e)| e.get(id)) {
            Some(e) => put!(
                out,
                "  {id:<width$}  {version:<10}  {:>12}  sha256 {}  {title}",
                plural(e.rows.len(), "code", "codes"),
                &e.hash[..12.min(e.hash.len())]
            ),
            None => put!(out, "  {id:<width$}  {version:<10}  {title}"),
        }
    }
    put!(out);

    put!(
        out,
        "Rules (in order: the first whose condition holds decides)"
    );
    for (i, r) in def.rules.iter().enumerate() {
        put!(
            out,
            "  {}. {}: if {}, {}",
            i + 1,
            r.name,
            expr_text(&r.when, 0),
            action_text(r.then)
        );
        if let Some(d) = &r.description {
            put!(out, "     {d}");
        }
        if !r.near_miss {
            put!(
                out,
                "     (failing only this rule is not reported as a near miss)"
            );
        }
    }
    put!(out, "  Otherwise: {}", action_text(def.otherwise));
    out
}

fn action_text(a: Action) -> &'static str {
    match a {
        Action::Select => "select",
        Action::Reject => "reject",
    }
}

/// A condition with only the parentheses precedence needs.
fn expr_text(e: &Expr, min: u8) -> String {
    let (prec, text) = match e {
        Expr::Criterion(c) => (4, c.clone()),
        Expr::Not(x) => (3, format!("not {}", expr_text(x, 3))),
        Expr::And(es) => (
            2,
            es.iter()
                .map(|x| expr_text(x, 3))
                .collect::<Vec<_>>()
                .join(" and "),
        ),
        Expr::Or(es) => (
            1,
            es.iter()
                .map(|x| expr_text(x, 2))
                .collect::<Vec<_>>()
                .join(" or "),
        ),
    };
    if prec < min {
        format!("({text})")
    } else {
        text
    }
}

fn criterion_text(c: &Criterion) -> String {
    let sets = c.valuesets.join(" or ");
    let (one, many) = match (c.table, c.any_code) {
        (Table::Medications, true) => (
            "issue of any medicine".to_string(),
            "issues of any medicine".to_string(),
        ),
        (Table::Medications, false) => (
            format!("issue of a medicine in {sets}"),
            format!("issues of medicines in {sets}"),
        ),
        _ => (
            format!("event coded in {sets}"),
            format!("events coded in {sets}"),
        ),
    };
    let value = c.value.map(|v| {
        let op = match v.op {
            Cmp::Lt => "below",
            Cmp::Le => "at most",
            Cmp::Gt => "above",
            Cmp::Ge => "at least",
        };
        format!("{op} {} {}", v.threshold, v.unit)
    });
    let filter = value
        .as_ref()
        .map(|v| format!(" with a value {v}"))
        .unwrap_or_default();
    let mut window = String::new();
    if let Some(lower) = &c.window.lower {
        let word = if lower.inclusive {
            "on or after"
        } else {
            "after"
        };
        window.push_str(&format!("{word} {} and ", bound_words(lower)));
    }
    let word = if c.window.upper.inclusive {
        "on or before"
    } else {
        "before"
    };
    window.push_str(&format!("{word} {}", bound_words(&c.window.upper)));
    let value = value.unwrap_or_default();
    match c.kind {
        Kind::Exists => format!("at least one {one}{filter}, dated {window}"),
        Kind::Count {
            op,
            n,
            distinct_codes,
        } => {
            let op = match op {
                CountOp::AtLeast => "at least",
                CountOp::AtMost => "at most",
                CountOp::Exactly => "exactly",
            };
            if distinct_codes {
                format!("{op} {n} distinct codes among {many}{filter}, dated {window}")
            } else if n == 1 {
                format!("{op} 1 {one}{filter}, dated {window}")
            } else {
                format!("{op} {n} {many}{filter}, dated {window}")
            }
        }
        Kind::Apart { days } => {
            format!("two {many}{filter}, dated {window} and at least {days} days apart")
        }
        Kind::First | Kind::Latest => {
            let which = if c.kind == Kind::First {
                "first"
            } else {
                "latest"
            };
            let test = if c.value.is_some() {
                format!("; its value is {value}")
            } else {
                String::new()
            };
            format!("the {which} {one} dated {window}{test}")
        }
        Kind::Min | Kind::Max => {
            let which = if c.kind == Kind::Min {
                "lowest"
            } else {
                "highest"
            };
            format!("the {which} value of {many} dated {window} is {value}")
        }
    }
}

/// `the index date − 12 months`, `the date of dm_latest + 1 day`.
fn bound_words(b: &Bound) -> String {
    let mut out = match &b.anchor {
        Anchor::Index => "the index date".to_string(),
        Anchor::Criterion(c) => format!("the date of {c}"),
    };
    for (amount, unit) in [(b.months, "month"), (b.days, "day")] {
        if amount != 0 {
            let sign = if amount < 0 { '−' } else { '+' };
            let n = amount.unsigned_abs();
            let s = if n == 1 { "" } else { "s" };
            out.push_str(&format!(" {sign} {n} {unit}{s}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    /// A query that ran out of memory is one line with a hint, a usage
    /// error; other engine failures stay internal.
    #[test]
    fn resources_exhausted_is_one_line_with_a_hint() {
        use datafusion::error::DataFusionError as D;
        let exhausted = || {
            D::ResourcesExhausted(
                "Failed to allocate additional 8.0 MB for SortExec\nwith 1.0 MB already allocated"
                    .into(),
            )
        };
        let cases: Vec<(D, u8, &str)> = vec![
            (exhausted(), exit::USAGE, "raise --memory-limit"),
            (
                D::Context("sorting".into(), Box::new(exhausted())),
                exit::USAGE,
                "(Failed to allocate additional 8.0 MB for SortExec); nothing was published; hint",
            ),
            (D::Internal("bug".into()), exit::INTERNAL, "query failed"),
        ];
        for (e, code, says) in cases {
            let f = failure(cohort::Error::Engine(e));
            assert_eq!(f.code, code, "{}", f.message);
            assert!(f.message.contains(says), "{}", f.message);
            if code == exit::USAGE {
                assert!(!f.message.contains('\n'), "{}", f.message);
            }
        }
    }

    use super::*;

    #[test]
    fn conditions_in_words() {
        let c = |s: &str| Expr::Criterion(s.into());
        let not = |e| Expr::Not(Box::new(e));
        let cases = [
            (c("a"), "a"),
            (not(c("a")), "not a"),
            (
                Expr::And(vec![c("a"), Expr::Or(vec![c("b"), c("c")])]),
                "a and (b or c)",
            ),
            (
                Expr::Or(vec![Expr::And(vec![c("a"), c("b")]), c("c")]),
                "a and b or c",
            ),
            (not(Expr::And(vec![c("a"), c("b")])), "not (a and b)"),
            (Expr::And(vec![not(c("a")), c("b")]), "not a and b"),
        ];
        for (e, want) in cases {
            assert_eq!(expr_text(&e, 0), want);
        }
    }
}
