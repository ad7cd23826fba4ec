//! The kernel's destroy notifications: one listener thread per network
//! namespace (a NETLINK_SOCK_DIAG socket subscribed there), each notice
//! stamped with the time it was read (at most
//! [`GATHER`](listener::GATHER) after it arrived), all on one channel. A
//! poll has them read what waits before it reads the tables
//! ([`Notifier::flush`]), so that no socket that went before the poll is
//! told after it.
//!
//! A listener only receives: it sends the datagrams of each wake as they
//! came, and the reader of the channel decodes them. The sockets are then
//! allocated and freed by one thread (allocated by the listener and freed
//! by the reader, they cost the allocator more than their decoding).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::diag;
use crate::filter::Expr;
use crate::model::{DiagSocket, Namespace};
use crate::query::Query;

mod listener;

use listener::{listen, Thread, BUSY, IDLE};

/// What a listener heard.
#[derive(Debug)]
pub enum Notice {
    /// A socket of namespace `netns` (its inode; 0 for the reader's own)
    /// that the query selects was destroyed; the listener read the notice
    /// at `at` (ms since the Unix epoch; at most
    /// [`GATHER`](listener::GATHER) after it arrived).
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
    /// The listener read every datagram that waited when it was asked to
    /// ([`Notifier::flush`]'s `n`-th time), and sent them before this.
    Flushed(u64),
}

/// One namespace's listener, or why there is none.
#[derive(Debug)]
enum Listener {
    Running(Running),
    Unavailable(String),
}

/// A listener thread's handles.
#[derive(Debug)]
struct Running {
    stop: Arc<AtomicBool>,
    /// Asks it to read what waits now: the flush's number.
    wake: Sender<u64>,
    /// What it does ([`IDLE`], [`BUSY`]).
    doing: Arc<AtomicU8>,
}

/// How long a poll waits for its listeners to have read what waits.
const FLUSH_WITHIN: Duration = Duration::from_millis(150);

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
    /// The flushes asked so far: each answer names its flush.
    flushes: u64,
}

impl Notifier {
    /// Listeners with receive buffers of `buffer` bytes (see
    /// [`NetlinkSocket::subscribe_destroy`](diag::NetlinkSocket::subscribe_destroy)).
    pub fn new(buffer: usize) -> Notifier {
        let (tx, rx) = mpsc::channel();
        Notifier {
            tx,
            rx,
            decoded: VecDeque::new(),
            listeners: HashMap::new(),
            filters: HashMap::new(),
            buffer,
            flushes: 0,
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
        let (listener, started) = match self.start(query, namespace) {
            Ok(running) => (Listener::Running(running), Ok(())),
            Err(why) => (Listener::Unavailable(why.clone()), Err(why)),
        };
        self.listeners.insert(netns, listener);
        started
    }

    fn start(&mut self, query: &Query, namespace: Option<&Namespace>) -> Result<Running, String> {
        let netns = namespace.map_or(0, |n| n.inode);
        let filter = query.filter_for(namespace).map_err(|e| e.to_string())?;
        self.filters.insert(netns, filter);
        let socket = query
            .netlink_socket(namespace)
            .map_err(|e| std::io::Error::other(e.to_string()))
            .and_then(|s| s.subscribe_destroy(self.buffer))
            .map_err(|e| format!("no destroy notifications ({e})"))?;
        let (wake, woken) = mpsc::channel();
        let running = Running {
            stop: Arc::new(AtomicBool::new(false)),
            wake,
            doing: Arc::new(AtomicU8::new(IDLE)),
        };
        let thread = Thread {
            netns,
            tx: self.tx.clone(),
            stop: running.stop.clone(),
            woken,
            doing: running.doing.clone(),
        };
        std::thread::Builder::new()
            .name(format!("tcptab-notify-{netns}"))
            .spawn(move || listen(socket, thread))
            .map_err(|e| format!("no destroy notifications (a thread: {e})"))?;
        Ok(running)
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
            if let (false, Listener::Running(running)) = (kept, &listener) {
                running.stop.store(true, Ordering::SeqCst);
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

    /// Every notice of a socket that went before now: each busy listener
    /// (one that may hold datagrams unread, [`GATHER`](listener::GATHER)) is asked to read
    /// what waits in its socket, and its answer waited for (at most
    /// [`FLUSH_WITHIN`]); an idle one reads each as it comes. What came
    /// before is taken too.
    pub fn flush(&mut self) -> Vec<Notice> {
        self.flushes += 1;
        let n = self.flushes;
        let mut asked = 0;
        for listener in self.listeners.values() {
            if let Listener::Running(r) = listener {
                if r.doing.load(Ordering::SeqCst) == BUSY && r.wake.send(n).is_ok() {
                    asked += 1;
                }
            }
        }
        let deadline = Instant::now() + FLUSH_WITHIN;
        while asked > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(Heard::Flushed(answered)) if answered == n => asked -= 1,
                Ok(heard) => self.decode(heard),
                Err(_) => break,
            }
        }
        self.drain()
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
            // An answer that came after its flush stopped waiting.
            Heard::Flushed(_) => return,
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

#[cfg(test)]
mod tests {
    use super::listener::GATHER;
    use super::*;
    use crate::diag::NetlinkSocket;
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

    /// A connection to `listener` made and reset: no TIME_WAIT, both ends
    /// destroyed at once. The client's port, and when the close began and
    /// ended.
    fn reset(listener: &std::net::TcpListener) -> (u16, i64, i64) {
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let port = client.local_addr().unwrap().port();
        rustix::net::sockopt::set_socket_linger(&client, Some(Duration::ZERO)).unwrap();
        let began = crate::time::now_ms();
        drop(client);
        drop(server);
        (port, began, crate::time::now_ms())
    }

    /// A notifier listening in this namespace; None (the test skipped)
    /// unless root: subscribing needs CAP_NET_ADMIN.
    fn listening() -> Option<Notifier> {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: needs root (subscribing to destroy notifications)");
            return None;
        }
        let mut notifier = Notifier::new(NetlinkSocket::DESTROY_BUFFER);
        notifier.listen(&Query::new(), None).unwrap();
        Some(notifier)
    }

    /// A burst of closes faster than one per [`GATHER`]: every socket's
    /// notification comes, stamped no earlier than its close began and no
    /// later than [`GATHER`] (and a busy machine's slack) after it ended
    /// (as root: subscribing needs CAP_NET_ADMIN).
    #[test]
    fn a_burst_of_closes_is_heard_whole_and_stamped_near_each_close() {
        let Some(mut notifier) = listening() else {
            return;
        };
        let listener = std::net::TcpListener::bind("127.0.0.2:0").unwrap();
        let mut closed = HashMap::new();
        for _ in 0..200 {
            let (port, began, ended) = reset(&listener);
            closed.insert(port, (began, ended));
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

    /// A socket that went while its busy listener let notifications
    /// gather is told by the flush that follows, not by a read up to
    /// [`GATHER`] later (as root).
    #[test]
    fn a_flush_tells_what_a_gathering_listener_had_not_read() {
        let Some(mut notifier) = listening() else {
            return;
        };
        let listener = std::net::TcpListener::bind("127.0.0.3:0").unwrap();
        let server_port = listener.local_addr().unwrap().port();
        let told = |notices: &[Notice], port: u16| {
            notices.iter().any(|n| match n {
                Notice::Closed { socket, .. } => {
                    socket.socket.local.port() == server_port && socket.socket.remote.port() == port
                }
                _ => false,
            })
        };
        let mut missed = 0;
        for _ in 0..10 {
            // Closes every 5 ms: the listener wakes every GATHER.
            for _ in 0..30 {
                reset(&listener);
                std::thread::sleep(Duration::from_millis(5));
            }
            notifier.drain();
            let (port, _, _) = reset(&listener);
            // The kernel's work queue sends the notification.
            std::thread::sleep(Duration::from_millis(5));
            let asked = Instant::now();
            let notices = notifier.flush();
            assert!(asked.elapsed() < FLUSH_WITHIN, "{:?}", asked.elapsed());
            if !told(&notices, port) {
                missed += 1;
            }
        }
        assert_eq!(
            missed, 0,
            "{missed} of 10 closes not told by the flush after them"
        );
    }
}
