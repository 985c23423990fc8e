//! Remote compiles under sccache-dist: is the server waiting on a build server that works, or on
//! one that stopped answering?
//!
//! A remote compile has no local compiler to see. What the server waits on is a request in flight
//! to a build server: sccache's dist client keeps no idle connections (its HTTP client's pool
//! holds none), so an established TCP connection of the server's, other than its clients' and
//! those to the scheduler and the cache backend, is a build server with a request of the server's
//! in progress (a toolchain upload or a compile). Each such build server gets a bounded probe (a
//! TCP connect and a plain-text request, which a build server's TLS listener answers by closing
//! the connection): a build server that answers is at work, however long its compile takes; one
//! that accepts and stays silent (stopped, black-holed) or refuses is not, and the server counts
//! as idle, so the watchdog's idle limit applies to it.
//!
//! The connections come from `/proc` (Linux): the server's socket inodes in `/proc/PID/fd`,
//! matched against `/proc/PID/net/tcp{,6}` (the server's own network namespace). Elsewhere nothing
//! is known, and a server whose statistics show remote compiles is never called idle.
//!
//! Before its first request to a build server, the server packages the compiler's toolchain
//! (once per toolchain: for Rust, rustc's sysroot, 12 to 25 s measured on a loaded 2-core machine)
//! in its own process, with no child and no connection to show for it. A server with no build
//! server to wait on that used at least a quarter of a core since the last look is at that work,
//! for at most two minutes of a call: a server spinning for another reason is not waited on
//! forever.
//!
//! The scheduler is left out: it answers probes while its job allocation may hang on a stopped
//! build server, so its answer proves no compile at work. Its status endpoint (`num_servers`,
//! `in_progress`) is no signal either: it counts every client's jobs, and keeps counting those of
//! a stopped build server until its heartbeat times out (90 s).

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::backend::{self, Answer, Backend, Endpoint, Protocol};

/// What the server's connections say about its remote compiles.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub enum Remote {
    /// Not looked at (no sccache-dist, a compiler at work) or not readable here.
    #[default]
    Unknown,
    /// The server has no request in flight to a build server.
    Nothing,
    /// A build server with a request of the server's in flight answers: a remote compile at work.
    Working(SocketAddr),
    /// The server waits on build servers, and none of them answers: in words.
    Failing(String),
    /// No build server waited on, but the server is busy itself (packaging a toolchain): the
    /// share of a core it used since the last look, in percent.
    Preparing(u32),
}

impl Remote {
    /// A remote compile, or its preparation, is at work.
    pub fn is_work(&self) -> bool {
        matches!(self, Remote::Working(_) | Remote::Preparing(_))
    }
}

/// The share of a core a server must use on its own between two looks to count as preparing a
/// remote compile, and how long in one call that may count as work.
const PREPARING_SHARE: f64 = 0.25;
const PREPARING_LIMIT: Duration = Duration::from_secs(120);

/// What the watchdog keeps between looks: where the scheduler is (read once), the server's CPU
/// time at the last look, and how long the server was seen preparing.
#[derive(Default)]
pub struct Remotes {
    scheduler: Option<Option<Endpoint>>,
    cpu_seen: Option<CpuSeen>,
    preparing: Duration,
}

#[derive(Clone, Copy)]
struct CpuSeen {
    pid: u32,
    cpu: Duration,
    at: Instant,
}

impl Remotes {
    /// Looks at the remote compiles of the server `server` (its pid), when sccache-dist is
    /// configured or the server's statistics show it `distributing`. `backends`' endpoints are
    /// not build servers; every build server is probed at once, within `timeout`.
    pub fn look(
        &mut self,
        server: Option<u32>,
        distributing: bool,
        backends: &[Backend],
        timeout: Duration,
    ) -> Remote {
        let scheduler = self
            .scheduler
            .get_or_insert_with(backend::dist_scheduler)
            .clone();
        if scheduler.is_none() && !distributing {
            return Remote::Unknown;
        }
        let Some(server) = server else {
            return Remote::Unknown;
        };
        let busy = self.cpu_since_last_look(server);
        let Some(peers) = outbound_peers(server) else {
            return Remote::Unknown;
        };
        let not_builders: Vec<&Endpoint> = scheduler
            .iter()
            .chain(backends.iter().flat_map(|b| &b.endpoints))
            .collect();
        let builders = build_servers(&peers, &not_builders);
        if builders.is_empty() {
            return self.preparing(busy);
        }
        let probed = Backend {
            kind: "sccache-dist build server",
            origin: "a connection of the sccache server".into(),
            endpoints: builders.iter().map(|&peer| endpoint(peer)).collect(),
        };
        let answers = backend::probe_all(std::slice::from_ref(&probed), timeout);
        judge(&builders, answers.first().map_or(&[][..], Vec::as_slice))
    }

    /// The server's share of a core since the last look, and the time between the looks; `None`
    /// on the first look at this server, or where its CPU time cannot be read.
    fn cpu_since_last_look(&mut self, pid: u32) -> Option<(f64, Duration)> {
        let now = CpuSeen {
            pid,
            cpu: cpu_time(pid)?,
            at: Instant::now(),
        };
        let before = self.cpu_seen.replace(now).filter(|b| b.pid == pid)?;
        let wall = now.at.saturating_duration_since(before.at);
        Some((share(before.cpu, now.cpu, wall), wall))
    }

    /// A server with no build server to wait on: preparing while it uses its share of a core,
    /// within the limit; otherwise waiting on nothing remote.
    fn preparing(&mut self, busy: Option<(f64, Duration)>) -> Remote {
        match busy {
            Some((share, wall)) if share >= PREPARING_SHARE && self.preparing < PREPARING_LIMIT => {
                self.preparing += wall;
                Remote::Preparing((share * 100.0).round() as u32)
            }
            _ => Remote::Nothing,
        }
    }
}

/// The share of one core that CPU time going from `before` to `after` over `wall` is.
pub(super) fn share(before: Duration, after: Duration, wall: Duration) -> f64 {
    if wall.is_zero() {
        return 0.0;
    }
    after.saturating_sub(before).as_secs_f64() / wall.as_secs_f64()
}

/// The CPU time (user and system, all threads) process `pid` has used, from `/proc/PID/stat`.
#[cfg(target_os = "linux")]
pub(super) fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    cpu_in_stat(&stat, u64::try_from(ticks).ok().filter(|&t| t > 0)?)
}

#[cfg(not(target_os = "linux"))]
pub(super) fn cpu_time(_pid: u32) -> Option<Duration> {
    None
}

/// `pid (comm) state ppid … utime stime …`: utime and stime are the 12th and 13th fields after
/// the command name, in clock ticks.
pub(super) fn cpu_in_stat(stat: &str, ticks_per_second: u64) -> Option<Duration> {
    let after = stat.get(stat.rfind(')')? + 1..)?;
    let mut fields = after.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    let ticks = utime.checked_add(stime)?;
    Some(Duration::from_secs_f64(
        ticks as f64 / ticks_per_second as f64,
    ))
}

/// The build servers among the server's `peers`: those that are none of `others` (the scheduler,
/// the backend's endpoints), each once.
pub(super) fn build_servers(peers: &[SocketAddr], others: &[&Endpoint]) -> Vec<SocketAddr> {
    let mut found: Vec<SocketAddr> = Vec::new();
    for &peer in peers {
        if !others.iter().any(|ep| is_at(ep, peer)) && !found.contains(&peer) {
            found.push(peer);
        }
    }
    found
}

/// Whether `peer` may be `ep`: the same port, and the same address when `ep` names one. A host
/// name is not resolved here (a DNS round trip at every look, and a name may resolve otherwise
/// for sccache), so any peer on its port may be it: such a peer is left out, and at worst a
/// build server sharing the port of a named scheduler or backend counts as idle.
pub(super) fn is_at(ep: &Endpoint, peer: SocketAddr) -> bool {
    if ep.port != peer.port() {
        return false;
    }
    if ep.host.eq_ignore_ascii_case("localhost") {
        return peer.ip().is_loopback();
    }
    ep.host.parse::<IpAddr>().map_or(true, |ip| ip == peer.ip())
}

/// A build server to probe: sccache-dist's build servers speak HTTPS only, and a TLS listener
/// that closes on a plain-text request is alive, which is all the probe asks.
fn endpoint(peer: SocketAddr) -> Endpoint {
    Endpoint {
        host: peer.ip().to_string(),
        port: peer.port(),
        protocol: Protocol::Http,
        tls: true,
        proxied: false,
    }
}

/// Any build server that answers (any HTTP answer, even an error) makes a remote compile at
/// work; otherwise the first one's silence or refusal, in words.
pub(super) fn judge(builders: &[SocketAddr], answers: &[Answer]) -> Remote {
    let alive = |a: &Answer| matches!(a, Answer::Answers | Answer::Throttled | Answer::Fails(_));
    if let Some((&peer, _)) = builders.iter().zip(answers).find(|(_, a)| alive(a)) {
        return Remote::Working(peer);
    }
    let words = answers.first().map_or_else(
        || "does not answer in time".to_owned(),
        |a| match a {
            Answer::Unknown(why) => format!("cannot be reached ({why})"),
            a => a.words(),
        },
    );
    let more = match builders.len() {
        0 | 1 => String::new(),
        n => format!(" (and {} more)", n - 1),
    };
    Remote::Failing(format!(
        "the sccache-dist build server at {}{more} {words}",
        builders[0]
    ))
}

/// The peers of the process `pid`'s established TCP connections that it opened itself (its
/// accepted ones, on a port it listens on, are its clients'); `None` when `/proc` cannot tell.
#[cfg(target_os = "linux")]
fn outbound_peers(pid: u32) -> Option<Vec<SocketAddr>> {
    let mut inodes = Vec::new();
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.flatten() {
        let Ok(link) = std::fs::read_link(fd.path()) else {
            continue;
        };
        let link = link.to_string_lossy();
        if let Some(inode) = link
            .strip_prefix("socket:[")
            .and_then(|l| l.strip_suffix(']'))
        {
            inodes.extend(inode.parse::<u64>().ok());
        }
    }
    let mut rows = Vec::new();
    for table in ["tcp", "tcp6"] {
        // A kernel without IPv6 has no tcp6 table; without tcp, nothing can be told.
        match std::fs::read_to_string(format!("/proc/{pid}/net/{table}")) {
            Ok(text) => rows.extend(parse_tcp(&text)),
            Err(_) if table == "tcp6" => {}
            Err(_) => return None,
        }
    }
    Some(outbound(&rows, &inodes))
}

#[cfg(not(target_os = "linux"))]
fn outbound_peers(_pid: u32) -> Option<Vec<SocketAddr>> {
    None
}

/// One row of `/proc/net/tcp{,6}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Row {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub state: u8,
    pub inode: u64,
}

const ESTABLISHED: u8 = 0x01;
const LISTEN: u8 = 0x0A;

/// The peers of the established connections among `rows` whose socket is one of `inodes` and
/// whose local port is not one those sockets listen on.
pub(super) fn outbound(rows: &[Row], inodes: &[u64]) -> Vec<SocketAddr> {
    let ours = |r: &&Row| inodes.contains(&r.inode);
    let listening: Vec<u16> = rows
        .iter()
        .filter(ours)
        .filter(|r| r.state == LISTEN)
        .map(|r| r.local.port())
        .collect();
    rows.iter()
        .filter(ours)
        .filter(|r| r.state == ESTABLISHED && !listening.contains(&r.local.port()))
        .map(|r| r.remote)
        .collect()
}

/// `sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode …`,
/// addresses as the kernel's 32-bit words in hex, in the byte order of the machine.
pub(super) fn parse_tcp(table: &str) -> Vec<Row> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            Some(Row {
                local: parse_addr(cols.get(1)?)?,
                remote: parse_addr(cols.get(2)?)?,
                state: u8::from_str_radix(cols.get(3)?, 16).ok()?,
                inode: cols.get(9)?.parse().ok()?,
            })
        })
        .collect()
}

/// `0100007F:1F90` (127.0.0.1:8080 on a little-endian machine), or 32 hex digits for IPv6; an
/// IPv4 address mapped into IPv6 comes back as IPv4.
fn parse_addr(text: &str) -> Option<SocketAddr> {
    let (ip, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    if ip.len() != 8 && ip.len() != 32 {
        return None;
    }
    let mut bytes = Vec::with_capacity(16);
    for word in ip.as_bytes().chunks(8) {
        let word = u32::from_str_radix(std::str::from_utf8(word).ok()?, 16).ok()?;
        bytes.extend_from_slice(&word.to_ne_bytes());
    }
    let ip = match bytes.len() {
        4 => IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?),
        16 => {
            let v6 = std::net::Ipv6Addr::from(<[u8; 16]>::try_from(bytes).ok()?);
            v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests;
