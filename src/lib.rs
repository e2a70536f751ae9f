//! phm: population-health analytics for English general practice.
//!
//! Stages (DESIGN.md): `source` (supplier adapters: read, merge deltas, map to
//! the canonical model) → `ingest` → `store` (canonical Parquet, partitioned by
//! practice). `synth` generates realistic supplier extracts for tests, demos
//! and benchmarks; `cli` is the command line.

pub mod canonical;
pub mod cli;
pub mod cohort;
pub mod confine;
pub mod ingest;
pub mod nhs_number;
pub mod output;
pub mod pipeline;
pub mod quality;
pub mod report;
pub mod session;
#[cfg(feature = "ballista")]
pub mod session_ballista;
pub mod source;
pub mod store;
pub mod synth;
pub mod terminology;
pub mod valueset;
