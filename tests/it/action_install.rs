//! How the GitHub Actions example installs maybe-sccache, on the stand-in runner
//! (`support::gha_runner`): isolated from the job, cached, retried with stable or without static
//! linking, and a cached binary run only when its hash is pinned.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::gha_runner::*;
use crate::support::*;

/// The install is isolated from everything in the job that would break `cargo install`, and the
/// installed binary is cached: the next job restores it without compiling (its cargo is broken).
/// This one compiles the shim in release mode and fetches its dependencies from crates.io into a
/// CARGO_HOME of its own, as the action does on a runner.
#[test]
fn action_installs_isolated_from_the_job_and_caches_the_binary() {
    let sb = Sandbox::new();
    sb.write_fixture(Fixture::Good);
    let store = CacheStore::new(sb.data.join("cache-store"));
    let setup = Action::load(SETUP);
    let blocker = sb.data.join("a-file");
    write_file(&blocker, "not a directory", 0o644);
    // Workspace and CARGO_HOME configs that break any build that reads them.
    let breaking = "[build]\ntarget = \"no-such-target\"\nrustflags = [\"--no-such-flag\"]\n\
                    [net]\noffline = true\n";
    write_file(&sb.ws.join(".cargo/config.toml"), breaking, 0o644);
    write_file(&sb.cargo_home.join("config.toml"), breaking, 0o644);

    let mut job = Job::new(&sb, &store, "install", "21");
    job.step_timeout = std::time::Duration::from_secs(900);
    job.set("RUSTFLAGS", "-Dwarnings --no-such-flag")
        .set("CARGO_BUILD_TARGET", "no-such-target")
        .set(
            "CARGO_TARGET_DIR",
            blocker.join("target").display().to_string(),
        )
        .set("CARGO_BUILD_RUSTC_WRAPPER", "/nonexistent/wrapper")
        .set("RUSTC_WRAPPER", "/nonexistent/wrapper")
        .set("CARGO_ENCODED_RUSTFLAGS", "--no-such-flag");
    let out = job.run_action(&setup, &[("install-sccache", "false")]);
    assert_no_warnings(&job);
    let bin = job.runner_temp.join("maybe-sccache/bin/maybe-sccache");
    let version = run(job.command(&bin).arg("--version"), SHORT);
    version.assert_success();
    assert_eq!(
        version.out(),
        format!("maybe-sccache {}\n", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(out["wrapper"], exported_wrapper(&job).display().to_string());
    let keys = store.keys();
    assert_eq!(keys.len(), 1, "the binary is cached: {keys:?}");
    let digest = keys[0]
        .strip_prefix("maybe-sccache-bin-Linux-X64-")
        .unwrap_or_else(|| panic!("keyed by runner OS and architecture: {keys:?}"));
    assert!(
        digest.len() == 16 && digest.bytes().all(|b| b.is_ascii_hexdigit()),
        "{digest}"
    );

    let install = job.step("Install maybe-sccache").run.as_ref().unwrap();
    let pin = install
        .out()
        .split("sha256 ")
        .nth(1)
        .map(|rest| rest[..64].to_owned())
        .unwrap_or_else(|| panic!("the install says the hash: {}", install.describe()));

    // The next job, with that hash pinned: its cargo cannot build anything, and it does not need
    // to.
    let mut job = Job::new(&sb, &store, "next", "22");
    let broken = sb.data.join("broken-bin");
    write_script(
        &broken.join("cargo"),
        "echo 'error: must not be called' >&2\nexit 101\n",
    );
    let path = format!(
        "{}:{}",
        broken.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    job.set("PATH", path);
    job.run_action(
        &setup,
        &[("install-sccache", "false"), ("binary-sha256", &pin)],
    );
    assert_no_warnings(&job);
    let install = job.step("Install maybe-sccache").run.as_ref().unwrap();
    assert!(
        install.out().contains("restored maybe-sccache"),
        "{}",
        install.describe()
    );
    assert!(job.step("Save the maybe-sccache binary").skipped);
    exported_wrapper(&job);
    assert_eq!(store.keys(), keys);
}

/// README's static link flags (the stand-in runner is Linux).
const STATIC: &str = "-C target-feature=+crt-static";

/// Runs the set-up action with stand-ins for `cargo` and `rustup` ahead on `PATH`. The stand-in
/// cargo records `RUSTFLAGS=<flags> <arguments>` for every call and fails with `error` when the
/// shell test `fails_if` holds; otherwise it installs the shim under test. Returns the calls.
fn install_with_stand_ins(
    sb: &Sandbox,
    job: &mut Job,
    fails_if: &str,
    error: &str,
    rustup: &str,
) -> Vec<String> {
    let calls = stand_ins(sb, job, fails_if, error, rustup);
    job.run_action(&Action::load(SETUP), &[("install-sccache", "false")]);
    assert_no_warnings(job);
    exported_wrapper(job);
    cargo_calls(&calls)
}

fn cargo_calls(calls: &Path) -> Vec<String> {
    fs::read_to_string(calls)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Puts the stand-in `cargo` and `rustup` (see `install_with_stand_ins`) ahead on the job's
/// `PATH`; returns the file the calls are recorded in.
fn stand_ins(sb: &Sandbox, job: &mut Job, fails_if: &str, error: &str, rustup: &str) -> PathBuf {
    let tools = sb.data.join("stand-in-bin");
    let calls = sb.data.join("cargo-calls");
    write_script(
        &tools.join("cargo"),
        &format!(
            "echo \"RUSTFLAGS=$RUSTFLAGS $*\" >> {calls}\n\
             if {fails_if}; then\n\
             \x20 echo {error} >&2\n\
             \x20 exit 101\n\
             fi\n\
             while [ \"$1\" != --root ]; do shift; done\n\
             mkdir -p \"$2/bin\" && cp {shim} \"$2/bin/maybe-sccache\"\n",
            calls = sh_quote(calls.as_os_str()),
            error = sh_quote(std::ffi::OsStr::new(error)),
            shim = sh_quote(std::ffi::OsStr::new(shim_bin())),
        ),
    );
    write_script(&tools.join("rustup"), rustup);
    let path = format!(
        "{}:{}",
        tools.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    job.set("PATH", path);
    calls
}

/// A job that pins a toolchain older than maybe-sccache's `rust-version`: the install is retried
/// with rustup's stable toolchain, when there is one.
#[test]
fn action_retries_an_old_toolchain_with_stable() {
    let sb = Sandbox::new();
    let store = CacheStore::new(sb.data.join("cache-store"));
    let mut job = Job::new(&sb, &store, "old", "31");
    let calls = install_with_stand_ins(
        &sb,
        &mut job,
        "[ \"$1\" != +stable ]",
        "error: rustc 1.70.0 is not supported by maybe-sccache (rust-version 1.80)",
        "[ \"$1 $2\" = 'toolchain list' ] || exit 1\n\
         echo 'stable-x86_64-unknown-linux-gnu'\n\
         echo '1.70-x86_64-unknown-linux-gnu (default)'\n",
    );
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert!(
        calls[0].starts_with(&format!("RUSTFLAGS={STATIC} install --locked --path ")),
        "{calls:?}"
    );
    assert!(
        calls[1].starts_with(&format!("RUSTFLAGS={STATIC} +stable install --locked")),
        "{calls:?}"
    );
    assert_eq!(
        store.keys().len(),
        1,
        "the binary built with stable is cached"
    );
}

/// A Linux runner whose toolchain cannot link statically (no glibc `libc.a`): the install is
/// retried without the flags, and the job gets a working (dynamically linked) shim.
#[test]
fn action_falls_back_to_a_dynamic_build_when_static_linking_fails() {
    let sb = Sandbox::new();
    let store = CacheStore::new(sb.data.join("cache-store"));
    let mut job = Job::new(&sb, &store, "nolibca", "32");
    // No stable toolchain to retry with: only the flags change.
    let calls = install_with_stand_ins(
        &sb,
        &mut job,
        "[ -n \"$RUSTFLAGS\" ]",
        "/usr/bin/ld: cannot find -lc: No such file or directory",
        "exit 1\n",
    );
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert!(
        calls[0].starts_with(&format!("RUSTFLAGS={STATIC} install --locked --path ")),
        "{calls:?}"
    );
    assert!(
        calls[1].starts_with("RUSTFLAGS= install --locked --path "),
        "{calls:?}"
    );
}

/// The binary restored from actions/cache is a program every compile runs, and whoever can write
/// the cache scope can write it. Without a pinned hash it is not even restored: the shim is built
/// from source. With `binary-sha256`, a planted binary is never run (not even for `--version`):
/// a warning, and a build from source. The genuine binary, with its hash pinned, is used.
#[test]
fn action_runs_a_cached_binary_only_with_the_pinned_hash() {
    let sb = Sandbox::new();
    let store = CacheStore::new(sb.data.join("cache-store"));
    let setup = Action::load(SETUP);
    let hash = |path: &Path| {
        let r = run(Command::new("sha256sum").arg(path), SHORT);
        r.assert_success();
        r.out()[..64].to_owned()
    };
    let genuine = hash(Path::new(shim_bin()));

    // The first job builds the shim, says its hash and caches it.
    let mut job = Job::new(&sb, &store, "first", "41");
    let calls = stand_ins(&sb, &mut job, "false", "", "exit 1\n");
    job.run_action(&setup, &[("install-sccache", "false")]);
    assert_no_warnings(&job);
    exported_wrapper(&job);
    assert_eq!(cargo_calls(&calls).len(), 1);
    let install = job.step("Install maybe-sccache").run.as_ref().unwrap();
    assert!(
        install.out().contains(&format!("sha256 {genuine}")),
        "{}",
        install.describe()
    );
    assert_eq!(store.keys().len(), 1, "the binary is cached");
    let entry = store.dir.join("0/maybe-sccache");
    assert_eq!(hash(&entry), genuine);

    // Someone who can write the cache scope swaps the entry's binary.
    let ran = sb.data.join("planted-ran");
    write_script(
        &entry,
        &format!(
            "touch {}\necho 'maybe-sccache 0.1.0'\n",
            sh_quote(ran.as_os_str())
        ),
    );
    // No pin: not restored, built from source.
    let mut job = Job::new(&sb, &store, "unpinned", "42");
    stand_ins(&sb, &mut job, "false", "", "exit 1\n");
    job.run_action(&setup, &[("install-sccache", "false")]);
    assert_no_warnings(&job);
    assert!(job.step("Restore the maybe-sccache binary").skipped);
    assert_eq!(hash(&exported_wrapper(&job)), genuine);
    assert_eq!(cargo_calls(&calls).len(), 2);
    // Pinned: the planted binary does not match, is never run, and the shim is built.
    let mut job = Job::new(&sb, &store, "pinned", "43");
    stand_ins(&sb, &mut job, "false", "", "exit 1\n");
    job.run_action(
        &setup,
        &[("install-sccache", "false"), ("binary-sha256", &genuine)],
    );
    assert_warned(&job, "does not have the sha256 of input binary-sha256");
    assert!(!ran.exists(), "the planted binary ran:\n{}", job.describe());
    assert_eq!(hash(&exported_wrapper(&job)), genuine);
    assert_eq!(cargo_calls(&calls).len(), 3);

    // The genuine binary with its hash pinned: restored, not built.
    fs::copy(shim_bin(), &entry).unwrap();
    let mut job = Job::new(&sb, &store, "restored", "44");
    stand_ins(&sb, &mut job, "false", "", "exit 1\n");
    job.run_action(
        &setup,
        &[
            ("install-sccache", "false"),
            ("binary-sha256", &genuine.to_uppercase()),
        ],
    );
    assert_no_warnings(&job);
    let install = job.step("Install maybe-sccache").run.as_ref().unwrap();
    assert!(install.out().contains("restored"), "{}", install.describe());
    assert_eq!(hash(&exported_wrapper(&job)), genuine);
    assert_eq!(cargo_calls(&calls).len(), 3, "nothing was built");
    assert!(!ran.exists());
}
