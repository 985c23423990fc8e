//! maybe-sccache: a fail-open `RUSTC_WRAPPER`. See README.md, "Architecture", for the codemap.

mod cache_key;
mod child;
mod classify;
mod cli;
mod config;
mod doctor;
mod fallback;
mod forward;
mod locate;
mod logging;
mod server;
mod state;
mod status;
mod wrapper;

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(err) => {
            eprintln!("maybe-sccache: error: {err:#}");
            match err.downcast_ref::<fallback::CannotRun>() {
                Some(cannot_run) => ExitCode::from(cannot_run.exit_code()),
                None => ExitCode::from(2),
            }
        }
    }
}

/// Every exit code is decided here or returned from here: wrapper mode returns the compiler's.
fn run() -> anyhow::Result<ExitCode> {
    logging::init();
    let mut args = std::env::args_os().skip(1);
    let Some(first) = args.next() else {
        eprint!("{}", cli::USAGE);
        return Ok(ExitCode::from(2));
    };
    let rest: Vec<OsString> = args.collect();
    match first.to_str() {
        Some("--help" | "-h" | "help") => {
            let _ = std::io::stdout().write_all(cli::USAGE.as_bytes());
            Ok(ExitCode::SUCCESS)
        }
        Some("--version" | "-V") => {
            let _ = writeln!(
                std::io::stdout(),
                "maybe-sccache {}",
                env!("CARGO_PKG_VERSION")
            );
            Ok(ExitCode::SUCCESS)
        }
        Some(command) if cli::is_subcommand(command) => cli::run(command, rest),
        Some(flag) if flag.starts_with('-') => {
            anyhow::bail!("unknown option {flag:?}; see `maybe-sccache --help`")
        }
        _ => wrapper::run(first, rest),
    }
}
