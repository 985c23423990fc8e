//! The compiler's output, exit code and arguments pass through the shim unchanged, whether it runs
//! the compiler itself or through sccache; calls sccache can never cache bypass it; logging.

use std::ffi::OsString;
use std::fs;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

use crate::support::*;

/// Bytes no decoder would accept, a NUL, `\r\n`, and no trailing newline.
const OUT: &[u8] = b"stdout line\n\xff\xfe\x00 raw \x80 bytes\r\nno trailing newline";
const ERR: &[u8] = b"warning: something\n\xc3\x28 invalid utf-8\n\xfe last line without newline";

fn shim_call(sb: &Sandbox, compiler: impl Into<OsString>, args: &[OsString]) -> Run {
    let mut all = vec![compiler.into()];
    all.extend_from_slice(args);
    run(&mut sb.shim(all), SHORT)
}

fn os(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

fn assert_bytes(r: &Run, out: &[u8], err: &[u8]) {
    assert!(
        r.stdout == out,
        "stdout differs: expected {:?}, got {:?}\n{}",
        String::from_utf8_lossy(out),
        String::from_utf8_lossy(&r.stdout),
        r.describe()
    );
    assert!(
        r.stderr == err,
        "stderr differs: expected {:?}, got {:?}\n{}",
        String::from_utf8_lossy(err),
        String::from_utf8_lossy(&r.stderr),
        r.describe()
    );
}

fn argv_bytes(args: &[OsString]) -> Vec<Vec<u8>> {
    args.iter().map(|a| a.as_bytes().to_vec()).collect()
}

#[test]
fn output_bytes_and_exit_codes_are_kept() {
    let sb = Sandbox::new();
    let shapes = [
        os(&["-vV"]),
        cacheable_args("src/lib.rs", &sb.data),
        os(&["--crate-name", "app", "src/main.rs", "--crate-type", "bin"]),
    ];
    for code in [0, 1, 3, 101] {
        let fake = sb.fake_rustc(OUT, ERR, Ending::Exit(code));
        for args in &shapes {
            let r = shim_call(&sb, &fake.path, args);
            assert_eq!(r.code(), Some(code), "exit code not kept: {}", r.describe());
            assert_bytes(&r, OUT, ERR);
            assert_eq!(fake.argv(), argv_bytes(args), "arguments changed");
        }
        assert_eq!(
            fake.calls(),
            shapes.len(),
            "the compiler ran more than once"
        );
    }
}

#[test]
fn compiler_signal_death_is_a_signal_death() {
    let sb = Sandbox::new();
    for (name, number) in [("KILL", libc_sig::KILL), ("SEGV", libc_sig::SEGV)] {
        let fake = sb.fake_rustc(OUT, ERR, Ending::Signal(name));
        for args in [os(&["-vV"]), cacheable_args("src/lib.rs", &sb.data)] {
            let r = shim_call(&sb, &fake.path, &args);
            assert_eq!(
                r.signal(),
                Some(number),
                "the caller must see death by SIG{name}: {}",
                r.describe()
            );
            assert_bytes(&r, OUT, ERR);
        }
    }
}

/// Signal numbers, spelled out so the test needs no libc.
mod libc_sig {
    pub const KILL: i32 = 9;
    pub const SEGV: i32 = 11;
}

#[test]
fn non_utf8_arguments_reach_the_compiler_byte_for_byte() {
    let sb = Sandbox::new();
    let fake = sb.fake_rustc(b"", b"", Ending::Exit(0));
    let mut plain = os(&["--crate-name", "x"]);
    plain.push(OsString::from_vec(b"\xff\xfe".to_vec()));
    plain.push(OsString::from_vec(b"--cfg=feature=\"\xe9t\xe9\"".to_vec()));
    plain.push(OsString::from("with space"));
    plain.push(OsString::from(""));
    let mut cacheable = cacheable_args("src/lib.rs", &sb.data);
    cacheable.push(OsString::from_vec(b"--cfg=\xff\xfe".to_vec()));
    for args in [plain, cacheable] {
        let r = shim_call(&sb, &fake.path, &args);
        r.assert_success();
        assert_eq!(fake.argv(), argv_bytes(&args), "arguments changed");
    }
}

/// sccache 0.16 would pass such an argument on as U+FFFD (see the real-sccache test), so the
/// call goes to the compiler directly.
#[test]
fn non_utf8_arguments_bypass_sccache() {
    let mut sb = Sandbox::new();
    sb.set_env("MAYBE_SCCACHE_COOLDOWN", "0");
    sb.fake_sccache(FakeSccache::Healthy);
    let fake = sb.fake_rustc(OUT, ERR, Ending::Exit(0));
    let mut args = cacheable_args("src/lib.rs", &sb.data);
    args.push(OsString::from_vec(b"--cfg=\xff\xfe".to_vec()));
    let r = shim_call(&sb, &fake.path, &args);
    r.assert_success();
    assert_bytes(&r, OUT, ERR);
    assert_eq!(fake.argv(), argv_bytes(&args), "arguments changed");
    assert_eq!(
        sb.sccache_calls(),
        Vec::<String>::new(),
        "a call with an argument that is not UTF-8 must not touch sccache"
    );
    let st = sb.status_json();
    assert_eq!(
        st.path(&["counters", "bypassed", "non-utf8-arg"])
            .and_then(Json::as_u64),
        Some(1),
        "{st:#}"
    );
}

#[test]
fn argfile_is_passed_unchanged() {
    let mut sb = Sandbox::new();
    sb.set_env("MAYBE_SCCACHE_COOLDOWN", "0");
    sb.fake_sccache(FakeSccache::Healthy);
    let argfile = sb.data.join("rustc-args");
    let contents = b"--crate-name\nvictim\n--crate-type\nlib\n--emit=dep-info,metadata,link\n\
                     src/lib.rs\n--out-dir\n/tmp/out\n\xff\n";
    write_file(&argfile, contents, 0o644);
    let fake = sb.fake_rustc(OUT, ERR, Ending::Exit(0));
    let mut arg = OsString::from("@");
    arg.push(&argfile);
    let args = vec![arg];
    let r = shim_call(&sb, &fake.path, &args);
    r.assert_success();
    assert_bytes(&r, OUT, ERR);
    assert_eq!(
        fake.argv(),
        argv_bytes(&args),
        "the @argfile argument changed"
    );
    assert_eq!(
        fs::read(&argfile).unwrap(),
        contents,
        "the argfile was modified"
    );
    assert_eq!(
        sb.sccache_calls(),
        Vec::<String>::new(),
        "an @argfile call must bypass sccache"
    );
}

#[test]
fn compiler_by_absolute_path_relative_path_and_bare_name() {
    let sb = Sandbox::new();
    let args = os(&["-vV"]);

    let absolute = sb.fake_rustc(OUT, ERR, Ending::Exit(3));
    assert!(absolute.path.is_absolute());
    let r = shim_call(&sb, &absolute.path, &args);
    assert_eq!(r.code(), Some(3), "{}", r.describe());
    assert_bytes(&r, OUT, ERR);
    assert_eq!(absolute.calls(), 1);

    let relative = sb.fake_rustc_at(&sb.ws.join("rustc"), OUT, ERR, Ending::Exit(4));
    let mut cmd = sb.shim(["./rustc", "-vV"]);
    cmd.current_dir(&sb.ws);
    let r = run(&mut cmd, SHORT);
    assert_eq!(r.code(), Some(4), "{}", r.describe());
    assert_bytes(&r, OUT, ERR);
    assert_eq!(relative.calls(), 1);

    // `rustc` in the bin dir, which comes before the toolchain on PATH.
    let bare = sb.fake_rustc_at(&sb.bin.join("rustc"), OUT, ERR, Ending::Exit(5));
    let r = shim_call(&sb, "rustc", &args);
    assert_eq!(r.code(), Some(5), "{}", r.describe());
    assert_bytes(&r, OUT, ERR);
    assert_eq!(bare.calls(), 1);

    // The same three forms on a call that would go to sccache if it were there.
    let lib = cacheable_args("src/lib.rs", &sb.data);
    let r = shim_call(&sb, "rustc", &lib);
    assert_eq!(r.code(), Some(5), "{}", r.describe());
    assert_eq!(bare.calls(), 2);
    let mut cmd = sb.shim(std::iter::once(OsString::from("./rustc")).chain(lib.clone()));
    cmd.current_dir(&sb.ws);
    let r = run(&mut cmd, SHORT);
    assert_eq!(r.code(), Some(4), "{}", r.describe());
    assert_eq!(relative.calls(), 2);
}

/// Calls sccache 0.16 can never cache go straight to the compiler.
#[test]
fn uncacheable_calls_bypass_sccache() {
    let mut sb = Sandbox::new();
    sb.set_env("MAYBE_SCCACHE_COOLDOWN", "0");
    sb.fake_sccache(FakeSccache::Healthy);
    let fake = sb.fake_rustc(OUT, ERR, Ending::Exit(0));
    let lib = cacheable_args("src/lib.rs", &sb.data);
    let replace = |from: &str, to: &[&str]| -> Vec<OsString> {
        let mut out = Vec::new();
        let mut it = lib.iter();
        while let Some(a) = it.next() {
            if a == from {
                it.next();
                out.extend(os(to));
            } else {
                out.push(a.clone());
            }
        }
        out
    };
    let mut incremental = lib.clone();
    incremental.extend(os(&["-C", "incremental=/tmp/inc"]));
    let cases: Vec<(&str, Vec<OsString>)> = vec![
        ("version probe", os(&["-vV"])),
        ("print probe", os(&["--print=sysroot"])),
        (
            "stdin probe",
            os(&[
                "-",
                "--crate-name",
                "___",
                "--print=file-names",
                "--crate-type",
                "bin",
            ]),
        ),
        (
            "bin crate",
            replace("--crate-type", &["--crate-type", "bin"]),
        ),
        (
            "proc-macro crate",
            replace("--crate-type", &["--crate-type", "proc-macro"]),
        ),
        (
            "build script",
            os(&[
                "--crate-name",
                "build_script_build",
                "--edition=2021",
                "build.rs",
                "--crate-type",
                "bin",
                "--emit=dep-info,link",
                "--out-dir",
                "/tmp/out",
            ]),
        ),
        ("incremental", incremental),
    ];
    for (what, args) in &cases {
        let r = shim_call(&sb, &fake.path, args);
        r.assert_success();
        assert_bytes(&r, OUT, ERR);
        assert_eq!(
            sb.sccache_calls(),
            Vec::<String>::new(),
            "{what}: must bypass sccache"
        );
    }
    assert_eq!(fake.calls(), cases.len());

    // A library call does go to sccache, as `sccache <compiler> <args>`.
    let r = shim_call(&sb, &fake.path, &lib);
    r.assert_success();
    assert_bytes(&r, OUT, ERR);
    let expected: Vec<String> = std::iter::once(fake.path.display().to_string())
        .chain(lib.iter().map(|a| a.to_string_lossy().into_owned()))
        .collect();
    assert_eq!(sb.sccache_compiles(), vec![expected.join(" ")]);
    assert_eq!(fake.calls(), cases.len() + 1);
}

fn assert_no_forward_with(env: (&str, &str)) {
    let mut sb = Sandbox::new();
    sb.set_env("MAYBE_SCCACHE_COOLDOWN", "0");
    sb.set_env(env.0, env.1);
    sb.fake_sccache(FakeSccache::Healthy);
    let fake = sb.fake_rustc(OUT, ERR, Ending::Exit(1));
    let r = shim_call(&sb, &fake.path, &cacheable_args("src/lib.rs", &sb.data));
    assert_eq!(r.code(), Some(1), "{}", r.describe());
    assert_bytes(&r, OUT, ERR);
    assert_eq!(fake.calls(), 1);
    assert_eq!(
        sb.sccache_calls(),
        Vec::<String>::new(),
        "{}={} must keep sccache out",
        env.0,
        env.1
    );
}

#[test]
fn cargo_incremental_bypasses_sccache() {
    assert_no_forward_with(("CARGO_INCREMENTAL", "1"));
}

#[test]
fn disable_never_touches_sccache() {
    assert_no_forward_with(("MAYBE_SCCACHE_DISABLE", "1"));
}

#[test]
fn recursion_counter_stops_forwarding() {
    assert_no_forward_with(("MAYBE_SCCACHE_DEPTH", "1"));
}

/// A forwarded call's output is sccache's replay of the compiler's, byte for byte, with the exit
/// code kept and the compiler run once (a compile error is shown exactly once).
#[test]
fn forwarded_output_is_replayed_byte_exact() {
    let mut sb = Sandbox::new();
    sb.set_env("MAYBE_SCCACHE_COOLDOWN", "0");
    sb.fake_sccache(FakeSccache::Healthy);
    let lib = cacheable_args("src/lib.rs", &sb.data);
    for (n, code) in [0, 1, 2, 101].into_iter().enumerate() {
        let fake = sb.fake_rustc(OUT, ERR, Ending::Exit(code));
        let r = shim_call(&sb, &fake.path, &lib);
        assert_eq!(r.code(), Some(code), "{}", r.describe());
        assert_bytes(&r, OUT, ERR);
        assert_eq!(
            fake.calls(),
            1,
            "exit {code}: the compiler must run exactly once"
        );
        assert_eq!(
            sb.sccache_compiles().len(),
            n + 1,
            "the call was not forwarded: {:?}",
            sb.sccache_calls()
        );
    }
}

fn log_file_text(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn log_file_records_decisions_but_no_secrets() {
    let mut sb = Sandbox::new();
    let log = sb.data.join("shim.log");
    sb.set_env("MAYBE_SCCACHE_LOG", "debug")
        .set_env("MAYBE_SCCACHE_LOG_FILE", &log)
        .set_env("MAYBE_SCCACHE_COOLDOWN", "0")
        .set_env("MY_API_TOKEN", "supersecret123")
        .set_env("AWS_SECRET_ACCESS_KEY", "supersecret456")
        .set_env("SCCACHE_REDIS_PASSWORD", "supersecret789");
    let fake = sb.fake_rustc(OUT, ERR, Ending::Exit(0));
    let lib = cacheable_args("src/lib.rs", &sb.data);
    let call = |what: &str, args: &[OsString]| -> String {
        let before = log_file_text(&log).len();
        let r = shim_call(&sb, &fake.path, args);
        r.assert_success();
        assert_bytes(&r, OUT, ERR);
        let text = log_file_text(&log);
        assert!(text.len() > before, "{what}: nothing logged");
        for secret in ["supersecret123", "supersecret456", "supersecret789"] {
            assert!(
                !text.contains(secret),
                "{what}: secret {secret} in the log: {text}"
            );
        }
        text[before..].to_lowercase()
    };

    // A probe: bypassed.
    let text = call("probe", &os(&["-vV"]));
    assert!(text.contains("bypass"), "the bypass must be logged: {text}");

    // A library call with no sccache anywhere.
    let text = call("no sccache", &lib);
    assert!(
        text.contains("fallback not-found crate victim:"),
        "the fallback must be logged, naming the crate: {text}"
    );

    // A library call with a healthy sccache: forwarded.
    sb.fake_sccache(FakeSccache::Healthy);
    let text = call("healthy sccache", &lib);
    assert!(
        text.contains("forward crate victim: exit 0"),
        "the forward must be logged, naming the crate: {text}"
    );

    // sccache fails on the compile: fallback.
    sb.fake_sccache(FakeSccache::ErrorTextOnCompile);
    let text = call("sccache error on compile", &lib);
    assert!(
        text.contains("fallback"),
        "the fallback must be logged: {text}"
    );

    // sccache's server cannot start: fallback.
    sb.fake_sccache(FakeSccache::ErrorText);
    let text = call("sccache server start fails", &lib);
    assert!(
        text.contains("fallback"),
        "the fallback must be logged: {text}"
    );
}

#[test]
fn log_goes_to_stderr_without_a_log_file() {
    let mut sb = Sandbox::new();
    sb.set_env("MAYBE_SCCACHE_LOG", "debug")
        .set_env("MY_API_TOKEN", "supersecret123");
    let fake = sb.fake_rustc(OUT, ERR, Ending::Exit(0));
    let r = shim_call(&sb, &fake.path, &os(&["-vV"]));
    r.assert_success();
    assert_eq!(r.stdout, OUT, "the log must not go to stdout");
    assert!(
        r.stderr.len() > ERR.len() && r.stderr.windows(ERR.len()).any(|w| w == ERR),
        "stderr must hold the compiler's bytes plus the log: {}",
        r.describe()
    );
    let err = r.err().to_lowercase();
    assert!(
        ["forward", "bypass", "fallback"]
            .iter()
            .any(|w| err.contains(w)),
        "no decision logged: {}",
        r.describe()
    );
    assert!(!err.contains("supersecret123"), "secret in the log");
}

#[test]
fn silent_by_default_even_when_falling_back() {
    let mut sb = Sandbox::new();
    sb.set_env("MAYBE_SCCACHE_COOLDOWN", "0");
    let fake = sb.fake_rustc(OUT, ERR, Ending::Exit(0));
    for kind in [FakeSccache::ErrorText, FakeSccache::ErrorTextOnCompile] {
        sb.fake_sccache(kind);
        for args in [os(&["-vV"]), cacheable_args("src/lib.rs", &sb.data)] {
            let r = shim_call(&sb, &fake.path, &args);
            r.assert_success();
            assert_bytes(&r, OUT, ERR);
        }
    }
    assert!(!sb.sccache_calls().is_empty(), "sccache was never tried");
}

/// A wrapper may be started with a standard stream closed (by a daemon, or `cmd >&-` in a
/// script). The files the shim opens itself must not take that stream's number: here its log
/// file would become the compiler's stdout. Runs without sccache, so the compiler is exec'd with
/// the shim's own descriptors.
#[test]
fn a_closed_stdout_is_not_taken_by_the_shims_log_file() {
    use std::os::unix::process::CommandExt;
    let mut sb = Sandbox::new();
    let log = sb.data.join("shim.log");
    sb.set_env("MAYBE_SCCACHE_LOG", "info");
    sb.set_env("MAYBE_SCCACHE_LOG_FILE", &log);
    let fake = sb.fake_rustc(b"to stdout\n", b"to stderr\n", Ending::Exit(0));
    let mut cmd = sb.shim(fake_call(&fake));
    // SAFETY: `close` is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::close(1);
            Ok(())
        });
    }
    let r = run(&mut cmd, SHORT);
    assert_eq!(r.code(), Some(0), "{}", r.describe());
    assert_eq!(r.err(), "to stderr\n", "{}", r.describe());
    assert_eq!(fake.calls(), 1, "the compiler runs exactly once");
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(log.contains("crate victim"), "the call was logged: {log:?}");
    assert!(
        !log.contains("to stdout"),
        "the compiler's stdout must not land in the shim's log: {log:?}"
    );
}
