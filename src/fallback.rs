//! Falling back: running the compiler directly, and passing on how it ended.
//!
//! On Unix the shim `exec`s the compiler, so no process of its own is left in between: exit status,
//! signals and the jobserver file descriptors reach cargo exactly as if cargo had run the compiler.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io;
use std::process::{Command, ExitCode, ExitStatus};

/// The compiler itself could not be started. Reported as `cannot run <path>: <reason>`.
#[derive(Debug)]
pub struct CannotRun {
    pub program: OsString,
    pub source: io::Error,
}

impl fmt::Display for CannotRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot run {}: {}",
            self.program.to_string_lossy(),
            self.source
        )
    }
}

impl std::error::Error for CannotRun {}

impl CannotRun {
    /// The shell's convention: 127 when there is no such program, 126 when it cannot be run.
    pub fn exit_code(&self) -> u8 {
        if self.source.kind() == io::ErrorKind::NotFound {
            127
        } else {
            126
        }
    }
}

/// Runs `compiler args…` in place of this process. Returns only if it could not be started, or on
/// platforms without `exec` (then with the compiler's exit code).
pub fn run_compiler(compiler: &OsStr, args: &[OsString]) -> Result<ExitCode, CannotRun> {
    let mut cmd = Command::new(compiler);
    cmd.args(args);
    let cannot_run = |source| CannotRun {
        program: compiler.to_owned(),
        source,
    };
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        Err(cannot_run(cmd.exec()))
    }
    #[cfg(not(unix))]
    {
        let status = cmd.status().map_err(cannot_run)?;
        Ok(exit_code_of(status.code().unwrap_or(1)))
    }
}

/// Runs the compiler as a child and waits for it, for when the shim still has work to do after.
pub fn run_compiler_child(compiler: &OsStr, args: &[OsString]) -> Result<ExitStatus, CannotRun> {
    Command::new(compiler)
        .args(args)
        .status()
        .map_err(|source| CannotRun {
            program: compiler.to_owned(),
            source,
        })
}

/// Ends this process as the child ended: the same exit code, or death by the same signal.
pub fn exit_code_of_status(status: ExitStatus) -> ExitCode {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            return die_by_signal(sig);
        }
    }
    exit_code_of(status.code().unwrap_or(1))
}

/// An exit code as the process's own. Codes outside 0..=255 keep their low byte, as on Unix.
pub fn exit_code_of(code: i32) -> ExitCode {
    ExitCode::from(code as u8)
}

/// Ends this process the way the compiler ended: by the same signal. Core dumps are switched off
/// first, since the compiler's crash has already happened elsewhere.
#[cfg(unix)]
pub fn die_by_signal(sig: i32) -> ExitCode {
    // SAFETY: plain libc calls with valid arguments; nothing else runs in this process now.
    unsafe {
        let no_core = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        libc::setrlimit(libc::RLIMIT_CORE, &no_core);
        libc::signal(sig, libc::SIG_DFL);
        libc::raise(sig);
    }
    // Signals that do not end a process by default (or are blocked) end up here.
    exit_code_of(128 + sig)
}

#[cfg(not(unix))]
pub fn die_by_signal(sig: i32) -> ExitCode {
    exit_code_of(128 + sig)
}
