//! sccache's servers as the benchmark sees them: a cache directory and a port per lane, the
//! statistics read from a running server, the polite stop followed by a sweep, and what the shim's
//! state directory says it did.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::procs::{free_port, port_open, sweep_id};
use crate::sandbox::Bench;
use crate::{Env, Res};

/// An sccache server's address and storage.
pub(crate) struct Sc {
    pub(crate) port: u16,
    pub(crate) dir: PathBuf,
    pub(crate) redis: Option<String>,
    /// Other backend variables (section 3b).
    pub(crate) extra: Vec<(String, String)>,
}

impl Bench {
    pub(crate) fn new_sc(&self, what: &str, redis: Option<String>) -> Res<Sc> {
        let dir = self.fresh_dir(&format!("cache-{what}"))?;
        Ok(Sc {
            port: free_port()?,
            dir,
            redis,
            extra: Vec::new(),
        })
    }

    pub(crate) fn sccache_stats(&self, env: &Env, id: &str) -> Option<Stats> {
        let sccache = self.sccache.as_ref()?;
        let port = server_port(env)?;
        // Asking a server that is not there would start one.
        if !port_open(port) {
            return None;
        }
        let mut cmd = self.command(sccache, env, id);
        cmd.args(["--show-stats", "--stats-format", "json"]);
        let (status, out) = self.run_bounded(cmd, Duration::from_secs(20)).ok()??;
        if !status.success() {
            return None;
        }
        parse_stats(&out)
    }

    /// Stops the server behind `env` politely, then everything started under `id`.
    pub(crate) fn stop_sccache(&self, env: &Env, id: &str) {
        if let Some(sccache) = &self.sccache {
            if server_port(env).is_some_and(port_open) {
                let mut cmd = self.command(sccache, env, id);
                cmd.arg("--stop-server");
                let _ = self.run_bounded(cmd, Duration::from_secs(20));
            }
        }
        sweep_id(id);
    }
}

/// The port of the sccache server that `env` names.
pub(crate) fn server_port(env: &Env) -> Option<u16> {
    env.get(OsStr::new("SCCACHE_SERVER_PORT"))
        .and_then(|p| p.to_str()?.parse::<u16>().ok())
}

pub(crate) struct Stats {
    pub(crate) requests: u64,
    pub(crate) hits: u64,
    pub(crate) misses: u64,
    pub(crate) errors: u64,
    /// sccache's `C/C++` language counters.
    pub(crate) c_hits: u64,
    pub(crate) c_misses: u64,
    /// Compiles sccache-dist's build servers ran (`dist_compiles`, summed over servers).
    pub(crate) dist: u64,
}

impl Stats {
    pub(crate) fn text(&self) -> String {
        let remote = if self.dist > 0 {
            format!(", {} remote", self.dist)
        } else {
            String::new()
        };
        format!(
            "{} requests, {} hits, {} misses, {} errors{remote}",
            self.requests, self.hits, self.misses, self.errors
        )
    }
}

/// What the shim's state dir says it did, by event kind and reason.
pub(crate) struct Calls {
    pub(crate) by_kind: BTreeMap<String, BTreeMap<String, u64>>,
}

impl Calls {
    pub(crate) fn total(&self) -> u64 {
        self.by_kind.values().flat_map(|m| m.values()).sum()
    }

    pub(crate) fn text(&self) -> String {
        self.by_kind
            .iter()
            .filter(|(kind, _)| kind.as_str() != "trip")
            .map(|(kind, reasons)| {
                let n: u64 = reasons.values().sum();
                let why: Vec<String> = reasons
                    .iter()
                    .filter(|(r, _)| r.as_str() != "-")
                    .map(|(r, c)| format!("{r} {c}"))
                    .collect();
                if why.is_empty() {
                    format!("{kind} {n}")
                } else {
                    format!("{kind} {n} ({})", why.join(", "))
                }
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

pub(crate) fn parse_stats(json: &str) -> Option<Stats> {
    let v: serde_json::Value = serde_json::from_str(json.trim()).ok()?;
    let s = v.get("stats")?;
    let num = |k: &str| s.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
    let per_lang = |k: &str| -> u64 {
        s.get(k)
            .and_then(|e| e.get("counts"))
            .and_then(|c| c.as_object())
            .map_or(0, |m| m.values().filter_map(|v| v.as_u64()).sum())
    };
    let c_count = |k: &str| -> u64 {
        s.get(k)
            .and_then(|e| e.get("counts"))
            .and_then(|c| c.get("C/C++"))
            .and_then(|v| v.as_u64())
            .unwrap_or(0)
    };
    let dist = s
        .get("dist_compiles")
        .and_then(|d| d.as_object())
        .map_or(0, |m| m.values().filter_map(|v| v.as_u64()).sum());
    Some(Stats {
        dist,
        c_hits: c_count("cache_hits"),
        c_misses: c_count("cache_misses"),
        requests: num("compile_requests"),
        hits: per_lang("cache_hits"),
        misses: per_lang("cache_misses"),
        errors: num("cache_timeouts")
            + num("cache_read_errors")
            + num("cache_write_errors")
            + per_lang("cache_errors"),
    })
}

/// The shim's `events` file: `<kind> <reason>` per call, or `<kind> <reason> <count>` once
/// compacted. Best effort: `None` when there is no such file.
pub(crate) fn read_calls(state: &Path) -> Option<Calls> {
    let text = fs::read_to_string(state.join("events")).ok()?;
    let mut by_kind: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let (Some(kind), reason) = (words.next(), words.next().unwrap_or("-")) else {
            continue;
        };
        let n = words.next().and_then(|c| c.parse().ok()).unwrap_or(1);
        *by_kind
            .entry(kind.to_owned())
            .or_default()
            .entry(reason.to_owned())
            .or_default() += n;
    }
    Some(Calls { by_kind })
}

/// The reason the shim's breaker gives, if it was tripped (best effort).
pub(crate) fn read_breaker_reason(state: &Path) -> Option<String> {
    // The shim keeps one breaker per server (`breaker-<key>`, beside its `.lock`); each build
    // here has a state dir of its own with one server in it.
    let file = fs::read_dir(state)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("breaker-") && !n.ends_with(".lock"))
        })
        .unwrap_or_else(|| state.join("breaker"));
    let text = fs::read_to_string(file).ok()?;
    let reason = text.lines().find_map(|l| l.strip_prefix("reason "))?;
    let mut reason = reason.trim().to_owned();
    if reason.len() > 120 {
        let mut cut = 120;
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        reason.truncate(cut);
        reason.push('…');
    }
    Some(reason)
}
