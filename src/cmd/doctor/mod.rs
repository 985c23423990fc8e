//! `maybe-sccache doctor [--strict]`: what would keep sccache from caching here, one finding per
//! line, each problem with its fix. It exits 0 whatever it finds, except with `--strict` when a
//! finding would stop caching (exit 1), so that a CI job can choose to insist.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use crate::backend::{self, Answer, Backend};
use crate::call::locate::{self, Lookup};
use crate::child::{run_bounded, Output};
use crate::cmd::cache_key;
use crate::cmd::cargo_config::{self, Wrapper};
use crate::cmd::status::VERSION_TIMEOUT;
use crate::config::{Config, DEFAULT_START_TIMEOUT};
use crate::logging;
use crate::server;
use crate::state;

mod dist;
mod sccache;
mod start;
mod storage;
mod wrapper;

use self::dist::dist_findings;
use self::sccache::sccache;
use self::start::server_start;
use self::storage::{storage, writable};
use self::wrapper::wrapper;

pub const USAGE: &str = "usage: maybe-sccache doctor [--strict]";

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Ok,
    Info,
    /// Caching works, but not as well as it could.
    Warn,
    /// Caching stops: `--strict` fails.
    Fail,
}

struct Finding {
    level: Level,
    text: String,
    fix: Option<String>,
}

fn ok(text: impl Into<String>) -> Finding {
    Finding {
        level: Level::Ok,
        text: text.into(),
        fix: None,
    }
}

fn info(text: impl Into<String>) -> Finding {
    Finding {
        level: Level::Info,
        text: text.into(),
        fix: None,
    }
}

fn warn(text: impl Into<String>, fix: impl Into<String>) -> Finding {
    Finding {
        level: Level::Warn,
        text: text.into(),
        fix: Some(fix.into()),
    }
}

fn fail(text: impl Into<String>, fix: impl Into<String>) -> Finding {
    Finding {
        level: Level::Fail,
        text: text.into(),
        fix: Some(fix.into()),
    }
}

pub fn run(strict: bool) -> anyhow::Result<ExitCode> {
    let config = Config::from_env();
    let findings = examine(&config);
    let mut out = String::new();
    for f in &findings {
        let tag = match f.level {
            Level::Ok => "ok",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Fail => "FAIL",
        };
        let _ = write!(out, "{tag:<4}  {}", one_line(&f.text));
        if let Some(fix) = &f.fix {
            let _ = write!(out, " -- fix: {}", one_line(fix));
        }
        out.push('\n');
    }
    let fails = findings.iter().filter(|f| f.level == Level::Fail).count();
    let warns = findings.iter().filter(|f| f.level == Level::Warn).count();
    let _ = match (fails, warns) {
        (0, 0) => writeln!(out, "doctor: sccache should cache here"),
        (0, w) => writeln!(
            out,
            "doctor: sccache should cache here; {w} warning(s) above"
        ),
        (f, w) => writeln!(
            out,
            "doctor: {f} finding(s) above stop caching, {w} warning(s)"
        ),
    };
    // Findings quote sccache's own words, which may hold a secret; doctor runs in CI logs.
    let out = logging::redact_secrets(&out);
    // A closed stdout is no reason to fail.
    let _ = std::io::stdout().write_all(out.as_bytes());
    Ok(if strict && fails > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Findings never span lines: sccache's own words may.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn examine(config: &Config) -> Vec<Finding> {
    let mut findings = vec![wrapper()];
    if config.disabled {
        findings.push(fail(
            "MAYBE_SCCACHE_DISABLE is set: the shim never uses sccache",
            "unset MAYBE_SCCACHE_DISABLE (or set it to 0)",
        ));
    }
    if let Some(sccache) = sccache(config, &mut findings) {
        let start = server_start(config, &sccache);
        // A server that failed to start (a black-holed scheduler holds sccache's start) is not
        // started once more for the dist checks.
        let server_starts = start.level != Level::Fail;
        findings.push(start);
        findings.extend(dist_findings(config, &sccache, server_starts));
    }
    findings.extend(storage());
    findings.push(incremental(config));
    findings.push(breaker(config));
    findings.push(state_dir(config));
    for (var, problem) in &config.problems {
        findings.push(warn(
            format!("{var}: {problem}"),
            format!("set {var} to a number of seconds, or unset it"),
        ));
    }
    findings
}

/// Is this a CI job? `CI` is set (to `true`) by GitHub Actions, GitLab CI and most others.
fn in_ci() -> bool {
    env::var_os("CI").is_some_and(|v| !v.is_empty())
}

fn incremental(config: &Config) -> Finding {
    if let Some(var) = config.incremental_var {
        return fail(
            format!(
                "incremental: {var}=1; sccache cannot cache incremental compiles, so the shim \
                 sends every compile straight to rustc"
            ),
            "set CARGO_INCREMENTAL=0 (a CI build gains nothing from incremental)",
        );
    }
    let what = match env::var_os("CARGO_INCREMENTAL") {
        Some(v) if v == "0" => return ok("incremental: CARGO_INCREMENTAL=0"),
        Some(v) => format!("CARGO_INCREMENTAL={} (not 0)", v.to_string_lossy()),
        None => "CARGO_INCREMENTAL is unset".to_owned(),
    };
    let text = format!(
        "incremental: {what}, so cargo may compile workspace crates incrementally (dev profiles \
         do), and sccache cannot cache those (dependencies are still cached)"
    );
    // On a developer's machine incremental rebuilds of one's own crates are worth more than
    // caching them; a CI job starts from scratch and gains nothing from them.
    if in_ci() {
        warn(text, "set CARGO_INCREMENTAL=0 in CI")
    } else {
        info(format!("{text}; in CI, set CARGO_INCREMENTAL=0"))
    }
}

fn breaker(config: &Config) -> Finding {
    let b = state::read_breaker(config.state_dir.as_deref(), &server::key());
    let now = state::now_secs();
    let reason = b.reason.as_deref().unwrap_or("no reason recorded");
    if b.is_open_at(now) {
        let left = b.open_until.unwrap_or(now).saturating_sub(now);
        return fail(
            format!(
                "breaker: open for {left} s more, compiling without sccache until then; last \
                 failure: {reason}"
            ),
            "fix the cause, then run `maybe-sccache reset` (or wait)",
        );
    }
    match b.failed_at {
        Some(at) => info(format!(
            "breaker: closed; last failure {} s ago: {reason}",
            now.saturating_sub(at)
        )),
        None => ok("breaker: closed, no failure on record"),
    }
}

fn state_dir(config: &Config) -> Finding {
    const FIX: &str = "set MAYBE_SCCACHE_STATE_DIR to a writable directory";
    match &config.state_dir {
        None => warn(
            "state: no state directory (MAYBE_SCCACHE_STATE_DIR unset, no user cache \
             directory): no breaker, no counters",
            FIX,
        ),
        Some(dir) => match writable(dir) {
            Ok(note) => ok(format!("state: {} is writable{note}", dir.display())),
            Err(e) => warn(
                format!(
                    "state: {} is not writable ({e}): no breaker, no counters",
                    dir.display()
                ),
                FIX,
            ),
        },
    }
}
