//! A stand-in GitHub Actions runner for the action example (`examples/github-actions/action.yml`
//! and `save/action.yml`): each shell step's script runs with bash as the runner runs it
//! (`-eo pipefail`), with `$GITHUB_ENV`, `$GITHUB_OUTPUT`, `$GITHUB_STEP_SUMMARY` as files, and the
//! actions it uses stood in for: actions/cache by a directory of saved entries (exact key, then
//! restore-key prefixes, newest first, never overwritten), the sccache installer by a symlink to the
//! real sccache (or nothing, as a failed install), actions/github-script by applying its
//! `core.exportVariable('NAME', process.env.NAME || 'default')` lines.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use yaml_rust2::{Yaml, YamlLoader};

use super::{run, shim_bin, toolchain_bin, write_file, Run, Sandbox, BUILD};

// ---------------------------------------------------------------------------------------------
// The action files

pub const SETUP: &str = "examples/github-actions/action.yml";
pub const SAVE: &str = "examples/github-actions/save/action.yml";

pub struct Action {
    pub rel: &'static str,
    pub yaml: Yaml,
}

impl Action {
    pub fn load(rel: &'static str) -> Action {
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

    pub fn dir(&self) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(self.rel)
            .parent()
            .unwrap()
            .to_owned()
    }

    pub fn steps(&self) -> &[Yaml] {
        self.yaml["runs"]["steps"]
            .as_vec()
            .unwrap_or_else(|| panic!("{}: no runs.steps", self.rel))
    }

    /// Names of the entries of a mapping (`inputs`, `outputs`).
    pub fn names(&self, section: &str) -> Vec<String> {
        match &self.yaml[section] {
            Yaml::Hash(h) => h
                .keys()
                .filter_map(|k| k.as_str().map(str::to_owned))
                .collect(),
            Yaml::BadValue => Vec::new(),
            other => panic!("{}: {section} is not a mapping: {other:?}", self.rel),
        }
    }

    pub fn input_default(&self, name: &str) -> String {
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
pub fn scalar(y: &Yaml) -> Option<String> {
    match y {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

pub fn step_name(step: &Yaml) -> String {
    scalar(&step["name"]).unwrap_or_else(|| format!("{step:?}"))
}

// ---------------------------------------------------------------------------------------------
// A stand-in for actions/cache

/// Saved entries: `dir/<n>` holds the files, `keys[n]` its key; newer entries come later.
pub struct CacheStore {
    pub dir: PathBuf,
    pub keys: RefCell<Vec<String>>,
}

impl CacheStore {
    pub fn new(dir: PathBuf) -> CacheStore {
        fs::create_dir_all(&dir).unwrap();
        CacheStore {
            dir,
            keys: RefCell::new(Vec::new()),
        }
    }

    pub fn keys(&self) -> Vec<String> {
        self.keys.borrow().clone()
    }

    /// actions/cache: the exact key, else for each restore key in order the newest entry whose
    /// key starts with it. Returns (cache-hit, matched key).
    pub fn restore(
        &self,
        path: &Path,
        key: &str,
        restore_keys: &[String],
    ) -> (bool, Option<String>) {
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
    pub fn save(&self, path: &Path, key: &str) {
        let mut keys = self.keys.borrow_mut();
        if keys.iter().any(|k| k == key) || !path.exists() {
            return;
        }
        copy_dir(path, &self.dir.join(keys.len().to_string()));
        keys.push(key.to_owned());
    }
}

pub fn copy_dir(from: &Path, to: &Path) {
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
pub struct StepRun {
    pub name: String,
    pub skipped: bool,
    /// Shell steps: the script's run.
    pub run: Option<Run>,
    /// `uses:` steps: the action and its evaluated `with:`.
    pub uses: Option<(String, BTreeMap<String, String>)>,
}

pub struct Job<'a> {
    pub sb: &'a Sandbox,
    /// The job's environment on top of the sandbox's: `$GITHUB_ENV` writes land here.
    pub env: BTreeMap<String, String>,
    /// Variables of the sandbox's environment the job does not have.
    pub removed: Vec<String>,
    pub runner_temp: PathBuf,
    pub summary: PathBuf,
    pub store: &'a CacheStore,
    /// What the sccache installer installs: the real sccache, or nothing (a failed install).
    pub sccache: Option<&'a Path>,
    /// How long one shell step may take.
    pub step_timeout: std::time::Duration,
    pub steps: Vec<StepRun>,
    /// The `github` context: `event_name`, `ref`, `event.repository.default_branch`, ...
    pub github: BTreeMap<String, String>,
    /// What the runner gives JavaScript actions only (ACTIONS_RESULTS_URL, ...), not shell steps.
    pub node_env: BTreeMap<String, String>,
}

impl<'a> Job<'a> {
    pub fn new(sb: &'a Sandbox, store: &'a CacheStore, name: &str, run_id: &str) -> Job<'a> {
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
            github: BTreeMap::new(),
            node_env: BTreeMap::new(),
        }
    }

    pub fn set(&mut self, k: &str, v: impl Into<String>) -> &mut Self {
        self.env.insert(k.to_owned(), v.into());
        self
    }

    pub fn unset(&mut self, k: &str) -> &mut Self {
        self.env.remove(k);
        self.removed.push(k.to_owned());
        self
    }

    /// A command with the job's environment.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = self.sb.command(program);
        for k in &self.removed {
            cmd.env_remove(k);
        }
        cmd.envs(&self.env).current_dir(&self.sb.ws);
        cmd
    }

    /// `cargo build --offline` of the fixture with the job's environment (and so the
    /// RUSTC_WRAPPER the action exported, if it did).
    pub fn build(&self) -> Run {
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
    pub fn run_action(
        &mut self,
        action: &Action,
        inputs: &[(&str, &str)],
    ) -> BTreeMap<String, String> {
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
            let github = self.github.clone();
            let ctx = Ctx {
                action,
                inputs: &inputs,
                steps: &outputs,
                env: &env,
                github: &github,
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
            github: &self.github,
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

    pub fn shell(
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

    pub fn uses(
        &mut self,
        uses: &str,
        with: &BTreeMap<String, String>,
    ) -> BTreeMap<String, String> {
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
            "actions/github-script" => {
                for (name, value) in exported_variables(&arg("script"), &self.node_env) {
                    self.env.insert(name, value);
                }
            }
            other => panic!("the test has no stand-in for {other}"),
        }
        out
    }

    /// Every `::warning …::` and `::notice …::` line the steps printed.
    pub fn annotations(&self) -> Vec<String> {
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

    pub fn step(&self, name: &str) -> &StepRun {
        self.steps
            .iter()
            .rev()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no step {name:?} ran"))
    }

    pub fn describe(&self) -> String {
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

/// What an actions/github-script script exports: each line must be
/// `core.exportVariable('NAME', process.env.NAME || 'default');`, which keeps the script this simple.
pub fn exported_variables(
    script: &str,
    node_env: &BTreeMap<String, String>,
) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for line in script.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let args = line
            .strip_prefix("core.exportVariable('")
            .and_then(|l| l.strip_suffix(");"))
            .unwrap_or_else(|| panic!("the test cannot run this github-script line: {line}"));
        let (name, rest) = args.split_once("', process.env.").unwrap();
        let (from, default) = rest.split_once(" || ").unwrap();
        assert_eq!(name, from, "{line}");
        let default = default.trim_matches('\'');
        let value = node_env
            .get(name)
            .filter(|v| !v.is_empty())
            .cloned()
            .unwrap_or_else(|| default.to_owned());
        found.push((name.to_owned(), value));
    }
    found
}

/// `$GITHUB_OUTPUT`/`$GITHUB_ENV` syntax: `name=value` lines and `name<<DELIM` blocks.
pub fn parse_file_commands(text: &str) -> Vec<(String, String)> {
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

/// The expressions the actions may use: `inputs.X`, `steps.ID.outputs.X`, `env.X`, `github.X`
/// (empty when the test did not set it), and in `if:`
/// comparisons with `==`/`!=` joined by `&&`. Anything else fails the test, which keeps the
/// actions' expressions this simple.
pub struct Ctx<'a> {
    pub action: &'a Action,
    pub inputs: &'a BTreeMap<String, String>,
    pub steps: &'a BTreeMap<String, BTreeMap<String, String>>,
    pub env: &'a BTreeMap<String, String>,
    pub github: &'a BTreeMap<String, String>,
}

impl Ctx<'_> {
    pub fn value(&self, expr: &str) -> String {
        let expr = expr.trim();
        if let Some(lit) = expr.strip_prefix('\'').and_then(|e| e.strip_suffix('\'')) {
            return lit.to_owned();
        }
        if let Some(name) = expr.strip_prefix("github.") {
            return self.github.get(name).cloned().unwrap_or_default();
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

    pub fn condition(&self, cond: &str) -> bool {
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

    pub fn substitute(&self, text: &str) -> String {
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
pub fn preinstall_shim(job: &Job) -> PathBuf {
    let bin = job.runner_temp.join("maybe-sccache/bin/maybe-sccache");
    fs::create_dir_all(bin.parent().unwrap()).unwrap();
    fs::copy(shim_bin(), &bin).unwrap();
    bin
}

pub fn assert_no_warnings(job: &Job) {
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

pub fn assert_warned(job: &Job, needle: &str) {
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
pub fn exported_wrapper(job: &Job) -> PathBuf {
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
