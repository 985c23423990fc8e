//! Fake programs for faults the real ones cannot show: fake sccache scripts (and the texts the
//! real sccache prints when it fails), fake compilers, a wrapper around the real rustc, and one
//! timed call of a fake compiler through the shim.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{
    cacheable_args, run, sh_quote, toolchain_rustc, write_file, write_script, Sandbox, SHORT,
};

/// What sccache 0.16 prints when its server cannot be started in time (exit code 2).
pub const SCCACHE_ERROR_TEXT: &str = "sccache: error: Timed out waiting for server startup. \
     Maybe the remote service is unreachable?\n\
     Run with SCCACHE_LOG=debug SCCACHE_NO_DAEMON=1 to get more information\n";

/// What sccache 0.16 prints when its server dies in the middle of a request (exit code 254).
pub const SCCACHE_FATAL_TEXT: &str = "sccache: encountered fatal error\n\
     sccache: error: Failed to send data to or receive data from server\n\
     sccache: caused by: Failed to read response header\n\
     sccache: caused by: failed to fill whole buffer\n";

/// How a fake compiler ends.
#[derive(Clone, Copy)]
pub enum Ending {
    Exit(i32),
    /// Kills itself with this signal (a name for `kill -<NAME>`).
    Signal(&'static str),
}

/// A fake compiler script: writes fixed bytes to stdout and stderr, records its arguments.
pub struct FakeRustc {
    pub path: PathBuf,
    argv: PathBuf,
    calls: PathBuf,
}

/// The arguments of a shim call of `fake` on a one-file library, `victim.rs`.
pub fn fake_call(fake: &FakeRustc) -> Vec<OsString> {
    let mut args = vec![fake.path.clone().into_os_string()];
    for a in [
        "--crate-name",
        "victim",
        "--crate-type",
        "lib",
        "--emit=link",
        "victim.rs",
    ] {
        args.push(a.into());
    }
    args
}

impl FakeRustc {
    /// The arguments of the last call, byte for byte.
    pub fn argv(&self) -> Vec<Vec<u8>> {
        let raw = fs::read(&self.argv).unwrap_or_default();
        let mut args: Vec<Vec<u8>> = raw.split(|&b| b == 0).map(<[u8]>::to_vec).collect();
        // The recording ends with a NUL, which leaves one empty piece at the end.
        args.pop();
        args
    }

    pub fn calls(&self) -> usize {
        fs::read_to_string(&self.calls)
            .map(|s| s.lines().count())
            .unwrap_or(0)
    }
}

/// Kinds of fake sccache. Each appends its arguments (joined by spaces) to a calls file, one
/// line per call, sccache's own commands (`--start-server`, `--show-stats`, …) included.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FakeSccache {
    /// Every call (also `--start-server`) prints sccache's real server-start error, exits 2.
    ErrorText,
    /// `--start-server` and the like succeed; a compile prints sccache's error text, exits 2.
    ErrorTextOnCompile,
    /// `--start-server` and the like succeed; a compile prints sccache's "encountered fatal
    /// error" report and exits 254.
    Fatal,
    /// `--start-server` and the like succeed; a compile kills sccache with SIGSEGV.
    Segv,
    /// `--start-server` and the like succeed; a compile runs the compiler (`exec "$@"`), like a
    /// healthy sccache would.
    Healthy,
}

impl Sandbox {
    /// The file a fake sccache appends one line per call to.
    pub fn sccache_calls_file(&self) -> PathBuf {
        self.data.join("sccache-calls")
    }

    /// The calls a fake sccache recorded, one line each (its arguments joined by spaces).
    pub fn sccache_calls(&self) -> Vec<String> {
        let raw = fs::read(self.sccache_calls_file()).unwrap_or_default();
        String::from_utf8_lossy(&raw)
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// The compile calls a fake sccache recorded (its own `--…` commands left out).
    pub fn sccache_compiles(&self) -> Vec<String> {
        let mut calls = self.sccache_calls();
        calls.retain(|c| !c.starts_with('-'));
        calls
    }

    /// Writes a fake sccache script at `path` (mode 0755).
    pub fn fake_sccache_at(&self, path: &Path, kind: FakeSccache) {
        let calls = sh_quote(self.sccache_calls_file().as_os_str());
        let record = format!("printf '%s\\n' \"$*\" >> {calls}\n");
        let own_commands_succeed = "case \"$1\" in -*) exit 0 ;; esac\n";
        let error_text = format!(
            "printf '%s' {} >&2\nexit 2\n",
            sh_quote(OsStr::new(SCCACHE_ERROR_TEXT))
        );
        let body = match kind {
            FakeSccache::ErrorText => error_text,
            FakeSccache::ErrorTextOnCompile => format!("{own_commands_succeed}{error_text}"),
            FakeSccache::Fatal => format!(
                "{own_commands_succeed}printf '%s' {} >&2\nexit 254\n",
                sh_quote(OsStr::new(SCCACHE_FATAL_TEXT))
            ),
            FakeSccache::Segv => {
                format!("{own_commands_succeed}ulimit -c 0\nkill -SEGV $$\nexit 99\n")
            }
            FakeSccache::Healthy => format!("{own_commands_succeed}exec \"$@\"\n"),
        };
        write_script(path, &format!("{record}{body}"));
    }

    /// A fake sccache named `sccache` in the bin dir.
    pub fn fake_sccache(&self, kind: FakeSccache) -> PathBuf {
        let path = self.bin.join("sccache");
        self.fake_sccache_at(&path, kind);
        path
    }

    /// A fake compiler at `path` that writes `stdout` and `stderr` byte for byte, records its
    /// arguments and ends as told.
    pub fn fake_rustc_at(
        &self,
        path: &Path,
        stdout: &[u8],
        stderr: &[u8],
        ending: Ending,
    ) -> FakeRustc {
        let n = self.fakes.get();
        self.fakes.set(n + 1);
        let base = self.data.join(format!("fake-rustc-{n}"));
        let file = |ext: &str| base.with_extension(ext);
        write_file(&file("out"), stdout, 0o644);
        write_file(&file("err"), stderr, 0o644);
        let q = |ext: &str| sh_quote(file(ext).as_os_str());
        let end = match ending {
            Ending::Exit(code) => format!("exit {code}\n"),
            Ending::Signal(sig) => format!("kill -{sig} $$\nexit 99\n"),
        };
        write_script(
            path,
            &format!(
                "ulimit -c 0\n\
                 echo call >> {calls}\n\
                 : > {argv}\n\
                 for a in \"$@\"; do printf '%s\\000' \"$a\" >> {argv}; done\n\
                 cat {out}\n\
                 cat {err} >&2\n\
                 {end}",
                calls = q("calls"),
                argv = q("argv"),
                out = q("out"),
                err = q("err"),
            ),
        );
        FakeRustc {
            path: path.to_owned(),
            argv: file("argv"),
            calls: file("calls"),
        }
    }

    /// A fake compiler in the data dir (not on `PATH`).
    pub fn fake_rustc(&self, stdout: &[u8], stderr: &[u8], ending: Ending) -> FakeRustc {
        let n = self.fakes.get();
        let path = self.data.join(format!("rustc-{n}"));
        self.fake_rustc_at(&path, stdout, stderr, ending)
    }

    /// A compiler for the real sccache: the toolchain's rustc behind a script that runs
    /// `on_compile` (shell code; `$RUSTC` is the real rustc and `"$@"` the arguments) instead
    /// of plain rustc for the real compile only: the call emitting `link`, as sccache passes it,
    /// not asking for `--print`. sccache's probes and its dep-info pass reach rustc unchanged.
    pub fn rustc_wrapper(&self, name: &str, on_compile: &str) -> PathBuf {
        let path = self.data.join(name);
        write_script(
            &path,
            &format!(
                "RUSTC={rustc}\n\
                 prev=; compile=; probe=\n\
                 for a in \"$@\"; do\n\
                 case \"$a\" in --print*) probe=1 ;; --emit=*link*) compile=1 ;; esac\n\
                 case \"$prev\" in --emit) case \"$a\" in *link*) compile=1 ;; esac ;; esac\n\
                 prev=$a\n\
                 done\n\
                 if [ -n \"$compile\" ] && [ -z \"$probe\" ]; then\n\
                 {on_compile}\n\
                 fi\n\
                 exec \"$RUSTC\" \"$@\"\n",
                rustc = sh_quote(toolchain_rustc().as_os_str()),
            ),
        );
        path
    }
}

/// One cacheable call of a fake compiler through the shim, timed. It must pass with the
/// compiler's output, byte for byte.
pub fn timed_call(sb: &Sandbox) -> Duration {
    let fake = sb.fake_rustc(b"out\n", b"err\n", Ending::Exit(0));
    let mut args = vec![fake.path.clone().into_os_string()];
    args.extend(cacheable_args("src/lib.rs", &sb.data));
    let started = Instant::now();
    let r = run(&mut sb.shim(args), SHORT);
    let took = started.elapsed();
    r.assert_success();
    assert!(
        r.stdout == b"out\n" && r.stderr == b"err\n",
        "{}",
        r.describe()
    );
    assert_eq!(fake.calls(), 1, "the compiler must run exactly once");
    took
}
