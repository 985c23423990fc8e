//! State shared by every call of a build: the circuit breaker, the counters, the start lock.
//!
//! Layout of the state directory (0700; files 0600):
//! - `breaker-<server>`: `key value` lines, replaced atomically (temporary file + rename). Missing
//!   means closed with no failure on record. `<server>` names the sccache server the breaker is
//!   about (its address and backend settings, see [`crate::server::key`]), so that one project's
//!   dead backend or one CI job's `reset` leaves every other server's breaker alone.
//! - `breaker-<server>.lock`: held while a breaker is read, changed and written back, so that a
//!   concurrent call cannot write "closed" over another's trip. Reading alone takes no lock.
//! - `events`: one line per call, `<kind> <reason>`, appended with a single `O_APPEND` write, so
//!   concurrent calls need no lock and the hot path pays one open and one write. Shared by every
//!   server: `status` counts calls, not servers.
//! - `start-<server>.lock`: held (fs2) by the one call that starts or probes that sccache server.
//!
//! The directory is used only if it is the user's own and nobody else can write to it (see
//! [`trusted_dir`]), and no state file is ever opened through a symbolic link.
//!
//! Nothing here may fail a build: every error is logged and the state is treated as empty.
//!
//! Rooms: `dir.rs` decides whether the directory can be trusted, `counters.rs` keeps the events,
//! `breaker.rs` the breakers and why they opened ([`Trip`]), `lock.rs` the locks. This file holds
//! what they share: how a state file is opened, read and replaced.

use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

mod breaker;
mod counters;
mod dir;
mod lock;

pub use breaker::*;
pub use counters::*;
pub use dir::*;
pub use lock::*;

/// Now, in seconds since the epoch (0 on a clock before it).
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Options for every state file: private, and never through a symbolic link (`O_NOFOLLOW`), so a
/// link planted in the state dir cannot make the shim write or read elsewhere.
fn open_options() -> OpenOptions {
    let mut o = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600).custom_flags(libc::O_NOFOLLOW);
    }
    o
}

/// Clears the breaker of `server` (the one the current environment points at) and the counters.
/// The breakers of other servers stay as they are: they may belong to a build running at the
/// same time (another CI job on the same machine), which this must not switch sccache back on
/// for. `breaker` is the unkeyed file of earlier versions.
pub fn reset(dir: &Path, server: &str) -> io::Result<()> {
    for name in [breaker_file(server).as_str(), "breaker", "events"] {
        match fs::remove_file(dir.join(name)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

fn read_small_bytes(path: &Path) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    open_options()
        .read(true)
        .open(path)?
        .take(4 * 1024 * 1024)
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

fn read_small(path: &Path) -> io::Result<String> {
    String::from_utf8(read_small_bytes(path)?)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.persist(dir.join(name)).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[cfg(unix)]
    #[test]
    fn state_files_are_never_opened_through_links() {
        let dir = tempfile::tempdir().unwrap();
        let d = Some(dir.path());
        let victim = dir.path().join("victim");
        fs::write(&victim, "open_until 99999999999\n").unwrap();
        for name in ["events", "breaker-k", "start-k.lock", "breaker-k.lock"] {
            std::os::unix::fs::symlink(&victim, dir.path().join(name)).unwrap();
        }
        record(d, Event::Forwarded, "-");
        assert_eq!(read_breaker(d, "k"), Breaker::default());
        assert!(read_counters(dir.path()).is_empty());
        assert!(try_lock(dir.path(), &start_lock("k")).is_none());
        trip(
            d,
            "k",
            Duration::from_secs(60),
            Trip::SpawnFailed("x".into()),
        );
        assert_eq!(fs::read(&victim).unwrap(), b"open_until 99999999999\n");
    }
}
