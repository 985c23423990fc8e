//! Section 3b: remote backends (S3, Redis, Memcached, WebDAV) that stop answering, unreachable
//! from the start, killed mid-build or black-holed mid-build, on a chain of small crates.

use std::fmt::Write as _;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use std::{fs, io, thread};

use crate::cloud::CloudFaults;
use crate::measure::{count_libs, median, ratio, tail, Build, Lane, Outcome, Project};
use crate::per_call::Who;
use crate::procs::{free_port, Server};
use crate::sandbox::{find_on_path, mkdir, write, Bench};
use crate::Res;

impl Bench {
    /// Remote backends that stop answering, on an 8-crate chain: plain builds, then shim
    /// builds with each backend down or black-holed from the start, and killed or
    /// black-holed once a few crates are built. Quick mode runs S3 and Redis only.
    pub(crate) fn section_backends(&mut self) -> Res<BackendFaults> {
        let mut out = BackendFaults::default();
        if self.sccache.is_none() {
            out.skipped.push("sccache was not found".into());
            return Ok(out);
        }
        say!("section 3b: remote backends on an 8-crate chain");
        let project = self.chain_project()?;
        let limit = self.opts.timeout;
        let plain_runs = if self.opts.quick { 1 } else { 3 };
        for _ in 0..plain_runs {
            let b = self.build("chain plain", &project, &Lane::Plain, limit, None)?;
            self.expect_pass("chain plain build", &b);
            out.plain.push(b.secs);
        }
        let kinds: &[BKind] = if self.opts.quick {
            &[BKind::S3, BKind::Redis]
        } else {
            &[BKind::S3, BKind::Redis, BKind::Memcached, BKind::Webdav]
        };
        for &kind in kinds {
            let Some(program) = kind.find(self.sccache.as_deref()) else {
                out.skipped.push(format!("{} not found", kind.program()));
                continue;
            };
            for scenario in [
                Scenario::DownAtStart,
                Scenario::BlackHoledAtStart,
                Scenario::KilledMidBuild,
                Scenario::BlackHoledMidBuild,
            ] {
                let b = self.backend_build(&project, kind, &program, scenario, limit)?;
                self.expect_pass(&format!("chain, {} {}", kind.name(), scenario.name()), &b);
                out.rows.push((kind, scenario, b));
            }
        }
        let cloud = self.section_cloud(&project, &out.plain);
        out.cloud = self.settle(
            "section 3c (the GitHub Actions cache and Azure Blob)",
            cloud,
        );
        let _ = fs::remove_dir_all(&project.target);
        Ok(out)
    }

    /// The chain of [`CHAIN_CRATES`] crates and a binary, written and locked in the scratch
    /// directory, for sections 3b and 3c.
    pub(crate) fn chain_project(&mut self) -> Res<Project> {
        self.sized_chain_project("chain", CHAIN_STRUCTS)
    }

    /// The chain with `structs` derived structs per crate, in the scratch directory's `name`.
    pub(crate) fn sized_chain_project(&mut self, name: &str, structs: usize) -> Res<Project> {
        let dir = self.scratch_path(name);
        write_chain_workspace(&dir, CHAIN_CRATES, structs)?;
        let manifest = dir.join("Cargo.toml");
        let id = self.new_id(&format!("{name}-lockfile"));
        let mut env = self.env_plain();
        env.insert("CARGO_HOME".into(), self.cargo_home.clone().into());
        let mut cmd = self.command(&self.cargo, &env, &id);
        cmd.args(["generate-lockfile", "--offline", "--manifest-path"])
            .arg(&manifest);
        match self.run_bounded(cmd, Duration::from_secs(120))? {
            Some((st, _)) if st.success() => {}
            Some((st, text)) => {
                return Err(format!(
                    "cargo generate-lockfile: {st}: {}",
                    tail(&text, 10)
                ))
            }
            None => return Err("cargo generate-lockfile did not finish".into()),
        }
        Ok(Project {
            target: self.scratch_path(&format!("{name}-target")),
            manifest,
            what: format!(
                "a generated chain of {CHAIN_CRATES} library crates ({structs} derived structs \
                 each) and a binary"
            ),
            kill_after: 3,
        })
    }

    pub(crate) fn backend_build(
        &mut self,
        project: &Project,
        kind: BKind,
        program: &Path,
        scenario: Scenario,
        limit: Duration,
    ) -> Res<Build> {
        let slug = format!("{}-{}", kind.slug(), scenario.slug());
        let id = self.new_id(&format!("backend-{slug}"));
        // A real server when the scenario needs one; a proxy in front for the black holes.
        let mut server = match scenario {
            Scenario::DownAtStart | Scenario::BlackHoledAtStart => None,
            _ => Some(start_backend(self, kind, program, &id)?),
        };
        let upstream = server.as_ref().map_or(free_port()?, |s| s.port);
        let proxy = match scenario {
            Scenario::BlackHoledAtStart | Scenario::BlackHoledMidBuild => {
                Some(BProxy::to(upstream)?)
            }
            _ => None,
        };
        if scenario == Scenario::BlackHoledAtStart {
            if let Some(p) = &proxy {
                p.black_hole();
            }
        }
        let port = proxy.as_ref().map_or(upstream, |p| p.port);
        let mut sc = self.new_sc(&format!("backend-{slug}"), None)?;
        sc.extra = kind.env(port);
        let lane = Lane::Shim {
            sc: Some(&sc),
            state: self.new_state(&format!("backend-{slug}"))?,
        };
        let deps = project.target.join("debug").join("deps");
        let threshold = project.kill_after;
        let mut watch = |_: Duration| -> bool {
            if count_libs(&deps) < threshold {
                return false;
            }
            match scenario {
                Scenario::KilledMidBuild => {
                    if let Some(s) = server.as_mut() {
                        s.kill();
                    }
                }
                Scenario::BlackHoledMidBuild => {
                    if let Some(p) = &proxy {
                        p.black_hole();
                    }
                }
                _ => {}
            }
            true
        };
        let mid = matches!(
            scenario,
            Scenario::KilledMidBuild | Scenario::BlackHoledMidBuild
        );
        let label = format!("{} {}: shim", kind.name(), scenario.name());
        let b = self.build(
            &label,
            project,
            &lane,
            limit,
            if mid { Some(&mut watch) } else { None },
        )?;
        drop(proxy);
        drop(server);
        Ok(b)
    }

    pub(crate) fn render_backends(&self, r: &mut String, f: Option<&BackendFaults>) {
        let _ = writeln!(r, "## 3b. Remote backends that stop answering\n");
        let Some(f) = f else {
            let _ = writeln!(r, "Not measured (see Unexpected failures).\n");
            return;
        };
        for why in &f.skipped {
            let _ = writeln!(r, "Skipped: {why}.\n");
        }
        let plain = (!f.plain.is_empty()).then(|| median(&f.plain));
        let _ = writeln!(
            r,
            "A generated chain of {CHAIN_CRATES} library crates and a binary (each crate \
             waits for the one before it), built by cargo through the shim with sccache \
             and a real backend on 127.0.0.1 (moto's S3 server, redis-server, memcached, \
             wsgidav's WebDAV), each with its own sccache server and a fresh shim state \
             dir, the shim with its defaults. \"Extra\" is over the median plain `rustc` \
             build of the same chain in this run ({}, {} run(s)). *Down*: nothing listens \
             at the endpoint. *Black-holed*: a proxy that accepts connections and never \
             answers. Mid-build faults fire once {} crates are in `target/debug/deps`. \
             Targets (issue 9): down or black-holed at start ≤ 15 s extra; killed \
             mid-build ≤ 35 s; black-holed mid-build ≤ 120 s (goal ≤ 35 s). sccache \
             alone is not run here: black-holed, one of its calls takes minutes.\n",
            plain.map_or("n/a".into(), |p| format!("{p:.2} s")),
            f.plain.len(),
            3
        );
        let _ = writeln!(
            r,
            "| backend | fault | outcome | time | extra | target | fault at | breaker |"
        );
        let _ = writeln!(r, "|---|---|---|---:|---:|---:|---:|---|");
        for (kind, scenario, b) in &f.rows {
            let extra = match (b.outcome_passed(), plain) {
                (true, Some(p)) => format!("{:+.1} s", b.secs - p),
                _ => String::new(),
            };
            let _ = writeln!(
                r,
                "| {} | {} | {} | {:.2} s | {extra} | ≤ {} s | {} | {} |",
                kind.name(),
                scenario.name(),
                b.outcome.text(),
                b.secs,
                scenario.target_secs(),
                b.fired_at.map_or("-".into(), |t| format!("{t:.1} s")),
                b.breaker.as_deref().unwrap_or("").replace('|', "\\|"),
            );
        }
        let _ = writeln!(r);
        self.render_cloud(r, f.cloud.as_ref());
    }
}

pub(crate) const CHAIN_CRATES: usize = 8;
/// Derived structs per crate of the chain.
pub(crate) const CHAIN_STRUCTS: usize = 60;

#[derive(Default)]
pub(crate) struct BackendFaults {
    /// Plain builds of the chain, seconds.
    pub(crate) plain: Vec<f64>,
    pub(crate) rows: Vec<(BKind, Scenario, Build)>,
    pub(crate) skipped: Vec<String>,
    /// Section 3c, measured on the same chain.
    pub(crate) cloud: Option<CloudFaults>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum BKind {
    S3,
    Redis,
    Memcached,
    Webdav,
}

impl BKind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            BKind::S3 => "S3",
            BKind::Redis => "Redis",
            BKind::Memcached => "memcached",
            BKind::Webdav => "WebDAV",
        }
    }

    pub(crate) fn slug(self) -> &'static str {
        match self {
            BKind::S3 => "s3",
            BKind::Redis => "redis",
            BKind::Memcached => "memcached",
            BKind::Webdav => "webdav",
        }
    }

    pub(crate) fn program(self) -> &'static str {
        match self {
            BKind::S3 => "moto_server",
            BKind::Redis => "redis-server",
            BKind::Memcached => "memcached",
            BKind::Webdav => "wsgidav",
        }
    }

    /// On `PATH`, in /usr/bin, or beside sccache (the CI virtualenv holds moto and wsgidav).
    pub(crate) fn find(self, sccache: Option<&Path>) -> Option<PathBuf> {
        let name = self.program();
        find_on_path(name)
            .or_else(|| Some(Path::new("/usr/bin").join(name)).filter(|p| p.is_file()))
            .or_else(|| {
                let p = sccache?.parent()?.join(name);
                p.is_file().then_some(p)
            })
    }

    pub(crate) fn env(self, port: u16) -> Vec<(String, String)> {
        let at = |scheme: &str| format!("{scheme}://127.0.0.1:{port}");
        let pairs: Vec<(&str, String)> = match self {
            BKind::S3 => vec![
                ("SCCACHE_BUCKET", BENCH_BUCKET.into()),
                ("SCCACHE_ENDPOINT", at("http")),
                ("SCCACHE_REGION", "us-east-1".into()),
                ("SCCACHE_S3_USE_SSL", "false".into()),
                ("AWS_ACCESS_KEY_ID", "bench".into()),
                ("AWS_SECRET_ACCESS_KEY", "bench-secret".into()),
            ],
            BKind::Redis => vec![("SCCACHE_REDIS_ENDPOINT", at("redis"))],
            BKind::Memcached => vec![("SCCACHE_MEMCACHED_ENDPOINT", at("tcp"))],
            BKind::Webdav => vec![("SCCACHE_WEBDAV_ENDPOINT", at("http"))],
        };
        pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
    }
}

pub(crate) const BENCH_BUCKET: &str = "maybe-sccache-bench";

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scenario {
    DownAtStart,
    BlackHoledAtStart,
    KilledMidBuild,
    BlackHoledMidBuild,
}

impl Scenario {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Scenario::DownAtStart => "down at start",
            Scenario::BlackHoledAtStart => "black-holed at start",
            Scenario::KilledMidBuild => "killed mid-build",
            Scenario::BlackHoledMidBuild => "black-holed mid-build",
        }
    }

    pub(crate) fn slug(self) -> &'static str {
        match self {
            Scenario::DownAtStart => "down",
            Scenario::BlackHoledAtStart => "hole-start",
            Scenario::KilledMidBuild => "killed",
            Scenario::BlackHoledMidBuild => "hole-mid",
        }
    }

    pub(crate) fn target_secs(self) -> u32 {
        match self {
            Scenario::DownAtStart | Scenario::BlackHoledAtStart => 15,
            Scenario::KilledMidBuild => 35,
            Scenario::BlackHoledMidBuild => 120,
        }
    }
}

/// Starts a backend server of our own on a free port.
pub(crate) fn start_backend(b: &Bench, kind: BKind, program: &Path, id: &str) -> Res<Server> {
    let port = free_port()?;
    let p = port.to_string();
    let dir = b.scratch_path(&format!("{}-{port}", kind.slug()));
    mkdir(&dir)?;
    let mut cmd = b.command(program, &b.env_plain(), id);
    match kind {
        BKind::S3 => {
            cmd.args(["-H", "127.0.0.1", "-p", &p]);
        }
        BKind::Redis => {
            cmd.args(["--port", &p, "--bind", "127.0.0.1", "--save", ""])
                .args(["--appendonly", "no", "--daemonize", "no", "--dir"])
                .arg(&dir);
        }
        BKind::Memcached => {
            cmd.args(["-l", "127.0.0.1", "-p", &p, "-U", "0", "-m", "64"]);
            // SAFETY: a plain getter. memcached refuses root unless told a user.
            if unsafe { libc::geteuid() } == 0 {
                cmd.args(["-u", "root"]);
            }
        }
        BKind::Webdav => {
            cmd.args(["--host", "127.0.0.1", "--port", &p, "--auth", "anonymous"])
                .arg("--root")
                .arg(&dir);
        }
    }
    let server = Server::start(cmd, port, kind.program(), Duration::from_secs(60))?;
    if kind == BKind::S3 {
        http_put(port, &format!("/{BENCH_BUCKET}"))?;
    }
    Ok(server)
}

/// `PUT path` over HTTP/1.1 (moto makes a bucket of it); an error unless it answers 200.
pub(crate) fn http_put(port: u16, path: &str) -> Res<()> {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
    write!(
        s,
        "PUT {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\n\
         Connection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    match reply.split_whitespace().nth(1) {
        Some("200") => Ok(()),
        _ => Err(format!(
            "PUT {path} on port {port}: {}",
            first_line_of(&reply)
        )),
    }
}

pub(crate) fn first_line_of(text: &str) -> &str {
    text.lines().next().unwrap_or("no answer")
}

/// A TCP proxy that can turn into a black hole: it keeps accepting and holding connections,
/// old and new, and never forwards or answers another byte. Stops when dropped.
pub(crate) struct BProxy {
    pub(crate) port: u16,
    pub(crate) black_hole: Arc<AtomicBool>,
    pub(crate) stop: Arc<AtomicBool>,
}

impl BProxy {
    pub(crate) fn to(upstream: u16) -> Res<BProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let black_hole = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (bh, st) = (black_hole.clone(), stop.clone());
        // A blocking accept, so that a new connection pays no polling delay (the shim's
        // pre-check and sccache open new ones at every server start); `drop` wakes it with a
        // connection of its own.
        thread::spawn(move || {
            let mut held = Vec::new();
            while !st.load(Ordering::SeqCst) {
                let Ok((client, _)) = listener.accept() else {
                    thread::sleep(Duration::from_millis(10));
                    continue;
                };
                if st.load(Ordering::SeqCst) {
                    break;
                }
                // Bytes are passed on as they come, with no stall of Nagle's algorithm added.
                let _ = client.set_nodelay(true);
                if bh.load(Ordering::SeqCst) {
                    held.push(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let _ = server.set_nodelay(true);
                for (from, to) in [
                    (client.try_clone(), server.try_clone()),
                    (Ok(server), Ok(client)),
                ] {
                    if let (Ok(from), Ok(to)) = (from, to) {
                        let (bh, st) = (bh.clone(), st.clone());
                        thread::spawn(move || pump(from, to, &bh, &st));
                    }
                }
            }
        });
        Ok(BProxy {
            port,
            black_hole,
            stop,
        })
    }

    pub(crate) fn black_hole(&self) {
        self.black_hole.store(true, Ordering::SeqCst);
    }
}

impl Drop for BProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(
            &(std::net::Ipv4Addr::LOCALHOST, self.port).into(),
            Duration::from_secs(1),
        );
    }
}

/// Copies bytes until either side closes; in black-hole mode swallows them and holds the
/// connection open until the proxy stops.
pub(crate) fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    black_hole: &AtomicBool,
    stop: &AtomicBool,
) {
    use std::io::{Read, Write};
    let _ = from.set_read_timeout(Some(Duration::from_millis(200)));
    let mut buf = [0u8; 16 * 1024];
    while !stop.load(Ordering::SeqCst) {
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if !black_hole.load(Ordering::SeqCst) && to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
    while black_hole.load(Ordering::SeqCst) && !stop.load(Ordering::SeqCst) {
        thread::sleep(Duration::from_millis(100));
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
}

/// A chain of `n` library crates (`c1` … `cn`, each using the one before, each with `structs`
/// derived structs) and a binary.
pub(crate) fn write_chain_workspace(dir: &Path, n: usize, structs: usize) -> Res<()> {
    let mut members = Vec::new();
    for k in 1..=n {
        let name = format!("c{k}");
        let mut manifest = format!(
            "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\
             publish = false\n\n[dependencies]\n"
        );
        let mut src = String::from("//! Generated by examples/bench/backends.rs.\n\n");
        if k > 1 {
            let _ = writeln!(manifest, "c{} = {{ path = \"../c{}\" }}", k - 1, k - 1);
            let _ = writeln!(src, "pub fn v() -> u64 {{ c{}::v() + {k} }}\n", k - 1);
        } else {
            src.push_str("pub fn v() -> u64 { 1 }\n\n");
        }
        for i in 0..structs {
            let _ = writeln!(
                src,
                "#[derive(Debug, Clone, PartialEq, Default)]\n\
                 pub struct S{i} {{ pub a: u64, pub b: String, pub c: Vec<u32> }}\n\
                 impl S{i} {{\n    pub fn f(&self, x: u64) -> u64 {{\n        \
                 self.a.wrapping_mul(x) + {i} + self.b.len() as u64\n    }}\n}}"
            );
        }
        write(&dir.join(&name).join("Cargo.toml"), &manifest)?;
        write(&dir.join(&name).join("src/lib.rs"), &src)?;
        members.push(format!("\"{name}\""));
    }
    write(
        &dir.join("app/Cargo.toml"),
        &format!(
            "[package]\nname = \"chain_app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\
             publish = false\n\n[dependencies]\nc{n} = {{ path = \"../c{n}\" }}\n"
        ),
    )?;
    write(
        &dir.join("app/src/main.rs"),
        &format!("fn main() {{\n    println!(\"{{}}\", c{n}::v());\n}}\n"),
    )?;
    members.push("\"app\"".into());
    write(
        &dir.join("Cargo.toml"),
        &format!(
            "[workspace]\nmembers = [{}]\nresolver = \"2\"\n",
            members.join(", ")
        ),
    )
}

pub(crate) fn fault_row(
    r: &mut String,
    who: Who,
    b: &Build,
    plain: Option<f64>,
    fired: Option<Option<f64>>,
) {
    let vs_plain = match b.outcome {
        Outcome::Passed => ratio(Some(b.secs), plain),
        _ => String::new(),
    };
    let time = match b.outcome {
        Outcome::Passed => format!("{:.2} s", b.secs),
        Outcome::Failed(_) => format!("{:.2} s to failure", b.secs),
        Outcome::TimedOut(n) => format!("> {n} s ({} crates started)", b.compiled),
    };
    let fired = match fired {
        None => None,
        Some(Some(t)) => Some(format!("{t:.1} s")),
        Some(None) => Some("not killed".into()),
    };
    let _ = writeln!(
        r,
        "| {} | {} | {time} | {vs_plain} |{} {} | {} | {} |",
        who.name(),
        b.outcome.text(),
        fired.map(|f| format!(" {f} |")).unwrap_or_default(),
        b.stats.as_ref().map_or(String::new(), |s| s.text()),
        b.calls.as_ref().map_or(String::new(), |c| c.text()),
        b.breaker.as_deref().unwrap_or("").replace('|', "\\|"),
    );
}
