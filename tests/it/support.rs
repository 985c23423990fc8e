//! Helpers shared by the integration tests: per-test sandboxes, fake programs, the fixture
//! workspace, running children with a deadline, and reading sccache's JSON statistics.

use std::cell::{Cell, RefCell};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::net::TcpListener;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use tempfile::TempDir;

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

/// What sccache 0.16 prints when its server cannot be started in time (exit code 2).
pub const SCCACHE_ERROR_TEXT: &str = "sccache: error: Timed out waiting for server startup. \
     Maybe the remote service is unreachable?\n\
     Run with SCCACHE_LOG=debug SCCACHE_NO_DAEMON=1 to get more information\n";

/// What sccache 0.16 prints when its server dies in the middle of a request (exit code 254).
pub const SCCACHE_FATAL_TEXT: &str = "sccache: encountered fatal error\n\
     sccache: error: Failed to send data to or receive data from server\n\
     sccache: caused by: Failed to read response header\n\
     sccache: caused by: failed to fill whole buffer\n";

/// What the fixture's binary prints when the lib chain, the proc-macro and the build script all
/// did their job: a = (c=7) * 3 + 1 = 22, the proc-macro expands to 42, the build script sets
/// an env var read by `env!`.
pub const APP_OUTPUT: &str = "a=22 pm=42 build=from-build-rs\n";

/// Library crates of the fixture that sccache can cache: a, b, c and withbuild.
pub const LIB_CRATES: u64 = 4;

/// The text of the rustc warning the fixture's `c` crate triggers.
pub const RUSTC_WARNING: &str = "unused variable: `unused_thing`";

/// The text of the clippy warning the fixture's `c` crate triggers (`clippy::needless_return`).
pub const CLIPPY_WARNING: &str = "unneeded `return` statement";

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

/// A FIFO at `path`, which nobody reads unless the test opens it.
#[cfg(unix)]
pub fn make_fifo(path: &Path) {
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    let made = unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) };
    assert_eq!(made, 0, "mkfifo {}", path.display());
}

fn is_elf(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && magic == *b"\x7fELF"
}

/// The real sccache binary (an ELF file, never pyenv's bash shim), if there is one.
pub fn real_sccache() -> Option<&'static Path> {
    static FOUND: OnceLock<Option<PathBuf>> = OnceLock::new();
    FOUND
        .get_or_init(|| {
            if let Some(given) = std::env::var_os("MAYBE_SCCACHE_TEST_SCCACHE") {
                if !given.is_empty() {
                    let given = PathBuf::from(given);
                    assert_real_sccache("MAYBE_SCCACHE_TEST_SCCACHE", &given);
                    return Some(given);
                }
            }
            let mut candidates = Vec::new();
            let scripts = Command::new("python3")
                .args([
                    "-c",
                    "import sysconfig;print(sysconfig.get_path('scripts'))",
                ])
                .stdin(Stdio::null())
                .output();
            if let Ok(out) = scripts {
                let dir = String::from_utf8_lossy(&out.stdout).trim().to_owned();
                if out.status.success() && !dir.is_empty() {
                    candidates.push(Path::new(&dir).join("sccache"));
                }
            }
            if let Ok(out) = Command::new("pyenv")
                .args(["which", "sccache"])
                .stdin(Stdio::null())
                .output()
            {
                let p = String::from_utf8_lossy(&out.stdout).trim().to_owned();
                if out.status.success() && !p.is_empty() {
                    candidates.push(PathBuf::from(p));
                }
            }
            if let Some(path) = std::env::var_os("PATH") {
                candidates.extend(std::env::split_paths(&path).map(|d| d.join("sccache")));
            }
            candidates
                .into_iter()
                .find(|p| is_elf(p))
                .map(|p| p.canonicalize().unwrap_or(p))
        })
        .as_deref()
}

/// `path`, given by the environment variable `var`, must be the real sccache: an ELF file (a
/// wrapper script, pyenv's shim say, would put a shell between the shim and sccache and hide how
/// the real binary fails) whose `--version` says `sccache <version>`.
pub fn assert_real_sccache(var: &str, path: &Path) {
    assert!(path.is_file(), "{var}={} is not a file", path.display());
    assert!(
        is_elf(path),
        "{var}={} is not an ELF binary (a wrapper script?): point it at the real sccache",
        path.display()
    );
    assert_is_sccache(path);
}

/// `path --version` must say `sccache <version>`.
fn assert_is_sccache(path: &Path) {
    let out = Command::new(path)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} --version: {e}", path.display()));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.starts_with("sccache "),
        "{} --version does not answer like sccache: {text:?}",
        path.display()
    );
}

/// The real sccache, or `None` after printing why the test is skipped. In CI a missing sccache
/// fails the test instead.
pub fn require_sccache(test: &str) -> Option<&'static Path> {
    match real_sccache() {
        Some(path) => Some(path),
        None if in_ci() => panic!(
            "{test}: sccache not found (set MAYBE_SCCACHE_TEST_SCCACHE or install sccache 0.16); \
             CI is set, so this is a failure"
        ),
        None => {
            eprintln!("skipping {test}: sccache not found (set MAYBE_SCCACHE_TEST_SCCACHE)");
            None
        }
    }
}

/// A loopback port for a test's server (sccache, Redis) or for "nothing listens here", reserved
/// for the life of this test process.
///
/// Ports come from below the kernel's ephemeral range, which `bind(…:0)` and outgoing connections
/// draw from, so no other socket on the machine is handed one of them between the choice and the
/// server's start. Within that range each port is taken by a lock file in the temporary directory
/// held until this process ends, so two test processes (two suites at once) never share one, and
/// one process never gives it out twice. A port something already listens on is skipped.
pub fn reserve_port() -> u16 {
    static HELD: Mutex<Vec<(u16, fs::File)>> = Mutex::new(Vec::new());
    let mut held = HELD.lock().unwrap_or_else(|e| e.into_inner());
    let (low, high) = outside_the_ephemeral_range();
    let span = u32::from(high - low);
    let dir = std::env::temp_dir().join("maybe-sccache-test-ports");
    let _ = fs::create_dir_all(&dir);
    let _ = fs::set_permissions(&dir, fs::Permissions::from_mode(0o1777));
    // Start where this process is unlikely to meet another one, then walk the range.
    let start = std::process::id()
        .wrapping_mul(7919)
        .wrapping_add(held.len() as u32 * 13)
        % span;
    for step in 0..span {
        let port = low + ((start + step) % span) as u16;
        if held.iter().any(|(p, _)| *p == port) {
            continue;
        }
        let Ok(file) = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(port.to_string()))
        else {
            continue;
        };
        if fs2::FileExt::try_lock_exclusive(&file).is_err() {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port)).is_err() {
            continue;
        }
        held.push((port, file));
        return port;
    }
    panic!("no free loopback port in {low}..{high}");
}

/// The kernel's range for `bind(…:0)` and outgoing connections.
fn ephemeral_range() -> (u16, u16) {
    fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut words = s.split_whitespace().map(|w| w.parse::<u16>().ok());
            Some((words.next()??, words.next()??))
        })
        .unwrap_or((32768, 60999))
}

/// Ports for tests, `low..high`: below the ephemeral range, or above it if it starts too low.
fn outside_the_ephemeral_range() -> (u16, u16) {
    let (eph_low, eph_high) = ephemeral_range();
    let (low, high) = if eph_low >= 11000 {
        (10000, eph_low)
    } else {
        (eph_high.saturating_add(1), u16::MAX)
    };
    assert!(
        high - low >= 100,
        "no room for test ports outside the ephemeral range {eph_low}-{eph_high}"
    );
    (low, high)
}

#[test]
fn reserved_ports_are_distinct_and_outside_the_ephemeral_range() {
    let ports: Vec<u16> = (0..20).map(|_| reserve_port()).collect();
    let mut unique = ports.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), ports.len(), "{ports:?}");
    let (low, high) = ephemeral_range();
    assert!(
        ports.iter().all(|&p| p < low || p > high),
        "{ports:?} vs {low}-{high}"
    );
}

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

/// Quotes a path for a `/bin/sh` script.
pub fn sh_quote(s: &OsStr) -> String {
    let s = String::from_utf8(s.as_bytes().to_vec()).expect("sandbox paths are UTF-8");
    format!("'{}'", s.replace('\'', r"'\''"))
}

pub fn write_file(path: &Path, contents: impl AsRef<[u8]>, mode: u32) {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).unwrap();
    }
    fs::write(path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// Writes 4 KiB of deterministic garbage (neither `#!` nor ELF) with mode 0755.
pub fn write_garbage(path: &Path) {
    let mut x: u32 = 0x1234_5678;
    let mut bytes = vec![0u8, 0x13, 0x37, 0x00];
    while bytes.len() < 4096 {
        x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        bytes.push((x >> 24) as u8);
    }
    write_file(path, bytes, 0o755);
}

/// Writes an executable `/bin/sh` script.
pub fn write_script(path: &Path, body: &str) {
    write_file(path, format!("#!/bin/sh\n{body}"), 0o755);
}

/// How many times `needle` occurs in `haystack`.
pub fn count(haystack: &[u8], needle: &str) -> usize {
    let needle = needle.as_bytes();
    if needle.is_empty() || haystack.len() < needle.len() {
        return 0;
    }
    haystack
        .windows(needle.len())
        .filter(|w| *w == needle)
        .count()
}

/// The finished run of a child process.
pub struct Run {
    pub what: String,
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Run {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    pub fn signal(&self) -> Option<i32> {
        self.status.signal()
    }

    pub fn out(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn err(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// Everything the child wrote, stdout then stderr.
    pub fn all(&self) -> Vec<u8> {
        let mut all = self.stdout.clone();
        all.extend_from_slice(&self.stderr);
        all
    }

    pub fn describe(&self) -> String {
        format!(
            "{}\n  status: {:?}\n  --- stdout ---\n{}\n  --- stderr ---\n{}",
            self.what,
            self.status,
            self.out(),
            self.err()
        )
    }

    pub fn assert_success(&self) -> &Self {
        assert!(
            self.status.success(),
            "expected success: {}",
            self.describe()
        );
        self
    }

    /// Nothing written by sccache (its `sccache:` lines) or by the shim itself reached the output.
    pub fn assert_no_shim_noise(&self) -> &Self {
        let all = self.all();
        for needle in ["sccache:", "maybe-sccache", "SCCACHE_LOG", "panicked"] {
            assert_eq!(
                count(&all, needle),
                0,
                "{needle:?} must not appear in the output: {}",
                self.describe()
            );
        }
        self
    }
}

/// Runs `cmd` (stdin closed, stdout and stderr captured in files) and waits at most `timeout`;
/// on time-out the child's whole process group is killed and the test fails.
pub fn run(cmd: &mut Command, timeout: Duration) -> Run {
    let what = format!("{cmd:?}");
    let mut out = tempfile::tempfile().unwrap();
    let mut err = tempfile::tempfile().unwrap();
    cmd.stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(err.try_clone().unwrap())
        .process_group(0);
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot spawn {what}: {e}"));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.kill();
            let _ = child.wait();
            let mut o = String::new();
            let mut e = String::new();
            let _ = out.seek(SeekFrom::Start(0));
            let _ = out.read_to_string(&mut o);
            let _ = err.seek(SeekFrom::Start(0));
            let _ = err.read_to_string(&mut e);
            panic!("timed out after {timeout:?} (killed): {what}\n--- stdout ---\n{o}\n--- stderr ---\n{e}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stdout = Vec::new();
    out.seek(SeekFrom::Start(0)).unwrap();
    out.read_to_end(&mut stdout).unwrap();
    let mut stderr = Vec::new();
    err.seek(SeekFrom::Start(0)).unwrap();
    err.read_to_end(&mut stderr).unwrap();
    Run {
        what,
        status,
        stdout,
        stderr,
    }
}

/// Which fixture workspace to write.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Fixture {
    /// Builds; `app` prints [`APP_OUTPUT`].
    Good,
    /// `c` has a type error (`error[E0308]`).
    TypeError,
}

/// How a fake compiler ends.
#[derive(Clone, Copy)]
pub enum Ending {
    Exit(i32),
    /// Kills itself with this signal (a name for `kill -<NAME>`).
    Signal(&'static str),
}

/// A fake compiler script: writes fixed bytes to stdout and stderr, records its arguments.
pub struct FakeRustc {
    pub path: PathBuf,
    argv: PathBuf,
    calls: PathBuf,
}

/// The arguments of a shim call of `fake` on a one-file library, `victim.rs`.
pub fn fake_call(fake: &FakeRustc) -> Vec<OsString> {
    let mut args = vec![fake.path.clone().into_os_string()];
    for a in [
        "--crate-name",
        "victim",
        "--crate-type",
        "lib",
        "--emit=link",
        "victim.rs",
    ] {
        args.push(a.into());
    }
    args
}

impl FakeRustc {
    /// The arguments of the last call, byte for byte.
    pub fn argv(&self) -> Vec<Vec<u8>> {
        let raw = fs::read(&self.argv).unwrap_or_default();
        let mut args: Vec<Vec<u8>> = raw.split(|&b| b == 0).map(<[u8]>::to_vec).collect();
        // The recording ends with a NUL, which leaves one empty piece at the end.
        args.pop();
        args
    }

    pub fn calls(&self) -> usize {
        fs::read_to_string(&self.calls)
            .map(|s| s.lines().count())
            .unwrap_or(0)
    }
}

/// Kinds of fake sccache. Each appends its arguments (joined by spaces) to a calls file, one
/// line per call, sccache's own commands (`--start-server`, `--show-stats`, …) included.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FakeSccache {
    /// Every call (also `--start-server`) prints sccache's real server-start error, exits 2.
    ErrorText,
    /// `--start-server` and the like succeed; a compile prints sccache's error text, exits 2.
    ErrorTextOnCompile,
    /// `--start-server` and the like succeed; a compile prints sccache's "encountered fatal
    /// error" report and exits 254.
    Fatal,
    /// `--start-server` and the like succeed; a compile kills sccache with SIGSEGV.
    Segv,
    /// `--start-server` and the like succeed; a compile runs the compiler (`exec "$@"`), like a
    /// healthy sccache would.
    Healthy,
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
    stop_server_with: RefCell<Option<PathBuf>>,
    fakes: Cell<u32>,
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

    /// Runs the fixture's binary and returns what it printed.
    pub fn app_output(&self) -> String {
        let app = self.target.join("debug").join("app");
        let r = run(&mut self.command(&app), SHORT);
        r.assert_success();
        r.out()
    }

    pub fn assert_app_output(&self) {
        assert_eq!(
            self.app_output(),
            APP_OUTPUT,
            "the fixture's binary printed the wrong thing"
        );
    }

    /// Puts the real sccache on `PATH` (a symlink in the bin dir) and makes sure the server it
    /// starts is stopped when the sandbox goes away.
    pub fn install_real_sccache(&self, sccache: &Path) -> PathBuf {
        let link = self.bin.join("sccache");
        std::os::unix::fs::symlink(sccache, &link).unwrap();
        self.stop_server_on_drop(sccache);
        link
    }

    /// Runs `sccache --stop-server` with the sandbox's environment when the sandbox is dropped.
    pub fn stop_server_on_drop(&self, sccache: &Path) {
        *self.stop_server_with.borrow_mut() = Some(sccache.to_owned());
    }

    /// `maybe-sccache status --json`, parsed; it must exit 0 without a panic.
    pub fn status_json(&self) -> Json {
        let r = run(&mut self.shim(["status", "--json"]), SHORT);
        assert_eq!(r.code(), Some(0), "{}", r.describe());
        assert_eq!(count(&r.all(), "panicked"), 0, "{}", r.describe());
        json_from_str(&r.out())
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", r.describe()))
    }

    /// The name of this sandbox's sccache server in the state dir (its address and backend
    /// settings, hashed), as `status --json` gives it.
    pub fn server_key(&self) -> String {
        let st = self.status_json();
        st.path(&["breaker", "key"])
            .and_then(Json::as_str)
            .unwrap_or_else(|| panic!("no breaker.key in status: {st:?}"))
            .to_owned()
    }

    /// The breaker file of this sandbox's sccache server.
    pub fn breaker_file(&self) -> PathBuf {
        self.state.join(format!("breaker-{}", self.server_key()))
    }

    /// The start lock of this sandbox's sccache server.
    pub fn start_lock_file(&self) -> PathBuf {
        self.state.join(format!("start-{}.lock", self.server_key()))
    }

    /// A passing build of the good fixture: no sccache or shim text, the fixture's warning
    /// exactly once, a working binary.
    pub fn assert_good_build(&self) -> Run {
        self.write_fixture(Fixture::Good);
        let r = self.build();
        r.assert_success().assert_no_shim_noise();
        assert_eq!(
            count(&r.stderr, RUSTC_WARNING),
            1,
            "the fixture's warning must be shown exactly once: {}",
            r.describe()
        );
        self.assert_app_output();
        r
    }

    /// `sccache --show-stats --stats-format json`, parsed.
    pub fn sccache_stats(&self, sccache: &Path) -> Json {
        let r = run(
            self.command(sccache)
                .args(["--show-stats", "--stats-format", "json"]),
            SHORT,
        );
        r.assert_success();
        json_from_str(&r.out()).unwrap_or_else(|e| panic!("bad stats JSON ({e}): {}", r.out()))
    }

    /// The file a fake sccache appends one line per call to.
    pub fn sccache_calls_file(&self) -> PathBuf {
        self.data.join("sccache-calls")
    }

    /// The calls a fake sccache recorded, one line each (its arguments joined by spaces).
    pub fn sccache_calls(&self) -> Vec<String> {
        let raw = fs::read(self.sccache_calls_file()).unwrap_or_default();
        String::from_utf8_lossy(&raw)
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// The compile calls a fake sccache recorded (its own `--…` commands left out).
    pub fn sccache_compiles(&self) -> Vec<String> {
        let mut calls = self.sccache_calls();
        calls.retain(|c| !c.starts_with('-'));
        calls
    }

    /// Writes a fake sccache script at `path` (mode 0755).
    pub fn fake_sccache_at(&self, path: &Path, kind: FakeSccache) {
        let calls = sh_quote(self.sccache_calls_file().as_os_str());
        let record = format!("printf '%s\\n' \"$*\" >> {calls}\n");
        let own_commands_succeed = "case \"$1\" in -*) exit 0 ;; esac\n";
        let error_text = format!(
            "printf '%s' {} >&2\nexit 2\n",
            sh_quote(OsStr::new(SCCACHE_ERROR_TEXT))
        );
        let body = match kind {
            FakeSccache::ErrorText => error_text,
            FakeSccache::ErrorTextOnCompile => format!("{own_commands_succeed}{error_text}"),
            FakeSccache::Fatal => format!(
                "{own_commands_succeed}printf '%s' {} >&2\nexit 254\n",
                sh_quote(OsStr::new(SCCACHE_FATAL_TEXT))
            ),
            FakeSccache::Segv => {
                format!("{own_commands_succeed}ulimit -c 0\nkill -SEGV $$\nexit 99\n")
            }
            FakeSccache::Healthy => format!("{own_commands_succeed}exec \"$@\"\n"),
        };
        write_script(path, &format!("{record}{body}"));
    }

    /// A fake sccache named `sccache` in the bin dir.
    pub fn fake_sccache(&self, kind: FakeSccache) -> PathBuf {
        let path = self.bin.join("sccache");
        self.fake_sccache_at(&path, kind);
        path
    }

    /// A fake compiler at `path` that writes `stdout` and `stderr` byte for byte, records its
    /// arguments and ends as told.
    pub fn fake_rustc_at(
        &self,
        path: &Path,
        stdout: &[u8],
        stderr: &[u8],
        ending: Ending,
    ) -> FakeRustc {
        let n = self.fakes.get();
        self.fakes.set(n + 1);
        let base = self.data.join(format!("fake-rustc-{n}"));
        let file = |ext: &str| base.with_extension(ext);
        write_file(&file("out"), stdout, 0o644);
        write_file(&file("err"), stderr, 0o644);
        let q = |ext: &str| sh_quote(file(ext).as_os_str());
        let end = match ending {
            Ending::Exit(code) => format!("exit {code}\n"),
            Ending::Signal(sig) => format!("kill -{sig} $$\nexit 99\n"),
        };
        write_script(
            path,
            &format!(
                "ulimit -c 0\n\
                 echo call >> {calls}\n\
                 : > {argv}\n\
                 for a in \"$@\"; do printf '%s\\000' \"$a\" >> {argv}; done\n\
                 cat {out}\n\
                 cat {err} >&2\n\
                 {end}",
                calls = q("calls"),
                argv = q("argv"),
                out = q("out"),
                err = q("err"),
            ),
        );
        FakeRustc {
            path: path.to_owned(),
            argv: file("argv"),
            calls: file("calls"),
        }
    }

    /// A fake compiler in the data dir (not on `PATH`).
    pub fn fake_rustc(&self, stdout: &[u8], stderr: &[u8], ending: Ending) -> FakeRustc {
        let n = self.fakes.get();
        let path = self.data.join(format!("rustc-{n}"));
        self.fake_rustc_at(&path, stdout, stderr, ending)
    }

    /// A compiler for the real sccache: the toolchain's rustc behind a script that runs
    /// `on_compile` (shell code; `$RUSTC` is the real rustc and `"$@"` the arguments) instead
    /// of plain rustc for the real compile only: the call emitting `link`, as sccache passes it,
    /// not asking for `--print`. sccache's probes and its dep-info pass reach rustc unchanged.
    pub fn rustc_wrapper(&self, name: &str, on_compile: &str) -> PathBuf {
        let path = self.data.join(name);
        write_script(
            &path,
            &format!(
                "RUSTC={rustc}\n\
                 prev=; compile=; probe=\n\
                 for a in \"$@\"; do\n\
                 case \"$a\" in --print*) probe=1 ;; --emit=*link*) compile=1 ;; esac\n\
                 case \"$prev\" in --emit) case \"$a\" in *link*) compile=1 ;; esac ;; esac\n\
                 prev=$a\n\
                 done\n\
                 if [ -n \"$compile\" ] && [ -z \"$probe\" ]; then\n\
                 {on_compile}\n\
                 fi\n\
                 exec \"$RUSTC\" \"$@\"\n",
                rustc = sh_quote(toolchain_rustc().as_os_str()),
            ),
        );
        path
    }

    /// A library call of `compiler` (a real rustc, or a wrapper of one) on a one-line
    /// `victim.rs` in the workspace, through the shim, with a fresh output directory.
    pub fn victim_call(&self, compiler: &Path, extra: &[OsString]) -> Run {
        write_file(
            &self.ws.join("victim.rs"),
            "pub fn f() -> u32 { 1 }\n",
            0o644,
        );
        let out_dir = self.data.join("out");
        let _ = fs::remove_dir_all(&out_dir);
        fs::create_dir_all(&out_dir).unwrap();
        let mut args: Vec<OsString> = vec![compiler.as_os_str().to_owned()];
        args.extend(cacheable_args("victim.rs", &out_dir));
        args.extend_from_slice(extra);
        let mut cmd = self.shim(args);
        cmd.current_dir(&self.ws);
        run(&mut cmd, SHORT)
    }

    /// Writes the fixture workspace into `self.ws`.
    pub fn write_fixture(&self, fixture: Fixture) {
        let ws = &self.ws;
        let w = |rel: &str, text: &str| write_file(&ws.join(rel), text, 0o644);
        w(
            "Cargo.toml",
            "[workspace]\n\
             members = [\"a\", \"b\", \"c\", \"pm\", \"withbuild\", \"app\"]\n\
             resolver = \"2\"\n\n\
             [profile.dev]\n\
             debug = 0\n",
        );
        let manifest = |name: &str, extra: &str, deps: &str| {
            format!(
                "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\
                 publish = false\n{extra}\n[dependencies]\n{deps}"
            )
        };
        w("c/Cargo.toml", &manifest("c", "", ""));
        let c_value = match fixture {
            Fixture::Good => "7",
            Fixture::TypeError => "\"seven\"",
        };
        w(
            "c/src/lib.rs",
            &format!(
                "pub fn c_value() -> u32 {{\n    {c_value}\n}}\n\n\
                 /// Triggers clippy::needless_return (a warning), nothing in rustc.\n\
                 pub fn lint_me() -> u32 {{\n    return 1;\n}}\n\n\
                 /// Triggers rustc's unused_variables warning.\n\
                 pub fn warn_me() -> u32 {{\n    let unused_thing = 1;\n    2\n}}\n"
            ),
        );
        w(
            "b/Cargo.toml",
            &manifest("b", "", "c = { path = \"../c\" }\n"),
        );
        w(
            "b/src/lib.rs",
            "pub fn b_value() -> u32 {\n    c::c_value() * 3\n}\n",
        );
        w(
            "a/Cargo.toml",
            &manifest("a", "", "b = { path = \"../b\" }\n"),
        );
        w(
            "a/src/lib.rs",
            "pub fn a_value() -> u32 {\n    b::b_value() + 1\n}\n",
        );
        w(
            "pm/Cargo.toml",
            &manifest("pm", "\n[lib]\nproc-macro = true\n", ""),
        );
        w(
            "pm/src/lib.rs",
            "use proc_macro::TokenStream;\n\n\
             #[proc_macro]\n\
             pub fn forty_two(_input: TokenStream) -> TokenStream {\n    \
                 \"42u32\".parse().unwrap()\n}\n",
        );
        w(
            "withbuild/Cargo.toml",
            &manifest("withbuild", "build = \"build.rs\"\n", ""),
        );
        w(
            "withbuild/build.rs",
            "fn main() {\n    \
                 println!(\"cargo:rerun-if-changed=build.rs\");\n    \
                 println!(\"cargo:rustc-env=FIXTURE_BUILD_VALUE=from-build-rs\");\n}\n",
        );
        w(
            "withbuild/src/lib.rs",
            "pub const BUILD_VALUE: &str = env!(\"FIXTURE_BUILD_VALUE\");\n",
        );
        w(
            "app/Cargo.toml",
            &manifest(
                "app",
                "",
                "a = { path = \"../a\" }\npm = { path = \"../pm\" }\n\
                 withbuild = { path = \"../withbuild\" }\n",
            ),
        );
        w(
            "app/src/main.rs",
            "fn main() {\n    \
                 println!(\"a={} pm={} build={}\", a::a_value(), pm::forty_two!(), \
                 withbuild::BUILD_VALUE);\n}\n",
        );
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

/// Arguments of a call sccache 0.16 would cache, shaped like cargo's for a library crate.
pub fn cacheable_args(input: &str, out_dir: &Path) -> Vec<OsString> {
    let mut args: Vec<OsString> = [
        "--crate-name",
        "victim",
        "--edition=2021",
        input,
        "--error-format=json",
        "--crate-type",
        "lib",
        "--emit=dep-info,metadata,link",
        "-C",
        "embed-bitcode=no",
        "-C",
        "metadata=0123456789abcdef",
        "--out-dir",
    ]
    .iter()
    .map(OsString::from)
    .collect();
    args.push(out_dir.as_os_str().to_owned());
    args
}

/// A JSON value (sccache's statistics, `maybe-sccache status --json`).
pub type Json = serde_json::Value;

/// Parses a whole JSON document.
pub fn json_from_str(text: &str) -> Result<Json, String> {
    serde_json::from_str(text).map_err(|e| e.to_string())
}

/// Lookups on a [`Json`] value.
pub trait JsonExt {
    /// The value reached by following object keys; `None` if a key is missing or a value on the
    /// way is not an object.
    fn path(&self, keys: &[&str]) -> Option<&Json>;

    /// Sum of the numbers in an object like `{"Rust": 3, "C": 1}`.
    fn sum_counts(&self) -> u64;
}

impl JsonExt for Json {
    fn path(&self, keys: &[&str]) -> Option<&Json> {
        keys.iter().try_fold(self, |v, k| v.as_object()?.get(*k))
    }

    fn sum_counts(&self) -> u64 {
        self.as_object()
            .map_or(0, |fields| fields.values().filter_map(Json::as_u64).sum())
    }
}

#[test]
fn json_helpers_read_sccache_stats() {
    let text = r#"{"stats":{"compile_requests":5,"cache_hits":{"counts":{"Rust":3,"C":1},"adv_counts":{}},"multi_level":null,"x":[1,true,"a\"b"]},"cache_location":"Local disk: \"/tmp/x\"","version":"0.16.0"}"#;
    let v = json_from_str(text).unwrap();
    assert_eq!(
        v.path(&["stats", "cache_hits", "counts"])
            .unwrap()
            .sum_counts(),
        4
    );
    assert_eq!(
        v.path(&["stats", "compile_requests"])
            .and_then(Json::as_u64),
        Some(5)
    );
    assert_eq!(v.get("version"), Some(&Json::String("0.16.0".into())));
    assert!(json_from_str("{").is_err());
}
