//! A shared machine: another user's sccache server listens where root's sccache client looks.
//! The shim must neither forward to it (it compiles as its owner and serves its owner's cache)
//! nor stop it, and must say whose it is.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::support::*;

/// `nobody` on Debian and most other systems.
const FOREIGN_UID: u32 = 65534;
const SETPRIV: &str = "/usr/bin/setpriv";

/// A real sccache server run by `nobody`, with a cache and home of its own, stopped on drop.
struct ForeignServer {
    dir: tempfile::TempDir,
    sccache: PathBuf,
    port: u16,
    /// `SCCACHE_SERVER_UDS`, when the server listens on a Unix socket instead of the port.
    socket: Option<PathBuf>,
}

impl ForeignServer {
    fn start(sccache: &Path, port: u16, on_socket: bool) -> ForeignServer {
        let dir = tempfile::Builder::new()
            .prefix("msit-foreign-")
            .tempdir()
            .unwrap();
        // The real sccache may sit where nobody cannot reach it: nobody runs its own copy.
        let copy = dir.path().join("sccache");
        fs::copy(sccache, &copy).unwrap();
        for sub in ["home", "cache"] {
            fs::create_dir(dir.path().join(sub)).unwrap();
        }
        for path in [
            dir.path().to_owned(),
            dir.path().join("home"),
            dir.path().join("cache"),
            copy.clone(),
        ] {
            std::os::unix::fs::chown(&path, Some(FOREIGN_UID), Some(FOREIGN_UID)).unwrap();
        }
        fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let socket = on_socket.then(|| dir.path().join("home").join("server.sock"));
        let server = ForeignServer {
            dir,
            sccache: copy,
            port,
            socket,
        };
        let r = run(server.as_nobody().arg("--start-server"), SHORT);
        assert!(
            r.status.success(),
            "nobody's sccache server did not start: {}",
            r.describe()
        );
        server
    }

    /// `sccache …` as nobody, pointed at this server.
    fn as_nobody(&self) -> Command {
        let mut cmd = Command::new(SETPRIV);
        cmd.arg(format!("--reuid={FOREIGN_UID}"))
            .arg(format!("--regid={FOREIGN_UID}"))
            .args(["--clear-groups", "--"])
            .arg(&self.sccache)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", self.dir.path().join("home"))
            .env("SCCACHE_DIR", self.dir.path().join("cache"))
            .env("SCCACHE_SERVER_PORT", self.port.to_string())
            .env("SCCACHE_IDLE_TIMEOUT", "0")
            .envs(self.socket.iter().map(|s| ("SCCACHE_SERVER_UDS", s)))
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        cmd
    }

    /// The server's own statistics, asked by its owner; panics when it does not answer (it is
    /// no longer running).
    fn compile_requests(&self) -> u64 {
        let r = run(
            self.as_nobody()
                .args(["--show-stats", "--stats-format", "json"]),
            SHORT,
        );
        assert!(
            r.status.success(),
            "nobody's sccache server no longer answers: {}",
            r.describe()
        );
        let stats = json_from_str(&r.out()).unwrap();
        stats
            .path(&["stats", "compile_requests"])
            .and_then(Json::as_u64)
            .unwrap_or_else(|| panic!("no compile_requests in {stats:?}"))
    }
}

impl Drop for ForeignServer {
    fn drop(&mut self) {
        let _ = run(self.as_nobody().arg("--stop-server"), SHORT);
    }
}

/// Whether this test can run: as root, with `setpriv`, and the real sccache. Outside CI it says
/// why it skips; in CI it fails instead.
fn can_run(test: &str) -> Option<&'static Path> {
    // SAFETY: geteuid has no preconditions.
    let why_not = if unsafe { libc::geteuid() } != 0 {
        Some("not root: cannot run a server as another user")
    } else if !Path::new(SETPRIV).is_file() {
        Some("/usr/bin/setpriv not found (util-linux)")
    } else {
        None
    };
    if let Some(why) = why_not {
        assert!(!in_ci(), "{test}: {why}; CI is set, so this is a failure");
        eprintln!("skipping {test}: {why}");
        return None;
    }
    require_sccache(test)
}

#[test]
fn another_users_server_is_never_used_nor_stopped() {
    another_users_server("another_users_server_is_never_used_nor_stopped", false);
}

/// The same with the server on a Unix socket (`SCCACHE_SERVER_UDS`): its owner comes from the
/// listener's peer credentials.
#[test]
fn another_users_server_on_a_unix_socket_is_never_used_nor_stopped() {
    another_users_server(
        "another_users_server_on_a_unix_socket_is_never_used_nor_stopped",
        true,
    );
}

fn another_users_server(test: &str, on_socket: bool) {
    let Some(sccache) = can_run(test) else {
        return;
    };
    let mut sb = Sandbox::new();
    let foreign = ForeignServer::start(sccache, sb.port, on_socket);
    if let Some(socket) = &foreign.socket {
        sb.set_env("SCCACHE_SERVER_UDS", socket);
    }
    assert_eq!(foreign.compile_requests(), 0);
    // Root's build has the real sccache on PATH and the same port: before owners were looked at,
    // its compiles went into nobody's server.
    let link = sb.bin.join("sccache");
    std::os::unix::fs::symlink(sccache, &link).unwrap();

    sb.assert_good_build();
    assert_eq!(
        foreign.compile_requests(),
        0,
        "root's compiles reached nobody's sccache server"
    );

    let st = sb.status_json();
    assert_eq!(
        st.path(&["sccache", "server_owner", "uid"])
            .and_then(Json::as_u64),
        Some(u64::from(FOREIGN_UID)),
        "{st:?}"
    );
    assert_eq!(
        st.path(&["sccache", "server_owner", "used"]),
        Some(&Json::Bool(false)),
        "{st:?}"
    );
    let foreign_calls = st
        .path(&["counters", "fallback", "foreign-server"])
        .and_then(Json::as_u64)
        .unwrap_or(0);
    assert!(foreign_calls >= 1, "{st:?}");
    // Nothing wrong with sccache: the breaker stays closed.
    assert_eq!(
        st.path(&["breaker", "state"]).and_then(Json::as_str),
        Some("closed"),
        "{st:?}"
    );
    let text = run(&mut sb.shim(["status"]), SHORT);
    text.assert_success();
    assert!(
        text.out()
            .lines()
            .any(|l| l.contains("server") && l.contains("uid 65534")),
        "status does not name the owner: {}",
        text.describe()
    );
    let doctor = run(&mut sb.shim(["doctor"]), SHORT);
    assert!(
        doctor
            .out()
            .lines()
            .any(|l| l.starts_with("FAIL") && l.contains("uid 65534")),
        "doctor does not name the owner: {}",
        doctor.describe()
    );

    // `sccache --stop-server` through the alias (the save action's stop) leaves it running.
    let alias_dir = sb.root().join("alias");
    let alias = run(sb.shim(["alias", "--dir"]).arg(&alias_dir), SHORT);
    alias.assert_success();
    let stop = run(sb.command(alias.out().trim()).arg("--stop-server"), SHORT);
    assert_ne!(stop.code(), Some(0), "{}", stop.describe());
    assert!(
        stop.err().contains("uid 65534"),
        "the refusal does not say whose the server is: {}",
        stop.describe()
    );

    // Still running, still untouched.
    assert_eq!(foreign.compile_requests(), 0);
}
