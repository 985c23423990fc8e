//! JWT client auth for the dist tests: an RSA key made with the `openssl` command, its public half
//! served as a JWKS document on 127.0.0.1 (sccache-dist's `jwt_validate` client auth fetches it
//! once, when the scheduler starts), and RS256 tokens signed with it, valid or expired.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tempfile::TempDir;

use crate::support::reserve_port;

const AUDIENCE: &str = "maybe-sccache-tests";
const ISSUER: &str = "maybe-sccache-test-issuer";
const KID: &str = "msit-key";

/// An RSA key and the JWKS server that publishes it; the server stops when this is dropped.
pub struct JwtIssuer {
    _dir: TempDir,
    key: PathBuf,
    port: u16,
    stop: Arc<AtomicBool>,
    server: Option<std::thread::JoinHandle<()>>,
}

impl JwtIssuer {
    pub fn new() -> JwtIssuer {
        let dir = tempfile::Builder::new()
            .prefix("msit-jwt-")
            .tempdir()
            .unwrap();
        let key = dir.path().join("key.pem");
        openssl(&["genrsa", "-out", key.to_str().unwrap(), "2048"], b"");
        let modulus = String::from_utf8(openssl(
            &["rsa", "-in", key.to_str().unwrap(), "-noout", "-modulus"],
            b"",
        ))
        .unwrap();
        let hex = modulus
            .trim()
            .strip_prefix("Modulus=")
            .expect("openssl -modulus");
        let n: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        let jwks = format!(
            "{{\"keys\":[{{\"kid\":\"{KID}\",\"kty\":\"RSA\",\"alg\":\"RS256\",\"n\":\"{}\",\
             \"e\":\"AQAB\"}}]}}",
            base64url(&n)
        );
        let port = reserve_port();
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let server = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    return;
                }
                if let Ok(stream) = stream {
                    answer(stream, &jwks);
                }
            }
        });
        JwtIssuer {
            _dir: dir,
            key,
            port,
            stop,
            server: Some(server),
        }
    }

    /// The scheduler's `[client_auth]` body for tokens of this issuer.
    pub fn scheduler_auth(&self) -> String {
        format!(
            "type = \"jwt_validate\"\naudience = \"{AUDIENCE}\"\nissuer = \"{ISSUER}\"\n\
             jwks_url = \"http://127.0.0.1:{}/jwks.json\"\n",
            self.port
        )
    }

    /// A signed token whose `exp` lies `exp_in` seconds from now (negative: in the past).
    pub fn token(&self, exp_in: i64) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let header = format!("{{\"alg\":\"RS256\",\"typ\":\"JWT\",\"kid\":\"{KID}\"}}");
        let claims = format!(
            "{{\"aud\":\"{AUDIENCE}\",\"iss\":\"{ISSUER}\",\"sub\":\"msit\",\"iat\":{},\
             \"exp\":{}}}",
            now - 7200,
            now + exp_in
        );
        let signed = format!(
            "{}.{}",
            base64url(header.as_bytes()),
            base64url(claims.as_bytes())
        );
        let signature = openssl(
            &["dgst", "-sha256", "-sign", self.key.to_str().unwrap()],
            signed.as_bytes(),
        );
        format!("{signed}.{}", base64url(&signature))
    }
}

impl Drop for JwtIssuer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // One more connection wakes the accept loop, which then sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(server) = self.server.take() {
            let _ = server.join();
        }
    }
}

/// Answers one HTTP request with the JWKS document, whatever was asked.
fn answer(mut stream: TcpStream, jwks: &str) {
    let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(5)));
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let _ = write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{jwks}",
        jwks.len()
    );
}

/// Runs `openssl args` with `input` on stdin; its stdout.
fn openssl(args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run openssl (needed for JWT auth): {e}"));
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Base64url without padding (RFC 7515's encoding for JWTs and JWKs).
fn base64url(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len() * 4 / 3 + 3);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (b as u32) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

#[test]
fn base64url_matches_rfc_4648_vectors() {
    for (plain, encoded) in [
        ("", ""),
        ("f", "Zg"),
        ("fo", "Zm8"),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg"),
        ("fooba", "Zm9vYmE"),
        ("foobar", "Zm9vYmFy"),
    ] {
        assert_eq!(base64url(plain.as_bytes()), encoded);
    }
    assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
}
