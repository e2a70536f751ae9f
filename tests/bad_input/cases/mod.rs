//! The cases, one module per command they hit.

mod demo;
mod ingest;

pub fn all() -> Vec<crate::Case> {
    [ingest::CASES, demo::CASES].concat()
}
