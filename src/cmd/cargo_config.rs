//! Which `RUSTC_WRAPPER` cargo will run, decided the way cargo decides it, for `doctor`.
//!
//! Cargo (its `src/cargo/util/context/mod.rs`, and "Configuration" in the Cargo Book): the
//! `RUSTC_WRAPPER` variable first (empty turns the wrapper off), then `CARGO_BUILD_RUSTC_WRAPPER`
//! (the environment beats config files), then `build.rustc-wrapper` from the config files: in
//! `.cargo/` of the current directory and of every parent, the nearest first, then in
//! `$CARGO_HOME` unless the walk already read it. In each directory cargo reads `config` when it
//! exists, else `config.toml`, never both. A value containing `/` is a path relative to the
//! directory holding that `.cargo/` (for `$CARGO_HOME/config.toml`: `$CARGO_HOME/..`), or to the
//! current directory for a variable; a bare name is looked up on `PATH`.
//!
//! Only `doctor` calls this, so the TOML parser it uses costs a compiler call nothing.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};

/// What cargo will use as its rustc wrapper.
#[derive(Debug, PartialEq, Eq)]
pub enum Wrapper {
    /// `value`, set by `source` (a variable, or a config file's path); `program` is what cargo
    /// will run: `value` itself for a bare name (looked up on `PATH`), else an absolute path.
    Set {
        value: String,
        source: String,
        program: PathBuf,
    },
    /// A variable set to the empty string, which turns cargo's wrapper off.
    Off { var: &'static str },
    /// A config file cargo cannot read: cargo then fails every command.
    Unreadable { path: PathBuf, error: String },
    /// Nothing sets it; `files` are the config files read.
    NotSet { files: Vec<PathBuf> },
}

/// The wrapper cargo would run from `cwd`, with `var` reading the environment.
pub fn rustc_wrapper(
    cwd: &Path,
    cargo_home: Option<&Path>,
    var: impl Fn(&str) -> Option<OsString>,
) -> Wrapper {
    for name in ["RUSTC_WRAPPER", "CARGO_BUILD_RUSTC_WRAPPER"] {
        // Cargo reads both as UTF-8 and ignores a value that is not.
        let Some(value) = var(name).and_then(|v| v.into_string().ok()) else {
            continue;
        };
        if value.is_empty() {
            return Wrapper::Off { var: name };
        }
        return Wrapper::Set {
            program: program(&value, cwd),
            source: format!("{name} (environment)"),
            value,
        };
    }
    let mut files = Vec::new();
    for file in config_files(cwd, cargo_home) {
        let text = match fs::read_to_string(&file) {
            Ok(text) => text,
            Err(e) => {
                return Wrapper::Unreadable {
                    path: file,
                    error: e.to_string(),
                }
            }
        };
        let value = match wrapper_in(&text) {
            Ok(None) => {
                files.push(file);
                continue;
            }
            Ok(Some(value)) => value,
            Err(error) => return Wrapper::Unreadable { path: file, error },
        };
        // `…/X/.cargo/config.toml` and `$CARGO_HOME/config.toml`: two levels up.
        let root = file.parent().and_then(Path::parent).unwrap_or(cwd);
        return Wrapper::Set {
            program: program(&value, root),
            source: file.display().to_string(),
            value,
        };
    }
    Wrapper::NotSet { files }
}

/// The config files cargo reads from `cwd`, in order of precedence (the first one wins).
pub fn config_files(cwd: &Path, cargo_home: Option<&Path>) -> Vec<PathBuf> {
    let mut seen = HashSet::new();
    let mut files = Vec::new();
    for dir in cwd.ancestors() {
        let root = dir.join(".cargo");
        files.extend(file_in(&root));
        seen.insert(root.canonicalize().unwrap_or(root));
    }
    if let Some(home) = cargo_home {
        let canonical = home.canonicalize().unwrap_or_else(|_| home.to_owned());
        if !seen.contains(&canonical) && !seen.contains(home) {
            files.extend(file_in(home));
        }
    }
    files
}

/// `config` when it exists (cargo warns that it wins over `config.toml`), else `config.toml`.
fn file_in(dir: &Path) -> Option<PathBuf> {
    ["config", "config.toml"]
        .into_iter()
        .map(|name| dir.join(name))
        .find(|path| path.exists())
}

/// `build.rustc-wrapper` in a config file's text, in any form TOML allows (a `[build]` table,
/// dotted keys, an inline table). `Err` when cargo could not read the file either.
pub fn wrapper_in(text: &str) -> Result<Option<String>, String> {
    use toml::de::{DeTable, DeValue};
    let table = DeTable::parse(text).map_err(|e| format!("not valid TOML: {}", e.message()))?;
    let table = DeValue::Table(table.into_inner());
    let Some(build) = table.get("build") else {
        return Ok(None);
    };
    if !build.get_ref().is_table() {
        return Err("`build` is not a table".to_owned());
    }
    match build.get_ref().get("rustc-wrapper").map(|v| v.get_ref()) {
        None => Ok(None),
        Some(DeValue::String(value)) => Ok(Some(value.to_string())),
        Some(_) => Err("`build.rustc-wrapper` is not a string".to_owned()),
    }
}

/// What cargo runs for `value`: a bare name as it is (cargo looks it up on `PATH`), anything with
/// a path separator relative to `root`.
fn program(value: &str, root: &Path) -> PathBuf {
    let is_path = value.contains('/') || (cfg!(windows) && value.contains('\\'));
    if is_path {
        root.join(value)
    } else {
        PathBuf::from(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    const NO_ENV: fn(&str) -> Option<OsString> = |_| None;

    #[test]
    fn every_form_toml_allows() {
        let w = |t: &str| wrapper_in(t);
        let it = Ok(Some("w".to_owned()));
        assert_eq!(w("[build]\nrustc-wrapper = \"w\"\n"), it);
        assert_eq!(w("[ build ] # x\njobs = 2\n'rustc-wrapper'='w'\n"), it);
        assert_eq!(w("build.rustc-wrapper = \"w\"\n"), it);
        assert_eq!(w("build = { rustc-wrapper = \"w\", jobs = 1 }\n"), it);
        assert_eq!(w("[build]\nrustc-wrapper = \"\"\"\nw\"\"\"\n"), it);
        assert_eq!(w("[target.x]\nrustc-wrapper = \"w\"\n[build]\n"), Ok(None));
        assert_eq!(w("[build]\n# rustc-wrapper = \"w\"\n"), Ok(None));
        assert_eq!(w(""), Ok(None));
        assert!(w("[build\n").unwrap_err().starts_with("not valid TOML"));
        assert_eq!(w("build = 1\n"), Err("`build` is not a table".to_owned()));
        assert_eq!(
            w("[build]\nrustc-wrapper = [\"w\"]\n"),
            Err("`build.rustc-wrapper` is not a string".to_owned())
        );
    }

    #[test]
    fn cargos_search_order() {
        let tmp = tempfile::tempdir().unwrap();
        let top = tmp.path().canonicalize().unwrap();
        let home = top.join("cargo-home");
        let project = top.join("project");
        let sub = project.join("crates/x");
        fs::create_dir_all(&sub).unwrap();
        let found = |cwd: &Path| rustc_wrapper(cwd, Some(&home), NO_ENV);

        assert_eq!(found(&sub), Wrapper::NotSet { files: vec![] });
        write(
            &home.join("config.toml"),
            "build.rustc-wrapper = \"from-home\"\n",
        );
        let set = |value: &str, source: &Path, program: &Path| Wrapper::Set {
            value: value.to_owned(),
            source: source.display().to_string(),
            program: program.to_owned(),
        };
        assert_eq!(
            found(&sub),
            set(
                "from-home",
                &home.join("config.toml"),
                Path::new("from-home")
            )
        );
        // A parent directory beats `$CARGO_HOME`; a nearer one beats a parent.
        let outer = top.join(".cargo/config.toml");
        write(&outer, "[build]\nrustc-wrapper = \"bin/outer\"\n");
        assert_eq!(
            found(&sub),
            set("bin/outer", &outer, &top.join("bin/outer"))
        );
        let inner = project.join(".cargo/config.toml");
        write(&inner, "build = { rustc-wrapper = \"inner\" }\n");
        assert_eq!(found(&sub), set("inner", &inner, Path::new("inner")));
        // `config` is read instead of `config.toml`, never as well.
        let old_name = project.join(".cargo/config");
        write(&old_name, "[build]\njobs = 1\n");
        assert_eq!(
            found(&sub),
            set("bin/outer", &outer, &top.join("bin/outer"))
        );
        assert_eq!(
            config_files(&sub, Some(&home)),
            [old_name.clone(), outer.clone(), home.join("config.toml")]
        );
        // A file cargo cannot parse stops everything, as it stops cargo.
        write(&old_name, "[build\n");
        assert!(matches!(found(&sub), Wrapper::Unreadable { path, .. } if path == old_name));
        fs::remove_file(&old_name).unwrap();
        // `$CARGO_HOME` met on the way up is read once, in its place.
        let home_in_tree = project.join(".cargo");
        assert_eq!(
            config_files(&sub, Some(&home_in_tree)),
            [inner.clone(), outer.clone()]
        );
        // Also when `$CARGO_HOME` names it by another path.
        #[cfg(unix)]
        {
            let home_by_link = top.join("home-link");
            std::os::unix::fs::symlink(&home_in_tree, &home_by_link).unwrap();
            assert_eq!(
                config_files(&sub, Some(&home_by_link)),
                [inner.clone(), outer.clone()]
            );
        }
        // `$CARGO_HOME/config.toml` paths are relative to `$CARGO_HOME/..`.
        fs::remove_file(&inner).unwrap();
        fs::remove_file(&outer).unwrap();
        write(&home.join("config"), "build.rustc-wrapper = \"x/w\"\n");
        assert_eq!(
            found(&sub),
            set("x/w", &home.join("config"), &top.join("x/w"))
        );
        // The environment beats every file; `RUSTC_WRAPPER` beats `CARGO_BUILD_RUSTC_WRAPPER`.
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| OsString::from(v))
            }
        };
        let both = env(&[("RUSTC_WRAPPER", "a/b"), ("CARGO_BUILD_RUSTC_WRAPPER", "c")]);
        assert_eq!(
            rustc_wrapper(&sub, Some(&home), both),
            Wrapper::Set {
                value: "a/b".into(),
                source: "RUSTC_WRAPPER (environment)".into(),
                program: sub.join("a/b"),
            }
        );
        let build_var = env(&[("CARGO_BUILD_RUSTC_WRAPPER", "c")]);
        assert_eq!(
            rustc_wrapper(&sub, Some(&home), build_var),
            Wrapper::Set {
                value: "c".into(),
                source: "CARGO_BUILD_RUSTC_WRAPPER (environment)".into(),
                program: "c".into(),
            }
        );
        let off = env(&[("RUSTC_WRAPPER", ""), ("CARGO_BUILD_RUSTC_WRAPPER", "c")]);
        assert_eq!(
            rustc_wrapper(&sub, Some(&home), off),
            Wrapper::Off {
                var: "RUSTC_WRAPPER"
            }
        );
        let off = env(&[("CARGO_BUILD_RUSTC_WRAPPER", "")]);
        assert_eq!(
            rustc_wrapper(&sub, Some(&home), off),
            Wrapper::Off {
                var: "CARGO_BUILD_RUSTC_WRAPPER"
            }
        );
    }
}
