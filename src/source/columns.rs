//! Typed access to the columns of a source table's state, and the date sentinels
//! both suppliers use.

use chrono::{NaiveDate, NaiveDateTime};
use datafusion::arrow::array::{
    Array, BooleanArray, Date32Array, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};

use crate::source::read::{EXTRACT_ID, EXTRACTED_AT, SOURCE_FILE, SOURCE_ROW};

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// Days from 1970-01-01 to 1900-01-01: TPP's floor for undated events and registrations.
pub const FLOOR_DAYS: i32 = -25_567;
/// Days from 1970-01-01 to 9999-12-31: TPP's "none / current" date.
pub const OPEN_END_DAYS: i32 = 2_932_896;

/// A source table's state batch with columns looked up by name.
pub struct Columns<'a> {
    pub batch: &'a RecordBatch,
}

impl<'a> Columns<'a> {
    pub fn new(batch: &'a RecordBatch) -> Self {
        Columns { batch }
    }

    fn column<T: 'static>(&self, name: &str) -> &'a T {
        let col = self
            .batch
            .column_by_name(name)
            .unwrap_or_else(|| panic!("state has column {name}"));
        col.as_any()
            .downcast_ref::<T>()
            .unwrap_or_else(|| panic!("column {name} has its spec type"))
    }
    pub fn str(&self, name: &str) -> &'a StringArray {
        self.column(name)
    }
    pub fn i64(&self, name: &str) -> &'a Int64Array {
        self.column(name)
    }
    pub fn f64(&self, name: &str) -> &'a Float64Array {
        self.column(name)
    }
    pub fn bool(&self, name: &str) -> &'a BooleanArray {
        self.column(name)
    }
    pub fn date(&self, name: &str) -> &'a Date32Array {
        self.column(name)
    }
    pub fn ts(&self, name: &str) -> &'a TimestampMicrosecondArray {
        self.column(name)
    }
    pub fn origin(&self) -> OriginColumns<'a> {
        OriginColumns {
            extract_id: self.str(EXTRACT_ID),
            extracted_at: self.ts(EXTRACTED_AT),
            file: self.str(SOURCE_FILE),
            row: self.i64(SOURCE_ROW),
        }
    }
}

/// The provenance columns every state row carries.
pub struct OriginColumns<'a> {
    pub extract_id: &'a StringArray,
    pub extracted_at: &'a TimestampMicrosecondArray,
    pub file: &'a StringArray,
    pub row: &'a Int64Array,
}

impl OriginColumns<'_> {
    pub fn extracted_at(&self, i: usize) -> NaiveDateTime {
        chrono::DateTime::from_timestamp_micros(self.extracted_at.value(i))
            .expect("valid timestamp")
            .naive_utc()
    }
    pub fn extracted_day(&self, i: usize) -> i32 {
        self.extracted_at.value(i).div_euclid(MICROS_PER_DAY) as i32
    }
}

/// The value as text, trimmed; `None` when null or blank.
pub fn text(a: &StringArray, i: usize) -> Option<&str> {
    if a.is_null(i) {
        return None;
    }
    let v = a.value(i).trim();
    (!v.is_empty()).then_some(v)
}

/// The value as stored (whitespace preserved); `None` when null.
pub fn raw_text(a: &StringArray, i: usize) -> Option<&str> {
    a.is_valid(i).then(|| a.value(i))
}

pub fn int(a: &Int64Array, i: usize) -> Option<i64> {
    a.is_valid(i).then(|| a.value(i))
}

pub fn float(a: &Float64Array, i: usize) -> Option<f64> {
    a.is_valid(i).then(|| a.value(i))
}

pub fn flag(a: &BooleanArray, i: usize) -> bool {
    a.is_valid(i) && a.value(i)
}

pub fn date(a: &Date32Array, i: usize) -> Option<i32> {
    a.is_valid(i).then(|| a.value(i))
}

/// A TPP date-time as a day number.
pub fn ts_day(a: &TimestampMicrosecondArray, i: usize) -> Option<i32> {
    a.is_valid(i)
        .then(|| a.value(i).div_euclid(MICROS_PER_DAY) as i32)
}

/// A TPP end date: 9999-12-31 means "none / current".
pub fn open_end(day: Option<i32>) -> Option<i32> {
    day.filter(|d| *d < OPEN_END_DAYS)
}

pub fn day_to_date(day: i32) -> NaiveDate {
    NaiveDate::from_num_days_from_ce_opt(day + 719_163).expect("day in range")
}

pub fn date_to_day(date: NaiveDate) -> i32 {
    date.num_days_from_ce() - 719_163
}

/// The row's source columns (not provenance) as a JSON object of display strings,
/// so a quarantined row keeps every value it arrived with.
pub fn row_json(batch: &RecordBatch, source_columns: usize, row: usize) -> String {
    let options = FormatOptions::default().with_null("");
    let mut map = serde_json::Map::new();
    for (field, col) in batch
        .schema()
        .fields()
        .iter()
        .zip(batch.columns())
        .take(source_columns)
    {
        let value = if col.is_null(row) {
            serde_json::Value::Null
        } else {
            match ArrayFormatter::try_new(col.as_ref(), &options) {
                Ok(f) => serde_json::Value::String(f.value(row).to_string()),
                Err(_) => serde_json::Value::Null,
            }
        };
        map.insert(field.name().clone(), value);
    }
    serde_json::Value::Object(map).to_string()
}

use chrono::Datelike;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinel_days() {
        assert_eq!(
            day_to_date(FLOOR_DAYS),
            NaiveDate::from_ymd_opt(1900, 1, 1).unwrap()
        );
        assert_eq!(
            day_to_date(OPEN_END_DAYS),
            NaiveDate::from_ymd_opt(9999, 12, 31).unwrap()
        );
        assert_eq!(date_to_day(NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()), 0);
        assert_eq!(open_end(Some(OPEN_END_DAYS)), None);
        assert_eq!(open_end(Some(0)), Some(0));
    }
}
