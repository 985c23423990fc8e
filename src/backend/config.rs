//! Reading which backends sccache will use, as sccache 0.16 does: its environment variables and
//! its config file (`SCCACHE_CONF`, else the default path), into endpoints to probe.

use super::*;

/// Backends by sccache's name for them (`s3`, `redis`, …), plus a multilevel chain.
#[derive(Debug, Default)]
pub(super) struct Caches {
    pub(super) found: Vec<(&'static str, Backend)>,
    pub(super) chain: Option<String>,
}

impl Caches {
    pub(super) fn get(&self, name: &str) -> Option<&Backend> {
        self.found.iter().find(|(n, _)| *n == name).map(|(_, b)| b)
    }

    fn set(&mut self, name: &'static str, backend: Backend) {
        self.found.retain(|(n, _)| *n != name);
        self.found.push((name, backend));
    }
}

/// The environment overrides the file, backend by backend (sccache's `CacheConfigs::merge`).
pub(super) fn merge(into: &mut Caches, from: Caches) {
    for (name, backend) in from.found {
        into.set(name, backend);
    }
    if from.chain.is_some() {
        into.chain = from.chain;
    }
}

/// `SCCACHE_CONF`, else sccache's default: `directories`' config dir for ("", "Mozilla",
/// "sccache"), then on macOS its old preference dir.
pub fn config_file_path() -> Option<PathBuf> {
    if let Some(path) = env::var_os("SCCACHE_CONF") {
        return Some(PathBuf::from(path));
    }
    let candidates: Vec<PathBuf> = if cfg!(target_os = "macos") {
        [crate::places::config_dir(), crate::places::preference_dir()]
            .into_iter()
            .flatten()
            .map(|d| d.join("Mozilla.sccache").join("config"))
            .collect()
    } else if cfg!(windows) {
        crate::places::config_dir()
            .map(|d| {
                d.join("Mozilla")
                    .join("sccache")
                    .join("config")
                    .join("config")
            })
            .into_iter()
            .collect()
    } else {
        crate::places::config_dir()
            .map(|d| d.join("sccache").join("config"))
            .into_iter()
            .collect()
    };
    candidates
        .iter()
        .find(|p| p.exists())
        .or(candidates.first())
        .cloned()
}

/// Where sccache's dist client asks for remote compiles: `[dist] scheduler_url` of its config
/// file (sccache 0.19 reads no variable for it), or `None` when sccache-dist is not configured.
pub fn dist_scheduler() -> Option<Endpoint> {
    let (_, root) = read_config_file(&config_file_path()?)?;
    scheduler_in(&root)
}

pub(super) fn scheduler_in(root: &serde_json::Value) -> Option<Endpoint> {
    let url = root.get("dist")?.get("scheduler_url")?.as_str()?;
    http_endpoints(url, None).pop()
}

/// The file as a JSON value (sccache reads `.json` as JSON, anything else as TOML). A missing
/// file is no backend; an unreadable one is logged and ignored (sccache then fails its start).
pub(super) fn read_config_file(path: &Path) -> Option<(PathBuf, serde_json::Value)> {
    // Only a regular file is read: a FIFO would block here (under the start lock, forever), and
    // a pipe given as `<(…)` would be drained before sccache reads it. sccache is left to it.
    if std::fs::metadata(path).is_ok_and(|meta| !meta.is_file()) {
        log::warn!(
            "sccache config {} is not a regular file; its backend is not pre-checked",
            path.display()
        );
        return None;
    }
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            if e.kind() != ErrorKind::NotFound {
                log::warn!("sccache config {} unreadable: {e}", path.display());
            }
            return None;
        }
    };
    let value = if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(&text).map_err(|e| e.to_string())
    } else {
        toml::de::DeTable::parse(&text)
            .map(|t| toml_to_json(&toml::de::DeValue::Table(t.into_inner())))
            .map_err(|e| e.message().to_owned())
    };
    match value {
        Ok(v) => Some((path.to_owned(), v)),
        Err(e) => {
            log::warn!("sccache config {} is not valid: {e}", path.display());
            None
        }
    }
}

/// The parts of a TOML value this module reads (strings, booleans, arrays, tables), as JSON.
pub(super) fn toml_to_json(value: &toml::de::DeValue) -> serde_json::Value {
    use toml::de::DeValue;
    match value {
        DeValue::String(s) => serde_json::Value::String(s.to_string()),
        DeValue::Boolean(b) => serde_json::Value::Bool(*b),
        DeValue::Array(items) => items.iter().map(|i| toml_to_json(i.get_ref())).collect(),
        DeValue::Table(table) => serde_json::Value::Object(
            table
                .iter()
                .map(|(k, v)| (k.get_ref().to_string(), toml_to_json(v.get_ref())))
                .collect(),
        ),
        _ => serde_json::Value::Null,
    }
}

pub(super) fn caches_from_file(root: &serde_json::Value, origin: &str) -> Caches {
    let mut caches = Caches::default();
    let Some(cache) = root.get("cache") else {
        return caches;
    };
    let s = |section: &str, key: &str| -> Option<String> {
        cache
            .get(section)?
            .get(key)?
            .as_str()
            .map(str::to_owned)
            .filter(|v| !v.is_empty())
    };
    let origin = origin.to_owned();
    let backend = |kind, endpoints| Backend {
        kind,
        origin: origin.clone(),
        endpoints,
    };
    if let Some(bucket) = s("s3", "bucket") {
        let use_ssl = cache.get("s3").and_then(|t| t.get("use_ssl")?.as_bool());
        let eps = s3_endpoints(&bucket, s("s3", "endpoint"), s("s3", "region"), use_ssl);
        caches.set("s3", backend("S3", eps));
    }
    if cache.get("redis").is_some() {
        let url = s("redis", "endpoint")
            .or_else(|| s("redis", "cluster_endpoints"))
            .or_else(|| s("redis", "url"));
        caches.set("redis", backend("Redis", redis_endpoints(url.as_deref())));
    }
    if let Some(url) = s("memcached", "url").or_else(|| s("memcached", "endpoint")) {
        caches.set("memcached", backend("memcached", memcached_endpoints(&url)));
    }
    if let Some(url) = s("webdav", "endpoint") {
        caches.set("webdav", backend("WebDAV", http_endpoints(&url, None)));
    }
    if cache.get("gcs").is_some() {
        caches.set("gcs", backend("GCS", cloud::gcs_endpoints()));
    }
    if cache.get("gha").is_some() {
        caches.set("gha", backend("GHA", gha::endpoints()));
    }
    if cache.get("azure").is_some() {
        let eps = s("azure", "connection_string")
            .map(|c| cloud::azure_endpoints(&c))
            .unwrap_or_default();
        caches.set("azure", backend("Azure", eps));
    }
    for (name, kind) in [("oss", "OSS"), ("cos", "COS")] {
        if cache.get(name).is_some() {
            caches.set(name, backend(kind, Vec::new()));
        }
    }
    caches.chain = cache
        .get("multilevel")
        .and_then(|m| m.get("chain"))
        .and_then(|c| match c {
            serde_json::Value::Array(items) => Some(
                items
                    .iter()
                    .filter_map(|i| i.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            serde_json::Value::String(s) => Some(s.clone()),
            _ => None,
        });
    caches
}

pub(super) fn var(name: &str) -> Option<String> {
    env::var(name).ok().filter(|v| !v.trim().is_empty())
}

pub(super) fn bool_var(name: &str) -> Option<bool> {
    match var(name)?.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "on" | "yes" => Some(true),
        "0" | "false" | "off" | "no" => Some(false),
        _ => None,
    }
}

pub(super) fn caches_from_env() -> Caches {
    let mut caches = Caches::default();
    let backend = |kind, origin: &str, endpoints| Backend {
        kind,
        origin: origin.to_owned(),
        endpoints,
    };
    if let Some(bucket) = var("SCCACHE_BUCKET") {
        let endpoint = var("SCCACHE_ENDPOINT");
        let origin = if endpoint.is_some() {
            "SCCACHE_BUCKET, SCCACHE_ENDPOINT"
        } else {
            "SCCACHE_BUCKET"
        };
        let eps = s3_endpoints(
            &bucket,
            endpoint,
            var("SCCACHE_REGION"),
            bool_var("SCCACHE_S3_USE_SSL"),
        );
        caches.set("s3", backend("S3", origin, eps));
    }
    let redis = [
        "SCCACHE_REDIS_ENDPOINT",
        "SCCACHE_REDIS_CLUSTER_ENDPOINTS",
        "SCCACHE_REDIS",
    ]
    .into_iter()
    .find_map(|name| Some((name, var(name)?)));
    if let Some((name, url)) = redis {
        caches.set("redis", backend("Redis", name, redis_endpoints(Some(&url))));
    }
    let memcached = ["SCCACHE_MEMCACHED", "SCCACHE_MEMCACHED_ENDPOINT"]
        .into_iter()
        .find_map(|name| Some((name, var(name)?)));
    if let Some((name, url)) = memcached {
        caches.set(
            "memcached",
            backend("memcached", name, memcached_endpoints(&url)),
        );
    }
    if let Some(url) = var("SCCACHE_WEBDAV_ENDPOINT") {
        caches.set(
            "webdav",
            backend(
                "WebDAV",
                "SCCACHE_WEBDAV_ENDPOINT",
                http_endpoints(&url, None),
            ),
        );
    }
    if let Some(name) = ["SCCACHE_GCS_BUCKET"]
        .into_iter()
        .find(|n| var(n).is_some())
    {
        caches.set("gcs", backend("GCS", name, cloud::gcs_endpoints()));
    }
    if gha::enabled_by_env() {
        caches.set("gha", backend("GHA", &gha::origin(), gha::endpoints()));
    }
    if var("SCCACHE_AZURE_BLOB_CONTAINER").is_some() {
        caches.set(
            "azure",
            backend(
                "Azure",
                "SCCACHE_AZURE_BLOB_CONTAINER",
                cloud::azure_env_endpoints(),
            ),
        );
    }
    if var("SCCACHE_OSS_BUCKET").is_some() {
        caches.set("oss", backend("OSS", "SCCACHE_OSS_BUCKET", Vec::new()));
    }
    if var("SCCACHE_COS_BUCKET").is_some() {
        caches.set("cos", backend("COS", "SCCACHE_COS_BUCKET", Vec::new()));
    }
    caches
}

/// sccache's S3 endpoint: the given one (scheme from `use_ssl`, else from the URL, else plain
/// HTTP, as its `endpoint_resolver`), or AWS's regional endpoint over HTTPS.
pub(super) fn s3_endpoints(
    _bucket: &str,
    endpoint: Option<String>,
    region: Option<String>,
    use_ssl: Option<bool>,
) -> Vec<Endpoint> {
    match endpoint {
        Some(url) => http_endpoints(&url, use_ssl),
        None => {
            let region = region
                .or_else(|| var("AWS_REGION"))
                .or_else(|| var("AWS_DEFAULT_REGION"));
            let host = match region {
                Some(r) => format!("s3.{r}.amazonaws.com"),
                None => "s3.amazonaws.com".to_owned(),
            };
            http_endpoints(&format!("https://{host}"), None)
        }
    }
}

pub(super) fn http_endpoints(url: &str, use_ssl: Option<bool>) -> Vec<Endpoint> {
    let Some(parts) = split_url(url) else {
        return Vec::new();
    };
    let tls = match (use_ssl, parts.scheme.as_deref()) {
        (Some(tls), _) => tls,
        (None, Some(s)) => s.eq_ignore_ascii_case("https"),
        (None, None) => false,
    };
    let port = parts.port.unwrap_or(if tls { 443 } else { 80 });
    let proxied = behind_proxy(&parts.host, tls);
    vec![Endpoint {
        host: parts.host,
        port,
        protocol: Protocol::Http,
        tls,
        proxied,
    }]
}

/// `redis://[user:pw@]host[:port][/db]`, `rediss://…`, `tcp://…`, or a comma-separated list of
/// those for a cluster. A Unix socket (`redis+unix://`, `unix://`) is not probed.
pub(super) fn redis_endpoints(urls: Option<&str>) -> Vec<Endpoint> {
    let Some(urls) = urls else {
        return Vec::new();
    };
    let mut eps = Vec::new();
    for url in urls.split(',').map(str::trim).filter(|u| !u.is_empty()) {
        let Some(parts) = split_url(url) else {
            return Vec::new();
        };
        let tls = match parts.scheme.as_deref() {
            None | Some("redis" | "tcp") => false,
            Some("rediss") => true,
            Some(_) => return Vec::new(),
        };
        eps.push(Endpoint {
            host: parts.host,
            port: parts.port.unwrap_or(6379),
            protocol: Protocol::Redis,
            tls,
            proxied: false,
        });
    }
    eps
}

/// `tcp://host:port` or `host:port`.
pub(super) fn memcached_endpoints(url: &str) -> Vec<Endpoint> {
    let Some(parts) = split_url(url) else {
        return Vec::new();
    };
    if !matches!(parts.scheme.as_deref(), None | Some("tcp" | "memcached")) {
        return Vec::new();
    }
    vec![Endpoint {
        host: parts.host,
        port: parts.port.unwrap_or(11211),
        protocol: Protocol::Memcached,
        tls: false,
        proxied: false,
    }]
}

pub(super) struct UrlParts {
    pub(super) scheme: Option<String>,
    pub(super) host: String,
    pub(super) port: Option<u16>,
}

/// `[scheme://][userinfo@]host[:port][/path][?query]`, with `[v6]` hosts. The user information
/// is dropped here, so no password goes further.
pub(super) fn split_url(url: &str) -> Option<UrlParts> {
    let url = url.trim();
    let (scheme, rest) = match url.split_once("://") {
        Some((s, rest)) => (Some(s.to_ascii_lowercase()), rest),
        None => (None, url),
    };
    let authority = rest.split(['/', '?', '#']).next()?;
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.parse().ok()?),
            None if after.is_empty() => None,
            None => return None,
        };
        (host.to_owned(), port)
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p.parse().ok()?)),
            None => (hostport.to_owned(), None),
        }
    };
    if host.is_empty() || host.contains(':') && !hostport.starts_with('[') {
        return None;
    }
    Some(UrlParts { scheme, host, port })
}

/// Whether sccache's HTTP client would go through a proxy to reach `host` (reqwest honours
/// `HTTPS_PROXY`/`HTTP_PROXY`/`ALL_PROXY`, minus `NO_PROXY`).
pub(super) fn behind_proxy(host: &str, tls: bool) -> bool {
    let names: &[&str] = if tls {
        &["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"]
    } else {
        &["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"]
    };
    if !names.iter().any(|n| var(n).is_some()) {
        return false;
    }
    let no_proxy = var("NO_PROXY")
        .or_else(|| var("no_proxy"))
        .unwrap_or_default();
    let host = host.to_ascii_lowercase();
    !no_proxy.split(',').map(str::trim).any(|rule| {
        let rule = rule.trim_start_matches('.').to_ascii_lowercase();
        rule == "*" || (!rule.is_empty() && (host == rule || host.ends_with(&format!(".{rule}"))))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let hp = |u: &str| split_url(u).map(|p| (p.scheme, p.host, p.port));
        assert_eq!(
            hp("redis://:pw@127.0.0.1:7000/0"),
            Some((Some("redis".into()), "127.0.0.1".into(), Some(7000)))
        );
        assert_eq!(hp("localhost"), Some((None, "localhost".into(), None)));
        assert_eq!(
            hp("http://[::1]:9000/"),
            Some((Some("http".into()), "::1".into(), Some(9000)))
        );
        assert_eq!(hp("http://host:notaport/"), None);
        let eps = redis_endpoints(Some("redis://a:1, rediss://b"));
        assert_eq!(eps.len(), 2);
        assert_eq!(eps[1].to_string(), "rediss://b:6379");
        assert!(redis_endpoints(Some("redis+unix:///tmp/r.sock")).is_empty());
        assert_eq!(
            memcached_endpoints("tcp://127.0.0.1:11211")[0].to_string(),
            "tcp://127.0.0.1:11211"
        );
        assert_eq!(
            http_endpoints("127.0.0.1:9000", Some(true))[0].to_string(),
            "https://127.0.0.1:9000"
        );
        assert_eq!(http_endpoints("https://s3.example.com", None)[0].port, 443);
    }

    #[test]
    fn the_dist_scheduler_is_read_from_the_config_file() {
        let text = "[dist]\nscheduler_url = \"https://sched.example:10600\"\ntoolchains = []\n";
        let table = toml::de::DeTable::parse(text).unwrap();
        let v = toml_to_json(&toml::de::DeValue::Table(table.into_inner()));
        let ep = scheduler_in(&v).unwrap();
        assert_eq!(ep.to_string(), "https://sched.example:10600");
        assert!(scheduler_in(&serde_json::json!({"cache": {}})).is_none());
    }

    #[test]
    fn config_file_sections() {
        let text = "[cache.s3]\nbucket = \"b\"\nendpoint = \"http://127.0.0.1:9\"\n\
                    no_credentials = true\n\n[cache.webdav]\n\
                    endpoint = \"http://u:secret@127.0.0.1:8\"\n\
                    [cache.multilevel]\nchain = [\"webdav\", \"s3\"]\n";
        let table = toml::de::DeTable::parse(text).unwrap();
        let v = toml_to_json(&toml::de::DeValue::Table(table.into_inner()));
        let c = caches_from_file(&v, "config file x");
        let s3 = c.get("s3").unwrap();
        assert_eq!(s3.describe(), "S3 at http://127.0.0.1:9 (config file x)");
        let dav = c.get("webdav").unwrap().describe();
        assert!(!dav.contains("secret"), "{dav}");
        assert_eq!(c.chain.as_deref(), Some("webdav,s3"));
    }
}
