//! Issue 9: remote cache backends that stop answering never hang or fail a build. Real servers
//! on 127.0.0.1 (moto's S3, Redis, memcached, wsgidav's WebDAV) started by each test on a free
//! port and stopped after; black holes are a test-owned TCP proxy that stops forwarding (both in
//! `support::backend_servers`). Each fault runs against every backend: down at start, killed
//! mid-build, black-holed mid-build, and one backend shared by two servers; long compiles
//! through a backend are in `long_compiles`.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::backend_servers::*;
use crate::support::*;

// ---------------------------------------------------------------------------------------------
// Down at start: nothing listens at the endpoint. The start fails fast, naming the backend.

fn down_at_start(kind: Kind) {
    let test = format!("{kind:?}_down_at_start");
    let Some(sccache) = require_sccache(&test) else {
        return;
    };
    let (sb, expected) = sandbox(kind, reserve_port(), 3, sccache);
    let (r, took) = timed_build(&sb, &["build", "--offline"]);
    r.assert_success().assert_no_shim_noise();
    assert_app_prints(&sb, &expected);
    let st = sb.status_json();
    assert_eq!(breaker_state(&st), "open", "{st:?}");
    assert_reason_names(&st, kind, &["backend-unreachable"]);
    // The pre-check answers in milliseconds; sccache's own start would wait 10 s or more.
    assert!(took < Duration::from_secs(60), "took {took:?}");
    let text = run(&mut sb.shim(["status"]), SHORT);
    assert!(text.out().contains(kind.name()), "{}", text.describe());
}

/// Issue 16, item 5: a multilevel chain with one level down is judged as sccache itself would
/// run it. sccache 0.16 checks every level when its server starts, and a level that fails the
/// check ends the start ("storage check failed") instead of falling through to the disk level
/// (seen here with Redis's port closed: the server exits after its pool's retries). So the shim
/// fails open at once, naming Redis, rather than waiting for a start that cannot succeed.
#[test]
fn a_disk_redis_chain_with_redis_down_fails_open_as_sccache_cannot_start() {
    let test = "a_disk_redis_chain_with_redis_down_fails_open_as_sccache_cannot_start";
    let Some(sccache) = require_sccache(test) else {
        return;
    };
    let (mut sb, expected) = sandbox(Kind::Redis, reserve_port(), 2, sccache);
    sb.set_env("SCCACHE_MULTILEVEL_CHAIN", "disk,redis");
    let (r, took) = timed_build(&sb, &["build", "--offline"]);
    r.assert_success().assert_no_shim_noise();
    assert_app_prints(&sb, &expected);
    assert!(took < Duration::from_secs(60), "took {took:?}");
    let st = sb.status_json();
    assert_eq!(breaker_state(&st), "open", "{st:?}");
    assert_reason_names(&st, Kind::Redis, &["backend-unreachable"]);
    // What the judgement rests on: sccache's own server, run in the foreground with the same
    // environment, does not come up with the Redis level down.
    let server = run(
        sb.command(sccache)
            .env("SCCACHE_START_SERVER", "1")
            .env("SCCACHE_NO_DAEMON", "1")
            .env("SCCACHE_LOG", "warn"),
        BUILD,
    );
    assert_ne!(server.code(), Some(0), "{}", server.describe());
    assert!(
        server.err().contains("storage check failed") || server.err().contains("failed to read"),
        "{}",
        server.describe()
    );
}

#[test]
fn s3_down_at_start() {
    down_at_start(Kind::S3);
}

#[test]
fn redis_down_at_start() {
    down_at_start(Kind::Redis);
}

#[test]
fn memcached_down_at_start() {
    down_at_start(Kind::Memcached);
}

#[test]
fn webdav_down_at_start() {
    down_at_start(Kind::Webdav);
}

// ---------------------------------------------------------------------------------------------
// Killed mid-build: the server starts against a healthy backend and serves the first crate; then
// the backend process is killed and the rest of the chain is built.

fn killed_mid_build(kind: Kind) {
    let test = format!("{kind:?}_killed_mid_build");
    let Some(sccache) = require_sccache(&test) else {
        return;
    };
    let Some(program) = require(kind, &test) else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let mut service = Service::start(kind, &program, data.path());
    let (sb, expected) = sandbox(kind, service.port, 4, sccache);
    let (r, _) = timed_build(&sb, &["build", "--offline", "-p", "l1"]);
    r.assert_success().assert_no_shim_noise();
    let st = sb.status_json();
    assert_eq!(breaker_state(&st), "closed", "{st:?}");
    service.kill();
    fs::remove_dir_all(&sb.target).unwrap();
    let (r, took) = timed_build(&sb, &["build", "--offline", "-j1"]);
    r.assert_success().assert_no_shim_noise();
    assert_app_prints(&sb, &expected);
    let st = sb.status_json();
    eprintln!("{test}: rebuild took {took:?}; status {st}");
    // Every crate waiting out sccache's read and write time-outs would take minutes.
    assert!(took < Duration::from_secs(90), "took {took:?}: {st:?}");
    if breaker_state(&st) == "open" {
        assert_reason_names(&st, kind, &["backend", "start-failed"]);
    }
}

#[test]
fn s3_killed_mid_build() {
    killed_mid_build(Kind::S3);
}

#[test]
fn redis_killed_mid_build() {
    killed_mid_build(Kind::Redis);
}

#[test]
fn memcached_killed_mid_build() {
    killed_mid_build(Kind::Memcached);
}

#[test]
fn webdav_killed_mid_build() {
    killed_mid_build(Kind::Webdav);
}

// ---------------------------------------------------------------------------------------------
// Black-holed mid-build: the backend sits behind a proxy that stops answering. Through sccache
// alone one call then takes about 444 s (S3); through the shim the stuck call is abandoned
// within seconds, the breaker opens naming the backend, and the server is stopped.

fn black_holed_mid_build(kind: Kind) {
    let test = format!("{kind:?}_black_holed_mid_build");
    let Some(sccache) = require_sccache(&test) else {
        return;
    };
    let Some(program) = require(kind, &test) else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let _service = Service::start(kind, &program, data.path());
    let proxy = Proxy::to(_service.port);
    let (sb, expected) = sandbox(kind, proxy.port, 4, sccache);
    let (r, _) = timed_build(&sb, &["build", "--offline", "-p", "l1"]);
    r.assert_success().assert_no_shim_noise();
    assert_eq!(breaker_state(&sb.status_json()), "closed");
    proxy.black_hole();
    fs::remove_dir_all(&sb.target).unwrap();
    let (r, took) = timed_build(&sb, &["build", "--offline", "-j1"]);
    r.assert_success().assert_no_shim_noise();
    assert_app_prints(&sb, &expected);
    let st = sb.status_json();
    eprintln!("{test}: rebuild took {took:?}; status {st}");
    assert!(took < Duration::from_secs(120), "took {took:?}: {st:?}");
    assert_eq!(breaker_state(&st), "open", "{st:?}");
    assert_reason_names(&st, kind, &["backend-stuck", "backend-errors"]);
    // The server was told to stop; sccache's own shutdown takes at most 10 s.
    let deadline = Instant::now() + Duration::from_secs(30);
    while sb.status_json().path(&["sccache", "server_up"]) == Some(&Json::Bool(true)) {
        assert!(Instant::now() < deadline, "the stuck server is still up");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn s3_black_holed_mid_build() {
    black_holed_mid_build(Kind::S3);
}

#[test]
fn redis_black_holed_mid_build() {
    black_holed_mid_build(Kind::Redis);
}

#[test]
fn memcached_black_holed_mid_build() {
    black_holed_mid_build(Kind::Memcached);
}

#[test]
fn webdav_black_holed_mid_build() {
    black_holed_mid_build(Kind::Webdav);
}

/// Several calls stuck at once (`-j4` over independent crates): each is abandoned, the server is
/// stopped under the others, and what those others print about it never reaches cargo.
#[test]
fn s3_black_holed_under_parallel_calls() {
    let test = "s3_black_holed_under_parallel_calls";
    let Some(sccache) = require_sccache(test) else {
        return;
    };
    let Some(program) = require(Kind::S3, test) else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let service = Service::start(Kind::S3, &program, data.path());
    let proxy = Proxy::to(service.port);
    let mut sb = Sandbox::new();
    for (k, v) in Kind::S3.env(proxy.port) {
        sb.set_env(k, v);
    }
    let expected = write_libs(&sb.ws, 6, false);
    sb.install_real_sccache(sccache);
    let (r, _) = timed_build(&sb, &["build", "--offline", "-p", "l1"]);
    r.assert_success().assert_no_shim_noise();
    proxy.black_hole();
    fs::remove_dir_all(&sb.target).unwrap();
    let (r, took) = timed_build(&sb, &["build", "--offline", "-j4"]);
    r.assert_success().assert_no_shim_noise();
    assert_app_prints(&sb, &expected);
    assert!(took < Duration::from_secs(120), "took {took:?}");
    let st = sb.status_json();
    assert_eq!(breaker_state(&st), "open", "{st:?}");
    assert_reason_names(&st, Kind::S3, &["backend-stuck"]);
}

/// A backend that is a black hole from the start: the pre-check cannot call that "down" (a
/// time-out proves nothing), so the bounded start decides, and the build still passes quickly.
#[test]
fn s3_black_holed_at_start() {
    let Some(sccache) = require_sccache("s3_black_holed_at_start") else {
        return;
    };
    let proxy = Proxy::to(reserve_port());
    proxy.black_hole();
    let (sb, expected) = sandbox(Kind::S3, proxy.port, 3, sccache);
    let (r, took) = timed_build(&sb, &["build", "--offline"]);
    r.assert_success().assert_no_shim_noise();
    assert_app_prints(&sb, &expected);
    let st = sb.status_json();
    assert_eq!(breaker_state(&st), "open", "{st:?}");
    let reason = breaker_reason(&st);
    assert!(reason.contains("S3"), "{st:?}");
    assert!(
        !reason.contains("backend-unreachable"),
        "a silent endpoint is not unreachable for sure: {st:?}"
    );
    assert!(took < Duration::from_secs(90), "took {took:?}");
}

// ---------------------------------------------------------------------------------------------
// One backend shared by two sccache servers (separate SCCACHE_DIR and port): the second build is
// served from it.

fn shared(kind: Kind) {
    let test = format!("{kind:?}_shared");
    let Some(sccache) = require_sccache(&test) else {
        return;
    };
    let Some(program) = require(kind, &test) else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let service = Service::start(kind, &program, data.path());
    let (first, expected) = sandbox(kind, service.port, 3, sccache);
    let (second, _) = sandbox(kind, service.port, 3, sccache);
    // Both machines build the same checkout at the same paths, as CI runners do: sccache's key
    // for a Rust crate covers those. Only the sccache side (SCCACHE_DIR, port, server) differs.
    for sb in [&first, &second] {
        let _ = fs::remove_dir_all(&first.target);
        let mut build = sb.cargo(&["build", "--offline"]);
        build
            .current_dir(&first.ws)
            .env("CARGO_TARGET_DIR", &first.target)
            .env("CARGO_HOME", &first.cargo_home);
        run(&mut build, BUILD)
            .assert_success()
            .assert_no_shim_noise();
        assert_app_prints(&first, &expected);
    }
    let hits = |sb: &Sandbox| {
        sb.sccache_stats(sccache)
            .path(&["stats", "cache_hits", "counts"])
            .map(Json::sum_counts)
            .unwrap_or(0)
    };
    assert_eq!(hits(&first), 0, "the first machine starts cold");
    assert!(
        hits(&second) >= 3,
        "the second machine is served from {kind:?}: {} hits",
        hits(&second)
    );
    assert_ne!(first.port, second.port);
    assert_ne!(first.sccache_dir, second.sccache_dir);
    // `status` names the backend the server uses and says it answers.
    let st = second.status_json();
    let backend = st.path(&["backend"]).cloned().unwrap_or_default();
    assert!(backend.to_string().contains(kind.name()), "{st:?}");
    assert_eq!(
        backend.path(&["answers"]),
        Some(&Json::Bool(true)),
        "{st:?}"
    );
}

#[test]
fn s3_shared_by_two_servers() {
    shared(Kind::S3);
}

#[test]
fn redis_shared_by_two_servers() {
    shared(Kind::Redis);
}

#[test]
fn memcached_shared_by_two_servers() {
    shared(Kind::Memcached);
}

#[test]
fn webdav_shared_by_two_servers() {
    shared(Kind::Webdav);
}

// ---------------------------------------------------------------------------------------------
// The backend given in sccache's config file, not the environment.

/// sccache reads its backend from `SCCACHE_CONF` too; the pre-check does the same. A Redis
/// endpoint with a password in the file refuses connections: the start fails at once, and
/// neither the breaker, `status` nor `doctor` shows the password.
#[test]
fn backend_in_the_sccache_config_file_is_checked_and_its_secret_kept() {
    let Some(sccache) = require_sccache("config_file_backend") else {
        return;
    };
    let mut sb = Sandbox::new();
    let conf = sb.data.join("sccache.toml");
    let closed = reserve_port();
    fs::write(
        &conf,
        format!(
            "[cache.redis]\nendpoint = \"redis://:pw-5hh7q1x@127.0.0.1:{closed}/0\"\n\n\
             [cache.disk]\ndir = \"/nonexistent\"\n"
        ),
    )
    .unwrap();
    sb.set_env("SCCACHE_CONF", &conf);
    let expected = write_libs(&sb.ws, 2, true);
    sb.install_real_sccache(sccache);
    let (r, took) = timed_build(&sb, &["build", "--offline"]);
    r.assert_success().assert_no_shim_noise();
    assert_app_prints(&sb, &expected);
    assert!(took < Duration::from_secs(60), "took {took:?}");
    let st = sb.status_json();
    assert_eq!(breaker_state(&st), "open", "{st:?}");
    assert_reason_names(&st, Kind::Redis, &["backend-unreachable"]);
    assert!(breaker_reason(&st).contains("config file"), "{st:?}");
    assert_eq!(
        st.path(&["backend", "answers"]),
        Some(&Json::Bool(false)),
        "{st:?}"
    );
    for args in [&["status"][..], &["status", "--markdown"], &["doctor"]] {
        let out = run(&mut sb.shim(args), SHORT);
        let all = String::from_utf8_lossy(&out.all()).into_owned();
        assert!(!all.contains("pw-5hh7q1x"), "{args:?}: {all}");
        assert!(
            all.contains("Redis at redis://127.0.0.1:"),
            "{args:?}: {all}"
        );
    }
    let doctor = run(&mut sb.shim(["doctor"]), SHORT);
    assert!(
        doctor
            .out()
            .lines()
            .any(|l| l.starts_with("FAIL") && l.contains("backend: Redis")),
        "{}",
        doctor.describe()
    );
    assert!(
        !any_file_holds(&sb.state, "pw-5hh7q1x"),
        "the password reached the state dir"
    );
}

/// Whether a file under `dir` (at any depth) contains `needle`.
fn any_file_holds(dir: &Path, needle: &str) -> bool {
    fs::read_dir(dir).into_iter().flatten().flatten().any(|e| {
        let path = e.path();
        if path.is_dir() {
            any_file_holds(&path, needle)
        } else {
            fs::read(&path).is_ok_and(|bytes| count(&bytes, needle) > 0)
        }
    })
}
