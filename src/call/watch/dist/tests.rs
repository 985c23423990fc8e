use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::Instant;

use super::super::{Observation, Verdict, Watcher, IDLE_LIMIT};
use super::*;

fn watcher() -> Watcher {
    Watcher {
        sccache: PathBuf::from("sccache"),
        started: Instant::now() - Duration::from_secs(600),
        slow_call: Duration::from_secs(20),
        call: 1,
        compiler: "rustc".into(),
        backends: None,
        errors_at_start: None,
        strikes: 0,
        idle_since: None,
        remotes: Remotes::default(),
    }
}

/// A look at a server with no local compiler at work, whose statistics show remote compiles.
fn look(remote: Remote) -> Observation {
    Observation {
        compiler_at_work: Some(false),
        errors: Some(0),
        distributing: true,
        remote,
        ..Observation::default()
    }
}

fn peer() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 10501))
}

#[test]
fn a_remote_compile_whose_build_server_answers_is_never_abandoned() {
    let mut w = watcher();
    let first = Instant::now();
    for minutes in 0..30 {
        let at = first + Duration::from_secs(60 * minutes);
        assert_eq!(
            w.judge_at(&look(Remote::Working(peer())), at),
            Verdict::Fine
        );
    }
    assert!(look(Remote::Working(peer())).at_work());
    // Remote work ends an idle time, as a local compiler does.
    let w = &mut watcher();
    assert_eq!(w.judge_at(&look(Remote::Nothing), first), Verdict::Suspect);
    let later = first + IDLE_LIMIT;
    assert_eq!(
        w.judge_at(&look(Remote::Working(peer())), later),
        Verdict::Fine
    );
    assert_eq!(w.judge_at(&look(Remote::Nothing), later), Verdict::Suspect);
}

#[test]
fn a_silent_build_server_is_stuck_at_the_idle_limit() {
    let mut w = watcher();
    let first = Instant::now();
    let silent = || look(Remote::Failing("the build server does not answer".into()));
    assert_eq!(w.judge_at(&silent(), first), Verdict::Suspect);
    let before = first + IDLE_LIMIT - Duration::from_millis(1);
    assert_eq!(w.judge_at(&silent(), before), Verdict::Suspect);
    match w.judge_at(&silent(), first + IDLE_LIMIT) {
        Verdict::Stuck(why) => assert!(
            why.to_string()
                .starts_with("dist-stuck: the build server does not answer; no compiler at work"),
            "{why}"
        ),
        v => panic!("{v:?}"),
    }
    // No build server waited on, with remote compiles in the statistics: idle all the same.
    let mut w = watcher();
    assert_eq!(w.judge_at(&look(Remote::Nothing), first), Verdict::Suspect);
    assert!(matches!(
        w.judge_at(&look(Remote::Nothing), first + IDLE_LIMIT),
        Verdict::Stuck(why) if why.to_string().starts_with("backend-stuck: no compiler at work")
    ));
    // Connections that cannot be read: remote compiles in the statistics keep the old rule.
    let mut w = watcher();
    w.idle_since = Some(first - Duration::from_secs(600));
    assert_eq!(w.judge_at(&look(Remote::Unknown), first), Verdict::Fine);
}

#[test]
fn any_answer_of_a_build_server_is_work_and_silence_or_refusal_is_not() {
    let two = [peer(), SocketAddr::from(([10, 0, 0, 2], 10501))];
    assert_eq!(
        judge(&two, &[Answer::Silent, Answer::Answers]),
        Remote::Working(two[1])
    );
    assert_eq!(
        judge(&two[..1], &[Answer::Fails("HTTP 404".into())]),
        Remote::Working(two[0])
    );
    assert_eq!(
        judge(&two, &[Answer::Silent, Answer::Refused]),
        Remote::Failing(
            "the sccache-dist build server at 127.0.0.1:10501 (and 1 more) does not answer in time"
                .into()
        )
    );
    assert!(matches!(
        judge(&two[..1], &[Answer::Refused]),
        Remote::Failing(w) if w.ends_with("refuses connections")
    ));
}

#[test]
fn the_scheduler_and_the_backend_are_no_build_servers() {
    let ep = |host: &str, port| Endpoint {
        host: host.into(),
        port,
        protocol: Protocol::Http,
        tls: false,
        proxied: false,
    };
    let scheduler = ep("127.0.0.1", 10600);
    let named = ep("s3.example.com", 443);
    let local = ep("localhost", 6379);
    let at = |a: [u8; 4], port| SocketAddr::from((a, port));
    let peers = [
        at([127, 0, 0, 1], 10600),
        at([127, 0, 0, 1], 10501),
        at([127, 0, 0, 1], 10501),
        at([10, 1, 1, 1], 10600),
        at([52, 1, 2, 3], 443),
        at([127, 0, 0, 1], 6379),
    ];
    assert_eq!(
        build_servers(&peers, &[&scheduler, &named, &local]),
        vec![at([127, 0, 0, 1], 10501), at([10, 1, 1, 1], 10600)]
    );
    assert_eq!(build_servers(&peers, &[]).len(), 5);
}

/// A `/proc/net/tcp` address as this machine's kernel prints it.
fn hex4(ip: [u8; 4], port: u16) -> String {
    format!("{:08X}:{port:04X}", u32::from_ne_bytes(ip))
}

#[test]
fn connections_are_read_from_the_kernels_tables() {
    let row = |local: &str, remote: &str, st: &str, inode| {
        format!(
            "   0: {local} {remote} {st} 00000000:00000000 00:00000000 00000000 0 0 {inode} 1 0"
        )
    };
    let server = hex4([127, 0, 0, 1], 4226);
    let table = [
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode".to_owned(),
        row(&server, &hex4([0, 0, 0, 0], 0), "0A", 11),
        // A client of the server's, on its listening port.
        row(&server, &hex4([127, 0, 0, 1], 50000), "01", 12),
        // A build server, and the scheduler, reached from ephemeral ports.
        row(&hex4([127, 0, 0, 1], 50001), &hex4([127, 0, 0, 1], 10501), "01", 13),
        row(&hex4([127, 0, 0, 1], 50002), &hex4([127, 0, 0, 1], 10600), "01", 14),
        // Closing, and another process's connection.
        row(&hex4([127, 0, 0, 1], 50003), &hex4([127, 0, 0, 1], 10502), "08", 15),
        row(&hex4([127, 0, 0, 1], 50004), &hex4([127, 0, 0, 1], 10503), "01", 99),
        "garbage".to_owned(),
    ]
    .join("\n");
    let rows = parse_tcp(&table);
    assert_eq!(rows.len(), 6);
    assert_eq!(rows[0].local, SocketAddr::from(([127, 0, 0, 1], 4226)));
    let peers = outbound(&rows, &[11, 12, 13, 14, 15]);
    assert_eq!(
        peers,
        vec![
            SocketAddr::from(([127, 0, 0, 1], 10501)),
            SocketAddr::from(([127, 0, 0, 1], 10600))
        ]
    );
    // IPv6, and IPv4 mapped into it.
    let v6 = |ip: std::net::Ipv6Addr, port: u16| {
        let o = ip.octets();
        let words: String = o
            .chunks(4)
            .map(|w| format!("{:08X}", u32::from_ne_bytes([w[0], w[1], w[2], w[3]])))
            .collect();
        format!("{words}:{port:04X}")
    };
    let mapped = "::ffff:10.0.0.2".parse().unwrap();
    assert_eq!(
        parse_addr(&v6(mapped, 10501)),
        Some(SocketAddr::from(([10, 0, 0, 2], 10501)))
    );
    let loopback = std::net::Ipv6Addr::LOCALHOST;
    assert_eq!(
        parse_addr(&v6(loopback, 80)),
        Some(SocketAddr::new(loopback.into(), 80))
    );
    assert_eq!(parse_addr("0100007F"), None);
    assert_eq!(parse_addr("01007F:0050"), None);
}

/// This very process stands for the sccache server: it listens, has a client, and connects out.
#[cfg(target_os = "linux")]
#[test]
fn a_process_outbound_connections_are_found_in_proc() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (_accepted, _) = listener.accept().unwrap();
    let peers = outbound_peers(std::process::id()).unwrap();
    // The connection made here is outbound; the one accepted is a client's.
    assert!(peers.contains(&listener.local_addr().unwrap()), "{peers:?}");
    assert!(!peers.contains(&client.local_addr().unwrap()), "{peers:?}");
}

/// Real build-server stand-ins on 127.0.0.1: one that accepts and never answers (a stopped
/// process's listener), one that closes on a plain-text request (a TLS listener), one gone.
#[test]
fn probes_tell_a_working_build_server_from_a_stopped_one() {
    let probe = |port: u16| {
        let peer = SocketAddr::from(([127, 0, 0, 1], port));
        let answers = backend::probe_all(
            &[Backend {
                kind: "build server",
                origin: "test".into(),
                endpoints: vec![endpoint(peer)],
            }],
            Duration::from_millis(500),
        );
        judge(&[peer], &answers[0])
    };
    let stopped = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = stopped.local_addr().unwrap().port();
    assert!(matches!(probe(port), Remote::Failing(w) if w.ends_with("does not answer in time")));

    let tls = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = tls.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut s, _) = tls.accept().unwrap();
        let mut byte = [0u8; 1];
        s.read_exact(&mut byte).unwrap();
        // A TLS alert, then the close.
        let _ = s.write_all(&[0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 0x46]);
    });
    assert_eq!(
        probe(port),
        Remote::Working(SocketAddr::from(([127, 0, 0, 1], port)))
    );
    server.join().unwrap();

    let gone = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = gone.local_addr().unwrap().port();
    drop(gone);
    assert!(matches!(probe(port), Remote::Failing(w) if w.ends_with("refuses connections")));
}

#[test]
fn a_server_busy_itself_with_no_build_server_is_preparing_for_a_while() {
    let secs = Duration::from_secs;
    let mut r = Remotes::default();
    assert_eq!(r.preparing(None), Remote::Nothing);
    assert_eq!(r.preparing(Some((0.1, secs(3)))), Remote::Nothing);
    assert_eq!(r.preparing(Some((0.9, secs(3)))), Remote::Preparing(90));
    assert!(Remote::Preparing(90).is_work());
    assert!(!Remote::Nothing.is_work() && !Remote::Failing(String::new()).is_work());
    // At most two minutes of a call.
    for _ in 0..39 {
        assert_eq!(r.preparing(Some((1.0, secs(3)))), Remote::Preparing(100));
    }
    assert_eq!(r.preparing(Some((1.0, secs(3)))), Remote::Nothing);
    // The watchdog takes it for work.
    let mut w = watcher();
    w.idle_since = Some(Instant::now() - secs(600));
    assert_eq!(w.judge(&look(Remote::Preparing(100))), Verdict::Fine);
    assert_eq!(w.idle_since, None);
}

#[test]
fn cpu_time_is_read_from_proc_stat() {
    let stat = "7 (a) b) S 1 7 7 0 -1 4194560 10 0 0 0 250 50 0 0 20 0 3 0 100";
    assert_eq!(cpu_in_stat(stat, 100), Some(Duration::from_secs(3)));
    assert_eq!(cpu_in_stat("7 (a) S 1 7", 100), None);
    let secs = Duration::from_secs;
    assert_eq!(share(secs(10), secs(11), secs(2)), 0.5);
    assert_eq!(share(secs(10), secs(9), secs(2)), 0.0);
    assert_eq!(share(secs(10), secs(11), Duration::ZERO), 0.0);
    #[cfg(target_os = "linux")]
    {
        let before = cpu_time(std::process::id()).unwrap();
        // Spin until the kernel has counted more CPU time for this process.
        let mut x = 0u64;
        while cpu_time(std::process::id()).unwrap() <= before {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let mut r = Remotes::default();
        assert_eq!(r.cpu_since_last_look(std::process::id()), None);
        assert!(r.cpu_since_last_look(std::process::id()).is_some());
        assert_eq!(r.cpu_since_last_look(u32::MAX), None);
    }
}
