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

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fs2::FileExt;

/// Above this size the events file is folded into totals by the next call that sees it.
const EVENTS_COMPACT_AT: u64 = 256 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Event {
    Forwarded,
    Bypassed,
    Fallback,
    Trip,
}

impl Event {
    fn word(self) -> &'static str {
        match self {
            Event::Forwarded => "forwarded",
            Event::Bypassed => "bypassed",
            Event::Fallback => "fallback",
            Event::Trip => "trip",
        }
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Breaker {
    /// Seconds since the epoch until which sccache is not used; `None` when closed.
    pub open_until: Option<u64>,
    /// The last failure: when, and why.
    pub failed_at: Option<u64>,
    pub reason: Option<String>,
}

impl Breaker {
    pub fn is_open_at(&self, now: u64) -> bool {
        self.open_until.is_some_and(|until| now < until)
    }

    /// Open but past its cooldown: one call may probe sccache again.
    pub fn is_half_open_at(&self, now: u64) -> bool {
        self.open_until.is_some_and(|until| now >= until)
    }
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Makes `dir` ready to keep state in, or says why it cannot be used. A missing directory is
/// created (mode 0700, its parents as usual) and then looked at with `lstat` on the same path, so
/// there is no window between the check and the use in which another user could put a directory
/// of theirs there: whoever created it, it is used only if it is a real directory (not a symbolic
/// link), owned by this user, that no one else can write to. In a directory others can write to,
/// another user could plant a breaker (keeping sccache off, or on) or a link where a state file
/// goes. One `lstat` when the directory is there already.
pub fn trusted_dir(dir: &Path) -> Result<(), String> {
    let meta = match fs::symlink_metadata(dir) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            create_private(dir).map_err(|e| {
                format!(
                    "{} cannot be created: {e}; the shim runs without a breaker or counters",
                    dir.display()
                )
            })?;
            fs::symlink_metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?
        }
        Err(e) => return Err(format!("{}: {e}", dir.display())),
    };
    if meta.file_type().is_symlink() {
        return Err(format!(
            "{} is a symbolic link: not used, so the shim runs without a breaker or counters; \
             point MAYBE_SCCACHE_STATE_DIR at the directory itself",
            dir.display()
        ));
    }
    if !meta.is_dir() {
        return Err(format!(
            "{} is not a directory: the shim runs without a breaker or counters",
            dir.display()
        ));
    }
    match others_can_write(&meta) {
        Some(why) => Err(format!(
            "{} {why}: not used, so the shim runs without a breaker or counters",
            dir.display()
        )),
        None => Ok(()),
    }
}

/// Creates `dir` with mode 0700; its missing parents are created as `mkdir -p` would. A directory
/// that appeared meanwhile (another call's, or anyone's) is not an error: the caller checks it.
fn create_private(dir: &Path) -> io::Result<()> {
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent)?;
    }
    let mut builder = fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    match builder.create(dir) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        other => other,
    }
}

/// Why a directory is not this user's alone to write, if it is not: owned by another user, or
/// writable by others (any user, or a group other than this user's own: with a private group per
/// user and umask 002, a directory made by hand is group-writable by that user alone).
pub fn others_can_write(meta: &fs::Metadata) -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        // SAFETY: geteuid cannot fail.
        let me = unsafe { libc::geteuid() };
        if meta.uid() != me {
            return Some(format!(
                "belongs to user id {}, not to this user ({me})",
                meta.uid()
            ));
        }
        // SAFETY: getegid cannot fail.
        let my_group = unsafe { libc::getegid() };
        let group_writable = meta.mode() & 0o020 != 0 && meta.gid() != my_group;
        if meta.mode() & 0o002 != 0 || group_writable {
            return Some(format!(
                "can be written by other users (mode {:o}; `chmod go-w` it)",
                meta.mode() & 0o7777
            ));
        }
    }
    let _ = meta;
    None
}

/// The state directory, created (and checked, see [`trusted_dir`]) if it went missing since the
/// call began. `None` when there is none to use.
pub fn ensure_dir(dir: &Path) -> Option<&Path> {
    match trusted_dir(dir) {
        Ok(()) => Some(dir),
        Err(why) => {
            log::warn!("state dir: {why}");
            None
        }
    }
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

/// Counts one call. One `open` and one `write`; the directory is created on first use.
pub fn record(dir: Option<&Path>, event: Event, reason: &str) {
    let Some(dir) = dir else { return };
    let path = dir.join("events");
    let line = format!("{} {}\n", event.word(), reason);
    let open = || open_options().create(true).append(true).open(&path);
    let file = match open() {
        Err(e) if e.kind() == io::ErrorKind::NotFound && ensure_dir(dir).is_some() => open(),
        other => other,
    };
    let result = file.and_then(|mut f| {
        f.write_all(line.as_bytes())?;
        f.metadata()
    });
    match result {
        Ok(meta) if meta.len() > EVENTS_COMPACT_AT => compact_events(dir),
        Ok(_) => {}
        Err(e) => log::debug!("cannot count the call in {}: {e}", path.display()),
    }
}

/// Counters by kind, then by reason. Corrupt lines are skipped.
pub type Counters = BTreeMap<String, BTreeMap<String, u64>>;

pub fn read_counters(dir: &Path) -> Counters {
    let mut counters = Counters::new();
    let Ok(bytes) = read_small_bytes(&dir.join("events")) else {
        return counters;
    };
    let text = String::from_utf8_lossy(&bytes);
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let (Some(kind), Some(reason)) = (words.next(), words.next()) else {
            continue;
        };
        // Compacted totals are `<kind> <reason> <count>`; plain events count one.
        let count = match words.next() {
            None => 1,
            Some(n) => match n.parse::<u64>() {
                Ok(n) => n,
                Err(_) => continue,
            },
        };
        if !matches!(kind, "forwarded" | "bypassed" | "fallback" | "trip") {
            continue;
        }
        *counters
            .entry(kind.to_owned())
            .or_default()
            .entry(reason.to_owned())
            .or_default() += count;
    }
    counters
}

/// Folds the events file into one line per counter. Events appended between the read and the
/// rename are lost; counters are a diagnostic, and the lock keeps compactions from racing.
fn compact_events(dir: &Path) {
    let Some(_lock) = try_lock(dir, "compact.lock") else {
        return;
    };
    let counters = read_counters(dir);
    let mut text = String::new();
    for (kind, reasons) in &counters {
        for (reason, n) in reasons {
            text.push_str(&format!("{kind} {reason} {n}\n"));
        }
    }
    if let Err(e) = write_atomic(dir, "events", text.as_bytes()) {
        log::debug!("cannot compact counters: {e}");
    }
}

fn breaker_file(server: &str) -> String {
    format!("breaker-{server}")
}

/// The name of the lock held by the one call that starts or probes `server`.
pub fn start_lock(server: &str) -> String {
    format!("start-{server}.lock")
}

/// The breaker of `server` (a key from [`crate::server::key`]).
pub fn read_breaker(dir: Option<&Path>, server: &str) -> Breaker {
    let Some(dir) = dir else {
        return Breaker::default();
    };
    let text = match read_small(&dir.join(breaker_file(server))) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Breaker::default(),
        Err(e) => {
            log::warn!("breaker state unreadable, treated as closed: {e}");
            return Breaker::default();
        }
    };
    let mut b = Breaker::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(' ') else {
            continue;
        };
        match key {
            "open_until" => b.open_until = value.parse().ok(),
            "failed_at" => b.failed_at = value.parse().ok(),
            "reason" => b.reason = Some(value.to_owned()),
            _ => {}
        }
    }
    b
}

fn write_breaker(dir: &Path, server: &str, b: &Breaker) {
    let mut text = String::new();
    if let Some(until) = b.open_until {
        text.push_str(&format!("open_until {until}\n"));
    }
    if let Some(at) = b.failed_at {
        text.push_str(&format!("failed_at {at}\n"));
    }
    if let Some(reason) = &b.reason {
        // One line: the reason is free text from sccache.
        let reason: String = reason.replace(['\n', '\r'], " ");
        text.push_str(&format!("reason {reason}\n"));
    }
    if let Err(e) = write_atomic(dir, &breaker_file(server), text.as_bytes()) {
        log::warn!("cannot save the breaker state: {e}");
    }
}

/// Reads `server`'s breaker, lets `change` change it, and writes it back if `change` says so, all
/// under the breaker's lock: two calls changing it at once (one trips, one closes) cannot lose
/// either change. A lock not had within a second is done without (the state dir is in trouble;
/// the change still counts more than the race).
fn update_breaker(dir: Option<&Path>, server: &str, change: impl FnOnce(&mut Breaker) -> bool) {
    let Some(dir) = dir.and_then(ensure_dir) else {
        return;
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    let _lock = lock_until(dir, &format!("{}.lock", breaker_file(server)), deadline);
    let mut b = read_breaker(Some(dir), server);
    if change(&mut b) {
        write_breaker(dir, server, &b);
    }
}

/// Opens `server`'s breaker for `cooldown`, remembering why, and counts the trip.
pub fn trip(dir: Option<&Path>, server: &str, cooldown: Duration, reason: &str) {
    let now = now_secs();
    // The reason quotes sccache, whose errors can name a backend URL with its password; it is
    // kept on disk and shown by `status` (in a CI job summary, say), so it is redacted first.
    let reason = crate::logging::redact_secrets(reason);
    update_breaker(dir, server, |b| {
        b.open_until = Some(now + cooldown.as_secs());
        b.failed_at = Some(now);
        b.reason = Some(reason.clone());
        true
    });
    record(
        dir,
        Event::Trip,
        reason.split(':').next().unwrap_or(&reason),
    );
    log::warn!("breaker open for {} s: {reason}", cooldown.as_secs());
}

/// Records a freshly started server: its breaker closes, keeping the last failure on record. A
/// trip recorded since `probe_began` (by a call whose sccache failed while this one was starting
/// a server) is newer news, and stays.
pub fn server_started(dir: Option<&Path>, server: &str, probe_began: u64) {
    update_breaker(dir, server, |b| {
        if b.open_until.is_none() || b.failed_at.is_some_and(|at| at >= probe_began) {
            return false;
        }
        b.open_until = None;
        log::info!("breaker closed: sccache works again");
        true
    });
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
    fn counters_round_trip_and_compact() {
        let dir = tempfile::tempdir().unwrap();
        let d = Some(dir.path());
        record(d, Event::Forwarded, "-");
        record(d, Event::Bypassed, "probe");
        record(d, Event::Bypassed, "probe");
        record(d, Event::Fallback, "not-found");
        let c = read_counters(dir.path());
        assert_eq!(c["bypassed"]["probe"], 2);
        assert_eq!(c["fallback"]["not-found"], 1);
        compact_events(dir.path());
        assert_eq!(read_counters(dir.path()), c);
        fs::write(
            dir.path().join("events"),
            b"garbage\n\xff\xfe\nbypassed x y\n",
        )
        .unwrap();
        assert!(read_counters(dir.path()).is_empty());
    }

    #[test]
    fn breaker_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let d = Some(dir.path());
        assert_eq!(read_breaker(d, "k1"), Breaker::default());
        let before = now_secs() - 1;
        trip(
            d,
            "k1",
            Duration::from_secs(60),
            "sccache-error: boom\nline two",
        );
        let b = read_breaker(d, "k1");
        assert!(b.is_open_at(now_secs()));
        assert!(b.is_half_open_at(now_secs() + 61));
        assert_eq!(b.reason.as_deref(), Some("sccache-error: boom line two"));
        // Another server's breaker is another file.
        assert_eq!(read_breaker(d, "k2"), Breaker::default());
        // A trip newer than the probe's start stays open.
        server_started(d, "k1", before);
        assert!(read_breaker(d, "k1").is_open_at(now_secs()));
        server_started(d, "k1", now_secs() + 1);
        let b = read_breaker(d, "k1");
        assert!(!b.is_open_at(now_secs()));
        assert!(b.failed_at.is_some());
        fs::write(dir.path().join("breaker-k1"), b"\xff\xfe garbage").unwrap();
        assert_eq!(read_breaker(d, "k1"), Breaker::default());
        trip(d, "k2", Duration::from_secs(60), "x");
        reset(dir.path(), "k1").unwrap();
        assert!(
            read_breaker(d, "k2").is_open_at(now_secs()),
            "reset keeps other servers"
        );
    }

    #[test]
    fn open_and_half_open() {
        let closed = Breaker::default();
        assert!(!closed.is_open_at(0) && !closed.is_half_open_at(u64::MAX));
        let open = Breaker {
            open_until: Some(100),
            ..Breaker::default()
        };
        assert!(open.is_open_at(99) && !open.is_half_open_at(99));
        assert!(!open.is_open_at(100) && open.is_half_open_at(100));
        assert!(!open.is_open_at(101) && open.is_half_open_at(101));
    }

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

    #[test]
    fn breaker_changes_wait_for_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let held = try_lock(dir.path(), "breaker-k.lock").expect("the breaker's lock");
        let d = dir.path().to_owned();
        let tripping = std::thread::spawn(move || {
            let began = std::time::Instant::now();
            trip(Some(&d), "k", Duration::from_secs(60), "x");
            began.elapsed()
        });
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(
            read_breaker(Some(dir.path()), "k"),
            Breaker::default(),
            "no change while another holds the lock"
        );
        drop(held);
        let waited = tripping.join().unwrap();
        assert!(waited >= Duration::from_millis(250), "{waited:?}");
        assert!(read_breaker(Some(dir.path()), "k").is_open_at(now_secs()));
    }

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
        trip(d, "k", Duration::from_secs(60), "x");
        assert_eq!(fs::read(&victim).unwrap(), b"open_until 99999999999\n");
    }

    #[cfg(unix)]
    #[test]
    fn only_a_private_state_dir_of_ones_own_is_trusted() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(trusted_dir(dir.path()), Ok(()));
        // Created private, then checked.
        let new = dir.path().join("not-yet").join("state");
        assert_eq!(trusted_dir(&new), Ok(()));
        assert_eq!(
            fs::metadata(&new).unwrap().permissions().mode() & 0o777,
            0o700
        );
        // A link, even to a directory of one's own, and a file are not used.
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&new, &link).unwrap();
        assert!(trusted_dir(&link).unwrap_err().contains("symbolic link"));
        fs::write(dir.path().join("file"), "").unwrap();
        assert!(trusted_dir(&dir.path().join("file")).is_err());
        for mode in [0o777, 0o722, 0o757, 0o702, 0o1777] {
            fs::set_permissions(dir.path(), fs::Permissions::from_mode(mode)).unwrap();
            let e = trusted_dir(dir.path()).unwrap_err();
            assert!(e.contains("written by other users"), "{mode:o}: {e}");
        }
        // Writable by the user's own group (a private group per user, umask 002).
        for mode in [0o755, 0o775, 0o720] {
            fs::set_permissions(dir.path(), fs::Permissions::from_mode(mode)).unwrap();
            assert_eq!(trusted_dir(dir.path()), Ok(()), "{mode:o}");
        }
        // SAFETY: geteuid cannot fail.
        if unsafe { libc::geteuid() } == 0 {
            // Writable by another group.
            std::os::unix::fs::chown(dir.path(), None, Some(65534)).unwrap();
            let e = trusted_dir(dir.path()).unwrap_err();
            assert!(e.contains("written by other users"), "{e}");
            std::os::unix::fs::chown(dir.path(), Some(65534), None).unwrap();
            let e = trusted_dir(dir.path()).unwrap_err();
            assert!(e.contains("belongs to user id 65534"), "{e}");
        }
    }
}
