//! The PyPI channel: the wheel maturin builds from `pyproject.toml` (`bindings = "bin"`) installs
//! into a fresh virtualenv a `maybe-sccache` that works as the wrapper of a real build.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::support::*;

/// maturin: `MAYBE_SCCACHE_TEST_MATURIN`, else on `PATH`. With CI set, missing is a failure.
fn require_maturin(test: &str) -> Option<PathBuf> {
    let given = std::env::var_os("MAYBE_SCCACHE_TEST_MATURIN").filter(|v| !v.is_empty());
    let found = match given {
        Some(path) => Some(PathBuf::from(path)),
        None => std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|d| d.join("maturin"))
                .find(|p| p.is_file())
        }),
    };
    match found {
        Some(path) => Some(path),
        None if in_ci() => panic!(
            "{test}: maturin not found (put it on PATH or set MAYBE_SCCACHE_TEST_MATURIN; \
             .ci/run installs it); CI is set, so this is a failure"
        ),
        None => {
            eprintln!("skipping {test}: maturin not found");
            None
        }
    }
}

#[test]
fn wheel_installs_a_working_shim() {
    let Some(maturin) = require_maturin("wheel_installs_a_working_shim") else {
        return;
    };
    let Some(sccache) = require_sccache("wheel_installs_a_working_shim") else {
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let sb = Sandbox::new();
    let wheels = sb.data.join("wheels");
    // Its own target dir: the test binary's build lock is not this build's business. Not
    // offline: cargo metadata wants the crates of every platform in Cargo.lock.
    // README's wheel line: statically linked on Linux.
    let mut build = Command::new(&maturin);
    build
        .args(["build", "--release", "--locked", "--out"])
        .arg(&wheels)
        .current_dir(root)
        .env("CARGO_TARGET_DIR", root.join("target/wheel"))
        .env("RUSTFLAGS", STATIC_RUSTFLAGS)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("CARGO_BUILD_TARGET");
    run(&mut build, Duration::from_secs(900)).assert_success();
    let wheel: Vec<PathBuf> = std::fs::read_dir(&wheels)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "whl"))
        .collect();
    assert_eq!(wheel.len(), 1, "one wheel: {wheel:?}");
    let name = wheel[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with(&format!(
            "maybe_sccache-{}-py3-none-",
            env!("CARGO_PKG_VERSION")
        )),
        "a Python-independent wheel of this version: {name}"
    );

    // A fresh virtualenv, no index: only the wheel.
    let venv = sb.data.join("venv");
    run(
        Command::new("python3").args(["-m", "venv"]).arg(&venv),
        Duration::from_secs(300),
    )
    .assert_success();
    let mut pip = Command::new(venv.join("bin/pip"));
    pip.args([
        "install",
        "--no-index",
        "--disable-pip-version-check",
        "--quiet",
    ])
    .arg(&wheel[0]);
    run(&mut pip, Duration::from_secs(300)).assert_success();
    let installed = venv.join("bin/maybe-sccache");
    let version = run(sb.command(&installed).arg("--version"), SHORT);
    version.assert_success();
    assert_eq!(
        version.out(),
        format!("maybe-sccache {}\n", env!("CARGO_PKG_VERSION"))
    );
    if !STATIC_RUSTFLAGS.is_empty() {
        assert!(
            !has_interpreter(&installed),
            "README's wheel line gives a statically linked binary: {}",
            installed.display()
        );
    }

    // The fixture, built through the installed shim and the real sccache.
    sb.install_real_sccache(sccache);
    sb.write_fixture(Fixture::Good);
    let mut cargo = sb.cargo(&["build", "--offline"]);
    cargo.env("RUSTC_WRAPPER", &installed);
    let r = run(&mut cargo, BUILD);
    r.assert_success().assert_no_shim_noise();
    sb.assert_app_output();
    let status = run(sb.command(&installed).args(["status", "--json"]), SHORT);
    status.assert_success();
    let j = json_from_str(&status.out()).unwrap();
    assert!(
        j.path(&["counters", "forwarded"])
            .and_then(Json::as_u64)
            .is_some_and(|n| n >= LIB_CRATES),
        "the library crates went through sccache: {j:?}"
    );
}

/// README's `RUSTFLAGS` for this host.
const STATIC_RUSTFLAGS: &str = if cfg!(all(target_os = "linux", target_env = "gnu")) {
    "-C target-feature=+crt-static"
} else {
    ""
};

/// Does this ELF file name a dynamic loader (a `PT_INTERP` program header)?
fn has_interpreter(path: &Path) -> bool {
    let bytes = std::fs::read(path).unwrap();
    assert!(
        bytes.starts_with(b"\x7fELF\x02\x01"),
        "a 64-bit little-endian ELF file"
    );
    let word = |at: usize, len: usize| {
        let mut v = 0u64;
        for (i, b) in bytes[at..at + len].iter().enumerate() {
            v |= u64::from(*b) << (8 * i);
        }
        v as usize
    };
    let (phoff, phentsize, phnum) = (word(0x20, 8), word(0x36, 2), word(0x38, 2));
    (0..phnum).any(|i| word(phoff + i * phentsize, 4) == 3)
}
