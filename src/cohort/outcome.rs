//! What a cohort run decides for one person, in a form both the DataFusion
//! engine (read back from its output files) and the reference evaluator
//! produce, so the two can be compared person by person.

use std::collections::BTreeMap;

/// Where a person stands against the base population, checked in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Status {
    /// No usable registration of an allowed type on the index date.
    NotRegistered,
    /// The registration at index is at an organisation whose own extract is
    /// not in the store (known from another practice's registration history):
    /// registered, but at no practice of the network.
    RegisteredOutsideNetwork,
    /// Registered at a practice whose capability profile lacks a table the
    /// cohort needs: not evaluated, never counted as absent.
    Unavailable,
    TestPatient,
    /// Died on or before the index date.
    Died,
    RegistrationTooShort,
    /// No date of birth while the cohort has age bounds.
    AgeUnknown,
    AgeOutOfRange,
    InPopulation,
}

impl Status {
    pub const ALL: [Status; 9] = [
        Status::NotRegistered,
        Status::RegisteredOutsideNetwork,
        Status::Unavailable,
        Status::TestPatient,
        Status::Died,
        Status::RegistrationTooShort,
        Status::AgeUnknown,
        Status::AgeOutOfRange,
        Status::InPopulation,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Status::NotRegistered => "not_registered",
            Status::RegisteredOutsideNetwork => "registered_outside_network",
            Status::Unavailable => "unavailable",
            Status::TestPatient => "test_patient",
            Status::Died => "died",
            Status::RegistrationTooShort => "registration_too_short",
            Status::AgeUnknown => "age_unknown",
            Status::AgeOutOfRange => "age_out_of_range",
            Status::InPopulation => "in_population",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.name() == s)
    }
}

/// Why a criterion came out as it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    Met,
    /// No event with a code in the value set(s) inside the window.
    NoEvents,
    /// Events were found but the count, spacing or value test failed.
    NotMet,
    /// The window is anchored on a criterion that chose no event.
    AnchorMissing,
    /// The deciding value's unit is missing, unknown or cannot be converted.
    UnitRefused,
    /// The deciding event carries no numeric value.
    NoValue,
    /// Same-day events tie for the deciding position and their verdicts
    /// differ: which one decides is storage order, not clinical fact.
    TieDisagrees,
    /// An event with a partial date whose period is partly inside the window
    /// could change the verdict.
    PartialDateStraddlesWindow,
}

impl Reason {
    pub const ALL: [Reason; 8] = [
        Reason::Met,
        Reason::NoEvents,
        Reason::NotMet,
        Reason::AnchorMissing,
        Reason::UnitRefused,
        Reason::NoValue,
        Reason::TieDisagrees,
        Reason::PartialDateStraddlesWindow,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Reason::Met => "met",
            Reason::NoEvents => "no_events",
            Reason::NotMet => "not_met",
            Reason::AnchorMissing => "anchor_missing",
            Reason::UnitRefused => "unit_refused",
            Reason::NoValue => "no_value",
            Reason::TieDisagrees => "tie_disagrees",
            Reason::PartialDateStraddlesWindow => "partial_date_straddles_window",
        }
    }

    pub fn parse(s: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.name() == s)
    }
}

/// A verdict in three values (docs/cohort-language.md "Undetermined"):
/// `Some(true)` met, `Some(false)` not met, `None` undetermined — the data
/// that would decide it was refused, is missing, or is ambiguous. In output
/// files an undetermined verdict is a null `verdict`, so SQL's three-valued
/// logic over it is the cohort language's.
pub type Verdict = Option<bool>;

/// The word a verdict is written as: `met`, `not_met`, `undetermined`.
pub fn verdict_name(v: Verdict) -> &'static str {
    match v {
        Some(true) => "met",
        Some(false) => "not_met",
        None => "undetermined",
    }
}

/// One criterion for one person.
#[derive(Debug, Clone, PartialEq)]
pub struct CriterionOutcome {
    pub verdict: Verdict,
    pub reason: Reason,
    /// The deciding event as `practice/source_table/source_row_id`.
    pub evidence: Option<String>,
    /// See docs/cohort-language.md "What a criterion reports".
    pub count: u64,
    pub value: Option<f64>,
    /// Events in the window whose value could not be compared (unit).
    pub refused: u64,
}

/// Everything decided for one person.
#[derive(Debug, Clone, PartialEq)]
pub struct PersonOutcome {
    pub person_key: String,
    /// Practice of the registration on the index date (none if not registered).
    pub practice: Option<String>,
    pub status: Status,
    /// `None` unless the person is in the base population and decided: a
    /// person in the base population with `None` is *undetermined* (see
    /// [`PersonOutcome::outcome`]).
    pub included: Option<bool>,
    /// The rule that decided, or `otherwise`; for an undetermined person, the
    /// first rule whose condition was undetermined.
    pub deciding_rule: Option<String>,
    /// For an excluded person: the one rule whose condition, flipped, would
    /// include them (when exactly one such rule exists).
    pub near_miss_rule: Option<String>,
    /// Evaluated for persons in the base population only.
    pub criteria: BTreeMap<String, CriterionOutcome>,
}

impl PersonOutcome {
    /// `included`, `excluded` or `undetermined` for a person in the base
    /// population; `None` for anyone else (their `status` says why).
    pub fn outcome(&self) -> Option<&'static str> {
        (self.status == Status::InPopulation).then_some(match self.included {
            Some(true) => "included",
            Some(false) => "excluded",
            None => "undetermined",
        })
    }
}

/// The name `deciding_rule` takes when no rule decided.
pub const OTHERWISE: &str = "otherwise";

/// Human-readable differences between two outcome lists (sorted by person key);
/// empty when they agree. Values compare with a relative tolerance of 1e-9.
pub fn differences(a: &[PersonOutcome], b: &[PersonOutcome]) -> Vec<String> {
    let index = |xs: &[PersonOutcome]| -> BTreeMap<String, PersonOutcome> {
        xs.iter()
            .map(|p| (p.person_key.clone(), p.clone()))
            .collect()
    };
    let (a, b) = (index(a), index(b));
    let mut out = Vec::new();
    for key in a
        .keys()
        .chain(b.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        match (a.get(key), b.get(key)) {
            (Some(x), Some(y)) => {
                let mut x2 = x.clone();
                let mut y2 = y.clone();
                for (c, xc) in x2.criteria.iter_mut() {
                    if let Some(yc) = y2.criteria.get_mut(c)
                        && let (Some(xv), Some(yv)) = (xc.value, yc.value)
                        && (xv - yv).abs() <= 1e-9 * xv.abs().max(1.0)
                    {
                        yc.value = xc.value;
                    }
                }
                if x2 != y2 {
                    out.push(format!("{key}:\n  left:  {x2:?}\n  right: {y2:?}"));
                }
            }
            (Some(_), None) => out.push(format!("{key}: only on the left")),
            (None, Some(_)) => out.push(format!("{key}: only on the right")),
            (None, None) => unreachable!(),
        }
    }
    out
}
