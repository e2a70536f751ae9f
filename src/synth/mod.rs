//! Deterministic generator of a Primary Care Network's EMIS and TPP deliveries.

pub mod truth;
