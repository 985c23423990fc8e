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

#[test]
fn cargo_build_without_sccache() {
    let sb = Sandbox::new();
    sb.assert_good_build();
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
