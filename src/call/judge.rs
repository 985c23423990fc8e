//! Judging what a finished sccache call means: the compiler's result (replayed as it is), or
//! sccache's own failure (the call falls back). sccache says which only in words, so the words
//! are read here, leaning towards "the compiler's" whenever in doubt.

use crate::call::forward::Captured;

/// The meaning of a finished sccache call.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The compiler ran (from cache or not) and this is its exit code: replay the output, keep
    /// the code. A compile error lands here and is shown exactly once.
    Compiled(i32),
    /// The compiler was killed by this signal; sccache says so on stdout.
    CompilerKilled(i32),
    /// sccache failed on its own before the compiler's result reached us: fall back.
    SccacheFailed(&'static str),
    /// sccache refused the compiler itself (`Compiler not supported`) without running it. That is
    /// a fact about the compiler, not a failure of sccache's: compile directly, blame no one.
    Unsupported,
}

/// Judges a finished sccache call. sccache 0.16 reports its own failures as lines starting
/// `sccache: ` (`sccache: error: …`, `sccache: caused by: …`) with exit code 2, and failures of its
/// server-side pipeline as `sccache: encountered fatal error` with exit code 254. A compiler's
/// output is never made only of such lines, so requiring every line to be sccache's keeps a real
/// compile error (exit 1, or 101 for an ICE) from ever being mistaken for an sccache failure.
/// sccache's own log (`SCCACHE_LOG`, which its error message suggests) counts as sccache's words,
/// and so does a panic of the sccache client itself (exit 101, like a rustc ICE, but not rustc's).
///
/// A misjudged compile error costs a second compile whose output alone is shown; a misjudged
/// sccache failure would fail the build with sccache's words. So the rules lean towards the first.
pub fn judge(c: &Captured) -> Verdict {
    let Some(code) = c.status.code() else {
        // The sccache client itself died by a signal: nothing of the compile reached us.
        return Verdict::SccacheFailed("sccache-crashed");
    };
    if let Some(sig) = killed_by_signal(&c.stdout) {
        return Verdict::CompilerKilled(sig);
    }
    let only_sccache_lines = all_lines_are_sccache(&c.stderr) && all_lines_are_sccache(&c.stdout);
    match code {
        // `sccache: error: failed to execute compile` + `sccache: caused by: Compiler not
        // supported: "…"` (0.16), or the error line itself saying so.
        2 if only_sccache_lines && has_line_containing(&c.stderr, b"Compiler not supported") => {
            Verdict::Unsupported
        }
        2 if only_sccache_lines && has_line(&c.stderr, b"sccache: error:") => {
            Verdict::SccacheFailed("sccache-error")
        }
        254 if only_sccache_lines && has_line(&c.stderr, b"sccache: encountered fatal error") => {
            Verdict::SccacheFailed("sccache-fatal")
        }
        // `sccache: incremental compilation is prohibited: …` (0.16), `sccache: increment
        // compilation is  prohibited.` (0.10).
        1 if only_sccache_lines && has_line(&c.stdout, b"sccache: increment") => {
            Verdict::SccacheFailed("sccache-refused")
        }
        101 if sccache_panicked(&c.stderr) => Verdict::SccacheFailed("sccache-panicked"),
        // `["app"] http error status: Error 401: Fixed token mismatch` (0.19): the scheduler or a
        // build server of sccache-dist refused a request, and sccache gave up on the compile
        // instead of compiling locally. The compiler never ran.
        1 if c.stdout.is_empty() && dist_refused(&c.stderr) => {
            Verdict::SccacheFailed("sccache-dist-refused")
        }
        // The compile ran on a build server of sccache-dist and failed there, and sccache hands
        // that failure on as the compile's (mozilla/sccache#2777). It may be a real error, or
        // one only the build server's sandbox makes (a file or variable there is not). Only a
        // direct compile tells: `SccacheFailed` compiles directly and shows that output alone.
        code if code != 0 && remote_job_failed(&c.stderr) => {
            Verdict::SccacheFailed("sccache-dist-job-failed")
        }
        code => Verdict::Compiled(code),
    }
}

/// Is stderr sccache's report of a request sccache-dist refused (an HTTP 4xx from the scheduler
/// or a build server)? sccache's server writes `[<output name, quoted>] http error status: Error
/// <code>: <body>` and exit code 1, nothing else (the body may span lines). Its log may come
/// first. A compiler's stderr never begins with such a line: rustc's begins with `error`,
/// `warning` or a JSON object, a C compiler's with a file name or the compiler's own name.
fn dist_refused(stderr: &[u8]) -> bool {
    let first = first_line_after_log(stderr, |l| l.starts_with(b"sccache: "));
    let Some(line) = first else {
        return false;
    };
    let Some(rest) = line.strip_prefix(b"[\"") else {
        return false;
    };
    let marker = b"\"] http error status: Error 4";
    let Some(at) = rest.windows(marker.len()).position(|w| w == marker) else {
        return false;
    };
    // Two more digits and `: `: an HTTP client error, 400 to 499.
    let code = &rest[at + marker.len()..];
    code.len() >= 4 && code[..2].iter().all(u8::is_ascii_digit) && &code[2..4] == b": "
}

/// The first line of `stderr` that is neither sccache's log nor `skipped`.
fn first_line_after_log(stderr: &[u8], skipped: impl Fn(&[u8]) -> bool) -> Option<&[u8]> {
    let mut in_log_record = false;
    lines(stderr).find(|l| {
        if is_log_record_start(l) {
            in_log_record = true;
            return false;
        }
        // A line of sccache's own ends its log record.
        if l.starts_with(b"sccache: ") {
            in_log_record = false;
        }
        !in_log_record && !skipped(l)
    })
}

/// Is stderr a compile that failed on a build server? sccache 0.19 puts `sccache: Job failed on
/// server <address>:` before the compiler's own stderr (after its log, if any); a compiler never
/// writes that line, and never first.
fn remote_job_failed(stderr: &[u8]) -> bool {
    first_line_after_log(stderr, |_| false).is_some_and(|l| {
        l.starts_with(b"sccache: Job failed on server ") && l.ends_with(b":") && l.len() > 31
    })
}

/// sccache prints `sccache: Compiler killed by signal N` (exit 254) or `sccache: Compile
/// terminated by signal N` (exit 2) on stdout when the compiler died by a signal.
fn killed_by_signal(stdout: &[u8]) -> Option<i32> {
    stdout.split(|&b| b == b'\n').find_map(|line| {
        let rest = line
            .strip_prefix(b"sccache: Compiler killed by signal ")
            .or_else(|| line.strip_prefix(b"sccache: Compile terminated by signal "))?;
        std::str::from_utf8(rest).ok()?.trim().parse().ok()
    })
}

/// Removes sccache's signal report from stdout, so cargo sees only what the compiler wrote.
pub fn without_signal_line(stdout: &[u8]) -> Vec<u8> {
    without_lines(stdout, |line| killed_by_signal(line).is_some())
}

/// What sccache prints (then exit code and output are the compiler's) when its server went away
/// during the call and it compiled locally instead: with the server stopped or killed mid-call,
/// and with `SCCACHE_IGNORE_SERVER_IO_ERROR=1` (which the shim sets) on other lost connections.
const COMPILED_LOCALLY: [&[u8]; 2] = [
    b"sccache: warning: The server looks like it shut down unexpectedly, compiling locally instead",
    b"sccache: warning: error reading compile response from server compiling locally instead",
];

/// Removes sccache's "compiling locally instead" warnings from stderr, so cargo sees only what the
/// compiler wrote. Everything else stays byte for byte.
pub fn without_sccache_warnings(stderr: &[u8]) -> Vec<u8> {
    without_lines(stderr, |line| {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        COMPILED_LOCALLY.contains(&line)
    })
}

/// Does stderr hold one of sccache's "compiling locally instead" warnings?
pub fn compiled_locally(stderr: &[u8]) -> bool {
    lines(stderr).any(|l| COMPILED_LOCALLY.contains(&l))
}

fn without_lines(bytes: &[u8], drop: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    let mut kept = Vec::with_capacity(bytes.len());
    for line in bytes.split_inclusive(|&b| b == b'\n') {
        if !drop(line) {
            kept.extend_from_slice(line);
        }
    }
    kept
}

fn lines(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    bytes
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| !l.is_empty())
}

/// Is every line sccache's: its own `sccache: …` lines and hint, or its log? A record of sccache's
/// log (env_logger: `[<time> <LEVEL> <target>] message`) may span several lines, so the lines after
/// a record's first line belong to it until the next line of sccache's.
fn all_lines_are_sccache(bytes: &[u8]) -> bool {
    let mut in_log_record = false;
    lines(bytes).all(|l| {
        if l.starts_with(b"sccache: ") || l.starts_with(b"Run with SCCACHE_LOG") {
            in_log_record = false;
            return true;
        }
        if is_log_record_start(l) {
            in_log_record = true;
        }
        in_log_record
    })
}

/// The first line of an env_logger record as sccache writes it (`SCCACHE_LOG`,
/// `SCCACHE_LOG_MILLIS`, colours from `RUST_LOG_STYLE`): `[2026-01-02T03:04:05Z DEBUG
/// sccache::config] …`.
fn is_log_record_start(line: &[u8]) -> bool {
    let plain = without_ansi_escapes(line);
    let Some(rest) = plain.strip_prefix(b"[") else {
        return false;
    };
    let Some(end) = rest.iter().position(|&b| b == b']') else {
        return false;
    };
    let mut words = rest[..end].split(|&b| b == b' ').filter(|w| !w.is_empty());
    let (Some(time), Some(level), Some(_target)) = (words.next(), words.next(), words.next())
    else {
        return false;
    };
    let is_time = time.len() >= 20
        && time[..4].iter().all(u8::is_ascii_digit)
        && time[4] == b'-'
        && time.ends_with(b"Z");
    is_time && [&b"ERROR"[..], b"WARN", b"INFO", b"DEBUG", b"TRACE"].contains(&level)
}

/// `bytes` without ANSI escape sequences (`ESC [ … letter`).
fn without_ansi_escapes(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut rest = bytes;
    while let Some((&b, tail)) = rest.split_first() {
        rest = tail;
        if b == 0x1b && rest.first() == Some(&b'[') {
            let end = rest
                .iter()
                .position(u8::is_ascii_alphabetic)
                .map_or(rest.len(), |i| i + 1);
            rest = &rest[end..];
        } else {
            out.push(b);
        }
    }
    out
}

fn has_line_containing(bytes: &[u8], needle: &[u8]) -> bool {
    lines(bytes).any(|l| l.windows(needle.len()).any(|w| w == needle))
}

fn has_line(bytes: &[u8], prefix: &[u8]) -> bool {
    lines(bytes).any(|l| l.starts_with(prefix))
}

/// Did the sccache client itself panic? Rust prints `thread '<name>' (<id>) panicked at
/// <file>:<line>:<col>:` for any panic, a rustc ICE included. rustc's own is told apart by its
/// thread (`rustc`), its source (`compiler/rustc_…`) and its ICE report (`the compiler
/// unexpectedly panicked`, in text or in JSON); sccache's has none of these.
fn sccache_panicked(stderr: &[u8]) -> bool {
    let text = String::from_utf8_lossy(stderr);
    if text.contains("the compiler unexpectedly panicked") {
        return false;
    }
    text.lines().any(|line| {
        let Some(rest) = line.strip_prefix("thread '") else {
            return false;
        };
        let Some((thread, rest)) = rest.split_once('\'') else {
            return false;
        };
        let Some((_, location)) = rest.split_once(" panicked at ") else {
            return false;
        };
        thread != "rustc" && !location.contains("compiler/rustc_")
    })
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;
    use std::process::ExitStatus;
    use std::time::Duration;

    fn captured(code: i32, stdout: &str, stderr: &str) -> Captured {
        Captured {
            status: ExitStatus::from_raw(code << 8),
            stdout: stdout.into(),
            stderr: stderr.into(),
            elapsed: Duration::ZERO,
            watched: None,
        }
    }

    #[test]
    fn sccache_errors_fall_back() {
        let timeout = "sccache: error: Timed out waiting for server startup. Maybe the remote \
                       service is unreachable?\nRun with SCCACHE_LOG=debug SCCACHE_NO_DAEMON=1 to \
                       get more information\n";
        assert_eq!(
            judge(&captured(2, "", timeout)),
            Verdict::SccacheFailed("sccache-error")
        );
        let startup = "sccache: error: Server startup failed: cache storage failed to read: \
                       Unexpected (temporary) at read\nsccache: caused by: boom\n";
        assert_eq!(
            judge(&captured(2, "", startup)),
            Verdict::SccacheFailed("sccache-error")
        );
        let fatal = "sccache: encountered fatal error\nsccache: error: x\nsccache: caused by: y\n";
        assert_eq!(
            judge(&captured(254, "", fatal)),
            Verdict::SccacheFailed("sccache-fatal")
        );
        let refused = "sccache: incremental compilation is prohibited: Unset CARGO_INCREMENTAL \
                       to continue.\n";
        assert_eq!(
            judge(&captured(1, refused, "")),
            Verdict::SccacheFailed("sccache-refused")
        );
        let refused_by_0_10 = "sccache: increment compilation is  prohibited.\n";
        assert_eq!(
            judge(&captured(1, refused_by_0_10, "")),
            Verdict::SccacheFailed("sccache-refused")
        );
        let crashed = Captured {
            status: ExitStatus::from_raw(libc::SIGSEGV),
            ..captured(0, "", "")
        };
        assert_eq!(judge(&crashed), Verdict::SccacheFailed("sccache-crashed"));
    }

    #[test]
    fn unsupported_compiler_is_not_a_failure() {
        let text = "sccache: error: Compiler not supported: \"failed to detect\"\n";
        assert_eq!(judge(&captured(2, "", text)), Verdict::Unsupported);
        let text = "sccache: error: failed to execute compile\n\
                    sccache: caused by: Compiler not supported: \"\"\n";
        assert_eq!(judge(&captured(2, "", text)), Verdict::Unsupported);
    }

    #[test]
    fn compiler_results_are_kept() {
        let err = "error[E0308]: mismatched types\n --> src/lib.rs:1:14\n";
        assert_eq!(judge(&captured(1, "", err)), Verdict::Compiled(1));
        assert_eq!(judge(&captured(0, "", "")), Verdict::Compiled(0));
        // A compile error that mentions sccache's words is still the compiler's.
        let mixed = "error: oops\nsccache: error: not really\n";
        assert_eq!(judge(&captured(2, "", mixed)), Verdict::Compiled(2));
        assert_eq!(
            judge(&captured(101, "", "thread panicked")),
            Verdict::Compiled(101)
        );
    }

    /// sccache's client with `SCCACHE_LOG=debug` against a port held by something else
    /// (captured from sccache 0.16).
    const LOGGED_ERROR: &str = "[2026-11-28T20:33:00Z DEBUG sccache::config] Attempting to read \
        config file at \"/root/.config/sccache/config\"\n\
        [2026-11-28T20:33:00Z DEBUG sccache::config] Couldn't open config file: failed to open \
        file `/root/.config/sccache/config`: No such file or directory (os error 2)\n\
        sccache: error: failed to execute compile\n\
        sccache: caused by: Failed to send data to or receive data from server\n\
        sccache: caused by: Connection reset by peer (os error 104)\n";

    #[test]
    fn sccache_log_lines_are_sccache_words() {
        assert_eq!(
            judge(&captured(2, "", LOGGED_ERROR)),
            Verdict::SccacheFailed("sccache-error")
        );
        // With millisecond time stamps, colours, and a record that spans lines.
        let styled = "[\x1b[2m2026-11-28T20:33:00.123Z\x1b[0m \x1b[34mDEBUG\x1b[0m \
                      sccache::client] request:\n  Compile {\n    exe: \"rustc\",\n  }\n\
                      sccache: error: failed to execute compile\n";
        assert_eq!(
            judge(&captured(2, "", styled)),
            Verdict::SccacheFailed("sccache-error")
        );
        let fatal = format!("{LOGGED_ERROR}sccache: encountered fatal error\n");
        assert_eq!(
            judge(&captured(254, "", &fatal)),
            Verdict::SccacheFailed("sccache-fatal")
        );
        // Compiler output before any log record is still the compiler's.
        let mixed = format!("error: oops\n{LOGGED_ERROR}");
        assert_eq!(judge(&captured(2, "", &mixed)), Verdict::Compiled(2));
        // Lines that look like a log record but are not one.
        for not_log in [
            "[2026-11-28T20:33:00Z DEBUG] x",
            "[2026-11-28T20:33:00Z NOTE sccache] x",
            "[2026-11-28 DEBUG sccache] x",
            "[202X-11-28T20:33:00Z DEBUG sccache] x",
            "[2026/11/28T20:33:00Z DEBUG sccache] x",
            "[2026-11-28T20:33:00 DEBUG sccache] x",
            "[2026-11-28T20:33:00Z DEBUG sccache x",
            "2026-11-28T20:33:00Z DEBUG sccache] x",
            "[short DEBUG sccache] x",
        ] {
            assert!(!is_log_record_start(not_log.as_bytes()), "{not_log:?}");
            let text = format!("{not_log}\nsccache: error: x\n");
            assert_eq!(judge(&captured(2, "", &text)), Verdict::Compiled(2));
        }
        assert!(is_log_record_start(
            b"[2026-11-28T20:33:00Z WARN  sccache] x"
        ));
    }

    #[test]
    fn sccache_words_alone_are_not_enough() {
        // Each failure needs its exit code, its own line, and nothing of the compiler's.
        let fatal = "sccache: encountered fatal error\nsccache: error: x\n";
        assert_eq!(
            judge(&captured(2, "", fatal)),
            Verdict::SccacheFailed("sccache-error")
        );
        assert_eq!(judge(&captured(1, "", fatal)), Verdict::Compiled(1));
        let compiler_then_fatal = "error: x\nsccache: encountered fatal error\n";
        assert_eq!(
            judge(&captured(254, "", compiler_then_fatal)),
            Verdict::Compiled(254)
        );
        assert_eq!(
            judge(&captured(254, "", "sccache: warning: x\n")),
            Verdict::Compiled(254)
        );
        assert_eq!(
            judge(&captured(2, "", "sccache: warning: x\n")),
            Verdict::Compiled(2)
        );
        assert_eq!(
            judge(&captured(1, "sccache: x\n", "")),
            Verdict::Compiled(1)
        );
        let refused_after_output = "partial output\nsccache: incremental compilation is \
                                    prohibited\n";
        assert_eq!(
            judge(&captured(1, refused_after_output, "")),
            Verdict::Compiled(1)
        );
        // The refusal is on stdout; on stderr it is not sccache's.
        let refused = "sccache: incremental compilation is prohibited\n";
        assert_eq!(judge(&captured(1, "", refused)), Verdict::Compiled(1));
    }

    #[test]
    fn a_request_refused_by_sccache_dist_falls_back() {
        // sccache 0.19's words with a client token the scheduler refuses, and a JWT one.
        let refused = "[\"dw\"] http error status: Error 401: Fixed token mismatch";
        assert_eq!(
            judge(&captured(1, "", refused)),
            Verdict::SccacheFailed("sccache-dist-refused")
        );
        // With sccache's log before it (`SCCACHE_LOG`).
        let logged = format!("{LOGGED_ERROR}{refused}\n");
        assert_eq!(
            judge(&captured(1, "", &logged)),
            Verdict::SccacheFailed("sccache-dist-refused")
        );
        let multi = "[\"c.o\"] http error status: Error 400: bad\nrequest body\n";
        assert_eq!(
            judge(&captured(1, "", multi)),
            Verdict::SccacheFailed("sccache-dist-refused")
        );
        // Anything else is the compiler's: another exit code, output on stdout, a 5xx (sccache
        // compiles locally after those), a line of the compiler's first, or a look-alike.
        assert_eq!(judge(&captured(2, "", refused)), Verdict::Compiled(2));
        assert_eq!(judge(&captured(1, "x\n", refused)), Verdict::Compiled(1));
        for not_refused in [
            "[\"dw\"] http error status: Error 500: boom",
            "[\"dw\"] http error status: Error 4: x",
            "[\"dw\"] http error status: Error 40x: x",
            "[dw] http error status: Error 401: x",
            "error: x\n[\"dw\"] http error status: Error 401: x",
            "{\"$message_type\":\"diagnostic\"}\n[\"dw\"] http error status: Error 401: x",
            " [\"dw\"] http error status: Error 401: x",
        ] {
            assert_eq!(
                judge(&captured(1, "", not_refused)),
                Verdict::Compiled(1),
                "{not_refused:?}"
            );
        }
    }

    #[test]
    fn a_compile_that_failed_on_a_build_server_falls_back() {
        let failed = "sccache: Job failed on server 127.0.0.1:10501:\nerror: no file here\n";
        for code in [1, 101] {
            assert_eq!(
                judge(&captured(code, "", failed)),
                Verdict::SccacheFailed("sccache-dist-job-failed")
            );
        }
        let log = "[2026-12-06T20:33:00Z DEBUG sccache::config] Attempting to read config\n\
                   file at \"/root/.config/sccache/config\"\n";
        assert_eq!(
            judge(&captured(1, "", &format!("{log}{failed}"))),
            Verdict::SccacheFailed("sccache-dist-job-failed")
        );
        // A compile that passed on the build server, a line of the compiler's first, and
        // look-alikes are the compiler's.
        assert_eq!(judge(&captured(0, "", failed)), Verdict::Compiled(0));
        for not_failed in [
            "error: x\nsccache: Job failed on server 127.0.0.1:1:\n",
            "sccache: Job failed on server :\nerror: x\n",
            "sccache: Job failed on server 127.0.0.1:1 and more\nerror: x\n",
            " sccache: Job failed on server 127.0.0.1:1:\n",
        ] {
            assert_eq!(
                judge(&captured(1, "", not_failed)),
                Verdict::Compiled(1),
                "{not_failed:?}"
            );
        }
    }

    #[test]
    fn ansi_escapes() {
        assert_eq!(without_ansi_escapes(b"\x1b[2mX\x1b[0m"), b"X");
        assert_eq!(without_ansi_escapes(b"a[1mb"), b"a[1mb");
        assert_eq!(without_ansi_escapes(b"\x1bx"), b"\x1bx");
        assert_eq!(without_ansi_escapes(b"end\x1b[12"), b"end");
    }

    #[test]
    fn a_panicking_sccache_is_not_an_ice() {
        // sccache 0.16's client without a home directory.
        let sccache = "thread 'main' (23625) panicked at src/config.rs:1236:55:\n\
                       Unable to get config directory\n\
                       note: run with `RUST_BACKTRACE=1` environment variable to display a \
                       backtrace\n";
        assert_eq!(
            judge(&captured(101, "", sccache)),
            Verdict::SccacheFailed("sccache-panicked")
        );
        // sccache 0.10 prints no thread id.
        let old = "thread 'main' panicked at src/config.rs:928:55:\nUnable to get config \
                   directory\n";
        assert_eq!(
            judge(&captured(101, "", old)),
            Verdict::SccacheFailed("sccache-panicked")
        );
        assert_eq!(judge(&captured(1, "", old)), Verdict::Compiled(1));
        // rustc 1.95's ICE (`-Z treat-err-as-bug`), and variations of it.
        let ice = "thread 'rustc' (23409) panicked at /rustc-dev/5980/compiler/rustc_errors/src/\
                   lib.rs:1531:17:\naborting due to `-Z treat-err-as-bug=1`\n\n\
                   error: the compiler unexpectedly panicked. This is a bug\n";
        assert_eq!(judge(&captured(101, "", ice)), Verdict::Compiled(101));
        let other_thread = ice.replace("'rustc'", "'main'");
        assert_eq!(
            judge(&captured(101, "", &other_thread)),
            Verdict::Compiled(101)
        );
        let without_report = "thread 'main' panicked at compiler/rustc_x/src/a.rs:1:1:\nboom\n";
        assert_eq!(
            judge(&captured(101, "", without_report)),
            Verdict::Compiled(101)
        );
        let rustc_thread = "thread 'rustc' panicked at src/a.rs:1:1:\nboom\n";
        assert_eq!(
            judge(&captured(101, "", rustc_thread)),
            Verdict::Compiled(101)
        );
        for not_a_panic in ["thread 'main' exited\n", "thread main panicked at x\n", "x"] {
            assert_eq!(
                judge(&captured(101, "", not_a_panic)),
                Verdict::Compiled(101)
            );
        }
    }

    #[test]
    fn compiled_locally_warnings_are_not_replayed() {
        let warned = "sccache: warning: The server looks like it shut down unexpectedly, \
                      compiling locally instead\nwarning: unused\r\n\
                      sccache: warning: error reading compile response from server compiling \
                      locally instead\r\nend";
        assert_eq!(judge(&captured(0, "", warned)), Verdict::Compiled(0));
        assert!(compiled_locally(warned.as_bytes()));
        assert!(!compiled_locally(b"warning: unused\nsccache: warning: x\n"));
        assert_eq!(
            without_sccache_warnings(warned.as_bytes()),
            b"warning: unused\r\nend"
        );
        let kept = "sccache: warning: something else\n";
        assert_eq!(without_sccache_warnings(kept.as_bytes()), kept.as_bytes());
    }

    #[test]
    fn compiler_signals() {
        let out = "sccache: Compiler killed by signal 9\n";
        assert_eq!(judge(&captured(254, out, "")), Verdict::CompilerKilled(9));
        let out = "partial\nsccache: Compile terminated by signal 11\n";
        assert_eq!(judge(&captured(2, out, "")), Verdict::CompilerKilled(11));
        assert_eq!(without_signal_line(out.as_bytes()), b"partial\n");
    }
}
