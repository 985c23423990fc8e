//! Issue 9: a long legitimate compile through a healthy backend is never abandoned, and a
//! backend that goes silent or full during one is judged by what the watchdog saw. Real sccache
//! 0.16 against a real Redis on 127.0.0.1, behind a test-owned proxy that can turn into a black
//! hole.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::backend_servers::*;
use crate::support::*;

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
