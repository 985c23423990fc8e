//! The human commands: `status`, `reset` (and `--help`, `--version` in main). Anything that is not
//! one of these words is a compiler, and wrapper mode takes over.

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

use anyhow::{bail, Result};

use crate::config::Config;
use crate::state;
use crate::status;

pub const USAGE: &str = "\
maybe-sccache: a fail-open RUSTC_WRAPPER that uses sccache when it can and rustc when it must

Usage:
  RUSTC_WRAPPER=maybe-sccache cargo build   (or [build] rustc-wrapper = \"maybe-sccache\")
  maybe-sccache <compiler> [args...]        what cargo runs for every compiler call
  maybe-sccache status [--json | --markdown]
                                            where sccache is, the breaker, the counters
  maybe-sccache reset                       clear the breaker and the counters
  maybe-sccache --help | --version

Environment:
  SCCACHE_PATH                  the sccache to use (else `sccache` on PATH, else $CARGO_HOME/bin)
  MAYBE_SCCACHE_DISABLE=1       never touch sccache
  MAYBE_SCCACHE_COOLDOWN        seconds sccache is skipped after it fails (default 600)
  MAYBE_SCCACHE_START_TIMEOUT   seconds allowed for starting the sccache server (default 15)
  MAYBE_SCCACHE_SLOW_CALL       seconds after which a call checks sccache's error counters (default 20)
  MAYBE_SCCACHE_STATE_DIR       where the breaker and counters live
  MAYBE_SCCACHE_LOG             log filter (e.g. info, debug); silent when unset
  MAYBE_SCCACHE_LOG_FILE        log to this file instead of stderr
";

pub fn is_subcommand(word: &str) -> bool {
    matches!(word, "status" | "reset")
}

pub fn run(command: &str, args: Vec<OsString>) -> Result<ExitCode> {
    let args: Vec<String> = args
        .into_iter()
        .map(|a| {
            a.into_string()
                .map_err(|a| anyhow::anyhow!("argument {a:?} is not valid UTF-8"))
        })
        .collect::<Result<_>>()?;
    let config = Config::from_env();
    match command {
        "status" => {
            let format = match args.as_slice() {
                [] => status::Format::Text,
                [flag] if flag == "--json" => status::Format::Json,
                [flag] if flag == "--markdown" => status::Format::Markdown,
                _ => bail!("usage: maybe-sccache status [--json | --markdown]"),
            };
            // A closed stdout (`status | head`) is not worth a failed job.
            let _ = std::io::stdout().write_all(status::render(&config, format).as_bytes());
            Ok(ExitCode::SUCCESS)
        }
        "reset" => {
            if !args.is_empty() {
                bail!("usage: maybe-sccache reset");
            }
            match &config.state_dir {
                Some(dir) => {
                    state::reset(dir).map_err(|e| {
                        anyhow::anyhow!("cannot clear the state in {}: {e}", dir.display())
                    })?;
                    eprintln!(
                        "maybe-sccache: breaker and counters cleared in {}",
                        dir.display()
                    );
                }
                None => eprintln!("maybe-sccache: no state directory, nothing to clear"),
            }
            Ok(ExitCode::SUCCESS)
        }
        _ => bail!("unknown command {command:?}"),
    }
}
