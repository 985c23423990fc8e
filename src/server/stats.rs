//! sccache's statistics, asked of the server within a deadline: its error counters for the
//! judgement of a slow call, and the figures `status` and `should-save` show. sccache's JSON is
//! read once, here, into [`Stats`]; only `status --json` turns it back into JSON.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::*;

/// sccache's own figures, from `--show-stats --stats-format json`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    /// Where the server stores its cache, as sccache words it (`Local disk: "/path"`,
    /// `Redis: redis://…`); `None` when sccache did not say.
    pub cache_location: Option<String>,
    /// Compile requests the server received.
    pub requests: u64,
    /// Cache hits, all languages.
    pub hits: u64,
    /// Cache misses, all languages.
    pub misses: u64,
    /// The sum of sccache's error and time-out counters of its cache.
    pub errors: u64,
    /// Cache writes that failed (`cache_write_errors`); `None` when sccache did not say.
    pub write_errors: Option<u64>,
    /// Cache writes stored (`cache_writes`).
    pub writes: u64,
    /// Hits and misses per language, as sccache names them (`Rust`, `C/C++`, `Assembler`, …).
    pub languages: BTreeMap<String, Counts>,
    /// Compiles sccache-dist ran remotely, per build server (sccache's `dist_compiles`).
    pub dist_compiles: BTreeMap<String, u64>,
    /// Distributed compiles that failed, and were then compiled locally (`dist_errors`).
    pub dist_errors: u64,
    /// sccache's statistics object as it printed it, handed on whole in `status --json` (`raw`)
    /// for what the shim does not read itself.
    pub raw: Value,
}

/// Hits and misses of one language.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub hits: u64,
    pub misses: u64,
}

impl Stats {
    /// Reads what `sccache --show-stats --stats-format json` printed; `None` without its
    /// `stats` object.
    pub fn from_json(json: &Value) -> Option<Stats> {
        let stats = json.get("stats")?;
        let num = |k: &str| stats.get(k).and_then(Value::as_u64).unwrap_or(0);
        // sccache's per-language counters are `{"counts": {"Rust": 3, …}, "adv_counts": …}`; its
        // `dist_compiles` is a plain map of build server to count.
        let counts = |v: Option<&Value>| -> BTreeMap<String, u64> {
            v.and_then(Value::as_object)
                .into_iter()
                .flatten()
                .map(|(k, n)| (k.clone(), n.as_u64().unwrap_or(0)))
                .collect()
        };
        let per_language = |k: &str| counts(stats.get(k).and_then(|e| e.get("counts")));
        let (hits, misses) = (per_language("cache_hits"), per_language("cache_misses"));
        let mut languages: BTreeMap<String, Counts> = BTreeMap::new();
        for (language, n) in &hits {
            languages.entry(language.clone()).or_default().hits = *n;
        }
        for (language, n) in &misses {
            languages.entry(language.clone()).or_default().misses = *n;
        }
        Some(Stats {
            cache_location: json
                .get("cache_location")
                .and_then(Value::as_str)
                .map(str::to_owned),
            requests: num("compile_requests"),
            hits: hits.values().sum(),
            misses: misses.values().sum(),
            errors: num("cache_timeouts")
                + num("cache_read_errors")
                + num("cache_write_errors")
                + per_language("cache_errors").values().sum::<u64>(),
            write_errors: stats.get("cache_write_errors").and_then(Value::as_u64),
            writes: num("cache_writes"),
            languages,
            dist_compiles: counts(stats.get("dist_compiles")),
            dist_errors: num("dist_errors"),
            raw: stats.clone(),
        })
    }

    /// Failed and stored cache writes; `None` when sccache did not count failures.
    pub fn write_figures(&self) -> Option<(u64, u64)> {
        Some((self.write_errors?, self.writes))
    }

    /// Hits over hits plus misses, 0 to 1; `None` before any.
    pub fn hit_rate(&self) -> Option<f64> {
        let all = self.hits + self.misses;
        (all > 0).then(|| self.hits as f64 / all as f64)
    }

    /// Compiles run remotely by sccache-dist, all build servers together.
    pub fn remote_compiles(&self) -> u64 {
        self.dist_compiles.values().sum()
    }

    /// Whether the statistics show sccache-dist at work: distributed compiles done or failed.
    /// This is the hook for remote compiles, which have no local compiler process to see; a
    /// fresh server's first remote compile is not in these counters yet.
    pub fn distributes(&self) -> bool {
        self.remote_compiles() > 0 || self.dist_errors > 0
    }

    /// The `sccache_stats` object of `status --json`.
    pub fn to_json(&self) -> Value {
        let languages: serde_json::Map<String, Value> = self
            .languages
            .iter()
            .map(|(language, n)| {
                (
                    language.clone(),
                    json!({"hits": n.hits, "misses": n.misses}),
                )
            })
            .collect();
        json!({
            "languages": languages,
            "requests": self.requests,
            "hits": self.hits,
            "misses": self.misses,
            "hit_rate": self.hit_rate(),
            "errors": self.errors,
            "cache_location": self.cache_location,
            "dist": {
                "compiles": self.remote_compiles(),
                "errors": self.dist_errors,
                "servers": self.dist_compiles,
            },
            "raw": self.raw,
        })
    }
}

/// The running server's statistics; `None` when it does not answer within `timeout` or prints
/// none.
pub fn stats(sccache: &Path, timeout: Duration) -> Option<Stats> {
    stats_or_why(sccache, timeout).ok()
}

/// [`stats`], or why there are none: [`RunError::ShimTrouble`] when the shim itself could not
/// ask (no descriptors or memory left), which says nothing of sccache.
pub(super) fn stats_or_why(sccache: &Path, timeout: Duration) -> Result<Stats, RunError> {
    let mut cmd = Command::new(sccache);
    cmd.args(["--show-stats", "--stats-format", "json"])
        .stdin(Stdio::null());
    let Output { code, stdout, .. } = run_bounded(cmd, timeout)?;
    if code != Some(0) {
        return Err(RunError::Failed(format!(
            "sccache --show-stats exited with {code:?}"
        )));
    }
    let json: Value = serde_json::from_slice(&stdout)
        .map_err(|e| RunError::Failed(format!("sccache --show-stats printed no JSON: {e}")))?;
    Stats::from_json(&json)
        .ok_or_else(|| RunError::Failed("sccache --show-stats printed no statistics".into()))
}

/// The running server's failed and stored cache writes, asked within 2 s (after a forwarded call,
/// for the GitHub Actions write-storm watch).
pub fn write_figures(sccache: &Path) -> Option<(u64, u64)> {
    stats(sccache, Duration::from_secs(2))?.write_figures()
}

/// The sum of sccache's error and time-out counters.
pub fn error_total(sccache: &Path, timeout: Duration) -> Option<u64> {
    Some(stats(sccache, timeout)?.errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// sccache 0.19's statistics after one remote and one failed remote compile (trimmed).
    const PRINTED: &str = r#"{"stats":{"compile_requests":5,"requests_executed":4,
        "cache_errors":{"counts":{"Rust":1},"adv_counts":{}},
        "cache_hits":{"counts":{"Rust":3,"C/C++":1},"adv_counts":{}},
        "cache_misses":{"counts":{"Rust":1},"adv_counts":{}},
        "cache_timeouts":2,"cache_read_errors":0,"cache_write_errors":1,
        "dist_compiles":{"127.0.0.1:10501":2,"10.0.0.2:10501":1},"dist_errors":1},
        "cache_location":"Local disk: \"/tmp/x\"","version":"0.19.0"}"#;

    #[test]
    fn sccache_statistics_are_read_once_into_figures() {
        let s = Stats::from_json(&serde_json::from_str(PRINTED).unwrap()).unwrap();
        assert_eq!((s.requests, s.hits, s.misses), (5, 4, 1));
        assert_eq!(
            s.errors, 4,
            "time-outs, write errors and per-language errors"
        );
        assert_eq!(s.cache_location.as_deref(), Some("Local disk: \"/tmp/x\""));
        assert_eq!(s.languages["Rust"], Counts { hits: 3, misses: 1 });
        assert_eq!(s.languages["C/C++"], Counts { hits: 1, misses: 0 });
        assert_eq!((s.remote_compiles(), s.dist_errors), (3, 1));
        assert_eq!(s.hit_rate(), Some(0.8));
        let out = s.to_json();
        for key in [
            "languages",
            "requests",
            "hits",
            "misses",
            "hit_rate",
            "errors",
            "cache_location",
            "dist",
            "raw",
        ] {
            assert!(out.get(key).is_some(), "{key} missing from {out}");
        }
        assert_eq!(out["languages"]["Rust"], json!({"hits": 3, "misses": 1}));
        assert_eq!(out["dist"]["compiles"], json!(3));
        assert_eq!(out["raw"]["requests_executed"], json!(4));
        assert_eq!(Stats::from_json(&json!({"version": "0.19.0"})), None);
    }

    #[test]
    fn distributed_compiles_are_seen_in_the_statistics() {
        let with = |stats: Value| Stats::from_json(&json!({ "stats": stats })).unwrap();
        assert!(!with(json!({})).distributes());
        assert!(!with(json!({"dist_compiles": {}, "dist_errors": 0})).distributes());
        assert!(with(json!({"dist_compiles": {"h:1": 2}})).distributes());
        assert!(with(json!({"dist_compiles": {}, "dist_errors": 1})).distributes());
        assert_eq!(with(json!({})).hit_rate(), None);
    }
}
