//! The watchdog's judgement, look by look.

use super::*;

fn watcher(slow_call: u64) -> Watcher {
    Watcher {
        sccache: PathBuf::from("sccache"),
        started: Instant::now() - Duration::from_secs(30),
        slow_call: Duration::from_secs(slow_call),
        call: 1,
        compiler: "rustc".into(),
        backends: None,
        errors_at_start: None,
        strikes: 0,
        idle_since: None,
        remotes: dist::Remotes::default(),
    }
}

fn obs(at_work: Option<bool>, errors: Option<u64>, failing: bool) -> Observation {
    Observation {
        compiler_at_work: at_work,
        errors,
        backend_failing: failing.then(|| "S3 at http://h:1 (x) does not answer".into()),
        ..Observation::default()
    }
}

#[test]
fn a_running_compiler_is_never_stuck() {
    let mut w = watcher(20);
    for _ in 0..10 {
        assert_eq!(w.judge(&obs(Some(true), None, true)), Verdict::Fine);
    }
}

#[test]
fn an_idle_server_with_a_failing_backend_is_stuck_on_the_second_look() {
    let mut w = watcher(20);
    assert_eq!(w.judge(&obs(Some(false), Some(0), true)), Verdict::Suspect);
    match w.judge(&obs(Some(false), Some(0), true)) {
        Verdict::Stuck(Trip::BackendStuck(why)) => assert!(why.starts_with("S3"), "{why}"),
        v => panic!("{v:?}"),
    }
    // A backend not seen failing resets the count (the idle limit is far off yet).
    let mut w = watcher(20);
    assert_eq!(w.judge(&obs(Some(false), Some(0), true)), Verdict::Suspect);
    assert_eq!(w.judge(&obs(Some(false), Some(0), false)), Verdict::Suspect);
    assert_eq!(w.judge(&obs(Some(false), Some(0), true)), Verdict::Suspect);
}

#[test]
fn rising_errors_count_only_with_an_idle_server() {
    let mut w = watcher(20);
    assert_eq!(w.judge(&obs(Some(false), Some(3), false)), Verdict::Suspect);
    assert_eq!(w.judge(&obs(Some(false), Some(4), false)), Verdict::Suspect);
    assert!(matches!(
        w.judge(&obs(Some(false), Some(5), false)),
        Verdict::Stuck(_)
    ));
    let mut w = watcher(20);
    assert_eq!(w.judge(&obs(None, Some(3), false)), Verdict::Fine);
    assert_eq!(w.judge(&obs(None, Some(9), false)), Verdict::Fine);
}

#[test]
fn without_proc_three_failing_looks_past_the_slow_call_mark() {
    let mut w = watcher(20);
    assert_eq!(w.judge(&obs(None, Some(0), true)), Verdict::Suspect);
    assert_eq!(w.judge(&obs(None, Some(0), true)), Verdict::Suspect);
    assert!(matches!(
        w.judge(&obs(None, Some(0), true)),
        Verdict::Stuck(_)
    ));
    let mut w = watcher(60);
    for _ in 0..5 {
        assert_eq!(w.judge(&obs(None, Some(0), true)), Verdict::Suspect);
    }
}

#[test]
fn a_silent_server_is_hung_only_past_the_slow_call_mark() {
    let mut w = watcher(60);
    assert_eq!(w.judge(&obs(Some(false), None, false)), Verdict::Suspect);
    let mut w = watcher(20);
    assert!(matches!(
        w.judge(&obs(Some(false), None, false)),
        Verdict::Stuck(Trip::Hung(_))
    ));
}

fn idle(w: &mut Watcher, answers: bool, distributing: bool) -> Verdict {
    let o = Observation {
        compiler_at_work: Some(false),
        errors: Some(0),
        backend_answers: answers,
        distributing,
        ..Observation::default()
    };
    w.judge(&o)
}

#[test]
fn an_idle_server_is_abandoned_after_the_idle_limit_whatever_the_probe_says() {
    let mut w = watcher(20);
    // A backend the shim cannot probe: the reason still names it.
    w.backends = Some(vec![Backend {
        kind: "Azure",
        origin: "SCCACHE_AZURE_CONNECTION_STRING".into(),
        endpoints: Vec::new(),
    }]);
    assert_eq!(idle(&mut w, false, false), Verdict::Suspect);
    w.idle_since = Some(Instant::now() - IDLE_LIMIT);
    match idle(&mut w, false, false) {
        Verdict::Stuck(Trip::BackendStuck(why)) => {
            assert!(why.contains("gave no verdict"), "{why}");
            assert!(
                why.contains("the backend (Azure (SCCACHE_AZURE_CONNECTION_STRING))"),
                "{why}"
            );
        }
        v => panic!("{v:?}"),
    }
    // A backend that answers gives more patience, within a bound.
    let mut w = watcher(20);
    w.idle_since = Some(Instant::now() - IDLE_LIMIT);
    assert_eq!(idle(&mut w, true, false), Verdict::Suspect);
    w.idle_since = Some(Instant::now() - IDLE_LIMIT_ANSWERING);
    match idle(&mut w, true, false) {
        Verdict::Stuck(Trip::BackendStuck(why)) => {
            assert!(why.contains("answers its probe"), "{why}")
        }
        v => panic!("{v:?}"),
    }
}

#[test]
fn the_idle_limit_needs_a_server_seen_idle_and_no_remote_compiles() {
    let mut w = watcher(20);
    w.idle_since = Some(Instant::now() - Duration::from_secs(600));
    assert_eq!(idle(&mut w, false, true), Verdict::Fine);
    let unknown = Observation {
        compiler_at_work: None,
        errors: Some(0),
        ..Observation::default()
    };
    assert_eq!(w.judge(&unknown), Verdict::Fine);
    // A compiler at work ends the idle time.
    assert_eq!(w.judge(&obs(Some(true), None, false)), Verdict::Fine);
    assert_eq!(idle(&mut w, false, false), Verdict::Suspect);
}

#[test]
fn a_backend_fails_only_when_every_endpoint_fails() {
    use backend::Answer::*;
    let b = |kind| Backend {
        kind,
        origin: "X".into(),
        endpoints: Vec::new(),
    };
    let two = [b("S3"), b("Redis")];
    let (failing, answering) = read_probes(&two[..1], &[vec![Silent, Refused]]);
    assert!(failing.is_some_and(|w| w.starts_with("S3 (X) ")));
    assert!(!answering);
    assert_eq!(
        read_probes(&two[..1], &[vec![Silent, Answers]]),
        (None, true)
    );
    assert_eq!(read_probes(&two[..1], &[vec![]]), (None, false));
    let unknown = Unknown("proxied".into());
    assert_eq!(read_probes(&two[..1], &[vec![unknown]]), (None, false));
    let (failing, answering) = read_probes(&two, &[vec![Answers], vec![Refused]]);
    assert!(failing.is_some_and(|w| w.starts_with("Redis (X) ")));
    assert!(answering);
}

#[test]
fn limits_hold_exactly_at_their_mark() {
    let o = obs(Some(false), None, false);
    let mut w = watcher(20);
    let at = w.started + Duration::from_secs(20);
    assert!(matches!(w.judge_at(&o, at), Verdict::Stuck(Trip::Hung(_))));
    let mut w = watcher(20);
    let before = w.started + Duration::from_secs(20) - Duration::from_millis(1);
    assert_eq!(w.judge_at(&o, before), Verdict::Suspect);

    let idle = Observation {
        compiler_at_work: Some(false),
        errors: Some(0),
        ..Observation::default()
    };
    let mut w = watcher(20);
    let first = Instant::now();
    assert_eq!(w.judge_at(&idle, first), Verdict::Suspect);
    assert_eq!(
        w.judge_at(&idle, first + IDLE_LIMIT - Duration::from_millis(1)),
        Verdict::Suspect
    );
    assert!(matches!(
        w.judge_at(&idle, first + IDLE_LIMIT),
        Verdict::Stuck(_)
    ));
}

#[test]
fn a_busy_look_says_a_compiler_is_at_work() {
    let busy = Observation::busy();
    assert_eq!(busy.compiler_at_work, Some(true));
    assert_eq!(watcher(20).judge(&busy), Verdict::Fine);
}
