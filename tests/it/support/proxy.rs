//! A TCP proxy in front of a backend on 127.0.0.1 that the test can turn into a black hole (it
//! keeps accepting and holding connections, old and new, and never forwards or answers another
//! byte) or slow down (every reply waits a while before it is passed on). Stops when dropped.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct Proxy {
    pub port: u16,
    black_hole: Arc<AtomicBool>,
    /// Milliseconds each reply is held back; 0 passes replies on at once.
    delay_ms: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    held: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    pub fn to(upstream: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let black_hole = Arc::new(AtomicBool::new(false));
        let delay_ms = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let held = Arc::new(Mutex::new(Vec::new()));
        let (bh, dl, st, hd) = (
            black_hole.clone(),
            delay_ms.clone(),
            stop.clone(),
            held.clone(),
        );
        std::thread::spawn(move || {
            while !st.load(Ordering::SeqCst) {
                let Ok((client, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                let _ = client.set_nonblocking(false);
                hd.lock().unwrap().push(client.try_clone().unwrap());
                if bh.load(Ordering::SeqCst) {
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                hd.lock().unwrap().push(server.try_clone().unwrap());
                let no_delay = Arc::new(AtomicU64::new(0));
                for (from, to, delay) in [
                    (
                        client.try_clone().unwrap(),
                        server.try_clone().unwrap(),
                        no_delay,
                    ),
                    (server, client, dl.clone()),
                ] {
                    let (bh, st) = (bh.clone(), st.clone());
                    std::thread::spawn(move || pump(from, to, &bh, &delay, &st));
                }
            }
        });
        Proxy {
            port,
            black_hole,
            delay_ms,
            stop,
            held,
        }
    }

    pub fn black_hole(&self) {
        self.black_hole.store(true, Ordering::SeqCst);
    }

    /// From now on every reply (the first bytes after a pause) waits `delay` before it is passed
    /// on: a slow backend that still answers everything.
    pub fn slow_down(&self, delay: Duration) {
        self.delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }
}

/// Copies bytes until either side closes; in black-hole mode, swallows them instead. With a
/// delay, the first bytes after a pause of the stream (a new reply) wait that long.
fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    black_hole: &AtomicBool,
    delay_ms: &AtomicU64,
    stop: &AtomicBool,
) {
    let _ = from.set_read_timeout(Some(Duration::from_millis(200)));
    let mut buf = [0u8; 16 * 1024];
    let mut paused = true;
    while !stop.load(Ordering::SeqCst) {
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let delay = delay_ms.load(Ordering::SeqCst);
                if paused && delay > 0 {
                    std::thread::sleep(Duration::from_millis(delay));
                }
                paused = false;
                if !black_hole.load(Ordering::SeqCst) && to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                paused = true;
            }
            Err(_) => break,
        }
    }
    // A black hole never closes what it holds; the test's end does.
    while black_hole.load(Ordering::SeqCst) && !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = to.shutdown(Shutdown::Both);
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for s in self.held.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}
