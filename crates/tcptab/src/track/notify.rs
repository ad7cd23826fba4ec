//! The kernel's destroy notifications: one listener thread per network
//! namespace (a NETLINK_SOCK_DIAG socket subscribed there), each notice
//! stamped with the time it was read (at most [`GATHER`] after it
//! arrived), all on one channel.
//!
//! A listener only receives: it sends the datagrams of each wake as they
//! came, and the reader of the channel decodes them. The sockets are then
//! allocated and freed by one thread (allocated by the listener and freed
//! by the reader, they cost the allocator more than their decoding).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::diag::{self, NetlinkSocket};
use crate::filter::Expr;
use crate::model::{DiagSocket, Namespace};
use crate::query::Query;

/// What a listener heard.
#[derive(Debug)]
pub enum Notice {
    /// A socket of namespace `netns` (its inode; 0 for the reader's own)
    /// that the query selects was destroyed; the listener read the notice
    /// at `at` (ms since the Unix epoch; at most [`GATHER`] after it
    /// arrived).
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

/// What a listener sends.
enum Heard {
    /// The datagrams of one wake in namespace `netns`, one after the other
    /// in `bytes`: each `(end, at)` is where one ends and when it came.
    Datagrams {
        netns: u64,
        bytes: Vec<u8>,
        ends: Vec<(usize, i64)>,
    },
    Notice(Notice),
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
    tx: Sender<Heard>,
    rx: Receiver<Heard>,
    /// Notices decoded from a wake's datagrams and not yet taken.
    decoded: VecDeque<Notice>,
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
            decoded: VecDeque::new(),
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

    /// The next notice, waiting up to `timeout` (None also when what came
    /// held none: datagrams the kernel did not make as documented).
    pub fn next(&mut self, timeout: Duration) -> Option<Notice> {
        if self.decoded.is_empty() {
            let heard = self.rx.recv_timeout(timeout).ok()?;
            self.decode(heard);
        }
        self.decoded.pop_front()
    }

    /// Every notice already there.
    pub fn drain(&mut self) -> Vec<Notice> {
        while let Ok(heard) = self.rx.try_recv() {
            self.decode(heard);
        }
        self.decoded.drain(..).collect()
    }

    /// The notices of what a listener sent, in the order they came.
    fn decode(&mut self, heard: Heard) {
        let (netns, bytes, ends) = match heard {
            Heard::Notice(notice) => return self.decoded.push_back(notice),
            Heard::Datagrams { netns, bytes, ends } => (netns, bytes, ends),
        };
        let mut start = 0;
        for (end, at) in ends {
            // A message the kernel did not make as documented is passed
            // over with what follows it in its datagram (the kernel sends
            // one a datagram): no connection can be told from it.
            let decoded = &mut self.decoded;
            let _ = diag::destroyed_each(&bytes[start..end], &mut |socket| {
                decoded.push_back(Notice::Closed {
                    netns,
                    at,
                    socket: Box::new(socket),
                })
            });
            start = end;
        }
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

/// How long a busy listener lets notifications gather before it reads them
/// again: each is stamped at most this late, and under churn the thread
/// wakes at most once per this instead of once per notification (a wake
/// costs several times the notification's reading).
pub const GATHER: Duration = Duration::from_millis(50);

/// A wake ends when its datagrams pass this many bytes (a flood read
/// without a pause is passed on in pieces, and the stop looked at).
const BATCH_BYTES: usize = 1 << 20;

/// A listener thread: receives notifications until told to stop. A wake
/// reads every datagram waiting. When wakes come closer together than
/// twice [`GATHER`] (more than about 10 notifications a second), the
/// thread sleeps [`GATHER`] before it waits again, so that the next wake
/// finds several; a quieter listener waits at once, and stamps each
/// notification as it comes.
fn listen(mut socket: NetlinkSocket, netns: u64, tx: Sender<Heard>, stop: Arc<AtomicBool>) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut last_wake: Option<Instant> = None;
    let mut bytes = Vec::new();
    let mut ends = Vec::new();
    let pass_on = |bytes: &mut Vec<u8>, ends: &mut Vec<(usize, i64)>| {
        if ends.is_empty() {
            return true;
        }
        let heard = Heard::Datagrams {
            netns,
            bytes: std::mem::take(bytes),
            ends: std::mem::take(ends),
        };
        tx.send(heard).is_ok()
    };
    while !stop.load(Ordering::SeqCst) {
        let mut wait = Duration::from_millis(100);
        let mut heard = false;
        loop {
            let notice = match socket.recv_within(&mut buf, wait) {
                Ok(0) => break,
                Ok(len) => {
                    heard = true;
                    wait = Duration::ZERO;
                    bytes.extend_from_slice(&buf[..len.min(buf.len())]);
                    ends.push((bytes.len(), crate::time::now_ms()));
                    if bytes.len() >= BATCH_BYTES {
                        // A flood: passed on, and the stop looked at.
                        break;
                    }
                    continue;
                }
                Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NOBUFS.raw_os_error()) => {
                    Notice::Lost {
                        netns,
                        at: crate::time::now_ms(),
                    }
                }
                Err(e) => Notice::Failed {
                    netns,
                    at: crate::time::now_ms(),
                    error: e.to_string(),
                },
            };
            let failed = matches!(notice, Notice::Failed { .. });
            // What came before the loss is told before it.
            if !pass_on(&mut bytes, &mut ends) || tx.send(Heard::Notice(notice)).is_err() || failed
            {
                return;
            }
        }
        if !pass_on(&mut bytes, &mut ends) {
            return;
        }
        if !heard {
            last_wake = None;
            continue;
        }
        let woke = Instant::now();
        if let Some(since) = last_wake.map(|last| woke - last) {
            if since < 2 * GATHER {
                std::thread::sleep(GATHER);
            }
        }
        last_wake = Some(woke);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// One netlink datagram: a destroy notification of an IPv4 socket with
    /// local port `port` (an nlmsghdr and an inet_diag_msg, no attribute).
    fn datagram(port: u16) -> Vec<u8> {
        let mut d = Vec::new();
        d.extend_from_slice(&(16u32 + 72).to_ne_bytes());
        d.extend_from_slice(&20u16.to_ne_bytes()); // SOCK_DIAG_BY_FAMILY
        d.extend_from_slice(&[0; 10]);
        let mut m = [0u8; 72];
        m[0] = 2; // AF_INET
        m[1] = 7; // CLOSE
        m[4..6].copy_from_slice(&port.to_be_bytes());
        m[6..8].copy_from_slice(&443u16.to_be_bytes());
        m[8..12].copy_from_slice(&[127, 0, 0, 1]);
        m[24..28].copy_from_slice(&[127, 0, 0, 2]);
        d.extend_from_slice(&m);
        d
    }

    fn told(notice: &Notice) -> (u64, i64, Option<u16>) {
        match notice {
            Notice::Closed { netns, at, socket } => (*netns, *at, Some(socket.socket.local.port())),
            Notice::Lost { netns, at } | Notice::Failed { netns, at, .. } => (*netns, *at, None),
        }
    }

    /// The datagrams of a wake are told one by one, each with its own
    /// time, in the order they came and before a loss that came after
    /// them; a datagram the kernel did not make is passed over.
    #[test]
    fn a_wake_s_datagrams_are_told_in_order_each_with_its_time() {
        let mut notifier = Notifier::new(0);
        let (mut bytes, mut ends) = (Vec::new(), Vec::new());
        for (port, at) in [(1000, 10), (1001, 11)] {
            bytes.extend(datagram(port));
            ends.push((bytes.len(), at));
        }
        bytes.extend([1, 2, 3]);
        ends.push((bytes.len(), 12));
        bytes.extend(datagram(1003));
        ends.push((bytes.len(), 13));
        let heard = [
            Heard::Datagrams {
                netns: 7,
                bytes,
                ends,
            },
            Heard::Notice(Notice::Lost { netns: 7, at: 14 }),
            Heard::Datagrams {
                netns: 8,
                bytes: datagram(1005),
                ends: vec![(88, 15)],
            },
        ];
        for h in heard {
            notifier.tx.send(h).unwrap();
        }
        let first = notifier.next(Duration::ZERO).unwrap();
        assert_eq!(told(&first), (7, 10, Some(1000)));
        let rest: Vec<_> = notifier.drain().iter().map(told).collect();
        assert_eq!(
            rest,
            [
                (7, 11, Some(1001)),
                (7, 13, Some(1003)),
                (7, 14, None),
                (8, 15, Some(1005))
            ]
        );
        assert!(notifier.next(Duration::ZERO).is_none());
        assert!(notifier.drain().is_empty());
    }

    /// A burst of closes faster than one per [`GATHER`]: every socket's
    /// notification comes, stamped no earlier than its close began and no
    /// later than [`GATHER`] (and a busy machine's slack) after it ended
    /// (as root: subscribing needs CAP_NET_ADMIN).
    #[test]
    fn a_burst_of_closes_is_heard_whole_and_stamped_near_each_close() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: needs root (subscribing to destroy notifications)");
            return;
        }
        let query = Query::new();
        let mut notifier = Notifier::new(NetlinkSocket::DESTROY_BUFFER);
        notifier.listen(&query, None).unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.2:0").unwrap();
        let mut closed = HashMap::new();
        for _ in 0..200 {
            let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            let (server, _) = listener.accept().unwrap();
            let port = client.local_addr().unwrap().port();
            // A reset: no TIME_WAIT, both ends destroyed at once.
            rustix::net::sockopt::set_socket_linger(&client, Some(Duration::ZERO)).unwrap();
            let began = crate::time::now_ms();
            drop(client);
            drop(server);
            closed.insert(port, (began, crate::time::now_ms()));
            std::thread::sleep(Duration::from_micros(500));
        }
        let server_port = listener.local_addr().unwrap().port();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut heard = HashMap::new();
        while heard.len() < 2 * closed.len() && Instant::now() < deadline {
            let Some(Notice::Closed { at, socket, .. }) = notifier.next(Duration::from_millis(100))
            else {
                continue;
            };
            let (local, remote) = (socket.socket.local.port(), socket.socket.remote.port());
            // The server's end is told by its peer's port, the client's by
            // its own (the kernel may have cleared a reset client's remote
            // port).
            let client = match (local, remote) {
                (l, r) if l == server_port => r,
                (l, r) if r == server_port || r == 0 => l,
                _ => continue,
            };
            if closed.contains_key(&client) {
                heard.insert((local, remote, client), at);
            }
        }
        let by_client = |port| heard.iter().filter(|(k, _)| k.2 == port).count();
        let missing: Vec<_> = closed.keys().filter(|&&p| by_client(p) != 2).collect();
        assert!(missing.is_empty(), "not both ends heard: {missing:?}");
        let slack = (GATHER.as_millis() as i64) + 500;
        for ((_, _, client), at) in &heard {
            let (began, ended) = closed[client];
            assert!(
                *at >= began && *at <= ended + slack,
                "port {client}: closed {began}..{ended}, stamped {at}"
            );
        }
    }
}
