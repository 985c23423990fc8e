//! The watchdog of one forwarded call: a stuck call is abandoned, a long compile is not.
//!
//! A call through sccache can rightly take minutes (a big crate), so it has no deadline. What
//! tells "stuck" from "busy" is a combination of signals, gathered from a few seconds into the
//! call, every few seconds, on a thread that costs nothing to calls that end sooner:
//!
//! 1. **A compiler at work.** On Linux the sccache server is found through `/proc` (the process
//!    holding its listening socket) and its children are looked at: sccache runs the compiler as
//!    its child, so a live child means a compile is in progress, and the call is left alone,
//!    whatever else is seen. Elsewhere this signal is unknown. Under sccache-dist a remote
//!    compile counts too while its build server answers a probe (`watch/dist.rs`).
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
use crate::server;
use crate::state::Trip;

/// When the watch begins (at most this far into a call) and how often it looks.
const FIRST_CHECK: Duration = Duration::from_secs(5);
const CHECK_EVERY: Duration = Duration::from_secs(3);
/// How long the server has to answer a statistics request, and a backend endpoint its probe.
const STATS_ANSWER: Duration = Duration::from_secs(10);
const PROBE_ANSWER: Duration = Duration::from_secs(2);
/// Consecutive failing checks that make a call stuck, with and without `/proc` to look at.
const STRIKES_WITH_PROC: u32 = 2;
const STRIKES_WITHOUT_PROC: u32 = 3;
/// How long a server with no compiler at work may keep a call waiting when its backend's probe
/// gives no verdict (a backend the shim cannot probe, a proxy, a server started with another
/// environment), and when the backend definitely answers. An idle server is waiting on its
/// backend, or on nothing: with the first look at 5 s and a look every 3 s, a black-holed
/// backend costs at most about 5 + 25 + 3 s before the call is abandoned, within the 35 s the
/// product allows over a plain build.
const IDLE_LIMIT: Duration = Duration::from_secs(20);
const IDLE_LIMIT_ANSWERING: Duration = Duration::from_secs(25);

/// What the watchdog and the waiting thread share. The lock orders "the call finished" against
/// "the call is declared stuck and killed", so exactly one of them happens.
#[derive(Default)]
pub struct Shared {
    pub finished: bool,
    pub stuck: Option<Trip>,
    /// What the looks saw, from the first that had sccache's error counters on.
    pub watched: Option<Watched>,
}

/// What the watchdog saw of a slow call, for the verdict after it ([`after_slow_call`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watched {
    /// sccache's error counters at the watchdog's first look that had them: the baseline that
    /// tells whether errors rose while this call was slow.
    pub errors_before: u64,
    /// Every look since found the server's compiler at work: the call was slow because its
    /// compile was. `false` once a look found the server idle, or could not tell (no `/proc`).
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
    compiler: &std::ffi::OsStr,
    pid: u32,
    started: Instant,
    slow_call: Duration,
    shared: Arc<Mutex<Shared>>,
) {
    let watcher = Watcher {
        sccache: sccache.to_owned(),
        started,
        slow_call,
        call: pid,
        compiler: proc::comm_of(compiler),
        backends: None,
        errors_at_start: None,
        strikes: 0,
        idle_since: None,
        remotes: dist::Remotes::default(),
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
    /// The process group of the call (the sccache client leads it).
    call: u32,
    /// The name `/proc` gives the call's compiler (its `comm`): a process of that name in the
    /// call's group is a compile the sccache client runs itself.
    compiler: String,
    /// The backends, read on the first check (never on the hot path).
    backends: Option<Vec<Backend>>,
    errors_at_start: Option<u64>,
    strikes: u32,
    idle_since: Option<Instant>,
    /// What the looks at sccache-dist's build servers keep (`dist.rs`): the scheduler's place,
    /// the server's CPU time.
    remotes: dist::Remotes,
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
    /// Some endpoint of the backend definitely answered its probe.
    pub backend_answers: bool,
    /// The server's statistics show distributed compiles (sccache-dist): a compile at work may
    /// run on another machine, with no local compiler to see.
    pub distributing: bool,
    /// What the server's connections to sccache-dist build servers say (`dist.rs`).
    pub remote: Remote,
}

impl Observation {
    /// A look that found a compile at work, and so asked nothing else.
    fn busy() -> Observation {
        Observation {
            compiler_at_work: Some(true),
            ..Observation::default()
        }
    }

    /// A compile is at work: a local compiler, a remote one whose build server answers, or the
    /// server preparing a remote one.
    fn at_work(&self) -> bool {
        self.compiler_at_work == Some(true) || self.remote.is_work()
    }
}

/// What a check concluded.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Fine,
    Suspect,
    /// Abandon the call: [`Trip::Hung`] or [`Trip::BackendStuck`].
    Stuck(Trip),
}

impl Watcher {
    fn run(mut self, pid: u32, shared: Arc<Mutex<Shared>>) {
        debug_assert_eq!(pid, self.call);
        let mut next = self.started + first_check(self.slow_call);
        loop {
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
            if self.look(&mut Live, &shared, end::abandon) {
                return;
            }
            next = Instant::now() + CHECK_EVERY;
        }
    }

    /// One turn of the watch: look, judge, and on a stuck verdict `abandon` the call (which
    /// says whether it did). Returns whether the watch is over: the call finished, or was
    /// abandoned. Every decision of the watchdog's thread is here, apart from its sleeps.
    fn look(
        &mut self,
        facts: &mut impl Facts,
        shared: &Mutex<Shared>,
        abandon: impl FnOnce(u32, &str) -> bool,
    ) -> bool {
        if shared.lock().map_or(true, |s| s.finished) {
            return true;
        }
        let obs = self.observe(facts);
        let verdict = self.judge(&obs);
        if let Ok(mut s) = shared.lock() {
            if s.watched.is_none() {
                s.watched = self.errors_at_start.map(|errors_before| Watched {
                    errors_before,
                    always_compiling: true,
                });
            }
            if let Some(watched) = &mut s.watched {
                watched.always_compiling &= obs.at_work();
            }
        }
        log::debug!(
            "watchdog {} s into the call: {obs:?} -> {verdict:?}",
            self.started.elapsed().as_secs()
        );
        let Verdict::Stuck(why) = verdict else {
            return false;
        };
        let mut s = shared.lock().unwrap_or_else(|e| e.into_inner());
        if s.finished {
            return true;
        }
        // The lock is held until every process of the call and of the server is gone, so the
        // waiting thread compiles directly only after that.
        if abandon(self.call, &self.compiler) {
            log::warn!("abandoning the call: {why}");
            s.stuck = Some(why);
            return true;
        }
        log::debug!("watchdog: a compile started just before the kill; left alone");
        self.strikes = 0;
        self.idle_since = None;
        false
    }

    /// One look at the call, asking `facts` only what the look needs: a compile at work (local,
    /// or remote with its build server answering) makes every further request moot.
    fn observe(&mut self, facts: &mut impl Facts) -> Observation {
        // The server is looked up afresh at every look: a pid kept from an earlier one may
        // belong to another process by now.
        let server = facts.server();
        let compiler_at_work = facts.compile_at_work(server, self.call, &self.compiler);
        if compiler_at_work == Some(true) {
            // Nothing else matters while a compile runs: skip the requests, except the first
            // look's statistics, the error baseline of this call.
            if self.errors_at_start.is_none() {
                self.errors_at_start = facts.error_total(&self.sccache);
            }
            return Observation::busy();
        }
        let stats = facts.stats(&self.sccache);
        let errors = stats.as_ref().map(|s| s.errors);
        let distributing = stats.as_ref().is_some_and(server::Stats::distributes);
        let backends = self.backends.get_or_insert_with(|| {
            facts.backends(stats.as_ref().and_then(|s| s.cache_location.as_deref()))
        });
        let remote = match compiler_at_work {
            Some(false) => facts.remote(&mut self.remotes, server, distributing, backends),
            _ => Remote::Unknown,
        };
        let (backend_failing, backend_answers) = if remote.is_work() {
            // A remote compile at work: as with a local one, the backend is not probed.
            self.errors_at_start = self.errors_at_start.or(errors);
            (None, false)
        } else {
            read_probes(backends, &facts.probe(backends))
        };
        Observation {
            compiler_at_work,
            errors,
            backend_failing,
            backend_answers,
            distributing,
            remote,
        }
    }

    fn judge(&mut self, obs: &Observation) -> Verdict {
        self.judge_at(obs, Instant::now())
    }

    /// [`Watcher::judge`] at the instant `now`, so that tests can stand on a limit exactly.
    fn judge_at(&mut self, obs: &Observation, now: Instant) -> Verdict {
        let elapsed = now.saturating_duration_since(self.started);
        if obs.at_work() {
            self.strikes = 0;
            self.idle_since = None;
            return Verdict::Fine;
        }
        let idle_since = *self.idle_since.get_or_insert(now);
        let Some(errors) = obs.errors else {
            if elapsed < self.slow_call {
                return Verdict::Suspect;
            }
            return Verdict::Stuck(Trip::Hung(format!(
                "sccache did not answer a statistics request within {} s, {} s into a call",
                STATS_ANSWER.as_secs(),
                elapsed.as_secs()
            )));
        };
        let baseline = *self.errors_at_start.get_or_insert(errors);
        let errors_rose = errors > baseline;
        let with_proc = obs.compiler_at_work.is_some();
        let failing = match (&obs.backend_failing, errors_rose && with_proc) {
            (Some(words), _) => Some(words.clone()),
            (None, true) => Some(format!(
                "sccache's error counters rose from {baseline} to {errors}{}",
                self.backend_named()
            )),
            (None, false) => None,
        };
        let Some(failing) = failing else {
            self.strikes = 0;
            return self.judge_idle(obs, now.saturating_duration_since(idle_since), elapsed);
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
                now.saturating_duration_since(idle_since).as_secs()
            )
        } else {
            "the sccache server's children cannot be seen here".to_owned()
        };
        Verdict::Stuck(Trip::BackendStuck(format!(
            "{failing}; {server} of a {} s call",
            elapsed.as_secs()
        )))
    }

    /// A server seen idle, whose backend is not seen failing: no answer from the probe is no
    /// reason to wait forever, so past a bounded idle time the call is stuck whatever the probe
    /// says. A backend that definitely answers earns a little more patience (a large download),
    /// within a bound too. Where the server's children cannot be seen, idleness is unknown and
    /// this never applies.
    fn judge_idle(&self, obs: &Observation, idle: Duration, elapsed: Duration) -> Verdict {
        if obs.compiler_at_work != Some(false) {
            return Verdict::Fine;
        }
        // Under sccache-dist a compile at work may run on another machine, with no local
        // compiler. Its build server's answer tells (`dist.rs`); where the server's connections
        // cannot be read, a server whose statistics show remote compiles is never called idle.
        if obs.distributing && obs.remote == Remote::Unknown {
            return Verdict::Fine;
        }
        if let Remote::Failing(words) = &obs.remote {
            return self.judge_remote(words, idle, elapsed);
        }
        let limit = if obs.backend_answers {
            IDLE_LIMIT_ANSWERING
        } else {
            IDLE_LIMIT
        };
        if idle < limit {
            return Verdict::Suspect;
        }
        let probe = if obs.backend_answers {
            "answers its probe"
        } else {
            "gave no verdict"
        };
        Verdict::Stuck(Trip::BackendStuck(format!(
            "no compiler at work in the sccache server for {} s of a {} s call; the backend{} \
             {probe}",
            idle.as_secs(),
            elapsed.as_secs(),
            self.backend_named()
        )))
    }

    /// A server with no compiler at work that waits on build servers none of which answers: stuck
    /// past the idle limit, like a server waiting on nothing.
    fn judge_remote(&self, words: &str, idle: Duration, elapsed: Duration) -> Verdict {
        if idle < IDLE_LIMIT {
            return Verdict::Suspect;
        }
        Verdict::Stuck(Trip::DistStuck(format!(
            "{words}; no compiler at work in the sccache server for {} s of a {} s call",
            idle.as_secs(),
            elapsed.as_secs()
        )))
    }

    /// ` (backend <first backend>)`, or nothing when none was detected.
    fn backend_named(&self) -> String {
        self.backends
            .as_ref()
            .and_then(|b| b.first())
            .map(|b| format!(" ({})", b.describe()))
            .unwrap_or_default()
    }
}

/// Where a look gets its facts: `/proc`, the sccache server and the backend's endpoints
/// ([`Live`]); tests answer with plain values. Every request costs a busy server time, so which
/// of these a look asks is part of what [`Watcher::observe`] decides.
trait Facts {
    /// The pid of the server listening at this call's address.
    fn server(&mut self) -> Option<u32>;
    /// Whether a compiler of the server or of the call is alive; `None`: cannot tell here.
    fn compile_at_work(&mut self, server: Option<u32>, call: u32, compiler: &str) -> Option<bool>;
    /// The sum of the server's error counters; `None` when it did not answer.
    fn error_total(&mut self, sccache: &Path) -> Option<u64>;
    /// The server's statistics; `None` when it did not answer.
    fn stats(&mut self, sccache: &Path) -> Option<server::Stats>;
    /// The backends to probe: the caller's, or else the one the server's statistics name.
    fn backends(&mut self, cache_location: Option<&str>) -> Vec<Backend>;
    /// What the server's connections to sccache-dist build servers say (`dist.rs`).
    fn remote(
        &mut self,
        remotes: &mut dist::Remotes,
        server: Option<u32>,
        distributing: bool,
        backends: &[Backend],
    ) -> Remote;
    /// Every endpoint of every backend, probed at once.
    fn probe(&mut self, backends: &[Backend]) -> Vec<Vec<backend::Answer>>;
}

/// The facts of this machine, each asked within its deadline.
struct Live;

impl Facts for Live {
    fn server(&mut self) -> Option<u32> {
        server::server_pid()
    }

    fn compile_at_work(&mut self, server: Option<u32>, call: u32, compiler: &str) -> Option<bool> {
        proc::compile_at_work(server, call, compiler)
    }

    fn error_total(&mut self, sccache: &Path) -> Option<u64> {
        server::error_total(sccache, STATS_ANSWER)
    }

    fn stats(&mut self, sccache: &Path) -> Option<server::Stats> {
        server::stats(sccache, STATS_ANSWER)
    }

    fn backends(&mut self, cache_location: Option<&str>) -> Vec<Backend> {
        backend::detect_or_served(cache_location)
    }

    fn remote(
        &mut self,
        remotes: &mut dist::Remotes,
        server: Option<u32>,
        distributing: bool,
        backends: &[Backend],
    ) -> Remote {
        remotes.look(server, distributing, backends, PROBE_ANSWER)
    }

    fn probe(&mut self, backends: &[Backend]) -> Vec<Vec<backend::Answer>> {
        backend::probe_all(backends, PROBE_ANSWER)
    }
}

/// What the probes of `backends` say: the first backend whose every endpoint failed, in words
/// (none when any endpoint answered, or there was nothing to probe), and whether any endpoint
/// definitely answered.
fn read_probes(backends: &[Backend], answers: &[Vec<backend::Answer>]) -> (Option<String>, bool) {
    let failing = backends.iter().zip(answers).find_map(|(b, a)| {
        (!a.is_empty() && a.iter().all(backend::Answer::is_failing))
            .then(|| format!("{} {}", b.describe(), a[0].words()))
    });
    let answering = answers
        .iter()
        .flatten()
        .any(|a| matches!(a, backend::Answer::Answers));
    (failing, answering)
}

/// The verdict after a slow call: did sccache's errors rise because its backend failed?
mod after;
pub use after::after_slow_call;

/// Ending a stuck call so that no compiler of it is left running beside the direct compile.
mod end;

/// The processes `/proc` shows (Linux); elsewhere nothing is known.
mod proc;

/// Remote compiles under sccache-dist: the build servers the server waits on, and their answer.
mod dist;
pub use dist::Remote;

#[cfg(test)]
mod tests;
