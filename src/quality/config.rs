//! `phm dq --config FILE`: per-check thresholds and switches, and the
//! network's member practices.
//!
//! ```toml
//! practices = ["A81001", "A81002", "A81003"]   # members: one absent from the store is `no_delivery`
//!
//! [checks."events.future"]
//! threshold = 0.2        # percent (days for practice.extract_age)
//!
//! [checks."patients.at_other_practice"]
//! enabled = false
//! ```
//! Every error names the file, line and column and the check: an unknown
//! check id or a threshold outside 0–100 % is refused before the store is read.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::checks::{self, CHECKS, Measure};
use super::{Error, Result};

/// The settings of one run (defaults when no file is given).
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// The file the settings came from.
    pub path: Option<PathBuf>,
    /// Member practices the network expects deliveries from.
    pub practices: Vec<String>,
    /// Check id → threshold overriding the catalogue's.
    pub thresholds: BTreeMap<String, f64>,
    /// Checks switched off.
    pub disabled: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    practices: Vec<String>,
    #[serde(default)]
    checks: BTreeMap<Spanned<String>, Spanned<CheckFile>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckFile {
    threshold: Option<Spanned<f64>>,
    enabled: Option<bool>,
}

impl Config {
    /// The threshold in force for `id`.
    pub fn threshold(&self, id: &str) -> f64 {
        self.thresholds
            .get(id)
            .copied()
            .or_else(|| checks::find(id).map(|c| c.threshold))
            .expect("thresholds are asked for catalogue checks")
    }

    pub fn enabled(&self, id: &str) -> bool {
        !self.disabled.iter().any(|d| d == id)
    }

    /// Reads and validates a config file.
    pub fn read(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Usage(format!(
            "{}: cannot read the config file: {e}; hint: --config takes a TOML file of check thresholds (docs/quality.md)",
            path.display()
        )))?;
        Config::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Config> {
        let at = |span: std::ops::Range<usize>| {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            (line, column)
        };
        let config_error = |span: std::ops::Range<usize>, message: String, hint: String| {
            let (line, column) = at(span);
            Error::Config {
                path: path.to_path_buf(),
                line,
                column,
                message,
                hint,
            }
        };
        let file: File = toml::from_str(text).map_err(|e| {
            config_error(
                e.span().unwrap_or(0..0),
                e.message().to_string(),
                "the file holds `practices = [...]` and `[checks.\"<id>\"]` tables with `threshold` and `enabled`".into(),
            )
        })?;
        let mut config = Config {
            path: Some(path.to_path_buf()),
            practices: file.practices,
            ..Config::default()
        };
        for (id, check) in file.checks {
            let span = id.span();
            let id = id.into_inner();
            let Some(def) = checks::find(&id) else {
                let near = CHECKS
                    .iter()
                    .find(|c| c.id.ends_with(id.rsplit('.').next().unwrap_or(&id)))
                    .map(|c| format!(" (did you mean `{}`?)", c.id))
                    .unwrap_or_default();
                return Err(config_error(
                    span,
                    format!("unknown check `{id}`{near}"),
                    "the check ids are listed in docs/quality.md; nothing was read".into(),
                ));
            };
            let check = check.into_inner();
            if let Some(threshold) = check.threshold {
                let span = threshold.span();
                let value = threshold.into_inner();
                let (high, unit) = match def.measure {
                    Measure::Percent => (100.0, "percent"),
                    Measure::Days => (f64::MAX, "days"),
                };
                if !(0.0..=high).contains(&value) {
                    let allowed = match def.measure {
                        Measure::Percent => "0–100",
                        Measure::Days => "0 or more",
                    };
                    return Err(config_error(
                        span,
                        format!("check `{id}`: threshold {value} is outside {allowed} ({unit})"),
                        format!(
                            "a check passes when its figure is at most the threshold; give {allowed}"
                        ),
                    ));
                }
                config.thresholds.insert(id.clone(), value);
            }
            if check.enabled == Some(false) {
                config.disabled.push(id);
            }
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> std::result::Result<Config, String> {
        Config::parse(Path::new("dq.toml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn errors_name_file_line_and_check() {
        #[rustfmt::skip]
        let cases: &[(&str, &str)] = &[
            ("[checks.\"events.futur\"]\nthreshold = 1\n", "dq.toml:1:9: unknown check `events.futur`"),
            ("\n[checks.\"events.future\"]\nthreshold = 150\n", "dq.toml:3:13: check `events.future`: threshold 150 is outside 0–100 (percent)"),
            ("[checks.\"events.future\"]\nthreshold = -1\n", "threshold -1 is outside 0–100"),
            ("[checks.\"practice.extract_age\"]\nthreshold = -2\n", "threshold -2 is outside 0 or more (days)"),
            ("[checks.\"events.future\"]\nthreshhold = 1\n", "dq.toml:2:1: unknown field `threshhold`"),
        ];
        for (text, says) in cases {
            let got = parse(text).unwrap_err();
            assert!(got.contains(says), "{text:?}: {got}");
        }
    }

    #[test]
    fn thresholds_and_switches_apply() {
        let c = parse(
            "practices = [\"A1\"]\n[checks.\"practice.extract_age\"]\nthreshold = 30\n[checks.\"events.future\"]\nenabled = false\n",
        )
        .unwrap();
        assert_eq!(c.threshold("practice.extract_age"), 30.0);
        assert_eq!(c.threshold("events.after_death"), 0.5);
        assert!(!c.enabled("events.future"));
        assert!(c.enabled("events.after_death"));
        assert_eq!(c.practices, ["A1"]);
    }
}
