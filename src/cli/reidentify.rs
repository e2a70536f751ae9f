//! `phm reidentify --store DIR --practice ODS --purpose TEXT --key-file FILE PSEUDONYM…`

use std::path::PathBuf;

use clap::Args;

use super::key::{KeyArgs, now, user};
use super::{Failure, exit};
use crate::output::audit::{self, AuditRecord};
use crate::output::reidentify::{Error, Resolved, reidentify};

#[derive(Debug, Args)]
pub struct ReidentifyArgs {
    /// The canonical store.
    #[arg(long)]
    pub store: PathBuf,
    /// The practice (ODS code) whose own patients may be re-identified.
    #[arg(long)]
    pub practice: String,
    /// Why: recorded in the audit log with every re-identification.
    #[arg(long)]
    pub purpose: String,
    #[command(flatten)]
    pub key: KeyArgs,
    /// Pseudonyms from the network outputs made with the same key.
    #[arg(required = true)]
    pub pseudonyms: Vec<String>,
}

pub fn run(args: ReidentifyArgs) -> Result<u8, Failure> {
    if args.purpose.trim().is_empty() {
        return Err(Failure::new(
            exit::USAGE,
            "--purpose is empty; hint: say why the patients are re-identified; it is audited",
        ));
    }
    let key = args.key.require()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| Failure::new(exit::INTERNAL, e))?;
    let resolved = runtime
        .block_on(reidentify(
            &args.store,
            &args.practice,
            &key,
            &args.pseudonyms,
        ))
        .map_err(|e| match e {
            Error::NoPractice { .. } => Failure::new(exit::USAGE, e),
            Error::Read { .. } => Failure::new(exit::DATA, e),
        })?;
    let refused = resolved
        .iter()
        .filter(|(_, r)| !matches!(r, Resolved::Patient { .. }))
        .count();
    let record = AuditRecord {
        at: now(),
        user: user(),
        action: "reidentify".into(),
        purpose: Some(args.purpose.clone()),
        key_id: Some(key.id().to_string()),
        practice: Some(args.practice.clone()),
        subjects: args.pseudonyms.clone(),
        outcome: match refused {
            0 => "done".into(),
            n if n == resolved.len() => "refused".into(),
            n => format!("partly refused ({n} of {})", resolved.len()),
        },
        detail: None,
    };
    // The audit record is written before anything is shown.
    audit::append(&args.store, &record).map_err(|e| Failure::new(exit::USAGE, e))?;
    let mut out = String::from("pseudonym\tnhs_number\tpatient_id\toutcome\n");
    for (p, r) in &resolved {
        let line = match r {
            Resolved::Patient {
                patient_id,
                nhs_number,
            } => format!(
                "{p}\t{}\t{patient_id}\tregistered at {}\n",
                nhs_number.as_ref().map_or("", |n| n.expose()),
                args.practice
            ),
            Resolved::NotRegistered => format!(
                "{p}\t\t\trefused: not registered at {} on its latest extract\n",
                args.practice
            ),
            Resolved::Unknown => format!(
                "{p}\t\t\trefused: no patient of {} has this pseudonym under key {}\n",
                args.practice,
                key.id()
            ),
        };
        out.push_str(&line);
    }
    super::emit(&out)?;
    Ok(if refused == 0 { exit::OK } else { exit::DATA })
}
