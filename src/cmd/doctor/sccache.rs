//! sccache itself: found, runnable, which version.

use super::*;

/// Found, runnable, which version. The path, when it can be used.
pub(super) fn sccache(config: &Config, findings: &mut Vec<Finding>) -> Option<PathBuf> {
    let (path, origin) = match locate::find_sccache(config) {
        Lookup::Found { path, origin } => (path, origin),
        Lookup::NotFound { looked } => {
            findings.push(fail(
                format!("sccache: not found (looked at: {})", looked.join(", ")),
                "install sccache (cargo install --locked sccache, or a release binary) and put \
                 it on PATH, or set SCCACHE_PATH to it",
            ));
            return None;
        }
    };
    let mut cmd = Command::new(&path);
    cmd.arg("--version").stdin(Stdio::null());
    let problem =
        match run_bounded(cmd, VERSION_TIMEOUT) {
            Ok(Output {
                code: Some(0),
                stdout,
                ..
            }) => {
                let text = String::from_utf8_lossy(&stdout);
                let version = text.lines().next().unwrap_or("").trim().to_owned();
                findings.push(ok(format!(
                    "sccache: {} at {} (found via {origin})",
                    if version.is_empty() {
                        "unknown version"
                    } else {
                        &version
                    },
                    path.display()
                )));
                if let Some(problem) = backend::gha::release_problem(&path) {
                    findings.push(fail(
                    format!("sccache: {}", problem.trim_start_matches("backend-unsupported: ")),
                    "install sccache 0.10 or later (mozilla-actions/sccache-action installs the \
                     latest by default), or unset ACTIONS_CACHE_SERVICE_V2 on GitHub Enterprise \
                     Server",
                ));
                }
                return Some(path);
            }
            Ok(Output { code, stderr, .. }) => format!(
                "`sccache --version` failed ({}): {}",
                code.map_or("killed by a signal".to_owned(), |c| format!(
                    "exit code {c}"
                )),
                String::from_utf8_lossy(&stderr)
                    .lines()
                    .next()
                    .unwrap_or("no output")
            ),
            Err(e) => format!("`sccache --version`: {e}"),
        };
    findings.push(fail(
        format!(
            "sccache: {} (found via {origin}) does not run: {problem}",
            path.display()
        ),
        "reinstall sccache, or set SCCACHE_PATH to a working sccache",
    ));
    None
}
