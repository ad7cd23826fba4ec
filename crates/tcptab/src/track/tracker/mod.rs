//! [`Tracker`]: polls and destroy notifications in, connection lifetimes
//! out (see the [module](super) documentation). No I/O: every time is
//! given by the caller, in ms since the Unix epoch.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;

use super::{Change, Conn, Counters, End, Event};
use crate::model::{
    canonical, DiagSocket, Entry, Key, Namespace, Owners, RowKind, State, Workload,
};

mod ahead;
mod conns;
mod destroyed;
mod polled;

use conns::{Conns, Ended, Keys};

/// What the tracker is told beyond the polls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrackOptions {
    /// Report a socket whose receive or send queue grows past this many
    /// bytes ([`Change::QueueGrowth`]).
    pub queue_threshold: Option<u32>,
    /// A poll more than this long after the one before (ms) follows a gap
    /// (the machine slept, the clock jumped, the process stalled): what it
    /// no longer finds ended unobserved after its last sighting
    /// ([`End::Gap`]), not at the poll.
    pub gap_after_ms: Option<i64>,
}

/// A connection's ends in a namespace, as a key of the tracker's maps
/// (looked up for each notification and each socket a poll meets first):
/// the addresses as numbers, hashed and compared as such, not as
/// `SocketAddr`s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Ends {
    netns: u64,
    local: u128,
    remote: u128,
    ports: (u16, u16),
    /// IPv6 (an IPv4 address and its mapped IPv6 form are two ends).
    v6: bool,
}

impl Ends {
    fn new(netns: u64, local: SocketAddr, remote: SocketAddr) -> Ends {
        let bits = |a: SocketAddr| match a.ip() {
            std::net::IpAddr::V4(ip) => u128::from(u32::from(ip)),
            std::net::IpAddr::V6(ip) => u128::from(ip),
        };
        Ends {
            netns,
            local: bits(local),
            remote: bits(remote),
            ports: (local.port(), remote.port()),
            v6: local.is_ipv6(),
        }
    }
}

/// A listener's address and workload.
type ListenerWorkload = (std::net::IpAddr, Arc<Workload>);

/// Where a tracked connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Its socket is there (a full socket, a listener, a request socket).
    Live,
    /// Only its TIME_WAIT is left.
    TimeWait,
    /// The kernel said its socket was destroyed (at this time); the next
    /// poll says whether a TIME_WAIT followed.
    Closing { at: i64 },
}

#[derive(Debug)]
struct Tracked {
    conn: Conn,
    phase: Phase,
    /// The keys it is known by (its socket's, and its TIME_WAIT's when the
    /// kernel gave that a cookie of its own).
    keys: Vec<Key>,
    /// Joinable by its ends (to a TIME_WAIT with a cookie of its own, or to
    /// the notification of the socket before it) until this poll.
    ends_until: Option<u64>,
    /// Missed by a poll at this time while notifications come for its
    /// namespace: its notification may still be on the way.
    missing_since: Option<i64>,
    /// A TIME_WAIT's end, as its timer said at its last sighting.
    expires: Option<i64>,
    fingerprint: u64,
    over_threshold: bool,
}

/// The hasher of the tracker's maps, looked up for every socket of every
/// poll or every notification: foldhash's (seeded per map), not SipHash, which
/// was a tenth of a quiet poll's time in the recorder.
type Fast = foldhash::fast::RandomState;
pub(super) type Map<K, V> = HashMap<K, V, Fast>;

/// `key` leaves `map` if it gives connection `id` there (one lookup):
/// whether it did.
pub(super) fn remove_if_is<K: std::hash::Hash + Eq>(
    map: &mut Map<K, u64>,
    key: K,
    id: u64,
) -> bool {
    match map.entry(key) {
        std::collections::hash_map::Entry::Occupied(found) if *found.get() == id => {
            found.remove();
            true
        }
        _ => false,
    }
}

/// Polls and notifications in, lifetimes out.
#[derive(Debug, Default)]
pub struct Tracker {
    options: TrackOptions,
    conns: Conns,
    by_key: Keys,
    by_ends: Map<Ends, u64>,
    /// Request sockets (SYN_RECV) seen by a poll, by their ends: the full
    /// socket the kernel makes of one has a cookie of its own, and when it
    /// lives and dies between two polls only its notification joins it.
    requests: Map<Ends, u64>,
    /// Connections of which only the TIME_WAIT is left, by its ends: a new
    /// connection on those ends means the kernel ended it (a SYN a
    /// TIME_WAIT accepts replaces it).
    time_waits: Map<Ends, u64>,
    /// The cookies of connections that ended lately: a late notification
    /// for one (its socket outlived its TIME_WAIT in a process's hands) is
    /// not a new connection.
    ended: Ended,
    generation: u64,
    last_poll_at: Option<i64>,
    namespaces: Map<u64, Arc<Namespace>>,
    /// Namespaces whose destroy notifications come to the tracker.
    notified: HashSet<u64, Fast>,
    /// The listeners of the last poll, by namespace and port: their
    /// address and workload. A socket a listener accepted has the
    /// listener's cgroup (the kernel copies it), which a destroy
    /// notification does not carry.
    listeners: Map<(u64, u16), Vec<ListenerWorkload>>,
    /// Where a look's fields lie in a slot ([`ahead`]).
    lines: ahead::Lines,
}

/// How many ended connections' keys are remembered.
const ENDED_KEPT: usize = 65_536;
/// Polls during which a TIME_WAIT first seen on its own may still be
/// joined by the notification of the socket before it.
const ENDS_POLLS: u64 = 2;

impl Tracker {
    pub fn new(options: TrackOptions) -> Tracker {
        Tracker {
            options,
            ..Tracker::default()
        }
    }

    /// Destroy notifications for namespace `netns` (its inode; 0 for the
    /// reader's own) come to the tracker, or no longer do: a connection a
    /// poll misses there is given one more poll for its notification.
    pub fn set_notified(&mut self, netns: u64, on: bool) {
        if on {
            self.notified.insert(netns);
        } else {
            self.notified.remove(&netns);
        }
    }

    /// The connections followed now (open, closing, or lingering as a
    /// TIME_WAIT), in no order.
    pub fn conns(&self) -> impl Iterator<Item = &Conn> + '_ {
        self.conns.values().map(|t| &t.conn)
    }

    /// The connections followed now that the last poll did not see (those
    /// it saw were last seen then, or later): cheaper to walk than
    /// [`conns`](Self::conns) with a filter, for it reads none of the
    /// others.
    pub fn unseen(&self) -> impl Iterator<Item = &Conn> + '_ {
        self.conns.unmarked(self.generation).map(|(_, t)| &t.conn)
    }

    pub fn get(&self, id: u64) -> Option<&Conn> {
        self.conns.get(&id).map(|t| &t.conn)
    }

    pub fn len(&self) -> usize {
        self.conns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// The connection `entry` (a socket of the last poll) belongs to.
    pub fn id_of(&self, entry: &Entry<'_>) -> Option<u64> {
        self.by_key.get(&entry.key()).copied()
    }

    /// Whether the socket of a notification (of namespace `netns`) belongs
    /// to a connection followed now, or one that ended lately.
    pub fn knows(&self, netns: u64, d: &DiagSocket) -> bool {
        let ends = Ends::new(netns, d.socket.local, d.socket.remote);
        let key = Key::of(netns, &d.socket, Some(&d.diag));
        self.by_key.contains_key(&key)
            || self.ended.contains(&key)
            || self.by_ends.contains_key(&ends)
            || self.requests.contains_key(&ends)
    }

    /// The workload of the listener of the last poll that accepted a
    /// connection with this local end in namespace `netns`.
    fn listener_workload(&self, netns: u64, local: SocketAddr) -> Option<Arc<Workload>> {
        let ip = canonical(local).ip();
        self.listeners
            .get(&(netns, local.port()))?
            .iter()
            .find(|(addr, _)| *addr == ip || addr.is_unspecified())
            .map(|(_, w)| w.clone())
    }

    /// When the last poll was taken.
    pub fn last_poll_at(&self) -> Option<i64> {
        self.last_poll_at
    }

    /// Take up a connection an earlier tracker followed (a recorder's file):
    /// open as of `last_seen`, or, with `closing`, destroyed at that time
    /// with a TIME_WAIT that the next poll may still find. No event is
    /// given for it. Returns its id here.
    pub fn resume(&mut self, mut conn: Conn, closing: Option<i64>) -> u64 {
        let id = self.conns.next_id();
        conn.id = id;
        let ns = conn.entry.netns();
        if let Some(n) = &conn.entry.namespace {
            self.namespaces.entry(ns).or_insert_with(|| n.clone());
        }
        let key = conn.entry.key();
        let phase = match closing {
            Some(at) => Phase::Closing { at },
            None if conn.entry.socket.kind == RowKind::TimeWait => Phase::TimeWait,
            None => Phase::Live,
        };
        self.by_key.insert(key, id);
        if phase == Phase::TimeWait {
            self.time_waits.insert(ends(&conn.entry.as_entry()), id);
        }
        let mut ends_until = None;
        if closing.is_some() {
            self.by_ends.insert(ends(&conn.entry.as_entry()), id);
            ends_until = Some(self.generation + ENDS_POLLS);
        }
        let fingerprint = fingerprint(&conn.entry.as_entry(), &conn.counters);
        let expires =
            (phase == Phase::TimeWait).then(|| conn.last_seen + timer_ms(&conn.entry.as_entry()));
        self.conns.insert(
            id,
            Tracked {
                conn,
                phase,
                keys: vec![key],
                ends_until,
                missing_since: None,
                expires,
                fingerprint,
                over_threshold: false,
            },
            self.generation,
        );
        id
    }

    /// The last poll an earlier tracker took (with [`resume`](Self::resume)):
    /// a first poll long after it follows a gap.
    pub fn resume_polls(&mut self, last_poll_at: i64) {
        self.last_poll_at = Some(last_poll_at);
        self.generation = self.generation.max(1);
    }

    /// No more polls: the connections whose notification came after the
    /// last one end at their notification (whether a TIME_WAIT followed is
    /// left unknown).
    pub fn finish(&mut self, out: &mut Vec<Event>) {
        let closing: Vec<(u64, i64)> = self
            .conns
            .iter()
            .filter_map(|(&id, t)| match t.phase {
                Phase::Closing { at } => Some((id, at)),
                _ => None,
            })
            .collect();
        for (id, at) in closing {
            self.end(id, at, End::Destroy, out);
        }
    }

    fn namespace(&self, netns: u64) -> Option<Arc<Namespace>> {
        self.namespaces.get(&netns).cloned()
    }

    /// The connection's last socket is gone.
    fn end(&mut self, id: u64, at: i64, by: End, out: &mut Vec<Event>) {
        let Some(mut t) = self.conns.remove(&id) else { return };
        for key in &t.keys {
            self.by_key.remove_if(key, id);
            self.ended.insert(key);
        }
        let e = ends(&t.conn.entry.as_entry());
        for map in [&mut self.by_ends, &mut self.requests, &mut self.time_waits] {
            remove_if_is(map, e, id);
        }
        let at = at.max(t.conn.first_seen);
        t.conn.ended = Some((at, by));
        // Its last event: the connection goes with it, not a copy.
        out.push(Event {
            change: Change::Ended { by },
            at,
            conn: t.conn,
            baseline: false,
        });
    }

    /// A new connection on ends `e`, first known at `at`: a TIME_WAIT left
    /// on those ends that this poll did not find was ended by it, at the
    /// latest then (the kernel replaces a TIME_WAIT when it accepts a SYN on
    /// its ends, or when a connect reuses them), not at the next poll. By a
    /// poll (`polled`): only if that poll did not find the TIME_WAIT.
    fn superseded(&mut self, e: Ends, at: i64, polled: bool, out: &mut Vec<Event>) {
        let Some(&id) = self.time_waits.get(&e) else { return };
        if polled && self.conns.mark(id) == Some(self.generation) {
            return;
        }
        let t = self.conns.get_mut(&id).expect("indexed");
        let end = at.max(t.conn.last_seen);
        if t.conn.closed.is_none() {
            t.conn.closed = Some((end, End::Poll));
            emit(t, Change::Closed { by: End::Poll }, end, false, out);
        }
        self.end(id, end, End::Poll, out);
    }

    fn over(&self, entry: &Entry<'_>) -> bool {
        let s = entry.socket;
        self.options
            .queue_threshold
            .is_some_and(|t| s.state != State::Listen && (s.rx_queue > t || s.tx_queue > t))
    }
}

/// A socket the kernel disconnected before it reported it destroyed (a
/// close with SO_LINGER 0 runs tcp_disconnect, which clears the local
/// address and the remote port): its reported ends are not its
/// connection's.
fn disconnected(d: &DiagSocket) -> bool {
    d.socket.state == State::Close
        && d.socket.remote.port() == 0
        && d.socket.local.ip().is_unspecified()
        && !d.socket.remote.ip().is_unspecified()
}

/// The ends a destroy notification gives a socket whose local port the
/// kernel had released already (port 0).
fn released(e: Ends) -> Ends {
    Ends {
        ports: (0, e.ports.1),
        ..e
    }
}

fn emit(t: &Tracked, change: Change, at: i64, baseline: bool, out: &mut Vec<Event>) {
    out.push(Event {
        change,
        at,
        conn: t.conn.clone(),
        baseline,
    });
}

fn ends(entry: &Entry<'_>) -> Ends {
    Ends::new(
        entry.namespace.map_or(0, |n| n.inode),
        entry.socket.local,
        entry.socket.remote,
    )
}

/// Time to the timer's expiry in ms: netlink's own, else /proc's ticks.
fn timer_ms(entry: &Entry<'_>) -> i64 {
    entry
        .diag
        .map_or(entry.socket.timer.expires.as_millis(), |d| {
            u64::from(d.timer_ms)
        }) as i64
}

/// The best owners of two sightings: the higher status, and every owner
/// either saw (a socket passed between processes keeps them all).
fn best_owners(before: Option<Owners>, now: Option<Owners>) -> Option<Owners> {
    match (before, now) {
        (Some(Owners::Owned(a)), Some(Owners::Owned(b))) => {
            if a == b {
                return Some(Owners::Owned(a));
            }
            let mut all: Vec<_> = a.iter().chain(b.iter()).cloned().collect();
            all.sort();
            all.dedup();
            Some(Owners::Owned(all.into()))
        }
        (Some(a), Some(b)) => Some(if b.rank() >= a.rank() { b } else { a }),
        (a, b) => b.or(a),
    }
}

/// What a poll may find changed (not the timer's time left, which changes
/// all the time).
fn fingerprint(entry: &Entry<'_>, counters: &Counters) -> u64 {
    use std::hash::BuildHasher;
    let s = entry.socket;
    foldhash::fast::FixedState::with_seed(0).hash_one((
        s.state.code(),
        s.kind.as_str(),
        s.tx_queue,
        s.rx_queue,
        s.timer.kind.code(),
        s.retransmits,
        s.probes,
        s.inode,
        entry.owners.map(|o| (o.as_str(), o.owners().len())),
        entry.workload.map(|w| w.cgroup.as_str()),
        (
            counters.bytes_acked,
            counters.bytes_received,
            counters.total_retrans,
        ),
        entry.diag.and_then(|d| d.shutdown),
    ))
}

#[cfg(test)]
mod ends_tests {
    use super::{released, Ends};

    #[test]
    fn ends_are_the_addresses_and_ports_of_their_family() {
        let e = |netns, l: &str, r: &str| Ends::new(netns, l.parse().unwrap(), r.parse().unwrap());
        let v4 = e(1, "10.0.0.1:40000", "10.0.0.2:80");
        assert_eq!(v4, e(1, "10.0.0.1:40000", "10.0.0.2:80"));
        // An IPv4 address and its mapped IPv6 form are other ends.
        assert_ne!(v4, e(1, "[::ffff:10.0.0.1]:40000", "[::ffff:10.0.0.2]:80"));
        assert_ne!(v4, e(2, "10.0.0.1:40000", "10.0.0.2:80"));
        assert_ne!(v4, e(1, "10.0.0.2:40000", "10.0.0.1:80"));
        assert_ne!(v4, e(1, "10.0.0.1:80", "10.0.0.2:40000"));
        // Its local port released, as the kernel reports a socket reset by
        // its own side.
        assert_eq!(released(v4), e(1, "10.0.0.1:0", "10.0.0.2:80"));
        assert_eq!(
            released(e(1, "[fe80::1]:5000", "[fe80::2]:22")),
            e(1, "[fe80::1]:0", "[fe80::2]:22")
        );
    }
}
