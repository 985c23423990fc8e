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
pub mod gha;

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

/// Tries each address in turn, all within the one `deadline`, and speaks to the first that
/// accepts. A host with several addresses (IPv6 and IPv4, or a round-robin name) is down only
/// when every one of them refuses: one dead address beside a live one is a healthy backend.
fn connect_any(addrs: &[SocketAddr], ep: &Endpoint, deadline: Instant) -> Answer {
    let mut answers = Vec::new();
    for (n, addr) in addrs.iter().enumerate() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            answers.push(Answer::Silent);
            break;
        }
        match TcpStream::connect_timeout(addr, share(left, addrs.len() - n)) {
            Ok(stream) => return converse(stream, ep, deadline),
            Err(e) => answers.push(connect_error_answer(&e)),
        }
    }
    combine(answers)
}

/// The time one of `untried` addresses may take to connect, of `left`: a black-holed address must
/// not use up the time of those after it, so each gets an equal share.
fn share(left: Duration, untried: usize) -> Duration {
    let untried = u32::try_from(untried.max(1)).unwrap_or(u32::MAX);
    (left / untried).max(Duration::from_millis(1))
}

/// What a failed connection to one address says.
fn connect_error_answer(e: &std::io::Error) -> Answer {
    match e.kind() {
        ErrorKind::ConnectionRefused => Answer::Refused,
        ErrorKind::TimedOut | ErrorKind::WouldBlock => Answer::Silent,
        _ => Answer::Unknown(e.to_string()),
    }
}

/// The answer for a host whose addresses all failed: refused only when every one refused (or
/// there were none to try); otherwise the least definite of them, since an address that did not
/// answer in time or failed otherwise may be the one that works.
fn combine(answers: Vec<Answer>) -> Answer {
    if answers.iter().all(|a| *a == Answer::Refused) {
        return Answer::Refused;
    }
    if let Some(unknown) = answers.iter().find(|a| matches!(a, Answer::Unknown(_))) {
        return unknown.clone();
    }
    Answer::Silent
}

fn resolve(host: &str, port: u16, deadline: Instant) -> Result<Vec<SocketAddr>, Answer> {
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(vec![SocketAddr::from(([127, 0, 0, 1], port))]);
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    #[cfg(all(target_os = "linux", target_env = "gnu", target_feature = "crt-static"))]
    let ips = resolve_with_getent(host, deadline)?;
    #[cfg(not(all(target_os = "linux", target_env = "gnu", target_feature = "crt-static")))]
    let ips = {
        let _ = deadline;
        resolve_in_process(host, port)?
    };
    if ips.is_empty() {
        return Err(Answer::NoSuchHost);
    }
    Ok(ips
        .into_iter()
        .map(|ip| SocketAddr::new(ip, port))
        .collect())
}

/// glibc's `getaddrinfo`, through std. Never called from a static glibc build: there it may load
/// the system's NSS modules (`libnss_resolve`, `libnss_mdns4_minimal`, …) into a process without a
/// dynamic libc, which crashes it.
#[cfg(not(all(target_os = "linux", target_env = "gnu", target_feature = "crt-static")))]
fn resolve_in_process(host: &str, port: u16) -> Result<Vec<IpAddr>, Answer> {
    match (host, port).to_socket_addrs() {
        Ok(addrs) => Ok(addrs.map(|a| a.ip()).collect()),
        Err(e) => Err(lookup_error_answer(&e.to_string())),
    }
}

/// What a failed `getaddrinfo` proves, from its message (std gives no code). Only "no such name"
/// (`EAI_NONAME`, `EAI_NODATA`, in glibc's, musl's, BSD's and Windows' wording) is definite;
/// `EAI_AGAIN` (a resolver that timed out or answered SERVFAIL), `EAI_FAIL` and the rest say
/// nothing about the backend, and one resolver hiccup must not turn caching off for a cooldown.
#[cfg_attr(
    all(target_os = "linux", target_env = "gnu", target_feature = "crt-static"),
    allow(dead_code)
)]
fn lookup_error_answer(text: &str) -> Answer {
    let definite = [
        "Name or service not known",
        "nodename nor servname provided",
        "No address associated with hostname",
        "No such host is known",
        "Name does not resolve",
    ];
    if definite.iter().any(|d| text.contains(d)) {
        Answer::NoSuchHost
    } else {
        Answer::Unknown(text.to_owned())
    }
}

/// A static glibc build asks `getent ahosts`, which runs the system's own NSS configuration in a
/// process of its own, within the probe's deadline. getent exits 2 whenever `getaddrinfo` fails,
/// for "no such name" and for a resolver that timed out or answered SERVFAIL alike, so its exit
/// code alone cannot prove a name absent: that takes the name server's own NXDOMAIN
/// ([`dns_says_no_such_name`]); every other failure is "unknown".
#[cfg_attr(
    not(all(target_os = "linux", target_env = "gnu", target_feature = "crt-static")),
    allow(dead_code)
)]
fn resolve_with_getent(host: &str, deadline: Instant) -> Result<Vec<IpAddr>, Answer> {
    let mut cmd = std::process::Command::new("getent");
    cmd.args(["ahosts", "--", host])
        .stdin(std::process::Stdio::null());
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(Answer::Silent);
    }
    let out = crate::child::run_bounded(cmd, left)
        .map_err(|e| Answer::Unknown(format!("getent: {e}")))?;
    match out.code {
        Some(0) => Ok(getent_addresses(&out.stdout)),
        code => Err(getent_failure(code, &out.stderr, || {
            dns_says_no_such_name(host, deadline)
        })),
    }
}

/// What a failed `getent ahosts` proves: "no such host" only when its exit code 2 is confirmed
/// by the DNS server itself (`no_such_name`), else nothing (see [`resolve_with_getent`]).
fn getent_failure(code: Option<i32>, stderr: &[u8], no_such_name: impl FnOnce() -> bool) -> Answer {
    match code {
        Some(2) if no_such_name() => Answer::NoSuchHost,
        Some(2) => Answer::Unknown(
            "getent ahosts found no address (no such name, or a DNS failure)".into(),
        ),
        _ => Answer::Unknown(format!(
            "getent ahosts failed: {}",
            String::from_utf8_lossy(stderr).trim()
        )),
    }
}

/// The second signal after getent's exit 2: the first name server of `/etc/resolv.conf`, asked
/// directly for `host`'s address, answers NXDOMAIN. A time-out, SERVFAIL, any other answer or no
/// name server proves nothing. Only names with a dot are asked: a single label goes through the
/// resolver's search list, which this one query does not follow.
#[cfg_attr(
    not(all(target_os = "linux", target_env = "gnu", target_feature = "crt-static")),
    allow(dead_code)
)]
fn dns_says_no_such_name(host: &str, deadline: Instant) -> bool {
    let conf = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    server_says_no_such_name(first_nameserver(&conf), host, deadline)
}

fn server_says_no_such_name(server: Option<SocketAddr>, host: &str, deadline: Instant) -> bool {
    if !host.trim_end_matches('.').contains('.') {
        return false;
    }
    let Some(server) = server else {
        return false;
    };
    dns_rcode(server, host, deadline) == Some(DNS_NXDOMAIN)
}

const DNS_NXDOMAIN: u8 = 3;

/// The first `nameserver` line's address, on port 53.
fn first_nameserver(conf: &str) -> Option<SocketAddr> {
    conf.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        if words.next() != Some("nameserver") {
            return None;
        }
        // A link-local IPv6 server may carry a zone (`fe80::1%eth0`), which is not parsed here.
        let ip: IpAddr = words.next()?.parse().ok()?;
        Some(SocketAddr::new(ip, 53))
    })
}

/// One query for `host`'s A record, recursion desired, with the id `id`. `None` for a name that
/// is not a valid DNS name.
fn dns_query(id: u16, host: &str) -> Option<Vec<u8>> {
    let mut q = Vec::with_capacity(host.len() + 18);
    q.extend_from_slice(&id.to_be_bytes());
    // Flags: a standard query with RD set; one question, nothing else.
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in host.trim_end_matches('.').split('.') {
        if label.is_empty() || label.len() > 63 {
            return None;
        }
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    // QTYPE A, QCLASS IN.
    q.extend_from_slice(&[0, 1, 0, 1]);
    Some(q)
}

/// The response code of `reply` if it is a response to the query `id`.
fn dns_reply_rcode(reply: &[u8], id: u16) -> Option<u8> {
    if reply.len() < 12 || reply[0..2] != id.to_be_bytes() || reply[2] & 0x80 == 0 {
        return None;
    }
    Some(reply[3] & 0x0f)
}

/// Asks `server` for `host` over UDP and returns the response code, within `deadline`.
fn dns_rcode(server: SocketAddr, host: &str, deadline: Instant) -> Option<u8> {
    let id = (std::process::id() as u16)
        ^ (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos()) as u16);
    let query = dns_query(id, host)?;
    let local: SocketAddr = if server.is_ipv6() {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    };
    let socket = std::net::UdpSocket::bind(local).ok()?;
    socket.connect(server).ok()?;
    socket.send(&query).ok()?;
    let mut reply = [0u8; 512];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        socket.set_read_timeout(Some(left)).ok()?;
        let n = socket.recv(&mut reply).ok()?;
        // A stray datagram (an earlier query's late answer) is skipped.
        if let Some(rcode) = dns_reply_rcode(&reply[..n], id) {
            return Some(rcode);
        }
    }
}

/// The addresses of `getent ahosts` output (`<address> STREAM <name>` lines), first seen first.
fn getent_addresses(stdout: &[u8]) -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = Vec::new();
    for line in String::from_utf8_lossy(stdout).lines() {
        let Some(ip) = line.split_whitespace().next().and_then(|a| a.parse().ok()) else {
            continue;
        };
        if !ips.contains(&ip) {
            ips.push(ip);
        }
    }
    ips
}

fn converse(mut stream: TcpStream, ep: &Endpoint, deadline: Instant) -> Answer {
    let request = match ep.protocol {
        Protocol::Http => format!(
            "HEAD / HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            ep.host
        ),
        Protocol::Redis => "PING\r\n".into(),
        Protocol::Memcached => "version\r\n".into(),
        Protocol::GhaService => return gha::converse(stream, ep, deadline),
        Protocol::ProxyConnect => return cloud::converse_proxy(stream, deadline),
    };
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Answer::Silent;
    }
    let _ = stream.set_write_timeout(Some(left));
    let _ = stream.set_read_timeout(Some(left));
    if let Err(e) = stream.write_all(request.as_bytes()) {
        return io_answer(&e, ep);
    }
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(1..) => Answer::Answers,
        // A TLS endpoint may close on a plain-text request: it is alive, which is all we ask.
        Ok(0) if ep.tls => Answer::Answers,
        Ok(_) => Answer::Closed,
        Err(e) => io_answer(&e, ep),
    }
}

fn io_answer(e: &std::io::Error, ep: &Endpoint) -> Answer {
    match e.kind() {
        ErrorKind::WouldBlock | ErrorKind::TimedOut => Answer::Silent,
        ErrorKind::ConnectionReset | ErrorKind::BrokenPipe if ep.tls => Answer::Answers,
        ErrorKind::ConnectionReset | ErrorKind::BrokenPipe | ErrorKind::ConnectionAborted => {
            Answer::Closed
        }
        _ => Answer::Unknown(e.to_string()),
    }
}

// ---------------------------------------------------------------------------------------------
// Reading the configuration as sccache 0.16 does.

/// Backends by sccache's name for them (`s3`, `redis`, …), plus a multilevel chain.
#[derive(Debug, Default)]
struct Caches {
    found: Vec<(&'static str, Backend)>,
    chain: Option<String>,
}

impl Caches {
    fn get(&self, name: &str) -> Option<&Backend> {
        self.found.iter().find(|(n, _)| *n == name).map(|(_, b)| b)
    }

    fn set(&mut self, name: &'static str, backend: Backend) {
        self.found.retain(|(n, _)| *n != name);
        self.found.push((name, backend));
    }
}

/// The environment overrides the file, backend by backend (sccache's `CacheConfigs::merge`).
fn merge(into: &mut Caches, from: Caches) {
    for (name, backend) in from.found {
        into.set(name, backend);
    }
    if from.chain.is_some() {
        into.chain = from.chain;
    }
}

/// `SCCACHE_CONF`, else sccache's default: `directories`' config dir for ("", "Mozilla",
/// "sccache"), then on macOS its old preference dir.
pub fn config_file_path() -> Option<PathBuf> {
    if let Some(path) = env::var_os("SCCACHE_CONF") {
        return Some(PathBuf::from(path));
    }
    let candidates: Vec<PathBuf> = if cfg!(target_os = "macos") {
        [crate::places::config_dir(), crate::places::preference_dir()]
            .into_iter()
            .flatten()
            .map(|d| d.join("Mozilla.sccache").join("config"))
            .collect()
    } else if cfg!(windows) {
        crate::places::config_dir()
            .map(|d| {
                d.join("Mozilla")
                    .join("sccache")
                    .join("config")
                    .join("config")
            })
            .into_iter()
            .collect()
    } else {
        crate::places::config_dir()
            .map(|d| d.join("sccache").join("config"))
            .into_iter()
            .collect()
    };
    candidates
        .iter()
        .find(|p| p.exists())
        .or(candidates.first())
        .cloned()
}

/// The file as a JSON value (sccache reads `.json` as JSON, anything else as TOML). A missing
/// file is no backend; an unreadable one is logged and ignored (sccache then fails its start).
fn read_config_file(path: &Path) -> Option<(PathBuf, serde_json::Value)> {
    // Only a regular file is read: a FIFO would block here (under the start lock, forever), and
    // a pipe given as `<(…)` would be drained before sccache reads it. sccache is left to it.
    if std::fs::metadata(path).is_ok_and(|meta| !meta.is_file()) {
        log::warn!(
            "sccache config {} is not a regular file; its backend is not pre-checked",
            path.display()
        );
        return None;
    }
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            if e.kind() != ErrorKind::NotFound {
                log::warn!("sccache config {} unreadable: {e}", path.display());
            }
            return None;
        }
    };
    let value = if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(&text).map_err(|e| e.to_string())
    } else {
        toml::de::DeTable::parse(&text)
            .map(|t| toml_to_json(&toml::de::DeValue::Table(t.into_inner())))
            .map_err(|e| e.message().to_owned())
    };
    match value {
        Ok(v) => Some((path.to_owned(), v)),
        Err(e) => {
            log::warn!("sccache config {} is not valid: {e}", path.display());
            None
        }
    }
}

/// The parts of a TOML value this module reads (strings, booleans, arrays, tables), as JSON.
fn toml_to_json(value: &toml::de::DeValue) -> serde_json::Value {
    use toml::de::DeValue;
    match value {
        DeValue::String(s) => serde_json::Value::String(s.to_string()),
        DeValue::Boolean(b) => serde_json::Value::Bool(*b),
        DeValue::Array(items) => items.iter().map(|i| toml_to_json(i.get_ref())).collect(),
        DeValue::Table(table) => serde_json::Value::Object(
            table
                .iter()
                .map(|(k, v)| (k.get_ref().to_string(), toml_to_json(v.get_ref())))
                .collect(),
        ),
        _ => serde_json::Value::Null,
    }
}

fn caches_from_file(root: &serde_json::Value, origin: &str) -> Caches {
    let mut caches = Caches::default();
    let Some(cache) = root.get("cache") else {
        return caches;
    };
    let s = |section: &str, key: &str| -> Option<String> {
        cache
            .get(section)?
            .get(key)?
            .as_str()
            .map(str::to_owned)
            .filter(|v| !v.is_empty())
    };
    let origin = origin.to_owned();
    let backend = |kind, endpoints| Backend {
        kind,
        origin: origin.clone(),
        endpoints,
    };
    if let Some(bucket) = s("s3", "bucket") {
        let use_ssl = cache.get("s3").and_then(|t| t.get("use_ssl")?.as_bool());
        let eps = s3_endpoints(&bucket, s("s3", "endpoint"), s("s3", "region"), use_ssl);
        caches.set("s3", backend("S3", eps));
    }
    if cache.get("redis").is_some() {
        let url = s("redis", "endpoint")
            .or_else(|| s("redis", "cluster_endpoints"))
            .or_else(|| s("redis", "url"));
        caches.set("redis", backend("Redis", redis_endpoints(url.as_deref())));
    }
    if let Some(url) = s("memcached", "url").or_else(|| s("memcached", "endpoint")) {
        caches.set("memcached", backend("memcached", memcached_endpoints(&url)));
    }
    if let Some(url) = s("webdav", "endpoint") {
        caches.set("webdav", backend("WebDAV", http_endpoints(&url, None)));
    }
    if cache.get("gcs").is_some() {
        caches.set("gcs", backend("GCS", cloud::gcs_endpoints()));
    }
    if cache.get("gha").is_some() {
        caches.set("gha", backend("GHA", gha::endpoints()));
    }
    if cache.get("azure").is_some() {
        let eps = s("azure", "connection_string")
            .map(|c| cloud::azure_endpoints(&c))
            .unwrap_or_default();
        caches.set("azure", backend("Azure", eps));
    }
    for (name, kind) in [("oss", "OSS"), ("cos", "COS")] {
        if cache.get(name).is_some() {
            caches.set(name, backend(kind, Vec::new()));
        }
    }
    caches.chain = cache
        .get("multilevel")
        .and_then(|m| m.get("chain"))
        .and_then(|c| match c {
            serde_json::Value::Array(items) => Some(
                items
                    .iter()
                    .filter_map(|i| i.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            serde_json::Value::String(s) => Some(s.clone()),
            _ => None,
        });
    caches
}

fn var(name: &str) -> Option<String> {
    env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn bool_var(name: &str) -> Option<bool> {
    match var(name)?.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "on" | "yes" => Some(true),
        "0" | "false" | "off" | "no" => Some(false),
        _ => None,
    }
}

fn caches_from_env() -> Caches {
    let mut caches = Caches::default();
    let backend = |kind, origin: &str, endpoints| Backend {
        kind,
        origin: origin.to_owned(),
        endpoints,
    };
    if let Some(bucket) = var("SCCACHE_BUCKET") {
        let endpoint = var("SCCACHE_ENDPOINT");
        let origin = if endpoint.is_some() {
            "SCCACHE_BUCKET, SCCACHE_ENDPOINT"
        } else {
            "SCCACHE_BUCKET"
        };
        let eps = s3_endpoints(
            &bucket,
            endpoint,
            var("SCCACHE_REGION"),
            bool_var("SCCACHE_S3_USE_SSL"),
        );
        caches.set("s3", backend("S3", origin, eps));
    }
    let redis = [
        "SCCACHE_REDIS_ENDPOINT",
        "SCCACHE_REDIS_CLUSTER_ENDPOINTS",
        "SCCACHE_REDIS",
    ]
    .into_iter()
    .find_map(|name| Some((name, var(name)?)));
    if let Some((name, url)) = redis {
        caches.set("redis", backend("Redis", name, redis_endpoints(Some(&url))));
    }
    let memcached = ["SCCACHE_MEMCACHED", "SCCACHE_MEMCACHED_ENDPOINT"]
        .into_iter()
        .find_map(|name| Some((name, var(name)?)));
    if let Some((name, url)) = memcached {
        caches.set(
            "memcached",
            backend("memcached", name, memcached_endpoints(&url)),
        );
    }
    if let Some(url) = var("SCCACHE_WEBDAV_ENDPOINT") {
        caches.set(
            "webdav",
            backend(
                "WebDAV",
                "SCCACHE_WEBDAV_ENDPOINT",
                http_endpoints(&url, None),
            ),
        );
    }
    if let Some(name) = ["SCCACHE_GCS_BUCKET"]
        .into_iter()
        .find(|n| var(n).is_some())
    {
        caches.set("gcs", backend("GCS", name, cloud::gcs_endpoints()));
    }
    if gha::enabled_by_env() {
        caches.set("gha", backend("GHA", &gha::origin(), gha::endpoints()));
    }
    if var("SCCACHE_AZURE_BLOB_CONTAINER").is_some() {
        caches.set(
            "azure",
            backend(
                "Azure",
                "SCCACHE_AZURE_BLOB_CONTAINER",
                cloud::azure_env_endpoints(),
            ),
        );
    }
    if var("SCCACHE_OSS_BUCKET").is_some() {
        caches.set("oss", backend("OSS", "SCCACHE_OSS_BUCKET", Vec::new()));
    }
    if var("SCCACHE_COS_BUCKET").is_some() {
        caches.set("cos", backend("COS", "SCCACHE_COS_BUCKET", Vec::new()));
    }
    caches
}

/// sccache's S3 endpoint: the given one (scheme from `use_ssl`, else from the URL, else plain
/// HTTP, as its `endpoint_resolver`), or AWS's regional endpoint over HTTPS.
fn s3_endpoints(
    _bucket: &str,
    endpoint: Option<String>,
    region: Option<String>,
    use_ssl: Option<bool>,
) -> Vec<Endpoint> {
    match endpoint {
        Some(url) => http_endpoints(&url, use_ssl),
        None => {
            let region = region
                .or_else(|| var("AWS_REGION"))
                .or_else(|| var("AWS_DEFAULT_REGION"));
            let host = match region {
                Some(r) => format!("s3.{r}.amazonaws.com"),
                None => "s3.amazonaws.com".to_owned(),
            };
            http_endpoints(&format!("https://{host}"), None)
        }
    }
}

fn http_endpoints(url: &str, use_ssl: Option<bool>) -> Vec<Endpoint> {
    let Some(parts) = split_url(url) else {
        return Vec::new();
    };
    let tls = match (use_ssl, parts.scheme.as_deref()) {
        (Some(tls), _) => tls,
        (None, Some(s)) => s.eq_ignore_ascii_case("https"),
        (None, None) => false,
    };
    let port = parts.port.unwrap_or(if tls { 443 } else { 80 });
    let proxied = behind_proxy(&parts.host, tls);
    vec![Endpoint {
        host: parts.host,
        port,
        protocol: Protocol::Http,
        tls,
        proxied,
    }]
}

/// `redis://[user:pw@]host[:port][/db]`, `rediss://…`, `tcp://…`, or a comma-separated list of
/// those for a cluster. A Unix socket (`redis+unix://`, `unix://`) is not probed.
fn redis_endpoints(urls: Option<&str>) -> Vec<Endpoint> {
    let Some(urls) = urls else {
        return Vec::new();
    };
    let mut eps = Vec::new();
    for url in urls.split(',').map(str::trim).filter(|u| !u.is_empty()) {
        let Some(parts) = split_url(url) else {
            return Vec::new();
        };
        let tls = match parts.scheme.as_deref() {
            None | Some("redis" | "tcp") => false,
            Some("rediss") => true,
            Some(_) => return Vec::new(),
        };
        eps.push(Endpoint {
            host: parts.host,
            port: parts.port.unwrap_or(6379),
            protocol: Protocol::Redis,
            tls,
            proxied: false,
        });
    }
    eps
}

/// `tcp://host:port` or `host:port`.
fn memcached_endpoints(url: &str) -> Vec<Endpoint> {
    let Some(parts) = split_url(url) else {
        return Vec::new();
    };
    if !matches!(parts.scheme.as_deref(), None | Some("tcp" | "memcached")) {
        return Vec::new();
    }
    vec![Endpoint {
        host: parts.host,
        port: parts.port.unwrap_or(11211),
        protocol: Protocol::Memcached,
        tls: false,
        proxied: false,
    }]
}

struct UrlParts {
    scheme: Option<String>,
    host: String,
    port: Option<u16>,
}

/// `[scheme://][userinfo@]host[:port][/path][?query]`, with `[v6]` hosts. The user information
/// is dropped here, so no password goes further.
fn split_url(url: &str) -> Option<UrlParts> {
    let url = url.trim();
    let (scheme, rest) = match url.split_once("://") {
        Some((s, rest)) => (Some(s.to_ascii_lowercase()), rest),
        None => (None, url),
    };
    let authority = rest.split(['/', '?', '#']).next()?;
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.parse().ok()?),
            None if after.is_empty() => None,
            None => return None,
        };
        (host.to_owned(), port)
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p.parse().ok()?)),
            None => (hostport.to_owned(), None),
        }
    };
    if host.is_empty() || host.contains(':') && !hostport.starts_with('[') {
        return None;
    }
    Some(UrlParts { scheme, host, port })
}

/// Whether sccache's HTTP client would go through a proxy to reach `host` (reqwest honours
/// `HTTPS_PROXY`/`HTTP_PROXY`/`ALL_PROXY`, minus `NO_PROXY`).
fn behind_proxy(host: &str, tls: bool) -> bool {
    let names: &[&str] = if tls {
        &["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"]
    } else {
        &["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"]
    };
    if !names.iter().any(|n| var(n).is_some()) {
        return false;
    }
    let no_proxy = var("NO_PROXY")
        .or_else(|| var("no_proxy"))
        .unwrap_or_default();
    let host = host.to_ascii_lowercase();
    !no_proxy.split(',').map(str::trim).any(|rule| {
        let rule = rule.trim_start_matches('.').to_ascii_lowercase();
        rule == "*" || (!rule.is_empty() && (host == rule || host.ends_with(&format!(".{rule}"))))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn getent_output_gives_each_address_once_in_order() {
        let out = b"::1             STREAM localhost\n::1             DGRAM  \n\
                    127.0.0.1       STREAM \n127.0.0.1       DGRAM  \n\
                    not-an-address  STREAM x\n\n";
        let ips = getent_addresses(out);
        assert_eq!(
            ips,
            vec![
                "::1".parse::<IpAddr>().unwrap(),
                "127.0.0.1".parse::<IpAddr>().unwrap()
            ]
        );
    }

    /// The path a static glibc build takes, run here whatever the build: the system's own
    /// `getent`, which every glibc system has.
    #[test]
    fn getent_resolves_and_a_name_is_absent_only_when_dns_says_so() {
        let deadline = Instant::now() + Duration::from_secs(10);
        let ips = resolve_with_getent("localhost", deadline).expect("localhost resolves");
        assert!(ips.iter().all(|ip| ip.is_loopback()), "{ips:?}");
        assert!(!ips.is_empty());
        // `.invalid` never resolves (RFC 6761). getent's exit code is the same for a resolver
        // that failed, so the answer is "no such host" only when the name server, asked
        // directly, says NXDOMAIN; without a name server that answers it is "unknown".
        match resolve_with_getent("no-such-host.invalid", deadline) {
            Err(Answer::NoSuchHost) | Err(Answer::Unknown(_)) => {}
            other => panic!("no-such-host.invalid: {other:?}"),
        }
        let unasked = || -> bool { panic!("only exit 2 asks DNS") };
        assert_eq!(
            getent_failure(Some(2), b"x", || false),
            Answer::Unknown(
                "getent ahosts found no address (no such name, or a DNS failure)".into()
            )
        );
        assert!(!getent_failure(Some(2), b"", || false).is_down());
        assert!(!getent_failure(Some(2), b"", || false).is_failing());
        assert_eq!(getent_failure(Some(2), b"", || true), Answer::NoSuchHost);
        assert_eq!(
            getent_failure(Some(1), b"getent: oops\n", unasked),
            Answer::Unknown("getent ahosts failed: getent: oops".into())
        );
        assert!(matches!(
            getent_failure(None, b"", unasked),
            Answer::Unknown(_)
        ));
    }

    /// A name server on a local port that answers every query with `rcode`, or not at all.
    fn fake_dns(rcode: Option<u8>) -> SocketAddr {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = socket.local_addr().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            let Ok((n, from)) = socket.recv_from(&mut buf) else {
                return;
            };
            let Some(rcode) = rcode else {
                std::thread::sleep(Duration::from_secs(5));
                return;
            };
            // First a stray reply with another id, then the answer.
            let mut stray = buf[..n].to_vec();
            stray[0] ^= 0xff;
            stray[2] |= 0x80;
            let _ = socket.send_to(&stray, from);
            let mut reply = buf[..n].to_vec();
            reply[2] |= 0x80;
            reply[3] = 0x80 | rcode;
            let _ = socket.send_to(&reply, from);
        });
        addr
    }

    #[test]
    fn only_the_name_servers_nxdomain_confirms_no_such_name() {
        let soon = || Instant::now() + Duration::from_secs(2);
        assert_eq!(
            dns_rcode(fake_dns(Some(3)), "cache.example", soon()),
            Some(3)
        );
        assert_eq!(
            dns_rcode(fake_dns(Some(2)), "cache.example", soon()),
            Some(2)
        );
        let began = Instant::now();
        let quick = Instant::now() + Duration::from_millis(300);
        assert_eq!(dns_rcode(fake_dns(None), "cache.example", quick), None);
        assert!(began.elapsed() < Duration::from_secs(2));
        // Single labels go through the search list: never asked, never "no such host".
        assert!(!dns_says_no_such_name("redis", soon()));
        let says = |rcode, host| server_says_no_such_name(Some(fake_dns(rcode)), host, soon());
        assert!(says(Some(3), "cache.example"));
        assert!(says(Some(3), "cache.example."));
        assert!(!says(Some(2), "cache.example"));
        assert!(!says(Some(0), "cache.example"));
        assert!(!says(Some(3), "redis"));
        assert!(!says(Some(3), "redis."));
        assert!(!server_says_no_such_name(None, "cache.example", soon()));
    }

    #[test]
    fn each_address_gets_a_fair_share_and_its_errors_their_meaning() {
        let ms = Duration::from_millis;
        assert_eq!(share(ms(900), 3), ms(300));
        assert_eq!(share(ms(900), 1), ms(900));
        assert_eq!(share(ms(900), 0), ms(900));
        assert_eq!(share(ms(0), 2), ms(1));
        let e = |kind| std::io::Error::from(kind);
        assert_eq!(
            connect_error_answer(&e(ErrorKind::ConnectionRefused)),
            Answer::Refused
        );
        assert_eq!(
            connect_error_answer(&e(ErrorKind::TimedOut)),
            Answer::Silent
        );
        assert_eq!(
            connect_error_answer(&e(ErrorKind::WouldBlock)),
            Answer::Silent
        );
        let unreachable = std::io::Error::from_raw_os_error(libc::ENETUNREACH);
        assert!(matches!(
            connect_error_answer(&unreachable),
            Answer::Unknown(_)
        ));
    }

    #[test]
    fn dns_messages() {
        let q = dns_query(0x1234, "a.bc.").unwrap();
        assert_eq!(
            q,
            [
                0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 1, b'a', 2, b'b', b'c', 0, 0, 1, 0,
                1
            ]
        );
        assert_eq!(dns_query(1, "a..b"), None);
        assert_eq!(dns_query(1, &"x".repeat(64)), None);
        assert!(dns_query(1, &"x".repeat(63)).is_some());
        let mut reply = q.clone();
        assert_eq!(dns_reply_rcode(&reply, 0x1234), None, "a query is no reply");
        reply[2] |= 0x80;
        reply[3] = 0x83;
        assert_eq!(dns_reply_rcode(&reply, 0x1234), Some(3));
        assert_eq!(dns_reply_rcode(&reply, 0x1235), None);
        assert_eq!(dns_reply_rcode(&reply[..11], 0x1234), None);
        assert_eq!(dns_reply_rcode(&reply[..12], 0x1234), Some(3));
        assert_eq!(
            first_nameserver("# c\nsearch x\nnameserver  10.0.0.2\nnameserver 10.0.0.3\n"),
            Some("10.0.0.2:53".parse().unwrap())
        );
        assert_eq!(
            first_nameserver("nameserver fe80::1%eth0\nnameserver ::1\n"),
            Some("[::1]:53".parse().unwrap())
        );
        assert_eq!(first_nameserver("options ndots:2\n"), None);
    }

    #[test]
    fn only_no_such_name_proves_a_host_absent() {
        let gai =
            |m: &str| lookup_error_answer(&format!("failed to lookup address information: {m}"));
        assert_eq!(gai("Name or service not known"), Answer::NoSuchHost);
        assert_eq!(
            gai("No address associated with hostname"),
            Answer::NoSuchHost
        );
        assert_eq!(gai("Name does not resolve"), Answer::NoSuchHost);
        assert_eq!(
            gai("nodename nor servname provided, or not known"),
            Answer::NoSuchHost
        );
        for hiccup in [
            "Temporary failure in name resolution",
            "Non-recoverable failure in name resolution",
            "Try again",
            "System error",
        ] {
            let answer = gai(hiccup);
            assert!(matches!(answer, Answer::Unknown(_)), "{hiccup}: {answer:?}");
            assert!(!answer.is_down() && !answer.is_failing(), "{hiccup}");
        }
    }

    #[test]
    fn every_resolved_address_is_tried() {
        use std::net::TcpListener;
        let ep = Endpoint {
            host: "cache.example".into(),
            port: 1,
            protocol: Protocol::Redis,
            tls: false,
            proxied: false,
        };
        let closed = |n| -> Vec<SocketAddr> {
            (0..n)
                .map(|_| {
                    let l = TcpListener::bind("127.0.0.1:0").unwrap();
                    l.local_addr().unwrap()
                })
                .collect()
        };
        let answering = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut addrs = closed(3);
        addrs.push(answering.local_addr().unwrap());
        let server = std::thread::spawn(move || {
            let (mut s, _) = answering.accept().unwrap();
            let mut buf = [0u8; 6];
            s.read_exact(&mut buf).unwrap();
            s.write_all(b"+PONG\r\n").unwrap();
        });
        let soon = Instant::now() + Duration::from_secs(2);
        assert_eq!(connect_any(&addrs, &ep, soon), Answer::Answers);
        server.join().unwrap();
        let soon = Instant::now() + Duration::from_secs(2);
        assert_eq!(connect_any(&closed(3), &ep, soon), Answer::Refused);
        // A silent address beside refusing ones: it may be the one that works.
        let silent = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut addrs = closed(2);
        addrs.push(silent.local_addr().unwrap());
        let soon = Instant::now() + Duration::from_millis(500);
        assert_eq!(connect_any(&addrs, &ep, soon), Answer::Silent);
    }

    #[test]
    fn a_host_is_refused_only_when_every_address_refused() {
        use Answer::*;
        assert_eq!(combine(vec![Refused]), Refused);
        assert_eq!(combine(vec![Refused, Refused, Refused]), Refused);
        assert_eq!(combine(vec![Refused, Silent]), Silent);
        assert_eq!(combine(vec![Silent, Refused]), Silent);
        assert_eq!(
            combine(vec![Refused, Unknown("x".into())]),
            Unknown("x".into())
        );
        assert_eq!(
            combine(vec![Silent, Unknown("y".into())]),
            Unknown("y".into())
        );
    }

    #[test]
    fn urls() {
        let hp = |u: &str| split_url(u).map(|p| (p.scheme, p.host, p.port));
        assert_eq!(
            hp("redis://:pw@127.0.0.1:7000/0"),
            Some((Some("redis".into()), "127.0.0.1".into(), Some(7000)))
        );
        assert_eq!(hp("localhost"), Some((None, "localhost".into(), None)));
        assert_eq!(
            hp("http://[::1]:9000/"),
            Some((Some("http".into()), "::1".into(), Some(9000)))
        );
        assert_eq!(hp("http://host:notaport/"), None);
        let eps = redis_endpoints(Some("redis://a:1, rediss://b"));
        assert_eq!(eps.len(), 2);
        assert_eq!(eps[1].to_string(), "rediss://b:6379");
        assert!(redis_endpoints(Some("redis+unix:///tmp/r.sock")).is_empty());
        assert_eq!(
            memcached_endpoints("tcp://127.0.0.1:11211")[0].to_string(),
            "tcp://127.0.0.1:11211"
        );
        assert_eq!(
            http_endpoints("127.0.0.1:9000", Some(true))[0].to_string(),
            "https://127.0.0.1:9000"
        );
        assert_eq!(http_endpoints("https://s3.example.com", None)[0].port, 443);
    }

    #[test]
    fn config_file_sections() {
        let text = "[cache.s3]\nbucket = \"b\"\nendpoint = \"http://127.0.0.1:9\"\n\
                    no_credentials = true\n\n[cache.webdav]\n\
                    endpoint = \"http://u:secret@127.0.0.1:8\"\n\
                    [cache.multilevel]\nchain = [\"webdav\", \"s3\"]\n";
        let table = toml::de::DeTable::parse(text).unwrap();
        let v = toml_to_json(&toml::de::DeValue::Table(table.into_inner()));
        let c = caches_from_file(&v, "config file x");
        let s3 = c.get("s3").unwrap();
        assert_eq!(s3.describe(), "S3 at http://127.0.0.1:9 (config file x)");
        let dav = c.get("webdav").unwrap().describe();
        assert!(!dav.contains("secret"), "{dav}");
        assert_eq!(c.chain.as_deref(), Some("webdav,s3"));
    }

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
