//! Issue 3: the breaker, the bounded server start and its lock, the server's sockets, and what
//! sccache's own files (error log, config) can do to a start. Real remote-cache faults are in
//! `redis` and `backends`, the watchdog's in `watchdog`, the state dir's in `state_dir`.

use std::fs;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::*;

#[test]
fn slow_failing_sccache_is_tried_at_most_three_times_in_a_12_crate_build() {
    let sb = Sandbox::new();
    let expected = write_libs(&sb.ws, 12, true);
    let calls = sb.sccache_calls_file();
    write_script(
        &sb.bin.join("sccache"),
        &format!(
            "printf '%s\\n' \"$*\" >> {}\nsleep 2\nprintf '%s' {} >&2\nexit 2\n",
            sh_quote(calls.as_os_str()),
            sh_quote(SCCACHE_ERROR_TEXT.as_ref())
        ),
    );
    let r = run(&mut sb.cargo(&["build", "--offline", "-j1"]), BUILD);
    r.assert_success().assert_no_shim_noise();
    assert_app_prints(&sb, &expected);
    let n = sb.sccache_calls().len();
    assert!(
        (1..=3).contains(&n),
        "sccache was tried {n} times: {:?}",
        sb.sccache_calls()
    );
    let st = sb.status_json();
    assert_eq!(breaker_state(&st), "open");
    assert!(counter(&st, "fallback", "breaker-open") >= 10, "{st:?}");
}

#[test]
fn never_answering_sccache_does_not_hang_the_build_and_leaves_no_process() {
    let mut sb = Sandbox::new();
    // Far below the default (15 s), so a shim that ignored the setting would show.
    sb.set_env("MAYBE_SCCACHE_START_TIMEOUT", "2");
    let expected = write_libs(&sb.ws, 6, true);
    let calls = sb.sccache_calls_file();
    // The sleep is a child of the script, as a real hung helper's children would be.
    let fake = sb.bin.join("sccache");
    write_script(
        &fake,
        &format!(
            "printf '%s\\n' \"$*\" >> {}\n\
             case \"$1\" in --version) echo 'sccache 0.16.0'; exit 0;; esac\nsleep 3601\n",
            sh_quote(calls.as_os_str())
        ),
    );
    // One call waits out the start deadline, and not much more (the margin is for a loaded
    // machine), then compiles directly.
    let took = timed_call(&sb);
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(12),
        "MAYBE_SCCACHE_START_TIMEOUT=2, yet the call took {took:?}"
    );
    assert_eq!(sb.sccache_calls(), ["--start-server"]);
    // The script and the sleep it started are both gone.
    sb.assert_no_process_left(Duration::from_secs(10));
    let st = sb.status_json();
    assert_eq!(breaker_state(&st), "open");
    assert!(breaker_reason(&st).contains("timeout"), "{st:?}");
    assert!(breaker_reason(&st).contains("within 2 s"), "{st:?}");

    // A whole build after it: the open breaker sends every call to the compiler at once.
    let r = run(&mut sb.cargo(&["build", "--offline", "-j1"]), BUILD);
    r.assert_success().assert_no_shim_noise();
    assert_app_prints(&sb, &expected);
    // (`status` asks for sccache's version; that is not the build's doing.)
    let calls = sb.sccache_calls();
    assert_eq!(
        calls.iter().filter(|c| *c != "--version").count(),
        1,
        "{calls:?}"
    );
    assert!(counter(&sb.status_json(), "fallback", "breaker-open") >= 6);
    sb.assert_no_process_left(Duration::from_secs(10));
}

#[test]
fn breaker_half_opens_after_the_cooldown_and_closes_on_success() {
    let mut sb = Sandbox::new();
    let Some(sccache) = require_sccache("breaker_half_opens") else {
        return;
    };
    sb.set_env("MAYBE_SCCACHE_COOLDOWN", "2");
    let expected = write_libs(&sb.ws, 2, true);
    // First a broken sccache and a single call: the breaker opens, exactly once. (Within a build,
    // a later call could already find the breaker half-open: it opens until a whole second, so
    // a 2 s cooldown can end 1 s after the trip.)
    let path = sb.bin.join("sccache");
    sb.fake_sccache_at(&path, FakeSccache::ErrorText);
    timed_call(&sb);
    let st = sb.status_json();
    assert_eq!(
        st.path(&["counters", "trips"]).and_then(Json::as_u64),
        Some(1)
    );
    assert!(breaker_reason(&st).contains("start-failed"), "{st:?}");
    // Then the real one, once the cooldown has passed: one call probes, the breaker closes, and
    // the build is served by sccache again.
    fs::remove_file(&path).unwrap();
    sb.install_real_sccache(sccache);
    std::thread::sleep(Duration::from_millis(3100));
    fs::remove_dir_all(&sb.target).unwrap();
    sb.build().assert_success();
    assert_app_prints(&sb, &expected);
    let st = sb.status_json();
    assert_eq!(breaker_state(&st), "closed", "{st:?}");
    assert!(
        st.path(&["counters", "forwarded"]).and_then(Json::as_u64) >= Some(2),
        "{st:?}"
    );
    assert_eq!(
        st.path(&["counters", "trips"]).and_then(Json::as_u64),
        Some(1),
        "the probe succeeded: {st:?}"
    );
}

#[test]
fn parallel_cold_start_reaches_one_server() {
    let mut sb = Sandbox::new();
    let Some(sccache) = require_sccache("parallel_cold_start") else {
        return;
    };
    sb.set_env("MAYBE_SCCACHE_LOG", "info");
    let log = sb.data.join("shim.log");
    sb.set_env("MAYBE_SCCACHE_LOG_FILE", &log);
    let expected = write_libs(&sb.ws, 16, false);
    sb.install_real_sccache(sccache);
    let r = run(&mut sb.cargo(&["build", "--offline", "-j16"]), BUILD);
    r.assert_success();
    assert!(!r.err().contains("sccache"), "{}", r.describe());
    assert_app_prints(&sb, &expected);
    let st = sb.status_json();
    assert_eq!(breaker_state(&st), "closed", "{st:?}");
    assert_eq!(
        st.path(&["counters", "fallback"]),
        Some(&Json::Object(serde_json::Map::new())),
        "no call may fall back: {st:?}"
    );
    let log_text = fs::read_to_string(&log).unwrap();
    assert_eq!(
        log_text.matches("sccache --start-server").count(),
        1,
        "exactly one call starts the server:\n{log_text}"
    );
    // A warm rebuild in a fresh target dir is served by that one server.
    fs::remove_dir_all(&sb.target).unwrap();
    run(&mut sb.cargo(&["build", "--offline", "-j16"]), BUILD).assert_success();
    let hits = sb
        .sccache_stats(sccache)
        .path(&["stats", "cache_hits", "counts"])
        .map(Json::sum_counts)
        .unwrap_or(0);
    assert!(hits >= 16, "warm rebuild hits: {hits}");
}

/// An sccache error on a call whose compile fails without sccache too may be about the input
/// (sccache cannot hash a missing file, say): it must not open the breaker for the whole build.
/// The same error on a call that compiles fine without sccache does.
#[test]
fn breaker_blames_sccache_only_when_the_direct_compile_works() {
    for (code, trips) in [(1, 0), (0, 1)] {
        let sb = Sandbox::new();
        sb.fake_sccache(FakeSccache::Fatal);
        let fake = sb.fake_rustc(b"", b"error: from the compiler\n", Ending::Exit(code));
        let out_dir = sb.data.join("out");
        let mut args = vec![fake.path.clone().into_os_string()];
        args.extend(cacheable_args("src/lib.rs", &out_dir));
        let r = run(&mut sb.shim(&args), SHORT);
        assert_eq!(r.code(), Some(code), "{}", r.describe());
        assert_eq!(
            count(&r.stderr, "error: from the compiler"),
            1,
            "{}",
            r.describe()
        );
        assert!(!r.err().contains("sccache"), "{}", r.describe());
        assert_eq!(fake.calls(), 1);
        let st = sb.status_json();
        assert_eq!(
            st.path(&["counters", "trips"]).and_then(Json::as_u64),
            Some(trips),
            "compiler exit {code}: {st:?}"
        );
        assert_eq!(counter(&st, "fallback", "sccache-fatal"), 1, "{st:?}");
    }
}

/// `SCCACHE_ERROR_LOG` that cannot be opened makes sccache's server die silently, and its client
/// wait out the whole start-up time-out; the shim sees it before starting anything.
#[test]
fn unopenable_sccache_error_log_opens_the_breaker_at_once() {
    let mut sb = Sandbox::new();
    let Some(sccache) = require_sccache("error_log") else {
        return;
    };
    sb.set_env(
        "SCCACHE_ERROR_LOG",
        sb.root().join("no/such/dir/sccache.log"),
    );
    let expected = write_libs(&sb.ws, 2, true);
    sb.install_real_sccache(sccache);
    let r = sb.build();
    r.assert_success().assert_no_shim_noise();
    assert_app_prints(&sb, &expected);
    let st = sb.status_json();
    assert!(breaker_reason(&st).contains("SCCACHE_ERROR_LOG"), "{st:?}");
    assert_eq!(
        st.path(&["counters", "trips"]).and_then(Json::as_u64),
        Some(1)
    );
}

/// An `SCCACHE_ERROR_LOG` that is a FIFO nobody reads: the shim's check of it must not block (it
/// would hold the call, and the start lock, forever). It cannot be opened at once, so the breaker
/// opens naming it and the call compiles directly.
#[cfg(unix)]
#[test]
fn sccache_error_log_fifo_without_a_reader_never_hangs_a_call() {
    let mut sb = Sandbox::new();
    let Some(sccache) = require_sccache("error_log_fifo") else {
        return;
    };
    let fifo = sb.data.join("sccache.log");
    make_fifo(&fifo);
    sb.set_env("SCCACHE_ERROR_LOG", &fifo);
    sb.install_real_sccache(sccache);
    let src = sb.data.join("lib.rs");
    fs::write(&src, "pub fn f() -> u32 { 1 }\n").unwrap();
    let out = sb.data.join("out");
    fs::create_dir(&out).unwrap();
    let mut args = vec![toolchain_rustc().into_os_string()];
    args.extend(cacheable_args(src.to_str().unwrap(), &out));
    run(&mut sb.shim(args), SHORT).assert_success();
    let st = sb.status_json();
    assert!(breaker_reason(&st).contains("SCCACHE_ERROR_LOG"), "{st:?}");
}

/// An `SCCACHE_CONF` that is a FIFO nobody writes: the shim's look at it for the backend's
/// pre-check must not block (it would hold the call, and the start lock, forever). The shim
/// leaves it to sccache, whose bounded start then fails, and the call compiles directly.
#[cfg(unix)]
#[test]
fn sccache_config_fifo_without_a_writer_never_hangs_a_call() {
    let mut sb = Sandbox::new();
    let Some(sccache) = require_sccache("config_fifo") else {
        return;
    };
    let fifo = sb.data.join("sccache.conf");
    make_fifo(&fifo);
    sb.set_env("SCCACHE_CONF", &fifo)
        .set_env("MAYBE_SCCACHE_START_TIMEOUT", "3");
    sb.install_real_sccache(sccache);
    let src = sb.data.join("lib.rs");
    fs::write(&src, "pub fn f() -> u32 { 1 }\n").unwrap();
    let out = sb.data.join("out");
    fs::create_dir(&out).unwrap();
    let mut args = vec![toolchain_rustc().into_os_string()];
    args.extend(cacheable_args(src.to_str().unwrap(), &out));
    run(&mut sb.shim(args), SHORT).assert_success();
    // Read from the state dir: `status` would wait out sccache's own bounded blocked reads too.
    let events = fs::read_to_string(sb.state.join("events")).unwrap();
    assert!(events.contains("trip "), "{events}");
    assert!(events.contains("fallback start-failed"), "{events}");
    // The sandbox's clean-up asks sccache to stop a server: not through a blocked read.
    fs::remove_file(&fifo).unwrap();
}

/// Over a Unix socket too, concurrent first calls wait for the one start instead of racing
/// their own (which could leave two servers with split statistics).
#[test]
fn parallel_cold_start_over_a_unix_socket_reaches_one_server() {
    let mut sb = Sandbox::new();
    let Some(sccache) = require_sccache("parallel_uds") else {
        return;
    };
    let socket = sb.data.join("sccache.sock");
    sb.set_env("SCCACHE_SERVER_UDS", &socket);
    sb.set_env("MAYBE_SCCACHE_LOG", "info");
    let log = sb.data.join("shim.log");
    sb.set_env("MAYBE_SCCACHE_LOG_FILE", &log);
    let expected = write_libs(&sb.ws, 8, false);
    sb.install_real_sccache(sccache);
    let r = run(&mut sb.cargo(&["build", "--offline", "-j8"]), BUILD);
    r.assert_success().assert_no_shim_noise();
    assert_app_prints(&sb, &expected);
    let log_text = fs::read_to_string(&log).unwrap();
    assert_eq!(
        log_text.matches("sccache --start-server").count(),
        1,
        "{log_text}"
    );
    let stats = sb.sccache_stats(sccache);
    let requests = stats
        .path(&["stats", "compile_requests"])
        .and_then(Json::as_u64)
        .unwrap_or(0);
    assert!(
        requests >= 8,
        "all crates reached the one server: {requests}"
    );
}

/// sccache's abstract socket form (`SCCACHE_SERVER_UDS=\x00NAME`, Linux only): the shim sees the
/// server there, so it is started once and the later calls go straight to it instead of each
/// queueing on the start lock for a start of their own.
#[cfg(target_os = "linux")]
#[test]
fn abstract_unix_socket_server_is_seen_as_up() {
    let mut sb = Sandbox::new();
    let Some(sccache) = require_sccache("abstract_uds") else {
        return;
    };
    // Escapes as sccache reads them: `\x2d` is `-`.
    let name = format!("\\x00msit\\x2d{}-{}", std::process::id(), sb.port);
    sb.set_env("SCCACHE_SERVER_UDS", &name);
    sb.set_env("MAYBE_SCCACHE_LOG", "info");
    let log = sb.data.join("shim.log");
    sb.set_env("MAYBE_SCCACHE_LOG_FILE", &log);
    let expected = write_libs(&sb.ws, 3, true);
    sb.install_real_sccache(sccache);
    let r = run(&mut sb.cargo(&["build", "--offline", "-j1"]), BUILD);
    r.assert_success().assert_no_shim_noise();
    assert_app_prints(&sb, &expected);
    let log_text = fs::read_to_string(&log).unwrap();
    assert_eq!(
        log_text.matches("sccache --start-server").count(),
        1,
        "{log_text}"
    );
    let requests = sb
        .sccache_stats(sccache)
        .path(&["stats", "compile_requests"])
        .and_then(Json::as_u64)
        .unwrap_or(0);
    assert!(requests >= 3, "the crates reached the server: {requests}");
    let st = sb.status_json();
    assert_eq!(
        st.path(&["sccache", "server_up"]).and_then(Json::as_bool),
        Some(true),
        "{st:?}"
    );
}

/// The breaker keeps sccache's error as the reason and `status` shows it (in a CI job summary,
/// say): secrets quoted by that error must not get there.
#[test]
fn breaker_reason_never_holds_a_secret() {
    let mut sb = Sandbox::new();
    sb.set_env("MY_DEPLOY_TOKEN", "tok-4f9a8b7c6d");
    write_libs(&sb.ws, 1, true);
    write_script(
        &sb.bin.join("sccache"),
        "echo \"sccache: error: Server startup failed: cannot reach \
         redis://admin:pw-91827364@127.0.0.1:1/0 with $MY_DEPLOY_TOKEN\" >&2\nexit 2\n",
    );
    sb.build().assert_success().assert_no_shim_noise();
    for format in ["--json", "--markdown", ""] {
        let mut cmd = sb.shim(["status"]);
        if !format.is_empty() {
            cmd.arg(format);
        }
        let r = run(&mut cmd, SHORT);
        r.assert_success();
        let out = r.out();
        assert!(
            out.contains("Server startup failed"),
            "the reason is kept: {out}"
        );
        assert!(!out.contains("pw-91827364"), "{out}");
        assert!(!out.contains("tok-4f9a8b7c6d"), "{out}");
    }
    let on_disk = fs::read(sb.breaker_file()).unwrap();
    assert_eq!(count(&on_disk, "pw-91827364"), 0);
    assert_eq!(count(&on_disk, "tok-4f9a8b7c6d"), 0);
}

/// Waits until `path` exists, for at most `limit`.
fn wait_for_file(path: &Path, limit: Duration) {
    let deadline = Instant::now() + limit;
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} did not appear within {limit:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// After the cooldown, exactly one call probes sccache (here a server start that the test holds
/// open); the calls meanwhile compile directly at once instead of waiting for the probe. The
/// probe succeeds, and the breaker closes.
#[test]
fn half_open_probe_is_one_call_while_the_others_compile_directly() {
    let mut sb = Sandbox::new();
    sb.set_env("MAYBE_SCCACHE_COOLDOWN", "1");
    // The breaker opens on a single failing call.
    let path = sb.bin.join("sccache");
    sb.fake_sccache_at(&path, FakeSccache::ErrorText);
    timed_call(&sb);
    // Then an sccache whose server start waits until the test releases it.
    let probing = sb.data.join("probing");
    let release = sb.data.join("release");
    write_script(
        &path,
        &format!(
            "printf '%s\\n' \"$*\" >> {calls}\n\
             case \"$1\" in\n\
             --start-server) : > {probing}; n=0\n\
               while [ ! -e {release} ] && [ $n -lt 1200 ]; do sleep 0.05; n=$((n+1)); done; exit 0 ;;\n\
             -*) exit 0 ;;\n\
             esac\n\
             exec \"$@\"\n",
            calls = sh_quote(sb.sccache_calls_file().as_os_str()),
            probing = sh_quote(probing.as_os_str()),
            release = sh_quote(release.as_os_str()),
        ),
    );
    // Whole-second timestamps: a 1 s cooldown is over at most 1 s after the trip.
    std::thread::sleep(Duration::from_millis(2100));
    let fake = sb.fake_rustc(b"probe\n", b"", Ending::Exit(0));
    let mut args = vec![fake.path.clone().into_os_string()];
    args.extend(cacheable_args("src/lib.rs", &sb.data));
    let mut probe = sb.shim(&args);
    probe
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut probe = probe.spawn().unwrap();
    wait_for_file(&probing, Duration::from_secs(30));
    // The probe is held; three more calls must all end without it, and without waiting for a
    // start lock (that wait would be the start deadline, 15 s by default, plus 5 s).
    for _ in 0..3 {
        let took = timed_call(&sb);
        assert!(took < Duration::from_secs(10), "a call waited {took:?}");
    }
    assert!(
        probe.try_wait().unwrap().is_none(),
        "the probe was not held"
    );
    fs::write(&release, b"").unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = probe.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the probe did not finish");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "the probing call failed: {status:?}");
    let calls = sb.sccache_calls();
    assert_eq!(
        calls.iter().filter(|c| *c == "--start-server").count(),
        2,
        "one start for the trip, one for the probe: {calls:?}"
    );
    assert_eq!(
        calls.iter().filter(|c| !c.starts_with('-')).count(),
        1,
        "only the probing call was forwarded: {calls:?}"
    );
    let st = sb.status_json();
    assert_eq!(breaker_state(&st), "closed", "{st:#}");
    assert_eq!(counter(&st, "fallback", "breaker-open"), 3, "{st:#}");
    assert_eq!(
        st.path(&["counters", "trips"]).and_then(Json::as_u64),
        Some(1),
        "{st:#}"
    );
}

/// Another process holds the start lock for longer than a start may take (a start that hangs in
/// a way the deadline does not reach): the call waits for the start deadline plus its margin,
/// then compiles directly without starting a server of its own or blaming sccache.
#[test]
fn start_lock_held_too_long_compiles_directly_as_start_busy() {
    let mut sb = Sandbox::new();
    sb.set_env("MAYBE_SCCACHE_START_TIMEOUT", "0.5");
    // Named before sccache is there: `status` would ask the fake for its version.
    let lock_file = sb.start_lock_file();
    sb.fake_sccache(FakeSccache::Healthy);
    let lock = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(lock_file)
        .unwrap();
    fs2::FileExt::lock_exclusive(&lock).unwrap();
    let took = timed_call(&sb);
    drop(lock);
    // The wait is the start deadline plus 5 s (README: the others wait for that verdict).
    assert!(
        took >= Duration::from_secs(5) && took < Duration::from_secs(20),
        "the call waited {took:?} for the start lock"
    );
    assert_eq!(sb.sccache_calls(), Vec::<String>::new(), "nothing started");
    let st = sb.status_json();
    assert_eq!(counter(&st, "fallback", "start-busy"), 1, "{st:#}");
    assert_eq!(
        st.path(&["counters", "trips"]).and_then(Json::as_u64),
        Some(0),
        "{st:#}"
    );
}
