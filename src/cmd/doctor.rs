//! `maybe-sccache doctor [--strict]`: what would keep sccache from caching here, one finding per
//! line, each problem with its fix. It exits 0 whatever it finds, except with `--strict` when a
//! finding would stop caching (exit 1), so that a CI job can choose to insist.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use crate::backend::{self, Answer, Backend};
use crate::call::locate::{self, Lookup};
use crate::child::{run_bounded, Output};
use crate::cmd::cache_key;
use crate::cmd::cargo_config::{self, Wrapper};
use crate::cmd::status::VERSION_TIMEOUT;
use crate::config::{Config, DEFAULT_START_TIMEOUT};
use crate::logging;
use crate::server;
use crate::state;

pub const USAGE: &str = "usage: maybe-sccache doctor [--strict]";

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Ok,
    Info,
    /// Caching works, but not as well as it could.
    Warn,
    /// Caching stops: `--strict` fails.
    Fail,
}

struct Finding {
    level: Level,
    text: String,
    fix: Option<String>,
}

fn ok(text: impl Into<String>) -> Finding {
    Finding {
        level: Level::Ok,
        text: text.into(),
        fix: None,
    }
}

fn info(text: impl Into<String>) -> Finding {
    Finding {
        level: Level::Info,
        text: text.into(),
        fix: None,
    }
}

fn warn(text: impl Into<String>, fix: impl Into<String>) -> Finding {
    Finding {
        level: Level::Warn,
        text: text.into(),
        fix: Some(fix.into()),
    }
}

fn fail(text: impl Into<String>, fix: impl Into<String>) -> Finding {
    Finding {
        level: Level::Fail,
        text: text.into(),
        fix: Some(fix.into()),
    }
}

pub fn run(strict: bool) -> anyhow::Result<ExitCode> {
    let config = Config::from_env();
    let findings = examine(&config);
    let mut out = String::new();
    for f in &findings {
        let tag = match f.level {
            Level::Ok => "ok",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Fail => "FAIL",
        };
        let _ = write!(out, "{tag:<4}  {}", one_line(&f.text));
        if let Some(fix) = &f.fix {
            let _ = write!(out, " -- fix: {}", one_line(fix));
        }
        out.push('\n');
    }
    let fails = findings.iter().filter(|f| f.level == Level::Fail).count();
    let warns = findings.iter().filter(|f| f.level == Level::Warn).count();
    let _ = match (fails, warns) {
        (0, 0) => writeln!(out, "doctor: sccache should cache here"),
        (0, w) => writeln!(
            out,
            "doctor: sccache should cache here; {w} warning(s) above"
        ),
        (f, w) => writeln!(
            out,
            "doctor: {f} finding(s) above stop caching, {w} warning(s)"
        ),
    };
    // Findings quote sccache's own words, which may hold a secret; doctor runs in CI logs.
    let out = logging::redact_secrets(&out);
    // A closed stdout is no reason to fail.
    let _ = std::io::stdout().write_all(out.as_bytes());
    Ok(if strict && fails > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Findings never span lines: sccache's own words may.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn examine(config: &Config) -> Vec<Finding> {
    let mut findings = vec![wrapper()];
    if config.disabled {
        findings.push(fail(
            "MAYBE_SCCACHE_DISABLE is set: the shim never uses sccache",
            "unset MAYBE_SCCACHE_DISABLE (or set it to 0)",
        ));
    }
    if let Some(sccache) = sccache(config, &mut findings) {
        findings.push(server_start(config, &sccache));
    }
    findings.extend(storage());
    findings.push(incremental(config));
    findings.push(breaker(config));
    findings.push(state_dir(config));
    for (var, problem) in &config.problems {
        findings.push(warn(
            format!("{var}: {problem}"),
            format!("set {var} to a number of seconds, or unset it"),
        ));
    }
    findings
}

const WRAPPER_FIX: &str =
    "export RUSTC_WRAPPER=\"$(maybe-sccache alias)\" (build scripts' C and C++ \
                           cached too), or RUSTC_WRAPPER=maybe-sccache, or the same in \
                           `[build] rustc-wrapper` of .cargo/config.toml";

/// The fix when cargo runs the shim by its own name while build scripts compile C or C++.
const ALIAS_FIX: &str = "export RUSTC_WRAPPER=\"$(maybe-sccache alias)\", or set `[build] \
                         rustc-wrapper` to the path `maybe-sccache alias` prints";

/// Is cargo told to run maybe-sccache? Decided as cargo decides it (see `cargo_config`).
fn wrapper() -> Finding {
    let cwd = env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let home = locate::cargo_home();
    match cargo_config::rustc_wrapper(&cwd, home.as_deref(), |name| env::var_os(name)) {
        Wrapper::Set {
            value,
            source,
            program,
        } => judge_wrapper(&value, &source, &program, &cwd),
        Wrapper::Off { var } => fail(
            format!("wrapper: {var} is set but empty, which turns cargo's wrapper off"),
            format!("set {var}=maybe-sccache"),
        ),
        Wrapper::Unreadable { path, error } => fail(
            format!(
                "wrapper: cargo cannot read {}: {error}, so every cargo command fails",
                path.display()
            ),
            "fix or remove that file",
        ),
        Wrapper::NotSet { files } => {
            let home = home.map_or("$CARGO_HOME".to_owned(), |h| h.display().to_string());
            let read = if files.is_empty() {
                "no cargo config file found".to_owned()
            } else {
                let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
                format!("none in {}", names.join(", "))
            };
            fail(
                format!(
                    "wrapper: not configured (RUSTC_WRAPPER unset; no build.rustc-wrapper in \
                     .cargo/config.toml from {} upward or in {home}/config.toml: {read})",
                    cwd.display()
                ),
                WRAPPER_FIX,
            )
        }
    }
}

fn judge_wrapper(value: &str, source: &str, program: &Path, cwd: &Path) -> Finding {
    let name = Path::new(value)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    match name.as_str() {
        "maybe-sccache" => match locate::on_path(program, cwd) {
            // cc-rs wraps C and C++ only for a wrapper whose file stem is `sccache`.
            Some(found) if builds_c() => warn(
                format!(
                    "wrapper: {source} sets it to {value} ({}): Rust is cached, but the C and \
                     C++ that build scripts compile (the cc crate is in Cargo.lock) are not, \
                     since cc-rs routes them only through a wrapper named sccache",
                    found.display()
                ),
                ALIAS_FIX,
            ),
            Some(found) => ok(format!(
                "wrapper: {source} sets it to {value} ({}); for build scripts' C and C++ use \
                 `maybe-sccache alias` instead",
                found.display()
            )),
            None => fail(
                format!(
                    "wrapper: {source} sets it to {value}, which cannot be found: cargo \
                     fails to run any compile"
                ),
                "put maybe-sccache on PATH (cargo install --locked --path <its checkout>), \
                 or name it by absolute path",
            ),
        },
        // `maybe-sccache alias`: this program under the name cc-rs looks for.
        "sccache" if resolves_to_this_program(program, cwd) => ok(format!(
            "wrapper: {source} sets it to {value}, maybe-sccache's alias (build scripts' C and \
             C++ are cached too)"
        )),
        "sccache" => warn(
            format!(
                "wrapper: {source} sets it to {value}, sccache itself: every build fails when \
                 sccache is missing or broken"
            ),
            "use maybe-sccache as the wrapper instead; it runs sccache when it works",
        ),
        _ => warn(
            format!("wrapper: {source} sets it to {value}, not maybe-sccache"),
            WRAPPER_FIX,
        ),
    }
}

/// Does the project here build C or C++ through cc-rs: is `cc` among the crates of the nearest
/// `Cargo.lock`?
fn builds_c() -> bool {
    cache_key::find_lockfile()
        .and_then(|lock| fs::read_to_string(lock).ok())
        .is_some_and(|text| text.lines().any(|l| l.trim() == "name = \"cc\""))
}

fn resolves_to_this_program(program: &Path, cwd: &Path) -> bool {
    locate::on_path(program, cwd).is_some_and(|p| locate::is_this_program(&p))
}

/// Found, runnable, which version. The path, when it can be used.
fn sccache(config: &Config, findings: &mut Vec<Finding>) -> Option<PathBuf> {
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

fn server_address() -> String {
    server::address().to_string()
}

/// Can the server start, and how long does it take? The same start the shim does, under the same
/// deadline. A server started here is stopped again: it would keep this command's environment, and
/// backend variables set later in a CI job (or only on the build step) would never reach it. The
/// first compile of the build starts one with the build's environment. A server that was already
/// running is left alone, and doctor says where it stores its cache.
fn server_start(config: &Config, sccache: &Path) -> Finding {
    match server::listening() {
        // Another user's server is neither asked, stopped, nor met with a start of our own.
        Some(owner) if !owner.trusted() => {
            return fail(
                format!(
                    "server: the sccache server at {} belongs to {}, not to this user (uid \
                     {}): the shim never uses or stops it, and every call compiles directly",
                    server_address(),
                    owner.describe(),
                    server::Owner::Us.uid().unwrap_or(0)
                ),
                "set SCCACHE_SERVER_PORT to a free port, or SCCACHE_SERVER_UDS to a socket path \
                 of your own, for the build and for doctor",
            )
        }
        Some(owner) => return running_server(sccache, owner),
        None => {}
    }
    let started = Instant::now();
    let result = server::start(sccache, config.depth, config.start_timeout);
    let took = started.elapsed();
    let ms = took.as_millis();
    // Where this environment's server keeps its cache, as sccache itself says (its config file
    // included), asked before it is stopped.
    let cache = match result {
        Ok(()) => cache_location(sccache).map_or(String::new(), |l| format!("; its cache: {l}")),
        Err(_) => String::new(),
    };
    let stopped = match result {
        Ok(()) => server::stop(sccache, STOP_TIMEOUT),
        Err(_) => true,
    };
    let stop_note = if stopped {
        "stopped again, so the build starts its own with the build's environment"
    } else {
        "it did not stop when asked: it keeps this command's environment"
    };
    match result {
        Ok(()) if !stopped => warn(
            format!(
                "server: started in {ms} ms ({}{cache}), but {stop_note}",
                server_address()
            ),
            "run `sccache --stop-server` before the build",
        ),
        Ok(()) if took * 2 > config.start_timeout => warn(
            format!(
                "server: started in {ms} ms, more than half of the {} s the shim allows \
                 ({}{cache}); {stop_note}",
                config.start_timeout.as_secs_f32(),
                server_address()
            ),
            format!(
                "raise MAYBE_SCCACHE_START_TIMEOUT (default {} s), or look at why the storage \
                 backend is slow",
                DEFAULT_START_TIMEOUT.as_secs()
            ),
        ),
        Ok(()) => ok(format!(
            "server: started in {ms} ms ({}{cache}) and {stop_note}",
            server_address()
        )),
        Err(reason) => fail(
            format!("server: did not start ({ms} ms): {reason}"),
            "run `SCCACHE_LOG=debug sccache --start-server` to see why; check the SCCACHE_* \
             storage settings; if it is only slow, raise MAYBE_SCCACHE_START_TIMEOUT",
        ),
    }
}

/// How long doctor waits for a server it started to stop.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// A server that was already running: where does it store its cache, and is that what this
/// environment asks for? A server keeps the environment it was started with.
fn running_server(sccache: &Path, owner: server::Owner) -> Finding {
    // Whose it is, beside where it is: on a shared machine that is the first question.
    let at = format!("{}, owned by {}", server_address(), owner.describe());
    let Some(location) = cache_location(sccache) else {
        return ok(format!(
            "server: an sccache server is already running ({}); it did not say where it stores \
             its cache",
            at
        ));
    };
    let local = location.starts_with("Local disk");
    const FIX: &str =
        "run `sccache --stop-server`; the next compile starts a server with this environment";
    match backend::detect().first() {
        Some(wanted) if local => warn(
            format!(
                "server: the running sccache server ({}) stores its cache on {location}, \
                 although {} selects {} here: it was started before that was set",
                at, wanted.origin, wanted.kind
            ),
            FIX,
        ),
        None if !local => warn(
            format!(
                "server: the running sccache server ({}) stores its cache in {location}, \
                 although no remote backend is set here: it was started with another environment",
                at
            ),
            FIX,
        ),
        _ => ok(format!(
            "server: an sccache server is already running ({}); its cache: {location}",
            at
        )),
    }
}

/// sccache's `cache_location` of the running server (`Local disk: "/path"`, `Redis: …`), on one
/// line, with credentials redacted (a server started elsewhere may hold some this environment
/// does not know).
fn cache_location(sccache: &Path) -> Option<String> {
    let stats = server::stats(sccache, VERSION_TIMEOUT)?;
    stats["cache_location"].as_str().map(location_words)
}

/// sccache 0.16 words a Redis location `redis, name: redis://user:password@host:port, prefix: /`.
fn location_words(location: &str) -> String {
    crate::logging::redact_secrets(&one_line(location))
}

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
fn storage() -> Vec<Finding> {
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

/// Is this a CI job? `CI` is set (to `true`) by GitHub Actions, GitLab CI and most others.
fn in_ci() -> bool {
    env::var_os("CI").is_some_and(|v| !v.is_empty())
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
fn writable(dir: &Path) -> Result<&'static str, String> {
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

fn incremental(config: &Config) -> Finding {
    if let Some(var) = config.incremental_var {
        return fail(
            format!(
                "incremental: {var}=1; sccache cannot cache incremental compiles, so the shim \
                 sends every compile straight to rustc"
            ),
            "set CARGO_INCREMENTAL=0 (a CI build gains nothing from incremental)",
        );
    }
    let what = match env::var_os("CARGO_INCREMENTAL") {
        Some(v) if v == "0" => return ok("incremental: CARGO_INCREMENTAL=0"),
        Some(v) => format!("CARGO_INCREMENTAL={} (not 0)", v.to_string_lossy()),
        None => "CARGO_INCREMENTAL is unset".to_owned(),
    };
    let text = format!(
        "incremental: {what}, so cargo may compile workspace crates incrementally (dev profiles \
         do), and sccache cannot cache those (dependencies are still cached)"
    );
    // On a developer's machine incremental rebuilds of one's own crates are worth more than
    // caching them; a CI job starts from scratch and gains nothing from them.
    if in_ci() {
        warn(text, "set CARGO_INCREMENTAL=0 in CI")
    } else {
        info(format!("{text}; in CI, set CARGO_INCREMENTAL=0"))
    }
}

fn breaker(config: &Config) -> Finding {
    let b = state::read_breaker(config.state_dir.as_deref(), &server::key());
    let now = state::now_secs();
    let reason = b.reason.as_deref().unwrap_or("no reason recorded");
    if b.is_open_at(now) {
        let left = b.open_until.unwrap_or(now).saturating_sub(now);
        return fail(
            format!(
                "breaker: open for {left} s more, compiling without sccache until then; last \
                 failure: {reason}"
            ),
            "fix the cause, then run `maybe-sccache reset` (or wait)",
        );
    }
    match b.failed_at {
        Some(at) => info(format!(
            "breaker: closed; last failure {} s ago: {reason}",
            now.saturating_sub(at)
        )),
        None => ok("breaker: closed, no failure on record"),
    }
}

fn state_dir(config: &Config) -> Finding {
    const FIX: &str = "set MAYBE_SCCACHE_STATE_DIR to a writable directory";
    match &config.state_dir {
        None => warn(
            "state: no state directory (MAYBE_SCCACHE_STATE_DIR unset, no user cache \
             directory): no breaker, no counters",
            FIX,
        ),
        Some(dir) => match writable(dir) {
            Ok(note) => ok(format!("state: {} is writable{note}", dir.display())),
            Err(e) => warn(
                format!(
                    "state: {} is not writable ({e}): no breaker, no counters",
                    dir.display()
                ),
                FIX,
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_locations_keep_no_credentials() {
        let words =
            location_words("redis, name: redis://default:s3cr3t-pw-9@127.0.0.1:6379,\n prefix: /");
        assert!(!words.contains("s3cr3t-pw-9"), "{words}");
        assert!(!words.contains('\n'), "{words}");
        assert!(words.contains("127.0.0.1:6379"), "{words}");
        assert_eq!(
            location_words("Local disk: \"/tmp/x\""),
            "Local disk: \"/tmp/x\""
        );
    }

    /// The wrapper cargo runs, judged by what it names: this program (found or not), its alias,
    /// sccache itself, or something else.
    #[cfg(unix)]
    #[test]
    fn the_wrapper_is_judged_by_what_it_names() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let cwd = dir.path();
        let level = |value: &str, program: &Path| judge_wrapper(value, "env", program, cwd).level;
        let executable = |path: &Path| {
            fs::write(path, "#!/bin/sh\n").unwrap();
            fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
        };

        let shim = cwd.join("maybe-sccache");
        assert!(level("maybe-sccache", &shim) == Level::Fail, "not found");
        executable(&shim);
        let found = if builds_c() { Level::Warn } else { Level::Ok };
        assert!(level("maybe-sccache", &shim) == found, "found");

        let sccache = cwd.join("sccache");
        executable(&sccache);
        let itself = judge_wrapper("sccache", "env", &sccache, cwd);
        assert!(itself.level == Level::Warn, "{}", itself.text);
        assert!(itself.text.contains("sccache itself"), "{}", itself.text);

        let alias_dir = cwd.join("alias");
        fs::create_dir(&alias_dir).unwrap();
        let alias = alias_dir.join("sccache");
        std::os::unix::fs::symlink(env::current_exe().unwrap(), &alias).unwrap();
        let by_alias = judge_wrapper("/x/sccache", "env", &alias, cwd);
        assert!(by_alias.level == Level::Ok, "{}", by_alias.text);
        assert!(by_alias.text.contains("alias"), "{}", by_alias.text);

        let other = judge_wrapper("ccache", "env", &sccache, cwd);
        assert!(other.level == Level::Warn, "{}", other.text);
        assert!(other.text.contains("not maybe-sccache"), "{}", other.text);
    }

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
