//! The watchdog of one forwarded call: a stuck call is abandoned, a long compile is not.
//!
//! A call through sccache can rightly take minutes (a big crate), so it has no deadline. What
//! tells "stuck" from "busy" is a combination of signals, gathered from a few seconds into the
//! call, every few seconds, on a thread that costs nothing to calls that end sooner:
//!
//! 1. **A compiler at work.** On Linux the sccache server is found through `/proc` (the process
//!    holding its listening socket) and its children are looked at: sccache runs the compiler as
//!    its child, so a live child means a compile is in progress, and the call is left alone,
//!    whatever else is seen. Elsewhere this signal is unknown.
//! 2. **The backend's own answer.** Every endpoint of the configured backend gets a bounded probe
//!    (an HTTP request for S3/WebDAV, `PING` for Redis, `version` for memcached).
//! 3. **sccache's error and time-out counters**, compared with their value when the watch began.
//! 4. **The server itself** must answer a statistics request (past `MAYBE_SCCACHE_SLOW_CALL`).
//!
//! The call is stuck when the server has no compiler at work and its backend fails the probe
//! (or sccache's error counters rise) on two checks in a row; with no `/proc` to look at, when
//! the backend fails three checks in a row and the call is past `MAYBE_SCCACHE_SLOW_CALL`. A
//! server that does not answer statistics past that point is hung, as before. A slow but
//! answering backend (a large download) is never called stuck.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::backend::{self, Backend};
use crate::child;
use crate::server;

/// When the watch begins (at most this far into a call) and how often it looks.
const FIRST_CHECK: Duration = Duration::from_secs(5);
const CHECK_EVERY: Duration = Duration::from_secs(3);
/// How long the server has to answer a statistics request, and a backend endpoint its probe.
const STATS_ANSWER: Duration = Duration::from_secs(10);
const PROBE_ANSWER: Duration = Duration::from_secs(2);
/// Consecutive failing checks that make a call stuck, with and without `/proc` to look at.
const STRIKES_WITH_PROC: u32 = 2;
const STRIKES_WITHOUT_PROC: u32 = 3;

/// What the watchdog and the waiting thread share. The lock orders "the call finished" against
/// "the call is declared stuck and killed", so exactly one of them happens.
#[derive(Default)]
pub struct Shared {
    pub finished: bool,
    pub stuck: Option<String>,
    /// sccache's error counters at the watchdog's first look: the baseline that tells whether
    /// errors rose while this call was slow.
    pub errors_when_watched: Option<u64>,
    /// Every look found the server's compiler at work: the call was slow because its compile was.
    /// `false` once a look found the server idle, or could not tell (no `/proc`).
    pub always_compiling: bool,
}

/// When the watchdog first looks at a call (from its start): `FIRST_CHECK`, or `slow_call` if
/// sooner. A call that ends before needs no thread at all.
pub fn first_check(slow_call: Duration) -> Duration {
    FIRST_CHECK.min(slow_call)
}

/// Watches the call whose process group `pid` leads, from [`first_check`] on. A stuck call's
/// group is killed (the waiting thread then wakes up) and the reason left in `shared`.
pub fn spawn(
    sccache: &Path,
    pid: u32,
    started: Instant,
    slow_call: Duration,
    shared: Arc<Mutex<Shared>>,
) {
    let watcher = Watcher {
        sccache: sccache.to_owned(),
        started,
        slow_call,
        server_pid: None,
        backends: None,
        errors_at_start: None,
        strikes: 0,
        idle_since: None,
    };
    let spawned = std::thread::Builder::new()
        .name("watchdog".into())
        .spawn(move || watcher.run(pid, shared));
    if let Err(e) = spawned {
        log::warn!("no watchdog for this call: {e}");
    }
}

struct Watcher {
    sccache: PathBuf,
    started: Instant,
    slow_call: Duration,
    /// The sccache server's pid, once found (Linux).
    server_pid: Option<u32>,
    /// The backends, read on the first check (never on the hot path).
    backends: Option<Vec<Backend>>,
    errors_at_start: Option<u64>,
    strikes: u32,
    idle_since: Option<Instant>,
}

/// One look at the call.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Observation {
    /// `Some(true)`: the server has a compiler child alive; `None`: cannot tell here.
    pub compiler_at_work: Option<bool>,
    /// `None` when the server did not answer its statistics request.
    pub errors: Option<u64>,
    /// `Some(words)` when every endpoint of the backend failed its probe; `None` when it
    /// answered or there was nothing to probe.
    pub backend_failing: Option<String>,
}

/// What a check concluded.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Fine,
    Suspect,
    Stuck(String),
}

impl Watcher {
    fn run(mut self, pid: u32, shared: Arc<Mutex<Shared>>) {
        let mut next = self.started + first_check(self.slow_call);
        loop {
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
            if shared.lock().map_or(true, |s| s.finished) {
                return;
            }
            let obs = self.observe();
            let verdict = self.judge(&obs);
            if let Ok(mut s) = shared.lock() {
                if s.errors_when_watched.is_none() {
                    s.errors_when_watched = self.errors_at_start;
                    s.always_compiling = true;
                }
                s.always_compiling &= obs.compiler_at_work == Some(true);
            }
            log::debug!(
                "watchdog {} s into the call: {obs:?} -> {verdict:?}",
                self.started.elapsed().as_secs()
            );
            if let Verdict::Stuck(why) = verdict {
                let mut s = shared.lock().unwrap_or_else(|e| e.into_inner());
                if s.finished {
                    return;
                }
                s.stuck = Some(why);
                child::kill_group(pid);
                return;
            }
            next = Instant::now() + CHECK_EVERY;
        }
    }

    fn observe(&mut self) -> Observation {
        if self.server_pid.is_none() {
            self.server_pid = server::server_pid();
        }
        let compiler_at_work = self.server_pid.and_then(proc::has_live_child);
        if compiler_at_work == Some(true) {
            // Nothing else matters while a compile runs: skip the requests, except the first
            // look's statistics, the error baseline of this call.
            if self.errors_at_start.is_none() {
                self.errors_at_start = server::error_total(&self.sccache, STATS_ANSWER);
            }
            return Observation {
                compiler_at_work,
                ..Observation::default()
            };
        }
        let errors = server::error_total(&self.sccache, STATS_ANSWER);
        let backends = self.backends.get_or_insert_with(backend::detect);
        let answers = backend::probe_all(backends, PROBE_ANSWER);
        let backend_failing = backends.iter().zip(&answers).find_map(|(b, a)| {
            (!a.is_empty() && a.iter().all(backend::Answer::is_failing))
                .then(|| format!("{} {}", b.describe(), a[0].words()))
        });
        Observation {
            compiler_at_work,
            errors,
            backend_failing,
        }
    }

    fn judge(&mut self, obs: &Observation) -> Verdict {
        let elapsed = self.started.elapsed();
        if obs.compiler_at_work == Some(true) {
            self.strikes = 0;
            self.idle_since = None;
            return Verdict::Fine;
        }
        let idle_since = *self.idle_since.get_or_insert_with(Instant::now);
        let Some(errors) = obs.errors else {
            if elapsed < self.slow_call {
                return Verdict::Suspect;
            }
            return Verdict::Stuck(format!(
                "hung: sccache did not answer a statistics request within {} s, {} s into a call",
                STATS_ANSWER.as_secs(),
                elapsed.as_secs()
            ));
        };
        let baseline = *self.errors_at_start.get_or_insert(errors);
        let errors_rose = errors > baseline;
        let with_proc = obs.compiler_at_work.is_some();
        let failing = match (&obs.backend_failing, errors_rose && with_proc) {
            (Some(words), _) => Some(words.clone()),
            (None, true) => Some(format!(
                "sccache's error counters rose from {baseline} to {errors}{}",
                self.backends
                    .as_ref()
                    .and_then(|b| b.first())
                    .map(|b| format!(" (backend {})", b.describe()))
                    .unwrap_or_default()
            )),
            (None, false) => None,
        };
        let Some(failing) = failing else {
            self.strikes = 0;
            return Verdict::Fine;
        };
        self.strikes += 1;
        let (needed, ready) = if with_proc {
            (STRIKES_WITH_PROC, true)
        } else {
            (STRIKES_WITHOUT_PROC, elapsed >= self.slow_call)
        };
        if self.strikes < needed || !ready {
            return Verdict::Suspect;
        }
        let server = if with_proc {
            format!(
                "no compiler at work in the sccache server for {} s",
                idle_since.elapsed().as_secs()
            )
        } else {
            "the sccache server's children cannot be seen here".to_owned()
        };
        Verdict::Stuck(format!(
            "backend-stuck: {failing}; {server} of a {} s call",
            elapsed.as_secs()
        ))
    }
}

/// The sccache server's children as `/proc` shows them (Linux); elsewhere nothing is known.
mod proc {
    #[cfg(target_os = "linux")]
    pub use linux::has_live_child;

    #[cfg(not(target_os = "linux"))]
    pub fn has_live_child(_pid: u32) -> Option<bool> {
        None
    }

    #[cfg(target_os = "linux")]
    mod linux {
        use std::fs;

        /// Whether `pid` has a child that is not a zombie: a compiler at work. `None` when
        /// `pid` is gone.
        pub fn has_live_child(pid: u32) -> Option<bool> {
            if fs::metadata(format!("/proc/{pid}")).is_err() {
                return None;
            }
            // /proc/PID/task/*/children needs CONFIG_PROC_CHILDREN; every process's stat is
            // always there.
            for entry in fs::read_dir("/proc").ok()?.flatten() {
                let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
                    continue;
                };
                let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
                    continue;
                };
                let mut f = after.split_whitespace();
                let (Some(state), Some(ppid)) = (f.next(), f.next()) else {
                    continue;
                };
                if ppid.parse::<u32>() == Ok(pid) && !matches!(state, "Z" | "X" | "x") {
                    return Some(true);
                }
            }
            Some(false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watcher(slow_call: u64) -> Watcher {
        Watcher {
            sccache: PathBuf::from("sccache"),
            started: Instant::now() - Duration::from_secs(30),
            slow_call: Duration::from_secs(slow_call),
            server_pid: None,
            backends: None,
            errors_at_start: None,
            strikes: 0,
            idle_since: None,
        }
    }

    fn obs(at_work: Option<bool>, errors: Option<u64>, failing: bool) -> Observation {
        Observation {
            compiler_at_work: at_work,
            errors,
            backend_failing: failing.then(|| "S3 at http://h:1 (x) does not answer".into()),
        }
    }

    #[test]
    fn a_running_compiler_is_never_stuck() {
        let mut w = watcher(20);
        for _ in 0..10 {
            assert_eq!(w.judge(&obs(Some(true), None, true)), Verdict::Fine);
        }
    }

    #[test]
    fn an_idle_server_with_a_failing_backend_is_stuck_on_the_second_look() {
        let mut w = watcher(20);
        assert_eq!(w.judge(&obs(Some(false), Some(0), true)), Verdict::Suspect);
        match w.judge(&obs(Some(false), Some(0), true)) {
            Verdict::Stuck(why) => assert!(why.starts_with("backend-stuck: S3"), "{why}"),
            v => panic!("{v:?}"),
        }
        // An answering backend resets the count.
        let mut w = watcher(20);
        assert_eq!(w.judge(&obs(Some(false), Some(0), true)), Verdict::Suspect);
        assert_eq!(w.judge(&obs(Some(false), Some(0), false)), Verdict::Fine);
        assert_eq!(w.judge(&obs(Some(false), Some(0), true)), Verdict::Suspect);
    }

    #[test]
    fn rising_errors_count_only_with_an_idle_server() {
        let mut w = watcher(20);
        assert_eq!(w.judge(&obs(Some(false), Some(3), false)), Verdict::Fine);
        assert_eq!(w.judge(&obs(Some(false), Some(4), false)), Verdict::Suspect);
        assert!(matches!(
            w.judge(&obs(Some(false), Some(5), false)),
            Verdict::Stuck(_)
        ));
        let mut w = watcher(20);
        assert_eq!(w.judge(&obs(None, Some(3), false)), Verdict::Fine);
        assert_eq!(w.judge(&obs(None, Some(9), false)), Verdict::Fine);
    }

    #[test]
    fn without_proc_three_failing_looks_past_the_slow_call_mark() {
        let mut w = watcher(20);
        assert_eq!(w.judge(&obs(None, Some(0), true)), Verdict::Suspect);
        assert_eq!(w.judge(&obs(None, Some(0), true)), Verdict::Suspect);
        assert!(matches!(
            w.judge(&obs(None, Some(0), true)),
            Verdict::Stuck(_)
        ));
        let mut w = watcher(60);
        for _ in 0..5 {
            assert_eq!(w.judge(&obs(None, Some(0), true)), Verdict::Suspect);
        }
    }

    #[test]
    fn a_silent_server_is_hung_only_past_the_slow_call_mark() {
        let mut w = watcher(60);
        assert_eq!(w.judge(&obs(Some(false), None, false)), Verdict::Suspect);
        let mut w = watcher(20);
        assert!(matches!(
            w.judge(&obs(Some(false), None, false)),
            Verdict::Stuck(why) if why.starts_with("hung:")
        ));
    }
}
