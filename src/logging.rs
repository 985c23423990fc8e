//! Reporting: the shim's log, off by default.
//!
//! Cargo caches and replays non-JSON stderr lines of a wrapper (cargo#9553) and parses the stdout of
//! its probes, so the shim prints nothing of its own unless `MAYBE_SCCACHE_LOG` asks for it. Every
//! line passes through `redact`, so values of secret-looking variables never reach a log, even when
//! they appear inside sccache's own error text (a Redis URL with a password, for example).

use std::env;
use std::fs::OpenOptions;
use std::io::Write;

/// Turns logging on when `MAYBE_SCCACHE_LOG` is set. Cheap when it is not: one variable lookup.
pub fn init() {
    let Some(filter) = env::var_os("MAYBE_SCCACHE_LOG") else {
        return;
    };
    let mut builder = env_logger::Builder::new();
    builder.parse_filters(&filter.to_string_lossy());
    let secrets = secret_values();
    builder.format(move |buf, record| {
        let line = redact(&record.args().to_string(), &secrets);
        writeln!(
            buf,
            "[{} maybe-sccache {} {}] {}",
            buf.timestamp_millis(),
            std::process::id(),
            record.level(),
            line
        )
    });
    if let Some(path) = env::var_os("MAYBE_SCCACHE_LOG_FILE").filter(|p| !p.is_empty()) {
        // A log file that cannot be opened must not fail the build: log to nowhere instead.
        match OpenOptions::new().create(true).append(true).open(&path) {
            Ok(file) => {
                builder.target(env_logger::Target::Pipe(Box::new(file)));
            }
            Err(_) => return,
        }
    }
    let _ = builder.try_init();
}

/// Names that mark a variable's value as secret.
const SECRET_WORDS: &[&str] = &[
    "TOKEN",
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "KEY",
    "CREDENTIAL",
    "AUTH",
    "COOKIE",
    "SESSION",
    "PRIVATE",
    "SIGNATURE",
];

/// Values of the environment's secret-looking variables, and of every URL's password, longest
/// first so that a secret containing another is replaced whole.
fn secret_values() -> Vec<String> {
    let mut values: Vec<String> = env::vars_os()
        .filter_map(|(name, value)| {
            let name = name.to_string_lossy().to_ascii_uppercase();
            let value = value.into_string().ok()?;
            let secret_name = SECRET_WORDS.iter().any(|w| name.contains(w));
            let url_password = url_password(&value);
            match (secret_name, url_password) {
                (true, _) if value.len() >= 4 => Some(value),
                (_, Some(pw)) => Some(pw.to_owned()),
                _ => None,
            }
        })
        .collect();
    values.sort_by_key(|v| std::cmp::Reverse(v.len()));
    values
}

/// The password in `scheme://user:password@host…`, if there is one.
fn url_password(s: &str) -> Option<&str> {
    let rest = &s[s.find("://")? + 3..];
    let userinfo = &rest[..rest.find('@')?];
    if userinfo.contains('/') {
        return None;
    }
    let pw = &userinfo[userinfo.find(':')? + 1..];
    (!pw.is_empty()).then_some(pw)
}

/// `redact` with the secrets of this process's environment.
pub fn redact_secrets(text: &str) -> String {
    redact(text, &secret_values())
}

/// Replaces known secret values, and any URL's user information, by `[redacted]`.
pub fn redact(line: &str, secrets: &[String]) -> String {
    let mut out = line.to_owned();
    for secret in secrets {
        if out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), "[redacted]");
        }
    }
    redact_userinfo(&out)
}

fn redact_userinfo(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c.is_whitespace() || c == '/' || c == '"' || c == '\'')
            .unwrap_or(tail.len());
        match tail[..end].rfind('@') {
            Some(at) => {
                out.push_str("[redacted]");
                rest = &tail[at..];
            }
            None => rest = tail,
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_secrets_and_url_credentials() {
        let secrets = vec!["hunter22".to_owned()];
        assert_eq!(
            redact("token hunter22 used", &secrets),
            "token [redacted] used"
        );
        assert_eq!(
            redact("connect redis://:pw@127.0.0.1:6379/0 failed", &[]),
            "connect redis://[redacted]@127.0.0.1:6379/0 failed"
        );
        assert_eq!(
            redact("see https://example.com/a@b", &[]),
            "see https://example.com/a@b"
        );
        assert_eq!(url_password("redis://user:pw@host"), Some("pw"));
        assert_eq!(url_password("redis://host:6379"), None);
    }
}
