//! Why one person is, or is not, in a cohort: read from a run's output files
//! and told as a narrative a clinical lead can check against the record, or as
//! JSON for tools.
//!
//! The narrative follows the definition's own order: the base population
//! check, then each rule with the criteria it reads and their deciding
//! evidence event (date, code, term, value and unit, practice, supplier, source
//! row, mapping kind), then the decision and, for an excluded person, whether
//! they are a near miss.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use chrono::NaiveDate;
use datafusion::arrow::array::{Array, Float64Array};
use serde::Serialize;

use super::Result;
use super::engine::read::{self as out, Columns, opt_str};
use super::model::{Action, Anchor, Bound, Cmp, Criterion, Definition, Expr, Kind, Table};
use super::outcome::{OTHERWISE, Status};

/// The event a criterion's verdict rests on, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evidence {
    pub date: Option<NaiveDate>,
    pub precision: Option<String>,
    pub code_system: Option<String>,
    pub source_code: Option<String>,
    /// SNOMED CT concept (events) or dm+d code (medications).
    pub concept: Option<i64>,
    pub term: Option<String>,
    pub value: Option<f64>,
    pub comparator: Option<String>,
    pub unit: Option<String>,
    pub practice: Option<String>,
    pub supplier: Option<String>,
    pub source_table: Option<String>,
    pub source_row_id: Option<String>,
    pub mapping_kind: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CriterionExplanation {
    pub criterion: String,
    /// `null` when undetermined (docs/cohort-language.md "Undetermined").
    pub verdict: Option<bool>,
    pub reason: String,
    pub count: u64,
    pub value: Option<f64>,
    pub refused: u64,
    pub evidence: Option<Evidence>,
}

/// Everything a run decided for one person.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explanation {
    pub cohort: String,
    pub person_key: String,
    pub practice: Option<String>,
    pub status: String,
    pub included: Option<bool>,
    pub deciding_rule: Option<String>,
    pub near_miss_rule: Option<String>,
    pub criteria: Vec<CriterionExplanation>,
}

/// Reads `person_key`'s rows from a cohort's output folder; `None` when the
/// person is not in the membership file (unknown to the store at run time).
/// Refuses the outputs of a run that did not finish
/// ([`crate::cohort::engine::marker`]).
pub fn read(dir: &Path, cohort: &str, person_key: &str) -> Result<Option<Explanation>> {
    crate::cohort::engine::marker::require(dir)?;
    read_in_run(dir, cohort, person_key)
}

/// [`read`] for the run that is writing `dir`, before its completion
/// marker exists: its cohort folders are complete once the engine returns.
pub fn read_in_run(dir: &Path, cohort: &str, person_key: &str) -> Result<Option<Explanation>> {
    let membership = out::read(&dir.join("membership.parquet"))?;
    let m = Columns::new(&membership, dir)?;
    let keys = m.str("person_key")?;
    let Some(i) = (0..keys.len()).find(|&i| keys.is_valid(i) && keys.value(i) == person_key) else {
        return Ok(None);
    };
    let included = m.bool("included")?;
    let mut explanation = Explanation {
        cohort: cohort.to_string(),
        person_key: person_key.to_string(),
        practice: opt_str(&m.str("practice")?, i),
        status: opt_str(&m.str("status")?, i).unwrap_or_default(),
        included: included.is_valid(i).then(|| included.value(i)),
        deciding_rule: opt_str(&m.str("deciding_rule")?, i),
        near_miss_rule: opt_str(&m.str("near_miss_rule")?, i),
        criteria: Vec::new(),
    };
    let explanations = out::read(&dir.join("explanations.parquet"))?;
    let e = Columns::new(&explanations, dir)?;
    let keys = e.str("person_key")?;
    let (criterion, verdict, reason) = (e.str("criterion")?, e.bool("verdict")?, e.str("reason")?);
    let (count, value, refused) = (e.i64("count")?, e.f64("value")?, e.i64("refused")?);
    let (ev_date, ev_concept, ev_value) =
        (e.date("ev_date")?, e.i64("ev_concept")?, e.f64("ev_value")?);
    let s = |name: &str| e.str(name);
    let (precision, system, code, term) = (
        s("ev_precision")?,
        s("ev_code_system")?,
        s("ev_source_code")?,
        s("ev_term")?,
    );
    let (comparator, unit, practice, supplier) = (
        s("ev_comparator")?,
        s("ev_unit")?,
        s("ev_practice")?,
        s("ev_supplier")?,
    );
    let (table, row_id, mapping) = (
        s("ev_source_table")?,
        s("ev_source_row_id")?,
        s("ev_mapping_kind")?,
    );
    let float = |a: &Float64Array, i: usize| a.is_valid(i).then(|| a.value(i));
    for i in (0..keys.len()).filter(|&i| keys.is_valid(i) && keys.value(i) == person_key) {
        let evidence = row_id.is_valid(i).then(|| Evidence {
            date: ev_date
                .is_valid(i)
                .then(|| ev_date.value_as_date(i))
                .flatten(),
            precision: opt_str(&precision, i),
            code_system: opt_str(&system, i),
            source_code: opt_str(&code, i),
            concept: ev_concept.is_valid(i).then(|| ev_concept.value(i)),
            term: opt_str(&term, i),
            value: float(&ev_value, i),
            comparator: opt_str(&comparator, i),
            unit: opt_str(&unit, i),
            practice: opt_str(&practice, i),
            supplier: opt_str(&supplier, i),
            source_table: opt_str(&table, i),
            source_row_id: opt_str(&row_id, i),
            mapping_kind: opt_str(&mapping, i),
        });
        explanation.criteria.push(CriterionExplanation {
            criterion: opt_str(&criterion, i).unwrap_or_default(),
            verdict: verdict.is_valid(i).then(|| verdict.value(i)),
            reason: opt_str(&reason, i).unwrap_or_default(),
            count: count.value(i) as u64,
            value: float(&value, i),
            refused: refused.value(i) as u64,
            evidence,
        });
    }
    Ok(Some(explanation))
}

/// The narrative for a clinical lead.
pub fn narrative(def: &Definition, index: NaiveDate, e: &Explanation) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{} — {}, index date {index}", def.key(), def.title);
    let status = Status::parse(&e.status);
    let _ = writeln!(
        out,
        "Person {} registered at {} on the index date.",
        e.person_key,
        match (e.practice.as_deref(), status) {
            (Some(p), _) => p,
            (None, Some(Status::RegisteredOutsideNetwork)) => "no practice of the network",
            (None, _) => "no practice",
        }
    );
    if status != Some(Status::InPopulation) {
        let why = match status {
            Some(Status::NotRegistered) => {
                "not in the base population: no qualifying registration on the index date"
                    .to_string()
            }
            Some(Status::RegisteredOutsideNetwork) => {
                "not in the base population: registered on the index date at an organisation \
                 whose own extract is not in the store, as a practice's registration history \
                 shows"
                    .to_string()
            }
            Some(Status::Unavailable) => {
                let _ = writeln!(
                    out,
                    "Not evaluated — practice {} is unavailable for this cohort (its extract lacks a table the cohort needs, or its data in the store is damaged or incomplete: see the run's warnings); this is neither an inclusion nor an exclusion.",
                    e.practice.as_deref().unwrap_or("?")
                );
                return out;
            }
            Some(Status::TestPatient) => "not in the base population: a test patient".into(),
            Some(Status::Died) => {
                "not in the base population: died on or before the index date".into()
            }
            Some(Status::RegistrationTooShort) => format!(
                "not in the base population: registered for less than {}",
                def.population
                    .registered_for
                    .map(|p| p.to_string())
                    .unwrap_or_default()
            ),
            Some(Status::AgeUnknown) => "not in the base population: date of birth unknown".into(),
            Some(Status::AgeOutOfRange) => format!(
                "not in the base population: age at the index date outside {}",
                age_range(def)
            ),
            _ => format!("status {}", e.status),
        };
        let _ = writeln!(out, "Excluded — {why}.");
        return out;
    }
    let decision = match e.included {
        Some(true) => "Included",
        Some(false) => "Excluded",
        // In the base population with no decision: undetermined.
        None => "Undetermined — neither included nor excluded",
    };
    let deciding = e.deciding_rule.as_deref().unwrap_or("?");
    let rule_no = def.rules.iter().position(|r| r.name == deciding);
    match rule_no {
        Some(i) if e.included.is_none() => {
            let _ = writeln!(
                out,
                "{decision}: rule {} ({deciding}) could not decide, and the decision depends on it.",
                i + 1
            );
        }
        Some(i) => {
            let _ = writeln!(out, "{decision}: rule {} ({deciding}).", i + 1);
        }
        None if deciding == OTHERWISE => {
            let _ = writeln!(
                out,
                "{decision}: no rule fired; otherwise {}.",
                action(def.otherwise)
            );
        }
        None => {
            let _ = writeln!(out, "{decision}: {deciding}.");
        }
    }
    let verdicts: BTreeMap<&str, &CriterionExplanation> = e
        .criteria
        .iter()
        .map(|c| (c.criterion.as_str(), c))
        .collect();
    let truth = |name: &str| verdicts.get(name).map_or(Some(false), |c| c.verdict);
    let _ = writeln!(out, "Rules, in order:");
    let decided_at = rule_no.unwrap_or(def.rules.len());
    for (i, rule) in def.rules.iter().enumerate() {
        let holds = eval(&rule.when, &truth);
        let outcome = if i > decided_at {
            "not reached"
        } else {
            match (holds, rule.then) {
                (Some(true), Action::Select) => "holds → selected",
                (Some(true), Action::Reject) => "holds → rejected",
                (Some(false), _) => "does not hold → next rule",
                (None, _) if i == decided_at && e.included.is_none() => {
                    "undetermined: it may or may not hold, and the decision depends on it"
                }
                (None, _) => "undetermined, but every way it could go ends in the same decision",
            }
        };
        let _ = writeln!(
            out,
            "  {}. {} — {} when {}: {outcome}",
            i + 1,
            rule.name,
            action(rule.then),
            rule.when
        );
    }
    let _ = writeln!(out, "Criteria:");
    for c in &def.criteria {
        let Some(x) = verdicts.get(c.name.as_str()) else {
            continue;
        };
        let _ = writeln!(
            out,
            "  {} [{}] — {}: {}",
            c.name,
            match x.verdict {
                Some(true) => "true",
                Some(false) => "false",
                None => "undetermined",
            },
            describe(def, c),
            result(c, x)
        );
    }
    if e.included == Some(false) {
        match &e.near_miss_rule {
            Some(rule) => {
                let _ = writeln!(
                    out,
                    "Near miss: only rule \"{rule}\" stands between this person and the cohort."
                );
            }
            None => {
                let _ = writeln!(out, "Not a near miss.");
            }
        }
    }
    out
}

/// Three-valued, as the rules are (`None`: undetermined).
fn eval(e: &Expr, truth: &dyn Fn(&str) -> Option<bool>) -> Option<bool> {
    match e {
        Expr::Criterion(c) => truth(c),
        Expr::Not(x) => eval(x, truth).map(|v| !v),
        Expr::And(xs) => {
            let vs: Vec<Option<bool>> = xs.iter().map(|x| eval(x, truth)).collect();
            if vs.contains(&Some(false)) {
                Some(false)
            } else if vs.contains(&None) {
                None
            } else {
                Some(true)
            }
        }
        Expr::Or(xs) => {
            let vs: Vec<Option<bool>> = xs.iter().map(|x| eval(x, truth)).collect();
            if vs.contains(&Some(true)) {
                Some(true)
            } else if vs.contains(&None) {
                None
            } else {
                Some(false)
            }
        }
    }
}

fn action(a: Action) -> &'static str {
    match a {
        Action::Select => "select",
        Action::Reject => "reject",
    }
}

fn age_range(def: &Definition) -> String {
    match (def.population.age_min, def.population.age_max) {
        (Some(a), Some(b)) => format!("{a}–{b} years"),
        (Some(a), None) => format!("{a} years or over"),
        (None, Some(b)) => format!("{b} years or under"),
        (None, None) => "any age".into(),
    }
}

/// "latest DM_COD on or before index" and the like.
pub fn describe(def: &Definition, c: &Criterion) -> String {
    let what = if c.any_code {
        "any medication".to_string()
    } else {
        c.valuesets
            .iter()
            .map(|id| match def.valuesets.get(id) {
                Some(v) => format!("{id}@{v}"),
                None => id.clone(),
            })
            .collect::<Vec<_>>()
            .join(" or ")
    };
    let noun = match c.table {
        Table::Medications => "issue",
        _ => "event",
    };
    let kind = match c.kind {
        Kind::Exists => format!("any {what} {noun}"),
        Kind::Count {
            op,
            n,
            distinct_codes,
        } => {
            let op = match op {
                super::model::CountOp::AtLeast => "at least",
                super::model::CountOp::AtMost => "at most",
                super::model::CountOp::Exactly => "exactly",
            };
            let unit = if distinct_codes {
                "distinct codes".to_string()
            } else {
                format!("{noun}s")
            };
            format!("{op} {n} {unit} of {what}")
        }
        Kind::First => format!("first {what} {noun}"),
        Kind::Latest => format!("latest {what} {noun}"),
        Kind::Min => format!("lowest {what} value"),
        Kind::Max => format!("highest {what} value"),
        Kind::Apart { days } => format!("two {what} {noun}s at least {days} days apart"),
    };
    let mut text = kind;
    if let Some(v) = c.value {
        let op = match v.op {
            Cmp::Lt => "below",
            Cmp::Le => "at most",
            Cmp::Gt => "above",
            Cmp::Ge => "at least",
        };
        let _ = write!(text, ", value {op} {} {}", v.threshold, v.unit);
    }
    if let Some(lower) = &c.window.lower {
        let _ = write!(text, ", {}", bound(lower, true));
    }
    let _ = write!(text, ", {}", bound(&c.window.upper, false));
    text
}

fn bound(b: &Bound, lower: bool) -> String {
    let word = match (lower, b.inclusive) {
        (true, true) => "on or after",
        (true, false) => "after",
        (false, true) => "on or before",
        (false, false) => "before",
    };
    let anchor = match &b.anchor {
        Anchor::Index => "index".to_string(),
        Anchor::Criterion(c) => c.clone(),
    };
    let mut offset = String::new();
    for (n, unit) in [(b.months, "month"), (b.days, "day")] {
        if n != 0 {
            let sign = if n < 0 { '-' } else { '+' };
            let plural = if n.abs() == 1 { "" } else { "s" };
            let _ = write!(offset, " {sign} {} {unit}{plural}", n.abs());
        }
    }
    format!("{word} {anchor}{offset}")
}

fn result(c: &Criterion, x: &CriterionExplanation) -> String {
    let mut text = String::new();
    if x.verdict.is_none() {
        text.push_str("undetermined: ");
    }
    text.push_str(&match x.reason.as_str() {
        "met" => "met".to_string(),
        "no_events" => "no matching event in the window".to_string(),
        "not_met" => "events found, but the test failed".to_string(),
        "anchor_missing" => "the criterion it is anchored on chose no event".to_string(),
        "unit_refused" => {
            "the deciding value's unit is missing, unknown or not convertible".to_string()
        }
        "no_value" => "the deciding event has no value".to_string(),
        "tie_disagrees" => {
            "events on the same day tie for the deciding position and would decide differently"
                .to_string()
        }
        other => other.to_string(),
    });
    match c.kind {
        Kind::Count { .. } | Kind::Exists | Kind::Apart { .. } => {
            let _ = write!(text, "; {} qualifying", x.count);
        }
        _ => {}
    }
    if let Some(v) = x.value {
        match c.kind {
            Kind::Apart { .. } => {
                let _ = write!(text, "; {v} days between earliest and latest");
            }
            _ => {
                let unit = c.value.map(|t| t.unit).unwrap_or("");
                let _ = write!(text, "; deciding value {} {unit}", round(v));
            }
        }
    }
    if x.refused > 0 {
        let _ = write!(text, "; {} value(s) refused for their unit", x.refused);
    }
    if let Some(ev) = &x.evidence {
        let _ = write!(text, "\n      evidence: {}", evidence(ev));
    }
    text
}

fn round(v: f64) -> String {
    let r = (v * 100.0).round() / 100.0;
    format!("{r}")
}

fn evidence(ev: &Evidence) -> String {
    let mut text = String::new();
    if let Some(code) = ev.concept {
        let _ = write!(text, "{code}");
    } else if let Some(code) = &ev.source_code {
        let _ = write!(text, "{code}");
    }
    if let Some(term) = &ev.term {
        let _ = write!(text, " |{term}|");
    }
    match ev.date {
        Some(d) => {
            let _ = write!(text, " on {d}");
            if let Some(p) = ev.precision.as_deref().filter(|p| !p.starts_with("YMD")) {
                let _ = write!(text, " (precision {p})");
            }
        }
        None => text.push_str(" undated"),
    }
    if let Some(v) = ev.value {
        let _ = write!(
            text,
            ", value {}{} {}",
            ev.comparator.as_deref().unwrap_or(""),
            v,
            ev.unit.as_deref().unwrap_or("(no unit)")
        );
    }
    let _ = write!(
        text,
        " at {} ({}, {} row {}, source code {} {}, {})",
        ev.practice.as_deref().unwrap_or("?"),
        ev.supplier.as_deref().unwrap_or("?").to_uppercase(),
        ev.source_table.as_deref().unwrap_or("?"),
        ev.source_row_id.as_deref().unwrap_or("?"),
        ev.code_system.as_deref().unwrap_or("?"),
        ev.source_code.as_deref().unwrap_or("?"),
        ev.mapping_kind.as_deref().unwrap_or("?")
    );
    text
}
