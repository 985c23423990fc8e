//! Whole cargo builds of the fixture: the shim never calls itself through "sccache", and a compile
//! error is shown exactly once.

use std::fs;
use std::path::Path;

use crate::support::*;

/// Builds the fixture with `wrapper` as `RUSTC_WRAPPER`; the build must finish within
/// [`NO_HANG`], pass, print nothing of the shim's, and produce a working binary. Returns what
/// `status --json` says afterwards.
fn build_without_looping(sb: &Sandbox, wrapper: &Path) -> Json {
    sb.write_fixture(Fixture::Good);
    let mut cmd = sb.cargo(&["build", "--offline"]);
    cmd.env("RUSTC_WRAPPER", wrapper);
    let r = run(&mut cmd, NO_HANG);
    r.assert_success().assert_no_shim_noise();
    sb.assert_app_output();
    let st = sb.status_json();
    // A shim started as "sccache" would count its calls as `recursion` bypasses (it inherits the
    // depth counter) in this same state dir, and its failing `--start-server` would trip the
    // breaker: neither may have happened.
    assert_eq!(
        st.path(&["counters", "bypassed", "recursion"]),
        None,
        "the shim ran itself as sccache: {st:#}"
    );
    assert_eq!(
        st.path(&["counters", "trips"]).and_then(Json::as_u64),
        Some(0),
        "{st:#}"
    );
    st
}

/// The decision when the only "sccache" is the shim itself: not found, every cacheable call
/// compiled directly for that reason, and the shim named among the places looked at.
fn assert_not_found(st: &Json) {
    assert_eq!(st.path(&["sccache", "path"]), Some(&Json::Null), "{st:#}");
    let fallbacks = st.path(&["counters", "fallback"]).unwrap();
    assert_eq!(
        fallbacks
            .as_object()
            .map(|m| m.keys().cloned().collect::<Vec<_>>()),
        Some(vec!["not-found".to_owned()]),
        "{st:#}"
    );
    assert!(
        fallbacks.sum_counts() >= LIB_CRATES,
        "every library call looks for sccache: {st:#}"
    );
    assert_eq!(
        st.path(&["counters", "forwarded"]).and_then(Json::as_u64),
        Some(0)
    );
    let looked = st.path(&["sccache", "looked"]).unwrap().to_string();
    assert!(looked.contains("(is maybe-sccache)"), "{st:#}");
}

/// The decision when the real sccache comes after the shim's own copy: the real one, used for
/// every library.
fn assert_found_real(sb: &Sandbox, st: &Json, sccache: &Path) {
    assert_eq!(
        st.path(&["sccache", "found_via"]).and_then(Json::as_str),
        Some("PATH"),
        "{st:#}"
    );
    let found = st
        .path(&["sccache", "path"])
        .and_then(Json::as_str)
        .unwrap();
    assert_eq!(
        Path::new(found).canonicalize().unwrap(),
        sccache.canonicalize().unwrap(),
        "{st:#}"
    );
    assert!(
        st.path(&["counters", "forwarded"]).and_then(Json::as_u64) >= Some(LIB_CRATES),
        "{st:#}"
    );
    assert_eq!(
        st.path(&["counters", "fallback"]).map(Json::sum_counts),
        Some(0),
        "{st:#}"
    );
    let requests = sb
        .sccache_stats(sccache)
        .path(&["stats", "compile_requests"])
        .and_then(Json::as_u64);
    assert!(
        requests >= Some(LIB_CRATES),
        "sccache saw {requests:?} calls"
    );
}

/// Puts the real sccache in a second directory on `PATH`, after the sandbox's bin dir.
fn real_sccache_after_bin(sb: &mut Sandbox, sccache: &Path) {
    let later = sb.root().join("later-bin");
    fs::create_dir_all(&later).unwrap();
    std::os::unix::fs::symlink(sccache, later.join("sccache")).unwrap();
    sb.stop_server_on_drop(sccache);
    let path = std::env::join_paths([
        sb.bin.as_path(),
        later.as_path(),
        toolchain_bin(),
        Path::new("/usr/bin"),
        Path::new("/bin"),
    ])
    .unwrap();
    sb.set_env("PATH", path);
}

#[test]
fn shim_copy_named_sccache_on_path_does_not_loop() {
    let Some(sccache) = require_sccache("shim_copy_named_sccache_on_path_does_not_loop") else {
        return;
    };
    let mut sb = Sandbox::new();
    let log = sb.data.join("shim.log");
    sb.set_env("MAYBE_SCCACHE_LOG", "debug")
        .set_env("MAYBE_SCCACHE_LOG_FILE", &log);
    fs::copy(shim_bin(), sb.bin.join("sccache")).unwrap();
    real_sccache_after_bin(&mut sb, sccache);
    let st = build_without_looping(&sb, &shim());
    assert_found_real(&sb, &st, sccache);
    let text = fs::read_to_string(&log).unwrap_or_default();
    assert!(
        text.contains("sccache found via PATH"),
        "logging was on, but the log does not say where sccache was found:\n{text}"
    );
}

#[test]
fn shim_symlink_named_sccache_on_path_does_not_loop() {
    let sb = Sandbox::new();
    std::os::unix::fs::symlink(shim_bin(), sb.bin.join("sccache")).unwrap();
    assert_not_found(&build_without_looping(&sb, &shim()));
}

#[test]
fn shim_hardlink_named_sccache_on_path_does_not_loop() {
    let sb = Sandbox::new();
    // A private copy of the shim, hard-linked as `sccache`: both names are the same file.
    let wrapper = sb.data.join("maybe-sccache");
    fs::copy(shim_bin(), &wrapper).unwrap();
    fs::hard_link(&wrapper, sb.bin.join("sccache")).unwrap();
    assert_not_found(&build_without_looping(&sb, &wrapper));
}

#[test]
fn sccache_path_pointing_to_the_shim_does_not_loop() {
    let Some(sccache) = require_sccache("sccache_path_pointing_to_the_shim_does_not_loop") else {
        return;
    };
    let mut sb = Sandbox::new();
    sb.set_env("SCCACHE_PATH", shim_bin());
    real_sccache_after_bin(&mut sb, sccache);
    // Found via PATH, not SCCACHE_PATH: the shim skipped itself and went on looking.
    assert_found_real(&sb, &build_without_looping(&sb, &shim()), sccache);
}

#[test]
fn compile_error_shown_once_without_sccache() {
    let sb = Sandbox::new();
    assert_compile_error_once(&sb);
}

#[test]
fn compile_error_shown_once_with_failing_sccache() {
    let mut sb = Sandbox::new();
    sb.set_env("MAYBE_SCCACHE_COOLDOWN", "0");
    sb.fake_sccache(FakeSccache::ErrorTextOnCompile);
    assert_compile_error_once(&sb);
    assert!(
        !sb.sccache_compiles().is_empty(),
        "no compile was forwarded to sccache"
    );
}
