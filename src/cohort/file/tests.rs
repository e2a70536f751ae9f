//! Definition files: every validation error with its line and column, a full
//! successful parse, and loading by key.

use std::path::Path;

use super::*;
use crate::cohort::model::{Cmp, CountOp, Expr, Kind, PeriodUnit, Table};
use crate::valueset::testing::tree;

const BASE: &str = r#"id = "DM_REG"
version = "2025.1"
title = "Diabetes register"
status = "approved"
owner = "phm clinical safety"
description = "d"
index_date = "parameter"
otherwise = "select"

[valuesets]
DM_COD = "20250627"
DMRES_COD = "20250627"

[population]
age = { min = 17 }

[criteria.dm_latest]
kind = "latest"
valueset = "DM_COD"

[criteria.dm_resolved]
kind = "exists"
valueset = "DMRES_COD"
window = { after = "dm_latest", on_or_before = "index" }

[[rules]]
name = "diagnosed"
when = "not dm_latest"
then = "reject"

[[rules]]
name = "unresolved"
when = "dm_resolved"
then = "reject"
"#;

/// Value sets DM_COD (two versions), DMRES_COD, HBA1C and DOAC.
fn catalogue() -> (tempfile::TempDir, Catalogue) {
    let set = |id: &str, version: &str| {
        format!(
            "id = \"{id}\"\nversion = \"{version}\"\ntitle = \"t\"\nstatus = \"draft\"\nowner = \"o\"\nprovenance = \"p\"\necl = \"*\"\n"
        )
    };
    let files = [
        ("DM_COD/20200812.toml", set("DM_COD", "20200812")),
        ("DM_COD/20250627.toml", set("DM_COD", "20250627")),
        ("DMRES_COD/20250627.toml", set("DMRES_COD", "20250627")),
        ("HBA1C/1.toml", set("HBA1C", "1")),
        ("DOAC/1.toml", set("DOAC", "1")),
    ];
    let files: Vec<(&str, &str)> = files.iter().map(|(p, t)| (*p, t.as_str())).collect();
    let tmp = tree(&files);
    let catalogue = Catalogue::load(&[tmp.path().to_path_buf()]).unwrap();
    (tmp, catalogue)
}

/// BASE with each (from, to) replaced once; `from` must occur.
fn edit(edits: &[(&str, &str)]) -> String {
    let mut text = BASE.to_string();
    for (from, to) in edits {
        assert!(text.contains(from), "{from:?} not in the definition");
        text = text.replacen(from, to, 1);
    }
    text
}

const PATH: &str = "cohorts/DM_REG/2025.1.toml";
const LATEST: &str = "kind = \"latest\"";
const EXISTS: &str = "kind = \"exists\"";
const WINDOW: &str = "window = { after = \"dm_latest\", on_or_before = \"index\" }";
const UNRESOLVED: &str = "name = \"unresolved\"\nwhen = \"dm_resolved\"\nthen = \"reject\"";

#[test]
fn validation_errors() {
    // (edits to BASE, None when valid or Some(what the error holds, beginning with line:column))
    #[rustfmt::skip]
    type Case = (Vec<(&'static str, &'static str)>, Option<&'static str>);
    let cases: Vec<Case> = vec![
        (vec![], None),
        // TOML, unknown and missing fields
        (
            vec![("\"Diabetes register\"", "\"Diabetes register")],
            Some("3:"),
        ),
        (
            vec![("owner = ", "colour = \"red\"\nowner = ")],
            Some("5:1: unknown field `colour`"),
        ),
        (
            vec![(LATEST, "kind = \"latest\"\nkinds = 1")],
            Some("19:1: unknown field `kinds`"),
        ),
        (
            vec![(
                WINDOW,
                "window = { after = \"dm_latest\", upto = \"index\" }",
            )],
            Some("24:33: unknown field `upto`"),
        ),
        (
            vec![("title = \"Diabetes register\"\n", "")],
            Some("1:1: missing field `title`"),
        ),
        (
            vec![("kind = \"latest\"\n", "")],
            Some("17:1: missing field `kind`"),
        ),
        // header
        (
            vec![("id = \"DM_REG\"", "id = \"dm_reg\"")],
            Some("1:6: id \"dm_reg\" is not upper-case"),
        ),
        (
            vec![("\"approved\"", "\"final\"")],
            Some("4:10: status \"final\" is not one of draft, reviewed, approved, retired"),
        ),
        (
            vec![("\"parameter\"", "\"31/03/2025\"")],
            Some("7:14: index_date \"31/03/2025\" is neither \"parameter\" nor a date"),
        ),
        (
            vec![("\"parameter\"", "\"2025-02-30\"")],
            Some("7:14: index_date \"2025-02-30\""),
        ),
        (
            vec![("\"parameter\"", "\"2025-3-31\"")],
            Some("7:14: index_date \"2025-3-31\""),
        ),
        (vec![("\"parameter\"", "\"2025-03-31\"")], None),
        (
            vec![("otherwise = \"select\"", "otherwise = \"include\"")],
            Some("8:13: otherwise = \"include\" is neither \"select\" nor \"reject\""),
        ),
        // value sets
        (
            vec![(
                "DMRES_COD = \"20250627\"",
                "DMRES_COD = \"20250627\"\nXX_COD = \"1\"",
            )],
            Some("13:1: value set \"XX_COD\" is not in the catalogue"),
        ),
        (
            vec![("DM_COD = \"20250627\"", "DM_COD = \"2099\"")],
            Some(
                "11:10: value set DM_COD has no version \"2099\"; hint: versions of DM_COD: 20200812, 20250627",
            ),
        ),
        (
            vec![(
                "DMRES_COD = \"20250627\"",
                "DMRES_COD = \"20250627\"\nHBA1C = \"1\"",
            )],
            Some("13:1: value set HBA1C is pinned but no criterion uses it; hint: remove"),
        ),
        (
            vec![(
                "valueset = \"DMRES_COD\"",
                "valueset = [\"DMRES_COD\", \"HBA1C\"]",
            )],
            Some(
                "23:12: criterion `dm_resolved`: value set HBA1C is used but not pinned in [valuesets]; hint: add HBA1C = \"1\"",
            ),
        ),
        (
            vec![(
                "valueset = \"DMRES_COD\"",
                "valueset = [\"DMRES_COD\", \"NOPE\"]",
            )],
            Some(
                "23:12: criterion `dm_resolved`: value set NOPE is used but not pinned in [valuesets]; hint: NOPE is not in the catalogue",
            ),
        ),
        (
            vec![("valueset = \"DMRES_COD\"", "valueset = 3")],
            Some("23:12: criterion `dm_resolved`: valueset = 3 is not an id or a list of ids"),
        ),
        (
            vec![("valueset = \"DMRES_COD\"", "valueset = []")],
            Some("23:12: criterion `dm_resolved`: valueset = [] is not an id"),
        ),
        // kinds and the keys they allow
        (
            vec![(EXISTS, "kind = \"any\"")],
            Some(
                "22:8: criterion `dm_resolved`: unknown kind \"any\"; hint: one of exists, count, first, latest, min, max, apart",
            ),
        ),
        (
            vec![(EXISTS, "kind = \"exists\"\ndays = 3")],
            Some(
                "23:8: criterion `dm_resolved`: `days` is not allowed on kind \"exists\"; hint: it belongs to kind \"apart\"",
            ),
        ),
        (
            vec![(LATEST, "kind = \"latest\"\nat_least = 2")],
            Some(
                "19:12: criterion `dm_latest`: `at_least` is not allowed on kind \"latest\"; hint: it belongs to kind \"count\"",
            ),
        ),
        (
            vec![(
                LATEST,
                "kind = \"latest\"\ntable = \"medications\"\nvalue = { below = 5, unit = \"%\" }",
            )],
            Some("20:9: criterion `dm_latest`: `value` is not allowed on medications"),
        ),
        (
            vec![(LATEST, "kind = \"latest\"\ntable = \"labs\"")],
            Some("19:9: criterion `dm_latest`: table \"labs\" is neither"),
        ),
        (
            vec![(EXISTS, "kind = \"exists\"\ndistinct = true")],
            Some("23:12: criterion `dm_resolved`: `distinct` is not allowed on kind \"exists\""),
        ),
        (
            vec![(EXISTS, "kind = \"count\"")],
            Some(
                "22:8: criterion `dm_resolved`: kind \"count\" needs one of at_least, at_most, exactly",
            ),
        ),
        (
            vec![(EXISTS, "kind = \"count\"\nat_least = 1\nexactly = 2")],
            Some(
                "24:11: criterion `dm_resolved`: kind \"count\" has both `at_least` and `exactly`",
            ),
        ),
        (
            vec![(EXISTS, "kind = \"count\"\nat_least = 2\ndistinct = true")],
            None,
        ),
        (
            vec![(EXISTS, "kind = \"count\"\nat_most = -1")],
            Some("23:11: invalid value: integer `-1`"),
        ),
        (
            vec![(EXISTS, "kind = \"apart\"")],
            Some("22:8: criterion `dm_resolved`: kind \"apart\" needs `days`"),
        ),
        (vec![(EXISTS, "kind = \"apart\"\ndays = 90")], None),
        (
            vec![(EXISTS, "kind = \"apart\"\ndays = 90\nat_most = 1")],
            Some("24:11: criterion `dm_resolved`: `at_most` is not allowed on kind \"apart\""),
        ),
        (
            vec![(LATEST, "kind = \"min\"")],
            Some("18:8: criterion `dm_latest`: kind \"min\" needs `value`"),
        ),
        (
            vec![(
                LATEST,
                "kind = \"max\"\nvalue = { at_least = 48, unit = \"mmol/mol\" }",
            )],
            None,
        ),
        // any_code and valueset
        (
            vec![(
                EXISTS,
                "kind = \"exists\"\ntable = \"medications\"\nany_code = true",
            )],
            Some(
                "25:12: criterion `dm_resolved`: `valueset` and `any_code = true` together; hint: keep one",
            ),
        ),
        (
            vec![(EXISTS, "kind = \"exists\"\nany_code = true")],
            Some("23:12: criterion `dm_resolved`: `any_code` is for medications only"),
        ),
        (
            vec![("valueset = \"DMRES_COD\"\n", "")],
            Some("21:11: criterion `dm_resolved` has no `valueset`"),
        ),
        // value tests
        (
            vec![(LATEST, "kind = \"latest\"\nvalue = { unit = \"%\" }")],
            Some("19:9: criterion `dm_latest`: the value test has no operator"),
        ),
        (
            vec![(
                LATEST,
                "kind = \"latest\"\nvalue = { below = 5, above = 1, unit = \"%\" }",
            )],
            Some("19:30: criterion `dm_latest`: the value test has both `below` and `above`"),
        ),
        (
            vec![(
                LATEST,
                "kind = \"latest\"\nvalue = { below = 5, unit = \"furlongs\" }",
            )],
            Some(
                "19:29: criterion `dm_latest`: unknown unit \"furlongs\"; hint: known units: mmHg, mmol/mol, %",
            ),
        ),
        (
            vec![(LATEST, "kind = \"latest\"\nvalue = { below = 5 }")],
            Some("19:9: missing field `unit`"),
        ),
        (
            vec![(
                LATEST,
                "kind = \"latest\"\nvalue = { below = nan, unit = \"%\" }",
            )],
            Some("19:19: criterion `dm_latest`: threshold NaN is not a finite number"),
        ),
        (
            vec![(
                LATEST,
                "kind = \"latest\"\nvalue = { below = 7.5, unit = \" PERCENT \" }",
            )],
            None,
        ),
        // periods and bounds
        (
            vec![(WINDOW, "window = { after = \"index - 12 mnths\" }")],
            Some(
                "24:27: criterion `dm_resolved`: after: in bound \"index - 12 mnths\": \"12 mnths\" is not a period",
            ),
        ),
        (
            vec![(WINDOW, "window = { after = \"index-12 months\" }")],
            None,
        ),
        (
            vec![(WINDOW, "window = { after = \"index 12 months\" }")],
            Some(
                "24:21: criterion `dm_resolved`: after: bound \"index 12 months\" is not a bound; hint: write `index`, `index - 12 months`",
            ),
        ),
        (
            vec![(WINDOW, "window = { after = \"- 1 day\" }")],
            Some("24:21: criterion `dm_resolved`: after: bound \"- 1 day\" has no anchor"),
        ),
        (
            vec![(
                "age = { min = 17 }",
                "age = { min = 17 }\nregistered_for = \"3 mnths\"",
            )],
            Some("16:18: registered_for: \"3 mnths\" is not a period"),
        ),
        (
            vec![("age = { min = 17 }", "registered_for = \"3 months\"")],
            None,
        ),
        (
            vec![(
                WINDOW,
                "window = { after = \"dm_latest\", on_or_after = \"index - 1 year\" }",
            )],
            Some(
                "24:47: criterion `dm_resolved`: the window has two lower bounds (`after` and `on_or_after`); hint: keep one",
            ),
        ),
        (
            vec![(
                WINDOW,
                "window = { before = \"index\", on_or_before = \"index\" }",
            )],
            Some(
                "24:45: criterion `dm_resolved`: the window has two upper bounds (`before` and `on_or_before`)",
            ),
        ),
        (
            vec![(WINDOW, "window = { after = \"dm_last\" }")],
            Some(
                "24:21: criterion `dm_resolved`: the window names `dm_last`, which is not a criterion; hint: criteria: dm_latest, dm_resolved",
            ),
        ),
        (
            vec![(
                WINDOW,
                "window = { after = \"index - 1 year\", before = \" dm_last + 1 day\" }",
            )],
            Some("24:49: criterion `dm_resolved`: the window names `dm_last`"),
        ),
        (
            vec![(LATEST, EXISTS)],
            Some(
                "24:21: criterion `dm_resolved`: the window is anchored on `dm_latest`, of kind \"exists\", which chooses no event; hint: anchor on a criterion of kind first, latest, min or max",
            ),
        ),
        (
            vec![
                (
                    "valueset = \"DM_COD\"",
                    "valueset = \"DM_COD\"\nwindow = { after = \"dm_resolved\" }",
                ),
                (EXISTS, "kind = \"first\""),
            ],
            Some(
                "20:10: criteria form a cycle through their windows: dm_latest -> dm_resolved -> dm_latest",
            ),
        ),
        (
            vec![(
                "valueset = \"DM_COD\"",
                "valueset = \"DM_COD\"\nwindow = { before = \"dm_latest\" }",
            )],
            Some("20:10: criteria form a cycle through their windows: dm_latest -> dm_latest"),
        ),
        // windows that hold no date
        (
            vec![(WINDOW, "window = { after = \"index\" }")],
            Some(
                "24:10: criterion `dm_resolved`: the window is empty whatever the index date: no date is after index and on or before index",
            ),
        ),
        (
            vec![(
                WINDOW,
                "window = { on_or_after = \"index + 1 day\", on_or_before = \"index\" }",
            )],
            Some("24:10: criterion `dm_resolved`: the window is empty"),
        ),
        (
            vec![(
                WINDOW,
                "window = { on_or_after = \"index - 12 months\", on_or_before = \"index\" }",
            )],
            None,
        ),
        (
            vec![(
                WINDOW,
                "window = { after = \"dm_latest + 1 month\", before = \"dm_latest + 28 days\" }",
            )],
            Some(
                "24:10: criterion `dm_resolved`: the window is empty whatever the `dm_latest` date: no date is after dm_latest + 1 month and before dm_latest + 28 days",
            ),
        ),
        // 31 January + 1 month = 28 February, before 31 January + 30 days.
        (
            vec![(
                WINDOW,
                "window = { after = \"dm_latest + 1 month\", before = \"dm_latest + 30 days\" }",
            )],
            None,
        ),
        (
            vec![(
                WINDOW,
                "window = { after = \"dm_latest\", before = \"index - 1 year\" }",
            )],
            None,
        ),
        // rules
        (
            vec![("when = \"dm_resolved\"", "when = \"dm_resolved and\"")],
            Some(
                "33:24: rule \"unresolved\": expected a criterion name, `not` or `(` after `and` in condition \"dm_resolved and\", found the end",
            ),
        ),
        (
            vec![(
                "when = \"dm_resolved\"",
                "when = \"(dm_resolved or not dm_latest\"",
            )],
            Some("33:9: rule \"unresolved\": `(` is not closed"),
        ),
        (
            vec![("when = \"dm_resolved\"", "when = \"dm_resolved) \"")],
            Some("33:20: rule \"unresolved\": unmatched `)`"),
        ),
        (
            vec![("when = \"dm_resolved\"", "when = 'dm_resolved & dm_latest'")],
            Some("33:21: rule \"unresolved\": unexpected `&`"),
        ),
        (
            vec![(
                "when = \"dm_resolved\"",
                "when = \"dm_resolved or dm_gone\"",
            )],
            Some(
                "33:24: rule \"unresolved\" names `dm_gone`, which is not a criterion; hint: criteria: dm_latest, dm_resolved",
            ),
        ),
        (
            vec![(
                "when = \"dm_resolved\"",
                "when = \"dm_resolved and not dm_latest or dm_resolved\"",
            )],
            None,
        ),
        (
            vec![("name = \"unresolved\"", "name = \"diagnosed\"")],
            Some(
                "32:8: rule name \"diagnosed\" is used twice (first at line 27); hint: rename one",
            ),
        ),
        (
            vec![("when = \"dm_resolved\"", "when = \"not (dm_latest)\"")],
            Some(
                "33:8: rule \"unresolved\" can never fire: its condition \"not (dm_latest)\" repeats rule \"diagnosed\" (line 28)",
            ),
        ),
        (
            vec![
                (
                    "when = \"not dm_latest\"",
                    "when = \"dm_resolved and dm_latest\"",
                ),
                (
                    "when = \"dm_resolved\"",
                    "when = \"dm_latest and (dm_resolved)\"",
                ),
            ],
            Some("33:8: rule \"unresolved\" can never fire"),
        ),
        (
            vec![(
                UNRESOLVED,
                "name = \"unresolved\"\nwhen = \"dm_resolved\"\nthen = \"exclude\"",
            )],
            Some("34:8: then = \"exclude\" is neither \"select\" nor \"reject\""),
        ),
        (
            vec![(
                UNRESOLVED,
                "name = \" \"\nwhen = \"dm_resolved\"\nthen = \"reject\"",
            )],
            Some("32:8: a rule's name is empty"),
        ),
        // criteria nothing uses
        (
            vec![(
                "[[rules]]",
                "[criteria.spare]\nkind = \"exists\"\nvalueset = \"DM_COD\"\n\n[[rules]]",
            )],
            Some("26:11: criterion `spare` is used by no rule and no window; hint: remove it"),
        ),
        (
            vec![("[criteria.dm_latest]", "[criteria.DmLatest]")],
            Some("17:11: criterion name \"DmLatest\" is not snake_case"),
        ),
        (
            vec![("[criteria.dm_latest]", "[criteria.not]")],
            Some("17:11: criterion name \"not\" is not snake_case or is a reserved word"),
        ),
        // population
        (
            vec![(
                "age = { min = 17 }",
                "registration = [\"gms\", \"nhs\"]\nage = { min = 17 }",
            )],
            Some("15:24: registration type \"nhs\" is not one of gms, temporary, private, other"),
        ),
        (
            vec![("age = { min = 17 }", "registration = []")],
            Some("15:16: population.registration is empty"),
        ),
        (
            vec![(
                "age = { min = 17 }",
                "registration = [\"gms\", \"temporary\"]",
            )],
            None,
        ),
        (
            vec![("age = { min = 17 }", "age = { min = 17, max = 16 }")],
            Some("15:7: age min 17 is above max 16"),
        ),
        (
            vec![("age = { min = 17 }", "age = { min = 17, mx = 16 }")],
            Some("15:19: unknown field `mx`"),
        ),
    ];
    let (_tmp, catalogue) = catalogue();
    let mut failures = Vec::new();
    for (edits, want) in &cases {
        let text = edit(edits);
        let got = parse(Path::new(PATH), &text, &catalogue);
        match (got, want) {
            (Ok(_), None) => {}
            (Err(e), Some(w)) if e.to_string().contains(&format!("{PATH}:{w}")) => {}
            (g, w) => failures.push(format!(
                "{edits:?}\n  got  {:?}\n  want {w:?}",
                g.map(|d| d.key()).map_err(|e| e.to_string())
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn full_definition() {
    let text = r#"id = "CKD_3_5"
version = "2025.1"
title = "CKD"
status = "draft"
owner = "o"
description = "d"
source = "s"
index_date = "2025-03-31"

[valuesets]
DM_COD = "20200812"
HBA1C = "1"
DOAC = "1"

[population]
registration = ["gms", "temporary"]
age = { min = 18, max = 100 }
registered_for = "3 months"

[criteria.after_latest]
description = "Readings after the latest"
kind = "apart"
days = 90
valueset = ["HBA1C", "DM_COD", "HBA1C"]
window = { on_or_after = "latest - 2 years", before = "index+1 week" }
value = { below = 60, unit = "ml/min/1.73m2" }

[criteria.latest]
kind = "latest"
valueset = "HBA1C"

[criteria.meds]
kind = "count"
table = "medications"
any_code = true
at_least = 10
distinct = true
window = { after = "index - 6 months" }

[criteria.doac]
kind = "exists"
table = "medications"
valueset = "DOAC"

[[rules]]
name = "low"
description = "Two low readings"
when = "after_latest and not (meds or doac)"
then = "select"
"#;
    let (_tmp, catalogue) = catalogue();
    let d = parse(Path::new("x.toml"), text, &catalogue).unwrap();
    assert_eq!(d.key(), "CKD_3_5@2025.1");
    assert_eq!(d.source.as_deref(), Some("s"));
    assert_eq!(
        d.index_date,
        IndexDate::Fixed(NaiveDate::from_ymd_opt(2025, 3, 31).unwrap())
    );
    assert_eq!(d.otherwise, Action::Reject);
    let pins: Vec<_> = d
        .valuesets
        .iter()
        .map(|(k, v)| format!("{k}@{v}"))
        .collect();
    assert_eq!(pins, ["DM_COD@20200812", "DOAC@1", "HBA1C@1"]);
    assert_eq!(d.population.registration_types, ["gms", "temporary"]);
    assert_eq!(
        (d.population.age_min, d.population.age_max),
        (Some(18), Some(100))
    );
    let p = d.population.registered_for.unwrap();
    assert_eq!((p.amount, p.unit), (3, PeriodUnit::Months));

    // The anchor comes first; otherwise file order.
    let names: Vec<_> = d.criteria.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["latest", "after_latest", "meds", "doac"]);
    let a = d.criterion("after_latest").unwrap();
    assert_eq!(a.kind, Kind::Apart { days: 90 });
    assert_eq!(a.valuesets, ["HBA1C", "DM_COD"]);
    assert_eq!(a.description.as_deref(), Some("Readings after the latest"));
    let lower = a.window.lower.as_ref().unwrap();
    assert_eq!(
        (&lower.anchor, lower.months, lower.days, lower.inclusive),
        (&Anchor::Criterion("latest".into()), -24, 0, true)
    );
    let upper = &a.window.upper;
    assert_eq!(
        (&upper.anchor, upper.months, upper.days, upper.inclusive),
        (&Anchor::Index, 0, 7, false)
    );
    let v = a.value.unwrap();
    assert_eq!(
        (v.op, v.threshold, v.unit),
        (Cmp::Lt, 60.0, "mL/min/1.73m2")
    );

    let m = d.criterion("meds").unwrap();
    assert_eq!((m.table, m.any_code), (Table::Medications, true));
    assert!(m.valuesets.is_empty());
    assert_eq!(
        m.kind,
        Kind::Count {
            op: CountOp::AtLeast,
            n: 10,
            distinct_codes: true
        }
    );
    // No upper bound: on or before index.
    assert_eq!(
        m.window.upper,
        Bound {
            anchor: Anchor::Index,
            months: 0,
            days: 0,
            inclusive: true
        }
    );
    assert_eq!(
        bound_text(m.window.lower.as_ref().unwrap()),
        "index - 6 months"
    );
    let l = d.criterion("latest").unwrap();
    assert_eq!(
        (l.window.lower.as_ref(), l.window.upper.inclusive),
        (None, true)
    );

    assert_eq!(d.rules.len(), 1);
    let c = |s: &str| Expr::Criterion(s.into());
    assert_eq!(
        d.rules[0].when,
        Expr::And(vec![
            c("after_latest"),
            Expr::Not(Box::new(Expr::Or(vec![c("meds"), c("doac")])))
        ])
    );
    assert_eq!(d.rules[0].then, Action::Select);
    assert_eq!(d.rules[0].description.as_deref(), Some("Two low readings"));
    assert_eq!(d.path, Path::new("x.toml"));
}

#[test]
fn load_by_key() {
    let v2 = BASE.replace("version = \"2025.1\"", "version = \"2025.2\"");
    let tmp = tree(&[
        ("DM_REG/2025.1.toml", BASE),
        ("DM_REG/2025.2.toml", &v2),
        ("DM_REG/notes.md", "x"),
        ("HYP_REG/2025.1.toml", BASE),
        ("HYP_REG/2025.3.toml", BASE),
        ("EMPTY/README.md", "x"),
        ("README.md", "x"),
    ]);
    let (_c, catalogue) = catalogue();
    let dir = tmp.path();
    let listed = list(dir).unwrap();
    assert_eq!(
        listed,
        [
            (
                "DM_REG".to_string(),
                vec!["2025.1".to_string(), "2025.2".to_string()]
            ),
            (
                "HYP_REG".to_string(),
                vec!["2025.1".to_string(), "2025.3".to_string()]
            ),
        ]
    );
    let cases = [
        ("DM_REG", Ok("DM_REG@2025.2")),
        ("DM_REG@2025.1", Ok("DM_REG@2025.1")),
        (
            "DM_REG@2024.1",
            Err(
                "cohort DM_REG has no version \"2024.1\"; hint: versions of DM_REG: 2025.1, 2025.2",
            ),
        ),
        ("AST_REG", Err("cohort \"AST_REG\" not found in")),
        (
            "HYP_REG@2025.1",
            Err("2025.1.toml:1:6: id \"DM_REG\" does not match the folder \"HYP_REG\""),
        ),
        (
            "HYP_REG",
            Err("2025.3.toml:1:6: id \"DM_REG\" does not match the folder \"HYP_REG\""),
        ),
    ];
    for (key, want) in cases {
        match (load(dir, key, &catalogue), want) {
            (Ok(d), Ok(w)) => assert_eq!(d.key(), w, "{key}"),
            (Err(e), Err(w)) => assert!(e.to_string().contains(w), "{key}: {e}"),
            (g, w) => panic!("{key}: {:?} vs {w:?}", g.map(|d| d.key())),
        }
    }
    let wrong = tree(&[("DM_REG/2025.2.toml", BASE)]);
    let e = load(wrong.path(), "DM_REG", &catalogue)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("2025.2.toml:2:11: version \"2025.1\" does not match the file name \"2025.2\""),
        "{e}"
    );
    let e = list(&dir.join("nowhere")).unwrap_err().to_string();
    assert!(e.contains("no such folder; hint: --cohorts"), "{e}");
    let d = read(&dir.join("DM_REG/2025.1.toml"), &catalogue).unwrap();
    assert_eq!(d.criteria.len(), 2);
}
