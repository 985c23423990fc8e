//! What `maybe-sccache status --json` says: the breaker, its files, and the counters.

use std::path::PathBuf;

use super::{count, json_from_str, run, Json, JsonExt, Sandbox, SHORT};

impl Sandbox {
    /// `maybe-sccache status --json`, parsed; it must exit 0 without a panic.
    pub fn status_json(&self) -> Json {
        let r = run(&mut self.shim(["status", "--json"]), SHORT);
        assert_eq!(r.code(), Some(0), "{}", r.describe());
        assert_eq!(count(&r.all(), "panicked"), 0, "{}", r.describe());
        json_from_str(&r.out())
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", r.describe()))
    }

    /// The name of this sandbox's sccache server in the state dir (its address and backend
    /// settings, hashed), as `status --json` gives it.
    pub fn server_key(&self) -> String {
        let st = self.status_json();
        st.path(&["breaker", "key"])
            .and_then(Json::as_str)
            .unwrap_or_else(|| panic!("no breaker.key in status: {st:?}"))
            .to_owned()
    }

    /// The breaker file of this sandbox's sccache server.
    pub fn breaker_file(&self) -> PathBuf {
        self.state.join(format!("breaker-{}", self.server_key()))
    }

    /// The start lock of this sandbox's sccache server.
    pub fn start_lock_file(&self) -> PathBuf {
        self.state.join(format!("start-{}.lock", self.server_key()))
    }
}

pub fn counter(status: &Json, kind: &str, reason: &str) -> u64 {
    status
        .path(&["counters", kind, reason])
        .and_then(Json::as_u64)
        .unwrap_or(0)
}

pub fn breaker_state(status: &Json) -> String {
    match status.path(&["breaker", "state"]) {
        Some(Json::String(s)) => s.clone(),
        other => panic!("breaker.state missing: {other:?}"),
    }
}

pub fn breaker_reason(status: &Json) -> String {
    match status.path(&["breaker", "last_failure", "reason"]) {
        Some(Json::String(s)) => s.clone(),
        _ => String::new(),
    }
}
