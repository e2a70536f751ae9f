//! The cases, one module per command they hit.

mod ingest;
mod terminology;

pub fn all() -> Vec<crate::Case> {
    [ingest::CASES, terminology::CASES].concat()
}
