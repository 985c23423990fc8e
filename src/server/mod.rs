//! The sccache server: starting it within a deadline, the half-open probe, and stopping it.
//! `address.rs` says where it is and what names it, `owner.rs` whether it is up and whose it is,
//! `stats.rs` what it counted.
//!
//! `sccache --start-server` is the probe: it starts a server against the real storage backend and
//! fails if the backend cannot be used, without involving any compile of the caller's. A server
//! already running answers "Address in use", which counts as success, told apart from a fresh
//! start ([`Started`]): what that start's check met is the starting call's to read.

use std::env;
use std::ffi::OsString;
use std::fs::OpenOptions;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::child::{run_bounded, Output, RunError};
use crate::config::DEPTH_VAR;

mod address;
mod owner;
mod stats;

pub use address::*;
pub use owner::*;
pub use stats::*;

/// Why starting (or probing) the server failed, in words that begin with a short reason.
pub enum StartFailure {
    /// The shim could not even try (no output buffers, out of file descriptors or memory): that
    /// says nothing about sccache. The words begin with `shim-trouble`.
    ShimTrouble(String),
    /// sccache's failure, or its backend's: a short reason (`start-failed`, `timeout`,
    /// `backend-unreachable`, …), then sccache's own words.
    Sccache(String),
}

impl std::fmt::Display for StartFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartFailure::ShimTrouble(words) | StartFailure::Sccache(words) => f.write_str(words),
        }
    }
}

/// What a successful `sccache --start-server` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Started {
    /// A new server is up: its start-up check ran, and its figures start from zero.
    Fresh,
    /// A server was already listening at the address ("Address in use": another call started it
    /// a moment before). Its start-up check was that call's, and the error log handed to this
    /// start says nothing of it.
    AlreadyUp,
}

/// Runs `sccache --start-server`, killing it (and anything it started in its process group) at
/// `timeout`. `Ok` when a server is up afterwards. With `error_log`, the server writes its errors
/// there (`SCCACHE_ERROR_LOG`, the file emptied first), for the caller to read what its start-up
/// check met.
pub fn start(
    sccache: &Path,
    depth: u32,
    timeout: Duration,
    error_log: Option<&Path>,
) -> Result<Started, StartFailure> {
    let problem = error_log_problem()
        .or_else(|| crate::backend::gha::release_problem(sccache))
        .or_else(crate::backend::precheck);
    if let Some(problem) = problem {
        return Err(StartFailure::Sccache(problem));
    }
    let started = Instant::now();
    let mut cmd = Command::new(sccache);
    cmd.arg("--start-server")
        .env(DEPTH_VAR, (depth + 1).to_string())
        .stdin(Stdio::null());
    // A log that cannot be emptied is not handed over: an old one could say what this start
    // did not meet.
    if let Some(log) = error_log.filter(|log| std::fs::File::create(log).is_ok()) {
        cmd.env("SCCACHE_ERROR_LOG", log);
    }
    let captured = run_bounded(cmd, timeout).map_err(|e| {
        let words = naming_backend(&e.to_string());
        match e {
            RunError::ShimTrouble(_) => StartFailure::ShimTrouble(words),
            RunError::Failed(_) => StartFailure::Sccache(words),
        }
    })?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&captured.stdout),
        String::from_utf8_lossy(&captured.stderr)
    );
    log::info!(
        "sccache --start-server: exit {:?} after {} ms",
        captured.code,
        started.elapsed().as_millis()
    );
    if let Some(started) = started_by(captured.code, &text) {
        return Ok(started);
    }
    log::debug!("sccache --start-server said: {}", text.trim_end());
    let first = text
        .lines()
        .find(|l| l.contains("error"))
        .or_else(|| text.lines().next())
        .unwrap_or("no output")
        .trim();
    Err(StartFailure::Sccache(naming_backend(&format!(
        "start-failed: {first}"
    ))))
}

/// What `sccache --start-server`'s exit code and words say came of it; `None`: no server.
fn started_by(code: Option<i32>, text: &str) -> Option<Started> {
    if code == Some(0) {
        return Some(Started::Fresh);
    }
    // sccache 0.16: exit 2, "sccache: error: Server startup failed: Address in use".
    text.contains("Address in use")
        .then_some(Started::AlreadyUp)
}

/// `reason` with the configured remote backend named after its first word, so that a breaker
/// opened by a failed start says which backend it was about (without user information).
fn naming_backend(reason: &str) -> String {
    let backends = crate::backend::detect();
    if backends.is_empty() {
        return reason.to_owned();
    }
    let names: Vec<String> = backends.iter().map(|b| b.describe()).collect();
    let (head, tail) = reason.split_once(": ").unwrap_or((reason, ""));
    format!("{head}: backend {}: {tail}", names.join(", "))
}

/// If `SCCACHE_ERROR_LOG` names a file that cannot be opened, sccache's server dies silently at
/// start and its client waits out the whole start-up timeout; this sees it coming.
fn error_log_problem() -> Option<String> {
    let path = env::var_os("SCCACHE_ERROR_LOG")?;
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    // Non-blocking: a FIFO nobody reads would block this open forever, holding the call and the
    // start lock; this way it fails at once, as sccache's server could not use it either.
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    match options.open(&path) {
        Ok(_) => None,
        Err(e) => Some(format!(
            "error-log: SCCACHE_ERROR_LOG={} cannot be opened: {e}",
            Path::new(&path).display()
        )),
    }
}

/// How long a server has to answer the half-open probe's statistics request.
const PROBE_ANSWER: Duration = Duration::from_secs(5);

/// The half-open probe, after the breaker's cooldown. A listening server must first answer a real
/// request within a deadline (a hung one still accepts connections); then it is stopped, because
/// `--start-server` against a running server succeeds without checking the storage backend, and
/// the backend is what most often failed. No call uses the server meanwhile: the breaker was open.
/// Then a fresh server is started, which checks the backend. `Ok` when one is up.
pub fn probe(
    sccache: &Path,
    depth: u32,
    timeout: Duration,
    error_log: Option<&Path>,
) -> Result<Started, StartFailure> {
    // The caller checked the owner just before; should another user's server take the address
    // in between, `stop` and `stop_hung` refuse to touch it.
    if is_up() {
        match stats_or_why(sccache, PROBE_ANSWER) {
            // The shim could not even ask: that says nothing of the server.
            Err(trouble @ RunError::ShimTrouble(_)) => {
                return Err(StartFailure::ShimTrouble(trouble.to_string()));
            }
            Err(_) if !stop_hung(sccache) => {
                return Err(StartFailure::Sccache(format!(
                    "hung: the sccache server at {} did not answer within {} s and could not \
                     be stopped",
                    address(),
                    PROBE_ANSWER.as_secs()
                )));
            }
            Err(_) => {}
            Ok(_) if !stop(sccache, timeout) => {
                return Err(StartFailure::Sccache(format!(
                    "stop-failed: the sccache server at {} did not stop within {} s",
                    address(),
                    timeout.as_secs()
                )));
            }
            Ok(_) => {}
        }
    }
    start(sccache, depth, timeout, error_log)
}

/// Asks the server to stop and waits (at most `timeout`) until nothing listens any more. sccache
/// lets the calls in it run for up to 10 s first. `true` when it is down.
pub fn stop(sccache: &Path, timeout: Duration) -> bool {
    if let Some(owner) = foreign() {
        log::warn!(
            "not stopping the sccache server at {}: it belongs to {}",
            address(),
            owner.describe()
        );
        return false;
    }
    let deadline = Instant::now() + timeout;
    let mut cmd = Command::new(sccache);
    cmd.arg("--stop-server").stdin(Stdio::null());
    let _ = run_bounded(cmd, timeout);
    // The client returns once the server has agreed to stop; the port closes a moment later.
    while is_up() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

/// Stops a server that accepts connections but does not answer: it would not answer a stop
/// request either, so the sccache process listening at the address is killed. Only a process
/// named sccache is (never a foreign program on the same port). `true` when nothing listens
/// any more.
pub fn stop_hung(sccache: &Path) -> bool {
    let _ = sccache;
    if let Some(owner) = foreign() {
        log::warn!(
            "not killing the sccache server at {}: it belongs to {}",
            address(),
            owner.describe()
        );
        return false;
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if let Some(pid) = listener::sccache_listening_at(&address()) {
        log::warn!(
            "killing the hung sccache server (pid {pid}) at {}",
            address()
        );
        // SAFETY: a plain kill(2) of a process named sccache that holds the server's address.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while is_up() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    !is_up()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_start_that_met_a_running_server_is_told_from_a_fresh_one() {
        assert_eq!(
            started_by(Some(0), "sccache: Listening on address 127.0.0.1:4226\n"),
            Some(Started::Fresh)
        );
        assert_eq!(
            started_by(
                Some(2),
                "sccache: error: Server startup failed: Address in use\n"
            ),
            Some(Started::AlreadyUp)
        );
        assert_eq!(
            started_by(
                Some(2),
                "sccache: error: Timed out waiting for server startup\n"
            ),
            None
        );
        assert_eq!(started_by(None, ""), None);
    }
}
