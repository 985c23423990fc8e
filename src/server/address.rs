//! Where the server is and what names it: the address sccache's client uses (a Unix socket,
//! else a TCP port on 127.0.0.1), and the key, hashed from that address and the backend's
//! environment, that names its breaker and start lock in the state dir.

use super::*;

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
pub(super) fn parse_uds(value: &str) -> Option<Addr> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if let Some(escaped) = value.strip_prefix("\\x00") {
        return unescape_ascii(escaped.as_bytes()).map(Addr::Abstract);
    }
    Some(Addr::Socket(value.into()))
}

/// The reverse of `std::ascii::escape_default`, as sccache reads it: `\n`, `\r`, `\t`, `\'`,
/// `\"`, `\\` and `\xHH`; any other backslash sequence is an error.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(super) fn unescape_ascii(s: &[u8]) -> Option<Vec<u8>> {
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
pub(super) const BACKEND_VARS: [&str; 16] = [
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

pub(super) fn key_of(address: &str, vars: impl Iterator<Item = (OsString, OsString)>) -> String {
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
pub(super) struct Fnv1a(u64);

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
pub(super) fn is_credential(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    let place = upper.ends_with("_KEY_PREFIX") || upper.ends_with("_KEY_PATH");
    !place && crate::logging::is_secret_name(&upper)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        // A config with `[dist]` and one without are different files: different breakers (see
        // README, "Past one machine"), though one address still means one server.
        assert_ne!(
            key("port 4226", &[("SCCACHE_CONF", "/etc/sccache/dist.conf")]),
            key("port 4226", &[("SCCACHE_CONF", "/etc/sccache/local.conf")])
        );
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
