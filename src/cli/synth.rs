//! `phm synth --out DIR --practices N --patients N --seed S [...]`

use std::path::PathBuf;

use chrono::NaiveDate;
use clap::Args;

use super::{Failure, exit};
use crate::synth::{self, SynthConfig};

#[derive(Debug, Args)]
pub struct SynthArgs {
    /// Landing zone to write: DIR/<ODS>/<extract id>/.
    #[arg(long)]
    pub out: PathBuf,
    /// Member practices in the network, split between EMIS and TPP by --emis-share.
    #[arg(long, default_value_t = 6)]
    pub practices: usize,
    /// Patients across the whole network.
    #[arg(long, default_value_t = 20_000)]
    pub patients: usize,
    /// Seed: the same arguments and seed write byte-identical files.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Fraction of practices on EMIS Web (the rest on TPP SystmOne).
    #[arg(long, default_value_t = 0.5)]
    pub emis_share: f64,
    /// Delta deliveries after the bulk.
    #[arg(long, default_value_t = 2)]
    pub deltas: usize,
    /// Extraction date of the last delivery.
    #[arg(long, default_value = "2026-03-31")]
    pub as_of: NaiveDate,
    /// Practices (the last ones) whose extracts share no prescribing: their
    /// deliveries carry no medication tables.
    #[arg(long, default_value_t = 0)]
    pub without_prescribing: usize,
}

pub fn run(args: SynthArgs) -> Result<u8, Failure> {
    if !(0.0..=1.0).contains(&args.emis_share) {
        return Err(Failure::new(
            exit::USAGE,
            format!("--emis-share {} must be between 0 and 1", args.emis_share),
        ));
    }
    if args.practices == 0 || args.patients < args.practices {
        return Err(Failure::new(
            exit::USAGE,
            "need at least one practice and at least one patient per practice",
        ));
    }
    if args.without_prescribing > args.practices {
        return Err(Failure::new(
            exit::USAGE,
            format!(
                "--without-prescribing {} must be at most --practices {}",
                args.without_prescribing, args.practices
            ),
        ));
    }
    let config = SynthConfig {
        out: args.out.clone(),
        practices: args.practices,
        patients: args.patients,
        seed: args.seed,
        emis_share: args.emis_share,
        deltas: args.deltas,
        as_of: args.as_of,
        defect_rates: SynthConfig::default_defect_rates(),
        without_prescribing: args.without_prescribing,
    };
    // Nothing is read: a file that cannot be written is the user's to fix.
    let truth = synth::generate(&config).map_err(|e| match e {
        synth::SynthError::InvalidConfig(_) => Failure::new(exit::USAGE, e),
        synth::SynthError::Io { .. } | synth::SynthError::Parquet { .. } => Failure::new(
            exit::USAGE,
            format!(
                "{e}; hint: --out must be a folder phm can create and write; choose another, and remove {} if it holds part of a network",
                args.out.display()
            ),
        ),
    })?;
    for p in &truth.practices {
        println!(
            "{} {:<4} deliveries {} patients {} events {} medications {}",
            p.ods,
            p.supplier.as_str(),
            p.deliveries.len(),
            p.expected_rows.get("patients").copied().unwrap_or(0),
            p.expected_rows.get("events").copied().unwrap_or(0),
            p.expected_rows.get("medications").copied().unwrap_or(0),
        );
    }
    println!(
        "defects injected: {}; ground truth: {}",
        truth.defects.len(),
        args.out.join(synth::truth::GROUND_TRUTH_FILE).display()
    );
    Ok(exit::OK)
}
