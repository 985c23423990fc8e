//! Forwarding: running `sccache <compiler> <args…>` and judging what happened.
//!
//! sccache's stdout and stderr go to unlinked temporary files, not pipes: an sccache server that
//! inherits them (with `SCCACHE_NO_DAEMON=1`, say) would otherwise keep a pipe open and hang the
//! read. Buffering costs no latency, because sccache itself buffers a cached compile's output and
//! replays it after the compile. The buffer is what lets the shim keep sccache's own errors away
//! from cargo and fall back without showing anything twice.

use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::child;
use crate::config::DEPTH_VAR;
use crate::server;

/// What sccache left behind.
pub struct Captured {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub elapsed: Duration,
}

/// The meaning of a finished sccache call.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The compiler ran (from cache or not) and this is its exit code: replay the output, keep
    /// the code. A compile error lands here and is shown exactly once.
    Compiled(i32),
    /// The compiler was killed by this signal; sccache says so on stdout.
    CompilerKilled(i32),
    /// sccache failed on its own before the compiler's result reached us: fall back.
    SccacheFailed(&'static str),
    /// sccache refused the compiler itself (`Compiler not supported`) without running it. That is
    /// a fact about the compiler, not a failure of sccache's: compile directly, blame no one.
    Unsupported,
}

/// How a forwarded call ended: with sccache's result, or with sccache not answering.
pub enum Ran {
    Finished(Captured),
    /// sccache stopped answering while the call ran; it was killed (with anything it started).
    Hung(String),
}

/// Runs sccache for one compiler call and waits for it. There is no deadline on the call itself:
/// it includes the caller's own compile, which may rightly take longer than any bound. Instead,
/// once the call has taken `watch`, a watchdog asks the sccache server for its statistics every
/// few seconds; a server that no longer answers those is hung, and the call is abandoned.
pub fn run_sccache(
    sccache: &Path,
    compiler: &OsStr,
    args: &[OsString],
    depth: u32,
    watch_after: Duration,
) -> Result<Ran> {
    let mut out = tempfile::tempfile().context("cannot create a temporary file")?;
    let mut err = tempfile::tempfile().context("cannot create a temporary file")?;
    let started = Instant::now();
    let mut cmd = Command::new(sccache);
    cmd.arg(compiler)
        .args(args)
        .env(DEPTH_VAR, (depth + 1).to_string())
        // A lost connection to the server then makes sccache compile locally instead of failing.
        .env("SCCACHE_IGNORE_SERVER_IO_ERROR", "1")
        .stdin(Stdio::inherit())
        .stdout(out.try_clone()?)
        .stderr(err.try_clone()?);
    let mut child = child::spawn_in_own_group(&mut cmd)
        .with_context(|| format!("cannot run {}", sccache.display()))?;
    let watch = Arc::new(Mutex::new(Watch::default()));
    spawn_watchdog(
        sccache,
        child.inner().id(),
        watch.clone(),
        started + watch_after,
    );
    // A blocking wait: the shim learns of the end of the call the moment it happens.
    let status = child.inner().wait()?;
    let hung = {
        let mut w = watch.lock().unwrap_or_else(|e| e.into_inner());
        w.finished = true;
        w.hung.take()
    };
    if let Some(why) = hung {
        return Ok(Ran::Hung(why));
    }
    Ok(Ran::Finished(Captured {
        status,
        stdout: child::read_back(&mut out)?,
        stderr: child::read_back(&mut err)?,
        elapsed: started.elapsed(),
    }))
}

/// What the watchdog and the waiting thread share. The lock orders "the call finished" against
/// "the call is declared hung and killed", so exactly one of them happens.
#[derive(Default)]
struct Watch {
    finished: bool,
    hung: Option<String>,
}

/// From `first_check` on, asks the sccache server for its statistics every few seconds; if it
/// does not answer, kills the call's process group (the waiting thread then wakes up).
fn spawn_watchdog(sccache: &Path, pid: u32, watch: Arc<Mutex<Watch>>, first_check: Instant) {
    let sccache = sccache.to_owned();
    let started = Instant::now();
    let spawned = std::thread::Builder::new()
        .name("watchdog".into())
        .spawn(move || {
            let mut next = first_check;
            loop {
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
                if watch.lock().map_or(true, |w| w.finished) {
                    return;
                }
                let answered = server::stats(&sccache, WATCHDOG_ANSWER).is_some();
                let mut w = watch.lock().unwrap_or_else(|e| e.into_inner());
                if w.finished {
                    return;
                }
                if !answered {
                    w.hung = Some(format!(
                        "hung: sccache did not answer a statistics request within {} s, {} s \
                         into a call",
                        WATCHDOG_ANSWER.as_secs(),
                        started.elapsed().as_secs()
                    ));
                    child::kill_group(pid);
                    return;
                }
                next = Instant::now() + WATCHDOG_EVERY;
            }
        });
    if let Err(e) = spawned {
        log::warn!("no watchdog for this call: {e}");
    }
}

/// How long the server has to answer the watchdog, and how often it is asked.
const WATCHDOG_ANSWER: Duration = Duration::from_secs(10);
const WATCHDOG_EVERY: Duration = Duration::from_secs(10);

/// Judges a finished sccache call. sccache 0.16 reports its own failures as lines starting
/// `sccache: ` (`sccache: error: …`, `sccache: caused by: …`) with exit code 2, and failures of its
/// server-side pipeline as `sccache: encountered fatal error` with exit code 254. A compiler's
/// output is never made only of such lines, so requiring every line to be sccache's keeps a real
/// compile error (exit 1, or 101 for an ICE) from ever being mistaken for an sccache failure.
pub fn judge(c: &Captured) -> Verdict {
    let Some(code) = c.status.code() else {
        // The sccache client itself died by a signal: nothing of the compile reached us.
        return Verdict::SccacheFailed("sccache-crashed");
    };
    if let Some(sig) = killed_by_signal(&c.stdout) {
        return Verdict::CompilerKilled(sig);
    }
    let only_sccache_lines = all_lines_are_sccache(&c.stderr) && all_lines_are_sccache(&c.stdout);
    match code {
        // `sccache: error: failed to execute compile` + `sccache: caused by: Compiler not
        // supported: "…"` (0.16), or the error line itself saying so.
        2 if only_sccache_lines && has_line_containing(&c.stderr, b"Compiler not supported") => {
            Verdict::Unsupported
        }
        2 if only_sccache_lines && has_line(&c.stderr, b"sccache: error:") => {
            Verdict::SccacheFailed("sccache-error")
        }
        254 if only_sccache_lines && has_line(&c.stderr, b"sccache: encountered fatal error") => {
            Verdict::SccacheFailed("sccache-fatal")
        }
        1 if only_sccache_lines && has_line(&c.stdout, b"sccache: incremental compilation") => {
            Verdict::SccacheFailed("sccache-refused")
        }
        code => Verdict::Compiled(code),
    }
}

/// sccache prints `sccache: Compiler killed by signal N` (exit 254) or `sccache: Compile
/// terminated by signal N` (exit 2) on stdout when the compiler died by a signal.
fn killed_by_signal(stdout: &[u8]) -> Option<i32> {
    stdout.split(|&b| b == b'\n').find_map(|line| {
        let rest = line
            .strip_prefix(b"sccache: Compiler killed by signal ")
            .or_else(|| line.strip_prefix(b"sccache: Compile terminated by signal "))?;
        std::str::from_utf8(rest).ok()?.trim().parse().ok()
    })
}

/// Removes sccache's signal report from stdout, so cargo sees only what the compiler wrote.
pub fn without_signal_line(stdout: &[u8]) -> Vec<u8> {
    let mut kept = Vec::with_capacity(stdout.len());
    for line in stdout.split_inclusive(|&b| b == b'\n') {
        if killed_by_signal(line).is_none() {
            kept.extend_from_slice(line);
        }
    }
    kept
}

fn lines(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    bytes
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| !l.is_empty())
}

fn all_lines_are_sccache(bytes: &[u8]) -> bool {
    lines(bytes).all(|l| l.starts_with(b"sccache: ") || l.starts_with(b"Run with SCCACHE_LOG"))
}

fn has_line_containing(bytes: &[u8], needle: &[u8]) -> bool {
    lines(bytes).any(|l| l.windows(needle.len()).any(|w| w == needle))
}

fn has_line(bytes: &[u8], prefix: &[u8]) -> bool {
    lines(bytes).any(|l| l.starts_with(prefix))
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    fn captured(code: i32, stdout: &str, stderr: &str) -> Captured {
        Captured {
            status: ExitStatus::from_raw(code << 8),
            stdout: stdout.into(),
            stderr: stderr.into(),
            elapsed: Duration::ZERO,
        }
    }

    #[test]
    fn sccache_errors_fall_back() {
        let timeout = "sccache: error: Timed out waiting for server startup. Maybe the remote \
                       service is unreachable?\nRun with SCCACHE_LOG=debug SCCACHE_NO_DAEMON=1 to \
                       get more information\n";
        assert_eq!(
            judge(&captured(2, "", timeout)),
            Verdict::SccacheFailed("sccache-error")
        );
        let startup = "sccache: error: Server startup failed: cache storage failed to read: \
                       Unexpected (temporary) at read\nsccache: caused by: boom\n";
        assert_eq!(
            judge(&captured(2, "", startup)),
            Verdict::SccacheFailed("sccache-error")
        );
        let fatal = "sccache: encountered fatal error\nsccache: error: x\nsccache: caused by: y\n";
        assert_eq!(
            judge(&captured(254, "", fatal)),
            Verdict::SccacheFailed("sccache-fatal")
        );
        let refused = "sccache: incremental compilation is prohibited: Unset CARGO_INCREMENTAL \
                       to continue.\n";
        assert_eq!(
            judge(&captured(1, refused, "")),
            Verdict::SccacheFailed("sccache-refused")
        );
        let crashed = Captured {
            status: ExitStatus::from_raw(libc::SIGSEGV),
            ..captured(0, "", "")
        };
        assert_eq!(judge(&crashed), Verdict::SccacheFailed("sccache-crashed"));
    }

    #[test]
    fn unsupported_compiler_is_not_a_failure() {
        let text = "sccache: error: Compiler not supported: \"failed to detect\"\n";
        assert_eq!(judge(&captured(2, "", text)), Verdict::Unsupported);
        let text = "sccache: error: failed to execute compile\n\
                    sccache: caused by: Compiler not supported: \"\"\n";
        assert_eq!(judge(&captured(2, "", text)), Verdict::Unsupported);
    }

    #[test]
    fn compiler_results_are_kept() {
        let err = "error[E0308]: mismatched types\n --> src/lib.rs:1:14\n";
        assert_eq!(judge(&captured(1, "", err)), Verdict::Compiled(1));
        assert_eq!(judge(&captured(0, "", "")), Verdict::Compiled(0));
        // A compile error that mentions sccache's words is still the compiler's.
        let mixed = "error: oops\nsccache: error: not really\n";
        assert_eq!(judge(&captured(2, "", mixed)), Verdict::Compiled(2));
        assert_eq!(
            judge(&captured(101, "", "thread panicked")),
            Verdict::Compiled(101)
        );
    }

    #[test]
    fn compiler_signals() {
        let out = "sccache: Compiler killed by signal 9\n";
        assert_eq!(judge(&captured(254, out, "")), Verdict::CompilerKilled(9));
        let out = "partial\nsccache: Compile terminated by signal 11\n";
        assert_eq!(judge(&captured(2, out, "")), Verdict::CompilerKilled(11));
        assert_eq!(without_signal_line(out.as_bytes()), b"partial\n");
    }
}
