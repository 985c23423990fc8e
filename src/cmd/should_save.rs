//! `maybe-sccache should-save`: at the end of a CI job, is a new actions/cache entry of
//! `SCCACHE_DIR` worth its quota?
//!
//! actions/cache never overwrites a key, so the action keys each run's entry by the run, and this
//! decides whether to save one at all: only when the job's sccache server missed on at least
//! `--threshold` percent (default 10) of the compiles it could cache. A warm job (everything hit)
//! saves nothing; a cold one (a new lockfile, a new compiler, no cache restored) saves; a job whose
//! workspace crates drifted from the restored entry saves once the drift reaches the threshold, so
//! the restored cache is never more than about that share stale.
//!
//! The figures are those of the running server, counted since it started (the action keeps it
//! running all job long with `SCCACHE_IDLE_TIMEOUT=0`). Always exits 0 with a decision: a CI step
//! must not fail over whether to save a cache.

use std::env;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};

use crate::call::locate::{self, Lookup};
use crate::config::Config;
use crate::server;

pub const USAGE: &str = "usage: maybe-sccache should-save [--threshold PERCENT] [--github-output]";

/// The share of cacheable compiles that must have been misses, in percent.
pub const DEFAULT_THRESHOLD: u32 = 10;

const STATS_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, PartialEq, Eq)]
pub struct Options {
    pub threshold: u32,
    pub github_output: bool,
}

pub fn parse_args(args: &[String]) -> Result<Options> {
    let mut opts = Options {
        threshold: DEFAULT_THRESHOLD,
        github_output: false,
    };
    let mut seen_threshold = false;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_owned())),
            _ => (arg.as_str(), None),
        };
        match name {
            "--threshold" if !seen_threshold => {
                let value = match inline {
                    Some(v) => v,
                    None => it
                        .next()
                        .cloned()
                        .ok_or_else(|| anyhow!("--threshold needs a value; {USAGE}"))?,
                };
                opts.threshold = value.parse().ok().filter(|p| *p <= 100).ok_or_else(|| {
                    anyhow!("--threshold {value:?}: a whole percentage from 0 to 100; {USAGE}")
                })?;
                seen_threshold = true;
            }
            "--github-output" if inline.is_none() && !opts.github_output => {
                opts.github_output = true
            }
            _ => bail!("unexpected argument {arg:?}; {USAGE}"),
        }
    }
    Ok(opts)
}

/// The decision and why.
#[derive(Debug, PartialEq, Eq)]
pub struct Decision {
    pub save: bool,
    pub reason: String,
}

/// The decision from the server's figures (`server::stats`), or `None` when there is no server.
pub fn decide(stats: Option<&server::Stats>, threshold: u32) -> Decision {
    let no = |reason: String| Decision {
        save: false,
        reason,
    };
    let Some(stats) = stats else {
        return no("no sccache server is running, so this job wrote nothing to the cache".into());
    };
    if let Some(location) = &stats.cache_location {
        if !location.starts_with("Local disk") {
            // The reason reaches the job's log and summary: no credentials of the backend's.
            let location = crate::logging::redact_secrets(location);
            return no(format!(
                "the sccache server stores its cache in {location}, not in SCCACHE_DIR"
            ));
        }
    }
    let (hits, misses) = (stats.hits, stats.misses);
    let compiles = hits + misses;
    if compiles == 0 {
        return no("no cacheable compiles on this server: nothing new to save".into());
    }
    if misses == 0 {
        return no(format!(
            "no cache misses in {compiles} cacheable compiles: the restored cache had everything"
        ));
    }
    let percent = misses * 100 / compiles;
    let save = percent >= u64::from(threshold);
    Decision {
        save,
        reason: format!(
            "{misses} of {compiles} cacheable compiles ({percent} %) were cache misses, {} the \
             {threshold} % threshold",
            if save { "at or above" } else { "below" }
        ),
    }
}

pub fn run(config: &Config, opts: &Options) -> Result<ExitCode> {
    let stats = match locate::find_sccache(config) {
        // Another user's server's figures say nothing of this job's compiles.
        Lookup::Found { path, .. } if server::listening().is_some_and(|o| o.trusted()) => {
            server::stats(&path, STATS_TIMEOUT)
        }
        _ => None,
    };
    let decision = decide(stats.as_ref(), opts.threshold);
    let text = format!(
        "save={}\nreason={}\n",
        decision.save,
        decision.reason.replace(['\n', '\r'], " ")
    );
    if opts.github_output {
        append_github_output(&text);
    }
    let _ = std::io::stdout().write_all(text.as_bytes());
    Ok(ExitCode::SUCCESS)
}

/// Best effort: without the output the step sees no `save=true`, and nothing is saved.
fn append_github_output(text: &str) {
    let Some(path) = env::var_os("GITHUB_OUTPUT").filter(|p| !p.is_empty()) else {
        eprintln!("maybe-sccache: warning: --github-output: GITHUB_OUTPUT is not set");
        return;
    };
    let written = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(text.as_bytes()));
    if let Err(e) = written {
        eprintln!(
            "maybe-sccache: warning: --github-output: cannot append to {}: {e}",
            Path::new(&path).display()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::Stats;

    #[test]
    fn decisions() {
        let at = |hits: u64, misses: u64, location: &str| Stats {
            hits,
            misses,
            cache_location: Some(location.to_owned()),
            ..Stats::default()
        };
        let s = |hits: u64, misses: u64| at(hits, misses, "Local disk: \"/x\"");
        assert!(!decide(None, 10).save);
        let none = decide(Some(&s(0, 0)), 10);
        assert!(!none.save);
        // With no compiles at all, there is no restored cache to credit.
        assert!(
            none.reason.contains("no cacheable compiles"),
            "{}",
            none.reason
        );
        assert!(!decide(Some(&s(40, 0)), 0).save, "no misses, nothing new");
        assert!(decide(Some(&s(0, 40)), 10).save, "cold");
        assert!(decide(Some(&s(90, 10)), 10).save, "at the threshold");
        assert!(!decide(Some(&s(91, 9)), 10).save, "below it");
        assert!(decide(Some(&s(99, 1)), 0).save);
        let redis = at(0, 5, "Redis: redis://user:s3cr3t-pw@10.0.0.1:6379");
        let d = decide(Some(&redis), 10);
        assert!(!d.save);
        assert!(!d.reason.contains("s3cr3t-pw"), "{}", d.reason);
        assert!(decide(Some(&s(0, 3)), 10).reason.contains("3 of 3"));
    }

    #[test]
    fn args() {
        let a = |v: &[&str]| parse_args(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(a(&[]).unwrap().threshold, DEFAULT_THRESHOLD);
        let o = a(&["--threshold", "25", "--github-output"]).unwrap();
        assert_eq!((o.threshold, o.github_output), (25, true));
        assert_eq!(a(&["--threshold=0"]).unwrap().threshold, 0);
        for bad in [
            &["--threshold"][..],
            &["--threshold", "101"],
            &["--threshold", "-1"],
            &["--threshold", "5%"],
            &["--threshold", "1", "--threshold", "2"],
            &["--github-output=1"],
            &["x"],
        ] {
            assert!(a(bad).is_err(), "{bad:?}");
        }
    }
}
