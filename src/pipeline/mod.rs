//! Pipeline files (`pipelines/*.toml`): what a scheduled `phm run` does, and
//! the run id that names its result.
//!
//! A pipeline names its landing zone, store, terminology release, pinned
//! cohorts, index-date policy, disclosure control, pseudonym key and purpose,
//! output root, retention and the practices expected to deliver. Relative
//! paths are relative to the pipeline file's folder, so a scheduler may run
//! it from anywhere. Unknown keys are refused, with the line.
//!
//! The run id is a hash of everything that decides a run's outputs: the
//! deliveries in the landing zone (their manifests' SHA-256), the cohort
//! definitions and value sets (file hashes), the release id, the index date,
//! phm's version and the settings. The same inputs give the same run id, so a
//! rerun is found published and does nothing.

pub mod publish;
pub mod run_id;
pub mod status;

use std::path::{Path, PathBuf};

use chrono::{Datelike, NaiveDate};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ingest::engine::MemoryLimit;
use crate::output::disclosure::Policy;
use crate::session::EngineSpec;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}; hint: pass the path of a pipeline file (pipelines/*.toml)")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// A pipeline file, as written.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PipelineFile {
    /// Landing zone: one folder per practice ODS code, one sub-folder per delivery.
    pub landing: PathBuf,
    /// The canonical store the deliveries are ingested into.
    pub store: PathBuf,
    /// A compiled terminology release (`phm terminology import`).
    pub release: PathBuf,
    /// Where runs are published: `runs/<run id>/`, and `latest` naming the newest.
    pub output: PathBuf,
    /// Cohorts to run, each pinned to a version: `ID@VERSION`.
    pub cohorts: Vec<String>,
    /// Cohort definitions folder (`<ID>/<version>.toml`).
    #[serde(default = "default_cohorts_dir")]
    pub cohort_definitions: PathBuf,
    /// Value set definitions folder (`<ID>/<version>.toml`).
    #[serde(default = "default_valuesets_dir")]
    pub valuesets: PathBuf,
    /// The cohorts' index date: a date (`2026-03-31`) or a rule evaluated
    /// against the run's as-of date (`last-day-of-previous-month`,
    /// `as-of`).
    pub index_date: String,
    /// ODS codes of the practices expected to deliver. One with no delivery
    /// makes the run partial, never silently smaller.
    #[serde(default)]
    pub expected_practices: Vec<String>,
    /// Published runs to keep (the one `latest` names is never removed).
    #[serde(default = "default_keep_runs")]
    pub keep_runs: usize,
    /// Where the cohort and data-quality plans run: `local` (this machine)
    /// or `ballista://HOST:PORT` (a Ballista scheduler; phm built with the
    /// `ballista` feature). Not part of the run id: both give the same bytes.
    #[serde(default = "default_engine")]
    pub engine: String,
    /// Memory ingest and the cohort engine may use (e.g. `2GiB`).
    #[serde(default = "default_memory_limit")]
    pub memory_limit: String,
    pub pseudonymisation: Pseudonymisation,
    /// Small-number suppression and rounding of shared counts.
    pub disclosure: Disclosure,
    /// Only for the bundled demo: synthesise the landing zone, build the
    /// fixture release and generate a key when they are missing.
    #[serde(default)]
    pub demo: Option<Demo>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Pseudonymisation {
    /// File holding the pseudonym key (64 hex digits), readable by its owner only.
    pub key_file: PathBuf,
    /// Why the outputs are made; recorded in the audit log and the manifest.
    pub purpose: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Disclosure {
    /// Counts from 1 to this (inclusive) are suppressed.
    pub threshold: u64,
    /// Shown counts are rounded to the nearest multiple of this (1: exact).
    pub base: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Demo {
    pub practices: usize,
    pub patients: usize,
    pub seed: u64,
    /// The synthetic extracts' date.
    #[schemars(with = "String")]
    pub extracted: NaiveDate,
    /// The fixture terminology sources the release is built from.
    #[serde(default = "default_fixture")]
    pub terminology_fixture: PathBuf,
}

fn default_fixture() -> PathBuf {
    PathBuf::from("../terminology/fixture")
}

fn default_cohorts_dir() -> PathBuf {
    PathBuf::from("../cohorts")
}
fn default_valuesets_dir() -> PathBuf {
    PathBuf::from("../valuesets")
}
fn default_keep_runs() -> usize {
    7
}
fn default_engine() -> String {
    "local".to_string()
}
fn default_memory_limit() -> String {
    "2GiB".to_string()
}

/// How the index date is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum IndexDatePolicy {
    Fixed(NaiveDate),
    /// The last day of the month before the as-of date's.
    LastDayOfPreviousMonth,
    /// The as-of date itself.
    AsOf,
}

impl IndexDatePolicy {
    pub fn parse(text: &str) -> Result<IndexDatePolicy, String> {
        match text {
            "last-day-of-previous-month" => Ok(IndexDatePolicy::LastDayOfPreviousMonth),
            "as-of" => Ok(IndexDatePolicy::AsOf),
            _ => NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .map(IndexDatePolicy::Fixed)
                .map_err(|_| {
                    format!(
                        "index_date {text:?} is neither a date (YYYY-MM-DD) nor a rule; hint: one of a date, \"last-day-of-previous-month\", \"as-of\""
                    )
                }),
        }
    }

    /// The index date of a run as of `as_of`.
    pub fn index_date(self, as_of: NaiveDate) -> NaiveDate {
        match self {
            IndexDatePolicy::Fixed(d) => d,
            IndexDatePolicy::AsOf => as_of,
            IndexDatePolicy::LastDayOfPreviousMonth => as_of
                .with_day(1)
                .and_then(|first| first.pred_opt())
                .expect("a date after the first representable month"),
        }
    }
}

/// A pipeline read, checked and with its paths resolved.
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// The file it was read from.
    pub path: PathBuf,
    pub file: PipelineFile,
    pub index_date: IndexDatePolicy,
    pub memory_limit: MemoryLimit,
    pub disclosure: Policy,
    /// Where the cohort and data-quality plans run.
    pub engine: EngineSpec,
}

impl Pipeline {
    /// Reads and checks the pipeline at `path`. Paths in it are made
    /// relative to its folder.
    pub fn read(path: &Path) -> Result<Pipeline, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Pipeline::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Pipeline, Error> {
        let invalid = |message: String| Error::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let mut file: PipelineFile = toml::from_str(text).map_err(|e| {
            let at = e
                .span()
                .map(|s| {
                    let line = text[..s.start.min(text.len())].matches('\n').count() + 1;
                    format!("line {line}: ")
                })
                .unwrap_or_default();
            invalid(format!("{at}{}", e.message()))
        })?;
        if file.cohorts.is_empty() {
            return Err(invalid(
                "cohorts is empty; hint: list the cohorts to run, each as ID@VERSION".into(),
            ));
        }
        for key in &file.cohorts {
            let pinned = key
                .split_once('@')
                .is_some_and(|(id, v)| !id.is_empty() && !v.is_empty());
            if !pinned {
                return Err(invalid(format!(
                    "cohort {key:?} is not pinned to a version; hint: write it as ID@VERSION (phm cohort validate lists them)"
                )));
            }
        }
        let engine: EngineSpec = file
            .engine
            .parse()
            .map_err(|e: String| invalid(format!("engine: {e}")))?;
        if file.keep_runs == 0 {
            return Err(invalid(
                "keep_runs is 0; hint: keep at least the run just published (1 or more)".into(),
            ));
        }
        for ods in &file.expected_practices {
            if ods.is_empty() || !ods.chars().all(|c| c.is_ascii_alphanumeric()) {
                return Err(invalid(format!(
                    "expected practice {ods:?} is not an ODS code; hint: letters and digits, e.g. M84007"
                )));
            }
        }
        if file.pseudonymisation.purpose.trim().is_empty() {
            return Err(invalid(
                "pseudonymisation.purpose is empty; hint: say why the outputs are made (it is audited)"
                    .into(),
            ));
        }
        let disclosure = Policy {
            threshold: file.disclosure.threshold,
            base: file.disclosure.base,
        };
        if disclosure.base == 0 {
            return Err(invalid(
                "disclosure.base is 0; hint: 1 shows exact counts, 5 rounds to fives".into(),
            ));
        }
        let index_date = IndexDatePolicy::parse(&file.index_date).map_err(invalid)?;
        let memory_limit: MemoryLimit = file
            .memory_limit
            .parse()
            .map_err(|e| invalid(format!("memory_limit: {e}")))?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        for p in [
            &mut file.landing,
            &mut file.store,
            &mut file.release,
            &mut file.output,
            &mut file.cohort_definitions,
            &mut file.valuesets,
            &mut file.pseudonymisation.key_file,
        ] {
            if p.is_relative() {
                *p = joined(base, p);
            }
        }
        if let Some(demo) = &mut file.demo
            && demo.terminology_fixture.is_relative()
        {
            demo.terminology_fixture = joined(base, &demo.terminology_fixture);
        }
        Ok(Pipeline {
            path: path.to_path_buf(),
            file,
            index_date,
            memory_limit,
            engine,
            disclosure,
        })
    }
}

/// The JSON Schema of a pipeline file, as committed in `docs/pipeline.schema.json`.
pub fn schema_json() -> String {
    let schema = schemars::schema_for!(PipelineFile);
    let mut text = serde_json::to_string_pretty(&schema).expect("a schema serialises");
    text.push('\n');
    text
}

/// `rel` under `base`, with `dir/..` pairs taken out, so that messages name
/// `demo/store` rather than `pipelines/../demo/store`. Lexical only: the
/// paths need not exist yet.
fn joined(base: &Path, rel: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in base.join(rel).components() {
        match c {
            Component::CurDir if !out.as_os_str().is_empty() => {}
            Component::ParentDir
                if matches!(out.components().next_back(), Some(Component::Normal(_))) =>
            {
                out.pop();
            }
            c => out.push(c),
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_are_joined_without_dot_dot() {
        let j = |b: &str, r: &str| joined(Path::new(b), Path::new(r));
        assert_eq!(j("pipelines", "../demo/store"), PathBuf::from("demo/store"));
        assert_eq!(j(".", "store"), PathBuf::from("./store"));
        assert_eq!(
            j("/srv/phm/pipelines", "../store"),
            PathBuf::from("/srv/phm/store")
        );
        assert_eq!(j("pipelines", "../../x"), PathBuf::from("../x"));
        assert_eq!(j("pipelines", ".."), PathBuf::from("."));
    }

    #[test]
    fn index_date_rules() {
        let d = |s| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let cases = [
            ("2026-03-31", "2026-12-04", "2026-03-31"),
            ("last-day-of-previous-month", "2026-12-04", "2026-11-30"),
            ("last-day-of-previous-month", "2026-03-01", "2026-02-28"),
            ("last-day-of-previous-month", "2028-03-15", "2028-02-29"),
            ("last-day-of-previous-month", "2027-01-31", "2026-12-31"),
            ("as-of", "2026-12-04", "2026-12-04"),
        ];
        for (rule, as_of, want) in cases {
            let p = IndexDatePolicy::parse(rule).unwrap();
            assert_eq!(p.index_date(d(as_of)), d(want), "{rule} as of {as_of}");
        }
        assert!(IndexDatePolicy::parse("yesterday").is_err());
        assert!(IndexDatePolicy::parse("2026-02-30").is_err());
    }
}
