//! The GitHub Actions cache service, as sccache 0.16 (through opendal's `ghac` service) uses it.
//!
//! Two kinds of check, both before a server start:
//! - without the network ([`config_problem`], [`release_problem`]): is the backend enabled with
//!   what it needs (`ACTIONS_RESULTS_URL` and `ACTIONS_RUNTIME_TOKEN`, the v2 flag or a v1
//!   `ACTIONS_CACHE_URL`), has the runtime token expired, and does this sccache release speak the
//!   protocol in use (v2 needs 0.10 or later);
//! - on the network ([`converse`]): the request sccache's own start-up check sends first (a
//!   lookup of its `.sccache_check` entry), then a one-byte ranged read of the signed URL when one
//!   comes back.
//!
//! The runtime token is sent to the service it was issued for and never logged or shown.

use std::env;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use super::{http_endpoints, resolve, split_url, var, Answer, Endpoint, Protocol};

mod writes;
pub use writes::{
    after_forward, after_start, forget_writes, start_log, writes_report, writes_words, StartLog,
};

/// The twirp service sccache's v2 requests go to, under `ACTIONS_RESULTS_URL`.
const TWIRP: &str = "twirp/github.actions.results.api.v1.CacheService";

/// The key sccache's start-up check reads (opendal's root `/sccache` plus `.sccache_check`).
const CHECK_KEY: &str = "sccache/.sccache_check";

/// The sccache release this check speaks for, learnt from `sccache --version` before a start.
static SCCACHE_VERSION: OnceLock<String> = OnceLock::new();

/// Whether sccache would use the GitHub Actions cache: `SCCACHE_GHA_ENABLED` 1/true/on, or
/// `SCCACHE_GHA_VERSION` set.
pub fn enabled_by_env() -> bool {
    var("SCCACHE_GHA_VERSION").is_some() || super::bool_var("SCCACHE_GHA_ENABLED") == Some(true)
}

/// opendal's choice: v2 when `ACTIONS_CACHE_SERVICE_V2` is set to anything, unless the server is
/// GitHub Enterprise Server (`GITHUB_SERVER_URL` on another host), which only has v1.
fn uses_v2() -> bool {
    var("ACTIONS_CACHE_SERVICE_V2").is_some() && !is_ghes()
}

fn is_ghes() -> bool {
    let Some(url) = var("GITHUB_SERVER_URL") else {
        return false;
    };
    let host = split_url(&url)
        .map(|p| p.host.to_ascii_lowercase())
        .unwrap_or_default();
    host != "github.com" && !host.ends_with(".ghe.com") && !host.ends_with(".localhost")
}

/// The service's base URL: `ACTIONS_RESULTS_URL` for v2; `ACTIONS_CACHE_URL`, else
/// `ACTIONS_RESULTS_URL`, for v1.
fn service_url() -> Option<String> {
    if uses_v2() {
        var("ACTIONS_RESULTS_URL")
    } else {
        var("ACTIONS_CACHE_URL").or_else(|| var("ACTIONS_RESULTS_URL"))
    }
}

/// The endpoint to probe: the service's host, spoken to with the start-up check's request when
/// it is plain HTTP. Over HTTPS (GitHub's own service) the shim has no TLS, so the endpoint is
/// probed like any HTTPS endpoint: it must accept the connection and react to a request.
pub fn endpoints() -> Vec<Endpoint> {
    let Some(url) = service_url() else {
        return Vec::new();
    };
    let mut eps = http_endpoints(&url, None);
    for ep in &mut eps {
        if !ep.tls {
            ep.protocol = Protocol::GhaService;
        }
    }
    eps
}

/// What makes sccache's GHA backend fail at start before it sends a byte, in one line without
/// the token: `None` when nothing is wrong or GHA is not in use.
pub fn config_problem() -> Option<String> {
    if var("ACTIONS_RUNTIME_TOKEN").is_none() {
        return Some("ACTIONS_RUNTIME_TOKEN is not set".into());
    }
    if uses_v2() {
        if var("ACTIONS_RESULTS_URL").is_none() {
            return Some("ACTIONS_CACHE_SERVICE_V2 is set but ACTIONS_RESULTS_URL is not".into());
        }
    } else if var("ACTIONS_CACHE_URL").is_none() {
        return Some(if var("ACTIONS_RESULTS_URL").is_some() {
            "ACTIONS_RESULTS_URL is set but ACTIONS_CACHE_SERVICE_V2 is not (sccache would speak \
             the retired v1 protocol to the v2 service)"
                .into()
        } else {
            "neither ACTIONS_RESULTS_URL (v2) nor ACTIONS_CACHE_URL (v1) is set".into()
        });
    }
    let token = var("ACTIONS_RUNTIME_TOKEN")?;
    let exp = token_expiry(&token)?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
    (exp <= now).then(|| {
        format!(
            "ACTIONS_RUNTIME_TOKEN expired {} s ago",
            now.saturating_sub(exp)
        )
    })
}

/// The `exp` claim of a JWT (seconds since the epoch), read from its payload without checking
/// the signature; `None` when the token is not JWT-shaped or has no `exp`.
pub fn token_expiry(token: &str) -> Option<u64> {
    let mut parts = token.trim().split('.');
    let (_header, payload, _sig) = (parts.next()?, parts.next()?, parts.next()?);
    let json: serde_json::Value = serde_json::from_slice(&base64url(payload)?).ok()?;
    let exp = &json["exp"];
    exp.as_u64().or_else(|| exp.as_f64().map(|f| f as u64))
}

/// Base64url without padding (and tolerating it), as in JWTs.
fn base64url(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.trim_end_matches('=').bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// Before a start with GHA: the release at `sccache` must speak the protocol in use (v2 needs
/// 0.10 or later). Also learns the release, which the start-up check's request names. `None` when
/// it is fine, GHA is not in use, or the release cannot be told in a second.
pub fn release_problem(sccache: &Path) -> Option<String> {
    if !super::detect().iter().any(|b| b.kind == "GHA") {
        return None;
    }
    let mut cmd = std::process::Command::new(sccache);
    cmd.arg("--version").stdin(std::process::Stdio::null());
    let out = crate::child::run_bounded(cmd, Duration::from_secs(1)).ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text
        .lines()
        .next()?
        .trim()
        .strip_prefix("sccache ")?
        .to_owned();
    let _ = SCCACHE_VERSION.set(version.clone());
    let mut numbers = version.split(['.', '-']).map(|n| n.parse::<u32>().ok());
    let (major, minor) = (numbers.next()??, numbers.next()??);
    (uses_v2() && (major, minor) < (0, 10)).then(|| {
        format!(
            "backend-unsupported: GHA cache service v2 (ACTIONS_CACHE_SERVICE_V2) needs sccache \
             0.10 or later; this is {version}"
        )
    })
}

/// The cache version sccache names its entries with: a SHA-256 of `sccache-v<release>`, plus
/// `-<SCCACHE_GHA_VERSION>` when that is set.
fn entry_version() -> String {
    let release = SCCACHE_VERSION.get().map_or("", String::as_str);
    let name = match var("SCCACHE_GHA_VERSION") {
        Some(v) => format!("sccache-v{release}-{v}"),
        None => format!("sccache-v{release}"),
    };
    Sha256::digest(name.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The start-up check's first request on `stream`, then a one-byte read of the entry when the
/// service hands out a signed URL. 200 (hit or miss): up; 429: up but throttled; 400, 5xx and
/// any other error: failing.
pub(super) fn converse(mut stream: TcpStream, ep: &Endpoint, deadline: Instant) -> Answer {
    let Some(url) = service_url() else {
        return Answer::Unknown("no service URL".into());
    };
    let token = var("ACTIONS_RUNTIME_TOKEN").unwrap_or_default();
    let base_path = path_of(&url);
    let base_path = if base_path.ends_with('/') {
        base_path
    } else {
        format!("{base_path}/")
    };
    let request = if uses_v2() {
        let body = serde_json::json!({ "key": CHECK_KEY, "version": entry_version() }).to_string();
        format!(
            "POST {base_path}{TWIRP}/GetCacheEntryDownloadURL HTTP/1.1\r\nHost: {}\r\n\
             Authorization: Bearer {token}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            host_header(ep),
            body.len()
        )
    } else {
        format!(
            "GET {base_path}_apis/artifactcache/cache?keys={}&version={} HTTP/1.1\r\nHost: {}\r\n\
             Authorization: Bearer {token}\r\nAccept: application/json;api-version=6.0-preview.1\r\n\
             Connection: close\r\n\r\n",
            CHECK_KEY.replace('/', "%2F"),
            entry_version(),
            host_header(ep)
        )
    };
    let (status, body) = match exchange(&mut stream, request.as_bytes(), deadline) {
        Ok(reply) => reply,
        Err(answer) => return answer,
    };
    match status {
        200 => {}
        204 => return Answer::Answers,
        429 => return Answer::Throttled,
        _ => return Answer::Fails(format!("HTTP {status}")),
    }
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let signed = [
        "signed_download_url",
        "signedDownloadUrl",
        "archiveLocation",
    ]
    .iter()
    .find_map(|k| json[k].as_str().filter(|s| !s.is_empty()));
    let Some(signed) = signed else {
        return Answer::Answers;
    };
    // The service answered; what fails now is the blob store, and the words say so.
    match ranged_read(signed, deadline) {
        answer if answer.is_failing() => {
            Answer::Fails(format!("its blob store {}", answer.words()))
        }
        answer => answer,
    }
}

/// A one-byte `GET` of a signed blob URL. Over HTTPS (Azure Blob, as GitHub's are) the shim has
/// no TLS and the service's answer stands.
fn ranged_read(url: &str, deadline: Instant) -> Answer {
    let Some(parts) = split_url(url) else {
        return Answer::Answers;
    };
    if parts.scheme.as_deref() != Some("http") {
        return Answer::Answers;
    }
    let port = parts.port.unwrap_or(80);
    let addrs = match resolve(&parts.host, port, deadline) {
        Ok(addrs) => addrs,
        Err(answer) => return answer,
    };
    let Some(addr) = addrs.first() else {
        return Answer::NoSuchHost;
    };
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Answer::Silent;
    }
    let mut stream = match TcpStream::connect_timeout(addr, left) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return Answer::Refused,
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return Answer::Silent,
        Err(e) => return Answer::Unknown(e.to_string()),
    };
    let host = match parts.port {
        Some(p) => format!("{}:{p}", parts.host),
        None => parts.host.clone(),
    };
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {host}\r\nRange: bytes=0-0\r\nx-ms-version: 2019-12-12\r\n\
         Connection: close\r\n\r\n",
        path_of(url)
    );
    match exchange(&mut stream, request.as_bytes(), deadline) {
        Ok((200 | 206 | 416, _)) => Answer::Answers,
        Ok((429, _)) => Answer::Throttled,
        Ok((status, _)) => Answer::Fails(format!("HTTP {status}")),
        Err(answer) => answer,
    }
}

fn host_header(ep: &Endpoint) -> String {
    if ep.host.contains(':') {
        format!("[{}]:{}", ep.host, ep.port)
    } else {
        format!("{}:{}", ep.host, ep.port)
    }
}

/// The path and query of `url` (`/` when it has none).
fn path_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    match rest.find(['/', '?']) {
        Some(i) if rest[i..].starts_with('/') => rest[i..].to_owned(),
        Some(i) => format!("/{}", &rest[i..]),
        None => "/".to_owned(),
    }
}

/// Sends `request` and reads the reply's status code and body (up to 64 KiB), all before
/// `deadline`.
pub(super) fn exchange(
    stream: &mut TcpStream,
    request: &[u8],
    deadline: Instant,
) -> Result<(u16, Vec<u8>), Answer> {
    let io = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => Answer::Silent,
        std::io::ErrorKind::ConnectionReset
        | std::io::ErrorKind::BrokenPipe
        | std::io::ErrorKind::ConnectionAborted => Answer::Closed,
        _ => Answer::Unknown(e.to_string()),
    };
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(Answer::Silent);
    }
    let _ = stream.set_write_timeout(Some(left));
    stream.write_all(request).map_err(io)?;
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Answer::Silent);
        }
        let _ = stream.set_read_timeout(Some(left));
        let n = stream.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        reply.extend_from_slice(&buf[..n]);
        if reply.len() > 64 * 1024 || complete(&reply) {
            break;
        }
    }
    if reply.is_empty() {
        return Err(Answer::Closed);
    }
    let text = String::from_utf8_lossy(&reply);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| Answer::Unknown("not an HTTP reply".into()))?;
    let body = match reply.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(i) => reply[i + 4..].to_vec(),
        None => Vec::new(),
    };
    Ok((status, body))
}

/// Whether `reply` holds the whole response: headers, and as many body bytes as
/// `Content-Length` says.
fn complete(reply: &[u8]) -> bool {
    let Some(end) = reply.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&reply[..end]).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    match length {
        Some(n) => reply.len() >= end + 4 + n,
        None => false,
    }
}

/// Where `env` has these names, for the probe's origin text.
pub fn origin() -> String {
    let mut names = vec![if env::var_os("SCCACHE_GHA_VERSION").is_some() {
        "SCCACHE_GHA_VERSION"
    } else {
        "SCCACHE_GHA_ENABLED"
    }];
    if uses_v2() {
        names.push("ACTIONS_RESULTS_URL");
    } else if var("ACTIONS_CACHE_URL").is_some() {
        names.push("ACTIONS_CACHE_URL");
    }
    names.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_expiry_is_read_from_the_payload() {
        // {"exp":4102444800} in base64url, between a header and a signature.
        let token = "eyJhbGciOiJub25lIn0.eyJleHAiOjQxMDI0NDQ4MDB9.c2ln";
        assert_eq!(token_expiry(token), Some(4102444800));
        assert_eq!(token_expiry("not-a-jwt"), None);
        assert_eq!(token_expiry("a.!!!.c"), None);
    }

    #[test]
    fn paths() {
        assert_eq!(path_of("http://h:1/"), "/");
        assert_eq!(path_of("http://h:1"), "/");
        assert_eq!(path_of("http://h/a/b?x=1"), "/a/b?x=1");
        assert_eq!(path_of("http://h?x=1"), "/?x=1");
    }
}
