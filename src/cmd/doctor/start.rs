//! The sccache server: can it start within the shim's deadline, and does a running one store
//! its cache where this environment asks?

use super::*;

fn server_address() -> String {
    server::address().to_string()
}

/// Can the server start, and how long does it take? The same start the shim does, under the same
/// deadline. A server started here is stopped again: it would keep this command's environment, and
/// backend variables set later in a CI job (or only on the build step) would never reach it. The
/// first compile of the build starts one with the build's environment. A server that was already
/// running is left alone, and doctor says where it stores its cache.
pub(super) fn server_start(config: &Config, sccache: &Path) -> Finding {
    match server::listening() {
        // Another user's server is neither asked, stopped, nor met with a start of our own.
        Some(owner) if !owner.trusted() => {
            return fail(
                format!(
                    "server: the sccache server at {} belongs to {}, not to this user (uid \
                     {}): the shim never uses or stops it, and every call compiles directly",
                    server_address(),
                    owner.describe(),
                    server::Owner::Us.uid().unwrap_or(0)
                ),
                "set SCCACHE_SERVER_PORT to a free port, or SCCACHE_SERVER_UDS to a socket path \
                 of your own, for the build and for doctor",
            )
        }
        Some(owner) => return running_server(sccache, owner),
        None => {}
    }
    let started = Instant::now();
    let result = server::start(sccache, config.depth, config.start_timeout, None);
    let took = started.elapsed();
    let ms = took.as_millis();
    // A build started a server a moment before doctor's: that one is the build's, left running
    // and reported as any running server is.
    if let Ok(server::Started::AlreadyUp) = result {
        return running_server(sccache, server::listening().unwrap_or(server::Owner::Us));
    }
    // Where this environment's server keeps its cache, as sccache itself says (its config file
    // included), asked before it is stopped.
    let cache = match result {
        Ok(_) => cache_location(sccache).map_or(String::new(), |l| format!("; its cache: {l}")),
        Err(_) => String::new(),
    };
    let stopped = match result {
        Ok(_) => server::stop(sccache, STOP_TIMEOUT),
        Err(_) => true,
    };
    let stop_note = if stopped {
        "stopped again, so the build starts its own with the build's environment"
    } else {
        "it did not stop when asked: it keeps this command's environment"
    };
    match result {
        Ok(_) if !stopped => warn(
            format!(
                "server: started in {ms} ms ({}{cache}), but {stop_note}",
                server_address()
            ),
            "run `sccache --stop-server` before the build",
        ),
        Ok(_) if took * 2 > config.start_timeout => warn(
            format!(
                "server: started in {ms} ms, more than half of the {} s the shim allows \
                 ({}{cache}); {stop_note}",
                config.start_timeout.as_secs_f32(),
                server_address()
            ),
            format!(
                "raise MAYBE_SCCACHE_START_TIMEOUT (default {} s), or look at why the storage \
                 backend is slow",
                DEFAULT_START_TIMEOUT.as_secs()
            ),
        ),
        Ok(_) => ok(format!(
            "server: started in {ms} ms ({}{cache}) and {stop_note}",
            server_address()
        )),
        Err(reason) => fail(
            format!("server: did not start ({ms} ms): {reason}"),
            "run `SCCACHE_LOG=debug sccache --start-server` to see why; check the SCCACHE_* \
             storage settings; if it is only slow, raise MAYBE_SCCACHE_START_TIMEOUT",
        ),
    }
}

/// How long doctor waits for a server it started to stop.
pub(super) const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// A server that was already running: where does it store its cache, and is that what this
/// environment asks for? A server keeps the environment it was started with.
fn running_server(sccache: &Path, owner: server::Owner) -> Finding {
    // Whose it is, beside where it is: on a shared machine that is the first question.
    let at = format!("{}, owned by {}", server_address(), owner.describe());
    let Some(location) = cache_location(sccache) else {
        return ok(format!(
            "server: an sccache server is already running ({}); it did not say where it stores \
             its cache",
            at
        ));
    };
    let local = location.starts_with("Local disk");
    const FIX: &str =
        "run `sccache --stop-server`; the next compile starts a server with this environment";
    match backend::detect().first() {
        Some(wanted) if local => warn(
            format!(
                "server: the running sccache server ({}) stores its cache on {location}, \
                 although {} selects {} here: it was started before that was set",
                at, wanted.origin, wanted.kind
            ),
            FIX,
        ),
        None if !local => warn(
            format!(
                "server: the running sccache server ({}) stores its cache in {location}, \
                 although no remote backend is set here: it was started with another environment",
                at
            ),
            FIX,
        ),
        _ => ok(format!(
            "server: an sccache server is already running ({}); its cache: {location}",
            at
        )),
    }
}

/// sccache's `cache_location` of the running server (`Local disk: "/path"`, `Redis: …`), on one
/// line, with credentials redacted (a server started elsewhere may hold some this environment
/// does not know).
fn cache_location(sccache: &Path) -> Option<String> {
    let stats = server::stats(sccache, VERSION_TIMEOUT)?;
    stats.cache_location.as_deref().map(location_words)
}

/// sccache 0.16 words a Redis location `redis, name: redis://user:password@host:port, prefix: /`.
fn location_words(location: &str) -> String {
    crate::logging::redact_secrets(&one_line(location))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_locations_keep_no_credentials() {
        let words =
            location_words("redis, name: redis://default:s3cr3t-pw-9@127.0.0.1:6379,\n prefix: /");
        assert!(!words.contains("s3cr3t-pw-9"), "{words}");
        assert!(!words.contains('\n'), "{words}");
        assert!(words.contains("127.0.0.1:6379"), "{words}");
        assert_eq!(
            location_words("Local disk: \"/tmp/x\""),
            "Local disk: \"/tmp/x\""
        );
    }
}
