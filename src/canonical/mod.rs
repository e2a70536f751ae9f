//! The canonical model: one shape for patients, registrations, events and
//! medications whichever supplier they came from (DESIGN.md, "Canonical model").
//!
//! Every row carries provenance (practice, supplier, source table, source row id,
//! extract id, extracted-at). Coded rows keep the source code system and code
//! and the mapped SNOMED CT / dm+d concept with a mapping kind. Numeric values
//! keep the source value, comparator and unit.

pub mod tables;
pub mod units;

pub use tables::{CanonicalTable, Provenance};
