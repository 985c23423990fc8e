//! Builds through the shim with the real sccache 0.16. Each test gets its own sccache server (own
//! port and cache dir), stopped when its sandbox is dropped. Without sccache these tests skip with
//! a message, except in CI, where they fail.

use std::ffi::OsString;
use std::path::Path;

use crate::support::*;

fn stat(stats: &Json, key: &str) -> u64 {
    stats
        .path(&["stats", key, "counts"])
        .unwrap_or_else(|| panic!("no stats.{key}.counts in {stats:?}"))
        .sum_counts()
}

/// Builds, cleans, builds again: the second build is served from sccache's cache, which the
/// shim found via `found_via`, and no call fell back.
fn build_clean_rebuild_hits(sb: &Sandbox, sccache: &Path, found_via: &str) {
    sb.write_fixture(Fixture::Good);
    sb.assert_good_build();
    let first = sb.sccache_stats(sccache);
    assert!(
        stat(&first, "cache_misses") >= LIB_CRATES,
        "the first build should have sent every library to sccache (misses >= {LIB_CRATES}): \
         {first:?}"
    );
    assert_eq!(
        stat(&first, "cache_hits"),
        0,
        "fresh cache, yet hits: {first:?}"
    );

    run(&mut sb.cargo(&["clean"]), BUILD).assert_success();
    sb.assert_good_build();
    let second = sb.sccache_stats(sccache);
    assert!(
        stat(&second, "cache_hits") >= LIB_CRATES,
        "the rebuild should hit the cache for every library (>= {LIB_CRATES}): {second:?}"
    );
    let st = sb.status_json();
    assert_eq!(
        st.path(&["sccache", "found_via"]).and_then(Json::as_str),
        Some(found_via),
        "{st:#}"
    );
    assert_eq!(
        st.path(&["counters", "fallback"]).map(Json::sum_counts),
        Some(0),
        "no call may fall back: {st:#}"
    );
    assert!(
        st.path(&["counters", "forwarded"]).and_then(Json::as_u64) >= Some(2 * LIB_CRATES),
        "{st:#}"
    );
}

#[test]
fn rebuild_after_clean_hits_the_cache() {
    let Some(sccache) = require_sccache("rebuild_after_clean_hits_the_cache") else {
        return;
    };
    let sb = Sandbox::new();
    sb.install_real_sccache(sccache);
    build_clean_rebuild_hits(&sb, sccache, "PATH");
}

#[test]
fn sccache_only_via_sccache_path_hits_the_cache() {
    let Some(sccache) = require_sccache("sccache_only_via_sccache_path_hits_the_cache") else {
        return;
    };
    let mut sb = Sandbox::new();
    assert!(
        !sccache.starts_with(sb.root()) && !sccache.starts_with(toolchain_bin()),
        "sccache must not be on the sandbox's PATH"
    );
    sb.set_env("SCCACHE_PATH", sccache);
    sb.stop_server_on_drop(sccache);
    // A broken sccache on PATH, which SCCACHE_PATH must win over.
    sb.fake_sccache(FakeSccache::ErrorText);
    build_clean_rebuild_hits(&sb, sccache, "SCCACHE_PATH");
}

/// `cargo clippy` runs `RUSTC_WRAPPER clippy-driver /path/to/rustc …` for workspace members.
/// sccache 0.16 counts that rustc path as a second input and never caches such a call ("multiple
/// input files"), so the shim sends these calls straight to clippy-driver, by the same rule:
/// sccache never sees them, and clippy's warnings are shown every time (a cache filled by a
/// plain build must not answer for clippy).
#[test]
fn cargo_clippy_through_shim_and_sccache() {
    let Some(sccache) = require_sccache("cargo_clippy_through_shim_and_sccache") else {
        return;
    };
    let sb = Sandbox::new();
    sb.install_real_sccache(sccache);
    sb.write_fixture(Fixture::Good);
    sb.assert_good_build();
    let requests = |sb: &Sandbox| {
        sb.sccache_stats(sccache)
            .path(&["stats", "compile_requests"])
            .and_then(Json::as_u64)
            .unwrap()
    };
    let clippy_bypasses = |sb: &Sandbox| {
        sb.status_json()
            .path(&["counters", "bypassed", "multiple-inputs"])
            .and_then(Json::as_u64)
            .unwrap_or(0)
    };
    assert!(requests(&sb) >= LIB_CRATES, "the plain build used sccache");
    for round in 0..2 {
        let (requests_before, bypasses_before) = (requests(&sb), clippy_bypasses(&sb));
        let r = run(&mut sb.cargo(&["clippy", "--offline"]), BUILD);
        r.assert_success().assert_no_shim_noise();
        assert_eq!(
            count(&r.stderr, CLIPPY_WARNING),
            1,
            "round {round}: clippy's warning must be shown exactly once: {}",
            r.describe()
        );
        assert_eq!(
            requests(&sb),
            requests_before,
            "round {round}: no clippy call may reach sccache"
        );
        assert!(
            clippy_bypasses(&sb) >= bypasses_before + LIB_CRATES,
            "round {round}: every library's clippy call is bypassed: {:#}",
            sb.status_json()
        );
        run(&mut sb.cargo(&["clean"]), BUILD).assert_success();
    }
}

#[test]
fn cargo_incremental_with_real_sccache_builds() {
    let Some(sccache) = require_sccache("cargo_incremental_with_real_sccache_builds") else {
        return;
    };
    let mut sb = Sandbox::new();
    sb.set_env("CARGO_INCREMENTAL", "1");
    sb.install_real_sccache(sccache);
    sb.write_fixture(Fixture::Good);
    sb.assert_good_build();
    assert_no_server(&sb, "CARGO_INCREMENTAL=1");
}

/// Every call bypassed sccache, so nobody started its server.
fn assert_no_server(sb: &Sandbox, why: &str) {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], sb.port));
    assert!(
        std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(1)).is_err(),
        "an sccache server was started although {why}"
    );
}

/// Cargo's default for workspace members in the dev profile is incremental compilation
/// (`-C incremental=…` on every call), which sccache cannot cache: all calls bypass it.
#[test]
fn default_incremental_build_with_real_sccache() {
    let Some(sccache) = require_sccache("default_incremental_build_with_real_sccache") else {
        return;
    };
    let sb = Sandbox::new();
    sb.install_real_sccache(sccache);
    sb.write_fixture(Fixture::Good);
    let mut cmd = sb.cargo(&["build", "--offline"]);
    cmd.env_remove("CARGO_INCREMENTAL");
    let r = run(&mut cmd, BUILD);
    r.assert_success().assert_no_shim_noise();
    assert_eq!(count(&r.stderr, RUSTC_WARNING), 1, "{}", r.describe());
    sb.assert_app_output();
    assert!(
        sb.target.join("debug").join("incremental").is_dir(),
        "the build was not incremental after all"
    );
    assert_no_server(&sb, "every call had -C incremental");
}

#[test]
fn compile_error_shown_once_with_real_sccache() {
    let Some(sccache) = require_sccache("compile_error_shown_once_with_real_sccache") else {
        return;
    };
    let sb = Sandbox::new();
    sb.install_real_sccache(sccache);
    assert_compile_error_once(&sb);
    let stats = sb.sccache_stats(sccache);
    assert!(
        stats
            .path(&["stats", "compile_requests"])
            .and_then(Json::as_u64)
            .unwrap_or(0)
            >= 1,
        "the failing library should have gone through sccache: {stats:?}"
    );
}

/// A compiler killed by a signal under sccache: the shim dies by the same signal, prints none of
/// sccache's words, and does not run the compiler a second time.
#[test]
fn compiler_killed_under_real_sccache() {
    for (_, sccache) in sccaches("compiler_killed_under_real_sccache") {
        compiler_killed_under(&sccache);
    }
}

fn compiler_killed_under(sccache: &Path) {
    let mut sb = Sandbox::new();
    sb.set_env("MAYBE_SCCACHE_COOLDOWN", "0");
    sb.install_real_sccache(sccache);
    let calls = sb.data.join("killed-calls");
    // Behaves like rustc for sccache's probes and its dep-info pass; the real compile (the one
    // emitting `link`, which sccache passes as `--emit dep-info,metadata,link`, and not asking
    // for `--print file-names`) kills itself.
    let compiler = sb.rustc_wrapper(
        "rustc",
        &format!(
            "echo call >> {}; ulimit -c 0; kill -KILL $$; exit 99",
            sh_quote(calls.as_os_str())
        ),
    );
    write_file(&sb.ws.join("victim.rs"), "pub fn f() -> u32 { 1 }\n", 0o644);
    let out_dir = sb.data.join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    let mut args: Vec<OsString> = vec![compiler.into_os_string()];
    args.extend(cacheable_args("victim.rs", &out_dir));
    let mut cmd = sb.shim(args);
    cmd.current_dir(&sb.ws);
    let r = run(&mut cmd, SHORT);
    assert_eq!(
        r.signal(),
        Some(9),
        "the shim must die by the compiler's signal: {}",
        r.describe()
    );
    assert_eq!(count(&r.all(), "sccache:"), 0, "{}", r.describe());
    let n = std::fs::read_to_string(&calls)
        .map(|s| s.lines().count())
        .unwrap_or(0);
    assert_eq!(n, 1, "the killed compile must run exactly once");
    let stats = sb.sccache_stats(sccache);
    assert!(
        stats
            .path(&["stats", "compile_requests"])
            .and_then(Json::as_u64)
            .unwrap_or(0)
            >= 1,
        "the call should have gone through sccache: {stats:?}"
    );
}

/// The compiler's output through the real sccache reaches the caller byte for byte: on a miss
/// (sccache relays the compile) and on a hit (sccache replays what it stored). The output is
/// the kind rustc writes under cargo: UTF-8 JSON lines, with colour escapes and tabs escaped
/// inside the JSON strings. (sccache 0.16 itself, writing to a pipe, drops raw control characters
/// — tabs, colour escapes, carriage returns — and bytes that are not UTF-8 before the shim sees
/// the output.) Here also blank lines, trailing blanks, no newline at the end, and more than a
/// pipe's buffer of it.
#[test]
fn replay_through_real_sccache_is_byte_exact_on_miss_and_hit() {
    let Some(sccache) = require_sccache("replay_through_real_sccache_is_byte_exact") else {
        return;
    };
    let line =
        r#"{"$message_type":"diagnostic","rendered":"\u001b[1mwarning\u001b[0m:\tünï ✓ 😀\n"}"#;
    let mut out = format!("{line}\n\n   \n").repeat(1000);
    out.push_str("no newline at the end");
    let err = format!("{line}\n{line}  ");
    let (out, err) = (out.as_bytes(), err.as_bytes());
    let sb = Sandbox::new();
    sb.install_real_sccache(sccache);
    write_file(&sb.data.join("out.bin"), out, 0o644);
    write_file(&sb.data.join("err.bin"), err, 0o644);
    let calls = sb.data.join("compiles");
    let compiler = sb.rustc_wrapper(
        "rustc",
        &format!(
            "echo call >> {calls}; \"$RUSTC\" \"$@\" || exit $?; cat {out}; cat {err} >&2; exit 0",
            calls = sh_quote(calls.as_os_str()),
            out = sh_quote(sb.data.join("out.bin").as_os_str()),
            err = sh_quote(sb.data.join("err.bin").as_os_str()),
        ),
    );
    for (round, kind) in [(1, "cache_misses"), (2, "cache_hits")] {
        let r = sb.victim_call(&compiler, &[]);
        r.assert_success();
        assert!(
            r.stdout == out && r.stderr == err,
            "round {round}: not the compiler's bytes: {:?} / {:?}",
            String::from_utf8_lossy(&r.stdout[..r.stdout.len().min(300)]),
            r.err()
        );
        let stats = sb.sccache_stats(sccache);
        assert_eq!(stat(&stats, kind), 1, "round {round}: {stats:?}");
        assert!(sb.data.join("out").join("libvictim.rlib").is_file());
    }
    let compiles = std::fs::read_to_string(&calls).unwrap_or_default();
    assert_eq!(compiles.lines().count(), 1, "the hit must not compile");
}

/// sccache 0.16 passes arguments on as UTF-8 (it replaces bytes that are not with U+FFFD), so a
/// call with such an argument never goes to it: the compiler gets them byte for byte, as if the
/// shim were not there.
#[test]
fn non_utf8_arguments_reach_the_compiler_with_real_sccache_installed() {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let Some(sccache) = require_sccache("non_utf8_arguments_with_real_sccache") else {
        return;
    };
    let sb = Sandbox::new();
    sb.install_real_sccache(sccache);
    // The compile records its arguments, then leaves out the one rustc would refuse.
    let argv = sb.data.join("argv");
    let compiler = sb.rustc_wrapper(
        "rustc",
        &format!(
            ": > {argv}; for a in \"$@\"; do printf '%s\\000' \"$a\" >> {argv}; done\n\
             for a in \"$@\"; do case \"$a\" in --cfg=msit_*) ;; *) set -- \"$@\" \"$a\" ;; esac; \
             shift; done",
            argv = sh_quote(argv.as_os_str()),
        ),
    );
    let odd = OsString::from_vec(b"--cfg=msit_\xff\xfe".to_vec());
    for round in 1..=2 {
        let r = sb.victim_call(&compiler, std::slice::from_ref(&odd));
        r.assert_success();
        let recorded = std::fs::read(&argv).unwrap();
        let last = recorded.split(|&b| b == 0).rev().nth(1).unwrap();
        assert_eq!(
            last,
            odd.as_bytes(),
            "round {round}: the argument changed on its way"
        );
    }
    let st = sb.status_json();
    assert_eq!(
        st.path(&["counters", "bypassed", "non-utf8-arg"])
            .and_then(Json::as_u64),
        Some(2),
        "{st:#}"
    );
}
