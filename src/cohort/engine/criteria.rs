//! Criteria over the slice (`docs/cohort-language.md`, "Criteria"): per
//! criterion, the matching events inside the person's window, a per-person
//! aggregate (counts, refused values, spacing) and the ranked evidence event,
//! joined to the persons in the base population and reduced to verdict, reason,
//! count, value, refused and evidence.
//!
//! Output `crit_<n>.parquet` per criterion, one row per person in the base
//! population: `person_key`, `practice`, `verdict`, `reason`, `count`, `value`,
//! `refused`, `anchor_date` (the chosen event's date, for kinds that choose
//! one), the evidence columns `ev_*` and `evidence`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use datafusion::arrow::datatypes::DataType;
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::functions_aggregate::expr_fn::{count, count_distinct, max, min, sum};
use datafusion::functions_window::expr_fn::row_number;
use datafusion::logical_expr::ExprFunctionExt;
use datafusion::logical_expr::SortExpr;
use datafusion::prelude::*;
use datafusion::scalar::ScalarValue;

use super::dates::{date_lit, shift, shift_expr};
use super::scan::Slice;
use super::url;
use crate::cohort::model::{Anchor, Bound, Cmp, CountOp, Criterion, Kind, ValueTest};
use crate::cohort::outcome::Reason;
use crate::cohort::{Cohort, Error, Result};

/// One evaluated criterion.
#[derive(Debug, Clone)]
pub struct CritResult {
    pub name: String,
    pub path: PathBuf,
}

/// Evidence columns as the explanations carry them, with their slice source.
pub const EVIDENCE: [(&str, &str); 15] = [
    ("ev_date", "ev_date"),
    ("ev_precision", "ev_precision"),
    ("ev_code_system", "ev_code_system"),
    ("ev_source_code", "ev_source_code"),
    ("ev_concept", "code"),
    ("ev_term", "ev_term"),
    ("ev_value", "value"),
    ("ev_unit", "unit"),
    ("ev_comparator", "comparator"),
    ("ev_practice", "practice"),
    ("ev_supplier", "supplier"),
    ("ev_source_table", "source_table"),
    ("ev_source_row_id", "source_row_id"),
    ("ev_mapping_kind", "ev_mapping_kind"),
    ("d_start", "d_start"),
];

/// Evaluates every criterion of `cohort` (index `ci` in the run) in order.
pub async fn evaluate(
    ctx: &SessionContext,
    slice: &Slice,
    ci: usize,
    cohort: &Cohort,
    index: NaiveDate,
    pop: &Path,
    dir: &Path,
) -> Result<Vec<CritResult>> {
    let mut done: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut out = Vec::new();
    for (n, c) in cohort.def.criteria.iter().enumerate() {
        let path = dir.join(format!("crit_{n}.parquet"));
        let t = std::time::Instant::now();
        let df = plan(ctx, slice, ci, c, index, pop, &done).await?;
        df.write_parquet(
            &url(&path),
            DataFrameWriteOptions::new().with_single_file_output(true),
            None,
        )
        .await?;
        tracing::debug!(criterion = %c.name, elapsed = ?t.elapsed(), "criterion");
        done.insert(c.name.clone(), path.clone());
        out.push(CritResult {
            name: c.name.clone(),
            path,
        });
    }
    Ok(out)
}

async fn read(ctx: &SessionContext, path: &Path) -> Result<DataFrame> {
    Ok(ctx
        .read_parquet(url(path), ParquetReadOptions::default())
        .await?)
}

/// Anchor dates of criterion `path` as `(a{j}_pk, a{j}_date)`, persons with a chosen event only.
async fn anchor_dates(ctx: &SessionContext, path: &Path, j: usize) -> Result<DataFrame> {
    Ok(read(ctx, path)
        .await?
        .filter(col("anchor_date").is_not_null())?
        .select(vec![
            col("person_key").alias(format!("a{j}_pk")),
            col("anchor_date").alias(format!("a{j}_date")),
        ])?)
}

fn anchors(c: &Criterion) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for b in c
        .window
        .lower
        .iter()
        .chain(std::iter::once(&c.window.upper))
    {
        if let Anchor::Criterion(a) = &b.anchor
            && !out.contains(a)
        {
            out.push(a.clone());
        }
    }
    out
}

/// The date a bound compares with: a literal, or the anchor's date column moved.
fn bound_expr(b: &Bound, index: NaiveDate, anchors: &[String]) -> Result<Expr> {
    Ok(match &b.anchor {
        Anchor::Index => date_lit(shift(index, b.months, b.days).ok_or_else(|| {
            Error::Usage(format!(
                "a window bound {} months {} days from {index} is out of range",
                b.months, b.days
            ))
        })?),
        Anchor::Criterion(a) => {
            let j = anchors.iter().position(|x| x == a).expect("anchor listed");
            shift_expr(col(format!("a{j}_date")), b.months, b.days)
        }
    })
}

/// Whether the window holds an event: the first day of its period satisfies the
/// lower bound and the last day the upper bound.
fn window_expr(c: &Criterion, index: NaiveDate, anchors: &[String]) -> Result<Expr> {
    let up = bound_expr(&c.window.upper, index, anchors)?;
    let mut cond = if c.window.upper.inclusive {
        col("d_end").lt_eq(up)
    } else {
        col("d_end").lt(up)
    };
    if let Some(lo) = &c.window.lower {
        let x = bound_expr(lo, index, anchors)?;
        cond = cond.and(if lo.inclusive {
            col("d_start").gt_eq(x)
        } else {
            col("d_start").gt(x)
        });
    }
    Ok(cond)
}

fn null_f64() -> Expr {
    lit(ScalarValue::Float64(None))
}

fn case(e: datafusion::logical_expr::conditional_expressions::CaseBuilder, other: Expr) -> Expr {
    let mut e = e;
    e.otherwise(other).expect("CASE builds")
}

/// The value in the threshold's unit (null when the unit is not comparable).
fn converted(t: &ValueTest) -> (Expr, Expr) {
    let cu = col("cunit");
    let v = col("value");
    let mut units = vec![lit(t.unit)];
    let mut conv = when(cu.clone().eq(lit(t.unit)), v.clone());
    match t.unit {
        "mmol/mol" => {
            units.push(lit("%"));
            conv.when(
                cu.clone().eq(lit("%")),
                (v.clone() - lit(2.15)) * lit(10.929),
            );
        }
        "%" => {
            units.push(lit("mmol/mol"));
            conv.when(
                cu.clone().eq(lit("mmol/mol")),
                v.clone() / lit(10.929) + lit(2.15),
            );
        }
        _ => {}
    }
    let unit_ok = cu.clone().is_not_null().and(cu.in_list(units, false));
    (case(conv, null_f64()), unit_ok)
}

fn compare(v: Expr, op: Cmp, t: f64) -> Expr {
    match op {
        Cmp::Lt => v.lt(lit(t)),
        Cmp::Le => v.lt_eq(lit(t)),
        Cmp::Gt => v.gt(lit(t)),
        Cmp::Ge => v.gt_eq(lit(t)),
    }
}

/// Whether every value of the interval a (converted) value with comparator
/// `cmp` stands for passes the test.
fn interval_passes(v: Expr, cmp: Expr, t: &ValueTest) -> Expr {
    let (op, th) = (t.op, t.threshold);
    let upward = matches!(op, Cmp::Gt | Cmp::Ge);
    let never = lit(false);
    let gt = if upward {
        v.clone().gt_eq(lit(th))
    } else {
        never.clone()
    };
    let ge = if upward {
        compare(v.clone(), op, th)
    } else {
        never.clone()
    };
    let lt = if upward {
        never.clone()
    } else {
        v.clone().lt_eq(lit(th))
    };
    let le = if upward {
        never.clone()
    } else {
        compare(v.clone(), op, th)
    };
    case(
        when(cmp.clone().eq(lit("")), compare(v, op, th))
            .when(cmp.clone().eq(lit(">")), gt)
            .when(cmp.clone().eq(lit(">=")), ge)
            .when(cmp.clone().eq(lit("<")), lt)
            .when(cmp.eq(lit("<=")), le),
        never,
    )
}

fn flag(e: Expr) -> Expr {
    case(when(e, lit(1i64)), lit(0i64))
}

async fn plan(
    ctx: &SessionContext,
    slice: &Slice,
    ci: usize,
    c: &Criterion,
    index: NaiveDate,
    pop: &Path,
    done: &BTreeMap<String, PathBuf>,
) -> Result<DataFrame> {
    let anchors = anchors(c);
    let mut ev = slice.read(ctx, c).await?;
    if !c.any_code {
        let codes = slice.read_codes(ctx, &Slice::key(ci, &c.name)).await?;
        ev = codes.join(ev, JoinType::RightSemi, &["vcode"], &["code"], None)?;
    }
    for (j, a) in anchors.iter().enumerate() {
        let ad = anchor_dates(ctx, &done[a], j).await?;
        ev = ev.join(
            ad,
            JoinType::Inner,
            &["person_key"],
            &[&format!("a{j}_pk")],
            None,
        )?;
    }
    ev = ev.filter(window_expr(c, index, &anchors)?)?;

    // Per-event flags: `pass` (qualifies / passes the value test), `refused`,
    // `comparable` (min/max: a plain value in a comparable unit), `v2`.
    let minmax = matches!(c.kind, Kind::Min | Kind::Max);
    let (pass, refused, comparable, v2) = match &c.value {
        None => (lit(true), lit(false), lit(false), null_f64()),
        Some(t) => {
            let (v2, unit_ok) = converted(t);
            let cmp = case(
                when(col("comparator").is_null(), lit(""))
                    .when(btrim(vec![col("comparator")]).eq(lit("=")), lit("")),
                btrim(vec![col("comparator")]),
            );
            // A comparator phm does not read never passes; min/max take
            // plain values only. Neither is a refused value (that is the unit).
            let plain = cmp.clone().eq(lit(""));
            let has = col("value").is_not_null();
            let readable = has.clone().and(unit_ok);
            let refused = has.and(readable.clone().not());
            let comparable = if minmax {
                readable.and(plain)
            } else {
                readable
            };
            let pass = comparable.clone().and(interval_passes(v2.clone(), cmp, t));
            (pass, refused, comparable, v2)
        }
    };
    let ev = ev.select(vec![
        col("person_key"),
        col("d_start"),
        col("code"),
        col("value"),
        col("comparator"),
        col("unit"),
        col("ev_date"),
        col("ev_precision"),
        col("ev_code_system"),
        col("ev_source_code"),
        col("ev_term"),
        col("ev_mapping_kind"),
        col("practice"),
        col("supplier"),
        col("source_table"),
        col("source_row_id"),
        pass.alias("pass"),
        refused.alias("refused"),
        comparable.alias("comparable"),
        v2.alias("v2"),
    ])?;

    let mut aggs = vec![
        count(lit(1i64)).alias("g_m"),
        sum(flag(col("pass"))).alias("g_q"),
        sum(flag(col("refused"))).alias("g_refused"),
        sum(flag(col("comparable"))).alias("g_cmp"),
        sum(flag(col("value").is_null())).alias("g_noval"),
    ];
    if let Kind::Count {
        distinct_codes: true,
        ..
    } = c.kind
    {
        aggs.push(
            count_distinct(case(
                when(col("pass"), col("code")),
                lit(ScalarValue::Int64(None)),
            ))
            .alias("g_qd"),
        );
    }
    if let Kind::Apart { .. } = c.kind {
        let d = case(
            when(col("pass"), cast(col("d_start"), DataType::Int32)),
            lit(ScalarValue::Int32(None)),
        );
        aggs.push(min(d.clone()).alias("g_qmin"));
        aggs.push(max(d).alias("g_qmax"));
    }
    let agg = ev.clone().aggregate(vec![col("person_key")], aggs)?;
    let agg = {
        let mut cols = vec![col("person_key").alias("g_pk")];
        for f in agg.schema().fields().iter().skip(1) {
            cols.push(col(f.name()));
        }
        agg.select(cols)?
    };

    let desc = |n: &str| col(n).sort(false, false);
    let asc = |n: &str| col(n).sort(true, false);
    let latest: Vec<SortExpr> = vec![desc("d_start"), desc("practice"), desc("source_row_id")];
    let (rank_set, order) = match c.kind {
        Kind::Exists | Kind::Count { .. } | Kind::Apart { .. } => {
            (ev.clone().filter(col("pass"))?, latest)
        }
        Kind::Latest => (ev.clone(), latest),
        Kind::First => (
            ev.clone(),
            vec![asc("d_start"), asc("practice"), asc("source_row_id")],
        ),
        Kind::Min | Kind::Max => {
            let mut o = vec![col("v2").sort(c.kind == Kind::Min, false)];
            o.extend(latest);
            (ev.clone().filter(col("comparable"))?, o)
        }
    };
    let ranked = rank_set
        .window(vec![
            row_number()
                .partition_by(vec![col("person_key")])
                .order_by(order)
                .build()?
                .alias("rn"),
        ])?
        .filter(col("rn").eq(lit(1u64)))?;
    let mut rcols = vec![col("person_key").alias("r_pk")];
    for (name, src) in EVIDENCE {
        rcols.push(col(src).alias(format!("r_{name}")));
    }
    rcols.push(col("pass").alias("r_pass"));
    rcols.push(col("comparable").alias("r_comparable"));
    rcols.push(col("v2").alias("r_v2"));
    let ranked = ranked.select(rcols)?;

    let persons = read(ctx, pop)
        .await?
        .filter(col("status").eq(lit("in_population")))?
        .select(vec![
            col("person_key").alias("pk"),
            col("practice").alias("pop_practice"),
        ])?;
    let mut f = persons
        .join(agg, JoinType::Left, &["pk"], &["g_pk"], None)?
        .join(ranked, JoinType::Left, &["pk"], &["r_pk"], None)?;
    let mut missing = lit(false);
    for (j, a) in anchors.iter().enumerate() {
        let ad = anchor_dates(ctx, &done[a], j).await?.select(vec![
            col(format!("a{j}_pk")).alias(format!("m{j}_pk")),
            col(format!("a{j}_date")).alias(format!("m{j}_date")),
        ])?;
        f = f.join(ad, JoinType::Left, &["pk"], &[&format!("m{j}_pk")], None)?;
        missing = missing.or(col(format!("m{j}_date")).is_null());
    }

    let z = |n: &str| coalesce(vec![col(n), lit(0i64)]);
    let m = z("g_m");
    let q = z("g_q");
    let chosen = col("r_pk").is_not_null();
    let reason = |r: Reason| lit(r.name());
    let (verdict, reason_expr, count_expr, value_expr) = match c.kind {
        Kind::Exists => {
            let v = q.clone().gt(lit(0i64));
            (v.clone(), std_reason(&missing, v, m), q, null_f64())
        }
        Kind::Count {
            op,
            n,
            distinct_codes,
        } => {
            let k = if distinct_codes { z("g_qd") } else { q };
            let n = lit(n as i64);
            let v = match op {
                CountOp::AtLeast => k.clone().gt_eq(n),
                CountOp::AtMost => k.clone().lt_eq(n),
                CountOp::Exactly => k.clone().eq(n),
            };
            (v.clone(), std_reason(&missing, v, m), k, null_f64())
        }
        Kind::Apart { days } => {
            let span = col("g_qmax") - col("g_qmin");
            let v = q.clone().gt_eq(lit(2i64)).and(coalesce(vec![
                span.clone().gt_eq(lit(days as i32)),
                lit(false),
            ]));
            let value = cast(span, DataType::Float64);
            (v.clone(), std_reason(&missing, v, m), q, value)
        }
        Kind::First | Kind::Latest => match &c.value {
            None => (
                chosen.clone(),
                std_reason(&missing, chosen.clone(), m.clone()),
                m,
                null_f64(),
            ),
            Some(_) => {
                let v = chosen
                    .clone()
                    .and(coalesce(vec![col("r_pass"), lit(false)]));
                let r = case(
                    when(missing.clone(), reason(Reason::AnchorMissing))
                        .when(chosen.clone().not(), reason(Reason::NoEvents))
                        .when(col("r_ev_value").is_null(), reason(Reason::NoValue))
                        .when(col("r_comparable").not(), reason(Reason::UnitRefused))
                        .when(col("r_pass"), reason(Reason::Met)),
                    reason(Reason::NotMet),
                );
                let value = case(when(col("r_comparable"), col("r_v2")), null_f64());
                (v, r, m, value)
            }
        },
        Kind::Min | Kind::Max => {
            let ncmp = z("g_cmp");
            let v = chosen
                .clone()
                .and(coalesce(vec![col("r_pass"), lit(false)]));
            let r = case(
                when(missing.clone(), reason(Reason::AnchorMissing))
                    .when(m.clone().eq(lit(0i64)), reason(Reason::NoEvents))
                    .when(
                        ncmp.clone().eq(lit(0i64)).and(z("g_refused").gt(lit(0i64))),
                        reason(Reason::UnitRefused),
                    )
                    .when(
                        ncmp.clone().eq(lit(0i64)).and(z("g_noval").gt(lit(0i64))),
                        reason(Reason::NoValue),
                    )
                    .when(col("r_pass"), reason(Reason::Met)),
                reason(Reason::NotMet),
            );
            (v, r, ncmp, col("r_v2"))
        }
    };
    let verdict = missing
        .clone()
        .not()
        .and(coalesce(vec![verdict, lit(false)]));
    let refused = if c.value.is_some() {
        z("g_refused")
    } else {
        lit(0i64)
    };
    let anchor_date = if c.kind.chooses_event() {
        col("r_d_start")
    } else {
        lit(ScalarValue::Date32(None))
    };
    let mut cols = vec![
        col("pk").alias("person_key"),
        col("pop_practice").alias("practice"),
        verdict.alias("verdict"),
        reason_expr.alias("reason"),
        count_expr.alias("count"),
        cast(value_expr, DataType::Float64).alias("value"),
        refused.alias("refused"),
        anchor_date.alias("anchor_date"),
    ];
    for (name, _) in EVIDENCE.iter().filter(|(n, _)| *n != "d_start") {
        cols.push(col(format!("r_{name}")).alias(*name));
    }
    cols.push(
        case(
            when(
                chosen,
                concat(vec![
                    col("r_ev_practice"),
                    lit("/"),
                    col("r_ev_source_table"),
                    lit("/"),
                    col("r_ev_source_row_id"),
                ]),
            ),
            lit(ScalarValue::Utf8(None)),
        )
        .alias("evidence"),
    );
    Ok(f.select(cols)?)
}

/// met / no_events / not_met, after anchor_missing.
fn std_reason(missing: &Expr, verdict: Expr, m: Expr) -> Expr {
    case(
        when(missing.clone(), lit(Reason::AnchorMissing.name()))
            .when(verdict, lit(Reason::Met.name()))
            .when(m.eq(lit(0i64)), lit(Reason::NoEvents.name())),
        lit(Reason::NotMet.name()),
    )
}
