//! `maybe-sccache status`: what happened, for a human, a program (`--json`) or a CI job summary
//! (`--markdown`). It never fails: missing or corrupt state shows up as empty.

use std::fmt::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::backend;
use crate::call::locate::{self, Lookup};
use crate::child::{run_bounded, Output};
use crate::config::Config;
use crate::logging;
use crate::server;
use crate::state;

#[derive(Clone, Copy)]
pub enum Format {
    Text,
    Json,
    Markdown,
}

pub fn render(config: &Config, format: Format) -> String {
    let mut report = gather(config);
    // `--markdown` goes to a public CI job summary: no secret may reach any format.
    redact_strings(&mut report, &logging::secret_values());
    match format {
        Format::Json => format!("{report:#}\n"),
        Format::Text => text(&report),
        Format::Markdown => markdown(&report),
    }
}

/// Everything `status` knows, as JSON; the other formats are views of it.
pub fn gather(config: &Config) -> Value {
    let (path, origin, looked) = match locate::find_sccache(config) {
        Lookup::Found { path, origin } => (Some(path), Some(origin), Vec::new()),
        Lookup::NotFound { looked } => (None, None, looked),
    };
    let version = path.as_deref().and_then(sccache_version);
    // A server can outlive the sccache that started it (uninstalled, or off `PATH`): say it runs.
    let listening = server::listening();
    let up = listening.is_some();
    // Another user's server is not asked anything: its figures are not this user's.
    let stats = match (&path, listening) {
        (Some(p), Some(owner)) if owner.trusted() => {
            server::stats(p, Duration::from_secs(5)).map(with_hit_rate)
        }
        _ => None,
    };
    let owner = listening.map(|owner| {
        json!({
            "uid": owner.uid(),
            "description": owner.describe(),
            "used": owner.trusted(),
        })
    });
    let mut backend = backend_report(stats.as_ref());
    let dir = config.state_dir.as_deref();
    let key = server::key();
    let figures = stats.as_ref().and_then(backend::gha::write_figures);
    if let (Some(map), Some(writes)) = (
        backend.as_object_mut(),
        backend::gha::writes_report(figures, dir, &key),
    ) {
        map.insert("writes".into(), writes);
    }
    let breaker = state::read_breaker(dir, &key);
    let now = state::now_secs();
    let counters = dir.map(state::read_counters).unwrap_or_default();
    let kind = |k: &str| -> Value { json!(counters.get(k).cloned().unwrap_or_default()) };
    let total = |k: &str| -> u64 { counters.get(k).map_or(0, |m| m.values().sum()) };
    json!({
        "sccache": {
            "path": path.as_ref().map(|p| p.display().to_string()),
            "found_via": origin,
            "looked": looked,
            "version": version,
            "server_up": up,
            // Whose the running server is; one not `used` belongs to another user, and the shim
            // neither forwards to it nor stops it.
            "server_owner": owner,
        },
        "breaker": {
            "state": if breaker.is_open_at(now) { "open" } else { "closed" },
            // Whose breaker: the sccache server this environment points at.
            "server": server::address().to_string(),
            "key": key,
            "open_until": breaker.open_until.filter(|_| breaker.is_open_at(now)),
            "last_failure": breaker.failed_at.map(|at| json!({
                "at": at,
                "reason": breaker.reason,
            })),
        },
        "counters": {
            "forwarded": total("forwarded"),
            "bypassed": kind("bypassed"),
            "fallback": kind("fallback"),
            "trips": total("trip"),
        },
        "backend": backend,
        "sccache_stats": stats,
        "state_dir": dir.map(|d| d.display().to_string()),
        "disabled": config.disabled,
    })
}

/// Redacts every string in `value` (a breaker reason written by an older shim, or under other
/// settings, may quote a secret of this environment).
fn redact_strings(value: &mut Value, secrets: &[String]) {
    match value {
        Value::String(s) => *s = logging::redact(s, secrets),
        Value::Array(items) => items.iter_mut().for_each(|v| redact_strings(v, secrets)),
        Value::Object(map) => map.values_mut().for_each(|v| redact_strings(v, secrets)),
        _ => {}
    }
}

/// The remote backend sccache is configured with (`null` for the local disk cache): what it is,
/// where it was configured, whether its endpoints answer a probe now (`answers`: true, false, or
/// null when it cannot be checked), and the location the running server reports.
fn backend_report(stats: Option<&Value>) -> Value {
    let server_location = stats
        .and_then(|s| s.get("cache_location"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let backends = backend::detect();
    let Some(first) = backends.first() else {
        return match server_location {
            Some(loc) if !loc.starts_with("Local disk") => json!({ "server_location": loc }),
            _ => Value::Null,
        };
    };
    let answers = backend::probe_all(&backends[..1], Duration::from_secs(3)).remove(0);
    let verdict = if answers.is_empty() {
        Value::Null
    } else if answers.contains(&backend::Answer::Answers)
        || answers.contains(&backend::Answer::Throttled)
    {
        json!(true)
    } else if answers.iter().all(backend::Answer::is_failing) {
        json!(false)
    } else {
        Value::Null
    };
    json!({
        "kind": first.kind,
        "where": first.describe(),
        "answers": verdict,
        "probe": answers.iter().map(backend::Answer::words).collect::<Vec<_>>(),
        "throttled": answers.contains(&backend::Answer::Throttled),
        "server_location": server_location,
        "others": backends[1..].iter().map(|b| b.describe()).collect::<Vec<_>>(),
    })
}

/// Adds `hit_rate` (hits over hits plus misses, 0 to 1; null before any) to sccache's figures.
fn with_hit_rate(mut stats: Value) -> Value {
    let n = |k: &str| stats.get(k).and_then(Value::as_u64).unwrap_or(0);
    let (hits, misses) = (n("hits"), n("misses"));
    let rate = (hits + misses > 0).then(|| hits as f64 / (hits + misses) as f64);
    if let Some(map) = stats.as_object_mut() {
        map.insert("hit_rate".into(), json!(rate));
    }
    stats
}

/// `sccache --version`, as `0.16.0`. `None` when it cannot be run or does not answer in time.
pub fn sccache_version(path: &std::path::Path) -> Option<String> {
    let mut cmd = Command::new(path);
    cmd.arg("--version").stdin(Stdio::null());
    let Output { code, stdout, .. } = run_bounded(cmd, VERSION_TIMEOUT).ok()?;
    if code != Some(0) {
        return None;
    }
    version_from(&String::from_utf8_lossy(&stdout))
}

/// How long `sccache --version` may take before it counts as not answering.
pub const VERSION_TIMEOUT: Duration = Duration::from_secs(10);

fn version_from(text: &str) -> Option<String> {
    let line = text.lines().next()?.trim();
    let v = line.strip_prefix("sccache ").unwrap_or(line);
    (!v.is_empty()).then(|| v.to_owned())
}

fn summary_lines(r: &Value) -> Vec<(String, String)> {
    let s = &r["sccache"];
    let mut rows = Vec::new();
    let found = match s["path"].as_str() {
        Some(p) => format!(
            "{p} (via {}, version {})",
            s["found_via"].as_str().unwrap_or("?"),
            s["version"].as_str().unwrap_or("unknown")
        ),
        None => format!(
            "not found (looked at: {})",
            s["looked"]
                .as_array()
                .map(|a| a
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(", "))
                .unwrap_or_default()
        ),
    };
    rows.push(("sccache".into(), found));
    if r["disabled"].as_bool() == Some(true) {
        rows.push((
            "disabled".into(),
            "MAYBE_SCCACHE_DISABLE is set: sccache is never used".into(),
        ));
    }
    let owner = &s["server_owner"];
    let server = match owner["description"].as_str() {
        None => "not running".to_owned(),
        Some(whose) if owner["used"].as_bool() == Some(false) => format!(
            "up, owned by {whose}, not by this user: never used or stopped (calls compile \
             directly; set SCCACHE_SERVER_PORT or SCCACHE_SERVER_UDS to a place of your own)"
        ),
        Some(whose) => format!("up, owned by {whose}"),
    };
    rows.push(("server".into(), server));
    let be = &r["backend"];
    if let Some(place) = be["where"].as_str() {
        let health = match be["answers"].as_bool() {
            Some(true) => "answers".to_owned(),
            Some(false) => format!(
                "does NOT answer ({})",
                be["probe"][0].as_str().unwrap_or("?")
            ),
            None => be["probe"][0].as_str().unwrap_or("not checked").to_owned(),
        };
        rows.push(("backend".into(), format!("{place}: {health}")));
        if be["writes"].is_object() {
            rows.push((
                "GHA writes".into(),
                backend::gha::writes_words(&be["writes"]),
            ));
        }
    } else if let Some(loc) = be["server_location"].as_str() {
        rows.push(("backend".into(), loc.to_owned()));
    } else {
        rows.push(("backend".into(), "local disk".into()));
    }
    let b = &r["breaker"];
    let mut breaker = b["state"].as_str().unwrap_or("closed").to_owned();
    if let Some(until) = b["open_until"].as_u64() {
        let left = until.saturating_sub(state::now_secs());
        let _ = write!(breaker, " for {left} s more");
    }
    if let Some(f) = b["last_failure"].as_object() {
        let ago = state::now_secs().saturating_sub(f["at"].as_u64().unwrap_or(0));
        let _ = write!(
            breaker,
            "; last failure {ago} s ago: {}",
            f["reason"].as_str().unwrap_or("?")
        );
    }
    rows.push(("breaker".into(), breaker));
    let c = &r["counters"];
    let by_reason = |v: &Value| -> String {
        let m = v.as_object().cloned().unwrap_or_default();
        let total: u64 = m.values().filter_map(Value::as_u64).sum();
        if m.is_empty() {
            return "0".into();
        }
        let parts: Vec<String> = m.iter().map(|(k, n)| format!("{k} {n}")).collect();
        format!("{total} ({})", parts.join(", "))
    };
    rows.push(("forwarded".into(), c["forwarded"].to_string()));
    rows.push(("bypassed".into(), by_reason(&c["bypassed"])));
    rows.push(("fallback".into(), by_reason(&c["fallback"])));
    rows.push(("breaker trips".into(), c["trips"].to_string()));
    if let Some(st) = r["sccache_stats"].as_object() {
        let hits = st["hits"].as_u64().unwrap_or(0);
        let misses = st["misses"].as_u64().unwrap_or(0);
        let rate = if hits + misses > 0 {
            format!("{:.1} %", 100.0 * hits as f64 / (hits + misses) as f64)
        } else {
            "n/a".into()
        };
        rows.push((
            "sccache stats".into(),
            format!(
                "{} requests, {hits} hits, {misses} misses, hit rate {rate}, {} errors",
                st["requests"], st["errors"]
            ),
        ));
        let languages: Vec<String> = st
            .get("languages")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .map(|(language, n)| {
                let n = |k: &str| n[k].as_u64().unwrap_or(0);
                format!("{language} {} hits, {} misses", n("hits"), n("misses"))
            })
            .collect();
        if !languages.is_empty() {
            rows.push(("by language".into(), languages.join("; ")));
        }
    }
    rows
}

fn text(r: &Value) -> String {
    let mut out = String::new();
    for (k, v) in summary_lines(r) {
        let _ = writeln!(out, "{k:>14}: {v}");
    }
    out
}

fn markdown(r: &Value) -> String {
    let mut out = String::from("### maybe-sccache\n\n| | |\n|---|---|\n");
    for (k, v) in summary_lines(r) {
        let _ = writeln!(out, "| {k} | {} |", v.replace('|', "\\|"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_string_is_redacted() {
        let mut report = json!({
            "a": "redis://u:p@h",
            "b": ["x s3cr3t-value-1 y", 7, null, {"c": "s3cr3t-value-1"}],
            "n": 1,
        });
        redact_strings(&mut report, &["s3cr3t-value-1".to_owned()]);
        assert_eq!(
            report,
            json!({
                "a": "redis://[redacted]@h",
                "b": ["x [redacted] y", 7, null, {"c": "[redacted]"}],
                "n": 1,
            })
        );
    }
}
