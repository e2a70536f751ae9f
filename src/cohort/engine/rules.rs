//! Decisions and near misses (`docs/cohort-language.md`, "Rules and
//! decisions", "Near misses") as CASE expressions over the criterion verdicts.
//!
//! Result `decisions` ([`super::held`]), one row per person known to the store:
//! `person_key`, `practice`, `attr_practice`, `status`, `included`,
//! `deciding_rule`, `near_miss_rule` (null unless in the base population) and
//! `mask` (each rule's condition as `1`/`0`/`?`, in rule order). Verdicts and
//! conditions are three-valued: null is undetermined, and SQL's `and`/`or`/
//! `not` are the cohort language's; an undetermined person has a null
//! `included` ("Undetermined" in the doc).

use datafusion::prelude::*;
use datafusion::scalar::ScalarValue;

use super::criteria::CritResult;
use super::held::{Held, Scratch};
use crate::cohort::Result;
use crate::cohort::model::{Action, Definition, Expr as RuleExpr};
use crate::cohort::outcome::OTHERWISE;

pub async fn write(
    ctx: &SessionContext,
    def: &Definition,
    pop: &Held,
    crit: &[CritResult],
    scratch: &Scratch,
) -> Result<Held> {
    let mut df = pop.read(ctx).await?;
    for (j, c) in crit.iter().enumerate() {
        let v = c.held.read(ctx).await?.select(vec![
            col("person_key").alias(format!("v{j}_pk")),
            col("verdict").alias(format!("v{j}")),
        ])?;
        df = df.join(
            v,
            JoinType::Left,
            &["person_key"],
            &[&format!("v{j}_pk")],
            None,
        )?;
    }
    let verdict = |name: &str| -> Expr {
        let j = crit
            .iter()
            .position(|c| c.name == name)
            .expect("rules name criteria");
        // Null (undetermined) stays null: SQL's three-valued logic is the doc's.
        col(format!("v{j}"))
    };
    let conds: Vec<Expr> = def
        .rules
        .iter()
        .map(|r| condition(&r.when, &verdict))
        .collect();
    let names: Vec<&str> = def.rules.iter().map(|r| r.name.as_str()).collect();
    let selects: Vec<bool> = def.rules.iter().map(|r| r.then == Action::Select).collect();
    let otherwise = def.otherwise == Action::Select;

    let in_pop = col("status").eq(lit("in_population"));
    let only_in_pop = |e: Expr, null: ScalarValue| -> Expr {
        when(in_pop.clone(), e)
            .otherwise(lit(null))
            .expect("CASE builds")
    };
    let included = decide3(&conds, &selects, otherwise);
    let open = undetermined(&conds, &selects, otherwise);
    let deciding = case(
        when(open, first_open(&conds, &names)),
        decide(
            &conds,
            &names.iter().map(|n| lit(*n)).collect::<Vec<_>>(),
            lit(OTHERWISE),
        ),
    );
    // Near misses: each rule's condition negated, the others kept.
    let flipped: Vec<Expr> = (0..conds.len())
        .map(|r| {
            let mut c = conds.clone();
            c[r] = c[r].clone().not();
            decide3(&c, &selects, otherwise).is_true()
        })
        .collect();
    let near_miss = if flipped.is_empty() {
        lit(ScalarValue::Utf8(None))
    } else {
        let n = flipped
            .iter()
            .map(|e| {
                when(e.clone(), lit(1i64))
                    .otherwise(lit(0i64))
                    .expect("CASE builds")
            })
            .reduce(|a, b| a + b)
            .expect("rules");
        // The one rule that flips the decision; a rule marked `near_miss =
        // false` names no near miss.
        let label = |r: usize| -> Expr {
            if def.rules[r].near_miss {
                lit(names[r])
            } else {
                lit(ScalarValue::Utf8(None))
            }
        };
        let mut which = when(flipped[0].clone(), label(0));
        for (r, e) in flipped.iter().enumerate().skip(1) {
            which.when(e.clone(), label(r));
        }
        let which = which
            .otherwise(lit(ScalarValue::Utf8(None)))
            .expect("CASE builds");
        when(included.clone().is_false().and(n.eq(lit(1i64))), which)
            .otherwise(lit(ScalarValue::Utf8(None)))
            .expect("CASE builds")
    };
    let mask = if conds.is_empty() {
        lit("")
    } else {
        concat(
            conds
                .iter()
                .map(|c| {
                    when(c.clone().is_true(), lit("1"))
                        .when(c.clone().is_false(), lit("0"))
                        .otherwise(lit("?"))
                        .expect("CASE builds")
                })
                .collect(),
        )
    };
    let df = df.select(vec![
        col("person_key"),
        col("practice"),
        col("attr_practice"),
        col("status"),
        only_in_pop(included, ScalarValue::Boolean(None)).alias("included"),
        only_in_pop(deciding, ScalarValue::Utf8(None)).alias("deciding_rule"),
        only_in_pop(near_miss, ScalarValue::Utf8(None)).alias("near_miss_rule"),
        only_in_pop(mask, ScalarValue::Utf8(None)).alias("mask"),
    ])?;
    scratch.hold(df, "decisions").await
}

/// The first rule whose condition is true gives its outcome, else
/// `otherwise` (undetermined conditions pass on, as false ones do).
fn decide(conds: &[Expr], outcomes: &[Expr], otherwise: Expr) -> Expr {
    if conds.is_empty() {
        return otherwise;
    }
    let mut case = when(conds[0].clone().is_true(), outcomes[0].clone());
    for (c, o) in conds.iter().zip(outcomes).skip(1) {
        case.when(c.clone().is_true(), o.clone());
    }
    case.otherwise(otherwise).expect("CASE builds")
}

/// Whether a rule whose condition is undetermined, before the first rule
/// whose condition is true, would decide otherwise than the decision
/// reached (`decide`): then the person's decision is undetermined.
fn undetermined(conds: &[Expr], selects: &[bool], otherwise: bool) -> Expr {
    let reached = decide(
        conds,
        &selects.iter().map(|s| lit(*s)).collect::<Vec<_>>(),
        lit(otherwise),
    );
    let mut none_true_before = lit(true);
    let mut open = lit(false);
    for (c, &s) in conds.iter().zip(selects) {
        open = open.or(none_true_before
            .clone()
            .and(c.clone().is_null())
            .and(reached.clone().not_eq(lit(s))));
        none_true_before = none_true_before.and(c.clone().is_true().not());
    }
    open
}

/// Included (true), excluded (false) or undetermined (null).
fn decide3(conds: &[Expr], selects: &[bool], otherwise: bool) -> Expr {
    let reached = decide(
        conds,
        &selects.iter().map(|s| lit(*s)).collect::<Vec<_>>(),
        lit(otherwise),
    );
    case(
        when(
            undetermined(conds, selects, otherwise),
            lit(ScalarValue::Boolean(None)),
        ),
        reached,
    )
}

/// The first rule whose condition is undetermined.
fn first_open(conds: &[Expr], names: &[&str]) -> Expr {
    let mut out = lit(ScalarValue::Utf8(None));
    for (c, n) in conds.iter().zip(names).rev() {
        out = case(when(c.clone().is_null(), lit(*n)), out);
    }
    out
}

fn case(e: datafusion::logical_expr::conditional_expressions::CaseBuilder, other: Expr) -> Expr {
    let mut e = e;
    e.otherwise(other).expect("CASE builds")
}

fn condition(e: &RuleExpr, verdict: &dyn Fn(&str) -> Expr) -> Expr {
    match e {
        RuleExpr::Criterion(c) => verdict(c),
        RuleExpr::Not(e) => condition(e, verdict).not(),
        RuleExpr::And(es) => es
            .iter()
            .map(|e| condition(e, verdict))
            .reduce(Expr::and)
            .unwrap_or(lit(true)),
        RuleExpr::Or(es) => es
            .iter()
            .map(|e| condition(e, verdict))
            .reduce(Expr::or)
            .unwrap_or(lit(false)),
    }
}
