//! The cases, one module per command they hit.

mod dq;
mod ingest;

pub fn all() -> Vec<crate::Case> {
    [ingest::CASES, dq::CASES].concat()
}
