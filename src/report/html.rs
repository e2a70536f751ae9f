//! The report page: a pure function from a [`Model`] to one self-contained
//! HTML document.
//!
//! Invariants: one `h1`, headings in order (h2 sections, h3 items, h4
//! parts); every table has a `<caption>` and `<th scope>`; every string from
//! the model passes through [`escape`]; states are told apart by text and
//! symbol as well as colour (`suppressed`, `unavailable`, `not evaluated`,
//! `disabled` are words, never a 0); no script, no external resource.

use std::fmt::Write as _;

use super::charts::{self, FunnelPoint, Z95, Z998};
use super::{CheckCell, CheckStatus, CohortReport, Model, OUTLYING, PracticeOverview, TextTable};

/// The report's default file name in a run's folder.
pub const FILE: &str = crate::cohort::engine::marker::REPORT_FILE;

/// `text` safe inside HTML text and double-quoted attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// An `id` attribute value (and `#` fragment) for a check or cohort: its own
/// text with anything but letters, digits, `.`, `_`, `-` and `@` replaced.
pub fn anchor(prefix: &str, name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@') {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("{prefix}-{clean}")
}

const CSS: &str = r#"
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1200px;padding:1rem 1.5rem;color:#1a1a1a;line-height:1.4}
h1{font-size:1.8rem;margin-bottom:.2rem}h2{border-bottom:2px solid #1f4e9a;padding-bottom:.2rem;margin-top:2.2rem}
h3{margin-top:1.6rem}h4{margin:1rem 0 .4rem}
table{border-collapse:collapse;margin:.5rem 0 1rem;font-size:.9rem}
caption{text-align:left;font-weight:600;padding:.3rem 0}
th,td{border:1px solid #bbb;padding:.25rem .45rem;text-align:left;vertical-align:top}
thead th{background:#eef2f8}th[scope=row]{background:#f7f7f7;font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.state{font-style:italic;text-align:center}
.suppressed{background:repeating-linear-gradient(45deg,#eee,#eee 4px,#fff 4px,#fff 8px);color:#444}
.unavailable{background:#fff1d6;color:#6b4200;border:2px dashed #c77d00}
.na{color:#777;text-align:center}
.pass{background:#dff3e4;color:#0b5c23}
.fail{background:#fbd5d5;color:#8a0010}
.fail2{background:#e0707a;color:#2b0005;font-weight:700}
.ne{background:repeating-linear-gradient(-45deg,#e8e8e8,#e8e8e8 5px,#f8f8f8 5px,#f8f8f8 10px);color:#444;font-style:italic}
.off{background:#fff;color:#555;border:1px dotted #888;font-style:italic}
.scorecard td{text-align:center;white-space:nowrap}
.legend{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:.6rem}
.legend li{border:1px solid #bbb;padding:.15rem .5rem}
.loud{background:#8a0010;color:#fff;padding:.8rem 1rem;font-size:1.1rem;border:4px solid #000}
.note{color:#444}
code{font-size:.85rem;word-break:break-all}
svg.chart{max-width:100%;height:auto;border:1px solid #ddd}
nav ul{columns:2}
"#;

/// The whole page.
pub fn render(m: &Model) -> String {
    let mut out = String::new();
    let title = match &m.scope {
        Some(p) => format!("phm network report, practice {p}: run {}", m.run.run_id),
        None => format!("phm network report: run {}", m.run.run_id),
    };
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<header>\n<h1>Network report</h1>\n",
        escape(&title)
    );
    let _ = writeln!(
        out,
        "<p>Run <code>{}</code> · data quality as of {} · phm {} · terminology release <code>{}</code>{}</p>",
        escape(&m.run.run_id),
        escape(&m.as_of),
        escape(&m.run.phm_version),
        escape(&m.run.release),
        m.scope
            .as_ref()
            .map(|p| format!(" · scoped to practice <strong>{}</strong>", escape(p)))
            .unwrap_or_default()
    );
    if m.run.disclosure.is_none() {
        out.push_str(LOUD);
    }
    let counts = if m.run.disclosure.is_some() {
        "counts are disclosure-controlled as published in the run's <code>network/</code> folder"
    } else {
        "counts are exact, as published in the run's <code>network/</code> folder"
    };
    let _ = writeln!(
        out,
        "<p class=\"note\">Aggregates only: no person is named, and {counts}. A count reads as a number, <span class=\"state suppressed\">suppressed</span> (too small to show) or <span class=\"state unavailable\">unavailable</span> (the practice could not be evaluated): neither is zero.</p>\n</header>"
    );
    contents(&mut out, m);
    out.push_str("<main>\n");
    overview(&mut out, m);
    scorecard(&mut out, m);
    drill_down(&mut out, m);
    out.push_str("<section id=\"cohorts\">\n<h2>Cohorts</h2>\n");
    for (i, c) in m.cohorts.iter().enumerate() {
        cohort(&mut out, m, i, c);
    }
    out.push_str("</section>\n");
    lineage(&mut out, m);
    out.push_str("</main>\n</body>\n</html>\n");
    out
}

const LOUD: &str = "<div class=\"loud\" role=\"alert\"><strong>WARNING: DISCLOSURE CONTROL WAS OFF for this run.</strong> Counts are exact, small numbers included. Do not share this report outside the practices.</div>\n";

fn contents(out: &mut String, m: &Model) {
    out.push_str("<nav aria-label=\"Contents\"><ul>\n<li><a href=\"#overview\">Network overview</a></li>\n<li><a href=\"#scorecard\">Data quality scorecard</a></li>\n<li><a href=\"#checks\">Data quality checks</a></li>\n");
    for c in &m.cohorts {
        let _ = writeln!(
            out,
            "<li><a href=\"#{}\">Cohort {}</a></li>",
            escape(&anchor("cohort", &c.key)),
            escape(&c.key)
        );
    }
    out.push_str("<li><a href=\"#lineage\">Lineage</a></li>\n</ul></nav>\n");
}

fn status_words(status: &str) -> &'static str {
    match status {
        "ok" => "ok",
        "no_delivery" => "no delivery",
        "rejected" => "rejected",
        "empty" => "empty",
        _ => "unknown",
    }
}

fn overview(out: &mut String, m: &Model) {
    out.push_str("<section id=\"overview\">\n<h2>Network overview</h2>\n<table>\n<caption>Practices: data-quality status, supplier, latest extract and its age at the as-of date, failing checks, cohorts unavailable</caption>\n<thead><tr><th scope=\"col\">Practice</th><th scope=\"col\">Status</th><th scope=\"col\">Supplier</th><th scope=\"col\">Latest extract</th><th scope=\"col\">Days old</th><th scope=\"col\">Failing checks</th><th scope=\"col\">Cohorts unavailable</th></tr></thead>\n<tbody>\n");
    for p in &m.practices {
        let failing = p
            .checks
            .iter()
            .flatten()
            .filter(|c| c.status == CheckStatus::Fail)
            .count();
        let status_class = if p.status == "ok" { "pass" } else { "fail" };
        let _ = writeln!(
            out,
            "<tr><th scope=\"row\">{}</th><td class=\"{status_class}\">{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            escape(&p.practice),
            status_words(&p.status),
            p.supplier.as_deref().map_or("—".into(), escape),
            p.latest_extracted_at
                .as_deref()
                .map_or("none".into(), escape),
            p.freshness_days.map_or("—".into(), |d| d.to_string()),
            if p.status == "ok" {
                failing.to_string()
            } else {
                "not evaluated".into()
            },
            if p.unavailable_for.is_empty() {
                "none".to_string()
            } else {
                format!(
                    "<span class=\"state unavailable\">unavailable</span> for {}",
                    escape(&p.unavailable_for.join(", "))
                )
            }
        );
    }
    out.push_str("</tbody>\n</table>\n</section>\n");
}

/// The figure of a check as text: `0.12%`, `3 days`, or why there is none.
fn figure(c: &CheckCell) -> String {
    match (c.percentage, c.days, c.status) {
        (_, _, CheckStatus::Disabled) => "disabled".into(),
        (Some(p), _, _) => format!("{p}%"),
        (None, Some(d), _) => format!("{d} days"),
        _ => "not evaluated".into(),
    }
}

/// Class and symbol of a scorecard cell: colour, symbol and words agree.
fn cell_style(c: &CheckCell) -> (&'static str, &'static str) {
    match c.status {
        CheckStatus::Pass => ("pass", "✓"),
        CheckStatus::Fail => {
            let value = c.percentage.or(c.days.map(|d| d as f64)).unwrap_or(0.0);
            if value > 2.0 * c.threshold {
                ("fail2", "✗✗")
            } else {
                ("fail", "✗")
            }
        }
        CheckStatus::NotEvaluated => ("ne", "–"),
        CheckStatus::Disabled => ("off", "○"),
    }
}

fn threshold_text(measure: &str, t: f64) -> String {
    if measure == "days" {
        format!("{t} days")
    } else {
        format!("{t}%")
    }
}

fn scorecard(out: &mut String, m: &Model) {
    out.push_str("<section id=\"scorecard\">\n<h2>Data quality scorecard</h2>\n<p>Each cell is one check at one practice: the figure, its status as a symbol and a colour. A check passes when its figure is at most its threshold. Select a check for its detail.</p>\n<ul class=\"legend\" aria-label=\"Legend\"><li class=\"pass\">✓ pass</li><li class=\"fail\">✗ fail</li><li class=\"fail2\">✗✗ fail, over twice the threshold</li><li class=\"ne\">– not evaluated (no figure: never 0%)</li><li class=\"off\">○ disabled by the config</li></ul>\n<table class=\"scorecard\">\n<caption>Checks × practices</caption>\n<thead><tr><th scope=\"col\">Check</th><th scope=\"col\">Threshold</th>");
    for p in &m.practices {
        let _ = write!(out, "<th scope=\"col\">{}</th>", escape(&p.practice));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for (i, info) in m.checks.iter().enumerate() {
        let threshold = m
            .practices
            .iter()
            .find_map(|p| p.checks[i].as_ref().map(|c| c.threshold))
            .map_or("—".into(), |t| threshold_text(&info.measure, t));
        let _ = write!(
            out,
            "<tr><th scope=\"row\"><a href=\"#{}\">{}</a></th><td>{threshold}</td>",
            escape(&anchor("check", &info.id)),
            escape(&info.id)
        );
        for p in &m.practices {
            match &p.checks[i] {
                Some(c) => {
                    let (class, symbol) = cell_style(c);
                    let _ = write!(
                        out,
                        "<td class=\"{class}\" title=\"{}\">{symbol} {}</td>",
                        escape(&cell_title(c)),
                        escape(&figure(c))
                    );
                }
                None => out.push_str("<td class=\"ne\">– no figure</td>"),
            }
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n</section>\n");
}

fn cell_title(c: &CheckCell) -> String {
    match (c.numerator, c.denominator, &c.reason) {
        (Some(n), Some(d), _) => format!("{n} of {d}"),
        (_, _, Some(r)) => r.clone(),
        _ => String::new(),
    }
}

fn opt_num(v: Option<u64>) -> String {
    v.map_or("—".into(), |n| n.to_string())
}

fn drill_down(out: &mut String, m: &Model) {
    out.push_str("<section id=\"checks\">\n<h2>Data quality checks</h2>\n<p>Offending rows are listed, by source location only, in each practice's rows file in the data-quality folder (column <code>check_id</code>).</p>\n");
    for (i, info) in m.checks.iter().enumerate() {
        let _ = write!(
            out,
            "<section id=\"{}\">\n<h3>{}</h3>\n<p>{}</p>\n<p>Category: {} · measure: {}</p>\n<table>\n<caption>{} by practice</caption>\n<thead><tr><th scope=\"col\">Practice</th><th scope=\"col\">Status</th><th scope=\"col\">Numerator</th><th scope=\"col\">Denominator</th><th scope=\"col\">Figure</th><th scope=\"col\">Threshold</th><th scope=\"col\">Reason</th><th scope=\"col\">Rows listed</th><th scope=\"col\">Rows file</th></tr></thead>\n<tbody>\n",
            escape(&anchor("check", &info.id)),
            escape(&info.id),
            escape(&info.description),
            escape(&info.category),
            escape(&info.measure),
            escape(&info.id),
        );
        for p in &m.practices {
            let Some(c) = &p.checks[i] else {
                let _ = writeln!(
                    out,
                    "<tr><th scope=\"row\">{}</th><td class=\"ne\" colspan=\"8\">not in dq.json</td></tr>",
                    escape(&p.practice)
                );
                continue;
            };
            let (class, symbol) = cell_style(c);
            let status = match c.status {
                CheckStatus::Pass => "pass",
                CheckStatus::Fail => "fail",
                CheckStatus::NotEvaluated => "not evaluated",
                CheckStatus::Disabled => "disabled",
            };
            let _ = writeln!(
                out,
                "<tr><th scope=\"row\">{}</th><td class=\"{class}\">{symbol} {status}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
                escape(&p.practice),
                opt_num(c.numerator),
                opt_num(c.denominator),
                escape(&figure(c)),
                escape(&threshold_text(&info.measure, c.threshold)),
                c.reason.as_deref().map_or(String::new(), escape),
                opt_num(c.rows_listed),
                match (&p.rows_file, c.rows_listed) {
                    (Some(f), Some(n)) if n > 0 => format!("<code>{}</code>", escape(f)),
                    _ => "—".into(),
                }
            );
        }
        out.push_str("</tbody>\n</table>\n</section>\n");
    }
    out.push_str("</section>\n");
}

/// Header of a counts column; columns phm does not know keep their name.
fn column_header(name: &str) -> String {
    match name {
        "practice" => "Practice".into(),
        "status" => "Status".into(),
        "registered" => "Registered".into(),
        "in_population" => "In population".into(),
        "included" => "Included".into(),
        "undetermined" => "Undetermined (beside the included)".into(),
        "prevalence_pct" => "Prevalence %".into(),
        "ci95_low_pct" => "95% CI low %".into(),
        "ci95_high_pct" => "95% CI high %".into(),
        "funnel" => "Funnel position".into(),
        "unmapped_dependent" => "Might be in once unmapped codes are fixed (upper bound)".into(),
        other => escape(other),
    }
}

/// One count: a number, `suppressed`, `unavailable`, or none (null).
fn count_cell(v: Option<&str>) -> String {
    match v {
        None => "<td class=\"na\" title=\"not applicable\">—</td>".into(),
        Some("suppressed") => "<td class=\"state suppressed\">suppressed</td>".into(),
        Some("unavailable") => "<td class=\"state unavailable\">unavailable</td>".into(),
        Some(n) if n.parse::<f64>().is_ok() => format!("<td class=\"num\">{}</td>", escape(n)),
        Some(text) => format!("<td>{}</td>", escape(&text.replace('_', " "))),
    }
}

fn counts_table(out: &mut String, c: &CohortReport) {
    let t = &c.counts;
    let _ = write!(
        out,
        "<table>\n<caption>{}: counts per practice and for the network (ALL)</caption>\n<thead><tr>",
        escape(&c.key)
    );
    for col in &t.columns {
        let _ = write!(out, "<th scope=\"col\">{}</th>", column_header(col));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for row in &t.rows {
        out.push_str("<tr>");
        for (col, v) in t.columns.iter().zip(row) {
            if col == "practice" {
                let _ = write!(
                    out,
                    "<th scope=\"row\">{}</th>",
                    escape(v.as_deref().unwrap_or(""))
                );
            } else {
                out.push_str(&count_cell(v.as_deref()));
            }
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n");
}

fn number(t: &TextTable, row: usize, column: &str) -> Option<f64> {
    t.get(row, column)?.parse().ok()
}

fn position_words(position: &str) -> String {
    match position {
        "above_99_8" => "above the 99.8% limit".into(),
        "below_99_8" => "below the 99.8% limit".into(),
        "above_95" => "above the 95% limit".into(),
        "below_95" => "below the 95% limit".into(),
        "within" => "within the limits".into(),
        other => other.replace('_', " "),
    }
}

fn cohort(out: &mut String, m: &Model, i: usize, c: &CohortReport) {
    let id = anchor("cohort", &c.key);
    let _ = writeln!(
        out,
        "<section id=\"{}\">\n<h3>{}</h3>\n<p>Index date {} · run status {}.</p>",
        escape(&id),
        escape(&c.key),
        escape(&c.index_date),
        escape(&c.status)
    );
    counts_table(out, c);
    let t = &c.counts;
    let network = crate::cohort::engine::NETWORK;
    let practice_rows: Vec<usize> = (0..t.rows.len())
        .filter(|r| t.get(*r, "practice").is_some_and(|p| p != network))
        .collect();
    let p0 = (0..t.rows.len())
        .find(|r| t.get(*r, "practice") == Some(network))
        .and_then(|r| number(t, r, "prevalence_pct"));
    let mut points = Vec::new();
    let mut suppressed = Vec::new();
    let mut unavailable = Vec::new();
    for &r in &practice_rows {
        let practice = t.get(r, "practice").unwrap_or_default().to_string();
        match (
            number(t, r, "in_population"),
            number(t, r, "prevalence_pct"),
        ) {
            (Some(n), Some(pct)) if n > 0.0 => points.push(FunnelPoint {
                practice,
                n,
                pct,
                position: t.get(r, "funnel").unwrap_or("within").to_string(),
            }),
            _ if t.get(r, "in_population") == Some("unavailable") => unavailable.push(practice),
            _ => suppressed.push(practice),
        }
    }
    let _ = writeln!(out, "<h4>Funnel plot</h4>");
    match p0 {
        Some(p0) => {
            let title = format!("{}: prevalence by practice population, funnel plot", c.key);
            match charts::funnel_svg(&format!("funnel-{i}"), &title, p0, &points) {
                Ok(svg) => out.push_str(&svg),
                Err(e) => {
                    let _ = writeln!(
                        out,
                        "<p class=\"note\">The chart could not be drawn ({}); its figures follow.</p>",
                        escape(&e)
                    );
                }
            }
            funnel_figures(out, c, p0, &points);
        }
        None => out.push_str("<p class=\"note\">The network's prevalence is not shown (suppressed or no population), so no funnel plot is drawn.</p>\n"),
    }
    if !suppressed.is_empty() {
        let _ = writeln!(
            out,
            "<p>Not plotted, counts <span class=\"state suppressed\">suppressed</span> or no population: {}.</p>",
            escape(&suppressed.join(", "))
        );
    }
    if !unavailable.is_empty() {
        let _ = writeln!(
            out,
            "<p>Not plotted, <span class=\"state unavailable\">unavailable</span> (the cohort could not be evaluated there): {}.</p>",
            escape(&unavailable.join(", "))
        );
    }
    outliers(out, m, c, &practice_rows);
    bearing(out, c);
    out.push_str("</section>\n");
}

/// Every data-quality finding bearing on the cohort, check by practice:
/// offending rows and the persons of its population they concern.
fn bearing(out: &mut String, c: &CohortReport) {
    out.push_str("<h4>Data-quality findings bearing on this cohort</h4>\n");
    let Some(q) = &c.quality else {
        out.push_str("<p>Not available for this run.</p>\n");
        return;
    };
    let mut checks: Vec<&str> = (0..q.rows.len())
        .filter_map(|i| q.get(i, "check_id"))
        .collect();
    checks.sort_unstable();
    checks.dedup();
    if checks.is_empty() {
        out.push_str("<p>No data-quality check flags a row bearing on this cohort.</p>\n");
        return;
    }
    let network = crate::cohort::engine::NETWORK;
    let mut practices: Vec<&str> = (0..q.rows.len())
        .filter_map(|i| q.get(i, "practice"))
        .filter(|p| *p != network)
        .collect();
    practices.sort_unstable();
    practices.dedup();
    practices.push(network);
    let _ = write!(
        out,
        "<table>\n<caption>{}: offending rows bearing on the cohort, and the persons of its population they concern (rows / persons; a blank cell is none)</caption>\n<thead><tr><th scope=\"col\">Check</th>",
        escape(&c.key)
    );
    for p in &practices {
        let _ = write!(out, "<th scope=\"col\">{}</th>", escape(p));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for check in checks {
        let _ = write!(out, "<tr><th scope=\"row\">{}</th>", check_link(check));
        for p in &practices {
            let row = (0..q.rows.len()).find(|i| {
                q.get(*i, "check_id") == Some(check) && q.get(*i, "practice") == Some(*p)
            });
            match row {
                None => out.push_str("<td></td>"),
                Some(i) => {
                    let _ = write!(
                        out,
                        "<td class=\"num\">{} / {}</td>",
                        escape(q.get(i, "rows").unwrap_or("—")),
                        escape(q.get(i, "persons").unwrap_or("—"))
                    );
                }
            }
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n");
}

/// The chart's figures as a table: its text alternative.
fn funnel_figures(out: &mut String, c: &CohortReport, p0: f64, points: &[FunnelPoint]) {
    let _ = write!(
        out,
        "<table>\n<caption>{}: the funnel plot's figures (network prevalence {p0:.1}%; limits p0 ± z·√(p0(1−p0)/n))</caption>\n<thead><tr><th scope=\"col\">Practice</th><th scope=\"col\">n (in population)</th><th scope=\"col\">Prevalence %</th><th scope=\"col\">95% limits %</th><th scope=\"col\">99.8% limits %</th><th scope=\"col\">Position</th></tr></thead>\n<tbody>\n",
        escape(&c.key)
    );
    for p in points {
        let (l95, h95) = charts::limits(p0 / 100.0, p.n, Z95);
        let (l998, h998) = charts::limits(p0 / 100.0, p.n, Z998);
        let _ = writeln!(
            out,
            "<tr><th scope=\"row\">{}</th><td class=\"num\">{}</td><td class=\"num\">{:.1}</td><td class=\"num\">{l95:.1}–{h95:.1}</td><td class=\"num\">{l998:.1}–{h998:.1}</td><td>{}</td></tr>",
            escape(&p.practice),
            p.n,
            p.pct,
            escape(&position_words(&p.position))
        );
    }
    out.push_str("</tbody>\n</table>\n<p class=\"note\">Points are placed at the published (rounded) counts; the position is computed from the exact counts.</p>\n");
}

fn check_link(id: &str) -> String {
    format!(
        "<a href=\"#{}\"><code>{}</code></a>",
        escape(&anchor("check", id)),
        escape(id)
    )
}

fn outliers(out: &mut String, m: &Model, c: &CohortReport, rows: &[usize]) {
    let t = &c.counts;
    out.push_str("<h4>Outlying practices</h4>\n");
    let outlying: Vec<usize> = rows
        .iter()
        .copied()
        .filter(|r| t.get(*r, "funnel").is_some_and(|f| OUTLYING.contains(&f)))
        .collect();
    if outlying.is_empty() {
        out.push_str("<p>No practice lies outside the 95% control limits.</p>\n");
        return;
    }
    out.push_str("<ul>\n");
    for r in outlying {
        let practice = t.get(r, "practice").unwrap_or_default();
        let _ = write!(
            out,
            "<li><strong>{}</strong>: {} (prevalence {}%).",
            escape(practice),
            escape(&position_words(t.get(r, "funnel").unwrap_or_default())),
            escape(t.get(r, "prevalence_pct").unwrap_or("—"))
        );
        match &c.quality {
            None => out.push_str(" Data-quality checks bearing on this cohort's value sets: not available for this run."),
            Some(q) => {
                let flagged: Vec<String> = (0..q.rows.len())
                    .filter(|i| q.get(*i, "practice") == Some(practice))
                    .filter(|i| {
                        ["rows", "persons"]
                            .iter()
                            .any(|col| q.get(*i, col).is_some_and(|v| v != "0"))
                    })
                    .map(|i| {
                        format!(
                            "{} (rows {}, persons {})",
                            check_link(q.get(i, "check_id").unwrap_or_default()),
                            escape(q.get(i, "rows").unwrap_or("—")),
                            escape(q.get(i, "persons").unwrap_or("—"))
                        )
                    })
                    .collect();
                if flagged.is_empty() {
                    out.push_str(" No data-quality check flags rows bearing on this cohort's value sets.");
                } else {
                    let _ = write!(
                        out,
                        " Checks flagging rows that bear on this cohort's value sets: {}.",
                        flagged.join(", ")
                    );
                }
            }
        }
        if let Some(p) = m.practices.iter().find(|p| p.practice == practice) {
            failing_checks(out, m, p);
        }
        out.push_str("</li>\n");
    }
    out.push_str("</ul>\n");
}

fn failing_checks(out: &mut String, m: &Model, p: &PracticeOverview) {
    let failing: Vec<String> = m
        .checks
        .iter()
        .zip(&p.checks)
        .filter(|(_, c)| c.as_ref().is_some_and(|c| c.status == CheckStatus::Fail))
        .map(|(info, _)| check_link(&info.id))
        .collect();
    if p.status != "ok" {
        let _ = write!(
            out,
            " Its data quality was not evaluated ({}).",
            status_words(&p.status)
        );
    } else if failing.is_empty() {
        out.push_str(" It fails no data-quality check.");
    } else {
        let _ = write!(
            out,
            " Checks it fails (all its data): {}.",
            failing.join(", ")
        );
    }
}

fn lineage(out: &mut String, m: &Model) {
    let r = &m.run;
    out.push_str("<section id=\"lineage\">\n<h2>Lineage</h2>\n");
    if r.disclosure.is_none() {
        out.push_str(LOUD);
    }
    let _ = writeln!(
        out,
        "<table>\n<caption>The run</caption>\n<tbody>\n<tr><th scope=\"row\">Run id</th><td><code>{}</code></td></tr>\n<tr><th scope=\"row\">phm version</th><td>{}</td></tr>\n<tr><th scope=\"row\">Terminology release</th><td><code>{}</code></td></tr>\n<tr><th scope=\"row\">Disclosure control</th><td>{}</td></tr>\n<tr><th scope=\"row\">Pseudonym key id</th><td><code>{}</code></td></tr>\n<tr><th scope=\"row\">Purpose</th><td>{}</td></tr>\n<tr><th scope=\"row\">Output files</th><td>{} files, {} bytes (listed with SHA-256 in manifest.json)</td></tr>\n</tbody>\n</table>",
        escape(&r.run_id),
        escape(&r.phm_version),
        escape(&r.release),
        match r.disclosure {
            Some((t, b)) => format!("counts 1–{t} suppressed, others rounded to the nearest {b}"),
            None => "<strong>OFF: exact counts</strong>".into(),
        },
        escape(&r.key_id),
        r.purpose.as_deref().map_or("not given".into(), escape),
        r.output_files,
        r.output_bytes
    );
    out.push_str("<h3>Definitions</h3>\n<table>\n<caption>Cohort definitions, their SHA-256 and value-set expansions</caption>\n<thead><tr><th scope=\"col\">Cohort</th><th scope=\"col\">Index date</th><th scope=\"col\">File</th><th scope=\"col\">SHA-256</th><th scope=\"col\">Value sets (version: expansion hash)</th><th scope=\"col\">Unavailable at</th></tr></thead>\n<tbody>\n");
    for d in &r.definitions {
        let valuesets: Vec<String> = d
            .valuesets
            .iter()
            .map(|(id, v, h)| {
                format!(
                    "{}@{}: <code>{}</code>",
                    escape(id),
                    escape(v),
                    escape(h.get(..16).unwrap_or(h))
                )
            })
            .collect();
        let _ = writeln!(
            out,
            "<tr><th scope=\"row\">{}</th><td>{}</td><td><code>{}</code></td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
            escape(&d.cohort),
            escape(&d.index_date),
            escape(&d.path),
            escape(&d.sha256),
            valuesets.join("<br>"),
            if d.unavailable.is_empty() {
                "—".to_string()
            } else {
                escape(&d.unavailable.join(", "))
            }
        );
    }
    out.push_str("</tbody>\n</table>\n<h3>Deliveries</h3>\n<table>\n<caption>Deliveries in the store, per practice</caption>\n<thead><tr><th scope=\"col\">Practice</th><th scope=\"col\">Extract id</th><th scope=\"col\">Kind</th><th scope=\"col\">Extracted at</th></tr></thead>\n<tbody>\n");
    for d in &r.deliveries {
        let _ = writeln!(
            out,
            "<tr><th scope=\"row\">{}</th><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
            escape(&d.practice),
            escape(&d.extract_id),
            escape(&d.kind),
            escape(&d.extracted_at)
        );
    }
    out.push_str("</tbody>\n</table>\n</section>\n");
}

#[cfg(test)]
#[path = "html_tests.rs"]
mod tests;
