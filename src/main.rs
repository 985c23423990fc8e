//! maybe-sccache: a fail-open `RUSTC_WRAPPER`. See README.md, "Architecture", for the codemap.

mod backend;
mod call;
mod child;
mod classify;
mod cmd;
mod config;
mod logging;
mod places;
mod server;
mod state;

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

use call::exec::{self, Exit};

/// std's own `main`: on every target it fills `std::env::args`, opens `/dev/null` on closed
/// standard streams and ignores `SIGPIPE` in this process (a log FIFO or a stderr whose reader
/// left gives a write error, never death by signal) while restoring the default for the compiler
/// and sccache it starts. An earlier C entry point saved about 0.04 ms per call and broke argument
/// passing outside glibc and Apple (musl, the BSDs, illumos fill them in std's start-up).
fn main() {
    std::process::exit(exit_code())
}

/// The process's exit code: the compiler's whole, or one this program decided.
fn exit_code() -> i32 {
    let exit = match run() {
        Ok(exit) => exit,
        Err(err) => {
            // A closed or broken stderr is not a reason to panic.
            let _ = writeln!(std::io::stderr(), "maybe-sccache: error: {err:#}");
            match err.downcast_ref::<exec::CannotRun>() {
                Some(cannot_run) => ExitCode::from(cannot_run.exit_code()).into(),
                None => ExitCode::from(2).into(),
            }
        }
    };
    match exit {
        Exit::Code(code) => i32::from(exec::byte_of(code)),
        // `ExitCode` holds one byte; a compiler's code is passed on whole.
        Exit::Compiler(code) => exec::process_exit_code(code),
    }
}

/// Every exit code is decided here or returned from here: wrapper mode returns the compiler's.
fn run() -> anyhow::Result<Exit> {
    logging::init();
    let mut args = std::env::args_os();
    let as_sccache = cmd::alias::invoked_as_sccache(args.next().as_ref());
    let rest: Vec<OsString> = args.collect();
    // Under the alias's name, sccache's own options (and no arguments) are the real sccache's.
    if as_sccache
        && rest
            .first()
            .is_none_or(|a| a.as_encoded_bytes().starts_with(b"-"))
    {
        return cmd::alias::to_real_sccache(&rest);
    }
    let mut args = rest.into_iter();
    let Some(first) = args.next() else {
        let _ = std::io::stderr().write_all(cmd::USAGE.as_bytes());
        return Ok(ExitCode::from(2).into());
    };
    let rest: Vec<OsString> = args.collect();
    match first.to_str() {
        Some("--help" | "-h" | "help") => {
            let _ = std::io::stdout().write_all(cmd::USAGE.as_bytes());
            Ok(ExitCode::SUCCESS.into())
        }
        Some("--version" | "-V") => {
            let _ = writeln!(
                std::io::stdout(),
                "maybe-sccache {}",
                env!("CARGO_PKG_VERSION")
            );
            Ok(ExitCode::SUCCESS.into())
        }
        Some(command) if cmd::is_subcommand(command) => cmd::run(command, rest).map(Exit::from),
        Some(flag) if flag.starts_with('-') => {
            anyhow::bail!("unknown option {flag:?}; see `maybe-sccache --help`")
        }
        _ => call::wrapper::run_guarded(first, rest),
    }
}
