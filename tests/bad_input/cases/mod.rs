//! The cases, one module per command they hit.

mod ingest;

pub fn all() -> Vec<crate::Case> {
    [ingest::CASES].concat()
}
