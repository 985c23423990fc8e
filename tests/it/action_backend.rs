//! The GitHub Actions example's `backend` input on the stand-in runner (`support::gha_runner`):
//! with `gha`, sccache's GitHub Actions cache backend instead of SCCACHE_DIR in actions/cache,
//! read-only unless the job may write (input `gha-write`), and a bad value falls back to `local`.

use std::collections::BTreeMap;

use crate::support::gha_runner::*;
use crate::support::*;

/// An event, its ref, extra inputs, and the SCCACHE_GHA_RW_MODE the job should get.
type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], Option<&'a str>);

const SCRIPT_STEP: &str = "Export the GitHub Actions cache service's URL and token";

/// A job of `event` on `git_ref` in a repository whose default branch is `main`, whose runner
/// gives JavaScript actions the cache service's URL and token (a port nothing listens on: doctor
/// finds it down, which changes nothing here).
fn job_on<'a>(
    sb: &'a Sandbox,
    store: &'a CacheStore,
    name: &str,
    event: &str,
    git_ref: &str,
) -> Job<'a> {
    let mut job = Job::new(sb, store, name, "4242");
    job.unset("SCCACHE_DIR").unset("SCCACHE_IDLE_TIMEOUT");
    for (k, v) in [
        ("event_name", event),
        ("ref", git_ref),
        ("event.repository.default_branch", "main"),
    ] {
        job.github.insert(k.into(), v.into());
    }
    job.node_env
        .insert("ACTIONS_RESULTS_URL".into(), "http://127.0.0.1:9/".into());
    job.node_env
        .insert("ACTIONS_RUNTIME_TOKEN".into(), "not-a-real-token".into());
    preinstall_shim(&job);
    job
}

fn sandbox() -> Sandbox {
    let sb = Sandbox::new();
    sb.write_fixture(Fixture::Good);
    run(&mut sb.cargo(&["generate-lockfile", "--offline"]), SHORT).assert_success();
    sb
}

/// No actions/cache step touched SCCACHE_DIR (the binary's own entry is another path).
fn assert_sccache_dir_untouched(job: &Job) {
    let dir = job.runner_temp.join("sccache").display().to_string();
    for step in &job.steps {
        if let Some((uses, with)) = &step.uses {
            assert!(
                !(uses.starts_with("actions/cache") && with.get("path") == Some(&dir)),
                "{uses} of SCCACHE_DIR with backend gha:\n{}",
                job.describe()
            );
        }
    }
}

/// A pull request with backend gha: the service's URL and token reach later steps through a
/// pinned actions/github-script step, sccache reads the service and never writes it, SCCACHE_DIR
/// is neither restored nor saved, and the save action only writes the summary.
#[test]
fn action_gha_backend_is_read_only_on_pull_requests() {
    let sb = sandbox();
    let store = CacheStore::new(sb.data.join("cache-store"));
    let (setup, save) = (Action::load(SETUP), Action::load(SAVE));
    let mut job = job_on(&sb, &store, "pr", "pull_request", "refs/pull/7/merge");
    let out = job.run_action(&setup, &[("key", "linux"), ("backend", "gha")]);
    assert_no_warnings(&job);
    let env = &job.env;
    assert_eq!(
        env.get("SCCACHE_GHA_ENABLED").map(String::as_str),
        Some("true"),
        "{}",
        job.describe()
    );
    assert_eq!(
        env.get("SCCACHE_GHA_RW_MODE").map(String::as_str),
        Some("READ_ONLY")
    );
    assert_eq!(env["ACTIONS_RESULTS_URL"], "http://127.0.0.1:9/");
    assert_eq!(env["ACTIONS_RUNTIME_TOKEN"], "not-a-real-token");
    assert_eq!(env["ACTIONS_CACHE_SERVICE_V2"], "on");
    exported_wrapper(&job);
    let script = job.step(SCRIPT_STEP);
    assert!(!script.skipped);
    let (uses, _) = script.uses.as_ref().unwrap();
    assert!(uses.starts_with("actions/github-script@"), "{uses}");
    assert!(job.step("Compute the cache key").skipped);
    assert!(job.step("Restore SCCACHE_DIR").skipped);
    assert_eq!(out["cache-key"], "");
    assert!(!job.env.contains_key("MAYBE_SCCACHE_CACHE_KEY"));

    let out = job.run_action(&save, &[]);
    assert_no_warnings(&job);
    assert_eq!(out["saved"], "false", "{}", job.describe());
    assert!(
        out["reason"].contains("GitHub Actions cache service"),
        "{out:?}"
    );
    assert!(job.step("Save SCCACHE_DIR").skipped);
    assert_sccache_dir_untouched(&job);
    assert!(store.keys().is_empty(), "{:?}", store.keys());
    let summary = std::fs::read_to_string(&job.summary).unwrap();
    assert!(summary.starts_with("### maybe-sccache"), "{summary}");
}

/// Which jobs write with `gha-write: auto` (the default): pushes to the default branch only;
/// `true` and `false` override it; an sccache older than 0.16.0 has no read-only mode, so the
/// job is warned and writes.
#[test]
fn action_gha_backend_writes_from_the_default_branch_only() {
    let sb = sandbox();
    let store = CacheStore::new(sb.data.join("cache-store"));
    let setup = Action::load(SETUP);
    let cases: [Case; 6] = [
        ("push", "refs/heads/main", &[], None),
        ("push", "refs/heads/topic", &[], Some("READ_ONLY")),
        ("pull_request", "refs/heads/main", &[], Some("READ_ONLY")),
        (
            "push",
            "refs/heads/main",
            &[("gha-write", "false")],
            Some("READ_ONLY"),
        ),
        (
            "pull_request",
            "refs/pull/7/merge",
            &[("gha-write", "true")],
            None,
        ),
        (
            "pull_request",
            "refs/pull/7/merge",
            &[("sccache-version", "0.15.2")],
            None,
        ),
    ];
    for (n, (event, git_ref, extra, mode)) in cases.into_iter().enumerate() {
        let mut job = job_on(&sb, &store, &format!("case{n}"), event, git_ref);
        let mut inputs: Vec<(&str, &str)> = vec![("backend", "gha")];
        inputs.extend_from_slice(extra);
        job.run_action(&setup, &inputs);
        let what = format!("{event} on {git_ref} with {extra:?}");
        assert_eq!(
            job.env.get("SCCACHE_GHA_ENABLED").map(String::as_str),
            Some("true"),
            "{what}"
        );
        assert_eq!(
            job.env.get("SCCACHE_GHA_RW_MODE").map(String::as_str),
            mode,
            "{what}\n{}",
            job.describe()
        );
        if extra.iter().any(|(k, _)| *k == "sccache-version") {
            assert_warned(&job, "older than 0.16.0");
        } else {
            assert_no_warnings(&job);
        }
        assert_sccache_dir_untouched(&job);
    }
    assert!(store.keys().is_empty());
}

/// A bad `backend` or `gha-write` value is a warning naming the input, never echoing it, and the
/// job gets today's local cache: SCCACHE_DIR keyed and restored, no cache service.
#[test]
fn action_bad_backend_falls_back_to_local() {
    let sb = sandbox();
    let store = CacheStore::new(sb.data.join("cache-store"));
    let setup = Action::load(SETUP);
    let mut job = job_on(&sb, &store, "bad", "pull_request", "refs/pull/7/merge");
    let out = job.run_action(
        &setup,
        &[
            ("key", "linux"),
            ("backend", "s3;$(id)"),
            ("gha-write", "sometimes"),
        ],
    );
    assert_warned(&job, "input backend");
    assert_warned(&job, "input gha-write");
    assert!(
        !job.annotations()
            .iter()
            .any(|a| a.contains("$(id)") || a.contains("sometimes")),
        "{:?}",
        job.annotations()
    );
    assert!(job.step(SCRIPT_STEP).skipped);
    let absent: BTreeMap<&str, Option<&String>> = [
        "SCCACHE_GHA_ENABLED",
        "SCCACHE_GHA_RW_MODE",
        "ACTIONS_RUNTIME_TOKEN",
    ]
    .into_iter()
    .map(|k| (k, job.env.get(k)))
    .collect();
    assert!(absent.values().all(Option::is_none), "{absent:?}");
    assert!(!job.step("Compute the cache key").skipped);
    assert!(
        !job.step("Restore SCCACHE_DIR").skipped,
        "{}",
        job.describe()
    );
    assert!(out["cache-key"].contains("-linux-"), "{out:?}");
    assert_eq!(job.env["MAYBE_SCCACHE_ACTION_BACKEND"], "local");
}
