//! A TCP proxy in front of a store's HTTP port that breaks inserts on
//! request: it loses the store's answer to one (the rows are in, the
//! sender does not know), cuts one request in the middle (nothing is in),
//! or holds one half sent until the test has restarted the store under
//! it. Each connection is two threads copying bytes; an insert is a
//! request whose first line holds `INSERT` (the HTTP interface's `query`
//! parameter).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What to do to the next insert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Fault {
    None = 0,
    /// Let it through, then drop the store's answer and the connection.
    LoseAnswer = 1,
    /// Send half of its first chunk, then close both ends.
    CutRequest = 2,
    /// Send half of its first chunk, then hold until released.
    Hold = 3,
}

#[derive(Debug, Default)]
struct Shared {
    fault: AtomicU8,
    /// Inserts broken, by fault.
    done: [AtomicU64; 4],
    release: AtomicBool,
    stop: AtomicBool,
}

#[derive(Debug)]
pub struct Proxy {
    pub port: u16,
    shared: Arc<Shared>,
}

impl Proxy {
    /// Listen on a free loopback port, forwarding to `upstream`.
    pub fn start(upstream: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if s.stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                let Ok(store) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue; // the store is away: the client sees the close
                };
                connect(client, store, s.clone());
            }
        });
        Proxy { port, shared }
    }

    /// Break the next insert so.
    pub fn arm(&self, fault: Fault) {
        self.shared.release.store(false, Ordering::SeqCst);
        self.shared.fault.store(fault as u8, Ordering::SeqCst);
    }

    /// Wait (at most 30 s) until an insert was broken by `fault`.
    pub fn wait_for(&self, fault: Fault, count: u64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.shared.done[fault as usize].load(Ordering::SeqCst) < count {
            assert!(
                Instant::now() < deadline,
                "no insert reached the proxy's {fault:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Let a held insert go (its connections are closed).
    pub fn release(&self) {
        self.shared.release.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.release();
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Copy both ways between `client` and `store`, breaking inserts as armed.
fn connect(client: TcpStream, store: TcpStream, s: Arc<Shared>) {
    let in_flight = Arc::new(AtomicBool::new(false));
    let (c2, s2, s_up, flight) = (
        client.try_clone().unwrap(),
        store.try_clone().unwrap(),
        s.clone(),
        in_flight.clone(),
    );
    // Requests: client -> store.
    std::thread::spawn(move || {
        let (mut from, mut to) = (c2, s2);
        let mut buf = vec![0; 1 << 16];
        while let Ok(n @ 1..) = from.read(&mut buf) {
            let chunk = &buf[..n];
            let insert = chunk.starts_with(b"POST ") && first_line_has(chunk, b"INSERT");
            if insert {
                flight.store(true, Ordering::SeqCst);
                let fault = s_up.fault.load(Ordering::SeqCst);
                if fault == Fault::CutRequest as u8 || fault == Fault::Hold as u8 {
                    s_up.fault.store(Fault::None as u8, Ordering::SeqCst);
                    let _ = to.write_all(&chunk[..n / 2]);
                    s_up.done[fault as usize].fetch_add(1, Ordering::SeqCst);
                    while fault == Fault::Hold as u8 && !s_up.release.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    break;
                }
            }
            if to.write_all(chunk).is_err() {
                break;
            }
        }
        let _ = from.shutdown(Shutdown::Both);
        let _ = to.shutdown(Shutdown::Both);
    });
    // Answers: store -> client.
    std::thread::spawn(move || {
        let (mut from, mut to) = (store, client);
        let mut buf = vec![0; 1 << 16];
        while let Ok(n @ 1..) = from.read(&mut buf) {
            let lose = Fault::LoseAnswer as u8;
            if in_flight.swap(false, Ordering::SeqCst)
                && s.fault
                    .compare_exchange(lose, 0, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
            {
                s.done[lose as usize].fetch_add(1, Ordering::SeqCst);
                break;
            }
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = from.shutdown(Shutdown::Both);
        let _ = to.shutdown(Shutdown::Both);
    });
}

fn first_line_has(chunk: &[u8], word: &[u8]) -> bool {
    let line = chunk.split(|&b| b == b'\n').next().unwrap_or_default();
    line.windows(word.len()).any(|w| w == word)
}
