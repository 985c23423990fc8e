//! Running a child process with a deadline, and what it did.

use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::count;

/// The finished run of a child process.
pub struct Run {
    pub what: String,
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Run {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    pub fn signal(&self) -> Option<i32> {
        self.status.signal()
    }

    pub fn out(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn err(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// Everything the child wrote, stdout then stderr.
    pub fn all(&self) -> Vec<u8> {
        let mut all = self.stdout.clone();
        all.extend_from_slice(&self.stderr);
        all
    }

    pub fn describe(&self) -> String {
        format!(
            "{}\n  status: {:?}\n  --- stdout ---\n{}\n  --- stderr ---\n{}",
            self.what,
            self.status,
            self.out(),
            self.err()
        )
    }

    pub fn assert_success(&self) -> &Self {
        assert!(
            self.status.success(),
            "expected success: {}",
            self.describe()
        );
        self
    }

    /// Nothing written by sccache (its `sccache:` lines) or by the shim itself reached the output.
    pub fn assert_no_shim_noise(&self) -> &Self {
        let all = self.all();
        for needle in ["sccache:", "maybe-sccache", "SCCACHE_LOG", "panicked"] {
            assert_eq!(
                count(&all, needle),
                0,
                "{needle:?} must not appear in the output: {}",
                self.describe()
            );
        }
        self
    }
}

/// Runs `cmd` (stdin closed, stdout and stderr captured in files) and waits at most `timeout`;
/// on time-out the child's whole process group is killed and the test fails.
pub fn run(cmd: &mut Command, timeout: Duration) -> Run {
    let what = format!("{cmd:?}");
    let mut out = tempfile::tempfile().unwrap();
    let mut err = tempfile::tempfile().unwrap();
    cmd.stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(err.try_clone().unwrap())
        .process_group(0);
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot spawn {what}: {e}"));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.kill();
            let _ = child.wait();
            let mut o = String::new();
            let mut e = String::new();
            let _ = out.seek(SeekFrom::Start(0));
            let _ = out.read_to_string(&mut o);
            let _ = err.seek(SeekFrom::Start(0));
            let _ = err.read_to_string(&mut e);
            panic!("timed out after {timeout:?} (killed): {what}\n--- stdout ---\n{o}\n--- stderr ---\n{e}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stdout = Vec::new();
    out.seek(SeekFrom::Start(0)).unwrap();
    out.read_to_end(&mut stdout).unwrap();
    let mut stderr = Vec::new();
    err.seek(SeekFrom::Start(0)).unwrap();
    err.read_to_end(&mut stderr).unwrap();
    Run {
        what,
        status,
        stdout,
        stderr,
    }
}
