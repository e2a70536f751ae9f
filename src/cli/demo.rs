//! `phm demo`: the whole path on a small synthetic network, from a fresh
//! checkout — terminology release, synthetic EMIS/TPP deliveries, ingest (with
//! its reconciliation table), every shipped cohort, a per-practice table and
//! one explanation.
//!
//! Each step is skipped when its output is already there: the release, and the
//! landing zone when it was built with the same network parameters (recorded
//! in `DIR/demo.json`). Other parameters rebuild the landing zone, the store
//! and the outputs, so the old network is never shown as the new one. Ingest
//! and the cohort run are idempotent anyway.

use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use clap::Args;
use serde::{Deserialize, Serialize};

use super::cohort::Folders;
use super::cohort_run;
use super::progress::Progress;
use super::{Failure, emit, exit, open_release};
use crate::cohort::explain;
use crate::synth::truth::GROUND_TRUTH_FILE;
use crate::synth::{SynthConfig, generate};
use crate::terminology::{Release, fixture, import};

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Working folder for the release, landing zone, store and outputs.
    #[arg(long, default_value = "demo")]
    pub dir: PathBuf,
    /// Member practices in the synthetic network (EMIS and TPP, half each; the
    /// last one shares no prescribing).
    #[arg(long, default_value_t = 6)]
    pub practices: usize,
    /// Patients across the whole network.
    #[arg(long, default_value_t = 20_000)]
    pub patients: usize,
    /// Seed of the synthetic network: the same seed gives the same network.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// The synthetic extracts' date; also the cohorts' index date.
    #[arg(long, default_value = "2026-03-31")]
    pub as_of: NaiveDate,
    #[command(flatten)]
    pub folders: Folders,
}

/// What the demo's landing zone was built with, kept in `DIR/demo.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Network {
    practices: usize,
    patients: usize,
    seed: u64,
    as_of: NaiveDate,
    deltas: usize,
    without_prescribing: usize,
}

impl Network {
    const FILE: &str = "demo.json";

    fn of(args: &DemoArgs) -> Network {
        Network {
            practices: args.practices,
            patients: args.patients,
            seed: args.seed,
            as_of: args.as_of,
            deltas: 2,
            without_prescribing: 1,
        }
    }

    /// The record in `dir`; `None` when there is none or it cannot be read
    /// (then the landing zone's parameters are unknown).
    fn read(dir: &Path) -> Option<Network> {
        let bytes = std::fs::read(dir.join(Network::FILE)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    fn write(&self, dir: &Path) -> Result<(), Failure> {
        let path = dir.join(Network::FILE);
        let json = serde_json::to_vec_pretty(self).expect("record serialises");
        std::fs::write(&path, json).map_err(|e| unwritable_at(&path, e))
    }

    fn config(&self, out: PathBuf) -> SynthConfig {
        SynthConfig {
            out,
            practices: self.practices,
            patients: self.patients,
            seed: self.seed,
            emis_share: 0.5,
            deltas: self.deltas,
            as_of: self.as_of,
            defect_rates: SynthConfig::default_defect_rates(),
            without_prescribing: self.without_prescribing,
        }
    }
}

impl std::fmt::Display for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "--practices {} --patients {} --seed {} --as-of {}",
            self.practices, self.patients, self.seed, self.as_of
        )
    }
}

fn data(e: impl std::fmt::Display) -> Failure {
    Failure::new(exit::DATA, e)
}

/// A file or folder of `--dir` that cannot be written: the user's to fix.
/// `e` says what and where.
fn unwritable(e: impl std::fmt::Display) -> Failure {
    Failure::new(
        exit::USAGE,
        format!(
            "{e}; hint: --dir must be a folder phm can create and write; choose another with --dir DIR"
        ),
    )
}

/// An i/o error on `path` of `--dir`.
fn unwritable_at(path: &Path, e: std::io::Error) -> Failure {
    unwritable(format!("{}: {e}", path.display()))
}

fn release(dir: &Path, progress: Progress) -> Result<Release, Failure> {
    let out = dir.join("terminology").join("fixture");
    if !out.join(crate::terminology::release::MANIFEST).is_file() {
        let inputs = fixture::inputs(Path::new("terminology/fixture"));
        let stage = progress.stage(format!(
            "building the fixture terminology release → {}",
            out.display()
        ));
        std::fs::create_dir_all(dir).map_err(|e| unwritable_at(dir, e))?;
        import::import(&inputs, &out).map_err(|e| match e {
            crate::terminology::Error::Io { ref path, .. } if path.starts_with(dir) => {
                unwritable(e)
            }
            _ => Failure::new(
                exit::USAGE,
                format!("{e}; hint: run phm demo from the repository root"),
            ),
        })?;
        stage.finish();
    }
    open_release(&out)
}

/// The landing zone of the network `args` asks for: reused when it was built
/// with the same parameters, else (re)built, and then the store and outputs
/// built from an older one are removed with it.
fn landing(args: &DemoArgs, progress: Progress) -> Result<PathBuf, Failure> {
    let dir = &args.dir;
    let landing = dir.join("landing");
    let wanted = Network::of(args);
    let built = Network::read(dir);
    if landing.exists() {
        match &built {
            Some(b) if *b == wanted && landing.join(GROUND_TRUTH_FILE).is_file() => {
                return Ok(landing);
            }
            Some(b) => eprintln!(
                "{} holds the network of {b}; rebuilding it for {wanted}",
                landing.display()
            ),
            // Synthetic (it has a ground truth) but of unknown parameters: a
            // demo from an earlier phm, or a synthesis that was interrupted.
            None if landing.join(GROUND_TRUTH_FILE).is_file()
                || landing.read_dir().is_ok_and(|mut d| d.next().is_none()) =>
            {
                eprintln!(
                    "{} holds a network of unknown parameters; rebuilding it for {wanted}",
                    landing.display()
                )
            }
            None => {
                return Err(Failure::new(
                    exit::USAGE,
                    format!(
                        "{}: not a landing zone written by phm demo (no {} or {GROUND_TRUTH_FILE}); it is left as it is; hint: choose another folder with --dir DIR",
                        landing.display(),
                        Network::FILE
                    ),
                ));
            }
        }
    }
    // Everything built from an older network goes with it.
    for old in [
        dir.join(Network::FILE),
        landing.clone(),
        dir.join("store"),
        dir.join("out"),
        dir.join("dq"),
    ] {
        let removed = if old.is_dir() {
            std::fs::remove_dir_all(&old)
        } else if old.exists() {
            std::fs::remove_file(&old)
        } else {
            Ok(())
        };
        removed.map_err(|e| unwritable_at(&old, e))?;
    }
    let stage = progress.stage(format!(
        "synthesising {} patients at {} practices (seed {}) → {}",
        wanted.patients,
        wanted.practices,
        wanted.seed,
        landing.display()
    ));
    generate(&wanted.config(landing.clone())).map_err(|e| match e {
        crate::synth::SynthError::InvalidConfig(_) => Failure::new(exit::USAGE, e),
        crate::synth::SynthError::Io { .. } | crate::synth::SynthError::Parquet { .. } => {
            unwritable(e)
        }
    })?;
    wanted.write(dir)?;
    stage.finish();
    Ok(landing)
}

/// The demo's pseudonym key file, in its folder (git-ignored with it).
const DEMO_KEY: &str = "demo.key";

/// The demo's pseudonym key: read from `DIR/demo.key`, or 32 random bytes
/// written there (hex, readable by its owner only) on the first run.
fn demo_key(dir: &Path) -> Result<crate::output::pseudonym::Key, Failure> {
    let path = dir.join(DEMO_KEY);
    if !path.exists() {
        write_key(&path)?;
    }
    let (key, warnings) = crate::output::pseudonym::Key::from_file(&path)
        .map_err(|e| Failure::new(exit::USAGE, e))?;
    for w in warnings {
        eprintln!("warning: {w}");
    }
    Ok(key)
}

/// Writes a new pseudonym key (32 random bytes, hex) to `path`, readable by
/// its owner only: for the demo, which has no key custodian.
pub(super) fn write_key(path: &Path) -> Result<(), Failure> {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| Failure::new(exit::INTERNAL, format!("/dev/urandom: {e}")))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| unwritable_at(dir, e))?;
    }
    std::fs::write(path, format!("{}\n", hex::encode(bytes)))
        .map_err(|e| unwritable_at(path, e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| unwritable_at(path, e))?;
    }
    eprintln!(
        "generated a pseudonym key for the demo in {} (never share it)",
        path.display()
    );
    Ok(())
}

/// `phm dq` of the demo's store into `DIR/dq` (beside the run's folder, which
/// holds only what a run writes), then the report into `OUT/report.html`.
/// Returns the data-quality summary and the report's path.
fn quality_and_report(
    args: &DemoArgs,
    store: &Path,
    release: &Release,
    out: &Path,
    progress: Progress,
) -> Result<(String, PathBuf), Failure> {
    let dq = args.dir.join("dq");
    let stage = progress.stage(format!("assessing data quality → {}", dq.display()));
    std::fs::create_dir_all(&dq).map_err(|e| unwritable_at(&dq, e))?;
    let assessed = crate::quality::run(&crate::quality::Options {
        store,
        release: &args.dir.join("terminology").join("fixture"),
        release_id: release.id(),
        out: &dq,
        as_of: args.as_of,
        config: &crate::quality::Config::default(),
        practices: &[],
        session: None,
    })
    .map_err(data)?;
    stage.finish();
    let model = crate::report::read(&crate::report::Inputs {
        run: out,
        dq: &dq,
        practice: None,
    })
    .map_err(data)?;
    let path = crate::report::default_out(out);
    super::report::write_page(&path, &crate::report::html::render(&model))?;
    Ok((assessed.summary(), path))
}

/// The first included person of a cohort's network membership (by
/// pseudonym), with their store person key: a DataFusion query that keeps
/// one row.
fn first_included(
    network: &Path,
    store: &Path,
    key: &crate::output::pseudonym::Key,
) -> Result<Option<(String, String)>, Failure> {
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::DataType;
    use datafusion::prelude::*;
    let membership = network.join("membership.parquet");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| Failure::new(exit::INTERNAL, e))?;
    runtime.block_on(async {
        let ctx = SessionContext::new();
        let batches = ctx
            .read_parquet(
                membership.to_string_lossy().as_ref(),
                ParquetReadOptions::default(),
            )
            .await
            .and_then(|df| df.filter(col("included").is_true()))
            .and_then(|df| df.select(vec![cast(col("pseudonym"), DataType::Utf8).alias("p")]))
            .and_then(|df| df.sort(vec![col("p").sort(true, false)]))
            .and_then(|df| df.limit(0, Some(1)))
            .map_err(|e| data(format!("{}: {e}", membership.display())))?
            .collect()
            .await
            .map_err(|e| data(format!("{}: {e}", membership.display())))?;
        let Some(pseudonym) = batches
            .iter()
            .find(|b| b.num_rows() > 0)
            .map(|b| b.column(0).as_string::<i32>().value(0).to_string())
        else {
            return Ok(None);
        };
        let person = crate::output::reidentify::person_of(store, key, &pseudonym)
            .await
            .map_err(data)?;
        Ok(person.map(|(person, _)| (pseudonym, person)))
    })
}

/// One example explanation: an included person, from DM_REG when it ran,
/// named by pseudonym as a clinical lead would ask (the store's person key
/// never reaches the console), with the command that asks the same way.
fn example_of(
    args: &DemoArgs,
    runs: &[(NaiveDate, crate::cohort::engine::CohortRun)],
    defs: &[crate::cohort::model::Definition],
    out: &Path,
    store: &Path,
    key: &crate::output::pseudonym::Key,
) -> Result<String, Failure> {
    let mut order: Vec<&(NaiveDate, crate::cohort::engine::CohortRun)> = runs.iter().collect();
    order.sort_by_key(|(_, r)| !r.key.starts_with("DM_REG@"));
    for (date, r) in order {
        let Some(def) = defs.iter().find(|d| d.key() == r.key) else {
            continue;
        };
        let network = out.join("network").join(&r.key);
        let Some((pseudonym, person)) = first_included(&network, store, key)? else {
            continue;
        };
        let Some(mut e) = explain::read_in_run(&r.dir, &r.key, &person).map_err(data)? else {
            continue;
        };
        e.person_key = pseudonym.clone();
        return Ok(format!(
            "\nExample explanation:\n{}(phm cohort explain {} --patient {pseudonym} --key-file {} --purpose \"phm demo\" --store {} --release {} --index-date {date})\n",
            explain::narrative(def, *date, &e),
            r.key,
            args.dir.join(DEMO_KEY).display(),
            store.display(),
            args.dir.join("terminology/fixture").display()
        ));
    }
    Ok(String::new())
}

pub fn run(args: DemoArgs, progress: Progress) -> Result<u8, Failure> {
    if args.practices == 0 || args.patients < args.practices {
        return Err(Failure::new(
            exit::USAGE,
            "need at least one practice and at least one patient per practice; hint: --patients must be at least --practices",
        ));
    }
    std::fs::create_dir_all(&args.dir).map_err(|e| {
        Failure::new(
            exit::USAGE,
            format!(
                "{}: phm cannot use this as the demo's working folder: {e}; hint: --dir must be a folder phm can create and write (not a file); choose another with --dir DIR",
                args.dir.display()
            ),
        )
    })?;
    let landing = landing(&args, progress)?;
    let release = release(&args.dir, progress)?;
    let release_dir = args.dir.join("terminology").join("fixture");
    let store = args.dir.join("store");
    // The demo's own store, from an earlier phm: rebuilt rather than refused.
    if crate::store::file_without_row_order(&store)
        .map_err(data)?
        .is_some()
    {
        eprintln!(
            "{} was written by an earlier phm; rebuilding it",
            store.display()
        );
        std::fs::remove_dir_all(&store).map_err(|e| data(format!("{}: {e}", store.display())))?;
    }
    let subs = crate::ingest::history::Substitutions::from_release(&release);
    let bar = progress.practices(Some(format!("ingesting → {}", store.display())));
    let report = crate::ingest::run_observed(
        &landing,
        &store,
        Some(&subs),
        &crate::ingest::Limits::default(),
        &bar,
    );
    bar.finish();
    let report = report.map_err(super::ingest::failure)?;
    if !report.reconciles() {
        return Err(Failure::new(
            exit::INTERNAL,
            "ingest counts do not reconcile; this is a bug in phm",
        ));
    }
    let mut text = format!(
        "Ingest (report: {}):\n{}\n",
        store.join("reports").join("ingest.json").display(),
        report.summary()
    );
    let keys = cohort_run::all_keys(&args.folders)?;
    let cohorts = cohort_run::load(&keys, &args.folders, &release)?;
    let out = args.dir.join("out");
    let stage = progress.stage(format!(
        "running {} cohorts at index date {} → {}",
        cohorts.len(),
        args.as_of,
        out.display()
    ));
    let defs: Vec<_> = cohorts.iter().map(|c| c.def.clone()).collect();
    let definitions = defs.iter().map(|d| (d.key(), d.path.clone())).collect();
    let codes = cohort_run::codes_of(&cohorts);
    let key = demo_key(&args.dir)?;
    let started = std::time::Instant::now();
    let mut example = String::new();
    let runs = cohort_run::evaluate_then(
        &store,
        cohorts,
        Some(args.as_of),
        &out,
        cohort_run::Identifiable::Remove,
        release.id(),
        &cohort_run::open_session(&crate::session::EngineSpec::Local, None)?,
        |runs| {
            cohort_run::Shareable {
                store: &store,
                out: &out,
                key: &key,
                policy: Some(crate::output::disclosure::Policy::default()),
                purpose: Some("phm demo".into()),
                definitions: &definitions,
                codes: &codes,
                release: &release_dir,
                release_id: release.id(),
                memory_limit: None,
                timings: true,
            }
            .publish(runs, started.elapsed().as_secs_f64())?;
            // The engine's identifiable folders are removed once this
            // returns: the example is read from them now.
            example = example_of(&args, runs, &defs, &out, &store, &key)
                .map_err(|f| crate::cohort::Error::Store(f.message))?;
            Ok(())
        },
    )?;
    stage.finish();
    let (dq_summary, report_html) = quality_and_report(&args, &store, &release, &out, progress)?;
    text.push_str(&format!(
        "Persons included per practice (index date {}):\n{}",
        args.as_of,
        cohort_run::table(&runs)
    ));
    text.push_str(&example);
    text.push_str(&format!(
        "\nShareable outputs (pseudonymised, disclosure-controlled): {}\n\
         Each practice's explanations, for its own clinicians: {}\n\
         Lineage: {}; audit log: {}\n\
         Pseudonym key: {} (generated for the demo, id {}; git-ignored; never share it)\n",
        out.join("network").display(),
        out.join("practice").display(),
        out.join(crate::output::lineage::MANIFEST_FILE).display(),
        crate::output::audit::path(&store).display(),
        args.dir.join(DEMO_KEY).display(),
        key.id(),
    ));
    text.push_str(&format!(
        "\nData quality (report: {}):\n{dq_summary}\nReport: {}\n",
        args.dir.join("dq").join("dq.json").display(),
        report_html.display()
    ));
    emit(&text)?;
    let rejected = report.rejected().count();
    if rejected > 0 {
        eprintln!(
            "error: {rejected} practice(s) rejected (see the ingest table); the cohorts ran on the others"
        );
        return Ok(exit::DATA);
    }
    Ok(exit::OK)
}
