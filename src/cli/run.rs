//! `phm run PIPELINE`: a scheduled run, from deliveries to published outputs.
//!
//! Stages: ingest → cohorts (with both output tiers) → data quality → the
//! HTML report → `status.json`, all written under `OUTPUT/.tmp-<run id>` and
//! published by one rename (`pipeline::publish`). The run id comes from the
//! inputs (`pipeline::run_id`): a run whose id is already published does
//! nothing unless `--force`. One run per store at a time (`STORE/.run.lock`).
//! See `docs/operations.md`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::NaiveDate;
use clap::Args;

use super::cohort::Folders;
use super::cohort_run;
use super::progress::Progress;
use super::{Failure, emit, exit, open_release};
use crate::pipeline::publish::{self, RunLock};
use crate::pipeline::run_id::{self, RunInputs};
use crate::pipeline::status::{
    HistoryEntry, Outcome, PracticeOutcomes, Rejected, RunStatus, Stage, append_history,
};
use crate::pipeline::{Demo, Pipeline};

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The pipeline file (see pipelines/).
    pub pipeline: PathBuf,
    /// The date the run is for; index-date rules are evaluated against it
    /// [default: today, UTC].
    #[arg(long)]
    pub as_of: Option<NaiveDate>,
    /// Run and publish again even when a run of the same inputs is published.
    #[arg(long)]
    pub force: bool,
}

fn usage(e: impl std::fmt::Display) -> Failure {
    Failure::new(exit::USAGE, e)
}

fn data(e: impl std::fmt::Display) -> Failure {
    Failure::new(exit::DATA, e)
}

fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> Failure + '_ {
    move |e| {
        data(format!(
            "{}: {e}; hint: the output root and the store must be writable and have free space; nothing was published",
            path.display()
        ))
    }
}

fn publish_failure(e: publish::Error) -> Failure {
    match e {
        publish::Error::Locked { .. } => Failure::new(exit::LOCKED, e),
        publish::Error::Io { .. } => data(format!("{e}; nothing was published")),
    }
}

pub fn run(args: RunArgs, progress: Progress) -> Result<u8, Failure> {
    let p = Pipeline::read(&args.pipeline).map_err(usage)?;
    let f = &p.file;
    let as_of = args.as_of.unwrap_or_else(|| super::key::now().date());
    let index_date = p.index_date.index_date(as_of);
    if let Some(demo) = &f.demo {
        prepare_demo(&p, demo, progress)?;
    }

    // Everything the run reads is checked before anything is written.
    let release = open_release(&f.release)?;
    let folders = Folders {
        cohorts: f.cohort_definitions.clone(),
        valuesets: f.valuesets.clone(),
    };
    let cohorts = cohort_run::load(&f.cohorts, &folders, &release)?;
    for c in &cohorts {
        cohort_run::index_date(c, Some(index_date))?;
    }
    let (key, warnings) =
        crate::output::pseudonym::Key::from_file(&f.pseudonymisation.key_file).map_err(usage)?;
    for w in warnings {
        tracing::warn!("{w}");
    }
    if !f.landing.is_dir() {
        return Err(usage(format!(
            "{}: landing zone not found; hint: landing in {} must name the folder that holds one sub-folder per practice ODS code",
            f.landing.display(),
            p.path.display()
        )));
    }

    let lock = RunLock::take(&f.store).map_err(publish_failure)?;
    if let Some(pid) = lock.interrupted() {
        tracing::warn!(
            previous_pid = %pid,
            "the previous run on this store ended without finishing (killed or crashed); nothing of it was published and what it left is tidied now"
        );
    }
    let checked = Checked {
        as_of,
        index_date,
        release,
        cohorts,
        key,
    };
    let mut run_id = None;
    let result = locked(&p, &args, checked, progress, &mut run_id);
    if let Err(failure) = &result {
        // Best effort: the failure itself is what the scheduler must see.
        let _ = append_history(
            &f.store,
            &HistoryEntry {
                at: super::key::now(),
                run_id: run_id.unwrap_or_default(),
                outcome: "failed".into(),
                exit_code: failure.code,
                pipeline: p.path.clone(),
                run_dir: None,
                missing: Vec::new(),
                rejected: Vec::new(),
                error: Some(failure.message.clone()),
            },
        );
    }
    result
}

/// What was checked before the lock was taken.
struct Checked {
    as_of: NaiveDate,
    index_date: NaiveDate,
    release: crate::terminology::Release,
    cohorts: Vec<crate::cohort::Cohort>,
    key: crate::output::pseudonym::Key,
}

/// The run, once the store's run lock is held; `run_id` is set as soon as
/// it is known.
fn locked(
    p: &Pipeline,
    args: &RunArgs,
    checked: Checked,
    progress: Progress,
    run_id: &mut Option<String>,
) -> Result<u8, Failure> {
    let f = &p.file;
    let Checked {
        as_of,
        index_date,
        release,
        cohorts,
        key,
    } = checked;
    for done in publish::recover(&f.output).map_err(publish_failure)? {
        tracing::warn!("{done}");
    }
    let inputs = RunInputs {
        phm_version: env!("CARGO_PKG_VERSION").to_string(),
        deliveries: run_id::deliveries(&f.landing).map_err(io_at(&f.landing))?,
        definitions: run_id::definition_files(&[&f.cohort_definitions, &f.valuesets])
            .map_err(io_at(&f.cohort_definitions))?,
        release_id: release.id().to_string(),
        index_date,
        cohorts: f.cohorts.clone(),
        disclosure: (p.disclosure.threshold, p.disclosure.base),
        key_id: key.id().to_string(),
        purpose: f.pseudonymisation.purpose.clone(),
        expected_practices: f.expected_practices.clone(),
        withdrawn: crate::store::withdraw::withdrawn(&f.store).map_err(data)?,
    };
    let id = inputs.run_id();
    *run_id = Some(id.clone());
    let dest = publish::published(&f.output, &id);
    if !args.force
        && let Ok(done) = RunStatus::read(&dest)
    {
        emit(&format!(
            "run {id} is already published in {} ({}, {}): its inputs are unchanged, so there is nothing to do; hint: --force runs it again\n",
            dest.display(),
            outcome_word(done.outcome),
            done.published_at.format("%Y-%m-%d %H:%M UTC"),
        ))?;
        return Ok(done.exit_code);
    }

    let tmp = publish::staging(&f.output, &id).map_err(publish_failure)?;
    let mut stages = Vec::new();
    // Logged inside the stage's span (so a JSON log line carries the
    // stage and the run id) and kept for status.json.
    let mut timed = |stage: &str, started: Instant| {
        let seconds = started.elapsed().as_secs_f64();
        tracing::info!(seconds, "stage finished");
        stages.push(Stage {
            stage: stage.to_string(),
            seconds,
        })
    };

    // An engine that cannot be reached fails the run before it changes anything.
    let session = cohort_run::open_session(&p.engine, Some(p.memory_limit.bytes()))?;

    // Ingest: each practice's deliveries are applied atomically; a refused
    // practice leaves the store unchanged for it and the others proceed.
    let started = Instant::now();
    let span = tracing::info_span!("stage", stage = "ingest", run = %id).entered();
    let subs = crate::ingest::history::Substitutions::from_release(&release);
    let bar = progress.practices(Some(format!("ingesting → {}", f.store.display())));
    let report = crate::ingest::run_observed(
        &f.landing,
        &f.store,
        Some(&subs),
        &crate::ingest::Limits {
            memory: p.memory_limit,
            spill_dir: None,
        },
        &bar,
    );
    bar.finish();
    let report = report.map_err(super::ingest::failure)?;
    if !report.reconciles() {
        return Err(Failure::new(
            exit::INTERNAL,
            "ingest counts do not reconcile; this is a bug in phm; nothing was published",
        ));
    }
    timed("ingest", started);
    drop(span);
    let practices = practice_outcomes(&f.expected_practices, &f.landing, &report)?;

    // Cohorts and both output tiers.
    let started = Instant::now();
    let span = tracing::info_span!("stage", stage = "cohorts", run = %id).entered();
    let definitions = cohorts
        .iter()
        .map(|c| (c.def.key(), c.def.path.clone()))
        .collect();
    let codes = cohort_run::codes_of(&cohorts);
    let stage = progress.stage(format!(
        "running {} cohorts at index date {index_date}",
        cohorts.len()
    ));
    let runs = cohort_run::evaluate_then(
        &f.store,
        cohorts,
        Some(index_date),
        &tmp,
        cohort_run::Identifiable::Remove,
        release.id(),
        &session,
        |runs| {
            cohort_run::Shareable {
                store: &f.store,
                out: &tmp,
                key: &key,
                policy: Some(p.disclosure),
                purpose: Some(f.pseudonymisation.purpose.clone()),
                definitions: &definitions,
                codes: &codes,
                release: &f.release,
                release_id: release.id(),
                memory_limit: Some(p.memory_limit.bytes()),
                // Timings go to status.json: the outputs of the same inputs
                // are then the same bytes.
                timings: false,
            }
            .publish(runs, 0.0)?;
            Ok(())
        },
    )?;
    stage.finish();
    timed("cohorts", started);
    drop(span);

    // Data quality and the report.
    let started = Instant::now();
    let span = tracing::info_span!("stage", stage = "data quality", run = %id).entered();
    let dq = tmp.join("dq");
    std::fs::create_dir_all(&dq).map_err(io_at(&dq))?;
    crate::quality::run(&crate::quality::Options {
        store: &f.store,
        release: &f.release,
        release_id: release.id(),
        out: &dq,
        as_of,
        config: &crate::quality::Config::default(),
        practices: &[],
        session: Some(&session),
    })
    .map_err(|e| match &e {
        crate::quality::Error::Engine(df) if crate::session::out_of_memory(df).is_some() => {
            super::dq::failure(e, session.memory_limit())
        }
        _ => data(e),
    })?;
    timed("data quality", started);
    drop(span);
    let started = Instant::now();
    let span = tracing::info_span!("stage", stage = "report", run = %id).entered();
    let model = crate::report::read(&crate::report::Inputs {
        run: &tmp,
        dq: &dq,
        practice: None,
    })
    .map_err(data)?;
    let report_html = tmp.join("report.html");
    super::report::write_page(&report_html, &crate::report::html::render(&model))?;
    timed("report", started);
    drop(span);

    let partial = !practices.missing.is_empty() || !practices.rejected.is_empty();
    let (outcome, code) = if partial {
        (Outcome::Partial, exit::PARTIAL)
    } else {
        (Outcome::Succeeded, exit::OK)
    };
    // The ingest report joins the run last: the cohort stage writes only
    // into a folder that holds nothing else.
    let ingest_json = f.store.join("reports").join("ingest.json");
    std::fs::copy(&ingest_json, tmp.join("ingest.json")).map_err(io_at(&ingest_json))?;
    let status = RunStatus {
        run_id: id.clone(),
        pipeline: p.path.clone(),
        outcome,
        exit_code: code,
        as_of,
        index_date,
        release: release.id().to_string(),
        cohorts: f.cohorts.clone(),
        practices: practices.clone(),
        stages,
        published_at: super::key::now(),
        phm_version: env!("CARGO_PKG_VERSION").to_string(),
    };
    status.write(&tmp).map_err(io_at(&tmp))?;
    let dest = publish::publish(&f.output, &tmp, &id).map_err(publish_failure)?;
    let removed = publish::retain(&f.output, f.keep_runs).map_err(publish_failure)?;
    append_history(
        &f.store,
        &HistoryEntry {
            at: status.published_at,
            run_id: id.clone(),
            outcome: outcome.name().to_string(),
            exit_code: code,
            pipeline: p.path.clone(),
            run_dir: Some(std::fs::canonicalize(&dest).unwrap_or_else(|_| dest.clone())),
            missing: practices.missing.clone(),
            rejected: practices
                .rejected
                .iter()
                .map(|r| r.practice.clone())
                .collect(),
            error: None,
        },
    )
    .map_err(io_at(&f.store))?;

    let mut text = format!(
        "Ingest:\n{}\nPersons included per practice (index date {index_date}):\n{}",
        report.summary(),
        cohort_run::table(&runs)
    );
    text.push_str(&format!(
        "\nRun {id} {} in {}\n  report: {}\n  status: {}\n",
        outcome_word(outcome),
        dest.display(),
        dest.join("report.html").display(),
        dest.join(crate::pipeline::status::STATUS_FILE).display(),
    ));
    if !practices.missing.is_empty() {
        text.push_str(&format!(
            "  missing (expected, no delivery folder): {}\n",
            practices.missing.join(", ")
        ));
    }
    for r in &practices.rejected {
        text.push_str(&format!("  rejected {}: {}\n", r.practice, r.error));
    }
    if !removed.is_empty() {
        text.push_str(&format!(
            "  retention (keep_runs = {}): removed {}\n",
            f.keep_runs,
            removed.join(", ")
        ));
    }
    emit(&text)?;
    Ok(code)
}

fn outcome_word(o: Outcome) -> &'static str {
    match o {
        Outcome::Succeeded => "succeeded",
        Outcome::Partial => "partial: published without some expected practices",
    }
}

fn practice_outcomes(
    expected: &[String],
    landing: &Path,
    report: &crate::ingest::report::IngestReport,
) -> Result<PracticeOutcomes, Failure> {
    let landed: BTreeSet<String> = std::fs::read_dir(landing)
        .map_err(io_at(landing))?
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    let expected_set: BTreeSet<String> = expected.iter().cloned().collect();
    Ok(PracticeOutcomes {
        expected: expected_set.iter().cloned().collect(),
        landed: landed.iter().cloned().collect(),
        missing: expected_set.difference(&landed).cloned().collect(),
        rejected: report
            .rejected()
            .map(|r| Rejected {
                practice: r.practice.clone(),
                error: r.error.clone().unwrap_or_default(),
            })
            .collect(),
        unexpected: if expected_set.is_empty() {
            Vec::new()
        } else {
            landed.difference(&expected_set).cloned().collect()
        },
    })
}

/// The bundled demo's inputs, made when missing: the synthetic landing zone,
/// the fixture release and a pseudonym key.
fn prepare_demo(p: &Pipeline, demo: &Demo, progress: Progress) -> Result<(), Failure> {
    let f = &p.file;
    if !f
        .landing
        .join(crate::synth::truth::GROUND_TRUTH_FILE)
        .is_file()
    {
        let stage = progress.stage(format!(
            "synthesising {} patients at {} practices (seed {}) → {}",
            demo.patients,
            demo.practices,
            demo.seed,
            f.landing.display()
        ));
        if f.landing.exists() {
            return Err(usage(format!(
                "{}: exists but was not written by phm synth; it is left as it is; hint: remove it, or point landing elsewhere",
                f.landing.display()
            )));
        }
        crate::synth::generate(&crate::synth::SynthConfig {
            out: f.landing.clone(),
            practices: demo.practices,
            patients: demo.patients,
            seed: demo.seed,
            emis_share: 0.5,
            deltas: 2,
            as_of: demo.extracted,
            defect_rates: crate::synth::SynthConfig::default_defect_rates(),
            without_prescribing: 1,
        })
        .map_err(usage)?;
        stage.finish();
    }
    if !f
        .release
        .join(crate::terminology::release::MANIFEST)
        .is_file()
    {
        let stage = progress.stage(format!(
            "building the fixture terminology release → {}",
            f.release.display()
        ));
        crate::terminology::import::import(
            &crate::terminology::fixture::inputs(&demo.terminology_fixture),
            &f.release,
        )
        .map_err(usage)?;
        stage.finish();
    }
    if !f.pseudonymisation.key_file.exists() {
        super::demo::write_key(&f.pseudonymisation.key_file)?;
    }
    Ok(())
}
