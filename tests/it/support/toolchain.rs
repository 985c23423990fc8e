//! The binary under test, the Rust toolchain the tests build with, and the deadlines for
//! running either.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

/// The binary under test: the one cargo built for this test run, unless `MAYBE_SCCACHE_TEST_BIN`
/// names another build of it (`.ci/run` runs the suite again against the statically linked release
/// build that README's install line and the action make).
pub fn shim_bin() -> &'static str {
    static BIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BIN.get_or_init(|| match std::env::var("MAYBE_SCCACHE_TEST_BIN") {
        Ok(bin) if !bin.is_empty() => {
            assert!(
                Path::new(&bin).is_file(),
                "MAYBE_SCCACHE_TEST_BIN={bin} is not a file"
            );
            bin
        }
        _ => env!("CARGO_BIN_EXE_maybe-sccache").to_owned(),
    })
}

/// Deadline for a single call of the shim (or of sccache) outside cargo.
pub const SHORT: Duration = Duration::from_secs(60);
/// Deadline for one cargo invocation on the fixture.
pub const BUILD: Duration = Duration::from_secs(240);
/// Deadline for builds that could loop forever if the shim called itself.
pub const NO_HANG: Duration = Duration::from_secs(120);

pub fn shim() -> PathBuf {
    PathBuf::from(shim_bin())
}

pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false")
}

/// `$(rustc --print sysroot)/bin`: holds cargo, rustc, clippy-driver and cargo-clippy.
pub fn toolchain_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
        let out = Command::new(&rustc)
            .args(["--print", "sysroot"])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {rustc:?} --print sysroot: {e}"));
        assert!(
            out.status.success(),
            "rustc --print sysroot failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let sysroot = String::from_utf8(out.stdout).expect("sysroot is UTF-8");
        let bin = Path::new(sysroot.trim()).join("bin");
        assert!(
            bin.join("rustc").is_file() && bin.join("cargo").is_file(),
            "no rustc/cargo in {}",
            bin.display()
        );
        bin
    })
}

pub fn toolchain_rustc() -> PathBuf {
    toolchain_bin().join("rustc")
}
