//! Section 6: sccache-dist. A real scheduler and overlay build server (bubblewrap, root) on
//! 127.0.0.1, the client being sccache 0.19 (`MAYBE_SCCACHE_TEST_SCCACHE_NEWEST`, with
//! `sccache-dist` beside it or at `MAYBE_SCCACHE_TEST_SCCACHE_DIST`). Healthy: sccache alone
//! against the shim, both distributing, with the toolchain already packaged and on the build
//! server. Faults: each one's build through sccache alone and through the shim, beside plain
//! cargo, sccache alone stopped at a cap. The cluster start is a small copy of
//! `tests/it/support/dist_cluster.rs` (examples cannot import the tests' support code).

use std::fmt::Write as _;
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::measure::{median, Build, Lane, Outcome, Project};
use crate::per_call::Who;
use crate::procs::free_port;
use crate::sandbox::{mkdir, Bench};
use crate::sccache::Sc;
use crate::Res;

const BWRAP: &str = "/usr/bin/bwrap";
const TOKEN: &str = "maybe-sccache-bench-client-token";

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    SchedulerDown,
    BlackHoled,
    ZeroServers,
    Refused,
    ServerKilled,
    ServerStopped,
}

impl Fault {
    const ALL: [Fault; 6] = [
        Fault::SchedulerDown,
        Fault::BlackHoled,
        Fault::ZeroServers,
        Fault::Refused,
        Fault::ServerKilled,
        Fault::ServerStopped,
    ];

    fn name(self) -> &'static str {
        match self {
            Fault::SchedulerDown => "scheduler down at start",
            Fault::BlackHoled => "scheduler black-holed at start",
            Fault::ZeroServers => "scheduler with zero build servers",
            Fault::Refused => "client token refused (401)",
            Fault::ServerKilled => "build server killed mid-build",
            Fault::ServerStopped => "build server stopped mid-build",
        }
    }

    fn slug(self) -> &'static str {
        match self {
            Fault::SchedulerDown => "down",
            Fault::BlackHoled => "black-holed",
            Fault::ZeroServers => "zero-servers",
            Fault::Refused => "refused",
            Fault::ServerKilled => "killed-mid",
            Fault::ServerStopped => "stopped-mid",
        }
    }
}

#[derive(Default)]
pub(crate) struct Dist {
    pub(crate) skipped: Option<String>,
    pub(crate) what: String,
    pub(crate) plain: Vec<Build>,
    pub(crate) sccache: Vec<Build>,
    pub(crate) shim: Vec<Build>,
    pub(crate) faults: Vec<(Fault, Vec<(Who, Build)>)>,
    pub(crate) cap: Duration,
}

/// sccache with the dist client and sccache-dist, or why the section cannot run here.
fn find_tools() -> Result<(PathBuf, PathBuf), String> {
    let sccache = std::env::var_os("MAYBE_SCCACHE_TEST_SCCACHE_NEWEST")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .ok_or("MAYBE_SCCACHE_TEST_SCCACHE_NEWEST (sccache 0.19 with sccache-dist) is not set")?;
    let dist = std::env::var_os("MAYBE_SCCACHE_TEST_SCCACHE_DIST")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| sccache.with_file_name("sccache-dist"));
    if !sccache.is_file() || !dist.is_file() {
        return Err(format!(
            "no sccache and sccache-dist at {} and {}",
            sccache.display(),
            dist.display()
        ));
    }
    if !Path::new(BWRAP).is_file() {
        return Err(format!("no bubblewrap at {BWRAP}"));
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Err("the overlay build server must run as root".into());
    }
    Ok((sccache, dist))
}

impl Bench {
    pub(crate) fn section_dist(&mut self, project: &Project) -> Res<Dist> {
        let mut d = Dist {
            cap: Duration::from_secs(if self.opts.quick { 30 } else { 120 }),
            // The small graph in both modes; its description begins with "(quick mode)".
            what: project.what.trim_start_matches("(quick mode) ").to_owned(),
            ..Dist::default()
        };
        let (sccache, dist) = match find_tools() {
            Ok(tools) => tools,
            Err(why) => {
                say!("section 6 skipped: {why}");
                d.skipped = Some(why);
                return Ok(d);
            }
        };
        say!("section 6: sccache-dist");
        // The lanes name `self.sccache`: sccache 0.19 with the dist client for this section.
        let saved = self.sccache.replace(sccache);
        let r = self.dist_measure(&mut d, &dist, project);
        self.sccache = saved;
        r.map(|()| d)
    }

    fn dist_measure(&mut self, d: &mut Dist, dist: &Path, project: &Project) -> Res<()> {
        let reps = if self.opts.quick { 1 } else { 3 };
        let limit = self.opts.timeout;
        for i in 0..reps {
            let b = self.build(
                &format!("dist plain {i}"),
                project,
                &Lane::Plain,
                limit,
                None,
            )?;
            d.plain.push(b);
        }

        // Healthy: one build first packages the toolchain and puts it on the build server.
        let cluster = Cluster::start(self, dist, "healthy", true)?;
        let conf = self.dist_conf("healthy", &cluster.url(), TOKEN)?;
        let sc = self.dist_sc("warm-up", &conf)?;
        let warm = self.build("dist warm-up", project, &Lane::Sccache(&sc), limit, None)?;
        self.expect_pass("dist warm-up build with sccache alone", &warm);
        for i in 0..reps {
            // Alternating order, each with a cold local cache so every compile is asked of
            // the cluster.
            let order = if i % 2 == 0 {
                [Who::Sccache, Who::ShimSccache]
            } else {
                [Who::ShimSccache, Who::Sccache]
            };
            for who in order {
                let sc = self.dist_sc(&format!("healthy-{}-{i}", who.slug()), &conf)?;
                let label = format!("dist healthy {} {i}", who.slug());
                let b = if who == Who::Sccache {
                    self.build(&label, project, &Lane::Sccache(&sc), limit, None)?
                } else {
                    let state = self.new_state(&format!("dist-healthy-{i}"))?;
                    let lane = Lane::Shim {
                        sc: Some(&sc),
                        state,
                    };
                    self.build(&label, project, &lane, limit, None)?
                };
                self.expect_pass(&label, &b);
                if who == Who::Sccache {
                    d.sccache.push(b);
                } else {
                    d.shim.push(b);
                }
            }
        }
        drop(cluster);

        for fault in Fault::ALL {
            let mut runs = Vec::new();
            for who in [Who::Sccache, Who::ShimSccache] {
                let b = self.dist_fault(dist, project, fault, who, d.cap)?;
                if who == Who::ShimSccache {
                    self.expect_pass(&format!("dist {}: shim", fault.name()), &b);
                }
                runs.push((who, b));
            }
            d.faults.push((fault, runs));
        }
        Ok(())
    }

    /// One build with `fault` made, through `who`; sccache alone is stopped at `cap`.
    fn dist_fault(
        &self,
        dist: &Path,
        project: &Project,
        fault: Fault,
        who: Who,
        cap: Duration,
    ) -> Res<Build> {
        let name = format!("{}-{}", fault.slug(), who.slug());
        let mut cluster = None;
        let mut _hole = None;
        let url = match fault {
            Fault::SchedulerDown => format!("http://127.0.0.1:{}", free_port()?),
            Fault::BlackHoled => {
                let l = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
                let port = l.local_addr().map_err(|e| e.to_string())?.port();
                _hole = Some(l);
                format!("http://127.0.0.1:{port}")
            }
            _ => {
                let with_server = fault != Fault::ZeroServers;
                let c = Cluster::start(self, dist, &name, with_server)?;
                let url = c.url();
                cluster = Some(c);
                url
            }
        };
        let token = if fault == Fault::Refused {
            "not-the-token"
        } else {
            TOKEN
        };
        let conf = self.dist_conf(&name, &url, token)?;
        let sc = self.dist_sc(&name, &conf)?;
        let state = self.new_state(&format!("dist-{name}"))?;
        let lane = if who == Who::Sccache {
            Lane::Sccache(&sc)
        } else {
            Lane::Shim {
                sc: Some(&sc),
                state,
            }
        };
        let limit = if who == Who::Sccache {
            cap
        } else {
            self.opts.timeout
        };
        let sig = match fault {
            Fault::ServerKilled => Some(libc::SIGKILL),
            Fault::ServerStopped => Some(libc::SIGSTOP),
            _ => None,
        };
        let label = format!("dist {}: {}", fault.slug(), who.slug());
        let b = match (sig, cluster.as_mut()) {
            (Some(sig), Some(c)) => {
                let mut watch = |_: Duration| c.signal_when_busy(sig);
                self.build(&label, project, &lane, limit, Some(&mut watch))?
            }
            _ => self.build(&label, project, &lane, limit, None)?,
        };
        if sig.is_some() && b.fired_at.is_none() {
            say!("note: {label}: the build server never ran a compile, so no fault was made");
        }
        Ok(b)
    }

    /// A client configuration: `[dist]` at `url` with `token`, the toolchain cache shared by
    /// every lane of this run (packaged once).
    fn dist_conf(&self, name: &str, url: &str, token: &str) -> Res<PathBuf> {
        let conf = self.scratch_path(&format!("dist-{name}.conf"));
        let text = format!(
            "[dist]\nscheduler_url = \"{url}\"\ntoolchains = []\ncache_dir = \"{}\"\n\n\
             [dist.auth]\ntype = \"token\"\ntoken = \"{token}\"\n",
            self.scratch_path("dist-client-toolchains").display()
        );
        fs::write(&conf, text).map_err(|e| format!("cannot write {}: {e}", conf.display()))?;
        Ok(conf)
    }

    fn dist_sc(&self, name: &str, conf: &Path) -> Res<Sc> {
        let mut sc = self.new_sc(&format!("dist-{name}"), None)?;
        sc.extra
            .push(("SCCACHE_CONF".into(), conf.to_string_lossy().into_owned()));
        Ok(sc)
    }

    pub(crate) fn render_dist(&self, r: &mut String, d: Option<&Dist>) {
        let _ = writeln!(r, "## 6. sccache-dist\n");
        let Some(d) = d else {
            let _ = writeln!(r, "Not measured (see Unexpected failures).\n");
            return;
        };
        if let Some(why) = &d.skipped {
            let _ = writeln!(r, "Skipped: {why}.\n");
            return;
        }
        let secs = |v: &[Build]| -> Option<f64> {
            let t: Vec<f64> = v
                .iter()
                .filter(|b| b.outcome_passed())
                .map(|b| b.secs)
                .collect();
            (!t.is_empty()).then(|| median(&t))
        };
        let remote = |v: &[Build]| -> String {
            let n: Vec<String> = v
                .iter()
                .map(|b| b.stats.as_ref().map_or("?".into(), |s| s.dist.to_string()))
                .collect();
            n.join(", ")
        };
        let plain = secs(&d.plain);
        let _ = writeln!(
            r,
            "{}; one scheduler and one overlay build server (bubblewrap) on 127.0.0.1, the \
             client sccache 0.19 (`[dist]` in `SCCACHE_CONF`, fixed-token auth). Healthy: a \
             warm-up build packaged the toolchain and put it on the build server; then each \
             build starts with an empty local cache, so every compile is asked of the \
             cluster. Medians of {} run(s) each, interleaved.\n",
            d.what,
            d.sccache.len()
        );
        let _ = writeln!(r, "| lane | median | remote compiles per build |");
        let _ = writeln!(r, "|---|---:|---|");
        for (name, v) in [
            ("plain cargo", &d.plain),
            ("sccache alone", &d.sccache),
            ("shim with sccache", &d.shim),
        ] {
            let _ = writeln!(
                r,
                "| {name} | {} | {} |",
                secs(v).map_or("n/a".into(), |s| format!("{s:.2} s")),
                if name == "plain cargo" {
                    String::new()
                } else {
                    remote(v)
                }
            );
        }
        let (a, s) = (secs(&d.shim), secs(&d.sccache));
        let _ = writeln!(
            r,
            "\nHealthy ratio, shim / sccache alone: {} (target ≤ 1.02).\n",
            a.zip(s)
                .map_or("n/a".into(), |(a, s)| format!("×{:.3}", a / s))
        );
        let _ = writeln!(
            r,
            "**Faults**, one run each, a fresh cluster, sccache server and shim state dir \
             per build; sccache alone is stopped after {} s (shown as \"> {} s\"). \"Extra\" \
             is over the median plain build ({}; its runs: {}).\n",
            d.cap.as_secs(),
            d.cap.as_secs(),
            plain.map_or("n/a".into(), |p| format!("{p:.2} s")),
            d.plain
                .iter()
                .map(|b| format!("{:.2} s", b.secs))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let _ = writeln!(
            r,
            "| fault | sccache alone | shim | shim's extra | shim's calls | breaker |"
        );
        let _ = writeln!(r, "|---|---|---|---:|---|---|");
        for (fault, runs) in &d.faults {
            let get = |w: Who| runs.iter().find(|(who, _)| *who == w).map(|(_, b)| b);
            let (Some(alone), Some(shim)) = (get(Who::Sccache), get(Who::ShimSccache)) else {
                continue;
            };
            let extra = match (&shim.outcome, plain) {
                (Outcome::Passed, Some(p)) => format!("{:+.1} s", shim.secs - p),
                _ => String::new(),
            };
            let _ = writeln!(
                r,
                "| {} | {} | {} | {extra} | {} | {} |",
                fault.name(),
                cell(alone),
                cell(shim),
                shim.calls.as_ref().map_or(String::new(), |c| c.text()),
                shim.breaker.as_deref().unwrap_or("").replace('|', "\\|"),
            );
        }
        let _ = writeln!(r);
    }
}

/// A build's outcome and time in one table cell.
fn cell(b: &Build) -> String {
    match &b.outcome {
        Outcome::Passed => format!("passed, {:.1} s", b.secs),
        Outcome::Failed(_) => format!("**failed** after {:.1} s", b.secs),
        Outcome::TimedOut(n) => format!("> {n} s"),
    }
}

/// One scheduler and, unless told otherwise, one build server, killed when dropped.
struct Cluster {
    scheduler_port: u16,
    scheduler: Option<Child>,
    server: Option<Child>,
}

impl Cluster {
    fn start(b: &Bench, dist: &Path, name: &str, with_server: bool) -> Res<Cluster> {
        let dir = b.scratch_path(&format!("dist-cluster-{name}"));
        mkdir(&dir)?;
        let output = |args: &[&str]| -> Res<String> {
            let out = Command::new(dist)
                .args(args)
                .stdin(Stdio::null())
                .output()
                .map_err(|e| format!("cannot run {}: {e}", dist.display()))?;
            if !out.status.success() {
                return Err(format!("sccache-dist {args:?} failed"));
            }
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        };
        let (scheduler_port, server_port) = (free_port()?, free_port()?);
        let key = output(&["auth", "generate-jwt-hs256-key"])?;
        let server_addr = format!("127.0.0.1:{server_port}");
        let server_token = output(&[
            "auth",
            "generate-jwt-hs256-server-token",
            &format!("--secret-key={key}"),
            &format!("--server={server_addr}"),
        ])?;
        let write = |file: &str, text: String| {
            fs::write(dir.join(file), text).map_err(|e| format!("cannot write {file}: {e}"))
        };
        write(
            "scheduler.conf",
            format!(
                "public_addr = \"127.0.0.1:{scheduler_port}\"\n\n\
                 [client_auth]\ntype = \"token\"\ntoken = \"{TOKEN}\"\n\n\
                 [server_auth]\ntype = \"jwt_hs256\"\nsecret_key = \"{key}\"\n"
            ),
        )?;
        write(
            "server.conf",
            format!(
                "cache_dir = \"{}\"\npublic_addr = \"{server_addr}\"\n\
                 scheduler_url = \"http://127.0.0.1:{scheduler_port}\"\n\n\
                 [builder]\ntype = \"overlay\"\nbuild_dir = \"{}\"\nbwrap_path = \"{BWRAP}\"\n\n\
                 [scheduler_auth]\ntype = \"jwt_token\"\ntoken = \"{server_token}\"\n",
                dir.join("toolchains").display(),
                dir.join("build").display(),
            ),
        )?;
        let spawn = |role: &str| -> Res<Child> {
            let log =
                fs::File::create(dir.join(format!("{role}.log"))).map_err(|e| e.to_string())?;
            let err = log.try_clone().map_err(|e| e.to_string())?;
            let id = b.new_id(&format!("dist-{role}-{name}"));
            b.command(dist, &b.env_plain(), &id)
                .arg(role)
                .arg("--config")
                .arg(dir.join(format!("{role}.conf")))
                .env("SCCACHE_NO_DAEMON", "1")
                .env("SCCACHE_LOG", "info")
                .stdout(log)
                .stderr(err)
                .spawn()
                .map_err(|e| format!("cannot start sccache-dist {role}: {e}"))
        };
        let mut cluster = Cluster {
            scheduler_port,
            scheduler: Some(spawn("scheduler")?),
            server: None,
        };
        let want = if with_server {
            cluster.server = Some(spawn("server")?);
            "\"num_servers\":1"
        } else {
            "\"num_servers\":0"
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !cluster.status().is_some_and(|s| s.contains(want)) {
            if Instant::now() > deadline {
                return Err(format!(
                    "the sccache-dist cluster {name} was not ready in 60 s (logs in {})",
                    dir.display()
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(cluster)
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.scheduler_port)
    }

    /// The scheduler's status JSON, or `None` when it does not answer.
    fn status(&self) -> Option<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.scheduler_port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        let req = "GET /api/v1/scheduler/status HTTP/1.1\r\nHost: 127.0.0.1\r\n\
                   Accept: application/json\r\nConnection: close\r\n\r\n";
        s.write_all(req.as_bytes()).ok()?;
        let mut answer = String::new();
        s.read_to_string(&mut answer).ok()?;
        answer
            .starts_with("HTTP/1.1 200")
            .then(|| answer.split_once("\r\n\r\n").map(|x| x.1.to_owned()))?
    }

    /// Sends `sig` to the build server once it has a child (the sandbox of a remote compile);
    /// whether it did.
    fn signal_when_busy(&mut self, sig: i32) -> bool {
        let Some(pid) = self.server.as_ref().map(Child::id) else {
            return false;
        };
        let busy = fs::read_dir(format!("/proc/{pid}/task")).is_ok_and(|tasks| {
            tasks.flatten().any(|t| {
                fs::read_to_string(t.path().join("children")).is_ok_and(|c| !c.trim().is_empty())
            })
        });
        // SAFETY: kill(2) with the pid of our child, not yet reaped (reaped only on drop).
        busy && unsafe { libc::kill(pid as libc::pid_t, sig) } == 0
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in [self.server.take(), self.scheduler.take()]
            .into_iter()
            .flatten()
        {
            let mut child = child;
            // SAFETY: kill(2) with the pid of our child, not yet reaped. A stopped process
            // dies of SIGKILL anyway; SIGCONT only makes it prompt.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGCONT) };
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
