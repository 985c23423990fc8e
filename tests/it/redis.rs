//! Issue 3: real remote-cache faults, real sccache 0.16 against a real Redis server on
//! 127.0.0.1: unreachable at start, killed while the server runs, gone after the server idled
//! out, and one Redis shared by two sccache servers.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

/// A `redis-server` on a free loopback port, killed when dropped.
struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    fn start(dir: &Path) -> Option<Redis> {
        let server = which_redis()?;
        let port = reserve_port();
        let child = Command::new(server)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start redis-server");
        let redis = Redis { child, port };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(redis)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

fn which_redis() -> Option<PathBuf> {
    for dir in ["/usr/bin", "/usr/local/bin", "/usr/sbin"] {
        let p = Path::new(dir).join("redis-server");
        if p.is_file() {
            return Some(p);
        }
    }
    None
}

fn require_redis(test: &str) -> bool {
    if which_redis().is_some() {
        return true;
    }
    assert!(
        !in_ci(),
        "{test}: redis-server is required in CI but was not found"
    );
    eprintln!("skipping {test}: redis-server not found (install redis-server)");
    false
}

#[test]
fn redis_unreachable_at_start_the_build_passes() {
    for (_, sccache) in sccaches("redis_unreachable") {
        redis_unreachable_at_start_with(&sccache);
    }
}

fn redis_unreachable_at_start_with(sccache: &Path) {
    let mut sb = Sandbox::new();
    // A port nothing listens on, and nothing will: reserved for this test.
    let closed = reserve_port();
    sb.set_env(
        "SCCACHE_REDIS_ENDPOINT",
        format!("redis://127.0.0.1:{closed}"),
    );
    let expected = write_libs(&sb.ws, 3, true);
    sb.install_real_sccache(sccache);

    // The fault is real: sccache alone fails the build.
    let mut alone = sb.cargo(&["build", "--offline"]);
    alone
        .env("RUSTC_WRAPPER", sccache)
        .env("CARGO_TARGET_DIR", sb.root().join("target-alone"));
    let r = run(&mut alone, BUILD);
    assert!(
        !r.status.success(),
        "sccache alone should fail: {}",
        r.describe()
    );
    assert!(r.err().contains("sccache: error"), "{}", r.describe());

    let r = sb.build();
    r.assert_success().assert_no_shim_noise();
    assert_app_prints(&sb, &expected);
    let st = sb.status_json();
    assert_eq!(breaker_state(&st), "open");
    assert_eq!(
        st.path(&["counters", "trips"]).and_then(Json::as_u64),
        Some(1)
    );
    assert!(breaker_reason(&st).contains("unreachable"), "{st:?}");
}

#[test]
fn redis_killed_while_the_server_runs_opens_the_breaker() {
    let mut sb = Sandbox::new();
    let Some(sccache) = require_sccache("redis_killed") else {
        return;
    };
    if !require_redis("redis_killed") {
        return;
    }
    let mut redis = Redis::start(&sb.data).unwrap();
    sb.set_env("SCCACHE_REDIS_ENDPOINT", redis.url());
    let expected = write_libs(&sb.ws, 12, true);
    sb.install_real_sccache(sccache);
    // The server starts against a healthy Redis and serves the first crate.
    run(&mut sb.cargo(&["build", "--offline", "-p", "l1"]), BUILD).assert_success();
    assert_eq!(breaker_state(&sb.status_json()), "closed");
    redis.kill();
    fs::remove_dir_all(&sb.target).unwrap();
    // sccache alone would make every cacheable crate wait out its Redis time-outs (about a
    // minute each, 12 minutes here). The first call stuck on the dead Redis opens the breaker
    // (the watchdog sees no compiler at work and Redis refusing); the rest compile directly.
    let r = run(
        &mut sb.cargo(&["build", "--offline", "-j1"]),
        Duration::from_secs(420),
    );
    r.assert_success().assert_no_shim_noise();
    assert_app_prints(&sb, &expected);
    let st = sb.status_json();
    assert_eq!(breaker_state(&st), "open", "{st:?}");
    let reason = breaker_reason(&st);
    assert!(
        reason.contains("backend-stuck: Redis") || reason.contains("backend-errors"),
        "{st:?}"
    );
    assert!(counter(&st, "fallback", "breaker-open") >= 10, "{st:?}");
}

#[test]
fn one_redis_shared_by_two_sccache_servers() {
    let Some(sccache) = require_sccache("shared_redis") else {
        return;
    };
    if !require_redis("shared_redis") {
        return;
    }
    let mut machines = [Sandbox::new(), Sandbox::new()];
    let redis = Redis::start(&machines[0].data).unwrap();
    // Both machines build the same checkout at the same paths, as CI runners do: sccache's key
    // for a Rust crate covers CARGO_* variables, CARGO_MANIFEST_DIR, CARGO_HOME and
    // CARGO_TARGET_DIR among them. Only the sccache side (SCCACHE_DIR, port, server) differs.
    let checkout = machines[0].ws.clone();
    let target = machines[0].target.clone();
    let cargo_home = machines[0].cargo_home.clone();
    let expected = write_libs(&checkout, 4, true);
    for sb in &mut machines {
        sb.set_env("SCCACHE_REDIS_ENDPOINT", redis.url());
        sb.install_real_sccache(sccache);
    }
    for sb in &machines {
        let _ = fs::remove_dir_all(&target);
        let mut build = sb.cargo(&["build", "--offline"]);
        build
            .current_dir(&checkout)
            .env("CARGO_TARGET_DIR", &target)
            .env("CARGO_HOME", &cargo_home);
        run(&mut build, BUILD).assert_success();
        assert_app_prints(&machines[0], &expected);
    }
    let hits = |sb: &Sandbox| {
        sb.sccache_stats(sccache)
            .path(&["stats", "cache_hits", "counts"])
            .map(Json::sum_counts)
            .unwrap_or(0)
    };
    assert_eq!(hits(&machines[0]), 0, "the first machine starts cold");
    assert!(
        hits(&machines[1]) >= 4,
        "the second machine is served from Redis: {} hits",
        hits(&machines[1])
    );
    assert_ne!(machines[0].port, machines[1].port);
    assert_ne!(machines[0].sccache_dir, machines[1].sccache_dir);
}

/// An sccache server that idled out, with its backend gone since: the next build must not wait
/// on a server start that cannot succeed.
#[test]
fn server_idled_out_and_backend_gone_since() {
    let mut sb = Sandbox::new();
    let Some(sccache) = require_sccache("idled_out") else {
        return;
    };
    if !require_redis("idled_out") {
        return;
    }
    let mut redis = Redis::start(&sb.data).unwrap();
    sb.set_env("SCCACHE_REDIS_ENDPOINT", redis.url());
    let expected = write_libs(&sb.ws, 3, true);
    sb.install_real_sccache(sccache);
    sb.build().assert_success();
    assert!(
        sb.status_json()
            .path(&["counters", "forwarded"])
            .and_then(Json::as_u64)
            >= Some(1)
    );
    // The server goes away (as after SCCACHE_IDLE_TIMEOUT), then the backend does.
    run(sb.command(sccache).arg("--stop-server"), SHORT).assert_success();
    redis.kill();
    fs::remove_dir_all(&sb.target).unwrap();
    let r = sb.build();
    r.assert_success().assert_no_shim_noise();
    assert_app_prints(&sb, &expected);
    let st = sb.status_json();
    assert_eq!(breaker_state(&st), "open", "{st:?}");
    assert!(
        breaker_reason(&st).contains("backend-unreachable"),
        "{st:?}"
    );
    assert_eq!(st.path(&["sccache", "server_up"]), Some(&Json::Bool(false)));
}
