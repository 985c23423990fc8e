//! `maybe-sccache cache-key`: the actions/cache key for `SCCACHE_DIR`, so that CI files need not
//! build it by hand.
//!
//! Key: `sccache-<host>-<rustc>[-<prefix>]-<lock>[-<run id>-<run attempt>]`.
//! - `<host>` and `<rustc>` come from `rustc -vV` of the rustc cargo would use (`RUSTC`, else
//!   `rustc` on `PATH`). `<rustc>` is the release, followed by the first 9 digits of the commit hash
//!   for a pre-release (nightly, beta, dev), whose release stays the same for weeks while the
//!   compiler changes under it.
//! - `<prefix>` is the caller's own part (a job name), with every character actions/cache or a
//!   shell could stumble on replaced by `_`; empty means no `<prefix>-` part.
//! - `<lock>` is the first 16 hex digits of the SHA-256 of `Cargo.lock` (the same as
//!   `sha256sum Cargo.lock | cut -c1-16`), or `nolock` when the project has none (libraries often
//!   do not commit one).
//! - With `GITHUB_RUN_ID` set, the key ends in `-<run id>-<run attempt>`: actions/cache never
//!   overwrites a key, so a key per run is what lets a later run save a fresher cache. The restore
//!   keys are then the key without that suffix (the same lockfile) and the key without `<lock>`
//!   (any lockfile). Without `GITHUB_RUN_ID` the key is deterministic and its restore key is the one
//!   without `<lock>`.

use std::env;
use std::ffi::OsString;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use sha2::{Digest, Sha256};

use crate::child::{run_bounded, Output};

pub const USAGE: &str =
    "usage: maybe-sccache cache-key [--lockfile PATH] [--prefix STR] [--github-output]";

/// How long `rustc -vV` may take (a rustup proxy may be slow the first time).
const RUSTC_TIMEOUT: Duration = Duration::from_secs(120);

/// actions/cache refuses longer keys.
const MAX_KEY_LEN: usize = 512;

/// Hex digits of the lockfile's SHA-256 kept in the key.
const HASH_DIGITS: usize = 16;

/// Hex digits of a pre-release rustc's commit hash kept in the key (as `rustc -V` shows it).
const COMMIT_DIGITS: usize = 9;

/// The lock part of a key for a project without a `Cargo.lock`.
const NO_LOCK: &str = "nolock";

/// Ends the multi-line `restore-keys` value in `$GITHUB_OUTPUT`. No key line can equal it: every
/// key starts with `sccache-`.
const DELIMITER: &str = "MAYBE_SCCACHE_EOF";

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

/// The key, and the prefixes to restore from when no cache has that key, best first.
#[derive(Debug, PartialEq, Eq)]
pub struct Key {
    pub key: String,
    pub restore: Vec<String>,
}

/// What the key is made of.
#[derive(Debug, PartialEq, Eq)]
pub struct Parts<'a> {
    pub host: &'a str,
    pub rustc: &'a str,
    pub prefix: Option<&'a str>,
    /// The lockfile hash, or `None` without a lockfile.
    pub lock: Option<&'a str>,
    /// `GITHUB_RUN_ID` and `GITHUB_RUN_ATTEMPT`.
    pub run: Option<(&'a str, &'a str)>,
}

pub fn run(opts: &Options) -> Result<ExitCode> {
    let (key, notices) = compute(opts)?;
    let text = output_text(&key);
    if opts.github_output {
        append_github_output(&text)?;
    }
    // Only now, with everything done, is anything printed.
    for notice in &notices {
        print_notice(notice);
    }
    let _ = std::io::stdout().write_all(text.as_bytes());
    Ok(ExitCode::SUCCESS)
}

/// `key=…`, then the restore keys in the multi-line `name<<DELIMITER` form of `$GITHUB_OUTPUT`,
/// one per line, so that a workflow passes them straight on to actions/cache.
pub fn output_text(key: &Key) -> String {
    let mut text = format!("key={}\nrestore-keys<<{DELIMITER}\n", key.key);
    for r in &key.restore {
        text.push_str(r);
        text.push('\n');
    }
    text.push_str(DELIMITER);
    text.push('\n');
    text
}

/// A notice is no error: in a GitHub Actions step it becomes an annotation on the run.
fn print_notice(text: &str) {
    if env::var_os("GITHUB_ACTIONS").is_some_and(|v| v == "true") {
        eprintln!("::notice title=maybe-sccache cache-key::{text}");
    } else {
        eprintln!("maybe-sccache: notice: {text}");
    }
}

/// The key, and the notices worth showing about how it was made.
pub fn compute(opts: &Options) -> Result<(Key, Vec<String>)> {
    let mut notices = Vec::new();
    let raw_prefix = opts.prefix.as_deref().unwrap_or("");
    let prefix = sanitize(raw_prefix);
    if prefix != raw_prefix {
        notices.push(format!(
            "the key part {raw_prefix:?} became {prefix:?}: only letters, digits, `.`, `_` and \
             `-` are kept in a cache key"
        ));
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
            Some(path.clone())
        }
        None => find_lockfile(),
    };
    let hash = match &lockfile {
        Some(path) => {
            let bytes =
                fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            Some(hex(&Sha256::digest(&bytes))[..HASH_DIGITS].to_owned())
        }
        None => {
            let cwd = env::current_dir().unwrap_or_default();
            notices.push(format!(
                "no Cargo.lock in {} or above: the key has `{NO_LOCK}` in place of a lockfile \
                 hash (commit Cargo.lock, or pass --lockfile, to key the cache by it)",
                cwd.display()
            ));
            None
        }
    };
    let version = rustc_version()?;
    let rustc = version.key_part();
    let run_id = env::var("GITHUB_RUN_ID").ok().filter(|v| is_number(v));
    let attempt = env::var("GITHUB_RUN_ATTEMPT")
        .ok()
        .filter(|v| is_number(v))
        .unwrap_or_else(|| "1".to_owned());
    let mut parts = Parts {
        host: &version.host,
        rustc: &rustc,
        prefix: Some(prefix.as_str()).filter(|p| !p.is_empty()),
        lock: hash.as_deref(),
        run: run_id.as_deref().map(|id| (id, attempt.as_str())),
    };
    let shortened;
    let mut key = build_key(&parts);
    if key.key.len() > MAX_KEY_LEN {
        let over = key.key.len() - MAX_KEY_LEN;
        shortened = shorten(&prefix, over);
        if shortened.is_empty() {
            bail!(
                "the cache key would be {} characters long; actions/cache allows {MAX_KEY_LEN}",
                key.key.len()
            );
        }
        notices.push(format!(
            "the key part was shortened to {shortened:?} to keep the key within the \
             {MAX_KEY_LEN} characters actions/cache allows"
        ));
        parts.prefix = Some(&shortened);
        key = build_key(&parts);
    }
    Ok((key, notices))
}

pub fn build_key(p: &Parts) -> Key {
    let mut base = format!("sccache-{}-{}", p.host, p.rustc);
    if let Some(prefix) = p.prefix {
        base.push('-');
        base.push_str(prefix);
    }
    let any_lock = format!("{base}-");
    let same_lock = format!("{base}-{}", p.lock.unwrap_or(NO_LOCK));
    match p.run {
        Some((id, attempt)) => Key {
            key: format!("{same_lock}-{id}-{attempt}"),
            restore: vec![same_lock, any_lock],
        },
        None => Key {
            key: same_lock,
            restore: vec![any_lock],
        },
    }
}

/// Keeps letters, digits, `.`, `_` and `-`; anything else (a comma, which actions/cache splits
/// keys on, a newline, which would break `$GITHUB_OUTPUT`, spaces, quotes, `$`) becomes `_`.
pub fn sanitize(raw: &str) -> String {
    raw.trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `prefix` made `over` characters shorter (and some more for the hash of the whole that keeps
/// two long prefixes apart). Empty when that leaves nothing of it.
fn shorten(prefix: &str, over: usize) -> String {
    let tag = &hex(&Sha256::digest(prefix.as_bytes()))[..8];
    let keep = prefix.len().saturating_sub(over + tag.len() + 1);
    if keep == 0 {
        return String::new();
    }
    // The prefix is ASCII after sanitize(), so any byte index is a character boundary.
    format!("{}-{tag}", &prefix[..keep])
}

fn is_number(v: &str) -> bool {
    !v.is_empty() && v.len() <= 20 && v.bytes().all(|b| b.is_ascii_digit())
}

/// `Cargo.lock` in the current directory or the nearest directory above it that has one; that is
/// where cargo keeps a workspace's lockfile.
pub fn find_lockfile() -> Option<PathBuf> {
    find_lockfile_from(&env::current_dir().ok()?)
}

/// The nearest `Cargo.lock` in `dir` or above it.
pub fn find_lockfile_from(dir: &Path) -> Option<PathBuf> {
    dir.ancestors()
        .map(|dir| dir.join("Cargo.lock"))
        .find(|p| p.is_file())
}

/// The rustc cargo would use: `RUSTC` when set, else `rustc` on `PATH`.
fn rustc_program() -> Result<(PathBuf, String)> {
    if let Some(rustc) = env::var_os("RUSTC").filter(|v| !v.is_empty()) {
        let described = format!("RUSTC={}", Path::new(&rustc).display());
        return Ok((PathBuf::from(rustc), described));
    }
    let cwd = env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    match crate::call::locate::on_path("rustc", &cwd) {
        Some(path) => Ok((path, "rustc on PATH".to_owned())),
        None => bail!(
            "cannot find rustc: RUSTC is unset and there is no rustc on PATH; install a Rust \
             toolchain or set RUSTC"
        ),
    }
}

/// What `rustc -vV` says about itself.
#[derive(Debug, PartialEq, Eq)]
pub struct RustcVersion {
    pub host: String,
    pub release: String,
    pub commit: Option<String>,
}

impl RustcVersion {
    /// The release, and for a pre-release also the commit: nightlies keep one release for six
    /// weeks while the compiler (and so every cached object) changes under it.
    pub fn key_part(&self) -> String {
        match &self.commit {
            Some(commit) if self.release.contains('-') => {
                let digits = &commit[..commit.len().min(COMMIT_DIGITS)];
                format!("{}-{digits}", self.release)
            }
            _ => self.release.clone(),
        }
    }
}

fn rustc_version() -> Result<RustcVersion> {
    let (program, described) = rustc_program()?;
    let mut cmd = Command::new(&program);
    cmd.arg("-vV").stdin(Stdio::null());
    let Output {
        code,
        stdout,
        stderr,
    } = run_bounded(cmd, RUSTC_TIMEOUT)
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

/// `host:`, `release:` and `commit-hash:` of `rustc -vV`; each must be one word that is safe in a
/// key. A missing or `unknown` commit hash (a locally built compiler) is `None`.
pub fn parse_version_output(text: &str) -> Option<RustcVersion> {
    let field = |name: &str| -> Option<String> {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty() && sanitize(v) == *v)
    };
    Some(RustcVersion {
        host: field("host:")?,
        release: field("release:")?,
        commit: field("commit-hash:").filter(|c| c.bytes().all(|b| b.is_ascii_hexdigit())),
    })
}

fn append_github_output(text: &str) -> Result<()> {
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
        .and_then(|mut f| f.write_all(text.as_bytes()))
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
        let mut p = Parts {
            host: "x86_64-unknown-linux-gnu",
            rustc: "1.95.0",
            prefix: Some("test"),
            lock: Some("0123"),
            run: None,
        };
        let k = build_key(&p);
        assert_eq!(k.key, "sccache-x86_64-unknown-linux-gnu-1.95.0-test-0123");
        assert_eq!(k.restore, ["sccache-x86_64-unknown-linux-gnu-1.95.0-test-"]);
        p.run = Some(("17", "2"));
        let k = build_key(&p);
        assert_eq!(
            k.key,
            "sccache-x86_64-unknown-linux-gnu-1.95.0-test-0123-17-2"
        );
        assert_eq!(
            k.restore,
            [
                "sccache-x86_64-unknown-linux-gnu-1.95.0-test-0123",
                "sccache-x86_64-unknown-linux-gnu-1.95.0-test-"
            ]
        );
        let k = build_key(&Parts {
            host: "h",
            rustc: "r",
            prefix: None,
            lock: None,
            run: None,
        });
        assert_eq!(k.key, "sccache-h-r-nolock");
        assert_eq!(k.restore, ["sccache-h-r-"]);
        assert_eq!(
            output_text(&k),
            "key=sccache-h-r-nolock\nrestore-keys<<MAYBE_SCCACHE_EOF\nsccache-h-r-\n\
             MAYBE_SCCACHE_EOF\n"
        );
    }

    #[test]
    fn sanitized_and_shortened() {
        assert_eq!(sanitize("linux-stable_1.0"), "linux-stable_1.0");
        assert_eq!(sanitize(" a,b c\n$x'\"é "), "a_b_c__x___");
        let long = "x".repeat(600);
        let short = shorten(&long, 100);
        assert_eq!(short.len(), 500);
        assert_ne!(shorten(&"y".repeat(600), 100), short);
        assert_eq!(shorten("abc", 1), "");
    }

    #[test]
    fn version_output() {
        let text = "rustc 1.95.0 (59807616e 2026-04-14)\nbinary: rustc\n\
                    commit-hash: 59807616e1fa2540724bfbac14d7976d7e4a3860\n\
                    host: x86_64-unknown-linux-gnu\nrelease: 1.95.0\nLLVM version: 22.1.2\n";
        let v = parse_version_output(text).unwrap();
        assert_eq!(v.host, "x86_64-unknown-linux-gnu");
        assert_eq!(v.key_part(), "1.95.0", "a stable release is enough");
        let nightly = text.replace("release: 1.95.0", "release: 1.97.0-nightly");
        let v = parse_version_output(&nightly).unwrap();
        assert_eq!(v.key_part(), "1.97.0-nightly-59807616e");
        let unknown = nightly.replace("59807616e1fa2540724bfbac14d7976d7e4a3860", "unknown");
        assert_eq!(
            parse_version_output(&unknown).unwrap().key_part(),
            "1.97.0-nightly"
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
    }
}
