//! The entry point: what std's start-up does for the shim (no death by `SIGPIPE` on a stderr whose
//! reader left), and a panic of the shim's own in wrapper mode, before and after the compiler ran.

use std::fs::File;
use std::os::fd::FromRawFd;
use std::process::Stdio;

use crate::support::*;

/// A stderr whose reader is gone: writing the shim's one error line gives `EPIPE`, and the shim
/// still ends with its own exit code instead of dying by `SIGPIPE` (which cargo would report as
/// a crash of the compiler).
#[test]
fn an_error_on_a_stderr_whose_reader_left_is_an_exit_code_not_sigpipe() {
    let sb = Sandbox::new();
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors `pipe` writes.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: both descriptors were just created by `pipe` and are owned here alone.
    let (reader, writer) = unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) };
    drop(reader);
    let mut cmd = sb.shim(["--no-such-option"]);
    cmd.stderr(Stdio::from(writer));
    let status = cmd.status().unwrap();
    assert_eq!(
        status.code(),
        Some(2),
        "the shim must exit 2, not die by a signal: {status:?}"
    );
}

/// The panic hook exists only in test builds of the shim; a release binary under test has none.
fn panic_hook_available(test: &str) -> bool {
    if std::env::var_os("MAYBE_SCCACHE_TEST_BIN").is_some() {
        eprintln!("SKIP {test}: the binary under test is a release build without the panic hook");
        return false;
    }
    true
}

/// A panic of the shim's own before anything compiled: every crate is compiled directly, once,
/// the build passes, and cargo sees nothing of the panic (it goes to the log).
#[test]
fn a_panic_before_the_compile_compiles_directly() {
    if !panic_hook_available("a_panic_before_the_compile_compiles_directly") {
        return;
    }
    let mut sb = Sandbox::new();
    let Some(sccache) = require_sccache("panic_before_compile") else {
        return;
    };
    let log = sb.data.join("shim.log");
    sb.set_env("MAYBE_SCCACHE_TEST_PANIC", "before-compile")
        .set_env("MAYBE_SCCACHE_LOG", "info")
        .set_env("MAYBE_SCCACHE_LOG_FILE", &log);
    sb.install_real_sccache(sccache);
    let r = sb.assert_good_build();
    assert_eq!(count(&r.all(), "panicked"), 0, "{}", r.describe());
    let requests = sb
        .sccache_stats(sccache)
        .path(&["stats", "compile_requests"])
        .and_then(Json::as_u64)
        .unwrap_or(0);
    assert_eq!(requests, 0, "nothing went to sccache");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("maybe-sccache panicked: ") && text.contains("test panic at before-compile"),
        "the panic is in the log: {text}"
    );
}

/// A panic after sccache compiled: the call fails (101) instead of running the compiler a second
/// time, whose side effects (a build script's, a proc-macro's) would then happen twice.
#[test]
fn a_panic_after_the_compile_never_runs_the_compiler_again() {
    if !panic_hook_available("a_panic_after_the_compile_never_runs_the_compiler_again") {
        return;
    }
    let mut sb = Sandbox::new();
    let Some(sccache) = require_sccache("panic_after_compile") else {
        return;
    };
    sb.set_env("MAYBE_SCCACHE_TEST_PANIC", "after-compile");
    sb.install_real_sccache(sccache);
    let runs = sb.data.join("compiles");
    let rustc = sb.rustc_wrapper(
        "counting-rustc",
        &format!("echo x >> {}", sh_quote(runs.as_os_str())),
    );
    let r = sb.victim_call(&rustc, &[]);
    assert_eq!(r.code(), Some(101), "{}", r.describe());
    assert_eq!(count(&r.all(), "panicked"), 0, "{}", r.describe());
    let compiles = std::fs::read_to_string(&runs).unwrap_or_default();
    assert_eq!(compiles.lines().count(), 1, "the compiler ran once");
}
