//! The DataFusion engine: evaluates cohorts over the canonical store and writes
//! each cohort's outputs (`docs/cohort-language.md`, "Outputs").
//!
//! One run, whatever the number of cohorts:
//! 1. [`scan`] opens the store read-only (refusing an interrupted commit or a
//!    missing table), reads every practice's state and builds the *slice*: one
//!    pass over events and one over medications keeping only rows whose code is
//!    in some criterion's value set (and, for `any_code` criteria, every issue
//!    dated inside their windows), with the period each date stands for (none
//!    when the date is unusable), the folded unit and a row key that orders
//!    events. Each code row carries its *class* (the codes that belong to
//!    the same set of criteria), so each criterion reads only the rows of
//!    its own codes, however many cohorts share the run. Meanwhile
//!    [`population`] builds each person's registration at index.
//! 2. Per cohort (four at a time), [`population`] decides each person's status,
//!    [`criteria`] evaluates the criteria in definition order (anchors first)
//!    by aggregation per person (the chosen event is the greatest or least row
//!    key), [`rules`] decides and finds near misses.
//! 3. The evidence columns of every chosen event are read from the store by
//!    the practice and file position its row key carries ([`fetch`]), then
//!    [`outputs`] writes each cohort's files.
//!
//! Intermediate results ([`held`]) stay in memory within the run's budget
//! ([`RunOptions::work_memory`]); one that would exceed it is written to
//! `OUT/.work/` as Parquet instead (a slice part in one folder per class),
//! and the folder is removed at the end. Plans use built-in functions only.
//! Outputs of a cohort are written to a sibling folder and renamed over
//! `OUT/<ID>@<version>/`. `PHM_LOG=phm=debug` logs each stage's time;
//! with [`RunOptions::explain_plans`] as well, the plans of the slice and of
//! each criterion with their metrics.
//!
//! The plans run in a [`Session`]: on this machine, or on a Ballista cluster,
//! where nothing is held in memory: every intermediate result is a Parquet
//! file in the work folder, which the executors read.

mod criteria;
mod dates;
mod fetch;
mod held;
pub mod marker;
mod outputs;
mod population;
pub use outputs::NETWORK;
pub use population::age_expr;
pub(crate) mod read;
mod rules;
mod scan;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::prelude::SessionContext;
use futures::{StreamExt, TryStreamExt};

use super::model::IndexDate;
use super::{Cohort, Error, Result};
use crate::session::Session;

pub use read::read_outcomes;

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub index_date: NaiveDate,
    /// Outputs go to `out/<ID>@<version>/`.
    pub out: PathBuf,
    /// Evaluate one person key only (for `explain`): the filter is pushed into every scan.
    pub person: Option<String>,
    /// Bytes; sorts and aggregates spill beyond it. For the session the run
    /// builds when [`RunOptions::session`] is `None`; a local session
    /// passed in has its own.
    pub memory_limit: Option<usize>,
    /// Bytes of intermediate results (the slice, then per-person results)
    /// held in memory; past it they are written to `OUT/.work/` as Parquet.
    /// `None`: half the memory limit, or [`WORK_MEMORY`] without one.
    pub work_memory: Option<usize>,
    /// Recorded in `run.json`.
    pub release_id: String,
    /// Where the plans run; `None`: this machine, under `memory_limit`.
    pub session: Option<Session>,
    /// Log the plans of the slice and of each criterion with their metrics,
    /// at debug level (each such query runs twice): a tool for measuring.
    pub explain_plans: bool,
}

/// The default memory budget for intermediate results without a memory
/// limit (4 GiB: ten cohorts over 100 000 patients peak at about 2 GiB of
/// resident memory).
pub const WORK_MEMORY: usize = 4 << 30;

/// Cohorts evaluated (and written) side by side: each is a chain of small
/// queries that leaves cores idle between them.
const CONCURRENT_COHORTS: usize = 4;

/// What one cohort's run found, and where its outputs are.
#[derive(Debug, Clone, PartialEq)]
pub struct CohortRun {
    /// `ID@version`.
    pub key: String,
    pub dir: PathBuf,
    /// Persons known to the store (rows of `membership`).
    pub persons: u64,
    pub in_population: u64,
    pub included: u64,
    /// In the base population but neither included nor excluded: a verdict
    /// their decision hinges on is undetermined. Counted beside `included`,
    /// never in it.
    pub undetermined: u64,
    /// Undetermined persons per available practice (practices with none left out).
    pub undetermined_per_practice: std::collections::BTreeMap<String, u64>,
    /// Practice codes.
    pub available: Vec<String>,
    pub unavailable: Vec<String>,
    /// Included persons per practice; `None` when the practice is unavailable.
    pub per_practice: Vec<(String, Option<u64>)>,
    pub warnings: Vec<String>,
}

/// Evaluates `cohorts` on `opts.index_date` and writes their outputs, then
/// the run's completion marker ([`marker`]). Synchronous: builds its own runtime.
pub fn run(store: &Path, cohorts: &[Cohort], opts: &RunOptions) -> Result<Vec<CohortRun>> {
    marker::prepare(&opts.out)?;
    let runs = run_group(store, cohorts, opts)?;
    let dated: Vec<(NaiveDate, CohortRun)> =
        runs.iter().map(|r| (opts.index_date, r.clone())).collect();
    marker::finish(&opts.out, &dated)?;
    Ok(runs)
}

/// Runs groups of cohorts (one index date each) into one output folder, as
/// one run: one completion marker, written after the last group.
pub fn run_all(
    store: &Path,
    out: &Path,
    groups: &[(Vec<Cohort>, RunOptions)],
) -> Result<Vec<(NaiveDate, CohortRun)>> {
    run_all_then(store, out, groups, |_| Ok(()))
}

/// [`run_all`], with `then` run on the results before the marker is
/// written: what it writes (the published tiers) is part of the run.
pub fn run_all_then(
    store: &Path,
    out: &Path,
    groups: &[(Vec<Cohort>, RunOptions)],
    then: impl FnOnce(&[(NaiveDate, CohortRun)]) -> Result<()>,
) -> Result<Vec<(NaiveDate, CohortRun)>> {
    marker::prepare(out)?;
    let mut runs = Vec::new();
    for (cohorts, opts) in groups {
        for r in run_group(store, cohorts, opts)? {
            runs.push((opts.index_date, r));
        }
    }
    then(&runs)?;
    marker::finish(out, &runs)?;
    Ok(runs)
}

/// Evaluates one group of cohorts into `opts.out`, without the marker.
fn run_group(store: &Path, cohorts: &[Cohort], opts: &RunOptions) -> Result<Vec<CohortRun>> {
    for c in cohorts {
        if let IndexDate::Fixed(d) = c.def.index_date
            && d != opts.index_date
        {
            return Err(Error::Usage(format!(
                "{} has a fixed index date {d}, the run asked for {}; hint: run it on its own index date",
                c.def.key(),
                opts.index_date
            )));
        }
    }
    let session = match &opts.session {
        Some(s) => s.clone(),
        None => Session::local(opts.memory_limit).map_err(|e| Error::Store(e.to_string()))?,
    };
    session
        .block_on(run_async(store, cohorts, opts, &session))
        .map_err(|e| match e {
            Error::Engine(df) => match crate::session::out_of_memory(&df) {
                Some(detail) => Error::OutOfMemory {
                    limit: session.memory_limit(),
                    detail,
                },
                None => Error::Engine(df),
            },
            e => e,
        })
}

async fn run_async(
    store: &Path,
    cohorts: &[Cohort],
    opts: &RunOptions,
    session: &Session,
) -> Result<Vec<CohortRun>> {
    let view = scan::StoreView::open(store, cohorts)?;
    let ctx = session.ctx().clone();
    std::fs::create_dir_all(&opts.out).map_err(io(&opts.out))?;
    let work = Work::create(&opts.out, &work_name(cohorts, opts))?;
    let result = async {
        let t = std::time::Instant::now();
        let person = opts.person.as_deref();
        let budget = if session.distributed() {
            held::Budget::files_only()
        } else {
            held::Budget::new(
                opts.work_memory
                    .or(opts.memory_limit.or(session.memory_limit()).map(|l| l / 2))
                    .unwrap_or(WORK_MEMORY),
            )
        };
        let scratch = held::Scratch {
            dir: work.dir.clone(),
            budget: Arc::new(budget),
            explain: opts.explain_plans,
            distributed: session.distributed(),
        };
        // The slice and the registrations at index are independent.
        let (slice, bases) = tokio::try_join!(
            scan::write_slice(&ctx, &view, cohorts, opts.index_date, person, &scratch),
            population::Bases::prepare(&ctx, &view, cohorts, opts.index_date, person, &scratch),
        )?;
        tracing::debug!(elapsed = ?t.elapsed(), "slice and registrations built");
        let (ctx, view, slice, bases, scratch) = (&ctx, &view, &slice, &bases, &scratch);
        let eval = |i: usize| async move {
            let cs = scratch.child(&format!("c{i}"))?;
            evaluate(ctx, view, slice, bases, i, &cohorts[i], opts, &cs).await
        };
        let evaluated: Vec<Evaluated> = futures::stream::iter((0..cohorts.len()).map(eval))
            .buffered(CONCURRENT_COHORTS)
            .try_collect()
            .await?;
        let t = std::time::Instant::now();
        let all: Vec<criteria::CritResult> = evaluated
            .iter()
            .flat_map(|e| e.crit.iter().cloned())
            .collect();
        let evidence = outputs::evidence(ctx, view, slice, &all, scratch).await?;
        tracing::debug!(elapsed = ?t.elapsed(), "evidence");
        let evidence = &evidence;
        let write = |i: usize| {
            let e: &Evaluated = &evaluated[i];
            async move {
                let t = std::time::Instant::now();
                let cohort = &cohorts[i];
                let run =
                    outputs::write(ctx, cohort, opts, &e.access, &e.decided, &e.crit, evidence)
                        .await?;
                tracing::debug!(cohort = %cohort.def.key(), elapsed = ?t.elapsed(), "outputs");
                Ok::<_, Error>(run)
            }
        };
        futures::stream::iter((0..cohorts.len()).map(write))
            .buffered(CONCURRENT_COHORTS)
            .try_collect()
            .await
    }
    .await;
    drop(work);
    result
}

/// One cohort evaluated, before its outputs are written.
struct Evaluated {
    access: scan::Access,
    decided: held::Held,
    crit: Vec<criteria::CritResult>,
}

#[allow(clippy::too_many_arguments)]
async fn evaluate(
    ctx: &SessionContext,
    view: &scan::StoreView,
    slice: &scan::Slice,
    bases: &population::Bases,
    ci: usize,
    cohort: &Cohort,
    opts: &RunOptions,
    scratch: &held::Scratch,
) -> Result<Evaluated> {
    let def = &cohort.def;
    let index = opts.index_date;
    let access = view.access(def, index);
    for w in &access.warnings {
        tracing::warn!(cohort = %def.key(), "{w}");
    }
    let t = std::time::Instant::now();
    let pop = population::write(ctx, bases, def, index, &access.unavailable, scratch).await?;
    tracing::debug!(cohort = %def.key(), elapsed = ?t.elapsed(), "population");
    let t = std::time::Instant::now();
    let crit = criteria::evaluate(ctx, slice, ci, cohort, index, &pop, scratch).await?;
    tracing::debug!(cohort = %def.key(), elapsed = ?t.elapsed(), "criteria");
    let t = std::time::Instant::now();
    let decided = rules::write(ctx, def, &pop, &crit, scratch).await?;
    tracing::debug!(cohort = %def.key(), elapsed = ?t.elapsed(), "rules");
    Ok(Evaluated {
        access,
        decided,
        crit,
    })
}

/// The name of a run's work folder: a hash of what the run evaluates, so
/// the same run always uses the same folder (one a killed run left behind is
/// cleared) and the library reads no clock.
fn work_name(cohorts: &[Cohort], opts: &RunOptions) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for c in cohorts {
        h.update(c.def.key().as_bytes());
        h.update([0]);
    }
    h.update(opts.index_date.to_string().as_bytes());
    h.update([0]);
    if let Some(p) = &opts.person {
        h.update(p.as_bytes());
    }
    format!("run-{}", &hex::encode(h.finalize())[..16])
}

/// The run's scratch folder under `OUT/.work/`, removed when dropped.
pub(crate) struct Work {
    pub dir: PathBuf,
}

impl Work {
    fn create(out: &Path, name: &str) -> Result<Work> {
        let dir = out.join(".work").join(name);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(io(&dir))?;
        }
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        Ok(Work { dir })
    }
}

impl Drop for Work {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Some(parent) = self.dir.parent() {
            // Only succeeds when no other run is using it.
            let _ = std::fs::remove_dir(parent);
        }
    }
}

pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// With [`RunOptions::explain_plans`], logs the plan of `df` with its
/// metrics (the query runs twice): a tool for measuring, at debug level.
pub(crate) async fn explain(
    scratch: &held::Scratch,
    what: &str,
    df: &datafusion::prelude::DataFrame,
) -> Result<()> {
    if !scratch.explain {
        return Ok(());
    }
    let b = df.clone().explain(false, true)?.collect().await?;
    let text = datafusion::arrow::util::pretty::pretty_format_batches(&b)?;
    tracing::debug!("{what}:\n{text}");
    Ok(())
}

/// Writes `df` to the one Parquet work file `path`.
pub(crate) async fn write_work(df: datafusion::prelude::DataFrame, path: &Path) -> Result<()> {
    let options = work_file_options(&df);
    let written = df
        .write_parquet(
            &url(path),
            datafusion::dataframe::DataFrameWriteOptions::new().with_single_file_output(true),
            Some(options),
        )
        .await?;
    check_written(path, &written)
}

/// The session's Parquet settings, given to a write explicitly: a write
/// without them is sent to a cluster with DataFusion's defaults (zstd level
/// 3 where the session asks for lz4), because the plan carries options left
/// unset as the defaults rather than the session's.
pub(crate) fn work_file_options(
    df: &datafusion::prelude::DataFrame,
) -> datafusion::config::TableParquetOptions {
    datafusion::config::TableParquetOptions {
        global: df
            .task_ctx()
            .session_config()
            .options()
            .execution
            .parquet
            .clone(),
        ..Default::default()
    }
}

/// Checks that the Parquet files at `path` (a file, or a folder of them)
/// hold exactly the rows the write reported. A cluster retries a task that
/// was lost with its executor, and a retried write can leave the first
/// attempt's files beside its own: read, they would count rows twice. Such
/// a run fails here, before anything is decided from it.
pub(crate) fn check_written(
    path: &Path,
    written: &[datafusion::arrow::array::RecordBatch],
) -> Result<()> {
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::UInt64Type;
    let mut reported = 0u64;
    for b in written {
        if let Some(c) = b.column_by_name("count") {
            let c = c.as_primitive_opt::<UInt64Type>().ok_or_else(|| {
                Error::Store(format!("{}: a write reported no row count", path.display()))
            })?;
            reported += (0..c.len())
                .filter(|i| c.is_valid(*i))
                .map(|i| c.value(i))
                .sum::<u64>();
        }
    }
    let on_disk = parquet_rows(path)?;
    if on_disk != reported {
        return Err(Error::Engine(
            datafusion::error::DataFusionError::Execution(format!(
                "{}: {on_disk} rows were found where the engine reported writing {reported}: a task was run twice (an executor lost mid-task) and both attempts' files remain",
                path.display()
            )),
        ));
    }
    Ok(())
}

/// Rows in the footers of the Parquet files at `path`, a file or a folder
/// searched recursively.
fn parquet_rows(path: &Path) -> Result<u64> {
    if path.is_dir() {
        let mut n = 0;
        for entry in std::fs::read_dir(path).map_err(io(path))? {
            n += parquet_rows(&entry.map_err(io(path))?.path())?;
        }
        return Ok(n);
    }
    if path.extension().is_none_or(|e| e != "parquet") {
        return Ok(0);
    }
    let file = std::fs::File::open(path).map_err(io(path))?;
    let reader = datafusion::parquet::file::reader::SerializedFileReader::new(file)?;
    use datafusion::parquet::file::reader::FileReader;
    Ok(reader.metadata().file_metadata().num_rows().max(0) as u64)
}

/// Writes a batch phm built itself to the Parquet file `path` (zstd level 1).
pub(crate) fn write_batch(
    path: &Path,
    batch: &datafusion::arrow::array::RecordBatch,
) -> Result<()> {
    let mut w = parquet_writer(path, batch.schema())?;
    w.write(batch)?;
    w.close()?;
    Ok(())
}

/// A Parquet writer of phm's own files at `path` (zstd level 1).
pub(crate) fn parquet_writer(
    path: &Path,
    schema: datafusion::arrow::datatypes::SchemaRef,
) -> Result<datafusion::parquet::arrow::ArrowWriter<std::fs::File>> {
    use datafusion::parquet::basic::{Compression, ZstdLevel};
    use datafusion::parquet::file::properties::WriterProperties;
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(1).expect("level 1 is valid"),
        ))
        .build();
    let file = std::fs::File::create(path).map_err(io(path))?;
    Ok(datafusion::parquet::arrow::ArrowWriter::try_new(
        file,
        schema,
        Some(props),
    )?)
}

/// A path as DataFusion takes it.
pub(crate) fn url(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}
