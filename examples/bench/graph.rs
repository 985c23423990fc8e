//! Sections 2 and 4 (the measuring part): the pinned crates.io graphs, fetched once, then
//! plain, sccache and shim builds, cold and warm, in alternating order; and the report of section 2.

use std::fmt::Write as _;
use std::fs;
use std::time::Duration;

use crate::measure::{median, ratio, spread, tail, Build, Lane, Outcome, Project};
use crate::report::met;
use crate::sandbox::{write, Bench};
use crate::Res;

/// A crates.io dependency graph, pinned by its Cargo.lock: what sections 2-4 build.
pub(crate) struct GraphSource {
    pub(crate) name: &'static str,
    pub(crate) manifest: &'static str,
    pub(crate) lock: &'static str,
    pub(crate) main: &'static str,
    pub(crate) what: &'static str,
    /// Section 3 kills Redis once this many libraries are built.
    pub(crate) kill_after: usize,
}

pub(crate) const GRAPH: GraphSource = GraphSource {
    name: "graph",
    manifest: include_str!("graph/Cargo.toml"),
    lock: include_str!("graph/Cargo.lock"),
    main: include_str!("graph/src/main.rs"),
    what: "the crates.io graph in `examples/bench/graph` (serde + derive, serde_json, regex, \
           clap + derive, anyhow, log, env_logger, itertools; pinned by its Cargo.lock), \
           debug profile, `CARGO_INCREMENTAL=0`",
    kill_after: 5,
};

/// The quick mode's graph: small, but fetched and built by the same code as the full one.
pub(crate) const QUICK_GRAPH: GraphSource = GraphSource {
    name: "graph-quick",
    manifest: include_str!("graph-quick/Cargo.toml"),
    lock: include_str!("graph-quick/Cargo.lock"),
    main: include_str!("graph-quick/src/main.rs"),
    what: "(quick mode) the small crates.io graph in `examples/bench/graph-quick` (anyhow \
           with its build script, the paste proc-macro, itoa, log, memchr; pinned by its \
           Cargo.lock), debug profile, `CARGO_INCREMENTAL=0`",
    kill_after: 2,
};

impl Bench {
    pub(crate) fn prepare_graph(&mut self, source: &GraphSource) -> Res<Project> {
        let dir = self.scratch_path(source.name);
        write(&dir.join("Cargo.toml"), source.manifest)?;
        write(&dir.join("Cargo.lock"), source.lock)?;
        write(&dir.join("src/main.rs"), source.main)?;
        let manifest = dir.join("Cargo.toml");
        say!(
            "fetching the crates.io graph {} (cargo fetch --locked)",
            source.name
        );
        let id = self.new_id("fetch");
        let mut env = self.env_plain();
        env.insert("CARGO_HOME".into(), self.real_cargo_home.clone().into());
        let mut cmd = self.command(&self.cargo, &env, &id);
        cmd.args(["fetch", "--locked", "--manifest-path"])
            .arg(&manifest);
        match self.run_bounded(cmd, Duration::from_secs(900))? {
            Some((s, _)) if s.success() => {}
            Some((s, out)) => return Err(format!("cargo fetch: {s}: {}", tail(&out, 10))),
            None => return Err("cargo fetch did not finish in 900 s".into()),
        }
        Ok(Project {
            target: self.scratch_path(&format!("{}-target", source.name)),
            manifest,
            what: source.what.into(),
            kill_after: source.kill_after,
        })
    }

    pub(crate) fn section_graph(&mut self, project: &Project) -> Res<Graph> {
        let reps = self.opts.reps;
        let warm_pairs = if self.opts.quick { 1 } else { 3 };
        let limit = self.opts.timeout;
        say!("sections 2 and 4: {reps} repetition(s), {warm_pairs} warm pair(s) each");
        // The first build after a fetch reads every source from disk; nothing measured should.
        let b = self.build("warm-up (not counted)", project, &Lane::Plain, limit, None)?;
        self.expect_pass("warm-up build", &b);
        let mut builds: Vec<GBuild> = Vec::new();
        for rep in 0..reps {
            // Plain and shim-without-sccache next to each other, in turns.
            let order = if rep % 2 == 0 {
                [Kind::Plain, Kind::ShimBare]
            } else {
                [Kind::ShimBare, Kind::Plain]
            };
            for kind in order {
                let b = self.uncached_build(project, kind, rep, limit)?;
                builds.push(GBuild::new(kind, rep * 100 + 50, b));
            }

            if self.sccache.is_some() {
                let sc_plain = self.new_sc(&format!("sccache-{rep}"), None)?;
                let sc_shim = self.new_sc(&format!("shim-{rep}"), None)?;
                for pair in 0..=warm_pairs {
                    // Pair 0 is cold (empty caches), the rest warm; who goes first alternates.
                    let warm = pair > 0;
                    let order = if (rep + pair) % 2 == 0 {
                        [false, true]
                    } else {
                        [true, false]
                    };
                    for shim in order {
                        let (kind, label) = match (shim, warm) {
                            (false, false) => (Kind::SccacheCold, "sccache cold"),
                            (true, false) => (Kind::ShimCold, "shim cold"),
                            (false, true) => (Kind::SccacheWarm, "sccache warm"),
                            (true, true) => (Kind::ShimWarm, "shim warm"),
                        };
                        let lane = if shim {
                            Lane::Shim {
                                sc: Some(&sc_shim),
                                state: self.new_state(&format!("{rep}-{pair}-{}", kind.slug()))?,
                            }
                        } else {
                            Lane::Sccache(&sc_plain)
                        };
                        let b = self.build(label, project, &lane, limit, None)?;
                        self.expect_pass(&format!("{label} build"), &b);
                        builds.push(GBuild::new(kind, rep * 100 + pair, b));
                    }
                }
                let _ = fs::remove_dir_all(&sc_plain.dir);
                let _ = fs::remove_dir_all(&sc_shim.dir);
            }
        }
        let _ = fs::remove_dir_all(&project.target);
        Ok(Graph {
            builds,
            reps,
            warm_pairs,
        })
    }

    /// A plain build, or one through the shim with no sccache anywhere.
    pub(crate) fn uncached_build(
        &mut self,
        project: &Project,
        kind: Kind,
        rep: usize,
        limit: Duration,
    ) -> Res<Build> {
        let b = if kind == Kind::Plain {
            self.build("plain cold", project, &Lane::Plain, limit, None)?
        } else {
            let lane = Lane::Shim {
                sc: None,
                state: self.new_state(&format!("{rep}-bare"))?,
            };
            self.build("shim without sccache", project, &lane, limit, None)?
        };
        self.expect_pass(&format!("{} build", kind.name()), &b);
        Ok(b)
    }

    pub(crate) fn render_graph(
        &self,
        r: &mut String,
        project: Option<&Project>,
        graph: Option<&Graph>,
    ) {
        let _ = writeln!(r, "## 2. A real dependency graph\n");
        let (Some(p), Some(g)) = (project, graph) else {
            let _ = writeln!(r, "Not measured (see Unexpected failures).\n");
            return;
        };
        let crates = g
            .builds
            .iter()
            .find(|x| x.kind == Kind::Plain)
            .map_or(0, |x| x.build.compiled);
        let _ = writeln!(
            r,
            "Project: {}; {crates} crates compiled per build. Each build: `cargo build \
             --offline --locked` into a fresh target dir. {} repetition(s) of: plain and \
             shim without sccache (section 4); sccache and shim cold, each with an empty \
             cache of its own; {} warm pair(s) (fresh target dir, the cache that lane's \
             cold build filled). Within each pair the order alternates. One plain build \
             before all of them warms the file cache and is not counted. Before each build the benchmark waits (up to 45 s) for the \
             rest of the machine to be nearly idle (quick mode: up to 2 s).\n",
            p.what, g.reps, g.warm_pairs
        );
        let plain = g.median(Kind::Plain);
        let _ = writeln!(
            r,
            "| build | runs | median | min–max | vs plain (medians) | vs sccache alone \
             (medians) | same, paired runs: median (min–max) | others' CPU-s per build \
             (median) |"
        );
        let _ = writeln!(r, "|---|---:|---:|---:|---:|---:|---:|---:|");
        for kind in [
            Kind::Plain,
            Kind::SccacheCold,
            Kind::ShimCold,
            Kind::SccacheWarm,
            Kind::ShimWarm,
        ] {
            let Some(med) = g.median(kind) else { continue };
            let (lo, hi) = g.range(kind);
            let other = match kind {
                Kind::ShimCold => Some(Kind::SccacheCold),
                Kind::ShimWarm => Some(Kind::SccacheWarm),
                _ => None,
            };
            let vs_sc = other.and_then(|o| g.median(o)).map(|s| med / s);
            let paired = other.map(|o| g.paired_ratios(kind, o));
            let _ = writeln!(
                r,
                "| {} | {} | {med:.2} s | {lo:.2}–{hi:.2} s | {} | {} | {} | {:.1} |",
                kind.name(),
                g.count(kind),
                ratio(Some(med), plain),
                vs_sc.map_or(String::new(), |x| format!("×{x:.3}")),
                paired.map_or(String::new(), |v| spread(&v)),
                g.others_cpu(kind),
            );
        }
        let _ = writeln!(r);
        for (shim, sc, what, target) in [
            (Kind::ShimWarm, Kind::SccacheWarm, "warm", 1.01),
            (Kind::ShimCold, Kind::SccacheCold, "cold", 1.0),
        ] {
            if let (Some(a), Some(b)) = (g.median(shim), g.median(sc)) {
                let x = a / b;
                let paired = g.paired_ratios(shim, sc);
                let min_ratio = g.min(shim).zip(g.min(sc)).map(|(a, b)| a / b);
                let _ = writeln!(
                    r,
                    "- **Shim {what} / sccache {what} = {x:.3}** ({a:.2} s vs {b:.2} s, \
                     medians; target ≤ {target}: {}). Paired runs: {}; best run of each: \
                     {}.",
                    met(x <= target),
                    spread(&paired),
                    min_ratio.map_or("n/a".into(), |m| format!("{m:.3}"))
                );
            }
        }
        for kind in [
            Kind::SccacheCold,
            Kind::ShimCold,
            Kind::SccacheWarm,
            Kind::ShimWarm,
        ] {
            if let Some(b) = g.last(kind) {
                let _ = writeln!(
                    r,
                    "- {}, last run: sccache {}{}.",
                    kind.name(),
                    b.stats.as_ref().map_or("n/a".into(), |s| s.text()),
                    b.calls
                        .as_ref()
                        .map(|c| format!("; the shim's calls: {}", c.text()))
                        .unwrap_or_default()
                );
            }
        }
        let failed: Vec<String> = g
            .builds
            .iter()
            .filter(|x| !x.passed())
            .map(|x| format!("{} {}", x.kind.name(), x.build.outcome.text()))
            .collect();
        if !failed.is_empty() {
            let _ = writeln!(r, "- Builds that did not pass: {}.", failed.join("; "));
        }
        let _ = writeln!(r);
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Kind {
    Plain,
    SccacheCold,
    ShimCold,
    SccacheWarm,
    ShimWarm,
    ShimBare,
}

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Plain => "plain cargo (cold)",
            Kind::SccacheCold => "sccache cold (empty cache)",
            Kind::ShimCold => "shim cold (empty cache)",
            Kind::SccacheWarm => "sccache warm (full cache)",
            Kind::ShimWarm => "shim warm (full cache)",
            Kind::ShimBare => "shim, no sccache",
        }
    }

    pub(crate) fn slug(self) -> &'static str {
        match self {
            Kind::Plain => "plain",
            Kind::SccacheCold => "sccache-cold",
            Kind::ShimCold => "shim-cold",
            Kind::SccacheWarm => "sccache-warm",
            Kind::ShimWarm => "shim-warm",
            Kind::ShimBare => "shim-bare",
        }
    }
}

pub(crate) struct GBuild {
    pub(crate) kind: Kind,
    /// Builds with the same pair number ran next to each other (same repetition, same
    /// cache state), for paired ratios.
    pub(crate) pair: usize,
    pub(crate) build: Build,
}

impl GBuild {
    pub(crate) fn new(kind: Kind, pair: usize, build: Build) -> GBuild {
        GBuild { kind, pair, build }
    }

    pub(crate) fn passed(&self) -> bool {
        matches!(self.build.outcome, Outcome::Passed)
    }
}

pub(crate) struct Graph {
    pub(crate) builds: Vec<GBuild>,
    pub(crate) reps: usize,
    pub(crate) warm_pairs: usize,
}

impl Graph {
    /// Times of the passed builds of a kind.
    pub(crate) fn times(&self, kind: Kind) -> Vec<f64> {
        self.builds
            .iter()
            .filter(|g| g.kind == kind && g.passed())
            .map(|g| g.build.secs)
            .collect()
    }

    pub(crate) fn median(&self, kind: Kind) -> Option<f64> {
        let t = self.times(kind);
        (!t.is_empty()).then(|| median(&t))
    }

    pub(crate) fn min(&self, kind: Kind) -> Option<f64> {
        self.times(kind).into_iter().reduce(f64::min)
    }

    pub(crate) fn range(&self, kind: Kind) -> (f64, f64) {
        let t = self.times(kind);
        (
            t.iter().copied().fold(f64::INFINITY, f64::min),
            t.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        )
    }

    pub(crate) fn count(&self, kind: Kind) -> usize {
        self.times(kind).len()
    }

    pub(crate) fn last(&self, kind: Kind) -> Option<&Build> {
        self.builds
            .iter()
            .rev()
            .find(|g| g.kind == kind)
            .map(|g| &g.build)
    }

    /// `a / b` for every pair in which both passed.
    pub(crate) fn paired_ratios(&self, a: Kind, b: Kind) -> Vec<f64> {
        self.builds
            .iter()
            .filter(|x| x.kind == a && x.passed())
            .filter_map(|x| {
                let y = self
                    .builds
                    .iter()
                    .find(|y| y.kind == b && y.pair == x.pair && y.passed())?;
                Some(x.build.secs / y.build.secs)
            })
            .collect()
    }

    /// Median CPU seconds other processes used during the builds of a kind.
    pub(crate) fn others_cpu(&self, kind: Kind) -> f64 {
        let v: Vec<f64> = self
            .builds
            .iter()
            .filter(|g| g.kind == kind)
            .map(|g| g.build.others_cpu)
            .collect();
        median(&v)
    }
}
