//! Deterministic generator of a Primary Care Network's EMIS and TPP deliveries.
//!
//! [`generate`] writes, under `cfg.out`, one folder per member practice (its ODS
//! code) holding one folder per delivery (its extract id: a bulk, then weekly
//! deltas), each with a Parquet file per supplier table and a `manifest.json`
//! (DESIGN.md, "Extract manifest"; shapes as in EXTRACTS.md and
//! [`crate::source::emis::tables`] / [`crate::source::tpp::tables`]). Beside them,
//! `ground_truth.json` ([`truth::GroundTruth`]) records every injected defect, the
//! rows the store must hold per practice once all deliveries are applied, deleted
//! patients and people registered at two practices.
//!
//! The same configuration always produces byte-identical files: every value is
//! drawn from seeded streams keyed by what is drawn and for whom
//! ([`sampling`]), practices are written in parallel but independently, and nothing
//! reads the clock.
//!
//! Module map: [`population`] plans practices, [`people`] and their
//! [`registrations`]; [`conditions`] gives each person long-term conditions;
//! [`clinical`], [`measurements`] and [`medication`] turn them into a record at a
//! practice ([`record`]), coded from [`codes`] ([`codelists`], [`drugs`]);
//! [`schedule`] places rows in deliveries and decides later edits and deletes;
//! [`defects`] injects data-quality defects; [`emis`] and [`tpp`] render records in
//! their supplier's tables through [`writer`]; [`practice`] ties these together for
//! one practice; [`sampling`] keys every random stream.

pub mod clinical;
pub mod codelists;
pub mod codes;
pub mod conditions;
pub mod defects;
pub mod drugs;
pub mod emis;
pub mod measurements;
pub mod medication;
pub mod people;
pub mod population;
pub mod practice;
pub mod record;
pub mod registrations;
pub mod sampling;
pub mod schedule;
pub mod tpp;
pub mod truth;
pub mod writer;

#[cfg(test)]
pub(crate) mod tests;

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use rayon::prelude::*;

use crate::synth::population::{MAX_PEOPLE, Network};
use crate::synth::practice::{MoverRecord, PracticeOutput};
use crate::synth::registrations::MoveSide;
use crate::synth::schedule::Schedule;
use crate::synth::truth::{DefectKind, GROUND_TRUTH_FILE, GroundTruth, Move};

/// What to generate.
#[derive(Debug, Clone)]
pub struct SynthConfig {
    /// Folder the network is written to (created if missing; files are overwritten).
    pub out: PathBuf,
    /// Member practices.
    pub practices: usize,
    /// Patient records across the network (a person who moved between member
    /// practices has a record at each).
    pub patients: usize,
    pub seed: u64,
    /// Share of practices on EMIS Web; the rest are on TPP SystmOne.
    pub emis_share: f64,
    /// Deltas after the bulk, a week apart.
    pub deltas: usize,
    /// The last delivery is extracted on this day at 02:00.
    pub as_of: chrono::NaiveDate,
    /// Fraction of eligible rows given each defect (see [`defects`] for eligibility).
    pub defect_rates: BTreeMap<DefectKind, f64>,
    /// Practices, the last ones in the network, whose extracts share no prescribing:
    /// their deliveries carry no medication tables at all (EMIS
    /// `Prescribing_DrugRecord` and `Prescribing_IssueRecord`, TPP
    /// `SRPrimaryCareMedication`). Their records are drawn exactly as for any other
    /// practice, so every other practice's files are the same whatever this is.
    pub without_prescribing: usize,
}

impl SynthConfig {
    /// Small rates of every defect kind, enough for each to appear in a network of a
    /// few thousand patients without dominating it.
    pub fn default_defect_rates() -> BTreeMap<DefectKind, f64> {
        use DefectKind::*;
        BTreeMap::from([
            (InvalidNhsNumber, 0.005),
            (MissingNhsNumber, 0.005),
            (DummyPatient, 0.002),
            (EventBeforeBirth, 0.002),
            (EventAfterDeath, 0.005),
            (FutureDated, 0.002),
            (MissingUnit, 0.003),
            (UnknownUnit, 0.002),
            (PlaceholderZero, 0.003),
            (UnmappedLocalCode, 0.002),
            (LateCodingRow, 0.002),
            (DuplicateRow, 0.002),
            (FloorDate, 0.002),
            (UnknownDatePrecision, 0.002),
        ])
    }

    fn validate(&self) -> Result<(), SynthError> {
        let invalid = |message: String| Err(SynthError::InvalidConfig(message));
        if self.practices == 0 || self.practices > 500 {
            return invalid(format!(
                "practices must be between 1 and 500, got {}",
                self.practices
            ));
        }
        if self.without_prescribing > self.practices {
            return invalid(format!(
                "without_prescribing must be at most the number of practices ({}), got {}",
                self.practices, self.without_prescribing
            ));
        }
        if self.patients < 10 * self.practices {
            return invalid(format!(
                "patients must be at least 10 per practice ({} for {} practices), got {}",
                10 * self.practices,
                self.practices,
                self.patients
            ));
        }
        if self.patients > MAX_PEOPLE {
            return invalid(format!(
                "patients must be at most {MAX_PEOPLE} (the synthetic 999 NHS-number range), got {}",
                self.patients
            ));
        }
        if !(0.0..=1.0).contains(&self.emis_share) {
            return invalid(format!(
                "emis_share must be between 0 and 1, got {}",
                self.emis_share
            ));
        }
        if self.deltas > 100 {
            return invalid(format!("deltas must be at most 100, got {}", self.deltas));
        }
        use chrono::Datelike;
        if !(2005..=2100).contains(&self.as_of.year()) {
            return invalid(format!(
                "as_of must be between 2005 and 2100, got {}",
                self.as_of
            ));
        }
        for (kind, rate) in &self.defect_rates {
            if !(0.0..=1.0).contains(rate) {
                return invalid(format!(
                    "defect rate for {kind:?} must be between 0 and 1, got {rate}"
                ));
            }
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error("{path}: i/o error: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: cannot write Parquet: {source}")]
    Parquet {
        path: PathBuf,
        source: datafusion::parquet::errors::ParquetError,
    },
    #[error("invalid synth configuration: {0}")]
    InvalidConfig(String),
}

pub type Result<T, E = SynthError> = std::result::Result<T, E>;

/// Writes the network's deliveries and `ground_truth.json` under `cfg.out`, and
/// returns the ground truth.
pub fn generate(cfg: &SynthConfig) -> Result<GroundTruth> {
    cfg.validate()?;
    std::fs::create_dir_all(&cfg.out).map_err(|source| SynthError::Io {
        path: cfg.out.clone(),
        source,
    })?;
    let network = Network::plan(cfg);
    let schedule = Schedule::new(cfg.as_of, cfg.deltas);
    let outputs: Vec<PracticeOutput> = (0..network.practices.len())
        .into_par_iter()
        .map(|i| practice::write_practice(cfg, &network, &schedule, i))
        .collect::<Result<_>>()?;

    let moves = moves(outputs.iter().flat_map(|o| o.movers.iter()));
    let mut practices = Vec::with_capacity(outputs.len());
    let mut defects = Vec::new();
    for output in outputs {
        practices.push(output.truth);
        defects.extend(output.defects);
    }
    let truth = GroundTruth {
        seed: cfg.seed,
        as_of: cfg.as_of,
        practices,
        defect_rates: cfg.defect_rates.clone(),
        defects,
        moves,
        without_prescribing: network.practices[network.practices.len() - cfg.without_prescribing..]
            .iter()
            .map(|p| p.ods.clone())
            .collect(),
    };
    write_truth(cfg, &truth)?;
    Ok(truth)
}

/// Pairs the two records of each person who moved between member practices.
fn moves<'a>(records: impl Iterator<Item = &'a MoverRecord>) -> Vec<Move> {
    let mut sides: BTreeMap<u32, (Option<&MoverRecord>, Option<&MoverRecord>)> = BTreeMap::new();
    for r in records {
        let entry = sides.entry(r.mover).or_default();
        match r.side {
            MoveSide::From => entry.0 = Some(r),
            MoveSide::To => entry.1 = Some(r),
        }
    }
    sides
        .into_values()
        .filter_map(|pair| match pair {
            (Some(from), Some(to)) => Some(Move {
                from: (from.ods.clone(), from.patient_id.clone()),
                to: (to.ods.clone(), to.patient_id.clone()),
                linkable: from.linkable && to.linkable,
            }),
            _ => None,
        })
        .collect()
}

fn write_truth(cfg: &SynthConfig, truth: &GroundTruth) -> Result<()> {
    let path = cfg.out.join(GROUND_TRUTH_FILE);
    let io = |source| SynthError::Io {
        path: path.clone(),
        source,
    };
    let file = std::fs::File::create(&path).map_err(io)?;
    let mut out = BufWriter::new(file);
    serde_json::to_writer_pretty(&mut out, truth).map_err(|e| io(std::io::Error::other(e)))?;
    out.write_all(b"\n").map_err(io)?;
    out.flush().map_err(io)
}
