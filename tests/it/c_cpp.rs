//! C and C++ through the shim: the `sccache` alias that cc-rs routes build scripts' compiles
//! through, the calls sccache never caches going straight to the compiler, fail-open for C exactly
//! as for Rust, and CMake's compiler launcher.
//!
//! The fixture is a workspace whose `cnative` crate compiles one C and one C++ file with the real
//! `cc` crate from crates.io. Its lockfile and sources are fetched once per test run into a cargo
//! home under the test target dir (the only step that may use the network); every build after
//! that is `--offline` against that home.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::support::*;

/// What the fixture's app prints: twice(hello_value()) + 2.
fn app_line(hello: u32) -> String {
    format!("c={}\n", hello * 2 + 2)
}

/// Marker of the fixture's C compile error (`#error`), counted in cargo's output.
const C_ERROR: &str = "fixture-c-error";

/// The cargo home holding the fetched `cc` crate, and the lockfile to copy into each fixture.
fn crates_io() -> &'static (PathBuf, PathBuf) {
    static DONE: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    DONE.get_or_init(|| {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("c-fixture");
        let home = root.join("cargo-home");
        let template = root.join("template");
        write_workspace(&template, "unsigned hello_value(void) { return 1; }\n");
        let lock = template.join("Cargo.lock");
        let cargo = |args: &[&str]| {
            // The one step that may need crates.io: the developer's own environment (proxies,
            // certificates), with a cargo home of the tests' own.
            let mut cmd = Command::new(toolchain_bin().join("cargo"));
            cmd.args(args)
                .env("CARGO_HOME", &home)
                .env("CARGO_TARGET_DIR", root.join("target"))
                .env_remove("RUSTC_WRAPPER")
                .current_dir(&template);
            run(&mut cmd, BUILD)
        };
        if !lock.is_file() {
            cargo(&["generate-lockfile"]).assert_success();
        }
        let offline = cargo(&["fetch", "--locked", "--offline"]);
        if !offline.status.success() {
            cargo(&["fetch", "--locked"]).assert_success();
        }
        (home, lock)
    })
}

/// The fixture's files, with `hello_c` as the C source.
fn write_workspace(ws: &Path, hello_c: &str) {
    let w = |rel: &str, text: &str| write_file(&ws.join(rel), text, 0o644);
    w(
        "Cargo.toml",
        "[workspace]\nmembers = [\"cnative\", \"app\"]\nresolver = \"2\"\n\n\
         [profile.dev]\ndebug = 0\n",
    );
    w(
        "cnative/Cargo.toml",
        "[package]\nname = \"cnative\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\
         publish = false\n\n[build-dependencies]\ncc = \"1\"\n",
    );
    w(
        "cnative/build.rs",
        "fn main() {\n    \
             println!(\"cargo:rerun-if-changed=src/hello.c\");\n    \
             println!(\"cargo:rerun-if-changed=src/twice.cpp\");\n    \
             cc::Build::new().file(\"src/hello.c\").compile(\"hello\");\n    \
             cc::Build::new().cpp(true).file(\"src/twice.cpp\").compile(\"twice\");\n}\n",
    );
    w("cnative/src/hello.c", hello_c);
    w(
        "cnative/src/twice.cpp",
        "extern \"C\" unsigned twice(unsigned x) { return x * 2; }\n",
    );
    w(
        "cnative/src/lib.rs",
        "extern \"C\" {\n    fn hello_value() -> u32;\n    fn twice(x: u32) -> u32;\n}\n\n\
         pub fn value() -> u32 {\n    unsafe { twice(hello_value()) + 2 }\n}\n",
    );
    w(
        "app/Cargo.toml",
        "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2021\"\npublish = false\n\n\
         [dependencies]\ncnative = { path = \"../cnative\" }\n",
    );
    w(
        "app/src/main.rs",
        "fn main() {\n    println!(\"c={}\", cnative::value());\n}\n",
    );
}

/// A sandbox using the fetched cargo home, with the fixture written (C returning `hello`).
pub(crate) fn c_sandbox() -> Sandbox {
    let (home, lock) = crates_io();
    let mut sb = Sandbox::new();
    sb.set_env("CARGO_HOME", home);
    write_workspace(&sb.ws, &hello_source(1));
    fs::copy(lock, sb.ws.join("Cargo.lock")).unwrap();
    sb
}

fn hello_source(value: u32) -> String {
    format!("unsigned hello_value(void) {{ return {value}; }}\n")
}

/// `maybe-sccache alias` in the sandbox; returns the alias's path.
pub(crate) fn make_alias(sb: &Sandbox) -> PathBuf {
    let r = run(&mut sb.shim(["alias"]), SHORT);
    r.assert_success();
    assert!(r.stderr.is_empty(), "{}", r.describe());
    PathBuf::from(r.out().trim_end())
}

/// `cargo build --offline` of the C fixture with `wrapper` as `RUSTC_WRAPPER`.
pub(crate) fn c_build(sb: &Sandbox, wrapper: &Path) -> Run {
    let mut cmd = sb.cargo(&["build", "--offline", "--locked"]);
    cmd.env("RUSTC_WRAPPER", wrapper);
    run(&mut cmd, BUILD)
}

pub(crate) fn assert_app(sb: &Sandbox, hello: u32) {
    assert_eq!(
        sb.app_output(),
        app_line(hello),
        "the C code was not built right"
    );
}

/// sccache's own lines (`sccache: …`) must never reach cargo.
pub(crate) fn assert_no_sccache_text(r: &Run) {
    assert_eq!(count(&r.all(), "sccache: "), 0, "{}", r.describe());
    assert_eq!(count(&r.all(), "panicked"), 0, "{}", r.describe());
}

/// C/C++ hits in sccache's JSON statistics.
fn c_hits(stats: &Json) -> u64 {
    stats
        .path(&["stats", "cache_hits", "counts", "C/C++"])
        .and_then(Json::as_u64)
        .unwrap_or(0)
}

#[test]
fn alias_is_idempotent_and_never_taken_for_sccache() {
    let sb = Sandbox::new();
    let alias = make_alias(&sb);
    assert_eq!(alias.file_name().unwrap(), "sccache");
    assert!(alias.starts_with(&sb.home), "{}", alias.display());
    assert_eq!(
        fs::read_link(&alias).unwrap(),
        Path::new(shim_bin()).canonicalize().unwrap()
    );
    assert_eq!(make_alias(&sb), alias, "a second run gives the same alias");
    assert_eq!(fs::read_dir(alias.parent().unwrap()).unwrap().count(), 1);

    // An alias left pointing at a binary that an upgrade removed is refreshed.
    fs::remove_file(&alias).unwrap();
    std::os::unix::fs::symlink("/gone/bin/maybe-sccache", &alias).unwrap();
    assert_eq!(make_alias(&sb), alias);
    assert_eq!(
        fs::read_link(&alias).unwrap(),
        Path::new(shim_bin()).canonicalize().unwrap()
    );

    // Even on PATH, and named by SCCACHE_PATH, the alias is not "the real sccache".
    let mut cmd = sb.shim(["status", "--json"]);
    cmd.env(
        "PATH",
        format!("{}:/usr/bin:/bin", alias.parent().unwrap().display()),
    )
    .env("SCCACHE_PATH", &alias);
    let r = run(&mut cmd, SHORT);
    r.assert_success();
    let st = json_from_str(&r.out()).unwrap();
    assert_eq!(st.path(&["sccache", "path"]), Some(&Json::Null), "{st:?}");
    assert!(r.out().contains("is maybe-sccache"), "{}", r.out());

    // --dir: a directory of the caller's choosing; a real program there is never replaced.
    let dir = sb.data.join("aliases");
    let r = run(sb.shim(["alias", "--dir"]).arg(&dir), SHORT);
    r.assert_success();
    assert_eq!(
        r.out().trim_end(),
        dir.join("sccache").display().to_string()
    );
    let other = sb.data.join("other");
    write_script(&other.join("sccache"), "exit 0\n");
    let r = run(sb.shim(["alias", "--dir"]).arg(&other), SHORT);
    assert_eq!(r.code(), Some(2), "{}", r.describe());
    assert!(
        r.err().starts_with("maybe-sccache: error: "),
        "{}",
        r.describe()
    );
    assert_eq!(r.err().lines().count(), 1, "{}", r.describe());
    assert_eq!(
        fs::read_to_string(other.join("sccache")).unwrap(),
        "#!/bin/sh\nexit 0\n"
    );
    let r = run(&mut sb.shim(["alias", "--bogus"]), SHORT);
    assert_eq!(r.code(), Some(2), "{}", r.describe());

    // A directory other users can write to is refused, in one line, and nothing is put there:
    // they could swap the alias for a program of theirs that every compile would run.
    use std::os::unix::fs::PermissionsExt;
    for mode in [0o777, 0o1777, 0o757] {
        let shared = sb.data.join(format!("shared-{mode:o}"));
        fs::create_dir(&shared).unwrap();
        fs::set_permissions(&shared, fs::Permissions::from_mode(mode)).unwrap();
        let r = run(sb.shim(["alias", "--dir"]).arg(&shared), SHORT);
        assert_eq!(r.code(), Some(2), "{mode:o}: {}", r.describe());
        assert!(
            r.err().starts_with("maybe-sccache: error: ")
                && r.err().contains("can be written by other users"),
            "{mode:o}: {}",
            r.describe()
        );
        assert_eq!(r.err().lines().count(), 1, "{}", r.describe());
        assert_eq!(fs::read_dir(&shared).unwrap().count(), 0, "{mode:o}");
    }
}

/// `doctor` knows the alias for what it is, not for a bare sccache that fails builds.
#[test]
fn doctor_accepts_the_alias_as_the_wrapper() {
    let mut sb = Sandbox::new();
    let alias = make_alias(&sb);
    sb.set_env("RUSTC_WRAPPER", &alias);
    let r = run(&mut sb.shim(["doctor"]), SHORT);
    let line = r
        .out()
        .lines()
        .find(|l| l.contains("wrapper:"))
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("no wrapper finding: {}", r.describe()));
    assert!(line.starts_with("ok"), "{line}");
    assert!(line.contains("alias"), "{line}");
}

#[test]
fn alias_hands_sccache_options_to_the_real_sccache() {
    let sb = Sandbox::new();
    let alias = make_alias(&sb);
    let r = run(sb.command(&alias).arg("--show-stats"), SHORT);
    assert_eq!(r.code(), Some(2), "{}", r.describe());
    assert!(r.stdout.is_empty(), "{}", r.describe());
    assert_eq!(r.err().lines().count(), 1, "{}", r.describe());
    assert!(
        r.err()
            .starts_with("maybe-sccache: error: `sccache --show-stats`"),
        "{}",
        r.describe()
    );
    let Some(sccache) = require_sccache("alias_hands_sccache_options_to_the_real_sccache") else {
        return;
    };
    sb.install_real_sccache(sccache);
    let r = run(sb.command(&alias).arg("--version"), SHORT);
    r.assert_success();
    assert!(r.out().starts_with("sccache "), "{}", r.describe());
    let r = run(sb.command(&alias).args(["--start-server"]), SHORT);
    r.assert_success();
    let r = run(
        sb.command(&alias)
            .args(["--show-stats", "--stats-format", "json"]),
        SHORT,
    );
    r.assert_success();
    json_from_str(&r.out()).unwrap_or_else(|e| panic!("{e}: {}", r.describe()));
    run(sb.command(&alias).arg("-z"), SHORT).assert_success();
}

/// `-E` (cc-rs's `try_expand`) and links never reach sccache; a compile does.
#[test]
fn preprocessing_and_linking_bypass_sccache() {
    let mut sb = Sandbox::new();
    sb.set_env("MAYBE_SCCACHE_COOLDOWN", "0");
    sb.fake_sccache(FakeSccache::Healthy);
    let alias = make_alias(&sb);
    let src = sb.data.join("m.c");
    write_file(
        &src,
        "#define V 7\nint main(void) { return V - 7; }\n",
        0o644,
    );
    let shim_cc = |args: &[&str]| {
        let mut cmd = sb.command(&alias);
        cmd.arg("cc").args(args).current_dir(&sb.data);
        run(&mut cmd, SHORT)
    };
    let expanded = shim_cc(&["-E", "m.c"]);
    expanded.assert_success();
    let direct = run(
        sb.command("cc").args(["-E", "m.c"]).current_dir(&sb.data),
        SHORT,
    );
    assert_eq!(
        expanded.stdout, direct.stdout,
        "-E output must be the compiler's"
    );
    assert!(
        expanded.out().contains("return 7 - 7;"),
        "{}",
        expanded.describe()
    );
    shim_cc(&["m.c", "-o", "m"]).assert_success();
    run(&mut sb.command(sb.data.join("m")), SHORT).assert_success();
    assert_eq!(
        sb.sccache_compiles(),
        Vec::<String>::new(),
        "nothing forwarded yet"
    );
    shim_cc(&["-c", "m.c", "-o", "m.o"]).assert_success();
    assert!(sb.data.join("m.o").is_file());
    assert_eq!(sb.sccache_compiles(), vec!["cc -c m.c -o m.o".to_owned()]);
    let st = sb.status_json();
    let bypassed = st.path(&["counters", "bypassed"]).unwrap();
    assert_eq!(bypassed.get("c-preprocess"), Some(&Json::from(1)), "{st:?}");
    assert_eq!(
        bypassed.get("c-not-compile"),
        Some(&Json::from(1)),
        "{st:?}"
    );
}

/// The reason sccache was skipped: the alias gives cc-rs's C/C++ compiles the same caching as
/// `RUSTC_WRAPPER=sccache`, and `status` shows hits per language.
#[test]
fn warm_c_build_is_served_from_cache_through_the_alias() {
    let Some(sccache) = require_sccache("warm_c_build_is_served_from_cache_through_the_alias")
    else {
        return;
    };
    let sb = c_sandbox();
    sb.install_real_sccache(sccache);
    let alias = make_alias(&sb);
    let cold = c_build(&sb, &alias);
    cold.assert_success().assert_no_shim_noise();
    assert_app(&sb, 1);
    let cold_stats = sb.sccache_stats(sccache);
    let misses = cold_stats
        .path(&["stats", "cache_misses", "counts", "C/C++"])
        .and_then(Json::as_u64);
    assert_eq!(
        misses,
        Some(2),
        "both C and C++ went to sccache: {cold_stats:?}"
    );
    run(&mut sb.cargo(&["clean", "--offline"]), SHORT).assert_success();
    run(sb.command(sccache).arg("--zero-stats"), SHORT).assert_success();
    let warm = c_build(&sb, &alias);
    warm.assert_success().assert_no_shim_noise();
    assert_app(&sb, 1);
    let stats = sb.sccache_stats(sccache);
    assert_eq!(c_hits(&stats), 2, "{stats:?}");
    let st = sb.status_json();
    let by_language = st.path(&["sccache_stats", "languages", "C/C++"]).unwrap();
    assert_eq!(by_language.get("hits"), Some(&Json::from(2)), "{st:?}");
    for format in ["", "--markdown"] {
        let mut cmd = sb.shim(["status"]);
        if !format.is_empty() {
            cmd.arg(format);
        }
        let r = run(&mut cmd, SHORT);
        assert!(r.out().contains("C/C++ 2 hits"), "{}", r.describe());
    }
}

/// Every way sccache can fail, with C compiled by cc-rs through the alias: the build passes, the
/// C code is right, nothing of sccache's reaches cargo. One target dir; the C source changes each
/// round, so each round really compiles C.
#[test]
fn c_build_fails_open_for_every_fault() {
    let sb = c_sandbox();
    let alias = make_alias(&sb);
    let fake = sb.bin.join("sccache");
    let hang = format!(
        "printf '%s\\n' \"$*\" >> {}\ncase \"$1\" in -*) exit 0;; esac\nsleep 3603\n",
        sh_quote(sb.sccache_calls_file().as_os_str())
    );
    type Install<'a> = &'a dyn Fn() -> Vec<(&'static str, String)>;
    let faults: [(&str, Install); 10] = [
        ("missing", &|| vec![]),
        ("not-executable", &|| {
            let path = sb.data.join("sccache-0644");
            sb.fake_sccache_at(&path, FakeSccache::Healthy);
            fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644))
                .unwrap();
            vec![("SCCACHE_PATH", path.display().to_string())]
        }),
        ("garbage", &|| {
            write_garbage(&fake);
            vec![]
        }),
        ("error-text", &|| {
            sb.fake_sccache(FakeSccache::ErrorText);
            vec![]
        }),
        ("error-on-compile", &|| {
            sb.fake_sccache(FakeSccache::ErrorTextOnCompile);
            vec![]
        }),
        ("fatal", &|| {
            sb.fake_sccache(FakeSccache::Fatal);
            vec![]
        }),
        ("crash", &|| {
            sb.fake_sccache(FakeSccache::Segv);
            vec![]
        }),
        ("hang", &|| {
            write_script(&fake, &hang);
            vec![("MAYBE_SCCACHE_SLOW_CALL", "1".to_owned())]
        }),
        ("breaker-open", &|| {
            // A failing sccache opened the breaker; a healthy one is back, and is not asked.
            sb.fake_sccache(FakeSccache::ErrorText);
            let r = run(&mut sb.shim(["cc", "-c", "x.c"]), SHORT);
            assert_ne!(r.code(), Some(0), "{}", r.describe());
            sb.fake_sccache(FakeSccache::Healthy);
            vec![("MAYBE_SCCACHE_COOLDOWN", "600".to_owned())]
        }),
        ("redis-unreachable", &|| {
            // The real sccache, with a Redis backend nothing listens for.
            let Some(real) = require_sccache("c_build_fails_open_for_every_fault") else {
                return vec![];
            };
            std::os::unix::fs::symlink(real, &fake).unwrap();
            sb.stop_server_on_drop(real);
            let endpoint = format!("redis://127.0.0.1:{}", reserve_port());
            vec![("SCCACHE_REDIS_ENDPOINT", endpoint)]
        }),
    ];
    for (round, (name, install)) in faults.iter().enumerate() {
        let _ = fs::remove_file(&fake);
        let _ = fs::remove_file(sb.sccache_calls_file());
        run(&mut sb.shim(["reset"]), SHORT).assert_success();
        let env = install();
        let hello = 10 + round as u32;
        write_file(
            &sb.ws.join("cnative/src/hello.c"),
            hello_source(hello),
            0o644,
        );
        let mut cmd = sb.cargo(&["build", "--offline", "--locked"]);
        cmd.env("RUSTC_WRAPPER", &alias)
            .env("MAYBE_SCCACHE_COOLDOWN", "0")
            .envs(env.clone());
        let r = run(&mut cmd, BUILD);
        assert!(r.status.success(), "{name}: {}", r.describe());
        r.assert_no_shim_noise();
        assert_eq!(sb.app_output(), app_line(hello), "{name}: wrong C code");
        let c_calls = sb
            .sccache_compiles()
            .into_iter()
            .filter(|c| c.contains("hello.c"))
            .count();
        match *name {
            "error-on-compile" | "fatal" | "crash" | "hang" => {
                assert_eq!(c_calls, 1, "{name}: {:?}", sb.sccache_calls())
            }
            "redis-unreachable" => {
                // The breaker of the server with that backend (breakers are per server).
                let r = run(sb.shim(["status", "--json"]).envs(env), SHORT);
                let st = json_from_str(&r.out()).unwrap_or_else(|e| panic!("{e}: {}", r.out()));
                let reason = st.path(&["breaker", "last_failure", "reason"]);
                let reason = reason.and_then(Json::as_str).unwrap_or_default();
                assert!(reason.contains("backend-unreachable"), "{name}: {st:?}");
            }
            _ => assert_eq!(c_calls, 0, "{name}: {:?}", sb.sccache_calls()),
        }
    }
    let left = Command::new("pgrep")
        .args(["-f", &fake.display().to_string()])
        .output()
        .unwrap();
    assert!(left.stdout.is_empty(), "a hung sccache was left behind");
}

/// A C compile error through the alias and the real sccache is shown as often as without any
/// wrapper, and the build fails with the compiler's exit status.
#[test]
fn c_compile_error_is_shown_once() {
    let Some(sccache) = require_sccache("c_compile_error_is_shown_once") else {
        return;
    };
    let sb = c_sandbox();
    sb.install_real_sccache(sccache);
    let alias = make_alias(&sb);
    write_file(
        &sb.ws.join("cnative/src/hello.c"),
        format!("#error \"{C_ERROR}\"\n{}", hello_source(1)),
        0o644,
    );
    let mut plain = sb.cargo(&["build", "--offline", "--locked"]);
    plain.env_remove("RUSTC_WRAPPER");
    let plain = run(&mut plain, BUILD);
    assert_eq!(plain.code(), Some(101), "{}", plain.describe());
    let expected = count(&plain.all(), C_ERROR);
    assert!(expected >= 1, "{}", plain.describe());
    let r = c_build(&sb, &alias);
    assert_eq!(r.code(), Some(101), "{}", r.describe());
    assert_eq!(count(&r.all(), C_ERROR), expected, "{}", r.describe());
    let all = String::from_utf8_lossy(&r.all()).into_owned();
    assert!(
        all.contains("(status code exit status: 1)"),
        "{}",
        r.describe()
    );
    assert_no_sccache_text(&r);
    let st = sb.status_json();
    assert_eq!(
        st.path(&["breaker", "state"]).and_then(Json::as_str),
        Some("closed"),
        "{st:?}"
    );
}

/// A compiler that sccache cannot identify: it says "Compiler not supported" without running it,
/// and the shim compiles directly without holding that against sccache.
#[test]
fn unsupported_compiler_compiles_directly_and_keeps_the_breaker_closed() {
    let Some(sccache) =
        require_sccache("unsupported_compiler_compiles_directly_and_keeps_the_breaker_closed")
    else {
        return;
    };
    let sb = Sandbox::new();
    sb.install_real_sccache(sccache);
    // Fails sccache's detection (which preprocesses a probe file), compiles like cc otherwise.
    let odd = sb.data.join("oddcc");
    write_script(&odd, "case \"$*\" in *-E*) exit 1;; esac\nexec cc \"$@\"\n");
    write_file(&sb.data.join("u.c"), "int u(void) { return 1; }\n", 0o644);
    let mut cmd = sb.shim([odd.as_os_str(), "-c".as_ref(), "u.c".as_ref()]);
    cmd.current_dir(&sb.data);
    let r = run(&mut cmd, SHORT);
    r.assert_success();
    assert!(r.all().is_empty(), "{}", r.describe());
    assert!(sb.data.join("u.o").is_file());
    let st = sb.status_json();
    assert_eq!(
        st.path(&["breaker", "state"]).and_then(Json::as_str),
        Some("closed"),
        "{st:?}"
    );
    assert_eq!(
        st.path(&["counters", "fallback", "unsupported"]),
        Some(&Json::from(1)),
        "{st:?}"
    );
    assert_eq!(
        st.path(&["counters", "trips"]),
        Some(&Json::from(0)),
        "{st:?}"
    );
}

/// A C compiler killed by a signal under the real sccache: the shim dies by that signal too.
#[test]
fn c_compiler_killed_by_a_signal_is_reported_as_such() {
    let Some(sccache) = require_sccache("c_compiler_killed_by_a_signal_is_reported_as_such") else {
        return;
    };
    let sb = Sandbox::new();
    sb.install_real_sccache(sccache);
    // Real gcc for sccache's detection and preprocessing; the compile itself is killed.
    let gcc = sb.data.join("gcc");
    write_script(
        &gcc,
        "case \" $* \" in *\" -E \"*|*--version*|*-dumpversion*) exec gcc \"$@\";; esac\n\
         ulimit -c 0\nkill -KILL $$\n",
    );
    write_file(&sb.data.join("k.c"), "int k(void) { return 1; }\n", 0o644);
    let mut cmd = sb.shim([gcc.as_os_str(), "-c".as_ref(), "k.c".as_ref()]);
    cmd.current_dir(&sb.data);
    let r = run(&mut cmd, SHORT);
    assert_eq!(r.signal(), Some(9), "{}", r.describe());
    assert_no_sccache_text(&r);
}

/// CMake calls `<launcher> <compiler> <args…>` for each compile when
/// `CMAKE_C_COMPILER_LAUNCHER` / `CMAKE_CXX_COMPILER_LAUNCHER` are set: the shim (under either
/// name) caches those C and C++ compiles with the real sccache, and falls back when sccache fails.
#[test]
fn cmake_c_library_through_the_launcher() {
    let Some(sccache) = require_sccache("cmake_c_library_through_the_launcher") else {
        return;
    };
    let cmake = Path::new("/usr/bin/cmake");
    if !cmake.is_file() {
        assert!(
            !in_ci(),
            "cmake is not installed; CI is set, so this is a failure"
        );
        eprintln!("skipping cmake_c_library_through_the_launcher: no cmake");
        return;
    }
    let mut sb = Sandbox::new();
    // Every compile of the failing round goes to sccache, not only the first.
    sb.set_env("MAYBE_SCCACHE_COOLDOWN", "0");
    let alias = make_alias(&sb);
    let project = sb.data.join("cproj");
    write_file(
        &project.join("CMakeLists.txt"),
        "cmake_minimum_required(VERSION 3.17)\nproject(cproj C CXX)\n\
         add_library(one STATIC one.c)\nadd_library(two STATIC two.cpp)\n",
        0o644,
    );
    write_file(
        &project.join("one.c"),
        "int one(void) { return 1; }\n",
        0o644,
    );
    write_file(
        &project.join("two.cpp"),
        "extern \"C\" int two(void) { return 2; }\n",
        0o644,
    );
    let build = |dir: &str, launcher: &Path| {
        let dir = sb.data.join(dir);
        let mut configure = sb.command(cmake);
        configure
            .arg("-S")
            .arg(&project)
            .arg("-B")
            .arg(&dir)
            .env("CMAKE_C_COMPILER_LAUNCHER", launcher)
            .env("CMAKE_CXX_COMPILER_LAUNCHER", launcher);
        run(&mut configure, BUILD).assert_success();
        let r = run(sb.command(cmake).arg("--build").arg(&dir), BUILD);
        r.assert_success();
        assert_no_sccache_text(&r);
        assert!(dir.join("libone.a").is_file() && dir.join("libtwo.a").is_file());
    };

    // A failing sccache: the libraries are built all the same.
    sb.fake_sccache(FakeSccache::ErrorTextOnCompile);
    build("failing", &alias);
    assert!(
        ["one.c", "two.cpp"]
            .iter()
            .all(|f| sb.sccache_compiles().iter().any(|c| c.contains(f))),
        "the compiles went through the launcher: {:?}",
        sb.sccache_calls()
    );
    fs::remove_file(sb.bin.join("sccache")).unwrap();
    run(&mut sb.shim(["reset"]), SHORT).assert_success();

    sb.install_real_sccache(sccache);
    build("cold", &shim());
    run(sb.command(sccache).arg("--zero-stats"), SHORT).assert_success();
    build("warm", &alias);
    // Our C and C++ files, plus whatever CMake's compiler checks compiled through the launcher.
    let stats = sb.sccache_stats(sccache);
    assert!(c_hits(&stats) >= 2, "{stats:?}");
    let misses = stats.path(&["stats", "cache_misses", "counts"]).unwrap();
    assert_eq!(misses.sum_counts(), 0, "{stats:?}");
}
