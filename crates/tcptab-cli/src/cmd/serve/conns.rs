//! The exporter's open connections, for the cap and for choosing whom to
//! close to make room.
//!
//! The policy, so that neither honest load nor a flood keeps a scraper
//! out:
//!
//! - a connection whose request has arrived is never closed: one with a
//!   request in flight (hyper has its whole head), or with bytes waiting
//!   in the kernel that hyper has not read yet;
//! - nor one younger than [`GRACE`], or idle for less than it since its
//!   last answer: an honest client's request comes within it (one that
//!   connected and waits its turn in the kernel's listen queue meanwhile
//!   loses nothing);
//! - of the others, a connection that has not sent a whole request yet is
//!   closed first, the oldest first (a flood that connects, sends a byte
//!   and comes back makes room for everyone after it in the listen queue,
//!   the scraper included, whose request arrives in one segment and is
//!   then protected);
//! - then the connection idle the longest among those that were served (a
//!   scraper's kept-alive connection goes last);
//! - with none to close, the next connection waits in the listen queue.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// One connection: what it is doing, and a duplicate of its descriptor
/// (to see whether bytes wait in the kernel).
pub struct Conn {
    pub id: u64,
    /// When it connected, and when it was last active (ms since start).
    opened: u64,
    last_active: AtomicU64,
    /// A request is being answered.
    busy: AtomicBool,
    /// Requests answered on it.
    served: AtomicU64,
    fd: Option<OwnedFd>,
    pub evict: tokio::sync::Notify,
}

impl Conn {
    /// A request began (hyper has its head).
    pub fn begin(&self) {
        self.busy.store(true, Ordering::Relaxed);
    }

    /// Its request was answered.
    pub fn end(&self) {
        self.last_active.store(now_ms(), Ordering::Relaxed);
        self.served.fetch_add(1, Ordering::Relaxed);
        self.busy.store(false, Ordering::Relaxed);
    }

    /// Bytes wait in the kernel for hyper: a request has arrived.
    fn waiting(&self) -> bool {
        self.fd
            .as_ref()
            .and_then(|fd| rustix::io::ioctl_fionread(fd).ok())
            .is_some_and(|n| n > 0)
    }
}

/// Milliseconds since the exporter started.
pub fn now_ms() -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// How long a new connection has to send its request, and a served one
/// is kept after its answer, before either may be closed to make room.
pub const GRACE: u64 = 250;

/// The open connections.
#[derive(Default)]
pub struct Connections {
    next: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Conn>>>,
    /// Told when a connection closes (a slot is free).
    pub closed: tokio::sync::Notify,
}

impl Connections {
    pub fn len(&self) -> usize {
        self.open.lock().map_or(0, |open| open.len())
    }

    /// A new connection on `stream`.
    pub fn add(&self, stream: &tokio::net::TcpStream) -> Arc<Conn> {
        let now = now_ms();
        let conn = Arc::new(Conn {
            id: self.next.fetch_add(1, Ordering::Relaxed),
            opened: now,
            last_active: AtomicU64::new(now),
            busy: AtomicBool::new(false),
            served: AtomicU64::new(0),
            fd: rustix::io::fcntl_dupfd_cloexec(stream, 0).ok(),
            evict: tokio::sync::Notify::new(),
        });
        if let Ok(mut open) = self.open.lock() {
            open.insert(conn.id, conn.clone());
        }
        conn
    }

    pub fn remove(&self, id: u64) {
        if let Ok(mut open) = self.open.lock() {
            open.remove(&id);
        }
        self.closed.notify_one();
    }

    /// Close one connection to make room (see the module documentation);
    /// false when every one is protected.
    pub fn evict_one(&self) -> bool {
        let Ok(mut open) = self.open.lock() else {
            return false;
        };
        let now = now_ms();
        let since = |c: &Conn| {
            if c.served.load(Ordering::Relaxed) > 0 {
                c.last_active.load(Ordering::Relaxed)
            } else {
                c.opened
            }
        };
        let candidates = open.values().filter(|c| {
            !c.busy.load(Ordering::Relaxed) && now.saturating_sub(since(c)) >= GRACE && !c.waiting()
        });
        // Never served before those that were; then the oldest, or the
        // idlest.
        let chosen = candidates
            .min_by_key(|c| (c.served.load(Ordering::Relaxed) > 0, since(c)))
            .map(|c| c.id);
        match chosen.and_then(|id| open.remove(&id)) {
            Some(conn) => {
                conn.evict.notify_one();
                true
            }
            None => false,
        }
    }
}
