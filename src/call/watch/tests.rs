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

/// What one look is told, as plain values, and the questions it asked, in order.
struct Told {
    compiler_at_work: Option<bool>,
    stats: Option<server::Stats>,
    remote: Remote,
    probes: Vec<Vec<backend::Answer>>,
    asked: Vec<&'static str>,
}

impl Told {
    fn new(compiler_at_work: Option<bool>, errors: u64) -> Told {
        Told {
            compiler_at_work,
            stats: Some(server::Stats {
                errors,
                ..server::Stats::default()
            }),
            remote: Remote::Nothing,
            probes: vec![vec![backend::Answer::Refused]],
            asked: Vec::new(),
        }
    }
}

impl Facts for Told {
    fn server(&mut self) -> Option<u32> {
        self.asked.push("server");
        Some(42)
    }

    fn compile_at_work(&mut self, server: Option<u32>, call: u32, compiler: &str) -> Option<bool> {
        assert_eq!((server, call, compiler), (Some(42), 1, "rustc"));
        self.asked.push("compile_at_work");
        self.compiler_at_work
    }

    fn error_total(&mut self, _: &Path) -> Option<u64> {
        self.asked.push("error_total");
        self.stats.as_ref().map(|s| s.errors)
    }

    fn stats(&mut self, _: &Path) -> Option<server::Stats> {
        self.asked.push("stats");
        self.stats.clone()
    }

    fn backends(&mut self, _: Option<&str>) -> Vec<Backend> {
        self.asked.push("backends");
        vec![Backend {
            kind: "S3",
            origin: "X".into(),
            endpoints: Vec::new(),
        }]
    }

    fn remote(
        &mut self,
        _: &mut dist::Remotes,
        server: Option<u32>,
        _: bool,
        _: &[Backend],
    ) -> Remote {
        assert_eq!(server, Some(42));
        self.asked.push("remote");
        self.remote.clone()
    }

    fn probe(&mut self, _: &[Backend]) -> Vec<Vec<backend::Answer>> {
        self.asked.push("probe");
        self.probes.clone()
    }
}

#[test]
fn a_busy_look_asks_nothing_but_the_first_error_baseline() {
    let mut w = watcher(20);
    let mut told = Told::new(Some(true), 7);
    assert_eq!(w.observe(&mut told), Observation::busy());
    assert_eq!(told.asked, ["server", "compile_at_work", "error_total"]);
    assert_eq!(w.errors_at_start, Some(7));
    // Later busy looks keep the first baseline and ask the server nothing.
    let mut told = Told::new(Some(true), 9);
    assert_eq!(w.observe(&mut told), Observation::busy());
    assert_eq!(told.asked, ["server", "compile_at_work"]);
    assert_eq!(w.errors_at_start, Some(7));
}

#[test]
fn an_idle_look_asks_the_server_the_build_servers_and_the_backend() {
    let mut w = watcher(20);
    let mut told = Told::new(Some(false), 3);
    let o = w.observe(&mut told);
    assert_eq!(
        told.asked,
        [
            "server",
            "compile_at_work",
            "stats",
            "backends",
            "remote",
            "probe"
        ]
    );
    assert_eq!(o.compiler_at_work, Some(false));
    assert_eq!(o.errors, Some(3));
    assert_eq!(o.remote, Remote::Nothing);
    assert!(!o.distributing && !o.backend_answers);
    let failing = o.backend_failing.expect("every endpoint refused");
    assert!(failing.starts_with("S3 (X) refuses"), "{failing}");
    // The baseline is the judgement's to set, from the first look that has the counters.
    assert_eq!(w.errors_at_start, None);
    // The backends are read once per call.
    let mut told = Told::new(Some(false), 3);
    told.probes = vec![vec![backend::Answer::Answers]];
    let o = w.observe(&mut told);
    assert_eq!(
        told.asked,
        ["server", "compile_at_work", "stats", "remote", "probe"]
    );
    assert_eq!((o.backend_failing, o.backend_answers), (None, true));
}

#[test]
fn a_remote_compile_at_work_is_not_probed_and_sets_the_baseline() {
    let mut w = watcher(20);
    let mut told = Told::new(Some(false), 3);
    if let Some(stats) = &mut told.stats {
        stats.dist_compiles.insert("10.0.0.2:10501".into(), 1);
    }
    let build_server = Remote::Working("10.0.0.2:10501".parse().unwrap());
    told.remote = build_server.clone();
    let o = w.observe(&mut told);
    assert_eq!(
        told.asked,
        ["server", "compile_at_work", "stats", "backends", "remote"]
    );
    let expected = Observation {
        compiler_at_work: Some(false),
        errors: Some(3),
        distributing: true,
        remote: build_server,
        ..Observation::default()
    };
    assert_eq!(o, expected);
    assert_eq!(w.errors_at_start, Some(3));
    assert_eq!(w.judge(&o), Verdict::Fine);
}

#[test]
fn without_proc_no_build_server_is_looked_at() {
    let mut w = watcher(20);
    let mut told = Told::new(None, 3);
    // A build server that would count as work, were it asked.
    told.remote = Remote::Working("10.0.0.2:10501".parse().unwrap());
    let o = w.observe(&mut told);
    assert_eq!(
        told.asked,
        ["server", "compile_at_work", "stats", "backends", "probe"]
    );
    assert_eq!(o.compiler_at_work, None);
    assert_eq!(o.remote, Remote::Unknown);
    assert!(o.backend_failing.is_some());
}

/// A watch driven look by look: the watcher, what it shares with the waiting thread, and the
/// calls it asked to end.
struct Watch {
    w: Watcher,
    shared: Arc<Mutex<Shared>>,
    kills: Vec<(u32, String)>,
}

impl Watch {
    fn new() -> Watch {
        Watch {
            w: watcher(20),
            shared: Arc::default(),
            kills: Vec::new(),
        }
    }

    /// One look told `facts`; a kill, if asked for, answers `kill_works`.
    fn look(&mut self, facts: &mut impl Facts, kill_works: bool) -> bool {
        let kills = &mut self.kills;
        self.w.look(facts, &self.shared, |call, compiler| {
            kills.push((call, compiler.to_owned()));
            kill_works
        })
    }

    /// One look at a server with no compiler at work and a backend that refuses.
    fn look_idle_refused(&mut self, kill_works: bool) -> bool {
        self.look(&mut Told::new(Some(false), 0), kill_works)
    }

    fn stuck(&self) -> Option<Trip> {
        self.shared.lock().unwrap().stuck.clone()
    }

    fn watched(&self) -> Option<Watched> {
        self.shared.lock().unwrap().watched
    }
}

#[test]
fn a_finished_call_ends_the_watch_before_any_question() {
    let mut watch = Watch::new();
    watch.shared.lock().unwrap().finished = true;
    let mut told = Told::new(Some(false), 0);
    assert!(watch.look(&mut told, true));
    assert!(told.asked.is_empty(), "{:?}", told.asked);
    assert!(watch.kills.is_empty());
}

#[test]
fn a_stuck_call_is_abandoned_on_the_second_failing_look_and_its_reason_kept() {
    let mut watch = Watch::new();
    // The first look with the server idle and the backend refusing: suspect, nothing killed.
    assert!(!watch.look_idle_refused(true));
    assert!(watch.kills.is_empty());
    assert!(watch.stuck().is_none());
    // The second: the call's group is abandoned and the watch is over.
    assert!(watch.look_idle_refused(true));
    assert_eq!(watch.kills, [(1, "rustc".to_owned())]);
    let stuck = watch.stuck();
    assert!(
        matches!(stuck, Some(Trip::BackendStuck(ref why)) if why.contains("S3")),
        "{stuck:?}"
    );
}

#[test]
fn a_kill_that_meets_a_new_compile_starts_the_count_again() {
    let mut watch = Watch::new();
    assert!(!watch.look_idle_refused(false));
    // Stuck on the second look, but the kill found a compile just started: left alone.
    assert!(!watch.look_idle_refused(false));
    assert_eq!(watch.kills.len(), 1);
    assert!(watch.stuck().is_none());
    assert_eq!((watch.w.strikes, watch.w.idle_since), (0, None));
    // The count starts again: the next failing look is only suspect.
    assert!(!watch.look_idle_refused(true));
    assert_eq!(watch.kills.len(), 1);
}

/// Facts that mark the call finished while the look probes the backend: the call ended on its
/// own between the look and the verdict.
struct FinishesDuringTheLook {
    told: Told,
    shared: Arc<Mutex<Shared>>,
}

impl Facts for FinishesDuringTheLook {
    fn server(&mut self) -> Option<u32> {
        self.told.server()
    }
    fn compile_at_work(&mut self, server: Option<u32>, call: u32, compiler: &str) -> Option<bool> {
        self.told.compile_at_work(server, call, compiler)
    }
    fn error_total(&mut self, sccache: &Path) -> Option<u64> {
        self.told.error_total(sccache)
    }
    fn stats(&mut self, sccache: &Path) -> Option<server::Stats> {
        self.told.stats(sccache)
    }
    fn backends(&mut self, cache_location: Option<&str>) -> Vec<Backend> {
        self.told.backends(cache_location)
    }
    fn remote(
        &mut self,
        remotes: &mut dist::Remotes,
        server: Option<u32>,
        distributing: bool,
        backends: &[Backend],
    ) -> Remote {
        self.told.remote(remotes, server, distributing, backends)
    }
    fn probe(&mut self, backends: &[Backend]) -> Vec<Vec<backend::Answer>> {
        self.shared.lock().unwrap().finished = true;
        self.told.probe(backends)
    }
}

#[test]
fn a_call_that_finished_meanwhile_is_never_abandoned() {
    let mut watch = Watch::new();
    assert!(!watch.look_idle_refused(true));
    // Stuck by its look, but finished before the verdict: the watch ends, nothing is killed.
    let mut facts = FinishesDuringTheLook {
        told: Told::new(Some(false), 0),
        shared: Arc::clone(&watch.shared),
    };
    assert!(watch.look(&mut facts, true));
    assert!(facts.told.asked.contains(&"probe"));
    assert!(watch.kills.is_empty());
    assert!(watch.stuck().is_none());
}

#[test]
fn the_looks_keep_the_error_baseline_and_whether_every_one_saw_a_compile() {
    let mut watch = Watch::new();
    assert!(!watch.look(&mut Told::new(Some(true), 7), true));
    let first = Watched {
        errors_before: 7,
        always_compiling: true,
    };
    assert_eq!(watch.watched(), Some(first));
    // Busy again with more errors: the baseline stays the first look's.
    assert!(!watch.look(&mut Told::new(Some(true), 9), true));
    assert_eq!(watch.watched(), Some(first));
    // One idle look with the backend answering, then a busy one: not always compiling.
    let mut idle = Told::new(Some(false), 9);
    idle.probes = vec![vec![backend::Answer::Answers]];
    assert!(!watch.look(&mut idle, true));
    assert!(!watch.look(&mut Told::new(Some(true), 9), true));
    let last = watch.watched().unwrap();
    assert_eq!((last.errors_before, last.always_compiling), (7, false));
    assert!(watch.kills.is_empty());
}
