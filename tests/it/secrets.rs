//! Secrets planted where they are logged and shown: in sccache's own error text (from the real
//! sccache, and from a fake for the forms the real one cannot be made to print), in backend URLs,
//! in the breaker's reason, with logging on, and in every format of `status` (`--markdown` goes to
//! a public CI job summary) and `doctor`.

use std::fs;
use std::path::Path;

use crate::support::*;

/// Fails if any of `secrets` is in the build's output, the log, the state dir, `status` in any
/// format, or `doctor`'s findings.
fn assert_nowhere(sb: &Sandbox, build: &Run, log: &Path, secrets: &[&str]) {
    let mut shown = vec![("build output".to_owned(), build.all())];
    shown.push(("log".to_owned(), fs::read(log).unwrap_or_default()));
    for entry in fs::read_dir(&sb.state).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            shown.push((path.display().to_string(), fs::read(&path).unwrap()));
        }
    }
    for args in [
        &["status"][..],
        &["status", "--json"],
        &["status", "--markdown"],
        &["doctor"],
    ] {
        let r = run(&mut sb.shim(args), SHORT);
        assert_eq!(r.code(), Some(0), "{}", r.describe());
        shown.push((args.join(" "), r.all()));
    }
    for (what, bytes) in &shown {
        for secret in secrets {
            assert_eq!(
                count(bytes, secret),
                0,
                "secret {secret:?} in {what}: {}",
                String::from_utf8_lossy(bytes)
            );
        }
    }
}

/// The real sccache, given an Azure connection string with a shared access signature and an
/// endpoint that accepts connections and closes them without a word, quotes the signed URL
/// (`…?sv=…&sig=…`) in its start-up error, which the shim logs. (A refusing endpoint would be
/// caught by the shim's pre-check before sccache said anything; a closed connection is not
/// proof enough for the pre-check, so sccache gets to speak.)
#[test]
fn real_sccache_quoting_a_signed_url_reveals_no_signature() {
    let mut sb = Sandbox::new();
    let Some(sccache) = require_sccache("signed_url") else {
        return;
    };
    let closer = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closer.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in closer.incoming() {
            drop(conn);
        }
    });
    let sig = "SiGnAtUrE0sEcReT%3D";
    let log = sb.data.join("shim.log");
    sb.set_env(
        "SCCACHE_AZURE_CONNECTION_STRING",
        format!(
            "BlobEndpoint=http://127.0.0.1:{port}/devst;SharedAccessSignature=sv=2022-11-02&ss=b&sig={sig}"
        ),
    )
    .set_env("SCCACHE_AZURE_BLOB_CONTAINER", "c")
    .set_env("MAYBE_SCCACHE_LOG", "debug")
    .set_env("MAYBE_SCCACHE_LOG_FILE", &log);
    sb.install_real_sccache(sccache);
    let r = sb.assert_good_build();
    let text = fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("cache storage failed") && text.contains("sig=[redacted]"),
        "sccache's own words reach the log, redacted: {text}"
    );
    assert_nowhere(&sb, &r, &log, &[sig]);
}

/// Credentials in the forms the issue names, in sccache's error text on a compile (logged whole,
/// its first line kept as the breaker's reason): a URL password containing `/` (also known from a
/// variable), an Azure account key, a signed S3 URL, a token in a query string, and a password
/// too short to be replaced anywhere but where it stands as a word.
#[test]
fn planted_credentials_in_sccache_errors_are_redacted_everywhere() {
    let mut sb = Sandbox::new();
    let log = sb.data.join("shim.log");
    let secrets = [
        "Ab/cd-Q7",
        "QWNjb3VudEtleVNlY3JldA==",
        "AKIAPLANTED1",
        "5ee1dbeef",
        "tOkEn77",
        "Zq9!",
    ];
    sb.set_env("MY_CACHE_URL", "redis://:Ab/cd-Q7@127.0.0.1:1/0")
        .set_env("MY_REDIS_PASSWORD", "Zq9!")
        .set_env("MAYBE_SCCACHE_LOG", "debug")
        .set_env("MAYBE_SCCACHE_LOG_FILE", &log);
    let error = "sccache: error: Server startup failed: cannot reach \
                 redis://:Ab/cd-Q7@127.0.0.1:1/0 (AccountKey=QWNjb3VudEtleVNlY3JldA==;\
                 EndpointSuffix=core) at http://h/b/x?X-Amz-Credential=AKIAPLANTED1&\
                 X-Amz-Signature=5ee1dbeef&token=tOkEn77\n\
                 sccache: caused by: password Zq9! was refused\n";
    let calls = sb.sccache_calls_file();
    write_script(
        &sb.bin.join("sccache"),
        &format!(
            "printf '%s\\n' \"$*\" >> {}\ncase \"$1\" in -*) exit 0 ;; esac\nprintf '%s' {} >&2\nexit 2\n",
            sh_quote(calls.as_os_str()),
            sh_quote(error.as_ref())
        ),
    );
    let r = sb.assert_good_build();
    assert!(!sb.sccache_compiles().is_empty(), "sccache was never tried");
    let text = fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("caused by: password [redacted] was refused")
            && text.contains("AccountKey=[redacted];"),
        "sccache's words reach the log, redacted: {text}"
    );
    let st = sb.status_json();
    let reason = st
        .path(&["breaker", "last_failure", "reason"])
        .and_then(Json::as_str)
        .unwrap_or_default()
        .to_owned();
    assert!(
        reason.contains("Server startup failed") && reason.contains("redis://[redacted]@"),
        "the reason is kept, redacted: {st:?}"
    );
    assert_nowhere(&sb, &r, &log, &secrets);
}

/// A reason recorded where a secret was not known as one (another job's environment, an older
/// shim) is still redacted when `status` or `doctor` shows it with the secret in its environment.
#[test]
fn status_redacts_what_its_own_environment_knows_to_be_secret() {
    let sb = Sandbox::new();
    let secret = "OnlyKnownLater1234";
    write_script(
        &sb.bin.join("sccache"),
        &format!("echo 'sccache: error: Server startup failed: rejected {secret}' >&2\nexit 2\n"),
    );
    sb.assert_good_build();
    let reason_kept = sb
        .status_json()
        .path(&["breaker", "last_failure", "reason"])
        .and_then(Json::as_str)
        .is_some_and(|r| r.contains(secret));
    assert!(
        reason_kept,
        "without the secret in the environment, the reason is shown whole"
    );
    for args in [
        &["status"][..],
        &["status", "--json"],
        &["status", "--markdown"],
        &["doctor"],
    ] {
        let r = run(sb.shim(args).env("DEPLOY_TOKEN", secret), SHORT);
        r.assert_success();
        assert!(
            r.out().contains("Server startup failed"),
            "{}",
            r.describe()
        );
        assert_eq!(count(&r.all(), secret), 0, "{}", r.describe());
    }
}
