//! Ending signals and a forwarded call, with a real process tree: the shim, a fake sccache client
//! in its own process group (the real client's compile runs in its server, out of the shim's
//! reach), and a compiler that runs until it is stopped.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

/// A fake sccache whose compile runs the compiler as its own child (like the real client does
/// with `SCCACHE_NO_DAEMON`-less local compiles), and a compiler that records its process id and
/// sleeps until a release file appears.
struct Tree {
    sb: Sandbox,
    compiler: PathBuf,
    pid_file: PathBuf,
    release: PathBuf,
}

fn tree() -> Tree {
    let sb = Sandbox::new();
    write_script(
        &sb.bin.join("sccache"),
        "case \"$1\" in -*) exit 0 ;; esac\necho $$ > \"$SHIM_TEST_DIR/sccache.pid\"\n\"$@\"\n",
    );
    let compiler = sb.data.join("slow-rustc");
    let pid_file = sb.data.join("compiler.pid");
    let release = sb.data.join("release");
    write_script(
        &compiler,
        &format!(
            "echo $$ > {pid}.tmp && mv {pid}.tmp {pid}\n\
             grep '^SigIgn' /proc/self/status > {ign}\n\
             n=0\nwhile [ ! -e {release} ] && [ $n -lt 3000 ]; do sleep 0.1; n=$((n+1)); done\n\
             echo compiled\n",
            pid = sh_quote(pid_file.as_os_str()),
            ign = sh_quote(sb.data.join("compiler.sigign").as_os_str()),
            release = sh_quote(release.as_os_str()),
        ),
    );
    Tree {
        sb,
        compiler,
        pid_file,
        release,
    }
}

impl Drop for Tree {
    /// A compiler left running by a failed test ends at once.
    fn drop(&mut self) {
        let _ = fs::write(&self.release, "");
    }
}

impl Tree {
    /// Starts `maybe-sccache <compiler> <a cacheable call>` through `sh -c '<prelude> exec …'` and
    /// waits until the compiler runs.
    fn start(&self, prelude: &str) -> (Child, u32) {
        let mut args = vec![self.compiler.clone().into_os_string()];
        args.extend(cacheable_args("src/lib.rs", &self.sb.data));
        let mut cmd = self.sb.command("/bin/sh");
        cmd.arg("-c")
            .arg(format!("{prelude}\nexec \"$@\""))
            .arg("sh")
            .arg(shim_bin())
            .args(args)
            .env("SHIM_TEST_DIR", &self.sb.data)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
        // The test starts from default dispositions whatever the harness inherited: a harness
        // run as a shell's background job has SIGINT and SIGQUIT ignored, which the shim then
        // rightly keeps ignored (see `signals_ignored_by_the_caller_stay_ignored`).
        // SAFETY: `signal` is async-signal-safe, as the time between fork and exec needs.
        unsafe {
            cmd.pre_exec(|| {
                for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
                    libc::signal(sig, libc::SIG_DFL);
                }
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap();
        let deadline = Instant::now() + SHORT;
        let compiler_pid = loop {
            if let Some(pid) = read_pid(&self.pid_file) {
                break pid;
            }
            assert!(Instant::now() < deadline, "the compiler never started");
            std::thread::sleep(Duration::from_millis(20));
        };
        (child, compiler_pid)
    }
}

fn read_pid(path: &Path) -> Option<u32> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Alive, and not a zombie waiting to be reaped.
fn running(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')))
        .unwrap_or(false)
}

fn send(signal: &str, pid: u32) {
    let ok = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{signal} {pid}");
}

fn wait_for(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("the shim did not end within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Ctrl-C (which the terminal sends to cargo's process group, not to sccache's) and `kill`
/// reaching the shim are passed on to sccache's group: the compile it runs ends too, and the shim
/// ends by the same signal.
#[test]
fn ending_signals_reach_the_forwarded_call_and_leave_no_compile_behind() {
    use std::os::unix::process::ExitStatusExt;
    for (name, number) in [("INT", 2), ("TERM", 15), ("HUP", 1)] {
        let t = tree();
        let (mut shim, compiler) = t.start("");
        let sccache = read_pid(&t.sb.data.join("sccache.pid")).expect("sccache ran");
        assert!(running(compiler) && running(sccache));
        send(name, shim.id());
        let status = wait_for(&mut shim, SHORT);
        assert_eq!(status.signal(), Some(number), "SIG{name}: {status:?}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while (running(compiler) || running(sccache)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            !running(compiler),
            "SIG{name}: the compile was left running"
        );
        assert!(!running(sccache), "SIG{name}: sccache was left running");
    }
}

/// A signal the caller set to be ignored (`nohup`, a script's background job, `trap '' INT`)
/// stays ignored: the shim does not die of it, does not pass it on, and the compiler inherits the
/// ignored disposition.
#[test]
fn signals_ignored_by_the_caller_stay_ignored() {
    let t = tree();
    let (mut shim, compiler) = t.start("trap '' INT HUP");
    send("INT", shim.id());
    send("HUP", shim.id());
    // The signals were delivered (ignored or handled) before the compile is let go.
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        running(compiler),
        "the compile was stopped by an ignored signal"
    );
    fs::write(&t.release, "").unwrap();
    let status = wait_for(&mut shim, SHORT);
    assert_eq!(status.code(), Some(0), "{status:?}");
    let ign = fs::read_to_string(t.sb.data.join("compiler.sigign")).unwrap();
    let mask = u64::from_str_radix(ign.trim_start_matches("SigIgn:").trim(), 16).unwrap();
    assert_eq!(
        mask & 0b11,
        0b11,
        "SIGHUP and SIGINT ignored in the compiler: {ign}"
    );
}

/// After sccache failed, the shim runs the compiler as its own child (to learn whether sccache
/// was at fault). Ctrl-C or `kill` sent to the shim then reaches that compiler, and the shim ends
/// by the signal only once the compiler has ended: no orphan goes on writing the call's outputs.
#[test]
fn ending_signals_reach_the_compiler_run_after_a_fallback() {
    use std::os::unix::process::ExitStatusExt;
    for (name, number) in [("INT", 2), ("TERM", 15)] {
        let t = tree();
        write_script(
            &t.sb.bin.join("sccache"),
            "case \"$1\" in -*) exit 0 ;; esac\necho 'sccache: error: boom' >&2\nexit 2\n",
        );
        let got = t.sb.data.join("compiler.got");
        let ended = t.sb.data.join("compiler.ended");
        // The compiler takes a moment to stop after the signal, as rustc removing its
        // temporaries does: the shim must still be there when it has ended.
        write_script(
            &t.compiler,
            &format!(
                "on() {{ echo \"$1\" > {got}; sleep 0.5; echo ended > {ended}; exit 1; }}\n\
                 trap 'on INT' INT\ntrap 'on TERM' TERM\n\
                 echo $$ > {pid}.tmp && mv {pid}.tmp {pid}\n\
                 n=0\nwhile [ ! -e {release} ] && [ $n -lt 3000 ]; do sleep 0.1; n=$((n+1)); done\n",
                got = sh_quote(got.as_os_str()),
                ended = sh_quote(ended.as_os_str()),
                pid = sh_quote(t.pid_file.as_os_str()),
                release = sh_quote(t.release.as_os_str()),
            ),
        );
        let (mut shim, compiler) = t.start("");
        send(name, shim.id());
        let status = wait_for(&mut shim, SHORT);
        assert_eq!(status.signal(), Some(number), "SIG{name}: {status:?}");
        let got = fs::read_to_string(&got).unwrap_or_default();
        assert_eq!(got.trim(), name, "SIG{name} did not reach the compiler");
        assert!(
            ended.exists() && !running(compiler),
            "SIG{name}: the shim ended before its compiler"
        );
    }
}
