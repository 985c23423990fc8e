//! Reading configuration: every environment variable the shim looks at is read here, once.
//!
//! In wrapper mode a bad value never fails a build: it is logged and the default is used, because a
//! typo in a CI variable must not turn into a red build. `doctor` reports the same problems loudly.

use std::env;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

/// The recursion counter the shim puts into the environment of every sccache it starts. A shim that
/// finds it set was started, directly or not, by sccache that a shim started: it must not forward.
pub const DEPTH_VAR: &str = "MAYBE_SCCACHE_DEPTH";

pub const DEFAULT_COOLDOWN: Duration = Duration::from_secs(600);
pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(15);
pub const DEFAULT_SLOW_CALL: Duration = Duration::from_secs(20);

#[derive(Debug)]
pub struct Config {
    /// `MAYBE_SCCACHE_DISABLE`: never touch sccache.
    pub disabled: bool,
    /// `SCCACHE_PATH`, as exported by mozilla-actions/sccache-action.
    pub sccache_path: Option<OsString>,
    /// `MAYBE_SCCACHE_DEPTH`: how many shims up the process tree went through sccache.
    pub depth: u32,
    /// The variable that turns on incremental compilation for the whole build, if one does.
    /// sccache 0.16 refuses every call (even `-vV`) while it is set.
    pub incremental_var: Option<&'static str>,
    /// `MAYBE_SCCACHE_COOLDOWN`: how long the breaker stays open after a failure.
    pub cooldown: Duration,
    /// `MAYBE_SCCACHE_START_TIMEOUT`: the deadline for starting the sccache server.
    pub start_timeout: Duration,
    /// `MAYBE_SCCACHE_SLOW_CALL`: a forwarded call slower than this, with sccache's own error
    /// counters rising, is taken as a failing backend.
    pub slow_call: Duration,
    /// `MAYBE_SCCACHE_STATE_DIR`, else the user's cache dir. `None` when neither exists, or when
    /// the directory is not the user's own or others can write to it.
    pub state_dir: Option<PathBuf>,
    /// Values that could not be used, as `(variable, reason)`, for the log and for `doctor`.
    pub problems: Vec<(&'static str, String)>,
}

impl Config {
    pub fn from_env() -> Config {
        let mut problems = Vec::new();
        let disabled = match env::var_os("MAYBE_SCCACHE_DISABLE") {
            None => false,
            Some(v) => flag_value(&v),
        };
        let depth = match env::var_os(DEPTH_VAR) {
            None => 0,
            // Anything unreadable still proves that a shim set it, so it counts as one level.
            Some(v) => v.to_str().and_then(|s| s.parse().ok()).unwrap_or(1),
        };
        let incremental_var = ["CARGO_INCREMENTAL", "CARGO_BUILD_INCREMENTAL"]
            .into_iter()
            .find(|name| env::var_os(name).is_some_and(|v| v == "1"));
        let cooldown = seconds_var("MAYBE_SCCACHE_COOLDOWN", DEFAULT_COOLDOWN, &mut problems);
        let start_timeout = seconds_var(
            "MAYBE_SCCACHE_START_TIMEOUT",
            DEFAULT_START_TIMEOUT,
            &mut problems,
        );
        let slow_call = seconds_var("MAYBE_SCCACHE_SLOW_CALL", DEFAULT_SLOW_CALL, &mut problems);
        let state_dir = match env::var_os("MAYBE_SCCACHE_STATE_DIR") {
            Some(dir) if !dir.is_empty() => Some(PathBuf::from(dir)),
            _ => crate::places::cache_dir().map(|d| d.join("maybe-sccache")),
        };
        // A state dir someone else controls is not used at all (one `stat`).
        let state_dir = state_dir.filter(|dir| match crate::state::trusted_dir(dir) {
            Ok(()) => true,
            Err(why) => {
                problems.push(("MAYBE_SCCACHE_STATE_DIR", why));
                false
            }
        });
        Config {
            disabled,
            sccache_path: env::var_os("SCCACHE_PATH").filter(|p| !p.is_empty()),
            depth,
            incremental_var,
            cooldown,
            start_timeout,
            slow_call,
            state_dir,
            problems,
        }
    }
}

/// An on/off variable: empty, `0`, `false`, `no` and `off` mean off; anything else means on, so that
/// a value the shim does not understand errs towards the safe side (not touching sccache).
fn flag_value(v: &std::ffi::OsStr) -> bool {
    let v = v.to_string_lossy().trim().to_ascii_lowercase();
    !matches!(v.as_str(), "" | "0" | "false" | "no" | "off")
}

/// A duration in seconds (fractions allowed). Unset means the default; a bad value is recorded as a
/// problem and also means the default.
fn seconds_var(
    name: &'static str,
    default: Duration,
    problems: &mut Vec<(&'static str, String)>,
) -> Duration {
    let Some(raw) = env::var_os(name) else {
        return default;
    };
    match parse_seconds(&raw.to_string_lossy()) {
        Some(d) => d,
        None => {
            problems.push((
                name,
                format!(
                    "{:?} is not a number of seconds; using {}",
                    raw,
                    default.as_secs()
                ),
            ));
            default
        }
    }
}

pub fn parse_seconds(s: &str) -> Option<Duration> {
    let secs: f64 = s.trim().parse().ok()?;
    if !secs.is_finite() || !(0.0..=1e9).contains(&secs) {
        return None;
    }
    Some(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags() {
        for off in ["", "0", "false", "No", " off "] {
            assert!(!flag_value(off.as_ref()), "{off:?}");
        }
        for on in ["1", "true", "yes", "anything"] {
            assert!(flag_value(on.as_ref()), "{on:?}");
        }
    }

    #[test]
    fn seconds() {
        assert_eq!(parse_seconds("10"), Some(Duration::from_secs(10)));
        assert_eq!(parse_seconds(" 0.5 "), Some(Duration::from_millis(500)));
        assert_eq!(parse_seconds("-1"), None);
        assert_eq!(parse_seconds("ten"), None);
        assert_eq!(parse_seconds("inf"), None);
        assert_eq!(parse_seconds("NaN"), None);
    }
}
