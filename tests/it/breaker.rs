//! The breaker's judgement of slow calls, hung servers and the shim's own trouble, with the real
//! sccache: an early cache error does not count against a later slow call, a hung server is
//! stopped and replaced, and missing temporary files are not sccache's fault.

use std::ffi::OsString;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::*;

fn trips(st: &Json) -> u64 {
    st.path(&["counters", "trips"])
        .and_then(Json::as_u64)
        .unwrap_or(0)
}

fn forwarded(st: &Json) -> u64 {
    st.path(&["counters", "forwarded"])
        .and_then(Json::as_u64)
        .unwrap_or(0)
}

/// `early`, then `slow` (which depends on it and takes `TEST_PAUSE_SECS` in a proc macro), then
/// `app`. `variant` changes `slow`'s source, so that it misses the cache.
fn write_early_and_slow(ws: &Path, variant: u32) -> String {
    let w = |rel: &str, text: &str| write_file(&ws.join(rel), text, 0o644);
    let manifest = |name: &str, extra: &str, deps: &str| {
        format!(
            "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n{extra}\n\
             [dependencies]\n{deps}"
        )
    };
    w(
        "Cargo.toml",
        "[workspace]\nmembers = [\"pause\", \"early\", \"slow\", \"app\"]\nresolver = \"2\"\n",
    );
    w(
        "pause/Cargo.toml",
        &manifest("pause", "[lib]\nproc-macro = true\n", ""),
    );
    w(
        "pause/src/lib.rs",
        "use proc_macro::TokenStream;\n\n\
         #[proc_macro]\n\
         pub fn paused(input: TokenStream) -> TokenStream {\n    \
             let secs: u64 = std::env::var(\"TEST_PAUSE_SECS\").ok().and_then(|s| s.parse().ok())\
             .unwrap_or(0);\n    \
             std::thread::sleep(std::time::Duration::from_secs(secs));\n    \
             input\n}\n",
    );
    w("early/Cargo.toml", &manifest("early", "", ""));
    w("early/src/lib.rs", "pub fn v() -> u64 { 1 }\n");
    w(
        "slow/Cargo.toml",
        &manifest(
            "slow",
            "",
            "early = { path = \"../early\" }\npause = { path = \"../pause\" }\n",
        ),
    );
    w(
        "slow/src/lib.rs",
        &format!("// variant {variant}\npub fn v() -> u64 {{ early::v() + pause::paused!(2) }}\n"),
    );
    w(
        "app/Cargo.toml",
        &manifest("app", "", "slow = { path = \"../slow\" }\n"),
    );
    w(
        "app/src/main.rs",
        "fn main() { println!(\"sum={}\", slow::v()); }\n",
    );
    "sum=3\n".into()
}

/// Issue: the error baseline was the one saved by the previous slow call (or 0), so one
/// transient cache error early in a build plus one slow compile later opened the breaker. The
/// baseline is now taken when the call starts being watched.
#[test]
fn an_early_cache_error_does_not_count_against_a_later_slow_call() {
    let mut sb = Sandbox::new();
    let Some(sccache) = require_sccache("early_cache_error") else {
        return;
    };
    sb.set_env("MAYBE_SCCACHE_SLOW_CALL", "1");
    sb.set_env("TEST_PAUSE_SECS", "6");
    let expected = write_early_and_slow(&sb.ws, 1);
    sb.install_real_sccache(sccache);
    sb.build().assert_success();
    assert_eq!(breaker_state(&sb.status_json()), "closed");
    // Every cache entry is made unreadable: `early`'s lookup then counts one cache error and
    // compiles. `slow` changes, so it misses the cache, and takes 6 s with no error at all.
    let mut corrupted = 0;
    for entry in walk(&sb.sccache_dir) {
        if entry.parent() != Some(sb.sccache_dir.as_path()) {
            fs::write(&entry, b"garbage").unwrap();
            corrupted += 1;
        }
    }
    assert!(corrupted >= 2, "cache entries: {corrupted}");
    write_early_and_slow(&sb.ws, 2);
    fs::remove_dir_all(&sb.target).unwrap();
    let r = run(&mut sb.cargo(&["build", "--offline", "-j1"]), BUILD);
    r.assert_success().assert_no_shim_noise();
    assert_app_prints(&sb, &expected);
    let errors = sb
        .sccache_stats(sccache)
        .path(&["stats", "cache_errors", "counts"])
        .map(Json::sum_counts)
        .unwrap_or(0);
    assert!(errors >= 1, "the cache error happened: {errors}");
    let st = sb.status_json();
    assert_eq!(breaker_state(&st), "closed", "{st:?}");
    assert_eq!(trips(&st), 0, "{st:?}");
}

/// Every file below `dir`.
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// Sends `sig` to `pid`.
fn signal(pid: i32, sig: libc::c_int) {
    // SAFETY: a plain kill(2) of a server this test started.
    unsafe { libc::kill(pid, sig) };
}

fn is_gone(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| s.contains(") Z "))
}

/// Kills the stopped server when the test ends, whatever happened.
struct KillAtEnd(i32);

impl Drop for KillAtEnd {
    fn drop(&mut self) {
        signal(self.0, libc::SIGKILL);
    }
}

/// A server that accepts connections but never answers (a stopped process: the kernel still
/// accepts for it). The watchdog abandons the call and the shim stops that server; after the
/// cooldown the probe asks a real question under a deadline, stops the hung server it finds
/// there, and starts a working one, instead of taking "Address in use" for a working server.
#[test]
fn hung_server_is_stopped_and_the_probe_replaces_it() {
    let mut sb = Sandbox::new();
    let Some(sccache) = require_sccache("hung_server") else {
        return;
    };
    sb.set_env("MAYBE_SCCACHE_SLOW_CALL", "1");
    sb.set_env("MAYBE_SCCACHE_COOLDOWN", "3");
    let expected = write_libs(&sb.ws, 2, true);
    sb.install_real_sccache(sccache);
    sb.build().assert_success();
    let first = server_pid(&sb).expect("the first server");
    let _kill_first = KillAtEnd(first);

    // The server hangs while a build uses it.
    signal(first, libc::SIGSTOP);
    fs::remove_dir_all(&sb.target).unwrap();
    let r = run(&mut sb.cargo(&["build", "--offline", "-j1"]), BUILD);
    r.assert_success().assert_no_shim_noise();
    assert_app_prints(&sb, &expected);
    let st = sb.status_json();
    assert!(breaker_reason(&st).contains("hung"), "{st:?}");
    assert!(is_gone(first), "the hung server was stopped");

    // Another server hangs while the breaker is open; the probe after the cooldown finds it.
    run(sb.command(sccache).arg("--start-server"), SHORT).assert_success();
    let second = server_pid(&sb).expect("the second server");
    let _kill_second = KillAtEnd(second);
    signal(second, libc::SIGSTOP);
    std::thread::sleep(Duration::from_secs(5));
    let before = forwarded(&sb.status_json());
    fs::remove_dir_all(&sb.target).unwrap();
    let r = run(&mut sb.cargo(&["build", "--offline", "-j1"]), BUILD);
    r.assert_success().assert_no_shim_noise();
    assert_app_prints(&sb, &expected);
    assert!(is_gone(second), "the probe stopped the hung server");
    let st = sb.status_json();
    assert_eq!(breaker_state(&st), "closed", "{st:?}");
    assert!(forwarded(&st) >= before + 2, "a new server serves: {st:?}");
    let third = server_pid(&sb).expect("the probe's new server");
    assert_ne!(third, second);
}

/// The shim buffers sccache's output in memory files on Linux (temporary files elsewhere). A
/// `TMPDIR` that does not exist is then no trouble at all, and it never was sccache's: it once
/// opened the breaker as if sccache had failed.
#[test]
fn missing_tmpdir_does_not_open_the_breaker() {
    let mut sb = Sandbox::new();
    let Some(sccache) = require_sccache("missing_tmpdir") else {
        return;
    };
    let expected = write_libs(&sb.ws, 2, true);
    sb.install_real_sccache(sccache);
    // The server runs, started with a usable TMPDIR.
    run(sb.command(sccache).arg("--start-server"), SHORT).assert_success();
    sb.set_env("TMPDIR", sb.root().join("no-such-dir"));
    let r = sb.build();
    r.assert_success().assert_no_shim_noise();
    assert_app_prints(&sb, &expected);
    let st = sb.status_json();
    assert_eq!(trips(&st), 0, "{st:?}");
    assert_eq!(breaker_state(&st), "closed", "{st:?}");
    assert_eq!(counter(&st, "fallback", "temp-files"), 0, "{st:?}");
    assert!(forwarded(&st) >= 2, "{st:?}");
}

/// Two builds on one machine, one state dir, two sccache servers (ports): one has a dead Redis,
/// the other a working local cache. The dead backend opens only its own server's breaker; the
/// other build keeps using sccache, and a `reset` from the first leaves the second's alone.
#[test]
fn breakers_belong_to_their_server() {
    let Some(sccache) = require_sccache("breakers_per_server") else {
        return;
    };
    let shared_state = tempfile::tempdir().unwrap();
    let mut broken = Sandbox::new();
    let mut healthy = Sandbox::new();
    for sb in [&mut broken, &mut healthy] {
        sb.set_env("MAYBE_SCCACHE_STATE_DIR", shared_state.path());
        sb.install_real_sccache(sccache);
    }
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    broken.set_env(
        "SCCACHE_REDIS_ENDPOINT",
        format!("redis://127.0.0.1:{closed}"),
    );
    let expected = write_libs(&broken.ws, 2, true);
    write_libs(&healthy.ws, 2, true);
    broken.build().assert_success().assert_no_shim_noise();
    let st = broken.status_json();
    assert_eq!(breaker_state(&st), "open", "{st:?}");
    assert_ne!(broken.server_key(), healthy.server_key());

    let r = healthy.build();
    r.assert_success().assert_no_shim_noise();
    assert_app_prints(&healthy, &expected);
    let st = healthy.status_json();
    assert_eq!(breaker_state(&st), "closed", "{st:?}");
    // The counters are shared by both builds; only the healthy one's calls were forwarded.
    assert_eq!(forwarded(&st), 2, "{st:?}");

    // The healthy server's breaker trips (its sccache is replaced by a failing one); a reset in
    // the broken build's environment clears that one's breaker, not the healthy one's.
    fs::remove_file(healthy.bin.join("sccache")).unwrap();
    healthy.fake_sccache(FakeSccache::ErrorTextOnCompile);
    fs::remove_dir_all(&healthy.target).unwrap();
    healthy.build().assert_success().assert_no_shim_noise();
    assert_eq!(breaker_state(&healthy.status_json()), "open");
    run(&mut broken.shim(["reset"]), SHORT).assert_success();
    assert_eq!(breaker_state(&broken.status_json()), "closed");
    assert_eq!(
        breaker_state(&healthy.status_json()),
        "open",
        "a reset elsewhere must not switch this server's sccache back on"
    );
}

/// Builds on different servers do not share the start lock: while one build's server start
/// hangs, a call for another server goes ahead at once.
#[test]
fn start_locks_belong_to_their_server() {
    let Some(sccache) = require_sccache("start_lock_per_server") else {
        return;
    };
    let shared_state = tempfile::tempdir().unwrap();
    let mut hanging = Sandbox::new();
    let mut other = Sandbox::new();
    for sb in [&mut hanging, &mut other] {
        sb.set_env("MAYBE_SCCACHE_STATE_DIR", shared_state.path());
    }
    hanging.set_env("MAYBE_SCCACHE_START_TIMEOUT", "20");
    write_script(
        &hanging.bin.join("sccache"),
        "case \"$1\" in --start-server) sleep 30 ;; esac\nexit 0\n",
    );
    other.install_real_sccache(sccache);
    let fake = hanging.fake_rustc(b"", b"", Ending::Exit(0));
    let mut args = vec![fake.path.clone().into_os_string()];
    args.extend(cacheable_args("src/lib.rs", &hanging.data));
    let mut start = hanging.shim(args);
    let starting = std::thread::spawn(move || run(&mut start, Duration::from_secs(120)));
    // The hanging start holds its lock from now on.
    std::thread::sleep(Duration::from_secs(2));
    let src = other.data.join("lib.rs");
    fs::write(&src, "pub fn f() -> u32 { 1 }\n").unwrap();
    let mut args = vec![toolchain_rustc().into_os_string()];
    let out = other.data.join("out");
    fs::create_dir(&out).unwrap();
    args.extend(cacheable_args(src.to_str().unwrap(), &out));
    let began = std::time::Instant::now();
    run(&mut other.shim(args), SHORT).assert_success();
    let took = began.elapsed();
    assert!(
        !starting.is_finished(),
        "the hanging start must still hold its lock"
    );
    assert!(
        took < Duration::from_secs(15),
        "the other server's call waited {took:?}"
    );
    let st = other.status_json();
    assert_eq!(forwarded(&st), 1, "{st:?}");
    starting.join().unwrap().assert_success();
}

/// One call of the shim, through `compiler`, with at most `limit` file descriptors open.
fn call_with_fd_limit(sb: &Sandbox, limit: u32, compiler: &Path, args: &[OsString]) -> Run {
    let mut cmd = sb.command("/bin/sh");
    cmd.arg("-c")
        .arg(format!("ulimit -n {limit} && exec \"$@\""))
        .arg("sh")
        .arg(shim())
        .arg(compiler)
        .args(args);
    run(&mut cmd, SHORT)
}

/// Running out of file descriptors just as sccache is to be started is the shim's (or the
/// machine's) trouble, not sccache's: the call compiles directly and the breaker stays as it was.
/// The limit is swept upwards, so that whichever descriptor the shim runs out on (its output
/// buffers, their copies for the child, the pipe of a spawn), that window is hit. (Higher up, the
/// fake sccache itself runs out, which is sccache failing and may open the breaker.)
#[test]
fn running_out_of_file_descriptors_does_not_open_the_breaker() {
    let mut sb = Sandbox::new();
    sb.set_env("MAYBE_SCCACHE_LOG", "info");
    sb.fake_sccache(FakeSccache::Healthy);
    let fake = sb.fake_rustc(b"", b"", Ending::Exit(0));
    let args = cacheable_args("src/lib.rs", &sb.data);
    let mut shortages = 0;
    for limit in 4..=32 {
        let trips_before = trips(&sb.status_json());
        let r = call_with_fd_limit(&sb, limit, &fake.path, &args);
        let err = r.err();
        if !(err.contains("fallback no-resources") || err.contains("fallback temp-files")) {
            continue;
        }
        shortages += 1;
        assert!(
            !err.contains("breaker open"),
            "limit {limit}: {}",
            r.describe()
        );
        let st = sb.status_json();
        assert_eq!(
            trips(&st),
            trips_before,
            "limit {limit}: {}\n{st:?}",
            r.describe()
        );
    }
    assert!(
        shortages > 0,
        "no limit ran out just as sccache was started"
    );
}

/// The same shortage in the half-open probe, as the shim asks the listening server for its
/// statistics: the shim could not ask, which says nothing of the server. It is neither taken for
/// a hung server (killed, breaker re-opened as `hung`) nor trusted: the call compiles directly and
/// the breaker stays as it was, half-open, for the next call to probe.
#[test]
fn running_out_of_file_descriptors_in_the_half_open_probe_blames_no_one() {
    let mut sb = Sandbox::new();
    sb.set_env("MAYBE_SCCACHE_LOG", "info");
    sb.fake_sccache(FakeSccache::Healthy);
    let fake = sb.fake_rustc(b"", b"", Ending::Exit(0));
    let args = cacheable_args("src/lib.rs", &sb.data);
    // Something listens at the server's address, so the probe asks it for statistics first.
    let _listener = std::net::TcpListener::bind(("127.0.0.1", sb.port)).unwrap();
    let breaker = sb.breaker_file();
    let mut shortages = 0;
    for limit in 4..=32 {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let before = format!(
            "open_until {}\nfailed_at {now}\nreason start-failed: test\n",
            now - 1
        );
        fs::write(&breaker, &before).unwrap();
        let r = call_with_fd_limit(&sb, limit, &fake.path, &args);
        let err = r.err();
        // Below some limit the shim cannot even read the breaker (and then never probes).
        if !err.contains("fallback no-resources") || err.contains("breaker state unreadable") {
            continue;
        }
        shortages += 1;
        assert_eq!(
            fs::read_to_string(&breaker).unwrap(),
            before,
            "limit {limit}: the breaker stays as it was: {}",
            r.describe()
        );
    }
    assert!(
        shortages > 0,
        "no limit ran out just as the probe asked for statistics"
    );
}

/// Issue 16, item 5: with the local disk cache, one corrupt entry in another call must not open
/// the breaker for every call. sccache 0.16 reads a corrupt entry, counts a cache error and
/// compiles the call as a miss (measured); the shim saw that rise of the server-wide error
/// counters at the end of a slow call that was compiling on every look, and, with no remote
/// backend to ask, tripped. Order without timing: the slow call's compiler waits for a file the
/// test writes only after the watchdog's first look at it is in the log and the other call, with
/// the corrupt entry, has finished.
#[test]
fn a_corrupt_disk_cache_entry_in_another_call_leaves_the_breaker_closed() {
    let test = "a_corrupt_disk_cache_entry_in_another_call_leaves_the_breaker_closed";
    let Some(sccache) = require_sccache(test) else {
        return;
    };
    let mut sb = Sandbox::new();
    sb.install_real_sccache(sccache);
    let log = sb.data.join("shim.log");
    sb.set_env("MAYBE_SCCACHE_LOG", "debug")
        .set_env("MAYBE_SCCACHE_LOG_FILE", &log);
    let go = sb.data.join("go");
    let slow_rustc = sb.bin.join("slow-rustc");
    write_script(
        &slow_rustc,
        &format!(
            "case \"$*\" in *--print*|*-vV*) ;; *slow.rs*) i=0; while [ ! -e {go} ] && \
             [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done;; esac\nexec {rustc} \"$@\"\n",
            go = sh_quote(go.as_os_str()),
            rustc = sh_quote(toolchain_rustc().as_os_str())
        ),
    );
    let call = |src: &str, compiler: &Path| -> Command {
        let file = sb.data.join(src);
        fs::write(&file, format!("pub fn f() -> u32 {{ {} }}\n", src.len())).unwrap();
        let out = sb.data.join(format!("out-{src}"));
        fs::create_dir_all(&out).unwrap();
        let mut args = vec![compiler.as_os_str().to_owned()];
        args.extend(cacheable_args(file.to_str().unwrap(), &out));
        sb.shim(args)
    };
    // A first call stores its result in the disk cache; then every cache file is overwritten.
    run(&mut call("other.rs", &toolchain_rustc()), SHORT).assert_success();
    let mut corrupted = 0;
    for entry in walk(&sb.sccache_dir) {
        if entry.components().count() > sb.sccache_dir.components().count() + 2 {
            fs::write(&entry, b"not a cache entry").unwrap();
            corrupted += 1;
        }
    }
    assert!(
        corrupted > 0,
        "no cache entry under {}",
        sb.sccache_dir.display()
    );
    // The slow call, at work in the server until `go` exists.
    let mut slow = call("slow.rs", &slow_rustc);
    slow.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut slow = slow.spawn().unwrap();
    let looked = wait_for(Duration::from_secs(60), || {
        fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("compiler_at_work: Some(true)")
    });
    assert!(looked, "the watchdog never looked at the slow call");
    // Another call reads its corrupt entry: sccache counts an error and compiles it.
    let stats_before = sb.sccache_stats(sccache);
    run(&mut call("other.rs", &toolchain_rustc()), SHORT).assert_success();
    let stats_after = sb.sccache_stats(sccache);
    fs::write(&go, b"").unwrap();
    let ended = wait_for(BUILD, || slow.try_wait().unwrap().is_some());
    assert!(ended, "the slow call ended");
    assert!(slow.wait().unwrap().success(), "the slow call compiled");
    let errors = |s: &Json| s.path(&["stats", "cache_errors"]).map(|v| v.to_string());
    assert_ne!(
        errors(&stats_before),
        errors(&stats_after),
        "the corrupt entry counted as a cache error: {stats_after:?}"
    );
    let text = fs::read_to_string(&log).unwrap_or_default();
    let st = sb.status_json();
    assert_eq!(breaker_state(&st), "closed", "{st:?}\n{text}");
    assert_eq!(trips(&st), 0, "{st:?}");
    assert!(
        text.contains("breaker left closed"),
        "the rise was judged: {text}"
    );
    // Calls still go through sccache.
    let before = forwarded(&st);
    run(&mut call("third.rs", &toolchain_rustc()), SHORT).assert_success();
    assert_eq!(forwarded(&sb.status_json()), before + 1);
}

fn wait_for(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let until = std::time::Instant::now() + limit;
    while std::time::Instant::now() < until {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    done()
}
