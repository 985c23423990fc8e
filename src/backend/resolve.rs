//! Resolving a backend's host name within a deadline: in process with `getaddrinfo`, or, in a
//! static glibc build (which must never load NSS), with `getent ahosts` in a child process, and
//! telling "no such name" (down) from a resolver that could not answer (unknown).

use super::*;

pub(super) fn resolve(host: &str, port: u16, deadline: Instant) -> Result<Vec<SocketAddr>, Answer> {
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
pub(super) fn resolve_in_process(host: &str, port: u16) -> Result<Vec<IpAddr>, Answer> {
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
pub(super) fn lookup_error_answer(text: &str) -> Answer {
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
pub(super) fn resolve_with_getent(host: &str, deadline: Instant) -> Result<Vec<IpAddr>, Answer> {
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
pub(super) fn getent_failure(
    code: Option<i32>,
    stderr: &[u8],
    no_such_name: impl FnOnce() -> bool,
) -> Answer {
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
pub(super) fn dns_says_no_such_name(host: &str, deadline: Instant) -> bool {
    let conf = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    server_says_no_such_name(first_nameserver(&conf), host, deadline)
}

pub(super) fn server_says_no_such_name(
    server: Option<SocketAddr>,
    host: &str,
    deadline: Instant,
) -> bool {
    if !host.trim_end_matches('.').contains('.') {
        return false;
    }
    let Some(server) = server else {
        return false;
    };
    dns_rcode(server, host, deadline) == Some(DNS_NXDOMAIN)
}

pub(super) const DNS_NXDOMAIN: u8 = 3;

/// The first `nameserver` line's address, on port 53.
pub(super) fn first_nameserver(conf: &str) -> Option<SocketAddr> {
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
pub(super) fn dns_query(id: u16, host: &str) -> Option<Vec<u8>> {
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
pub(super) fn dns_reply_rcode(reply: &[u8], id: u16) -> Option<u8> {
    if reply.len() < 12 || reply[0..2] != id.to_be_bytes() || reply[2] & 0x80 == 0 {
        return None;
    }
    Some(reply[3] & 0x0f)
}

/// Asks `server` for `host` over UDP and returns the response code, within `deadline`.
pub(super) fn dns_rcode(server: SocketAddr, host: &str, deadline: Instant) -> Option<u8> {
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
pub(super) fn getent_addresses(stdout: &[u8]) -> Vec<IpAddr> {
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
}
