//! The human commands: `status`, `doctor`, `cache-key`, `should-save`, `reset`, `alias` (and
//! `--help`, `--version` in main). Anything that is not one of these words is a compiler, and
//! wrapper mode takes over.
//! Each command prints nothing until it has succeeded, and returns its errors to main's single
//! error path.

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

use anyhow::{bail, Result};

use crate::config::Config;
use crate::server;
use crate::state;

pub mod alias;
mod cache_key;
mod cargo_config;
mod doctor;
mod should_save;
mod status;

pub const USAGE: &str = "\
maybe-sccache: a fail-open RUSTC_WRAPPER that uses sccache when it can and rustc when it must

Usage:
  RUSTC_WRAPPER=\"$(maybe-sccache alias)\" cargo build
                                            Rust, and build scripts' C and C++ (cc-rs)
  RUSTC_WRAPPER=maybe-sccache cargo build   Rust only (or [build] rustc-wrapper = \"maybe-sccache\")
  maybe-sccache <compiler> [args...]        what cargo runs for every compiler call
  maybe-sccache status [--json | --markdown]
                                            where sccache is, its server, the breaker, the
                                            counters, sccache's own figures; always exits 0
                                            (--markdown is made for $GITHUB_STEP_SUMMARY)
  maybe-sccache doctor [--strict]           what would keep sccache from caching, one finding
                                            a line with its fix; exits 0, or 1 with --strict
                                            when something would stop caching
  maybe-sccache cache-key [--lockfile PATH] [--prefix STR] [--github-output]
                                            the actions/cache key for SCCACHE_DIR and the keys
                                            to restore from, best first:
                                              key=sccache-<host>-<rustc>-<prefix>-<lock>[-<run>]
                                              restore-keys: the key without -<run>, then
                                                            sccache-<host>-<rustc>-<prefix>-
                                            <host>, <rustc> from `rustc -vV` ($RUSTC, else rustc
                                            on PATH; a nightly or beta adds its commit hash);
                                            <prefix> with characters other than letters, digits,
                                            . _ - made `_` (empty: left out); <lock>: the first
                                            16 hex digits of the SHA-256 of Cargo.lock
                                            (--lockfile, else found from the current directory
                                            upward; `nolock` when there is none); <run>:
                                            $GITHUB_RUN_ID-$GITHUB_RUN_ATTEMPT when set.
                                            --github-output also appends the lines to the file
                                            named by $GITHUB_OUTPUT
  maybe-sccache should-save [--threshold PERCENT] [--github-output]
                                            whether this job's sccache wrote enough new objects
                                            to save SCCACHE_DIR again: save=true when at least
                                            PERCENT (default 10) of the compiles sccache could
                                            cache were misses; always exits 0
  maybe-sccache reset                       clear the breaker and the counters; exits 2 when
                                            they cannot be cleared (the shim keeps seeing them)
  maybe-sccache alias [--dir DIR]           create (or refresh) a link to this program named
                                            `sccache`, in a directory of its own (default:
                                            the user's data dir), and print its path:
                                              export RUSTC_WRAPPER=\"$(maybe-sccache alias)\"
                                            cc-rs then routes build scripts' C/C++ compiles
                                            through it, as it does for sccache; called by that
                                            name with sccache's options (--show-stats, ...),
                                            it runs the real sccache
  maybe-sccache --help | --version          (also `maybe-sccache <command> --help`)

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
    matches!(
        word,
        "status" | "doctor" | "cache-key" | "should-save" | "reset" | "alias"
    )
}

pub fn run(command: &str, args: Vec<OsString>) -> Result<ExitCode> {
    let args: Vec<String> = args
        .into_iter()
        .map(|a| {
            a.into_string()
                .map_err(|a| anyhow::anyhow!("argument {a:?} is not valid UTF-8"))
        })
        .collect::<Result<_>>()?;
    if args.iter().any(|a| a == "--help" || a == "-h") {
        let _ = std::io::stdout().write_all(USAGE.as_bytes());
        return Ok(ExitCode::SUCCESS);
    }
    let config = Config::from_env();
    match command {
        "doctor" => match args.as_slice() {
            [] => doctor::run(false),
            [flag] if flag == "--strict" => doctor::run(true),
            _ => bail!("{}", doctor::USAGE),
        },
        "cache-key" => cache_key::run(&cache_key::parse_args(&args)?),
        "alias" => alias::run(&args),
        "should-save" => should_save::run(&config, &should_save::parse_args(&args)?),
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
                // A file where the state dir should be holds no breaker and no counters: the
                // shim treats it as no state at all, so there is nothing to clear.
                Some(dir) if dir.exists() && !dir.is_dir() => eprintln!(
                    "maybe-sccache: {} is not a directory, so it holds no state to clear",
                    dir.display()
                ),
                // Exit 2: whatever could not be removed is still read by every call, so an open
                // breaker may go on skipping sccache. A CI step that must not fail checks the code.
                Some(dir) => {
                    let key = server::key();
                    state::reset(dir, &key)
                        .and_then(|()| crate::backend::gha::forget_writes(dir, &key))
                        .map_err(|e| {
                            anyhow::anyhow!(
                            "cannot clear the state in {}: {e}; the shim keeps reading what is \
                             left there (fix the directory's permissions, or set \
                             MAYBE_SCCACHE_STATE_DIR to a directory of your own)",
                            dir.display()
                        )
                        })?;
                    eprintln!(
                        "maybe-sccache: breaker (of the sccache server at {}) and counters \
                         cleared in {}",
                        server::address(),
                        dir.display()
                    );
                }
                // A state dir the shim refuses (another user's, or writable by others) is not
                // used by any call either: say why, and leave it alone.
                None => match config
                    .problems
                    .iter()
                    .find(|(var, _)| *var == "MAYBE_SCCACHE_STATE_DIR")
                {
                    Some((_, why)) => eprintln!("maybe-sccache: {why}; nothing cleared"),
                    None => eprintln!("maybe-sccache: no state directory, nothing to clear"),
                },
            }
            Ok(ExitCode::SUCCESS)
        }
        _ => bail!("unknown command {command:?}"),
    }
}
