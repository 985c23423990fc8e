//! Section 5: C and C++, a crates.io graph whose build script compiles C with the `cc` crate,
//! sccache alone against the shim through its `sccache` alias, cold and warm.

use std::fmt::Write as _;
use std::fs;

use crate::graph::GraphSource;
use crate::measure::{median, ratio, Lane, Project};
use crate::report::met;
use crate::sandbox::Bench;
use crate::Res;

pub(crate) const CGRAPH: GraphSource = GraphSource {
    name: "cgraph",
    manifest: include_str!("cgraph/Cargo.toml"),
    lock: include_str!("cgraph/Cargo.lock"),
    main: include_str!("cgraph/src/main.rs"),
    what: "the crates.io graph in `examples/bench/cgraph` (`zstd` 0.13, whose `zstd-sys` \
           build script compiles zstd's C files with the `cc` crate; pinned by its \
           Cargo.lock), debug profile, `CARGO_INCREMENTAL=0`",
    kill_after: 0,
};

/// The quick mode's C graph: small, but fetched and built by the same code as the full one.
pub(crate) const QUICK_CGRAPH: GraphSource = GraphSource {
    name: "cgraph-quick",
    manifest: include_str!("cgraph-quick/Cargo.toml"),
    lock: include_str!("cgraph-quick/Cargo.lock"),
    main: include_str!("cgraph-quick/src/main.rs"),
    what: "(quick mode) the small crates.io graph in `examples/bench/cgraph-quick` \
           (`lz4-sys`, whose build script compiles lz4's C files with the `cc` crate; \
           pinned by its Cargo.lock), debug profile, `CARGO_INCREMENTAL=0`",
    kill_after: 0,
};

impl Bench {
    /// sccache alone against the shim through its alias, each with a cache of its own:
    /// per repetition one cold build each, then warm pairs; who goes first alternates.
    pub(crate) fn section_c(&mut self, project: &Project) -> Res<CSection> {
        let mut c = CSection::default();
        if self.sccache.is_none() || self.alias.is_none() {
            c.skipped = Some("needs sccache and the shim's alias".into());
            return Ok(c);
        }
        let reps = self.opts.reps;
        let warm_pairs = if self.opts.quick { 1 } else { 3 };
        let limit = self.opts.timeout;
        say!("section 5: C and C++, {reps} repetition(s), {warm_pairs} warm pair(s) each");
        let b = self.build(
            "C warm-up (not counted)",
            project,
            &Lane::Plain,
            limit,
            None,
        )?;
        self.expect_pass("C warm-up build", &b);
        for rep in 0..reps {
            let sc_plain = self.new_sc(&format!("c-sccache-{rep}"), None)?;
            let sc_shim = self.new_sc(&format!("c-shim-{rep}"), None)?;
            for pair in 0..=warm_pairs {
                let warm = pair > 0;
                let order = if (rep + pair) % 2 == 0 {
                    [false, true]
                } else {
                    [true, false]
                };
                for shim in order {
                    let label = match (shim, warm) {
                        (false, false) => "C: sccache cold",
                        (true, false) => "C: shim (alias) cold",
                        (false, true) => "C: sccache warm",
                        (true, true) => "C: shim (alias) warm",
                    };
                    let lane = if shim {
                        Lane::Alias {
                            sc: &sc_shim,
                            state: self.new_state(&format!("c-{rep}-{pair}"))?,
                        }
                    } else {
                        Lane::Sccache(&sc_plain)
                    };
                    let b = self.build(label, project, &lane, limit, None)?;
                    self.expect_pass(&format!("{label} build"), &b);
                    c.runs.push(CRun {
                        shim,
                        warm,
                        secs: b.secs,
                        c_hits: b.stats.as_ref().map(|s| s.c_hits),
                        c_misses: b.stats.as_ref().map(|s| s.c_misses),
                    });
                }
            }
            let _ = fs::remove_dir_all(&sc_plain.dir);
            let _ = fs::remove_dir_all(&sc_shim.dir);
        }
        let _ = fs::remove_dir_all(&project.target);
        Ok(c)
    }

    pub(crate) fn render_c(&self, r: &mut String, project: Option<&Project>, c: Option<&CSection>) {
        let _ = writeln!(r, "## 5. C and C++ through the alias\n");
        let Some(c) = c else {
            let _ = writeln!(r, "Not measured (see Unexpected failures).\n");
            return;
        };
        if let Some(why) = &c.skipped {
            let _ = writeln!(r, "Skipped: {why}.\n");
            return;
        }
        if let Some(p) = project {
            let _ = writeln!(
                r,
                "Project: {}. `RUSTC_WRAPPER` is sccache itself, or the path `maybe-sccache \
                 alias` printed (a link named `sccache`, which cc-rs requires before it \
                 wraps C compiles). Each lane has a cache of its own; cold = empty cache, \
                 warm = fresh target dir over that lane's full cache. Lanes alternate; \
                 medians.\n",
                p.what
            );
        }
        let secs = |shim: bool, warm: bool| -> Vec<f64> {
            c.runs
                .iter()
                .filter(|r| r.shim == shim && r.warm == warm)
                .map(|r| r.secs)
                .collect()
        };
        let counts = |shim: bool, warm: bool, hits: bool| -> Vec<f64> {
            c.runs
                .iter()
                .filter(|r| r.shim == shim && r.warm == warm)
                .filter_map(|r| if hits { r.c_hits } else { r.c_misses })
                .map(|n| n as f64)
                .collect()
        };
        let med = |v: Vec<f64>| (!v.is_empty()).then(|| median(&v));
        let _ = writeln!(
            r,
            "| | sccache alone | shim via alias | shim / sccache | runs |"
        );
        let _ = writeln!(r, "|---|---:|---:|---:|---:|");
        for (warm, name) in [(false, "cold build"), (true, "warm build")] {
            let (a, b) = (med(secs(false, warm)), med(secs(true, warm)));
            let _ = writeln!(
                r,
                "| {name} | {} | {} | {}{} | {} |",
                a.map_or("–".into(), |v| format!("{v:.2} s")),
                b.map_or("–".into(), |v| format!("{v:.2} s")),
                ratio(b, a),
                if warm {
                    match (a, b) {
                        (Some(a), Some(b)) => {
                            format!(" (target ≤ 1.02: {})", met(b / a <= 1.02))
                        }
                        _ => String::new(),
                    }
                } else {
                    String::new()
                },
                secs(true, warm).len()
            );
        }
        let (a, b) = (
            med(counts(false, false, false)),
            med(counts(true, false, false)),
        );
        let _ = writeln!(
            r,
            "| C/C++ misses per cold build | {} | {} | | |",
            a.map_or("–".into(), |v| format!("{v:.0}")),
            b.map_or("–".into(), |v| format!("{v:.0}"))
        );
        let (a, b) = (
            med(counts(false, true, true)),
            med(counts(true, true, true)),
        );
        let _ = writeln!(
            r,
            "| C/C++ hits per warm build | {} | {} | {} | |\n",
            a.map_or("–".into(), |v| format!("{v:.0}")),
            b.map_or("–".into(), |v| format!("{v:.0}")),
            match (a, b) {
                (Some(a), Some(b)) => format!("equal: {}", met(a == b && a > 0.0)),
                _ => "–".into(),
            }
        );
    }
}

/// Section 5: one row per build.
#[derive(Default)]
pub(crate) struct CSection {
    pub(crate) runs: Vec<CRun>,
    pub(crate) skipped: Option<String>,
}

pub(crate) struct CRun {
    pub(crate) shim: bool,
    pub(crate) warm: bool,
    pub(crate) secs: f64,
    pub(crate) c_hits: Option<u64>,
    pub(crate) c_misses: Option<u64>,
}
