//! Section 3: faults with a real Redis, the backend unreachable from the start and killed in
//! the middle of a build, sccache alone against the shim.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use crate::backends::fault_row;
use crate::graph::{Graph, Kind};
use crate::measure::{count_libs, Build, Lane, Outcome, Project};
use crate::per_call::Who;
use crate::procs::{free_port, Server};
use crate::sandbox::{mkdir, Bench};
use crate::Res;

impl Bench {
    pub(crate) fn section_faults(&mut self, project: &Project) -> Res<Faults> {
        let limit = self.opts.timeout;
        let mut faults = Faults {
            // sccache alone against a dead Redis can take minutes; the smoke mode only needs
            // to see that the time limit works.
            sccache_limit: if self.opts.quick {
                limit.min(Duration::from_secs(20))
            } else {
                limit
            },
            ..Faults::default()
        };
        let (Some(_), Some(redis_bin)) = (self.sccache.clone(), self.redis.clone()) else {
            faults.skipped = Some("needs both sccache and redis-server".into());
            return Ok(faults);
        };
        say!("section 3: faults with Redis");

        // (a) Nothing listens on the endpoint's port.
        let closed = free_port()?;
        let endpoint = format!("redis://127.0.0.1:{closed}");
        let sc = self.new_sc("unreachable-sccache", Some(endpoint.clone()))?;
        let b = self.build(
            "unreachable: sccache",
            project,
            &Lane::Sccache(&sc),
            limit,
            None,
        )?;
        faults.unreachable.push((Who::Sccache, b));
        let sc = self.new_sc("unreachable-shim", Some(endpoint))?;
        let lane = Lane::Shim {
            sc: Some(&sc),
            state: self.new_state("unreachable-shim")?,
        };
        let b = self.build("unreachable: shim", project, &lane, limit, None)?;
        self.expect_pass("shim build with Redis unreachable", &b);
        faults.unreachable.push((Who::ShimSccache, b));

        // (b) Redis up at the start, killed once a few crates are built.
        let deps = project.target.join("debug").join("deps");
        let threshold = project.kill_after;
        for who in [Who::Sccache, Who::ShimSccache] {
            let id = self.new_id(&format!("redis-{}", who.slug()));
            let mut redis = start_redis(self, &redis_bin, &id)?;
            let sc = self.new_sc(
                &format!("killed-{}", who.slug()),
                Some(format!("redis://127.0.0.1:{}", redis.port)),
            )?;
            let lane = match who {
                Who::Sccache => Lane::Sccache(&sc),
                _ => Lane::Shim {
                    sc: Some(&sc),
                    state: self.new_state(&format!("killed-{}", who.slug()))?,
                },
            };
            let mut watch = |_: Duration| -> bool {
                if count_libs(&deps) >= threshold {
                    redis.kill();
                    true
                } else {
                    false
                }
            };
            let label = format!("killed: {}", who.slug());
            let limit = match who {
                Who::Sccache => faults.sccache_limit,
                _ => limit,
            };
            let b = self.build(&label, project, &lane, limit, Some(&mut watch))?;
            drop(redis);
            if b.fired_at.is_none() {
                self.note(format!(
                    "Section 3, Redis killed mid-build, {}: the build finished before {} \
                     crates were built, so Redis was never killed.",
                    who.name(),
                    threshold
                ));
            }
            if who == Who::ShimSccache {
                self.expect_pass("shim build with Redis killed mid-build", &b);
            }
            faults.killed.push((who, b));
        }
        faults.kill_after = threshold;
        Ok(faults)
    }

    pub(crate) fn render_faults(
        &self,
        r: &mut String,
        graph: Option<&Graph>,
        faults: Option<&Faults>,
    ) {
        let _ = writeln!(r, "## 3. Faults, with a real Redis\n");
        let Some(f) = faults else {
            let _ = writeln!(r, "Not measured (see Unexpected failures).\n");
            return;
        };
        if let Some(why) = &f.skipped {
            let _ = writeln!(r, "Skipped: {why}.\n");
            return;
        }
        let plain = graph.and_then(|g| g.median(Kind::Plain));
        let _ = writeln!(
            r,
            "The same project as section 2, one run per row, each with its own sccache \
             server and a fresh shim state dir, the shim with its defaults; \"vs plain\" \
             compares with the median plain build of section 2 ({}). A build is stopped \
             after {} s{}.\n",
            plain.map_or("n/a".into(), |p| format!("{p:.2} s")),
            self.opts.timeout.as_secs(),
            if f.sccache_limit < self.opts.timeout {
                format!(
                    " (quick mode: sccache alone with Redis killed after {} s)",
                    f.sccache_limit.as_secs()
                )
            } else {
                String::new()
            }
        );
        let _ = writeln!(
            r,
            "**Backend unreachable from the start** (`SCCACHE_REDIS_ENDPOINT` names a \
             closed port):\n"
        );
        let _ = writeln!(
            r,
            "| wrapper | outcome | time | vs plain | sccache | shim's calls | breaker |"
        );
        let _ = writeln!(r, "|---|---|---:|---:|---|---|---|");
        for (who, b) in &f.unreachable {
            fault_row(r, *who, b, plain, None);
        }
        let _ = writeln!(
            r,
            "\n**Backend killed mid-build** (a fresh `redis-server --save '' --appendonly \
             no`, killed with SIGKILL once {} crates are in `target/debug/deps`):\n",
            f.kill_after
        );
        let _ = writeln!(
            r,
            "| wrapper | outcome | time | vs plain | Redis killed at | sccache | shim's \
             calls | breaker |"
        );
        let _ = writeln!(r, "|---|---|---:|---:|---:|---|---|---|");
        for (who, b) in &f.killed {
            fault_row(r, *who, b, plain, Some(b.fired_at));
        }
        let _ = writeln!(r);
        for (what, list) in [("unreachable", &f.unreachable), ("killed", &f.killed)] {
            for (who, b) in list {
                if !matches!(b.outcome, Outcome::Passed) && !b.tail.is_empty() {
                    let _ = writeln!(
                        r,
                        "<details><summary>{what}, {}: end of cargo's output</summary>\n\n\
                         ```text\n{}\n```\n</details>\n",
                        who.name(),
                        b.tail
                    );
                }
            }
        }
    }
}

#[derive(Default)]
pub(crate) struct Faults {
    pub(crate) unreachable: Vec<(Who, Build)>,
    pub(crate) killed: Vec<(Who, Build)>,
    pub(crate) kill_after: usize,
    /// The time limit for sccache alone with Redis killed (shorter in quick mode).
    pub(crate) sccache_limit: Duration,
    pub(crate) skipped: Option<String>,
}

/// Starts a redis-server of our own on a free port, with no persistence.
pub(crate) fn start_redis(b: &Bench, bin: &Path, id: &str) -> Res<Server> {
    let port = free_port()?;
    let dir = b.scratch_path(&format!("redis-{port}"));
    mkdir(&dir)?;
    let mut cmd = b.command(bin, &b.env_plain(), id);
    cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
        .arg("--dir")
        .arg(&dir);
    Server::start(cmd, port, "redis-server", Duration::from_secs(20))
}
