//! Finding sccache: `SCCACHE_PATH`, then `sccache` on `PATH`, then `$CARGO_HOME/bin`.
//!
//! A candidate that is this very program (a symlink, a hard link, or a copy named `sccache`) is
//! skipped, so the shim can never call itself through "sccache". The recursion counter in
//! `config::DEPTH_VAR` is the second guard, for the cases no file check can see.

use std::env;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::config::Config;

pub enum Lookup {
    Found {
        path: PathBuf,
        /// Where it was found: `SCCACHE_PATH`, `PATH` or `CARGO_HOME`.
        origin: &'static str,
    },
    NotFound {
        /// Every place looked, for `status` and the log.
        looked: Vec<String>,
    },
}

pub fn find_sccache(config: &Config) -> Lookup {
    let mut looked = Vec::new();
    let mut me = SelfId::default();

    if let Some(explicit) = &config.sccache_path {
        let path = PathBuf::from(explicit);
        if !path.is_file() {
            looked.push(format!("SCCACHE_PATH={} (no such file)", path.display()));
        } else if me.is(&path) {
            looked.push(format!(
                "SCCACHE_PATH={} (is maybe-sccache)",
                path.display()
            ));
        } else {
            return Lookup::Found {
                path,
                origin: "SCCACHE_PATH",
            };
        }
    }

    let cwd = env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let path_var = env::var_os("PATH").unwrap_or_default();
    if let Ok(candidates) = which::which_in_all("sccache", Some(&path_var), &cwd) {
        for path in candidates {
            if me.is(&path) {
                looked.push(format!("{} (is maybe-sccache)", path.display()));
                continue;
            }
            return Lookup::Found {
                path,
                origin: "PATH",
            };
        }
    }
    looked.push("sccache on PATH".to_owned());

    if let Some(bin) = cargo_home().map(|home| home.join("bin")) {
        let path = bin.join(exe_name());
        if path.is_file() && !me.is(&path) {
            return Lookup::Found {
                path,
                origin: "CARGO_HOME",
            };
        }
        looked.push(path.display().to_string());
    }
    Lookup::NotFound { looked }
}

/// `program` as `Command` would run it: a path with a directory in it as it is (relative to
/// `cwd`), a bare name looked up on `PATH`. `None` when there is no such executable.
pub fn on_path(program: impl AsRef<OsStr>, cwd: &Path) -> Option<PathBuf> {
    which::which_in(program, env::var_os("PATH"), cwd).ok()
}

/// `$CARGO_HOME`, else `~/.cargo`, as cargo itself decides.
pub fn cargo_home() -> Option<PathBuf> {
    match env::var_os("CARGO_HOME") {
        Some(home) if !home.is_empty() => Some(PathBuf::from(home)),
        _ => crate::places::home_dir().map(|h| h.join(".cargo")),
    }
}

/// Is `path` this very program (a symlink, a hard link or a copy of it)?
pub fn is_this_program(path: &Path) -> bool {
    SelfId::default().is(path)
}

pub fn exe_name() -> OsString {
    format!("sccache{}", env::consts::EXE_SUFFIX).into()
}

/// This program's own file, read lazily: most calls never need it.
#[derive(Default)]
struct SelfId {
    loaded: bool,
    meta: Option<fs::Metadata>,
}

impl SelfId {
    /// Is `candidate` this program? Same file (symlink or hard link), or a byte-identical copy.
    fn is(&mut self, candidate: &Path) -> bool {
        if !self.loaded {
            self.loaded = true;
            self.meta = own_metadata();
        }
        let Some(mine) = &self.meta else {
            return false;
        };
        let Ok(theirs) = fs::metadata(candidate) else {
            return false;
        };
        if same_file(mine, &theirs) {
            return true;
        }
        // A copy: only worth reading when the sizes match, which real sccache (tens of MB)
        // never does with this small program.
        mine.len() == theirs.len()
            && env::current_exe().is_ok_and(|me| same_contents(&me, candidate))
    }
}

/// This program's file. On Linux `/proc/self/exe` leads to it: one `stat`, where finding its path
/// first would cost a `readlink` as well.
fn own_metadata() -> Option<fs::Metadata> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if let Ok(meta) = fs::metadata("/proc/self/exe") {
        return Some(meta);
    }
    fs::metadata(env::current_exe().ok()?).ok()
}

#[cfg(unix)]
fn same_file(a: &fs::Metadata, b: &fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.dev() == b.dev() && a.ino() == b.ino()
}

#[cfg(not(unix))]
fn same_file(_a: &fs::Metadata, _b: &fs::Metadata) -> bool {
    // Without inode numbers in stable std, a link is caught by the content comparison instead.
    false
}

fn same_contents(a: &Path, b: &Path) -> bool {
    let (Ok(mut fa), Ok(mut fb)) = (fs::File::open(a), fs::File::open(b)) else {
        return false;
    };
    let mut ba = vec![0u8; 64 * 1024];
    let mut bb = vec![0u8; 64 * 1024];
    loop {
        let (Ok(na), Ok(nb)) = (read_full(&mut fa, &mut ba), read_full(&mut fb, &mut bb)) else {
            return false;
        };
        if na != nb || ba[..na] != bb[..nb] {
            return false;
        }
        if na == 0 {
            return true;
        }
    }
}

fn read_full(f: &mut fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match f.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}
