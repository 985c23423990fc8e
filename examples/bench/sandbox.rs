//! The sandbox every measurement runs in: the scratch directory (dropping it stops every
//! process that carries its marker variable and removes it), the `Bench` state with the toolchain,
//! the shim and sccache it found, the environments of the lanes, and the tools' discovery.
//! Nothing here measures; it only makes sure that every lane starts from the same clean ground.

use std::cell::RefCell;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::procs::sweep;
use crate::report::{loadavg, DIRTY};
use crate::sccache::Sc;
use crate::{Env, Opts, Res, NEXT_ID};

pub(crate) const FLOOR_SRC: &str = include_str!("floor.rs");

/// Set on every child: `<scratch dir>/<id>`. Finding it in /proc/<pid>/environ proves the
/// process is one of ours (or a descendant), and names the step that started it.
pub(crate) const MARK_VAR: &str = "MAYBE_SCCACHE_BENCH_RUN";

/// The scratch directory; dropping it stops every process that carries its marker and
/// removes it (on success, on error and on panic alike).
pub(crate) struct Scratch {
    pub(crate) dir: PathBuf,
    pub(crate) keep: bool,
}

impl Scratch {
    pub(crate) fn marker_prefix(&self) -> String {
        format!("{MARK_VAR}={}/", self.dir.display())
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let prefix = self.marker_prefix();
        let killed = sweep(|entry| entry.starts_with(prefix.as_bytes()));
        if killed > 0 {
            say!("stopped {killed} leftover process(es) of this run");
        }
        if self.keep {
            say!("kept {}", self.dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

pub(crate) struct Bench {
    pub(crate) opts: Opts,
    pub(crate) scratch: Scratch,
    pub(crate) rustc: PathBuf,
    pub(crate) cargo: PathBuf,
    pub(crate) sccache: Option<PathBuf>,
    pub(crate) redis: Option<PathBuf>,
    pub(crate) shim: PathBuf,
    /// The shim's `sccache`-named alias (`maybe-sccache alias --dir …`), if it made one.
    pub(crate) alias: Option<PathBuf>,
    pub(crate) floor: PathBuf,
    pub(crate) base: Env,
    pub(crate) path_no_sccache: OsString,
    /// CARGO_HOME for builds: the real registry linked in, no `bin`.
    pub(crate) cargo_home: PathBuf,
    pub(crate) real_cargo_home: PathBuf,
    /// An empty CARGO_HOME, for the shim-without-sccache lane of section 1.
    pub(crate) empty_home: PathBuf,
    pub(crate) sccache_conf: PathBuf,
    pub(crate) versions: Versions,
    pub(crate) notes: Vec<String>,
    pub(crate) failures: Vec<String>,
    /// Clock ticks per second, for /proc/<pid>/stat.
    pub(crate) clk_tck: f64,
    /// One report table row per cargo build, in order.
    pub(crate) all_builds: RefCell<Vec<String>>,
    pub(crate) load_at_start: String,
}

#[derive(Default)]
pub(crate) struct Versions {
    pub(crate) rustc: String,
    pub(crate) cargo: String,
    pub(crate) sccache: String,
    pub(crate) redis: String,
    pub(crate) shim: String,
    pub(crate) git: String,
}

impl Bench {
    pub(crate) fn setup(opts: Opts) -> Res<Bench> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!(
            "maybe-sccache-bench-{}-{nanos:x}",
            std::process::id()
        ));
        fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let dir = dir.canonicalize().map_err(|e| e.to_string())?;
        let scratch = Scratch {
            dir,
            keep: opts.keep_temp,
        };
        let base = base_env();

        // The toolchain: the real rustc (not a rustup proxy), and the cargo running us.
        let rustc_cmd = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
        let sysroot = output_of(Command::new(&rustc_cmd).args(["--print", "sysroot"]))?;
        let bin = Path::new(sysroot.trim()).join("bin");
        let rustc = bin.join("rustc");
        if !rustc.is_file() {
            return Err(format!("no rustc in {}", bin.display()));
        }
        let cargo = std::env::var_os("CARGO")
            .map(PathBuf::from)
            .filter(|p| p.is_file())
            .unwrap_or_else(|| bin.join("cargo"));

        let sccache = find_sccache();
        let redis = find_on_path("redis-server").or_else(|| {
            let p = PathBuf::from("/usr/bin/redis-server");
            p.is_file().then_some(p)
        });

        let shim = match &opts.shim {
            Some(p) => p
                .canonicalize()
                .map_err(|e| format!("--shim {}: {e}", p.display()))?,
            None => build_shim(&cargo)?,
        };

        let alias = output_of(
            Command::new(&shim)
                .args(["alias", "--dir"])
                .arg(scratch.dir.join("alias")),
        )
        .map(|out| PathBuf::from(out.trim()));

        let floor = scratch.dir.join("floor");
        let floor_src = scratch.dir.join("floor.rs");
        write(&floor_src, FLOOR_SRC)?;
        say!("compiling the exec-only floor wrapper");
        // Linked as the shim is, so that the floor is the same kind of program.
        output_of(
            Command::new(&rustc)
                .args(["-O", "--edition", "2021"])
                .args(SHIPPED_RUSTFLAGS.split_whitespace())
                .arg("-o")
                .arg(&floor)
                .arg(&floor_src),
        )?;

        let real_cargo_home = std::env::var_os("CARGO_HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
            .ok_or("neither CARGO_HOME nor HOME is set")?;
        let cargo_home = scratch.dir.join("cargo-home");
        mkdir(&cargo_home)?;
        for sub in ["registry", "git"] {
            let real = real_cargo_home.join(sub);
            if real.is_dir() {
                std::os::unix::fs::symlink(&real, cargo_home.join(sub))
                    .map_err(|e| format!("cannot link {}: {e}", real.display()))?;
            }
        }
        let empty_home = scratch.dir.join("empty-cargo-home");
        mkdir(&empty_home)?;
        let sccache_conf = scratch.dir.join("sccache.conf");
        write(&sccache_conf, "")?;
        let path_no_sccache = path_without_sccache(&scratch.dir.join("path-mask"))?;
        // Every lane gets the same PATH; the sccache lanes name sccache by its full path.
        let mut base = base;
        base.insert("PATH".into(), path_no_sccache.clone());

        let mut b = Bench {
            opts,
            scratch,
            rustc,
            cargo,
            sccache,
            redis,
            shim,
            alias: alias.as_ref().ok().cloned(),
            floor,
            base,
            path_no_sccache,
            cargo_home,
            real_cargo_home,
            empty_home,
            sccache_conf,
            versions: Versions::default(),
            notes: Vec::new(),
            failures: Vec::new(),
            clk_tck: output_of(Command::new("getconf").arg("CLK_TCK"))
                .ok()
                .and_then(|t| t.trim().parse().ok())
                .unwrap_or(100.0),
            all_builds: RefCell::new(Vec::new()),
            load_at_start: loadavg(),
        };
        b.read_versions();
        match &b.sccache {
            Some(p) => say!("sccache: {} ({})", p.display(), b.versions.sccache),
            None => b.note(
                "No sccache binary was found ($MAYBE_SCCACHE_TEST_SCCACHE, `pyenv which \
                 sccache`, PATH): every lane that needs it was skipped.",
            ),
        }
        if b.redis.is_none() {
            b.note("No redis-server was found: section 3 was skipped.");
        }
        if let Err(e) = alias {
            b.note(format!(
                "The shim made no alias ({e}): section 5 was skipped."
            ));
        }
        Ok(b)
    }

    pub(crate) fn read_versions(&mut self) {
        let first_line = |cmd: &mut Command| {
            output_of(cmd)
                .ok()
                .and_then(|o| o.lines().next().map(str::to_owned))
                .unwrap_or_else(|| "unknown".into())
        };
        let vv = output_of(Command::new(&self.rustc).arg("-vV")).unwrap_or_default();
        let field = |k: &str| {
            vv.lines()
                .find_map(|l| l.strip_prefix(k))
                .map(str::trim)
                .unwrap_or("?")
                .to_owned()
        };
        self.versions.rustc = format!(
            "{} (host {}, LLVM {})",
            vv.lines().next().unwrap_or("rustc ?"),
            field("host:"),
            field("LLVM version:")
        );
        self.versions.cargo = first_line(Command::new(&self.cargo).arg("-V"));
        self.versions.shim = first_line(Command::new(&self.shim).arg("--version"));
        if let Some(s) = &self.sccache {
            self.versions.sccache = first_line(Command::new(s).arg("--version"));
        }
        if let Some(r) = &self.redis {
            self.versions.redis = first_line(Command::new(r).arg("--version"));
        }
        let repo = env!("CARGO_MANIFEST_DIR");
        if let Ok(head) = output_of(Command::new("git").args(["-C", repo, "rev-parse", "HEAD"])) {
            // The reports this benchmark writes do not count as changes to the code.
            let dirty = output_of(Command::new("git").args([
                "-C",
                repo,
                "status",
                "--porcelain",
                "--untracked-files=no",
                "--",
                ".",
                ":(exclude)*.md",
            ]))
            .map(|s| !s.trim().is_empty())
            .unwrap_or(false);
            self.versions.git = format!("{}{}", head.trim(), if dirty { DIRTY } else { "" });
        }
    }

    pub(crate) fn note(&mut self, text: impl Into<String>) {
        let text = text.into();
        say!("note: {text}");
        self.notes.push(text);
    }

    pub(crate) fn fail(&mut self, text: impl Into<String>) {
        let text = text.into();
        say!("UNEXPECTED: {text}");
        self.failures.push(text);
    }

    /// A section that could not run at all is a failure, reported, and the run goes on.
    pub(crate) fn settle<T>(&mut self, what: &str, r: Res<T>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.fail(format!("{what}: {e}"));
                None
            }
        }
    }

    pub(crate) fn new_id(&self, what: &str) -> String {
        let n = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        format!("{}/{n:03}-{what}", self.scratch.dir.display())
    }

    pub(crate) fn scratch_path(&self, name: &str) -> PathBuf {
        self.scratch.dir.join(name)
    }

    /// A command with exactly `env` (plus the marker) and no stdin.
    pub(crate) fn command(&self, program: &Path, env: &Env, id: &str) -> Command {
        let mut c = Command::new(program);
        c.env_clear()
            .envs(env)
            .env(MARK_VAR, id)
            .stdin(Stdio::null());
        c
    }

    pub(crate) fn env_plain(&self) -> Env {
        self.base.clone()
    }

    pub(crate) fn env_shim_bare(&self, state: &Path, cargo_home: &Path) -> Env {
        let mut env = self.base.clone();
        env.insert("PATH".into(), self.path_no_sccache.clone());
        env.insert("CARGO_HOME".into(), cargo_home.into());
        env.insert("MAYBE_SCCACHE_STATE_DIR".into(), state.into());
        env
    }

    pub(crate) fn env_sccache(&self, sc: &Sc) -> Env {
        let mut env = self.base.clone();
        env.insert("SCCACHE_CONF".into(), self.sccache_conf.clone().into());
        env.insert("SCCACHE_DIR".into(), sc.dir.clone().into());
        env.insert("SCCACHE_SERVER_PORT".into(), sc.port.to_string().into());
        // A server nobody stopped (the run was interrupted) goes away by itself.
        env.insert("SCCACHE_IDLE_TIMEOUT".into(), "600".into());
        if let Some(endpoint) = &sc.redis {
            env.insert("SCCACHE_REDIS_ENDPOINT".into(), endpoint.into());
        }
        for (k, v) in &sc.extra {
            env.insert(k.into(), v.into());
        }
        env
    }

    pub(crate) fn env_shim_sccache(&self, sc: &Sc, state: &Path) -> Env {
        let mut env = self.env_sccache(sc);
        let sccache = self.sccache.clone().unwrap_or_default();
        env.insert("SCCACHE_PATH".into(), sccache.into());
        env.insert("PATH".into(), self.path_no_sccache.clone());
        env.insert("MAYBE_SCCACHE_STATE_DIR".into(), state.into());
        env
    }

    pub(crate) fn new_state(&self, what: &str) -> Res<PathBuf> {
        self.fresh_dir(&format!("state-{what}"))
    }

    /// An empty directory `name` in the scratch directory (emptied if it was there).
    pub(crate) fn fresh_dir(&self, name: &str) -> Res<PathBuf> {
        let dir = self.scratch_path(name);
        let _ = fs::remove_dir_all(&dir);
        mkdir(&dir)?;
        Ok(dir)
    }
}

/// Runs a short helper command and returns its stdout; its failure is an error.
pub(crate) fn output_of(cmd: &mut Command) -> Res<String> {
    let what = format!("{:?}", cmd.get_program());
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    String::from_utf8(out.stdout).map_err(|e| format!("{what}: output not UTF-8: {e}"))
}

/// The `RUSTFLAGS` of README's install line for this host: a statically linked glibc build on
/// Linux (it starts about 0.3 ms faster per call), none elsewhere.
pub(crate) const SHIPPED_RUSTFLAGS: &str = if cfg!(all(target_os = "linux", target_env = "gnu")) {
    "-C target-feature=+crt-static"
} else {
    ""
};

/// Builds the shim as README's install line does (`cargo build --release --bin maybe-sccache`,
/// in the environment we were started with), in a target dir of its own (other flags would make
/// cargo rebuild `target/release` back and forth), and returns the path cargo reports for it.
pub(crate) fn build_shim(cargo: &Path) -> Res<PathBuf> {
    say!(
        "building the shim (RUSTFLAGS={SHIPPED_RUSTFLAGS:?} cargo build --release --bin \
         maybe-sccache)"
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest = root.join("Cargo.toml");
    let out = Command::new(cargo)
        .args(["build", "--release", "--locked", "--bin", "maybe-sccache"])
        .args([
            "--message-format",
            "json-render-diagnostics",
            "--manifest-path",
        ])
        .arg(&manifest)
        .arg("--target-dir")
        .arg(root.join("target").join("bench-shim"))
        .env("RUSTFLAGS", SHIPPED_RUSTFLAGS)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !out.status.success() {
        return Err(format!("cargo build --release failed ({})", out.status));
    }
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if msg["reason"] == "compiler-artifact" && msg["target"]["name"] == "maybe-sccache" {
            if let Some(exe) = msg["executable"].as_str() {
                return Ok(PathBuf::from(exe));
            }
        }
    }
    Err("cargo build did not report the maybe-sccache executable".into())
}

/// How the measured shim is linked: an ELF that names a dynamic loader (`ld-linux…` for glibc,
/// `ld-musl…` for musl, near the start of the file) is dynamic.
pub(crate) fn linkage(shim: &Path) -> String {
    let mut head = vec![0u8; 4096];
    let n = std::fs::File::open(shim)
        .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
        .unwrap_or(0);
    let head = &head[..n];
    if !head.starts_with(b"\x7fELF") {
        return "not an ELF file".into();
    }
    if head
        .windows(8)
        .any(|w| w == b"ld-linux" || w == b"ld-musl-")
    {
        "dynamic".into()
    } else {
        "static".into()
    }
}

pub(crate) fn find_sccache() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MAYBE_SCCACHE_TEST_SCCACHE").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    if find_on_path("pyenv").is_some() {
        if let Ok(out) = output_of(Command::new("pyenv").args(["which", "sccache"])) {
            let p = PathBuf::from(out.trim());
            if p.is_file() {
                return Some(p);
            }
        }
    }
    find_on_path("sccache")
}

pub(crate) fn find_on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// `PATH` with every `sccache` hidden: a directory holding one is replaced by a directory of
/// links to everything else in it (so `cc` in /usr/bin, say, stays reachable).
pub(crate) fn path_without_sccache(mask_root: &Path) -> Res<OsString> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs = Vec::new();
    for (i, dir) in std::env::split_paths(&path).enumerate() {
        if !dir.join("sccache").exists() {
            dirs.push(dir);
            continue;
        }
        let masked = mask_root.join(i.to_string());
        mkdir(&masked)?;
        for entry in fs::read_dir(&dir).map_err(|e| e.to_string())?.flatten() {
            if entry.file_name() != "sccache" {
                let _ = std::os::unix::fs::symlink(entry.path(), masked.join(entry.file_name()));
            }
        }
        dirs.push(masked);
    }
    std::env::join_paths(dirs).map_err(|e| e.to_string())
}

/// Our environment minus everything that would change what a build or sccache does.
pub(crate) fn base_env() -> Env {
    const EXACT: &[&str] = &[
        "CARGO",
        "CARGO_CRATE_NAME",
        "CARGO_BIN_NAME",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_HOME",
        "CARGO_INCREMENTAL",
        "CARGO_MAKEFLAGS",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_TARGET_DIR",
        "MAKEFLAGS",
        "MFLAGS",
        "OUT_DIR",
        "RUSTC",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTDOCFLAGS",
        "RUSTFLAGS",
        "RUST_LOG",
    ];
    const PREFIXES: &[&str] = &[
        "SCCACHE_",
        "MAYBE_SCCACHE_",
        "CARGO_BUILD_",
        "CARGO_CFG_",
        "CARGO_MANIFEST_",
        "CARGO_PKG_",
        "CARGO_PROFILE_",
        "CARGO_TERM_",
    ];
    std::env::vars_os()
        .filter(|(k, _)| {
            let k = k.to_string_lossy();
            !EXACT.contains(&k.as_ref()) && !PREFIXES.iter().any(|p| k.starts_with(p))
        })
        .collect()
}

pub(crate) fn write(path: &Path, text: &str) -> Res<()> {
    if let Some(dir) = path.parent() {
        mkdir(dir)?;
    }
    fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

pub(crate) fn mkdir(dir: &Path) -> Res<()> {
    fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))
}

pub(crate) fn id_tail(id: &str) -> &str {
    id.rsplit('/').next().unwrap_or(id)
}
