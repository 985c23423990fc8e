//! Trusting the state dir: one that another user owns or can write to is not used at all, and no
//! state file is ever opened through a symbolic link another user could have planted. State that
//! is corrupt or cannot be written never fails a build, and the state files are private.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::support::*;

/// The files in `dir`, sorted.
fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Builds with `state` as the state dir: the build passes with sccache, nothing is written
/// there, and the log says why.
fn assert_state_dir_refused(sb: &mut Sandbox, state: &Path, why: &str) {
    let log = sb.data.join("shim.log");
    sb.set_env("MAYBE_SCCACHE_STATE_DIR", state);
    sb.set_env("MAYBE_SCCACHE_LOG", "warn");
    sb.set_env("MAYBE_SCCACHE_LOG_FILE", &log);
    let before = files_in(state);
    let expected = write_libs(&sb.ws, 2, true);
    sb.fake_sccache(FakeSccache::Healthy);
    sb.build().assert_success().assert_no_shim_noise();
    assert_app_prints(sb, &expected);
    assert_eq!(
        files_in(state),
        before,
        "nothing may be written to {}",
        state.display()
    );
    let log = fs::read_to_string(&log).unwrap_or_default();
    assert!(log.contains(why), "the log says why: {log}");
    assert!(!sb.sccache_compiles().is_empty(), "sccache is still used");
    // `reset` leaves it alone too, and says why.
    let r = run(&mut sb.shim(["reset"]), SHORT);
    r.assert_success();
    assert!(r.err().contains(why), "{}", r.describe());
    assert_eq!(files_in(state), before);
}

#[test]
fn state_dir_writable_by_others_is_not_used() {
    let mut sb = Sandbox::new();
    let state = sb.root().join("shared-state");
    fs::create_dir(&state).unwrap();
    fs::set_permissions(&state, fs::Permissions::from_mode(0o777)).unwrap();
    assert_state_dir_refused(&mut sb, &state, "can be written by other users");
}

#[test]
fn state_dir_of_another_user_is_not_used() {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        assert!(
            !in_ci(),
            "CI runs as root, which can hand a directory to another user"
        );
        eprintln!("skipping state_dir_of_another_user: needs root to chown");
        return;
    }
    let mut sb = Sandbox::new();
    let state = sb.root().join("their-state");
    fs::create_dir(&state).unwrap();
    fs::set_permissions(&state, fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::chown(&state, Some(65534), Some(65534)).unwrap();
    assert_state_dir_refused(&mut sb, &state, "belongs to user id 65534");
}

/// Links planted where state files go (as another user could in a shared directory, before the
/// directory became private): the shim neither writes through them nor believes them.
#[test]
fn state_files_are_never_followed_through_links() {
    let sb = Sandbox::new();
    let expected = write_libs(&sb.ws, 2, true);
    sb.fake_sccache(FakeSccache::Healthy);
    let bashrc = sb.data.join("bashrc");
    write_file(&bashrc, "# the user's own file\n", 0o644);
    // A forged breaker, open for a long time, behind a link.
    let forged = sb.data.join("forged-breaker");
    write_file(&forged, "open_until 99999999999\nreason forged\n", 0o644);
    let breaker = sb.breaker_file();
    let _ = fs::remove_file(sb.state.join("events"));
    std::os::unix::fs::symlink(&bashrc, sb.state.join("events")).unwrap();
    std::os::unix::fs::symlink(&forged, &breaker).unwrap();
    std::os::unix::fs::symlink(&bashrc, sb.start_lock_file()).unwrap();
    sb.build().assert_success().assert_no_shim_noise();
    assert_app_prints(&sb, &expected);
    assert_eq!(
        fs::read_to_string(&bashrc).unwrap(),
        "# the user's own file\n"
    );
    assert!(
        sb.sccache_compiles().len() >= 2,
        "the forged breaker was not believed: {:?}",
        sb.sccache_calls()
    );
}

/// A user with no `/etc/passwd` entry and no `HOME` (a container run with `--user 54321`, say).
/// A static glibc build must never ask glibc's NSS for a home directory or a host name: that loads
/// the system's NSS modules (`libnss_systemd`, …) into a process without a dynamic libc, and it
/// crashes. Every call still compiles, with the compiler's output alone, and `status` answers.
#[test]
fn a_user_without_a_passwd_entry_or_home_still_builds() {
    const TEST: &str = "a_user_without_a_passwd_entry_or_home_still_builds";
    const NO_ENTRY: u32 = 54321;
    let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
    assert!(
        !passwd
            .lines()
            .any(|l| l.split(':').nth(2) == Some(&NO_ENTRY.to_string())),
        "uid {NO_ENTRY} must have no /etc/passwd entry for this test"
    );
    let mut sb = Sandbox::new();
    let fake = sb.fake_rustc(b"compiler out\n", b"compiler err\n", Ending::Exit(0));
    sb.fake_sccache(FakeSccache::Healthy);
    sb.set_env(
        "SCCACHE_REDIS_ENDPOINT",
        "redis://no-such-host.invalid:6379",
    );
    if !sb.run_unprivileged_as(TEST, NO_ENTRY) {
        return;
    }
    let homeless = |mut cmd: std::process::Command| {
        cmd.env_remove("HOME")
            .env_remove("CARGO_HOME")
            .env_remove("MAYBE_SCCACHE_STATE_DIR");
        cmd
    };
    let r = run(&mut homeless(sb.shim(fake_call(&fake))), SHORT);
    assert_eq!(r.code(), Some(0), "the call must compile: {}", r.describe());
    assert_eq!(r.out(), "compiler out\n", "{}", r.describe());
    assert_eq!(r.err(), "compiler err\n", "{}", r.describe());
    assert_eq!(fake.calls(), 1, "the compiler runs exactly once");

    let r = run(&mut homeless(sb.shim(["status"])), SHORT);
    assert_eq!(r.code(), Some(0), "status must answer: {}", r.describe());
    assert!(
        r.out().contains("no-such-host.invalid"),
        "status names the backend: {}",
        r.describe()
    );
}

/// Issue 16, item 5: a lock that cannot be had for another reason than contention must never
/// make calls wait. Here the start lock and the breaker's lock are FIFOs: the write-only open of a
/// FIFO without a reader blocked every call for good before (no time-out reached it); now the
/// open fails at once and each call goes on without the lock, through the real sccache. (`ENOLCK`
/// and `EIO` from `flock` itself, which no file system here gives, are unit tests in
/// src/state/lock.rs.)
#[test]
fn lock_files_that_cannot_be_locked_never_hold_a_build() {
    let test = "lock_files_that_cannot_be_locked_never_hold_a_build";
    let Some(sccache) = require_sccache(test) else {
        return;
    };
    let sb = Sandbox::new();
    let expected = write_libs(&sb.ws, 2, true);
    sb.install_real_sccache(sccache);
    let start_lock = sb.start_lock_file();
    let breaker_lock = PathBuf::from(format!("{}.lock", sb.breaker_file().display()));
    make_fifo(&start_lock);
    make_fifo(&breaker_lock);
    let began = std::time::Instant::now();
    let r = run(&mut sb.cargo(&["build", "--offline"]), SHORT);
    let took = began.elapsed();
    r.assert_success().assert_no_shim_noise();
    assert_app_prints(&sb, &expected);
    assert!(took < std::time::Duration::from_secs(45), "took {took:?}");
    let st = sb.status_json();
    assert!(
        st.path(&["counters", "forwarded"])
            .and_then(Json::as_u64)
            .unwrap_or(0)
            >= 2,
        "the calls went through sccache: {st:?}"
    );
}

#[test]
fn corrupt_and_unwritable_state_never_fail_a_build() {
    // Corrupt: garbage in every state file.
    let sb = Sandbox::new();
    let expected = write_libs(&sb.ws, 2, true);
    for file in [
        sb.breaker_file(),
        sb.state.join("events"),
        sb.start_lock_file(),
    ] {
        fs::write(file, b"\xff\xfe garbage\nopen_until x\n").unwrap();
    }
    sb.fake_sccache(FakeSccache::ErrorText);
    let r = sb.build();
    r.assert_success().assert_no_shim_noise();
    assert_app_prints(&sb, &expected);
    let st = sb.status_json();
    assert_eq!(
        breaker_state(&st),
        "open",
        "the breaker still works: {st:?}"
    );

    // Unusable: the state dir is a file.
    let mut sb = Sandbox::new();
    let expected = write_libs(&sb.ws, 2, true);
    let state = sb.root().join("state-bad");
    fs::write(&state, b"not a directory").unwrap();
    sb.set_env("MAYBE_SCCACHE_STATE_DIR", &state);
    sb.fake_sccache(FakeSccache::ErrorText);
    let r = sb.build();
    r.assert_success().assert_no_shim_noise();
    assert_app_prints(&sb, &expected);
    run(&mut sb.shim(["status", "--json"]), SHORT).assert_success();
}

/// A state dir the shim's user may not write to (root ignores permission bits, so this runs as
/// an unprivileged user): calls still compile, with the compiler's output, and `status` works.
#[test]
fn unwritable_state_dir_never_fails_a_call() {
    let mut sb = Sandbox::new();
    let state = sb.root().join("state-read-only");
    fs::create_dir(&state).unwrap();
    sb.set_env("MAYBE_SCCACHE_STATE_DIR", &state);
    sb.fake_sccache(FakeSccache::ErrorText);
    let fake = sb.fake_rustc(b"out\n", b"err\n", Ending::Exit(0));
    if !sb.run_unprivileged("unwritable_state_dir_never_fails_a_call") {
        return;
    }
    fs::set_permissions(&state, std::os::unix::fs::PermissionsExt::from_mode(0o500)).unwrap();
    let probe = state.join("probe");
    sb.assert_denied(&format!("touch {}", sh_quote(probe.as_os_str())));
    // A cacheable call (sccache fails, the breaker cannot be saved) and a probe (bypassed, its
    // count cannot be saved), twice each.
    for _ in 0..2 {
        for args in [cacheable_args("src/lib.rs", &sb.data), vec!["-vV".into()]] {
            let mut all = vec![fake.path.clone().into_os_string()];
            all.extend(args);
            let r = run(&mut sb.shim(all), SHORT);
            r.assert_success();
            assert!(
                r.stdout == b"out\n" && r.stderr == b"err\n",
                "{}",
                r.describe()
            );
        }
    }
    assert_eq!(fake.calls(), 4, "the compiler runs once per call");
    assert!(
        !sb.sccache_calls().is_empty(),
        "sccache was tried (and failed)"
    );
    assert_eq!(
        fs::read_dir(&state).unwrap().count(),
        0,
        "nothing was written"
    );
    let st = sb.status_json();
    assert_eq!(
        breaker_state(&st),
        "closed",
        "nothing could be saved: {st:?}"
    );
}

#[test]
fn state_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let mut sb = Sandbox::new();
    let state = sb.root().join("fresh-state");
    sb.set_env("MAYBE_SCCACHE_STATE_DIR", &state);
    write_libs(&sb.ws, 1, true);
    sb.fake_sccache(FakeSccache::ErrorText);
    sb.build().assert_success();
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&state), 0o700);
    let breaker = state.join(format!("breaker-{}", sb.server_key()));
    for file in [breaker.as_path(), &state.join("events")] {
        assert_eq!(mode(file), 0o600, "{}", file.display());
    }
}
