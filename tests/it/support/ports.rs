//! Loopback ports for the tests' servers, reserved so that no two tests (nor two suites) share one.

use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::sync::Mutex;

/// A loopback port for a test's server (sccache, Redis) or for "nothing listens here", reserved
/// for the life of this test process.
///
/// Ports come from below the kernel's ephemeral range, which `bind(…:0)` and outgoing connections
/// draw from, so no other socket on the machine is handed one of them between the choice and the
/// server's start. Within that range each port is taken by a lock file in the temporary directory
/// held until this process ends, so two test processes (two suites at once) never share one, and
/// one process never gives it out twice. A port something already listens on is skipped.
pub fn reserve_port() -> u16 {
    static HELD: Mutex<Vec<(u16, fs::File)>> = Mutex::new(Vec::new());
    let mut held = HELD.lock().unwrap_or_else(|e| e.into_inner());
    let (low, high) = outside_the_ephemeral_range();
    let span = u32::from(high - low);
    let dir = std::env::temp_dir().join("maybe-sccache-test-ports");
    let _ = fs::create_dir_all(&dir);
    let _ = fs::set_permissions(&dir, fs::Permissions::from_mode(0o1777));
    // Start where this process is unlikely to meet another one, then walk the range.
    let start = std::process::id()
        .wrapping_mul(7919)
        .wrapping_add(held.len() as u32 * 13)
        % span;
    for step in 0..span {
        let port = low + ((start + step) % span) as u16;
        if held.iter().any(|(p, _)| *p == port) {
            continue;
        }
        let Ok(file) = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(port.to_string()))
        else {
            continue;
        };
        if fs2::FileExt::try_lock_exclusive(&file).is_err() {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port)).is_err() {
            continue;
        }
        held.push((port, file));
        return port;
    }
    panic!("no free loopback port in {low}..{high}");
}

/// The kernel's range for `bind(…:0)` and outgoing connections.
fn ephemeral_range() -> (u16, u16) {
    fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut words = s.split_whitespace().map(|w| w.parse::<u16>().ok());
            Some((words.next()??, words.next()??))
        })
        .unwrap_or((32768, 60999))
}

/// Ports for tests, `low..high`: below the ephemeral range, or above it if it starts too low.
fn outside_the_ephemeral_range() -> (u16, u16) {
    let (eph_low, eph_high) = ephemeral_range();
    let (low, high) = if eph_low >= 11000 {
        (10000, eph_low)
    } else {
        (eph_high.saturating_add(1), u16::MAX)
    };
    assert!(
        high - low >= 100,
        "no room for test ports outside the ephemeral range {eph_low}-{eph_high}"
    );
    (low, high)
}

#[test]
fn reserved_ports_are_distinct_and_outside_the_ephemeral_range() {
    let ports: Vec<u16> = (0..20).map(|_| reserve_port()).collect();
    let mut unique = ports.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), ports.len(), "{ports:?}");
    let (low, high) = ephemeral_range();
    assert!(
        ports.iter().all(|&p| p < low || p > high),
        "{ports:?} vs {low}-{high}"
    );
}
