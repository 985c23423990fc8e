//! A real sccache-dist cluster on 127.0.0.1 for the dist tests: one scheduler and one overlay
//! build server (bubblewrap, root), each with a configuration of its own in a temporary
//! directory, and a client configuration for the sandbox's sccache (`SCCACHE_CONF`).
//!
//! The binaries come from `MAYBE_SCCACHE_TEST_SCCACHE_NEWEST` (sccache built with
//! `--features dist-server`; `sccache-dist` lies beside it, or at
//! `MAYBE_SCCACHE_TEST_SCCACHE_DIST`). Without them the tests are skipped, except in CI, where
//! that is a failure.

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::support::{in_ci, reserve_port, Sandbox};

/// The client token the scheduler accepts.
pub const CLIENT_TOKEN: &str = "maybe-sccache-test-client-token";

/// sccache (with the dist client) and sccache-dist, or `None` after saying why the test is
/// skipped. In CI their absence, or a machine that cannot run a build server, fails the test.
pub fn require_dist(test: &str) -> Option<(PathBuf, PathBuf)> {
    let found = find_dist();
    match found {
        Ok(pair) => Some(pair),
        Err(why) if in_ci() => panic!("{test}: {why}; CI is set, so this is a failure"),
        Err(why) => {
            eprintln!("skipping {test}: {why}");
            None
        }
    }
}

fn find_dist() -> Result<(PathBuf, PathBuf), String> {
    let Some(sccache) =
        std::env::var_os("MAYBE_SCCACHE_TEST_SCCACHE_NEWEST").filter(|v| !v.is_empty())
    else {
        return Err(
            "MAYBE_SCCACHE_TEST_SCCACHE_NEWEST is not set (sccache with sccache-dist)".into(),
        );
    };
    let sccache = PathBuf::from(sccache);
    crate::support::assert_real_sccache("MAYBE_SCCACHE_TEST_SCCACHE_NEWEST", &sccache);
    let dist = std::env::var_os("MAYBE_SCCACHE_TEST_SCCACHE_DIST")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| sccache.with_file_name("sccache-dist"));
    if !dist.is_file() {
        return Err(format!("no sccache-dist at {}", dist.display()));
    }
    if !Path::new(BWRAP).is_file() {
        return Err(format!(
            "no bubblewrap at {BWRAP} (apt-get install bubblewrap)"
        ));
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Err("the overlay build server must run as root".into());
    }
    Ok((sccache, dist))
}

const BWRAP: &str = "/usr/bin/bwrap";

/// One scheduler and one build server, stopped (killed) when dropped.
pub struct Cluster {
    dir: TempDir,
    dist: PathBuf,
    pub scheduler_port: u16,
    pub server_port: u16,
    scheduler: Option<Child>,
    server: Option<Child>,
}

impl Cluster {
    /// Starts the scheduler and the build server and waits until the server has registered.
    pub fn start(dist: &Path) -> Cluster {
        let token_auth = format!("type = \"token\"\ntoken = \"{CLIENT_TOKEN}\"\n");
        Cluster::start_with(dist, &token_auth, true)
    }

    /// Starts the scheduler with `client_auth` (the body of its `[client_auth]` table), and the
    /// build server when `with_server` (waiting until it has registered).
    pub fn start_with(dist: &Path, client_auth: &str, with_server: bool) -> Cluster {
        Cluster::try_start_with(dist, client_auth, with_server).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Cluster::start_with`], or the scheduler's log when it exits before it answers.
    pub fn try_start_with(
        dist: &Path,
        client_auth: &str,
        with_server: bool,
    ) -> Result<Cluster, String> {
        let dir = tempfile::Builder::new()
            .prefix("msit-dist-")
            .tempdir()
            .unwrap();
        let mut cluster = Cluster {
            dist: dist.to_owned(),
            scheduler_port: reserve_port(),
            server_port: reserve_port(),
            scheduler: None,
            server: None,
            dir,
        };
        let key = cluster.output(&["auth", "generate-jwt-hs256-key"]);
        let server_addr = format!("127.0.0.1:{}", cluster.server_port);
        let server_token = cluster.output(&[
            "auth",
            "generate-jwt-hs256-server-token",
            // A base64url key may start with `-`: given as one word, it is never taken for a flag.
            &format!("--secret-key={key}"),
            &format!("--server={server_addr}"),
        ]);
        let root = cluster.dir.path();
        fs::write(
            root.join("scheduler.conf"),
            format!(
                "public_addr = \"127.0.0.1:{}\"\n\n\
                 [client_auth]\n{client_auth}\n\
                 [server_auth]\ntype = \"jwt_hs256\"\nsecret_key = \"{key}\"\n",
                cluster.scheduler_port
            ),
        )
        .unwrap();
        fs::write(
            root.join("server.conf"),
            format!(
                "cache_dir = \"{}\"\npublic_addr = \"{server_addr}\"\n\
                 scheduler_url = \"http://127.0.0.1:{}\"\n\n\
                 [builder]\ntype = \"overlay\"\nbuild_dir = \"{}\"\nbwrap_path = \"{BWRAP}\"\n\n\
                 [scheduler_auth]\ntype = \"jwt_token\"\ntoken = \"{server_token}\"\n",
                root.join("toolchains").display(),
                cluster.scheduler_port,
                root.join("build").display(),
            ),
        )
        .unwrap();
        cluster.scheduler = Some(cluster.spawn("scheduler"));
        cluster.wait_for_scheduler()?;
        if with_server {
            cluster.start_server();
        }
        Ok(cluster)
    }

    /// The scheduler's URL.
    pub fn scheduler_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.scheduler_port)
    }

    fn output(&self, args: &[&str]) -> String {
        let out = Command::new(&self.dist)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "sccache-dist {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    fn spawn(&self, role: &str) -> Child {
        let log = fs::File::create(self.dir.path().join(format!("{role}.log"))).unwrap();
        Command::new(&self.dist)
            .arg(role)
            .arg("--config")
            .arg(self.dir.path().join(format!("{role}.conf")))
            .env("SCCACHE_NO_DAEMON", "1")
            .env("SCCACHE_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start sccache-dist {role}: {e}"))
    }

    /// Starts the build server (again) and waits until the scheduler counts it.
    pub fn start_server(&mut self) {
        self.server = Some(self.spawn("server"));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if self
                .status()
                .is_some_and(|s| s.contains("\"num_servers\":1"))
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the build server did not register within 60 s; {}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits until the scheduler answers its status request; its log when it exited instead.
    fn wait_for_scheduler(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.status().is_none() {
            let exited = self.scheduler.as_mut().map(|c| c.try_wait());
            if let Some(Ok(Some(status))) = exited {
                return Err(format!("the scheduler exited ({status}); {}", self.logs()));
            }
            assert!(
                Instant::now() < deadline,
                "the scheduler did not answer within 60 s; {}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(())
    }

    /// The build server's pid.
    pub fn server_pid(&self) -> u32 {
        self.server.as_ref().expect("no build server").id()
    }

    /// Kills the build server (SIGKILL) and reaps it.
    pub fn kill_server(&mut self) {
        if let Some(mut child) = self.server.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the scheduler (SIGKILL) and reaps it.
    pub fn kill_scheduler(&mut self) {
        if let Some(mut child) = self.scheduler.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends `sig` to the build server.
    pub fn signal_server(&self, sig: i32) {
        let pid = self.server_pid() as libc::pid_t;
        // SAFETY: kill(2) with a pid this cluster started and has not reaped.
        let sent = unsafe { libc::kill(pid, sig) };
        assert_eq!(sent, 0, "kill({pid}, {sig})");
    }

    /// Sends `sig` to the build server the moment it has a child process (the overlay builder's
    /// sandbox of a remote compile), from a thread that watches for one until `done` is set. The
    /// thread returns whether it sent the signal.
    pub fn signal_server_when_busy(
        &self,
        sig: i32,
        done: Arc<AtomicBool>,
    ) -> std::thread::JoinHandle<bool> {
        let pid = self.server_pid();
        std::thread::spawn(move || {
            while !done.load(Ordering::SeqCst) {
                if has_child(pid) {
                    // SAFETY: kill(2) with the pid of a child of this process not yet reaped
                    // (the cluster reaps it only when dropped, after this thread is joined).
                    return unsafe { libc::kill(pid as libc::pid_t, sig) } == 0;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            false
        })
    }

    /// `GET /api/v1/scheduler/status` as JSON, or `None` when the scheduler does not answer.
    pub fn status(&self) -> Option<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.scheduler_port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        let request = format!(
            "GET /api/v1/scheduler/status HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\
             Accept: application/json\r\nConnection: close\r\n\r\n",
            self.scheduler_port
        );
        stream.write_all(request.as_bytes()).ok()?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).ok()?;
        let body = answer.split_once("\r\n\r\n")?.1;
        answer.starts_with("HTTP/1.1 200").then(|| body.to_owned())
    }

    /// Both logs, for a failing assertion.
    pub fn logs(&self) -> String {
        let read = |role: &str| {
            fs::read_to_string(self.dir.path().join(format!("{role}.log"))).unwrap_or_default()
        };
        format!(
            "scheduler log:\n{}\nbuild server log:\n{}",
            read("scheduler"),
            read("server")
        )
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(server) = &self.server {
            // A stopped server must be woken to die of SIGKILL's cleanup; SIGKILL works on a
            // stopped process anyway, SIGCONT only makes its exit prompt.
            // SAFETY: kill(2) with a pid this cluster started and has not reaped.
            unsafe { libc::kill(server.id() as libc::pid_t, libc::SIGCONT) };
        }
        self.kill_server();
        self.kill_scheduler();
    }
}

/// Writes the sandbox's client configuration (`[dist]` at `scheduler_url`, with `token`) and
/// points the sandbox's sccache at it (`SCCACHE_CONF`). The client's toolchain cache is shared by
/// all tests (packaging rustc's sysroot takes a while, and it does not change).
pub fn configure_client(sb: &mut Sandbox, scheduler_url: &str, token: &str) -> PathBuf {
    let conf = sb.data.join("sccache-client.conf");
    let cache = std::env::temp_dir().join("maybe-sccache-test-dist-client");
    fs::write(
        &conf,
        format!(
            "[dist]\nscheduler_url = \"{scheduler_url}\"\ntoolchains = []\n\
             cache_dir = \"{}\"\n\n[dist.auth]\ntype = \"token\"\ntoken = \"{token}\"\n",
            cache.display()
        ),
    )
    .unwrap();
    sb.set_env("SCCACHE_CONF", &conf);
    conf
}

/// A port where something accepts connections (the kernel does, into the backlog) and never
/// answers: a black-holed scheduler. Held until the listener is dropped.
pub fn black_hole() -> (TcpListener, u16) {
    let port = reserve_port();
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    (listener, port)
}

/// Does process `pid` have a child (any thread's)?
fn has_child(pid: u32) -> bool {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().any(|task| {
        fs::read_to_string(task.path().join("children")).is_ok_and(|c| !c.trim().is_empty())
    })
}
