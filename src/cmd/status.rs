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
use crate::server::{self, Stats};
use crate::state;

#[derive(Clone, Copy)]
pub enum Format {
    Text,
    Json,
    Markdown,
}

pub fn render(config: &Config, format: Format) -> String {
    let (mut report, stats) = gather(config);
    // `--markdown` goes to a public CI job summary: no secret may reach any format.
    let secrets = logging::secret_values();
    redact_strings(&mut report, &secrets);
    // The text views also show sccache's figures as read (build servers' names among them).
    match format {
        Format::Json => format!("{report:#}\n"),
        Format::Text => logging::redact(&text(&report, stats.as_ref()), &secrets),
        Format::Markdown => logging::redact(&markdown(&report, stats.as_ref()), &secrets),
    }
}

/// Everything `status` knows, as JSON, and the server's statistics as read; the other formats
/// are views of these.
fn gather(config: &Config) -> (Value, Option<Stats>) {
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
        (Some(p), Some(owner)) if owner.trusted() => server::stats(p, Duration::from_secs(5)),
        _ => None,
    };
    let owner = listening.map(|owner| {
        json!({
            "uid": owner.uid(),
            "description": owner.describe(),
            "used": owner.trusted(),
        })
    });
    let mut backend = backend_report(stats.as_ref().and_then(|s| s.cache_location.clone()));
    let dir = config.state_dir.as_deref();
    let key = server::key();
    let figures = stats.as_ref().and_then(server::Stats::write_figures);
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
    let report = json!({
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
        "sccache_stats": stats.as_ref().map(Stats::to_json),
        "state_dir": dir.map(|d| d.display().to_string()),
        "disabled": config.disabled,
    });
    (report, stats)
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
fn backend_report(server_location: Option<String>) -> Value {
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

fn summary_lines(r: &Value, stats: Option<&Stats>) -> Vec<(String, String)> {
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
    if let Some(st) = stats {
        rows.extend(stats_lines(st));
    }
    rows
}

/// The rows of sccache's own figures: requests, hits and misses (in all and per language), and
/// what sccache-dist compiled remotely when it did.
fn stats_lines(st: &Stats) -> Vec<(String, String)> {
    let rate = st
        .hit_rate()
        .map_or("n/a".into(), |r| format!("{:.1} %", 100.0 * r));
    let mut rows = vec![(
        "sccache stats".to_owned(),
        format!(
            "{} requests, {} hits, {} misses, hit rate {rate}, {} errors",
            st.requests, st.hits, st.misses, st.errors
        ),
    )];
    let languages: Vec<String> = st
        .languages
        .iter()
        .map(|(language, n)| format!("{language} {} hits, {} misses", n.hits, n.misses))
        .collect();
    if !languages.is_empty() {
        rows.push(("by language".into(), languages.join("; ")));
    }
    if st.distributes() {
        let servers: Vec<String> = st
            .dist_compiles
            .iter()
            .map(|(server, n)| format!("{server} {n}"))
            .collect();
        let on = if servers.is_empty() {
            String::new()
        } else {
            format!(" ({})", servers.join(", "))
        };
        rows.push((
            "remote".into(),
            format!(
                "{} compiles on sccache-dist build servers{on}, {} failed and compiled locally",
                st.remote_compiles(),
                st.dist_errors
            ),
        ));
    }
    rows
}

fn text(r: &Value, stats: Option<&Stats>) -> String {
    let mut out = String::new();
    for (k, v) in summary_lines(r, stats) {
        let _ = writeln!(out, "{k:>14}: {v}");
    }
    out
}

fn markdown(r: &Value, stats: Option<&Stats>) -> String {
    let mut out = String::from("### maybe-sccache\n\n| | |\n|---|---|\n");
    for (k, v) in summary_lines(r, stats) {
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
