//! The benchmark: maybe-sccache side by side with rustc and sccache, on this machine, in one run.
//!
//! ```text
//! cargo run --release --example bench -- [--quick] [--out BENCHMARKS.md] [--readme README.md]
//!                                        [--shim PATH] [--reps N] [--runs N] [--timeout SECS]
//!                                        [--keep-temp] [--shim-log LEVEL]
//!                                        [--only calls|cloud|dist]
//! ```
//!
//! 1. Per-call overhead of `rustc -vV` and of a tiny one-file compile: rustc alone, an exec-only
//!    wrapper (`examples/bench/floor.rs`, the floor for any wrapper binary), the shim without
//!    sccache, sccache alone (server up) and the shim with sccache. Interleaved runs, medians.
//! 2. A real crates.io dependency graph (`examples/bench/graph`, pinned by its Cargo.lock):
//!    plain, sccache and shim builds, cold and warm.
//! 3. Faults with a real Redis: the backend unreachable from the start, and killed mid-build.
//!    3b and 3c: remote backends that stop answering (`backends.rs`), and the GitHub Actions
//!    cache and Azure Blob (`cloud.rs`), each fault beside sccache alone and plain cargo.
//! 4. The fallback path's cost on the graph: the shim without sccache against plain cargo.
//! 5. C and C++: a crates.io graph whose build script compiles C with the `cc` crate
//!    (`examples/bench/cgraph`), sccache alone against the shim through its `sccache` alias,
//!    cold and warm, with sccache's C/C++ hit counts.
//! 6. sccache-dist (`examples/bench/dist.rs`): a real scheduler and build server on 127.0.0.1,
//!    the small graph distributed through sccache alone and through the shim, and each fault's
//!    cost beside both and plain cargo. Skipped, with a note, without sccache-dist, bubblewrap
//!    or root.
//!
//! `--quick` is the smoke mode CI runs: few runs, and small pinned crates.io graphs
//! (`examples/bench/graph-quick`, `examples/bench/cgraph-quick`) instead of the big ones, fetched
//! and built by the same code. It goes through every code path of the full mode, the report and
//! `--readme` included.
//! Nothing here asserts a timing; the exit code is non-zero only when a command that should have
//! worked did not (a build that fails, a shim build that hangs, a tool that cannot be run).
//!
//! Isolation: everything lives in a temporary directory (sccache caches, state dirs, target dirs,
//! a CARGO_HOME without binaries); every sccache server and Redis gets a free port of its own.
//! Every child carries a marker variable naming its run, so whatever it leaves behind (sccache
//! servers daemonize) is found in /proc and stopped, on success and on error alike.
//!
//! The code: `main.rs` reads the options and runs the sections in order; `sandbox.rs` makes the
//! scratch directory and the lanes' environments; `procs.rs` runs, waits for and sweeps up
//! processes; `sccache.rs` talks to sccache's servers; `measure.rs` is the measuring core (one
//! timed build, medians and confidence intervals); one module per section (`per_call.rs`,
//! `graph.rs`, `faults.rs`, `backends.rs`, `cloud.rs`, `fallback.rs`, `c_cpp.rs`); `report.rs` writes the
//! markdown and the README headline.

/// A progress line on stderr, with the seconds since the start.
#[cfg(unix)]
macro_rules! say {
    ($($arg:tt)*) => {{
        let t0 = *$crate::T0.get_or_init(::std::time::Instant::now);
        eprintln!("bench [{:>6.1} s] {}", t0.elapsed().as_secs_f64(), format!($($arg)*));
    }};
}

#[cfg(unix)]
mod backends;
#[cfg(unix)]
mod c_cpp;
#[cfg(unix)]
mod cloud;
mod dist;
#[cfg(unix)]
mod fallback;
#[cfg(unix)]
mod faults;
#[cfg(unix)]
mod graph;
#[cfg(unix)]
mod measure;
#[cfg(unix)]
mod per_call;
#[cfg(unix)]
mod procs;
#[cfg(unix)]
mod report;
#[cfg(unix)]
mod sandbox;
#[cfg(unix)]
mod sccache;

#[cfg(unix)]
use std::collections::BTreeMap;
#[cfg(unix)]
use std::ffi::OsString;
#[cfg(unix)]
use std::fs;
#[cfg(unix)]
use std::path::PathBuf;
#[cfg(unix)]
use std::process::ExitCode;
#[cfg(unix)]
use std::sync::atomic::AtomicU32;
#[cfg(unix)]
use std::sync::OnceLock;
#[cfg(unix)]
use std::time::{Duration, Instant};

#[cfg(unix)]
use c_cpp::{CGRAPH, QUICK_CGRAPH};
#[cfg(unix)]
use graph::{GRAPH, QUICK_GRAPH};
#[cfg(unix)]
use report::{put_headline, DIRTY};
#[cfg(unix)]
use sandbox::Bench;

#[cfg(not(unix))]
fn main() -> std::process::ExitCode {
    eprintln!("bench: this benchmark needs a Unix machine (Linux: it reads /proc)");
    std::process::ExitCode::from(2)
}

#[cfg(unix)]
type Res<T> = Result<T, String>;
#[cfg(unix)]
type Env = BTreeMap<OsString, OsString>;

#[cfg(unix)]
const USAGE: &str = "\
usage: cargo run --release --example bench -- [options]

  --quick           smoke mode (CI): few runs, a small crates.io graph instead of the big one
  --out PATH        where to write the report (default BENCHMARKS.md)
  --readme PATH     also put this run's headline table into PATH, between the lines
                    `<!-- bench-headline:start -->` and `<!-- bench-headline:end -->`
  --shim PATH       the maybe-sccache binary to measure (default: cargo build --release)
  --reps N          repetitions of the graph build sequence (default 5, quick 1)
  --runs N          interleaved runs per lane for `rustc -vV` (default 400, quick 40);
                    the tiny compile gets N*3/8
  --timeout SECS    limit for one build (default 300, quick 180)
  --keep-temp       leave the scratch directory behind (for debugging)
  --shim-log LEVEL  the shim logs at LEVEL (info, debug) into shim-log-<build>.log in the
                    scratch directory, one file per build (with --keep-temp, to read them);
                    logging costs time, so figures from such a run are not comparable
  --only cloud      run only section 3c (the GitHub Actions cache and Azure Blob) and print
                    its table; written to --out only when --out is given, never to --readme
  --only dist       run section 6 (sccache-dist) alone
  --only calls      run section 1 (per-call overhead) alone
                    (partial runs print their report unless --out is given)

sccache: $MAYBE_SCCACHE_TEST_SCCACHE, else `pyenv which sccache`, else `sccache` on PATH.
";

#[cfg(unix)]
static T0: OnceLock<Instant> = OnceLock::new();
#[cfg(unix)]
static NEXT_ID: AtomicU32 = AtomicU32::new(0);

#[cfg(unix)]
fn main() -> ExitCode {
    T0.get_or_init(Instant::now);
    let opts = match Opts::parse(std::env::args().skip(1).collect()) {
        Ok(Some(opts)) => opts,
        Ok(None) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("bench: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(opts) {
        Ok(0) => ExitCode::SUCCESS,
        Ok(n) => {
            eprintln!("bench: {n} unexpected failure(s); see the report");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("bench: error: {e}");
            ExitCode::from(1)
        }
    }
}

#[cfg(unix)]
struct Opts {
    quick: bool,
    out: PathBuf,
    readme: Option<PathBuf>,
    shim: Option<PathBuf>,
    reps: usize,
    probe_runs: usize,
    compile_runs: usize,
    timeout: Duration,
    keep_temp: bool,
    /// `--shim-log LEVEL`: the shim's log level in shim lanes, a file per build.
    shim_log: Option<String>,
    /// `--only cloud`: one section alone, its table printed.
    only_cloud: bool,
    /// `--out` was given (a partial run never overwrites the default report).
    out_given: bool,
    /// `--only dist`: section 6 alone.
    only_dist: bool,
    /// `--only calls`: section 1 (per-call overhead) alone.
    only_calls: bool,
    args: Vec<String>,
}

#[cfg(unix)]
impl Opts {
    fn parse(args: Vec<String>) -> Res<Option<Opts>> {
        let quick = args.iter().any(|a| a == "--quick");
        let mut opts = Opts {
            quick,
            out: PathBuf::from("BENCHMARKS.md"),
            readme: None,
            shim: None,
            reps: if quick { 1 } else { 5 },
            probe_runs: if quick { 40 } else { 400 },
            compile_runs: 0,
            timeout: Duration::from_secs(if quick { 180 } else { 300 }),
            keep_temp: false,
            shim_log: None,
            only_cloud: false,
            out_given: false,
            only_dist: false,
            only_calls: false,
            args: args.clone(),
        };
        let mut it = args.into_iter();
        let number = |flag: &str, v: Option<String>| -> Res<u64> {
            v.as_deref()
                .and_then(|v| v.parse::<u64>().ok())
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("{flag} needs a positive whole number"))
        };
        while let Some(arg) = it.next() {
            match arg.as_str() {
                "--quick" => {}
                "--keep-temp" => opts.keep_temp = true,
                "--shim-log" => {
                    opts.shim_log = Some(it.next().ok_or("--shim-log needs a level")?);
                }
                "--out" => {
                    opts.out = it.next().ok_or("--out needs a path")?.into();
                    opts.out_given = true;
                }
                "--only" => match it.next().as_deref() {
                    Some("cloud") => opts.only_cloud = true,
                    Some("dist") => opts.only_dist = true,
                    Some("calls") => opts.only_calls = true,
                    _ => return Err("--only takes one section: calls, cloud or dist".into()),
                },
                "--readme" => opts.readme = Some(it.next().ok_or("--readme needs a path")?.into()),
                "--shim" => opts.shim = Some(it.next().ok_or("--shim needs a path")?.into()),
                "--reps" => opts.reps = number("--reps", it.next())? as usize,
                "--runs" => opts.probe_runs = number("--runs", it.next())? as usize,
                "--timeout" => opts.timeout = Duration::from_secs(number("--timeout", it.next())?),
                "-h" | "--help" => return Ok(None),
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        opts.compile_runs = (opts.probe_runs * 3 / 8).max(3);
        if opts.only_cloud && opts.readme.is_some() {
            return Err("--only: a partial run never writes the README".into());
        }
        Ok(Some(opts))
    }

    fn command_line(&self) -> String {
        let mut line = String::from("cargo run --release --example bench --");
        for a in &self.args {
            line.push(' ');
            if a.is_empty() || a.contains(|c: char| c.is_whitespace() || c == '\'') {
                line.push_str(&format!("'{}'", a.replace('\'', r"'\''")));
            } else {
                line.push_str(a);
            }
        }
        line
    }
}

/// `--only cloud`: section 3c on the chain of section 3b, its table on stdout (and in `--out`
/// when given).
#[cfg(unix)]
fn run_cloud_only(b: &mut Bench) -> Res<usize> {
    let project = b.chain_project()?;
    let cloud = b.section_cloud(&project, &[]);
    let cloud = b.settle(
        "section 3c (the GitHub Actions cache and Azure Blob)",
        cloud,
    );
    let _ = fs::remove_dir_all(&project.target);
    let mut table = String::new();
    b.render_cloud(&mut table, cloud.as_ref());
    print!("{table}");
    if b.opts.out_given {
        fs::write(&b.opts.out, &table)
            .map_err(|e| format!("cannot write {}: {e}", b.opts.out.display()))?;
    }
    for f in &b.failures {
        eprintln!("bench: UNEXPECTED: {f}");
    }
    Ok(b.failures.len())
}

#[cfg(unix)]
fn run(opts: Opts) -> Res<usize> {
    let mut b = Bench::setup(opts)?;
    if b.opts.readme.is_some() && !b.opts.quick && b.versions.git.ends_with(DIRTY) {
        return Err(format!(
            "--readme: the code has uncommitted changes ({}); the README quotes only \
             figures of committed code: commit first",
            b.versions.git
        ));
    }
    say!("scratch directory {}", b.scratch.dir.display());
    if b.opts.only_cloud {
        return run_cloud_only(&mut b);
    }
    let partial = b.opts.only_dist || b.opts.only_calls;
    if partial && b.opts.readme.is_some() {
        return Err("--readme needs every section: leave out --only".into());
    }
    if b.opts.only_dist {
        b.note("`--only dist`: sections 1 to 5 were not run.");
    }
    if b.opts.only_calls {
        b.note("`--only calls`: sections 2 to 6 were not run.");
    }
    let all = !partial;

    let micro = if all || b.opts.only_calls {
        let m = b.section_micro();
        b.settle("section 1 (per-call overhead)", m)
    } else {
        None
    };

    let project = if all {
        let p = b.prepare_graph(if b.opts.quick { &QUICK_GRAPH } else { &GRAPH });
        b.settle("preparing the project for sections 2-4", p)
    } else {
        None
    };

    let graph = match &project {
        Some(p) => {
            let g = b.section_graph(p);
            b.settle("sections 2 and 4 (dependency graph)", g)
        }
        None => None,
    };
    let faults = match &project {
        Some(p) => {
            let f = b.section_faults(p);
            b.settle("section 3 (faults with Redis)", f)
        }
        None => None,
    };

    let cproject = if all {
        let p = b.prepare_graph(if b.opts.quick { &QUICK_CGRAPH } else { &CGRAPH });
        b.settle("preparing the C project for section 5", p)
    } else {
        None
    };
    let c = match &cproject {
        Some(p) => {
            let c = b.section_c(p);
            b.settle("section 5 (C and C++)", c)
        }
        None => None,
    };
    let backends = if all {
        let f = b.section_backends();
        b.settle("section 3b (remote backends)", f)
    } else {
        None
    };

    // Section 6 builds the small graph in both modes: a distributed build of the big one, a
    // few times per fault, would take longer than every other section together.
    let dproject = if all || b.opts.only_dist {
        let p = b.prepare_graph(&QUICK_GRAPH);
        b.settle("preparing the project for section 6", p)
    } else {
        None
    };
    let dist = match &dproject {
        Some(p) => {
            let d = b.section_dist(p);
            b.settle("section 6 (sccache-dist)", d)
        }
        None => None,
    };

    let report = b.render(
        micro.as_ref(),
        project.as_ref(),
        graph.as_ref(),
        faults.as_ref(),
        (cproject.as_ref(), c.as_ref()),
        (backends.as_ref(), dist.as_ref()),
    );
    // A partial run never overwrites the default report: without `--out` it goes to stdout.
    if partial && !b.opts.out_given {
        print!("{report}");
        return Ok(b.failures.len());
    }
    if let Some(dir) = b.opts.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    fs::write(&b.opts.out, report)
        .map_err(|e| format!("cannot write {}: {e}", b.opts.out.display()))?;
    if let Some(readme) = &b.opts.readme {
        let table = b.headline(micro.as_ref(), graph.as_ref(), faults.as_ref(), c.as_ref());
        put_headline(readme, &b.opts.out, &table)?;
        say!("headline written to {}", readme.display());
    }
    say!(
        "report written to {} (total {:.0} s)",
        b.opts.out.display(),
        T0.get().map_or(0.0, |t| t.elapsed().as_secs_f64())
    );
    for f in &b.failures {
        eprintln!("bench: UNEXPECTED: {f}");
    }
    Ok(b.failures.len())
}
