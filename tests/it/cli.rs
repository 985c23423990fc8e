//! The shim's own command line: `--help`, `--version`, no arguments, a compiler that cannot run.

use crate::support::*;

#[test]
fn help_exits_zero_on_stdout() {
    let sb = Sandbox::new();
    let r = run(&mut sb.shim(["--help"]), SHORT);
    assert_eq!(r.code(), Some(0), "{}", r.describe());
    assert!(
        !r.stdout.is_empty(),
        "--help printed nothing: {}",
        r.describe()
    );
    assert_eq!(count(&r.all(), "panicked"), 0, "{}", r.describe());
}

#[test]
fn version_exits_zero_on_stdout() {
    let sb = Sandbox::new();
    let r = run(&mut sb.shim(["--version"]), SHORT);
    assert_eq!(r.code(), Some(0), "{}", r.describe());
    assert!(
        r.out().contains(env!("CARGO_PKG_VERSION")),
        "--version does not show {}: {}",
        env!("CARGO_PKG_VERSION"),
        r.describe()
    );
    assert_eq!(count(&r.all(), "panicked"), 0, "{}", r.describe());
}

#[test]
fn bare_call_prints_usage_to_stderr_and_exits_2() {
    let sb = Sandbox::new();
    let r = run(&mut sb.command(shim_bin()), SHORT);
    assert_eq!(r.code(), Some(2), "{}", r.describe());
    assert!(
        r.stdout.is_empty(),
        "stdout must be empty: {}",
        r.describe()
    );
    assert!(
        r.err().to_lowercase().contains("usage"),
        "no usage on stderr: {}",
        r.describe()
    );
    assert_eq!(count(&r.all(), "panicked"), 0, "{}", r.describe());
}

/// stderr must be exactly one line, starting with `prefix`.
fn assert_one_error_line(r: &Run, prefix: &str) {
    let err = r.err();
    let line = err.strip_suffix('\n').unwrap_or(&err);
    assert!(
        !line.contains('\n') && line.starts_with(prefix),
        "stderr must be exactly one line starting {prefix:?}: {}",
        r.describe()
    );
    assert!(
        r.stdout.is_empty(),
        "stdout must be empty: {}",
        r.describe()
    );
    assert_eq!(count(&r.all(), "panicked"), 0, "{}", r.describe());
}

#[test]
fn missing_compiler_without_sccache_is_one_error_line() {
    let sb = Sandbox::new();
    let r = run(&mut sb.shim(["/nonexistent/rustc", "-vV"]), SHORT);
    assert_ne!(r.code(), Some(0), "{}", r.describe());
    assert_eq!(
        r.code(),
        Some(127),
        "not found must exit 127: {}",
        r.describe()
    );
    assert_one_error_line(&r, "maybe-sccache: error: cannot run /nonexistent/rustc:");
}

#[test]
fn missing_compiler_on_cacheable_call_without_sccache() {
    let sb = Sandbox::new();
    let mut args = vec!["/nonexistent/rustc".into()];
    args.extend(cacheable_args("lib.rs", &sb.data));
    let r = run(&mut sb.shim(args), SHORT);
    assert_eq!(r.code(), Some(127), "{}", r.describe());
    assert_one_error_line(&r, "maybe-sccache: error: cannot run /nonexistent/rustc:");
}

#[test]
fn missing_compiler_after_failing_sccache_is_one_error_line() {
    let mut sb = Sandbox::new();
    sb.set_env("MAYBE_SCCACHE_COOLDOWN", "0");
    sb.fake_sccache(FakeSccache::ErrorText);
    let mut args = vec!["/nonexistent/rustc".into()];
    args.extend(cacheable_args("lib.rs", &sb.data));
    let r = run(&mut sb.shim(args), SHORT);
    assert_eq!(r.code(), Some(127), "{}", r.describe());
    // sccache's own error text must not leak: only the shim's line.
    assert_one_error_line(&r, "maybe-sccache: error: cannot run /nonexistent/rustc:");
    // A missing compiler is not sccache's fault: sccache is not even asked, and the breaker
    // stays closed.
    assert_eq!(sb.sccache_calls(), Vec::<String>::new());
    let st = sb.status_json();
    assert_eq!(
        st.path(&["counters", "trips"]).and_then(Json::as_u64),
        Some(0),
        "{st:#}"
    );
    assert_eq!(
        st.path(&["counters", "fallback", "compiler-not-found"])
            .and_then(Json::as_u64),
        Some(1),
        "{st:#}"
    );
}

#[test]
fn non_executable_compiler_exits_126() {
    let sb = Sandbox::new();
    let compiler = sb.data.join("rustc");
    write_file(&compiler, "#!/bin/sh\nexit 0\n", 0o644);
    let r = run(&mut sb.shim([compiler.as_os_str(), "-vV".as_ref()]), SHORT);
    assert_eq!(r.code(), Some(126), "{}", r.describe());
    assert_one_error_line(
        &r,
        &format!("maybe-sccache: error: cannot run {}:", compiler.display()),
    );
}

#[test]
fn every_subcommand_has_help() {
    let sb = Sandbox::new();
    for sub in ["status", "doctor", "cache-key", "should-save", "reset"] {
        for flag in ["--help", "-h"] {
            let r = run(&mut sb.shim([sub, flag]), SHORT);
            assert_clean_success(&r);
            assert!(
                r.out().contains(&format!("maybe-sccache {sub}")),
                "{}",
                r.describe()
            );
        }
    }
    let r = run(&mut sb.shim(["--help"]), SHORT);
    for needle in [
        "status [--json | --markdown]",
        "doctor [--strict]",
        "cache-key [--lockfile PATH] [--prefix STR] [--github-output]",
        "should-save [--threshold PERCENT] [--github-output]",
        "reset",
    ] {
        assert!(
            r.out().contains(needle),
            "--help lacks {needle:?}: {}",
            r.describe()
        );
    }
}
