//! The tiny JSON helpers: sccache's statistics and `maybe-sccache status --json`.

/// A JSON value (sccache's statistics, `maybe-sccache status --json`).
pub type Json = serde_json::Value;

/// Parses a whole JSON document.
pub fn json_from_str(text: &str) -> Result<Json, String> {
    serde_json::from_str(text).map_err(|e| e.to_string())
}

/// Lookups on a [`Json`] value.
pub trait JsonExt {
    /// The value reached by following object keys; `None` if a key is missing or a value on the
    /// way is not an object.
    fn path(&self, keys: &[&str]) -> Option<&Json>;

    /// Sum of the numbers in an object like `{"Rust": 3, "C": 1}`.
    fn sum_counts(&self) -> u64;
}

impl JsonExt for Json {
    fn path(&self, keys: &[&str]) -> Option<&Json> {
        keys.iter().try_fold(self, |v, k| v.as_object()?.get(*k))
    }

    fn sum_counts(&self) -> u64 {
        self.as_object()
            .map_or(0, |fields| fields.values().filter_map(Json::as_u64).sum())
    }
}

#[test]
fn json_helpers_read_sccache_stats() {
    let text = r#"{"stats":{"compile_requests":5,"cache_hits":{"counts":{"Rust":3,"C":1},"adv_counts":{}},"multi_level":null,"x":[1,true,"a\"b"]},"cache_location":"Local disk: \"/tmp/x\"","version":"0.16.0"}"#;
    let v = json_from_str(text).unwrap();
    assert_eq!(
        v.path(&["stats", "cache_hits", "counts"])
            .unwrap()
            .sum_counts(),
        4
    );
    assert_eq!(
        v.path(&["stats", "compile_requests"])
            .and_then(Json::as_u64),
        Some(5)
    );
    assert_eq!(v.get("version"), Some(&Json::String("0.16.0".into())));
    assert!(json_from_str("{").is_err());
}
