//! Builds through the shim with sccache 0.19 distributing compiles to a real sccache-dist
//! cluster on 127.0.0.1 (`dist_cluster`), healthy and with each fault that can be made real here.
//! Each fault's build must pass with cargo seeing only the compiler's output; the time it took is
//! printed (run with `--nocapture`) beside a build of the same fixture through sccache alone,
//! never asserted.

use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::dist_cluster::*;
use crate::support::*;

/// The sum of sccache's `dist_compiles` (per build server) in its statistics.
pub(crate) fn dist_compiles(stats: &Json) -> u64 {
    stats
        .path(&["stats", "dist_compiles"])
        .map_or(0, Json::sum_counts)
}

/// A sandbox with the fixture written, sccache 0.19 on `PATH`, and its client configuration
/// pointing at `scheduler_url` with `token`.
pub(crate) fn dist_sandbox(sccache: &Path, scheduler_url: &str, token: &str) -> Sandbox {
    let mut sb = Sandbox::new();
    configure_client(&mut sb, scheduler_url, token);
    sb.install_real_sccache(sccache);
    sb.write_fixture(Fixture::Good);
    sb
}

/// A passing build through the shim, its wall time printed under `what`.
pub(crate) fn timed_good_build(sb: &Sandbox, what: &str) -> Duration {
    let started = Instant::now();
    sb.assert_good_build();
    let took = started.elapsed();
    eprintln!("dist: {what}: {:.1} s", took.as_secs_f64());
    took
}

/// `cargo build` with sccache alone as `RUSTC_WRAPPER`.
pub(crate) fn build_with_sccache_alone(sb: &Sandbox, sccache: &Path) -> Run {
    run(
        sb.cargo(&["build", "--offline"])
            .env("RUSTC_WRAPPER", sccache),
        BUILD,
    )
}

/// The fallback counter for `reason` in `status --json`.
pub(crate) fn fallbacks(sb: &Sandbox, reason: &str) -> u64 {
    let st = sb.status_json();
    st.path(&["counters", "fallback", reason])
        .and_then(Json::as_u64)
        .unwrap_or(0)
}

#[test]
fn healthy_cluster_compiles_remotely() {
    let Some((sccache, dist)) = require_dist("healthy_cluster_compiles_remotely") else {
        return;
    };
    let cluster = Cluster::start(&dist);
    let sb = dist_sandbox(&sccache, &cluster.scheduler_url(), CLIENT_TOKEN);
    timed_good_build(&sb, "healthy cluster, through the shim");
    let stats = sb.sccache_stats(&sccache);
    assert!(
        dist_compiles(&stats) >= 1,
        "no compile went remote: {stats:?}\n{}",
        cluster.logs()
    );
    assert_eq!(fallbacks(&sb, "sccache-dist-refused"), 0);
}

/// sccache alone fails the build when the scheduler refuses the client's token (401); through
/// the shim the build passes, the refused calls compile directly, and the breaker opens.
#[test]
fn refused_client_token_falls_back() {
    let Some((sccache, dist)) = require_dist("refused_client_token_falls_back") else {
        return;
    };
    let cluster = Cluster::start(&dist);
    let sb = dist_sandbox(&sccache, &cluster.scheduler_url(), "not-the-token");

    let alone = build_with_sccache_alone(&sb, &sccache);
    assert_ne!(
        alone.code(),
        Some(0),
        "sccache alone was expected to fail with a refused token: {}",
        alone.describe()
    );
    assert!(
        alone.err().contains("http error status: Error 401"),
        "{}",
        alone.describe()
    );
    run(&mut sb.cargo(&["clean"]), BUILD).assert_success();

    timed_good_build(&sb, "refused client token, through the shim");
    assert!(
        fallbacks(&sb, "sccache-dist-refused") >= 1,
        "{:#}",
        sb.status_json()
    );
    assert!(sb.breaker_file().is_file(), "the breaker should be open");
}

#[test]
fn scheduler_down_at_start() {
    let Some((sccache, _)) = require_dist("scheduler_down_at_start") else {
        return;
    };
    let nobody = reserve_port();
    let local = Sandbox::new();
    local.install_real_sccache(&sccache);
    timed_good_build(&local, "no [dist], through the shim (baseline)");

    let sb = dist_sandbox(
        &sccache,
        &format!("http://127.0.0.1:{nobody}"),
        CLIENT_TOKEN,
    );
    timed_good_build(&sb, "scheduler down at start, through the shim");
    assert_eq!(dist_compiles(&sb.sccache_stats(&sccache)), 0);
}

#[test]
fn scheduler_black_holed_at_start() {
    let Some((sccache, _)) = require_dist("scheduler_black_holed_at_start") else {
        return;
    };
    let (_hole, port) = black_hole();
    let sb = dist_sandbox(&sccache, &format!("http://127.0.0.1:{port}"), CLIENT_TOKEN);
    timed_good_build(&sb, "scheduler black-holed at start, through the shim");
}

#[test]
fn build_server_killed_after_registering() {
    let Some((sccache, dist)) = require_dist("build_server_killed_after_registering") else {
        return;
    };
    let mut cluster = Cluster::start(&dist);
    cluster.kill_server();
    let sb = dist_sandbox(&sccache, &cluster.scheduler_url(), CLIENT_TOKEN);
    timed_good_build(&sb, "build server killed (registered), through the shim");
}

#[test]
fn build_server_stopped_after_registering() {
    let Some((sccache, dist)) = require_dist("build_server_stopped_after_registering") else {
        return;
    };
    let cluster = Cluster::start(&dist);
    cluster.signal_server(libc::SIGSTOP);
    let sb = dist_sandbox(&sccache, &cluster.scheduler_url(), CLIENT_TOKEN);
    timed_good_build(&sb, "build server stopped (SIGSTOP), through the shim");
}

/// A fault in the middle of a remote compile: `sig` reaches the build server while it runs one.
/// The sandbox is returned for the caller's checks, its shim log at `data/shim.log`.
fn build_server_signalled_mid_build(test: &str, sig: i32, what: &str) -> Option<Sandbox> {
    let (sccache, dist) = require_dist(test)?;
    let cluster = Cluster::start(&dist);
    let mut sb = dist_sandbox(&sccache, &cluster.scheduler_url(), CLIENT_TOKEN);
    sb.set_env("MAYBE_SCCACHE_LOG", "debug");
    sb.set_env("MAYBE_SCCACHE_LOG_FILE", sb.data.join("shim.log"));
    let done = Arc::new(AtomicBool::new(false));
    let signalled = cluster.signal_server_when_busy(sig, done.clone());
    let built = std::panic::catch_unwind(AssertUnwindSafe(|| timed_good_build(&sb, what)));
    done.store(true, Ordering::SeqCst);
    if let Err(panic) = built {
        eprintln!("{}", shim_log(&sb));
        std::panic::resume_unwind(panic);
    }
    assert!(
        signalled.join().unwrap(),
        "the build server never ran a compile, so the fault was not made: {}",
        cluster.logs()
    );
    Some(sb)
}

fn shim_log(sb: &Sandbox) -> String {
    std::fs::read_to_string(sb.data.join("shim.log")).unwrap_or_default()
}

#[test]
fn build_server_killed_mid_build() {
    build_server_signalled_mid_build(
        "build_server_killed_mid_build",
        libc::SIGKILL,
        "build server killed (SIGKILL) mid-build, through the shim",
    );
}

/// A build server stopped in the middle of a remote compile accepts connections and never
/// answers: sccache alone would wait 1,200 s for the result. The watchdog finds the server
/// waiting on that build server, whose probe goes unanswered, and abandons the call at the idle
/// limit; the crate compiles directly (its output shown once: `assert_good_build`), the breaker
/// opens and the rest of the build compiles directly.
#[test]
fn build_server_stopped_mid_build() {
    let Some(sb) = build_server_signalled_mid_build(
        "build_server_stopped_mid_build",
        libc::SIGSTOP,
        "build server stopped (SIGSTOP) mid-build, through the shim",
    ) else {
        return;
    };
    let log = shim_log(&sb);
    let st = sb.status_json();
    assert!(
        log.contains(
            "abandoning the call: dist-stuck: the sccache-dist build server at 127.0.0.1:"
        ),
        "the call must be abandoned for its silent build server: {st:?}\n{log}"
    );
    assert!(breaker_reason(&st).contains("dist-stuck"), "{st:?}");
    assert!(counter(&st, "fallback", "hung") >= 1, "{st:?}");
}

/// How long the remote compile of the slow crate takes: well past the watchdog's first look
/// (5 s) and its idle limit (20 s), with looks every 3 s.
const REMOTE_COMPILE_SECS: u64 = 40;

/// A proc-macro crate `pm` whose `slow!(name)` notes each run on the host (`kind name`, where
/// kind is `compile` or, for sccache's dep-info pass, `hash`) and, in a compile, sleeps
/// `REMOTE_COMPILE_SECS`; a library `slow` that uses it. On a build server the note's file is out
/// of reach (the sandbox), so the host's notes show only local runs.
fn write_slow_remote_workspace(ws: &Path, notes: &Path) {
    let w = |rel: &str, text: &str| write_file(&ws.join(rel), text, 0o644);
    w(
        "Cargo.toml",
        "[workspace]\nmembers = [\"pm\", \"slow\"]\nresolver = \"2\"\n",
    );
    w(
        "pm/Cargo.toml",
        "[package]\nname = \"pm\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n\
         [lib]\nproc-macro = true\n",
    );
    w(
        "pm/src/lib.rs",
        &format!(
            "use proc_macro::TokenStream;\n\
             use std::io::Write;\n\
             #[proc_macro]\n\
             pub fn slow(input: TokenStream) -> TokenStream {{\n    \
                 let args: Vec<String> = std::env::args().collect();\n    \
                 let emit = args.iter().zip(args.iter().skip(1)).find_map(|(a, b)| if a == \"--emit\" {{ Some(b.clone()) }} else {{ a.strip_prefix(\"--emit=\").map(str::to_owned) }}).unwrap_or_default();\n    \
                 let compile = emit.contains(\"metadata\") || emit.contains(\"link\");\n    \
                 let kind = if compile {{ \"compile\" }} else {{ \"hash\" }};\n    \
                 if let Ok(mut f) = std::fs::OpenOptions::new().append(true).open({notes:?}) {{\n        \
                     let _ = writeln!(f, \"{{kind}} {{input}}\");\n    \
                 }}\n    \
                 if compile {{\n        \
                     std::thread::sleep(std::time::Duration::from_secs({REMOTE_COMPILE_SECS}));\n    \
                 }}\n    \
                 \"pub fn v() -> u64 {{ 1 }}\".parse().unwrap()\n\
             }}\n"
        ),
    );
    w(
        "slow/Cargo.toml",
        "[package]\nname = \"slow\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n\
         [dependencies]\npm = { path = \"../pm\" }\n",
    );
    w("slow/src/lib.rs", "pm::slow!(slow);\n");
    write_file(notes, "", 0o666);
}

/// A remote compile that takes longer than the idle limit, on a build server that answers, is
/// work: the call is never abandoned, the crate compiles remotely once (sccache counts it in
/// `dist_compiles`, and the host saw no local compile of it), and the watchdog's looks past the
/// idle limit found it at work.
#[test]
fn a_long_remote_compile_is_never_abandoned() {
    let Some((sccache, dist)) = require_dist("a_long_remote_compile_is_never_abandoned") else {
        return;
    };
    let cluster = Cluster::start(&dist);
    let mut sb = Sandbox::new();
    configure_client(&mut sb, &cluster.scheduler_url(), CLIENT_TOKEN);
    sb.install_real_sccache(&sccache);
    sb.set_env("MAYBE_SCCACHE_LOG", "debug");
    sb.set_env("MAYBE_SCCACHE_LOG_FILE", sb.data.join("shim.log"));
    let notes = sb.data.join("macro-notes");
    write_slow_remote_workspace(&sb.ws, &notes);

    let started = Instant::now();
    let r = run(&mut sb.cargo(&["build", "--offline"]), BUILD);
    eprintln!(
        "dist: a {REMOTE_COMPILE_SECS} s remote compile, through the shim: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let log = shim_log(&sb);
    r.assert_success().assert_no_shim_noise();
    assert!(!log.contains("abandoning"), "{log}\n{}", cluster.logs());
    let stats = sb.sccache_stats(&sccache);
    assert_eq!(
        dist_compiles(&stats),
        1,
        "the slow crate must have compiled remotely: {stats:?}\n{}",
        cluster.logs()
    );
    let noted = std::fs::read_to_string(&notes).unwrap();
    assert!(
        !noted.contains("compile"),
        "the slow crate compiled on this machine too: {noted}"
    );
    // The looks that found the remote compile at work, by their time into the call: at least
    // one past the point where an idle server's call is abandoned.
    let last_working = log
        .lines()
        .filter(|l| l.contains("remote: Working("))
        .filter_map(|l| {
            l.split("watchdog ")
                .nth(1)?
                .split(' ')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .max();
    assert!(
        last_working.is_some_and(|at| at >= 5 + 20),
        "no look past the idle limit found the remote compile at work: {last_working:?}\n{log}"
    );
}

/// `status` counts what went remote: after a build on a healthy cluster its JSON carries
/// sccache's remote compiles (the same number sccache's own statistics give) and its text a
/// `remote` row.
#[test]
fn status_after_a_distributed_build_shows_remote_compiles() {
    let Some((sccache, dist)) =
        require_dist("status_after_a_distributed_build_shows_remote_compiles")
    else {
        return;
    };
    let cluster = Cluster::start(&dist);
    let sb = dist_sandbox(&sccache, &cluster.scheduler_url(), CLIENT_TOKEN);
    sb.assert_good_build();
    let remote = dist_compiles(&sb.sccache_stats(&sccache));
    assert!(remote >= 1, "no compile went remote\n{}", cluster.logs());
    let st = sb.status_json();
    assert_eq!(
        st.path(&["sccache_stats", "dist", "compiles"])
            .and_then(Json::as_u64),
        Some(remote),
        "{st:#}"
    );
    assert_eq!(
        st.path(&["sccache_stats", "dist", "errors"])
            .and_then(Json::as_u64),
        Some(0),
        "{st:#}"
    );
    let text = run(&mut sb.shim(["status"]), SHORT);
    let row = text
        .out()
        .lines()
        .find(|l| l.trim_start().starts_with("remote:"))
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("no remote row: {}", text.describe()));
    eprintln!("status after a distributed build: {row}");
    assert!(
        row.contains(&format!("{remote} compiles on sccache-dist build servers")),
        "{row}"
    );
}

/// `maybe-sccache doctor` in a sandbox whose sccache config names the scheduler at `url` with
/// `token`: its output, which must never show the token.
fn doctor_with_dist(sccache: &Path, url: &str, token: &str) -> String {
    let sb = dist_sandbox(sccache, url, token);
    let r = run(&mut sb.shim(["doctor"]), BUILD);
    assert_eq!(r.code(), Some(0), "{}", r.describe());
    let out = r.out();
    eprintln!("doctor with [dist] at {url}:\n{out}");
    assert!(!out.contains(token), "doctor shows the token: {out}");
    // The servers doctor started (the server check's, and the one asked `--dist-status`) are
    // stopped again.
    assert_eq!(
        sb.status_json()["sccache"]["server_up"].as_bool(),
        Some(false),
        "doctor leaves a server behind: {out}"
    );
    out
}

/// The doctor finding that starts with `dist: ` and contains `words`.
fn dist_finding(out: &str, words: &str) -> String {
    out.lines()
        .find(|l| l.contains("  dist: ") && l.contains(words))
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("no dist finding with {words:?}:\n{out}"))
}

#[test]
fn doctor_with_a_healthy_cluster_says_ok() {
    let Some((sccache, dist)) = require_dist("doctor_with_a_healthy_cluster_says_ok") else {
        return;
    };
    let cluster = Cluster::start(&dist);
    let url = cluster.scheduler_url();
    let out = doctor_with_dist(&sccache, &url, CLIENT_TOKEN);
    let answers = dist_finding(&out, "answers: 1 build server(s)");
    assert!(answers.starts_with("ok"), "{out}");
    assert!(answers.contains(&url), "{out}");
    assert!(
        dist_finding(&out, "accepts the client token").starts_with("ok"),
        "{out}"
    );
    assert!(
        dist_finding(&out, "toolchain packaging").starts_with("ok"),
        "{out}"
    );
    assert!(
        !out.lines()
            .any(|l| l.contains("  dist: ") && !l.starts_with("ok")),
        "{out}"
    );
}

#[test]
fn doctor_with_a_wrong_token_says_it_is_refused() {
    let Some((sccache, dist)) = require_dist("doctor_with_a_wrong_token_says_it_is_refused") else {
        return;
    };
    let cluster = Cluster::start(&dist);
    let out = doctor_with_dist(&sccache, &cluster.scheduler_url(), "wrong-t0ken-4-doctor");
    let refused = dist_finding(&out, "refuses the client token");
    assert!(refused.starts_with("FAIL"), "{out}");
    assert!(refused.contains(" -- fix: "), "{out}");
    // The scheduler itself answers: only the token is wrong.
    assert!(
        dist_finding(&out, "answers: 1 build server(s)").starts_with("ok"),
        "{out}"
    );
}

#[test]
fn doctor_with_the_scheduler_down_says_unreachable() {
    let Some((sccache, _)) = require_dist("doctor_with_the_scheduler_down_says_unreachable") else {
        return;
    };
    let nobody = reserve_port();
    let url = format!("http://127.0.0.1:{nobody}");
    let out = doctor_with_dist(&sccache, &url, CLIENT_TOKEN);
    let down = dist_finding(&out, "is unreachable");
    assert!(down.starts_with("warn"), "{out}");
    assert!(
        down.contains(&url) && down.contains("refuses connections"),
        "{out}"
    );
    assert!(
        !out.contains("accepts the client token") && !out.contains("refuses the client token"),
        "no token check without a scheduler: {out}"
    );
}

/// A scheduler that accepts connections and never answers holds sccache's server start; doctor
/// still ends (its requests and the start are bounded) and says the scheduler does not answer,
/// which stops caching (the bounded start fails).
#[test]
fn doctor_with_a_black_holed_scheduler_ends_and_says_so() {
    let Some((sccache, _)) = require_dist("doctor_with_a_black_holed_scheduler_ends_and_says_so")
    else {
        return;
    };
    let (_hole, port) = black_hole();
    let url = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let out = doctor_with_dist(&sccache, &url, CLIENT_TOKEN);
    eprintln!(
        "doctor with a black-holed scheduler: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let silent = dist_finding(&out, "is unreachable");
    assert!(
        silent.starts_with("FAIL") && silent.contains("does not answer in time"),
        "{out}"
    );
}
