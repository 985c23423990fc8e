//! Issues 16 and 18: the GitHub Actions cache service and Azure Blob failing while a build runs,
//! against real servers on 127.0.0.1 (azurite, and the test-owned v2 cache service of
//! `servers/gha_cache.py` whose signed URLs point at azurite), with the real sccache 0.16.
//!
//! Each test builds a chain of crates with `-j1` through the shim and a recording `RUSTC` (the
//! real rustc, behind a script that writes down each compile and each of sccache's probes of a
//! crate). The fault fires when sccache starts on a chosen crate: black-holed (a proxy in front
//! of the backend that accepts and never answers), killed (the server process gone), or slowed
//! (every reply held back a few seconds). The build must pass with every crate compiled once,
//! and a black-holed call must be abandoned; a slow backend under a long compile never is.
//! Wall times are printed, never asserted.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cloud {
    Azure,
    Gha,
}

impl Cloud {
    /// The name the shim gives the backend.
    fn name(self) -> &'static str {
        match self {
            Cloud::Azure => "Azure",
            Cloud::Gha => "GHA",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    BlackHoled,
    Killed,
    /// Every reply of the backend held back this long; it still answers everything.
    Slow(Duration),
}

/// The servers of one test: azurite, the GHA service for [`Cloud::Gha`], and a proxy in front
/// of what sccache talks to (azurite for Azure, the service for GHA; the service's signed URLs
/// lead to its own front of azurite, not through the proxy).
struct Rig {
    _dir: tempfile::TempDir,
    azurite: Azurite,
    gha: Option<GhaService>,
    proxy: Proxy,
}

impl Rig {
    fn start(cloud: Cloud, azurite: &Path) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let az = Azurite::start(azurite, dir.path());
        let gha = (cloud == Cloud::Gha).then(|| GhaService::start(&az, dir.path()));
        if cloud == Cloud::Azure {
            az.create_container("sccache");
        }
        let proxy = Proxy::to(gha.as_ref().map_or(az.port, |g| g.port));
        Rig {
            _dir: dir,
            azurite: az,
            gha,
            proxy,
        }
    }

    /// sccache's environment for this backend: through the proxy, or `direct` to the server
    /// (a killed server then refuses connections, as it would without a proxy).
    fn env(&self, sb: &mut Sandbox, direct: bool) {
        let port = match (&self.gha, direct) {
            (_, false) => self.proxy.port,
            (Some(gha), true) => gha.port,
            (None, true) => self.azurite.port,
        };
        let at = format!("http://127.0.0.1:{port}");
        match self.gha {
            Some(_) => gha_env(sb, &format!("{at}/")),
            None => azure_env(sb, &at),
        }
    }

    fn fire(&mut self, fault: Fault) {
        match fault {
            Fault::BlackHoled => self.proxy.black_hole(),
            Fault::Killed => match self.gha.as_mut() {
                // The service and the blob store behind its signed URLs, both gone.
                Some(gha) => {
                    gha.server.kill();
                    self.azurite.server.kill();
                }
                None => self.azurite.server.kill(),
            },
            Fault::Slow(delay) => self.proxy.slow_down(delay),
        }
    }
}

/// A `RUSTC` that runs the real rustc and appends one line per call on a crate to `record`:
/// `probe lN` for sccache's `--print` and dep-info runs (its hashing, before the cache lookup),
/// `compile lN` for a compile that writes the crate (`--emit=…link`, or `--emit …link` as sccache
/// passes it); `slow`, when given, sleeps that many
/// seconds in the compile of crate `l{FIRE_AT}`, the one the fault fires on.
fn recording_rustc(sb: &Sandbox, record: &Path, slow: Option<u64>) -> PathBuf {
    let script = sb.bin.join("recording-rustc");
    let sleep = slow.map_or(String::new(), |s| {
        format!("[ \"$kind\" = compile ] && [ \"$name\" = l{FIRE_AT} ] && sleep {s}\n")
    });
    write_script(
        &script,
        &format!(
            "prev=; name=\nfor a in \"$@\"; do [ \"$prev\" = --crate-name ] && name=$a; \
             prev=$a; done\nkind=\ncase \" $* \" in *' --print'*) kind=probe;; \
             *' --emit'*link*) kind=compile;; *' --emit'*) kind=probe;; esac\n\
             [ -n \"$kind\" ] && [ \"$name\" != ___ ] && echo \"$kind $name\" >> {}\n\
             {sleep}exec {} \"$@\"\n",
            sh_quote(record.as_os_str()),
            sh_quote(toolchain_rustc().as_os_str())
        ),
    );
    script
}

/// The lines of the record that start with `kind `, as crate names.
fn recorded(record: &Path, kind: &str) -> Vec<String> {
    fs::read_to_string(record)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix(kind)?.strip_prefix(' ').map(str::to_owned))
        .collect()
}

/// The chain `l1` … `l{LIBS}` and `app`: the fault fires when sccache begins on `l{FIRE_AT}`,
/// with the crates before it stored in the backend.
const LIBS: usize = 4;
const FIRE_AT: usize = 3;

/// Builds the chain through the shim with `fault` fired as sccache starts on crate
/// `l{FIRE_AT}`; returns the sandbox, the run, its wall time, the compiles recorded and the
/// shim's log.
fn build_with_fault(
    test: &str,
    cloud: Cloud,
    fault: Fault,
    slow_compile: Option<u64>,
) -> Option<(Sandbox, Run, Duration, Vec<String>, String)> {
    let sccache = require_sccache(test)?;
    let azurite = require_azurite(test)?;
    let mut rig = Rig::start(cloud, &azurite);
    let mut sb = Sandbox::new();
    rig.env(&mut sb, fault == Fault::Killed);
    let expected = write_libs(&sb.ws, LIBS, true);
    sb.install_real_sccache(sccache);
    let record = sb.data.join("rustc-calls");
    let rustc = recording_rustc(&sb, &record, slow_compile);
    let log_file = sb.data.join("shim.log");
    sb.set_env("RUSTC", &rustc)
        .set_env("MAYBE_SCCACHE_LOG", "debug")
        .set_env("MAYBE_SCCACHE_LOG_FILE", &log_file);
    let trigger = format!("l{FIRE_AT}");
    let (r, took, fired) = std::thread::scope(|scope| {
        let rig = &mut rig;
        let watcher = scope.spawn(|| {
            let deadline = Instant::now() + BUILD;
            while !recorded(&record, "probe").contains(&trigger) {
                if Instant::now() > deadline {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            rig.fire(fault);
            true
        });
        let started = Instant::now();
        let r = run(&mut sb.cargo(&["build", "--offline", "-j1"]), BUILD);
        let took = started.elapsed();
        (r, took, watcher.join().unwrap())
    });
    let log = fs::read_to_string(&log_file).unwrap_or_default();
    assert!(
        r.status.success(),
        "{test}: {}\n--- shim log ---\n{log}",
        r.describe()
    );
    r.assert_no_shim_noise();
    assert!(fired, "{test}: sccache never began on {trigger}: {log}");
    assert_app_prints(&sb, &expected);
    let compiles = recorded(&record, "compile");
    let mut want: Vec<String> = (1..=LIBS).map(|k| format!("l{k}")).collect();
    want.push("app".into());
    let mut got = compiles.clone();
    got.sort();
    want.sort();
    assert_eq!(
        got, want,
        "{test}: every crate compiled exactly once\n--- shim log ---\n{log}"
    );
    eprintln!("{test}: the build through the shim took {took:?}");
    drop(rig);
    Some((sb, r, took, compiles, log))
}

/// A black hole mid-build: the call waiting on it is abandoned (no compiler at work in the
/// server), the breaker opens naming the backend, the rest compiles directly.
fn black_holed_mid_build(test: &str, cloud: Cloud) {
    let Some((sb, _, _, _, log)) = build_with_fault(test, cloud, Fault::BlackHoled, None) else {
        return;
    };
    assert!(
        log.contains("abandoning the call"),
        "{test}: the stuck call was abandoned: {log}"
    );
    let st = sb.status_json();
    assert_eq!(breaker_state(&st), "open", "{st:?}");
    assert!(
        breaker_reason(&st).contains("backend-stuck"),
        "{test}: {st:?}"
    );
}

#[test]
fn azure_black_holed_mid_build() {
    black_holed_mid_build("azure_black_holed_mid_build", Cloud::Azure);
}

#[test]
fn gha_black_holed_mid_build() {
    black_holed_mid_build("gha_black_holed_mid_build", Cloud::Gha);
}

/// Killed mid-build: sccache's requests are refused at once, it compiles anyway, and whatever
/// the shim makes of it, every crate compiles once.
fn killed_mid_build(test: &str, cloud: Cloud) {
    let Some((sb, _, _, _, log)) = build_with_fault(test, cloud, Fault::Killed, None) else {
        return;
    };
    let st = sb.status_json();
    eprintln!(
        "{test}: breaker {} ({}); abandoned: {}",
        breaker_state(&st),
        breaker_reason(&st),
        log.contains("abandoning the call")
    );
    if breaker_state(&st) == "open" {
        assert!(breaker_reason(&st).contains(cloud.name()), "{st:?}");
    }
}

#[test]
fn azure_killed_mid_build() {
    killed_mid_build("azure_killed_mid_build", Cloud::Azure);
}

#[test]
fn gha_killed_mid_build() {
    killed_mid_build("gha_killed_mid_build", Cloud::Gha);
}

/// A slow backend (every reply held back 3 s, longer than the watchdog's 2 s probe) while a
/// long compile runs: the compile is never abandoned, and no call is. The slow crate's compile
/// (20 s) keeps the server at work through several looks of the watchdog.
fn slow_backend_under_a_long_compile(test: &str, cloud: Cloud) {
    let slow = Fault::Slow(Duration::from_secs(3));
    let Some((sb, _, took, _, log)) = build_with_fault(test, cloud, slow, Some(20)) else {
        return;
    };
    assert!(took >= Duration::from_secs(20), "the slow compile ran");
    assert!(
        log.contains("compiler_at_work: Some(true)"),
        "{test}: the watchdog looked at the running compile: {log}"
    );
    assert!(
        !log.contains("abandoning the call"),
        "{test}: a slow backend is no reason to abandon a call: {log}"
    );
    let st = sb.status_json();
    assert_eq!(breaker_state(&st), "closed", "{test}: {st:?}\n{log}");
}

#[test]
fn azure_slow_under_a_long_compile_is_never_abandoned() {
    slow_backend_under_a_long_compile(
        "azure_slow_under_a_long_compile_is_never_abandoned",
        Cloud::Azure,
    );
}

#[test]
fn gha_slow_under_a_long_compile_is_never_abandoned() {
    slow_backend_under_a_long_compile(
        "gha_slow_under_a_long_compile_is_never_abandoned",
        Cloud::Gha,
    );
}
