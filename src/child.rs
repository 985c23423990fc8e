//! Running helper commands (sccache's `--start-server`, `--show-stats`, `--version`; `rustc -vV`)
//! so that none of them can hang the shim: output goes to memory files (see `output_buffer`; a
//! daemon that inherits a pipe would keep it open), the command gets its own process group, and
//! at the deadline that whole group is killed.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

/// A finished helper command.
pub struct Output {
    /// The exit code; `None` when it was killed by a signal.
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Why [`run_bounded`] has no output for the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunError {
    /// The shim's own trouble (no output buffers, no file descriptors or memory to start a
    /// process with): that says nothing of the command.
    ShimTrouble(String),
    /// The command's: it could not be started, or did not finish in time. The words begin with
    /// a reason (`spawn-failed`, `timeout`, `wait-failed`).
    Failed(String),
}

/// A few words starting with a reason: `shim-trouble: …` for the shim's own trouble.
impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::ShimTrouble(detail) => write!(f, "shim-trouble: {detail}"),
            RunError::Failed(words) => f.write_str(words),
        }
    }
}

/// Runs `cmd` to completion or until `timeout`. `Err` says why there is no output.
pub fn run_bounded(mut cmd: Command, timeout: Duration) -> Result<Output, RunError> {
    let tmp = || {
        output_buffer().map_err(|e| RunError::ShimTrouble(format!("cannot create a buffer: {e}")))
    };
    let (mut out, mut err) = (tmp()?, tmp()?);
    let clone = |f: &File| {
        f.try_clone()
            .map_err(|e| RunError::ShimTrouble(format!("cannot share a buffer: {e}")))
    };
    cmd.stdout(clone(&out)?).stderr(clone(&err)?);
    let program = cmd.get_program().to_string_lossy().into_owned();
    let mut child = spawn_in_own_group(&mut cmd).map_err(|e| {
        if is_resource_shortage(&e) {
            RunError::ShimTrouble(format!("cannot run {program}: {e}"))
        } else {
            RunError::Failed(format!("spawn-failed: cannot run {program}: {e}"))
        }
    })?;
    let status = wait_until(child.inner(), Instant::now() + timeout)
        .map_err(|e| RunError::Failed(format!("wait-failed: {e}")))?;
    let Some(status) = status else {
        child.kill_group();
        return Err(RunError::Failed(format!(
            "timeout: {program} did not answer within {} s and was stopped",
            timeout.as_secs_f32()
        )));
    };
    // A finished command's group is left alone: with `SCCACHE_NO_DAEMON=1` the server it started
    // lives on in that group, and it is the server we wanted.
    let stdout = read_back(&mut out).unwrap_or_default();
    let stderr = read_back(&mut err).unwrap_or_default();
    Ok(Output {
        code: status.code(),
        stdout,
        stderr,
    })
}

/// Waits for `child` until `deadline`; `None` if it is still running then. On Linux the wait
/// wakes the moment the child exits (a pidfd), so a start that takes 20 ms costs the call 20 ms.
/// Elsewhere, or if that is refused, it polls with short pauses (1 ms, doubling to 8 ms) so a
/// short command is noticed within a few milliseconds of its end.
pub fn wait_until(child: &mut Child, deadline: Instant) -> io::Result<Option<ExitStatus>> {
    if pidfd_wait(child, deadline).is_some() {
        return child.try_wait();
    }
    poll_until(child, deadline)
}

/// [`wait_until`] where no pidfd can be had: looks, pauses, looks again.
fn poll_until(child: &mut Child, deadline: Instant) -> io::Result<Option<ExitStatus>> {
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

/// The longest pause between two looks at a child where no pidfd can be had.
const MAX_PAUSE: Duration = Duration::from_millis(8);

/// Has `child` exited by `deadline`? It is not reaped: a `wait` afterwards returns at once. On
/// Linux this is one `poll` on a pidfd; elsewhere, or if that is refused, the answer is `false`
/// at once (as if the deadline had passed), which only costs the caller its slow path.
pub fn exited_by(child: &Child, deadline: Instant) -> bool {
    pidfd_wait(child, deadline) == Some(true)
}

/// Waits on a pidfd of `child` until it exits (`Some(true)`, not reaped) or `deadline` passes
/// (`Some(false)`); `None` where no pidfd can be had (not Linux, a kernel before 5.3, a sandbox
/// that refuses the call), and the caller must look another way.
fn pidfd_wait(child: &Child, deadline: Instant) -> Option<bool> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use std::os::fd::{FromRawFd, OwnedFd};
        // SAFETY: pidfd_open on our own child's id; a non-negative result is a new descriptor
        // owned by `_pidfd` and closed with it.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, child.id() as libc::pid_t, 0) };
        if fd < 0 {
            return None;
        }
        let _pidfd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let ms = left.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
            let mut pfd = libc::pollfd {
                fd: fd as i32,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd for the duration of the call.
            let n = unsafe { libc::poll(&mut pfd, 1, ms) };
            if n > 0 {
                return Some(true);
            }
            if n < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                return None;
            }
            if Instant::now() >= deadline {
                return Some(false);
            }
        }
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = (child, deadline);
        None
    }
}

/// A child in a process group of its own, so that it can be stopped with everything it started.
/// While it runs, the signals that end a build (Ctrl-C, `kill`) are passed on to its group, since
/// the terminal or cargo no longer reach it directly.
pub struct GroupChild {
    child: Child,
}

/// Starts `cmd` in its own process group.
pub fn spawn_in_own_group(cmd: &mut Command) -> io::Result<GroupChild> {
    #[cfg(unix)]
    let child = {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
        signals::install();
        // An ending signal that arrives while the child is being started is held back until the
        // child's group is registered, so that it is passed on instead of leaving the child
        // running on its own.
        let spawning = signals::Spawning::begin();
        let child = cmd.spawn();
        if let Ok(child) = &child {
            signals::add(child.id());
        }
        spawning.end();
        child?
    };
    #[cfg(not(unix))]
    let child = cmd.spawn()?;
    Ok(GroupChild { child })
}

/// Runs `cmd` in this process's own group (the terminal and cargo reach it as they would the
/// compiler itself) and waits for it. An ending signal that reaches this process meanwhile is
/// passed on to the child, and this process waits for the child to end before it ends by that
/// signal: no compiler is left behind writing outputs after its caller has gone.
pub fn run_in_foreground(cmd: &mut Command) -> io::Result<ExitStatus> {
    #[cfg(unix)]
    {
        signals::install();
        let spawning = signals::Spawning::begin();
        let child = cmd.spawn();
        if let Ok(child) = &child {
            signals::set_foreground(child.id());
        }
        spawning.end_foreground(child.is_ok());
        let mut child = child?;
        let status = child.wait();
        signals::set_foreground(0);
        signals::die_if_pending();
        status
    }
    #[cfg(not(unix))]
    cmd.status()
}

impl GroupChild {
    pub fn inner(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Kills the child's whole group and reaps the child.
    pub fn kill_group(&mut self) {
        kill_group(self.child.id());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for GroupChild {
    fn drop(&mut self) {
        #[cfg(unix)]
        signals::remove(self.child.id());
    }
}

#[cfg(unix)]
mod signals {
    use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
    use std::sync::Once;

    /// Process groups that ending signals are passed on to; 0 marks a free slot. A handful is
    /// plenty: at most a forwarded call and the watchdog's helper run at once.
    static GROUPS: [AtomicI32; 4] = [const { AtomicI32::new(0) }; 4];

    /// Children being started right now, and an ending signal that arrived meanwhile (0: none).
    static SPAWNING: AtomicUsize = AtomicUsize::new(0);
    static PENDING: AtomicI32 = AtomicI32::new(0);

    /// A child in this process's own group that this process waits for (0: none): an ending
    /// signal is passed on to it, and the waiting thread ends this process once it has ended.
    static FOREGROUND: AtomicI32 = AtomicI32::new(0);

    pub fn set_foreground(pid: u32) {
        FOREGROUND.store(pid as i32, Ordering::SeqCst);
    }

    /// The foreground child has ended: a signal that arrived meanwhile ends this process now.
    pub fn die_if_pending() {
        let sig = PENDING.load(Ordering::SeqCst);
        if sig != 0 {
            die(sig);
        }
    }

    const ENDING: [libc::c_int; 4] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];

    pub fn add(pid: u32) {
        for slot in &GROUPS {
            if slot
                .compare_exchange(0, pid as i32, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                return;
            }
        }
    }

    pub fn remove(pid: u32) {
        for slot in &GROUPS {
            let _ = slot.compare_exchange(pid as i32, 0, Ordering::SeqCst, Ordering::SeqCst);
        }
    }

    /// Handles the ending signals, except those the caller set to be ignored (`nohup`, the
    /// background jobs of a script): those stay ignored, here and in every child.
    pub fn install() {
        static ONCE: Once = Once::new();
        ONCE.call_once(|| {
            for sig in ENDING {
                // SAFETY: reading a disposition into a zeroed struct; `on_signal` only calls
                // async-signal-safe functions (kill, signal, raise) and atomics.
                unsafe {
                    let mut old: libc::sigaction = std::mem::zeroed();
                    if libc::sigaction(sig, std::ptr::null(), &mut old) != 0
                        || old.sa_sigaction == libc::SIG_IGN
                    {
                        continue;
                    }
                    libc::signal(sig, on_signal as *const () as libc::sighandler_t);
                }
            }
        });
    }

    /// A child being started: see `spawn_in_own_group`.
    pub struct Spawning(());

    impl Spawning {
        pub fn begin() -> Spawning {
            SPAWNING.fetch_add(1, Ordering::SeqCst);
            Spawning(())
        }

        /// The child is registered (or was never started): a signal held back meanwhile is passed
        /// on now, and this process ends by it.
        pub fn end(self) {
            SPAWNING.fetch_sub(1, Ordering::SeqCst);
            let sig = PENDING.load(Ordering::SeqCst);
            if sig != 0 {
                pass_on_and_die(sig);
            }
        }

        /// The foreground child is registered (`started`) or could not be started: a signal
        /// held back meanwhile is passed on to it (the caller then waits for it and ends by the
        /// signal), or, with no child, ends this process now.
        pub fn end_foreground(self, started: bool) {
            SPAWNING.fetch_sub(1, Ordering::SeqCst);
            let sig = PENDING.load(Ordering::SeqCst);
            if sig == 0 {
                return;
            }
            let foreground = FOREGROUND.load(Ordering::SeqCst);
            if started && foreground > 0 {
                // SAFETY: our own unreaped child. It may get the signal twice, if it also
                // arrived after the child was registered; an ending signal twice is harmless.
                unsafe {
                    libc::kill(foreground, sig);
                }
                return;
            }
            pass_on_and_die(sig);
        }
    }

    extern "C" fn on_signal(sig: libc::c_int) {
        // The order matters against `Spawning::end` on another thread: record, pass on, and
        // only then look whether a start is under way (which will pass it on and end us).
        PENDING.store(sig, Ordering::SeqCst);
        pass_on(sig);
        let foreground = FOREGROUND.load(Ordering::SeqCst);
        if foreground > 0 {
            // SAFETY: async-signal-safe; our own unreaped child, so its pid is not reused.
            unsafe {
                libc::kill(foreground, sig);
            }
            // The thread waiting for it ends this process once it has ended.
            return;
        }
        if SPAWNING.load(Ordering::SeqCst) == 0 {
            die(sig);
        }
    }

    fn pass_on(sig: libc::c_int) {
        for slot in &GROUPS {
            let group = slot.load(Ordering::SeqCst);
            if group > 0 {
                // SAFETY: async-signal-safe; a group that is gone just fails.
                unsafe {
                    libc::kill(-group, sig);
                }
            }
        }
    }

    fn pass_on_and_die(sig: libc::c_int) {
        pass_on(sig);
        die(sig);
    }

    fn die(sig: libc::c_int) {
        // SAFETY: async-signal-safe calls only; the process then ends by the same signal.
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
            libc::raise(sig);
        }
    }
}

/// A file to buffer a child's output in. On Linux an anonymous memory file (`memfd_create`): a
/// temporary file on a disk file system costs an inode allocation per call, which showed up as
/// the largest kernel cost of a forwarded call, and it needs no writable `TMPDIR`. Elsewhere, or
/// if that fails, an unlinked temporary file.
pub fn output_buffer() -> io::Result<File> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use std::os::fd::FromRawFd;
        // SAFETY: a constant NUL-terminated name and valid flags; a non-negative result is a
        // new file descriptor that nothing else owns.
        let fd = unsafe { libc::memfd_create(c"maybe-sccache-output".as_ptr(), libc::MFD_CLOEXEC) };
        if fd >= 0 {
            // SAFETY: see above; the `File` takes ownership of the descriptor.
            return Ok(unsafe { File::from_raw_fd(fd) });
        }
    }
    tempfile::tempfile()
}

/// Everything written to a temporary output file, from the start.
pub fn read_back(file: &mut File) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    file.seek(SeekFrom::Start(0))?;
    file.read_to_end(&mut buf)?;
    Ok(buf)
}

/// Is the file system holding `file` out of space? One `fstatvfs`; `false` when unknown.
/// Is this failure to start a process a shortage of the shim's (or the machine's) resources —
/// file descriptors, processes, memory — rather than something wrong with the program started?
pub fn is_resource_shortage(e: &io::Error) -> bool {
    if e.kind() == io::ErrorKind::OutOfMemory {
        return true;
    }
    #[cfg(unix)]
    if let Some(code) = e.raw_os_error() {
        return matches!(
            code,
            libc::EMFILE | libc::ENFILE | libc::ENOMEM | libc::EAGAIN
        );
    }
    false
}

#[cfg(unix)]
pub fn file_system_full(file: &File) -> bool {
    use std::os::fd::AsRawFd;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: fstatvfs fills `st` for an open descriptor, and it is read only on success.
    if unsafe { libc::fstatvfs(file.as_raw_fd(), st.as_mut_ptr()) } != 0 {
        return false;
    }
    // SAFETY: initialised by the successful call above.
    let st = unsafe { st.assume_init() };
    // A memory file's file system reports no blocks at all: it is never full in this sense.
    st.f_blocks > 0 && st.f_bavail == 0
}

#[cfg(not(unix))]
pub fn file_system_full(_file: &File) -> bool {
    false
}

/// Kills the process group led by `pid` (which `spawn_in_own_group` made).
#[cfg(unix)]
pub fn kill_group(pid: u32) {
    // SAFETY: signalling a process group this module created; a group that is gone just fails.
    unsafe {
        libc::kill(-(pid as libc::pid_t), libc::SIGKILL);
    }
}

// Without process groups there is nothing to kill by id here; on such platforms a hung call is
// only ended by its own sccache. Windows would need a job object for this.
#[cfg(not(unix))]
pub fn kill_group(_pid: u32) {}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    use std::path::PathBuf;

    const HELPER_DIR: &str = "MAYBE_SCCACHE_HELD_SIGNAL_DIR";

    /// Run in a process of its own by `a_signal_during_a_start_is_passed_on_after_it`: an ending
    /// signal arrives while a child is being started; the process must live on until the child's
    /// group is registered, then pass the signal on to it and die by it.
    #[test]
    #[ignore = "a helper, run in a process of its own by the test below"]
    fn held_signal_helper() {
        let dir = PathBuf::from(std::env::var_os(HELPER_DIR).expect("run by the test below"));
        signals::install();
        let spawning = signals::Spawning::begin();
        // SAFETY: raising a signal whose handler this module installed.
        unsafe {
            libc::raise(libc::SIGTERM);
        }
        std::fs::write(dir.join("alive"), "").unwrap();
        // This process dies by the held signal before it could wait; the test checks the child.
        #[allow(clippy::zombie_processes)]
        let child = Command::new("sleep")
            .arg("300")
            .process_group(0)
            .spawn()
            .unwrap();
        signals::add(child.id());
        std::fs::write(dir.join("pid"), child.id().to_string()).unwrap();
        spawning.end();
        std::fs::write(dir.join("survived"), "").unwrap();
    }

    #[test]
    fn a_signal_during_a_start_is_passed_on_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "child::tests::held_signal_helper",
                "--include-ignored",
            ])
            .args(["--nocapture", "--test-threads=1"])
            .env(HELPER_DIR, dir.path())
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert_eq!(status.signal(), Some(libc::SIGTERM), "{status:?}");
        assert!(dir.path().join("alive").exists(), "the signal was not held");
        assert!(
            !dir.path().join("survived").exists(),
            "the held signal was lost"
        );
        let pid = std::fs::read_to_string(dir.path().join("pid")).unwrap();
        let stat = format!("/proc/{}/stat", pid.trim());
        let deadline = Instant::now() + Duration::from_secs(30);
        let running = || {
            std::fs::read_to_string(&stat).is_ok_and(|s| {
                s.rsplit_once(") ")
                    .is_some_and(|(_, r)| !r.starts_with('Z'))
            })
        };
        while running() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!running(), "the child started meanwhile was not stopped");
    }
}

#[cfg(all(test, unix))]
mod unix_tests {
    use super::*;

    /// Both waits, the pidfd one and the polling one used where there is no pidfd, return a
    /// child's status once it exited and give up at the deadline while it runs.
    #[test]
    fn waits_see_an_exit_and_give_up_at_the_deadline() {
        type Wait = fn(&mut Child, Instant) -> io::Result<Option<ExitStatus>>;
        for wait in [wait_until as Wait, poll_until as Wait] {
            let mut done = Command::new("sh").args(["-c", "exit 3"]).spawn().unwrap();
            let far = Instant::now() + Duration::from_secs(60);
            let status = wait(&mut done, far).unwrap().expect("the child exited");
            assert_eq!(status.code(), Some(3));

            let mut running = Command::new("sleep").arg("60").spawn().unwrap();
            let soon = Instant::now() + Duration::from_millis(20);
            assert!(wait(&mut running, soon).unwrap().is_none());
            assert!(!exited_by(&running, soon));
            running.kill().unwrap();
            let status = wait(&mut running, far)
                .unwrap()
                .expect("the child was killed");
            assert!(!status.success());
        }
    }

    /// A memory file's file system reports no blocks at all; taking that for "full" would re-run
    /// every failed compile.
    #[test]
    fn buffers_with_room_are_not_full() {
        assert!(!file_system_full(&output_buffer().unwrap()));
        assert!(!file_system_full(&tempfile::tempfile().unwrap()));
    }
}
