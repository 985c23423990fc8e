//! The per-test sandbox: its directories, the cleared environment its commands run with, running
//! them as an unprivileged user, and finding (and stopping) what it started.

use std::cell::{Cell, RefCell};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::{
    in_ci, reserve_port, run, shim, shim_bin, toolchain_bin, toolchain_rustc, Run, BUILD, SHORT,
};

/// The environment variable that marks every process a sandbox starts (its value is the
/// sandbox's root), so a test can find what it left running without looking at anyone else's.
pub const MARKER_VAR: &str = "MAYBE_SCCACHE_TEST_SANDBOX";

/// util-linux's `setpriv`, for running commands as an unprivileged user.
const SETPRIV: &str = "/usr/bin/setpriv";

/// `nobody` on Debian and most other systems.
const UNPRIVILEGED_ID: u32 = 65534;

/// Gives `dir` and everything under it to `id` (user and group); symlinks themselves, not their
/// targets.
fn chown_tree(dir: &Path, id: u32) {
    std::os::unix::fs::lchown(dir, Some(id), Some(id))
        .unwrap_or_else(|e| panic!("chown {}: {e}", dir.display()));
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            chown_tree(&path, id);
        } else {
            std::os::unix::fs::lchown(&path, Some(id), Some(id))
                .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
        }
    }
}

pub struct Sandbox {
    root: TempDir,
    pub bin: PathBuf,
    pub home: PathBuf,
    pub cargo_home: PathBuf,
    pub state: PathBuf,
    pub sccache_dir: PathBuf,
    pub target: PathBuf,
    pub ws: PathBuf,
    pub data: PathBuf,
    pub port: u16,
    env: Vec<(OsString, OsString)>,
    pub(super) stop_server_with: RefCell<Option<PathBuf>>,
    pub(super) fakes: Cell<u32>,
    /// When set, every command runs as this user (and group), through `setpriv`.
    run_as: Option<u32>,
    /// The shim to run: the built binary, or a copy the unprivileged user can reach.
    shim_path: PathBuf,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        let root = tempfile::Builder::new()
            .prefix("msit-")
            .tempdir()
            .expect("cannot create a temporary directory");
        let dir = |name: &str| {
            let d = root.path().join(name);
            fs::create_dir_all(&d).unwrap();
            d
        };
        Sandbox {
            bin: dir("bin"),
            home: dir("home"),
            cargo_home: dir("cargo-home"),
            state: dir("state"),
            sccache_dir: dir("sccache-dir"),
            target: dir("target"),
            ws: dir("ws"),
            data: dir("data"),
            port: reserve_port(),
            env: Vec::new(),
            stop_server_with: RefCell::new(None),
            fakes: Cell::new(0),
            run_as: None,
            shim_path: shim(),
            root,
        }
    }

    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// Sets an environment variable for every command made from now on.
    pub fn set_env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> &mut Self {
        self.env
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// A command with a cleared environment holding only the sandbox's variables, and the
    /// sandbox's marker ([`MARKER_VAR`]), which every process it starts inherits.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = match self.run_as {
            None => Command::new(program),
            Some(id) => {
                let mut cmd = Command::new(SETPRIV);
                cmd.arg(format!("--reuid={id}"))
                    .arg(format!("--regid={id}"))
                    .args(["--clear-groups", "--"])
                    .arg(program);
                cmd
            }
        };
        cmd.env_clear();
        cmd.env(MARKER_VAR, self.root());
        for key in ["RUSTUP_HOME", "RUSTUP_TOOLCHAIN", "TMPDIR", "CI"] {
            if let Some(v) = std::env::var_os(key) {
                cmd.env(key, v);
            }
        }
        let path = std::env::join_paths([
            self.bin.as_path(),
            toolchain_bin(),
            Path::new("/usr/bin"),
            Path::new("/bin"),
        ])
        .unwrap();
        cmd.env("PATH", path)
            .env("HOME", &self.home)
            .env("CARGO_HOME", &self.cargo_home)
            .env("CARGO_TARGET_DIR", &self.target)
            .env("CARGO_INCREMENTAL", "0")
            .env("CARGO_TERM_COLOR", "never")
            .env("RUSTC", toolchain_rustc())
            .env("SCCACHE_DIR", &self.sccache_dir)
            .env("SCCACHE_SERVER_PORT", self.port.to_string())
            .env("SCCACHE_IDLE_TIMEOUT", "120")
            .env("MAYBE_SCCACHE_STATE_DIR", &self.state)
            .current_dir(self.root());
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// `maybe-sccache <args>`.
    pub fn shim<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.command(&self.shim_path);
        cmd.args(args);
        cmd
    }

    /// The processes started for this sandbox that are still running (found by the marker in
    /// their environment, so other tests' and other suites' processes never count), as
    /// `pid: command line`.
    pub fn live_processes(&self) -> Vec<String> {
        let mut marker = OsString::from(MARKER_VAR);
        marker.push("=");
        marker.push(self.root());
        let marker = marker.as_bytes();
        let mut found = Vec::new();
        let Ok(entries) = fs::read_dir("/proc") else {
            return found;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            if !name.as_bytes().iter().all(u8::is_ascii_digit) {
                continue;
            }
            let Ok(environ) = fs::read(entry.path().join("environ")) else {
                continue;
            };
            if !environ.split(|&b| b == 0).any(|var| var == marker) {
                continue;
            }
            let cmdline = fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            found.push(format!("{}: {text}", name.to_string_lossy()));
        }
        found
    }

    /// Waits up to `within` for every process of this sandbox to be gone, then asserts none is
    /// left. (A killed process group can take a moment to be reaped.)
    pub fn assert_no_process_left(&self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let left = self.live_processes();
            if left.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "processes left behind: {left:#?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// From now on every command runs as an unprivileged user, for tests of permission bits
    /// (which root ignores). As root, the sandbox is handed to `nobody` (uid and gid 65534) and
    /// commands go through `setpriv`; as any other user, nothing changes. Returns `false` (after
    /// saying why) when that cannot be done; in CI it fails the test instead, since a
    /// permission test run as root tests nothing. Call it after writing the sandbox's files.
    pub fn run_unprivileged(&mut self, test: &str) -> bool {
        self.run_unprivileged_as(test, UNPRIVILEGED_ID)
    }

    /// [`Sandbox::run_unprivileged`] as the user (and group) `id`, which need not have an entry
    /// in `/etc/passwd`.
    pub fn run_unprivileged_as(&mut self, test: &str, id: u32) -> bool {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return true;
        }
        let why_not = if !Path::new(SETPRIV).is_file() {
            Some(format!("{SETPRIV} not found (util-linux)"))
        } else {
            self.root()
                .ancestors()
                .skip(1)
                .find(|dir| fs::metadata(dir).is_ok_and(|m| m.permissions().mode() & 0o001 == 0))
                .map(|dir| format!("{} is not searchable by other users", dir.display()))
        };
        if let Some(why) = why_not {
            assert!(
                !in_ci(),
                "{test}: cannot run as an unprivileged user ({why}); CI is set, so this is a \
                 failure"
            );
            eprintln!("skipping {test}: cannot run as an unprivileged user ({why})");
            return false;
        }
        // The built shim may sit under a directory the user cannot enter (/root, say).
        let copy = self.root().join("unprivileged").join("maybe-sccache");
        fs::create_dir_all(copy.parent().unwrap()).unwrap();
        fs::copy(shim_bin(), &copy).unwrap();
        self.shim_path = copy;
        chown_tree(self.root(), id);
        self.run_as = Some(id);
        let r = run(self.command("/bin/sh").args(["-c", "id -u"]), SHORT);
        assert_eq!(
            r.out().trim(),
            id.to_string(),
            "{test}: setpriv did not drop privileges: {}",
            r.describe()
        );
        true
    }

    /// Asserts that the sandbox's commands cannot do `shell` (a precondition of a permission
    /// test: the fault it sets up must be real for the user the shim runs as).
    pub fn assert_denied(&self, shell: &str) {
        let r = run(self.command("/bin/sh").args(["-c", shell]), SHORT);
        assert!(
            !r.status.success(),
            "`{shell}` should be denied to the test's user: {}",
            r.describe()
        );
    }

    /// `cargo <args>` in the fixture workspace with the shim as `RUSTC_WRAPPER`.
    pub fn cargo(&self, args: &[&str]) -> Command {
        let mut cmd = self.command(toolchain_bin().join("cargo"));
        cmd.args(args)
            .env("RUSTC_WRAPPER", shim_bin())
            .current_dir(&self.ws);
        cmd
    }

    /// `cargo build --offline` of the fixture.
    pub fn build(&self) -> Run {
        run(&mut self.cargo(&["build", "--offline"]), BUILD)
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Some(sccache) = self.stop_server_with.borrow_mut().take() {
            // Ignore the result: there may be no server (it was never started, or idled out).
            let mut cmd = self.command(&sccache);
            cmd.arg("--stop-server")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            if let Ok(mut child) = cmd.spawn() {
                let deadline = Instant::now() + Duration::from_secs(30);
                loop {
                    match child.try_wait() {
                        Ok(Some(_)) | Err(_) => break,
                        Ok(None) if Instant::now() >= deadline => {
                            let _ = child.kill();
                            let _ = child.wait();
                            break;
                        }
                        Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
            }
        }
    }
}
