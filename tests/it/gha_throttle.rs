//! Issue 18: a 429 storm on writes to the GitHub Actions cache service (its limit is 200 uploads
//! a minute per repository). The service (tests/it/servers/gha_cache.py) starts healthy, so
//! sccache's start-up check finds it writable, then answers 429 to every `CreateCacheEntry`.

use std::fs;
use std::path::Path;
use std::time::Duration;

use crate::support::*;

/// The number of library crates in the fixture (plus the `app` binary).
const CRATES: usize = 10;

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// The median over rounds of each round's time over that round's plain build: the machine's
/// load drifts between rounds more than within one.
fn paired(times: &[f64], plain: &[f64]) -> f64 {
    median(times.iter().zip(plain).map(|(t, p)| t / p).collect())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// One storm test's parts: a sandbox whose fixture has `crates` libraries and the real sccache,
/// pointed at the test-owned GHA service, and the service and azurite behind it. The fields drop
/// in the reverse order of their bindings at each use: the sandbox (and its sccache server)
/// before the servers it used.
struct Rig {
    sb: Sandbox,
    gha: GhaService,
    _az: Azurite,
    dir: tempfile::TempDir,
    sccache: &'static Path,
    /// What the fixture's `app` prints.
    expected: String,
}

/// The [`Rig`] for `test`, or `None` (skipped, visibly) without sccache or azurite.
fn rig(test: &str, crates: usize) -> Option<Rig> {
    let sccache = require_sccache(test)?;
    let azurite = require_azurite(test)?;
    let dir = tempfile::tempdir().unwrap();
    let az = Azurite::start(&azurite, dir.path());
    let gha = GhaService::start(&az, dir.path());
    let mut sb = Sandbox::new();
    let expected = write_libs(&sb.ws, crates, false);
    sb.install_real_sccache(sccache);
    gha_env(&mut sb, &gha.url());
    Some(Rig {
        sb,
        gha,
        _az: az,
        dir,
        sccache,
        expected,
    })
}

/// Adds `structs` derived structs to each library of the fixture, so that a crate takes a
/// compile time of its own (rustc's fixed cost per call is what the plain fixture measures).
fn weigh_down(ws: &Path, structs: usize) {
    for k in 1..=CRATES {
        let lib = ws.join(format!("l{k}/src/lib.rs"));
        let mut text = fs::read_to_string(&lib).unwrap();
        for i in 0..structs {
            text.push_str(&format!(
                "#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]\n\
                 pub struct S{i} {{ pub a: u64, pub b: String, pub c: Vec<u32> }}\n\
                 impl S{i} {{ pub fn f(&self) -> u64 {{ self.a + self.b.len() as u64 + \
                 self.c.iter().map(|x| u64::from(*x)).sum::<u64>() }} }}\n"
            ));
        }
        fs::write(&lib, text).unwrap();
    }
}

/// The measurement behind README's GHA section: plain cargo, sccache alone (read-write, then
/// read-only) and the shim, alternated round by round, each build into a fresh target dir with
/// every write throttled. Prints the wall times and sccache's write errors; asserts nothing about
/// time.
#[test]
#[ignore = "a measurement, run by hand: cargo test --test it gha_throttle::measure -- --ignored"]
fn measure_a_write_storm() {
    let test = "measure_a_write_storm";
    // Every part is bound, in this order, so that none drops before the test ends and the
    // sandbox drops first.
    let Some(Rig {
        dir,
        _az,
        gha,
        sb,
        sccache,
        expected: _,
    }) = rig(test, CRATES)
    else {
        return;
    };
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    let weight: usize = std::env::var("WEIGHT")
        .ok()
        .and_then(|w| w.parse().ok())
        .unwrap_or(0);
    weigh_down(&sb.ws, weight);
    let start_server = |read_only: bool| {
        gha.control("ok", "ok");
        let mut cmd = sb.command(sccache);
        cmd.arg("--start-server");
        if read_only {
            cmd.env("SCCACHE_GHA_RW_MODE", "READ_ONLY");
        }
        let r = run(&mut cmd, SHORT);
        assert_eq!(r.code(), Some(0), "{}", r.describe());
        gha.control("429-writes", "ok");
    };
    let stop_server = || {
        let stats = sb.sccache_stats(sccache);
        run(sb.command(sccache).arg("--stop-server"), SHORT);
        stats
            .path(&["stats", "cache_write_errors"])
            .and_then(Json::as_u64)
            .unwrap_or(0)
    };
    warm_up(&sb);
    let (mut plain, mut alone, mut alone_ro, mut shim) = (vec![], vec![], vec![], vec![]);
    let mut cooling = vec![];
    let alone_bin = sb.bin.join("sccache");
    for round in 0..rounds {
        let (r, t) = timed(&sb, None, &format!("t-plain-{round}"));
        r.assert_success();
        plain.push(secs(t));

        start_server(false);
        let (r, t) = timed(&sb, Some(&alone_bin), &format!("t-alone-{round}"));
        r.assert_success();
        let errors = stop_server();
        alone.push(secs(t));
        eprintln!("{test}: round {round}: sccache alone write errors {errors}");

        start_server(true);
        let (r, t) = timed(&sb, Some(&alone_bin), &format!("t-alone-ro-{round}"));
        r.assert_success();
        let errors = stop_server();
        alone_ro.push(secs(t));
        eprintln!("{test}: round {round}: sccache alone read-only write errors {errors}");

        // Each round meets the storm's onset: the last round's breaker, counters and write
        // figures go.
        run(sb.command(shim_bin()).arg("reset"), SHORT).assert_success();
        start_server(false);
        let (r, t) = timed(&sb, Some(Path::new(shim_bin())), &format!("t-shim-{round}"));
        r.assert_success().assert_no_shim_noise();
        let st = sb.status_json();
        let errors = stop_server();
        shim.push(secs(t));
        eprintln!(
            "{test}: round {round}: shim write errors {errors}, breaker {}, counters {:?}",
            breaker_state(&st),
            st.path(&["counters"])
        );

        // The storm goes on: the next build meets the open breaker (the cooldown is a minute).
        start_server(false);
        let (r, t) = timed(&sb, Some(Path::new(shim_bin())), &format!("t-cool-{round}"));
        r.assert_success().assert_no_shim_noise();
        let st = sb.status_json();
        stop_server();
        cooling.push(secs(t));
        assert_eq!(breaker_state(&st), "open", "{st:?}");
    }
    let log = fs::read_to_string(dir.path().join("gha.log")).unwrap();
    let throttled = log
        .lines()
        .filter(|l| l.contains("CreateCacheEntry") && l.contains("\" 429"))
        .count();
    let p = median(plain.clone());
    eprintln!("{test}: {CRATES} crates, {rounds} rounds, {throttled} writes throttled in all");
    eprintln!("  plain {plain:.2?} median {p:.2}");
    for (name, times) in [
        ("sccache alone", &alone),
        ("sccache alone, read-only", &alone_ro),
        ("shim, at the storm's onset", &shim),
        ("shim, during the cooldown", &cooling),
    ] {
        eprintln!(
            "  {name} {times:.2?} median {:.2} ({:.3}x; paired {:.3}x)",
            median(times.clone()),
            median(times.clone()) / p,
            paired(times, &plain),
        );
    }
}

/// The number of library crates in the storm tests' fixture (plus the `app` binary).
const STORM_CRATES: usize = 8;

/// Builds through the shim into a write storm, `rounds` times (each into a target dir of its
/// own): every build passes, every library is compiled once (by sccache or, once the breaker
/// opened, directly), the breaker is open as a throttle after each, and the service hears no
/// upload after a trip. `onset_after_start`: the storm begins after the server started (sccache
/// believes it can write, and the first call's miss shows the storm), else before (sccache's
/// start-up check has its test write refused, which the shim reads in the server's error log:
/// the breaker opens at the start, and no call goes through sccache). A second round comes after
/// the cooldown (shortened to 2 s) and the 5 s between two looks at the figures: the half-open
/// probe replaces the server, and the storm, still on, opens the breaker again at that start.
fn build_into_a_write_storm(
    test: &str,
    onset_after_start: bool,
    user_error_log: bool,
    rounds: u64,
) {
    // Every part is bound, in this order, so that none drops before the test ends and the
    // sandbox drops first.
    let Some(Rig {
        dir,
        _az,
        gha,
        mut sb,
        sccache,
        expected,
    }) = rig(test, STORM_CRATES)
    else {
        return;
    };
    sb.set_env("MAYBE_SCCACHE_COOLDOWN", "2");
    // A user's own error log is theirs: the shim hands the server none and reads none, so the
    // storm is found by the look after the first call instead.
    let user_log = dir.path().join("user-errors.log");
    if user_error_log {
        sb.set_env("SCCACHE_ERROR_LOG", &user_log);
    }
    if onset_after_start {
        let r = run(sb.command(sccache).arg("--start-server"), SHORT);
        assert_eq!(r.code(), Some(0), "{}", r.describe());
    }
    gha.control("429-writes", "ok");

    let (mut forwarded_before, mut forwarded_first, mut at_start_before) = (0, 0, 0);
    for round in 1..=rounds {
        if round > 1 {
            std::thread::sleep(Duration::from_secs(6));
        }
        let target = sb.root().join(format!("target-{round}"));
        // One job: each call, with the shim's look after it, ends before the next begins, so
        // exactly one call meets the storm through sccache, on any number of cores.
        let r = run(
            sb.cargo(&["build", "--offline", "-j1"])
                .env("CARGO_TARGET_DIR", &target),
            BUILD,
        );
        r.assert_success().assert_no_shim_noise();
        let app = run(&mut sb.command(target.join("debug/app")), SHORT);
        assert_eq!(app.out(), expected);

        let st = sb.status_json();
        assert_eq!(breaker_state(&st), "open", "round {round}: {st:?}");
        let reason = breaker_reason(&st);
        assert!(
            reason.starts_with("gha-throttled") && reason.contains("GHA"),
            "round {round}: {st:?}"
        );
        assert_eq!(
            st.path(&["counters", "trips"]).and_then(Json::as_u64),
            Some(round),
            "one trip per round: {st:?}"
        );
        // A storm already on when a server starts (the first round's, or the probe's fresh one
        // later) is seen at that start; one that begins after it, by the first call's miss.
        let storm_at_start = (!onset_after_start || round > 1) && !user_error_log;
        let writes = st.path(&["backend", "writes"]).expect("backend.writes");
        let failed = writes.path(&["failed"]).and_then(Json::as_u64).unwrap();
        if !storm_at_start {
            assert!(failed >= 1, "{writes:?}");
        }
        assert_eq!(writes.path(&["stored"]).and_then(Json::as_u64), Some(0));
        assert_eq!(writes.path(&["throttled"]), Some(&Json::Bool(true)));

        // Each library's compile ran once: forwarded to sccache, or compiled directly after the
        // trip (the `app` binary is never sccache's: bypassed for its crate type).
        let forwarded = st
            .path(&["counters", "forwarded"])
            .and_then(Json::as_u64)
            .unwrap();
        let fallback = st.path(&["counters", "fallback"]).unwrap();
        let count = |reason: &str| fallback.path(&[reason]).and_then(Json::as_u64).unwrap_or(0);
        // The call that started the server and found the storm there compiled directly too.
        let (at_start, directly) = (count("gha-throttled"), count("breaker-open"));
        assert_eq!(
            forwarded + at_start + directly,
            round * STORM_CRATES as u64,
            "one call per library: {st:?}"
        );
        assert_eq!(fallback.sum_counts(), at_start + directly, "{st:?}");
        let (through_sccache, found_at_start) = if storm_at_start { (0, 1) } else { (1, 0) };
        assert_eq!(
            (forwarded - forwarded_before, at_start - at_start_before),
            (through_sccache, found_at_start),
            "the first call of the round meets the storm (through sccache, or at the server's \
             start), the others compile directly: {st:?}"
        );
        // The server is this round's: the first round's, or the one the probe started.
        let stats = sb.sccache_stats(sccache);
        let misses = stats
            .path(&["stats", "cache_misses", "counts", "Rust"])
            .and_then(Json::as_u64)
            .unwrap_or(0);
        assert_eq!(
            misses,
            forwarded - forwarded_before,
            "sccache compiled what this round forwarded: {stats:?}"
        );

        // The service heard no upload attempt after a trip: one per miss of the first round's
        // server at most, and one start-up check per server.
        let log = fs::read_to_string(dir.path().join("gha.log")).unwrap();
        let throttled = log
            .lines()
            .filter(|l| l.contains("CreateCacheEntry") && l.contains("\" 429"))
            .count() as u64;
        assert!(throttled >= 1, "no write was throttled: {log}");
        if round == 1 {
            forwarded_first = forwarded;
        }
        assert!(
            throttled <= forwarded_first + round,
            "{throttled} writes throttled: {log}"
        );

        // The error log the shim gave the server it started is gone from the state dir: it
        // may hold URLs.
        let left: Vec<_> = fs::read_dir(&sb.state)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with("sccache-errors"))
            .collect();
        assert!(left.is_empty(), "{left:?}");

        let text = run(&mut sb.shim(["status"]), SHORT);
        text.assert_success();
        assert!(
            text.out().contains("GHA writes") && text.out().contains("throttled"),
            "{}",
            text.out()
        );
        eprintln!(
            "{test}: round {round}: {forwarded} calls through sccache, {directly} directly in \
             all; {failed} writes failed on this server, {throttled} throttled by the service"
        );
        forwarded_before = forwarded;
        at_start_before = at_start;
    }
    if user_error_log {
        let text = fs::read_to_string(&user_log).unwrap_or_default();
        assert!(
            text.contains("write check failed"),
            "the user's log: {text}"
        );
    }

    // `reset` forgets the throttle with the breaker: `status` no longer reports one.
    run(&mut sb.shim(["reset"]), SHORT).assert_success();
    let st = sb.status_json();
    assert_eq!(breaker_state(&st), "closed", "{st:?}");
    let writes = st.path(&["backend", "writes"]).expect("backend.writes");
    assert_eq!(
        writes.path(&["throttled"]),
        Some(&Json::Bool(false)),
        "{writes:?}"
    );
    assert_eq!(
        writes.path(&["throttled_at"]),
        Some(&Json::Null),
        "{writes:?}"
    );
    let text = run(&mut sb.shim(["status"]), SHORT);
    assert!(!text.out().contains("throttled"), "{}", text.out());
}

/// The storm begins after the server started: sccache still believes it can write.
#[test]
fn a_write_storm_after_the_start_sends_calls_to_the_compiler() {
    build_into_a_write_storm(
        "a_write_storm_after_the_start_sends_calls_to_the_compiler",
        true,
        false,
        1,
    );
}

/// The storm is on when the shim starts the server: sccache's start-up check has its test write
/// throttled, which the shim reads in the error log it gave the server, and the breaker opens at
/// the start.
#[test]
fn a_write_storm_at_the_start_sends_calls_to_the_compiler() {
    build_into_a_write_storm(
        "a_write_storm_at_the_start_sends_calls_to_the_compiler",
        false,
        false,
        1,
    );
}

/// The same storm with the user's own `SCCACHE_ERROR_LOG`: the shim leaves that log to the user
/// (sccache writes the throttled test write there) and finds the storm after the first call.
#[test]
fn a_write_storm_at_the_start_with_the_users_error_log() {
    build_into_a_write_storm(
        "a_write_storm_at_the_start_with_the_users_error_log",
        false,
        true,
        1,
    );
}

/// The storm outlasts the cooldown: the probe's fresh server (read-only, its start-up check
/// throttled) counts failed writes from zero, and the breaker opens again.
#[test]
fn a_write_storm_past_the_cooldown_opens_the_breaker_again() {
    build_into_a_write_storm(
        "a_write_storm_past_the_cooldown_opens_the_breaker_again",
        true,
        false,
        2,
    );
}

/// A read-only backend by choice (`SCCACHE_GHA_RW_MODE=READ_ONLY`, as the set-up action makes
/// pull requests) with a healthy service: sccache counts a failed write per miss, which is no
/// storm. Every library goes through sccache and the breaker stays closed.
#[test]
fn a_read_only_backend_by_choice_is_no_storm() {
    let test = "a_read_only_backend_by_choice_is_no_storm";
    // Every part is bound, in this order, so that none drops before the test ends and the
    // sandbox drops first.
    let Some(Rig {
        dir: _dir,
        _az,
        gha: _gha,
        mut sb,
        sccache,
        expected,
    }) = rig(test, STORM_CRATES)
    else {
        return;
    };
    sb.set_env("SCCACHE_GHA_RW_MODE", "READ_ONLY");
    let r = run(&mut sb.cargo(&["build", "--offline", "-j1"]), BUILD);
    r.assert_success().assert_no_shim_noise();
    assert_app_prints(&sb, &expected);
    let st = sb.status_json();
    assert_eq!(breaker_state(&st), "closed", "{st:?}");
    assert_eq!(
        st.path(&["counters", "forwarded"]).and_then(Json::as_u64),
        Some(STORM_CRATES as u64),
        "{st:?}"
    );
    let writes = st.path(&["backend", "writes"]).expect("backend.writes");
    assert_eq!(writes.path(&["read_only"]), Some(&Json::Bool(true)));
    assert_eq!(writes.path(&["throttled"]), Some(&Json::Bool(false)));
    let stats = sb.sccache_stats(sccache);
    eprintln!(
        "{test}: sccache write errors {:?} (one per miss when read-only)",
        stats.path(&["stats", "cache_write_errors"])
    );
}
