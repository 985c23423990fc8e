//! The GitHub Actions example (`examples/github-actions/action.yml` and `save/action.yml`), run
//! without GitHub: each shell step's script runs with bash as the runner runs it (`-eo pipefail`),
//! with `$GITHUB_ENV`, `$GITHUB_OUTPUT`, `$GITHUB_STEP_SUMMARY` as files, and the actions it uses
//! stood in for: actions/cache by a directory of saved entries (exact key, then restore-key
//! prefixes, newest first, never overwritten), the sccache installer by a symlink to the real
//! sccache (or nothing, as a failed install).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use yaml_rust2::{Yaml, YamlLoader};

use crate::support::*;

// ---------------------------------------------------------------------------------------------
// The action files

const SETUP: &str = "examples/github-actions/action.yml";
const SAVE: &str = "examples/github-actions/save/action.yml";

struct Action {
    rel: &'static str,
    yaml: Yaml,
}

impl Action {
    fn load(rel: &'static str) -> Action {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
        let text = fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let mut docs =
            YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{rel} is not YAML: {e}"));
        assert_eq!(docs.len(), 1, "{rel}: one document");
        Action {
            rel,
            yaml: docs.remove(0),
        }
    }

    fn dir(&self) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(self.rel)
            .parent()
            .unwrap()
            .to_owned()
    }

    fn steps(&self) -> &[Yaml] {
        self.yaml["runs"]["steps"]
            .as_vec()
            .unwrap_or_else(|| panic!("{}: no runs.steps", self.rel))
    }

    /// Names of the entries of a mapping (`inputs`, `outputs`).
    fn names(&self, section: &str) -> Vec<String> {
        match &self.yaml[section] {
            Yaml::Hash(h) => h
                .keys()
                .filter_map(|k| k.as_str().map(str::to_owned))
                .collect(),
            Yaml::BadValue => Vec::new(),
            other => panic!("{}: {section} is not a mapping: {other:?}", self.rel),
        }
    }

    fn input_default(&self, name: &str) -> String {
        let input = &self.yaml["inputs"][name];
        assert!(
            !input.is_badvalue(),
            "{}: the steps use inputs.{name}, which is not declared",
            self.rel
        );
        scalar(&input["default"]).unwrap_or_default()
    }
}

/// A YAML scalar as the runner sees it: a string.
fn scalar(y: &Yaml) -> Option<String> {
    match y {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

fn step_name(step: &Yaml) -> String {
    scalar(&step["name"]).unwrap_or_else(|| format!("{step:?}"))
}

// ---------------------------------------------------------------------------------------------
// A stand-in for actions/cache

/// Saved entries: `dir/<n>` holds the files, `keys[n]` its key; newer entries come later.
struct CacheStore {
    dir: PathBuf,
    keys: RefCell<Vec<String>>,
}

impl CacheStore {
    fn new(dir: PathBuf) -> CacheStore {
        fs::create_dir_all(&dir).unwrap();
        CacheStore {
            dir,
            keys: RefCell::new(Vec::new()),
        }
    }

    fn keys(&self) -> Vec<String> {
        self.keys.borrow().clone()
    }

    /// actions/cache: the exact key, else for each restore key in order the newest entry whose
    /// key starts with it. Returns (cache-hit, matched key).
    fn restore(&self, path: &Path, key: &str, restore_keys: &[String]) -> (bool, Option<String>) {
        let keys = self.keys.borrow();
        let found = keys.iter().rposition(|k| k == key).or_else(|| {
            restore_keys
                .iter()
                .find_map(|prefix| keys.iter().rposition(|k| k.starts_with(prefix.as_str())))
        });
        let Some(n) = found else {
            return (false, None);
        };
        copy_dir(&self.dir.join(n.to_string()), path);
        (keys[n] == key, Some(keys[n].clone()))
    }

    /// actions/cache never overwrites an entry; a missing path saves nothing.
    fn save(&self, path: &Path, key: &str) {
        let mut keys = self.keys.borrow_mut();
        if keys.iter().any(|k| k == key) || !path.exists() {
            return;
        }
        copy_dir(path, &self.dir.join(keys.len().to_string()));
        keys.push(key.to_owned());
    }
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    let ok = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", from.display()))
        .arg(to)
        .status()
        .unwrap()
        .success();
    assert!(ok, "cp -a {} {}", from.display(), to.display());
}

// ---------------------------------------------------------------------------------------------
// A stand-in for the runner

/// What one step did.
struct StepRun {
    name: String,
    skipped: bool,
    /// Shell steps: the script's run.
    run: Option<Run>,
    /// `uses:` steps: the action and its evaluated `with:`.
    uses: Option<(String, BTreeMap<String, String>)>,
}

struct Job<'a> {
    sb: &'a Sandbox,
    /// The job's environment on top of the sandbox's: `$GITHUB_ENV` writes land here.
    env: BTreeMap<String, String>,
    /// Variables of the sandbox's environment the job does not have.
    removed: Vec<String>,
    runner_temp: PathBuf,
    summary: PathBuf,
    store: &'a CacheStore,
    /// What the sccache installer installs: the real sccache, or nothing (a failed install).
    sccache: Option<&'a Path>,
    /// How long one shell step may take.
    step_timeout: std::time::Duration,
    steps: Vec<StepRun>,
}

impl<'a> Job<'a> {
    fn new(sb: &'a Sandbox, store: &'a CacheStore, name: &str, run_id: &str) -> Job<'a> {
        let runner_temp = sb.data.join(format!("runner-temp-{name}"));
        fs::create_dir_all(&runner_temp).unwrap();
        let summary = runner_temp.join("step-summary.md");
        let mut env = BTreeMap::new();
        for (k, v) in [
            ("GITHUB_ACTIONS", "true"),
            ("RUNNER_OS", "Linux"),
            ("RUNNER_ARCH", "X64"),
            ("GITHUB_RUN_ID", run_id),
            ("GITHUB_RUN_ATTEMPT", "1"),
        ] {
            env.insert(k.to_owned(), v.to_owned());
        }
        env.insert("RUNNER_TEMP".into(), runner_temp.display().to_string());
        env.insert("GITHUB_WORKSPACE".into(), sb.ws.display().to_string());
        Job {
            sb,
            env,
            removed: Vec::new(),
            runner_temp,
            summary,
            store,
            sccache: None,
            step_timeout: BUILD,
            steps: Vec::new(),
        }
    }

    fn set(&mut self, k: &str, v: impl Into<String>) -> &mut Self {
        self.env.insert(k.to_owned(), v.into());
        self
    }

    fn unset(&mut self, k: &str) -> &mut Self {
        self.env.remove(k);
        self.removed.push(k.to_owned());
        self
    }

    /// A command with the job's environment.
    fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = self.sb.command(program);
        for k in &self.removed {
            cmd.env_remove(k);
        }
        cmd.envs(&self.env).current_dir(&self.sb.ws);
        cmd
    }

    /// `cargo build --offline` of the fixture with the job's environment (and so the
    /// RUSTC_WRAPPER the action exported, if it did).
    fn build(&self) -> Run {
        let mut cmd = self.command(toolchain_bin().join("cargo"));
        cmd.args(["build", "--offline"]).env_remove("RUSTC_WRAPPER");
        if let Some(w) = self.env.get("RUSTC_WRAPPER") {
            cmd.env("RUSTC_WRAPPER", w);
        }
        run(&mut cmd, BUILD)
    }

    /// Runs every step of `action` with `inputs` (the rest take their defaults) and returns the
    /// action's outputs. A step that fails without `continue-on-error` fails the test, as it
    /// would fail the job.
    fn run_action(&mut self, action: &Action, inputs: &[(&str, &str)]) -> BTreeMap<String, String> {
        let inputs: BTreeMap<String, String> = inputs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        for name in inputs.keys() {
            assert!(
                action.names("inputs").contains(name),
                "{}: no input {name}",
                action.rel
            );
        }
        let mut outputs: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for step in action.steps() {
            let env = self.env.clone();
            let ctx = Ctx {
                action,
                inputs: &inputs,
                steps: &outputs,
                env: &env,
            };
            let name = step_name(step);
            let wanted = scalar(&step["if"]).is_none_or(|cond| ctx.condition(&cond));
            if !wanted {
                self.steps.push(StepRun {
                    name,
                    skipped: true,
                    run: None,
                    uses: None,
                });
                continue;
            }
            let (run, uses, out) = if let Some(script) = scalar(&step["run"]) {
                let (run, out) = self.shell(action, step, &script, &ctx);
                (Some(run), None, out)
            } else {
                let uses = scalar(&step["uses"]).unwrap_or_else(|| panic!("{name}: no run/uses"));
                let with: BTreeMap<String, String> = match &step["with"] {
                    Yaml::Hash(h) => h
                        .iter()
                        .map(|(k, v)| {
                            let k = scalar(k).unwrap();
                            (k, ctx.substitute(&scalar(v).unwrap_or_default()))
                        })
                        .collect(),
                    _ => BTreeMap::new(),
                };
                let out = self.uses(&uses, &with);
                (None, Some((uses, with)), out)
            };
            if let Some(id) = scalar(&step["id"]) {
                outputs.insert(id, out);
            }
            self.steps.push(StepRun {
                name,
                skipped: false,
                run,
                uses,
            });
        }
        let ctx = Ctx {
            action,
            inputs: &inputs,
            steps: &outputs,
            env: &self.env,
        };
        action
            .names("outputs")
            .into_iter()
            .map(|name| {
                let value = scalar(&action.yaml["outputs"][name.as_str()]["value"])
                    .unwrap_or_else(|| panic!("{}: output {name} has no value", action.rel));
                let value = ctx.substitute(&value);
                (name, value)
            })
            .collect()
    }

    fn shell(
        &mut self,
        action: &Action,
        step: &Yaml,
        script: &str,
        ctx: &Ctx,
    ) -> (Run, BTreeMap<String, String>) {
        let name = step_name(step);
        assert_eq!(scalar(&step["shell"]).as_deref(), Some("bash"), "{name}");
        let files = self.runner_temp.join(format!("step-{}", self.steps.len()));
        fs::create_dir_all(&files).unwrap();
        let script_file = files.join("script.sh");
        write_file(&script_file, script, 0o644);
        let (output, env_file, path_file) =
            (files.join("output"), files.join("env"), files.join("path"));
        for f in [&output, &env_file, &path_file] {
            write_file(f, "", 0o644);
        }
        // The runner's own invocation of `shell: bash`.
        let mut cmd = self.command("bash");
        cmd.args(["--noprofile", "--norc", "-eo", "pipefail"])
            .arg(&script_file)
            .env("GITHUB_OUTPUT", &output)
            .env("GITHUB_ENV", &env_file)
            .env("GITHUB_PATH", &path_file)
            .env("GITHUB_STEP_SUMMARY", &self.summary)
            .env("GITHUB_ACTION_PATH", action.dir());
        if let Yaml::Hash(h) = &step["env"] {
            for (k, v) in h {
                cmd.env(
                    scalar(k).unwrap(),
                    ctx.substitute(&scalar(v).unwrap_or_default()),
                );
            }
        }
        if let Some(dir) = scalar(&step["working-directory"]) {
            cmd.current_dir(self.sb.ws.join(ctx.substitute(&dir)));
        }
        let r = run(&mut cmd, self.step_timeout);
        let tolerated = step["continue-on-error"].as_bool() == Some(true);
        assert!(
            r.code() == Some(0) || tolerated,
            "step {name:?} of {} failed, which fails the job: {}",
            action.rel,
            r.describe()
        );
        for (k, v) in parse_file_commands(&fs::read_to_string(&env_file).unwrap()) {
            self.env.insert(k, v);
        }
        let added = fs::read_to_string(&path_file).unwrap();
        assert!(
            added.is_empty(),
            "{name}: the action writes no $GITHUB_PATH"
        );
        let out = parse_file_commands(&fs::read_to_string(&output).unwrap())
            .into_iter()
            .collect();
        (r, out)
    }

    fn uses(&mut self, uses: &str, with: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        let (action, _) = uses.split_once('@').unwrap();
        let arg = |k: &str| with.get(k).cloned().unwrap_or_default();
        let mut out = BTreeMap::new();
        match action {
            "actions/cache/restore" => {
                let restore: Vec<String> = arg("restore-keys")
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(str::to_owned)
                    .collect();
                let (hit, matched) =
                    self.store
                        .restore(Path::new(&arg("path")), &arg("key"), &restore);
                if let Some(m) = matched {
                    out.insert("cache-hit".into(), hit.to_string());
                    out.insert("cache-matched-key".into(), m);
                }
            }
            "actions/cache/save" => self.store.save(Path::new(&arg("path")), &arg("key")),
            "taiki-e/install-action" => {
                assert!(arg("tool").starts_with("sccache@"), "{with:?}");
                if let Some(sccache) = self.sccache {
                    let link = self.sb.bin.join("sccache");
                    if !link.exists() {
                        self.sb.install_real_sccache(sccache);
                    }
                }
            }
            other => panic!("the test has no stand-in for {other}"),
        }
        out
    }

    /// Every `::warning …::` and `::notice …::` line the steps printed.
    fn annotations(&self) -> Vec<String> {
        self.steps
            .iter()
            .filter_map(|s| s.run.as_ref())
            .flat_map(|r| {
                let all = format!("{}\n{}", r.out(), r.err());
                all.lines()
                    .filter(|l| l.starts_with("::warning") || l.starts_with("::notice"))
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    fn step(&self, name: &str) -> &StepRun {
        self.steps
            .iter()
            .rev()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no step {name:?} ran"))
    }

    fn describe(&self) -> String {
        let mut text = String::new();
        for s in &self.steps {
            text.push_str(&format!("== {} (skipped: {})\n", s.name, s.skipped));
            if let Some(r) = &s.run {
                text.push_str(&format!("{}\n{}\n", r.out(), r.err()));
            }
            if let Some((u, w)) = &s.uses {
                text.push_str(&format!("{u} {w:?}\n"));
            }
        }
        text.push_str(&format!("env: {:?}\n", self.env));
        text
    }
}

/// `$GITHUB_OUTPUT`/`$GITHUB_ENV` syntax: `name=value` lines and `name<<DELIM` blocks.
fn parse_file_commands(text: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if let Some((name, delim)) = line.split_once("<<") {
            let mut value = Vec::new();
            for l in lines.by_ref() {
                if l == delim {
                    break;
                }
                value.push(l);
            }
            found.push((name.to_owned(), value.join("\n")));
        } else if let Some((name, value)) = line.split_once('=') {
            found.push((name.to_owned(), value.to_owned()));
        } else {
            assert!(line.is_empty(), "not a file command: {line:?}");
        }
    }
    found
}

/// The expressions the actions may use: `inputs.X`, `steps.ID.outputs.X`, `env.X`, and in `if:`
/// comparisons with `==`/`!=` joined by `&&`. Anything else fails the test, which keeps the
/// actions' expressions this simple.
struct Ctx<'a> {
    action: &'a Action,
    inputs: &'a BTreeMap<String, String>,
    steps: &'a BTreeMap<String, BTreeMap<String, String>>,
    env: &'a BTreeMap<String, String>,
}

impl Ctx<'_> {
    fn value(&self, expr: &str) -> String {
        let expr = expr.trim();
        if let Some(lit) = expr.strip_prefix('\'').and_then(|e| e.strip_suffix('\'')) {
            return lit.to_owned();
        }
        let parts: Vec<&str> = expr.split('.').collect();
        match parts.as_slice() {
            ["inputs", name] => self
                .inputs
                .get(*name)
                .cloned()
                .unwrap_or_else(|| self.action.input_default(name)),
            ["steps", id, "outputs", name] => self
                .steps
                .get(*id)
                .and_then(|o| o.get(*name))
                .cloned()
                .unwrap_or_default(),
            ["env", name] => self.env.get(*name).cloned().unwrap_or_default(),
            _ => panic!(
                "{}: the test cannot evaluate ${{{{ {expr} }}}}",
                self.action.rel
            ),
        }
    }

    fn condition(&self, cond: &str) -> bool {
        cond.split("&&").all(|c| {
            if let Some((a, b)) = c.split_once("!=") {
                self.value(a) != self.value(b)
            } else if let Some((a, b)) = c.split_once("==") {
                self.value(a) == self.value(b)
            } else {
                panic!("{}: the test cannot evaluate `if: {cond}`", self.action.rel)
            }
        })
    }

    fn substitute(&self, text: &str) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${{") {
            out.push_str(&rest[..start]);
            let end = rest[start..].find("}}").expect("unclosed ${{") + start;
            let expr = &rest[start + 3..end];
            if expr.contains("==") || expr.contains("!=") {
                out.push_str(&self.condition(expr).to_string());
            } else {
                out.push_str(&self.value(expr));
            }
            rest = &rest[end + 2..];
        }
        out.push_str(rest);
        out
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers for the scenarios

/// Puts this build of the shim where the set-up action installs it, as if a previous job had
/// built it and actions/cache restored it.
fn preinstall_shim(job: &Job) -> PathBuf {
    let bin = job.runner_temp.join("maybe-sccache/bin/maybe-sccache");
    fs::create_dir_all(bin.parent().unwrap()).unwrap();
    fs::copy(shim_bin(), &bin).unwrap();
    bin
}

fn assert_no_warnings(job: &Job) {
    let warnings: Vec<String> = job
        .annotations()
        .into_iter()
        .filter(|a| a.starts_with("::warning"))
        .collect();
    assert!(
        warnings.is_empty(),
        "no warnings expected: {warnings:#?}\n{}",
        job.describe()
    );
}

fn assert_warned(job: &Job, needle: &str) {
    assert!(
        job.annotations()
            .iter()
            .any(|a| a.starts_with("::warning") && a.contains(needle)),
        "a warning about {needle:?} expected: {:#?}\n{}",
        job.annotations(),
        job.describe()
    );
}

/// RUSTC_WRAPPER as the action exported it: an absolute path to the installed shim under the
/// name `sccache` (the name cc-rs needs to route C/C++ through it).
fn exported_wrapper(job: &Job) -> PathBuf {
    let w = job
        .env
        .get("RUSTC_WRAPPER")
        .unwrap_or_else(|| panic!("RUSTC_WRAPPER not exported:\n{}", job.describe()));
    let w = PathBuf::from(w);
    assert!(w.is_absolute(), "RUSTC_WRAPPER must be absolute: {w:?}");
    let meta = fs::metadata(&w).unwrap_or_else(|e| panic!("{w:?}: {e}"));
    assert!(meta.is_file(), "{w:?}");
    assert_eq!(w.file_name().unwrap(), "sccache", "{w:?}");
    let bin = job.runner_temp.join("maybe-sccache/bin/maybe-sccache");
    assert_eq!(
        w.canonicalize().unwrap(),
        bin.canonicalize().unwrap(),
        "the alias leads to the installed shim"
    );
    w
}

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

/// The install is isolated from everything in the job that would break `cargo install`, and the
/// installed binary is cached: the next job restores it without compiling (its cargo is broken).
/// This one compiles the shim in release mode and fetches its dependencies from crates.io into a
/// CARGO_HOME of its own, as the action does on a runner.
#[test]
fn action_installs_isolated_from_the_job_and_caches_the_binary() {
    let sb = Sandbox::new();
    sb.write_fixture(Fixture::Good);
    let store = CacheStore::new(sb.data.join("cache-store"));
    let setup = Action::load(SETUP);
    let blocker = sb.data.join("a-file");
    write_file(&blocker, "not a directory", 0o644);
    // Workspace and CARGO_HOME configs that break any build that reads them.
    let breaking = "[build]\ntarget = \"no-such-target\"\nrustflags = [\"--no-such-flag\"]\n\
                    [net]\noffline = true\n";
    write_file(&sb.ws.join(".cargo/config.toml"), breaking, 0o644);
    write_file(&sb.cargo_home.join("config.toml"), breaking, 0o644);

    let mut job = Job::new(&sb, &store, "install", "21");
    job.step_timeout = std::time::Duration::from_secs(900);
    job.set("RUSTFLAGS", "-Dwarnings --no-such-flag")
        .set("CARGO_BUILD_TARGET", "no-such-target")
        .set(
            "CARGO_TARGET_DIR",
            blocker.join("target").display().to_string(),
        )
        .set("CARGO_BUILD_RUSTC_WRAPPER", "/nonexistent/wrapper")
        .set("RUSTC_WRAPPER", "/nonexistent/wrapper")
        .set("CARGO_ENCODED_RUSTFLAGS", "--no-such-flag");
    let out = job.run_action(&setup, &[("install-sccache", "false")]);
    assert_no_warnings(&job);
    let bin = job.runner_temp.join("maybe-sccache/bin/maybe-sccache");
    let version = run(job.command(&bin).arg("--version"), SHORT);
    version.assert_success();
    assert_eq!(
        version.out(),
        format!("maybe-sccache {}\n", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(out["wrapper"], exported_wrapper(&job).display().to_string());
    let keys = store.keys();
    assert_eq!(keys.len(), 1, "the binary is cached: {keys:?}");
    let digest = keys[0]
        .strip_prefix("maybe-sccache-bin-Linux-X64-")
        .unwrap_or_else(|| panic!("keyed by runner OS and architecture: {keys:?}"));
    assert!(
        digest.len() == 16 && digest.bytes().all(|b| b.is_ascii_hexdigit()),
        "{digest}"
    );

    let install = job.step("Install maybe-sccache").run.as_ref().unwrap();
    let pin = install
        .out()
        .split("sha256 ")
        .nth(1)
        .map(|rest| rest[..64].to_owned())
        .unwrap_or_else(|| panic!("the install says the hash: {}", install.describe()));

    // The next job, with that hash pinned: its cargo cannot build anything, and it does not need
    // to.
    let mut job = Job::new(&sb, &store, "next", "22");
    let broken = sb.data.join("broken-bin");
    write_script(
        &broken.join("cargo"),
        "echo 'error: must not be called' >&2\nexit 101\n",
    );
    let path = format!(
        "{}:{}",
        broken.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    job.set("PATH", path);
    job.run_action(
        &setup,
        &[("install-sccache", "false"), ("binary-sha256", &pin)],
    );
    assert_no_warnings(&job);
    let install = job.step("Install maybe-sccache").run.as_ref().unwrap();
    assert!(
        install.out().contains("restored maybe-sccache"),
        "{}",
        install.describe()
    );
    assert!(job.step("Save the maybe-sccache binary").skipped);
    exported_wrapper(&job);
    assert_eq!(store.keys(), keys);
}

/// README's static link flags (the stand-in runner is Linux).
const STATIC: &str = "-C target-feature=+crt-static";

/// Runs the set-up action with stand-ins for `cargo` and `rustup` ahead on `PATH`. The stand-in
/// cargo records `RUSTFLAGS=<flags> <arguments>` for every call and fails with `error` when the
/// shell test `fails_if` holds; otherwise it installs the shim under test. Returns the calls.
fn install_with_stand_ins(
    sb: &Sandbox,
    job: &mut Job,
    fails_if: &str,
    error: &str,
    rustup: &str,
) -> Vec<String> {
    let calls = stand_ins(sb, job, fails_if, error, rustup);
    job.run_action(&Action::load(SETUP), &[("install-sccache", "false")]);
    assert_no_warnings(job);
    exported_wrapper(job);
    cargo_calls(&calls)
}

fn cargo_calls(calls: &Path) -> Vec<String> {
    fs::read_to_string(calls)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Puts the stand-in `cargo` and `rustup` (see `install_with_stand_ins`) ahead on the job's
/// `PATH`; returns the file the calls are recorded in.
fn stand_ins(sb: &Sandbox, job: &mut Job, fails_if: &str, error: &str, rustup: &str) -> PathBuf {
    let tools = sb.data.join("stand-in-bin");
    let calls = sb.data.join("cargo-calls");
    write_script(
        &tools.join("cargo"),
        &format!(
            "echo \"RUSTFLAGS=$RUSTFLAGS $*\" >> {calls}\n\
             if {fails_if}; then\n\
             \x20 echo {error} >&2\n\
             \x20 exit 101\n\
             fi\n\
             while [ \"$1\" != --root ]; do shift; done\n\
             mkdir -p \"$2/bin\" && cp {shim} \"$2/bin/maybe-sccache\"\n",
            calls = sh_quote(calls.as_os_str()),
            error = sh_quote(std::ffi::OsStr::new(error)),
            shim = sh_quote(std::ffi::OsStr::new(shim_bin())),
        ),
    );
    write_script(&tools.join("rustup"), rustup);
    let path = format!(
        "{}:{}",
        tools.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    job.set("PATH", path);
    calls
}

/// A job that pins a toolchain older than maybe-sccache's `rust-version`: the install is retried
/// with rustup's stable toolchain, when there is one.
#[test]
fn action_retries_an_old_toolchain_with_stable() {
    let sb = Sandbox::new();
    let store = CacheStore::new(sb.data.join("cache-store"));
    let mut job = Job::new(&sb, &store, "old", "31");
    let calls = install_with_stand_ins(
        &sb,
        &mut job,
        "[ \"$1\" != +stable ]",
        "error: rustc 1.70.0 is not supported by maybe-sccache (rust-version 1.80)",
        "[ \"$1 $2\" = 'toolchain list' ] || exit 1\n\
         echo 'stable-x86_64-unknown-linux-gnu'\n\
         echo '1.70-x86_64-unknown-linux-gnu (default)'\n",
    );
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert!(
        calls[0].starts_with(&format!("RUSTFLAGS={STATIC} install --locked --path ")),
        "{calls:?}"
    );
    assert!(
        calls[1].starts_with(&format!("RUSTFLAGS={STATIC} +stable install --locked")),
        "{calls:?}"
    );
    assert_eq!(
        store.keys().len(),
        1,
        "the binary built with stable is cached"
    );
}

/// A Linux runner whose toolchain cannot link statically (no glibc `libc.a`): the install is
/// retried without the flags, and the job gets a working (dynamically linked) shim.
#[test]
fn action_falls_back_to_a_dynamic_build_when_static_linking_fails() {
    let sb = Sandbox::new();
    let store = CacheStore::new(sb.data.join("cache-store"));
    let mut job = Job::new(&sb, &store, "nolibca", "32");
    // No stable toolchain to retry with: only the flags change.
    let calls = install_with_stand_ins(
        &sb,
        &mut job,
        "[ -n \"$RUSTFLAGS\" ]",
        "/usr/bin/ld: cannot find -lc: No such file or directory",
        "exit 1\n",
    );
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert!(
        calls[0].starts_with(&format!("RUSTFLAGS={STATIC} install --locked --path ")),
        "{calls:?}"
    );
    assert!(
        calls[1].starts_with("RUSTFLAGS= install --locked --path "),
        "{calls:?}"
    );
}

/// The binary restored from actions/cache is a program every compile runs, and whoever can write
/// the cache scope can write it. Without a pinned hash it is not even restored: the shim is built
/// from source. With `binary-sha256`, a planted binary is never run (not even for `--version`):
/// a warning, and a build from source. The genuine binary, with its hash pinned, is used.
#[test]
fn action_runs_a_cached_binary_only_with_the_pinned_hash() {
    let sb = Sandbox::new();
    let store = CacheStore::new(sb.data.join("cache-store"));
    let setup = Action::load(SETUP);
    let hash = |path: &Path| {
        let r = run(Command::new("sha256sum").arg(path), SHORT);
        r.assert_success();
        r.out()[..64].to_owned()
    };
    let genuine = hash(Path::new(shim_bin()));

    // The first job builds the shim, says its hash and caches it.
    let mut job = Job::new(&sb, &store, "first", "41");
    let calls = stand_ins(&sb, &mut job, "false", "", "exit 1\n");
    job.run_action(&setup, &[("install-sccache", "false")]);
    assert_no_warnings(&job);
    exported_wrapper(&job);
    assert_eq!(cargo_calls(&calls).len(), 1);
    let install = job.step("Install maybe-sccache").run.as_ref().unwrap();
    assert!(
        install.out().contains(&format!("sha256 {genuine}")),
        "{}",
        install.describe()
    );
    assert_eq!(store.keys().len(), 1, "the binary is cached");
    let entry = store.dir.join("0/maybe-sccache");
    assert_eq!(hash(&entry), genuine);

    // Someone who can write the cache scope swaps the entry's binary.
    let ran = sb.data.join("planted-ran");
    write_script(
        &entry,
        &format!(
            "touch {}\necho 'maybe-sccache 0.1.0'\n",
            sh_quote(ran.as_os_str())
        ),
    );
    // No pin: not restored, built from source.
    let mut job = Job::new(&sb, &store, "unpinned", "42");
    stand_ins(&sb, &mut job, "false", "", "exit 1\n");
    job.run_action(&setup, &[("install-sccache", "false")]);
    assert_no_warnings(&job);
    assert!(job.step("Restore the maybe-sccache binary").skipped);
    assert_eq!(hash(&exported_wrapper(&job)), genuine);
    assert_eq!(cargo_calls(&calls).len(), 2);
    // Pinned: the planted binary does not match, is never run, and the shim is built.
    let mut job = Job::new(&sb, &store, "pinned", "43");
    stand_ins(&sb, &mut job, "false", "", "exit 1\n");
    job.run_action(
        &setup,
        &[("install-sccache", "false"), ("binary-sha256", &genuine)],
    );
    assert_warned(&job, "does not have the sha256 of input binary-sha256");
    assert!(!ran.exists(), "the planted binary ran:\n{}", job.describe());
    assert_eq!(hash(&exported_wrapper(&job)), genuine);
    assert_eq!(cargo_calls(&calls).len(), 3);

    // The genuine binary with its hash pinned: restored, not built.
    fs::copy(shim_bin(), &entry).unwrap();
    let mut job = Job::new(&sb, &store, "restored", "44");
    stand_ins(&sb, &mut job, "false", "", "exit 1\n");
    job.run_action(
        &setup,
        &[
            ("install-sccache", "false"),
            ("binary-sha256", &genuine.to_uppercase()),
        ],
    );
    assert_no_warnings(&job);
    let install = job.step("Install maybe-sccache").run.as_ref().unwrap();
    assert!(install.out().contains("restored"), "{}", install.describe());
    assert_eq!(hash(&exported_wrapper(&job)), genuine);
    assert_eq!(cargo_calls(&calls).len(), 3, "nothing was built");
    assert!(!ran.exists());
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
