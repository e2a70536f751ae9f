//! The cases, one module per command they hit.

mod ingest;
mod store;

pub fn all() -> Vec<crate::Case> {
    [ingest::CASES, store::CASES].concat()
}
