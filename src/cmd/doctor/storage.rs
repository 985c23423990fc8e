//! Where the cache is kept: the local disk cache (`SCCACHE_DIR`, its size) or a remote backend
//! that must answer.

use super::*;

/// Where sccache keeps its local cache when `SCCACHE_DIR` is unset (its `ProjectDirs` rule).
fn default_sccache_dir() -> Option<PathBuf> {
    if cfg!(target_os = "macos") {
        crate::places::cache_dir().map(|d| d.join("Mozilla.sccache"))
    } else if cfg!(windows) {
        crate::places::data_local_dir().map(|d| d.join("Mozilla").join("sccache").join("cache"))
    } else {
        crate::places::cache_dir().map(|d| d.join("sccache"))
    }
}

/// The local cache: is `SCCACHE_DIR` writable, and is its size bounded?
pub(super) fn storage() -> Vec<Finding> {
    let backends = backend::detect();
    if !backends.is_empty() {
        return backend_findings(&backends);
    }
    let (dir, origin) = match env::var_os("SCCACHE_DIR").filter(|d| !d.is_empty()) {
        Some(d) => (Some(PathBuf::from(d)), "SCCACHE_DIR"),
        None => (
            default_sccache_dir(),
            "sccache's default, SCCACHE_DIR is unset",
        ),
    };
    let dir_finding = match dir {
        None => warn(
            "storage: SCCACHE_DIR is unset and there is no user cache directory",
            "set SCCACHE_DIR to a writable directory",
        ),
        Some(dir) => match writable(&dir) {
            Ok(note) => ok(format!(
                "storage: {} ({origin}) is writable{note}",
                dir.display()
            )),
            Err(e) => fail(
                format!("storage: {} ({origin}) is not writable: {e}", dir.display()),
                "set SCCACHE_DIR to a writable directory",
            ),
        },
    };
    let size_finding = match env::var("SCCACHE_CACHE_SIZE") {
        // sccache's 10G default suits a developer's machine; only a CI cache, saved and restored
        // whole on every job, pays for it.
        Err(env::VarError::NotPresent) if !in_ci() => info(
            "cache size: SCCACHE_CACHE_SIZE is unset, so the local cache may grow to 10G \
             (sccache's default; in CI, set it, e.g. SCCACHE_CACHE_SIZE=512M)",
        ),
        Err(env::VarError::NotPresent) => warn(
            "cache size: SCCACHE_CACHE_SIZE is unset, so the local cache may grow to 10G, \
             more than a CI cache should carry",
            "set SCCACHE_CACHE_SIZE, e.g. SCCACHE_CACHE_SIZE=512M",
        ),
        Ok(v) if valid_size(&v) => ok(format!("cache size: SCCACHE_CACHE_SIZE={v}")),
        Ok(v) => warn(
            format!(
                "cache size: SCCACHE_CACHE_SIZE={v:?} is not a size sccache reads; it uses 10G"
            ),
            "write a number of bytes with an optional K, M, G or T suffix, e.g. 512M",
        ),
        Err(_) => warn(
            "cache size: SCCACHE_CACHE_SIZE is not valid UTF-8",
            "write a number of bytes with an optional K, M, G or T suffix, e.g. 512M",
        ),
    };
    vec![dir_finding, size_finding]
}

/// A remote backend (from the environment or sccache's config file): does it answer now? The
/// same probe the shim's watchdog uses, all endpoints at once, within a few seconds.
fn backend_findings(backends: &[Backend]) -> Vec<Finding> {
    let answers = backend::probe_all(backends, Duration::from_secs(3));
    let mut findings = Vec::new();
    if backends.iter().any(|b| b.kind == "GHA") {
        if let Some(problem) = backend::gha::config_problem() {
            findings.push(fail(
                format!("backend: GHA: {problem}"),
                "on GitHub Actions, export ACTIONS_RESULTS_URL, ACTIONS_RUNTIME_TOKEN and \
                 ACTIONS_CACHE_SERVICE_V2=on to later steps (mozilla-actions/sccache-action \
                 does), and run sccache in the job that got the token; until then the shim \
                 compiles directly",
            ));
        }
    }
    let probed = backends.iter().zip(answers).map(|(b, answers)| {
        let place = crate::logging::redact_secrets(&b.describe());
        let Some(first) = answers.first() else {
            return info(format!(
                "backend: {place}; the shim cannot probe this kind itself, only the bounded \
                     server start and the watchdog guard it"
            ));
        };
        let fix = format!(
            "start the {} server or fix its address ({}); until then the shim compiles \
                 directly",
            b.kind, b.origin
        );
        if answers.contains(&Answer::Answers) {
            ok(format!("backend: {place} answers"))
        } else if answers.contains(&Answer::Throttled) {
            warn(
                format!("backend: {place} {}", Answer::Throttled.words()),
                "the GitHub Actions cache takes 200 uploads a minute per repository: write \
                     from fewer jobs (read-only on pull requests), or use the local disk cache",
            )
        } else if answers.iter().all(Answer::is_down) {
            fail(format!("backend: {place} {}", first.words()), fix)
        } else if answers.iter().all(Answer::is_failing) {
            warn(format!("backend: {place} {}", first.words()), fix)
        } else {
            info(format!("backend: {place}: {}", first.words()))
        }
    });
    findings.extend(probed);
    findings
}

/// sccache's sizes: digits, then an optional K, M, G or T.
fn valid_size(v: &str) -> bool {
    let digits = v
        .strip_suffix(['K', 'M', 'G', 'T', 'k', 'm', 'g', 't'])
        .unwrap_or(v);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// Can files be created in `dir`, or, if it does not exist yet, can it be created? Checked by
/// creating (and removing) a temporary file; nothing is left behind.
pub(super) fn writable(dir: &Path) -> Result<&'static str, String> {
    if dir.exists() {
        if !dir.is_dir() {
            return Err("it is not a directory".into());
        }
        return try_write(dir).map(|()| "");
    }
    let parent = dir
        .ancestors()
        .skip(1)
        .find(|a| a.exists())
        .ok_or_else(|| "no part of it exists".to_owned())?;
    if !parent.is_dir() {
        return Err(format!("{} is not a directory", parent.display()));
    }
    try_write(parent)
        .map(|()| " (it does not exist yet; it will be created)")
        .map_err(|e| format!("it does not exist and {e}"))
}

fn try_write(dir: &Path) -> Result<(), String> {
    tempfile::Builder::new()
        .prefix(".maybe-sccache-doctor.")
        .tempfile_in(dir)
        .map(drop)
        .map_err(|e| format!("cannot create a file in {}: {e}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        for good in ["512M", "10G", "1024", "2t"] {
            assert!(valid_size(good), "{good}");
        }
        for bad in ["", "M", "1.5G", "512MB", "-1G", "ten"] {
            assert!(!valid_size(bad), "{bad}");
        }
    }
}
