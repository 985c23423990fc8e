//! The report: the markdown file with every section, the README's headline table between its
//! markers, and the facts about the machine and the time that go with them.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};
use std::{fs, thread};

use crate::backends::BackendFaults;
use crate::c_cpp::CSection;
use crate::dist::Dist;
use crate::faults::Faults;
use crate::graph::{Graph, Kind};
use crate::measure::{median, ratio, spread, Build, Outcome, Project};
use crate::per_call::{Micro, Who};
use crate::sandbox::{linkage, Bench};
use crate::{Res, T0};

impl Bench {
    pub(crate) fn render(
        &self,
        micro: Option<&Micro>,
        project: Option<&Project>,
        graph: Option<&Graph>,
        faults: Option<&Faults>,
        c: (Option<&Project>, Option<&CSection>),
        // Section 3b's remote backends and section 6's cluster.
        remote: (Option<&BackendFaults>, Option<&Dist>),
    ) -> String {
        let mut r = String::new();
        let o = &self.opts;
        let _ = writeln!(r, "# maybe-sccache benchmarks\n");
        if o.quick {
            let _ = writeln!(
                r,
                "> **Quick (smoke) mode**: few runs and a small crates.io graph. These \
                 numbers only show that the benchmark works; run without `--quick` for \
                 real ones.\n"
            );
        }
        let _ = writeln!(r, "Produced by:\n\n```sh\n{}\n```\n", o.command_line());
        let _ = writeln!(
            r,
            "Every figure below comes from that one run on one machine, of commit `{}`. \
             Nothing is asserted; targets are the ones of issues 5, 8 and 9.\n",
            or_none(&self.versions.git, "unknown")
        );
        let _ = writeln!(
            r,
            "## Headline\n\n{}",
            self.headline(micro, graph, faults, c.1)
        );
        let _ = writeln!(r, "| | |\n|---|---|");
        let _ = writeln!(r, "| date | {} |", utc_now());
        let _ = writeln!(r, "| machine | {} |", machine());
        let _ = writeln!(
            r,
            "| load average (1, 5, 15 min) at the start → end | {} → {} |",
            self.load_at_start,
            loadavg()
        );
        let _ = writeln!(r, "| rustc | {} |", self.versions.rustc);
        let _ = writeln!(r, "| cargo | {} |", self.versions.cargo);
        let _ = writeln!(
            r,
            "| sccache | {} |",
            or_none(&self.versions.sccache, "not found")
        );
        let _ = writeln!(
            r,
            "| redis-server | {} |",
            or_none(&self.versions.redis, "not found")
        );
        let _ = writeln!(
            r,
            "| maybe-sccache | {}{} |",
            self.versions.shim,
            if self.versions.git.is_empty() {
                String::new()
            } else {
                format!(" (git {})", self.versions.git)
            }
        );
        let _ = writeln!(r, "| maybe-sccache linkage | {} |", linkage(&self.shim));
        let _ = writeln!(
            r,
            "| total benchmark time | {:.0} s |\n",
            T0.get().map_or(0.0, |t| t.elapsed().as_secs_f64())
        );

        self.render_micro(&mut r, micro);
        self.render_graph(&mut r, project, graph);
        self.render_faults(&mut r, graph, faults);
        self.render_backends(&mut r, remote.0);
        self.render_fallback(&mut r, micro, graph);
        self.render_c(&mut r, c.0, c.1);
        self.render_dist(&mut r, remote.1);

        let _ = writeln!(r, "## Notes\n");
        let _ = writeln!(
            r,
            "- Isolation: a scratch directory per run holds every sccache cache \
             (`SCCACHE_DIR`), the shim's state dirs (`MAYBE_SCCACHE_STATE_DIR`), the target \
             dirs and a `CARGO_HOME` that links the real registry but has no `bin`; \
             `SCCACHE_CONF` points at an empty file; every sccache server and Redis has a \
             free port of its own. All builds use the real `rustc` of the toolchain \
             (`RUSTC`), not a rustup proxy.\n\
             - \"No sccache\" means: `PATH` with every `sccache` masked, `SCCACHE_PATH` \
             unset, a `CARGO_HOME` without `bin/sccache`. Every lane gets that same `PATH` \
             (the sccache lanes name sccache by its full path), so lanes differ only in \
             `RUSTC_WRAPPER` and the sccache and shim variables.\n\
             - sccache lanes start without a server (the wrapper starts it, as in CI), \
             except section 1, whose server is started before anything is measured. Warm \
             = the same project path and target path, emptied, with the cache the cold \
             build of that lane filled."
        );
        for n in &self.notes {
            let _ = writeln!(r, "- {n}");
        }
        let rows = self.all_builds.borrow();
        if !rows.is_empty() {
            let _ = writeln!(
                r,
                "\n<details><summary>Every cargo build of this run, in order</summary>\n\n\
                 \"others' CPU-s\": CPU seconds used meanwhile by processes that are not \
                 this benchmark's (other people's compiles, on a shared machine), sampled \
                 every 250 ms (a floor: processes shorter than that are missed); \
                 \"steal CPU-s\": CPU time the hypervisor gave to other guests while this \
                 machine wanted it (/proc/stat); \"waited\": time spent waiting for the \
                 machine to be quiet first.\n\n\
                 | # | build | outcome | time | others' CPU-s | steal CPU-s | waited |\n\
                 |---:|---|---|---:|---:|---:|---:|"
            );
            for row in rows.iter() {
                let _ = writeln!(r, "{row}");
            }
            let _ = writeln!(r, "\n</details>");
        }
        if !self.failures.is_empty() {
            let _ = writeln!(r, "\n## Unexpected failures\n");
            for f in &self.failures {
                let _ = writeln!(r, "- {}", f.replace('\n', "\n  "));
            }
        }
        r
    }

    /// The figures README.md quotes, as one table with the run it came from. `--readme`
    /// puts exactly this into README.md, so the README never holds a figure of another run.
    pub(crate) fn headline(
        &self,
        micro: Option<&Micro>,
        graph: Option<&Graph>,
        faults: Option<&Faults>,
        c: Option<&CSection>,
    ) -> String {
        let na = || "not measured".to_owned();
        let mut rows: Vec<(&str, String)> = Vec::new();
        let ms = |d: Option<f64>| d.map_or("n/a".to_owned(), |d| format!("{d:+.2} ms"));
        rows.push((
            "per call, shim without sccache − exec-only wrapper (median of per-round \
             differences)",
            micro.map_or_else(na, |m| {
                format!(
                    "{} (`rustc -vV`), {} (tiny compile)",
                    ms(m.paired(Who::ShimBare, Who::Floor, true)),
                    ms(m.paired(Who::ShimBare, Who::Floor, false))
                )
            }),
        ));
        rows.push((
            "per probe (`rustc -vV`), shim with sccache vs sccache alone (medians)",
            micro.map_or_else(na, |m| {
                match (
                    m.median(Who::ShimSccache, true),
                    m.median(Who::Sccache, true),
                ) {
                    (Some(a), Some(b)) => format!("{a:.2} ms vs {b:.2} ms"),
                    _ => "n/a".into(),
                }
            }),
        ));
        rows.push((
            "per forwarded compile, shim with sccache − sccache alone (median of per-round \
             differences)",
            micro.map_or_else(na, |m| ms(m.paired(Who::ShimSccache, Who::Sccache, false))),
        ));
        for (label, shim, sc) in [
            (
                "graph, warm: shim / sccache (medians; paired runs)",
                Kind::ShimWarm,
                Kind::SccacheWarm,
            ),
            (
                "graph, cold: shim / sccache (medians; paired runs)",
                Kind::ShimCold,
                Kind::SccacheCold,
            ),
            (
                "graph, no sccache anywhere: shim / plain cargo (medians; paired runs)",
                Kind::ShimBare,
                Kind::Plain,
            ),
        ] {
            rows.push((
                label,
                graph.map_or_else(na, |g| {
                    format!(
                        "{}; {}",
                        ratio(g.median(shim), g.median(sc)),
                        spread(&g.paired_ratios(shim, sc))
                    )
                }),
            ));
        }
        let fault_text = |list: &[(Who, Build)]| -> String {
            list.iter()
                .map(|(who, b)| {
                    let time = match b.outcome {
                        Outcome::Passed => format!("passes in {:.1} s", b.secs),
                        Outcome::Failed(_) => format!("fails after {:.1} s", b.secs),
                        Outcome::TimedOut(n) => format!("not finished in {n} s"),
                    };
                    format!("{}: {time}", who.name())
                })
                .collect::<Vec<_>>()
                .join("; ")
        };
        let plain = graph
            .and_then(|g| g.median(Kind::Plain))
            .map_or(String::new(), |p| format!(" (plain cargo: {p:.1} s)"));
        for (label, pick) in [
            ("Redis unreachable from the start", 0),
            ("Redis killed mid-build", 1),
        ] {
            rows.push((
                label,
                match faults {
                    None => na(),
                    Some(f) if f.skipped.is_some() => "skipped".into(),
                    Some(f) => {
                        let list = if pick == 0 { &f.unreachable } else { &f.killed };
                        format!("{}{plain}", fault_text(list))
                    }
                },
            ));
        }
        for (label, warm) in [
            (
                "C graph via the alias, cold: shim / sccache (medians)",
                false,
            ),
            (
                "C graph via the alias, warm: shim / sccache (medians)",
                true,
            ),
        ] {
            rows.push((
                label,
                match c {
                    None => na(),
                    Some(c) if c.skipped.is_some() => "skipped".into(),
                    Some(c) => {
                        let med = |shim: bool| {
                            let v: Vec<f64> = c
                                .runs
                                .iter()
                                .filter(|r| r.shim == shim && r.warm == warm)
                                .map(|r| r.secs)
                                .collect();
                            (!v.is_empty()).then(|| median(&v))
                        };
                        ratio(med(true), med(false))
                    }
                },
            ));
        }
        let mut t = format!(
            "From one run of commit `{}` ({}; {}; {}; sccache {}){}:\n\n| | result |\n|---|---|\n",
            or_none(&self.versions.git, "unknown"),
            utc_now(),
            machine(),
            self.versions.rustc.split(" (").next().unwrap_or("rustc ?"),
            or_none(
                self.versions
                    .sccache
                    .strip_prefix("sccache ")
                    .unwrap_or(&self.versions.sccache),
                "not found"
            ),
            if self.opts.quick {
                " — quick (smoke) mode: these figures only show that the benchmark works"
            } else {
                ""
            }
        );
        for (label, value) in rows {
            let _ = writeln!(t, "| {label} | {} |", value.replace('|', "\\|"));
        }
        t
    }
}

/// Marks a commit hash whose work tree had changes to the code.
pub(crate) const DIRTY: &str = " + uncommitted changes";

pub(crate) const HEADLINE_START: &str = "<!-- bench-headline:start -->";
pub(crate) const HEADLINE_END: &str = "<!-- bench-headline:end -->";

/// Replaces what stands between the headline markers in `readme` with `table` and a pointer
/// to the full report.
pub(crate) fn put_headline(readme: &Path, report: &Path, table: &str) -> Res<()> {
    let text =
        fs::read_to_string(readme).map_err(|e| format!("cannot read {}: {e}", readme.display()))?;
    let (Some(start), Some(end)) = (text.find(HEADLINE_START), text.find(HEADLINE_END)) else {
        return Err(format!(
            "{} has no {HEADLINE_START} … {HEADLINE_END} lines",
            readme.display()
        ));
    };
    if end < start {
        return Err(format!(
            "{}: the headline markers are swapped",
            readme.display()
        ));
    }
    let name = report
        .file_name()
        .map_or("the report".into(), |n| n.to_string_lossy().into_owned());
    let new = format!(
        "{}{HEADLINE_START}\n{table}\nDetails, spreads and every build: {name}.\n{}",
        &text[..start],
        &text[end..]
    );
    fs::write(readme, new).map_err(|e| format!("cannot write {}: {e}", readme.display()))
}

pub(crate) fn met(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "**not met**"
    }
}

pub(crate) fn or_none<'a>(s: &'a str, none: &'a str) -> &'a str {
    if s.is_empty() {
        none
    } else {
        s
    }
}

pub(crate) fn machine() -> String {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU".to_owned(), |(_, m)| m.trim().to_owned());
    let meminfo = fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.split_whitespace().next()?.parse::<u64>().ok())
        .map_or("? GiB".to_owned(), |kb| {
            format!("{:.1} GiB", kb as f64 / 1024.0 / 1024.0)
        });
    let nproc = thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{nproc} CPUs (nproc), {model}, {mem} RAM, {} {}",
        std::env::consts::OS,
        kernel.trim()
    )
}

pub(crate) fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(", "))
        .unwrap_or_else(|_| "?".into())
}

/// Now, as `YYYY-MM-DD HH:MM UTC` (civil-from-days, proleptic Gregorian).
pub(crate) fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        sod / 3600,
        sod % 3600 / 60
    )
}
