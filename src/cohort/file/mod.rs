//! Cohort definition files, `cohorts/<ID>/<version>.toml`, read into a
//! validated [`Definition`]: the only way one is built.
//!
//! Stages: serde reads the text into [`CohortFile`] (`deny_unknown_fields`,
//! every value that can be wrong kept with its span); [`parse`] checks it
//! against the language and the value set [`Catalogue`] and builds the
//! [`Definition`]. Every error is an [`Error::Definition`] naming the file,
//! line and column of the offending key or value (inside a `when` condition or
//! a window bound, the column of the offending word) and quoting it, with a
//! `hint:` where the fix is obvious. Nothing is read but the file and the
//! catalogue: value sets are expanded later by [`crate::cohort::bind`].
//!
//! Invariants of a [`Definition`] built here: every value set a criterion
//! names is pinned, and every pinned one is used and exists in the catalogue;
//! every window has an upper bound (on or before index when the file gives
//! none), can hold a date when both bounds share an anchor, and names only
//! criteria that choose an event; criteria are in dependency order (anchors
//! first, file order otherwise) and each is used by a rule or a window; no
//! rule repeats an earlier rule's condition.
//!
//! The language: `docs/cohort-language.md`.

mod criteria;
#[cfg(test)]
mod tests;
mod when;
mod window;

pub use criteria::kind_name;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use chrono::NaiveDate;
use serde::Deserialize;
use toml::Spanned;

use super::model::{Action, Anchor, Bound, Definition, IndexDate, Population, Rule};
use super::{Error, Result};
use crate::valueset::catalogue::version_cmp;
use crate::valueset::definition::{split_key, valid_id, valid_version};
use crate::valueset::{Catalogue, Pos};

/// The values of `status`.
pub const STATUSES: [&str; 4] = ["draft", "reviewed", "approved", "retired"];

/// The values of `population.registration` (canonical `registration_type`).
pub const REGISTRATION_TYPES: [&str; 4] = ["gms", "temporary", "private", "other"];

/// A definition file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CohortFile {
    id: Spanned<String>,
    version: Spanned<String>,
    title: String,
    status: Spanned<String>,
    owner: String,
    description: String,
    source: Option<String>,
    index_date: Spanned<String>,
    otherwise: Option<Spanned<String>>,
    #[serde(default)]
    valuesets: BTreeMap<Spanned<String>, Spanned<String>>,
    population: Option<PopulationFile>,
    #[serde(default)]
    criteria: BTreeMap<Spanned<String>, Spanned<criteria::CriterionFile>>,
    #[serde(default)]
    rules: Vec<Spanned<RuleFile>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PopulationFile {
    registration: Option<Spanned<Vec<Spanned<String>>>>,
    age: Option<Spanned<AgeFile>>,
    registered_for: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AgeFile {
    min: Option<u32>,
    max: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    name: Spanned<String>,
    description: Option<String>,
    when: Spanned<String>,
    then: Spanned<String>,
    near_miss: Option<bool>,
}

/// The file being checked: builds errors at byte offsets.
struct Cx<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Cx<'_> {
    fn err(&self, at: usize, message: impl Into<String>) -> Error {
        let pos = Pos::of(self.text, at);
        Error::Definition {
            path: self.path.to_path_buf(),
            line: pos.line,
            column: pos.column,
            message: message.into(),
        }
    }

    fn line(&self, at: usize) -> usize {
        Pos::of(self.text, at).line
    }

    /// The offset of the first character of a string value's content, so an
    /// offset inside the string maps to its column; the opening quote when the
    /// string is written with escapes or on several lines.
    fn content(&self, s: &Spanned<String>) -> usize {
        let span = s.span();
        let raw = self.text.get(span.clone()).unwrap_or("");
        let plain = ["\"", "'"].iter().any(|q| {
            raw.len() >= 2
                && raw.starts_with(q)
                && !raw.starts_with(&q.repeat(3))
                && raw[1..raw.len() - 1] == **s.get_ref()
        });
        if plain { span.start + 1 } else { span.start }
    }
}

/// A criterion name: snake_case, not a word of the condition or bound syntax.
pub(crate) fn valid_name(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
        && !matches!(s, "and" | "or" | "not" | "index")
}

/// Reads and validates one definition file.
pub fn read(path: &Path, catalogue: &Catalogue) -> Result<Definition> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse(path, &text, catalogue)
}

/// Validates a definition's text; `path` names it in errors. The id and
/// version are not compared with the path (see [`load`]).
pub fn parse(path: &Path, text: &str, catalogue: &Catalogue) -> Result<Definition> {
    parse_expecting(path, text, catalogue, None)
}

/// `ID` (the latest version) or `ID@VERSION` from `cohorts_dir/<ID>/<version>.toml`;
/// the id and version in the file must be those of its path.
pub fn load(cohorts_dir: &Path, key: &str, catalogue: &Catalogue) -> Result<Definition> {
    let (id, version) = split_key(key);
    let cohorts = list(cohorts_dir)?;
    let Some((_, versions)) = cohorts.iter().find(|(i, _)| i == id) else {
        let ids: Vec<&str> = cohorts.iter().map(|(i, _)| i.as_str()).collect();
        return Err(Error::Usage(format!(
            "cohort {id:?} not found in {}; hint: cohorts there: {}",
            cohorts_dir.display(),
            if ids.is_empty() {
                "none".into()
            } else {
                ids.join(", ")
            }
        )));
    };
    let version = match version {
        None => versions.last().expect("a listed cohort has a version"),
        Some(v) => versions.iter().find(|x| *x == v).ok_or_else(|| {
            Error::Usage(format!(
                "cohort {id} has no version {v:?}; hint: versions of {id}: {}",
                versions.join(", ")
            ))
        })?,
    };
    let path = cohorts_dir.join(id).join(format!("{version}.toml"));
    let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
        path: path.clone(),
        source,
    })?;
    parse_expecting(&path, &text, catalogue, Some((id, version)))
}

/// Every cohort under `cohorts_dir` (folders holding `<version>.toml` files),
/// by id, with its versions oldest first. Other files are ignored.
pub fn list(cohorts_dir: &Path) -> Result<Vec<(String, Vec<String>)>> {
    let entries = |dir: &Path| -> Result<Vec<std::path::PathBuf>> {
        let io = |source| Error::Io {
            path: dir.to_path_buf(),
            source,
        };
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io)? {
            out.push(entry.map_err(io)?.path());
        }
        out.sort();
        Ok(out)
    };
    if !cohorts_dir.is_dir() {
        return Err(Error::Usage(format!(
            "{}: no such folder; hint: --cohorts takes the folder of <ID>/<version>.toml files",
            cohorts_dir.display()
        )));
    }
    let mut out = Vec::new();
    for folder in entries(cohorts_dir)? {
        let Some(id) = folder.file_name().and_then(|s| s.to_str()) else {
            continue;
        };
        if !folder.is_dir() {
            continue;
        }
        let mut versions: Vec<String> = entries(&folder)?
            .iter()
            .filter(|p| p.is_file() && p.extension().and_then(|e| e.to_str()) == Some("toml"))
            .filter_map(|p| p.file_stem().and_then(|s| s.to_str()).map(str::to_string))
            .collect();
        if versions.is_empty() {
            continue;
        }
        versions.sort_by(|a, b| version_cmp(a, b));
        out.push((id.to_string(), versions));
    }
    Ok(out)
}

fn parse_expecting(
    path: &Path,
    text: &str,
    catalogue: &Catalogue,
    expect: Option<(&str, &str)>,
) -> Result<Definition> {
    let cx = Cx { path, text };
    let file: CohortFile = toml::from_str(text).map_err(|e| {
        let at = e.span().map_or(0, |s| s.start);
        cx.err(at, e.message().trim_end().replace('\n', " "))
    })?;

    let (id, version) = header(&cx, &file, expect)?;
    let index_date = index_date(&cx, &file.index_date)?;
    let otherwise = match &file.otherwise {
        None => Action::Reject,
        Some(o) => action(&cx, o, "otherwise")?,
    };
    let pins = pins(&cx, &file.valuesets, catalogue)?;
    let population = population(&cx, file.population.as_ref())?;

    // Criteria in file order.
    let mut files: Vec<_> = file.criteria.iter().collect();
    files.sort_by_key(|(name, _)| name.span().start);
    let mut used_sets = BTreeSet::new();
    let mut checked = Vec::new();
    for (name, c) in files {
        checked.push(criteria::check(
            &cx,
            name,
            c,
            &pins,
            catalogue,
            &mut used_sets,
        )?);
    }
    for (set, (_, at)) in &pins {
        if !used_sets.contains(set) {
            return Err(cx.err(
                *at,
                format!(
                    "value set {set} is pinned but no criterion uses it; hint: remove `{set} = ...` from [valuesets]"
                ),
            ));
        }
    }
    let criteria = criteria::order(&cx, &checked)?;

    let rules = rules(&cx, &file.rules, &checked)?;

    // Every criterion is used by a rule or a window.
    let mut used = BTreeSet::new();
    rules.iter().for_each(|r| r.when.criteria(&mut used));
    for c in &criteria {
        for b in c.window.lower.iter().chain([&c.window.upper]) {
            if let Anchor::Criterion(name) = &b.anchor {
                used.insert(name.clone());
            }
        }
    }
    if let Some(c) = checked.iter().find(|c| !used.contains(&c.criterion.name)) {
        return Err(cx.err(
            c.at,
            format!(
                "criterion `{}` is used by no rule and no window; hint: remove it, or name it in a rule's `when`",
                c.criterion.name
            ),
        ));
    }

    Ok(Definition {
        id,
        version,
        title: file.title,
        status: file.status.into_inner(),
        owner: file.owner,
        description: file.description,
        source: file.source,
        index_date,
        valuesets: pins.into_iter().map(|(id, (v, _))| (id, v)).collect(),
        population,
        criteria,
        rules,
        otherwise,
        path: path.to_path_buf(),
    })
}

/// Id, version (against the path when `expect` is given) and status.
fn header(cx: &Cx, file: &CohortFile, expect: Option<(&str, &str)>) -> Result<(String, String)> {
    let (id, version) = (file.id.get_ref(), file.version.get_ref());
    if !valid_id(id) {
        return Err(cx.err(
            file.id.span().start,
            format!("id {id:?} is not upper-case letters, digits and `_`; hint: e.g. DM_REG"),
        ));
    }
    if !valid_version(version) {
        return Err(cx.err(
            file.version.span().start,
            format!(
                "version {version:?} is not letters, digits, `.`, `_` and `-`; hint: e.g. 2025.1"
            ),
        ));
    }
    if let Some((want_id, want_version)) = expect {
        if id != want_id {
            return Err(cx.err(
                file.id.span().start,
                format!(
                    "id {id:?} does not match the folder {want_id:?}; hint: the file must be cohorts/<id>/<version>.toml"
                ),
            ));
        }
        if version != want_version {
            return Err(cx.err(
                file.version.span().start,
                format!(
                    "version {version:?} does not match the file name {want_version:?}; hint: the file must be cohorts/<id>/<version>.toml"
                ),
            ));
        }
    }
    let status = file.status.get_ref();
    if !STATUSES.contains(&status.as_str()) {
        return Err(cx.err(
            file.status.span().start,
            format!("status {status:?} is not one of {}", STATUSES.join(", ")),
        ));
    }
    Ok((id.clone(), version.clone()))
}

fn index_date(cx: &Cx, s: &Spanned<String>) -> Result<IndexDate> {
    let v = s.get_ref();
    if v == "parameter" {
        return Ok(IndexDate::Parameter);
    }
    match NaiveDate::parse_from_str(v, "%Y-%m-%d") {
        Ok(d) if v.len() == 10 => Ok(IndexDate::Fixed(d)),
        _ => Err(cx.err(
            s.span().start,
            format!(
                "index_date {v:?} is neither \"parameter\" nor a date; hint: write \"parameter\" or a date such as \"2025-03-31\""
            ),
        )),
    }
}

fn action(cx: &Cx, s: &Spanned<String>, key: &str) -> Result<Action> {
    match s.get_ref().as_str() {
        "select" => Ok(Action::Select),
        "reject" => Ok(Action::Reject),
        other => Err(cx.err(
            s.span().start,
            format!("{key} = {other:?} is neither \"select\" nor \"reject\""),
        )),
    }
}

/// The pinned value sets: id → (version, offset of the id), each in the catalogue.
fn pins(
    cx: &Cx,
    pinned: &BTreeMap<Spanned<String>, Spanned<String>>,
    catalogue: &Catalogue,
) -> Result<BTreeMap<String, (String, usize)>> {
    let mut out = BTreeMap::new();
    for (id, version) in pinned {
        let versions: Vec<&str> = catalogue
            .iter()
            .filter(|s| s.id == **id.get_ref())
            .map(|s| s.version.as_str())
            .collect();
        if versions.is_empty() {
            return Err(cx.err(
                id.span().start,
                format!(
                    "value set {:?} is not in the catalogue; hint: `phm valueset list` shows the ids",
                    id.get_ref()
                ),
            ));
        }
        if !versions.contains(&version.get_ref().as_str()) {
            return Err(cx.err(
                version.span().start,
                format!(
                    "value set {} has no version {:?}; hint: versions of {}: {}",
                    id.get_ref(),
                    version.get_ref(),
                    id.get_ref(),
                    versions.join(", ")
                ),
            ));
        }
        out.insert(
            id.get_ref().clone(),
            (version.get_ref().clone(), id.span().start),
        );
    }
    Ok(out)
}

fn population(cx: &Cx, file: Option<&PopulationFile>) -> Result<Population> {
    let mut out = Population {
        registration_types: vec!["gms".to_string()],
        registered_for: None,
        age_min: None,
        age_max: None,
    };
    let Some(file) = file else {
        return Ok(out);
    };
    if let Some(types) = &file.registration {
        if types.get_ref().is_empty() {
            return Err(cx.err(
                types.span().start,
                "population.registration is empty, so nobody is registered; hint: leave it out for [\"gms\"]",
            ));
        }
        out.registration_types.clear();
        for t in types.get_ref() {
            if !REGISTRATION_TYPES.contains(&t.get_ref().as_str()) {
                return Err(cx.err(
                    t.span().start,
                    format!(
                        "registration type {:?} is not one of {}",
                        t.get_ref(),
                        REGISTRATION_TYPES.join(", ")
                    ),
                ));
            }
            if !out.registration_types.contains(t.get_ref()) {
                out.registration_types.push(t.get_ref().clone());
            }
        }
    }
    if let Some(age) = &file.age {
        let AgeFile { min, max } = *age.get_ref();
        if let (Some(lo), Some(hi)) = (min, max)
            && lo > hi
        {
            return Err(cx.err(
                age.span().start,
                format!("age min {lo} is above max {hi}, so nobody is in the population"),
            ));
        }
        (out.age_min, out.age_max) = (min, max);
    }
    if let Some(p) = &file.registered_for {
        out.registered_for = Some(
            window::period(p.get_ref())
                .map_err(|e| cx.err(p.span().start, format!("registered_for: {e}")))?,
        );
    }
    Ok(out)
}

fn rules(
    cx: &Cx,
    files: &[Spanned<RuleFile>],
    criteria: &[criteria::Checked],
) -> Result<Vec<Rule>> {
    let names: Vec<&str> = criteria.iter().map(|c| c.criterion.name.as_str()).collect();
    let mut out: Vec<Rule> = Vec::new();
    // (rule name, canonical condition, offset of `when`)
    let mut seen: Vec<(String, super::model::Expr, usize)> = Vec::new();
    let mut rule_names: BTreeMap<String, usize> = BTreeMap::new();
    for r in files {
        let r = r.get_ref();
        let name = r.name.get_ref().trim();
        if name.is_empty() {
            return Err(cx.err(r.name.span().start, "a rule's name is empty"));
        }
        if let Some(&first) = rule_names.get(name) {
            return Err(cx.err(
                r.name.span().start,
                format!(
                    "rule name {name:?} is used twice (first at line {}); hint: rename one",
                    cx.line(first)
                ),
            ));
        }
        rule_names.insert(name.to_string(), r.name.span().start);
        let then = action(cx, &r.then, "then")?;
        let base = cx.content(&r.when);
        let (when, used) = when::parse(r.when.get_ref())
            .map_err(|(at, message)| cx.err(base + at, format!("rule {name:?}: {message}")))?;
        for (at, c) in used {
            if !names.contains(&c) {
                return Err(cx.err(
                    base + at,
                    format!(
                        "rule {name:?} names `{c}`, which is not a criterion; hint: criteria: {}",
                        if names.is_empty() {
                            "none".into()
                        } else {
                            names.join(", ")
                        }
                    ),
                ));
            }
        }
        let canonical = when::canonical(&when);
        if let Some((earlier, _, at)) = seen.iter().find(|(_, c, _)| *c == canonical) {
            return Err(cx.err(
                r.when.span().start,
                format!(
                    "rule {name:?} can never fire: its condition {:?} repeats rule {earlier:?} (line {}); hint: remove it or change its condition",
                    r.when.get_ref(),
                    cx.line(*at)
                ),
            ));
        }
        seen.push((name.to_string(), canonical, r.when.span().start));
        out.push(Rule {
            name: name.to_string(),
            description: r.description.clone(),
            when,
            then,
            near_miss: r.near_miss.unwrap_or(true),
        });
    }
    Ok(out)
}

/// `index`, `index - 12 months`, `dm_latest + 1 day`: a bound as written.
pub fn bound_text(b: &Bound) -> String {
    let anchor = match &b.anchor {
        Anchor::Index => "index",
        Anchor::Criterion(c) => c.as_str(),
    };
    let mut out = anchor.to_string();
    for (amount, unit) in [(b.months, "month"), (b.days, "day")] {
        if amount != 0 {
            let sign = if amount < 0 { '-' } else { '+' };
            let n = amount.unsigned_abs();
            let plural = if n == 1 { "" } else { "s" };
            out.push_str(&format!(" {sign} {n} {unit}{plural}"));
        }
    }
    out
}
