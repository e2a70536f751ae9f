//! An independent reference evaluator of `docs/cohort-language.md`: the store
//! read into plain rows ([`load`]), then every person evaluated one at a time
//! in plain Rust. It shares no evaluation code with [`crate::cohort::engine`];
//! the two are run over the same stores by the spec cases and property tests
//! and must agree person by person. It is written to be obviously correct,
//! not fast: use it on small stores only.
//!
//! Section names in the comments ("Base population", "Dates, periods and
//! windows", …) are the doc's.

mod load;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use chrono::{Datelike, Duration, Months, NaiveDate};

use crate::canonical::units::canonical_unit;
use crate::cohort::model::{
    Action, Anchor, Bound, Cmp, CountOp, Criterion, Expr, Kind, Table, ValueTest,
};
use crate::cohort::outcome::{CriterionOutcome, OTHERWISE, PersonOutcome, Reason, Status, Verdict};
use crate::cohort::{Cohort, Error, Result};
use load::{Data, Patient, Record};

/// Every person in the store's patients table evaluated against `cohort` on
/// `index`, sorted by person key.
pub fn evaluate(store: &Path, cohort: &Cohort, index: NaiveDate) -> Result<Vec<PersonOutcome>> {
    // Each person is evaluated over their own rows only; persons come from the
    // patients table.
    load::read(store)?
        .by_person()
        .iter()
        .filter(|(_, rows)| !rows.patients.is_empty())
        .map(|(key, rows)| person(rows, cohort, index, key))
        .collect()
}

fn person(data: &Data, cohort: &Cohort, index: NaiveDate, key: &str) -> Result<PersonOutcome> {
    let (status, practice) = population(data, cohort, index, key);
    let mut out = PersonOutcome {
        person_key: key.to_string(),
        practice,
        status,
        included: None,
        deciding_rule: None,
        near_miss_rule: None,
        criteria: BTreeMap::new(),
    };
    if status != Status::InPopulation {
        return Ok(out);
    }
    // "Criteria": evaluated in the definition's (dependency) order, so every
    // anchor's chosen event is known before a window names it.
    let mut chosen: BTreeMap<&str, Option<Dated<'_>>> = BTreeMap::new();
    for c in &cohort.def.criteria {
        let records: Vec<&Record> = match c.table {
            Table::Medications => &data.medications,
            _ => &data.events,
        }
        .iter()
        .filter(|r| r.person_key == key)
        .collect();
        let (outcome, choice) = criterion(cohort, c, &records, index, &chosen)?;
        chosen.insert(&c.name, choice);
        out.criteria.insert(c.name.clone(), outcome);
    }
    // "Rules and decisions" and "Near misses".
    let verdicts: BTreeMap<&str, Verdict> = out
        .criteria
        .iter()
        .map(|(n, c)| (n.as_str(), c.verdict))
        .collect();
    let conditions: Vec<Verdict> = cohort
        .def
        .rules
        .iter()
        .map(|r| truth(&r.when, &verdicts))
        .collect();
    let (rule, included) = decide(cohort, &conditions);
    out.included = included;
    out.deciding_rule = Some(rule);
    if included == Some(false) {
        let flips: Vec<&str> = (0..conditions.len())
            .filter(|&i| {
                let mut flipped = conditions.clone();
                flipped[i] = flipped[i].map(|c| !c);
                decide(cohort, &flipped).1 == Some(true)
            })
            .map(|i| cohort.def.rules[i].name.as_str())
            .collect();
        // docs/cohort-language.md "Near misses": a rule marked
        // `near_miss = false` is never reported.
        if let [only] = flips[..]
            && cohort
                .def
                .rules
                .iter()
                .any(|r| r.name == only && r.near_miss)
        {
            out.near_miss_rule = Some(only.to_string());
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------- population

/// "Base population": the first failing check, in the doc's order, and the
/// practice of the registration at index.
fn population(
    data: &Data,
    cohort: &Cohort,
    index: NaiveDate,
    key: &str,
) -> (Status, Option<String>) {
    let pop = &cohort.def.population;
    // 1. not_registered: an allowed type, started (known) on or before index,
    // not ended on or before index, about the delivering practice or about an
    // organisation outside the store (a practice in the store speaks for
    // itself); the latest start wins, then a practice in the store, then the
    // greatest organisation code.
    let registration = data
        .registrations
        .iter()
        .filter(|r| r.person_key == key)
        .filter(|r| pop.registration_types.contains(&r.registration_type))
        .filter(|r| r.start_date.is_some_and(|s| s <= index))
        .filter(|r| r.end_date.is_none_or(|e| e > index))
        .map(|r| (r, organisation(r)))
        .filter(|(r, org)| *org == r.practice || !data.capability.contains_key(org))
        .max_by(|(a, a_org), (b, b_org)| {
            let own = |r: &load::Registration, org: &str| r.practice == org;
            (a.start_date, own(a, a_org), a_org).cmp(&(b.start_date, own(b, b_org), b_org))
        });
    let Some((registration, org)) = registration else {
        return (Status::NotRegistered, None);
    };
    // 2. registered_outside_network: the registration at index is about an
    // organisation with no extract in the store.
    if org != registration.practice {
        return (Status::RegisteredOutsideNetwork, None);
    }
    let practice = registration.practice.clone();
    let status = |s: Status| (s, Some(practice.clone()));
    // 3. unavailable: the practice's capability profile lacks a table the
    // cohort reads (a practice with no state file can answer nothing).
    let capability = data.capability.get(&practice);
    let lacks = cohort
        .def
        .tables()
        .into_iter()
        .any(|t| capability.is_none_or(|tables| !tables.iter().any(|n| n == t.name())));
    if lacks {
        return status(Status::Unavailable);
    }
    // The practice's patient record (the lowest patient id if it holds two).
    let record: Option<&Patient> = data
        .patients
        .iter()
        .filter(|p| p.person_key == key && p.practice == practice)
        .min_by(|a, b| a.patient_id.cmp(&b.patient_id));
    // 4. test_patient.
    if record.is_some_and(|p| p.is_test_patient) {
        return status(Status::TestPatient);
    }
    // 5. died on or before the index date.
    if record.is_some_and(|p| p.date_of_death.is_some_and(|d| d <= index)) {
        return status(Status::Died);
    }
    // 6. registration_too_short: started after index − P.
    if let Some(period) = pop.registered_for {
        let (months, days) = period.months_days();
        let since = shift(index, -(months as i32), -(days as i32));
        if registration.start_date.is_some_and(|s| s > since) {
            return status(Status::RegistrationTooShort);
        }
    }
    // 7. age_unknown and 8. age_out_of_range.
    if pop.age_min.is_some() || pop.age_max.is_some() {
        let Some(dob) = record.and_then(|p| p.date_of_birth) else {
            return status(Status::AgeUnknown);
        };
        let age = age(dob, index);
        if pop.age_min.is_some_and(|m| age < m as i64)
            || pop.age_max.is_some_and(|m| age > m as i64)
        {
            return status(Status::AgeOutOfRange);
        }
    }
    status(Status::InPopulation)
}

/// The organisation a registration row is about: its `registered_at` (ODS
/// code, compared without surrounding spaces and case), or the delivering
/// practice when that is null or empty.
fn organisation(r: &load::Registration) -> String {
    match r.registered_at.as_deref().map(|a| a.trim_matches(' ')) {
        None | Some("") => r.practice.clone(),
        Some(at) => at.to_uppercase(),
    }
}

/// The number of birthdays on or before `index`; a 29 February birthday falls
/// on 1 March in years without one.
fn age(dob: NaiveDate, index: NaiveDate) -> i64 {
    let birthday = NaiveDate::from_ymd_opt(index.year(), dob.month(), dob.day())
        .unwrap_or_else(|| NaiveDate::from_ymd_opt(index.year(), 3, 1).unwrap());
    let mut age = (index.year() - dob.year()) as i64;
    if birthday > index {
        age -= 1;
    }
    age
}

/// "Dates, periods and windows": months first (clamping to a shorter month's
/// last day), then exact days.
fn shift(date: NaiveDate, months: i32, days: i32) -> NaiveDate {
    let moved = if months >= 0 {
        date.checked_add_months(Months::new(months as u32))
    } else {
        date.checked_sub_months(Months::new(months.unsigned_abs()))
    };
    moved
        .and_then(|d| d.checked_add_signed(Duration::days(days as i64)))
        .expect("window bounds stay within the calendar")
}

// ---------------------------------------------------------------- criteria

/// A record with a usable date: the period it stands for.
#[derive(Debug, Clone, Copy)]
struct Dated<'a> {
    record: &'a Record,
    /// The event's date (first day of a partial date's period).
    start: NaiveDate,
    /// The period's last day (`start` for a full date).
    end: NaiveDate,
}

impl Dated<'_> {
    /// "Ordering and same-day ties": (date, practice, source_row_id).
    fn key(&self) -> (NaiveDate, &str, &str) {
        (
            self.start,
            &self.record.practice,
            &self.record.source_row_id,
        )
    }

    fn evidence(&self) -> String {
        let r = self.record;
        format!("{}/{}/{}", r.practice, r.source_table, r.source_row_id)
    }
}

/// "Which events have a date": none without a date or with any date flag; a
/// `Y`/`YM` date stands for its whole year/month.
fn dated(record: &Record) -> Option<Dated<'_>> {
    let date = record.date?;
    if record.date_flag.is_some() {
        return None;
    }
    let (start, end) = match record.precision.as_str() {
        "Y" => (
            NaiveDate::from_ymd_opt(date.year(), 1, 1)?,
            NaiveDate::from_ymd_opt(date.year(), 12, 31)?,
        ),
        "YM" => {
            let first = NaiveDate::from_ymd_opt(date.year(), date.month(), 1)?;
            (first, first.checked_add_months(Months::new(1))?.pred_opt()?)
        }
        _ => (date, date),
    };
    Some(Dated { record, start, end })
}

/// A bound's date; `None` when its anchor chose no event.
fn bound_date(
    bound: &Bound,
    index: NaiveDate,
    chosen: &BTreeMap<&str, Option<Dated<'_>>>,
) -> Option<NaiveDate> {
    let anchor = match &bound.anchor {
        Anchor::Index => index,
        Anchor::Criterion(name) => chosen.get(name.as_str()).copied().flatten()?.start,
    };
    Some(shift(anchor, bound.months, bound.days))
}

/// How an event's value stands against a threshold's unit ("Values and units").
#[derive(Debug, Clone, Copy, PartialEq)]
enum Assessed {
    NoValue,
    /// Missing, unknown or inconvertible unit.
    Refused,
    /// The value in the threshold's unit, with its comparator.
    Comparable(f64, Comparator),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Comparator {
    Exact,
    Gt,
    Ge,
    Lt,
    Le,
    /// A comparator phm does not read: never passes a test.
    Unknown,
}

fn assess(record: &Record, unit: &str) -> Assessed {
    let Some(v) = record.value else {
        return Assessed::NoValue;
    };
    let Some(from) = record.unit.as_deref().and_then(canonical_unit) else {
        return Assessed::Refused;
    };
    // The only conversion: HbA1c DCCT % ↔ IFCC mmol/mol, unrounded.
    let v = match (from, unit) {
        (f, t) if f == t => v,
        ("%", "mmol/mol") => (v - 2.15) * 10.929,
        ("mmol/mol", "%") => v / 10.929 + 2.15,
        _ => return Assessed::Refused,
    };
    let comparator = match record.comparator.as_deref().map(str::trim) {
        None | Some("") | Some("=") => Comparator::Exact,
        Some(">") => Comparator::Gt,
        Some(">=") => Comparator::Ge,
        Some("<") => Comparator::Lt,
        Some("<=") => Comparator::Le,
        Some(_) => Comparator::Unknown,
    };
    Assessed::Comparable(v, comparator)
}

/// Whether every value the (value, comparator) interval allows passes `test`.
fn passes(test: &ValueTest, v: f64, comparator: Comparator) -> bool {
    let t = test.threshold;
    match (comparator, test.op) {
        (Comparator::Exact, Cmp::Lt) => v < t,
        (Comparator::Exact, Cmp::Le) => v <= t,
        (Comparator::Exact, Cmp::Gt) => v > t,
        (Comparator::Exact, Cmp::Ge) => v >= t,
        // (v, ∞)
        (Comparator::Gt, Cmp::Gt | Cmp::Ge) => v >= t,
        // [v, ∞)
        (Comparator::Ge, Cmp::Gt) => v > t,
        (Comparator::Ge, Cmp::Ge) => v >= t,
        // (−∞, v)
        (Comparator::Lt, Cmp::Lt | Cmp::Le) => v <= t,
        // (−∞, v]
        (Comparator::Le, Cmp::Lt) => v < t,
        (Comparator::Le, Cmp::Le) => v <= t,
        _ => false,
    }
}

fn passes_test(test: &ValueTest, d: &Dated<'_>) -> bool {
    matches!(assess(d.record, test.unit), Assessed::Comparable(v, c) if passes(test, v, c))
}

/// One criterion for one person's records of its table: the outcome and the
/// event it chose (for windows anchored on it).
/// A criterion's outcome from its verdict, reason, deciding event, count,
/// value and refused values.
fn outcome(
    verdict: Verdict,
    reason: Reason,
    evidence: Option<&Dated<'_>>,
    count: usize,
    value: Option<f64>,
    refused: usize,
) -> CriterionOutcome {
    CriterionOutcome {
        verdict,
        reason,
        evidence: evidence.map(Dated::evidence),
        count: count as u64,
        value,
        refused: refused as u64,
    }
}

fn criterion<'a>(
    cohort: &Cohort,
    c: &Criterion,
    records: &[&'a Record],
    index: NaiveDate,
    chosen: &BTreeMap<&str, Option<Dated<'a>>>,
) -> Result<(CriterionOutcome, Option<Dated<'a>>)> {
    // "Dates, periods and windows": a window anchored on a criterion that
    // chose no event is empty.
    let lower = match &c.window.lower {
        None => None,
        Some(b) => match bound_date(b, index, chosen) {
            Some(d) => Some((d, b.inclusive)),
            None => {
                return Ok((
                    outcome(Some(false), Reason::AnchorMissing, None, 0, None, 0),
                    None,
                ));
            }
        },
    };
    let Some(upper) = bound_date(&c.window.upper, index, chosen) else {
        return Ok((
            outcome(Some(false), Reason::AnchorMissing, None, 0, None, 0),
            None,
        ));
    };
    let upper = (upper, c.window.upper.inclusive);
    // "Value sets": a mapped code in the expansion, or every issue with `any_code`.
    let codes = cohort.codes(c);
    let matches = |r: &Record| match &codes {
        None => true,
        Some(codes) => {
            r.mapping_kind != "unmapped" && r.code.is_some_and(|x| codes.contains(&(x as u64)))
        }
    };
    // Matching events with a date; inside the window when the whole period
    // is inside both bounds; straddling it when part of the period is
    // ("Undetermined": such an event could be inside or outside).
    let lower_ok = |day: NaiveDate| match lower {
        None => true,
        Some((l, true)) => day >= l,
        Some((l, false)) => day > l,
    };
    let upper_ok = |day: NaiveDate| match upper {
        (u, true) => day <= u,
        (u, false) => day < u,
    };
    let dated_matching: Vec<Dated<'a>> = records
        .iter()
        .filter(|r| matches(r))
        .filter_map(|r| dated(r))
        .collect();
    let window: Vec<Dated<'a>> = dated_matching
        .iter()
        .filter(|d| lower_ok(d.start) && upper_ok(d.end))
        .copied()
        .collect();
    let straddling: Vec<Dated<'a>> = dated_matching
        .iter()
        .filter(|d| !(lower_ok(d.start) && upper_ok(d.end)))
        .filter(|d| lower_ok(d.end) && upper_ok(d.start))
        .copied()
        .collect();
    let (base, choice) = over_window(c, window.clone())?;
    if straddling.is_empty() || base.verdict.is_none() {
        return Ok((base, choice));
    }
    // Every verdict the straddling events could lead to, beside the base one.
    let mut possible: Vec<Verdict> = Vec::new();
    match c.kind {
        Kind::First | Kind::Latest => {
            // Each straddling event that would be chosen over the chosen one
            // (or at all, when none was), judged as the chosen event.
            for s in &straddling {
                let beats = match &choice {
                    None => true,
                    Some(ch) if c.kind == Kind::Latest => s.key() > ch.key(),
                    Some(ch) => s.key() < ch.key(),
                };
                if beats {
                    possible.push(over_window(c, vec![*s])?.0.verdict);
                }
            }
        }
        _ => {
            let mut all = window.clone();
            all.extend(straddling.iter().copied());
            let (every, _) = over_window(c, all)?;
            match c.kind {
                // Any count from the base one to every straddling event
                // included can be reached.
                Kind::Count {
                    op: CountOp::Exactly,
                    n,
                    ..
                } => {
                    if (base.count..=every.count).contains(&n) {
                        possible.push(Some(true));
                    }
                    if base.count != n || every.count != n {
                        possible.push(Some(false));
                    }
                }
                // Monotone in the events included: the two ends decide.
                _ => possible.push(every.verdict),
            }
        }
    }
    if possible.iter().any(|v| *v != base.verdict) {
        let open = CriterionOutcome {
            verdict: None,
            reason: Reason::PartialDateStraddlesWindow,
            ..base
        };
        return Ok((open, choice));
    }
    Ok((base, choice))
}

/// A criterion over the matching events inside its window (any order): the
/// outcome and the event it chose.
fn over_window<'a>(
    c: &Criterion,
    mut window: Vec<Dated<'a>>,
) -> Result<(CriterionOutcome, Option<Dated<'a>>)> {
    window.sort_by(|a, b| a.key().cmp(&b.key()));
    // "What a criterion reports": refused counts only with a value test.
    let refused = c.value.map_or(0, |t| {
        window
            .iter()
            .filter(|d| assess(d.record, t.unit) == Assessed::Refused)
            .count()
    });
    let reason = |verdict: bool| {
        if verdict {
            Reason::Met
        } else if window.is_empty() {
            Reason::NoEvents
        } else {
            Reason::NotMet
        }
    };
    Ok(match c.kind {
        // exists / count / apart: the value test filters each event.
        Kind::Exists | Kind::Count { .. } | Kind::Apart { .. } => {
            let qualifying: Vec<&Dated<'a>> = window
                .iter()
                .filter(|d| c.value.is_none_or(|t| passes_test(&t, d)))
                .collect();
            let latest = qualifying.last().copied();
            match c.kind {
                Kind::Exists => {
                    let verdict = !qualifying.is_empty();
                    let o = outcome(
                        Some(verdict),
                        reason(verdict),
                        latest,
                        qualifying.len(),
                        None,
                        refused,
                    );
                    (o, None)
                }
                Kind::Count {
                    op,
                    n,
                    distinct_codes,
                } => {
                    let count = if distinct_codes {
                        let codes: BTreeSet<i64> =
                            qualifying.iter().filter_map(|d| d.record.code).collect();
                        codes.len()
                    } else {
                        qualifying.len()
                    };
                    let verdict = match op {
                        CountOp::AtLeast => count as u64 >= n,
                        CountOp::AtMost => count as u64 <= n,
                        CountOp::Exactly => count as u64 == n,
                    };
                    (
                        outcome(Some(verdict), reason(verdict), latest, count, None, refused),
                        None,
                    )
                }
                Kind::Apart { days } => {
                    let span = match (qualifying.first(), qualifying.last()) {
                        (Some(a), Some(b)) => Some((b.start - a.start).num_days()),
                        _ => None,
                    };
                    let verdict = qualifying.len() >= 2 && span.is_some_and(|s| s >= days as i64);
                    let value = span.map(|s| s as f64);
                    let o = outcome(
                        Some(verdict),
                        reason(verdict),
                        latest,
                        qualifying.len(),
                        value,
                        refused,
                    );
                    (o, None)
                }
                _ => unreachable!(),
            }
        }
        // first / latest: chosen among all matching events in the window,
        // whatever their value; a value test then tests the chosen one.
        Kind::First | Kind::Latest => {
            let choice = if c.kind == Kind::First {
                window.first().copied()
            } else {
                window.last().copied()
            };
            let Some(choice) = choice else {
                return Ok((
                    outcome(Some(false), Reason::NoEvents, None, 0, None, refused),
                    None,
                ));
            };
            let n = window.len();
            let o = match c.value {
                None => outcome(Some(true), Reason::Met, Some(&choice), n, None, refused),
                Some(t) => {
                    // "Undetermined": a value the test cannot read leaves the
                    // verdict open; so do same-day events tied for the chosen
                    // position whose verdicts differ.
                    let judged = |d: &Dated<'_>| match assess(d.record, t.unit) {
                        Assessed::NoValue => (None, Reason::NoValue, None),
                        Assessed::Refused => (None, Reason::UnitRefused, None),
                        Assessed::Comparable(v, cmp) => {
                            let verdict = passes(&t, v, cmp);
                            let reason = if verdict { Reason::Met } else { Reason::NotMet };
                            (Some(verdict), reason, Some(v))
                        }
                    };
                    let (verdict, reason, value) = judged(&choice);
                    let tie_disagrees = window
                        .iter()
                        .filter(|d| d.start == choice.start)
                        .any(|d| judged(d).0 != verdict);
                    if tie_disagrees {
                        outcome(None, Reason::TieDisagrees, Some(&choice), n, value, refused)
                    } else {
                        outcome(verdict, reason, Some(&choice), n, value, refused)
                    }
                }
            };
            (o, Some(choice))
        }
        // min / max: over comparable values (no comparator); ties on value
        // choose the latest event.
        Kind::Min | Kind::Max => {
            let Some(t) = c.value else {
                return Err(Error::Usage(format!(
                    "criterion {}: min/max without a value test",
                    c.name
                )));
            };
            let comparable: Vec<(f64, &Dated<'a>)> = window
                .iter()
                .filter_map(|d| match assess(d.record, t.unit) {
                    Assessed::Comparable(v, Comparator::Exact) => Some((v, d)),
                    _ => None,
                })
                .collect();
            let mut best: Option<(f64, &Dated<'a>)> = None;
            for &(v, d) in &comparable {
                // `comparable` is in event order, so `>=`/`<=` keeps the latest of a tie.
                let better = match best {
                    None => true,
                    Some((b, _)) if c.kind == Kind::Min => v <= b,
                    Some((b, _)) => v >= b,
                };
                if better {
                    best = Some((v, d));
                }
            }
            match best {
                None if window.is_empty() => (
                    outcome(Some(false), Reason::NoEvents, None, 0, None, refused),
                    None,
                ),
                // Matching events but no comparable value: refused units
                // first, then missing values (either leaves the verdict
                // undetermined), else (comparator values only) not_met.
                None => {
                    let no_value = window.iter().any(|d| d.record.value.is_none());
                    let (verdict, reason) = if refused > 0 {
                        (None, Reason::UnitRefused)
                    } else if no_value {
                        (None, Reason::NoValue)
                    } else {
                        (Some(false), Reason::NotMet)
                    };
                    (outcome(verdict, reason, None, 0, None, refused), None)
                }
                Some((v, d)) => {
                    let verdict = passes(&t, v, Comparator::Exact);
                    // "Undetermined": an unreadable value (refused unit, no
                    // value) could be the least/greatest. It cannot undo a
                    // verdict it would only strengthen: a lower minimum still
                    // passes `below`/`at_most`, a higher maximum still passes
                    // `above`/`at_least`.
                    let unread =
                        refused + window.iter().filter(|d| d.record.value.is_none()).count();
                    let downward = matches!(t.op, Cmp::Lt | Cmp::Le);
                    let strengthens = (c.kind == Kind::Min) == downward;
                    let (verdict, reason) = match (verdict, unread > 0) {
                        (true, false) => (Some(true), Reason::Met),
                        (false, false) => (Some(false), Reason::NotMet),
                        (true, true) if strengthens => (Some(true), Reason::Met),
                        (false, true) if !strengthens => (Some(false), Reason::NotMet),
                        _ if refused > 0 => (None, Reason::UnitRefused),
                        _ => (None, Reason::NoValue),
                    };
                    let o = outcome(verdict, reason, Some(d), comparable.len(), Some(v), refused);
                    (o, Some(*d))
                }
            }
        }
    })
}

// ---------------------------------------------------------------- rules

/// A `when` expression over criterion verdicts, in Kleene's three-valued
/// logic (`None` undetermined): `not U = U`; `and` is false if any operand
/// is, else undetermined if any is; `or` is true if any operand is, else
/// undetermined if any is.
fn truth(expr: &Expr, verdicts: &BTreeMap<&str, Verdict>) -> Verdict {
    match expr {
        Expr::Criterion(name) => verdicts.get(name.as_str()).copied().unwrap_or(Some(false)),
        Expr::Not(e) => truth(e, verdicts).map(|v| !v),
        Expr::And(es) => {
            let vs: Vec<Verdict> = es.iter().map(|e| truth(e, verdicts)).collect();
            if vs.contains(&Some(false)) {
                Some(false)
            } else if vs.contains(&None) {
                None
            } else {
                Some(true)
            }
        }
        Expr::Or(es) => {
            let vs: Vec<Verdict> = es.iter().map(|e| truth(e, verdicts)).collect();
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

/// "Rules and decisions": the first rule whose condition holds decides, else
/// `otherwise`. A rule whose condition is undetermined might fire or not: the
/// person is decided only when both ways end in the same decision. Returns
/// (deciding rule, included): the first rule whose condition is true (or
/// `otherwise`) when decided; when undetermined (`None`), the first rule
/// whose condition is undetermined.
fn decide(cohort: &Cohort, conditions: &[Verdict]) -> (String, Option<bool>) {
    // Every decision the person could get, by resolving undetermined
    // conditions either way.
    let mut possible: BTreeSet<bool> = BTreeSet::new();
    let mut first_true: Option<String> = None;
    let mut first_open: Option<String> = None;
    for (rule, &fires) in cohort.def.rules.iter().zip(conditions) {
        match fires {
            Some(true) => {
                possible.insert(rule.then == Action::Select);
                first_true = Some(rule.name.clone());
                break;
            }
            Some(false) => {}
            None => {
                possible.insert(rule.then == Action::Select);
                first_open.get_or_insert_with(|| rule.name.clone());
            }
        }
    }
    if first_true.is_none() {
        possible.insert(cohort.def.otherwise == Action::Select);
    }
    match possible.into_iter().collect::<Vec<_>>()[..] {
        [one] => (
            first_true.unwrap_or_else(|| OTHERWISE.to_string()),
            Some(one),
        ),
        _ => (first_open.expect("an undetermined rule"), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn ages_and_leap_birthdays() {
        assert_eq!(age(d(2008, 2, 29), d(2025, 2, 28)), 16);
        assert_eq!(age(d(2008, 2, 29), d(2025, 3, 1)), 17);
        assert_eq!(age(d(2008, 2, 29), d(2024, 2, 29)), 16);
        assert_eq!(age(d(2008, 3, 31), d(2025, 3, 31)), 17);
        assert_eq!(age(d(2008, 4, 1), d(2025, 3, 31)), 16);
    }

    #[test]
    fn month_arithmetic_clamps() {
        assert_eq!(shift(d(2025, 3, 31), -1, 0), d(2025, 2, 28));
        assert_eq!(shift(d(2024, 2, 29), -12, 0), d(2023, 2, 28));
        assert_eq!(shift(d(2025, 3, 31), -12, 0), d(2024, 3, 31));
        assert_eq!(shift(d(2025, 1, 31), 1, 1), d(2025, 3, 1));
    }

    #[test]
    fn comparator_intervals() {
        let t = |op, threshold| ValueTest {
            op,
            threshold,
            unit: "mL/min/1.73m2",
        };
        assert!(passes(&t(Cmp::Ge, 60.0), 90.0, Comparator::Gt));
        assert!(!passes(&t(Cmp::Lt, 60.0), 90.0, Comparator::Gt));
        assert!(passes(&t(Cmp::Lt, 60.0), 5.0, Comparator::Lt));
        assert!(passes(&t(Cmp::Gt, 90.0), 90.0, Comparator::Gt));
        assert!(!passes(&t(Cmp::Gt, 90.0), 90.0, Comparator::Ge));
        assert!(passes(&t(Cmp::Lt, 60.0), 60.0, Comparator::Lt));
        assert!(!passes(&t(Cmp::Lt, 60.0), 60.0, Comparator::Le));
    }
}
