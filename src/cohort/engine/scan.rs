//! The store as the engine reads it (read-only: no writer lock), practice
//! availability, and the shared slice of events and medication issues every
//! criterion of the run reads.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::datasource::MemTable;
use datafusion::prelude::*;
use datafusion::scalar::ScalarValue;

use super::held::Scratch;
use super::{io, url};
use crate::canonical::tables::ROW_ORDER;
use crate::canonical::{CanonicalTable, units};
use crate::cohort::model::{Anchor, Bound, Criterion, Definition, Table};
use crate::cohort::{Cohort, Error, Result};
use crate::store::PracticeState;
use crate::store::state::InProgress;

/// The store's practices and tables, checked for a consistent read.
pub struct StoreView {
    root: PathBuf,
    /// Sorted by practice code.
    pub practices: Vec<PracticeState>,
    /// Practices no cohort may count, with why: files not as their ingest
    /// wrote them, or left behind by an ingest that did not finish (such a
    /// practice may have no state at all).
    failed: BTreeMap<String, String>,
    /// The files each table is read from.
    files: BTreeMap<Table, Vec<PathBuf>>,
}

/// Which practices can answer one cohort, and what to warn about.
#[derive(Debug, Clone)]
pub struct Access {
    pub available: Vec<String>,
    pub unavailable: Vec<String>,
    pub warnings: Vec<String>,
}

const TABLES: [Table; 4] = [
    Table::Patients,
    Table::Registrations,
    Table::Events,
    Table::Medications,
];

impl StoreView {
    pub fn open(root: &Path, cohorts: &[Cohort]) -> Result<StoreView> {
        if !root.join("canonical").is_dir() {
            return Err(Error::Usage(format!(
                "{}: not a phm store (no canonical/ folder); hint: run `phm ingest --store {}` first",
                root.display(),
                root.display()
            )));
        }
        // The command pointed at a folder phm cannot read: a usage error.
        let unreadable = |path: &Path| {
            let path = path.to_path_buf();
            move |e: std::io::Error| {
                Error::Usage(format!(
                    "{}: phm cannot read this store: {e}; hint: --store takes a folder written by `phm ingest` that phm can read; check its permissions",
                    path.display()
                ))
            }
        };
        let journal = root.join(".journal");
        if journal.is_dir()
            && std::fs::read_dir(&journal)
                .map_err(unreadable(&journal))?
                .next()
                .is_some()
        {
            return Err(Error::Store(format!(
                "{}: an ingest commit was interrupted; hint: run `phm ingest` with the same --landing and --store once to complete it, then run the cohort again",
                root.display()
            )));
        }
        let needed: BTreeSet<Table> = cohorts.iter().flat_map(|c| c.def.tables()).collect();
        for t in &needed {
            let dir = table_dir(root, *t);
            if !dir.is_dir() {
                return Err(Error::Store(format!(
                    "{}: the store has no {} table; hint: ingest deliveries that carry it, or drop the cohorts that read it",
                    dir.display(),
                    t.name()
                )));
            }
        }
        let store_err = |e: crate::store::StoreError| Error::Store(e.to_string());
        let pdir = root.join("practices");
        let mut practices = Vec::new();
        if pdir.is_dir() {
            let mut dirs: Vec<PathBuf> = std::fs::read_dir(&pdir)
                .map_err(unreadable(&pdir))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_dir())
                .collect();
            dirs.sort();
            for d in dirs {
                if let Some(s) = PracticeState::read(&d).map_err(store_err)? {
                    practices.push(s);
                }
            }
        }
        practices.sort_by(|a, b| a.practice.cmp(&b.practice));
        let unrecorded: Vec<&str> = practices
            .iter()
            .filter(|p| p.files.is_none())
            .map(|p| p.practice.as_str())
            .collect();
        if !unrecorded.is_empty() {
            return Err(Error::Store(format!(
                "{}: practice(s) {} were ingested by an earlier phm that did not record their files, so a missing or damaged file cannot be told from an empty table; hint: ingest the landing zone again into a new store (`phm ingest --store NEW_FOLDER`) and run the cohorts on that",
                root.display(),
                unrecorded.join(", ")
            )));
        }

        // A practice is counted only when every file its commit recorded is
        // there as written, and no unfinished ingest was to change it.
        let mut failed = BTreeMap::new();
        let mut damaged: BTreeMap<&str, Vec<PathBuf>> = BTreeMap::new();
        for p in &practices {
            let problems = p.check_files(root);
            if !problems.is_empty() {
                failed.insert(
                    p.practice.clone(),
                    format!(
                        "its files in the store are not as its last ingest wrote them ({}); hint: rebuild the practice by ingesting its landing zone into a new store (`phm ingest --store NEW_FOLDER`)",
                        problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; ")
                    ),
                );
                damaged.insert(&p.practice, problems.into_iter().map(|p| p.path).collect());
            }
        }
        if let Some(record) = InProgress::read(root).map_err(store_err)? {
            for (ods, why) in record.left_behind(&practices) {
                failed.entry(ods).or_insert(format!(
                    "{why}; hint: run `phm ingest` again with the same --landing and --store: it completes the store"
                ));
            }
        }

        // A practice that cannot be counted still lists its persons (each
        // then `unavailable`, not missing) when its patients and
        // registrations are intact; its events and medications are not read.
        let mut files: BTreeMap<Table, Vec<PathBuf>> = BTreeMap::new();
        for p in &practices {
            let file = |t: Table| {
                let rel = format!(
                    "canonical/{}/practice={}/data.parquet",
                    t.name(),
                    p.practice
                );
                p.file(&rel).map(|_| root.join(rel))
            };
            let intact = |t: Table| {
                file(t).is_some_and(|f| {
                    !damaged
                        .get(p.practice.as_str())
                        .is_some_and(|d| d.contains(&f))
                })
            };
            let counted = !failed.contains_key(&p.practice);
            let persons = intact(Table::Patients) && intact(Table::Registrations);
            for t in TABLES {
                let read =
                    counted || (persons && matches!(t, Table::Patients | Table::Registrations));
                if let Some(f) = file(t).filter(|_| read) {
                    files.entry(t).or_default().push(f);
                }
            }
        }

        // Same-day ties are ordered by `row_order`: never read a file without it.
        let ordered: Vec<PathBuf> = [Table::Events, Table::Medications]
            .iter()
            .flat_map(|t| files.get(t).into_iter().flatten().cloned())
            .collect();
        if let Some(file) = crate::store::first_without_row_order(&ordered).map_err(store_err)? {
            return Err(Error::Store(format!(
                "{}: written by an earlier phm, without the `{ROW_ORDER}` column cohorts order same-day events by; hint: ingest the deliveries again into a new store",
                file.display()
            )));
        }
        Ok(StoreView {
            root: root.to_path_buf(),
            practices,
            failed,
            files,
        })
    }

    /// Practices available to `def` on `index`, and warnings about stale
    /// extracts and practices that cannot be counted.
    pub fn access(&self, def: &Definition, index: NaiveDate) -> Access {
        let tables = def.tables();
        let mut access = Access {
            available: Vec::new(),
            unavailable: Vec::new(),
            warnings: Vec::new(),
        };
        for p in &self.practices {
            if let Some(why) = self.failed.get(&p.practice) {
                access.unavailable.push(p.practice.clone());
                access
                    .warnings
                    .push(format!("practice {} is unavailable: {why}", p.practice));
                continue;
            }
            let has = |t: &Table| p.capability.canonical_tables.iter().any(|n| n == t.name());
            if tables.iter().all(has) {
                access.available.push(p.practice.clone());
            } else {
                access.unavailable.push(p.practice.clone());
            }
            let latest = p.capability.latest_extracted_at.date();
            if index > latest {
                access.warnings.push(format!(
                    "index date {index} is after practice {}'s latest extract ({latest}): later records are missing",
                    p.practice
                ));
            }
        }
        for (ods, why) in &self.failed {
            if !self.practices.iter().any(|p| &p.practice == ods) {
                access.unavailable.push(ods.clone());
                access
                    .warnings
                    .push(format!("practice {ods} is unavailable: {why}"));
            }
        }
        access
    }

    /// The table's file of one practice (whether or not it exists).
    pub fn file(&self, table: Table, practice: &str) -> PathBuf {
        table_dir(&self.root, table)
            .join(format!("practice={practice}"))
            .join("data.parquet")
    }

    /// One canonical table over every practice, optionally one person only.
    pub async fn read(
        &self,
        ctx: &SessionContext,
        table: Table,
        person: Option<&str>,
    ) -> Result<DataFrame> {
        let schema = canonical(table).schema();
        let files: Vec<String> = self
            .files
            .get(&table)
            .into_iter()
            .flatten()
            .map(|f| url(f))
            .collect();
        if files.is_empty() {
            return Err(Error::Store(format!(
                "{}: no practice's {} table can be read: {}; hint: see the reasons above, then rebuild or complete the store",
                self.root.display(),
                table.name(),
                if self.failed.is_empty() {
                    "the store holds no practice".to_string()
                } else {
                    self.failed
                        .iter()
                        .map(|(p, why)| format!("practice {p} is unavailable: {why}"))
                        .collect::<Vec<_>>()
                        .join("; ")
                }
            )));
        }
        let df = ctx
            .read_parquet(files, ParquetReadOptions::default().schema(&schema))
            .await?;
        Ok(match person {
            Some(p) => df.filter(col("person_key").eq(lit(p)))?,
            None => df,
        })
    }
}

pub(super) fn canonical(t: Table) -> CanonicalTable {
    match t {
        Table::Patients => CanonicalTable::Patients,
        Table::Registrations => CanonicalTable::Registrations,
        Table::Events => CanonicalTable::Events,
        Table::Medications => CanonicalTable::Medications,
    }
}

fn table_dir(root: &Path, t: Table) -> PathBuf {
    root.join("canonical").join(t.name())
}

/// Which rows of a table a slice part keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Part {
    /// Rows whose code is in some criterion's value set.
    Codes(Table),
    /// Every medication issue dated inside the union of the windows of the
    /// `any_code` criteria (unbounded when a window is anchored on a criterion).
    AnyMedication,
}

impl Part {
    pub fn of(c: &Criterion) -> Part {
        if c.any_code {
            Part::AnyMedication
        } else {
            Part::Codes(c.table)
        }
    }

    fn name(self) -> String {
        match self {
            Part::Codes(t) => t.name().to_string(),
            Part::AnyMedication => "medications_any".to_string(),
        }
    }

    pub fn table(self) -> Table {
        match self {
            Part::Codes(t) => t,
            Part::AnyMedication => Table::Medications,
        }
    }
}

/// The slice of one run.
///
/// A part is held in memory while the run's slice fits its memory budget
/// ([`super::held::Budget`]); past it, the part is written to Parquet under the run's
/// work folder instead. A code part written to disk is split in one folder
/// per *code class*, `class=N/`: the codes that belong to exactly the same set
/// of criteria, so that a criterion reads the folders of its classes and
/// nothing else; in memory, a criterion filters the part on its classes.
pub struct Slice {
    /// The rows of each part.
    parts: BTreeMap<Part, Rows>,
    /// The classes each criterion reads, by [`Slice::key`].
    classes: BTreeMap<String, Vec<usize>>,
    /// The classes of each code part.
    part_classes: BTreeMap<Part, Vec<usize>>,
    /// An empty file with the slice's columns: every read of files lists it,
    /// so a criterion whose codes matched no row reads an empty table.
    empty: PathBuf,
    /// Per table, a predicate on its canonical rows that every slice row
    /// satisfies: its parts' code lists and date ranges. Written into the
    /// plans as literals, so a scan can skip the other rows where a join's
    /// dynamic filter does not reach (it does not survive a cluster's plan
    /// serialisation).
    scan_filters: BTreeMap<Table, Expr>,
}

/// Where the rows of a slice part are.
enum Rows {
    /// In memory; a code part keeps its `class` column.
    Memory(Arc<MemTable>),
    /// Parquet files in this folder.
    Files(PathBuf),
}

impl Slice {
    /// The key of a criterion in [`Slice::classes`].
    pub fn key(cohort: usize, criterion: &str) -> String {
        format!("{cohort}/{criterion}")
    }

    /// The slice rows a criterion reads: events or issues with its codes (or,
    /// for `any_code`, every issue of the part).
    pub async fn read(&self, ctx: &SessionContext, ci: usize, c: &Criterion) -> Result<DataFrame> {
        let part = Part::of(c);
        match part {
            Part::Codes(_) => {
                let classes = self
                    .classes
                    .get(&Slice::key(ci, &c.name))
                    .cloned()
                    .unwrap_or_default();
                self.read_classes(ctx, part, &classes).await
            }
            Part::AnyMedication => self.read_part(ctx, part).await,
        }
    }

    /// Every row of a part.
    pub async fn read_part(&self, ctx: &SessionContext, part: Part) -> Result<DataFrame> {
        match (part, self.rows(part)?) {
            (_, Rows::Memory(t)) => slice_columns(ctx.read_table(t.clone())?),
            (Part::Codes(_), Rows::Files(_)) => {
                let classes = self.part_classes.get(&part).cloned().unwrap_or_default();
                self.read_classes(ctx, part, &classes).await
            }
            (Part::AnyMedication, Rows::Files(dir)) => {
                self.read_paths(ctx, vec![format!("{}/", url(dir))]).await
            }
        }
    }

    /// The predicate every slice row of `table` satisfies (`true` when the
    /// slice has no part of it).
    pub fn scan_filter(&self, table: Table) -> Expr {
        self.scan_filters.get(&table).cloned().unwrap_or(lit(true))
    }

    fn rows(&self, part: Part) -> Result<&Rows> {
        self.parts.get(&part).ok_or_else(|| {
            Error::Store(format!("no slice of the {} table was written", part.name()))
        })
    }

    async fn read_classes(
        &self,
        ctx: &SessionContext,
        part: Part,
        classes: &[usize],
    ) -> Result<DataFrame> {
        match self.rows(part)? {
            Rows::Memory(t) => {
                let keep = if classes.is_empty() {
                    lit(false)
                } else {
                    col("class")
                        .in_list(classes.iter().map(|k| lit(k.to_string())).collect(), false)
                };
                slice_columns(ctx.read_table(t.clone())?.filter(keep)?)
            }
            Rows::Files(dir) => {
                // A class with no matching row has no folder.
                let paths = classes
                    .iter()
                    .map(|k| dir.join(format!("class={k}")))
                    .filter(|d| d.is_dir())
                    .map(|d| format!("{}/", url(&d)))
                    .collect();
                self.read_paths(ctx, paths).await
            }
        }
    }

    async fn read_paths(&self, ctx: &SessionContext, mut paths: Vec<String>) -> Result<DataFrame> {
        paths.push(url(&self.empty));
        let schema = slice_schema();
        Ok(ctx
            .read_parquet(paths, ParquetReadOptions::default().schema(&schema))
            .await?)
    }
}

/// The slice's columns of `df` (a part held in memory), in order.
fn slice_columns(df: DataFrame) -> Result<DataFrame> {
    let cols = slice_schema()
        .fields()
        .iter()
        .map(|f| col(f.name()))
        .collect::<Vec<_>>();
    Ok(df.select(cols)?)
}

/// Columns of a part's codes file: each code with its class.
fn codes_schema() -> Schema {
    Schema::new(vec![
        Field::new("class", DataType::Utf8, false),
        Field::new("code", DataType::Int64, false),
    ])
}

/// Columns of the slice (events and medications alike): what evaluation
/// reads, and `rkey`, which orders the rows and locates each one in the store
/// ([`rkey_locator`]). An explanation's evidence columns are read from the
/// store for the chosen events only.
pub fn slice_schema() -> Schema {
    use DataType::*;
    let f = |n: &str, t: DataType| Field::new(n, t, true);
    Schema::new(vec![
        f("person_key", Utf8),
        f("d_start", Date32),
        f("d_end", Date32),
        f("code", Int64),
        f("value", Float64),
        f("comparator", Utf8),
        f("cunit", Utf8),
        f("rkey", Utf8),
    ])
}

/// Separates the fields of a row key.
const RKEY_SEP: &str = "\u{1}";
/// Digits of the row order in a row key: fixed width, so keys sort as the
/// orders do.
const ROW_ORDER_WIDTH: i64 = 9;
/// The row's position in its file, as the Parquet reader numbers it.
const FILE_ROW: &str = "file_row";

/// A slice row's key: the start of its period, its practice, its row order
/// and its position in the practice's file (on a cluster: its person key),
/// as text. For one person, keys sort as (date, practice, `source_row_id`,
/// `source_table`) do and are unique; across the store they are unique too,
/// and (practice, position) locates the row.
fn rkey(start: Expr) -> Expr {
    concat(vec![
        date_key(start),
        lit(RKEY_SEP),
        col("practice"),
        lit(RKEY_SEP),
        lpad(vec![
            cast(col(ROW_ORDER), DataType::Utf8),
            lit(ROW_ORDER_WIDTH),
            lit("0"),
        ]),
        lit(RKEY_SEP),
        cast(col(FILE_ROW), DataType::Utf8),
    ])
}

/// The practice a row key names, as an expression.
pub fn rkey_practice(key: Expr) -> Expr {
    split_part(key, lit(RKEY_SEP), lit(2i64))
}

/// The row order a row key carries, as an expression.
pub fn rkey_row_order(key: Expr) -> Expr {
    cast(split_part(key, lit(RKEY_SEP), lit(3i64)), DataType::Int64)
}

/// The practice and position in its file a row key points at.
pub fn rkey_locator(key: &str) -> Option<(&str, u64)> {
    let mut parts = key.split(RKEY_SEP).skip(1);
    let practice = parts.next()?;
    let row = parts.nth(1)?.parse().ok()?;
    Some((practice, row))
}

fn write_codes(path: &Path, rows: &[(String, i64)]) -> Result<()> {
    let batch = RecordBatch::try_new(
        Arc::new(codes_schema()),
        vec![
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.0))),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
        ],
    )?;
    super::write_batch(path, &batch)
}

/// The folded unit: whitespace removed, lower case (as `canonical::units`).
pub fn fold_unit(e: Expr) -> Expr {
    // Every character `char::is_whitespace` accepts, deleted in one pass.
    const WHITESPACE: &str = "\t\n\u{b}\u{c}\r \u{85}\u{a0}\u{1680}\u{2000}\u{2001}\u{2002}\u{2003}\u{2004}\u{2005}\u{2006}\u{2007}\u{2008}\u{2009}\u{200a}\u{2028}\u{2029}\u{202f}\u{205f}\u{3000}";
    lower(translate(e, lit(WHITESPACE), lit("")))
}

/// The canonical spelling of a recorded unit, null when phm does not know it.
pub fn canonical_unit_expr(unit: Expr) -> Expr {
    let folded = fold_unit(unit);
    let mut case: Option<datafusion::logical_expr::conditional_expressions::CaseBuilder> = None;
    for (canon, spellings) in units::spellings() {
        let cond = folded
            .clone()
            .in_list(spellings.iter().map(|s| lit(*s)).collect(), false);
        case = Some(match case {
            None => when(cond, lit(*canon)),
            Some(mut c) => c.when(cond, lit(*canon)),
        });
    }
    match case {
        Some(mut c) => c
            .otherwise(lit(ScalarValue::Utf8(None)))
            .expect("a CASE with branches builds"),
        None => lit(ScalarValue::Utf8(None)),
    }
}

/// Days since 1970-01-01 plus this, as text, have [`DATE_KEY_WIDTH`] digits
/// for every date from 738 BC to AD 23 900: fixed width, so they sort as the
/// dates do (and format faster than `YYYY-MM-DD`).
pub const DATE_KEY_OFFSET: i64 = 2_000_000;
pub const DATE_KEY_WIDTH: i64 = 7;

/// A date as the fixed-width text that starts a row key.
pub fn date_key(date: Expr) -> Expr {
    cast(
        cast(date, DataType::Int64) + lit(DATE_KEY_OFFSET),
        DataType::Utf8,
    )
}

/// The date at the start of a row key.
pub fn key_date(key: Expr) -> Expr {
    cast(
        cast(
            cast(
                substring(key, lit(1i64), lit(DATE_KEY_WIDTH)),
                DataType::Int64,
            ) - lit(DATE_KEY_OFFSET),
            DataType::Int32,
        ),
        DataType::Date32,
    )
}

/// The first and last day of the period an event's date stands for.
fn period(date: Expr, precision: Expr) -> (Expr, Expr) {
    let year = date_part(lit("year"), date.clone());
    let month = date_part(lit("month"), date.clone());
    let is_y = precision.clone().eq(lit("Y"));
    let is_ym = precision.eq(lit("YM"));
    let month_start = make_date(year.clone(), month.clone(), lit(1i32));
    let start = when(is_y.clone(), make_date(year.clone(), lit(1i32), lit(1i32)))
        .when(is_ym.clone(), month_start.clone())
        .otherwise(date.clone())
        .expect("CASE builds");
    let end = when(is_y, make_date(year, lit(12i32), lit(31i32)))
        .when(
            is_ym,
            super::dates::shift_expr(super::dates::shift_expr(month_start, 1, 0), 0, -1),
        )
        .otherwise(date)
        .expect("CASE builds");
    (start, end)
}

/// The dates an `any_code` criterion's window can hold, as a conservative
/// range on the recorded date (`None`: unbounded on that side).
fn any_code_range(
    c: &Criterion,
    index: NaiveDate,
) -> Result<(Option<NaiveDate>, Option<NaiveDate>)> {
    let literal = |b: &Bound| -> Result<Option<NaiveDate>> {
        match b.anchor {
            Anchor::Index => super::dates::shift(index, b.months, b.days)
                .map(Some)
                .ok_or_else(|| {
                    Error::Usage(format!("a window bound of {} is out of range", c.name))
                }),
            Anchor::Criterion(_) => Ok(None),
        }
    };
    let lo = match &c.window.lower {
        Some(b) => literal(b)?,
        None => None,
    };
    // Widened to whole years: a partial date's period (its recorded year or
    // month) may straddle an edge, which makes a verdict undetermined.
    use chrono::Datelike;
    let lo = lo.and_then(|d| NaiveDate::from_ymd_opt(d.year(), 1, 1));
    let hi = literal(&c.window.upper)?.and_then(|d| NaiveDate::from_ymd_opt(d.year(), 12, 31));
    Ok((lo, hi))
}

/// Builds the slice parts the run's criteria read: in memory within the
/// run's budget, else as Parquet files with code parts by class.
pub async fn write_slice(
    ctx: &SessionContext,
    view: &StoreView,
    cohorts: &[Cohort],
    index: NaiveDate,
    person: Option<&str>,
    scratch: &Scratch,
) -> Result<Slice> {
    // Per code part: each code with the criteria (keys) that match it.
    let mut members: BTreeMap<Table, BTreeMap<i64, BTreeSet<String>>> = BTreeMap::new();
    let mut parts: BTreeSet<Part> = BTreeSet::new();
    // The union of the any_code windows; `None` inside: unbounded.
    let mut range: Option<(Option<NaiveDate>, Option<NaiveDate>)> = None;
    for (i, cohort) in cohorts.iter().enumerate() {
        for c in &cohort.def.criteria {
            parts.insert(Part::of(c));
            match cohort.codes(c) {
                None => {
                    let (lo, hi) = any_code_range(c, index)?;
                    range = Some(match range {
                        None => (lo, hi),
                        Some((l, h)) => (
                            l.zip(lo).map(|(a, b)| a.min(b)),
                            h.zip(hi).map(|(a, b)| a.max(b)),
                        ),
                    });
                }
                Some(codes) => {
                    let key = Slice::key(i, &c.name);
                    let table = members.entry(c.table).or_default();
                    for code in codes {
                        table.entry(code as i64).or_default().insert(key.clone());
                    }
                }
            }
        }
    }
    let empty = scratch.dir.join("slice_empty.parquet");
    super::write_batch(&empty, &RecordBatch::new_empty(Arc::new(slice_schema())))?;
    let mut slice = Slice {
        parts: BTreeMap::new(),
        classes: BTreeMap::new(),
        part_classes: BTreeMap::new(),
        empty,
        scan_filters: BTreeMap::new(),
    };
    // Class numbers are unique across parts.
    let mut next_class = 0usize;
    for part in parts {
        let table = part.table();
        let filter = match part {
            Part::Codes(_) => {
                let mut classes: BTreeMap<&BTreeSet<String>, usize> = BTreeMap::new();
                let mut rows: Vec<(String, i64)> = Vec::new();
                for (code, keys) in members.get(&table).into_iter().flatten() {
                    let class = *classes.entry(keys).or_insert_with(|| {
                        next_class += 1;
                        next_class - 1
                    });
                    rows.push((class.to_string(), *code));
                }
                for (keys, class) in &classes {
                    for k in keys.iter() {
                        slice.classes.entry(k.clone()).or_default().push(*class);
                    }
                    slice.part_classes.entry(part).or_default().push(*class);
                }
                let upath = scratch.dir.join(format!("codes_{}.parquet", table.name()));
                write_codes(&upath, &rows)?;
                let codes: BTreeSet<i64> = rows.iter().map(|r| r.1).collect();
                Keep::Codes(upath, codes)
            }
            Part::AnyMedication => Keep::Dates(range.unwrap_or((None, None))),
        };
        let keeps = filter.predicate(table);
        let keeps = match slice.scan_filters.remove(&table) {
            Some(other) => other.or(keeps),
            None => keeps,
        };
        slice.scan_filters.insert(table, keeps);
        let df = slice_plan(ctx, view, table, person, &filter, scratch.distributed).await?;
        super::explain(scratch, &format!("slice part {}", part.name()), &df).await?;
        let t = std::time::Instant::now();
        if let Some(table) = super::held::collect_within(df.clone(), &scratch.budget).await? {
            tracing::debug!(part = part.name(), elapsed = ?t.elapsed(), "slice part held in memory");
            slice.parts.insert(part, Rows::Memory(Arc::new(table)));
            continue;
        }
        let out = scratch.dir.join(format!("slice_{}", part.name()));
        std::fs::create_dir_all(&out).map_err(io(&out))?;
        let mut options = DataFrameWriteOptions::new().with_single_file_output(false);
        if let Keep::Codes(..) = filter {
            options = options.with_partition_by(vec!["class".to_string()]);
        }
        let parquet = super::work_file_options(&df);
        let written = df
            .write_parquet(&format!("{}/", url(&out)), options, Some(parquet))
            .await?;
        super::check_written(&out, &written)?;
        tracing::debug!(part = part.name(), elapsed = ?t.elapsed(), "slice part written");
        slice.parts.insert(part, Rows::Files(out));
    }
    Ok(slice)
}

/// What a slice part keeps of its table.
enum Keep {
    /// Rows whose code is in this codes file (the codes, also as a set).
    Codes(PathBuf, BTreeSet<i64>),
    /// Rows whose recorded date is inside the range.
    Dates((Option<NaiveDate>, Option<NaiveDate>)),
}

impl Keep {
    /// The rows of `table` kept, as a predicate of literals.
    fn predicate(&self, table: Table) -> Expr {
        let (date, code) = columns_of(table);
        match self {
            Keep::Codes(_, codes) if codes.is_empty() => lit(false),
            Keep::Codes(_, codes) => {
                col(code).in_list(codes.iter().map(|c| lit(*c)).collect(), false)
            }
            Keep::Dates((lo, hi)) => {
                let mut range = col("date_flag").is_null().and(col(date).is_not_null());
                if let Some(lo) = lo {
                    range = range.and(col(date).gt_eq(super::dates::date_lit(*lo)));
                }
                if let Some(hi) = hi {
                    range = range.and(col(date).lt_eq(super::dates::date_lit(*hi)));
                }
                range
            }
        }
    }
}

/// A table's recorded date and code columns.
fn columns_of(table: Table) -> (&'static str, &'static str) {
    match table {
        Table::Events => ("event_date", "snomed_concept_id"),
        _ => ("issue_date", "dmd_code"),
    }
}

async fn slice_plan(
    ctx: &SessionContext,
    view: &StoreView,
    table: Table,
    person: Option<&str>,
    keep: &Keep,
    distributed: bool,
) -> Result<DataFrame> {
    let (date, code) = columns_of(table);
    let mut df = view.read(ctx, table, person).await?;
    // The reader's own row numbers: the locator the evidence stage reads by.
    // They do not survive a plan's trip to a cluster's executors, where the
    // evidence is found by (practice, person, row order) instead, and the
    // person key in their place keeps row keys unique across the store.
    let mut cols: Vec<Expr> = df.schema().fields().iter().map(|f| col(f.name())).collect();
    cols.push(if distributed {
        col("person_key").alias(FILE_ROW)
    } else {
        datafusion::functions::core::expr_fn::file_row_index().alias(FILE_ROW)
    });
    df = df.select(cols)?;
    // Rows whose date is unusable (or, matching by code, whose code is
    // unmapped) stay in the slice with no period, so no window holds them:
    // testing that after the code join keeps the scan's only row filter the
    // code, and the other columns are decoded for matching rows only.
    // The kept rows, as literals the scan can test (on a cluster the code
    // join's dynamic filter does not reach the scan).
    df = df.filter(keep.predicate(table))?;
    let usable = match keep {
        Keep::Codes(..) => col("date_flag")
            .is_null()
            .and(col("mapping_kind").not_eq(lit("unmapped"))),
        Keep::Dates(_) => lit(true),
    };
    if let Keep::Codes(codes, _) = keep {
        let schema = codes_schema();
        let codes = ctx
            .read_parquet(url(codes), ParquetReadOptions::default().schema(&schema))
            .await?
            .select(vec![col("class"), col("code").alias("ucode")])?;
        // A code has one class: the join keeps each row once.
        df = codes.join(df, JoinType::Inner, &["ucode"], &[code], None)?;
    }
    let (start, end) = period(col(date), col("date_precision"));
    let null_d = || lit(ScalarValue::Date32(None));
    let start = when(usable.clone(), start).otherwise(null_d())?;
    let end = when(usable, end).otherwise(null_d())?;
    let null_f = || lit(ScalarValue::Float64(None));
    let null_s = || lit(ScalarValue::Utf8(None));
    let (value, comparator, cunit) = match table {
        Table::Events => (
            col("value"),
            col("comparator"),
            canonical_unit_expr(col("unit")),
        ),
        _ => (null_f(), null_s(), null_s()),
    };
    let mut columns = vec![
        col("person_key"),
        start.clone().alias("d_start"),
        end.alias("d_end"),
        col(code).alias("code"),
        value.alias("value"),
        comparator.alias("comparator"),
        cunit.alias("cunit"),
        rkey(start).alias("rkey"),
    ];
    if let Keep::Codes(..) = keep {
        columns.push(col("class"));
    }
    Ok(df.select(columns)?)
}
