//! Intermediate results of a run: held in memory while the run's memory
//! budget allows, written to Parquet work files past it. A result that
//! overruns the budget is dropped and its query run again into a file: the
//! cost of a second pass falls only on runs too large for memory.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use datafusion::datasource::MemTable;
use datafusion::prelude::*;
use futures::StreamExt;

use super::{io, url};
use crate::cohort::{Error, Result};

/// How many bytes of intermediate results a run may hold in memory, shared by
/// all of them.
pub struct Budget {
    limit: usize,
    used: Arc<AtomicUsize>,
    /// Nothing is held in memory: every result goes to a file (a run on a
    /// cluster, whose plans cannot read this process's memory).
    files_only: bool,
}

impl Budget {
    pub fn new(limit: usize) -> Budget {
        Budget {
            limit,
            used: Arc::new(AtomicUsize::new(0)),
            files_only: false,
        }
    }

    /// A budget that holds nothing in memory.
    pub fn files_only() -> Budget {
        Budget {
            limit: 0,
            used: Arc::new(AtomicUsize::new(0)),
            files_only: true,
        }
    }
}

/// Runs `df`, keeping its batches in memory while the budget's total stays
/// within its limit: a table of them, or `None` (keeping nothing) past it.
pub async fn collect_within(df: DataFrame, budget: &Budget) -> Result<Option<MemTable>> {
    if budget.files_only {
        return Ok(None);
    }
    let over = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    let logical = Arc::new(df.schema().as_arrow().clone());
    let streams = df.execute_stream_partitioned().await?;
    // The batches' schema (the plan's output), which can differ from the
    // logical schema in nullability.
    let schema = match streams.first() {
        Some(s) => s.schema(),
        None => logical,
    };
    for mut stream in streams {
        let (over, used, limit) = (over.clone(), budget.used.clone(), budget.limit);
        tasks.push(tokio::spawn(async move {
            let mut kept = Vec::new();
            let mut mine = 0usize;
            while let Some(batch) = stream.next().await {
                if over.load(Ordering::Relaxed) {
                    break;
                }
                let batch = batch?;
                let size = batch.get_array_memory_size();
                mine += size;
                if used.fetch_add(size, Ordering::Relaxed) + size > limit {
                    over.store(true, Ordering::Relaxed);
                    break;
                }
                kept.push(batch);
            }
            Ok::<_, datafusion::error::DataFusionError>((kept, mine))
        }));
    }
    let mut partitions = Vec::with_capacity(tasks.len());
    let mut taken = 0usize;
    let mut failed = None;
    for t in tasks {
        match t.await {
            Ok(Ok((kept, mine))) => {
                taken += mine;
                partitions.push(kept);
            }
            Ok(Err(e)) => failed = Some(Error::from(e)),
            Err(e) => failed = Some(Error::Store(format!("a query task failed: {e}"))),
        }
    }
    if over.load(Ordering::Relaxed) {
        budget.used.fetch_sub(taken, Ordering::Relaxed);
    }
    if let Some(e) = failed {
        return Err(e);
    }
    if over.load(Ordering::Relaxed) {
        return Ok(None);
    }
    if partitions.is_empty() {
        partitions.push(Vec::new());
    }
    Ok(Some(MemTable::try_new(schema, partitions)?))
}

/// One intermediate result.
#[derive(Clone)]
pub enum Held {
    Memory(Arc<MemTable>),
    File(PathBuf),
}

// Not derived: a derived `Debug` would print the rows, and they hold person
// keys, which must never reach a log.
impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Held::Memory(_) => f.write_str("Held::Memory"),
            Held::File(p) => write!(f, "Held::File({})", p.display()),
        }
    }
}

impl Held {
    pub async fn read(&self, ctx: &SessionContext) -> Result<DataFrame> {
        Ok(match self {
            Held::Memory(t) => ctx.read_table(t.clone())?,
            Held::File(p) => {
                ctx.read_parquet(url(p), ParquetReadOptions::default())
                    .await?
            }
        })
    }
}

/// Where a run (or one cohort of it) keeps its intermediate results: in
/// memory within the run's budget, else as Parquet files in `dir`.
#[derive(Clone)]
pub struct Scratch {
    pub dir: PathBuf,
    pub budget: Arc<Budget>,
    /// Log each plan with its metrics ([`super::explain`]).
    pub explain: bool,
    /// The plans run on a cluster: nothing is held in memory, and no plan
    /// may use what does not serialise (the Parquet reader's row numbers).
    pub distributed: bool,
}

impl Scratch {
    /// A scratch for one part of the run, in its own folder.
    pub fn child(&self, name: &str) -> Result<Scratch> {
        let dir = self.dir.join(name);
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        Ok(Scratch {
            dir,
            budget: self.budget.clone(),
            explain: self.explain,
            distributed: self.distributed,
        })
    }

    /// Runs `df` and holds its result, as `<name>.parquet` when it goes to disk.
    pub async fn hold(&self, df: DataFrame, name: &str) -> Result<Held> {
        if let Some(table) = collect_within(df.clone(), &self.budget).await? {
            return Ok(Held::Memory(Arc::new(table)));
        }
        let path = self.dir.join(format!("{name}.parquet"));
        super::write_work(df, &path).await?;
        Ok(Held::File(path))
    }
}
