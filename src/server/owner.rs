//! Is a server up, and whose is it: the kernel's answer (`sock_diag`, else `/proc/net/tcp`; peer
//! credentials for a Unix socket) and the uid of the listener, so that another user's server is
//! never used nor stopped; and the pid of our own server, from `/proc`.

use super::*;

/// Whose sccache server listens where the client looks. sccache's client talks to whatever
/// listens at its address, and its server compiles with its own uid and writes its own cache: a
/// server of another user's would serve this user objects it chose (cache poisoning) and write
/// this user's outputs as that user. So only a server that is known to be ours is used or stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// The caller's effective uid.
    Us,
    /// Another user, by uid.
    Other(u32),
    /// This platform has a way to learn the owner, and it failed (`sock_diag` and `/proc` both
    /// unreadable, no peer credentials): not trusted, since a listener we cannot vouch for is
    /// exactly what an attacker would arrange.
    Unknown,
    /// This platform has no way to learn the owner of a TCP listener without a privileged tool
    /// (macOS, the BSDs, Windows): the server is trusted, as it was before owners were looked
    /// at. README says so.
    #[cfg_attr(any(target_os = "linux", target_os = "android"), allow(dead_code))]
    NoLookup,
}

impl Owner {
    fn of_uid(uid: u32) -> Owner {
        if uid == euid() {
            Owner::Us
        } else {
            Owner::Other(uid)
        }
    }

    /// Whether calls may be forwarded to this server, and the server stopped or killed.
    pub fn trusted(self) -> bool {
        matches!(self, Owner::Us | Owner::NoLookup)
    }

    /// The owner for people: `uid 65534 (nobody)`, `you (uid 0)`, or why it is not known.
    pub fn describe(self) -> String {
        match self {
            Owner::Us => format!("you, {}", describe_uid(euid())),
            Owner::Other(uid) => describe_uid(uid),
            Owner::Unknown => "an unknown user (its owner could not be learned)".into(),
            Owner::NoLookup => "not known (this platform cannot tell)".into(),
        }
    }

    /// The owner's uid, when known.
    pub fn uid(self) -> Option<u32> {
        match self {
            Owner::Us => Some(euid()),
            Owner::Other(uid) => Some(uid),
            Owner::Unknown | Owner::NoLookup => None,
        }
    }
}

#[cfg(unix)]
pub(super) fn euid() -> u32 {
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

#[cfg(not(unix))]
pub(super) fn euid() -> u32 {
    0
}

/// `uid 65534 (nobody)`: the name from `/etc/passwd` read directly, so a static build needs no
/// NSS; users known only to LDAP or the like are shown by uid alone.
pub fn describe_uid(uid: u32) -> String {
    let name = std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|passwd| user_name_in(&passwd, uid));
    match name {
        Some(name) => format!("uid {uid} ({name})"),
        None => format!("uid {uid}"),
    }
}

pub(super) fn user_name_in(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let id = fields.nth(1)?;
        (id.parse() == Ok(uid) && !name.is_empty()).then(|| name.to_owned())
    })
}

/// Is an sccache server accepting connections where the client will look for it?
pub fn is_up() -> bool {
    listening().is_some()
}

/// Whether a server accepts connections where the client will look for it (`None` when none
/// does), and whose it is. On Linux a TCP listener's owner comes from the same `sock_diag` reply
/// that says it listens (`idiag_uid`), so the hot path costs what it did; a Unix socket's owner
/// is its listener's peer credentials on the connection that shows it is up.
pub fn listening() -> Option<Owner> {
    match address() {
        Addr::Tcp(port) => {
            // Asking the kernel costs a third of a TCP handshake (7 µs against 24), and does not wake the
            // server. Only "yes" is taken from it: "no" (after which the caller starts a server)
            // is checked by connecting.
            #[cfg(any(target_os = "linux", target_os = "android"))]
            if let Some(Some(uid)) = listening::tcp_loopback(port) {
                return Some(Owner::of_uid(uid));
            }
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
            // `sock_diag` could not be asked (or the server came up just now): `/proc/net/tcp`
            // has the same uid, for one bounded file read.
            #[cfg(any(target_os = "linux", target_os = "android"))]
            return Some(
                std::fs::read_to_string("/proc/net/tcp")
                    .ok()
                    .and_then(|table| listener::tcp_listener_uid(&table, port))
                    .map_or(Owner::Unknown, Owner::of_uid),
            );
            #[cfg(not(any(target_os = "linux", target_os = "android")))]
            Some(Owner::NoLookup)
        }
        #[cfg(unix)]
        Addr::Socket(path) => {
            let stream = std::os::unix::net::UnixStream::connect(path).ok()?;
            Some(peer_owner(&stream))
        }
        #[cfg(any(target_os = "linux", target_os = "android"))]
        Addr::Abstract(name) => {
            use std::os::linux::net::SocketAddrExt;
            use std::os::unix::net::{SocketAddr as UnixAddr, UnixStream};
            let stream = UnixAddr::from_abstract_name(name)
                .and_then(|a| UnixStream::connect_addr(&a))
                .ok()?;
            Some(peer_owner(&stream))
        }
    }
}

/// The uid of the process that listens at the other end of a Unix socket connection: the
/// credentials the kernel recorded when it called `listen` (`SO_PEERCRED`), or `getpeereid`.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(super) fn peer_owner(stream: &std::os::unix::net::UnixStream) -> Owner {
    use std::os::fd::AsRawFd;
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` and `len` are valid for writing for the duration of the call, and `len`
    // holds `cred`'s size, as SO_PEERCRED expects.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if rc == 0 && len as usize == std::mem::size_of::<libc::ucred>() {
        Owner::of_uid(cred.uid)
    } else {
        Owner::Unknown
    }
}

#[cfg(any(
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd",
    target_os = "openbsd",
    target_os = "netbsd",
    target_os = "dragonfly"
))]
pub(super) fn peer_owner(stream: &std::os::unix::net::UnixStream) -> Owner {
    use std::os::fd::AsRawFd;
    let mut uid: libc::uid_t = 0;
    let mut gid: libc::gid_t = 0;
    // SAFETY: `uid` and `gid` are valid for writing for the duration of the call.
    let rc = unsafe { libc::getpeereid(stream.as_raw_fd(), &mut uid, &mut gid) };
    if rc == 0 {
        Owner::of_uid(uid)
    } else {
        Owner::Unknown
    }
}

/// Other Unix systems (illumos has `getpeerucred`, not wrapped here): no lookup, as before.
#[cfg(all(
    unix,
    not(any(
        target_os = "linux",
        target_os = "android",
        target_os = "macos",
        target_os = "ios",
        target_os = "freebsd",
        target_os = "openbsd",
        target_os = "netbsd",
        target_os = "dragonfly"
    ))
))]
pub(super) fn peer_owner(_stream: &std::os::unix::net::UnixStream) -> Owner {
    Owner::NoLookup
}

/// A server listens where the client looks, and it is not one this user may use or stop: its
/// owner, for messages.
pub fn foreign() -> Option<Owner> {
    listening().filter(|owner| !owner.trusted())
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
pub(super) mod listening {
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

    /// `Some(Some(uid))` when a TCP socket of `uid`'s listens on 127.0.0.1:`port` (or on any
    /// address at that port), `Some(None)` when the kernel says there is none, `None` when it
    /// cannot be asked.
    pub fn tcp_loopback(port: u16) -> Option<Option<u32>> {
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

    /// Where `idiag_uid` is in `struct inet_diag_msg`: after the family, state, timer and
    /// retransmits bytes, the 48-byte `inet_diag_sockid`, and the expires, rqueue and wqueue words.
    const UID_AT: usize = 4 + 48 + 12;

    /// Reads the kernel's reply: an `inet_diag_msg` of a listening socket (with its owner's uid),
    /// or `ENOENT`.
    fn answer(reply: &[u8]) -> Option<Option<u32>> {
        let header = size_of::<NlMsgHdr>();
        if reply.len() < header + 4 {
            return None;
        }
        let kind = u16::from_ne_bytes([reply[4], reply[5]]);
        let body = &reply[header..];
        match kind {
            // `inet_diag_msg` starts with the family and the state.
            SOCK_DIAG_BY_FAMILY if body[1] != TCP_LISTEN => Some(None),
            SOCK_DIAG_BY_FAMILY => {
                let uid = body.get(UID_AT..UID_AT + 4)?;
                Some(Some(u32::from_ne_bytes([uid[0], uid[1], uid[2], uid[3]])))
            }
            NLMSG_ERROR => {
                let errno = -i32::from_ne_bytes([body[0], body[1], body[2], body[3]]);
                (errno == libc::ENOENT).then_some(None)
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
            // SAFETY: geteuid(2) has no preconditions.
            let me = unsafe { libc::geteuid() };
            assert_eq!(tcp_loopback(port), Some(Some(me)));
            // A connected socket on that port is not a listener.
            let _client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            drop(listener);
            assert_eq!(tcp_loopback(port), Some(None));
        }

        #[test]
        fn reads_replies() {
            let reply = |kind: u16, body: &[u8]| {
                let mut r = vec![0u8; size_of::<NlMsgHdr>()];
                r[4..6].copy_from_slice(&kind.to_ne_bytes());
                r.extend_from_slice(body);
                r
            };
            let mut msg = vec![0u8; UID_AT + 8];
            msg[0] = 2;
            msg[1] = TCP_LISTEN;
            msg[UID_AT..UID_AT + 4].copy_from_slice(&65534u32.to_ne_bytes());
            let listen = reply(SOCK_DIAG_BY_FAMILY, &msg);
            assert_eq!(answer(&listen), Some(Some(65534)));
            // A listener whose reply is cut before the uid: the owner cannot be read here.
            let cut = reply(SOCK_DIAG_BY_FAMILY, &[2, TCP_LISTEN, 0, 0]);
            assert_eq!(answer(&cut), None);
            let established = reply(SOCK_DIAG_BY_FAMILY, &[2, 1, 0, 0]);
            assert_eq!(answer(&established), Some(None));
            let enoent = reply(NLMSG_ERROR, &(-libc::ENOENT).to_ne_bytes());
            assert_eq!(answer(&enoent), Some(None));
            let eperm = reply(NLMSG_ERROR, &(-libc::EPERM).to_ne_bytes());
            assert_eq!(answer(&eperm), None);
            assert_eq!(answer(&listen[..10]), None);
            assert_eq!(answer(&reply(3, &[0; 4])), None);
        }
    }
}

/// Finding the process that listens at the server's address, from `/proc`.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(super) mod listener {
    use std::fs;

    use super::Addr;

    /// The pid of the process named `sccache`, running as this user (effective uid), that holds
    /// the listening socket at `addr`. Another user's server is never returned, so nothing here
    /// can lead to it being killed, even for root.
    pub fn sccache_listening_at(addr: &Addr) -> Option<i32> {
        use std::os::unix::fs::MetadataExt;
        let me = super::euid();
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
            // `/proc/PID` belongs to the process's effective uid.
            if fs::metadata(entry.path()).map(|m| m.uid()).ok() != Some(me) {
                continue;
            }
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

    /// The uid column of the socket listening on 127.0.0.1:`port` in `/proc/net/tcp`.
    pub(super) fn tcp_listener_uid(table: &str, port: u16) -> Option<u32> {
        let local = format!("0100007F:{port:04X}");
        table.lines().skip(1).find_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let listening = cols.get(1) == Some(&local.as_str()) && cols.get(3) == Some(&"0A");
            listening.then(|| cols.get(7)?.parse().ok())?
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
    fn user_names_from_passwd() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\n\
                      # a comment\n\
                      nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n\
                      broken\n";
        assert_eq!(user_name_in(passwd, 0).as_deref(), Some("root"));
        assert_eq!(user_name_in(passwd, 65534).as_deref(), Some("nobody"));
        assert_eq!(user_name_in(passwd, 1000), None);
        assert_eq!(Owner::Other(1000).uid(), Some(1000));
        assert!(!Owner::Other(1000).trusted());
        assert!(!Owner::Unknown.trusted());
        assert!(Owner::Us.trusted() && Owner::NoLookup.trusted());
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
        assert_eq!(listener::tcp_listener_uid(tcp, 4242), Some(0));
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
}
