//! The verdict after a slow call, beside the one during it: a call the watchdog looked at that
//! ended on its own may still have been slow because sccache's backend was failing.

use std::path::Path;
use std::time::Duration;

use super::Watched;
use crate::backend;
use crate::server;
use crate::state::Trip;

/// How long the server has to answer the statistics request after the call.
const STATS_ANSWER: Duration = Duration::from_secs(5);

/// Why the breaker opens after a finished call the watchdog looked at (`watched`), if it does:
/// when sccache's own error counters rose since the watchdog's first look, its backend is
/// failing (a dead Redis makes every call wait out read and write time-outs). The server is
/// left running for the calls still in it; the probe after the cooldown replaces it with one
/// that checks the backend afresh. `None` for a call the watchdog never had a baseline for.
pub fn after_slow_call(sccache: &Path, watched: Option<Watched>) -> Option<Trip> {
    let watched = watched?;
    let errors = server::error_total(sccache, STATS_ANSWER)?;
    judge(watched, errors, backend::remote_answers)
}

/// [`after_slow_call`]'s verdict once sccache's error total after the call is known.
fn judge(
    watched: Watched,
    errors: u64,
    remote_answers: impl FnOnce() -> Option<bool>,
) -> Option<Trip> {
    let before = watched.errors_before;
    if errors_trip(before, errors, watched.always_compiling, remote_answers) {
        return Some(Trip::BackendErrors {
            before,
            after: errors,
        });
    }
    // Whether they rose or not, the counters are worth a line in the log of a slow call.
    log::debug!(
        "sccache error counters went from {before} to {errors} during a slow call: breaker left \
         closed"
    );
    None
}

/// Whether a rise of sccache's error counters from `before` to `errors` during a slow call opens
/// the breaker. `remote_answers` says whether the remote backend answers now (`None`: the cache
/// is a local disk).
///
/// The counters are the whole server's. When every watchdog look found a compile at work, the
/// compile is what made the call slow, and the rise may be another call's error, one corrupt
/// entry (sccache 0.16 counts a cache error, then compiles it as a miss, measured) or one
/// failed write (a full Redis refuses writes and still serves hits): then a local cache, or a
/// backend that answers now, keeps the breaker closed. A call seen idle, or a remote backend
/// that does not answer, still trips it.
fn errors_trip(
    before: u64,
    errors: u64,
    always_compiling: bool,
    remote_answers: impl FnOnce() -> Option<bool>,
) -> bool {
    if errors <= before {
        return false;
    }
    if !always_compiling {
        return true;
    }
    remote_answers() == Some(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rise_of_errors_during_a_busy_compile_trips_only_a_silent_remote_backend() {
        let never = || -> Option<bool> { panic!("no probe needed") };
        // No rise: nothing to judge, and no probe.
        assert!(!errors_trip(3, 3, false, never));
        assert!(!errors_trip(3, 2, false, never));
        // A call seen idle: the rise is the backend's, whatever it is.
        assert!(errors_trip(3, 4, false, never));
        // Busy on every look: a local disk cache (one corrupt entry, another call's error) and a
        // backend that answers keep the breaker closed; a remote one that does not trips it.
        assert!(!errors_trip(3, 4, true, || None));
        assert!(!errors_trip(3, 4, true, || Some(true)));
        assert!(errors_trip(3, 4, true, || Some(false)));
    }

    #[test]
    fn after_a_slow_call_the_breaker_opens_with_the_counters_it_saw() {
        let idle = Watched {
            errors_before: 3,
            always_compiling: false,
        };
        let trip = judge(idle, 5, || None).expect("a rise seen idle trips");
        assert_eq!(
            trip.to_string(),
            "backend-errors: sccache error counters rose from 3 to 5 during a slow call"
        );
        assert_eq!(judge(idle, 3, || None), None);
        let busy = Watched {
            errors_before: 3,
            always_compiling: true,
        };
        assert_eq!(judge(busy, 4, || Some(true)), None);
        assert!(judge(busy, 4, || Some(false)).is_some());
    }
}
