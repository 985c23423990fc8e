//! The commands CI runs around a build: `reset`, `cache-key` and `should-save`.

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::support::*;

/// `host` and `release` of the toolchain's rustc.
fn host_and_release() -> (String, String) {
    let out = Command::new(toolchain_rustc())
        .arg("-vV")
        .output()
        .expect("rustc -vV");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|| panic!("no {name} in rustc -vV: {text}"))
    };
    (field("host:"), field("release:"))
}

#[test]
fn reset_without_state_and_with_a_file_for_state() {
    let sb = Sandbox::new();
    assert_clean_success(&run(&mut sb.shim(["reset"]), SHORT));
    let file = sb.data.join("state-file");
    write_file(&file, "x", 0o644);
    let mut cmd = sb.shim(["reset"]);
    cmd.env("MAYBE_SCCACHE_STATE_DIR", &file);
    assert_clean_success(&run(&mut cmd, SHORT));
    assert_one_error(&run(&mut sb.shim(["reset", "--all"]), SHORT), "usage");

    // State that cannot be removed (here a directory where the counters file goes; on a runner a
    // root-owned state dir): one error line, exit 2, and what to do about it.
    fs::create_dir_all(sb.state.join("events/x")).unwrap();
    let r = run(&mut sb.shim(["reset"]), SHORT);
    assert_one_error(&r, "cannot clear the state in");
    assert!(
        r.err().contains("MAYBE_SCCACHE_STATE_DIR"),
        "{}",
        r.describe()
    );
}

// ---------------------------------------------------------------------------------------------
// cache-key

/// `key=…` and the restore keys from cache-key's output (the `$GITHUB_OUTPUT` form).
fn parse_key_output(out: &str) -> (String, Vec<String>) {
    let mut lines = out.lines();
    let key = lines
        .next()
        .and_then(|l| l.strip_prefix("key="))
        .unwrap_or_else(|| panic!("no key= line first: {out}"))
        .to_owned();
    assert_eq!(
        lines.next(),
        Some("restore-keys<<MAYBE_SCCACHE_EOF"),
        "{out}"
    );
    let mut restore = Vec::new();
    for line in lines.by_ref() {
        if line == "MAYBE_SCCACHE_EOF" {
            break;
        }
        restore.push(line.to_owned());
    }
    assert_eq!(lines.next(), None, "nothing after the delimiter: {out}");
    assert!(out.ends_with("MAYBE_SCCACHE_EOF\n"), "{out}");
    (key, restore)
}

#[test]
fn cache_key_prints_key_and_restore_prefix() {
    let sb = Sandbox::new();
    tiny_crate(&sb);
    let (host, release) = host_and_release();
    let r = shim_in(&sb, &sb.ws, &["cache-key"]);
    assert_clean_success(&r);
    assert!(r.stderr.is_empty(), "{}", r.describe());
    let out = r.out();
    let (key, restore) = parse_key_output(&out);
    assert_eq!(
        restore,
        [format!("sccache-{host}-{release}-")],
        "no prefix: no empty segment"
    );
    let restore = &restore[0];
    let hash = key
        .strip_prefix(restore.as_str())
        .expect("the key starts with the restore prefix");
    assert!(
        hash.len() == 16
            && hash
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
        "hash {hash:?}"
    );
    if Path::new("/usr/bin/sha256sum").is_file() {
        let sum = Command::new("/usr/bin/sha256sum")
            .arg(sb.ws.join("Cargo.lock"))
            .output()
            .unwrap();
        assert_eq!(
            &String::from_utf8_lossy(&sum.stdout)[..16],
            hash,
            "SHA-256 prefix"
        );
    }

    // Stable, and the same from a subdirectory, or with the lockfile named from elsewhere.
    assert_eq!(shim_in(&sb, &sb.ws, &["cache-key"]).out(), out);
    let deep = sb.ws.join("src/deeper");
    fs::create_dir_all(&deep).unwrap();
    assert_eq!(shim_in(&sb, &deep, &["cache-key"]).out(), out);
    let lock = sb.ws.join("Cargo.lock");
    let named = shim_in(
        &sb,
        sb.root(),
        &["cache-key", "--lockfile", lock.to_str().unwrap()],
    );
    assert_eq!(named.out(), out, "{}", named.describe());
    assert_eq!(
        shim_in(&sb, &sb.ws, &["cache-key", "--prefix", ""]).out(),
        out
    );

    // A prefix goes between the release and the hash, in both lines.
    for args in [
        &["cache-key", "--prefix", "ci"][..],
        &["cache-key", "--prefix=ci"],
    ] {
        let p = shim_in(&sb, &sb.ws, args);
        assert_clean_success(&p);
        assert_eq!(
            parse_key_output(&p.out()),
            (format!("{restore}ci-{hash}"), vec![format!("{restore}ci-")]),
            "{}",
            p.describe()
        );
    }

    // A changed Cargo.lock changes the key, not the restore prefix.
    write_lock(&sb, "0.2.0");
    let changed = shim_in(&sb, &sb.ws, &["cache-key"]);
    assert_clean_success(&changed);
    assert_ne!(changed.out(), out);
    assert_eq!(
        parse_key_output(&changed.out()).1,
        std::slice::from_ref(restore)
    );
    write_lock(&sb, "0.1.0");
    assert_eq!(
        shim_in(&sb, &sb.ws, &["cache-key"]).out(),
        out,
        "same input, same key"
    );
}

/// In a GitHub run the key is new each run (actions/cache never overwrites one), and the restore
/// keys find the newest entry of the same lockfile first, then of any lockfile.
#[test]
fn cache_key_per_run_and_restore_order() {
    let sb = Sandbox::new();
    tiny_crate(&sb);
    let (base_key, base_restore) = parse_key_output(&shim_in(&sb, &sb.ws, &["cache-key"]).out());
    let in_run = |id: &str, attempt: Option<&str>| {
        let mut cmd = sb.shim(["cache-key"]);
        cmd.current_dir(&sb.ws).env("GITHUB_RUN_ID", id);
        if let Some(a) = attempt {
            cmd.env("GITHUB_RUN_ATTEMPT", a);
        }
        let r = run(&mut cmd, SHORT);
        assert_clean_success(&r);
        parse_key_output(&r.out())
    };
    let (key, restore) = in_run("123456789", Some("2"));
    assert_eq!(key, format!("{base_key}-123456789-2"));
    assert_eq!(restore, [base_key.clone(), base_restore[0].clone()]);
    assert_eq!(
        in_run("123456790", Some("1")).0,
        format!("{base_key}-123456790-1")
    );
    assert_eq!(
        in_run("7", None).0,
        format!("{base_key}-7-1"),
        "no attempt: the first"
    );
    // A run id that is not a number is not put into a key.
    assert_eq!(in_run("7;rm -rf", Some("1")).0, base_key);
    // Each restore key is a prefix of the key, the more specific one first.
    assert!(key.starts_with(&restore[0]) && restore[0].starts_with(&restore[1]));
}

#[test]
fn cache_key_asks_the_rustc_in_rustc() {
    let sb = Sandbox::new();
    tiny_crate(&sb);
    let fake = sb.data.join("fake-rustc");
    let nightly = |commit: &str| {
        write_script(
            &fake,
            &format!(
                "printf 'rustc 9.9.9\\nbinary: rustc\\ncommit-hash: {commit}\\n\
                 host: riscv64gc-unknown-none-elf\\nrelease: 9.9.9-nightly\\n'\n"
            ),
        );
        let mut cmd = sb.shim(["cache-key", "--prefix", "x"]);
        cmd.current_dir(&sb.ws).env("RUSTC", &fake);
        let r = run(&mut cmd, SHORT);
        assert_clean_success(&r);
        parse_key_output(&r.out()).1
    };
    // A nightly's release stays the same while its compiler changes: the commit is in the key.
    assert_eq!(
        nightly("0123456789abcdef0123456789abcdef01234567"),
        ["sccache-riscv64gc-unknown-none-elf-9.9.9-nightly-012345678-x-"]
    );
    assert_eq!(
        nightly("fedcba9876543210fedcba9876543210fedcba98"),
        ["sccache-riscv64gc-unknown-none-elf-9.9.9-nightly-fedcba987-x-"]
    );
    assert_eq!(
        nightly("unknown"),
        ["sccache-riscv64gc-unknown-none-elf-9.9.9-nightly-x-"]
    );
}

/// No Cargo.lock (libraries often commit none) and odd characters in the key part still give a
/// usable key, with a notice; in a GitHub step the notice is an annotation.
#[test]
fn cache_key_without_a_lockfile_and_with_odd_characters() {
    let sb = Sandbox::new();
    let above: Vec<_> = sb
        .root()
        .ancestors()
        .filter(|d| d.join("Cargo.lock").exists())
        .collect();
    assert!(
        above.is_empty(),
        "the sandbox must not be inside a cargo project: {above:?}"
    );
    let (host, release) = host_and_release();
    let r = shim_in(
        &sb,
        sb.root(),
        &["cache-key", "--prefix", "linux, stable $(x)"],
    );
    assert_clean_success(&r);
    let (key, restore) = parse_key_output(&r.out());
    assert_eq!(
        key,
        format!("sccache-{host}-{release}-linux__stable___x_-nolock")
    );
    assert_eq!(
        restore,
        [format!("sccache-{host}-{release}-linux__stable___x_-")]
    );
    let err = r.err();
    assert!(
        err.contains("maybe-sccache: notice: no Cargo.lock") && err.contains("became"),
        "{}",
        r.describe()
    );
    let mut cmd = sb.shim(["cache-key"]);
    cmd.current_dir(sb.root()).env("GITHUB_ACTIONS", "true");
    let r = run(&mut cmd, SHORT);
    assert_clean_success(&r);
    assert!(
        r.err()
            .starts_with("::notice title=maybe-sccache cache-key::no Cargo.lock"),
        "{}",
        r.describe()
    );
    // An over-long key part is shortened to fit actions/cache's 512 characters.
    let long = "j".repeat(600);
    let r = shim_in(&sb, sb.root(), &["cache-key", "--prefix", &long]);
    assert_clean_success(&r);
    let (key, _) = parse_key_output(&r.out());
    assert!(key.len() <= 512 && key.ends_with("-nolock"), "{key}");
}

#[test]
fn cache_key_errors() {
    let sb = Sandbox::new();
    // Only a lockfile named explicitly must exist.
    assert_one_error(
        &shim_in(
            &sb,
            sb.root(),
            &["cache-key", "--lockfile", "/nonexistent/Cargo.lock"],
        ),
        "/nonexistent/Cargo.lock",
    );

    tiny_crate(&sb);
    // RUSTC names a missing file.
    let mut cmd = sb.shim(["cache-key"]);
    cmd.current_dir(&sb.ws).env("RUSTC", "/nonexistent/rustc");
    assert_one_error(&run(&mut cmd, SHORT), "/nonexistent/rustc");
    // No RUSTC, and no rustc on PATH.
    let mut cmd = sb.shim(["cache-key"]);
    cmd.current_dir(&sb.ws)
        .env_remove("RUSTC")
        .env("PATH", &sb.bin);
    assert_one_error(&run(&mut cmd, SHORT), "rustc");
    // A rustc that fails.
    let broken = sb.data.join("broken-rustc");
    write_script(&broken, "echo 'error: toolchain is broken' >&2\nexit 1\n");
    let mut cmd = sb.shim(["cache-key"]);
    cmd.current_dir(&sb.ws).env("RUSTC", &broken);
    assert_one_error(&run(&mut cmd, SHORT), "toolchain is broken");
    // Bad arguments.
    for (args, needle) in [
        (&["cache-key", "--bogus"][..], "--bogus"),
        (&["cache-key", "--prefix"], "--prefix needs a value"),
        (&["cache-key", "--prefix", "a", "--prefix", "b"], "twice"),
        (&["cache-key", "extra"], "extra"),
    ] {
        assert_one_error(&shim_in(&sb, &sb.ws, args), needle);
    }
}

#[test]
fn cache_key_github_output() {
    let sb = Sandbox::new();
    tiny_crate(&sb);
    let printed = shim_in(&sb, &sb.ws, &["cache-key", "--prefix", "ci"]).out();

    let output = sb.data.join("github-output");
    write_file(&output, "earlier=1\n", 0o644);
    let mut cmd = sb.shim(["cache-key", "--prefix", "ci", "--github-output"]);
    cmd.current_dir(&sb.ws).env("GITHUB_OUTPUT", &output);
    let r = run(&mut cmd, SHORT);
    assert_clean_success(&r);
    assert_eq!(r.out(), printed, "the key is printed too");
    assert_eq!(
        fs::read_to_string(&output).unwrap(),
        format!("earlier=1\n{printed}"),
        "appended, the earlier content kept"
    );

    // Unset, a directory, a missing directory: a clear error, nothing printed, nothing written.
    assert_one_error(
        &shim_in(&sb, &sb.ws, &["cache-key", "--github-output"]),
        "GITHUB_OUTPUT is not set",
    );
    let mut cmd = sb.shim(["cache-key", "--github-output"]);
    cmd.current_dir(&sb.ws).env("GITHUB_OUTPUT", "");
    assert_one_error(&run(&mut cmd, SHORT), "GITHUB_OUTPUT is not set");
    for bad in [sb.data.clone(), sb.data.join("missing/dir/output")] {
        let mut cmd = sb.shim(["cache-key", "--github-output"]);
        cmd.current_dir(&sb.ws).env("GITHUB_OUTPUT", &bad);
        assert_one_error(&run(&mut cmd, SHORT), "cannot append to $GITHUB_OUTPUT");
    }
}

// ---------------------------------------------------------------------------------------------
// should-save

fn should_save(sb: &Sandbox, args: &[&str]) -> (bool, String) {
    let mut cmd = sb.shim(["should-save"]);
    cmd.args(args);
    let r = run(&mut cmd, SHORT);
    assert_clean_success(&r);
    let out = r.out();
    let save = match out.lines().next() {
        Some("save=true") => true,
        Some("save=false") => false,
        _ => panic!("no save= line first: {}", r.describe()),
    };
    let reason = out
        .lines()
        .find_map(|l| l.strip_prefix("reason="))
        .unwrap_or_else(|| panic!("no reason= line: {}", r.describe()))
        .to_owned();
    (save, reason)
}

/// A cold build writes new objects: save. The same build again on a fresh target dir with a new
/// server (the next CI run, its cache restored) only hits: nothing to save.
#[test]
fn should_save_after_a_cold_and_a_warm_build() {
    let Some(sccache) = require_sccache("should_save_after_a_cold_and_a_warm_build") else {
        return;
    };
    let sb = Sandbox::new();
    sb.install_real_sccache(sccache);
    let (save, reason) = should_save(&sb, &[]);
    assert!(!save && reason.contains("no sccache server"), "{reason}");

    sb.assert_good_build();
    let (save, reason) = should_save(&sb, &[]);
    assert!(
        save && reason.contains(&format!("{LIB_CRATES} of {LIB_CRATES} cacheable compiles")),
        "a cold build should be saved: {reason}"
    );
    let (save, _) = should_save(&sb, &["--threshold", "100"]);
    assert!(save, "every compile missed: even 100 % is reached");

    // The next run: a fresh target dir and a fresh server, the cache restored.
    run(sb.command(sccache).arg("--stop-server"), SHORT);
    fs::remove_dir_all(&sb.target).unwrap();
    sb.assert_good_build();
    let (save, reason) = should_save(&sb, &["--threshold", "0"]);
    assert!(
        !save && reason.contains("no cache misses"),
        "a warm build writes nothing new: {reason}"
    );

    // --github-output appends the same lines.
    let output = sb.data.join("github-output");
    let mut cmd = sb.shim(["should-save", "--github-output"]);
    cmd.env("GITHUB_OUTPUT", &output);
    let r = run(&mut cmd, SHORT);
    assert_clean_success(&r);
    assert_eq!(fs::read_to_string(&output).unwrap(), r.out());
    assert_one_error(
        &run(&mut sb.shim(["should-save", "--threshold", "ten"]), SHORT),
        "--threshold",
    );
}
