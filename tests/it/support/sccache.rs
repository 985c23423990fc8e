//! The real sccache: finding it (and the other releases CI names), and looking at its server.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use super::{in_ci, json_from_str, run, Json, Sandbox, SHORT};

fn is_elf(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && magic == *b"\x7fELF"
}

/// The real sccache binary (an ELF file, never pyenv's bash shim), if there is one.
pub fn real_sccache() -> Option<&'static Path> {
    static FOUND: OnceLock<Option<PathBuf>> = OnceLock::new();
    FOUND
        .get_or_init(|| {
            if let Some(given) = std::env::var_os("MAYBE_SCCACHE_TEST_SCCACHE") {
                if !given.is_empty() {
                    let given = PathBuf::from(given);
                    assert_real_sccache("MAYBE_SCCACHE_TEST_SCCACHE", &given);
                    return Some(given);
                }
            }
            let mut candidates = Vec::new();
            let scripts = Command::new("python3")
                .args([
                    "-c",
                    "import sysconfig;print(sysconfig.get_path('scripts'))",
                ])
                .stdin(Stdio::null())
                .output();
            if let Ok(out) = scripts {
                let dir = String::from_utf8_lossy(&out.stdout).trim().to_owned();
                if out.status.success() && !dir.is_empty() {
                    candidates.push(Path::new(&dir).join("sccache"));
                }
            }
            if let Ok(out) = Command::new("pyenv")
                .args(["which", "sccache"])
                .stdin(Stdio::null())
                .output()
            {
                let p = String::from_utf8_lossy(&out.stdout).trim().to_owned();
                if out.status.success() && !p.is_empty() {
                    candidates.push(PathBuf::from(p));
                }
            }
            if let Some(path) = std::env::var_os("PATH") {
                candidates.extend(std::env::split_paths(&path).map(|d| d.join("sccache")));
            }
            candidates
                .into_iter()
                .find(|p| is_elf(p))
                .map(|p| p.canonicalize().unwrap_or(p))
        })
        .as_deref()
}

/// `path`, given by the environment variable `var`, must be the real sccache: an ELF file (a
/// wrapper script, pyenv's shim say, would put a shell between the shim and sccache and hide how
/// the real binary fails) whose `--version` says `sccache <version>`.
pub fn assert_real_sccache(var: &str, path: &Path) {
    assert!(path.is_file(), "{var}={} is not a file", path.display());
    assert!(
        is_elf(path),
        "{var}={} is not an ELF binary (a wrapper script?): point it at the real sccache",
        path.display()
    );
    assert_is_sccache(path);
}

/// `path --version` must say `sccache <version>`.
fn assert_is_sccache(path: &Path) {
    let out = Command::new(path)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} --version: {e}", path.display()));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.starts_with("sccache "),
        "{} --version does not answer like sccache: {text:?}",
        path.display()
    );
}

/// The real sccache, or `None` after printing why the test is skipped. In CI a missing sccache
/// fails the test instead.
pub fn require_sccache(test: &str) -> Option<&'static Path> {
    match real_sccache() {
        Some(path) => Some(path),
        None if in_ci() => panic!(
            "{test}: sccache not found (set MAYBE_SCCACHE_TEST_SCCACHE or install sccache 0.16); \
             CI is set, so this is a failure"
        ),
        None => {
            eprintln!("skipping {test}: sccache not found (set MAYBE_SCCACHE_TEST_SCCACHE)");
            None
        }
    }
}

/// The sccache versions to judge: the real 0.16, and the older and the newest release when they
/// are given (CI gives both, and then they must be there).
pub fn sccaches(test: &str) -> Vec<(&'static str, PathBuf)> {
    let Some(current) = require_sccache(test) else {
        return Vec::new();
    };
    let mut all = vec![("current", current.to_owned())];
    for (name, var) in [
        ("old", "MAYBE_SCCACHE_TEST_SCCACHE_OLD"),
        ("newest", "MAYBE_SCCACHE_TEST_SCCACHE_NEWEST"),
    ] {
        match std::env::var_os(var).filter(|v| !v.is_empty()) {
            Some(path) => {
                let path = PathBuf::from(path);
                assert_real_sccache(var, &path);
                all.push((name, path));
            }
            None if in_ci() => panic!("{test}: CI is set but {var} is not"),
            None => eprintln!("{test}: {var} not set, that sccache release skipped"),
        }
    }
    all
}

/// The sccache server process listening for the sandbox (found by its environment).
pub fn server_pid(sb: &Sandbox) -> Option<i32> {
    let port = format!("SCCACHE_SERVER_PORT={}", sb.port);
    for entry in fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(environ) = fs::read(entry.path().join("environ")) else {
            continue;
        };
        let vars: Vec<&[u8]> = environ.split(|&b| b == 0).collect();
        if vars.contains(&port.as_bytes()) && vars.contains(&&b"SCCACHE_START_SERVER=1"[..]) {
            return Some(pid);
        }
    }
    None
}

impl Sandbox {
    /// Puts the real sccache on `PATH` (a symlink in the bin dir) and makes sure the server it
    /// starts is stopped when the sandbox goes away.
    pub fn install_real_sccache(&self, sccache: &Path) -> PathBuf {
        let link = self.bin.join("sccache");
        std::os::unix::fs::symlink(sccache, &link).unwrap();
        self.stop_server_on_drop(sccache);
        link
    }

    /// Runs `sccache --stop-server` with the sandbox's environment when the sandbox is dropped.
    pub fn stop_server_on_drop(&self, sccache: &Path) {
        *self.stop_server_with.borrow_mut() = Some(sccache.to_owned());
    }

    /// `sccache --show-stats --stats-format json`, parsed.
    pub fn sccache_stats(&self, sccache: &Path) -> Json {
        let r = run(
            self.command(sccache)
                .args(["--show-stats", "--stats-format", "json"]),
            SHORT,
        );
        r.assert_success();
        json_from_str(&r.out()).unwrap_or_else(|e| panic!("bad stats JSON ({e}): {}", r.out()))
    }
}
