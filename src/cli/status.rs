//! `phm status --store DIR`: the store's last pipeline runs, their outcome
//! and the practices they were missing, and whether a run holds the store
//! now.

use std::path::PathBuf;

use clap::Args;

use super::{Failure, emit, exit};
use crate::pipeline::status::read_history;

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The canonical store a pipeline runs on.
    #[arg(long)]
    pub store: PathBuf,
    /// How many of the latest runs to show.
    #[arg(long, default_value_t = 10)]
    pub last: usize,
    /// `text` for people; `json`: the runs as a JSON array, newest first.
    #[arg(long, value_enum, default_value_t = super::cohort_run::Format::Text)]
    pub format: super::cohort_run::Format,
}

pub fn run(args: StatusArgs) -> Result<u8, Failure> {
    if !args.store.is_dir() {
        return Err(Failure::new(
            exit::USAGE,
            format!(
                "{}: no store here; hint: pass the store named in the pipeline file",
                args.store.display()
            ),
        ));
    }
    let (entries, unreadable) = read_history(&args.store).map_err(|e| {
        Failure::new(
            exit::DATA,
            format!("{}: {e}", args.store.join("reports").display()),
        )
    })?;
    let newest: Vec<_> = entries.iter().rev().take(args.last).collect();
    if matches!(args.format, super::cohort_run::Format::Json) {
        let mut text = serde_json::to_string_pretty(&newest).expect("history serialises");
        text.push('\n');
        return emit(&text);
    }
    let mut text = String::new();
    match holder(&args.store) {
        Some(Holder::Running(pid)) => {
            text.push_str(&format!("a run holds this store now (pid {pid})\n"))
        }
        Some(Holder::Interrupted(pid)) => text.push_str(&format!(
            "the last run on this store (pid {pid}) ended without finishing (killed or crashed) and is not in the list below; nothing of it was published; the next run tidies what it left\n"
        )),
        None => {}
    }
    if newest.is_empty() {
        text.push_str("no pipeline run has been recorded in this store\n");
    } else {
        text.push_str(&format!(
            "{:<19}  {:<16}  {:<9}  {:>4}  {:<20}  where / why\n",
            "ended (UTC)", "run", "outcome", "exit", "missing, rejected"
        ));
        for e in &newest {
            let practices = [e.missing.join(" "), e.rejected.join(" ")]
                .iter()
                .filter(|s| !s.is_empty())
                .cloned()
                .collect::<Vec<_>>()
                .join("; ");
            let place = match (&e.run_dir, &e.error) {
                (_, Some(error)) => error.clone(),
                (Some(dir), None) => dir.display().to_string(),
                (None, None) => String::new(),
            };
            text.push_str(&format!(
                "{:<19}  {:<16}  {:<9}  {:>4}  {:<20}  {place}\n",
                e.at.format("%Y-%m-%d %H:%M:%S"),
                if e.run_id.is_empty() { "-" } else { &e.run_id },
                e.outcome,
                e.exit_code,
                if practices.is_empty() {
                    "-".to_string()
                } else {
                    practices
                },
            ));
        }
    }
    if unreadable > 0 {
        text.push_str(&format!(
            "{unreadable} line(s) of {} could not be read and were skipped\n",
            args.store.join("reports/runs.jsonl").display()
        ));
    }
    emit(&text)
}

/// The run lock's holder: `Running(pid)` while a phm process holds it,
/// `Interrupted(pid)` when the last holder ended without finishing. Read
/// without taking the lock, so that asking never delays a run; the pid is
/// information only, the lock itself is the operating system's.
enum Holder {
    Running(String),
    Interrupted(String),
}

fn holder(store: &std::path::Path) -> Option<Holder> {
    let pid = crate::pipeline::publish::lock_holder(store)?;
    let alive = std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).contains("phm"))
        .unwrap_or(false);
    Some(if alive {
        Holder::Running(pid)
    } else {
        Holder::Interrupted(pid)
    })
}
