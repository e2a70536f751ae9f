//! One criterion: its keys checked against its kind and table, its value test
//! and window read; then the windows' anchors resolved, checked for cycles and
//! put in dependency order. Semantics: `docs/cohort-language.md` "Criteria".

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use toml::Spanned;

use super::{Cx, valid_name, window};
use crate::canonical::units::{canonical_unit, known_units};
use crate::cohort::Result;
use crate::cohort::model::{
    Anchor, Bound, Cmp, CountOp, Criterion, Kind, Table, ValueTest, Window,
};
use crate::valueset::Catalogue;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CriterionFile {
    description: Option<String>,
    kind: Spanned<String>,
    table: Option<Spanned<String>>,
    valueset: Option<Spanned<toml::Value>>,
    any_code: Option<Spanned<bool>>,
    window: Option<Spanned<WindowFile>>,
    value: Option<Spanned<ValueFile>>,
    at_least: Option<Spanned<u64>>,
    at_most: Option<Spanned<u64>>,
    exactly: Option<Spanned<u64>>,
    distinct: Option<Spanned<bool>>,
    days: Option<Spanned<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WindowFile {
    after: Option<Spanned<String>>,
    on_or_after: Option<Spanned<String>>,
    before: Option<Spanned<String>>,
    on_or_before: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ValueFile {
    below: Option<Spanned<f64>>,
    at_most: Option<Spanned<f64>>,
    above: Option<Spanned<f64>>,
    at_least: Option<Spanned<f64>>,
    unit: Spanned<String>,
}

/// A criterion that passed the checks that need only itself.
#[derive(Debug, Clone)]
pub(super) struct Checked {
    pub criterion: Criterion,
    /// Offset of the criterion's name.
    pub at: usize,
    /// Offset of its window (of its name when it has none).
    pub window_at: usize,
    /// Criteria its window names, with the offset of each name.
    pub anchors: Vec<(String, usize)>,
}

/// The word for a kind, as written in a definition.
pub fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Exists => "exists",
        Kind::Count { .. } => "count",
        Kind::First => "first",
        Kind::Latest => "latest",
        Kind::Min => "min",
        Kind::Max => "max",
        Kind::Apart { .. } => "apart",
    }
}

const KINDS: &str = "exists, count, first, latest, min, max, apart";

pub(super) fn check(
    cx: &Cx,
    name: &Spanned<String>,
    c: &Spanned<CriterionFile>,
    pins: &BTreeMap<String, (String, usize)>,
    catalogue: &Catalogue,
    used_sets: &mut BTreeSet<String>,
) -> Result<Checked> {
    let at = name.span().start;
    let n = name.get_ref().as_str();
    if !valid_name(n) {
        return Err(cx.err(
            at,
            format!(
                "criterion name {n:?} is not snake_case or is a reserved word (and, or, not, index); hint: e.g. dm_latest"
            ),
        ));
    }
    let f = c.get_ref();
    let table = match f
        .table
        .as_ref()
        .map(|t| (t.get_ref().as_str(), t.span().start))
    {
        None | Some(("events", _)) => Table::Events,
        Some(("medications", _)) => Table::Medications,
        Some((other, t)) => {
            return Err(cx.err(
                t,
                format!(
                    "criterion `{n}`: table {other:?} is neither \"events\" nor \"medications\""
                ),
            ));
        }
    };

    let mut counts: Vec<(&str, CountOp, &Spanned<u64>)> = [
        ("at_least", CountOp::AtLeast, &f.at_least),
        ("at_most", CountOp::AtMost, &f.at_most),
        ("exactly", CountOp::Exactly, &f.exactly),
    ]
    .into_iter()
    .filter_map(|(k, op, v)| v.as_ref().map(|v| (k, op, v)))
    .collect();
    counts.sort_by_key(|(_, _, v)| v.span().start);
    let kind_at = f.kind.span().start;
    let kind = match f.kind.get_ref().as_str() {
        "exists" => Kind::Exists,
        "first" => Kind::First,
        "latest" => Kind::Latest,
        "min" => Kind::Min,
        "max" => Kind::Max,
        "count" => match counts.as_slice() {
            [] => {
                return Err(cx.err(
                    kind_at,
                    format!(
                        "criterion `{n}`: kind \"count\" needs one of at_least, at_most, exactly; hint: e.g. at_least = 2"
                    ),
                ));
            }
            [(_, op, v)] => Kind::Count {
                op: *op,
                n: *v.get_ref(),
                distinct_codes: f.distinct.as_ref().is_some_and(|d| *d.get_ref()),
            },
            [(a, ..), (b, _, v), ..] => {
                return Err(cx.err(
                    v.span().start,
                    format!(
                        "criterion `{n}`: kind \"count\" has both `{a}` and `{b}`; hint: keep exactly one of at_least, at_most, exactly"
                    ),
                ));
            }
        },
        "apart" => match &f.days {
            Some(d) => Kind::Apart { days: *d.get_ref() },
            None => {
                return Err(cx.err(
                    kind_at,
                    format!("criterion `{n}`: kind \"apart\" needs `days`; hint: e.g. days = 90"),
                ));
            }
        },
        other => {
            return Err(cx.err(
                kind_at,
                format!("criterion `{n}`: unknown kind {other:?}; hint: one of {KINDS}"),
            ));
        }
    };
    let kind_word = kind_name(kind);

    // Keys that belong to other kinds.
    let not_here = |key: &str, key_at: usize, belongs: &str| {
        cx.err(
            key_at,
            format!(
                "criterion `{n}`: `{key}` is not allowed on kind \"{kind_word}\"; hint: {belongs}"
            ),
        )
    };
    if !matches!(kind, Kind::Count { .. }) {
        if let Some((key, _, v)) = counts.first() {
            return Err(not_here(
                key,
                v.span().start,
                "it belongs to kind \"count\"; a threshold on the value is `value = { at_least = N, unit = \"...\" }`",
            ));
        }
        if let Some(d) = &f.distinct {
            return Err(not_here(
                "distinct",
                d.span().start,
                "it belongs to kind \"count\"",
            ));
        }
    }
    if !matches!(kind, Kind::Apart { .. })
        && let Some(d) = &f.days
    {
        return Err(not_here(
            "days",
            d.span().start,
            "it belongs to kind \"apart\"; a time limit is a `window`",
        ));
    }

    // The value test.
    let value = match &f.value {
        Some(v) if table == Table::Medications => {
            return Err(cx.err(
                v.span().start,
                format!(
                    "criterion `{n}`: `value` is not allowed on medications; hint: medication issues carry no value"
                ),
            ));
        }
        Some(v) => Some(value_test(cx, n, v)?),
        None if matches!(kind, Kind::Min | Kind::Max) => {
            return Err(cx.err(
                kind_at,
                format!(
                    "criterion `{n}`: kind \"{kind_word}\" needs `value`; hint: e.g. value = {{ at_most = 58, unit = \"mmol/mol\" }}"
                ),
            ));
        }
        None => None,
    };

    // What it matches.
    let any_code = f.any_code.as_ref().is_some_and(|a| *a.get_ref());
    if let Some(a) = &f.any_code
        && table != Table::Medications
    {
        return Err(cx.err(
            a.span().start,
            format!(
                "criterion `{n}`: `any_code` is for medications only; hint: events match a `valueset`"
            ),
        ));
    }
    let valuesets = match &f.valueset {
        None if any_code => Vec::new(),
        None => {
            return Err(cx.err(
                at,
                format!(
                    "criterion `{n}` has no `valueset`; hint: valueset = \"ID\" (or any_code = true for every medication issue)"
                ),
            ));
        }
        Some(v) if any_code => {
            return Err(cx.err(
                v.span().start,
                format!(
                    "criterion `{n}`: `valueset` and `any_code = true` together; hint: keep one"
                ),
            ));
        }
        Some(v) => {
            let ids = set_ids(v.get_ref()).ok_or_else(|| {
                cx.err(
                    v.span().start,
                    format!(
                        "criterion `{n}`: valueset = {} is not an id or a list of ids; hint: valueset = \"DM_COD\" or [\"MODFRAIL_COD\", \"SEVFRAIL_COD\"]",
                        v.get_ref()
                    ),
                )
            })?;
            for id in &ids {
                if !pins.contains_key(id) {
                    let hint = match catalogue.resolve(id, None) {
                        Ok(set) => format!("add {id} = \"{}\" to [valuesets]", set.version),
                        Err(_) => format!(
                            "{id} is not in the catalogue either; `phm valueset list` shows the ids"
                        ),
                    };
                    return Err(cx.err(
                        v.span().start,
                        format!(
                            "criterion `{n}`: value set {id} is used but not pinned in [valuesets]; hint: {hint}"
                        ),
                    ));
                }
                used_sets.insert(id.clone());
            }
            ids
        }
    };

    let (window, anchors, window_at) = match &f.window {
        None => (
            Window {
                lower: None,
                upper: on_or_before_index(),
            },
            Vec::new(),
            at,
        ),
        Some(w) => {
            let (window, anchors) = read_window(cx, n, w)?;
            (window, anchors, w.span().start)
        }
    };

    Ok(Checked {
        criterion: Criterion {
            name: n.to_string(),
            description: f.description.clone(),
            table,
            valuesets,
            any_code,
            kind,
            window,
            value,
        },
        at,
        window_at,
        anchors,
    })
}

/// `"ID"` or `["ID", ...]` (at least one; repeats dropped).
fn set_ids(v: &toml::Value) -> Option<Vec<String>> {
    let mut ids = match v {
        toml::Value::String(s) => vec![s.clone()],
        toml::Value::Array(items) if !items.is_empty() => items
            .iter()
            .map(|i| i.as_str().map(str::to_string))
            .collect::<Option<_>>()?,
        _ => return None,
    };
    let mut seen = BTreeSet::new();
    ids.retain(|id| seen.insert(id.clone()));
    Some(ids)
}

fn on_or_before_index() -> Bound {
    Bound {
        anchor: Anchor::Index,
        months: 0,
        days: 0,
        inclusive: true,
    }
}

fn value_test(cx: &Cx, n: &str, v: &Spanned<ValueFile>) -> Result<ValueTest> {
    let f = v.get_ref();
    let mut ops: Vec<(&str, Cmp, &Spanned<f64>)> = [
        ("below", Cmp::Lt, &f.below),
        ("at_most", Cmp::Le, &f.at_most),
        ("above", Cmp::Gt, &f.above),
        ("at_least", Cmp::Ge, &f.at_least),
    ]
    .into_iter()
    .filter_map(|(k, op, t)| t.as_ref().map(|t| (k, op, t)))
    .collect();
    ops.sort_by_key(|(_, _, t)| t.span().start);
    let (op, threshold) = match ops.as_slice() {
        [] => {
            return Err(cx.err(
                v.span().start,
                format!(
                    "criterion `{n}`: the value test has no operator; hint: one of below, at_most, above, at_least, e.g. {{ below = 60, unit = \"mL/min/1.73m2\" }}"
                ),
            ));
        }
        [(_, op, t)] => (*op, t),
        [(a, ..), (b, _, t), ..] => {
            return Err(cx.err(
                t.span().start,
                format!(
                    "criterion `{n}`: the value test has both `{a}` and `{b}`; hint: one operator per test; a range is two criteria"
                ),
            ));
        }
    };
    if !threshold.get_ref().is_finite() {
        return Err(cx.err(
            threshold.span().start,
            format!(
                "criterion `{n}`: threshold {} is not a finite number",
                threshold.get_ref()
            ),
        ));
    }
    let unit = canonical_unit(f.unit.get_ref()).ok_or_else(|| {
        cx.err(
            f.unit.span().start,
            format!(
                "criterion `{n}`: unknown unit {:?}; hint: known units: {}",
                f.unit.get_ref(),
                known_units().collect::<Vec<_>>().join(", ")
            ),
        )
    })?;
    Ok(ValueTest {
        op,
        threshold: *threshold.get_ref(),
        unit,
    })
}

fn read_window(
    cx: &Cx,
    n: &str,
    w: &Spanned<WindowFile>,
) -> Result<(Window, Vec<(String, usize)>)> {
    let f = w.get_ref();
    let mut anchors = Vec::new();
    let mut side = |keys: [(&str, &Option<Spanned<String>>, bool); 2],
                    which: &str|
     -> Result<Option<Bound>> {
        let mut given: Vec<(&str, &Spanned<String>, bool)> = keys
            .into_iter()
            .filter_map(|(k, s, inclusive)| s.as_ref().map(|s| (k, s, inclusive)))
            .collect();
        given.sort_by_key(|(_, s, _)| s.span().start);
        let (key, s, inclusive) = match given.as_slice() {
            [] => return Ok(None),
            [one] => *one,
            [(a, ..), (b, s, _), ..] => {
                return Err(cx.err(
                    s.span().start,
                    format!(
                        "criterion `{n}`: the window has two {which} bounds (`{a}` and `{b}`); hint: keep one"
                    ),
                ));
            }
        };
        let base = cx.content(s);
        let parsed = window::bound(s.get_ref(), inclusive).map_err(|(off, message)| {
            cx.err(base + off, format!("criterion `{n}`: {key}: {message}"))
        })?;
        if let Anchor::Criterion(c) = &parsed.bound.anchor {
            anchors.push((c.clone(), base + parsed.anchor_at));
        }
        Ok(Some(parsed.bound))
    };
    let lower = side(
        [
            ("after", &f.after, false),
            ("on_or_after", &f.on_or_after, true),
        ],
        "lower",
    )?;
    let upper = side(
        [
            ("before", &f.before, false),
            ("on_or_before", &f.on_or_before, true),
        ],
        "upper",
    )?
    .unwrap_or_else(on_or_before_index);
    if let Some(lower) = &lower
        && lower.anchor == upper.anchor
        && !window::can_hold_a_date(lower, &upper)
    {
        let word = |b: &Bound, lower: bool| match (lower, b.inclusive) {
            (true, false) => "after",
            (true, true) => "on or after",
            (false, false) => "before",
            (false, true) => "on or before",
        };
        let anchor = match &lower.anchor {
            Anchor::Index => "index".to_string(),
            Anchor::Criterion(c) => format!("`{c}`"),
        };
        return Err(cx.err(
            w.span().start,
            format!(
                "criterion `{n}`: the window is empty whatever the {anchor} date: no date is {} {} and {} {}; hint: check the offsets (without an upper bound a window ends on or before index)",
                word(lower, true),
                super::bound_text(lower),
                word(&upper, false),
                super::bound_text(&upper),
            ),
        ));
    }
    Ok((Window { lower, upper }, anchors))
}

/// Resolves the windows' anchors and orders the criteria: a criterion comes
/// after the criteria its window names, file order otherwise.
pub(super) fn order(cx: &Cx, checked: &[Checked]) -> Result<Vec<Criterion>> {
    let index: BTreeMap<&str, usize> = checked
        .iter()
        .enumerate()
        .map(|(i, c)| (c.criterion.name.as_str(), i))
        .collect();
    let mut deps: Vec<Vec<usize>> = Vec::new();
    for c in checked {
        let n = &c.criterion.name;
        let mut d = Vec::new();
        for (a, at) in &c.anchors {
            let Some(&j) = index.get(a.as_str()) else {
                let names: Vec<&str> = index.keys().copied().collect();
                return Err(cx.err(
                    *at,
                    format!(
                        "criterion `{n}`: the window names `{a}`, which is not a criterion; hint: criteria: {}",
                        names.join(", ")
                    ),
                ));
            };
            let kind = checked[j].criterion.kind;
            if !kind.chooses_event() {
                return Err(cx.err(
                    *at,
                    format!(
                        "criterion `{n}`: the window is anchored on `{a}`, of kind \"{}\", which chooses no event; hint: anchor on a criterion of kind first, latest, min or max",
                        kind_name(kind)
                    ),
                ));
            }
            d.push(j);
        }
        deps.push(d);
    }

    // Cycles: depth-first, in file order.
    fn visit(
        i: usize,
        deps: &[Vec<usize>],
        state: &mut [u8],
        stack: &mut Vec<usize>,
    ) -> Option<Vec<usize>> {
        match state[i] {
            2 => return None,
            1 => {
                let from = stack.iter().position(|&s| s == i).expect("on the stack");
                let mut chain = stack[from..].to_vec();
                chain.push(i);
                return Some(chain);
            }
            _ => {}
        }
        state[i] = 1;
        stack.push(i);
        for &j in &deps[i] {
            if let Some(chain) = visit(j, deps, state, stack) {
                return Some(chain);
            }
        }
        stack.pop();
        state[i] = 2;
        None
    }
    let mut state = vec![0u8; checked.len()];
    for i in 0..checked.len() {
        if let Some(chain) = visit(i, &deps, &mut state, &mut Vec::new()) {
            let names: Vec<&str> = chain
                .iter()
                .map(|&j| checked[j].criterion.name.as_str())
                .collect();
            return Err(cx.err(
                checked[chain[0]].window_at,
                format!(
                    "criteria form a cycle through their windows: {} (each window is anchored on the next); hint: a window may only name criteria that do not depend on it",
                    names.join(" -> ")
                ),
            ));
        }
    }

    // Dependency order, stable by file order.
    let mut placed = vec![false; checked.len()];
    let mut out = Vec::with_capacity(checked.len());
    while out.len() < checked.len() {
        let next = (0..checked.len())
            .find(|&i| !placed[i] && deps[i].iter().all(|&j| placed[j]))
            .expect("no cycles");
        placed[next] = true;
        out.push(checked[next].criterion.clone());
    }
    Ok(out)
}
