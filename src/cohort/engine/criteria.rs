//! Criteria over the slice (`docs/cohort-language.md`, "Criteria"): per
//! criterion, the matching events inside the person's window, a per-person
//! aggregate (counts, refused values, spacing, the chosen event's key),
//! joined to the persons in the base population and reduced to verdict, reason,
//! count, value, refused and evidence.
//!
//! Verdicts are three-valued (`docs/cohort-language.md`, "Undetermined"): a
//! null `verdict` is undetermined — the chosen event's value unread, same-day
//! ties that disagree, an unread value that could undo a min/max, or a
//! partial date straddling the window that could change the verdict (events
//! straddling an edge are read beside those inside, flagged `inside` false).
//!
//! Result `crit_<n>` per criterion ([`super::held`]), one row per person in the base
//! population: `person_key`, `practice`, `verdict`, `reason`, `count`, `value`,
//! `refused`, `anchor_date` (the chosen event's date, for kinds that choose
//! one) and `ev_key` (the slice's `rkey` of the evidence event; the outputs
//! fetch its columns once per cohort).

use std::collections::BTreeMap;

use chrono::NaiveDate;
use datafusion::arrow::datatypes::DataType;
use datafusion::functions_aggregate::expr_fn::{count, count_distinct, max, min, sum};
use datafusion::logical_expr::{Operator, binary_expr};
use datafusion::prelude::*;
use datafusion::scalar::ScalarValue;

use super::dates::{date_lit, shift, shift_expr};
use super::held::{Held, Scratch};
use super::scan::{Part, Slice};
use crate::cohort::model::{Anchor, Bound, Cmp, CountOp, Criterion, Kind, ValueTest};
use crate::cohort::outcome::Reason;
use crate::cohort::{Cohort, Error, Result};

/// One evaluated criterion.
#[derive(Debug, Clone)]
pub struct CritResult {
    /// Unique in the run: the cohort's index in the run and the criterion's
    /// in the definition.
    pub id: i64,
    pub name: String,
    pub held: Held,
    /// The slice part it read.
    pub part: Part,
}

/// Separates the parts of a packed chosen-event key (sorts before any text).
const SEP: &str = "\u{2}";

/// Evaluates every criterion of `cohort` (index `ci` in the run) in order.
pub async fn evaluate(
    ctx: &SessionContext,
    slice: &Slice,
    ci: usize,
    cohort: &Cohort,
    index: NaiveDate,
    pop: &Held,
    scratch: &Scratch,
) -> Result<Vec<CritResult>> {
    let mut done: BTreeMap<String, Held> = BTreeMap::new();
    let mut out = Vec::new();
    for (n, c) in cohort.def.criteria.iter().enumerate() {
        let t = std::time::Instant::now();
        let df = plan(ctx, slice, ci, c, index, pop, &done).await?;
        super::explain(scratch, &format!("criterion {}", c.name), &df).await?;
        let held = scratch.hold(df, &format!("crit_{n}")).await?;
        tracing::debug!(criterion = %c.name, elapsed = ?t.elapsed(), "criterion");
        done.insert(c.name.clone(), held.clone());
        out.push(CritResult {
            id: ((ci as i64) << 16) | n as i64,
            name: c.name.clone(),
            held,
            part: Part::of(c),
        });
    }
    Ok(out)
}

/// Anchor dates of criterion `path` as `(a{j}_pk, a{j}_date)`, persons with a chosen event only.
async fn anchor_dates(ctx: &SessionContext, held: &Held, j: usize) -> Result<DataFrame> {
    Ok(held
        .read(ctx)
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
    bounds_expr(c, index, anchors, "d_start", "d_end")
}

/// Whether some day of an event's period is in the window: its last day
/// satisfies the lower bound and its first day the upper bound. An event
/// that overlaps but is not inside straddles an edge ("Undetermined").
fn overlap_expr(c: &Criterion, index: NaiveDate, anchors: &[String]) -> Result<Expr> {
    bounds_expr(c, index, anchors, "d_end", "d_start")
}

/// `lower_day` against the lower bound and `upper_day` against the upper.
fn bounds_expr(
    c: &Criterion,
    index: NaiveDate,
    anchors: &[String],
    lower_day: &str,
    upper_day: &str,
) -> Result<Expr> {
    let up = bound_expr(&c.window.upper, index, anchors)?;
    let mut cond = if c.window.upper.inclusive {
        col(upper_day).lt_eq(up)
    } else {
        col(upper_day).lt(up)
    };
    if let Some(lo) = &c.window.lower {
        let x = bound_expr(lo, index, anchors)?;
        cond = cond.and(if lo.inclusive {
            col(lower_day).gt_eq(x)
        } else {
            col(lower_day).gt(x)
        });
    }
    Ok(cond)
}

fn null_bool() -> Expr {
    lit(ScalarValue::Boolean(None))
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
    pop: &Held,
    done: &BTreeMap<String, Held>,
) -> Result<DataFrame> {
    let anchors = anchors(c);
    // The criterion's code classes only: no code test left to do.
    let mut ev = slice.read(ctx, ci, c).await?;
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
    // Events inside the window, and those straddling an edge (`inside` false).
    let inside = window_expr(c, index, &anchors)?;
    ev = ev.filter(inside.clone().or(overlap_expr(c, index, &anchors)?))?;

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
    let ev_all = ev.select(vec![
        col("person_key"),
        col("d_start"),
        col("code"),
        col("value"),
        col("rkey"),
        pass.alias("pass"),
        refused.alias("refused"),
        comparable.alias("comparable"),
        v2.alias("v2"),
        inside.alias("inside"),
    ])?;
    let ev = ev_all.clone().filter(col("inside"))?;
    // The chosen event is found by aggregation rather than ranking: `rkey`
    // orders events as (date, practice, source_row_id) and is unique, so the
    // greatest/least key is the latest/first event; after it, separated by
    // \x02, come the event's flags and converted value, which never decide
    // the order.
    let flag_char = |e: Expr| case(when(e, lit("1")), lit("0"));
    let packed = concat(vec![
        col("rkey"),
        lit(SEP),
        flag_char(col("pass")),
        flag_char(col("comparable")),
        flag_char(col("value").is_not_null()),
        lit(SEP),
        coalesce(vec![cast(col("v2"), DataType::Utf8), lit("")]),
    ]);
    let null_s = || lit(ScalarValue::Utf8(None));
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
    let best = case(when(col("comparable"), col("v2")), null_f64());
    aggs.push(match c.kind {
        Kind::Exists | Kind::Count { .. } | Kind::Apart { .. } => {
            max(case(when(col("pass"), packed.clone()), null_s())).alias("g_key")
        }
        Kind::Latest => max(packed.clone()).alias("g_key"),
        Kind::First => min(packed.clone()).alias("g_key"),
        Kind::Min => min(best).alias("g_best"),
        Kind::Max => max(best).alias("g_best"),
    });
    let agg = ev.clone().aggregate(vec![col("person_key")], aggs)?;
    let mut agg = {
        let mut cols = vec![col("person_key").alias("g_pk")];
        for f in agg.schema().fields().iter().skip(1) {
            cols.push(col(f.name()));
        }
        agg.select(cols)?
    };
    if matches!(c.kind, Kind::Min | Kind::Max) {
        // Ties on the value: the latest event.
        let best = agg
            .clone()
            .select(vec![col("g_pk").alias("b_pk"), col("g_best").alias("b_v")])?;
        let keyed = ev
            .clone()
            .filter(col("comparable"))?
            .join(
                best,
                JoinType::Inner,
                &["person_key"],
                &["b_pk"],
                Some(col("v2").eq(col("b_v"))),
            )?
            .aggregate(vec![col("person_key")], vec![max(packed).alias("k_key")])?
            .select(vec![
                col("person_key").alias("k_pk"),
                col("k_key").alias("g_key"),
            ])?;
        agg = agg.join(keyed, JoinType::Left, &["g_pk"], &["k_pk"], None)?;
    }
    if matches!(c.kind, Kind::First | Kind::Latest) && c.value.is_some() {
        // Same-day ties for the chosen position ("Undetermined"): per person,
        // the events on the chosen event's date that pass, fail, or cannot be
        // read (t_pass, t_fail, t_open).
        let day = agg.clone().select(vec![
            col("g_pk").alias("t_pk"),
            super::scan::key_date(col("g_key")).alias("t_date"),
        ])?;
        let tied = ev
            .clone()
            .join(
                day,
                JoinType::Inner,
                &["person_key"],
                &["t_pk"],
                Some(col("d_start").eq(col("t_date"))),
            )?
            .aggregate(
                vec![col("person_key")],
                vec![
                    sum(flag(col("pass"))).alias("t_pass"),
                    sum(flag(col("comparable").and(col("pass").not()))).alias("t_fail"),
                    sum(flag(col("comparable").not())).alias("t_open"),
                ],
            )?
            .select(vec![
                col("person_key").alias("t_pk"),
                col("t_pass"),
                col("t_fail"),
                col("t_open"),
            ])?;
        agg = agg.join(tied, JoinType::Left, &["g_pk"], &["t_pk"], None)?;
    }

    let persons = pop
        .read(ctx)
        .await?
        .filter(col("status").eq(lit("in_population")))?
        .select(vec![
            col("person_key").alias("pk"),
            col("practice").alias("pop_practice"),
        ])?;
    let mut f = persons.join(agg.clone(), JoinType::Left, &["pk"], &["g_pk"], None)?;
    let mut missing = lit(false);
    for (j, a) in anchors.iter().enumerate() {
        let ad = anchor_dates(ctx, &done[a], j).await?.select(vec![
            col(format!("a{j}_pk")).alias(format!("m{j}_pk")),
            col(format!("a{j}_date")).alias(format!("m{j}_date")),
        ])?;
        f = f.join(ad, JoinType::Left, &["pk"], &[&format!("m{j}_pk")], None)?;
        missing = missing.or(col(format!("m{j}_date")).is_null());
    }
    // Straddling events ("Undetermined"): for first/latest, the classes
    // (pass, fail, cannot be read) of those that would be chosen over the
    // chosen event; for the other kinds, the aggregates over every event
    // inside or straddling.
    if c.kind.chooses_event() && !minmax {
        let base = agg.clone().select(vec![
            col("g_pk").alias("sb_pk"),
            split_part(col("g_key"), lit(SEP), lit(1i64)).alias("sb_rkey"),
        ])?;
        let beats = if c.kind == Kind::Latest {
            col("rkey").gt(col("sb_rkey"))
        } else {
            col("rkey").lt(col("sb_rkey"))
        };
        let (s_fail, s_open) = if c.value.is_some() {
            (
                col("comparable").and(col("pass").not()),
                col("comparable").not(),
            )
        } else {
            (lit(false), lit(false))
        };
        let st = ev_all
            .clone()
            .filter(col("inside").not())?
            .join(base, JoinType::Left, &["person_key"], &["sb_pk"], None)?
            .filter(col("sb_rkey").is_null().or(beats))?
            .aggregate(
                vec![col("person_key")],
                vec![
                    sum(flag(col("pass"))).alias("s_pass"),
                    sum(flag(s_fail)).alias("s_fail"),
                    sum(flag(s_open)).alias("s_open"),
                ],
            )?
            .select(vec![
                col("person_key").alias("s_pk"),
                col("s_pass"),
                col("s_fail"),
                col("s_open"),
            ])?;
        f = f.join(st, JoinType::Left, &["pk"], &["s_pk"], None)?;
    } else {
        let mut all = vec![
            sum(flag(col("inside").not())).alias("a_st"),
            sum(flag(col("pass"))).alias("a_q"),
            sum(flag(col("refused"))).alias("a_refused"),
            sum(flag(col("value").is_null())).alias("a_noval"),
        ];
        if let Kind::Count {
            distinct_codes: true,
            ..
        } = c.kind
        {
            all.push(
                count_distinct(case(
                    when(col("pass"), col("code")),
                    lit(ScalarValue::Int64(None)),
                ))
                .alias("a_qd"),
            );
        }
        if let Kind::Apart { .. } = c.kind {
            let d = case(
                when(col("pass"), cast(col("d_start"), DataType::Int32)),
                lit(ScalarValue::Int32(None)),
            );
            all.push(min(d.clone()).alias("a_qmin"));
            all.push(max(d).alias("a_qmax"));
        }
        if minmax {
            let best = case(when(col("comparable"), col("v2")), null_f64());
            all.push(if c.kind == Kind::Min {
                min(best).alias("a_best")
            } else {
                max(best).alias("a_best")
            });
        }
        let mut keep = vec![col("person_key").alias("a_pk")];
        for e in &all {
            keep.push(col(e.schema_name().to_string()));
        }
        let a = ev_all
            .clone()
            .aggregate(vec![col("person_key")], all)?
            .select(keep)?;
        f = f.join(a, JoinType::Left, &["pk"], &["a_pk"], None)?;
    }
    // The chosen event unpacked.
    let key = col("g_key");
    let chosen = key.clone().is_not_null();
    let flags = split_part(key.clone(), lit(SEP), lit(2i64));
    let flag_at = |i: i64| {
        coalesce(vec![
            substring(flags.clone(), lit(i), lit(1i64)).eq(lit("1")),
            lit(false),
        ])
    };
    let (r_pass, r_comparable, r_has_value) = (flag_at(1), flag_at(2), flag_at(3));
    let r_v2 = cast(
        nullif(split_part(key.clone(), lit(SEP), lit(3i64)), lit("")),
        DataType::Float64,
    );
    let r_rkey = split_part(key.clone(), lit(SEP), lit(1i64));
    let r_date = super::scan::key_date(key);

    let z = |n: &str| coalesce(vec![col(n), lit(0i64)]);
    let m = z("g_m");
    let q = z("g_q");
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
                // Tied same-day events whose verdicts differ; else the chosen
                // event's value decides, undetermined when it cannot be read.
                let kinds = |n: &str| flag(z(n).gt(lit(0i64)));
                let disagree = (kinds("t_pass") + kinds("t_fail") + kinds("t_open")).gt(lit(1i64));
                let open = disagree.clone().or(r_comparable.clone().not());
                let v = case(
                    when(chosen.clone().not(), lit(false)).when(open, null_bool()),
                    r_pass.clone(),
                );
                let r = case(
                    when(missing.clone(), reason(Reason::AnchorMissing))
                        .when(chosen.clone().not(), reason(Reason::NoEvents))
                        .when(disagree, reason(Reason::TieDisagrees))
                        .when(r_has_value.not(), reason(Reason::NoValue))
                        .when(r_comparable.clone().not(), reason(Reason::UnitRefused))
                        .when(r_pass, reason(Reason::Met)),
                    reason(Reason::NotMet),
                );
                let value = case(when(r_comparable, r_v2), null_f64());
                (v, r, m, value)
            }
        },
        Kind::Min | Kind::Max => {
            let ncmp = z("g_cmp");
            // "Undetermined": an unread value (refused unit, no value) could
            // be the least/greatest; it only matters where it could undo the
            // verdict (a lower minimum still passes `below`/`at_most`).
            let downward = c
                .value
                .as_ref()
                .is_some_and(|t| matches!(t.op, Cmp::Lt | Cmp::Le));
            let strengthens = (c.kind == Kind::Min) == downward;
            let unread = z("g_refused").gt(lit(0i64)).or(z("g_noval").gt(lit(0i64)));
            let robust = if strengthens {
                r_pass.clone()
            } else {
                chosen.clone().and(r_pass.clone().not())
            };
            let open = unread.clone().and(robust.not());
            let v = case(
                when(m.clone().eq(lit(0i64)), lit(false)).when(open.clone(), null_bool()),
                chosen.clone().and(r_pass.clone()),
            );
            let r = case(
                when(missing.clone(), reason(Reason::AnchorMissing))
                    .when(m.clone().eq(lit(0i64)), reason(Reason::NoEvents))
                    .when(
                        open.clone().and(z("g_refused").gt(lit(0i64))),
                        reason(Reason::UnitRefused),
                    )
                    .when(open, reason(Reason::NoValue))
                    .when(r_pass, reason(Reason::Met)),
                reason(Reason::NotMet),
            );
            (v, r, ncmp, col("g_best"))
        }
    };
    // Whether the straddling events could lead to another verdict than
    // `verdict` (only asked where it is not null).
    let is = |e: Expr| coalesce(vec![e, lit(false)]);
    let differs = match c.kind {
        Kind::First | Kind::Latest => {
            let pass = z("s_pass").gt(lit(0i64));
            let fail = z("s_fail").gt(lit(0i64));
            let open = z("s_open").gt(lit(0i64));
            case(
                when(is(verdict.clone()), fail.or(open.clone())),
                pass.or(open),
            )
        }
        _ => {
            let q_all = z("a_q");
            let all_v = match c.kind {
                Kind::Exists => q_all.gt(lit(0i64)),
                Kind::Count {
                    op,
                    n,
                    distinct_codes,
                } => {
                    let (k, k_all) = if distinct_codes {
                        (z("g_qd"), z("a_qd"))
                    } else {
                        (z("g_q"), q_all)
                    };
                    let n = lit(n as i64);
                    match op {
                        CountOp::AtLeast => k_all.gt_eq(n),
                        CountOp::AtMost => k_all.lt_eq(n),
                        // Every count from k to k_all can be reached: this
                        // is whether another verdict is possible — when met
                        // (k = n), a greater count; when not, n within reach.
                        CountOp::Exactly => case(
                            when(k.clone().eq(n.clone()), k_all.clone().not_eq(n.clone())),
                            k.lt(n.clone()).and(k_all.gt_eq(n)),
                        ),
                    }
                }
                Kind::Apart { days } => q_all
                    .gt_eq(lit(2i64))
                    .and(is((col("a_qmax") - col("a_qmin")).gt_eq(lit(days as i32)))),
                Kind::Min | Kind::Max => {
                    let t = c.value.as_ref().expect("min/max have a value test");
                    let downward = matches!(t.op, Cmp::Lt | Cmp::Le);
                    let strengthens = (c.kind == Kind::Min) == downward;
                    let pass_all = is(compare(col("a_best"), t.op, t.threshold));
                    let robust = if strengthens {
                        pass_all.clone()
                    } else {
                        col("a_best").is_not_null().and(pass_all.clone().not())
                    };
                    let unread = z("a_refused").gt(lit(0i64)).or(z("a_noval").gt(lit(0i64)));
                    case(when(unread.and(robust.not()), null_bool()), pass_all)
                }
                Kind::First | Kind::Latest => unreachable!(),
            };
            // For `count … exactly` all_v already says "differs".
            let exactly = matches!(
                c.kind,
                Kind::Count {
                    op: CountOp::Exactly,
                    ..
                }
            );
            let d = if exactly {
                all_v
            } else {
                binary_expr(all_v, Operator::IsDistinctFrom, verdict.clone())
            };
            z("a_st").gt(lit(0i64)).and(is(d))
        }
    };
    let straddles = missing
        .clone()
        .not()
        .and(verdict.clone().is_not_null())
        .and(differs);
    let reason_expr = case(
        when(
            straddles.clone(),
            lit(Reason::PartialDateStraddlesWindow.name()),
        ),
        reason_expr,
    );
    // Three-valued: null is undetermined; an anchor that chose nothing, or
    // nothing matching, is a plain false.
    let verdict = case(
        when(missing.clone(), lit(false)).when(straddles, null_bool()),
        verdict,
    );
    let refused = if c.value.is_some() {
        z("g_refused")
    } else {
        lit(0i64)
    };
    let anchor_date = if c.kind.chooses_event() {
        r_date
    } else {
        lit(ScalarValue::Date32(None))
    };
    Ok(f.select(vec![
        col("pk").alias("person_key"),
        col("pop_practice").alias("practice"),
        verdict.alias("verdict"),
        reason_expr.alias("reason"),
        count_expr.alias("count"),
        cast(value_expr, DataType::Float64).alias("value"),
        refused.alias("refused"),
        anchor_date.alias("anchor_date"),
        case(when(chosen, r_rkey), null_s()).alias("ev_key"),
    ])?)
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
