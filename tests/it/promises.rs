//! Promises of the README that no other test checked: bad configuration values and an
//! unopenable log file (or a FIFO nobody reads) never fail, hang or disturb a build; `CARGO_BUILD_INCREMENTAL=1` is treated like
//! `CARGO_INCREMENTAL=1`; the hot path execs the compiler in place and never waits on the start
//! lock, which a forwarded call does (and then gives up with `start-busy`).

use std::fs;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::*;

/// Numbers that are not numbers and a log filter env_logger cannot read: the build passes through
/// sccache as usual, cargo sees nothing of them, and the log says what was wrong.
#[test]
fn bad_configuration_values_never_fail_or_disturb_a_build() {
    let mut sb = Sandbox::new();
    let Some(sccache) = require_sccache("bad_config") else {
        return;
    };
    let log = sb.data.join("shim.log");
    sb.set_env("MAYBE_SCCACHE_COOLDOWN", "soon")
        .set_env("MAYBE_SCCACHE_START_TIMEOUT", "-1")
        .set_env("MAYBE_SCCACHE_SLOW_CALL", "NaN")
        .set_env("MAYBE_SCCACHE_LOG", "x=y=z")
        .set_env("MAYBE_SCCACHE_LOG_FILE", &log);
    sb.install_real_sccache(sccache);
    let r = sb.assert_good_build();
    assert_eq!(count(&r.all(), "logging spec"), 0, "{}", r.describe());
    let requests = sb
        .sccache_stats(sccache)
        .path(&["stats", "compile_requests"])
        .and_then(Json::as_u64)
        .unwrap_or(0);
    assert!(requests >= LIB_CRATES, "sccache was used: {requests}");
    let text = fs::read_to_string(&log).unwrap();
    for what in [
        "MAYBE_SCCACHE_COOLDOWN",
        "MAYBE_SCCACHE_START_TIMEOUT",
        "MAYBE_SCCACHE_SLOW_CALL",
        "invalid logging spec",
    ] {
        assert!(text.contains(what), "{what} not in the log: {text}");
    }
}

/// A log file that cannot be opened (its directory does not exist) turns the log off; nothing
/// goes to stderr instead, and the build passes through sccache.
#[test]
fn unopenable_log_file_never_fails_a_build() {
    let mut sb = Sandbox::new();
    let Some(sccache) = require_sccache("unopenable_log") else {
        return;
    };
    let log = sb.root().join("no/such/dir/shim.log");
    sb.set_env("MAYBE_SCCACHE_LOG", "debug")
        .set_env("MAYBE_SCCACHE_LOG_FILE", log);
    sb.install_real_sccache(sccache);
    let r = sb.assert_good_build();
    assert_eq!(count(&r.all(), "] bypass"), 0, "{}", r.describe());
    let st = sb.status_json();
    assert!(
        st.path(&["counters", "forwarded"]).and_then(Json::as_u64) >= Some(LIB_CRATES),
        "{st:?}"
    );
}

/// A log file that is a FIFO nobody reads (left behind by a debugging session, say) must not
/// block the shim's open of it, which would hang every compile of the build: the log is off
/// instead, and the call runs as usual.
#[cfg(unix)]
#[test]
fn log_file_that_is_a_fifo_without_a_reader_never_hangs_a_call() {
    let mut sb = Sandbox::new();
    let fifo = sb.data.join("shim.log");
    make_fifo(&fifo);
    sb.set_env("MAYBE_SCCACHE_LOG", "debug")
        .set_env("MAYBE_SCCACHE_LOG_FILE", &fifo);
    let rustc = toolchain_rustc();
    let r = run(&mut sb.shim([rustc.as_os_str(), "-vV".as_ref()]), SHORT);
    assert_eq!(r.code(), Some(0), "{}", r.describe());
    assert!(r.out().starts_with("rustc "), "{}", r.describe());
    assert!(r.stderr.is_empty(), "{}", r.describe());
}

/// sccache 0.16 refuses every call while `CARGO_BUILD_INCREMENTAL=1`, just as with
/// `CARGO_INCREMENTAL=1`: each call goes straight to the compiler, none is tried with sccache
/// (which would be refused and counted as a fallback) and the breaker stays closed. (cargo itself
/// rejects `CARGO_BUILD_INCREMENTAL=1`, wanting `true`; the variable reaches the shim from other
/// callers, so the compiler is called the way cargo would call it.)
#[test]
fn cargo_build_incremental_is_treated_like_cargo_incremental() {
    for var in ["CARGO_BUILD_INCREMENTAL", "CARGO_INCREMENTAL"] {
        let mut sb = Sandbox::new();
        let Some(sccache) = require_sccache("build_incremental") else {
            return;
        };
        sb.set_env(var, "1");
        sb.install_real_sccache(sccache);
        let fake = sb.fake_rustc(b"out\n", b"err\n", Ending::Exit(0));
        let mut cmd = sb.shim([fake.path.as_os_str()]);
        cmd.args(cacheable_args("src/lib.rs", &sb.data));
        let r = run(&mut cmd, SHORT);
        r.assert_success();
        assert_eq!(
            (r.out().as_str(), r.err().as_str()),
            ("out\n", "err\n"),
            "{var}"
        );
        assert_eq!(fake.calls(), 1, "{var}");
        let st = sb.status_json();
        assert_eq!(
            counter(&st, "bypassed", "incremental-env"),
            1,
            "{var}: {st:?}"
        );
        assert_eq!(
            st.path(&["counters", "forwarded"]).and_then(Json::as_u64),
            Some(0)
        );
        assert_eq!(
            st.path(&["counters", "fallback"]),
            Some(&Json::Object(Default::default())),
            "{var}: {st:?}"
        );
        assert_eq!(
            st.path(&["counters", "trips"]).and_then(Json::as_u64),
            Some(0)
        );
        assert_eq!(
            st.path(&["sccache", "server_up"]).and_then(Json::as_bool),
            Some(false),
            "{var}: sccache's server was never started: {st:?}"
        );
    }
}

/// While one call holds the start lock (its `sccache --start-server` hangs), a bypassed call and
/// a call with no usable sccache run the compiler at once, in the shim's own process (same PID);
/// a call that needs the server waits for the lock, gives up after its start timeout plus 5 s
/// (`start-busy`) and compiles directly.
#[test]
fn hot_path_execs_in_place_and_never_waits_for_the_start_lock() {
    let mut sb = Sandbox::new();
    let started = sb.data.join("start-server-called");
    write_script(
        &sb.bin.join("sccache"),
        &format!(
            "case \"$1\" in --start-server) : > {}; exec sleep 300;; -*) exit 0;; esac\nexec \"$@\"\n",
            sh_quote(started.as_os_str())
        ),
    );
    let pid_file = sb.data.join("compiler.pid");
    let compiler = sb.data.join("rustc-pid");
    write_script(
        &compiler,
        &format!(
            "echo $$ > {}\necho compiled\n",
            sh_quote(pid_file.as_os_str())
        ),
    );
    sb.set_env("MAYBE_SCCACHE_START_TIMEOUT", "200");
    let lib = cacheable_args("src/lib.rs", &sb.data);
    let call = |args: &[std::ffi::OsString]| {
        let mut cmd = sb.shim([compiler.as_os_str()]);
        cmd.args(args);
        cmd
    };

    // The holder: its server start hangs for the whole of its 200 s start timeout.
    let mut holder = call(&lib)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + SHORT;
    while !started.exists() {
        assert!(Instant::now() < deadline, "the server start never began");
        std::thread::sleep(Duration::from_millis(20));
    }

    // The compiler runs in the shim's process, at once: a wait for the lock would take 205 s.
    let in_place = |what: &str, mut cmd: std::process::Command, within: Duration| {
        let _ = fs::remove_file(&pid_file);
        let began = Instant::now();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id();
        let out = child.wait_with_output().unwrap();
        let took = began.elapsed();
        assert!(out.status.success(), "{what}: {out:?}");
        assert_eq!(out.stdout, b"compiled\n", "{what}");
        assert!(
            took < within,
            "{what}: took {took:?} with the start lock held"
        );
        let compiler_pid: u32 = fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(
            compiler_pid, pid,
            "{what}: the compiler ran in a process of its own"
        );
        took
    };
    in_place(
        "probe (bypassed)",
        call(&["-vV".into()]),
        Duration::from_secs(30),
    );
    let mut no_sccache = call(&lib);
    no_sccache.env("SCCACHE_PATH", sb.data.join("no-such-sccache"));
    no_sccache.env("PATH", "/usr/bin:/bin");
    in_place("no sccache", no_sccache, Duration::from_secs(30));

    // A call that needs the server waits for the lock, then gives up: start-busy.
    let mut busy = call(&lib);
    busy.env("MAYBE_SCCACHE_START_TIMEOUT", "1");
    let took = in_place("start-busy", busy, Duration::from_secs(120));
    assert!(
        took >= Duration::from_secs(6),
        "it waited for the lock: {took:?}"
    );
    let st = sb.status_json();
    assert_eq!(counter(&st, "fallback", "start-busy"), 1, "{st:?}");
    assert_eq!(counter(&st, "bypassed", "probe"), 1, "{st:?}");
    assert_eq!(counter(&st, "fallback", "not-found"), 1, "{st:?}");

    // Ending the holder ends its hung start with it.
    let ok = std::process::Command::new("kill")
        .args(["-TERM", &holder.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let _ = holder.wait();
    sb.assert_no_process_left(Duration::from_secs(30));
}
