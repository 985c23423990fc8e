//! Section 1: the per-call overhead of `rustc -vV` and of a tiny one-file compile, for rustc
//! alone, the exec-only floor wrapper, the shim without sccache, sccache alone and the shim with
//! sccache, in interleaved rounds whose order rotates.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::measure::{median, median_ci, percentile};
use crate::procs::Watchdog;
use crate::report::met;
use crate::sandbox::{mkdir, write, Bench};
use crate::sccache::Stats;
use crate::{Env, Res};

impl Bench {
    pub(crate) fn section_micro(&mut self) -> Res<Micro> {
        say!(
            "section 1: per-call overhead, {} probe and {} compile rounds",
            self.opts.probe_runs,
            self.opts.compile_runs
        );
        let id = self.new_id("micro");
        let dir = self.scratch_path("micro");
        mkdir(&dir)?;
        let src = dir.join("x.rs");
        write(
            &src,
            "//! The tiny real compile of section 1.\n\n\
             pub fn add(a: u32, b: u32) -> u32 {\n    a.wrapping_add(b)\n}\n",
        )?;
        let rustc: OsString = self.rustc.clone().into();
        let sc = match &self.sccache {
            Some(_) => Some(self.new_sc("micro", None)?),
            None => None,
        };
        let mut lanes: Vec<MicroLane> = vec![
            MicroLane {
                who: Who::Rustc,
                program: self.rustc.clone(),
                prefix: vec![],
                env: self.env_plain(),
            },
            MicroLane {
                who: Who::Floor,
                program: self.floor.clone(),
                prefix: vec![rustc.clone()],
                env: self.env_plain(),
            },
            MicroLane {
                who: Who::ShimBare,
                program: self.shim.clone(),
                prefix: vec![rustc.clone()],
                env: self.env_shim_bare(&self.new_state("micro-bare")?, &self.empty_home),
            },
        ];
        if let (Some(sccache), Some(sc)) = (&self.sccache, &sc) {
            lanes.push(MicroLane {
                who: Who::Sccache,
                program: sccache.clone(),
                prefix: vec![rustc.clone()],
                env: self.env_sccache(sc),
            });
            lanes.push(MicroLane {
                who: Who::ShimSccache,
                program: self.shim.clone(),
                prefix: vec![rustc.clone()],
                env: self.env_shim_sccache(sc, &self.new_state("micro-sccache")?),
            });
            // Server up before anything is measured.
            let env = self.env_sccache(sc);
            let mut start = self.command(sccache, &env, &id);
            start.arg("--start-server");
            match self.run_bounded(start, Duration::from_secs(60))? {
                Some((s, _)) if s.success() => {}
                Some((s, out)) => {
                    self.stop_sccache(&env, &id);
                    return Err(format!("sccache --start-server: {s}: {}", out.trim()));
                }
                None => {
                    self.stop_sccache(&env, &id);
                    return Err("sccache --start-server did not finish in 60 s".into());
                }
            }
        }
        let result = self.micro_rounds(&lanes, &dir, &src, &id);
        let stats = sc
            .as_ref()
            .and_then(|sc| self.sccache_stats(&self.env_sccache(sc), &id));
        if let Some(sc) = &sc {
            self.stop_sccache(&self.env_sccache(sc), &id);
        }
        let (probe, compile) = result?;
        Ok(Micro {
            lanes: lanes.iter().map(|l| l.who).collect(),
            probe,
            compile,
            stats,
        })
    }

    #[allow(clippy::type_complexity)]
    pub(crate) fn micro_rounds(
        &self,
        lanes: &[MicroLane],
        dir: &Path,
        src: &Path,
        id: &str,
    ) -> Res<(Vec<Vec<f64>>, Vec<Vec<f64>>)> {
        // A call that hangs would hang the benchmark: the watchdog kills it after 120 s.
        let dog = Watchdog::start(id, Duration::from_secs(120));
        let probe_args: Vec<OsString> = vec!["-vV".into()];
        let compile_args = |who: Who| -> Res<Vec<OsString>> {
            let out = dir.join(format!("out-{}", who.slug()));
            mkdir(&out)?;
            Ok([
                "--crate-type",
                "lib",
                "--emit=link,metadata,dep-info",
                "--crate-name",
                "x",
                "--out-dir",
            ]
            .iter()
            .map(OsString::from)
            .chain([out.into_os_string(), src.as_os_str().to_owned()])
            .collect())
        };
        let mut results = Vec::new();
        for (case, runs) in [
            ("probe", self.opts.probe_runs),
            ("compile", self.opts.compile_runs),
        ] {
            let mut cmds = Vec::new();
            for lane in lanes {
                let args = if case == "probe" {
                    probe_args.clone()
                } else {
                    compile_args(lane.who)?
                };
                cmds.push((lane, args));
            }
            let mut samples = vec![Vec::with_capacity(runs); lanes.len()];
            let warmup = 3;
            for round in 0..warmup + runs {
                for k in 0..cmds.len() {
                    // Rotate who goes first, so no lane always follows the same one.
                    let i = (round + k) % cmds.len();
                    let (lane, args) = &cmds[i];
                    let mut cmd = self.command(&lane.program, &lane.env, id);
                    cmd.args(&lane.prefix)
                        .args(args)
                        .stdout(Stdio::null())
                        .stderr(Stdio::null());
                    let t = Instant::now();
                    let status = cmd.status();
                    let dt = t.elapsed();
                    dog.beat();
                    let ok = status.as_ref().is_ok_and(|s| s.success());
                    if !ok {
                        let mut again = self.command(&lane.program, &lane.env, id);
                        again.args(&lane.prefix).args(args);
                        let detail = match again.output() {
                            Ok(o) => format!(
                                "{}: {}",
                                o.status,
                                String::from_utf8_lossy(&o.stderr).trim()
                            ),
                            Err(e) => e.to_string(),
                        };
                        return Err(format!(
                            "{} ({case}) failed: {:?}; again: {detail}",
                            lane.who.name(),
                            status.map(|s| s.to_string()).map_err(|e| e.to_string())
                        ));
                    }
                    if round >= warmup {
                        samples[i].push(dt.as_secs_f64() * 1e3);
                    }
                }
            }
            say!(
                "  {case}: {}",
                lanes
                    .iter()
                    .zip(&samples)
                    .map(|(l, s)| format!("{} {:.2} ms", l.who.slug(), median(s)))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            results.push(samples);
        }
        let compile = results.pop().unwrap_or_default();
        let probe = results.pop().unwrap_or_default();
        Ok((probe, compile))
    }

    pub(crate) fn render_micro(&self, r: &mut String, micro: Option<&Micro>) {
        let _ = writeln!(r, "## 1. Per-call overhead\n");
        let Some(m) = micro else {
            let _ = writeln!(r, "Not measured (see Unexpected failures).\n");
            return;
        };
        let _ = writeln!(
            r,
            "`rustc -vV` ({} runs per lane) and a tiny real compile ({} runs per lane: \
             `--crate-type lib --emit=link,metadata,dep-info --crate-name x --out-dir …` on \
             a one-function file, `CARGO_INCREMENTAL` unset). Lanes alternate call by call \
             (each round starts with the next lane); medians, with the 25th–75th \
             percentile, after 3 unmeasured warm-up rounds.\n",
            self.opts.probe_runs, self.opts.compile_runs
        );
        let _ = writeln!(
            r,
            "| lane | `rustc -vV` | p25–p75 | vs rustc | tiny compile | p25–p75 | vs rustc |"
        );
        let _ = writeln!(r, "|---|---:|---:|---:|---:|---:|---:|");
        let base_p = m.median(Who::Rustc, true).unwrap_or(f64::NAN);
        let base_c = m.median(Who::Rustc, false).unwrap_or(f64::NAN);
        for (i, who) in m.lanes.iter().enumerate() {
            let (p, c) = (&m.probe[i], &m.compile[i]);
            let _ = writeln!(
                r,
                "| {} | {:.2} ms | {:.2}–{:.2} | {:+.2} ms | {:.2} ms | {:.2}–{:.2} | {:+.2} ms |",
                who.name(),
                median(p),
                percentile(p, 25.0),
                percentile(p, 75.0),
                median(p) - base_p,
                median(c),
                percentile(c, 25.0),
                percentile(c, 75.0),
                median(c) - base_c,
            );
        }
        let _ = writeln!(r);
        for (case, probe) in [("`rustc -vV`", true), ("tiny compile", false)] {
            if let Some(d) = m.paired(Who::ShimBare, Who::Floor, probe) {
                let _ = writeln!(
                    r,
                    "- **Shim without sccache − exec-only floor, {case}: {d:+.3} ms** \
                     (median of per-round differences{}; target ≤ 0.2 ms: {}).",
                    m.ci_text(Who::ShimBare, Who::Floor, probe),
                    met(d <= 0.2)
                );
            }
        }
        for (case, probe) in [("`rustc -vV`", true), ("tiny compile", false)] {
            if let (Some(shim), Some(sc), Some(d)) = (
                m.median(Who::ShimSccache, probe),
                m.median(Who::Sccache, probe),
                m.paired(Who::ShimSccache, Who::Sccache, probe),
            ) {
                let target = if probe {
                    format!(" (target ≤ 1: {})", met(shim <= sc))
                } else {
                    String::new()
                };
                // Issue 8: a forwarded call costs at most 1.0 ms over sccache alone.
                let forwarded = if probe {
                    String::new()
                } else {
                    format!(" (target ≤ 1.0 ms: {})", met(d <= 1.0))
                };
                let _ = writeln!(
                    r,
                    "- **Shim with sccache vs sccache alone, {case}: {shim:.2} ms vs \
                     {sc:.2} ms, ratio {:.3}**{target}; median per-round difference \
                     {d:+.3} ms{}{forwarded}.",
                    shim / sc,
                    m.ci_text(Who::ShimSccache, Who::Sccache, probe)
                );
            }
        }
        if let Some(s) = &m.stats {
            let _ = writeln!(
                r,
                "- The section's sccache server (shared by both sccache lanes): {}.",
                s.text()
            );
        }
        let _ = writeln!(r);
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Who {
    Rustc,
    Floor,
    ShimBare,
    Sccache,
    ShimSccache,
}

impl Who {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Who::Rustc => "rustc alone",
            Who::Floor => "exec-only wrapper (floor)",
            Who::ShimBare => "shim, no sccache",
            Who::Sccache => "sccache alone",
            Who::ShimSccache => "shim with sccache",
        }
    }

    pub(crate) fn slug(self) -> &'static str {
        match self {
            Who::Rustc => "rustc",
            Who::Floor => "floor",
            Who::ShimBare => "shim-bare",
            Who::Sccache => "sccache",
            Who::ShimSccache => "shim-sccache",
        }
    }
}

pub(crate) struct MicroLane {
    pub(crate) who: Who,
    pub(crate) program: PathBuf,
    pub(crate) prefix: Vec<OsString>,
    pub(crate) env: Env,
}

pub(crate) struct Micro {
    pub(crate) lanes: Vec<Who>,
    /// Per lane, per round, in ms (index-aligned with `lanes`; rounds aligned across lanes).
    pub(crate) probe: Vec<Vec<f64>>,
    pub(crate) compile: Vec<Vec<f64>>,
    pub(crate) stats: Option<Stats>,
}

impl Micro {
    pub(crate) fn samples(&self, who: Who, probe: bool) -> Option<&[f64]> {
        let i = self.lanes.iter().position(|w| *w == who)?;
        Some(if probe {
            &self.probe[i]
        } else {
            &self.compile[i]
        })
    }

    pub(crate) fn median(&self, who: Who, probe: bool) -> Option<f64> {
        self.samples(who, probe).map(median)
    }

    /// The per-round differences `a - b`.
    pub(crate) fn diffs(&self, a: Who, b: Who, probe: bool) -> Option<Vec<f64>> {
        let (a, b) = (self.samples(a, probe)?, self.samples(b, probe)?);
        Some(a.iter().zip(b).map(|(x, y)| x - y).collect())
    }

    /// Median of the per-round differences `a - b`.
    pub(crate) fn paired(&self, a: Who, b: Who, probe: bool) -> Option<f64> {
        self.diffs(a, b, probe).map(|d| median(&d))
    }

    /// ` (95 % CI a to b)` for the median of the per-round differences, if there are
    /// enough rounds.
    pub(crate) fn ci_text(&self, a: Who, b: Who, probe: bool) -> String {
        self.diffs(a, b, probe)
            .and_then(|d| median_ci(&d))
            .map_or(String::new(), |(lo, hi)| {
                format!(", 95 % confidence interval {lo:+.3} to {hi:+.3} ms")
            })
    }
}
