//! The watchdog over forwarded calls: a server that hangs in the middle of a call is abandoned
//! within the watchdog's interval, and a slow but healthy call runs to its end through sccache.
//!
//! Issue 16, items 3 and 4: a backend the shim cannot probe (Redis on a Unix socket), frozen
//! mid-build with `SIGSTOP`, under real sccache 0.16 and `cargo -j4`. Every crate runs a slow
//! proc-macro that logs its start and end with the compiler's pid: the build passes, each
//! crate's macro runs exactly once, and no two compilers of one crate ever overlap.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

const LIBS: usize = 4;

/// A `redis-server` listening on a Unix socket only, killed when dropped.
struct UnixRedis {
    child: Child,
    socket: PathBuf,
}

impl UnixRedis {
    fn start(dir: &Path) -> Option<UnixRedis> {
        let server = ["/usr/bin", "/usr/local/bin", "/usr/sbin"]
            .iter()
            .map(|d| Path::new(d).join("redis-server"))
            .find(|p| p.is_file())?;
        let socket = dir.join("redis.sock");
        let child = Command::new(server)
            .args(["--port", "0", "--unixsocket"])
            .arg(&socket)
            .args([
                "--unixsocketperm",
                "700",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start redis-server");
        let redis = UnixRedis { child, socket };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::os::unix::net::UnixStream::connect(&redis.socket).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(redis)
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} redis-server");
    }
}

impl Drop for UnixRedis {
    fn drop(&mut self) {
        self.signal("-CONT");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A proc-macro crate `pm` whose `slow!(name)` logs `start name pid nanos`, sleeps, logs `end
/// …`, and expands to `pub fn v() -> u64 { 1 }`; crates `l1`..`lN` use it, and `app` prints the
/// sum of their `v()`.
fn write_workspace(ws: &Path, log: &Path) -> String {
    let pm = ws.join("pm");
    fs::create_dir_all(pm.join("src")).unwrap();
    fs::write(
        pm.join("Cargo.toml"),
        "[package]\nname = \"pm\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[lib]\nproc-macro = true\n",
    )
    .unwrap();
    fs::write(
        pm.join("src/lib.rs"),
        format!(
            "use proc_macro::TokenStream;\n\
             use std::io::Write;\n\
             fn note(what: &str, name: &str) {{\n    \
                 let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();\n    \
                 let mut f = std::fs::OpenOptions::new().create(true).append(true).open({log:?}).unwrap();\n    \
                 let args: Vec<String> = std::env::args().collect();\n    \
                 let emit = args.iter().zip(args.iter().skip(1)).find_map(|(a, b)| if a == \"--emit\" {{ Some(b.clone()) }} else {{ a.strip_prefix(\"--emit=\").map(str::to_owned) }}).unwrap_or_default();\n    \
                 let kind = if emit.contains(\"metadata\") || emit.contains(\"link\") {{ \"compile\" }} else {{ \"hash\" }};\n    \
                 f.write_all(format!(\"{{what}} {{name}} {{}} {{t}} {{kind}}\\n\", std::process::id()).as_bytes()).unwrap();\n\
             }}\n\
             #[proc_macro]\n\
             pub fn slow(input: TokenStream) -> TokenStream {{\n    \
                 let name = input.to_string();\n    \
                 note(\"start\", &name);\n    \
                 std::thread::sleep(std::time::Duration::from_millis(1500));\n    \
                 note(\"end\", &name);\n    \
                 \"pub fn v() -> u64 {{ 1 }}\".parse().unwrap()\n\
             }}\n"
        ),
    )
    .unwrap();
    // A plain crate, forwarded to sccache (a proc-macro crate is not), to start the server.
    let seed = ws.join("seed");
    fs::create_dir_all(seed.join("src")).unwrap();
    fs::write(
        seed.join("Cargo.toml"),
        "[package]\nname = \"seed\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    )
    .unwrap();
    fs::write(seed.join("src/lib.rs"), "pub fn seed() -> u64 { 7 }\n").unwrap();
    let mut members = vec!["\"pm\"".to_owned(), "\"seed\"".to_owned()];
    let mut app_deps = String::new();
    let mut sum = Vec::new();
    for k in 1..=LIBS {
        let name = format!("l{k}");
        let dir = ws.join(&name);
        fs::create_dir_all(dir.join("src")).unwrap();
        fs::write(
            dir.join("Cargo.toml"),
            format!(
                "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n\
                 [dependencies]\npm = {{ path = \"../pm\" }}\n"
            ),
        )
        .unwrap();
        fs::write(dir.join("src/lib.rs"), format!("pm::slow!({name});\n")).unwrap();
        members.push(format!("\"{name}\""));
        app_deps.push_str(&format!("{name} = {{ path = \"../{name}\" }}\n"));
        sum.push(format!("{name}::v()"));
    }
    let app = ws.join("app");
    fs::create_dir_all(app.join("src")).unwrap();
    fs::write(
        app.join("Cargo.toml"),
        format!(
            "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n\
             [dependencies]\n{app_deps}"
        ),
    )
    .unwrap();
    fs::write(
        app.join("src/main.rs"),
        format!(
            "fn main() {{ println!(\"sum={{}}\", {}); }}\n",
            sum.join(" + ")
        ),
    )
    .unwrap();
    members.push("\"app\"".into());
    fs::write(
        ws.join("Cargo.toml"),
        format!(
            "[workspace]\nmembers = [{}]\nresolver = \"2\"\n",
            members.join(", ")
        ),
    )
    .unwrap();
    format!("sum={LIBS}\n")
}

/// Checks the macro log: per crate exactly one compile ran the macro, and no two compilers' runs
/// overlapped (a run without an end counts as never ending). sccache itself runs the compiler
/// once more, for dep-info only (`--emit=dep-info`), to hash the sources, which expands the
/// macros too: that run is no compile of the crate's outputs, but may not overlap one either.
fn assert_one_compiler_per_crate(log: &Path) {
    let text = fs::read_to_string(log).unwrap_or_default();
    // crate -> pid -> (start, end)
    let mut runs: BTreeMap<String, BTreeMap<u32, (u128, u128)>> = BTreeMap::new();
    let mut starts: BTreeMap<String, usize> = BTreeMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let [what, name, pid, t, kind] = f[..] else {
            panic!("bad log line {line:?} in\n{text}");
        };
        let (pid, t): (u32, u128) = (pid.parse().unwrap(), t.parse().unwrap());
        let run = runs
            .entry(name.to_owned())
            .or_default()
            .entry(pid)
            .or_insert((u128::MAX, u128::MAX));
        if what == "start" {
            run.0 = t;
            if kind == "compile" {
                *starts.entry(name.to_owned()).or_default() += 1;
            }
        } else {
            run.1 = t;
        }
    }
    for k in 1..=LIBS {
        let name = format!("l{k}");
        assert_eq!(
            starts.get(&name),
            Some(&1),
            "{name}'s proc-macro must run in exactly one compile:\n{text}"
        );
        let spans: Vec<_> = runs[&name].values().collect();
        for (i, a) in spans.iter().enumerate() {
            for b in &spans[i + 1..] {
                assert!(
                    a.1 <= b.0 || b.1 <= a.0,
                    "two compilers of {name} at once:\n{text}"
                );
            }
        }
    }
}

#[test]
fn unprobeable_backend_frozen_mid_build_is_abandoned_with_one_compiler_per_crate() {
    let test = "unprobeable_backend_frozen";
    let Some(sccache) = require_sccache(test) else {
        return;
    };
    let mut sb = Sandbox::new();
    let Some(redis) = UnixRedis::start(&sb.data) else {
        assert!(!in_ci(), "{test}: redis-server is required in CI");
        eprintln!("skipping {test}: redis-server not found");
        return;
    };
    // sccache 0.16 parses the endpoint as an HTTP URI, which needs an authority.
    sb.set_env(
        "SCCACHE_REDIS_ENDPOINT",
        format!("unix://localhost{}", redis.socket.display()),
    );
    let log = sb.data.join("macro.log");
    let expected = write_workspace(&sb.ws, &log);
    sb.install_real_sccache(sccache);

    // The server starts against a healthy Redis and caches a first crate.
    run(
        &mut sb.cargo(&["build", "--offline", "-p", "seed", "-p", "pm"]),
        BUILD,
    )
    .assert_success()
    .assert_no_shim_noise();
    let st = sb.status_json();
    assert_eq!(breaker_state(&st), "closed", "{st:?}");
    let st = sb.sccache_stats(sccache);
    assert!(
        st.path(&["stats", "cache_writes"]).and_then(Json::as_u64) > Some(0),
        "sccache must have used Redis: {st:?}"
    );

    // Frozen: the socket still accepts, nothing answers. The shim cannot probe a Unix socket.
    redis.signal("-STOP");
    let started = Instant::now();
    let r = run(&mut sb.cargo(&["build", "--offline", "-j4"]), BUILD);
    let took = started.elapsed();
    r.assert_success().assert_no_shim_noise();
    eprintln!("{test}: the build with Redis frozen took {took:?}");
    assert_app_prints(&sb, &expected);
    assert_one_compiler_per_crate(&log);
    let st = sb.status_json();
    eprintln!("{test}: status {st}");
    // Which of the watchdog's two signals ends the call is up to sccache's server, not the
    // shim: while it waits on the frozen socket it may still answer statistics (then the call is
    // abandoned on the idle limit) or not (a server whose worker threads all wait on Redis; then
    // on the unanswered statistics request). Both are bounded; CI has seen both on 2 cores.
    let reason = breaker_reason(&st);
    assert!(
        reason.contains("backend-stuck: no compiler at work")
            || reason.contains("hung: sccache did not answer a statistics request"),
        "the watchdog must have abandoned a call (idle limit or unanswered statistics): {st:?}"
    );
    assert!(counter(&st, "fallback", "hung") >= 1, "{st:?}");

    // For the record (not asserted): the same build without any wrapper.
    let plain_target = sb.root().join("target-plain");
    let mut plain = sb.cargo(&["build", "--offline", "-j4"]);
    plain
        .env_remove("RUSTC_WRAPPER")
        .env("CARGO_TARGET_DIR", &plain_target);
    let started = Instant::now();
    run(&mut plain, BUILD).assert_success();
    eprintln!("{test}: plain cargo took {:?}", started.elapsed());
}

/// How long the watchdog gives the server to answer, and how often it asks (README: "must
/// answer a statistics request every 10 s").
const WATCHDOG_EVERY: Duration = Duration::from_secs(10);

/// A server that stops answering in the middle of a call (it started fine): the watchdog notices
/// within its interval, kills the client with everything it started, opens the breaker, and the
/// crate compiles directly.
#[test]
fn sccache_hanging_mid_call_is_abandoned() {
    let mut sb = Sandbox::new();
    // The watchdog starts asking after one second instead of the default.
    sb.set_env("MAYBE_SCCACHE_SLOW_CALL", "1");
    let expected = write_libs(&sb.ws, 3, true);
    let calls = sb.sccache_calls_file();
    let fake = sb.bin.join("sccache");
    write_script(
        &fake,
        &format!(
            "printf '%s\\n' \"$*\" >> {}\n\
             case \"$1\" in --start-server) exit 0;; --version) echo 'sccache 0.16.0'; exit 0;; esac\n\
             sleep 3602\n",
            sh_quote(calls.as_os_str())
        ),
    );
    // The first check comes after MAYBE_SCCACHE_SLOW_CALL, and the server gets one interval to
    // answer it; the margin (another two intervals) is for a loaded machine.
    let took = timed_call(&sb);
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(1) + 3 * WATCHDOG_EVERY,
        "MAYBE_SCCACHE_SLOW_CALL=1, yet the hung call was abandoned after {took:?}"
    );
    sb.assert_no_process_left(Duration::from_secs(10));
    let calls = sb.sccache_calls();
    assert_eq!(
        calls.iter().filter(|c| !c.starts_with("--")).count(),
        1,
        "one compile went to sccache: {calls:?}"
    );
    let st = sb.status_json();
    assert!(breaker_reason(&st).contains("hung"), "{st:?}");
    assert_eq!(counter(&st, "fallback", "hung"), 1, "{st:?}");

    // The rest of a build compiles directly while the breaker is open.
    let r = run(&mut sb.cargo(&["build", "--offline", "-j1"]), BUILD);
    r.assert_success().assert_no_shim_noise();
    assert_app_prints(&sb, &expected);
    let after = sb.sccache_calls();
    assert_eq!(
        after.iter().filter(|c| !c.starts_with("--")).count(),
        1,
        "no more compiles went to sccache: {after:?}"
    );
    sb.assert_no_process_left(Duration::from_secs(10));
}

/// A forwarded call that is slow but healthy: past `MAYBE_SCCACHE_SLOW_CALL` the watchdog asks
/// the server, which answers, so the call runs to its end through sccache; sccache's error
/// counters did not rise, so the breaker stays closed. (Black-box: it holds whatever the
/// watchdog's inner workings.)
#[test]
fn slow_healthy_call_survives_the_watchdog_and_keeps_the_breaker_closed() {
    let Some(sccache) = require_sccache("slow_healthy_call") else {
        return;
    };
    let mut sb = Sandbox::new();
    sb.set_env("MAYBE_SCCACHE_SLOW_CALL", "1");
    sb.install_real_sccache(sccache);
    // The compile takes well past the first check (after 1 s), then succeeds.
    let compiler = sb.rustc_wrapper("rustc", "sleep 4");
    let started = Instant::now();
    let r = sb.victim_call(&compiler, &[]);
    let took = started.elapsed();
    r.assert_success().assert_no_shim_noise();
    assert!(took >= Duration::from_secs(4), "{took:?}");
    assert!(sb.data.join("out").join("libvictim.rlib").is_file());
    let st = sb.status_json();
    assert_eq!(breaker_state(&st), "closed", "{st:#}");
    assert_eq!(
        st.path(&["counters", "trips"]).and_then(Json::as_u64),
        Some(0),
        "{st:#}"
    );
    assert_eq!(
        st.path(&["counters", "forwarded"]).and_then(Json::as_u64),
        Some(1),
        "{st:#}"
    );
    assert_eq!(
        st.path(&["counters", "fallback"]).map(Json::sum_counts),
        Some(0),
        "{st:#}"
    );
    let misses = sb
        .sccache_stats(sccache)
        .path(&["stats", "cache_misses", "counts"])
        .map(Json::sum_counts);
    assert_eq!(misses, Some(1), "the call went through sccache to its end");
}
