//! The GitHub Actions example (`examples/github-actions/action.yml` and `save/action.yml`) run on
//! the stand-in runner (`support::gha_runner`): its steps cannot fail the job, the commands it runs
//! exist, README documents its inputs and outputs, and jobs with and without a warm cache, with
//! nothing working, or with hostile inputs.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::gha_runner::*;
use crate::support::*;

// ---------------------------------------------------------------------------------------------
// Static checks

/// Third-party actions pinned by commit; no `${{ }}` inside scripts (inputs reach them through
/// `env:` only); every step that is not allowed to fail ends in `exit 0` with `set +e` first,
/// so no command in it can fail the job.
#[test]
fn action_steps_cannot_fail_the_job() {
    for action in [Action::load(SETUP), Action::load(SAVE)] {
        for step in action.steps() {
            let name = step_name(step);
            let tolerant = step["continue-on-error"].as_bool() == Some(true);
            if let Some(uses) = scalar(&step["uses"]) {
                let (_, pin) = uses.split_once('@').unwrap_or(("", ""));
                assert!(
                    pin.len() == 40 && pin.bytes().all(|b| b.is_ascii_hexdigit()),
                    "{}: {name}: `uses: {uses}` must be pinned by a full commit hash",
                    action.rel
                );
                assert!(
                    tolerant,
                    "{}: {name}: a step that uses another action must be allowed to fail",
                    action.rel
                );
                continue;
            }
            let script = scalar(&step["run"]).unwrap_or_else(|| panic!("{name}: no run"));
            assert!(
                !tolerant,
                "{name}: shell steps must not fail, not be excused"
            );
            assert!(
                !script.contains("${{"),
                "{}: {name}: expressions in a script are a template injection; use env:",
                action.rel
            );
            let lines: Vec<&str> = script.lines().map(str::trim).collect();
            assert_eq!(lines.first(), Some(&"set +e"), "{}: {name}", action.rel);
            assert_eq!(lines.last(), Some(&"exit 0"), "{}: {name}", action.rel);
            for line in &lines {
                for (i, _) in line.match_indices("exit") {
                    let after = &line[i + 4..];
                    let before = &line[..i];
                    if before.ends_with(|c: char| c.is_alphanumeric() || c == '_') {
                        continue;
                    }
                    assert!(
                        after.starts_with(" 0"),
                        "{}: {name}: only `exit 0` may end a step: {line}",
                        action.rel
                    );
                }
            }
        }
        // The pinned actions carry their version in a comment, for humans and for updaters.
        let text = fs::read_to_string(action.dir().join("action.yml")).unwrap();
        for line in text.lines().filter(|l| l.trim_start().starts_with("uses:")) {
            assert!(line.contains(" # v"), "{}: {line}", action.rel);
        }
    }
}

/// Every `maybe-sccache …` command in a script: where it stands as a command (at the start of a
/// line, after `!`, `if`, `$(`, `&&`, `||`), its words up to a redirection, pipe, `;`, `)` or
/// comment, with `"$X"` standing for a value.
fn commands_in(script: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    for line in script.lines() {
        for (i, _) in line.match_indices("maybe-sccache ") {
            let before = line[..i].trim_end().trim_end_matches('"');
            let at_command = before.is_empty()
                || ["!", "if", "$(", "&&", "||", "then"]
                    .iter()
                    .any(|p| before.ends_with(p));
            if !at_command {
                continue;
            }
            let rest = &line[i + "maybe-sccache ".len()..];
            let end = rest
                .find(['>', '|', ';', ')', '&', '#'])
                .unwrap_or(rest.len());
            let words = rest[..end]
                .split_whitespace()
                .map(|w| w.trim_matches('"'))
                .map(|w| if w.contains('$') { "value" } else { w }.to_owned())
                .collect();
            found.push(words);
        }
    }
    found
}

/// Every `maybe-sccache` command the actions run exists with those options: run as written (a
/// value in place of each variable) it does not end in a usage error.
#[test]
fn action_commands_exist() {
    let sb = Sandbox::new();
    write_file(&sb.ws.join("Cargo.lock"), "version = 4\n", 0o644);
    let mut all = Vec::new();
    for action in [Action::load(SETUP), Action::load(SAVE)] {
        for step in action.steps() {
            if let Some(script) = scalar(&step["run"]) {
                all.extend(commands_in(&script));
            }
        }
    }
    let names: Vec<String> = all.iter().map(|c| c.join(" ")).collect();
    for needed in [
        "--version",
        "alias --dir value",
        "reset",
        "cache-key --prefix value --github-output",
        "doctor",
        "status --markdown",
        "should-save --threshold value --github-output",
    ] {
        assert!(
            names.iter().any(|n| n == needed),
            "the actions should run `maybe-sccache {needed}`: {names:?}"
        );
    }
    let output = sb.data.join("github-output");
    for words in &all {
        let args: Vec<String> = words
            .iter()
            .enumerate()
            .map(
                |(i, w)| match (i.checked_sub(1).map(|p| words[p].as_str()), w.as_str()) {
                    (Some("--dir"), "value") => sb.data.join("alias").display().to_string(),
                    (Some("--threshold"), "value") => "10".into(),
                    (_, "value") => "ci".into(),
                    _ => w.clone(),
                },
            )
            .collect();
        let mut cmd = sb.shim(&args);
        cmd.current_dir(&sb.ws).env("GITHUB_OUTPUT", &output);
        let r = run(&mut cmd, SHORT);
        assert_eq!(
            r.code(),
            Some(0),
            "`maybe-sccache {}` from the actions: {}",
            args.join(" "),
            r.describe()
        );
        assert_eq!(count(&r.all(), "panicked"), 0, "{}", r.describe());
    }
}

/// The README documents each action's inputs and outputs, and nothing else.
#[test]
fn action_inputs_and_outputs_are_documented() {
    let readme =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    for (action, heading) in [
        (Action::load(SETUP), "#### Inputs of the set-up action"),
        (Action::load(SAVE), "#### Inputs of the save action"),
    ] {
        let section = readme
            .split(heading)
            .nth(1)
            .unwrap_or_else(|| panic!("README.md has no {heading:?}"));
        let section = section.split("\n#### ").next().unwrap();
        // `| name | default | meaning |` rows, then the outputs in the same form.
        let rows: Vec<(String, String)> = section
            .lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| l.split_once('`'))
            .map(|(name, rest)| {
                let default = rest
                    .split('|')
                    .nth(1)
                    .unwrap_or("")
                    .trim()
                    .trim_matches('`')
                    .to_owned();
                (name.to_owned(), default)
            })
            .collect();
        let mut documented: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
        let mut declared = action.names("inputs");
        declared.extend(
            action
                .names("outputs")
                .iter()
                .map(|o| format!("outputs.{o}")),
        );
        documented.sort();
        declared.sort();
        assert_eq!(
            documented, declared,
            "README.md {heading:?} vs {}",
            action.rel
        );
        for (name, default) in &rows {
            if name.starts_with("outputs.") {
                continue;
            }
            let real = action.input_default(name);
            let real = if real.is_empty() {
                "''".to_owned()
            } else {
                real
            };
            assert_eq!(
                default, &real,
                "README.md: the default of {name} ({})",
                action.rel
            );
            assert!(
                scalar(&action.yaml["inputs"][name.as_str()]["description"])
                    .is_some_and(|d| !d.is_empty()),
                "{}: input {name} needs a description",
                action.rel
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Scenarios

/// Two runs of a job with the real sccache: the first (nothing to restore) builds cold and saves
/// SCCACHE_DIR under a key of its run; the second restores that entry (same lockfile), builds
/// warm, and saves nothing.
#[test]
fn action_cold_run_saves_and_warm_run_does_not() {
    let Some(sccache) = require_sccache("action_cold_run_saves_and_warm_run_does_not") else {
        return;
    };
    let sb = Sandbox::new();
    sb.stop_server_on_drop(sccache);
    sb.write_fixture(Fixture::Good);
    run(&mut sb.cargo(&["generate-lockfile", "--offline"]), SHORT).assert_success();
    let store = CacheStore::new(sb.data.join("cache-store"));
    let (setup, save) = (Action::load(SETUP), Action::load(SAVE));

    let mut job = Job::new(&sb, &store, "run1", "1001");
    job.sccache = Some(sccache);
    // The job's own SCCACHE_DIR is left to the action; RUSTC_WRAPPER comes from the action.
    job.unset("SCCACHE_DIR").unset("SCCACHE_IDLE_TIMEOUT");
    let bin = preinstall_shim(&job);
    let out = job.run_action(&setup, &[("key", "linux")]);
    assert_no_warnings(&job);
    let wrapper = exported_wrapper(&job);
    assert_eq!(out["wrapper"], wrapper.display().to_string());
    assert_eq!(job.env["MAYBE_SCCACHE_BIN"], bin.display().to_string());
    assert_eq!(
        job.env["CMAKE_C_COMPILER_LAUNCHER"],
        wrapper.display().to_string()
    );
    assert_eq!(
        job.env["CMAKE_CXX_COMPILER_LAUNCHER"],
        wrapper.display().to_string()
    );
    assert_eq!(job.env["CARGO_INCREMENTAL"], "0");
    assert_eq!(job.env["SCCACHE_CACHE_SIZE"], "512M");
    assert_eq!(job.env["SCCACHE_IDLE_TIMEOUT"], "0");
    let sccache_dir = PathBuf::from(&job.env["SCCACHE_DIR"]);
    assert_eq!(sccache_dir, job.runner_temp.join("sccache"));
    let key1 = out["cache-key"].clone();
    assert!(
        key1.contains("-linux-") && key1.ends_with("-1001-1"),
        "{key1}"
    );
    assert_eq!(job.env["MAYBE_SCCACHE_CACHE_KEY"], key1);
    assert_eq!(out["cache-matched-key"], "", "nothing to restore yet");
    // doctor ran and left no server behind.
    let doctor = job.step("Check the setup").run.as_ref().unwrap();
    assert!(
        doctor.out().contains("stopped again"),
        "{}",
        doctor.describe()
    );

    let r = job.build();
    r.assert_success();
    let out = job.run_action(&save, &[]);
    assert_no_warnings(&job);
    assert_eq!(
        out["saved"],
        "true",
        "a cold build is saved: {}",
        job.describe()
    );
    assert!(out["reason"].contains("cache misses"), "{out:?}");
    assert_eq!(store.keys(), std::slice::from_ref(&key1));
    let up = |job: &Job| {
        let r = run(job.command(shim_bin()).args(["status", "--json"]), SHORT);
        json_from_str(&r.out()).unwrap()["sccache"]["server_up"].as_bool()
    };
    assert_eq!(up(&job), Some(false), "the save action stops the server");
    let summary = fs::read_to_string(&job.summary).unwrap();
    assert!(summary.starts_with("### maybe-sccache"), "{summary}");
    assert!(summary.contains("| sccache stats |"), "{summary}");
    assert!(
        summary.contains("**SCCACHE_DIR**: a new cache entry is saved ("),
        "{summary}"
    );

    // The next run: a fresh runner (its own temp dir, no target dir, no server).
    fs::remove_dir_all(&sb.target).unwrap();
    let mut job = Job::new(&sb, &store, "run2", "1002");
    job.sccache = Some(sccache);
    job.unset("SCCACHE_DIR").unset("SCCACHE_IDLE_TIMEOUT");
    preinstall_shim(&job);
    let out = job.run_action(&setup, &[("key", "linux")]);
    assert_no_warnings(&job);
    assert!(out["cache-key"].ends_with("-1002-1"), "{out:?}");
    assert_eq!(
        out["cache-matched-key"], key1,
        "restored from the same lockfile's entry"
    );
    assert_eq!(out["cache-hit"], "false");
    job.build().assert_success();
    let out = job.run_action(&save, &[]);
    assert_no_warnings(&job);
    assert_eq!(
        out["saved"],
        "false",
        "a warm build saves nothing: {}",
        job.describe()
    );
    assert!(out["reason"].contains("no cache misses"), "{out:?}");
    assert_eq!(store.keys(), [key1], "no new entry");
    let summary = fs::read_to_string(&job.summary).unwrap();
    assert!(
        summary.contains("**SCCACHE_DIR**: no new cache entry (no cache misses"),
        "{summary}"
    );
}

/// Nothing works: every input is bad, maybe-sccache cannot be installed, sccache neither. Every
/// step still exits 0, each problem is a warning, and RUSTC_WRAPPER is not set.
#[test]
fn action_carries_on_when_nothing_works() {
    let sb = Sandbox::new();
    let store = CacheStore::new(sb.data.join("cache-store"));
    let (setup, save) = (Action::load(SETUP), Action::load(SAVE));
    let mut job = Job::new(&sb, &store, "broken", "7");
    // A cargo that cannot install anything (no toolchain, no crates.io, ...).
    let broken = sb.data.join("broken-bin");
    write_script(
        &broken.join("cargo"),
        "echo 'error: no network' >&2\nexit 101\n",
    );
    let path = format!(
        "{}:{}",
        broken.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    job.set("PATH", path.clone());
    let out = job.run_action(
        &setup,
        &[
            ("key", "a,b c"),
            ("restore-keys", "good-key-\nbad key,$(touch /tmp/x)\n"),
            ("max-size", "lots"),
            ("install-sccache", "maybe"),
            ("sccache-version", "1; rm -rf /"),
            ("working-directory", "no/such/dir"),
        ],
    );
    for input in [
        "max-size",
        "install-sccache",
        "sccache-version",
        "working-directory",
        "restore-keys",
    ] {
        assert_warned(&job, &format!("input {input}"));
    }
    assert_warned(&job, "cannot install maybe-sccache");
    assert_warned(&job, "RUSTC_WRAPPER is not set");
    for leaked in ["rm -rf", "touch", "a,b"] {
        assert!(
            !job.annotations().iter().any(|a| a.contains(leaked)),
            "input values must not reach the log as annotations: {:?}",
            job.annotations()
        );
    }
    assert!(!job.env.contains_key("RUSTC_WRAPPER"), "{}", job.describe());
    assert_eq!(job.env["SCCACHE_CACHE_SIZE"], "512M");
    assert_eq!(out["wrapper"], "");
    assert_eq!(out["cache-key"], "");
    let install = job.step("Install maybe-sccache").run.as_ref().unwrap();
    assert!(install.out().contains("no network"), "the log shows why");
    let sccache = job.step("Install sccache (allowed to fail)");
    assert_eq!(
        sccache.uses.as_ref().unwrap().1["tool"],
        "sccache@0.16.0",
        "a bad version is replaced before it reaches another action"
    );
    assert!(job.step("Restore SCCACHE_DIR").skipped);

    let out = job.run_action(&save, &[("threshold", "lots"), ("job-summary", "yes")]);
    assert_warned(&job, "input threshold");
    assert_eq!(out["saved"], "false");
    assert!(out["reason"].contains("not installed"), "{out:?}");
    assert!(store.keys().is_empty());
}

/// The shim runs, but its state cannot be cleared and the project has no Cargo.lock: warnings and
/// notices, a usable key, RUSTC_WRAPPER set. Builds then go through it.
#[test]
fn action_with_unclearable_state_and_no_lockfile() {
    let sb = Sandbox::new();
    sb.write_fixture(Fixture::Good);
    let _ = fs::remove_file(sb.ws.join("Cargo.lock"));
    // A root-owned state dir on a self-hosted runner; here, a directory where a file must go.
    fs::create_dir_all(sb.state.join("events/x")).unwrap();
    let store = CacheStore::new(sb.data.join("cache-store"));
    let mut job = Job::new(&sb, &store, "odd", "8");
    job.set("CMAKE_C_COMPILER_LAUNCHER", "ccache");
    preinstall_shim(&job);
    let out = job.run_action(
        &Action::load(SETUP),
        &[("key", "linux, stable"), ("install-sccache", "false")],
    );
    assert_warned(&job, "reset could not clear");
    assert!(
        job.annotations()
            .iter()
            .any(|a| a.starts_with("::notice") && a.contains("no Cargo.lock")),
        "{:?}",
        job.annotations()
    );
    let key = &out["cache-key"];
    assert!(key.contains("-linux__stable-nolock-8-1"), "{key}");
    let wrapper = exported_wrapper(&job);
    assert_eq!(
        job.env["CMAKE_C_COMPILER_LAUNCHER"], "ccache",
        "the user's launcher is kept"
    );
    assert_eq!(
        job.env["CMAKE_CXX_COMPILER_LAUNCHER"],
        wrapper.display().to_string()
    );
    // A job with a custom CARGO_HOME (the sandbox has one): the absolute wrapper still runs.
    let r = job.build();
    r.assert_success();
}

/// Multi-line outputs end at a random delimiter: an input line that is the old fixed one
/// (`MAYBE_SCCACHE_EOF`) is just a restore key, and cannot end the value and write the lines
/// after it as outputs of its own.
#[test]
fn action_multi_line_outputs_cannot_be_ended_by_an_input() {
    let sb = Sandbox::new();
    sb.write_fixture(Fixture::Good);
    let store = CacheStore::new(sb.data.join("cache-store"));
    let mut job = Job::new(&sb, &store, "delim", "51");
    preinstall_shim(&job);
    job.run_action(
        &Action::load(SETUP),
        &[
            ("install-sccache", "false"),
            ("restore-keys", "MAYBE_SCCACHE_EOF\nwrapper\nmy-key"),
        ],
    );
    assert_no_warnings(&job);
    let restore = job.step("Restore SCCACHE_DIR");
    let (_, with) = restore.uses.as_ref().expect("SCCACHE_DIR is restored");
    let keys: Vec<&str> = with["restore-keys"].lines().map(str::trim).collect();
    for k in ["MAYBE_SCCACHE_EOF", "wrapper", "my-key"] {
        assert!(keys.contains(&k), "{k} is a restore key: {keys:?}");
    }
}

/// Two jobs on one self-hosted runner's host: each gets an sccache server of its own (a port of
/// its own), and one job's save step stops its own server, not the other job's.
#[test]
fn action_gives_each_job_a_server_of_its_own() {
    let Some(sccache) = require_sccache("action_gives_each_job_a_server_of_its_own") else {
        return;
    };
    let sb = Sandbox::new();
    sb.write_fixture(Fixture::Good);
    let store = CacheStore::new(sb.data.join("cache-store"));
    let (setup, save) = (Action::load(SETUP), Action::load(SAVE));
    /// Stops the servers a failed test left running (the action sets no idle timeout).
    struct StopAll(Vec<Command>);
    impl Drop for StopAll {
        fn drop(&mut self) {
            for cmd in &mut self.0 {
                let _ = run(cmd, SHORT);
            }
        }
    }
    let mut stop_all = StopAll(Vec::new());
    let mut jobs = Vec::new();
    for (name, run_id) in [("a", "61"), ("b", "62")] {
        let mut job = Job::new(&sb, &store, name, run_id);
        job.sccache = Some(sccache);
        job.unset("SCCACHE_SERVER_PORT").unset("SCCACHE_DIR");
        preinstall_shim(&job);
        job.run_action(&setup, &[("key", name)]);
        assert_no_warnings(&job);
        jobs.push(job);
    }
    let port = |job: &Job| -> u16 {
        job.env
            .get("SCCACHE_SERVER_PORT")
            .unwrap_or_else(|| panic!("no port of its own:\n{}", job.describe()))
            .parse()
            .unwrap()
    };
    let (a, b) = (port(&jobs[0]), port(&jobs[1]));
    assert_ne!(a, b);
    for job in &jobs {
        let mut cmd = job.command(sccache);
        cmd.arg("--stop-server");
        stop_all.0.push(cmd);
    }
    // Each job's first compile starts its server, with the job's environment.
    let listening = |p: u16| std::net::TcpStream::connect(("127.0.0.1", p)).is_ok();
    for job in &jobs {
        run(job.command(sccache).arg("--start-server"), SHORT).assert_success();
    }
    assert!(listening(a) && listening(b));
    let mut a_job = jobs.remove(0);
    a_job.run_action(&save, &[("save", "false"), ("job-summary", "false")]);
    assert!(!listening(a), "the save step stops its own job's server");
    assert!(listening(b), "the save step stopped the other job's server");
}
