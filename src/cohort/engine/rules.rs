//! Decisions and near misses (`docs/cohort-language.md`, "Rules and
//! decisions", "Near misses") as CASE expressions over the criterion verdicts.
//!
//! Result `decisions` ([`super::held`]), one row per person known to the store:
//! `person_key`, `practice`, `attr_practice`, `status`, `included`,
//! `deciding_rule`, `near_miss_rule` (null unless in the base population) and
//! `mask` (each rule's condition as `1`/`0`, in rule order).

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
        coalesce(vec![col(format!("v{j}")), lit(false)])
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
    let included = decide(
        &conds,
        &selects.iter().map(|s| lit(*s)).collect::<Vec<_>>(),
        lit(otherwise),
    );
    let deciding = decide(
        &conds,
        &names.iter().map(|n| lit(*n)).collect::<Vec<_>>(),
        lit(OTHERWISE),
    );
    // Near misses: each rule's condition negated, the others kept.
    let flipped: Vec<Expr> = (0..conds.len())
        .map(|r| {
            let mut c = conds.clone();
            c[r] = c[r].clone().not();
            decide(
                &c,
                &selects.iter().map(|s| lit(*s)).collect::<Vec<_>>(),
                lit(otherwise),
            )
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
        when(included.clone().not().and(n.eq(lit(1i64))), which)
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
                    when(c.clone(), lit("1"))
                        .otherwise(lit("0"))
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

/// The first rule whose condition holds gives its outcome, else `otherwise`.
fn decide(conds: &[Expr], outcomes: &[Expr], otherwise: Expr) -> Expr {
    if conds.is_empty() {
        return otherwise;
    }
    let mut case = when(conds[0].clone(), outcomes[0].clone());
    for (c, o) in conds.iter().zip(outcomes).skip(1) {
        case.when(c.clone(), o.clone());
    }
    case.otherwise(otherwise).expect("CASE builds")
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
