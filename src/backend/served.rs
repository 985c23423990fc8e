//! The backend the running sccache server names in its statistics (`cache_location`), for the
//! watchdog of a call whose own environment names none: a server started by another shell, a
//! job step or a service manager may use a backend the caller never sees.
//!
//! sccache 0.16 words its opendal backends as `<scheme>, name: <name>, prefix: <root>`, and of
//! those only Redis puts an endpoint in the name (`redis, name: redis://127.0.0.1:6379/0,
//! prefix: /`); S3 and Azure name their bucket or container, GHA its version, memcached and
//! WebDAV nothing (measured with each against a real server). Older releases word Redis as
//! `Redis: redis://…`. So only Redis can be probed from here; every other location gives nothing.

use super::{redis_endpoints, Backend};

/// The caller's backends ([`super::detect`]); when there are none, the probe-able backend the
/// server's statistics name (`cache_location`, as sccache words it).
pub fn detect_or_served(cache_location: Option<&str>) -> Vec<Backend> {
    let mine = super::detect();
    if !mine.is_empty() {
        return mine;
    }
    cache_location.and_then(from_location).into_iter().collect()
}

/// The backend a `cache_location` names, when it names an endpoint the shim can probe.
pub fn from_location(location: &str) -> Option<Backend> {
    let lower = location.trim_start().to_ascii_lowercase();
    if !lower.starts_with("redis") {
        return None;
    }
    // The URL is the word that starts with a Redis scheme, up to the next comma or blank.
    let start = ["redis://", "rediss://"]
        .iter()
        .filter_map(|scheme| lower.find(scheme))
        .min()?;
    let offset = location.len() - location.trim_start().len();
    let url: String = location[offset + start..]
        .chars()
        .take_while(|c| *c != ',' && !c.is_whitespace())
        .collect();
    let endpoints = redis_endpoints(Some(&url));
    (!endpoints.is_empty()).then(|| Backend {
        kind: "Redis",
        origin: "the sccache server's cache_location".into(),
        endpoints,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_redis_locations_name_an_endpoint() {
        let b = from_location("redis, name: redis://:pw@127.0.0.1:7000/2, prefix: /").unwrap();
        assert_eq!(b.kind, "Redis");
        assert_eq!(b.endpoints[0].to_string(), "redis://127.0.0.1:7000");
        assert!(!b.describe().contains("pw"), "{}", b.describe());
        let old = from_location("Redis: rediss://cache.example:6380").unwrap();
        assert_eq!(old.endpoints[0].to_string(), "rediss://cache.example:6380");
        for none in [
            "azblob, name: sccache, prefix: /",
            "ghac, name: sccache-v1, prefix: /",
            "s3, name: bucket, prefix: /",
            "memcached, name: memcached, prefix: /",
            "webdav, name: , prefix: /",
            "Local disk: \"/home/u/.cache/sccache\"",
            "redis, name: redis+unix:///tmp/r.sock, prefix: /",
        ] {
            assert_eq!(from_location(none), None, "{none}");
        }
    }

    #[test]
    fn the_callers_environment_wins_and_the_server_fills_in() {
        let location = "redis, name: redis://127.0.0.1:7, prefix: /";
        // The test process's own environment names no backend (sccache's variables are not set
        // where the unit tests run); the server's location is then used.
        if super::super::detect().is_empty() {
            let b = detect_or_served(Some(location));
            assert_eq!(b.len(), 1);
            assert_eq!(b[0].endpoints[0].port, 7);
        }
        assert!(detect_or_served(None).len() <= super::super::detect().len());
    }
}
