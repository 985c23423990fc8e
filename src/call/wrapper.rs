//! Deciding: the whole life of one `maybe-sccache <compiler> <args…>` call, on one screen.
//!
//! Invariants: the shim never writes to stdout of its own; the compiler runs at most once per call
//! for which its output is shown; a problem with sccache or the state dir never fails or hangs the
//! build; sccache's own error text goes to the log, never to cargo.

use std::ffi::OsString;
use std::io::Write;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::backend::gha;
use crate::call::exec::{self, Exit};
use crate::call::forward::{self, Ran};
use crate::call::judge::{self, Verdict};
use crate::call::locate::{self, Lookup};
use crate::call::watch;
use crate::classify::{self, Family};
use crate::config::Config;
use crate::server;
use crate::state::{self, Event, Trip};

/// Whether sccache or the compiler may have started for this call: after that, a panic of the
/// shim's own must not start the compiler again.
static COMPILER_MAY_HAVE_RUN: AtomicBool = AtomicBool::new(false);

/// `run`, with a panic of the shim's own turned into a direct compile while the compiler has not
/// run yet: a bug in the shim must not cost the build its compile. After sccache or the compiler
/// started, the call ends with 101 instead, so nothing runs twice. The panic's message goes to the
/// log, not to stderr, where cargo would show it as the compiler's.
pub fn run_guarded(compiler: OsString, args: Vec<OsString>) -> Result<Exit> {
    std::panic::set_hook(Box::new(|info| {
        log::error!("maybe-sccache panicked: {info}")
    }));
    match std::panic::catch_unwind(AssertUnwindSafe(|| run(&compiler, &args))) {
        Ok(exit) => exit,
        Err(_) if !COMPILER_MAY_HAVE_RUN.load(Ordering::SeqCst) => {
            Ok(exec::run_compiler(&compiler, &args)?)
        }
        Err(_) => Ok(ExitCode::from(101).into()),
    }
}

/// Marks the point after which the compiler may be at work for this call.
fn compiler_may_run_from_now() {
    COMPILER_MAY_HAVE_RUN.store(true, Ordering::SeqCst);
}

/// Test builds only: panics at a named point of a call, so the tests can show what a bug of the
/// shim's own does there. Release builds have no such hook.
#[cfg(debug_assertions)]
fn test_panic_at(point: &str) {
    if std::env::var_os("MAYBE_SCCACHE_TEST_PANIC").is_some_and(|p| p == point) {
        panic!("test panic at {point}");
    }
}

#[cfg(not(debug_assertions))]
fn test_panic_at(_point: &str) {}

fn run(compiler: &OsString, args: &[OsString]) -> Result<Exit> {
    let config = Config::from_env();
    for (var, problem) in &config.problems {
        log::warn!("{var}: {problem}");
    }
    let state_dir = config.state_dir.as_deref();
    let family = Family::of(compiler, args);

    // 1. Calls that must not or cannot use sccache go straight to the compiler.
    if let Some(reason) = skip_reason(&config, family, args) {
        let lang = family.as_str();
        log::info!(
            "bypass {reason} ({lang}){}: {}",
            classify::subject(args),
            compiler.to_string_lossy()
        );
        state::record(state_dir, Event::Bypassed, reason);
        return Ok(exec::run_compiler(compiler, args)?);
    }

    // 2. No sccache, or an sccache known to be broken: the compiler alone.
    let sccache = match locate::find_sccache(&config) {
        Lookup::Found { path, origin } => {
            log::debug!("sccache found via {origin}: {}", path.display());
            path
        }
        Lookup::NotFound { looked } => {
            log::debug!("sccache not found; looked at {}", looked.join(", "));
            return compile_directly(state_dir, "not-found", compiler, args);
        }
    };
    // A compiler that cannot be found is not sccache's problem: let it fail on its own, so the
    // breaker does not open over it.
    if !compiler_exists(compiler) {
        return compile_directly(state_dir, "compiler-not-found", compiler, args);
    }
    // The breaker and the start lock belong to the server this environment points at.
    let key = server::key();
    if let Err(reason) = ensure_usable(&config, &sccache, &key) {
        return compile_directly(state_dir, reason, compiler, args);
    }

    // 3. Forward, and judge what sccache did.
    test_panic_at("before-compile");
    compiler_may_run_from_now();
    let ran = forward::run_sccache(&sccache, compiler, args, config.depth, config.slow_call);
    let captured = match ran {
        Ok(Ran::Finished(captured)) => captured,
        Ok(Ran::Hung(why)) => {
            state::trip(state_dir, &key, config.cooldown, why);
            server::stop_hung(&sccache);
            return compile_directly(state_dir, "hung", compiler, args);
        }
        Ok(Ran::ShimTrouble { reason, detail }) => {
            // Not sccache's fault: the breaker stays as it is.
            log::warn!("{reason}: {detail}");
            return compile_directly(state_dir, reason, compiler, args);
        }
        Err(e) => {
            let why = Trip::SpawnFailed(format!("{e:#}"));
            state::trip(state_dir, &key, config.cooldown, why);
            return compile_directly(state_dir, "spawn-failed", compiler, args);
        }
    };
    test_panic_at("after-compile");
    match judge::judge(&captured) {
        Verdict::SccacheFailed(reason) => {
            let text = String::from_utf8_lossy(&captured.stderr);
            log::info!(
                "fallback {reason}{}: {}",
                classify::subject(args),
                compiler.to_string_lossy()
            );
            log::debug!("sccache said: {}", text.trim_end());
            state::record(state_dir, Event::Fallback, reason);
            // sccache's error may have been about this call's input (a missing source file
            // makes its hashing fail) rather than about sccache. Only a compile that works
            // without sccache proves sccache at fault, so the compiler runs as a child here.
            let status = exec::run_compiler_child(compiler, args)?;
            if status.success() {
                let detail = text.lines().next().unwrap_or("").to_owned();
                let why = Trip::SccacheFailed { reason, detail };
                state::trip(state_dir, &key, config.cooldown, why);
            }
            Ok(exec::exit_code_of_status(status))
        }
        Verdict::Unsupported => compile_directly(state_dir, "unsupported", compiler, args),
        Verdict::Compiled(code) => {
            state::record(state_dir, Event::Forwarded, "-");
            if judge::compiled_locally(&captured.stderr) {
                log::info!("sccache lost its server during the call and compiled locally");
            }
            replay(
                &captured.stdout,
                &judge::without_sccache_warnings(&captured.stderr),
            );
            log::info!(
                "forward{}: exit {code} in {} ms",
                classify::subject(args),
                captured.elapsed.as_millis()
            );
            gha::after_forward(&config, &key, || server::write_figures(&sccache));
            if let Some(why) = watch::after_slow_call(&sccache, captured.watched) {
                state::trip(state_dir, &key, config.cooldown, why);
            }
            Ok(exec::exit_code_of(code))
        }
        Verdict::CompilerKilled(sig) => {
            state::record(state_dir, Event::Forwarded, "-");
            replay(
                &judge::without_signal_line(&captured.stdout),
                &captured.stderr,
            );
            log::info!(
                "forward{}: compiler killed by signal {sig}",
                classify::subject(args)
            );
            Ok(exec::die_by_signal(sig))
        }
    }
}

fn compiler_exists(compiler: &OsString) -> bool {
    let path = Path::new(compiler);
    if path.components().count() > 1 {
        return path.is_file();
    }
    let cwd = std::env::current_dir().unwrap_or_default();
    locate::on_path(compiler, &cwd).is_some()
}

/// Why this call should not touch sccache at all, if it should not.
fn skip_reason(config: &Config, family: Family, args: &[OsString]) -> Option<&'static str> {
    if config.disabled {
        return Some("disabled");
    }
    if config.depth > 0 {
        return Some("recursion");
    }
    if config.incremental_var.is_some() {
        return Some("incremental-env");
    }
    classify::uncacheable(family, args).map(|u| u.0)
}

fn compile_directly(
    state_dir: Option<&Path>,
    reason: &'static str,
    compiler: &OsString,
    args: &[OsString],
) -> Result<Exit> {
    log::info!(
        "fallback {reason}{}: {}",
        classify::subject(args),
        compiler.to_string_lossy()
    );
    state::record(state_dir, Event::Fallback, reason);
    Ok(exec::run_compiler(compiler, args)?)
}

/// The breaker and the server: `Ok` when a forwarded call can go to a running server, else the
/// reason to fall back. Starting the server happens once, under the start lock, within a deadline;
/// concurrent callers wait for that one verdict instead of racing their own starts.
fn ensure_usable(config: &Config, sccache: &Path, key: &str) -> Result<(), &'static str> {
    let dir = config.state_dir.as_deref();
    let breaker = state::read_breaker(dir, key);
    let now = state::now_secs();
    if breaker.is_open_at(now) {
        log::debug!(
            "breaker open until {} ({})",
            breaker.open_until.unwrap_or(0),
            breaker.reason.as_deref().unwrap_or("")
        );
        return Err("breaker-open");
    }
    let half_open = breaker.is_half_open_at(now);
    // One `sock_diag` lookup says both whether a server listens and whose it is.
    match server::listening() {
        Some(owner) if !owner.trusted() => return Err(foreign_server(owner)),
        Some(_) if !half_open => return Ok(()),
        _ => {}
    }
    let wait = if half_open {
        // Only one call probes after the cooldown; the others keep compiling directly meanwhile.
        Duration::ZERO
    } else {
        config.start_timeout + Duration::from_secs(5)
    };
    let _lock = match dir {
        Some(dir) => match state::lock_until(dir, &state::start_lock(key), Instant::now() + wait) {
            Ok(lock) => lock,
            Err(()) => {
                log::debug!("another call held the start lock for the whole wait");
                return Err(if half_open {
                    "breaker-open"
                } else {
                    "start-busy"
                });
            }
        },
        None => None,
    };
    // Whoever held the lock may have settled the question meanwhile.
    let breaker = state::read_breaker(dir, key);
    let now = state::now_secs();
    if breaker.is_open_at(now) {
        return Err("breaker-open");
    }
    let half_open = breaker.is_half_open_at(now);
    match server::listening() {
        Some(owner) if !owner.trusted() => return Err(foreign_server(owner)),
        Some(_) if !half_open => return Ok(()),
        _ => {}
    }
    // Removed when this call returns, whatever came of the start.
    let start_log = gha::start_log(config, key);
    let log_path = start_log.as_ref().map(gha::StartLog::path);
    let started = if half_open {
        server::probe(sccache, config.depth, config.start_timeout, log_path)
    } else {
        server::start(sccache, config.depth, config.start_timeout, log_path)
    };
    match started {
        // `--start-server` takes "address in use" for success: another user's server may have
        // taken the address meanwhile.
        Ok(started) => match server::foreign() {
            Some(owner) => Err(foreign_server(owner)),
            None => {
                state::server_started(dir, key, now);
                // A write storm already on: the server's start-up check met it. A server that
                // another call started a moment before is that call's to read.
                let storm = started == server::Started::Fresh
                    && start_log
                        .as_ref()
                        .is_some_and(|log| gha::after_start(config, key, log));
                match storm {
                    true => Err("gha-throttled"),
                    false => Ok(()),
                }
            }
        },
        Err(server::StartFailure::ShimTrouble(words)) => {
            log::warn!("{words}");
            Err("no-resources")
        }
        Err(server::StartFailure::Sccache(words)) => {
            state::trip(dir, key, config.cooldown, Trip::StartFailed(words));
            Err("start-failed")
        }
    }
}

/// Another user's server listens where sccache's client looks: it is never forwarded to (it
/// would compile as its owner and serve its owner's cache) and never stopped, and no second
/// server can be started at its address. The call compiles directly; the breaker is left alone,
/// as nothing is wrong with sccache. `doctor` and `status` say whose the server is.
fn foreign_server(owner: server::Owner) -> &'static str {
    log::warn!(
        "the sccache server at {} belongs to {}, not to this user: not used",
        server::address(),
        owner.describe()
    );
    "foreign-server"
}

/// Hands sccache's buffered output to cargo, byte for byte. A closed pipe is not the shim's
/// problem to report.
fn replay(stdout: &[u8], stderr: &[u8]) {
    let _ = std::io::stdout().lock().write_all(stdout);
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().lock().write_all(stderr);
}
