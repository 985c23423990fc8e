//! Azure Blob and Google Cloud Storage: where sccache 0.16 sends their requests, and how a
//! proxy between it and them is probed.
//!
//! Azure: the connection string's `BlobEndpoint`, else
//! `<DefaultEndpointsProtocol>://<AccountName>.blob.<EndpointSuffix>`, probed like S3 and
//! WebDAV endpoints. GCS: sccache has no endpoint override, so always `storage.googleapis.com`
//! over HTTPS; through a proxy (`HTTPS_PROXY`, `ALL_PROXY`) the proxy is what sccache's HTTP client
//! connects to, so the proxy is probed, with the `CONNECT` such a client sends.

use std::net::TcpStream;
use std::time::Instant;

use super::{behind_proxy, http_endpoints, split_url, var, Answer, Endpoint, Protocol};

/// The host every GCS request goes to.
pub const GCS_HOST: &str = "storage.googleapis.com";

/// The blob endpoint of an Azure connection string (`Key=Value;` pairs, keys in any case).
pub fn azure_endpoints(connection_string: &str) -> Vec<Endpoint> {
    let field = |name: &str| {
        connection_string
            .split(';')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    if let Some(url) = field("BlobEndpoint") {
        return http_endpoints(&url, None);
    }
    let Some(account) = field("AccountName") else {
        return Vec::new();
    };
    let scheme = field("DefaultEndpointsProtocol").unwrap_or_else(|| "https".into());
    let suffix = field("EndpointSuffix").unwrap_or_else(|| "core.windows.net".into());
    http_endpoints(&format!("{scheme}://{account}.blob.{suffix}"), None)
}

/// Azure from the environment: `SCCACHE_AZURE_CONNECTION_STRING`.
pub fn azure_env_endpoints() -> Vec<Endpoint> {
    var("SCCACHE_AZURE_CONNECTION_STRING")
        .map(|c| azure_endpoints(&c))
        .unwrap_or_default()
}

/// GCS's host, or the proxy sccache would reach it through.
pub fn gcs_endpoints() -> Vec<Endpoint> {
    if behind_proxy(GCS_HOST, true) {
        let proxy = ["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"]
            .into_iter()
            .find_map(var);
        let Some(parts) = proxy.as_deref().and_then(split_url) else {
            return Vec::new();
        };
        // An HTTPS proxy URL would need TLS to the proxy itself: then only its liveness is
        // probed, like any TLS endpoint.
        let tls = parts.scheme.as_deref() == Some("https");
        return vec![Endpoint {
            host: parts.host,
            port: parts.port.unwrap_or(if tls { 443 } else { 80 }),
            protocol: if tls {
                Protocol::Http
            } else {
                Protocol::ProxyConnect
            },
            tls,
            proxied: false,
        }];
    }
    http_endpoints(&format!("https://{GCS_HOST}"), None)
}

/// Asks the proxy on `stream` for a tunnel to GCS, as sccache's client would. A 2xx reply: the
/// proxy answers and reaches GCS; 407 and other 4xx: the proxy answers (it is a question of
/// credentials or policy, which sccache will report itself); 5xx (502, 503, 504): the proxy
/// cannot reach GCS.
pub(super) fn converse_proxy(mut stream: TcpStream, deadline: Instant) -> Answer {
    let request = format!(
        "CONNECT {GCS_HOST}:443 HTTP/1.1\r\nHost: {GCS_HOST}:443\r\nProxy-Connection: close\r\n\r\n"
    );
    match super::gha::exchange(&mut stream, request.as_bytes(), deadline) {
        Ok((status, _)) if status >= 500 => Answer::Fails(format!("proxy: HTTP {status}")),
        Ok(_) => Answer::Answers,
        // The proxy's tunnel reply has no length: a timed-out read after its status line still
        // counts, so only silence before any byte is silence.
        Err(answer) => answer,
    }
}

/// Whether a probe of `endpoints` that got no answer in time means the backend is down at
/// start: sccache's GHA start-up check and its requests through a proxy wait out their own
/// time-outs (10 s and more) and then fail the start, so waiting for them gains nothing.
pub fn silence_is_down(kind: &str, endpoints: &[Endpoint]) -> bool {
    kind == "GHA"
        || endpoints
            .iter()
            .any(|e| e.protocol == Protocol::ProxyConnect)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn azure_connection_strings() {
        let eps = azure_endpoints(
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=k==;\
             BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;",
        );
        assert_eq!(eps[0].to_string(), "http://127.0.0.1:10000");
        let eps = azure_endpoints("AccountName=acme;AccountKey=k;EndpointSuffix=core.windows.net");
        assert_eq!(eps[0].to_string(), "https://acme.blob.core.windows.net:443");
        assert!(azure_endpoints("AccountKey=k").is_empty());
    }
}
