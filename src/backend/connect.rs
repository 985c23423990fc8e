//! Speaking to one endpoint: every resolved address in turn within the deadline, one request in
//! the endpoint's protocol, and what its reply (or silence, or refusal) means.

use super::*;

/// Tries each address in turn, all within the one `deadline`, and speaks to the first that
/// accepts. A host with several addresses (IPv6 and IPv4, or a round-robin name) is down only
/// when every one of them refuses: one dead address beside a live one is a healthy backend.
pub(super) fn connect_any(addrs: &[SocketAddr], ep: &Endpoint, deadline: Instant) -> Answer {
    match connect_first(addrs, deadline) {
        Ok(stream) => converse(stream, ep, deadline),
        Err(answer) => answer,
    }
}

/// The first of `addrs` that accepts a connection within `deadline`, tried in turn; else what
/// their failures together say (refused only when every one refused).
pub(super) fn connect_first(addrs: &[SocketAddr], deadline: Instant) -> Result<TcpStream, Answer> {
    let mut answers = Vec::new();
    for (n, addr) in addrs.iter().enumerate() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            answers.push(Answer::Silent);
            break;
        }
        match TcpStream::connect_timeout(addr, share(left, addrs.len() - n)) {
            Ok(stream) => return Ok(stream),
            Err(e) => answers.push(connect_error_answer(&e)),
        }
    }
    Err(combine(answers))
}

/// The time one of `untried` addresses may take to connect, of `left`: a black-holed address must
/// not use up the time of those after it, so each gets an equal share.
pub(super) fn share(left: Duration, untried: usize) -> Duration {
    let untried = u32::try_from(untried.max(1)).unwrap_or(u32::MAX);
    (left / untried).max(Duration::from_millis(1))
}

/// What a failed connection to one address says.
pub(super) fn connect_error_answer(e: &std::io::Error) -> Answer {
    match e.kind() {
        ErrorKind::ConnectionRefused => Answer::Refused,
        ErrorKind::TimedOut | ErrorKind::WouldBlock => Answer::Silent,
        _ => Answer::Unknown(e.to_string()),
    }
}

/// The answer for a host whose addresses all failed: refused only when every one refused (or
/// there were none to try); otherwise the least definite of them, since an address that did not
/// answer in time or failed otherwise may be the one that works.
pub(super) fn combine(answers: Vec<Answer>) -> Answer {
    if answers.iter().all(|a| *a == Answer::Refused) {
        return Answer::Refused;
    }
    if let Some(unknown) = answers.iter().find(|a| matches!(a, Answer::Unknown(_))) {
        return unknown.clone();
    }
    Answer::Silent
}

pub(super) fn converse(mut stream: TcpStream, ep: &Endpoint, deadline: Instant) -> Answer {
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

pub(super) fn io_answer(e: &std::io::Error, ep: &Endpoint) -> Answer {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
