//! The kernel's destroy notifications: one listener thread per network
//! namespace (a NETLINK_SOCK_DIAG socket subscribed there), each notice
//! stamped with the time it arrived, all on one channel.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::time::Duration;

use crate::diag::{self, NetlinkSocket};
use crate::filter::Expr;
use crate::model::{DiagSocket, Namespace};
use crate::query::Query;

/// What a listener heard.
#[derive(Debug)]
pub enum Notice {
    /// A socket of namespace `netns` (its inode; 0 for the reader's own)
    /// that the query selects was destroyed; the notice arrived at `at`
    /// (ms since the Unix epoch).
    Closed {
        netns: u64,
        at: i64,
        socket: Box<DiagSocket>,
    },
    /// The kernel dropped notifications for `netns` (a burst overflowed
    /// the listener's buffer): connections that closed meanwhile are
    /// closed by the next polls instead.
    Lost { netns: u64, at: i64 },
    /// The listener of `netns` failed and stopped.
    Failed { netns: u64, at: i64, error: String },
}

/// One namespace's listener, or why there is none.
#[derive(Debug)]
enum Listener {
    Running(Arc<AtomicBool>),
    Unavailable(String),
}

/// The listeners, by namespace, and what they heard.
#[derive(Debug)]
pub struct Notifier {
    tx: Sender<Notice>,
    rx: Receiver<Notice>,
    listeners: HashMap<u64, Listener>,
    /// The query's filter with each namespace's facts, for the sockets of
    /// notifications no tracked connection claims.
    filters: HashMap<u64, Expr>,
    buffer: usize,
}

impl Notifier {
    /// Listeners with receive buffers of `buffer` bytes (see
    /// [`NetlinkSocket::subscribe_destroy`]).
    pub fn new(buffer: usize) -> Notifier {
        let (tx, rx) = mpsc::channel();
        Notifier {
            tx,
            rx,
            listeners: HashMap::new(),
            filters: HashMap::new(),
            buffer,
        }
    }

    /// Listen in `namespace` (None: this process's) for the sockets `query`
    /// selects there, unless a listener is there already (or could not be
    /// made: then why).
    pub fn listen(&mut self, query: &Query, namespace: Option<&Namespace>) -> Result<(), String> {
        let netns = namespace.map_or(0, |n| n.inode);
        if let Some(listener) = self.listeners.get(&netns) {
            return match listener {
                Listener::Running(_) => Ok(()),
                Listener::Unavailable(why) => Err(why.clone()),
            };
        }
        let started = self.start(query, namespace);
        let listener = match &started {
            Ok(stop) => Listener::Running(stop.clone()),
            Err(why) => Listener::Unavailable(why.clone()),
        };
        self.listeners.insert(netns, listener);
        started.map(|_| ())
    }

    fn start(
        &mut self,
        query: &Query,
        namespace: Option<&Namespace>,
    ) -> Result<Arc<AtomicBool>, String> {
        let netns = namespace.map_or(0, |n| n.inode);
        let filter = query.filter_for(namespace).map_err(|e| e.to_string())?;
        self.filters.insert(netns, filter);
        let socket = query
            .netlink_socket(namespace)
            .map_err(|e| std::io::Error::other(e.to_string()))
            .and_then(|s| s.subscribe_destroy(self.buffer))
            .map_err(|e| format!("no destroy notifications ({e})"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let tx = self.tx.clone();
        std::thread::Builder::new()
            .name(format!("tcptab-notify-{netns}"))
            .spawn(move || listen(socket, netns, tx, flag))
            .map_err(|e| format!("no destroy notifications (a thread: {e})"))?;
        Ok(stop)
    }

    /// Whether the query selects `socket`, of namespace `netns`, as the
    /// kernel reported it destroyed (state CLOSE, owners unknown).
    pub fn selects(&self, netns: u64, socket: &DiagSocket) -> bool {
        self.filters
            .get(&netns)
            .is_some_and(|f| f.matches(&socket.socket, Some(&socket.diag), None))
    }

    /// Whether a listener runs in `netns`.
    pub fn is_listening(&self, netns: u64) -> bool {
        matches!(self.listeners.get(&netns), Some(Listener::Running(_)))
    }

    /// Why there is no listener in `netns`, if one was tried.
    pub fn unavailable(&self, netns: u64) -> Option<&str> {
        match self.listeners.get(&netns) {
            Some(Listener::Unavailable(why)) => Some(why),
            _ => None,
        }
    }

    /// Stop listening where `keep` says no (a namespace gone: its
    /// listener would keep it alive).
    pub fn retain(&mut self, mut keep: impl FnMut(u64) -> bool) {
        self.listeners.retain(|&netns, listener| {
            let kept = keep(netns);
            if let (false, Listener::Running(stop)) = (kept, &listener) {
                stop.store(true, Ordering::SeqCst);
            }
            kept
        });
        let listeners = &self.listeners;
        self.filters
            .retain(|netns, _| listeners.contains_key(netns));
    }

    /// A listener that failed: forget it (a later `listen` tries again).
    pub fn failed(&mut self, netns: u64, why: String) {
        self.listeners.insert(netns, Listener::Unavailable(why));
    }

    /// The next notice, waiting up to `timeout`.
    pub fn next(&self, timeout: Duration) -> Option<Notice> {
        self.rx.recv_timeout(timeout).ok()
    }

    /// Every notice already there.
    pub fn drain(&self) -> Vec<Notice> {
        self.rx.try_iter().collect()
    }

    /// Stop every listener.
    pub fn stop(&mut self) {
        self.retain(|_| false);
    }
}

impl Drop for Notifier {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A listener thread: receives notifications until told to stop.
fn listen(mut socket: NetlinkSocket, netns: u64, tx: Sender<Notice>, stop: Arc<AtomicBool>) {
    let mut buf = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::SeqCst) {
        let notice = match socket.recv_within(&mut buf, Duration::from_millis(100)) {
            Ok(0) => continue,
            Ok(len) => {
                let at = crate::time::now_ms();
                let Ok(sockets) = diag::destroyed(&buf[..len.min(buf.len())]) else {
                    continue;
                };
                for socket in sockets {
                    let closed = Notice::Closed {
                        netns,
                        at,
                        socket: Box::new(socket),
                    };
                    if tx.send(closed).is_err() {
                        return;
                    }
                }
                continue;
            }
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NOBUFS.raw_os_error()) => {
                Notice::Lost {
                    netns,
                    at: crate::time::now_ms(),
                }
            }
            Err(e) => {
                let _ = tx.send(Notice::Failed {
                    netns,
                    at: crate::time::now_ms(),
                    error: e.to_string(),
                });
                return;
            }
        };
        if tx.send(notice).is_err() {
            return;
        }
    }
}
