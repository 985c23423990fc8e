//! sccache-dist, as a client sees it: the `[dist]` section of sccache's config file, and two
//! bounded HTTP requests to its scheduler for `doctor`.
//!
//! sccache-dist 0.19's scheduler answers `GET /api/v1/scheduler/status` to anyone (its handler
//! checks no token), so that request says only whether the scheduler is reachable and how many
//! build servers it has. The client token is checked with `POST /api/v1/scheduler/alloc_job`
//! without a body: the scheduler checks the bearer token first (401 when it refuses it) and only
//! then reads the body, which it rejects (400) before any job is allocated. So a 400 means the
//! token was accepted, and nothing changes on the scheduler.

use super::*;

/// sccache's `[dist]` client configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dist {
    /// `scheduler_url` as written.
    pub scheduler_url: String,
    /// The config file it came from.
    pub origin: PathBuf,
    pub auth: DistAuth,
    /// `toolchains`: prepackaged toolchains; needed where sccache cannot package its own.
    pub prepackaged_toolchains: usize,
}

/// How the client authenticates to the scheduler (`[dist.auth]`).
#[derive(Clone, PartialEq, Eq)]
pub enum DistAuth {
    /// `type = "token"`, or sccache's default token when `[dist.auth]` is absent.
    Token(String),
    /// An OAuth2 type: the token comes from `sccache --dist-auth`, kept in sccache's cached
    /// config, which the shim does not read.
    OAuth(String),
}

/// The token never reaches a log or a debug print.
impl fmt::Debug for DistAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DistAuth::Token(_) => f.write_str("Token([redacted])"),
            DistAuth::OAuth(kind) => write!(f, "OAuth({kind})"),
        }
    }
}

/// The token sccache sends when `[dist.auth]` is absent (its `INSECURE_DIST_CLIENT_TOKEN`).
const DEFAULT_TOKEN: &str = "dangerously_insecure_client";

/// The `[dist]` section of sccache's config file (`SCCACHE_CONF`, else the default path), when
/// it names a scheduler; without one sccache never distributes.
pub fn dist_config() -> Option<Dist> {
    let (origin, root) = read_config_file(&config_file_path()?)?;
    dist_from(&root, origin)
}

fn dist_from(root: &serde_json::Value, origin: PathBuf) -> Option<Dist> {
    let dist = root.get("dist")?;
    let scheduler_url = dist
        .get("scheduler_url")?
        .as_str()
        .filter(|u| !u.trim().is_empty())?
        .trim()
        .to_owned();
    let auth = dist.get("auth");
    let kind = auth.and_then(|a| a.get("type")?.as_str());
    let auth = match kind {
        None => DistAuth::Token(DEFAULT_TOKEN.into()),
        Some("token") => DistAuth::Token(
            auth.and_then(|a| a.get("token")?.as_str())
                .unwrap_or_default()
                .to_owned(),
        ),
        Some(other) => DistAuth::OAuth(other.to_owned()),
    };
    let prepackaged_toolchains = dist
        .get("toolchains")
        .and_then(serde_json::Value::as_array)
        .map_or(0, Vec::len);
    Some(Dist {
        scheduler_url,
        origin,
        auth,
        prepackaged_toolchains,
    })
}

/// What the scheduler's status says (sccache-dist's `SchedulerStatusResult`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchedulerStatus {
    pub num_servers: u64,
    pub num_cpus: u64,
    pub in_progress: u64,
}

impl SchedulerStatus {
    /// Reads the status JSON (`{"num_servers":1,"num_cpus":2,"in_progress":0}`).
    pub fn from_json(json: &serde_json::Value) -> Option<SchedulerStatus> {
        let n = |k: &str| json.get(k)?.as_u64();
        Some(SchedulerStatus {
            num_servers: n("num_servers")?,
            num_cpus: n("num_cpus").unwrap_or(0),
            in_progress: n("in_progress").unwrap_or(0),
        })
    }
}

/// Where the scheduler is, for the two requests. `Err` with why the shim cannot speak to it
/// itself (HTTPS, a proxy, an unreadable URL); sccache's own `--dist-status` still can.
pub fn scheduler_place(dist: &Dist) -> Result<Place, String> {
    let parts = split_url(&dist.scheduler_url)
        .ok_or_else(|| "its scheduler_url is not a URL the shim can read".to_owned())?;
    match parts.scheme.as_deref() {
        Some("http") => {}
        Some("https") => return Err("the scheduler is reached over HTTPS".into()),
        _ => return Err("its scheduler_url does not start with http://".into()),
    }
    if behind_proxy(&parts.host, false) {
        return Err("sccache reaches the scheduler through an HTTP proxy".into());
    }
    // sccache joins its paths to the URL: a base path of the scheduler's is kept.
    let after_scheme = dist.scheduler_url.split_once("://").map_or("", |(_, r)| r);
    let base = after_scheme
        .split_once('/')
        .map_or("", |(_, path)| path.split(['?', '#']).next().unwrap_or(""))
        .trim_end_matches('/');
    let port = parts.port.unwrap_or(80);
    Ok(Place {
        base: if base.is_empty() {
            String::new()
        } else {
            format!("/{base}")
        },
        shown: Endpoint {
            host: parts.host,
            port,
            protocol: Protocol::Http,
            tls: false,
            proxied: false,
        },
    })
}

/// A scheduler the shim can speak plain HTTP to.
#[derive(Debug, Clone)]
pub struct Place {
    base: String,
    shown: Endpoint,
}

impl fmt::Display for Place {
    /// `http://host:port[/base]`: no user information, ever.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.shown, self.base)
    }
}

/// `GET …/api/v1/scheduler/status` within `timeout`: the status, or what the scheduler (or its
/// silence) said instead.
pub fn scheduler_status(place: &Place, timeout: Duration) -> Result<SchedulerStatus, Answer> {
    let (code, body) = request(place, "GET", "/api/v1/scheduler/status", None, timeout)?;
    if code != 200 {
        return Err(Answer::Fails(format!("HTTP {code}")));
    }
    serde_json::from_str(&body)
        .ok()
        .as_ref()
        .and_then(SchedulerStatus::from_json)
        .ok_or_else(|| Answer::Fails("HTTP 200 without a scheduler status".into()))
}

/// Whether the scheduler accepts `token` from a client, within `timeout` (see the module's
/// comment): `Ok(true)` for accepted, `Ok(false)` for refused (401).
pub fn token_accepted(place: &Place, token: &str, timeout: Duration) -> Result<bool, Answer> {
    let (code, _) = request(
        place,
        "POST",
        "/api/v1/scheduler/alloc_job",
        Some(token),
        timeout,
    )?;
    match code {
        401 => Ok(false),
        400 => Ok(true),
        other => Err(Answer::Fails(format!("HTTP {other}"))),
    }
}

/// The most of an answer that is read: the status is a few dozen bytes.
const MAX_ANSWER: u64 = 64 * 1024;

/// One HTTP/1.1 request with `Connection: close`, every step within the one deadline: the
/// status code and the body.
fn request(
    place: &Place,
    method: &str,
    path: &str,
    token: Option<&str>,
    timeout: Duration,
) -> Result<(u16, String), Answer> {
    let deadline = Instant::now() + timeout;
    let ep = &place.shown;
    let addrs = resolve(&ep.host, ep.port, deadline)?;
    let mut stream = connect_first(&addrs, deadline)?;
    let host = if ep.host.contains(':') {
        format!("[{}]:{}", ep.host, ep.port)
    } else {
        format!("{}:{}", ep.host, ep.port)
    };
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let body = if method == "POST" {
        "Content-Length: 0\r\n"
    } else {
        ""
    };
    let text = format!(
        "{method} {}{path} HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\n{auth}{body}\
         Connection: close\r\n\r\n",
        place.base
    );
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(Answer::Silent);
    }
    let _ = stream.set_write_timeout(Some(left));
    stream
        .write_all(text.as_bytes())
        .map_err(|e| io_answer(&e, ep))?;
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Answer::Silent);
        }
        let _ = stream.set_read_timeout(Some(left));
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if answer.is_empty() => return Err(io_answer(&e, ep)),
            Err(_) => break,
        }
        if answer.len() as u64 > MAX_ANSWER {
            break;
        }
    }
    parse_answer(&answer).ok_or(Answer::Closed)
}

/// The status code and body of an HTTP/1.x answer (a chunked body is joined).
fn parse_answer(answer: &[u8]) -> Option<(u16, String)> {
    let text = String::from_utf8_lossy(answer);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .strip_prefix("HTTP/1.")?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = if chunked {
        unchunk(body)
    } else {
        body.to_owned()
    };
    Some((code, body))
}

fn unchunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16);
        match size {
            Ok(n) if n > 0 && rest.len() >= n => {
                out.push_str(&rest[..n]);
                body = rest[n..].trim_start_matches("\r\n");
            }
            _ => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dist(toml: &str) -> Option<Dist> {
        let table = toml::de::DeTable::parse(toml).unwrap();
        let root = toml_to_json(&toml::de::DeValue::Table(table.into_inner()));
        dist_from(&root, PathBuf::from("/c"))
    }

    #[test]
    fn the_dist_section_is_read_as_sccache_reads_it() {
        assert_eq!(dist("[cache.disk]\ndir = \"/x\"\n"), None);
        assert_eq!(dist("[dist]\ntoolchains = []\n"), None, "no scheduler");
        let d = dist("[dist]\nscheduler_url = \"http://h:10600\"\n").unwrap();
        assert_eq!(d.auth, DistAuth::Token(DEFAULT_TOKEN.into()));
        let d = dist(
            "[dist]\nscheduler_url = \"http://h:1\"\ntoolchains = [{}]\n\
             [dist.auth]\ntype = \"token\"\ntoken = \"s3cr3t-t0k3n\"\n",
        )
        .unwrap();
        assert_eq!(d.auth, DistAuth::Token("s3cr3t-t0k3n".into()));
        assert_eq!(d.prepackaged_toolchains, 1);
        assert!(!format!("{d:?}").contains("s3cr3t-t0k3n"));
        let d = dist(
            "[dist]\nscheduler_url = \"http://h:1\"\n[dist.auth]\ntype = \"oauth2_implicit\"\n",
        )
        .unwrap();
        assert_eq!(d.auth, DistAuth::OAuth("oauth2_implicit".into()));
    }

    #[test]
    fn scheduler_places_keep_no_user_information() {
        let place = |url: &str| {
            let d = dist(&format!("[dist]\nscheduler_url = \"{url}\"\n")).unwrap();
            scheduler_place(&d).map(|p| p.to_string())
        };
        assert_eq!(
            place("http://u:pw@10.0.0.1:10600").unwrap(),
            "http://10.0.0.1:10600"
        );
        assert_eq!(place("http://h/sched/").unwrap(), "http://h:80/sched");
        assert!(place("https://h:10600").is_err());
        assert!(place("h:10600").is_err());
    }

    #[test]
    fn answers_are_read_plain_or_chunked() {
        let plain = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
        assert_eq!(parse_answer(plain), Some((200, "{}".into())));
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n4\r\n\":1}\r\n0\r\n\r\n";
        assert_eq!(parse_answer(chunked), Some((200, "{\"a\":1}".into())));
        assert_eq!(parse_answer(b"garbage"), None);
        let status = serde_json::json!({"num_servers": 2, "num_cpus": 8, "in_progress": 1});
        assert_eq!(
            SchedulerStatus::from_json(&status),
            Some(SchedulerStatus {
                num_servers: 2,
                num_cpus: 8,
                in_progress: 1
            })
        );
    }
}
