//! Locks in the state dir: the start lock of a server, and the locks that order breaker changes
//! and compactions. Never blocking: a lock is tried, and waited for only within a deadline.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use fs2::FileExt;

use super::{ensure_dir, open_options};

/// The name of the lock held by the one call that starts or probes `server`.
pub fn start_lock(server: &str) -> String {
    format!("start-{server}.lock")
}

/// An exclusive lock on a file in the state dir, released when dropped.
pub struct Lock(File);

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = FileExt::unlock(&self.0);
    }
}

fn lock_file(dir: &Path, name: &str) -> Option<File> {
    let dir = ensure_dir(dir)?;
    let path: PathBuf = dir.join(name);
    let mut options = open_options();
    // Non-blocking: a FIFO where the lock goes would block a write-only open until a reader
    // came, holding the call forever; this way the open fails at once and the call goes on
    // without the lock.
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    }
    match options.create(true).truncate(false).write(true).open(&path) {
        Ok(f) => Some(f),
        Err(e) => {
            log::warn!("cannot open lock {}: {e}", path.display());
            None
        }
    }
}

pub fn try_lock(dir: &Path, name: &str) -> Option<Lock> {
    let f = lock_file(dir, name)?;
    f.try_lock_exclusive().ok()?;
    Some(Lock(f))
}

/// What one attempt at a lock found.
#[derive(Debug, PartialEq, Eq)]
enum Attempt {
    Taken,
    /// Another process holds it: worth waiting for.
    Contended,
    /// The lock cannot be had at all here (`ENOLCK` on an NFS without a lock manager, `EIO`,
    /// a file system without `flock`): waiting would only waste the caller's time.
    Broken,
}

fn attempt(result: io::Result<()>) -> Attempt {
    match result {
        Ok(()) => Attempt::Taken,
        Err(e) if is_contention(&e) => Attempt::Contended,
        Err(_) => Attempt::Broken,
    }
}

/// Whether a failed non-blocking lock failed because another process holds the lock
/// (`EWOULDBLOCK`; `ERROR_LOCK_VIOLATION` on Windows), as fs2 reports it.
fn is_contention(e: &io::Error) -> bool {
    e.raw_os_error()
        .is_some_and(|n| Some(n) == fs2::lock_contended_error().raw_os_error())
}

/// Waits for the lock until `deadline`. `Err(())` means another call held it the whole time.
/// `Ok(None)` means there is no lock to take (unusable state dir, or a file system whose locks
/// fail for another reason than contention): go on without one, at once.
pub fn lock_until(
    dir: &Path,
    name: &str,
    deadline: std::time::Instant,
) -> Result<Option<Lock>, ()> {
    let Some(f) = lock_file(dir, name) else {
        return Ok(None);
    };
    lock_file_until(f, deadline, |f| f.try_lock_exclusive())
}

fn lock_file_until(
    f: File,
    deadline: std::time::Instant,
    mut try_lock: impl FnMut(&File) -> io::Result<()>,
) -> Result<Option<Lock>, ()> {
    // Short pauses: the calls waiting here are a cold build's first compiles, and each
    // millisecond they oversleep after the start finishes is a millisecond of the build.
    let mut pause = Duration::from_millis(1);
    loop {
        match attempt(try_lock(&f)) {
            Attempt::Taken => return Ok(Some(Lock(f))),
            Attempt::Contended => {}
            Attempt::Broken => {
                log::warn!("cannot lock a state file (not contention): going on without the lock");
                return Ok(None);
            }
        }
        let now = std::time::Instant::now();
        if now >= deadline {
            return Err(());
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_contention_is_worth_waiting_for() {
        assert_eq!(attempt(Ok(())), Attempt::Taken);
        assert_eq!(
            attempt(Err(fs2::lock_contended_error())),
            Attempt::Contended
        );
        assert_eq!(
            attempt(Err(io::Error::from_raw_os_error(libc::EWOULDBLOCK))),
            Attempt::Contended
        );
        for errno in [
            libc::ENOLCK,
            libc::EIO,
            libc::EINVAL,
            libc::EBADF,
            libc::EINTR,
        ] {
            assert_eq!(
                attempt(Err(io::Error::from_raw_os_error(errno))),
                Attempt::Broken,
                "errno {errno}"
            );
        }
        assert_eq!(attempt(Err(io::Error::other("x"))), Attempt::Broken);
    }

    #[test]
    fn a_lock_that_fails_otherwise_than_by_contention_is_not_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let far = std::time::Instant::now() + Duration::from_secs(20);
        let began = std::time::Instant::now();
        let f = lock_file(dir.path(), "x.lock").unwrap();
        let got = lock_file_until(f, far, |_| Err(io::Error::from_raw_os_error(libc::ENOLCK)));
        assert!(matches!(got, Ok(None)), "{:?}", got.map(|l| l.is_some()));
        assert!(began.elapsed() < Duration::from_secs(1));
        // Contention is waited for, until the deadline.
        let soon = std::time::Instant::now() + Duration::from_millis(200);
        let f = lock_file(dir.path(), "x.lock").unwrap();
        let mut tries = 0;
        let got = lock_file_until(f, soon, |_| {
            tries += 1;
            Err(fs2::lock_contended_error())
        });
        assert!(got.is_err());
        // Pauses that double up to 10 ms: a few dozen tries in 200 ms, not a busy loop.
        assert!(tries > 1 && tries < 100, "{tries}");
        assert!(std::time::Instant::now() >= soon);
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_where_a_lock_goes_never_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("start-k.lock");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let far = std::time::Instant::now() + Duration::from_secs(20);
        let got = lock_until(dir.path(), "start-k.lock", far);
        assert!(matches!(got, Ok(None)));
    }
}
