//! The shared measuring core: one timed `cargo build` of a project through a lane (with the
//! wait for a quiet machine, other processes' CPU time and steal time sampled around it), and the
//! statistics every section uses (median, percentiles, a confidence interval for the median, ratios).

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use std::{fs, io, thread};

use crate::procs::{sweep_id, Waiter};
use crate::sandbox::{id_tail, Bench};
use crate::sccache::{read_breaker_reason, read_calls, Calls, Sc, Stats};
use crate::Res;

pub(crate) struct Project {
    pub(crate) manifest: PathBuf,
    pub(crate) target: PathBuf,
    pub(crate) what: String,
    /// Section 3 kills Redis once this many libraries are built.
    pub(crate) kill_after: usize,
}

pub(crate) enum Lane<'a> {
    Plain,
    Sccache(&'a Sc),
    Shim {
        sc: Option<&'a Sc>,
        state: PathBuf,
    },
    /// The shim with sccache, called through its `sccache` alias (so cc-rs wraps C too).
    Alias {
        sc: &'a Sc,
        state: PathBuf,
    },
}

pub(crate) enum Outcome {
    Passed,
    Failed(String),
    TimedOut(u64),
}

impl Outcome {
    pub(crate) fn text(&self) -> String {
        match self {
            Outcome::Passed => "passed".into(),
            Outcome::Failed(s) => format!("failed ({s})"),
            Outcome::TimedOut(n) => format!("did not finish in {n} s"),
        }
    }
}

pub(crate) struct Build {
    pub(crate) secs: f64,
    pub(crate) outcome: Outcome,
    pub(crate) compiled: usize,
    pub(crate) stats: Option<Stats>,
    pub(crate) calls: Option<Calls>,
    pub(crate) breaker: Option<String>,
    pub(crate) fired_at: Option<f64>,
    pub(crate) tail: String,
    /// CPU seconds other processes on the machine used while this build ran.
    pub(crate) others_cpu: f64,
    /// Seconds spent waiting for the machine to be quiet before the build.
    pub(crate) waited: f64,
}

impl Build {
    pub(crate) fn outcome_passed(&self) -> bool {
        matches!(self.outcome, Outcome::Passed)
    }
}

impl Bench {
    /// One `cargo build` of `project` in a fresh target dir, through `lane`.
    /// `watch` is called about every 20 ms with the elapsed time until it returns true.
    pub(crate) fn build(
        &self,
        label: &str,
        project: &Project,
        lane: &Lane,
        timeout: Duration,
        mut watch: Option<&mut dyn FnMut(Duration) -> bool>,
    ) -> Res<Build> {
        let id = self.new_id(&label.replace(' ', "-"));
        match fs::remove_dir_all(&project.target) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(format!("cannot remove {}: {e}", project.target.display()))
            }
            _ => {}
        }
        let mut env = match lane {
            Lane::Plain => self.env_plain(),
            Lane::Sccache(sc) => {
                let mut env = self.env_sccache(sc);
                let sccache = self.sccache.as_ref().ok_or("no sccache")?;
                env.insert("RUSTC_WRAPPER".into(), sccache.clone().into());
                env
            }
            Lane::Alias { sc, state } => {
                let mut env = self.env_shim_sccache(sc, state);
                let alias = self.alias.as_ref().ok_or("no alias")?;
                env.insert("RUSTC_WRAPPER".into(), alias.clone().into());
                env
            }
            Lane::Shim { sc, state } => {
                let mut env = match sc {
                    Some(sc) => self.env_shim_sccache(sc, state),
                    None => self.env_shim_bare(state, &self.cargo_home),
                };
                env.insert("RUSTC_WRAPPER".into(), self.shim.clone().into());
                if let Some(level) = &self.opts.shim_log {
                    let file = self.scratch_path(&format!("shim-log-{}.log", id_tail(&id)));
                    env.insert("MAYBE_SCCACHE_LOG".into(), level.into());
                    env.insert("MAYBE_SCCACHE_LOG_FILE".into(), file.into());
                }
                env
            }
        };
        env.insert("CARGO_HOME".into(), self.cargo_home.clone().into());
        env.insert("RUSTC".into(), self.rustc.clone().into());
        env.insert("CARGO_INCREMENTAL".into(), "0".into());
        env.insert("CARGO_TERM_COLOR".into(), "never".into());
        env.insert("CARGO_TERM_PROGRESS_WHEN".into(), "never".into());

        let log = self.scratch_path(&format!("build-{}.log", id_tail(&id)));
        let file = fs::File::create(&log).map_err(|e| e.to_string())?;
        let mut cmd = self.command(&self.cargo, &env, &id);
        cmd.args(["build", "--offline", "--locked", "--manifest-path"])
            .arg(&project.manifest)
            .arg("--target-dir")
            .arg(&project.target)
            .stdout(Stdio::null())
            .stderr(file);

        let waited = self.wait_quiet();
        let mut others = CpuWatch::new(self.scratch.marker_prefix());
        others.sample();
        let steal_before = steal_ticks();
        let mut sampled = Instant::now();
        let started = Instant::now();
        let child = cmd.spawn().map_err(|e| format!("cannot run cargo: {e}"))?;
        let waiter = Waiter::new(child);
        let mut fired_at = None;
        let result = loop {
            if let Some(r) = waiter.wait_for(Duration::from_millis(20)) {
                break Some(r);
            }
            let elapsed = started.elapsed();
            if elapsed >= timeout {
                break None;
            }
            if sampled.elapsed() >= Duration::from_millis(250) {
                others.sample();
                sampled = Instant::now();
            }
            if fired_at.is_none() {
                if let Some(w) = watch.as_mut() {
                    if w(elapsed) {
                        fired_at = Some(elapsed);
                    }
                }
            }
        };
        let elapsed = started.elapsed();
        others.sample();
        let steal = steal_before
            .zip(steal_ticks())
            .map_or(0.0, |(a, b)| b.saturating_sub(a) as f64 / self.clk_tck);
        // sccache's own counters, read while its server still runs (even if stuck).
        let stats = match lane {
            Lane::Plain | Lane::Shim { sc: None, .. } => None,
            _ => self.sccache_stats(&env, &id),
        };
        let outcome = match result {
            Some(Ok(s)) if s.success() => Outcome::Passed,
            Some(Ok(s)) => Outcome::Failed(s.to_string()),
            Some(Err(e)) => Outcome::Failed(format!("wait failed: {e}")),
            None => {
                sweep_id(&id);
                let _ = waiter.wait_for(Duration::from_secs(30));
                Outcome::TimedOut(timeout.as_secs())
            }
        };
        let text = fs::read_to_string(&log).unwrap_or_default();
        let compiled = text
            .lines()
            .filter(|l| l.trim_start().starts_with("Compiling "))
            .count();
        if !matches!(lane, Lane::Plain) {
            self.stop_sccache(&env, &id);
        }
        let (calls, breaker) = match lane {
            Lane::Shim { state, .. } | Lane::Alias { state, .. } => {
                (read_calls(state), read_breaker_reason(state))
            }
            _ => (None, None),
        };
        let build = Build {
            secs: elapsed.as_secs_f64(),
            outcome,
            compiled,
            stats,
            calls,
            breaker,
            fired_at: fired_at.map(|d| d.as_secs_f64()),
            tail: tail(&text, 15),
            others_cpu: others.total() as f64 / self.clk_tck,
            waited,
        };
        let n = self.all_builds.borrow().len() + 1;
        self.all_builds.borrow_mut().push(format!(
            "| {n} | {label} | {} | {:.2} s | {:.1} | {steal:.1} | {:.1} s |",
            build.outcome.text(),
            build.secs,
            build.others_cpu,
            build.waited,
        ));
        say!(
            "  {label}: {} in {:.2} s, {} crates, others used {:.1} CPU-s{}{}",
            build.outcome.text(),
            build.secs,
            build.compiled,
            build.others_cpu,
            build
                .stats
                .as_ref()
                .map(|s| format!(", sccache {}", s.text()))
                .unwrap_or_default(),
            build
                .fired_at
                .map(|t| format!(", fault at {t:.1} s"))
                .unwrap_or_default()
        );
        Ok(build)
    }

    /// A build that must pass: a failure is recorded as unexpected.
    pub(crate) fn expect_pass(&mut self, label: &str, build: &Build) {
        if !matches!(build.outcome, Outcome::Passed) {
            self.fail(format!(
                "{label}: {}\n{}",
                build.outcome.text(),
                indent(&build.tail)
            ));
        }
    }

    /// Before a build: wait (a bounded time) until the rest of the machine is nearly idle,
    /// so that other people's compiles disturb the measurement as little as possible.
    /// Returns the seconds waited. Quick mode waits 2 s at most.
    pub(crate) fn wait_quiet(&self) -> f64 {
        let started = Instant::now();
        let limit = Duration::from_secs(if self.opts.quick { 2 } else { 45 });
        while started.elapsed() < limit {
            match busy_cpus(Duration::from_millis(700)) {
                Some(busy) if busy > 0.3 => {}
                _ => break,
            }
        }
        started.elapsed().as_secs_f64()
    }
}

/// The CPU time that processes which are not ours use during a build, from their own user
/// and system ticks, sampled every 250 ms. Children's times are left out on purpose: a
/// reaper's children's time would also count our own sccache servers once they are reaped.
/// Processes that live less than a sample interval are missed, so the figure is a floor.
pub(crate) struct CpuWatch {
    pub(crate) marker_prefix: String,
    pub(crate) me: u32,
    pub(crate) first: bool,
    /// (pid, start time) of processes known to be ours.
    pub(crate) ours: std::collections::BTreeSet<(u32, u64)>,
    /// (pid, start time) -> (ticks at first sight, latest ticks).
    pub(crate) seen: BTreeMap<(u32, u64), (u64, u64)>,
}

impl CpuWatch {
    pub(crate) fn new(marker_prefix: String) -> CpuWatch {
        CpuWatch {
            marker_prefix,
            me: std::process::id(),
            first: true,
            ours: Default::default(),
            seen: BTreeMap::new(),
        }
    }

    pub(crate) fn sample(&mut self) {
        let first = std::mem::replace(&mut self.first, false);
        let Ok(entries) = fs::read_dir("/proc") else {
            return;
        };
        for pid in entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok()) {
            if pid == self.me {
                continue;
            }
            let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            // Fields after the command name (which may hold spaces) start at field 3:
            // utime and stime are fields 14 and 15, the start time field 22.
            let Some((_, rest)) = stat.rsplit_once(')') else {
                continue;
            };
            let f: Vec<u64> = rest
                .split_whitespace()
                .map(|v| v.parse::<u64>().unwrap_or(0))
                .collect();
            let (Some(utime), Some(stime), Some(start)) = (f.get(11), f.get(12), f.get(19)) else {
                continue;
            };
            let key = (pid, *start);
            if self.ours.contains(&key) {
                continue;
            }
            let ticks = utime + stime;
            if let Some(entry) = self.seen.get_mut(&key) {
                entry.1 = ticks;
                continue;
            }
            let ours = fs::read(format!("/proc/{pid}/environ")).is_ok_and(|env| {
                env.split(|b| *b == 0)
                    .any(|e| e.starts_with(self.marker_prefix.as_bytes()))
            });
            if ours {
                self.ours.insert(key);
            } else {
                // Running before the first sample: only what it uses from now on counts.
                let base = if first { ticks } else { 0 };
                self.seen.insert(key, (base, ticks));
            }
        }
    }

    pub(crate) fn total(&self) -> u64 {
        self.seen.values().map(|(a, b)| b.saturating_sub(*a)).sum()
    }
}

/// The machine's steal time so far, in clock ticks (the 8th value of /proc/stat's `cpu`).
pub(crate) fn steal_ticks() -> Option<u64> {
    let stat = fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    line.split_whitespace().nth(8)?.parse().ok()
}

/// How many CPUs the whole machine kept busy over `window` (from /proc/stat).
pub(crate) fn busy_cpus(window: Duration) -> Option<f64> {
    fn sample() -> Option<(u64, u64)> {
        let stat = fs::read_to_string("/proc/stat").ok()?;
        let line = stat.lines().find(|l| l.starts_with("cpu "))?;
        let v: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .filter_map(|x| x.parse().ok())
            .collect();
        let total: u64 = v.iter().take(8).sum();
        let idle = v.get(3)? + v.get(4).copied().unwrap_or(0);
        Some((total, idle))
    }
    let (t0, i0) = sample()?;
    thread::sleep(window);
    let (t1, i1) = sample()?;
    let (dt, di) = (t1.checked_sub(t0)?, i1.checked_sub(i0)?);
    let cpus = thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    (dt > 0).then(|| (dt - di) as f64 / dt as f64 * cpus)
}

pub(crate) fn count_libs(deps: &Path) -> usize {
    fs::read_dir(deps).map_or(0, |entries| {
        entries
            .flatten()
            .filter(|e| {
                let name = e.file_name();
                let name = name.as_bytes();
                name.ends_with(b".rlib") || name.ends_with(b".so")
            })
            .count()
    })
}

/// A distribution-free 95 % confidence interval for the median (order statistics, normal
/// approximation of the binomial); `None` below 10 values.
pub(crate) fn median_ci(v: &[f64]) -> Option<(f64, f64)> {
    let n = v.len();
    if n < 10 {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let j = ((n as f64 - 1.96 * (n as f64).sqrt()) / 2.0)
        .floor()
        .max(0.0) as usize;
    Some((s[j], s[n - 1 - j]))
}

pub(crate) fn median(v: &[f64]) -> f64 {
    percentile(v, 50.0)
}

/// Linear interpolation between closest ranks; NaN for no data.
pub(crate) fn percentile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let pos = p / 100.0 * (s.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    s[lo] + (s[hi] - s[lo]) * (pos - lo as f64)
}

/// `median (min–max)` of ratios, or `n/a`.
pub(crate) fn spread(v: &[f64]) -> String {
    if v.is_empty() {
        return "n/a".into();
    }
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("×{:.3} (×{lo:.3}–×{hi:.3}, {} pair(s))", median(v), v.len())
}

pub(crate) fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("×{:.3}", a / b),
        _ => String::new(),
    }
}

pub(crate) fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

pub(crate) fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}
