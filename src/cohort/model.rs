//! The validated cohort definition: what the compiler, the reference evaluator
//! and `explain` consume. Only [`crate::cohort::file`] builds these; every name
//! is resolved, every window checked, criteria are in dependency order.
//!
//! Semantics of every construct: `docs/cohort-language.md`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use chrono::NaiveDate;

/// A definition that passed validation (no terminology or patient data read).
#[derive(Debug, Clone, PartialEq)]
pub struct Definition {
    pub id: String,
    pub version: String,
    pub title: String,
    pub status: String,
    pub owner: String,
    pub description: String,
    /// The rule text the definition follows (e.g. "QOF v49 DM_REG").
    pub source: Option<String>,
    pub index_date: IndexDate,
    /// Value sets by id, with the pinned version.
    pub valuesets: BTreeMap<String, String>,
    pub population: Population,
    /// In dependency order: a criterion comes after the criteria its window names.
    pub criteria: Vec<Criterion>,
    pub rules: Vec<Rule>,
    /// The decision for a person no rule decided.
    pub otherwise: Action,
    /// The file it was read from.
    pub path: PathBuf,
}

impl Definition {
    /// `ID@VERSION`.
    pub fn key(&self) -> String {
        format!("{}@{}", self.id, self.version)
    }

    pub fn criterion(&self, name: &str) -> Option<&Criterion> {
        self.criteria.iter().find(|c| c.name == name)
    }

    /// Canonical tables the definition reads (always patients and registrations).
    pub fn tables(&self) -> BTreeSet<Table> {
        let mut t: BTreeSet<Table> = [Table::Patients, Table::Registrations].into();
        t.extend(self.criteria.iter().map(|c| c.table));
        t
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexDate {
    Fixed(NaiveDate),
    /// Supplied by the run (`--index-date`) or a pipeline.
    Parameter,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Table {
    Patients,
    Registrations,
    Events,
    Medications,
}

impl Table {
    pub fn name(self) -> &'static str {
        match self {
            Table::Patients => "patients",
            Table::Registrations => "registrations",
            Table::Events => "events",
            Table::Medications => "medications",
        }
    }
}

/// The base population at the index date.
#[derive(Debug, Clone, PartialEq)]
pub struct Population {
    /// Registration types that count (canonical `registration_type`), default `["gms"]`.
    pub registration_types: Vec<String>,
    /// The registration at index must have started on or before `index - period`.
    pub registered_for: Option<Period>,
    /// Age in whole years at the index date, bounds inclusive.
    pub age_min: Option<u32>,
    pub age_max: Option<u32>,
}

/// A calendar length: days and weeks are exact; months and years (12 months)
/// clamp to the end of a shorter month.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub amount: u32,
    pub unit: PeriodUnit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeriodUnit {
    Days,
    Weeks,
    Months,
    Years,
}

impl Period {
    /// As (months, days): years are 12 months, weeks 7 days.
    pub fn months_days(self) -> (u32, u32) {
        match self.unit {
            PeriodUnit::Days => (0, self.amount),
            PeriodUnit::Weeks => (0, self.amount * 7),
            PeriodUnit::Months => (self.amount, 0),
            PeriodUnit::Years => (self.amount * 12, 0),
        }
    }
}

impl std::fmt::Display for Period {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let unit = match (self.unit, self.amount) {
            (PeriodUnit::Days, 1) => "day",
            (PeriodUnit::Days, _) => "days",
            (PeriodUnit::Weeks, 1) => "week",
            (PeriodUnit::Weeks, _) => "weeks",
            (PeriodUnit::Months, 1) => "month",
            (PeriodUnit::Months, _) => "months",
            (PeriodUnit::Years, 1) => "year",
            (PeriodUnit::Years, _) => "years",
        };
        write!(f, "{} {unit}", self.amount)
    }
}

/// One named criterion over events or medication issues.
#[derive(Debug, Clone, PartialEq)]
pub struct Criterion {
    pub name: String,
    pub description: Option<String>,
    pub table: Table,
    /// Value set ids (versions in [`Definition::valuesets`]); an event matches
    /// when its code is in any of them. Empty only when `any_code`.
    pub valuesets: Vec<String>,
    /// Every medication issue matches (medications only).
    pub any_code: bool,
    pub kind: Kind,
    pub window: Window,
    /// Events only. For exists/count/apart: a filter on each event; for
    /// first/latest: a test on the chosen event; for min/max: required, a test
    /// on the chosen (minimum/maximum) value.
    pub value: Option<ValueTest>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Exists,
    /// Number of qualifying events (or distinct codes) compared with `n`.
    Count {
        op: CountOp,
        n: u64,
        distinct_codes: bool,
    },
    First,
    Latest,
    Min,
    Max,
    /// Two qualifying events whose dates are at least `days` apart.
    Apart {
        days: u32,
    },
}

impl Kind {
    /// Kinds that choose one event another criterion's window can refer to.
    pub fn chooses_event(self) -> bool {
        matches!(self, Kind::First | Kind::Latest | Kind::Min | Kind::Max)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountOp {
    AtLeast,
    AtMost,
    Exactly,
}

/// Lower and upper bound of a window; `upper` defaults to on-or-before index.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub lower: Option<Bound>,
    pub upper: Bound,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Bound {
    pub anchor: Anchor,
    /// Signed offset from the anchor: months then days (see [`Period`]).
    pub months: i32,
    pub days: i32,
    /// `on_or_after` / `on_or_before` (true) versus `after` / `before` (false).
    pub inclusive: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Anchor {
    Index,
    /// The date of the event another criterion chose.
    Criterion(String),
}

/// A numeric threshold with its canonical unit (`crate::canonical::units`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ValueTest {
    pub op: Cmp,
    pub threshold: f64,
    pub unit: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    /// `below`: <
    Lt,
    /// `at_most`: ≤
    Le,
    /// `above`: >
    Gt,
    /// `at_least`: ≥
    Ge,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub name: String,
    pub description: Option<String>,
    pub when: Expr,
    pub then: Action,
    /// Whether failing this rule alone makes a near miss. `false` for rules
    /// that say who the cohort is about (a diagnosis): everyone without it
    /// would otherwise be a "near miss".
    pub near_miss: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Select,
    Reject,
}

/// Boolean logic over criterion verdicts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    Criterion(String),
    Not(Box<Expr>),
    And(Vec<Expr>),
    Or(Vec<Expr>),
}

impl Expr {
    pub fn criteria(&self, out: &mut BTreeSet<String>) {
        match self {
            Expr::Criterion(c) => {
                out.insert(c.clone());
            }
            Expr::Not(e) => e.criteria(out),
            Expr::And(es) | Expr::Or(es) => es.iter().for_each(|e| e.criteria(out)),
        }
    }
}

impl std::fmt::Display for Expr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let join = |f: &mut std::fmt::Formatter<'_>, es: &[Expr], op: &str| {
            write!(f, "(")?;
            for (i, e) in es.iter().enumerate() {
                if i > 0 {
                    write!(f, " {op} ")?;
                }
                write!(f, "{e}")?;
            }
            write!(f, ")")
        };
        match self {
            Expr::Criterion(c) => write!(f, "{c}"),
            Expr::Not(e) => write!(f, "not {e}"),
            Expr::And(es) => join(f, es, "and"),
            Expr::Or(es) => join(f, es, "or"),
        }
    }
}
