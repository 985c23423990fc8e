//! Forwarding: running `sccache <compiler> <args…>` and keeping what it left behind (`judge`
//! then says what that means).
//!
//! sccache's stdout and stderr go to memory files (unlinked temporary files where there are none;
//! see `child::output_buffer`), not pipes: an sccache server that inherits them (with
//! `SCCACHE_NO_DAEMON=1`, say) would otherwise keep a pipe open and hang the read. Buffering costs no latency, because sccache itself buffers a cached compile's output and
//! replays it after the compile. The buffer is what lets the shim keep sccache's own errors away
//! from cargo and fall back without showing anything twice.

use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::call::watch;
use crate::child;
use crate::config::DEPTH_VAR;
use crate::state::Trip;

/// What sccache left behind.
pub struct Captured {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub elapsed: Duration,
    /// What the watchdog saw of a slow call (`None` when it never had a baseline), for its
    /// verdict after the call ([`watch::after_slow_call`]).
    pub watched: Option<watch::Watched>,
}

/// How a forwarded call ended: with sccache's result, or with sccache not answering.
pub enum Ran {
    Finished(Captured),
    /// sccache stopped answering while the call ran; it was killed (with anything it started).
    Hung(Trip),
    /// The shim's own trouble (no buffers for sccache's output, a full file system under them, or
    /// no file descriptors or memory left to start a process with): sccache is not to blame, and
    /// nothing of the call was shown.
    ShimTrouble {
        /// The reason in logs and counters.
        reason: &'static str,
        detail: String,
    },
}

/// Runs sccache for one compiler call and waits for it. There is no deadline on the call itself:
/// it includes the caller's own compile, which may rightly take longer than any bound. Instead a
/// watchdog (`watch`) abandons the call when it is stuck: no compiler at work and a backend that
/// does not answer, or a server that does not answer past `watch_after`.
pub fn run_sccache(
    sccache: &Path,
    compiler: &OsStr,
    args: &[OsString],
    depth: u32,
    watch_after: Duration,
) -> Result<Ran> {
    let buffers = child::output_buffer().and_then(|out| Ok((out, child::output_buffer()?)));
    let (mut out, mut err) = match buffers {
        Ok(files) => files,
        Err(e) => {
            return Ok(Ran::ShimTrouble {
                reason: "temp-files",
                detail: format!("cannot create a buffer for sccache's output: {e}"),
            })
        }
    };
    let (out_for_child, err_for_child) = match (out.try_clone(), err.try_clone()) {
        (Ok(o), Ok(e)) => (o, e),
        (Err(e), _) | (_, Err(e)) => {
            return Ok(Ran::ShimTrouble {
                reason: "temp-files",
                detail: format!("cannot hand sccache its output buffers: {e}"),
            })
        }
    };
    let started = Instant::now();
    let mut cmd = Command::new(sccache);
    cmd.arg(compiler)
        .args(args)
        .env(DEPTH_VAR, (depth + 1).to_string())
        // A lost connection to the server then makes sccache compile locally instead of failing.
        .env("SCCACHE_IGNORE_SERVER_IO_ERROR", "1")
        .stdin(Stdio::inherit())
        .stdout(out_for_child)
        .stderr(err_for_child);
    let mut child = match child::spawn_in_own_group(&mut cmd) {
        Ok(child) => child,
        // Out of file descriptors, processes or memory: the shim's (or the machine's) trouble,
        // which the direct compile may still get through; sccache itself was never tried.
        Err(e) if child::is_resource_shortage(&e) => {
            return Ok(Ran::ShimTrouble {
                reason: "no-resources",
                detail: format!("cannot start {}: {e}", sccache.display()),
            })
        }
        Err(e) => return Err(e).with_context(|| format!("cannot run {}", sccache.display())),
    };
    let watch = Arc::new(Mutex::new(watch::Shared::default()));
    // Nearly every call ends long before it needs watching: wait for that first, without the
    // cost of a thread, and start the watchdog only for a call still running then.
    if !child::exited_by(child.inner(), started + watch::first_check(watch_after)) {
        watch::spawn(
            sccache,
            compiler,
            child.inner().id(),
            started,
            watch_after,
            watch.clone(),
        );
    }
    // A blocking wait: the shim learns of the end of the call the moment it happens.
    let status = child.inner().wait()?;
    let elapsed = started.elapsed();
    let (stuck, watched) = {
        let mut w = watch.lock().unwrap_or_else(|e| e.into_inner());
        w.finished = true;
        (w.stuck.take(), w.watched)
    };
    if let Some(why) = stuck {
        return Ok(Ran::Hung(why));
    }
    // A failed call on a full file system may have lost its output (sccache's writes to the
    // buffers failed, and so did its report of that): the result cannot be trusted.
    if !status.success() && child::file_system_full(&out) {
        return Ok(Ran::ShimTrouble {
            reason: "temp-files",
            detail: "the file system of sccache's output buffers is full".into(),
        });
    }
    Ok(Ran::Finished(Captured {
        status,
        stdout: child::read_back(&mut out)?,
        stderr: child::read_back(&mut err)?,
        elapsed,
        watched,
    }))
}
