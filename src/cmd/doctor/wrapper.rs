//! Which rustc wrapper cargo runs here, and whether it is maybe-sccache (or its alias).

use super::*;

const WRAPPER_FIX: &str =
    "export RUSTC_WRAPPER=\"$(maybe-sccache alias)\" (build scripts' C and C++ \
                           cached too), or RUSTC_WRAPPER=maybe-sccache, or the same in \
                           `[build] rustc-wrapper` of .cargo/config.toml";

/// The fix when cargo runs the shim by its own name while build scripts compile C or C++.
const ALIAS_FIX: &str = "export RUSTC_WRAPPER=\"$(maybe-sccache alias)\", or set `[build] \
                         rustc-wrapper` to the path `maybe-sccache alias` prints";

/// Is cargo told to run maybe-sccache? Decided as cargo decides it (see `cargo_config`).
pub(super) fn wrapper() -> Finding {
    let cwd = env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let home = locate::cargo_home();
    match cargo_config::rustc_wrapper(&cwd, home.as_deref(), |name| env::var_os(name)) {
        Wrapper::Set {
            value,
            source,
            program,
        } => judge_wrapper(&value, &source, &program, &cwd),
        Wrapper::Off { var } => fail(
            format!("wrapper: {var} is set but empty, which turns cargo's wrapper off"),
            format!("set {var}=maybe-sccache"),
        ),
        Wrapper::Unreadable { path, error } => fail(
            format!(
                "wrapper: cargo cannot read {}: {error}, so every cargo command fails",
                path.display()
            ),
            "fix or remove that file",
        ),
        Wrapper::NotSet { files } => {
            let home = home.map_or("$CARGO_HOME".to_owned(), |h| h.display().to_string());
            let read = if files.is_empty() {
                "no cargo config file found".to_owned()
            } else {
                let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
                format!("none in {}", names.join(", "))
            };
            fail(
                format!(
                    "wrapper: not configured (RUSTC_WRAPPER unset; no build.rustc-wrapper in \
                     .cargo/config.toml from {} upward or in {home}/config.toml: {read})",
                    cwd.display()
                ),
                WRAPPER_FIX,
            )
        }
    }
}

fn judge_wrapper(value: &str, source: &str, program: &Path, cwd: &Path) -> Finding {
    let name = Path::new(value)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    match name.as_str() {
        "maybe-sccache" => match locate::on_path(program, cwd) {
            // cc-rs wraps C and C++ only for a wrapper whose file stem is `sccache`.
            Some(found) if builds_c(cwd) => warn(
                format!(
                    "wrapper: {source} sets it to {value} ({}): Rust is cached, but the C and \
                     C++ that build scripts compile (the cc crate is in Cargo.lock) are not, \
                     since cc-rs routes them only through a wrapper named sccache",
                    found.display()
                ),
                ALIAS_FIX,
            ),
            Some(found) => ok(format!(
                "wrapper: {source} sets it to {value} ({}); for build scripts' C and C++ use \
                 `maybe-sccache alias` instead",
                found.display()
            )),
            None => fail(
                format!(
                    "wrapper: {source} sets it to {value}, which cannot be found: cargo \
                     fails to run any compile"
                ),
                "put maybe-sccache on PATH (cargo install --locked --path <its checkout>), \
                 or name it by absolute path",
            ),
        },
        // `maybe-sccache alias`: this program under the name cc-rs looks for.
        "sccache" if resolves_to_this_program(program, cwd) => ok(format!(
            "wrapper: {source} sets it to {value}, maybe-sccache's alias (build scripts' C and \
             C++ are cached too)"
        )),
        "sccache" => warn(
            format!(
                "wrapper: {source} sets it to {value}, sccache itself: every build fails when \
                 sccache is missing or broken"
            ),
            "use maybe-sccache as the wrapper instead; it runs sccache when it works",
        ),
        _ => warn(
            format!("wrapper: {source} sets it to {value}, not maybe-sccache"),
            WRAPPER_FIX,
        ),
    }
}

/// Does the project in `cwd` build C or C++ through cc-rs: is `cc` among the crates of the
/// nearest `Cargo.lock`?
fn builds_c(cwd: &Path) -> bool {
    cache_key::find_lockfile_from(cwd)
        .and_then(|lock| fs::read_to_string(lock).ok())
        .is_some_and(|text| text.lines().any(|l| l.trim() == "name = \"cc\""))
}

fn resolves_to_this_program(program: &Path, cwd: &Path) -> bool {
    locate::on_path(program, cwd).is_some_and(|p| locate::is_this_program(&p))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The wrapper cargo runs, judged by what it names: this program (found or not), its alias,
    /// sccache itself, or something else.
    #[cfg(unix)]
    #[test]
    fn the_wrapper_is_judged_by_what_it_names() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let cwd = dir.path();
        let level = |value: &str, program: &Path| judge_wrapper(value, "env", program, cwd).level;
        let executable = |path: &Path| {
            fs::write(path, "#!/bin/sh\n").unwrap();
            fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
        };

        let shim = cwd.join("maybe-sccache");
        assert!(level("maybe-sccache", &shim) == Level::Fail, "not found");
        executable(&shim);
        assert!(!builds_c(cwd), "a temporary dir has no Cargo.lock above it");
        assert!(level("maybe-sccache", &shim) == Level::Ok, "found");
        // A project whose lockfile has the cc crate: its build scripts' C is not cached.
        fs::write(
            cwd.join("Cargo.lock"),
            "[[package]]\nname = \"cc\"\nversion = \"1.2.0\"\n",
        )
        .unwrap();
        let with_c = judge_wrapper("maybe-sccache", "env", &shim, cwd);
        assert!(with_c.level == Level::Warn, "{}", with_c.text);
        assert!(with_c.text.contains("cc-rs routes them"), "{}", with_c.text);
        fs::remove_file(cwd.join("Cargo.lock")).unwrap();

        let sccache = cwd.join("sccache");
        executable(&sccache);
        let itself = judge_wrapper("sccache", "env", &sccache, cwd);
        assert!(itself.level == Level::Warn, "{}", itself.text);
        assert!(itself.text.contains("sccache itself"), "{}", itself.text);

        let alias_dir = cwd.join("alias");
        fs::create_dir(&alias_dir).unwrap();
        let alias = alias_dir.join("sccache");
        std::os::unix::fs::symlink(env::current_exe().unwrap(), &alias).unwrap();
        let by_alias = judge_wrapper("/x/sccache", "env", &alias, cwd);
        assert!(by_alias.level == Level::Ok, "{}", by_alias.text);
        assert!(by_alias.text.contains("alias"), "{}", by_alias.text);

        let other = judge_wrapper("ccache", "env", &sccache, cwd);
        assert!(other.level == Level::Warn, "{}", other.text);
        assert!(other.text.contains("not maybe-sccache"), "{}", other.text);
    }
}
