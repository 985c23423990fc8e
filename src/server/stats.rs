//! sccache's statistics, asked of the server within a deadline: its error counters for the
//! judgement of a slow call, and the figures `status` shows.

use super::*;

/// sccache's own figures, from `--show-stats --stats-format json`: requests, hits, misses,
/// errors (the sum of its error and time-out counters) and where the server stores its cache
/// (`cache_location`, e.g. `Local disk: "/path"` or `Redis: redis://…`, as sccache words it),
/// plus its raw statistics.
pub fn stats(sccache: &Path, timeout: Duration) -> Option<serde_json::Value> {
    stats_or_why(sccache, timeout).ok()
}

/// [`stats`], or why there are none: [`RunError::ShimTrouble`] when the shim itself could not
/// ask (no descriptors or memory left), which says nothing of sccache.
pub(super) fn stats_or_why(
    sccache: &Path,
    timeout: Duration,
) -> Result<serde_json::Value, RunError> {
    let mut cmd = Command::new(sccache);
    cmd.args(["--show-stats", "--stats-format", "json"])
        .stdin(Stdio::null());
    let Output { code, stdout, .. } = run_bounded(cmd, timeout)?;
    if code != Some(0) {
        return Err(RunError::Failed(format!(
            "sccache --show-stats exited with {code:?}"
        )));
    }
    let json: serde_json::Value = serde_json::from_slice(&stdout)
        .map_err(|e| RunError::Failed(format!("sccache --show-stats printed no JSON: {e}")))?;
    parse_stats(&json)
        .ok_or_else(|| RunError::Failed("sccache --show-stats printed no statistics".into()))
}

pub(super) fn parse_stats(json: &serde_json::Value) -> Option<serde_json::Value> {
    let stats = json.get("stats")?;
    let num = |k: &str| stats.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
    let per_language = |k: &str| -> u64 {
        stats
            .get(k)
            .and_then(|e| e.get("counts"))
            .and_then(|c| c.as_object())
            .map_or(0, |m| m.values().filter_map(|v| v.as_u64()).sum())
    };
    let errors = num("cache_timeouts")
        + num("cache_read_errors")
        + num("cache_write_errors")
        + per_language("cache_errors");
    // Hits and misses per language, as sccache names them (`Rust`, `C/C++`, `Assembler`, …).
    let mut languages = serde_json::Map::new();
    for (kind, key) in [("hits", "cache_hits"), ("misses", "cache_misses")] {
        let counts = stats.get(key).and_then(|e| e.get("counts"));
        for (language, n) in counts.and_then(|c| c.as_object()).into_iter().flatten() {
            let entry = languages
                .entry(language.clone())
                .or_insert_with(|| serde_json::json!({"hits": 0, "misses": 0}));
            entry[kind] = serde_json::json!(n.as_u64().unwrap_or(0));
        }
    }
    Some(serde_json::json!({
        "languages": languages,
        "requests": num("compile_requests"),
        "hits": per_language("cache_hits"),
        "misses": per_language("cache_misses"),
        "errors": errors,
        "cache_location": json.get("cache_location").and_then(|v| v.as_str()),
        "raw": stats,
    }))
}

/// The sum of sccache's error and time-out counters.
pub fn error_total(sccache: &Path, timeout: Duration) -> Option<u64> {
    errors_in(&stats(sccache, timeout)?)
}

/// The sum of the error and time-out counters in what [`stats`] returned.
pub fn errors_in(stats: &serde_json::Value) -> Option<u64> {
    stats.get("errors")?.as_u64()
}

/// Whether the statistics show sccache-dist at work: distributed compiles done or failed. This
/// is the hook for remote compiles, which have no local compiler process to see; a fresh
/// server's first remote compile is not in these counters yet.
pub fn distributes(stats: &serde_json::Value) -> bool {
    let Some(raw) = stats.get("raw") else {
        return false;
    };
    let done = raw
        .get("dist_compiles")
        .and_then(|d| d.as_object())
        .is_some_and(|m| !m.is_empty());
    let failed = raw.get("dist_errors").and_then(|v| v.as_u64()).unwrap_or(0) > 0;
    done || failed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distributed_compiles_are_seen_in_the_statistics() {
        let with = |raw| serde_json::json!({ "raw": raw });
        assert!(!distributes(&serde_json::json!({})));
        assert!(!distributes(&with(
            serde_json::json!({"dist_compiles": {}, "dist_errors": 0})
        )));
        assert!(distributes(&with(
            serde_json::json!({"dist_compiles": {"h:1": 2}})
        )));
        assert!(distributes(&with(
            serde_json::json!({"dist_compiles": {}, "dist_errors": 1})
        )));
    }
}
