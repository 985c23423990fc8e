//! The `sccache` alias: a link to this program whose file name is `sccache`.
//!
//! cc-rs wraps a build script's C and C++ compiles with `RUSTC_WRAPPER` only when that path's file
//! stem is a cache it knows (`sccache`, `cachepot`, `buildcache`, `kache`), so
//! `RUSTC_WRAPPER="$(maybe-sccache alias)"` gives C/C++ the same caching as `RUSTC_WRAPPER=sccache`.
//! The alias lives in a directory of the shim's own, never on `PATH`, and `locate` never takes it
//! for the real sccache (it is this program). Called by that name with sccache's own client
//! options (`--show-stats`, `--stop-server`, …), the shim hands the call to the real sccache, so
//! scripts that run `"$RUSTC_WRAPPER" --show-stats` keep working.

use std::ffi::OsString;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};

use crate::call::exec;
use crate::call::locate::{self, Lookup};
use crate::config::Config;

pub const USAGE: &str = "usage: maybe-sccache alias [--dir DIR]";

/// `maybe-sccache alias [--dir DIR]`: creates or refreshes the alias and prints its path.
pub fn run(args: &[String]) -> Result<ExitCode> {
    let dir = match args {
        [] => default_dir().context("no data or cache directory for the alias; pass --dir DIR")?,
        [flag, dir] if flag == "--dir" && !dir.is_empty() => PathBuf::from(dir),
        _ => bail!("{USAGE}"),
    };
    let me = std::env::current_exe().context("cannot tell where this program is")?;
    let me = me.canonicalize().unwrap_or(me);
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let dir = dir.canonicalize().unwrap_or(dir);
    // RUSTC_WRAPPER runs whatever is at the alias's path: in a directory another user can write
    // to, they could put a program of theirs there (or swap the link) and have every compile
    // run it.
    let meta = fs::metadata(&dir).with_context(|| format!("cannot inspect {}", dir.display()))?;
    if let Some(why) = crate::state::others_can_write(&meta) {
        bail!(
            "{} {why}: refused as the alias's directory; choose another --dir",
            dir.display()
        );
    }
    let alias = dir.join(locate::exe_name());
    ensure_alias(&me, &alias)?;
    let _ = writeln!(io::stdout(), "{}", alias.display());
    Ok(ExitCode::SUCCESS)
}

/// `<data dir>/maybe-sccache/bin` (`~/.local/share/maybe-sccache/bin` on Linux), else the same
/// under the cache dir.
fn default_dir() -> Option<PathBuf> {
    let base = crate::places::data_local_dir().or_else(crate::places::cache_dir)?;
    Some(base.join("maybe-sccache").join("bin"))
}

/// Makes `alias` lead to `me`, leaving it alone when it already does. Anything else at that path
/// is replaced only if it is an earlier alias (a link to some maybe-sccache), never a real sccache.
fn ensure_alias(me: &Path, alias: &Path) -> Result<()> {
    match fs::symlink_metadata(alias) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => bail!("cannot inspect {}: {e}", alias.display()),
        Ok(meta) => {
            if is_current(me, alias, &meta) {
                return Ok(());
            }
            if !is_earlier_alias(alias, &meta) {
                bail!(
                    "{} exists and is not maybe-sccache; remove it or choose another --dir",
                    alias.display()
                );
            }
        }
    }
    // A new link beside the old one, renamed over it: the alias is never missing meanwhile.
    let tmp = alias.with_file_name(format!(".sccache.{}.tmp", std::process::id()));
    let _ = fs::remove_file(&tmp);
    make_link(me, &tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    if let Err(e) = fs::rename(&tmp, alias) {
        let _ = fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("cannot create {}", alias.display()));
    }
    Ok(())
}

fn is_current(me: &Path, alias: &Path, meta: &fs::Metadata) -> bool {
    if meta.file_type().is_symlink() {
        return fs::read_link(alias).is_ok_and(|target| target == me);
    }
    locate::is_this_program(alias)
}

/// A symlink whose target is named maybe-sccache (perhaps since removed by an upgrade), or a
/// file that is this program.
fn is_earlier_alias(alias: &Path, meta: &fs::Metadata) -> bool {
    if meta.file_type().is_symlink() {
        return fs::read_link(alias).is_ok_and(|target| {
            target
                .file_stem()
                .is_some_and(|s| s.to_string_lossy().starts_with("maybe-sccache"))
        });
    }
    locate::is_this_program(alias)
}

#[cfg(unix)]
fn make_link(me: &Path, link: &Path) -> io::Result<()> {
    std::os::unix::fs::symlink(me, link)
}

/// Windows lets few users make symlinks: a hard link, else a copy (refreshed by the next run
/// after an upgrade, since it then no longer matches this program).
#[cfg(not(unix))]
fn make_link(me: &Path, link: &Path) -> io::Result<()> {
    fs::hard_link(me, link).or_else(|_| fs::copy(me, link).map(|_| ()))
}

/// Is this program running under the alias's name (`sccache`, `sccache.exe`)?
pub fn invoked_as_sccache(argv0: Option<&OsString>) -> bool {
    let Some(stem) = argv0.and_then(|a| Path::new(a).file_stem()) else {
        return false;
    };
    stem.eq_ignore_ascii_case("sccache")
}

/// `sccache --show-stats` and the like, called through the alias: hands the call to the real
/// sccache (`exec` on Unix), or says in one line that there is none.
pub fn to_real_sccache(args: &[OsString]) -> Result<exec::Exit> {
    let config = Config::from_env();
    match locate::find_sccache(&config) {
        Lookup::Found { path, .. } => {
            // sccache's client stops whatever server listens at its address, root's client any
            // user's: the save action's `--stop-server` must not end another user's server.
            if args.iter().any(|a| a == "--stop-server") {
                if let Some(owner) = crate::server::foreign() {
                    bail!(
                        "the sccache server at {} belongs to {}, not to this user: not stopped",
                        crate::server::address(),
                        owner.describe()
                    );
                }
            }
            Ok(exec::run_compiler(path.as_os_str(), args)?)
        }
        Lookup::NotFound { looked } => {
            let what = args
                .first()
                .map_or(String::new(), |a| a.to_string_lossy().into_owned());
            bail!(
                "`sccache {what}` is a command of the real sccache, and no sccache was found \
                 (looked at: {}); this `sccache` is maybe-sccache's alias",
                looked.join(", ")
            )
        }
    }
}
