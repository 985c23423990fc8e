//! The circuit breaker of each sccache server: open (sccache is not used) until a cooldown ends,
//! then half-open (one call probes), and why it last opened.

use std::fmt;
use std::io;
use std::path::Path;
use std::time::Duration;

use super::{ensure_dir, lock_until, now_secs, read_small, record, write_atomic, Event};

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

/// Why a breaker opens. Each reason adds to a counter of its own (`status` shows `trip
/// <counter>`), and its words are kept with the breaker as `<counter>: <detail>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trip {
    /// The server did not answer a statistics request past the slow-call mark.
    Hung(String),
    /// A call stuck on its backend: no compiler at work, and the backend failing or silent.
    BackendStuck(String),
    /// A call stuck on sccache-dist: no compiler at work, and every build server it waits on
    /// silent or gone.
    DistStuck(String),
    /// sccache could not be run at all (not for want of resources: that is the shim's trouble).
    SpawnFailed(String),
    /// sccache failed on its own (`reason` is the judgement's: `sccache-error`, `sccache-fatal`,
    /// …) and the compiler alone then succeeded; `detail` is sccache's first line.
    SccacheFailed {
        reason: &'static str,
        detail: String,
    },
    /// Starting or probing the server failed. The words begin with their own reason
    /// (`start-failed`, `timeout`, `backend-unreachable`, `hung`, …), made in several places
    /// (`doctor` shows some of them too), and that reason names the counter.
    StartFailed(String),
    /// sccache's error counters rose from `before` to `after` during a slow call.
    BackendErrors { before: u64, after: u64 },
    /// sccache's writes to the GitHub Actions cache failed (`failed` since the last look) and
    /// none was stored: the service throttles, and calls compile directly for `cooldown_secs`.
    GhaThrottled { failed: u64, cooldown_secs: u64 },
}

impl Trip {
    /// The counter this trip adds to: one word.
    pub fn counter(&self) -> &str {
        match self {
            Trip::Hung(_) => "hung",
            Trip::BackendStuck(_) => "backend-stuck",
            Trip::DistStuck(_) => "dist-stuck",
            Trip::SpawnFailed(_) => "spawn-failed",
            Trip::SccacheFailed { reason, .. } => reason,
            Trip::StartFailed(words) => words.split(':').next().unwrap_or(words),
            Trip::BackendErrors { .. } => "backend-errors",
            Trip::GhaThrottled { .. } => "gha-throttled",
        }
    }

    /// What happened, after the counter's word.
    pub fn detail(&self) -> String {
        match self {
            Trip::Hung(detail)
            | Trip::BackendStuck(detail)
            | Trip::DistStuck(detail)
            | Trip::SpawnFailed(detail) => detail.clone(),
            Trip::SccacheFailed { detail, .. } => detail.clone(),
            Trip::StartFailed(words) => words
                .split_once(':')
                .map_or("", |(_, rest)| rest.strip_prefix(' ').unwrap_or(rest))
                .to_owned(),
            Trip::BackendErrors { before, after } => {
                format!("sccache error counters rose from {before} to {after} during a slow call")
            }
            Trip::GhaThrottled {
                failed,
                cooldown_secs,
            } => format!(
                "GHA: {failed} of sccache's writes to the GitHub Actions cache failed and none \
                 was stored (the service throttles past 200 uploads a minute); compiling directly \
                 for {cooldown_secs} s"
            ),
        }
    }
}

/// `<counter>: <detail>`, the words kept with the breaker and logged.
impl fmt::Display for Trip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Already in those words.
            Trip::StartFailed(words) => f.write_str(words),
            _ => write!(f, "{}: {}", self.counter(), self.detail()),
        }
    }
}

pub(super) fn breaker_file(server: &str) -> String {
    format!("breaker-{server}")
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
pub fn trip(dir: Option<&Path>, server: &str, cooldown: Duration, why: Trip) {
    let now = now_secs();
    // The reason quotes sccache, whose errors can name a backend URL with its password; it is
    // kept on disk and shown by `status` (in a CI job summary, say), so it is redacted first.
    let reason = crate::logging::redact_secrets(&why.to_string());
    update_breaker(dir, server, |b| {
        b.open_until = Some(now + cooldown.as_secs());
        b.failed_at = Some(now);
        b.reason = Some(reason.clone());
        true
    });
    record(dir, Event::Trip, why.counter());
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{reset, try_lock};
    use std::fs;

    #[test]
    fn a_trip_is_kept_as_its_counter_then_its_detail() {
        let cases = [
            (Trip::Hung("no answer".into()), "hung", "hung: no answer"),
            (
                Trip::BackendStuck("S3 x".into()),
                "backend-stuck",
                "backend-stuck: S3 x",
            ),
            (
                Trip::SpawnFailed("cannot run".into()),
                "spawn-failed",
                "spawn-failed: cannot run",
            ),
            (
                Trip::SccacheFailed {
                    reason: "sccache-crashed",
                    detail: String::new(),
                },
                "sccache-crashed",
                "sccache-crashed: ",
            ),
            (
                Trip::StartFailed("timeout: backend S3: slow".into()),
                "timeout",
                "timeout: backend S3: slow",
            ),
            // Words with no detail are kept as they are, with no colon added.
            (
                Trip::StartFailed("start-failed".into()),
                "start-failed",
                "start-failed",
            ),
            (
                Trip::GhaThrottled {
                    failed: 4,
                    cooldown_secs: 60,
                },
                "gha-throttled",
                "gha-throttled: GHA: 4 of sccache's writes to the GitHub Actions cache failed and \
                 none was stored (the service throttles past 200 uploads a minute); compiling \
                 directly for 60 s",
            ),
            (
                Trip::BackendErrors {
                    before: 3,
                    after: 5,
                },
                "backend-errors",
                "backend-errors: sccache error counters rose from 3 to 5 during a slow call",
            ),
        ];
        for (trip, counter, words) in cases {
            assert_eq!(trip.counter(), counter);
            assert_eq!(trip.to_string(), words);
        }
        assert_eq!(
            Trip::StartFailed("timeout: backend S3: slow".into()).detail(),
            "backend S3: slow"
        );
    }

    #[test]
    fn breaker_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let d = Some(dir.path());
        assert_eq!(read_breaker(d, "k1"), Breaker::default());
        let before = now_secs() - 1;
        let why = Trip::SccacheFailed {
            reason: "sccache-error",
            detail: "boom\nline two".into(),
        };
        trip(d, "k1", Duration::from_secs(60), why);
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
        trip(
            d,
            "k2",
            Duration::from_secs(60),
            Trip::SpawnFailed("x".into()),
        );
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
    fn breaker_changes_wait_for_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let held = try_lock(dir.path(), "breaker-k.lock").expect("the breaker's lock");
        let d = dir.path().to_owned();
        let tripping = std::thread::spawn(move || {
            let began = std::time::Instant::now();
            trip(
                Some(&d),
                "k",
                Duration::from_secs(60),
                Trip::SpawnFailed("x".into()),
            );
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
}
