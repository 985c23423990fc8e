//! Issue 9: remote cache backends that stop answering never hang or fail a build. Real servers
//! on 127.0.0.1 (moto's S3, Redis, memcached, wsgidav's WebDAV) started by each test on a free
//! port and stopped after; black holes are a test-owned TCP proxy that stops forwarding.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    S3,
    Redis,
    Memcached,
    Webdav,
}

impl Kind {
    /// The name the shim gives the backend in breaker reasons and `status`.
    fn name(self) -> &'static str {
        match self {
            Kind::S3 => "S3",
            Kind::Redis => "Redis",
            Kind::Memcached => "memcached",
            Kind::Webdav => "WebDAV",
        }
    }

    fn program(self) -> &'static str {
        match self {
            Kind::S3 => "moto_server",
            Kind::Redis => "redis-server",
            Kind::Memcached => "memcached",
            Kind::Webdav => "wsgidav",
        }
    }

    /// sccache's environment for a backend at `port` on 127.0.0.1.
    fn env(self, port: u16) -> Vec<(&'static str, String)> {
        let at = |scheme: &str| format!("{scheme}://127.0.0.1:{port}");
        match self {
            Kind::S3 => vec![
                ("SCCACHE_BUCKET", BUCKET.into()),
                ("SCCACHE_ENDPOINT", at("http")),
                ("SCCACHE_REGION", "us-east-1".into()),
                ("SCCACHE_S3_USE_SSL", "false".into()),
                ("AWS_ACCESS_KEY_ID", "testing".into()),
                ("AWS_SECRET_ACCESS_KEY", "testing-secret".into()),
            ],
            Kind::Redis => vec![("SCCACHE_REDIS_ENDPOINT", at("redis"))],
            Kind::Memcached => vec![("SCCACHE_MEMCACHED_ENDPOINT", at("tcp"))],
            Kind::Webdav => vec![("SCCACHE_WEBDAV_ENDPOINT", at("http"))],
        }
    }
}

const BUCKET: &str = "maybe-sccache-test";

/// The server program, from `PATH` or the usual places; `None` (after saying why) to skip, and a
/// failure with CI set.
fn require(kind: Kind, test: &str) -> Option<PathBuf> {
    let name = kind.program();
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/bin", "/usr/sbin", "/usr/local/bin"].map(PathBuf::from));
    if let Some(sccache) = real_sccache() {
        // The CI virtualenv holds sccache, moto and wsgidav side by side.
        dirs.extend(sccache.parent().map(Path::to_owned));
    }
    dirs.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/ci-venv/bin"));
    if let Some(found) = dirs.iter().map(|d| d.join(name)).find(|p| p.is_file()) {
        return Some(found);
    }
    assert!(
        !in_ci(),
        "{test}: {name} is required in CI but was not found (.ci/run installs it)"
    );
    eprintln!("skipping {test}: {name} not found");
    None
}

fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not come up on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One HTTP/1.1 request; the status line's code.
fn http(port: u16, method: &str, path: &str) -> u16 {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    reply
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// A backend server on a free loopback port, killed when dropped.
struct Service {
    child: Child,
    port: u16,
}

impl Service {
    fn start(kind: Kind, program: &Path, dir: &Path) -> Service {
        let port = reserve_port();
        let p = port.to_string();
        let mut cmd = Command::new(program);
        match kind {
            Kind::S3 => cmd.args(["-H", "127.0.0.1", "-p", &p]),
            Kind::Redis => cmd
                .args([
                    "--port",
                    &p,
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .arg("--dir")
                .arg(dir),
            Kind::Memcached => {
                cmd.args(["-l", "127.0.0.1", "-p", &p, "-U", "0", "-m", "64"]);
                // memcached refuses to run as root unless told which user to be.
                // SAFETY: a plain getter.
                if unsafe { libc::geteuid() } == 0 {
                    cmd.args(["-u", "root"]);
                }
                &mut cmd
            }
            Kind::Webdav => {
                let root = dir.join("webdav-root");
                fs::create_dir_all(&root).unwrap();
                cmd.args([
                    "--host",
                    "127.0.0.1",
                    "--port",
                    &p,
                    "--auth",
                    "anonymous",
                    "--root",
                ])
                .arg(&root)
            }
        };
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        let service = Service { child, port };
        wait_for_port(port, kind.program());
        if kind == Kind::S3 {
            let code = http(port, "PUT", &format!("/{BUCKET}"));
            assert_eq!(code, 200, "moto did not create the bucket");
        }
        service
    }

    fn kill(&mut self) {
        // SAFETY: signalling the process group this test started.
        unsafe {
            libc::kill(-(self.child.id() as i32), libc::SIGKILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A sandbox with the real sccache, a chain of `libs` crates, and the backend's environment for
/// a server at `port`.
fn sandbox(kind: Kind, port: u16, libs: usize, sccache: &Path) -> (Sandbox, String) {
    let mut sb = Sandbox::new();
    for (k, v) in kind.env(port) {
        sb.set_env(k, v);
    }
    let expected = write_libs(&sb.ws, libs, true);
    sb.install_real_sccache(sccache);
    (sb, expected)
}

fn timed_build(sb: &Sandbox, args: &[&str]) -> (Run, Duration) {
    let started = Instant::now();
    let r = run(&mut sb.cargo(args), BUILD);
    (r, started.elapsed())
}

fn assert_reason_names(st: &Json, kind: Kind, words: &[&str]) {
    let reason = breaker_reason(st);
    assert!(
        reason.contains(kind.name()),
        "reason must name {kind:?}: {st:?}"
    );
    assert!(
        words.iter().any(|w| reason.contains(w)),
        "reason must say one of {words:?}: {st:?}"
    );
}

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
// A long legitimate compile through a healthy backend is never abandoned.

/// A long compile (a compiler that sleeps `secs` over one crate) through sccache and Redis.
/// With `black_hole_during`, Redis stops answering while that compile runs: only the running
/// compiler then keeps the watchdog from calling the call stuck. Once the compile is over, the
/// server waits on the dead backend to store the result, and that wait is abandoned: the crate
/// compiles again, directly, and its output is shown once.
fn long_compile(secs: u64, black_hole_during: bool) {
    let test = format!("long_compile({secs} s, black_hole_during: {black_hole_during})");
    let Some(sccache) = require_sccache(&test) else {
        return;
    };
    let Some(program) = require(Kind::Redis, &test) else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let service = Service::start(Kind::Redis, &program, data.path());
    let proxy = Proxy::to(service.port);
    let (mut sb, expected) = sandbox(Kind::Redis, proxy.port, 2, sccache);
    // A compiler that takes `secs` over crate l2 (not over sccache's `--print` and dep-info
    // probes of it) and is rustc otherwise; it records those compiles.
    let slow = sb.bin.join("slow-rustc");
    let count_file = sb.data.join("slow-compiles");
    write_script(
        &slow,
        &format!(
            "case \" $* \" in *' --crate-name l2 '*) case \"$*\" in *--print*) ;; *metadata,link*) \
             echo \"$*\" >> {}; sleep {secs};; esac;; esac\nexec {} \"$@\"\n",
            sh_quote(count_file.as_os_str()),
            sh_quote(toolchain_rustc().as_os_str())
        ),
    );
    sb.set_env("RUSTC", &slow);
    sb.set_env("MAYBE_SCCACHE_LOG", "debug");
    sb.set_env("MAYBE_SCCACHE_LOG_FILE", sb.data.join("shim.log"));
    let (r, took) = std::thread::scope(|scope| {
        if black_hole_during {
            scope.spawn(|| {
                let deadline = Instant::now() + BUILD;
                while !count_file.exists() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(50));
                }
                // Into the compile: the cache lookup is long done.
                std::thread::sleep(Duration::from_secs(2));
                proxy.black_hole();
            });
        }
        timed_build(&sb, &["build", "--offline", "-j1"])
    });
    let log = fs::read_to_string(sb.data.join("shim.log")).unwrap_or_default();
    assert!(
        r.status.success() && count(&r.all(), "sccache") == 0,
        "{}\n--- shim log ---\n{log}",
        r.describe()
    );
    assert_app_prints(&sb, &expected);
    assert!(
        took >= Duration::from_secs(secs),
        "the slow compile ran: {took:?}"
    );
    assert!(
        log.contains("compiler_at_work: Some(true)"),
        "the watchdog looked at the running compiler: {log}"
    );
    // Not one look at an idle server before the compile was over.
    let first_idle = log
        .lines()
        .filter(|l| l.contains("compiler_at_work: Some(false)"))
        .find_map(|l| {
            l.split("watchdog ")
                .nth(1)?
                .split(' ')
                .next()?
                .parse::<u64>()
                .ok()
        });
    if let Some(at) = first_idle {
        assert!(
            at >= secs,
            "the server was idle at {at} s, during the compile: {log}"
        );
    }
    let compiles = fs::read_to_string(&count_file).unwrap_or_default();
    let st = sb.status_json();
    if black_hole_during {
        assert_eq!(
            compiles.lines().count(),
            2,
            "compiled once by sccache, then directly after the stuck write: {compiles}\n{log}"
        );
        assert_reason_names(&st, Kind::Redis, &["backend-stuck"]);
    } else {
        assert_eq!(
            compiles.lines().count(),
            1,
            "the slow crate was compiled once: {compiles}\n--- shim log ---\n{log}"
        );
        assert_eq!(breaker_state(&st), "closed", "{st:?}");
        assert_eq!(breaker_reason(&st), "", "{st:?}");
    }
    drop(proxy);
    drop(service);
}

/// A full Redis (`maxmemory` reached, no eviction) refuses every write at once and still serves
/// hits and answers `PING`. A compile that keeps the server busy past the watchdog's first look
/// ends with sccache's write-error counter up by one: its own result could not be stored. That
/// is no reason to stop caching (nothing waited on the backend, and hits still come), so the
/// breaker stays closed. The watchdog saw a compile at work on every look, and the backend answers.
#[test]
fn a_slow_compile_whose_result_a_full_redis_refuses_leaves_the_breaker_closed() {
    let test = "a_slow_compile_whose_result_a_full_redis_refuses_leaves_the_breaker_closed";
    let Some(sccache) = require_sccache(test) else {
        return;
    };
    let Some(program) = require(Kind::Redis, test) else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let service = Service::start(Kind::Redis, &program, data.path());
    let mut redis = TcpStream::connect(("127.0.0.1", service.port)).unwrap();
    redis.write_all(b"CONFIG SET maxmemory 1\r\n").unwrap();
    let mut reply = [0u8; 64];
    let n = redis.read(&mut reply).unwrap();
    assert_eq!(&reply[..n], b"+OK\r\n", "Redis took the memory limit");
    let (mut sb, expected) = sandbox(Kind::Redis, service.port, 2, sccache);
    // Crate l2 takes 7 s to compile: past the watchdog's first look, at 5 s.
    let slow = sb.bin.join("slow-rustc");
    write_script(
        &slow,
        &format!(
            "case \" $* \" in *' --crate-name l2 '*) case \"$*\" in *--print*) ;; \
             *metadata,link*) sleep 7;; esac;; esac\nexec {} \"$@\"\n",
            sh_quote(toolchain_rustc().as_os_str())
        ),
    );
    sb.set_env("RUSTC", &slow);
    sb.set_env("MAYBE_SCCACHE_LOG", "debug");
    sb.set_env("MAYBE_SCCACHE_LOG_FILE", sb.data.join("shim.log"));
    let (r, _) = timed_build(&sb, &["build", "--offline", "-j1"]);
    let log = fs::read_to_string(sb.data.join("shim.log")).unwrap_or_default();
    assert!(
        r.status.success() && count(&r.all(), "sccache") == 0,
        "{}\n--- shim log ---\n{log}",
        r.describe()
    );
    assert_app_prints(&sb, &expected);
    assert!(
        log.contains("compiler_at_work: Some(true)"),
        "the watchdog looked at the running compile: {log}"
    );
    let stats = sb.sccache_stats(sccache);
    let write_errors = stats
        .path(&["stats", "cache_write_errors"])
        .and_then(Json::as_u64)
        .unwrap_or(0);
    assert!(write_errors >= 1, "Redis refused the writes: {stats:?}");
    let st = sb.status_json();
    assert_eq!(breaker_state(&st), "closed", "{st:?}\n{log}");
    assert_eq!(breaker_reason(&st), "", "{st:?}");
    assert!(
        log.contains("breaker left closed"),
        "the rise was seen and judged: {log}"
    );
    drop(service);
}

#[test]
fn a_sixty_second_compile_is_never_abandoned() {
    long_compile(60, false);
}

#[test]
fn a_long_compile_is_kept_while_the_backend_goes_silent() {
    long_compile(25, true);
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
