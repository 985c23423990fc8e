//! Reporting: the shim's log, off by default.
//!
//! Cargo caches and replays non-JSON stderr lines of a wrapper (cargo#9553) and parses the stdout of
//! its probes, so the shim prints nothing of its own unless `MAYBE_SCCACHE_LOG` asks for it. Every
//! line passes through `redact`, so secrets never reach a log, even when they appear inside
//! sccache's own error text: values of secret-looking variables, URL passwords (also with `/` in
//! them), and credentials written `name=value` (signed URLs' `sig=`/`X-Amz-Signature=`, `token=`,
//! Azure's `AccountKey=` and `SharedAccessSignature=`). `status` and `doctor` use it too.

use std::env;
use std::ffi::OsString;
use std::fs::OpenOptions;
use std::io::Write;

/// Turns logging on when `MAYBE_SCCACHE_LOG` is set. Cheap when it is not: one variable lookup.
pub fn init() {
    let Some(filter) = env::var_os("MAYBE_SCCACHE_LOG") else {
        return;
    };
    let mut builder = env_logger::Builder::new();
    // env_logger writes a bad filter's warning straight to stderr, where cargo would take it for
    // the compiler's output: the problem goes to the log instead, which then logs at `info`.
    let filter = filter.to_string_lossy();
    let bad_filter = env_filter::Builder::new().try_parse(&filter).err();
    match bad_filter {
        None => builder.parse_filters(&filter),
        Some(_) => builder.filter_level(log::LevelFilter::Info),
    };
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
        let mut options = OpenOptions::new();
        options.create(true).append(true);
        // Non-blocking: a FIFO nobody reads would block this open, and so every compile, forever;
        // this way it fails at once (and a slow reader cannot stall a call either).
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.custom_flags(libc::O_NONBLOCK);
        }
        match options.open(&path) {
            Ok(file) => {
                builder.target(env_logger::Target::Pipe(Box::new(file)));
            }
            Err(_) => return,
        }
    }
    let _ = builder.try_init();
    if let Some(e) = bad_filter {
        log::warn!("MAYBE_SCCACHE_LOG: {e}; logging at info instead");
    }
}

/// Names that mark a variable's value as secret. (`SESSION` is not one: session tokens are named
/// `…_SESSION_TOKEN`, and `XDG_SESSION_ID=3` is no secret.)
const SECRET_WORDS: &[&str] = &[
    "TOKEN",
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "KEY",
    "CREDENTIAL",
    "AUTH",
    "COOKIE",
    "PRIVATE",
    "SIGNATURE",
];

/// Values of the environment's secret-looking variables, and of every URL's password, longest
/// first so that a secret containing another is replaced whole.
pub fn secret_values() -> Vec<String> {
    secrets_in(env::vars_os())
}

fn secrets_in(vars: impl Iterator<Item = (OsString, OsString)>) -> Vec<String> {
    let mut values: Vec<String> = vars
        .filter_map(|(name, value)| {
            let value = value.into_string().ok()?;
            if let Some(pw) = url_password(&value) {
                return Some(pw.to_owned());
            }
            (is_secret_name(&name.to_string_lossy()) && !is_flag(&value)).then_some(value)
        })
        .collect();
    values.sort_by_key(|v| std::cmp::Reverse(v.len()));
    values
}

/// Does a variable's name mark its value as secret (`…_TOKEN`, `…_PASSWORD`, `…_KEY`, …)?
pub fn is_secret_name(name: &str) -> bool {
    let name = name.to_ascii_uppercase();
    SECRET_WORDS.iter().any(|w| name.contains(w))
}

/// An on/off value: never a secret, and redacting it as a word would garble every log line.
fn is_flag(value: &str) -> bool {
    let v = value.trim().to_ascii_lowercase();
    matches!(
        v.as_str(),
        "" | "0" | "1" | "true" | "false" | "yes" | "no" | "on" | "off"
    )
}

/// The password in `scheme://user:password@host…`, if there is one. It may contain `/` (which a
/// URL parser would take for the start of the path, and so print back whole).
fn url_password(s: &str) -> Option<&str> {
    let userinfo = userinfo(&s[s.find("://")? + 3..])?;
    let pw = &userinfo[userinfo.find(':')? + 1..];
    (!pw.is_empty()).then_some(pw)
}

/// The user information at the start of `rest` (what follows a `://`): everything before the
/// last `@` of the word, unless a `/` comes before any `:` there (then the `@` is in the path:
/// `https://host/a@b`).
fn userinfo(rest: &str) -> Option<&str> {
    let word = &rest[..rest.find(ends_word).unwrap_or(rest.len())];
    let info = &word[..word.rfind('@')?];
    let in_path = info
        .find([':', '/'])
        .is_some_and(|i| info.as_bytes()[i] == b'/');
    (!in_path).then_some(info)
}

fn ends_word(c: char) -> bool {
    c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | '`')
}

/// `redact` with the secrets of this process's environment.
pub fn redact_secrets(text: &str) -> String {
    redact(text, &secret_values())
}

/// Secrets shorter than this are replaced only where they stand as a word of their own: a short
/// password such as `pw` must not turn every `pwd` into `[redacted]d`.
const SHORT_SECRET: usize = 8;

/// Replaces known secret values, any URL's user information, and the values of credentials
/// written `name=value` (query strings, connection strings) by `[redacted]`.
pub fn redact(line: &str, secrets: &[String]) -> String {
    let mut out = line.to_owned();
    for secret in secrets {
        out = if secret.len() >= SHORT_SECRET {
            out.replace(secret.as_str(), REDACTED)
        } else {
            replace_word(&out, secret)
        };
    }
    redact_credentials(&redact_userinfo(&out))
}

const REDACTED: &str = "[redacted]";

/// Replaces `word` where no letter, digit or `_` touches it on either side.
fn replace_word(text: &str, word: &str) -> String {
    if word.is_empty() {
        return text.to_owned();
    }
    let touches = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some((before, after)) = rest.split_once(word) {
        out.push_str(before);
        if !touches(before.chars().next_back()) && !touches(after.chars().next()) {
            out.push_str(REDACTED);
            rest = after;
            continue;
        }
        // Part of a longer word: keep its first character and search again after it.
        let mut from_word = rest[before.len()..].chars();
        out.extend(from_word.next());
        rest = from_word.as_str();
    }
    out.push_str(rest);
    out
}

fn redact_userinfo(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some((head, tail)) = rest.split_once("://") {
        out.push_str(head);
        out.push_str("://");
        rest = tail;
        if let Some(info) = userinfo(tail) {
            out.push_str(REDACTED);
            rest = &tail[info.len()..];
        }
    }
    out.push_str(rest);
    out
}

/// Parts of names that mark `name=value` as a credential: `sig` and `X-Amz-Signature` (signed
/// URLs), `token`, `AccountKey` and `SharedAccessSignature` (Azure connection strings), ….
const CREDENTIAL_NAMES: &[&str] = &[
    "sig",
    "token",
    "secret",
    "password",
    "passwd",
    "pwd",
    "key",
    "credential",
    "auth",
];

/// Replaces the value of every `name=value` whose name marks a credential. A value ends where a
/// query string or connection string item does (`&`, `;`), or at a space, quote or bracket.
fn redact_credentials(s: &str) -> String {
    let is_name = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    let ends_value = |c: char| ends_word(c) || matches!(c, '&' | ';' | ',' | '(' | ')' | '[' | ']');
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some((before, value)) = rest.split_once('=') {
        let name = before
            .rsplit(|c| !is_name(c))
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        let len = value.find(ends_value).unwrap_or(value.len());
        out.push_str(before);
        out.push('=');
        if len > 0 && CREDENTIAL_NAMES.iter().any(|w| name.contains(w)) {
            out.push_str(REDACTED);
            rest = &value[len..];
        } else {
            rest = value;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(pairs: &[(&str, &str)]) -> Vec<String> {
        secrets_in(pairs.iter().map(|(k, v)| (k.into(), v.into())))
    }

    #[test]
    fn secret_values_of_the_environment() {
        let found = secrets(&[
            ("MY_API_TOKEN", "tok-12345"),
            ("aws_secret_access_key", "abc"),
            ("SCCACHE_REDIS_ENDPOINT", "redis://:Ab/cd@127.0.0.1:6379"),
            ("DATABASE_URL", "postgres://u:pw@db/x"),
            ("HOME", "/root"),
            ("SOME_KEY_ENABLED", "true"),
            ("GH_TOKEN", ""),
            ("XDG_SESSION_ID", "3"),
        ]);
        assert_eq!(found, ["tok-12345", "Ab/cd", "abc", "pw"]);
        // Longest first, whatever the order of the environment.
        assert_eq!(
            secrets(&[("A_KEY", "ab"), ("B_KEY", "abcd"), ("C_KEY", "abc")]),
            ["abcd", "abc", "ab"]
        );
        assert_eq!(secrets(&[("X", "redis://host:1")]), Vec::<String>::new());
        assert!(!secret_values().iter().any(|v| is_flag(v)));
    }

    #[test]
    fn secrets_of_this_process() {
        // Std serialises its own environment access, and no other test sets this variable.
        env::set_var("MAYBE_SCCACHE_UNIT_TEST_TOKEN", "unit-test-secret-value");
        assert!(secret_values().contains(&"unit-test-secret-value".to_owned()));
        assert_eq!(
            redact_secrets("a unit-test-secret-value b redis://u:p@h"),
            "a [redacted] b redis://[redacted]@h"
        );
    }

    #[test]
    fn flags_are_not_secrets() {
        for flag in ["", "0", "1", "TRUE", "false", "yes", "No", " on ", "off"] {
            assert!(is_flag(flag), "{flag:?}");
        }
        for secret in ["2", "t", "onion", "x1"] {
            assert!(!is_flag(secret), "{secret:?}");
        }
    }

    #[test]
    fn url_passwords() {
        assert_eq!(url_password("redis://user:pw@host"), Some("pw"));
        assert_eq!(url_password("redis://:Ab/cd@host:1/0"), Some("Ab/cd"));
        assert_eq!(url_password("redis://:a@b@host"), Some("a@b"));
        assert_eq!(url_password("redis://user:@host"), None);
        assert_eq!(url_password("redis://user@host"), None);
        assert_eq!(url_password("redis://host:6379"), None);
        assert_eq!(url_password("https://host/a:b@c"), None);
        assert_eq!(url_password("user:pw@host"), None);
    }

    #[test]
    fn url_credentials() {
        let r = |s: &str| redact(s, &[]);
        assert_eq!(
            r("connect redis://:pw@127.0.0.1:6379/0 failed"),
            "connect redis://[redacted]@127.0.0.1:6379/0 failed"
        );
        assert_eq!(
            r("at redis://:Ab/cd@host:1 and rediss://u:p@h"),
            "at redis://[redacted]@host:1 and rediss://[redacted]@h"
        );
        assert_eq!(r("'redis://u:x@h'"), "'redis://[redacted]@h'");
        assert_eq!(
            r("see https://example.com/a@b"),
            "see https://example.com/a@b"
        );
        assert_eq!(r("no url: a@b c://"), "no url: a@b c://");
        assert_eq!(r("https://host/x y@z"), "https://host/x y@z");
    }

    #[test]
    fn query_and_connection_string_credentials() {
        let r = |s: &str| redact(s, &[]);
        assert_eq!(
            r("url: http://h/c/x?sv=2022-11-02&ss=b&sig=SiG%3D)"),
            "url: http://h/c/x?sv=2022-11-02&ss=b&sig=[redacted])"
        );
        assert_eq!(
            r("X-Amz-Credential=AKIA/2024/s3&X-Amz-Signature=ab12 done"),
            "X-Amz-Credential=[redacted]&X-Amz-Signature=[redacted] done"
        );
        assert_eq!(
            r("AccountName=dev;AccountKey=U2Vj==;EndpointSuffix=core"),
            "AccountName=dev;AccountKey=[redacted];EndpointSuffix=core"
        );
        assert_eq!(
            r("SharedAccessSignature=sv=1&sig=x,token=t\"Password=p'pwd=q auth=a"),
            "SharedAccessSignature=[redacted]&sig=[redacted],token=[redacted]\"Password=[redacted]'pwd=[redacted] auth=a"
                .replace("auth=a", "auth=[redacted]")
        );
        assert_eq!(
            r("a secret=s;passwd=p[private_key=k]client_secret=c"),
            "a secret=[redacted];passwd=[redacted][private_key=[redacted]]client_secret=[redacted]"
        );
        assert_eq!(
            r("opt-level=3 crate-type=lib token= sig=;x"),
            "opt-level=3 crate-type=lib token= sig=;x"
        );
        assert_eq!(r("=x key=é"), "=x key=[redacted]");
        assert_eq!(r(" a=1 b.c-d_sig=2"), " a=1 b.c-d_sig=[redacted]");
        assert_eq!(r("sig x=1 sig/y=2"), "sig x=1 sig/y=2");
    }

    #[test]
    fn short_secrets_only_as_words() {
        let secrets = vec!["hunter22".to_owned(), "pw".to_owned()];
        assert_eq!(
            redact("token hunter22 used, xhunter22x", &secrets),
            "token [redacted] used, x[redacted]x"
        );
        assert_eq!(
            redact("pw pwd _pw pw_ 1pw pw1 (pw) é:pw:é pwpw", &secrets),
            "[redacted] pwd _pw pw_ 1pw pw1 ([redacted]) é:[redacted]:é pwpw"
        );
        assert_eq!(replace_word("aé é", "é"), "aé [redacted]");
        assert_eq!(replace_word("", "p"), "");
        assert_eq!(replace_word("a b", ""), "a b");
        let seven = vec!["abcdefg".to_owned()];
        assert_eq!(redact("xabcdefg abcdefg", &seven), "xabcdefg [redacted]");
    }
}
