//! Whole cargo builds of the fixture: the shim never calls itself through "sccache", and a compile
//! error is shown exactly once.

use std::fs;
use std::path::Path;

use crate::support::*;

/// Builds the fixture with `wrapper` as `RUSTC_WRAPPER`; the build must finish within
/// [`NO_HANG`], pass, print nothing of the shim's, and produce a working binary.
fn build_without_looping(sb: &Sandbox, wrapper: &Path) {
    sb.write_fixture(Fixture::Good);
    let mut cmd = sb.cargo(&["build", "--offline"]);
    cmd.env("RUSTC_WRAPPER", wrapper);
    let r = run(&mut cmd, NO_HANG);
    r.assert_success().assert_no_shim_noise();
    sb.assert_app_output();
}

#[test]
fn shim_copy_named_sccache_on_path_does_not_loop() {
    let mut sb = Sandbox::new();
    let log = sb.data.join("shim.log");
    sb.set_env("MAYBE_SCCACHE_LOG", "debug")
        .set_env("MAYBE_SCCACHE_LOG_FILE", &log);
    fs::copy(SHIM, sb.bin.join("sccache")).unwrap();
    build_without_looping(&sb, &shim());
    let text = fs::read_to_string(&log).unwrap_or_default();
    assert!(
        !text.trim().is_empty(),
        "logging was on, but the log is empty"
    );
}

#[test]
fn shim_symlink_named_sccache_on_path_does_not_loop() {
    let sb = Sandbox::new();
    std::os::unix::fs::symlink(SHIM, sb.bin.join("sccache")).unwrap();
    build_without_looping(&sb, &shim());
}

#[test]
fn shim_hardlink_named_sccache_on_path_does_not_loop() {
    let sb = Sandbox::new();
    // A private copy of the shim, hard-linked as `sccache`: both names are the same file.
    let wrapper = sb.data.join("maybe-sccache");
    fs::copy(SHIM, &wrapper).unwrap();
    fs::hard_link(&wrapper, sb.bin.join("sccache")).unwrap();
    build_without_looping(&sb, &wrapper);
}

#[test]
fn sccache_path_pointing_to_the_shim_does_not_loop() {
    let mut sb = Sandbox::new();
    sb.set_env("SCCACHE_PATH", SHIM);
    build_without_looping(&sb, &shim());
}

/// The fixture with a type error: cargo fails with 101 and the error is shown exactly once.
pub fn assert_compile_error_once(sb: &Sandbox) {
    sb.write_fixture(Fixture::TypeError);
    let r = sb.build();
    assert_eq!(r.code(), Some(101), "{}", r.describe());
    assert_eq!(
        count(&r.stderr, "error[E0308]"),
        1,
        "the compile error must appear exactly once: {}",
        r.describe()
    );
    for needle in ["sccache:", "SCCACHE_LOG", "panicked"] {
        assert_eq!(
            count(&r.all(), needle),
            0,
            "{needle:?} in: {}",
            r.describe()
        );
    }
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
