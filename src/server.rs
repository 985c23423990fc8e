//! The sccache server: is it up, starting it within a deadline, and reading its error counters.
//!
//! `sccache --start-server` is the probe: it starts a server against the real storage backend and
//! fails if the backend cannot be used, without involving any compile of the caller's. A server
//! already running answers "Address in use", which counts as success.

use std::env;
use std::fs::OpenOptions;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::child::run_bounded;
use crate::config::DEPTH_VAR;

/// Where the sccache client looks for its server.
#[derive(Debug, PartialEq, Eq)]
pub enum Addr {
    Tcp(u16),
    /// A Unix socket at this path.
    #[cfg(unix)]
    Socket(std::path::PathBuf),
    /// A Linux abstract socket with this name (without the leading NUL).
    #[cfg(any(target_os = "linux", target_os = "android"))]
    Abstract(Vec<u8>),
}

impl std::fmt::Display for Addr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Addr::Tcp(port) => write!(f, "port {port}"),
            #[cfg(unix)]
            Addr::Socket(path) => write!(f, "socket {}", path.display()),
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Addr::Abstract(name) => write!(f, "abstract socket \\x00{}", name.escape_ascii()),
        }
    }
}

/// The server address by sccache 0.16's rules (`get_addr` in its `src/commands.rs`,
/// `SocketAddr::parse_uds` in `src/net.rs`): `SCCACHE_SERVER_UDS` when it is UTF-8 and parses,
/// else `SCCACHE_SERVER_PORT`, else 4226. On Linux a value starting with the four characters
/// `\x00` names an abstract socket, the rest written with `std::ascii::escape_default`'s escapes
/// (`SCCACHE_SERVER_UDS='\x00sccache'`); a bad escape there makes sccache use the port instead.
pub fn address() -> Addr {
    #[cfg(unix)]
    if let Ok(uds) = env::var("SCCACHE_SERVER_UDS") {
        if let Some(addr) = parse_uds(&uds) {
            return addr;
        }
    }
    let port = env::var("SCCACHE_SERVER_PORT")
        .ok()
        .and_then(|p| p.parse::<u16>().ok())
        .unwrap_or(4226);
    Addr::Tcp(port)
}

#[cfg(unix)]
fn parse_uds(value: &str) -> Option<Addr> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if let Some(escaped) = value.strip_prefix("\\x00") {
        return unescape_ascii(escaped.as_bytes()).map(Addr::Abstract);
    }
    Some(Addr::Socket(value.into()))
}

/// The reverse of `std::ascii::escape_default`, as sccache reads it: `\n`, `\r`, `\t`, `\'`,
/// `\"`, `\\` and `\xHH`; any other backslash sequence is an error.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn unescape_ascii(s: &[u8]) -> Option<Vec<u8>> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.iter().copied();
    while let Some(b) = bytes.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        out.push(match bytes.next()? {
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            c @ (b'\'' | b'"' | b'\\') => c,
            b'x' => hex(bytes.next()?)? << 4 | hex(bytes.next()?)?,
            _ => return None,
        });
    }
    Some(out)
}

/// Is an sccache server accepting connections where the client will look for it?
pub fn is_up() -> bool {
    match address() {
        Addr::Tcp(port) => {
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
        }
        #[cfg(unix)]
        Addr::Socket(path) => std::os::unix::net::UnixStream::connect(path).is_ok(),
        #[cfg(any(target_os = "linux", target_os = "android"))]
        Addr::Abstract(name) => {
            use std::os::linux::net::SocketAddrExt;
            use std::os::unix::net::{SocketAddr as UnixAddr, UnixStream};
            UnixAddr::from_abstract_name(name)
                .and_then(|a| UnixStream::connect_addr(&a))
                .is_ok()
        }
    }
}

/// Why starting the server failed, as a short reason plus sccache's own words.
pub struct StartFailure(pub String);

/// Runs `sccache --start-server`, killing it (and anything it started in its process group) at
/// `timeout`. `Ok` when a server is up afterwards.
pub fn start(sccache: &Path, depth: u32, timeout: Duration) -> Result<(), StartFailure> {
    if let Some(problem) = error_log_problem().or_else(redis_unreachable) {
        return Err(StartFailure(problem));
    }
    let started = Instant::now();
    let mut cmd = Command::new(sccache);
    cmd.arg("--start-server")
        .env(DEPTH_VAR, (depth + 1).to_string())
        .stdin(Stdio::null());
    let captured = run_bounded(cmd, timeout).map_err(StartFailure)?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&captured.1),
        String::from_utf8_lossy(&captured.2)
    );
    let ok = captured.0 == Some(0) || text.contains("Address in use");
    log::info!(
        "sccache --start-server: exit {:?} after {} ms",
        captured.0,
        started.elapsed().as_millis()
    );
    if ok {
        return Ok(());
    }
    log::debug!("sccache --start-server said: {}", text.trim_end());
    let first = text
        .lines()
        .find(|l| l.contains("error"))
        .or_else(|| text.lines().next())
        .unwrap_or("no output")
        .trim();
    Err(StartFailure(format!("start-failed: {first}")))
}

/// If `SCCACHE_ERROR_LOG` names a file that cannot be opened, sccache's server dies silently at
/// start and its client waits out the whole start-up timeout; this sees it coming.
fn error_log_problem() -> Option<String> {
    let path = env::var_os("SCCACHE_ERROR_LOG")?;
    match OpenOptions::new().create(true).append(true).open(&path) {
        Ok(_) => None,
        Err(e) => Some(format!(
            "error-log: SCCACHE_ERROR_LOG={} cannot be opened: {e}",
            Path::new(&path).display()
        )),
    }
}

/// sccache's own figures, from `--show-stats --stats-format json`: requests, hits, misses,
/// errors (the sum of its error and time-out counters) and where the server stores its cache
/// (`cache_location`, e.g. `Local disk: "/path"` or `Redis: redis://…`, as sccache words it),
/// plus its raw statistics.
pub fn stats(sccache: &Path, timeout: Duration) -> Option<serde_json::Value> {
    let mut cmd = Command::new(sccache);
    cmd.args(["--show-stats", "--stats-format", "json"])
        .stdin(Stdio::null());
    let (code, stdout, _) = run_bounded(cmd, timeout).ok()?;
    if code != Some(0) {
        return None;
    }
    let json: serde_json::Value = serde_json::from_slice(&stdout).ok()?;
    let stats = json.get("stats")?;
    let num = |k: &str| stats.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
    let per_language = |k: &str| -> u64 {
        stats
            .get(k)
            .and_then(|e| e.get("counts"))
            .and_then(|c| c.as_object())
            .map_or(0, |m| m.values().filter_map(|v| v.as_u64()).sum())
    };
    let errors = num("cache_timeouts")
        + num("cache_read_errors")
        + num("cache_write_errors")
        + per_language("cache_errors");
    // Hits and misses per language, as sccache names them (`Rust`, `C/C++`, `Assembler`, …).
    let mut languages = serde_json::Map::new();
    for (kind, key) in [("hits", "cache_hits"), ("misses", "cache_misses")] {
        let counts = stats.get(key).and_then(|e| e.get("counts"));
        for (language, n) in counts.and_then(|c| c.as_object()).into_iter().flatten() {
            let entry = languages
                .entry(language.clone())
                .or_insert_with(|| serde_json::json!({"hits": 0, "misses": 0}));
            entry[kind] = serde_json::json!(n.as_u64().unwrap_or(0));
        }
    }
    Some(serde_json::json!({
        "languages": languages,
        "requests": num("compile_requests"),
        "hits": per_language("cache_hits"),
        "misses": per_language("cache_misses"),
        "errors": errors,
        "cache_location": json.get("cache_location").and_then(|v| v.as_str()),
        "raw": stats,
    }))
}

/// With a Redis backend configured by environment, sccache 0.16 waits out its whole start-up
/// timeout (10 s) when Redis is down. A TCP connect to the endpoint answers in milliseconds, so the
/// shim checks it first. Only a definite "nothing listens there" counts; anything unclear is left
/// to sccache's own start.
fn redis_unreachable() -> Option<String> {
    let (var, value) = [
        "SCCACHE_REDIS_ENDPOINT",
        "SCCACHE_REDIS",
        "SCCACHE_REDIS_CLUSTER_ENDPOINTS",
    ]
    .into_iter()
    .find_map(|var| Some((var, env::var(var).ok().filter(|v| !v.is_empty())?)))?;
    let endpoints: Vec<SocketAddr> = value.split(',').filter_map(redis_addr).collect();
    if endpoints.is_empty() || endpoints.len() != value.split(',').count() {
        return None;
    }
    let reachable = endpoints
        .iter()
        .any(|addr| TcpStream::connect_timeout(addr, Duration::from_secs(2)).is_ok());
    (!reachable)
        .then(|| format!("backend-unreachable: nothing answers at the Redis endpoint in {var}"))
}

/// `redis://user:pw@host:port/db`, `tcp://host:port` or `host:port` to a socket address, for
/// literal IP addresses and `localhost` only (no DNS lookups on this path).
fn redis_addr(endpoint: &str) -> Option<SocketAddr> {
    let endpoint = endpoint.trim();
    let rest = match endpoint.split_once("://") {
        Some(("redis" | "rediss" | "tcp", rest)) => rest,
        Some(_) => return None,
        None => endpoint,
    };
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    let hostport = rest.split(['/', '?']).next()?;
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(':') => (h, p.parse().ok()?),
        _ => (hostport, 6379),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip = if host == "localhost" {
        std::net::IpAddr::from([127, 0, 0, 1])
    } else {
        host.parse().ok()?
    };
    Some(SocketAddr::new(ip, port))
}

/// The sum of sccache's error and time-out counters.
pub fn error_total(sccache: &Path, timeout: Duration) -> Option<u64> {
    stats(sccache, timeout)?.get("errors")?.as_u64()
}

/// Stops the server and waits (up to `timeout`) until it no longer answers. `true` when it is down.
pub fn stop(sccache: &Path, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let mut cmd = Command::new(sccache);
    cmd.arg("--stop-server").stdin(Stdio::null());
    let _ = run_bounded(cmd, timeout);
    // The client returns once the server has agreed to stop; the port closes a moment later.
    while is_up() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

/// Asks the server to stop, without waiting: used when its backend is failing, so that the next
/// probe starts a fresh server that checks the backend again.
pub fn stop_detached(sccache: &Path) {
    let mut cmd = Command::new(sccache);
    cmd.arg("--stop-server")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
    }
    let _ = cmd.spawn();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[test]
    fn abstract_socket_names() {
        let p = |s: &str| parse_uds(s);
        assert_eq!(p(r"\x00sccache"), Some(Addr::Abstract(b"sccache".to_vec())));
        assert_eq!(
            p(r#"\x00a\x41\\b\n\t\r\'\"c"#),
            Some(Addr::Abstract(b"aA\\b\n\t\r'\"c".to_vec()))
        );
        assert_eq!(p(r"\x00"), Some(Addr::Abstract(Vec::new())));
        // sccache falls back to the port on a bad escape.
        for bad in [r"\x00a\q", r"\x00a\", r"\x00\x4", r"\x00\xg0", r"\x00\x0g"] {
            assert_eq!(p(bad), None, "{bad}");
        }
        assert_eq!(p("@name"), Some(Addr::Socket("@name".into())));
        assert_eq!(p("/tmp/s.sock"), Some(Addr::Socket("/tmp/s.sock".into())));
        assert_eq!(
            Addr::Abstract(b"a\x01".to_vec()).to_string(),
            r"abstract socket \x00a\x01"
        );
    }

    #[test]
    fn redis_endpoints() {
        let a = |s| redis_addr(s).map(|a| a.to_string());
        assert_eq!(
            a("redis://127.0.0.1:7000").as_deref(),
            Some("127.0.0.1:7000")
        );
        assert_eq!(
            a("redis://:pw@127.0.0.1:7000/0").as_deref(),
            Some("127.0.0.1:7000")
        );
        assert_eq!(a("tcp://localhost").as_deref(), Some("127.0.0.1:6379"));
        assert_eq!(a("127.0.0.1:1").as_deref(), Some("127.0.0.1:1"));
        assert_eq!(a("redis://[::1]:7000").as_deref(), Some("[::1]:7000"));
        assert_eq!(a("redis://cache.example.com:7000"), None);
        assert_eq!(a("redis+unix:///tmp/redis.sock"), None);
    }
}
