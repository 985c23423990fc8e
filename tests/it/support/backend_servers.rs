//! Remote cache backends for the backend tests: real servers on 127.0.0.1 (moto's S3, Redis,
//! memcached, wsgidav's WebDAV) started on a free port and killed when dropped, a TCP proxy that
//! can turn into a black hole, and a sandbox set up for one backend. Not re-exported from
//! `support`: the backend tests import it by name.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::{
    breaker_reason, in_ci, real_sccache, reserve_port, run, wait_for_port, write_libs, Json, Run,
    Sandbox, Server, BUILD,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    S3,
    Redis,
    Memcached,
    Webdav,
}

impl Kind {
    /// The name the shim gives the backend in breaker reasons and `status`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::S3 => "S3",
            Kind::Redis => "Redis",
            Kind::Memcached => "memcached",
            Kind::Webdav => "WebDAV",
        }
    }

    pub fn program(self) -> &'static str {
        match self {
            Kind::S3 => "moto_server",
            Kind::Redis => "redis-server",
            Kind::Memcached => "memcached",
            Kind::Webdav => "wsgidav",
        }
    }

    /// sccache's environment for a backend at `port` on 127.0.0.1.
    pub fn env(self, port: u16) -> Vec<(&'static str, String)> {
        let at = |scheme: &str| format!("{scheme}://127.0.0.1:{port}");
        match self {
            Kind::S3 => vec![
                ("SCCACHE_BUCKET", BUCKET.into()),
                ("SCCACHE_ENDPOINT", at("http")),
                ("SCCACHE_REGION", "us-east-1".into()),
                ("SCCACHE_S3_USE_SSL", "false".into()),
                ("AWS_ACCESS_KEY_ID", "testing".into()),
                ("AWS_SECRET_ACCESS_KEY", "testing-secret".into()),
            ],
            Kind::Redis => vec![("SCCACHE_REDIS_ENDPOINT", at("redis"))],
            Kind::Memcached => vec![("SCCACHE_MEMCACHED_ENDPOINT", at("tcp"))],
            Kind::Webdav => vec![("SCCACHE_WEBDAV_ENDPOINT", at("http"))],
        }
    }
}

pub const BUCKET: &str = "maybe-sccache-test";

/// The server program, from `PATH` or the usual places; `None` (after saying why) to skip, and a
/// failure with CI set.
pub fn require(kind: Kind, test: &str) -> Option<PathBuf> {
    let name = kind.program();
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/bin", "/usr/sbin", "/usr/local/bin"].map(PathBuf::from));
    if let Some(sccache) = real_sccache() {
        // The CI virtualenv holds sccache, moto and wsgidav side by side.
        dirs.extend(sccache.parent().map(Path::to_owned));
    }
    dirs.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/ci-venv/bin"));
    if let Some(found) = dirs.iter().map(|d| d.join(name)).find(|p| p.is_file()) {
        return Some(found);
    }
    assert!(
        !in_ci(),
        "{test}: {name} is required in CI but was not found (.ci/run installs it)"
    );
    eprintln!("skipping {test}: {name} not found");
    None
}

/// One HTTP/1.1 request; the status line's code.
fn http(port: u16, method: &str, path: &str) -> u16 {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    reply
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// A backend server on a free loopback port, killed when dropped.
pub struct Service {
    server: Server,
    pub port: u16,
}

impl Service {
    pub fn start(kind: Kind, program: &Path, dir: &Path) -> Service {
        let port = reserve_port();
        let p = port.to_string();
        let mut cmd = Command::new(program);
        match kind {
            Kind::S3 => cmd.args(["-H", "127.0.0.1", "-p", &p]),
            Kind::Redis => cmd
                .args([
                    "--port",
                    &p,
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .arg("--dir")
                .arg(dir),
            Kind::Memcached => {
                cmd.args(["-l", "127.0.0.1", "-p", &p, "-U", "0", "-m", "64"]);
                // memcached refuses to run as root unless told which user to be.
                // SAFETY: a plain getter.
                if unsafe { libc::geteuid() } == 0 {
                    cmd.args(["-u", "root"]);
                }
                &mut cmd
            }
            Kind::Webdav => {
                let root = dir.join("webdav-root");
                fs::create_dir_all(&root).unwrap();
                cmd.args([
                    "--host",
                    "127.0.0.1",
                    "--port",
                    &p,
                    "--auth",
                    "anonymous",
                    "--root",
                ])
                .arg(&root)
            }
        };
        let log = dir.join(format!("{}.log", kind.program()));
        let service = Service {
            server: Server::spawn(&mut cmd, &log),
            port,
        };
        wait_for_port(port, kind.program());
        if kind == Kind::S3 {
            let code = http(port, "PUT", &format!("/{BUCKET}"));
            assert_eq!(code, 200, "moto did not create the bucket");
        }
        service
    }

    /// Kills the server now (a backend killed mid-build); it is killed when dropped anyway.
    pub fn kill(&mut self) {
        self.server.kill();
    }
}

/// A sandbox with the real sccache, a chain of `libs` crates, and the backend's environment for
/// a server at `port`.
pub fn sandbox(kind: Kind, port: u16, libs: usize, sccache: &Path) -> (Sandbox, String) {
    let mut sb = Sandbox::new();
    for (k, v) in kind.env(port) {
        sb.set_env(k, v);
    }
    let expected = write_libs(&sb.ws, libs, true);
    sb.install_real_sccache(sccache);
    (sb, expected)
}

pub fn timed_build(sb: &Sandbox, args: &[&str]) -> (Run, Duration) {
    let started = Instant::now();
    let r = run(&mut sb.cargo(args), BUILD);
    (r, started.elapsed())
}

pub fn assert_reason_names(st: &Json, kind: Kind, words: &[&str]) {
    let reason = breaker_reason(st);
    assert!(
        reason.contains(kind.name()),
        "reason must name {kind:?}: {st:?}"
    );
    assert!(
        words.iter().any(|w| reason.contains(w)),
        "reason must say one of {words:?}: {st:?}"
    );
}
