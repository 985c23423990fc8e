//! Failing open: with no sccache, a disabled shim, or an sccache that fails on its own, the
//! compiler runs directly, its output is shown once, and nothing of sccache's (or the shim's)
//! reaches cargo.

use crate::support::*;

/// Ways to leave the shim a broken sccache.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// `sccache: error: …` and exit 2, already when starting the server.
    ErrorText,
    /// The server starts; the compile call gives `sccache: error: …` and exit 2.
    ErrorTextOnCompile,
    /// The server starts; the compile call gives `sccache: encountered fatal error`, exit 254.
    Fatal,
    /// The server starts; the compile call dies by SIGSEGV.
    Segv,
    /// Random bytes, mode 0755, on PATH.
    Garbage,
    /// A mode 0644 file reached through `SCCACHE_PATH`.
    NotExecutable,
}

impl Fault {
    const ALL: [Fault; 6] = [
        Fault::ErrorText,
        Fault::ErrorTextOnCompile,
        Fault::Fatal,
        Fault::Segv,
        Fault::Garbage,
        Fault::NotExecutable,
    ];

    /// The reason the shim gives for compiling directly (its `fallback` counter).
    fn reason(self) -> &'static str {
        match self {
            // The server start is the first thing that runs sccache.
            Fault::ErrorText | Fault::Garbage | Fault::NotExecutable => "start-failed",
            Fault::ErrorTextOnCompile => "sccache-error",
            Fault::Fatal => "sccache-fatal",
            Fault::Segv => "sccache-crashed",
        }
    }

    /// Where the shim finds the broken sccache.
    fn found_via(self) -> &'static str {
        match self {
            Fault::NotExecutable => "SCCACHE_PATH",
            _ => "PATH",
        }
    }

    /// Sets the fault up in `sb`; returns whether the fake records its calls.
    fn install(self, sb: &mut Sandbox) -> bool {
        let fake = match self {
            Fault::ErrorText => FakeSccache::ErrorText,
            Fault::ErrorTextOnCompile => FakeSccache::ErrorTextOnCompile,
            Fault::Fatal => FakeSccache::Fatal,
            Fault::Segv => FakeSccache::Segv,
            Fault::Garbage | Fault::NotExecutable => FakeSccache::Healthy,
        };
        match self {
            Fault::ErrorText | Fault::ErrorTextOnCompile | Fault::Fatal | Fault::Segv => {
                sb.fake_sccache(fake);
                true
            }
            Fault::Garbage => {
                write_garbage(&sb.bin.join("sccache"));
                false
            }
            Fault::NotExecutable => {
                let path = sb.data.join("sccache");
                sb.fake_sccache_at(&path, fake);
                std::fs::set_permissions(
                    &path,
                    std::os::unix::fs::PermissionsExt::from_mode(0o644),
                )
                .unwrap();
                sb.set_env("SCCACHE_PATH", &path);
                false
            }
        }
    }
}

const OUT: &[u8] = b"compiler stdout \xff\nno newline";
const ERR: &[u8] = b"error[E0001]: compiler stderr \xfe\n";

/// One direct call per fault: the compiler's output byte-exact, its exit code kept, the compiler
/// run exactly once, no sccache text.
#[test]
fn faulty_sccache_falls_back_byte_exact() {
    for fault in Fault::ALL {
        for code in [0, 1] {
            let mut sb = Sandbox::new();
            sb.set_env("MAYBE_SCCACHE_COOLDOWN", "0");
            let records = fault.install(&mut sb);
            let fake = sb.fake_rustc(OUT, ERR, Ending::Exit(code));
            let mut args = vec![fake.path.clone().into_os_string()];
            args.extend(cacheable_args("src/lib.rs", &sb.data));
            let r = run(&mut sb.shim(args), SHORT);
            assert_eq!(r.code(), Some(code), "{fault:?}: {}", r.describe());
            assert!(
                r.stdout == OUT && r.stderr == ERR,
                "{fault:?}: output not the compiler's, byte for byte: {}",
                r.describe()
            );
            assert_eq!(
                fake.calls(),
                1,
                "{fault:?}: the compiler must run exactly once"
            );
            assert_decision(&sb, fault.found_via(), fault.reason(), 1);
            match fault {
                Fault::ErrorText => assert!(
                    !sb.sccache_calls().is_empty(),
                    "{fault:?}: sccache was never tried"
                ),
                _ if records => assert_eq!(
                    sb.sccache_compiles().len(),
                    1,
                    "{fault:?}: the call should have been forwarded once"
                ),
                _ => {}
            }
        }
    }
}

/// A compiler that is killed after a failed sccache still kills the shim by that signal.
#[test]
fn faulty_sccache_then_compiler_signal() {
    let mut sb = Sandbox::new();
    sb.set_env("MAYBE_SCCACHE_COOLDOWN", "0");
    sb.fake_sccache(FakeSccache::ErrorText);
    let fake = sb.fake_rustc(OUT, ERR, Ending::Signal("KILL"));
    let mut args = vec![fake.path.clone().into_os_string()];
    args.extend(cacheable_args("src/lib.rs", &sb.data));
    let r = run(&mut sb.shim(args), SHORT);
    assert_eq!(r.signal(), Some(9), "{}", r.describe());
    assert!(r.stdout == OUT && r.stderr == ERR, "{}", r.describe());
}

/// What `status` says about how sccache was found, and that every call that fell back did so
/// for `reason` (at least `calls` of them).
fn assert_decision(sb: &Sandbox, found_via: &str, reason: &str, calls: u64) {
    let st = sb.status_json();
    assert_eq!(
        st.path(&["sccache", "found_via"]).and_then(Json::as_str),
        Some(found_via),
        "{st:#}"
    );
    let fallback = st.path(&["counters", "fallback"]).unwrap();
    let reasons: Vec<&String> = fallback.as_object().unwrap().keys().collect();
    assert_eq!(reasons, [reason], "{st:#}");
    assert!(fallback.sum_counts() >= calls, "{st:#}");
}

#[test]
fn cargo_build_without_sccache() {
    let sb = Sandbox::new();
    sb.assert_good_build();
    let st = sb.status_json();
    assert_eq!(st.path(&["sccache", "found_via"]), Some(&Json::Null));
    let fallback = st.path(&["counters", "fallback"]).unwrap();
    assert_eq!(
        fallback.get("not-found").and_then(Json::as_u64),
        Some(fallback.sum_counts()),
        "every fallback is for want of sccache: {st:#}"
    );
    assert!(fallback.sum_counts() >= LIB_CRATES, "{st:#}");
    let looked = st.path(&["sccache", "looked"]).unwrap().to_string();
    let cargo_bin = sb.cargo_home.join("bin").join("sccache");
    assert!(
        looked.contains("sccache on PATH") && looked.contains(&*cargo_bin.to_string_lossy()),
        "{st:#}"
    );
}

/// A healthy fake sccache at `path` that records its calls (one line each) in its own file.
fn healthy_at(sb: &Sandbox, path: &std::path::Path) -> std::path::PathBuf {
    let calls = sb.data.join(format!(
        "calls-of-{}",
        path.strip_prefix(sb.root())
            .unwrap()
            .to_string_lossy()
            .replace('/', "-")
    ));
    write_script(
        path,
        &format!(
            "printf '%s\\n' \"$*\" >> {}\ncase \"$1\" in -*) exit 0 ;; esac\nexec \"$@\"\n",
            sh_quote(calls.as_os_str())
        ),
    );
    calls
}

fn compiles_in(calls: &std::path::Path) -> usize {
    std::fs::read_to_string(calls)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.starts_with('-'))
        .count()
}

/// One cacheable call of a fake compiler through the shim; it must pass with the compiler's
/// output, after being forwarded.
fn forwarded_call(sb: &Sandbox) {
    let fake = sb.fake_rustc(OUT, ERR, Ending::Exit(0));
    let mut args = vec![fake.path.clone().into_os_string()];
    args.extend(cacheable_args("src/lib.rs", &sb.data));
    let r = run(&mut sb.shim(args), SHORT);
    r.assert_success();
    assert!(r.stdout == OUT && r.stderr == ERR, "{}", r.describe());
    let st = sb.status_json();
    assert_eq!(
        st.path(&["counters", "forwarded"]).and_then(Json::as_u64),
        Some(1),
        "{st:#}"
    );
}

/// Where sccache is looked for, in order: `SCCACHE_PATH`, `PATH`, `$CARGO_HOME/bin`. Each case
/// has a fake at every place it names; only the first may see the call.
#[test]
fn lookup_order_sccache_path_then_path_then_cargo_home() {
    let cases: [(&str, &[&str]); 4] = [
        ("SCCACHE_PATH", &["SCCACHE_PATH", "PATH", "CARGO_HOME"]),
        ("PATH", &["PATH", "CARGO_HOME"]),
        ("CARGO_HOME", &["CARGO_HOME"]),
        // A SCCACHE_PATH naming no file is passed over.
        ("PATH", &["missing SCCACHE_PATH", "PATH", "CARGO_HOME"]),
    ];
    for (winner, places) in cases {
        let mut sb = Sandbox::new();
        let mut calls = Vec::new();
        for place in places {
            let path = match *place {
                "SCCACHE_PATH" | "missing SCCACHE_PATH" => sb.data.join("explicit").join("sccache"),
                "PATH" => sb.bin.join("sccache"),
                _ => sb.cargo_home.join("bin").join("sccache"),
            };
            if *place == "missing SCCACHE_PATH" {
                sb.set_env("SCCACHE_PATH", &path);
                continue;
            }
            if *place == "SCCACHE_PATH" {
                sb.set_env("SCCACHE_PATH", &path);
            }
            calls.push((*place, healthy_at(&sb, &path)));
        }
        forwarded_call(&sb);
        for (place, file) in &calls {
            let expected = usize::from(*place == winner);
            assert_eq!(
                compiles_in(file),
                expected,
                "{places:?}: the sccache from {place} got the wrong number of calls"
            );
        }
        let st = sb.status_json();
        assert_eq!(
            st.path(&["sccache", "found_via"]).and_then(Json::as_str),
            Some(winner),
            "{places:?}: {st:#}"
        );
    }
}

#[test]
fn cargo_build_disabled_never_calls_sccache() {
    let mut sb = Sandbox::new();
    sb.set_env("MAYBE_SCCACHE_DISABLE", "1");
    sb.fake_sccache(FakeSccache::ErrorText);
    sb.assert_good_build();
    assert_eq!(
        sb.sccache_calls(),
        Vec::<String>::new(),
        "MAYBE_SCCACHE_DISABLE=1 must never touch sccache"
    );
}

fn cargo_build_with_fault(fault: Fault) {
    let mut sb = Sandbox::new();
    let records = fault.install(&mut sb);
    sb.assert_good_build();
    // The first library call trips the breaker; the others find it open.
    let st = sb.status_json();
    assert_eq!(
        st.path(&["sccache", "found_via"]).and_then(Json::as_str),
        Some(fault.found_via()),
        "{st:#}"
    );
    // Two libraries can build at once, so two calls may see sccache fail before the breaker
    // is open; each of them trips it.
    let failed = st
        .path(&["counters", "fallback", fault.reason()])
        .and_then(Json::as_u64);
    assert!(
        matches!(failed, Some(1 | 2)),
        "{fault:?}: the breaker stops the calls after the first failures: {st:#}"
    );
    assert_eq!(
        st.path(&["counters", "trips"]).and_then(Json::as_u64),
        failed,
        "{fault:?}: {st:#}"
    );
    if records {
        assert!(
            !sb.sccache_calls().is_empty(),
            "{fault:?}: the fake sccache was never tried"
        );
    }
}

#[test]
fn cargo_build_sccache_not_executable_via_sccache_path() {
    cargo_build_with_fault(Fault::NotExecutable);
}

#[test]
fn cargo_build_garbage_sccache_on_path() {
    cargo_build_with_fault(Fault::Garbage);
}

#[test]
fn cargo_build_sccache_error_text() {
    cargo_build_with_fault(Fault::ErrorText);
}

#[test]
fn cargo_build_sccache_error_text_on_compile() {
    cargo_build_with_fault(Fault::ErrorTextOnCompile);
}

#[test]
fn cargo_build_sccache_crashes() {
    cargo_build_with_fault(Fault::Segv);
}

#[test]
fn cargo_build_sccache_fatal_error() {
    cargo_build_with_fault(Fault::Fatal);
}
