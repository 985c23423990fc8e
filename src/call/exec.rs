//! Falling back: running the compiler directly, and passing on how it ended.
//!
//! On Unix the shim `exec`s the compiler, so no process of its own is left in between: exit status,
//! signals and the jobserver file descriptors reach cargo exactly as if cargo had run the compiler.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io;
use std::process::{Command, ExitCode, ExitStatus};

/// How this process ends. The subcommands choose small codes of their own (`Code`); wrapper mode
/// passes on the compiler's code whole (`Compiler`): on Windows it has 32 bits (`0xC0000005` for
/// an access violation), which `ExitCode` cannot carry, and its low byte alone may be 0.
#[derive(Debug, PartialEq)]
pub enum Exit {
    Code(ExitCode),
    Compiler(i32),
}

impl From<ExitCode> for Exit {
    fn from(code: ExitCode) -> Exit {
        Exit::Code(code)
    }
}

/// The byte an `ExitCode` holds (std keeps it private; every one this program makes comes from a
/// byte).
pub fn byte_of(code: ExitCode) -> u8 {
    (0..=u8::MAX)
        .find(|&b| ExitCode::from(b) == code)
        .unwrap_or(1)
}

/// The code to hand to `std::process::exit` for a compiler's exit code. Windows keeps all 32 bits.
/// A Unix exit status has 8, and a code beyond them (which no Unix child can produce, but which
/// must never turn into success) keeps its low byte, or becomes 1 when that byte is 0.
pub fn process_exit_code(code: i32) -> i32 {
    if cfg!(windows) || (0..=255).contains(&code) {
        return code;
    }
    match code & 0xff {
        0 => 1,
        low => low,
    }
}

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
pub fn run_compiler(compiler: &OsStr, args: &[OsString]) -> Result<Exit, CannotRun> {
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
/// An ending signal (Ctrl-C, `kill`) sent to the shim reaches the compiler, and the shim ends by
/// it only once the compiler has ended, so no orphan goes on writing the call's outputs.
pub fn run_compiler_child(compiler: &OsStr, args: &[OsString]) -> Result<ExitStatus, CannotRun> {
    crate::child::run_in_foreground(Command::new(compiler).args(args)).map_err(|source| CannotRun {
        program: compiler.to_owned(),
        source,
    })
}

/// Ends this process as the child ended: the same exit code, or death by the same signal.
pub fn exit_code_of_status(status: ExitStatus) -> Exit {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            return die_by_signal(sig);
        }
    }
    exit_code_of(status.code().unwrap_or(1))
}

/// The compiler's exit code as this process's own, kept whole (see `process_exit_code`).
pub fn exit_code_of(code: i32) -> Exit {
    Exit::Compiler(code)
}

/// Ends this process the way the compiler ended: by the same signal. Core dumps are switched off
/// first, since the compiler's crash has already happened elsewhere.
#[cfg(unix)]
pub fn die_by_signal(sig: i32) -> Exit {
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
pub fn die_by_signal(sig: i32) -> Exit {
    exit_code_of(128 + sig)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_byte_of_an_exit_code() {
        assert_eq!(byte_of(ExitCode::SUCCESS), 0);
        assert_eq!(byte_of(ExitCode::FAILURE), 1);
        for b in [2, 101, 127, 255] {
            assert_eq!(byte_of(ExitCode::from(b)), b);
        }
    }

    #[test]
    fn exit_codes_are_kept_whole() {
        let access_violation = 0xC000_0005_u32 as i32;
        assert_eq!(
            exit_code_of(access_violation),
            Exit::Compiler(access_violation)
        );
        assert_eq!(exit_code_of(256), Exit::Compiler(256));
        for code in [0, 1, 101, 255] {
            assert_eq!(process_exit_code(code), code);
        }
        if cfg!(windows) {
            assert_eq!(process_exit_code(access_violation), access_violation);
            assert_eq!(process_exit_code(256), 256);
        } else {
            // Not representable in 8 bits: never success, the low byte when it says failure.
            for code in [256, 512, 0x1_0000, -256, i32::MIN] {
                assert_eq!(process_exit_code(code), 1, "{code}");
            }
            assert_eq!(process_exit_code(access_violation), 5);
            assert_eq!(process_exit_code(-1), 255);
        }
    }
}
