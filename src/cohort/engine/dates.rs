//! Calendar arithmetic: literal dates computed here, per-person dates in the
//! query. Months clamp to the end of a shorter month (31 March − 1 month =
//! 28/29 February), in both.

use chrono::{Months, NaiveDate};
use datafusion::arrow::datatypes::IntervalDayTime;
use datafusion::prelude::{Expr, lit};
use datafusion::scalar::ScalarValue;

const EPOCH: NaiveDate = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");

/// Days since 1970-01-01 (Arrow `Date32`).
pub fn days(d: NaiveDate) -> i32 {
    (d - EPOCH).num_days() as i32
}

pub fn date_lit(d: NaiveDate) -> Expr {
    lit(ScalarValue::Date32(Some(days(d))))
}

/// `d` moved by `months` (clamped to month end) then by `days`.
pub fn shift(d: NaiveDate, months: i32, days: i32) -> Option<NaiveDate> {
    let m = Months::new(months.unsigned_abs());
    let d = if months >= 0 {
        d.checked_add_months(m)?
    } else {
        d.checked_sub_months(m)?
    };
    d.checked_add_signed(chrono::Duration::days(days as i64))
}

/// `e` (a `Date32` expression) moved by `months` then `days`, in the query.
pub fn shift_expr(e: Expr, months: i32, days: i32) -> Expr {
    let mut out = e;
    if months != 0 {
        out = out + lit(ScalarValue::IntervalYearMonth(Some(months)));
    }
    if days != 0 {
        out = out
            + lit(ScalarValue::IntervalDayTime(Some(IntervalDayTime {
                days,
                milliseconds: 0,
            })));
    }
    out
}
