//! Running helper commands (sccache's `--start-server`, `--show-stats`, `--version`; `rustc -vV`)
//! so that none of them can hang the shim: output goes to unlinked temporary files (a daemon that
//! inherits a pipe would keep it open), the command gets its own process group, and at the
//! deadline that whole group is killed.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

/// A finished helper command: its exit code (`None` for a signal), stdout and stderr.
pub type Output = (Option<i32>, Vec<u8>, Vec<u8>);

/// Runs `cmd` to completion or until `timeout`. `Err` says, in a few words starting with a
/// reason (`spawn-failed`, `timeout`, …), why there is no output.
pub fn run_bounded(mut cmd: Command, timeout: Duration) -> Result<Output, String> {
    let tmp = || tempfile::tempfile().map_err(|e| format!("tempfile: cannot create one: {e}"));
    let (mut out, mut err) = (tmp()?, tmp()?);
    let clone = |f: &File| f.try_clone().map_err(|e| format!("tempfile: {e}"));
    cmd.stdout(clone(&out)?).stderr(clone(&err)?);
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
    }
    let program = cmd.get_program().to_string_lossy().into_owned();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("spawn-failed: cannot run {program}: {e}"))?;
    let pid = child.id();
    let status = wait_until(&mut child, Instant::now() + timeout)
        .map_err(|e| format!("wait-failed: {e}"))?;
    let Some(status) = status else {
        kill_group(pid);
        return Err(format!(
            "timeout: {program} did not answer within {} s and was stopped",
            timeout.as_secs_f32()
        ));
    };
    // A finished command's group is left alone: with `SCCACHE_NO_DAEMON=1` the server it started
    // lives on in that group, and it is the server we wanted.
    let stdout = read_back(&mut out).unwrap_or_default();
    let stderr = read_back(&mut err).unwrap_or_default();
    Ok((status.code(), stdout, stderr))
}

/// Waits for `child` until `deadline`. On time-out the child is killed and reaped, and `None` is
/// returned.
fn wait_until(child: &mut Child, deadline: Instant) -> io::Result<Option<ExitStatus>> {
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        let now = Instant::now();
        if now >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Everything written to a temporary output file, from the start.
pub fn read_back(file: &mut File) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    file.seek(SeekFrom::Start(0))?;
    file.read_to_end(&mut buf)?;
    Ok(buf)
}

#[cfg(unix)]
fn kill_group(pid: u32) {
    // SAFETY: signalling a process group this module created; a group that is gone just fails.
    unsafe {
        libc::kill(-(pid as libc::pid_t), libc::SIGKILL);
    }
}

#[cfg(not(unix))]
fn kill_group(_pid: u32) {}
