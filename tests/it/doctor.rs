//! `maybe-sccache doctor`: on a bare machine, finding what stops caching, with the real sccache,
//! and reading cargo's config as cargo does; and the cargo config example it points to.

use std::fs;
use std::path::Path;

use crate::support::*;

/// Puts this shim on `PATH` as `maybe-sccache`, as `cargo install` would.
fn install_shim(sb: &Sandbox) {
    std::os::unix::fs::symlink(shim_bin(), sb.bin.join("maybe-sccache")).unwrap();
}

fn example(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

#[test]
fn doctor_on_a_bare_machine() {
    let mut sb = Sandbox::new();
    sb.set_env("MAYBE_SCCACHE_COOLDOWN", "soon")
        .set_env("CI", "true");
    let r = run(&mut sb.shim(["doctor"]), SHORT);
    assert_clean_success(&r);
    assert!(
        r.stderr.is_empty(),
        "doctor writes to stdout: {}",
        r.describe()
    );
    let out = r.out();
    for line in out
        .lines()
        .filter(|l| l.starts_with("FAIL") || l.starts_with("warn"))
    {
        assert!(
            line.contains(" -- fix: "),
            "every problem needs its fix: {line}"
        );
    }
    let wrapper = finding(&out, "wrapper:").unwrap_or_else(|| panic!("{out}"));
    assert!(
        wrapper.starts_with("FAIL") && wrapper.contains("not configured"),
        "{out}"
    );
    let sccache = finding(&out, "sccache:").unwrap_or_else(|| panic!("{out}"));
    assert!(
        sccache.starts_with("FAIL") && sccache.contains("not found") && sccache.contains("PATH"),
        "{out}"
    );
    assert!(
        finding(&out, "server:").is_none(),
        "no server check without sccache: {out}"
    );
    let storage = finding(&out, "storage:").unwrap_or_else(|| panic!("{out}"));
    assert!(
        storage.starts_with("ok") && storage.contains("writable"),
        "{out}"
    );
    let size = finding(&out, "cache size:").unwrap_or_else(|| panic!("{out}"));
    assert!(
        size.starts_with("warn") && size.contains("SCCACHE_CACHE_SIZE"),
        "{out}"
    );
    // Outside CI, sccache's default size and cargo's incremental dev builds are no problem: notes,
    // not warnings.
    let mut local = sb.shim(["doctor"]);
    local.env_remove("CI").env_remove("CARGO_INCREMENTAL");
    let local = run(&mut local, SHORT);
    assert_clean_success(&local);
    let size =
        finding(&local.out(), "cache size:").unwrap_or_else(|| panic!("{}", local.describe()));
    assert!(
        size.starts_with("info") && size.contains("SCCACHE_CACHE_SIZE"),
        "{}",
        local.describe()
    );
    let incremental =
        finding(&local.out(), "incremental:").unwrap_or_else(|| panic!("{}", local.describe()));
    assert!(
        incremental.starts_with("info") && incremental.contains("is unset"),
        "{}",
        local.describe()
    );
    let mut ci = sb.shim(["doctor"]);
    ci.env_remove("CARGO_INCREMENTAL");
    let ci = run(&mut ci, SHORT);
    let incremental =
        finding(&ci.out(), "incremental:").unwrap_or_else(|| panic!("{}", ci.describe()));
    assert!(
        incremental.starts_with("warn") && incremental.contains("-- fix: set CARGO_INCREMENTAL=0"),
        "{}",
        ci.describe()
    );
    let incremental = finding(&out, "incremental:").unwrap_or_else(|| panic!("{out}"));
    assert!(
        incremental.starts_with("ok"),
        "the sandbox sets CARGO_INCREMENTAL=0: {out}"
    );
    let breaker = finding(&out, "breaker:").unwrap_or_else(|| panic!("{out}"));
    assert!(breaker.starts_with("ok"), "{out}");
    let cooldown = finding(&out, "MAYBE_SCCACHE_COOLDOWN:").unwrap_or_else(|| panic!("{out}"));
    assert!(
        cooldown.starts_with("warn") && cooldown.contains("soon"),
        "{out}"
    );
    assert!(
        out.lines().last().unwrap().contains("stop caching"),
        "{out}"
    );

    let strict = run(&mut sb.shim(["doctor", "--strict"]), SHORT);
    assert_eq!(strict.code(), Some(1), "{}", strict.describe());
    assert_eq!(strict.out(), out, "--strict reports the same");
    assert_one_error(
        &run(&mut sb.shim(["doctor", "--loud"]), SHORT),
        "doctor [--strict]",
    );
}

#[test]
fn doctor_finds_what_stops_caching() {
    let mut sb = Sandbox::new();
    let blocker = sb.data.join("blocker");
    write_file(&blocker, "a file", 0o644);
    sb.set_env("CARGO_INCREMENTAL", "1")
        .set_env("MAYBE_SCCACHE_DISABLE", "1")
        .set_env("SCCACHE_DIR", blocker.join("cache"))
        .set_env("SCCACHE_CACHE_SIZE", "lots")
        .set_env("RUSTC_WRAPPER", "sccache");
    let r = run(&mut sb.shim(["doctor"]), SHORT);
    assert_clean_success(&r);
    let out = r.out();
    let line = |p: &str| finding(&out, p).unwrap_or_else(|| panic!("no {p:?} finding: {out}"));
    assert!(line("incremental:").starts_with("FAIL"), "{out}");
    assert!(
        line("incremental:").contains("CARGO_INCREMENTAL=0"),
        "{out}"
    );
    assert!(line("MAYBE_SCCACHE_DISABLE").starts_with("FAIL"), "{out}");
    assert!(line("storage:").starts_with("FAIL"), "{out}");
    assert!(line("storage:").contains("not writable"), "{out}");
    assert!(line("cache size:").starts_with("warn"), "{out}");
    assert!(line("wrapper:").starts_with("warn"), "{out}");
    assert!(
        line("wrapper:").contains("RUSTC_WRAPPER (environment)"),
        "{out}"
    );
    assert_eq!(
        run(&mut sb.shim(["doctor", "--strict"]), SHORT).code(),
        Some(1)
    );
}

/// A fully set-up machine with the real sccache: `--strict` passes, the server start is timed.
#[test]
fn doctor_with_the_real_sccache() {
    let Some(sccache) = require_sccache("doctor_with_the_real_sccache") else {
        return;
    };
    let mut sb = Sandbox::new();
    sb.install_real_sccache(sccache);
    install_shim(&sb);
    sb.set_env("RUSTC_WRAPPER", "maybe-sccache")
        .set_env("SCCACHE_CACHE_SIZE", "512M");
    let r = run(&mut sb.shim(["doctor", "--strict"]), SHORT);
    assert_clean_success(&r);
    let out = r.out();
    assert!(!out.contains("FAIL"), "{out}");
    assert!(
        finding(&out, "wrapper:").unwrap().starts_with("ok"),
        "{out}"
    );
    let version = finding(&out, "sccache:").unwrap_or_else(|| panic!("{out}"));
    assert!(
        version.starts_with("ok") && version.contains("0.16.0"),
        "{out}"
    );
    let server = finding(&out, "server:").unwrap_or_else(|| panic!("{out}"));
    // A loaded machine may take more than half the deadline: then it is a warning, not a failure.
    assert!(
        (server.starts_with("ok") || server.starts_with("warn"))
            && server.contains("started in")
            && server.contains(" ms"),
        "{out}"
    );
    assert!(
        finding(&out, "cache size:").unwrap().starts_with("ok"),
        "{out}"
    );
    assert!(
        server.contains("stopped again"),
        "doctor leaves no server behind: {out}"
    );
    assert!(
        server.contains(&format!(
            "its cache: Local disk: \"{}\"",
            sb.sccache_dir.display()
        )),
        "doctor says where the server it started caches: {out}"
    );
    assert!(
        !sb.status_json()["sccache"]["server_up"].as_bool().unwrap(),
        "the server doctor started must be gone: {out}"
    );

    // A server that was running before is left running, and doctor says where it caches.
    run(sb.command(sccache).arg("--start-server"), SHORT).assert_success();
    let again = run(&mut sb.shim(["doctor"]), SHORT);
    let server = finding(&again.out(), "server:").unwrap_or_else(|| panic!("{}", again.describe()));
    assert!(
        server.starts_with("ok")
            && server.contains("already running")
            && server.contains("Local disk")
            && server.contains(&sb.sccache_dir.display().to_string()),
        "{}",
        again.describe()
    );
    assert!(sb.status_json()["sccache"]["server_up"].as_bool().unwrap());
    // Started before a backend variable was set: its backend is not what the environment says.
    let mut cmd = sb.shim(["doctor"]);
    cmd.env("SCCACHE_REDIS_ENDPOINT", "redis://127.0.0.1:1");
    let late = run(&mut cmd, SHORT);
    let server = finding(&late.out(), "server:").unwrap_or_else(|| panic!("{}", late.describe()));
    assert!(
        server.starts_with("warn")
            && server.contains("SCCACHE_REDIS_ENDPOINT")
            && server.contains("sccache --stop-server"),
        "{}",
        late.describe()
    );
}

#[test]
fn doctor_reports_a_sccache_that_does_not_run() {
    let sb = Sandbox::new();
    write_garbage(&sb.bin.join("sccache"));
    let r = run(&mut sb.shim(["doctor"]), SHORT);
    assert_clean_success(&r);
    let line = finding(&r.out(), "sccache:").unwrap_or_else(|| panic!("{}", r.describe()));
    assert!(
        line.starts_with("FAIL") && line.contains("does not run"),
        "{}",
        r.describe()
    );
}

#[test]
fn cargo_config_example_names_the_shim() {
    let text = example("examples/cargo-config.toml");
    let mut table = "";
    let mut wrapper = None;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            table = line;
        } else if let Some((k, v)) = line.split_once('=') {
            if table == "[build]" && k.trim() == "rustc-wrapper" {
                wrapper = Some(v.trim().to_owned());
            }
        }
    }
    assert_eq!(wrapper.as_deref(), Some("\"maybe-sccache\""), "{text}");

    // And doctor sees it there, from a subdirectory of the project.
    let sb = Sandbox::new();
    install_shim(&sb);
    let config = sb.ws.join(".cargo/config.toml");
    write_file(&config, &text, 0o644);
    let sub = sb.ws.join("crates/x");
    fs::create_dir_all(&sub).unwrap();
    let r = shim_in(&sb, &sub, &["doctor"]);
    assert_clean_success(&r);
    let line = finding(&r.out(), "wrapper:").unwrap_or_else(|| panic!("{}", r.describe()));
    assert!(
        line.starts_with("ok") && line.contains(&config.display().to_string()),
        "{}",
        r.describe()
    );
}

/// `RUSTC_WRAPPER=maybe-sccache` caches Rust only: cc-rs wraps build scripts' C and C++ for a
/// wrapper named `sccache`. In a project whose Cargo.lock has the cc crate, doctor says so and
/// points to the alias; elsewhere the shim's own name is fine.
#[test]
fn doctor_points_a_c_project_to_the_alias() {
    let mut sb = Sandbox::new();
    install_shim(&sb);
    sb.set_env("RUSTC_WRAPPER", "maybe-sccache");
    write_file(
        &sb.ws.join("Cargo.lock"),
        "version = 4\n\n[[package]]\nname = \"app\"\nversion = \"0.1.0\"\n\
         dependencies = [\n \"zstd-sys\",\n]\n\n[[package]]\nname = \"cc\"\nversion = \"1.2.0\"\n",
        0o644,
    );
    let sub = sb.ws.join("src");
    fs::create_dir_all(&sub).unwrap();
    let r = shim_in(&sb, &sub, &["doctor"]);
    assert_clean_success(&r);
    let line = finding(&r.out(), "wrapper:").unwrap_or_else(|| panic!("{}", r.describe()));
    assert!(line.starts_with("warn"), "{line}");
    assert!(line.contains("C and C++"), "{line}");
    assert!(
        line.contains("-- fix: export RUSTC_WRAPPER=\"$(maybe-sccache alias)\""),
        "{line}"
    );

    // A pure Rust project: the shim's own name is a working set-up.
    let r = shim_in(&sb, sb.root(), &["doctor"]);
    assert_clean_success(&r);
    let line = finding(&r.out(), "wrapper:").unwrap_or_else(|| panic!("{}", r.describe()));
    assert!(line.starts_with("ok"), "{line}");
    assert!(line.contains("maybe-sccache alias"), "{line}");
}

/// doctor reads cargo's config as cargo does, and cargo agrees: for each layout, whether doctor
/// finds the shim configured is checked against whether a real `cargo build` runs it. The layouts:
/// an inline table; `config` beside `config.toml` (cargo reads only `config`); a relative path,
/// which is relative to the directory holding `.cargo/`, not to the current one;
/// `CARGO_BUILD_RUSTC_WRAPPER` over the files.
#[test]
fn doctor_reads_cargo_config_as_cargo_does() {
    /// What the case is, its config files, `CARGO_BUILD_RUSTC_WRAPPER`, and whether cargo runs
    /// the shim then.
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], Option<&'a str>, bool);
    let cases: [Case; 4] = [
        (
            "inline table",
            &[(
                ".cargo/config.toml",
                "build = { rustc-wrapper = \"maybe-sccache\" }\n",
            )],
            None,
            true,
        ),
        (
            "config beside config.toml",
            &[
                (".cargo/config", "[build]\njobs = 1\n"),
                (
                    ".cargo/config.toml",
                    "[build]\nrustc-wrapper = \"maybe-sccache\"\n",
                ),
            ],
            None,
            false,
        ),
        (
            "relative path",
            &[(
                ".cargo/config.toml",
                "build.rustc-wrapper = \"tools/maybe-sccache\"\n",
            )],
            None,
            true,
        ),
        (
            "CARGO_BUILD_RUSTC_WRAPPER",
            &[(
                ".cargo/config.toml",
                "build.rustc-wrapper = \"rustc-wrapper-elsewhere\"\n",
            )],
            Some("maybe-sccache"),
            true,
        ),
    ];
    for (what, files, build_var, configured) in cases {
        let sb = Sandbox::new();
        install_shim(&sb);
        fs::create_dir_all(sb.ws.join("tools")).unwrap();
        std::os::unix::fs::symlink(shim_bin(), sb.ws.join("tools/maybe-sccache")).unwrap();
        for (rel, text) in files {
            write_file(&sb.ws.join(rel), text, 0o644);
        }
        write_file(
            &sb.ws.join("crates/x/Cargo.toml"),
            "[package]\nname = \"x\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
            0o644,
        );
        write_file(&sb.ws.join("crates/x/src/lib.rs"), "", 0o644);
        let sub = sb.ws.join("crates/x");
        let log = sb.data.join("shim.log");
        let mut doctor = sb.shim(["doctor"]);
        let mut build = sb.cargo(&["build", "--offline"]);
        build.env_remove("RUSTC_WRAPPER");
        for cmd in [&mut doctor, &mut build] {
            cmd.current_dir(&sub)
                .env("MAYBE_SCCACHE_LOG", "info")
                .env("MAYBE_SCCACHE_LOG_FILE", &log);
            if let Some(v) = build_var {
                cmd.env("CARGO_BUILD_RUSTC_WRAPPER", v);
            }
        }
        let r = run(&mut doctor, SHORT);
        assert_clean_success(&r);
        let line = finding(&r.out(), "wrapper:").unwrap_or_else(|| panic!("{}", r.describe()));
        assert_eq!(
            line.starts_with("ok"),
            configured,
            "{what}: {}",
            r.describe()
        );
        run(&mut build, BUILD).assert_success();
        let ran = fs::read_to_string(&log).is_ok_and(|t| t.contains("bypass"));
        assert_eq!(ran, configured, "{what}: cargo ran the shim: {ran}");
    }
}
