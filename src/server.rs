//! The sccache server: is it up, starting it within a deadline, and reading its error counters.
//!
//! `sccache --start-server` is the probe: it starts a server against the real storage backend and
//! fails if the backend cannot be used, without involving any compile of the caller's. A server
//! already running answers "Address in use", which counts as success.

use std::env;
use std::ffi::OsString;
use std::fs::OpenOptions;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::child::{run_bounded, Output};
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
            b'x' => hex(bytes.next()?)? * 16 + hex(bytes.next()?)?,
            _ => return None,
        });
    }
    Some(out)
}

/// The environment variables that choose sccache's storage backend (`SCCACHE_CONF` may too). Two
/// builds that differ in them use different backends, so one's dead backend is not the other's.
/// A name ending in `_` is a prefix; the others match themselves and `<name>_…`.
const BACKEND_VARS: [&str; 16] = [
    "SCCACHE_CONF",
    "SCCACHE_DIR",
    "SCCACHE_REDIS",
    "SCCACHE_MEMCACHED",
    "SCCACHE_BUCKET",
    "SCCACHE_ENDPOINT",
    "SCCACHE_REGION",
    "SCCACHE_S3_",
    "SCCACHE_GCS_",
    "SCCACHE_AZURE_",
    "SCCACHE_GHA_",
    "SCCACHE_WEBDAV_",
    "SCCACHE_OSS_",
    "SCCACHE_COS_",
    "SCCACHE_LOCAL_RW_MODE",
    "SCCACHE_ERROR_LOG",
];

/// Names the sccache server that the current environment points at, for the breaker and the start
/// lock: a hash of its address and of the backend variables ([`BACKEND_VARS`], as prefixes).
/// Values are hashed, never written out, and credentials (see [`is_credential`], and URL
/// passwords and `name=value` credentials inside values) are left out. No system call.
pub fn key() -> String {
    key_of(&address().to_string(), env::vars_os())
}

fn key_of(address: &str, vars: impl Iterator<Item = (OsString, OsString)>) -> String {
    let mut vars: Vec<(OsString, OsString)> = vars
        .filter(|(name, _)| {
            let name = name.as_encoded_bytes();
            BACKEND_VARS
                .iter()
                .any(|p| match name.strip_prefix(p.as_bytes()) {
                    Some(rest) => p.ends_with('_') || rest.is_empty() || rest.starts_with(b"_"),
                    None => false,
                })
        })
        .collect();
    vars.sort();
    let mut hash = Fnv1a::new();
    hash.update(address.as_bytes());
    for (name, value) in &vars {
        hash.update(b"\0");
        hash.update(name.as_encoded_bytes());
        // The key is shown by `status` (in a public job summary, say): a fast hash of a short
        // password is as good as the password. Credentials never enter it, only their presence:
        // a changed password does not make another backend.
        if is_credential(&name.to_string_lossy()) {
            continue;
        }
        hash.update(b"=");
        let value = value.to_string_lossy();
        hash.update(crate::logging::redact(&value, &[]).as_bytes());
    }
    format!("{:016x}", hash.0)
}

/// FNV-1a, 64 bits. The key only has to tell servers apart in file names; a SHA-2 implementation
/// would also probe the CPU's features (`cpuid`, which traps to the hypervisor in a virtual
/// machine) on every forwarded call.
struct Fnv1a(u64);

impl Fnv1a {
    fn new() -> Fnv1a {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }

    fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// A backend variable whose value is a credential (`SCCACHE_REDIS_PASSWORD`,
/// `SCCACHE_WEBDAV_TOKEN`, …). Key prefixes and key file paths name places, not secrets.
fn is_credential(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    let place = upper.ends_with("_KEY_PREFIX") || upper.ends_with("_KEY_PATH");
    !place && crate::logging::is_secret_name(&upper)
}

/// Is an sccache server accepting connections where the client will look for it?
pub fn is_up() -> bool {
    match address() {
        Addr::Tcp(port) => {
            // Asking the kernel costs a third of a TCP handshake (7 µs against 24), and does not wake the
            // server. Only "yes" is taken from it: "no" (after which the caller starts a server)
            // is checked by connecting.
            #[cfg(any(target_os = "linux", target_os = "android"))]
            if listening::tcp_loopback(port) == Some(true) {
                return true;
            }
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

impl StartFailure {
    /// The shim could not even try (no output buffers, out of file descriptors or memory): that
    /// says nothing about sccache.
    pub fn is_shim_trouble(&self) -> bool {
        self.0.starts_with(crate::child::SHIM_TROUBLE)
    }
}

/// Runs `sccache --start-server`, killing it (and anything it started in its process group) at
/// `timeout`. `Ok` when a server is up afterwards.
pub fn start(sccache: &Path, depth: u32, timeout: Duration) -> Result<(), StartFailure> {
    if let Some(problem) = error_log_problem().or_else(crate::backend::precheck) {
        return Err(StartFailure(problem));
    }
    let started = Instant::now();
    let mut cmd = Command::new(sccache);
    cmd.arg("--start-server")
        .env(DEPTH_VAR, (depth + 1).to_string())
        .stdin(Stdio::null());
    let captured = run_bounded(cmd, timeout).map_err(|e| StartFailure(naming_backend(&e)))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&captured.stdout),
        String::from_utf8_lossy(&captured.stderr)
    );
    let ok = captured.code == Some(0) || text.contains("Address in use");
    log::info!(
        "sccache --start-server: exit {:?} after {} ms",
        captured.code,
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
    Err(StartFailure(naming_backend(&format!(
        "start-failed: {first}"
    ))))
}

/// `reason` with the configured remote backend named after its first word, so that a breaker
/// opened by a failed start says which backend it was about (without user information).
fn naming_backend(reason: &str) -> String {
    let backends = crate::backend::detect();
    if backends.is_empty() {
        return reason.to_owned();
    }
    let names: Vec<String> = backends.iter().map(|b| b.describe()).collect();
    let (head, tail) = reason.split_once(": ").unwrap_or((reason, ""));
    format!("{head}: backend {}: {tail}", names.join(", "))
}

/// If `SCCACHE_ERROR_LOG` names a file that cannot be opened, sccache's server dies silently at
/// start and its client waits out the whole start-up timeout; this sees it coming.
fn error_log_problem() -> Option<String> {
    let path = env::var_os("SCCACHE_ERROR_LOG")?;
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    // Non-blocking: a FIFO nobody reads would block this open forever, holding the call and the
    // start lock; this way it fails at once, as sccache's server could not use it either.
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    match options.open(&path) {
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
    stats_or_why(sccache, timeout).ok()
}

/// [`stats`], or why there are none: the reason starts with [`crate::child::SHIM_TROUBLE`] when
/// the shim itself could not ask (no descriptors or memory left), which says nothing of sccache.
fn stats_or_why(sccache: &Path, timeout: Duration) -> Result<serde_json::Value, String> {
    let mut cmd = Command::new(sccache);
    cmd.args(["--show-stats", "--stats-format", "json"])
        .stdin(Stdio::null());
    let Output { code, stdout, .. } = run_bounded(cmd, timeout)?;
    if code != Some(0) {
        return Err(format!("sccache --show-stats exited with {code:?}"));
    }
    let json: serde_json::Value = serde_json::from_slice(&stdout)
        .map_err(|e| format!("sccache --show-stats printed no JSON: {e}"))?;
    parse_stats(&json).ok_or_else(|| "sccache --show-stats printed no statistics".into())
}

fn parse_stats(json: &serde_json::Value) -> Option<serde_json::Value> {
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

/// The sum of sccache's error and time-out counters.
pub fn error_total(sccache: &Path, timeout: Duration) -> Option<u64> {
    errors_in(&stats(sccache, timeout)?)
}

/// Whether the statistics show sccache-dist at work: distributed compiles done or failed. This
/// is the hook for remote compiles, which have no local compiler process to see; a fresh
/// server's first remote compile is not in these counters yet.
pub fn distributes(stats: &serde_json::Value) -> bool {
    let Some(raw) = stats.get("raw") else {
        return false;
    };
    let done = raw
        .get("dist_compiles")
        .and_then(|d| d.as_object())
        .is_some_and(|m| !m.is_empty());
    let failed = raw.get("dist_errors").and_then(|v| v.as_u64()).unwrap_or(0) > 0;
    done || failed
}

/// The sum of the error and time-out counters in what [`stats`] returned.
pub fn errors_in(stats: &serde_json::Value) -> Option<u64> {
    stats.get("errors")?.as_u64()
}

/// How long a server has to answer the half-open probe's statistics request.
const PROBE_ANSWER: Duration = Duration::from_secs(5);

/// The half-open probe, after the breaker's cooldown. A listening server must first answer a real
/// request within a deadline (a hung one still accepts connections); then it is stopped, because
/// `--start-server` against a running server succeeds without checking the storage backend, and
/// the backend is what most often failed. No call uses the server meanwhile: the breaker was open.
/// Then a fresh server is started, which checks the backend. `Ok` when one is up.
pub fn probe(sccache: &Path, depth: u32, timeout: Duration) -> Result<(), StartFailure> {
    if is_up() {
        match stats_or_why(sccache, PROBE_ANSWER) {
            // The shim could not even ask: that says nothing of the server.
            Err(why) if why.starts_with(crate::child::SHIM_TROUBLE) => {
                return Err(StartFailure(why));
            }
            Err(_) if !stop_hung(sccache) => {
                return Err(StartFailure(format!(
                    "hung: the sccache server at {} did not answer within {} s and could not \
                     be stopped",
                    address(),
                    PROBE_ANSWER.as_secs()
                )));
            }
            Err(_) => {}
            Ok(_) if !stop(sccache, timeout) => {
                return Err(StartFailure(format!(
                    "stop-failed: the sccache server at {} did not stop within {} s",
                    address(),
                    timeout.as_secs()
                )));
            }
            Ok(_) => {}
        }
    }
    start(sccache, depth, timeout)
}

/// Asks the server to stop and waits (at most `timeout`) until nothing listens any more. sccache
/// lets the calls in it run for up to 10 s first. `true` when it is down.
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

/// Stops a server that accepts connections but does not answer: it would not answer a stop
/// request either, so the sccache process listening at the address is killed. Only a process
/// named sccache is (never a foreign program on the same port). `true` when nothing listens
/// any more.
pub fn stop_hung(sccache: &Path) -> bool {
    let _ = sccache;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if let Some(pid) = listener::sccache_listening_at(&address()) {
        log::warn!(
            "killing the hung sccache server (pid {pid}) at {}",
            address()
        );
        // SAFETY: a plain kill(2) of a process named sccache that holds the server's address.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while is_up() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    !is_up()
}

/// The pid of the sccache server listening where the client looks (Linux, from `/proc`); `None`
/// elsewhere or when there is none.
pub fn server_pid() -> Option<u32> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    return listener::sccache_listening_at(&address()).map(|pid| pid as u32);
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    None
}

/// Whether a TCP socket listens on 127.0.0.1, asked of the kernel through `sock_diag` netlink (the
/// interface of `ss`): one exact lookup, no connection, no server woken up.
#[cfg(any(target_os = "linux", target_os = "android"))]
mod listening {
    use std::mem::size_of;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    // From linux/netlink.h, linux/sock_diag.h and linux/inet_diag.h: stable kernel ABI.
    const NETLINK_SOCK_DIAG: libc::c_int = 4;
    const SOCK_DIAG_BY_FAMILY: u16 = 20;
    const NLM_F_REQUEST: u16 = 1;
    const NLMSG_ERROR: u16 = 2;
    const TCP_LISTEN: u8 = 10;

    #[repr(C)]
    struct NlMsgHdr {
        len: u32,
        kind: u16,
        flags: u16,
        seq: u32,
        pid: u32,
    }

    /// `struct inet_diag_req_v2` with its `inet_diag_sockid`, behind the netlink header.
    #[repr(C)]
    struct Request {
        hdr: NlMsgHdr,
        family: u8,
        protocol: u8,
        ext: u8,
        pad: u8,
        states: u32,
        sport: [u8; 2],
        dport: [u8; 2],
        src: [u8; 16],
        dst: [u8; 16],
        interface: u32,
        cookie: [u32; 2],
    }

    /// `Some(true)` when a TCP socket listens on 127.0.0.1:`port` (or on any address at that
    /// port), `Some(false)` when the kernel says there is none, `None` when it cannot be asked.
    pub fn tcp_loopback(port: u16) -> Option<bool> {
        // SAFETY: plain socket creation; a non-negative result is a new descriptor owned below.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
                NETLINK_SOCK_DIAG,
            )
        };
        if fd < 0 {
            return None;
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let mut src = [0u8; 16];
        src[..4].copy_from_slice(&[127, 0, 0, 1]);
        let request = Request {
            hdr: NlMsgHdr {
                len: size_of::<Request>() as u32,
                kind: SOCK_DIAG_BY_FAMILY,
                flags: NLM_F_REQUEST,
                seq: 1,
                pid: 0,
            },
            family: libc::AF_INET as u8,
            protocol: libc::IPPROTO_TCP as u8,
            ext: 0,
            pad: 0,
            states: 1 << TCP_LISTEN,
            sport: port.to_be_bytes(),
            dport: [0; 2],
            src,
            dst: [0; 16],
            interface: 0,
            // INET_DIAG_NOCOOKIE: any socket, not one known by its cookie.
            cookie: [u32::MAX; 2],
        };
        // SAFETY: the request is a plain `repr(C)` value that outlives the call. An unconnected
        // netlink socket sends to the kernel.
        let sent = unsafe {
            libc::send(
                fd.as_raw_fd(),
                (&request as *const Request).cast(),
                size_of::<Request>(),
                0,
            )
        };
        if sent != size_of::<Request>() as isize {
            return None;
        }
        // The kernel answers before `send` returns; never wait for it.
        let mut buf = [0u64; 64];
        // SAFETY: `buf` is writable for its whole size for the duration of the call.
        let got = unsafe {
            libc::recv(
                fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                size_of_val(&buf),
                libc::MSG_DONTWAIT,
            )
        };
        let got = usize::try_from(got).ok()?;
        let bytes: &[u8] =
            // SAFETY: the first `got` bytes of `buf` were written by `recv`; u8 has no alignment.
            unsafe { std::slice::from_raw_parts(buf.as_ptr().cast(), got.min(size_of_val(&buf))) };
        answer(bytes)
    }

    /// Reads the kernel's reply: an `inet_diag_msg` of a listening socket, or `ENOENT`.
    fn answer(reply: &[u8]) -> Option<bool> {
        let header = size_of::<NlMsgHdr>();
        if reply.len() < header + 4 {
            return None;
        }
        let kind = u16::from_ne_bytes([reply[4], reply[5]]);
        let body = &reply[header..];
        match kind {
            // `inet_diag_msg` starts with the family and the state.
            SOCK_DIAG_BY_FAMILY => Some(body[1] == TCP_LISTEN),
            NLMSG_ERROR => {
                let errno = -i32::from_ne_bytes([body[0], body[1], body[2], body[3]]);
                (errno == libc::ENOENT).then_some(false)
            }
            _ => None,
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn finds_a_listener_and_its_absence() {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let port = listener.local_addr().unwrap().port();
            assert_eq!(tcp_loopback(port), Some(true));
            // A connected socket on that port is not a listener.
            let _client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            drop(listener);
            assert_eq!(tcp_loopback(port), Some(false));
        }

        #[test]
        fn reads_replies() {
            let reply = |kind: u16, body: &[u8]| {
                let mut r = vec![0u8; size_of::<NlMsgHdr>()];
                r[4..6].copy_from_slice(&kind.to_ne_bytes());
                r.extend_from_slice(body);
                r
            };
            let listen = reply(SOCK_DIAG_BY_FAMILY, &[2, TCP_LISTEN, 0, 0]);
            assert_eq!(answer(&listen), Some(true));
            let established = reply(SOCK_DIAG_BY_FAMILY, &[2, 1, 0, 0]);
            assert_eq!(answer(&established), Some(false));
            let enoent = reply(NLMSG_ERROR, &(-libc::ENOENT).to_ne_bytes());
            assert_eq!(answer(&enoent), Some(false));
            let eperm = reply(NLMSG_ERROR, &(-libc::EPERM).to_ne_bytes());
            assert_eq!(answer(&eperm), None);
            assert_eq!(answer(&listen[..10]), None);
            assert_eq!(answer(&reply(3, &[0; 4])), None);
        }
    }
}

/// Finding the process that listens at the server's address, from `/proc`.
#[cfg(any(target_os = "linux", target_os = "android"))]
mod listener {
    use std::fs;

    use super::Addr;

    /// The pid of the process named `sccache` that holds the listening socket at `addr`.
    pub fn sccache_listening_at(addr: &Addr) -> Option<i32> {
        let inode = socket_inode(addr)?;
        let wanted = format!("socket:[{inode}]");
        for entry in fs::read_dir("/proc").ok()?.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|p| p.parse::<i32>().ok())
            else {
                continue;
            };
            // Other users' processes cannot be read here, and are skipped.
            let Ok(fds) = fs::read_dir(entry.path().join("fd")) else {
                continue;
            };
            let holds = fds
                .flatten()
                .any(|fd| fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == &*wanted));
            let comm = fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
            if holds && comm.trim_end() == "sccache" {
                return Some(pid);
            }
        }
        None
    }

    /// The inode of the listening socket at `addr`, from `/proc/net/{tcp,tcp6,unix}`.
    fn socket_inode(addr: &Addr) -> Option<u64> {
        match addr {
            Addr::Tcp(port) => {
                let table = fs::read_to_string("/proc/net/tcp").ok()?;
                tcp_listener_inode(&table, *port)
            }
            Addr::Socket(path) => {
                let table = fs::read_to_string("/proc/net/unix").ok()?;
                unix_listener_inode(&table, path.as_os_str().as_encoded_bytes())
            }
            Addr::Abstract(name) => {
                let table = fs::read_to_string("/proc/net/unix").ok()?;
                let mut shown = b"@".to_vec();
                shown.extend_from_slice(name);
                unix_listener_inode(&table, &shown)
            }
        }
    }

    /// `sl local_address rem_address st … inode`: a socket on 127.0.0.1:`port` in state LISTEN.
    pub(super) fn tcp_listener_inode(table: &str, port: u16) -> Option<u64> {
        let local = format!("0100007F:{port:04X}");
        table.lines().skip(1).find_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let listening = cols.get(1) == Some(&local.as_str()) && cols.get(3) == Some(&"0A");
            listening.then(|| cols.get(9)?.parse().ok())?
        })
    }

    /// `Num RefCount Protocol Flags Type St Inode Path`: a listening socket (flag `__SO_ACCEPTCON`,
    /// 00010000) bound to `path`.
    pub(super) fn unix_listener_inode(table: &str, path: &[u8]) -> Option<u64> {
        table.lines().skip(1).find_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let listening = cols.get(3) == Some(&"00010000");
            let at = cols.get(7).map(|p| p.as_bytes()) == Some(path);
            (listening && at).then(|| cols.get(6)?.parse().ok())?
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distributed_compiles_are_seen_in_the_statistics() {
        let with = |raw| serde_json::json!({ "raw": raw });
        assert!(!distributes(&serde_json::json!({})));
        assert!(!distributes(&with(
            serde_json::json!({"dist_compiles": {}, "dist_errors": 0})
        )));
        assert!(distributes(&with(
            serde_json::json!({"dist_compiles": {"h:1": 2}})
        )));
        assert!(distributes(&with(
            serde_json::json!({"dist_compiles": {}, "dist_errors": 1})
        )));
    }

    #[test]
    fn server_keys() {
        let key = |addr: &str, vars: &[(&str, &str)]| {
            key_of(addr, vars.iter().map(|(k, v)| (k.into(), v.into())))
        };
        let base = key("port 4226", &[("SCCACHE_DIR", "/c")]);
        assert_eq!(base.len(), 16);
        assert_eq!(base, key("port 4226", &[("SCCACHE_DIR", "/c")]));
        assert_ne!(base, key("port 4227", &[("SCCACHE_DIR", "/c")]));
        assert_ne!(base, key("port 4226", &[("SCCACHE_DIR", "/d")]));
        assert_ne!(base, key("port 4226", &[]));
        // Backend settings count, in any order; settings of calls or of the log do not.
        let redis = [
            ("SCCACHE_DIR", "/c"),
            ("SCCACHE_REDIS_ENDPOINT", "redis://a"),
        ];
        let reordered = [
            ("SCCACHE_REDIS_ENDPOINT", "redis://a"),
            ("SCCACHE_DIR", "/c"),
        ];
        assert_ne!(base, key("port 4226", &redis));
        assert_eq!(key("port 4226", &redis), key("port 4226", &reordered));
        for other in [
            ("SCCACHE_LOG", "debug"),
            ("SCCACHE_DIRECT", "true"),
            ("SCCACHE_IDLE_TIMEOUT", "0"),
            ("PATH", "/bin"),
        ] {
            assert_eq!(
                base,
                key("port 4226", &[("SCCACHE_DIR", "/c"), other]),
                "{other:?}"
            );
        }
        for backend in [
            ("SCCACHE_BUCKET", "b"),
            ("SCCACHE_GHA_ENABLED", "on"),
            ("SCCACHE_REDIS", "redis://x"),
            ("SCCACHE_DIR_EXTRA", "x"),
        ] {
            let with = [("SCCACHE_DIR", "/c"), backend];
            assert_ne!(base, key("port 4226", &with), "{backend:?}");
        }
        // Credentials do not enter the key (it is shown): not in a URL, not in a variable of
        // their own, not in a connection string. Where the backend is still does.
        let redis = |url: &str, pw: &str| {
            key(
                "port 4226",
                &[("SCCACHE_REDIS", url), ("SCCACHE_REDIS_PASSWORD", pw)],
            )
        };
        assert_eq!(
            redis("redis://:pw1@h:6379", "a"),
            redis("redis://:pw2@h:6379", "b")
        );
        assert_ne!(
            redis("redis://:pw1@h:6379", "a"),
            redis("redis://:pw1@g:6379", "a")
        );
        assert_ne!(
            redis("redis://h:6379", "a"),
            key("port 4226", &[("SCCACHE_REDIS", "redis://h:6379")])
        );
        let azure = |s: &str| key("port 4226", &[("SCCACHE_AZURE_CONNECTION_STRING", s)]);
        assert_eq!(
            azure("AccountName=n;AccountKey=k1;EndpointSuffix=x"),
            azure("AccountName=n;AccountKey=k2;EndpointSuffix=x")
        );
        assert_ne!(
            azure("AccountName=n;AccountKey=k1;EndpointSuffix=x"),
            azure("AccountName=m;AccountKey=k1;EndpointSuffix=x")
        );
        let dav = |token: &str, prefix: &str| {
            key(
                "port 4226",
                &[
                    ("SCCACHE_WEBDAV_TOKEN", token),
                    ("SCCACHE_WEBDAV_KEY_PREFIX", prefix),
                ],
            )
        };
        assert_eq!(dav("t1", "p"), dav("t2", "p"));
        assert_ne!(dav("t1", "p"), dav("t1", "q"));
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[test]
    fn listeners_in_proc_net() {
        use listener::{tcp_listener_inode, unix_listener_inode};
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
           0: 0100007F:1092 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4711 1 0\n\
           1: 0100007F:1093 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 4712 1 0\n\
           2: 00000000:1094 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4713 1 0\n";
        assert_eq!(tcp_listener_inode(tcp, 4242), Some(4711));
        assert_eq!(tcp_listener_inode(tcp, 4243), None, "not listening");
        assert_eq!(tcp_listener_inode(tcp, 4244), None, "not on 127.0.0.1");
        assert_eq!(tcp_listener_inode(tcp, 4245), None);
        let unix = "Num       RefCount Protocol Flags    Type St Inode Path\n\
           0000000000000000: 00000002 00000000 00010000 0001 01 5001 /tmp/s.sock\n\
           0000000000000000: 00000002 00000000 00000000 0001 03 5002 /tmp/t.sock\n\
           0000000000000000: 00000002 00000000 00010000 0001 01 5003 @sccache\n";
        assert_eq!(unix_listener_inode(unix, b"/tmp/s.sock"), Some(5001));
        assert_eq!(
            unix_listener_inode(unix, b"/tmp/t.sock"),
            None,
            "not listening"
        );
        assert_eq!(unix_listener_inode(unix, b"@sccache"), Some(5003));
        assert_eq!(unix_listener_inode(unix, b"/tmp/u.sock"), None);
    }

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
}
