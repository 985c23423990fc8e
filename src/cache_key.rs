//! `maybe-sccache cache-key`: the actions/cache key for `SCCACHE_DIR`, so that CI files need not
//! build it by hand.
//!
//! Key: `sccache-<host>-<release>-<prefix>-<hash>`; restore prefix: the same without the hash.
//! Without a prefix (none given, or an empty one) the `<prefix>-` part is left out, so no key ever
//! holds an empty segment. `<host>` and `<release>` come from `rustc -vV` of the rustc cargo would
//! use (`RUSTC`, else `rustc` on `PATH`); `<hash>` is the first 16 hex digits of the SHA-256 of
//! `Cargo.lock`, the same as `sha256sum Cargo.lock | cut -c1-16`.

use std::env;
use std::ffi::OsString;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use sha2::{Digest, Sha256};

use crate::child::run_bounded;

pub const USAGE: &str =
    "usage: maybe-sccache cache-key [--lockfile PATH] [--prefix STR] [--github-output]";

/// How long `rustc -vV` may take (a rustup proxy may be slow the first time).
const RUSTC_TIMEOUT: Duration = Duration::from_secs(120);

/// actions/cache refuses longer keys.
const MAX_KEY_LEN: usize = 512;

/// Hex digits of the lockfile's SHA-256 kept in the key.
const HASH_DIGITS: usize = 16;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Options {
    pub lockfile: Option<PathBuf>,
    pub prefix: Option<String>,
    pub github_output: bool,
}

pub fn parse_args(args: &[String]) -> Result<Options> {
    let mut opts = Options::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_owned())),
            _ => (arg.as_str(), None),
        };
        let mut value = |name: &str| -> Result<String> {
            match inline.clone() {
                Some(v) => Ok(v),
                None => it
                    .next()
                    .cloned()
                    .ok_or_else(|| anyhow!("{name} needs a value; {USAGE}")),
            }
        };
        match name {
            "--lockfile" => {
                if opts.lockfile.is_some() {
                    bail!("--lockfile given twice; {USAGE}");
                }
                let v = value(name)?;
                if v.is_empty() {
                    bail!("--lockfile needs a path; {USAGE}");
                }
                opts.lockfile = Some(PathBuf::from(v));
            }
            "--prefix" => {
                if opts.prefix.is_some() {
                    bail!("--prefix given twice; {USAGE}");
                }
                opts.prefix = Some(value(name)?);
            }
            "--github-output" if inline.is_none() => opts.github_output = true,
            _ => bail!("unexpected argument {arg:?}; {USAGE}"),
        }
    }
    Ok(opts)
}

/// The key and its restore prefix.
#[derive(Debug, PartialEq, Eq)]
pub struct Key {
    pub key: String,
    pub restore: String,
}

pub fn run(opts: &Options) -> Result<ExitCode> {
    let key = compute(opts)?;
    let lines = format!("key={}\nrestore-key={}\n", key.key, key.restore);
    if opts.github_output {
        append_github_output(&lines)?;
    }
    // Only now, with everything done, is anything printed.
    let _ = std::io::stdout().write_all(lines.as_bytes());
    Ok(ExitCode::SUCCESS)
}

pub fn compute(opts: &Options) -> Result<Key> {
    let prefix = opts.prefix.as_deref().filter(|p| !p.is_empty());
    if let Some(p) = prefix {
        check_prefix(p)?;
    }
    let lockfile = match &opts.lockfile {
        Some(path) => {
            if !path.is_file() {
                bail!(
                    "--lockfile {}: no such file{}",
                    path.display(),
                    if path.is_dir() {
                        " (it is a directory)"
                    } else {
                        ""
                    }
                );
            }
            path.clone()
        }
        None => find_lockfile()?,
    };
    let bytes =
        fs::read(&lockfile).with_context(|| format!("cannot read {}", lockfile.display()))?;
    let (host, release) = rustc_host_and_release()?;
    let hash = &hex(&Sha256::digest(&bytes))[..HASH_DIGITS];
    let key = build_key(&host, &release, prefix, hash);
    if key.key.len() > MAX_KEY_LEN {
        bail!(
            "the cache key would be {} characters long; actions/cache allows {MAX_KEY_LEN}: use a shorter --prefix",
            key.key.len()
        );
    }
    Ok(key)
}

pub fn build_key(host: &str, release: &str, prefix: Option<&str>, hash: &str) -> Key {
    let mut restore = format!("sccache-{host}-{release}-");
    if let Some(p) = prefix {
        restore.push_str(p);
        restore.push('-');
    }
    Key {
        key: format!("{restore}{hash}"),
        restore,
    }
}

/// A prefix must keep the key usable by actions/cache (no commas) and by `$GITHUB_OUTPUT`
/// (one line).
fn check_prefix(p: &str) -> Result<()> {
    if let Some(c) = p.chars().find(|c| *c == ',' || c.is_control()) {
        bail!("--prefix {p:?}: {c:?} cannot be part of an actions/cache key");
    }
    Ok(())
}

/// `Cargo.lock` in the current directory or the nearest directory above it that has one; that is
/// where cargo keeps a workspace's lockfile.
fn find_lockfile() -> Result<PathBuf> {
    let cwd = env::current_dir().context("cannot read the current directory")?;
    cwd.ancestors()
        .map(|dir| dir.join("Cargo.lock"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            anyhow!(
                "no Cargo.lock in {} or any directory above it; run `cargo generate-lockfile` \
                 (or a build) first, or pass --lockfile PATH",
                cwd.display()
            )
        })
}

/// The rustc cargo would use: `RUSTC` when set, else `rustc` on `PATH`.
fn rustc_program() -> Result<(PathBuf, String)> {
    if let Some(rustc) = env::var_os("RUSTC").filter(|v| !v.is_empty()) {
        let described = format!("RUSTC={}", Path::new(&rustc).display());
        return Ok((PathBuf::from(rustc), described));
    }
    let path_var = env::var_os("PATH").unwrap_or_default();
    let cwd = env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    match which::which_in("rustc", Some(&path_var), &cwd) {
        Ok(path) => Ok((path, "rustc on PATH".to_owned())),
        Err(_) => bail!(
            "cannot find rustc: RUSTC is unset and there is no rustc on PATH; install a Rust \
             toolchain or set RUSTC"
        ),
    }
}

fn rustc_host_and_release() -> Result<(String, String)> {
    let (program, described) = rustc_program()?;
    let mut cmd = Command::new(&program);
    cmd.arg("-vV").stdin(Stdio::null());
    let (code, stdout, stderr) = run_bounded(cmd, RUSTC_TIMEOUT)
        .map_err(|e| anyhow!("cannot run {} ({described}): {e}", program.display()))?;
    if code != Some(0) {
        let said = String::from_utf8_lossy(&stderr);
        let first = said.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        bail!(
            "`{} -vV` ({described}) failed ({}){}{}",
            program.display(),
            code.map_or("killed by a signal".to_owned(), |c| format!(
                "exit code {c}"
            )),
            if first.is_empty() { "" } else { ": " },
            first.trim()
        );
    }
    parse_version_output(&String::from_utf8_lossy(&stdout)).ok_or_else(|| {
        anyhow!(
            "`{} -vV` ({described}) printed no `host:` and `release:` lines",
            program.display()
        )
    })
}

pub fn parse_version_output(text: &str) -> Option<(String, String)> {
    let field = |name: &str| -> Option<String> {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty() && !v.contains(|c: char| c.is_whitespace() || c == ','))
    };
    Some((field("host:")?, field("release:")?))
}

fn append_github_output(lines: &str) -> Result<()> {
    let Some(path) = env::var_os("GITHUB_OUTPUT").filter(|p| !p.is_empty()) else {
        bail!(
            "--github-output: GITHUB_OUTPUT is not set (GitHub Actions sets it in every step); \
             run without --github-output to print the key only"
        );
    };
    let path: OsString = path;
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(lines.as_bytes()))
        .with_context(|| {
            format!(
                "--github-output: cannot append to $GITHUB_OUTPUT ({})",
                Path::new(&path).display()
            )
        })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_known_vector() {
        assert_eq!(
            hex(&Sha256::digest(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn keys() {
        let k = build_key("x86_64-unknown-linux-gnu", "1.95.0", Some("test"), "0123");
        assert_eq!(k.key, "sccache-x86_64-unknown-linux-gnu-1.95.0-test-0123");
        assert_eq!(k.restore, "sccache-x86_64-unknown-linux-gnu-1.95.0-test-");
        let k = build_key("h", "r", None, "ab");
        assert_eq!(k.key, "sccache-h-r-ab");
        assert_eq!(k.restore, "sccache-h-r-");
    }

    #[test]
    fn version_output() {
        let text = "rustc 1.95.0 (59807616e 2026-04-14)\nbinary: rustc\n\
                    host: x86_64-unknown-linux-gnu\nrelease: 1.95.0\nLLVM version: 22.1.2\n";
        assert_eq!(
            parse_version_output(text),
            Some(("x86_64-unknown-linux-gnu".into(), "1.95.0".into()))
        );
        assert_eq!(parse_version_output("rustc 1.0\nhost: \n"), None);
    }

    #[test]
    fn args() {
        let a = |v: &[&str]| parse_args(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(a(&[]).unwrap(), Options::default());
        let o = a(&[
            "--lockfile",
            "x/Cargo.lock",
            "--prefix=ci",
            "--github-output",
        ])
        .unwrap();
        assert_eq!(o.lockfile, Some(PathBuf::from("x/Cargo.lock")));
        assert_eq!(o.prefix.as_deref(), Some("ci"));
        assert!(o.github_output);
        assert!(a(&["--prefix"]).is_err());
        assert!(a(&["--prefix", "a", "--prefix", "b"]).is_err());
        assert!(a(&["--lockfile="]).is_err());
        assert!(a(&["--github-output=yes"]).is_err());
        assert!(a(&["extra"]).is_err());
        assert!(check_prefix("a,b").is_err());
        assert!(check_prefix("a\nb").is_err());
        assert!(check_prefix("linux-stable").is_ok());
    }
}
