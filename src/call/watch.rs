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
}

impl Observation {
    /// A look that found a compile at work, and so asked nothing else.
    fn busy() -> Observation {
        Observation {
            compiler_at_work: Some(true),
            ..Observation::default()
        }
    }
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
                // The lock is held until every process of the call and of the server is gone,
                // so the waiting thread compiles directly only after that.
                if end::abandon(pid, &self.compiler) {
                    log::warn!("abandoning the call: {why}");
                    s.stuck = Some(why);
                    return;
                }
                log::debug!("watchdog: a compile started just before the kill; left alone");
                self.strikes = 0;
                self.idle_since = None;
            }
            next = Instant::now() + CHECK_EVERY;
        }
    }

    fn observe(&mut self) -> Observation {
        // The server is looked up afresh at every look: a pid kept from an earlier one may
        // belong to another process by now.
        let compiler_at_work =
            proc::compile_at_work(server::server_pid(), self.call, &self.compiler);
        if compiler_at_work == Some(true) {
            // Nothing else matters while a compile runs: skip the requests, except the first
            // look's statistics, the error baseline of this call.
            if self.errors_at_start.is_none() {
                self.errors_at_start = server::error_total(&self.sccache, STATS_ANSWER);
            }
            return Observation::busy();
        }
        let stats = server::stats(&self.sccache, STATS_ANSWER);
        let errors = stats.as_ref().and_then(server::errors_in);
        let distributing = stats.as_ref().is_some_and(server::distributes);
        let backends = self.backends.get_or_insert_with(backend::detect);
        let answers = backend::probe_all(backends, PROBE_ANSWER);
        let (backend_failing, backend_answers) = read_probes(backends, &answers);
        Observation {
            compiler_at_work,
            errors,
            backend_failing,
            backend_answers,
            distributing,
        }
    }

    fn judge(&mut self, obs: &Observation) -> Verdict {
        self.judge_at(obs, Instant::now())
    }

    /// [`Watcher::judge`] at the instant `now`, so that tests can stand on a limit exactly.
    fn judge_at(&mut self, obs: &Observation, now: Instant) -> Verdict {
        let elapsed = now.saturating_duration_since(self.started);
        if obs.compiler_at_work == Some(true) {
            self.strikes = 0;
            self.idle_since = None;
            return Verdict::Fine;
        }
        let idle_since = *self.idle_since.get_or_insert(now);
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
        Verdict::Stuck(format!(
            "backend-stuck: {failing}; {server} of a {} s call",
            elapsed.as_secs()
        ))
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
        // compiler: a server whose statistics show distributed compiles is never called idle.
        // The first remote compile of a fresh server is not yet in those statistics; telling it
        // apart needs the server's in-progress requests (see `server::distributes`).
        if obs.distributing {
            return Verdict::Fine;
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
        Verdict::Stuck(format!(
            "backend-stuck: no compiler at work in the sccache server for {} s of a {} s call; \
             the backend{} {probe}",
            idle.as_secs(),
            elapsed.as_secs(),
            self.backend_named()
        ))
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

/// Ending a stuck call so that no compiler of it is left running beside the direct compile.
mod end {
    #[cfg(target_os = "linux")]
    pub use linux::abandon;

    /// Kills the call's process group; the server's children cannot be seen here.
    #[cfg(not(target_os = "linux"))]
    pub fn abandon(call: u32, _compiler: &str) -> bool {
        crate::child::kill_group(call);
        true
    }

    #[cfg(target_os = "linux")]
    mod linux {
        use std::time::{Duration, Instant};

        use super::super::proc;
        use crate::server;

        /// How long the processes killed get to be gone.
        const GONE_WITHIN: Duration = Duration::from_secs(5);

        /// Freezes the call's process group and the server, looks for work once more, and
        /// then either lets both go on (a compile started since the last look: `false`) or
        /// kills the server's compilers, the server and the call's group, and waits until they
        /// are gone (`true`). Frozen, neither can start a compiler between the look and the
        /// kill, and a frozen parent cannot reap its children, so their pids stay theirs.
        pub fn abandon(call: u32, compiler: &str) -> bool {
            let group = -(call as libc::pid_t);
            // SAFETY: signalling the process group the shim made for this call.
            unsafe { libc::kill(group, libc::SIGSTOP) };
            let server = Pinned::server();
            if let Some(s) = &server {
                s.signal(libc::SIGSTOP);
            }
            let server_pid = server.as_ref().map(|s| s.pid);
            if proc::compile_at_work(server_pid, call, compiler) == Some(true) {
                if let Some(s) = &server {
                    s.signal(libc::SIGCONT);
                }
                // SAFETY: as above.
                unsafe { libc::kill(group, libc::SIGCONT) };
                return false;
            }
            let mut doomed = Vec::new();
            if let Some(table) = proc::Table::read() {
                if let Some(pid) = server_pid {
                    doomed.extend(table.descendants(pid));
                }
                doomed.extend(table.group(call, server_pid));
            }
            for &pid in &doomed {
                // SAFETY: a descendant of the frozen server or a member of the frozen call's
                // group: its parent is frozen, so the pid cannot have been reused.
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            }
            // SAFETY: as above.
            unsafe { libc::kill(group, libc::SIGKILL) };
            if let Some(s) = &server {
                s.signal(libc::SIGKILL);
                doomed.push(s.pid);
            }
            let deadline = Instant::now() + GONE_WITHIN;
            while doomed.iter().any(|&p| proc::is_live(p)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            true
        }

        /// The server, held by a pidfd where the kernel has them (Linux 5.3), so that signals
        /// reach the process that was checked and no other.
        struct Pinned {
            pid: u32,
            fd: Option<std::os::fd::OwnedFd>,
        }

        impl Pinned {
            fn server() -> Option<Pinned> {
                use std::os::fd::FromRawFd;
                let pid = server::server_pid()?;
                // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
                let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
                let fd = (fd >= 0).then(|| {
                    // SAFETY: a fresh descriptor that nothing else owns.
                    unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as libc::c_int) }
                });
                // The pid may have changed hands between the lookup and the pidfd: the
                // listener is looked up again, now that the pidfd holds the process.
                if server::server_pid() != Some(pid) {
                    return None;
                }
                Some(Pinned { pid, fd })
            }

            fn signal(&self, sig: libc::c_int) {
                use std::os::fd::AsRawFd;
                if let Some(fd) = &self.fd {
                    // SAFETY: pidfd_send_signal with a pidfd owned here and no siginfo.
                    let r = unsafe {
                        libc::syscall(
                            libc::SYS_pidfd_send_signal,
                            fd.as_raw_fd(),
                            sig,
                            std::ptr::null::<libc::siginfo_t>(),
                            0,
                        )
                    };
                    if r == 0 {
                        return;
                    }
                }
                // SAFETY: a plain kill(2) of the sccache server found listening just before.
                unsafe { libc::kill(self.pid as libc::pid_t, sig) };
            }
        }
    }
}

/// The processes `/proc` shows (Linux); elsewhere nothing is known.
mod proc {
    /// Whether a compile of this call is at work: a live child of the server, or a live member
    /// of the call's own process group besides its leader, the sccache client (a compile the
    /// client runs itself after losing its server), the server and its children excepted.
    /// `None` when the server cannot be found and nothing else is seen.
    pub fn compile_at_work(server: Option<u32>, call: u32, compiler: &str) -> Option<bool> {
        let table = Table::read()?;
        work_in(&table, server, call, compiler)
    }

    pub(super) fn work_in(
        table: &Table,
        server: Option<u32>,
        call: u32,
        compiler: &str,
    ) -> Option<bool> {
        let server = server.filter(|&s| table.has(s));
        let mut group = table.group(call, server);
        if group.any(|pid| table.comm(pid) == Some(compiler)) {
            return Some(true);
        }
        let server = server?;
        Some(table.has_live_child(server))
    }

    /// What `/proc/PID/stat` calls a process running `program`: its file name, cut to the 15
    /// bytes the kernel keeps.
    pub fn comm_of(program: &std::ffi::OsStr) -> String {
        let name = std::path::Path::new(program)
            .file_name()
            .unwrap_or(program)
            .as_encoded_bytes();
        String::from_utf8_lossy(&name[..name.len().min(15)]).into_owned()
    }

    /// Whether `pid` exists and is not a zombie.
    #[cfg(target_os = "linux")]
    pub fn is_live(pid: u32) -> bool {
        Table::read().is_some_and(|t| t.has(pid))
    }

    /// One process: pid, parent, process group, and whether it is alive (not a zombie).
    #[derive(Debug, Clone)]
    pub struct Entry {
        pub comm: String,
        pub pid: u32,
        pub ppid: u32,
        pub pgrp: u32,
        pub live: bool,
    }

    pub struct Table(pub Vec<Entry>);

    impl Table {
        #[cfg(target_os = "linux")]
        pub fn read() -> Option<Table> {
            let mut entries = Vec::new();
            // /proc/PID/task/*/children needs CONFIG_PROC_CHILDREN; every process's stat is
            // always there.
            for entry in std::fs::read_dir("/proc").ok()?.flatten() {
                let Some(pid) = entry.file_name().to_str().and_then(|p| p.parse().ok()) else {
                    continue;
                };
                let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                    continue;
                };
                if let Some(e) = parse_stat(pid, &stat) {
                    entries.push(e);
                }
            }
            Some(Table(entries))
        }

        #[cfg(not(target_os = "linux"))]
        pub fn read() -> Option<Table> {
            None
        }

        pub fn comm(&self, pid: u32) -> Option<&str> {
            self.0
                .iter()
                .find(|e| e.pid == pid)
                .map(|e| e.comm.as_str())
        }

        pub fn has(&self, pid: u32) -> bool {
            self.0.iter().any(|e| e.pid == pid && e.live)
        }

        pub fn has_live_child(&self, pid: u32) -> bool {
            self.0.iter().any(|e| e.ppid == pid && e.live)
        }

        /// Live descendants of `root`, parents before children.
        pub fn descendants(&self, root: u32) -> Vec<u32> {
            let mut found = vec![root];
            let mut i = 0;
            while i < found.len() {
                let parent = found[i];
                found.extend(
                    self.0
                        .iter()
                        .filter(|e| e.ppid == parent && e.live && !found.contains(&e.pid))
                        .map(|e| e.pid)
                        .collect::<Vec<_>>(),
                );
                i += 1;
            }
            found.remove(0);
            found
        }

        /// Live members of the call's process group other than its leader, and other than the
        /// sccache server (which a client that started it may have left in the group) and the
        /// server's children.
        pub fn group(&self, call: u32, server: Option<u32>) -> impl Iterator<Item = u32> + '_ {
            let mut theirs = server.map_or_else(Vec::new, |s| self.descendants(s));
            theirs.extend(server);
            self.0
                .iter()
                .filter(move |e| {
                    e.pgrp == call && e.pid != call && e.live && !theirs.contains(&e.pid)
                })
                .map(|e| e.pid)
        }
    }

    /// Reads `/proc/PID/stat`: `pid (comm) state ppid pgrp …`, where comm may hold anything.
    pub fn parse_stat(pid: u32, stat: &str) -> Option<Entry> {
        let open = stat.find('(')?;
        let close = stat.rfind(')')?;
        let comm = stat.get(open + 1..close)?.to_owned();
        let after = &stat[close + 1..];
        let mut f = after.split_whitespace();
        let state = f.next()?;
        let ppid = f.next()?.parse().ok()?;
        let pgrp = f.next()?.parse().ok()?;
        Some(Entry {
            comm,
            pid,
            ppid,
            pgrp,
            live: !matches!(state, "Z" | "X" | "x"),
        })
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
            call: 1,
            compiler: "rustc".into(),
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
            ..Observation::default()
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
        // A backend not seen failing resets the count (the idle limit is far off yet).
        let mut w = watcher(20);
        assert_eq!(w.judge(&obs(Some(false), Some(0), true)), Verdict::Suspect);
        assert_eq!(w.judge(&obs(Some(false), Some(0), false)), Verdict::Suspect);
        assert_eq!(w.judge(&obs(Some(false), Some(0), true)), Verdict::Suspect);
    }

    #[test]
    fn rising_errors_count_only_with_an_idle_server() {
        let mut w = watcher(20);
        assert_eq!(w.judge(&obs(Some(false), Some(3), false)), Verdict::Suspect);
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

    fn idle(w: &mut Watcher, answers: bool, distributing: bool) -> Verdict {
        let o = Observation {
            compiler_at_work: Some(false),
            errors: Some(0),
            backend_answers: answers,
            distributing,
            ..Observation::default()
        };
        w.judge(&o)
    }

    #[test]
    fn an_idle_server_is_abandoned_after_the_idle_limit_whatever_the_probe_says() {
        let mut w = watcher(20);
        assert_eq!(idle(&mut w, false, false), Verdict::Suspect);
        w.idle_since = Some(Instant::now() - IDLE_LIMIT);
        match idle(&mut w, false, false) {
            Verdict::Stuck(why) => assert!(why.contains("gave no verdict"), "{why}"),
            v => panic!("{v:?}"),
        }
        // A backend that answers gives more patience, within a bound.
        let mut w = watcher(20);
        w.idle_since = Some(Instant::now() - IDLE_LIMIT);
        assert_eq!(idle(&mut w, true, false), Verdict::Suspect);
        w.idle_since = Some(Instant::now() - IDLE_LIMIT_ANSWERING);
        match idle(&mut w, true, false) {
            Verdict::Stuck(why) => assert!(why.contains("answers its probe"), "{why}"),
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn the_idle_limit_needs_a_server_seen_idle_and_no_remote_compiles() {
        let mut w = watcher(20);
        w.idle_since = Some(Instant::now() - Duration::from_secs(600));
        assert_eq!(idle(&mut w, false, true), Verdict::Fine);
        let unknown = Observation {
            compiler_at_work: None,
            errors: Some(0),
            ..Observation::default()
        };
        assert_eq!(w.judge(&unknown), Verdict::Fine);
        // A compiler at work ends the idle time.
        assert_eq!(w.judge(&obs(Some(true), None, false)), Verdict::Fine);
        assert_eq!(idle(&mut w, false, false), Verdict::Suspect);
    }

    fn table(rows: &[(u32, u32, u32, bool)]) -> proc::Table {
        proc::Table(
            rows.iter()
                .map(|&(pid, ppid, pgrp, live)| proc::Entry {
                    comm: if pid == 33 { "sleep" } else { "rustc" }.into(),
                    pid,
                    ppid,
                    pgrp,
                    live,
                })
                .collect(),
        )
    }

    #[test]
    fn work_is_a_live_server_child_or_a_live_member_of_the_calls_group() {
        // 10: the sccache client leading the call's group; 20: the server.
        let idle = table(&[(10, 1, 10, true), (20, 1, 20, true), (21, 20, 20, false)]);
        assert_eq!(proc::work_in(&idle, Some(20), 10, "rustc"), Some(false));
        // The server is gone, or was never found: nothing is known.
        assert_eq!(proc::work_in(&idle, Some(99), 10, "rustc"), None);
        assert_eq!(proc::work_in(&idle, None, 10, "rustc"), None);
        let compiling = table(&[(10, 1, 10, true), (20, 1, 20, true), (21, 20, 20, true)]);
        assert_eq!(proc::work_in(&compiling, Some(20), 10, "rustc"), Some(true));
        // A compile the client runs itself, with or without a server to be found.
        let local = table(&[(10, 1, 10, true), (11, 10, 10, true), (20, 1, 20, true)]);
        assert_eq!(proc::work_in(&local, Some(20), 10, "rustc"), Some(true));
        assert_eq!(proc::work_in(&local, None, 10, "rustc"), Some(true));
        // A process of the group that is not the compiler is no compile (a helper, a sleep).
        let helper = table(&[(10, 1, 10, true), (33, 10, 10, true), (20, 1, 20, true)]);
        assert_eq!(proc::work_in(&helper, Some(20), 10, "rustc"), Some(false));
        // A zombie of the group is no work.
        let zombie = table(&[(10, 1, 10, true), (11, 10, 10, false), (20, 1, 20, true)]);
        assert_eq!(proc::work_in(&zombie, Some(20), 10, "rustc"), Some(false));
        // A server the client started into its group is not work itself.
        let started = table(&[(10, 1, 10, true), (20, 10, 10, true)]);
        assert_eq!(proc::work_in(&started, Some(20), 10, "rustc"), Some(false));
        let started_compiling = table(&[(10, 1, 10, true), (20, 10, 10, true), (21, 20, 10, true)]);
        assert_eq!(
            proc::work_in(&started_compiling, Some(20), 10, "rustc"),
            Some(true)
        );
    }

    #[test]
    fn descendants_are_found_parents_first_and_only_live_ones() {
        let t = table(&[
            (20, 1, 20, true),
            (21, 20, 20, true),
            (22, 21, 20, true),
            (23, 20, 20, false),
            (30, 1, 30, true),
        ]);
        assert_eq!(t.descendants(20), vec![21, 22]);
        assert!(t.descendants(30).is_empty());
        assert!(t.has(20) && !t.has(23) && !t.has(99));
        assert!(t.has_live_child(21) && !t.has_live_child(22));
    }

    #[test]
    fn stat_lines_are_read_past_any_command_name() {
        let e = proc::parse_stat(7, "7 (a) b) (c) S 3 5 5 0 -1").unwrap();
        assert_eq!((e.pid, e.ppid, e.pgrp, e.live), (7, 3, 5, true));
        assert!(!proc::parse_stat(7, "7 (rustc) Z 3 5 5").unwrap().live);
        assert!(proc::parse_stat(7, "7 (rustc) R 3").is_none());
        assert!(proc::parse_stat(7, "garbage").is_none());
        assert_eq!(
            proc::parse_stat(7, "7 (a) b) S 3 5 5").unwrap().comm,
            "a) b"
        );
        assert_eq!(proc::comm_of("/x/y/rustc".as_ref()), "rustc");
        assert_eq!(
            proc::comm_of("x86_64-linux-gnu-gcc-13".as_ref()),
            "x86_64-linux-gn"
        );
    }

    #[test]
    fn a_backend_fails_only_when_every_endpoint_fails() {
        use backend::Answer::*;
        let b = |kind| Backend {
            kind,
            origin: "X".into(),
            endpoints: Vec::new(),
        };
        let two = [b("S3"), b("Redis")];
        let (failing, answering) = read_probes(&two[..1], &[vec![Silent, Refused]]);
        assert!(failing.is_some_and(|w| w.starts_with("S3 (X) ")));
        assert!(!answering);
        assert_eq!(
            read_probes(&two[..1], &[vec![Silent, Answers]]),
            (None, true)
        );
        assert_eq!(read_probes(&two[..1], &[vec![]]), (None, false));
        let unknown = Unknown("proxied".into());
        assert_eq!(read_probes(&two[..1], &[vec![unknown]]), (None, false));
        let (failing, answering) = read_probes(&two, &[vec![Answers], vec![Refused]]);
        assert!(failing.is_some_and(|w| w.starts_with("Redis (X) ")));
        assert!(answering);
    }

    #[test]
    fn limits_hold_exactly_at_their_mark() {
        let o = obs(Some(false), None, false);
        let mut w = watcher(20);
        let at = w.started + Duration::from_secs(20);
        assert!(matches!(w.judge_at(&o, at), Verdict::Stuck(why) if why.starts_with("hung:")));
        let mut w = watcher(20);
        let before = w.started + Duration::from_secs(20) - Duration::from_millis(1);
        assert_eq!(w.judge_at(&o, before), Verdict::Suspect);

        let idle = Observation {
            compiler_at_work: Some(false),
            errors: Some(0),
            ..Observation::default()
        };
        let mut w = watcher(20);
        let first = Instant::now();
        assert_eq!(w.judge_at(&idle, first), Verdict::Suspect);
        assert_eq!(
            w.judge_at(&idle, first + IDLE_LIMIT - Duration::from_millis(1)),
            Verdict::Suspect
        );
        assert!(matches!(
            w.judge_at(&idle, first + IDLE_LIMIT),
            Verdict::Stuck(_)
        ));
    }

    #[test]
    fn a_busy_look_says_a_compiler_is_at_work() {
        let busy = Observation::busy();
        assert_eq!(busy.compiler_at_work, Some(true));
        assert_eq!(watcher(20).judge(&busy), Verdict::Fine);
    }
}
