//! Periods (`"12 months"`), window bounds (`"index - 12 months"`,
//! `"dm_latest + 1 day"`) and the check that a window can hold a date.
//! Semantics: `docs/cohort-language.md` "Dates, periods and windows".

use chrono::{Months, NaiveDate, TimeDelta};

use super::valid_name;
use crate::cohort::model::{Anchor, Bound, Period, PeriodUnit};

const PERIOD_HINT: &str =
    "hint: write \"N days\", \"N weeks\", \"N months\" or \"N years\" with N a whole number";

/// `"N day(s)|week(s)|month(s)|year(s)"`, N ≥ 1.
pub(super) fn period(s: &str) -> Result<Period, String> {
    let bad = || format!("{s:?} is not a period; {PERIOD_HINT}");
    let mut words = s.split_whitespace();
    let (Some(amount), Some(unit), None) = (words.next(), words.next(), words.next()) else {
        return Err(bad());
    };
    if !amount.bytes().all(|c| c.is_ascii_digit()) {
        return Err(bad());
    }
    let amount: u32 = amount.parse().map_err(|_| bad())?;
    let unit = match unit {
        "day" | "days" => PeriodUnit::Days,
        "week" | "weeks" => PeriodUnit::Weeks,
        "month" | "months" => PeriodUnit::Months,
        "year" | "years" => PeriodUnit::Years,
        _ => return Err(bad()),
    };
    if amount == 0 {
        return Err(format!(
            "{s:?} is an empty period; hint: leave the period out"
        ));
    }
    Ok(Period { amount, unit })
}

/// A bound as written, with the byte offset (in the bound's text) of the
/// anchor name, for errors about the anchor.
#[derive(Debug, Clone)]
pub(super) struct Parsed {
    pub bound: Bound,
    pub anchor_at: usize,
}

/// `index` or a criterion name, optionally `+ P` or `- P` (spaces optional).
/// Errors carry the byte offset in `s` they refer to.
pub(super) fn bound(s: &str, inclusive: bool) -> Result<Parsed, (usize, String)> {
    let hint = "hint: write `index`, `index - 12 months` or `<criterion> + 1 day`";
    let (left, offset) = match s.find(['+', '-']) {
        Some(p) => (&s[..p], Some((p, &s[p..=p], &s[p + 1..]))),
        None => (s, None),
    };
    let anchor_at = left.len() - left.trim_start().len();
    let name = left.trim();
    if name.is_empty() {
        return Err((0, format!("bound {s:?} has no anchor; {hint}")));
    }
    let anchor = if name == "index" {
        Anchor::Index
    } else if valid_name(name) {
        Anchor::Criterion(name.to_string())
    } else {
        return Err((anchor_at, format!("bound {s:?} is not a bound; {hint}")));
    };
    let (mut months, mut days) = (0, 0);
    if let Some((at, sign, rest)) = offset {
        let p = period(rest.trim()).map_err(|e| (at, format!("in bound {s:?}: {e}")))?;
        let (m, d) = p.months_days();
        let sign = if sign == "-" { -1 } else { 1 };
        let too_long = || (at, format!("in bound {s:?}: the period is too long"));
        months = sign * i32::try_from(m).map_err(|_| too_long())?;
        days = sign * i32::try_from(d).map_err(|_| too_long())?;
    }
    Ok(Parsed {
        bound: Bound {
            anchor,
            months,
            days,
            inclusive,
        },
        anchor_at,
    })
}

/// `date` moved by the bound's offset (months first, clamping to the end of a
/// shorter month, then days).
pub(super) fn shift(date: NaiveDate, months: i32, days: i32) -> Option<NaiveDate> {
    let m = Months::new(months.unsigned_abs());
    let date = if months >= 0 {
        date.checked_add_months(m)?
    } else {
        date.checked_sub_months(m)?
    };
    date.checked_add_signed(TimeDelta::days(i64::from(days)))
}

/// Whether a window whose bounds share one anchor holds a date for at least
/// one anchor date. Tried on every day of 2019–2025: every month end, and
/// 29 February 2020 and 2024.
pub(super) fn can_hold_a_date(lower: &Bound, upper: &Bound) -> bool {
    let start = NaiveDate::from_ymd_opt(2019, 1, 1).expect("a date");
    let end = NaiveDate::from_ymd_opt(2025, 12, 31).expect("a date");
    start.iter_days().take_while(|d| *d <= end).any(|d| {
        let first = shift(d, lower.months, lower.days).map(|x| {
            if lower.inclusive {
                x
            } else {
                x + TimeDelta::days(1)
            }
        });
        let last = shift(d, upper.months, upper.days).map(|x| {
            if upper.inclusive {
                x
            } else {
                x - TimeDelta::days(1)
            }
        });
        matches!((first, last), (Some(f), Some(l)) if f <= l)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods() {
        let cases = [
            ("12 months", Ok((12, 0))),
            ("1 day", Ok((0, 1))),
            (" 2  weeks ", Ok((0, 14))),
            ("1 year", Ok((12, 0))),
            ("3 days", Ok((0, 3))),
            ("12 mnths", Err("is not a period")),
            ("months", Err("is not a period")),
            ("-1 day", Err("is not a period")),
            ("1.5 years", Err("is not a period")),
            ("0 days", Err("empty period")),
        ];
        for (s, want) in cases {
            match (period(s), want) {
                (Ok(p), Ok(w)) => assert_eq!(p.months_days(), w, "{s}"),
                (Err(e), Err(w)) => assert!(e.contains(w), "{s}: {e}"),
                (g, w) => panic!("{s}: {g:?} vs {w:?}"),
            }
        }
    }

    #[test]
    fn bounds() {
        let idx = Anchor::Index;
        let dm = Anchor::Criterion("dm_latest".into());
        let cases = [
            ("index", Ok((idx.clone(), 0, 0))),
            ("index - 12 months", Ok((idx.clone(), -12, 0))),
            ("index-12 months", Ok((idx.clone(), -12, 0))),
            ("index +1 week", Ok((idx.clone(), 0, 7))),
            ("dm_latest + 1 day", Ok((dm.clone(), 0, 1))),
            (" dm_latest", Ok((dm, 0, 0))),
            ("- 12 months", Err("has no anchor")),
            ("Index", Err("is not a bound")),
            ("index 12 months", Err("is not a bound")),
            ("index - twelve months", Err("is not a period")),
            ("index + 1 day - 2 days", Err("is not a period")),
        ];
        for (s, want) in cases {
            match (bound(s, true), want) {
                (Ok(p), Ok((a, m, d))) => {
                    assert_eq!(
                        (p.bound.anchor, p.bound.months, p.bound.days),
                        (a, m, d),
                        "{s}"
                    )
                }
                (Err((_, e)), Err(w)) => assert!(e.contains(w), "{s}: {e}"),
                (g, w) => panic!("{s}: {g:?} vs {w:?}"),
            }
        }
    }

    #[test]
    fn windows_that_can_hold_a_date() {
        let b = |months, days, inclusive| Bound {
            anchor: Anchor::Index,
            months,
            days,
            inclusive,
        };
        let cases = [
            (b(-12, 0, false), b(0, 0, true), true),
            (b(0, 0, false), b(0, 0, true), false),
            (b(0, 0, true), b(0, 0, true), true),
            (b(0, 0, true), b(0, 0, false), false),
            (b(0, 0, false), b(0, 1, true), true),
            (b(0, 0, false), b(0, 1, false), false),
            // 31 March - 1 month = 28/29 February, after 28 February - 1 day.
            (b(-1, 0, true), b(0, -30, true), true),
            (b(0, 1, true), b(0, 0, true), false),
            (b(1, 0, true), b(0, 31, true), true),
            (b(1, 0, true), b(0, 27, true), false),
        ];
        for (lower, upper, want) in cases {
            assert_eq!(can_hold_a_date(&lower, &upper), want, "{lower:?} {upper:?}");
        }
    }
}
