//! sccache's writes to the GitHub Actions cache, watched from the calls that forward to it: a
//! write storm (the service answers 429 past 200 uploads a minute per repository) opens the
//! breaker for a short cooldown, and `status` says how many writes failed and whether they were
//! throttled. README's GHA section gives the measurement behind the policy.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::enabled_by_env;

/// How long calls compile directly once sccache's writes to the GitHub Actions cache fail: the
/// service counts its limit (200 uploads) per minute and repository.
pub const THROTTLE_COOLDOWN: Duration = Duration::from_secs(60);

/// How often a forwarded call may ask the server for its write figures: one `--show-stats` (a few
/// milliseconds) per this much time, not one per call.
const LOOK_EVERY: Duration = Duration::from_secs(5);

/// sccache's write figures at the last look, kept per server in the state dir.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Writes {
    failed: u64,
    stored: u64,
    /// When writes were last found failing (seconds since the epoch).
    throttled_at: Option<u64>,
}

fn writes_file(dir: &Path, key: &str) -> std::path::PathBuf {
    dir.join(format!("gha-writes-{key}"))
}

fn read_writes(dir: &Path, key: &str) -> Option<Writes> {
    let text = std::fs::read_to_string(writes_file(dir, key)).ok()?;
    let mut w = Writes::default();
    for line in text.lines().take(8) {
        let Some((k, v)) = line.split_once(' ') else {
            continue;
        };
        match k {
            "failed" => w.failed = v.parse().ok()?,
            "stored" => w.stored = v.parse().ok()?,
            "throttled_at" => w.throttled_at = v.parse().ok(),
            _ => {}
        }
    }
    Some(w)
}

fn write_writes(dir: &Path, key: &str, w: &Writes) {
    let mut text = format!("failed {}\nstored {}\n", w.failed, w.stored);
    if let Some(at) = w.throttled_at {
        text.push_str(&format!("throttled_at {at}\n"));
    }
    let saved = tempfile::Builder::new()
        .prefix(".gha-writes.")
        .tempfile_in(dir)
        .and_then(|mut tmp| {
            tmp.write_all(text.as_bytes())?;
            tmp.persist(writes_file(dir, key)).map_err(|e| e.error)?;
            Ok(())
        });
    if let Err(e) = saved {
        log::debug!("cannot save the GHA write figures: {e}");
    }
}

/// A new server's figures (zero failed, zero stored) with the last throttle's time.
fn write_fresh_writes(dir: &Path, key: &str, throttled_at: Option<u64>) {
    write_writes(
        dir,
        key,
        &Writes {
            throttled_at,
            ..Writes::default()
        },
    );
}

/// Forgets the write figures kept for `key` (`maybe-sccache reset`), so that `status` no longer
/// reports the last throttle and the next look counts from the server's figures alone.
pub fn forget_writes(dir: &Path, key: &str) -> std::io::Result<()> {
    match std::fs::remove_file(writes_file(dir, key)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Whether the user made sccache's GHA backend read-only (`SCCACHE_GHA_RW_MODE=READ_ONLY`, as the
/// set-up action does on pull requests): sccache 0.16 then counts a failed write per miss, which
/// is no storm.
fn read_only_by_choice() -> bool {
    super::var("SCCACHE_GHA_RW_MODE").is_some_and(|m| m.trim().eq_ignore_ascii_case("READ_ONLY"))
}

/// Whether the figures now, against those of the last look, show a write storm: writes failed
/// since and none was stored. A server with fewer failures than last time is a new one, counted
/// from zero.
fn storm(last: Option<Writes>, failed: u64, stored: u64) -> bool {
    let last = match last {
        Some(w) if w.failed <= failed && w.stored <= stored => w,
        _ => Writes::default(),
    };
    failed > last.failed && stored == last.stored
}

/// After a call sccache compiled, with the GitHub Actions cache as its backend: at most once per
/// [`LOOK_EVERY`], asks the server how its writes went. When writes failed since the last look and
/// none was stored (the service answers 429 past 200 uploads a minute, and sccache 0.16 makes each
/// compile wait for its failed upload), the breaker opens for [`THROTTLE_COOLDOWN`]: calls compile
/// directly meanwhile, which costs less than a miss through sccache whose entry cannot be kept,
/// and sends the service nothing. The half-open probe then starts a fresh server, whose start-up
/// check writes once: still throttled, sccache starts read-only, its first miss counts a failed
/// write and the breaker opens again.
///
/// `write_figures` asks the running server for its failed and stored writes (the server room
/// does that: a backend never talks to the server itself).
pub fn after_forward(
    config: &crate::config::Config,
    key: &str,
    write_figures: impl FnOnce() -> Option<(u64, u64)>,
) {
    if !enabled_by_env() || read_only_by_choice() {
        return;
    }
    let Some(dir) = config.state_dir.as_deref() else {
        return;
    };
    // `MAYBE_SCCACHE_COOLDOWN` shortens it (the tests), never lengthens it.
    let cooldown = THROTTLE_COOLDOWN.min(config.cooldown);
    if let Some(trip) = look(dir, key, cooldown, write_figures) {
        crate::state::trip(Some(dir), key, cooldown, trip);
    }
}

/// The error log the shim hands a server it starts with GHA in use, so that the start can tell a
/// write storm that is already on. It is removed when this is dropped, whatever came of the
/// start: it may hold URLs. The server writes its later errors to the unlinked file, which goes
/// with the server.
pub struct StartLog(PathBuf);

impl StartLog {
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for StartLog {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A [`StartLog`] in the state dir, or `None` when the user chose a log of their own
/// (`SCCACHE_ERROR_LOG`, or `SCCACHE_LOG`, whose level would send more than errors there), when
/// the backend is read-only by choice, or without a state dir.
pub fn start_log(config: &crate::config::Config, key: &str) -> Option<StartLog> {
    if !enabled_by_env() || read_only_by_choice() {
        return None;
    }
    if super::var("SCCACHE_ERROR_LOG").is_some() || super::var("SCCACHE_LOG").is_some() {
        return None;
    }
    let dir = config.state_dir.as_deref()?;
    Some(StartLog(dir.join(format!("sccache-errors-{key}"))))
}

/// After the shim started a server with a [`StartLog`]: when the server's start-up check had its
/// test write refused with 429 (sccache 0.10 to 0.19 log `storage write check failed:
/// RateLimited`), a write storm is on, and the breaker opens as a look would open it, before any
/// call pays a miss through sccache. `true` when it opened. Nothing of the log reaches the shim's
/// own log.
pub fn after_start(config: &crate::config::Config, key: &str, log: &StartLog) -> bool {
    let storm = throttled_at_start(log.path());
    let Some(dir) = config.state_dir.as_deref() else {
        return false;
    };
    let cooldown = THROTTLE_COOLDOWN.min(config.cooldown);
    let Some(trip) = settle_start(dir, key, storm, cooldown) else {
        return false;
    };
    log::info!("the sccache server's start-up check had its test write throttled (429)");
    crate::state::trip(Some(dir), key, cooldown, trip);
    true
}

/// [`after_start`]'s figures: a new server's start from zero, and the next look is due an
/// interval from now. `storm`: the start-up check's test write was throttled, which is kept as
/// the throttle's time and says what to trip.
fn settle_start(
    dir: &Path,
    key: &str,
    storm: bool,
    cooldown: Duration,
) -> Option<crate::state::Trip> {
    // Without a storm, the first look waits its interval like any other (sccache 0.10 to 0.19
    // make a test write at every start, an entry there or not, and this one was not
    // throttled a moment ago), so a build shorter than that asks the server nothing.
    let throttled_at = match storm {
        true => Some(crate::state::now_secs()),
        false => read_writes(dir, key).and_then(|w| w.throttled_at),
    };
    write_fresh_writes(dir, key, throttled_at);
    storm.then_some(crate::state::Trip::GhaThrottled {
        failed: 1,
        cooldown_secs: cooldown.as_secs(),
    })
}

/// Whether the server's error log says its start-up check's test write was throttled. Only the
/// first 64 KiB are read: the check is the first thing a server does.
fn throttled_at_start(log: &Path) -> bool {
    let mut text = Vec::new();
    let read = std::fs::File::open(log).and_then(|f| f.take(64 * 1024).read_to_end(&mut text));
    read.is_ok()
        && String::from_utf8_lossy(&text)
            .lines()
            .any(|l| l.contains("write check failed") && l.contains("RateLimited"))
}

/// [`after_forward`]'s look, once GHA is known to be in use: keeps the figures in `dir` and
/// says what to trip when they show a storm.
fn look(
    dir: &Path,
    key: &str,
    cooldown: Duration,
    write_figures: impl FnOnce() -> Option<(u64, u64)>,
) -> Option<crate::state::Trip> {
    let file = writes_file(dir, key);
    let fresh = std::fs::metadata(&file)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|at| at.elapsed().ok())
        .is_some_and(|age| age < LOOK_EVERY);
    if fresh {
        return None;
    }
    let last = read_writes(dir, key);
    // Claims this look before asking, so that the calls finishing meanwhile do not ask too.
    write_writes(dir, key, &last.unwrap_or_default());
    let (failed, stored) = write_figures()?;
    if !storm(last, failed, stored) {
        let throttled_at = last.and_then(|w| w.throttled_at);
        write_writes(
            dir,
            key,
            &Writes {
                failed,
                stored,
                throttled_at,
            },
        );
        return None;
    }
    // No call forwards again before the half-open probe has replaced this server with a fresh
    // one, whose figures start from zero: so do the ones kept.
    let throttled_at = Some(crate::state::now_secs());
    write_fresh_writes(dir, key, throttled_at);
    Some(crate::state::Trip::GhaThrottled {
        failed: failed - last.filter(|w| w.failed <= failed).map_or(0, |w| w.failed),
        cooldown_secs: cooldown.as_secs(),
    })
}

/// For `status`, with the GitHub Actions cache in use: whether the user made it read-only
/// (`read_only`), the running server's write figures (`failed`, `stored`; null without a server) and whether writes were throttled (`throttled`,
/// with `throttled_at`: when the shim last found them failing and compiled directly). `None`
/// when GHA is not in use.
pub fn writes_report(
    figures: Option<(u64, u64)>,
    state_dir: Option<&Path>,
    key: &str,
) -> Option<serde_json::Value> {
    if !enabled_by_env() {
        return None;
    }
    let at = state_dir
        .and_then(|d| read_writes(d, key))
        .and_then(|w| w.throttled_at);
    Some(serde_json::json!({
        "read_only": read_only_by_choice(),
        "failed": figures.map(|f| f.0),
        "stored": figures.map(|f| f.1),
        "throttled": at.is_some(),
        "throttled_at": at,
    }))
}

/// One line of `status` for [`writes_report`]'s figures.
pub fn writes_words(report: &serde_json::Value) -> String {
    let mut words = match (report["failed"].as_u64(), report["stored"].as_u64()) {
        _ if report["read_only"].as_bool() == Some(true) => {
            "none: read-only (SCCACHE_GHA_RW_MODE)".to_owned()
        }
        (Some(failed), Some(stored)) => format!("{failed} failed, {stored} stored"),
        _ => "no server to ask".to_owned(),
    };
    if let Some(at) = report["throttled_at"].as_u64() {
        let ago = crate::state::now_secs().saturating_sub(at);
        words.push_str(&format!(
            "; throttled {ago} s ago (calls then compiled directly for up to {} s)",
            THROTTLE_COOLDOWN.as_secs()
        ));
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Trip;

    /// What sccache 0.10, 0.16 and 0.19 write to their error log at a start into a write storm,
    /// and at one whose service fails reads (not a storm), as seen against the test service.
    #[test]
    fn a_throttled_test_write_in_the_start_log_is_a_storm() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("errors");
        assert!(!throttled_at_start(&log), "no log");
        let storm = "storage write check failed: RateLimited (temporary) at write => \
                     {\"code\":\"unavailable\"}\n\nContext:\n   uri: http://127.0.0.1:1/x\n";
        let read_failed = "sccache: error: cache storage failed to read: Unexpected (temporary) \
                           at read => {\"code\":\"unavailable\"}\n";
        // Neither word alone: a write refused for want of permission (a read-only token), nor a
        // throttled read, which fails the start by itself.
        let refused = "storage write check failed: PermissionDenied (persistent) at write\n";
        let read_throttled = "sccache: error: cache storage failed to read: RateLimited\n";
        for (text, expected) in [
            (storm, true),
            (read_failed, false),
            (refused, false),
            (read_throttled, false),
            ("", false),
        ] {
            std::fs::write(&log, text).unwrap();
            assert_eq!(throttled_at_start(&log), expected, "{text}");
        }
    }

    /// A start that met a storm trips and keeps the throttle's time; a clean one keeps the last
    /// throttle's time, zeroes the figures and puts the next look an interval away.
    #[test]
    fn a_start_settles_the_figures_and_the_next_look() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let trip = settle_start(d, "k", true, THROTTLE_COOLDOWN);
        assert!(matches!(
            trip,
            Some(Trip::GhaThrottled {
                failed: 1,
                cooldown_secs: 60
            })
        ));
        let at = read_writes(d, "k").unwrap().throttled_at;
        assert!(at.is_some());

        write_writes(
            d,
            "k",
            &Writes {
                failed: 7,
                stored: 2,
                throttled_at: at,
            },
        );
        assert!(settle_start(d, "k", false, THROTTLE_COOLDOWN).is_none());
        let kept = read_writes(d, "k").unwrap();
        assert_eq!(
            kept,
            Writes {
                failed: 0,
                stored: 0,
                throttled_at: at
            }
        );
        let asked = std::cell::Cell::new(false);
        let look_now = look(d, "k", THROTTLE_COOLDOWN, || {
            asked.set(true);
            Some((1, 0))
        });
        assert!(
            look_now.is_none() && !asked.get(),
            "the first look waits its interval"
        );
        age(d, "k");
        assert!(look(d, "k", THROTTLE_COOLDOWN, || Some((1, 0))).is_some());
    }

    /// The start's error log goes with the call that handed it over, whatever came of the start.
    #[test]
    fn a_start_log_is_removed_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let log = StartLog(dir.path().join("sccache-errors-k"));
        std::fs::write(log.path(), "storage write check failed: RateLimited").unwrap();
        assert!(throttled_at_start(log.path()));
        let path = log.path().to_owned();
        drop(log);
        assert!(!path.exists());
    }

    /// Makes the kept figures look older than [`LOOK_EVERY`], as the next call after a pause.
    fn age(dir: &Path, key: &str) {
        let old = std::time::SystemTime::now() - LOOK_EVERY - Duration::from_secs(1);
        std::fs::File::options()
            .write(true)
            .open(writes_file(dir, key))
            .unwrap()
            .set_modified(old)
            .unwrap();
    }

    #[test]
    fn a_look_trips_on_a_storm_keeps_its_time_and_asks_at_most_once_per_interval() {
        let dir = tempfile::tempdir().unwrap();
        let (d, key) = (dir.path(), "k");
        let cooldown = Duration::from_secs(7);

        // A healthy server (one write failed, three stored): nothing to trip, the figures are
        // kept.
        assert_eq!(look(d, key, cooldown, || Some((1, 3))), None);
        assert_eq!(
            read_writes(d, key).map(|w| (w.failed, w.stored)),
            Some((1, 3))
        );

        // Within the interval the server is not asked again, whatever it would say.
        let mut asked = false;
        let trip = look(d, key, cooldown, || {
            asked = true;
            Some((9, 3))
        });
        assert_eq!((trip, asked), (None, false));

        // Past it: two more failures and nothing stored is a storm; the trip counts the
        // failures since the last look, and the figures start again from zero with the time.
        age(d, key);
        let trip = look(d, key, cooldown, || Some((3, 3)));
        assert_eq!(
            trip,
            Some(Trip::GhaThrottled {
                failed: 2,
                cooldown_secs: 7
            })
        );
        let kept = read_writes(d, key).unwrap();
        assert_eq!((kept.failed, kept.stored), (0, 0));
        let at = kept.throttled_at.expect("the throttle's time is kept");

        // The probe's fresh server stores again: no trip, and the last throttle's time stays
        // for `status`.
        age(d, key);
        assert_eq!(look(d, key, cooldown, || Some((0, 1))), None);
        let kept = read_writes(d, key).unwrap();
        assert_eq!(
            (kept.failed, kept.stored, kept.throttled_at),
            (0, 1, Some(at))
        );

        // A server that does not answer changes nothing and trips nothing.
        age(d, key);
        assert_eq!(look(d, key, cooldown, || None), None);
        assert_eq!(read_writes(d, key).map(|w| w.stored), Some(1));
    }

    #[test]
    fn reset_forgets_the_figures() {
        let dir = tempfile::tempdir().unwrap();
        forget_writes(dir.path(), "k").unwrap();
        look(dir.path(), "k", THROTTLE_COOLDOWN, || Some((1, 0)));
        assert!(read_writes(dir.path(), "k").is_some());
        forget_writes(dir.path(), "k").unwrap();
        assert_eq!(read_writes(dir.path(), "k"), None);
        // What cannot be removed is an error: `reset` must not say it cleared it.
        std::fs::create_dir(writes_file(dir.path(), "d")).unwrap();
        assert!(forget_writes(dir.path(), "d").is_err());
    }

    #[test]
    fn status_words_for_the_figures() {
        let report = |read_only, failed: Option<u64>, at: Option<u64>| {
            serde_json::json!({
                "read_only": read_only, "failed": failed, "stored": failed.map(|_| 4),
                "throttled": at.is_some(), "throttled_at": at,
            })
        };
        assert_eq!(
            writes_words(&report(false, Some(2), None)),
            "2 failed, 4 stored"
        );
        assert_eq!(writes_words(&report(false, None, None)), "no server to ask");
        assert_eq!(
            writes_words(&report(true, Some(2), None)),
            "none: read-only (SCCACHE_GHA_RW_MODE)"
        );
        let at = crate::state::now_secs() - 30;
        let words = writes_words(&report(false, Some(2), Some(at)));
        let ago = words
            .strip_prefix("2 failed, 4 stored; throttled ")
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse::<u64>().ok());
        assert!(ago.is_some_and(|s| s >= 30), "{words}");
        assert!(words.ends_with("for up to 60 s)"), "{words}");
    }

    #[test]
    fn a_storm_is_failures_without_a_stored_write_since_the_last_look() {
        let w = |failed, stored| {
            Some(Writes {
                failed,
                stored,
                throttled_at: None,
            })
        };
        // First look at a server: any failure with nothing stored.
        assert!(storm(None, 1, 0));
        assert!(!storm(None, 0, 0));
        assert!(!storm(None, 3, 5));
        // Since the last look.
        assert!(storm(w(2, 5), 4, 5));
        // Fewer stored than last time: a new server too, whose failures are all new.
        assert!(storm(w(2, 5), 3, 0));
        assert!(!storm(w(2, 5), 2, 5));
        assert!(!storm(w(2, 5), 4, 6));
        // Fewer than last time: a new server, counted from zero.
        assert!(storm(w(9, 5), 1, 0));
        assert!(!storm(w(9, 5), 1, 1));
    }
}
