//! Ending a stuck call so that no compiler of it is left running beside the direct compile.

#[cfg(target_os = "linux")]
pub use linux::abandon;

/// Kills the call's process group; the server's children cannot be seen here.
#[cfg(not(target_os = "linux"))]
pub fn abandon(call: u32, _compiler: &str) -> bool {
    crate::child::kill_group(call);
    true
}

#[cfg(target_os = "linux")]
mod linux {
    use std::time::{Duration, Instant};

    use super::super::proc;
    use crate::server;

    /// How long the processes killed get to be gone.
    const GONE_WITHIN: Duration = Duration::from_secs(5);

    /// Freezes the call's process group and the server, looks for work once more, and
    /// then either lets both go on (a compile started since the last look: `false`) or
    /// kills the server's compilers, the server and the call's group, and waits until they
    /// are gone (`true`). Frozen, neither can start a compiler between the look and the
    /// kill, and a frozen parent cannot reap its children, so their pids stay theirs.
    pub fn abandon(call: u32, compiler: &str) -> bool {
        let group = -(call as libc::pid_t);
        // SAFETY: signalling the process group the shim made for this call.
        unsafe { libc::kill(group, libc::SIGSTOP) };
        let server = Pinned::server();
        if let Some(s) = &server {
            s.signal(libc::SIGSTOP);
        }
        let server_pid = server.as_ref().map(|s| s.pid);
        if proc::compile_at_work(server_pid, call, compiler) == Some(true) {
            if let Some(s) = &server {
                s.signal(libc::SIGCONT);
            }
            // SAFETY: as above.
            unsafe { libc::kill(group, libc::SIGCONT) };
            return false;
        }
        let mut doomed = Vec::new();
        if let Some(table) = proc::Table::read() {
            if let Some(pid) = server_pid {
                doomed.extend(table.descendants(pid));
            }
            doomed.extend(table.group(call, server_pid));
        }
        for &pid in &doomed {
            // SAFETY: a descendant of the frozen server or a member of the frozen call's
            // group: its parent is frozen, so the pid cannot have been reused.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        }
        // SAFETY: as above.
        unsafe { libc::kill(group, libc::SIGKILL) };
        if let Some(s) = &server {
            s.signal(libc::SIGKILL);
            doomed.push(s.pid);
        }
        let deadline = Instant::now() + GONE_WITHIN;
        while doomed.iter().any(|&p| proc::is_live(p)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }

    /// The server, held by a pidfd where the kernel has them (Linux 5.3), so that signals
    /// reach the process that was checked and no other.
    struct Pinned {
        pid: u32,
        fd: Option<std::os::fd::OwnedFd>,
    }

    impl Pinned {
        fn server() -> Option<Pinned> {
            use std::os::fd::FromRawFd;
            let pid = server::server_pid()?;
            // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
            let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
            let fd = (fd >= 0).then(|| {
                // SAFETY: a fresh descriptor that nothing else owns.
                unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as libc::c_int) }
            });
            // The pid may have changed hands between the lookup and the pidfd: the
            // listener is looked up again, now that the pidfd holds the process.
            if server::server_pid() != Some(pid) {
                return None;
            }
            Some(Pinned { pid, fd })
        }

        fn signal(&self, sig: libc::c_int) {
            use std::os::fd::AsRawFd;
            if let Some(fd) = &self.fd {
                // SAFETY: pidfd_send_signal with a pidfd owned here and no siginfo.
                let r = unsafe {
                    libc::syscall(
                        libc::SYS_pidfd_send_signal,
                        fd.as_raw_fd(),
                        sig,
                        std::ptr::null::<libc::siginfo_t>(),
                        0,
                    )
                };
                if r == 0 {
                    return;
                }
            }
            // SAFETY: a plain kill(2) of the sccache server found listening just before.
            unsafe { libc::kill(self.pid as libc::pid_t, sig) };
        }
    }
}
