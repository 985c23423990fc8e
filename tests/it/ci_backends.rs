//! Issue 18: the cache backends CI runs, against real servers started by each test: Azure Blob
//! (azurite, from npm), the GitHub Actions cache service (tests/it/servers/gha_cache.py, a
//! test-owned v2 service whose signed URLs point at azurite) and GCS through an HTTP proxy that
//! refuses or black-holes (sccache has no GCS endpoint override, so no emulator can stand in).
//!
//! Every fault test builds through the shim (it must pass), then once with sccache alone as
//! `RUSTC_WRAPPER` and once plain, and prints the three wall times; timing is never asserted.

use std::fs;
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::*;

/// A listener that accepts connections and holds them without a byte in reply, until dropped.
struct BlackHole {
    port: u16,
    stop: Arc<AtomicBool>,
}

impl BlackHole {
    fn new() -> BlackHole {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        let held = Arc::new(Mutex::new(Vec::new()));
        std::thread::spawn(move || {
            while !st.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((conn, _)) => held.lock().unwrap().push(conn),
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        BlackHole { port, stop }
    }
}

impl Drop for BlackHole {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn gcs_env(sb: &mut Sandbox, proxy_port: u16) {
    sb.set_env("SCCACHE_GCS_BUCKET", "maybe-sccache-test")
        .set_env("SCCACHE_GCS_RW_MODE", "READ_WRITE")
        .set_env("HTTPS_PROXY", format!("http://127.0.0.1:{proxy_port}"));
}

fn new_sandbox(sccache: &Path) -> (Sandbox, String) {
    let sb = Sandbox::new();
    let expected = write_libs(&sb.ws, 2, true);
    sb.install_real_sccache(sccache);
    (sb, expected)
}

/// A backend fault present from the start: the build through the shim passes, the breaker is
/// open naming `kind` with one of `words`; then sccache alone and plain cargo, for the record.
fn fault_at_start(
    test: &str,
    sb: &Sandbox,
    expected: &str,
    sccache: &Path,
    kind: &str,
    words: &[&str],
) {
    warm_up(sb);
    let started = Instant::now();
    let r = run(&mut sb.cargo(&["build", "--offline"]), BUILD);
    let shim_took = started.elapsed();
    r.assert_success().assert_no_shim_noise();
    assert_app_prints(sb, expected);
    let st = sb.status_json();
    assert_eq!(breaker_state(&st), "open", "{st:?}");
    let reason = breaker_reason(&st);
    assert!(reason.contains(kind), "reason must name {kind}: {st:?}");
    assert!(
        words.iter().any(|w| reason.contains(w)),
        "reason must say one of {words:?}: {st:?}"
    );
    let (alone, alone_took) = timed(sb, Some(&sb.bin.join("sccache")), "target-alone");
    let _ = sccache;
    let (plain, plain_took) = timed(sb, None, "target-plain");
    plain.assert_success();
    eprintln!(
        "{test}: shim {:.2} s (passed), sccache alone {:.2} s ({}), plain {:.2} s; reason: {reason}",
        shim_took.as_secs_f64(),
        alone_took.as_secs_f64(),
        if alone.code() == Some(0) {
            "passed".to_owned()
        } else {
            format!(
                "FAILED: {}",
                alone
                    .err()
                    .lines()
                    .find(|l| l.contains("error"))
                    .unwrap_or("")
                    .trim()
            )
        },
        plain_took.as_secs_f64(),
    );
}

// ---------------------------------------------------------------------------------------------
// The GitHub Actions cache service.

#[test]
fn gha_service_refused_at_start() {
    let test = "gha_service_refused_at_start";
    let Some(sccache) = require_sccache(test) else {
        return;
    };
    let (mut sb, expected) = new_sandbox(sccache);
    gha_env(&mut sb, &format!("http://127.0.0.1:{}/", reserve_port()));
    fault_at_start(
        test,
        &sb,
        &expected,
        sccache,
        "GHA",
        &["backend-unreachable"],
    );
}

#[test]
fn gha_service_unresolvable_at_start() {
    let test = "gha_service_unresolvable_at_start";
    let Some(sccache) = require_sccache(test) else {
        return;
    };
    let (mut sb, expected) = new_sandbox(sccache);
    gha_env(&mut sb, "http://gha-cache.invalid/");
    // Without a DNS server, `.invalid` may fail as "try again" rather than "no such host": then
    // the bounded start decides. Either way the reason names the service's host.
    fault_at_start(test, &sb, &expected, sccache, "GHA", &["gha-cache.invalid"]);
}

#[test]
fn gha_service_black_holed_at_start() {
    let test = "gha_service_black_holed_at_start";
    let Some(sccache) = require_sccache(test) else {
        return;
    };
    let hole = BlackHole::new();
    let (mut sb, expected) = new_sandbox(sccache);
    gha_env(&mut sb, &format!("http://127.0.0.1:{}/", hole.port));
    // Silence is down for GHA: sccache's own check would wait 10 s and fail the start.
    fault_at_start(
        test,
        &sb,
        &expected,
        sccache,
        "GHA",
        &["backend-unreachable"],
    );
}

#[test]
fn gha_service_expired_token_is_caught_without_the_network() {
    let test = "gha_service_expired_token_is_caught_without_the_network";
    let Some(sccache) = require_sccache(test) else {
        return;
    };
    let (mut sb, expected) = new_sandbox(sccache);
    gha_env(&mut sb, "http://127.0.0.1:9/");
    // {"exp":1000000000}: 2001.
    let expired = "eyJhbGciOiJub25lIn0.eyJleHAiOjEwMDAwMDAwMDB9.c2ln";
    sb.set_env("ACTIONS_RUNTIME_TOKEN", expired);
    let r = sb.build();
    r.assert_success().assert_no_shim_noise();
    assert_app_prints(&sb, &expected);
    let st = sb.status_json();
    let reason = breaker_reason(&st);
    assert!(reason.contains("expired"), "{st:?}");
    assert!(
        !reason.contains("eyJ")
            && !fs::read_dir(&sb.state).unwrap().flatten().any(|e| {
                fs::read(e.path()).is_ok_and(|b| count(&b, "eyJleHAiOjEwMDAwMDAwMDB9") > 0)
            }),
        "the token must never be written: {st:?}"
    );
}

/// The service answers 503 to everything from the start: down, as sccache's start fails.
#[test]
fn gha_service_answering_503_at_start() {
    let test = "gha_service_answering_503_at_start";
    let Some(sccache) = require_sccache(test) else {
        return;
    };
    let Some(azurite) = require_azurite(test) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let az = Azurite::start(&azurite, dir.path());
    let gha = GhaService::start(&az, dir.path());
    gha.control("5xx", "ok");
    let (mut sb, expected) = new_sandbox(sccache);
    gha_env(&mut sb, &gha.url());
    fault_at_start(test, &sb, &expected, sccache, "GHA", &["HTTP 503"]);
}

/// The service answers, but the blob store its signed URLs point at refuses connections: the
/// pre-check's one-byte read of the start-up check's entry finds it (the entry is made by a
/// first, healthy server start).
#[test]
fn gha_blob_store_refused_at_start() {
    let test = "gha_blob_store_refused_at_start";
    let Some(sccache) = require_sccache(test) else {
        return;
    };
    let Some(azurite) = require_azurite(test) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let az = Azurite::start(&azurite, dir.path());
    let gha = GhaService::start(&az, dir.path());
    let (mut sb, expected) = new_sandbox(sccache);
    gha_env(&mut sb, &gha.url());
    let r = run(sb.command(sccache).arg("--start-server"), SHORT);
    assert_eq!(r.code(), Some(0), "{}", r.describe());
    run(sb.command(sccache).arg("--stop-server"), SHORT);
    gha.control("ok", "refuse");
    fault_at_start(
        test,
        &sb,
        &expected,
        sccache,
        "GHA",
        &["blob store refuses connections"],
    );
}

/// The service and its blob store healthy: the first build stores through the service into
/// azurite, a second one from an empty local cache and a fresh server hits.
#[test]
fn gha_service_healthy_second_build_hits() {
    let test = "gha_service_healthy_second_build_hits";
    let Some(sccache) = require_sccache(test) else {
        return;
    };
    let Some(azurite) = require_azurite(test) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let az = Azurite::start(&azurite, dir.path());
    let gha = GhaService::start(&az, dir.path());
    let (mut sb, expected) = new_sandbox(sccache);
    gha_env(&mut sb, &gha.url());
    healthy_twice(&sb, &expected, sccache, "GHA");
}

/// Builds twice through the shim, with the server stopped and the local cache emptied between:
/// the second build's compiles are hits from the remote backend, and the breaker stays closed.
fn healthy_twice(sb: &Sandbox, expected: &str, sccache: &Path, kind: &str) {
    let r = sb.build();
    r.assert_success().assert_no_shim_noise();
    assert_app_prints(sb, expected);
    let st = sb.status_json();
    assert_eq!(breaker_state(&st), "closed", "{st:?}");
    let first = sb.sccache_stats(sccache);
    let misses = first
        .path(&["stats", "cache_misses", "counts", "Rust"])
        .and_then(Json::as_u64)
        .unwrap_or(0);
    assert!(
        misses >= 2,
        "first build must store its compiles: {first:?}"
    );
    run(sb.command(sccache).arg("--stop-server"), SHORT);
    fs::remove_dir_all(&sb.sccache_dir).unwrap();
    fs::create_dir_all(&sb.sccache_dir).unwrap();
    fs::remove_dir_all(&sb.target).unwrap();
    let r = sb.build();
    r.assert_success().assert_no_shim_noise();
    assert_app_prints(sb, expected);
    let second = sb.sccache_stats(sccache);
    let hits = second
        .path(&["stats", "cache_hits", "counts", "Rust"])
        .and_then(Json::as_u64)
        .unwrap_or(0);
    assert!(hits >= 2, "{kind}: the second build must hit: {second:?}");
    let st = sb.status_json();
    assert_eq!(breaker_state(&st), "closed", "{st:?}");
}

/// Rate limiting on every write (GitHub's 200 uploads a minute): the service starts healthy, so
/// sccache starts read-write, then answers 429 to every `CreateCacheEntry`. The build passes
/// through the shim and through sccache alone; the three wall times are printed.
#[test]
fn gha_service_throttling_every_write() {
    let test = "gha_service_throttling_every_write";
    let Some(sccache) = require_sccache(test) else {
        return;
    };
    let Some(azurite) = require_azurite(test) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let az = Azurite::start(&azurite, dir.path());
    let gha = GhaService::start(&az, dir.path());
    let mut sb = Sandbox::new();
    let expected = write_libs(&sb.ws, 6, false);
    sb.install_real_sccache(sccache);
    gha_env(&mut sb, &gha.url());
    let start_server = || {
        gha.control("ok", "ok");
        let r = run(sb.command(sccache).arg("--start-server"), SHORT);
        assert_eq!(r.code(), Some(0), "{}", r.describe());
        gha.control("429-writes", "ok");
    };
    let stop_server = || {
        run(sb.command(sccache).arg("--stop-server"), SHORT);
    };

    warm_up(&sb);
    start_server();
    let (shim, shim_took) = timed(&sb, Some(Path::new(shim_bin())), "target-shim");
    shim.assert_success().assert_no_shim_noise();
    let shim_stats = sb.sccache_stats(sccache);
    stop_server();
    let throttled = |log: &str| {
        log.lines()
            .filter(|l| l.contains("CreateCacheEntry") && l.contains("\" 429"))
            .count()
    };
    let log = fs::read_to_string(dir.path().join("gha.log")).unwrap();
    let throttled_shim = throttled(&log);
    assert!(throttled_shim >= 1, "no write was throttled: {log}");

    start_server();
    let (alone, alone_took) = timed(&sb, Some(&sb.bin.join("sccache")), "target-alone");
    alone.assert_success();
    stop_server();
    let log = fs::read_to_string(dir.path().join("gha.log")).unwrap();
    let throttled_alone = throttled(&log) - throttled_shim;

    let (plain, plain_took) = timed(&sb, None, "target-plain");
    plain.assert_success();
    let mut cmd = sb.command(sb.root().join("target-shim/debug/app"));
    let printed = run(&mut cmd, SHORT);
    assert_eq!(printed.out(), expected);
    eprintln!(
        "{test}: shim {:.2} s ({throttled_shim} writes throttled, sccache write errors {}), \
         sccache alone {:.2} s ({throttled_alone} writes throttled), plain {:.2} s",
        shim_took.as_secs_f64(),
        shim_stats
            .path(&["stats", "cache_write_errors"])
            .and_then(Json::as_u64)
            .unwrap_or(0),
        alone_took.as_secs_f64(),
        plain_took.as_secs_f64(),
    );
}

// ---------------------------------------------------------------------------------------------
// Azure Blob.

#[test]
fn azure_healthy_second_build_hits() {
    let test = "azure_healthy_second_build_hits";
    let Some(sccache) = require_sccache(test) else {
        return;
    };
    let Some(azurite) = require_azurite(test) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let az = Azurite::start(&azurite, dir.path());
    az.create_container("sccache");
    let (mut sb, expected) = new_sandbox(sccache);
    azure_env(&mut sb, &az.url());
    healthy_twice(&sb, &expected, sccache, "Azure");
}

#[test]
fn azure_refused_at_start() {
    let test = "azure_refused_at_start";
    let Some(sccache) = require_sccache(test) else {
        return;
    };
    let (mut sb, expected) = new_sandbox(sccache);
    azure_env(&mut sb, &format!("http://127.0.0.1:{}", reserve_port()));
    fault_at_start(
        test,
        &sb,
        &expected,
        sccache,
        "Azure",
        &["backend-unreachable"],
    );
}

// ---------------------------------------------------------------------------------------------
// Google Cloud Storage, through a proxy (the only way to make its faults real here).

#[test]
fn gcs_through_a_refusing_proxy_at_start() {
    let test = "gcs_through_a_refusing_proxy_at_start";
    let Some(sccache) = require_sccache(test) else {
        return;
    };
    let (mut sb, expected) = new_sandbox(sccache);
    gcs_env(&mut sb, reserve_port());
    fault_at_start(
        test,
        &sb,
        &expected,
        sccache,
        "GCS",
        &["backend-unreachable"],
    );
}

#[test]
fn gcs_through_a_black_holed_proxy_at_start() {
    let test = "gcs_through_a_black_holed_proxy_at_start";
    let Some(sccache) = require_sccache(test) else {
        return;
    };
    let hole = BlackHole::new();
    let (mut sb, expected) = new_sandbox(sccache);
    gcs_env(&mut sb, hole.port);
    fault_at_start(
        test,
        &sb,
        &expected,
        sccache,
        "GCS",
        &["backend-unreachable"],
    );
}

// ---------------------------------------------------------------------------------------------
// `status` and `doctor`.

/// A service that throttles every request: `status` names GHA, says it answers and that it is
/// throttled; `doctor` warns about the upload quota.
#[test]
fn status_and_doctor_name_a_throttling_gha_service() {
    let test = "status_and_doctor_name_a_throttling_gha_service";
    let Some(sccache) = require_sccache(test) else {
        return;
    };
    let Some(azurite) = require_azurite(test) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let az = Azurite::start(&azurite, dir.path());
    let gha = GhaService::start(&az, dir.path());
    gha.control("429", "ok");
    let (mut sb, _) = new_sandbox(sccache);
    gha_env(&mut sb, &gha.url());
    let st = sb.status_json();
    assert_eq!(
        st.path(&["backend", "kind"]).and_then(Json::as_str),
        Some("GHA"),
        "{st:?}"
    );
    assert_eq!(
        st.path(&["backend", "throttled"]),
        Some(&Json::Bool(true)),
        "{st:?}"
    );
    assert_eq!(
        st.path(&["backend", "answers"]),
        Some(&Json::Bool(true)),
        "{st:?}"
    );
    let doctor = run(&mut sb.shim(["doctor"]), SHORT);
    let text = doctor.out() + &doctor.err();
    assert!(
        text.contains("GHA") && text.contains("throttles") && text.contains("200 uploads"),
        "{}",
        doctor.describe()
    );
    assert!(
        !text.contains("eyJ"),
        "the token must never be shown: {text}"
    );
}

/// `doctor` explains what makes sccache's GHA backend fail before it sends a byte: no v2 flag
/// beside a results URL, an expired token, a release too old for the v2 service (a fake
/// `sccache --version`: no such release is installed here).
#[test]
fn doctor_explains_gha_misconfiguration() {
    // (extra variables, a fake `sccache --version` line, what doctor must say)
    type Case<'a> = (&'a [(&'a str, &'a str)], Option<&'a str>, &'a str);
    let cases: [Case; 3] = [
        (
            &[("ACTIONS_CACHE_SERVICE_V2", "")],
            None,
            "ACTIONS_CACHE_SERVICE_V2 is not",
        ),
        (
            &[(
                "ACTIONS_RUNTIME_TOKEN",
                "eyJhbGciOiJub25lIn0.eyJleHAiOjEwMDAwMDAwMDB9.c2ln",
            )],
            None,
            "expired",
        ),
        (&[], Some("sccache 0.9.1"), "needs sccache 0.10 or later"),
    ];
    for (vars, fake_version, says) in cases {
        let mut sb = Sandbox::new();
        gha_env(&mut sb, "http://127.0.0.1:9/");
        for (k, v) in vars {
            sb.set_env(k, v);
        }
        match fake_version {
            Some(v) => write_script(&sb.bin.join("sccache"), &format!("echo '{v}'\n")),
            None => match real_sccache() {
                Some(real) => {
                    sb.install_real_sccache(real);
                }
                None => write_script(&sb.bin.join("sccache"), "echo 'sccache 0.16.0'\n"),
            },
        }
        let doctor = run(&mut sb.shim(["doctor"]), SHORT);
        let text = doctor.out() + &doctor.err();
        assert!(
            text.contains(says),
            "expected {says:?}: {}",
            doctor.describe()
        );
        assert!(
            !text.contains("eyJ"),
            "the token must never be shown: {text}"
        );
    }
}
