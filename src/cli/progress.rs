//! Progress on stderr for a person watching a terminal: a spinner per stage of
//! the demo and a bar over the practices during ingest.
//!
//! Drawn only when stderr is a terminal and logs are for people (not
//! `--log-format json`, not `-v`, whose log lines would tear the bar). In a
//! pipe, a log file or a scheduler nothing is drawn: a stage is one plain line
//! on stderr instead, or with `--log-format json` an info-level log event, so
//! that stderr stays one JSON object per line. stdout is never touched.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::LogFormat;
use crate::ingest::report::{PracticeReport, PracticeStatus};

#[derive(Debug, Clone, Copy)]
pub struct Progress {
    draw: bool,
    json: bool,
}

impl Progress {
    /// Drawn when stderr is a terminal, logs are human and not verbose.
    pub fn new(format: LogFormat, verbose: u8) -> Progress {
        Progress {
            draw: matches!(format, LogFormat::Human)
                && verbose == 0
                && std::io::stderr().is_terminal(),
            json: matches!(format, LogFormat::Json),
        }
    }

    /// A stage's line where nothing is drawn.
    fn plain(&self, line: &str) {
        if self.json {
            tracing::info!("{line}");
        } else {
            eprintln!("{line}");
        }
    }

    /// A stage of work: a spinner with `line` on a terminal, else `line` once.
    /// Finish it with [`ProgressBar::finish`] (the line stays, ticked).
    pub fn stage(&self, line: String) -> ProgressBar {
        if !self.draw {
            self.plain(&line);
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
                .expect("valid template")
                .tick_strings(&["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏", "✓"]),
        );
        bar.set_message(line);
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    }

    /// A bar over the practices of an ingest (see [`crate::ingest::Observer`]).
    /// With a stage `line`, the bar is that stage (one line, not a spinner
    /// and a bar drawing over each other) and stays, ticked, when finished;
    /// without, it is cleared.
    pub fn practices(&self, line: Option<String>) -> PracticeBar {
        if !self.draw {
            if let Some(line) = line {
                self.plain(&line);
            }
            return PracticeBar {
                bar: ProgressBar::hidden(),
                keep: false,
            };
        }
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        let keep = line.is_some();
        bar.set_prefix(line.unwrap_or_else(|| "ingesting".to_string()));
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix} [{bar:20}] {pos}/{len} practices [{elapsed}] {wide_msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.enable_steady_tick(Duration::from_millis(250));
        PracticeBar { bar, keep }
    }
}

/// Advances by one as each practice finishes, naming it and its status.
pub struct PracticeBar {
    bar: ProgressBar,
    keep: bool,
}

impl PracticeBar {
    pub fn finish(&self) {
        if self.keep {
            self.bar.finish();
        } else {
            self.bar.finish_and_clear();
        }
    }
}

impl crate::ingest::Observer for PracticeBar {
    fn started(&self, practices: usize) {
        self.bar.set_length(practices as u64);
    }

    fn finished(&self, practice: &PracticeReport) {
        let status = match practice.status {
            PracticeStatus::Ingested => "ingested",
            PracticeStatus::UpToDate => "unchanged",
            PracticeStatus::Rejected => "REJECTED",
        };
        self.bar
            .set_message(format!("{} {status}", practice.practice));
        self.bar.inc(1);
    }
}
