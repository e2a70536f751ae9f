//! The page of a tiny hand-made model: structure, escaping and the states
//! that must look different.

use super::*;
use crate::report::{CheckInfo, DefinitionSummary, DeliveryRow, RunSummary};

fn cell(status: CheckStatus, percentage: Option<f64>, reason: Option<&str>) -> CheckCell {
    CheckCell {
        status,
        numerator: percentage.map(|_| 3),
        denominator: percentage.map(|_| 100),
        percentage,
        days: None,
        threshold: 1.0,
        reason: reason.map(str::to_string),
        rows_listed: percentage.map(|_| 3),
    }
}

fn practice(ods: &str, status: &str, checks: Vec<Option<CheckCell>>) -> PracticeOverview {
    PracticeOverview {
        practice: ods.into(),
        status: status.into(),
        supplier: Some("emis".into()),
        latest_extracted_at: Some("2026-03-30T02:00:00".into()),
        freshness_days: Some(1),
        rows_file: Some(format!("practice/{ods}/dq_rows.parquet")),
        checks,
        unavailable_for: vec![],
    }
}

fn row(cells: &[&str]) -> Vec<Option<String>> {
    cells
        .iter()
        .map(|c| (!c.is_empty()).then(|| c.to_string()))
        .collect()
}

fn model(disclosure: Option<(u64, u64)>, quality: Option<TextTable>) -> Model {
    let counts = TextTable {
        columns: [
            "practice",
            "status",
            "registered",
            "in_population",
            "included",
            "undetermined",
            "prevalence_pct",
            "ci95_low_pct",
            "ci95_high_pct",
            "funnel",
            "unmapped_dependent",
        ]
        .map(String::from)
        .to_vec(),
        rows: vec![
            row(&[
                "A1",
                "available",
                "500",
                "400",
                "40",
                "5",
                "10.0",
                "7.4",
                "13.4",
                "within",
                "0",
            ]),
            row(&[
                "B2",
                "available",
                "900",
                "800",
                "200",
                "suppressed",
                "25.0",
                "22.1",
                "28.1",
                "above_99_8",
                "10",
            ]),
            row(&[
                "C3",
                "available",
                "20",
                "suppressed",
                "suppressed",
                "0",
                "suppressed",
                "suppressed",
                "suppressed",
                "suppressed",
                "0",
            ]),
            row(&[
                "ALL",
                "available",
                "1420",
                "1205",
                "245",
                "10",
                "20.3",
                "18.1",
                "22.7",
                "",
                "10",
            ]),
            row(&[
                "D4",
                "unavailable",
                "unavailable",
                "unavailable",
                "unavailable",
                "unavailable",
                "",
                "",
                "",
                "",
                "",
            ]),
        ],
    };
    Model {
        run: RunSummary {
            run_id: "abc123".into(),
            phm_version: "0.1.0".into(),
            release: "fixture-<rel>".into(),
            key_id: "k0123456789abcdef".into(),
            purpose: Some("audit & <review>".into()),
            disclosure,
            output_files: 12,
            output_bytes: 3456,
            definitions: vec![DefinitionSummary {
                cohort: "DM_REG@1".into(),
                index_date: "2026-03-31".into(),
                path: "cohorts/DM_REG.toml".into(),
                sha256: "f".repeat(64),
                valuesets: vec![("DM_COD".into(), "20250627".into(), "e".repeat(64))],
                unavailable: vec!["D4".into()],
            }],
            deliveries: vec![DeliveryRow {
                practice: "A1".into(),
                extract_id: "x-1".into(),
                kind: "full".into(),
                extracted_at: "2026-03-30T02:00:00".into(),
            }],
        },
        as_of: "2026-03-31".into(),
        scope: None,
        practices: vec![
            practice(
                "A1",
                "ok",
                vec![
                    Some(cell(CheckStatus::Pass, Some(0.0), None)),
                    Some(cell(CheckStatus::Disabled, None, None)),
                ],
            ),
            practice(
                "B2",
                "ok",
                vec![
                    Some(cell(CheckStatus::Fail, Some(3.0), None)),
                    Some(cell(
                        CheckStatus::NotEvaluated,
                        None,
                        Some("no eligible rows"),
                    )),
                ],
            ),
            practice(
                "E5",
                "no_delivery",
                vec![
                    Some(cell(CheckStatus::NotEvaluated, None, Some("no delivery"))),
                    Some(cell(CheckStatus::NotEvaluated, None, Some("no delivery"))),
                ],
            ),
        ],
        checks: vec![
            CheckInfo {
                id: "events.future".into(),
                category: "plausibility".into(),
                measure: "percent".into(),
                description: "events dated after the extract <script>".into(),
            },
            CheckInfo {
                id: "codes.events_unmapped".into(),
                category: "conformance".into(),
                measure: "percent".into(),
                description: "unmapped codes".into(),
            },
        ],
        cohorts: vec![CohortReport {
            key: "DM_REG@1".into(),
            index_date: "2026-03-31".into(),
            status: "partial".into(),
            counts,
            quality,
        }],
    }
}

/// Heading levels in order of appearance.
fn headings(html: &str) -> Vec<u8> {
    html.match_indices("<h")
        .filter_map(|(i, _)| {
            let b = html.as_bytes().get(i + 2)?;
            (b'1'..=b'6').contains(b).then(|| b - b'0')
        })
        .collect()
}

#[test]
fn one_h1_and_headings_never_skip_a_level() {
    let html = render(&model(Some((7, 5)), None));
    let levels = headings(&html);
    assert_eq!(levels.iter().filter(|l| **l == 1).count(), 1, "{levels:?}");
    assert_eq!(levels[0], 1);
    for w in levels.windows(2) {
        assert!(
            w[1] <= w[0] + 1,
            "heading jumps from h{} to h{}",
            w[0],
            w[1]
        );
    }
}

#[test]
fn every_table_has_a_caption_and_scoped_headers() {
    let html = render(&model(Some((7, 5)), None));
    let tables = html.matches("<table").count();
    assert!(tables >= 6, "{tables} tables");
    assert_eq!(html.matches("<caption>").count(), tables);
    assert!(!html.contains("<th>"), "a header without scope");
}

#[test]
fn model_strings_are_escaped_and_nothing_is_loaded() {
    let html = render(&model(Some((7, 5)), None));
    assert!(html.contains("events dated after the extract &lt;script&gt;"));
    assert!(html.contains("audit &amp; &lt;review&gt;"));
    assert!(html.contains("fixture-&lt;rel&gt;"));
    assert!(!html.contains("<script"));
    for attr in ["src=\"http", "href=\"http", "<link", "@import", "url("] {
        assert!(!html.contains(attr), "{attr}");
    }
}

#[test]
fn the_three_count_states_and_the_check_states_look_different() {
    let html = render(&model(Some((7, 5)), None));
    let cases = [
        "<td class=\"num\">400</td>",
        "<td class=\"state suppressed\">suppressed</td>",
        "<td class=\"state unavailable\">unavailable</td>",
        // A check without a figure says so, never 0%.
        "<td class=\"ne\" title=\"no eligible rows\">– not evaluated</td>",
        "<td class=\"off\" title=\"\">○ disabled</td>",
        "<td class=\"pass\" title=\"3 of 100\">✓ 0%</td>",
        // 3% against a threshold of 1%: over twice it.
        "<td class=\"fail2\" title=\"3 of 100\">✗✗ 3%</td>",
        // The verdicts that rest on unmapped codes, said as what they are.
        "<th scope=\"col\">Might be in once unmapped codes are fixed (upper bound)</th>",
        "Undetermined (beside the included)",
    ];
    for want in cases {
        assert!(html.contains(want), "missing {want}");
    }
}

#[test]
fn the_funnel_plots_plottable_practices_and_lists_the_others() {
    let html = render(&model(Some((7, 5)), None));
    assert_eq!(html.matches("<svg role=\"img\"").count(), 1);
    assert!(html.contains("<title id=\"funnel-0-title\">DM_REG@1: prevalence"));
    assert!(html.contains("suppressed</span> or no population: C3."));
    assert!(html.contains("(the cohort could not be evaluated there): D4."));
    // The text alternative: p0 = 20.3%, n = 400 → sd = 2.011%; 95%: ±3.94.
    assert!(
        html.contains("<td class=\"num\">16.4–24.2</td>"),
        "A1 95% limits"
    );
}

#[test]
fn outliers_link_to_the_checks_that_flag_their_rows() {
    let none = render(&model(Some((7, 5)), None));
    assert!(none.contains("<strong>B2</strong>: above the 99.8% limit (prevalence 25.0%)."));
    assert!(none.contains("bearing on this cohort's value sets: not available for this run."));
    assert!(none.contains("Checks it fails (all its data): <a href=\"#check-events.future\">"));
    let quality = TextTable {
        columns: ["practice", "check_id", "rows", "persons"]
            .map(String::from)
            .to_vec(),
        rows: vec![
            row(&["B2", "events.future", "12", "suppressed"]),
            row(&["B2", "codes.events_unmapped", "0", "0"]),
            row(&["A1", "events.future", "40", "10"]),
        ],
    };
    let html = render(&model(Some((7, 5)), Some(quality)));
    assert!(html.contains(
        "Checks flagging rows that bear on this cohort's value sets: <a href=\"#check-events.future\"><code>events.future</code></a> (rows 12, persons suppressed)."
    ));
    assert!(!html.contains("codes.events_unmapped</code></a> (rows 0"));
    assert!(html.contains("id=\"check-events.future\""));
    // Every finding, outlier or not, in one table: check by practice.
    assert!(html.contains("<th scope=\"col\">Check</th><th scope=\"col\">A1</th><th scope=\"col\">B2</th><th scope=\"col\">ALL</th>"));
    assert!(html.contains("<code>events.future</code></a></th><td class=\"num\">40 / 10</td><td class=\"num\">12 / suppressed</td><td></td></tr>"));
    assert!(none.contains(
        "<h4>Data-quality findings bearing on this cohort</h4>\n<p>Not available for this run.</p>"
    ));
}

#[test]
fn disclosure_off_is_loud_twice() {
    let off = render(&model(None, None));
    assert_eq!(off.matches("DISCLOSURE CONTROL WAS OFF").count(), 2);
    assert!(off.contains("counts are exact, as published"));
    assert!(!off.contains("disclosure-controlled as published"));
    let on = render(&model(Some((7, 5)), None));
    assert!(!on.contains("DISCLOSURE CONTROL WAS OFF"));
    assert!(on.contains("counts 1–7 suppressed, others rounded to the nearest 5"));
}

#[test]
fn anchors_keep_ids_readable_and_safe() {
    let cases = [
        ("check", "events.future", "check-events.future"),
        ("cohort", "DM_REG@1", "cohort-DM_REG@1"),
        ("check", "a b\"<c>", "check-a-b--c-"),
    ];
    for (prefix, name, want) in cases {
        assert_eq!(anchor(prefix, name), want);
    }
}
