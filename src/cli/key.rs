//! Where a pseudonym key comes from: a file or an environment variable named
//! on the command line, never a definition file. Warnings about the key file
//! go to stderr; the key itself is never printed.

use std::path::PathBuf;

use clap::Args;

use super::{Failure, exit};
use crate::output::pseudonym::Key;

#[derive(Debug, Args, Clone)]
pub struct KeyArgs {
    /// File holding the pseudonym key (at least 32 bytes; a final newline is ignored).
    #[arg(long, value_name = "FILE", conflicts_with = "key_env")]
    pub key_file: Option<PathBuf>,
    /// Environment variable holding the pseudonym key.
    #[arg(long, value_name = "NAME")]
    pub key_env: Option<String>,
}

impl KeyArgs {
    /// The key, or `None` when neither option was given.
    pub fn load(&self) -> Result<Option<Key>, Failure> {
        let usage = |e: crate::output::pseudonym::KeyError| Failure::new(exit::USAGE, e);
        if let Some(path) = &self.key_file {
            let (key, warnings) = Key::from_file(path).map_err(usage)?;
            for w in warnings {
                eprintln!("warning: {w}");
            }
            return Ok(Some(key));
        }
        if let Some(name) = &self.key_env {
            let value = std::env::var(name).ok();
            return Key::from_env(name, value.as_deref())
                .map(Some)
                .map_err(usage);
        }
        Ok(None)
    }

    /// The key, which this command cannot do without.
    pub fn require(&self) -> Result<Key, Failure> {
        self.load()?.ok_or_else(|| {
            Failure::new(
                exit::USAGE,
                "a pseudonym key is needed; hint: pass --key-file FILE or --key-env NAME",
            )
        })
    }
}

/// The operating-system user, for the audit log.
pub fn user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".to_string())
}

/// Now, in UTC, for the audit log.
pub fn now() -> chrono::NaiveDateTime {
    chrono::Utc::now().naive_utc()
}
