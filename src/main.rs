//! maybe-sccache: a fail-open `RUSTC_WRAPPER`. See README.md, "Architecture", for the codemap.

// On Unix the process starts at C's `main` below, not in std's runtime: see there why.
#![cfg_attr(all(unix, not(test)), no_main)]

mod alias;
mod backend;
mod cache_key;
mod cargo_config;
mod child;
mod classify;
mod cli;
mod config;
mod doctor;
mod fallback;
mod forward;
mod locate;
mod logging;
mod places;
mod server;
mod should_save;
mod state;
mod status;
mod watch;
mod wrapper;

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

use fallback::Exit;

/// Where a Unix process starts. std's own start-up would also install a stack-overflow guard for
/// the main thread, and glibc finds that thread's stack by reading `/proc/self/maps`: about
/// 0.04 ms of start-up (measured on `--version`, statically linked) on every compiler call, for a
/// message on a stack overflow the shim never has (it does not recurse). The rest of std's start-up that matters is done here: standard streams
/// that are closed are opened on `/dev/null` (so no buffer or socket of the shim's takes their
/// number), and a panic exits with 101, as it would from std's `main`. `SIGPIPE` keeps the
/// disposition cargo gave (std would ignore it in the shim and restore it for children; the
/// compiler gets the same either way).
#[cfg(all(unix, not(test)))]
#[no_mangle]
extern "C" fn main(
    _argc: std::ffi::c_int,
    _argv: *const *const std::ffi::c_char,
) -> std::ffi::c_int {
    child::open_closed_standard_streams();
    let code = std::panic::catch_unwind(exit_code).unwrap_or(101);
    // `process::exit` flushes stdout first, as a return from std's `main` would.
    std::process::exit(code)
}

#[cfg(not(all(unix, not(test))))]
fn main() {
    std::process::exit(exit_code())
}

/// The process's exit code: the compiler's whole, or one this program decided.
fn exit_code() -> i32 {
    let exit = match run() {
        Ok(exit) => exit,
        Err(err) => {
            eprintln!("maybe-sccache: error: {err:#}");
            match err.downcast_ref::<fallback::CannotRun>() {
                Some(cannot_run) => ExitCode::from(cannot_run.exit_code()).into(),
                None => ExitCode::from(2).into(),
            }
        }
    };
    match exit {
        Exit::Code(code) => i32::from(fallback::byte_of(code)),
        // `ExitCode` holds one byte; a compiler's code is passed on whole.
        Exit::Compiler(code) => fallback::process_exit_code(code),
    }
}

/// Every exit code is decided here or returned from here: wrapper mode returns the compiler's.
fn run() -> anyhow::Result<Exit> {
    logging::init();
    let mut args = std::env::args_os();
    let as_sccache = alias::invoked_as_sccache(args.next().as_ref());
    let rest: Vec<OsString> = args.collect();
    // Under the alias's name, sccache's own options (and no arguments) are the real sccache's.
    if as_sccache
        && rest
            .first()
            .is_none_or(|a| a.as_encoded_bytes().starts_with(b"-"))
    {
        return alias::to_real_sccache(&rest);
    }
    let mut args = rest.into_iter();
    let Some(first) = args.next() else {
        eprint!("{}", cli::USAGE);
        return Ok(ExitCode::from(2).into());
    };
    let rest: Vec<OsString> = args.collect();
    match first.to_str() {
        Some("--help" | "-h" | "help") => {
            let _ = std::io::stdout().write_all(cli::USAGE.as_bytes());
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
        Some(command) if cli::is_subcommand(command) => cli::run(command, rest).map(Exit::from),
        Some(flag) if flag.starts_with('-') => {
            anyhow::bail!("unknown option {flag:?}; see `maybe-sccache --help`")
        }
        _ => wrapper::run(first, rest),
    }
}
