//! `maybe-sccache status`: before any build, on bad or unreadable state, after a build that fell
//! back and after one that went through the real sccache, and with an open breaker.

use std::fs;
use std::path::PathBuf;

use crate::support::*;

fn parse_json(r: &Run) -> Json {
    json_from_str(&r.out()).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", r.describe()))
}

fn str_at<'a>(j: &'a Json, keys: &[&str]) -> Option<&'a str> {
    j.path(keys).and_then(Json::as_str)
}

fn u64_at(j: &Json, keys: &[&str]) -> u64 {
    j.path(keys)
        .and_then(Json::as_u64)
        .unwrap_or_else(|| panic!("no number at {keys:?} in {j:?}"))
}

#[test]
fn status_before_any_build() {
    let sb = Sandbox::new();
    let j = sb.status_json();
    assert_eq!(j.path(&["sccache", "path"]), Some(&Json::Null), "{j:?}");
    assert_eq!(j.path(&["sccache", "version"]), Some(&Json::Null), "{j:?}");
    match j.path(&["sccache", "looked"]) {
        Some(Json::Array(places)) => assert!(!places.is_empty(), "{j:?}"),
        other => panic!("sccache.looked should list the places looked: {other:?}"),
    }
    assert_eq!(str_at(&j, &["breaker", "state"]), Some("closed"), "{j:?}");
    assert_eq!(u64_at(&j, &["counters", "forwarded"]), 0);
    assert_eq!(u64_at(&j, &["counters", "trips"]), 0);
    for kind in ["bypassed", "fallback"] {
        assert_eq!(
            j.path(&["counters", kind]),
            Some(&Json::Object(serde_json::Map::new())),
            "counters.{kind} should be an empty object: {j:?}"
        );
    }

    let text = run(&mut sb.shim(["status"]), SHORT);
    assert_clean_success(&text);
    assert!(text.out().contains("not found"), "{}", text.describe());

    let md = run(&mut sb.shim(["status", "--markdown"]), SHORT);
    assert_clean_success(&md);
    assert!(
        md.out().starts_with("### maybe-sccache"),
        "{}",
        md.describe()
    );
    assert!(md.out().contains("|---|---|"), "{}", md.describe());
    assert!(
        md.out().contains("| breaker | closed |"),
        "{}",
        md.describe()
    );
}

#[test]
fn status_never_fails_on_bad_state() {
    let sb = Sandbox::new();
    let file = sb.data.join("a-file");
    write_file(&file, "not a directory", 0o644);
    let garbage = sb.data.join("garbage");
    fs::create_dir_all(&garbage).unwrap();
    write_file(
        &garbage.join("events"),
        b"\xff\xfe\x00garbage\nfallback\nforwarded - x\n".as_slice(),
        0o644,
    );
    let breaker = format!("breaker-{}", sb.server_key());
    write_file(
        &garbage.join(&breaker),
        b"open_until soon\n\xff\x00 reason".as_slice(),
        0o644,
    );
    let half = sb.data.join("half");
    fs::create_dir_all(&half).unwrap();
    write_file(
        &half.join("events"),
        "forwarded -\nfallback not-found\nbogus line here x\n",
        0o644,
    );
    fs::create_dir_all(half.join(&breaker)).unwrap(); // a directory where a file should be
    let cases: [(&str, PathBuf); 4] = [
        ("a file", file.clone()),
        ("under a file", file.join("sub")),
        ("garbage", garbage),
        ("half garbage", half),
    ];
    for (what, dir) in cases {
        for format in [None, Some("--json"), Some("--markdown")] {
            let mut cmd = sb.shim(["status"]);
            cmd.args(format).env("MAYBE_SCCACHE_STATE_DIR", &dir);
            let r = run(&mut cmd, SHORT);
            assert_eq!(r.code(), Some(0), "state dir {what}: {}", r.describe());
            assert!(!r.stdout.is_empty(), "state dir {what}: {}", r.describe());
            assert_eq!(count(&r.all(), "panicked"), 0, "{}", r.describe());
            if format == Some("--json") {
                let j = parse_json(&r);
                assert!(
                    matches!(str_at(&j, &["breaker", "state"]), Some("closed" | "open")),
                    "state dir {what}: {j:?}"
                );
                assert!(j.path(&["counters", "fallback"]).is_some(), "{j:?}");
            }
        }
    }
    // The lines that make sense still count.
    let mut cmd = sb.shim(["status", "--json"]);
    cmd.env("MAYBE_SCCACHE_STATE_DIR", sb.data.join("half"));
    let j = parse_json(&run(&mut cmd, SHORT));
    assert_eq!(
        u64_at(&j, &["counters", "fallback", "not-found"]),
        1,
        "{j:?}"
    );
}

/// Counters the user may not read (root ignores permission bits, so this runs as an
/// unprivileged user): `status` still answers, in every format, and counts nothing.
#[test]
fn status_never_fails_on_unreadable_counters() {
    let mut sb = Sandbox::new();
    let events = sb.state.join("events");
    write_file(&events, "forwarded -\n", 0o644);
    if !sb.run_unprivileged("status_never_fails_on_unreadable_counters") {
        return;
    }
    fs::set_permissions(&events, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
    sb.assert_denied(&format!("cat {}", sh_quote(events.as_os_str())));
    for format in [None, Some("--json"), Some("--markdown")] {
        let r = run(sb.shim(["status"]).args(format), SHORT);
        assert_eq!(r.code(), Some(0), "{}", r.describe());
        assert!(!r.stdout.is_empty(), "{}", r.describe());
        assert_eq!(count(&r.all(), "panicked"), 0, "{}", r.describe());
        if format == Some("--json") {
            let j = parse_json(&r);
            assert_eq!(u64_at(&j, &["counters", "forwarded"]), 0, "{j:?}");
        }
    }
}

#[test]
fn status_rejects_unknown_options() {
    let sb = Sandbox::new();
    for args in [
        &["status", "--yaml"][..],
        &["status", "--json", "--markdown"],
        &["status", "json"],
    ] {
        assert_one_error(
            &run(&mut sb.shim(args), SHORT),
            "usage: maybe-sccache status",
        );
    }
}

/// A build on a machine without sccache: every compile falls back, counted as `not-found`.
#[test]
fn status_after_a_fallback_only_build() {
    let sb = Sandbox::new();
    tiny_crate(&sb);
    fs::remove_file(sb.ws.join("Cargo.lock")).unwrap();
    let r = sb.build();
    r.assert_success().assert_no_shim_noise();
    let j = sb.status_json();
    assert_eq!(j.path(&["sccache", "path"]), Some(&Json::Null), "{j:?}");
    assert!(
        u64_at(&j, &["counters", "fallback", "not-found"]) >= 1,
        "the compile should count as a not-found fallback: {j:?}"
    );
    assert_eq!(u64_at(&j, &["counters", "forwarded"]), 0, "{j:?}");
    assert_eq!(str_at(&j, &["breaker", "state"]), Some("closed"), "{j:?}");
    let md = run(&mut sb.shim(["status", "--markdown"]), SHORT);
    assert_clean_success(&md);
    assert!(md.out().contains("not-found"), "{}", md.describe());

    // `reset` clears the counters.
    let r = run(&mut sb.shim(["reset"]), SHORT);
    assert_clean_success(&r);
    assert!(r.stdout.is_empty(), "{}", r.describe());
    let j = sb.status_json();
    assert_eq!(
        j.path(&["counters", "fallback"]),
        Some(&Json::Object(serde_json::Map::new())),
        "{j:?}"
    );
}

/// A build with the real sccache: the compile is forwarded, and status shows sccache's own
/// figures.
#[test]
fn status_after_a_forwarded_build() {
    let Some(sccache) = require_sccache("status_after_a_forwarded_build") else {
        return;
    };
    let sb = Sandbox::new();
    sb.install_real_sccache(sccache);
    tiny_crate(&sb);
    fs::remove_file(sb.ws.join("Cargo.lock")).unwrap();
    let r = sb.build();
    r.assert_success().assert_no_shim_noise();
    let j = sb.status_json();
    assert!(
        u64_at(&j, &["counters", "forwarded"]) >= 1,
        "the compile should have gone through sccache: {j:?}"
    );
    assert_eq!(str_at(&j, &["sccache", "version"]), Some("0.16.0"), "{j:?}");
    assert_eq!(str_at(&j, &["sccache", "found_via"]), Some("PATH"), "{j:?}");
    assert_eq!(
        j.path(&["sccache", "server_up"]),
        Some(&Json::Bool(true)),
        "{j:?}"
    );
    assert!(
        u64_at(&j, &["sccache_stats", "requests"]) >= 1,
        "sccache's figures should be there: {j:?}"
    );
    assert!(j.path(&["sccache_stats", "hit_rate"]).is_some(), "{j:?}");
    assert!(
        j.path(&["counters", "fallback", "not-found"]).is_none(),
        "nothing should have fallen back for want of sccache: {j:?}"
    );
    let md = run(&mut sb.shim(["status", "--markdown"]), SHORT);
    assert_clean_success(&md);
    assert!(md.out().contains("| sccache stats |"), "{}", md.describe());
    assert!(md.out().contains("version 0.16.0"), "{}", md.describe());

    // sccache taken off `PATH` while its server runs: not found, but the server is not called
    // "not running".
    fs::remove_file(sb.bin.join("sccache")).unwrap();
    let j = sb.status_json();
    assert_eq!(j.path(&["sccache", "path"]), Some(&Json::Null), "{j:?}");
    assert_eq!(
        j.path(&["sccache", "server_up"]),
        Some(&Json::Bool(true)),
        "{j:?}"
    );
    let text = run(&mut sb.shim(["status"]), SHORT);
    assert_clean_success(&text);
    assert!(
        text.out()
            .lines()
            .any(|l| l.trim().starts_with("server: up, owned by you")),
        "{}",
        text.describe()
    );
}

#[test]
fn status_shows_an_open_breaker_and_reset_closes_it() {
    let sb = Sandbox::new();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    write_file(
        &sb.breaker_file(),
        format!(
            "open_until {}\nfailed_at {now}\nreason start-failed: backend down\n",
            now + 600
        ),
        0o600,
    );
    let j = sb.status_json();
    assert_eq!(str_at(&j, &["breaker", "state"]), Some("open"), "{j:?}");
    assert_eq!(
        str_at(&j, &["breaker", "last_failure", "reason"]),
        Some("start-failed: backend down"),
        "{j:?}"
    );
    let doc = run(&mut sb.shim(["doctor"]), SHORT);
    assert_clean_success(&doc);
    let line = finding(&doc.out(), "breaker:").unwrap_or_else(|| panic!("{}", doc.describe()));
    assert!(
        line.starts_with("FAIL") && line.contains("backend down") && line.contains("reset"),
        "{}",
        doc.describe()
    );

    assert_clean_success(&run(&mut sb.shim(["reset"]), SHORT));
    let j = sb.status_json();
    assert_eq!(str_at(&j, &["breaker", "state"]), Some("closed"), "{j:?}");
    assert_eq!(
        j.path(&["breaker", "last_failure"]),
        Some(&Json::Null),
        "{j:?}"
    );
}
