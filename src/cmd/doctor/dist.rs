//! sccache-dist, when sccache's config file has a `[dist]` section: is the scheduler reachable,
//! does it accept the client token, has it build servers, and can this sccache package the
//! toolchains it sends? The shim asks the scheduler itself (plain HTTP, bounded) and asks
//! sccache's server what it sees (`sccache --dist-status`, bounded), which also says whether
//! this sccache was built with the dist client at all.

use serde_json::Value;

use super::start::STOP_TIMEOUT;
use super::*;
use crate::backend::dist::{self, Dist, DistAuth, SchedulerStatus};

/// How long each request to the scheduler may take.
const SCHEDULER_ANSWER: Duration = Duration::from_secs(3);

/// What sccache's server says of its dist client (`--dist-status`).
#[derive(Debug, PartialEq, Eq)]
enum View {
    /// sccache was built without the dist client.
    NoClient,
    /// The server runs without distribution (`Disabled`), with sccache's words.
    Off(String),
    /// The server's client is not connected to the scheduler, with sccache's words.
    NotConnected(String),
    Connected(SchedulerStatus),
    /// Not asked, or no answer that could be read: why.
    Unknown(String),
}

/// The dist findings; none without a `[dist]` scheduler. `server_starts`: the server check found
/// nothing that stops sccache's server.
pub(super) fn dist_findings(config: &Config, sccache: &Path, server_starts: bool) -> Vec<Finding> {
    let Some(d) = dist::dist_config() else {
        return Vec::new();
    };
    let view = if server_starts {
        dist_status(config, sccache)
    } else {
        View::Unknown("the sccache server does not start".into())
    };
    let mut findings = vec![client(&d, sccache, &view)];
    match dist::scheduler_place(&d) {
        Ok(place) => findings.extend(scheduler(&d, &place, &view)),
        Err(why) => findings.push(scheduler_by_sccache(&d, &view, &why)),
    }
    findings
}

/// Can this sccache distribute at all, and package the toolchains it sends?
fn client(d: &Dist, sccache: &Path, view: &View) -> Finding {
    let origin = d.origin.display();
    match view {
        View::NoClient => {
            return warn(
                format!(
                    "dist: {} was built without sccache's dist-client feature, so it never \
                     sends a compile to the scheduler that [dist] in {origin} names",
                    sccache.display()
                ),
                "install an sccache built with the dist-client feature (its release binaries \
                 are; cargo install sccache --features dist-client)",
            )
        }
        View::Off(words) => {
            return warn(
                format!(
                    "dist: the running sccache server does not distribute ({words}), although \
                     [dist] in {origin} names a scheduler: it was started with another \
                     configuration"
                ),
                "run `sccache --stop-server`; the next compile starts a server with this \
                 configuration",
            )
        }
        View::Unknown(why) => {
            return info(format!(
                "dist: toolchain packaging: not known whether this sccache has the dist client \
                 ({why})"
            ))
        }
        View::NotConnected(_) | View::Connected(_) => {}
    }
    if cfg!(target_os = "linux") {
        ok(
            "dist: toolchain packaging: sccache packages the local compilers it sends to build \
            servers itself (Linux, dist-client)",
        )
    } else if d.prepackaged_toolchains == 0 {
        warn(
            format!(
                "dist: sccache packages toolchains only on Linux, and [dist] toolchains in \
                 {origin} lists none, so no compile can go remote from here"
            ),
            "list prepackaged toolchains in [dist] toolchains (see sccache's docs/Distributed.md)",
        )
    } else {
        ok(format!(
            "dist: toolchain packaging: {} prepackaged toolchain(s) in {origin}",
            d.prepackaged_toolchains
        ))
    }
}

/// The scheduler as the shim reaches it: its status, then the client token.
fn scheduler(d: &Dist, place: &dist::Place, view: &View) -> Vec<Finding> {
    let origin = d.origin.display();
    let status = match dist::scheduler_status(place, SCHEDULER_ANSWER) {
        Ok(status) => status,
        // sccache's server asks a silent scheduler for its status when it starts, for up to
        // 1,200 s: the shim's bounded start gives up, and the breaker sends calls to the compiler.
        Err(answer @ (Answer::Silent | Answer::Closed)) => {
            return vec![fail(
                format!(
                    "dist: the scheduler at {place} is unreachable: it {}; sccache's server waits \
                     for it when it starts, so the shim's bounded start gives up and calls \
                     compile without sccache",
                    answer.words()
                ),
                format!("start the scheduler, or fix scheduler_url in [dist] of {origin}"),
            )]
        }
        Err(answer) => {
            return vec![warn(
                format!(
                    "dist: the scheduler at {place} is unreachable: it {}; sccache compiles \
                     everything locally",
                    answer.words()
                ),
                format!("start the scheduler, or fix scheduler_url in [dist] of {origin}"),
            )]
        }
    };
    let mut findings = vec![servers(&place.to_string(), status)];
    // The scheduler answers the shim, yet sccache's own client is not connected: an OAuth token
    // never fetched, or a client sccache could not create.
    if let View::NotConnected(words) = view {
        findings.push(warn(
            format!("dist: sccache's server is not connected to the scheduler: {words}"),
            "run `SCCACHE_LOG=debug sccache --start-server` and read why; for an OAuth client \
             token run `sccache --dist-auth`",
        ));
    }
    findings.push(match &d.auth {
        DistAuth::Token(token) => match dist::token_accepted(place, token, SCHEDULER_ANSWER) {
            Ok(true) => ok(format!(
                "dist: the scheduler accepts the client token ([dist.auth] in {origin})"
            )),
            Ok(false) => fail(
                "dist: the scheduler refuses the client token (HTTP 401): sccache fails every \
                 compile it sends there, so the shim's breaker opens and calls compile without \
                 sccache",
                format!(
                    "set [dist.auth] token in {origin} to the token in the scheduler's \
                     [client_auth]"
                ),
            ),
            Err(answer) => info(format!(
                "dist: the client token could not be checked: the scheduler {}",
                answer.words()
            )),
        },
        DistAuth::OAuth(kind) => info(format!(
            "dist: the client token ({kind}) comes from `sccache --dist-auth`; not checked here"
        )),
    });
    findings
}

/// The build servers the scheduler counts.
fn servers(place: &str, st: SchedulerStatus) -> Finding {
    if st.num_servers == 0 {
        return warn(
            format!(
                "dist: the scheduler at {place} answers, but no build server is registered: \
                 every compile sent there comes back and compiles locally"
            ),
            "start an sccache-dist build server whose scheduler_url names this scheduler",
        );
    }
    ok(format!(
        "dist: the scheduler at {place} answers: {} build server(s), {} CPU(s), {} job(s) in \
         progress",
        st.num_servers, st.num_cpus, st.in_progress
    ))
}

/// The scheduler as sccache's server sees it, where the shim cannot ask it itself (`why`).
fn scheduler_by_sccache(d: &Dist, view: &View, why: &str) -> Finding {
    let url = crate::logging::redact_secrets(&d.scheduler_url);
    match view {
        View::Connected(st) => servers(&url, *st),
        View::NotConnected(words) => warn(
            format!("dist: sccache cannot reach the scheduler at {url}: {words}"),
            format!(
                "start the scheduler, or fix scheduler_url in [dist] of {}",
                d.origin.display()
            ),
        ),
        View::Unknown(unknown) => info(format!(
            "dist: the scheduler at {url} is not checked: {why}, and {unknown}"
        )),
        View::NoClient | View::Off(_) => info(format!(
            "dist: the scheduler at {url} is not checked: {why}"
        )),
    }
}

/// `sccache --dist-status` of this user's server. A server is started for it when none runs,
/// and stopped again, as the server check does; another user's server is not asked.
fn dist_status(config: &Config, sccache: &Path) -> View {
    let started_here = match server::listening() {
        Some(owner) if !owner.trusted() => {
            return View::Unknown("the running sccache server is another user's".into())
        }
        Some(_) => false,
        None => match server::start(sccache, config.depth, config.start_timeout, None) {
            Ok(started) => started == server::Started::Fresh,
            Err(_) => return View::Unknown("the sccache server did not start".into()),
        },
    };
    let mut cmd = Command::new(sccache);
    cmd.arg("--dist-status").stdin(Stdio::null());
    let answer = run_bounded(cmd, VERSION_TIMEOUT);
    if started_here {
        server::stop(sccache, STOP_TIMEOUT);
    }
    match answer {
        Ok(Output {
            code: Some(0),
            stdout,
            ..
        }) => serde_json::from_slice(&stdout).ok().map_or(
            View::Unknown("`sccache --dist-status` printed no JSON".into()),
            |json| read_view(&json),
        ),
        Ok(Output { code, .. }) => View::Unknown(format!("`sccache --dist-status` ended {code:?}")),
        Err(e) => View::Unknown(format!("`sccache --dist-status`: {e}")),
    }
}

/// sccache's `DistInfo` as JSON: `{"Disabled": "…"}`, `{"NotConnected": [url, "…"]}` or
/// `{"SchedulerStatus": [url, {"num_servers": …}]}`.
fn read_view(json: &Value) -> View {
    if let Some(words) = json.get("Disabled").and_then(Value::as_str) {
        // sccache's words for a build without the dist client.
        if words.contains("feature not selected") {
            return View::NoClient;
        }
        return View::Off(words.to_owned());
    }
    if let Some(words) = json.get("NotConnected").and_then(|v| v.get(1)?.as_str()) {
        return View::NotConnected(words.to_owned());
    }
    match json
        .get("SchedulerStatus")
        .and_then(|v| v.get(1))
        .and_then(SchedulerStatus::from_json)
    {
        Some(status) => View::Connected(status),
        None => View::Unknown("`sccache --dist-status` printed an answer it does not know".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sccache_dist_status_is_read() {
        assert_eq!(
            read_view(&json!({"Disabled": "dist-client feature not selected"})),
            View::NoClient
        );
        assert_eq!(
            read_view(&json!({"Disabled": "disabled"})),
            View::Off("disabled".into())
        );
        assert_eq!(
            read_view(&json!({"NotConnected": ["http://h:1/", "could not communicate"]})),
            View::NotConnected("could not communicate".into())
        );
        let status = json!({"num_servers": 1, "num_cpus": 2, "in_progress": 0});
        assert_eq!(
            read_view(&json!({"SchedulerStatus": ["http://h:1/", status]})),
            View::Connected(SchedulerStatus {
                num_servers: 1,
                num_cpus: 2,
                in_progress: 0
            })
        );
        assert!(matches!(read_view(&json!([])), View::Unknown(_)));
    }
}
