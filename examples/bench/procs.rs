//! Processes: a command run with a time limit, a waiter and a watchdog for children, servers of
//! our own on free ports, and the sweep that finds whatever a run left behind through the marker
//! variable in /proc and stops it.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use std::{fs, io, thread};

use crate::sandbox::{Bench, MARK_VAR};
use crate::{Res, NEXT_ID};

impl Bench {
    /// Runs `cmd` with its output in a file, killing everything it started at `timeout`.
    /// `None` on time-out; else the status and stdout+stderr.
    pub(crate) fn run_bounded(
        &self,
        mut cmd: Command,
        timeout: Duration,
    ) -> Res<Option<(ExitStatus, String)>> {
        let n = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let log = self.scratch_path(&format!("out-{n}.log"));
        let file = fs::File::create(&log).map_err(|e| e.to_string())?;
        let file2 = file.try_clone().map_err(|e| e.to_string())?;
        cmd.stdout(file).stderr(file2);
        let program = cmd.get_program().to_string_lossy().into_owned();
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot run {program}: {e}"))?;
        let pid = child.id();
        let waiter = Waiter::new(child);
        let status = waiter.wait_for(timeout);
        let status = match status {
            Some(s) => s.map_err(|e| format!("waiting for {program}: {e}"))?,
            None => {
                kill_pids(&[pid]);
                let _ = waiter.wait_for(Duration::from_secs(30));
                return Ok(None);
            }
        };
        let text = fs::read_to_string(&log).unwrap_or_default();
        let _ = fs::remove_file(&log);
        Ok(Some((status, text)))
    }
}

/// Waits for a child on a thread of its own, so the caller can wait with a time limit and
/// see the end at once.
pub(crate) struct Waiter {
    pub(crate) rx: mpsc::Receiver<io::Result<ExitStatus>>,
}

impl Waiter {
    pub(crate) fn new(mut child: Child) -> Waiter {
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        Waiter { rx }
    }

    /// `None` while the child runs on after `limit`.
    pub(crate) fn wait_for(&self, limit: Duration) -> Option<io::Result<ExitStatus>> {
        match self.rx.recv_timeout(limit) {
            Ok(r) => Some(r),
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                Some(Err(io::Error::other("waiter thread gone")))
            }
        }
    }
}

/// Kills whatever carries `id` when nothing has happened for `limit`.
pub(crate) struct Watchdog {
    pub(crate) beat: Arc<AtomicU64>,
    pub(crate) stop: Arc<AtomicBool>,
}

impl Watchdog {
    pub(crate) fn start(id: &str, limit: Duration) -> Watchdog {
        let beat = Arc::new(AtomicU64::new(now_ms()));
        let stop = Arc::new(AtomicBool::new(false));
        let (b, s) = (beat.clone(), stop.clone());
        let id = id.to_owned();
        thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                thread::sleep(Duration::from_millis(500));
                if now_ms().saturating_sub(b.load(Ordering::Relaxed)) > limit.as_millis() as u64 {
                    say!(
                        "watchdog: a call hung for {} s; killing it",
                        limit.as_secs()
                    );
                    sweep_id(&id);
                    b.store(now_ms(), Ordering::Relaxed);
                }
            }
        });
        Watchdog { beat, stop }
    }

    pub(crate) fn beat(&self) {
        self.beat.store(now_ms(), Ordering::Relaxed);
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A server of our own on a free port, in our process group (so a Ctrl-C stops it too), killed
/// when dropped: section 3's Redis and section 3b's backends.
pub(crate) struct Server {
    child: Option<Child>,
    pub(crate) port: u16,
}

impl Server {
    /// Starts `cmd` with its output discarded and waits up to `limit` until it listens on
    /// `port`. `name` is what the errors call it.
    pub(crate) fn start(mut cmd: Command, port: u16, name: &str, limit: Duration) -> Res<Server> {
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", Path::new(cmd.get_program()).display()))?;
        let mut server = Server {
            child: Some(child),
            port,
        };
        let deadline = Instant::now() + limit;
        while !port_open(port) {
            if Instant::now() > deadline {
                return Err(format!(
                    "{name} did not listen on {port} in {} s",
                    limit.as_secs()
                ));
            }
            if let Some(Ok(Some(s))) = server.child.as_mut().map(|c| c.try_wait()) {
                return Err(format!("{name} exited at start: {s}"));
            }
            thread::sleep(Duration::from_millis(20));
        }
        Ok(server)
    }

    /// A server already started, listening on `port` (one that picks its own port and names
    /// it in a file, like the GHA cache service).
    pub(crate) fn adopt(child: Child, port: u16) -> Server {
        Server {
            child: Some(child),
            port,
        }
    }

    pub(crate) fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Stops everything started under `id`: every process whose marker variable is exactly `id`.
pub(crate) fn sweep_id(id: &str) -> usize {
    let needle = format!("{MARK_VAR}={id}");
    sweep(|entry| entry == needle.as_bytes())
}

/// SIGKILLs every process (but this one) with an environment entry for which `hit` says
/// yes; repeats until none is left (children may appear meanwhile). Returns how many.
pub(crate) fn sweep(hit: impl Fn(&[u8]) -> bool) -> usize {
    let me = std::process::id();
    let mut total = 0;
    for _ in 0..5 {
        let Ok(entries) = fs::read_dir("/proc") else {
            return total;
        };
        let pids: Vec<u32> = entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| *pid != me)
            .filter(|pid| {
                fs::read(format!("/proc/{pid}/environ"))
                    .is_ok_and(|env| env.split(|b| *b == 0).any(&hit))
            })
            .collect();
        if pids.is_empty() {
            break;
        }
        total += pids.len();
        kill_pids(&pids);
        thread::sleep(Duration::from_millis(100));
    }
    total
}

pub(crate) fn kill_pids(pids: &[u32]) {
    let _ = Command::new("kill")
        .arg("-KILL")
        .args(pids.iter().map(|p| p.to_string()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

pub(crate) fn free_port() -> Res<u16> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

pub(crate) fn port_open(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_ok()
}
