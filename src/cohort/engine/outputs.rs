//! A cohort's output files (`docs/cohort-language.md`, "Outputs"), each as
//! Parquet and CSV in a deterministic row order, written to a sibling folder
//! and renamed over `OUT/<ID>@<version>/`.
//!
//! The per-person files (membership, explanations, near misses) stream from
//! their sorted plans into the Parquet and CSV writers as the rows arrive, in
//! chunks of a fixed number of rows ([`OutputFiles`]): memory stays within
//! the engine's pool and a row group whatever the population, and the bytes
//! written depend on the rows alone, not on how the engine (here or on a
//! cluster) batched them. Only the small count tables are collected.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray,
};
use datafusion::arrow::compute::{BatchCoalescer, concat_batches};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::functions_aggregate::expr_fn::count;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::prelude::*;
use datafusion::scalar::ScalarValue;
use futures::StreamExt;

use super::criteria::CritResult;
use super::fetch;
use super::held::{Held, Scratch};
use super::scan::{Access, StoreView, rkey_locator};
use super::{CohortRun, RunOptions, io};
use crate::cohort::model::Action;
use crate::cohort::model::Table;
use crate::cohort::outcome::{OTHERWISE, Status};
use crate::cohort::{Cohort, Result};

/// Evidence columns of the explanations, with the store column of events
/// and of medications each is read from (`None`: null).
const EVIDENCE: [(&str, Option<&str>, Option<&str>); 14] = [
    ("ev_date", Some("event_date"), Some("issue_date")),
    (
        "ev_precision",
        Some("date_precision"),
        Some("date_precision"),
    ),
    ("ev_code_system", Some("code_system"), Some("code_system")),
    ("ev_source_code", Some("source_code"), Some("source_code")),
    ("ev_concept", Some("snomed_concept_id"), Some("dmd_code")),
    ("ev_term", Some("source_term"), Some("source_term")),
    ("ev_value", Some("value"), None),
    ("ev_unit", Some("unit"), None),
    ("ev_comparator", Some("comparator"), None),
    ("ev_practice", Some("practice"), Some("practice")),
    ("ev_supplier", Some("supplier"), Some("supplier")),
    (
        "ev_source_table",
        Some("source_table"),
        Some("source_table"),
    ),
    (
        "ev_source_row_id",
        Some("source_row_id"),
        Some("source_row_id"),
    ),
    (
        "ev_mapping_kind",
        Some("mapping_kind"),
        Some("mapping_kind"),
    ),
];

/// The practice attrition and combinations add up to.
pub const NETWORK: &str = "ALL";

/// The evidence columns of every chosen event of the run, read from the
/// store by position ([`fetch`]), one result per table. A row per criterion
/// (`cid`, the criterion's [`CritResult::id`]) and chosen event (`e_key`,
/// the slice's `rkey`), so that each criterion joins its own rows only.
pub async fn evidence(
    ctx: &SessionContext,
    view: &StoreView,
    slice: &super::scan::Slice,
    crit: &[CritResult],
    scratch: &Scratch,
) -> Result<BTreeMap<Table, Held>> {
    let mut evidence: BTreeMap<Table, Held> = BTreeMap::new();
    let tables: BTreeSet<Table> = crit.iter().map(|c| c.part.table()).collect();
    if scratch.distributed {
        for table in tables {
            let ev = evidence_plan(ctx, view, slice, crit, table).await?;
            let held = scratch
                .hold(ev, &format!("evidence_{}", table.name()))
                .await?;
            evidence.insert(table, held);
        }
        return Ok(evidence);
    }
    for table in tables {
        let t = std::time::Instant::now();
        // The store column each evidence column is read from, if any.
        let source = |e: &(&str, Option<&'static str>, Option<&'static str>)| {
            if table == Table::Events { e.1 } else { e.2 }
        };
        // The chosen keys, and the rows they point at per practice.
        let (mut cids, mut keys, mut practices, mut positions) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut wanted: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
        for c in crit.iter().filter(|c| c.part.table() == table) {
            let chosen = c
                .held
                .read(ctx)
                .await?
                .filter(col("ev_key").is_not_null())?
                .select(vec![col("ev_key")])?
                .collect()
                .await?;
            for b in &chosen {
                let k = super::read::Columns::new(b, &scratch.dir)?.str("ev_key")?;
                for key in k.iter().flatten() {
                    let (practice, row) = rkey_locator(key).ok_or_else(|| {
                        crate::cohort::Error::Store(format!("malformed row key {key:?}"))
                    })?;
                    wanted.entry(practice.to_string()).or_default().insert(row);
                    cids.push(c.id);
                    keys.push(key.to_string());
                    practices.push(practice.to_string());
                    positions.push(row as i64);
                }
            }
        }
        let wanted: BTreeMap<String, Vec<u64>> = wanted
            .into_iter()
            .map(|(p, rows)| (p, rows.into_iter().collect()))
            .collect();
        let columns: Vec<&str> = EVIDENCE.iter().filter_map(source).collect();
        let rows = fetch::rows(ctx, view, table, &wanted, &columns).await?;
        tracing::debug!(table = table.name(), keys = keys.len(), elapsed = ?t.elapsed(), "evidence rows read");
        let keys = RecordBatch::try_from_iter(vec![
            ("cid", Arc::new(Int64Array::from(cids)) as ArrayRef),
            ("k", Arc::new(StringArray::from(keys)) as ArrayRef),
            (
                "k_practice",
                Arc::new(StringArray::from(practices)) as ArrayRef,
            ),
            ("k_row", Arc::new(Int64Array::from(positions)) as ArrayRef),
        ])?;
        let mut cols = vec![col("cid"), col("k").alias("e_key")];
        for e in &EVIDENCE {
            cols.push(match source(e) {
                Some(c) => col(c).alias(e.0),
                None => null_of(e.0).alias(e.0),
            });
        }
        // Both sides as work files, so the plan reads no memory of this
        // process and runs on a cluster as here.
        let keys_file = scratch
            .dir
            .join(format!("evidence_keys_{}.parquet", table.name()));
        let rows_file = scratch
            .dir
            .join(format!("evidence_rows_{}.parquet", table.name()));
        super::write_batch(&keys_file, &keys)?;
        super::write_batch(&rows_file, &rows)?;
        let read = |path: std::path::PathBuf| async move {
            ctx.read_parquet(super::url(&path), ParquetReadOptions::default())
                .await
        };
        let ev = read(keys_file)
            .await?
            // (practice, position) is unique in the table: one row per key.
            .join(
                read(rows_file).await?,
                JoinType::Inner,
                &["k_practice", "k_row"],
                &[fetch::PRACTICE, fetch::POSITION],
                None,
            )?
            .select(cols)?;
        let held = scratch
            .hold(ev, &format!("evidence_{}", table.name()))
            .await?;
        evidence.insert(table, held);
    }
    Ok(evidence)
}

/// [`evidence`] as one plan, for a cluster: the chosen keys of every
/// criterion reading `table`, joined to the store's rows by practice,
/// person and row order (unique per person in a practice's file; a row key
/// carries the first and the last). It decodes the evidence columns of every
/// row of the table, where the local path reads the chosen pages only.
async fn evidence_plan(
    ctx: &SessionContext,
    view: &StoreView,
    slice: &super::scan::Slice,
    crit: &[CritResult],
    table: Table,
) -> Result<DataFrame> {
    let source = |e: &(&str, Option<&'static str>, Option<&'static str>)| {
        if table == Table::Events { e.1 } else { e.2 }
    };
    let mut keys: Option<DataFrame> = None;
    for c in crit.iter().filter(|c| c.part.table() == table) {
        let k = c
            .held
            .read(ctx)
            .await?
            .filter(col("ev_key").is_not_null())?
            .select(vec![
                lit(c.id).alias("cid"),
                col("ev_key").alias("k"),
                col("person_key").alias("k_pk"),
            ])?;
        keys = Some(match keys {
            None => k,
            Some(u) => u.union(k)?,
        });
    }
    let keys = keys.expect("a table is read by at least one criterion");
    let keys = keys.select(vec![
        col("cid"),
        col("k"),
        col("k_pk"),
        super::scan::rkey_practice(col("k")).alias("k_practice"),
        super::scan::rkey_row_order(col("k")).alias("k_order"),
    ])?;
    let mut store_cols = vec![
        col("practice").alias("s_practice"),
        col("person_key").alias("s_pk"),
        col(crate::canonical::tables::ROW_ORDER).alias("s_order"),
    ];
    let mut seen = BTreeSet::new();
    for e in &EVIDENCE {
        if let Some(c) = source(e)
            && seen.insert(c)
        {
            store_cols.push(col(c));
        }
    }
    // Only rows the slice kept can be chosen events: the slice's own
    // predicate, as literals, spares the scan the rest of the table.
    let rows = view
        .read(ctx, table, None)
        .await?
        .filter(slice.scan_filter(table))?
        .select(store_cols)?;
    let mut cols = vec![col("cid"), col("k").alias("e_key")];
    for e in &EVIDENCE {
        cols.push(match source(e) {
            Some(c) => col(c).alias(e.0),
            None => null_of(e.0).alias(e.0),
        });
    }
    Ok(keys
        .join(
            rows,
            JoinType::Inner,
            &["k_practice", "k_pk", "k_order"],
            &["s_practice", "s_pk", "s_order"],
            None,
        )?
        .select(cols)?)
}

/// A typed null for an evidence column a table does not have.
fn null_of(name: &str) -> Expr {
    lit(match name {
        "ev_value" => ScalarValue::Float64(None),
        _ => ScalarValue::Utf8(None),
    })
}

#[allow(clippy::too_many_arguments)]
pub async fn write(
    ctx: &SessionContext,
    cohort: &Cohort,
    opts: &RunOptions,
    access: &Access,
    decided: &Held,
    crit: &[CritResult],
    evidence: &BTreeMap<Table, Held>,
) -> Result<CohortRun> {
    let def = &cohort.def;
    let key = def.key();

    let t0 = std::time::Instant::now();
    let membership = decided
        .read(ctx)
        .await?
        .select(vec![
            col("person_key"),
            col("practice"),
            col("status"),
            col("included"),
            // "Undetermined": said in words, so a reader filtering on
            // `included` cannot miss the third state.
            when(
                col("status").eq(lit(Status::InPopulation.name())),
                when(col("included").is_true(), lit("included"))
                    .when(col("included").is_false(), lit("excluded"))
                    .otherwise(lit("undetermined"))?,
            )
            .otherwise(lit(ScalarValue::Utf8(None)))?
            .alias("outcome"),
            col("deciding_rule"),
            col("near_miss_rule"),
        ])?
        .sort(vec![col("person_key").sort(true, false)])?;

    let mut expl: Option<DataFrame> = None;
    for (j, c) in crit.iter().enumerate() {
        let mut cols = vec![
            col("person_key"),
            col("practice"),
            lit(c.name.as_str()).alias("criterion"),
            col("verdict"),
            col("reason"),
            col("count"),
            col("value"),
            col("refused"),
        ];
        for (name, ..) in EVIDENCE {
            cols.push(col(name));
        }
        cols.push(
            when(
                col("e_key").is_not_null(),
                concat(vec![
                    col("ev_practice"),
                    lit("/"),
                    col("ev_source_table"),
                    lit("/"),
                    col("ev_source_row_id"),
                ]),
            )
            .otherwise(lit(ScalarValue::Utf8(None)))?
            .alias("evidence"),
        );
        cols.push(lit(j as i64).alias("crit_order"));
        let ev = evidence[&c.part.table()]
            .read(ctx)
            .await?
            .filter(col("cid").eq(lit(c.id)))?;
        let df = c
            .held
            .read(ctx)
            .await?
            .join(ev, JoinType::Left, &["ev_key"], &["e_key"], None)?
            .select(cols)?;
        expl = Some(match expl {
            None => df,
            Some(u) => u.union(df)?,
        });
    }
    let explanations = match expl {
        Some(df) => {
            let df = df.sort(vec![
                col("person_key").sort(true, false),
                col("crit_order").sort(true, false),
            ])?;
            let names: Vec<String> = df
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .filter(|n| n != "crit_order")
                .collect();
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            Some(df.select_columns(&names)?)
        }
        None => None,
    };
    let near_misses = decided
        .read(ctx)
        .await?
        .filter(col("near_miss_rule").is_not_null())?
        .select(vec![
            col("person_key"),
            col("practice"),
            col("near_miss_rule").alias("rule"),
        ])?
        .sort(vec![col("person_key").sort(true, false)])?;

    // Persons per (attributed practice, status, deciding rule, included).
    let counts_batch = collect(decided.read(ctx).await?.aggregate(
        vec![
            col("attr_practice"),
            col("status"),
            col("deciding_rule"),
            col("included"),
        ],
        vec![count(lit(1i64)).alias("n")],
    )?)
    .await?;
    let counts = Counts::from_batch(&counts_batch);

    let combos_batch = collect(
        decided
            .read(ctx)
            .await?
            .filter(col("status").eq(lit(Status::InPopulation.name())))?
            .aggregate(
                vec![col("practice"), col("mask")],
                vec![count(lit(1i64)).alias("n")],
            )?,
    )
    .await?;

    let mut practices: BTreeSet<String> = access
        .available
        .iter()
        .chain(&access.unavailable)
        .cloned()
        .collect();
    practices.extend(counts.rows.iter().map(|r| r.practice.clone()));
    let attrition = attrition(cohort, &practices, &counts);
    let combinations = combinations(&practices, &combos_batch);

    let target = opts.out.join(&key);
    let tmp = opts.out.join(format!(".{key}.tmp-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
    }
    std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    let written = async {
        let mut rows = serde_json::Map::new();
        let persons = stream_into(membership, &tmp, "membership").await?;
        rows.insert("membership".into(), persons.into());
        let n = match explanations {
            Some(df) => stream_into(df, &tmp, "explanations").await?,
            None => {
                let empty = RecordBatch::new_empty(Arc::new(explanation_schema()));
                OutputFiles::create(&tmp, "explanations", empty.schema())?.finish()?
            }
        };
        rows.insert("explanations".into(), n.into());
        let n = stream_into(near_misses, &tmp, "near_misses").await?;
        rows.insert("near_misses".into(), n.into());
        tracing::debug!(elapsed = ?t0.elapsed(), "per-person files written");
        for (name, b) in [("attrition", &attrition), ("combinations", &combinations)] {
            let mut files = OutputFiles::create(&tmp, name, b.schema())?;
            files.push(b.clone())?;
            rows.insert(name.into(), files.finish()?.into());
        }
        Ok::<_, crate::cohort::Error>((persons, rows))
    }
    .await;
    let (persons, rows) = match written {
        Ok(w) => w,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
    };
    let in_population = counts.sum(|r| r.status == Status::InPopulation.name());
    let included = counts.sum(|r| r.included == Some(true));
    let undetermined = counts.sum(CountRow::undetermined);
    let per_practice: Vec<(String, Option<u64>)> = practices
        .iter()
        .filter(|p| access.available.contains(p) || access.unavailable.contains(p))
        .map(|p| {
            if access.unavailable.contains(p) {
                (p.clone(), None)
            } else {
                (
                    p.clone(),
                    Some(counts.sum(|r| &r.practice == p && r.included == Some(true))),
                )
            }
        })
        .collect();
    let undetermined_per_practice: BTreeMap<String, u64> = per_practice
        .iter()
        .filter(|(_, n)| n.is_some())
        .map(|(p, _)| {
            (
                p.clone(),
                counts.sum(|r| &r.practice == p && r.undetermined()),
            )
        })
        .filter(|(_, n)| *n > 0)
        .collect();

    let expansions: serde_json::Map<String, serde_json::Value> = cohort
        .expansions
        .iter()
        .map(|(id, e)| {
            (
                id.clone(),
                serde_json::json!({
                    "version": e.version,
                    "hash": e.hash,
                    "codes": e.rows.len(),
                }),
            )
        })
        .collect();
    let run_json = serde_json::json!({
        "definition": key,
        "path": def.path.to_string_lossy(),
        "index_date": opts.index_date.to_string(),
        "release": opts.release_id,
        "person": opts.person,
        "valuesets": expansions,
        "practices": {
            "available": access.available,
            "unavailable": access.unavailable,
        },
        "warnings": access.warnings,
        "persons": persons,
        "in_population": in_population,
        "included": included,
        "undetermined": undetermined,
        "rows": rows,
    });

    let written = (|| -> Result<()> {
        let json_path = tmp.join("run.json");
        let mut text = serde_json::to_string_pretty(&run_json).expect("run.json serialises");
        text.push('\n');
        std::fs::write(&json_path, text).map_err(io(&json_path))?;
        replace_dir(&tmp, &target)
    })();
    if written.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    written?;

    Ok(CohortRun {
        key,
        dir: target,
        persons,
        in_population,
        included,
        undetermined,
        undetermined_per_practice,
        available: access.available.clone(),
        unavailable: access.unavailable.clone(),
        per_practice,
        warnings: access.warnings.clone(),
    })
}

/// Renames `tmp` over `target` (an existing `target` is moved aside first).
fn replace_dir(tmp: &Path, target: &Path) -> Result<()> {
    if target.exists() {
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let old = target.with_file_name(format!(".{name}.old-{}", std::process::id()));
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(io(&old))?;
        }
        std::fs::rename(target, &old).map_err(io(target))?;
        std::fs::rename(tmp, target).map_err(io(target))?;
        std::fs::remove_dir_all(&old).map_err(io(&old))?;
    } else {
        std::fs::rename(tmp, target).map_err(io(target))?;
    }
    Ok(())
}

async fn collect(df: DataFrame) -> Result<RecordBatch> {
    let schema = Arc::new(df.schema().as_arrow().clone());
    let batches = df.collect().await?;
    Ok(concat_batches(&schema, &batches)?)
}

/// Rows per write to an output's files: the Parquet writer decides its pages
/// and dictionary fallbacks write by write, so with writes of a fixed size
/// the files' bytes depend on the rows alone.
const CHUNK_ROWS: usize = 8192;

/// Streams the rows of `df` (a sorted plan) into `dir/NAME.parquet` and
/// `dir/NAME.csv`; the number of rows written.
async fn stream_into(df: DataFrame, dir: &Path, name: &str) -> Result<u64> {
    let schema = Arc::new(df.schema().as_arrow().clone());
    let mut files = OutputFiles::create(dir, name, schema)?;
    let mut stream = df.execute_stream().await?;
    while let Some(batch) = stream.next().await {
        files.push(batch?)?;
    }
    files.finish()
}

/// One output's Parquet and CSV files, written as rows arrive, in chunks of
/// [`CHUNK_ROWS`].
struct OutputFiles {
    parquet: ArrowWriter<File>,
    csv: datafusion::arrow::csv::Writer<File>,
    chunks: BatchCoalescer,
    schema: datafusion::arrow::datatypes::SchemaRef,
    rows: u64,
}

impl OutputFiles {
    fn create(
        dir: &Path,
        name: &str,
        schema: datafusion::arrow::datatypes::SchemaRef,
    ) -> Result<OutputFiles> {
        let parquet = super::parquet_writer(&dir.join(format!("{name}.parquet")), schema.clone())?;
        let path = dir.join(format!("{name}.csv"));
        let file = File::create(&path).map_err(io(&path))?;
        let csv = datafusion::arrow::csv::WriterBuilder::new()
            .with_header(true)
            .build(file);
        Ok(OutputFiles {
            parquet,
            csv,
            chunks: BatchCoalescer::new(schema.clone(), CHUNK_ROWS),
            schema,
            rows: 0,
        })
    }

    fn push(&mut self, batch: RecordBatch) -> Result<()> {
        self.chunks.push_batch(batch)?;
        self.write_completed()
    }

    fn write_completed(&mut self) -> Result<()> {
        while let Some(chunk) = self.chunks.next_completed_batch() {
            self.parquet.write(&chunk)?;
            self.csv.write(&chunk)?;
            self.rows += chunk.num_rows() as u64;
        }
        Ok(())
    }

    /// Writes the last rows and closes both files; the rows written.
    fn finish(mut self) -> Result<u64> {
        self.chunks.finish_buffered_batch()?;
        self.write_completed()?;
        if self.rows == 0 {
            // The CSV file still gets its header.
            self.csv
                .write(&RecordBatch::new_empty(self.schema.clone()))?;
        }
        self.parquet.close()?;
        // Each CSV write has already reached the file.
        Ok(self.rows)
    }
}

fn explanation_schema() -> Schema {
    use DataType::*;
    let f = |n: &str, t: DataType| Field::new(n, t, true);
    Schema::new(vec![
        f("person_key", Utf8),
        f("practice", Utf8),
        f("criterion", Utf8),
        f("verdict", Boolean),
        f("reason", Utf8),
        f("count", Int64),
        f("value", Float64),
        f("refused", Int64),
        f("ev_date", Date32),
        f("ev_precision", Utf8),
        f("ev_code_system", Utf8),
        f("ev_source_code", Utf8),
        f("ev_concept", Int64),
        f("ev_term", Utf8),
        f("ev_value", Float64),
        f("ev_unit", Utf8),
        f("ev_comparator", Utf8),
        f("ev_practice", Utf8),
        f("ev_supplier", Utf8),
        f("ev_source_table", Utf8),
        f("ev_source_row_id", Utf8),
        f("ev_mapping_kind", Utf8),
        f("evidence", Utf8),
    ])
}

struct CountRow {
    practice: String,
    status: String,
    deciding_rule: Option<String>,
    included: Option<bool>,
    n: u64,
}

impl CountRow {
    /// In the base population, but neither included nor excluded.
    fn undetermined(&self) -> bool {
        self.status == Status::InPopulation.name() && self.included.is_none()
    }
}

struct Counts {
    rows: Vec<CountRow>,
}

impl Counts {
    fn from_batch(b: &RecordBatch) -> Counts {
        let s = |n: &str| {
            b.column_by_name(n)
                .and_then(|c| c.as_any().downcast_ref::<StringArray>())
                .expect("string column")
                .clone()
        };
        let (practice, status, rule) = (s("attr_practice"), s("status"), s("deciding_rule"));
        let included = b
            .column_by_name("included")
            .and_then(|c| c.as_any().downcast_ref::<BooleanArray>())
            .expect("boolean column");
        let n = b
            .column_by_name("n")
            .and_then(|c| c.as_any().downcast_ref::<Int64Array>())
            .expect("count column");
        let rows = (0..b.num_rows())
            .map(|i| CountRow {
                practice: if practice.is_null(i) {
                    String::new()
                } else {
                    practice.value(i).to_string()
                },
                status: status.value(i).to_string(),
                deciding_rule: (!rule.is_null(i)).then(|| rule.value(i).to_string()),
                included: (!included.is_null(i)).then(|| included.value(i)),
                n: n.value(i) as u64,
            })
            .collect();
        Counts { rows }
    }

    fn sum(&self, f: impl Fn(&CountRow) -> bool) -> u64 {
        self.rows.iter().filter(|r| f(r)).map(|r| r.n).sum()
    }
}

/// Rows `(practice, step_order, step, entering, passing, removed, selected,
/// undetermined)`: the network first, then each practice: the population
/// checks in order (removed = persons with that status), each rule (selected
/// or removed = persons it decided; undetermined = persons whose decision it
/// left open, who go no further), then `otherwise`. Persons not registered at the index
/// date count under the greatest practice holding a record of them.
fn attrition(cohort: &Cohort, practices: &BTreeSet<String>, counts: &Counts) -> RecordBatch {
    let def = &cohort.def;
    // (practice, step_order, step), then [entering, passing, removed, selected].
    let mut keys: Vec<(String, i64, String)> = Vec::new();
    let mut counts_of: Vec<[i64; 5]> = Vec::new();
    let scopes = std::iter::once(None).chain(practices.iter().map(Some));
    for scope in scopes {
        let here = |r: &CountRow| scope.is_none_or(|p| &r.practice == p);
        let name = scope.cloned().unwrap_or_else(|| NETWORK.to_string());
        let mut remaining = counts.sum(here);
        let mut order = 0i64;
        let mut push =
            |step: &str, entering: u64, passing: u64, removed: u64, selected: u64, open: u64| {
                order += 1;
                keys.push((name.clone(), order, step.to_string()));
                counts_of.push([entering, passing, removed, selected, open].map(|n| n as i64));
            };
        for s in Status::ALL.iter().filter(|s| **s != Status::InPopulation) {
            let removed = counts.sum(|r| here(r) && r.status == s.name());
            push(s.name(), remaining, remaining - removed, removed, 0, 0);
            remaining -= removed;
        }
        for rule in &def.rules {
            let at = |r: &CountRow| here(r) && r.deciding_rule.as_deref() == Some(&rule.name);
            let fired = counts.sum(|r| at(r) && !r.undetermined());
            let open = counts.sum(|r| at(r) && r.undetermined());
            let (sel, rem) = match rule.then {
                Action::Select => (fired, 0),
                Action::Reject => (0, fired),
            };
            push(
                &rule.name,
                remaining,
                remaining - fired - open,
                rem,
                sel,
                open,
            );
            remaining -= fired + open;
        }
        let fired = counts.sum(|r| here(r) && r.deciding_rule.as_deref() == Some(OTHERWISE));
        let (sel, rem) = match def.otherwise {
            Action::Select => (fired, 0),
            Action::Reject => (0, fired),
        };
        push(OTHERWISE, remaining, remaining - fired, rem, sel, 0);
    }
    let schema = Schema::new(vec![
        Field::new("practice", DataType::Utf8, false),
        Field::new("step_order", DataType::Int64, false),
        Field::new("step", DataType::Utf8, false),
        Field::new("entering", DataType::Int64, false),
        Field::new("passing", DataType::Int64, false),
        Field::new("removed", DataType::Int64, false),
        Field::new("selected", DataType::Int64, false),
        Field::new("undetermined", DataType::Int64, false),
    ]);
    let count = |k: usize| -> ArrayRef {
        Arc::new(Int64Array::from_iter_values(counts_of.iter().map(|c| c[k])))
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(keys.iter().map(|k| &k.0))),
        Arc::new(Int64Array::from_iter_values(keys.iter().map(|k| k.1))),
        Arc::new(StringArray::from_iter_values(keys.iter().map(|k| &k.2))),
        count(0),
        count(1),
        count(2),
        count(3),
        count(4),
    ];
    RecordBatch::try_new(Arc::new(schema), columns).expect("attrition columns")
}

/// Rows `(practice, mask, persons)`: the network first, then each practice, masks sorted.
fn combinations(practices: &BTreeSet<String>, b: &RecordBatch) -> RecordBatch {
    let s = |n: &str| {
        b.column_by_name(n)
            .and_then(|c| c.as_any().downcast_ref::<StringArray>())
            .expect("string column")
            .clone()
    };
    let (practice, mask) = (s("practice"), s("mask"));
    let n = b
        .column_by_name("n")
        .and_then(|c| c.as_any().downcast_ref::<Int64Array>())
        .expect("count column");
    let mut by: BTreeMap<(String, String), i64> = BTreeMap::new();
    let mut all: BTreeMap<String, i64> = BTreeMap::new();
    for i in 0..b.num_rows() {
        let m = mask.value(i).to_string();
        *all.entry(m.clone()).or_default() += n.value(i);
        *by.entry((practice.value(i).to_string(), m)).or_default() += n.value(i);
    }
    let mut rows: Vec<(String, String, i64)> = all
        .into_iter()
        .map(|(m, n)| (NETWORK.to_string(), m, n))
        .collect();
    for p in practices {
        rows.extend(
            by.range((p.clone(), String::new())..)
                .take_while(|((q, _), _)| q == p)
                .map(|((q, m), n)| (q.clone(), m.clone(), *n)),
        );
    }
    let schema = Schema::new(vec![
        Field::new("practice", DataType::Utf8, false),
        Field::new("mask", DataType::Utf8, false),
        Field::new("persons", DataType::Int64, false),
    ]);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.0))),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.1))),
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.2))),
    ];
    RecordBatch::try_new(Arc::new(schema), columns).expect("combination columns")
}

#[cfg(test)]
mod output_files_tests {
    use super::*;

    fn schema() -> datafusion::arrow::datatypes::SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("person_key", DataType::Utf8, false),
            Field::new("n", DataType::Int64, true),
        ]))
    }

    fn rows(from: usize, to: usize) -> RecordBatch {
        let keys: Vec<String> = (from..to).map(|i| format!("person-{i:06}")).collect();
        let n: Vec<Option<i64>> = (from..to)
            .map(|i| (i % 7 != 0).then_some(i as i64))
            .collect();
        RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(StringArray::from(keys)) as ArrayRef,
                Arc::new(Int64Array::from(n)) as ArrayRef,
            ],
        )
        .unwrap()
    }

    fn write(dir: &Path, batches: &[(usize, usize)]) -> (Vec<u8>, Vec<u8>, u64) {
        let mut files = OutputFiles::create(dir, "out", schema()).unwrap();
        for (from, to) in batches {
            files.push(rows(*from, *to)).unwrap();
        }
        let n = files.finish().unwrap();
        (
            std::fs::read(dir.join("out.parquet")).unwrap(),
            std::fs::read(dir.join("out.csv")).unwrap(),
            n,
        )
    }

    #[test]
    fn bytes_depend_on_the_rows_not_on_how_they_were_batched() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let whole = write(a.path(), &[(0, 30_000)]);
        let ragged = write(
            b.path(),
            &[
                (0, 1),
                (1, 5_000),
                (5_000, 5_001),
                (5_001, 20_000),
                (20_000, 30_000),
            ],
        );
        assert_eq!(whole.2, 30_000);
        assert_eq!(ragged.2, 30_000);
        assert!(
            whole.0 == ragged.0,
            "Parquet bytes differ with the batching"
        );
        assert!(whole.1 == ragged.1, "CSV bytes differ with the batching");
    }

    #[test]
    fn an_empty_output_still_has_its_csv_header_and_parquet_schema() {
        let dir = tempfile::tempdir().unwrap();
        let (parquet, csv, n) = write(dir.path(), &[]);
        assert_eq!(n, 0);
        assert_eq!(String::from_utf8(csv).unwrap(), "person_key,n\n");
        assert!(!parquet.is_empty());
    }
}
