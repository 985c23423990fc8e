//! Remote cache backends: which one sccache will use, and whether its endpoints answer.
//!
//! The backend is read the way sccache 0.16 reads it (`src/config.rs`): its config file
//! (`SCCACHE_CONF`, else sccache's default path), then the environment, which overrides the file
//! backend by backend; of several configured backends the first of S3, Redis, memcached, GCS, GHA,
//! Azure, WebDAV, OSS, COS is used, unless a multilevel chain names several.
//!
//! Nothing here runs on the hot path: the file is read and endpoints are probed only before a
//! server start, by a watchdog of a call that has already taken seconds, and by `status`/`doctor`.
//!
//! A probe connects to an endpoint and sends one small request in its own protocol (an HTTP `HEAD`
//! for S3 and WebDAV, `PING` for Redis, `version` for memcached). Any reply proves the endpoint
//! alive; a refused connection or a host that DNS says does not exist proves it down; silence
//! until the deadline proves nothing either way.

use std::env;
use std::fmt;
use std::io::{ErrorKind, Read, Write};
#[cfg(not(all(target_os = "linux", target_env = "gnu", target_feature = "crt-static")))]
use std::net::ToSocketAddrs;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

mod cloud;
mod config;
mod connect;
pub mod dist;
pub mod gha;
mod resolve;
mod served;

use config::*;
pub use config::{config_file_path, dist_scheduler};
use connect::*;
use resolve::*;
pub use served::detect_or_served;

/// How an endpoint is spoken to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http,
    Redis,
    Memcached,
    /// The GitHub Actions cache service over plain HTTP: its start-up check's request.
    GhaService,
    /// An HTTP proxy in front of the backend: a `CONNECT` to the backend's host.
    ProxyConnect,
}

/// One host and port a backend talks to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub protocol: Protocol,
    pub tls: bool,
    /// Reached through an HTTP proxy (`HTTPS_PROXY` and the like): a direct probe would test the
    /// wrong path, so it is not probed.
    pub proxied: bool,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match (self.protocol, self.tls) {
            (Protocol::Http, false) => "http",
            (Protocol::Http, true) => "https",
            (Protocol::GhaService | Protocol::ProxyConnect, _) => "http",
            (Protocol::Redis, false) => "redis",
            (Protocol::Redis, true) => "rediss",
            (Protocol::Memcached, _) => "tcp",
        };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

/// A configured remote backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    /// `S3`, `Redis`, `memcached`, `WebDAV`, `GCS`, `GHA`, `Azure`, `OSS`, `COS`.
    pub kind: &'static str,
    /// Where it was configured: a variable's name, or `config file PATH`.
    pub origin: String,
    /// The endpoints to probe; empty when the shim cannot check this backend itself.
    pub endpoints: Vec<Endpoint>,
}

impl Backend {
    /// `S3 at http://127.0.0.1:9000 (SCCACHE_ENDPOINT)`: no user information, ever.
    pub fn describe(&self) -> String {
        if self.endpoints.is_empty() {
            return format!("{} ({})", self.kind, self.origin);
        }
        let at: Vec<String> = self.endpoints.iter().map(Endpoint::to_string).collect();
        format!("{} at {} ({})", self.kind, at.join(", "), self.origin)
    }
}

/// What one probe of an endpoint found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// It replied (or, over TLS, closed the connection after our plain-text request).
    Answers,
    /// Connection refused: nothing listens there.
    Refused,
    /// DNS says there is no such host.
    NoSuchHost,
    /// It accepted the connection, then closed it without a word.
    Closed,
    /// Nothing came back before the deadline (a dropped SYN, a black hole, a slow DNS).
    Silent,
    /// Not probed (behind a proxy) or another error: nothing is known.
    Unknown(String),
    /// It answered that it is rate-limiting us (HTTP 429): up, but throttled.
    Throttled,
    /// It answered with an error that fails sccache's start (HTTP 400, 5xx, a proxy's 502).
    Fails(String),
}

impl Answer {
    /// Definitely down: safe to fail a server start on.
    pub fn is_down(&self) -> bool {
        matches!(
            self,
            Answer::Refused | Answer::NoSuchHost | Answer::Fails(_)
        )
    }

    /// Not serving requests, as far as the probe could tell.
    pub fn is_failing(&self) -> bool {
        matches!(
            self,
            Answer::Refused
                | Answer::NoSuchHost
                | Answer::Closed
                | Answer::Silent
                | Answer::Fails(_)
        )
    }

    pub fn words(&self) -> String {
        match self {
            Answer::Answers => "answers".into(),
            Answer::Refused => "refuses connections".into(),
            Answer::NoSuchHost => "does not exist (DNS)".into(),
            Answer::Closed => "closes connections without a reply".into(),
            Answer::Silent => "does not answer in time".into(),
            Answer::Unknown(why) => format!("not checked ({why})"),
            Answer::Throttled => "answers, but throttles requests (HTTP 429)".into(),
            Answer::Fails(why) => format!("answers with an error ({why})"),
        }
    }
}

/// The remote backends sccache would use with this environment; empty for the local disk cache.
pub fn detect() -> Vec<Backend> {
    let file = config_file_path();
    let from_file = file
        .as_deref()
        .and_then(read_config_file)
        .map(|(path, table)| caches_from_file(&table, &format!("config file {}", path.display())))
        .unwrap_or_default();
    let mut caches = from_file;
    merge(&mut caches, caches_from_env());
    let chain = env::var("SCCACHE_MULTILEVEL_CHAIN")
        .ok()
        .or_else(|| caches.chain.clone());
    let mut picked = Vec::new();
    match chain {
        Some(chain) => {
            for level in chain.split(',').map(str::trim) {
                if let Some(b) = caches.get(level) {
                    picked.push(b.clone());
                }
            }
        }
        None => {
            let order = [
                "s3",
                "redis",
                "memcached",
                "gcs",
                "gha",
                "azure",
                "webdav",
                "oss",
                "cos",
            ];
            if let Some(b) = order.iter().find_map(|k| caches.get(k)) {
                picked.push(b.clone());
            }
        }
    }
    picked
}

/// Probes every endpoint of `backends` at once, all within `timeout`. The answers come in the
/// order of `backends`, then of their endpoints.
pub fn probe_all(backends: &[Backend], timeout: Duration) -> Vec<Vec<Answer>> {
    let deadline = Instant::now() + timeout;
    let (tx, rx) = mpsc::channel();
    let mut answers: Vec<Vec<Answer>> = backends
        .iter()
        .map(|b| vec![Answer::Silent; b.endpoints.len()])
        .collect();
    let mut pending = 0;
    for (i, b) in backends.iter().enumerate() {
        for (j, ep) in b.endpoints.iter().enumerate() {
            let ep = ep.clone();
            let tx = tx.clone();
            // A probe thread that outlives the deadline (a DNS lookup that hangs) is abandoned;
            // its own socket time-outs end it soon after.
            let spawned = std::thread::Builder::new()
                .name("probe".into())
                .spawn(move || {
                    let _ = tx.send((i, j, probe(&ep, deadline)));
                });
            match spawned {
                Ok(_) => pending += 1,
                Err(e) => answers[i][j] = Answer::Unknown(format!("no thread: {e}")),
            }
        }
    }
    drop(tx);
    while pending > 0 {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((i, j, answer)) => {
                answers[i][j] = answer;
                pending -= 1;
            }
            Err(_) => break,
        }
    }
    answers
}

/// Before a server start: a reason naming the backend when one is definitely down (every
/// endpoint of it refuses or does not exist). Time-outs prove nothing and are left to the bounded
/// start.
///
/// In a multilevel chain (`disk,redis`) one level down is enough: sccache 0.16 checks every level
/// when its server starts, and a level that fails the check ends the start ("storage check
/// failed", measured with Redis's port closed, after about 30 s of its pool's retries) instead of
/// falling through to the other levels. Failing open at once saves the build those seconds.
pub fn precheck() -> Option<String> {
    let backends = detect();
    if let Some(problem) = backends
        .iter()
        .find(|b| b.kind == "GHA")
        .and_then(|_| gha::config_problem())
    {
        return Some(format!("backend-misconfigured: GHA: {problem}"));
    }
    if backends.iter().all(|b| b.endpoints.is_empty()) {
        return None;
    }
    let started = Instant::now();
    let answers = probe_all(&backends, PRECHECK_TIMEOUT);
    log::debug!(
        "backend pre-check in {} ms: {:?}",
        started.elapsed().as_millis(),
        answers
    );
    backends.iter().zip(&answers).find_map(|(b, a)| {
        let silence_is_down = cloud::silence_is_down(b.kind, &b.endpoints);
        let down = |x: &Answer| x.is_down() || (silence_is_down && *x == Answer::Silent);
        (!a.is_empty() && a.iter().all(down))
            .then(|| format!("backend-unreachable: {} {}", b.describe(), a[0].words()))
    })
}

/// Does the remote backend answer now? `None` when sccache uses its local disk cache alone;
/// else `Some(true)` only when every endpoint that was probed answered (within the pre-check's
/// time), so a backend the shim cannot probe gives `Some(false)`.
pub fn remote_answers() -> Option<bool> {
    let backends = detect();
    if backends.is_empty() {
        return None;
    }
    let answers = probe_all(&backends, PRECHECK_TIMEOUT);
    let mut all = answers.iter().flatten().peekable();
    Some(all.peek().is_some() && all.all(|a| *a == Answer::Answers))
}

/// How long the pre-check before a server start may take, all endpoints together.
pub const PRECHECK_TIMEOUT: Duration = Duration::from_millis(1500);

/// One bounded probe: resolve, connect, send one request, wait for any reply.
pub fn probe(ep: &Endpoint, deadline: Instant) -> Answer {
    if ep.proxied {
        return Answer::Unknown("reached through a proxy".into());
    }
    let addrs = match resolve(&ep.host, ep.port, deadline) {
        Ok(addrs) => addrs,
        Err(answer) => return answer,
    };
    connect_any(&addrs, ep, deadline)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_tell_refused_from_silent_from_answering() {
        use std::net::TcpListener;
        let ep = |port| Endpoint {
            host: "127.0.0.1".into(),
            port,
            protocol: Protocol::Redis,
            tls: false,
            proxied: false,
        };
        let closed = TcpListener::bind("127.0.0.1:0").unwrap();
        let closed_port = closed.local_addr().unwrap().port();
        drop(closed);
        let soon = || Instant::now() + Duration::from_millis(500);
        assert_eq!(probe(&ep(closed_port), soon()), Answer::Refused);
        // Accepts (the backlog does) and never answers.
        let silent = TcpListener::bind("127.0.0.1:0").unwrap();
        let silent_port = silent.local_addr().unwrap().port();
        assert_eq!(probe(&ep(silent_port), soon()), Answer::Silent);
        let answering = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = answering.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut s, _) = answering.accept().unwrap();
            let mut buf = [0u8; 6];
            s.read_exact(&mut buf).unwrap();
            s.write_all(b"+PONG\r\n").unwrap();
        });
        assert_eq!(probe(&ep(port), soon()), Answer::Answers);
        server.join().unwrap();
    }

    #[test]
    fn endpoints_are_probed_at_once_within_one_deadline() {
        use std::net::TcpListener;
        // Three endpoints that accept and never answer: one by one they would take three
        // deadlines.
        let silent: Vec<TcpListener> = (0..3)
            .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        let backend = Backend {
            kind: "Redis",
            origin: "test".into(),
            endpoints: silent
                .iter()
                .map(|l| Endpoint {
                    host: "127.0.0.1".into(),
                    port: l.local_addr().unwrap().port(),
                    protocol: Protocol::Redis,
                    tls: false,
                    proxied: false,
                })
                .collect(),
        };
        let started = Instant::now();
        let answers = probe_all(&[backend], Duration::from_millis(600));
        assert!(started.elapsed() < Duration::from_millis(1500));
        assert_eq!(answers[0], vec![Answer::Silent; 3]);
        assert!(!answers[0].iter().any(Answer::is_down));
    }
}
