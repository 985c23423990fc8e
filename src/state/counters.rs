//! The counters: one line per call in `events`, folded into totals when the file grows.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::Path;

use super::{ensure_dir, open_options, read_small_bytes, try_lock, write_atomic};

/// Above this size the events file is folded into totals by the next call that sees it.
const EVENTS_COMPACT_AT: u64 = 256 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Event {
    Forwarded,
    Bypassed,
    Fallback,
    Trip,
}

impl Event {
    fn word(self) -> &'static str {
        match self {
            Event::Forwarded => "forwarded",
            Event::Bypassed => "bypassed",
            Event::Fallback => "fallback",
            Event::Trip => "trip",
        }
    }
}

/// Counts one call. One `open` and one `write`; the directory is created on first use.
pub fn record(dir: Option<&Path>, event: Event, reason: &str) {
    let Some(dir) = dir else { return };
    let path = dir.join("events");
    let line = format!("{} {}\n", event.word(), reason);
    let open = || open_options().create(true).append(true).open(&path);
    let file = match open() {
        Err(e) if e.kind() == io::ErrorKind::NotFound && ensure_dir(dir).is_some() => open(),
        other => other,
    };
    let result = file.and_then(|mut f| {
        f.write_all(line.as_bytes())?;
        f.metadata()
    });
    match result {
        Ok(meta) if meta.len() > EVENTS_COMPACT_AT => compact_events(dir),
        Ok(_) => {}
        Err(e) => log::debug!("cannot count the call in {}: {e}", path.display()),
    }
}

/// Counters by kind, then by reason. Corrupt lines are skipped.
pub type Counters = BTreeMap<String, BTreeMap<String, u64>>;

pub fn read_counters(dir: &Path) -> Counters {
    let mut counters = Counters::new();
    let Ok(bytes) = read_small_bytes(&dir.join("events")) else {
        return counters;
    };
    let text = String::from_utf8_lossy(&bytes);
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let (Some(kind), Some(reason)) = (words.next(), words.next()) else {
            continue;
        };
        // Compacted totals are `<kind> <reason> <count>`; plain events count one.
        let count = match words.next() {
            None => 1,
            Some(n) => match n.parse::<u64>() {
                Ok(n) => n,
                Err(_) => continue,
            },
        };
        if !matches!(kind, "forwarded" | "bypassed" | "fallback" | "trip") {
            continue;
        }
        *counters
            .entry(kind.to_owned())
            .or_default()
            .entry(reason.to_owned())
            .or_default() += count;
    }
    counters
}

/// Folds the events file into one line per counter. Events appended between the read and the
/// rename are lost; counters are a diagnostic, and the lock keeps compactions from racing.
fn compact_events(dir: &Path) {
    let Some(_lock) = try_lock(dir, "compact.lock") else {
        return;
    };
    let counters = read_counters(dir);
    let mut text = String::new();
    for (kind, reasons) in &counters {
        for (reason, n) in reasons {
            text.push_str(&format!("{kind} {reason} {n}\n"));
        }
    }
    if let Err(e) = write_atomic(dir, "events", text.as_bytes()) {
        log::debug!("cannot compact counters: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn counters_round_trip_and_compact() {
        let dir = tempfile::tempdir().unwrap();
        let d = Some(dir.path());
        record(d, Event::Forwarded, "-");
        record(d, Event::Bypassed, "probe");
        record(d, Event::Bypassed, "probe");
        record(d, Event::Fallback, "not-found");
        let c = read_counters(dir.path());
        assert_eq!(c["bypassed"]["probe"], 2);
        assert_eq!(c["fallback"]["not-found"], 1);
        compact_events(dir.path());
        assert_eq!(read_counters(dir.path()), c);
        fs::write(
            dir.path().join("events"),
            b"garbage\n\xff\xfe\nbypassed x y\n",
        )
        .unwrap();
        assert!(read_counters(dir.path()).is_empty());
    }
}
