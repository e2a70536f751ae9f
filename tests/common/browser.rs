//! Headless Chromium for the report tests: the page's DOM as the browser
//! built it, and every console message or resource load it caused.
//! Chromium is required: without it a test fails and says how to install
//! it (`apt-get install chromium`); `PHM_CHROMIUM` names another binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The Chromium binary: `PHM_CHROMIUM`, else `chromium` on the PATH.
pub fn chromium() -> PathBuf {
    let name = std::env::var("PHM_CHROMIUM").unwrap_or_else(|_| "chromium".into());
    let found = Command::new(&name)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "{name} not found: the report test opens the page in headless Chromium; install it with `apt-get install chromium` (or set PHM_CHROMIUM to a Chromium binary)"
    );
    PathBuf::from(name)
}

/// Runs headless Chromium on `page` with `args`; returns (stdout, stderr).
/// A fresh profile each time; killed after two minutes.
pub fn run_chromium(page: &Path, args: &[String]) -> (String, String) {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            // Containers often give /dev/shm only 64 MB.
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-background-networking",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chromium starts");
    // Drain both pipes on threads so a chatty browser cannot block.
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut out, &mut s).ok();
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut err, &mut s).ok();
        s
    });
    let started = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if started.elapsed() > Duration::from_secs(120) {
            child.kill().ok();
            child.wait().ok();
            panic!(
                "chromium did not finish within 2 minutes on {}",
                page.display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    (out_t.join().unwrap(), err_t.join().unwrap())
}

/// The page's DOM as Chromium built it, and what went wrong loading it:
/// every console message (a page without script should print none) and
/// every file the page made the browser load besides itself (a
/// self-contained page loads nothing). The browser's own log lines (D-Bus,
/// GPU) are not the page's and are ignored.
pub fn open(page: &Path) -> (String, Vec<String>) {
    let (dom, log) = run_chromium(
        page,
        &[
            "--enable-logging=stderr".into(),
            "--v=1".into(),
            "--dump-dom".into(),
        ],
    );
    let me = format!("file://{}", page.display());
    let problems = log
        .lines()
        .filter(|l| {
            l.contains(":CONSOLE")
                || l.split_once("FileURLLoader::Start: ")
                    .is_some_and(|(_, url)| url.trim() != me)
        })
        .map(str::to_string)
        .collect();
    (dom, problems)
}
