//! Judging sccache's result on failures written by the real sccache (0.16, and the older one CI
//! names in `MAYBE_SCCACHE_TEST_SCCACHE_OLD`), with and without `SCCACHE_LOG=debug`: a foreign
//! process on the server port, a panicking client, a server stopped or killed in the middle of
//! calls, a source file that is not there.

use std::fs;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::support::*;

/// Something that is not an sccache server, holding a port: it accepts each connection, reads a
/// little and hangs up, as a different service on a clashing port would.
struct ForeignListener {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ForeignListener {
    /// On a port of its own from the start (the kernel picks it), which the test then gives the
    /// sandbox as its server port: nothing can take that port between choosing and binding it.
    fn start() -> ForeignListener {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the foreign listener");
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    return;
                }
                if let Ok(mut conn) = conn {
                    let _ = conn.set_read_timeout(Some(Duration::from_millis(500)));
                    let _ = conn.read(&mut [0u8; 4]);
                }
            }
        });
        ForeignListener {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for ForeignListener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn trips(st: &Json) -> u64 {
    st.path(&["counters", "trips"])
        .and_then(Json::as_u64)
        .unwrap_or(0)
}

/// The issue that started this module: with `SCCACHE_LOG=debug`, sccache's client writes its log
/// beside `sccache: error: …`, and the failure must still be taken for sccache's.
#[test]
fn foreign_listener_on_the_server_port_falls_back_whatever_sccache_logs() {
    for (version, sccache) in sccaches("foreign_listener") {
        for log in [None, Some("debug")] {
            let what = format!("sccache {version}, SCCACHE_LOG={log:?}");
            let mut sb = Sandbox::new();
            if let Some(log) = log {
                sb.set_env("SCCACHE_LOG", log);
            }
            let foreign = ForeignListener::start();
            sb.set_env("SCCACHE_SERVER_PORT", foreign.port.to_string());
            let expected = write_libs(&sb.ws, 2, true);
            sb.install_real_sccache(&sccache);
            // The fault is real: sccache alone fails on it.
            let out_dir = sb.data.join("alone");
            let mut alone = sb.command(&sccache);
            alone
                .arg(toolchain_rustc())
                .args(cacheable_args("l1/src/lib.rs", &out_dir))
                .current_dir(&sb.ws);
            let r = run(&mut alone, SHORT);
            assert_eq!(r.code(), Some(2), "{what}: {}", r.describe());
            assert!(
                r.err()
                    .contains("sccache: error: failed to execute compile"),
                "{what}: {}",
                r.describe()
            );
            if log.is_some() {
                assert!(
                    r.err().contains(" DEBUG sccache"),
                    "{what}: {}",
                    r.describe()
                );
            }

            let r = sb.build();
            r.assert_success().assert_no_shim_noise();
            assert_app_prints(&sb, &expected);
            let st = sb.status_json();
            // cargo starts the second crate once the first one's metadata is out, which may be
            // before the first call has opened the breaker: one or two calls find the fault.
            let failed = counter(&st, "fallback", "sccache-error");
            assert!((1..=2).contains(&failed), "{what}: {st:?}");
            assert_eq!(trips(&st), failed, "{what}: {st:?}");
        }
    }
}

/// A file that is not there: sccache hands the call to rustc, whose error is the result, shown
/// once with rustc's exit code, and sccache is not blamed.
#[test]
fn missing_source_file_is_the_compilers_error() {
    for (version, sccache) in sccaches("missing_source") {
        for log in [None, Some("debug")] {
            let what = format!("sccache {version}, SCCACHE_LOG={log:?}");
            let mut sb = Sandbox::new();
            if let Some(log) = log {
                sb.set_env("SCCACHE_LOG", log);
            }
            sb.install_real_sccache(&sccache);
            let mut args = vec![toolchain_rustc().into_os_string()];
            args.extend(cacheable_args("gone.rs", &sb.data.join("out")));
            let r = run(&mut sb.shim(&args), SHORT);
            assert_eq!(r.code(), Some(1), "{what}: {}", r.describe());
            assert_eq!(
                count(&r.stderr, "\"rendered\":\"error: couldn't read"),
                1,
                "{what}: {}",
                r.describe()
            );
            assert_eq!(count(&r.all(), "sccache: "), 0, "{what}: {}", r.describe());
            let st = sb.status_json();
            assert_eq!(trips(&st), 0, "{what}: {st:?}");
            assert_eq!(
                st.path(&["counters", "forwarded"]).and_then(Json::as_u64),
                Some(1),
                "{what}: {st:?}"
            );
        }
    }
}

/// A user id with no entry in the password database.
const NO_SUCH_USER: u32 = 54321;

/// sccache's client panics (exit 101, like a rustc ICE) when it finds no home directory: a user
/// without a password entry and without `HOME`. That is sccache's failure, not the compiler's.
#[test]
fn panicking_sccache_client_is_not_taken_for_an_ice() {
    if unsafe { libc::geteuid() } != 0 {
        assert!(
            !in_ci(),
            "CI runs as root; this test needs it to change user"
        );
        eprintln!("skipping panicking_sccache_client: needs root to run as another user");
        return;
    }
    for (version, sccache) in sccaches("panicking_sccache") {
        let mut sb = Sandbox::new();
        // The other user must reach the sandbox, the sccache copy and the fake compiler.
        fs::set_permissions(sb.root(), fs::Permissions::from_mode(0o755)).unwrap();
        let copy = sb.bin.join("sccache");
        fs::copy(&sccache, &copy).unwrap();
        fs::set_permissions(&copy, fs::Permissions::from_mode(0o755)).unwrap();
        sb.stop_server_on_drop(&copy);
        let state = sb.root().join("user-state");
        fs::create_dir(&state).unwrap();
        std::os::unix::fs::chown(&state, Some(NO_SUCH_USER), Some(NO_SUCH_USER)).unwrap();
        sb.set_env("MAYBE_SCCACHE_STATE_DIR", &state);
        fs::set_permissions(&sb.data, fs::Permissions::from_mode(0o777)).unwrap();
        let fake = sb.fake_rustc(b"", b"warning: from the compiler\n", Ending::Exit(0));
        for f in fs::read_dir(&sb.data).unwrap() {
            let f = f.unwrap().path();
            let mode = if f == fake.path { 0o755 } else { 0o666 };
            fs::set_permissions(&f, fs::Permissions::from_mode(mode)).unwrap();
        }
        // The server runs, started by the test as the other user (with a home, which its client
        // lacks below), so the shim forwards: a server of another user would never be used.
        let home = sb.data.join("other-home");
        fs::create_dir(&home).unwrap();
        std::os::unix::fs::chown(&home, Some(NO_SUCH_USER), Some(NO_SUCH_USER)).unwrap();
        fs::set_permissions(&sb.sccache_dir, fs::Permissions::from_mode(0o777)).unwrap();
        let mut start = sb.command("setpriv");
        start
            .arg(format!("--reuid={NO_SUCH_USER}"))
            .arg(format!("--regid={NO_SUCH_USER}"))
            .arg("--clear-groups")
            .arg(&copy)
            .arg("--start-server")
            .env("HOME", &home);
        run(&mut start, SHORT).assert_success();
        let as_other_user = |args: &[std::ffi::OsString]| {
            let mut cmd = sb.command("setpriv");
            cmd.arg(format!("--reuid={NO_SUCH_USER}"))
                .arg(format!("--regid={NO_SUCH_USER}"))
                .arg("--clear-groups")
                .arg(shim_bin())
                .args(args)
                .env_remove("HOME")
                .env("TMPDIR", sb.data.as_os_str());
            run(&mut cmd, SHORT)
        };
        // The fault is real: sccache's client panics for that user.
        let mut alone = sb.command("setpriv");
        alone
            .arg(format!("--reuid={NO_SUCH_USER}"))
            .arg(format!("--regid={NO_SUCH_USER}"))
            .arg("--clear-groups")
            .arg(&copy)
            .arg(&fake.path)
            .env_remove("HOME");
        let r = run(&mut alone, SHORT);
        assert_eq!(r.code(), Some(101), "sccache {version}: {}", r.describe());
        assert!(r.err().contains("panicked at"), "{}", r.describe());

        let mut args = vec![fake.path.clone().into_os_string()];
        args.extend(cacheable_args("src/lib.rs", &sb.data.join("out")));
        let r = as_other_user(&args);
        assert_eq!(r.code(), Some(0), "sccache {version}: {}", r.describe());
        assert_eq!(r.err(), "warning: from the compiler\n", "{}", r.describe());
        assert_eq!(fake.calls(), 1, "the compiler runs once");
        let r = as_other_user(&["status".into(), "--json".into()]);
        let st = json_from_str(&r.out()).unwrap_or_else(|e| panic!("{e}: {}", r.describe()));
        assert_eq!(counter(&st, "fallback", "sccache-panicked"), 1, "{st:?}");
    }
}

/// A rustc ICE through the real sccache is the compiler's result: shown once, exit 101, and the
/// compiler is not run a second time.
#[test]
fn rustc_ice_through_sccache_is_the_compilers_result() {
    for (version, sccache) in sccaches("rustc_ice") {
        let mut sb = Sandbox::new();
        sb.set_env("RUSTC_BOOTSTRAP", "1");
        sb.install_real_sccache(&sccache);
        let src = sb.data.join("ice.rs");
        fs::write(&src, "pub fn f() -> u32 { \"x\" }\n").unwrap();
        let mut args = vec![toolchain_rustc().into_os_string()];
        args.extend(cacheable_args(src.to_str().unwrap(), &sb.data.join("out")));
        args.push("-Ztreat-err-as-bug=1".into());
        let mut cmd = sb.shim(&args);
        cmd.current_dir(&sb.data);
        let r = run(&mut cmd, SHORT);
        assert_eq!(r.code(), Some(101), "sccache {version}: {}", r.describe());
        assert_eq!(count(&r.stderr, "panicked at"), 1, "{}", r.describe());
        let st = sb.status_json();
        assert_eq!(trips(&st), 0, "{st:?}");
        assert_eq!(counter(&st, "fallback", "sccache-panicked"), 0, "{st:?}");
    }
}

/// A workspace of `n` libraries that each hold their compile (inside rustc, through a proc macro)
/// until the test lets them go: `<gate>/started-<crate>` appears when a compile is held, and the
/// compiles go on once `<gate>/go` exists.
fn write_gated_libs(ws: &Path, n: usize) -> String {
    let w = |rel: &str, text: &str| write_file(&ws.join(rel), text, 0o644);
    let members: Vec<String> = (1..=n).map(|k| format!("\"g{k}\"")).collect();
    w(
        "Cargo.toml",
        &format!(
            "[workspace]\nmembers = [\"gate\", \"app\", {}]\nresolver = \"2\"\n",
            members.join(", ")
        ),
    );
    w(
        "gate/Cargo.toml",
        "[package]\nname = \"gate\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n\
         [lib]\nproc-macro = true\n",
    );
    w(
        "gate/src/lib.rs",
        "use proc_macro::TokenStream;\n\
         use std::path::Path;\n\
         use std::time::{Duration, Instant};\n\n\
         #[proc_macro]\n\
         pub fn held(input: TokenStream) -> TokenStream {\n    \
             let gate = std::env::var(\"TEST_GATE_DIR\").expect(\"TEST_GATE_DIR\");\n    \
             let gate = Path::new(&gate);\n    \
             let krate = std::env::var(\"CARGO_CRATE_NAME\").unwrap_or_default();\n    \
             std::fs::write(gate.join(format!(\"started-{krate}\")), b\"\").unwrap();\n    \
             let deadline = Instant::now() + Duration::from_secs(200);\n    \
             while !gate.join(\"go\").exists() && Instant::now() < deadline {\n        \
                 std::thread::sleep(Duration::from_millis(50));\n    \
             }\n    \
             input\n}\n",
    );
    let mut uses = Vec::new();
    for k in 1..=n {
        w(
            &format!("g{k}/Cargo.toml"),
            &format!(
                "[package]\nname = \"g{k}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n\
                 [dependencies]\ngate = {{ path = \"../gate\" }}\n"
            ),
        );
        w(
            &format!("g{k}/src/lib.rs"),
            &format!("pub fn v() -> u64 {{ gate::held!({k}) }}\n"),
        );
        uses.push(format!("g{k}::v()"));
    }
    let deps: Vec<String> = (1..=n)
        .map(|k| format!("g{k} = {{ path = \"../g{k}\" }}"))
        .collect();
    w(
        "app/Cargo.toml",
        &format!(
            "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n\
             [dependencies]\n{}\n",
            deps.join("\n")
        ),
    );
    w(
        "app/src/main.rs",
        &format!(
            "fn main() {{ println!(\"sum={{}}\", {}); }}\n",
            uses.join(" + ")
        ),
    );
    format!("sum={}\n", n * (n + 1) / 2)
}

/// Creates the gate's `go` file when dropped.
struct OpenGate(PathBuf);

impl Drop for OpenGate {
    fn drop(&mut self) {
        let _ = fs::write(&self.0, b"");
    }
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "waited {timeout:?} for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The server stopped (`--stop-server`, as the shim itself once did when it opened the breaker) or
/// killed while several calls are in it: sccache's clients compile locally and say so on stderr.
/// That warning is sccache's, not the compiler's, and must not reach cargo.
fn server_goes_away_mid_build(sccache: &Path, kill: bool) {
    let what = format!(
        "{} {}",
        sccache.display(),
        if kill { "killed" } else { "stopped" }
    );
    let mut sb = Sandbox::new();
    let gate = sb.data.join("gate");
    fs::create_dir(&gate).unwrap();
    sb.set_env("TEST_GATE_DIR", &gate);
    // The watchdog and the slow-call check stay out of this test.
    sb.set_env("MAYBE_SCCACHE_SLOW_CALL", "3600");
    // Two calls at once: sccache's server runs at most one compile per core, and CI may have two.
    let n = 2;
    let expected = write_gated_libs(&sb.ws, n);
    sb.install_real_sccache(sccache);
    // Whatever happens to the test, the held compiles go on (and end) when it is over.
    let _open_gate_at_the_end = OpenGate(gate.join("go"));
    let build = {
        let mut cmd = sb.cargo(&["build", "--offline", "-j4"]);
        std::thread::spawn(move || run(&mut cmd, BUILD))
    };
    let started = |gate: &Path| {
        fs::read_dir(gate).map_or(0, |d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("started-"))
                .count()
        })
    };
    wait_for("every library's compile to be held", BUILD, || {
        started(&gate) >= n || build.is_finished()
    });
    assert!(
        !build.is_finished(),
        "{what}: {}",
        build.join().unwrap().describe()
    );
    let pid = server_pid(&sb).unwrap_or_else(|| {
        let st = sb.status_json();
        panic!("{what}: no sccache server process found: {st:?}")
    });
    if kill {
        // SAFETY: a plain kill(2) of the server this test's build started.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    } else {
        run(sb.command(sccache).arg("--stop-server"), SHORT).assert_success();
    }
    // The server lets its calls run 10 s at most after a stop request, then exits.
    wait_for("the server to exit", Duration::from_secs(60), || {
        !Path::new(&format!("/proc/{pid}")).exists()
            || fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "))
    });
    fs::write(gate.join("go"), b"").unwrap();
    let r = build.join().unwrap();
    r.assert_success().assert_no_shim_noise();
    assert_app_prints(&sb, &expected);
    let st = sb.status_json();
    assert_eq!(breaker_state(&st), "closed", "{what}: {st:?}");
    assert_eq!(trips(&st), 0, "{what}: {st:?}");
}

#[test]
fn server_stopped_in_the_middle_of_parallel_calls() {
    for (_, sccache) in sccaches("server_stopped") {
        server_goes_away_mid_build(&sccache, false);
    }
}

#[test]
fn server_killed_in_the_middle_of_parallel_calls() {
    if let Some(sccache) = require_sccache("server_killed") {
        server_goes_away_mid_build(sccache, true);
    }
}

/// What a real sccache wrote and how it ended, for failures it shows only under conditions the
/// shim itself never forwards in (or that take a server start to produce).
struct Recorded {
    code: i32,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

/// Runs the real `sccache <rustc> <a cacheable call>` with `env` and records what it did.
fn record_real(sb: &Sandbox, sccache: &Path, env: &[(&str, &std::ffi::OsStr)]) -> Recorded {
    let src = sb.data.join("rec.rs");
    fs::write(&src, "pub fn f() -> u32 { 1 }\n").unwrap();
    let out = sb.data.join("rec-out");
    fs::create_dir_all(&out).unwrap();
    let mut cmd = sb.command(sccache);
    cmd.arg(toolchain_rustc())
        .args(cacheable_args(src.to_str().unwrap(), &out));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let r = run(&mut cmd, SHORT);
    Recorded {
        code: r.code().expect("sccache exits"),
        stdout: r.stdout,
        stderr: r.stderr,
    }
}

/// A stand-in sccache that answers every compile with `rec` byte for byte (its own commands
/// succeed), so that the shim judges exactly what the real one wrote.
fn replaying_sccache(sb: &Sandbox, rec: &Recorded) {
    let out = sb.data.join("replay.out");
    let err = sb.data.join("replay.err");
    fs::write(&out, &rec.stdout).unwrap();
    fs::write(&err, &rec.stderr).unwrap();
    write_script(
        &sb.bin.join("sccache"),
        &format!(
            "case \"$1\" in -*) exit 0 ;; esac\ncat {}\ncat {} >&2\nexit {}\n",
            sh_quote(out.as_os_str()),
            sh_quote(err.as_os_str()),
            rec.code
        ),
    );
}

/// Runs one cacheable call through the shim with a compiler that succeeds quietly, and checks
/// that sccache's failure was judged as such: the compiler ran once, alone, and `reason` counted.
fn assert_judged_as(sb: &Sandbox, reason: &str, what: &str) {
    let fake = sb.fake_rustc(b"", b"warning: from the compiler\n", Ending::Exit(0));
    let mut args = vec![fake.path.clone().into_os_string()];
    args.extend(cacheable_args("src/lib.rs", &sb.data.join("out")));
    let r = run(&mut sb.shim(&args), SHORT);
    assert_eq!(r.code(), Some(0), "{what}: {}", r.describe());
    assert_eq!(
        r.err(),
        "warning: from the compiler\n",
        "{what}: {}",
        r.describe()
    );
    assert_eq!(r.out(), "", "{what}: {}", r.describe());
    assert_eq!(fake.calls(), 1, "{what}");
    let st = sb.status_json();
    assert_eq!(counter(&st, "fallback", reason), 1, "{what}: {st:?}");
}

/// sccache refuses every call while `CARGO_INCREMENTAL=1`, in words that differ between versions
/// (0.10: `increment compilation is  prohibited.`). The shim skips sccache then; should the refusal
/// reach it anyway, it is sccache's, not a compile error.
#[test]
fn incremental_refusal_of_each_version_is_sccaches() {
    for (version, sccache) in sccaches("incremental_refusal") {
        let sb = Sandbox::new();
        let rec = record_real(&sb, &sccache, &[("CARGO_INCREMENTAL", "1".as_ref())]);
        assert_eq!(rec.code, 1, "sccache {version}");
        assert!(
            String::from_utf8_lossy(&rec.stdout).contains("prohibited"),
            "sccache {version}: {}",
            String::from_utf8_lossy(&rec.stdout)
        );
        replaying_sccache(&sb, &rec);
        assert_judged_as(&sb, "sccache-refused", &format!("sccache {version}"));
    }
}

/// A backend endpoint that accepts connections and never answers: sccache's client gives up on
/// the server start it began (`Timed out waiting for server startup`), with and without its log.
#[test]
fn server_start_timeout_of_each_version_is_sccaches() {
    for (version, sccache) in sccaches("start_timeout_text") {
        for log in [None, Some("debug")] {
            let what = format!("sccache {version}, SCCACHE_LOG={log:?}");
            let sb = Sandbox::new();
            let _silent = SilentListener::new();
            let conf = sb.data.join("sccache.toml");
            fs::write(&conf, "server_startup_timeout_ms = 2000\n").unwrap();
            let endpoint = format!("redis://127.0.0.1:{}", _silent.port);
            let mut env: Vec<(&str, &std::ffi::OsStr)> = vec![
                ("SCCACHE_CONF", conf.as_os_str()),
                ("SCCACHE_REDIS_ENDPOINT", endpoint.as_ref()),
            ];
            if let Some(log) = log {
                env.push(("SCCACHE_LOG", log.as_ref()));
            }
            let rec = record_real(&sb, &sccache, &env);
            // The server it started may still be waiting on the endpoint: stop it.
            let mut stop = sb.command(&sccache);
            stop.arg("--stop-server");
            let _ = run(&mut stop, SHORT);
            assert_eq!(rec.code, 2, "{what}");
            assert!(
                String::from_utf8_lossy(&rec.stderr).contains("Timed out waiting for server"),
                "{what}: {}",
                String::from_utf8_lossy(&rec.stderr)
            );
            replaying_sccache(&sb, &rec);
            assert_judged_as(&sb, "sccache-error", &what);
        }
    }
}

/// A listener that accepts connections and never says a word.
struct SilentListener {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl SilentListener {
    fn new() -> SilentListener {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            for conn in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    return;
                }
                held.extend(conn);
            }
        });
        SilentListener {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for SilentListener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
