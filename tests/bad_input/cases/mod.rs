//! The cases, one module per command they hit.

mod demo;
mod dq;
mod ingest;
mod reidentify;
mod report;
mod store;
mod terminology;

pub fn all() -> Vec<crate::Case> {
    [
        demo::CASES,
        dq::CASES,
        ingest::CASES,
        reidentify::CASES,
        report::CASES,
        store::CASES,
        terminology::CASES,
    ]
    .concat()
}
