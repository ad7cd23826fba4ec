//! [`Tally`]: counters of what happened to connections, per bounded group,
//! from the connection tracker's events (no I/O: an exporter feeds it what
//! its [`Monitor`](crate::track::Monitor) hands over).
//!
//! A connection belongs to one group from its first sighting to its end:
//! the listener that accepted it (its local address and port, matched
//! against the listening sockets of its namespace, a wildcard listener
//! included), or none for a connection this host opened (by its remote
//! port, when that is one of the ports asked for); with the namespace and
//! the workload as further labels when asked. Per group:
//!
//! - connections opened (those open when counting began included) and
//!   closed, by the state they were last seen in before the kernel
//!   destroyed them;
//! - bytes received and acked, segments retransmitted, retransmission
//!   timeouts (tcp_info's `total_rto`, from Linux 6.7): the closed
//!   connections' final tcp_info (as high as ever seen: a reset zeroes
//!   them in the kernel before the notification) plus the open ones' as of
//!   the last poll. Every connection is counted once, whether it was seen
//!   open, closing or both, so a counter never goes down;
//! - which side closed first, where a poll saw it: this side when the
//!   connection was seen in FIN_WAIT1, FIN_WAIT2, CLOSING or TIME_WAIT
//!   (a close from this side always leaves a TIME_WAIT, which the next
//!   poll finds), the peer when seen in CLOSE_WAIT or LAST_ACK (which the
//!   kernel keeps only until this side closes too: a close that quick is
//!   in neither). A reset leaves neither;
//! - how long the closed connections lived (a histogram);
//! - polls that found the listener's accept queue full (more waiting than
//!   its backlog: the kernel then drops new connections).
//!
//! Beyond `max_series` groups, new groups' connections are counted in one
//! group whose `listener` is `other`.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use crate::model::{canonical, EntryBuf, State};
use crate::track::{Change, Conn, Counters, Event, Happened};

use super::{endpoint, Labels, Series};

/// Which labels a [`Tally`] groups by, and how many groups it keeps.
#[derive(Debug, Clone, Default)]
pub struct TallyOptions {
    /// A `netns` label first.
    pub per_namespace: bool,
    /// The workload's labels (`namespace`, `pod`, `container`, `unit`).
    pub per_workload: bool,
    /// At most this many groups; the rest are counted in `listener="other"`.
    pub max_series: usize,
    /// A `port` label: a connection this host opened to one of these
    /// remote ports (a service it uses) is counted in a group of its own.
    pub ports: Vec<u16>,
}

/// Upper bounds (seconds) of the duration histogram's buckets; the last
/// bucket is +Inf.
pub const DURATION_BUCKETS: [f64; 14] = [
    0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0,
];

/// A histogram by its bucket counts (not cumulative; the last is +Inf).
#[derive(Debug, Clone, PartialEq)]
pub struct DurationHistogram {
    pub sum: f64,
    pub count: u64,
    /// (upper bound, observations in this bucket only).
    pub buckets: Vec<(f64, u64)>,
}

impl Default for DurationHistogram {
    fn default() -> DurationHistogram {
        let mut buckets: Vec<(f64, u64)> = DURATION_BUCKETS.iter().map(|&b| (b, 0)).collect();
        buckets.push((f64::INFINITY, 0));
        DurationHistogram {
            sum: 0.0,
            count: 0,
            buckets,
        }
    }
}

impl DurationHistogram {
    pub fn observe(&mut self, seconds: f64) {
        self.sum += seconds;
        self.count += 1;
        if let Some(b) = self.buckets.iter_mut().find(|(le, _)| seconds <= *le) {
            b.1 += 1;
        }
    }
}

/// The counters of a group, as of now.
#[derive(Debug, Clone, Default)]
pub struct Tallied {
    pub opened: Vec<Series>,
    /// With a `state` label last.
    pub closed: Vec<Series>,
    pub bytes_received: Vec<Series>,
    pub bytes_acked: Vec<Series>,
    pub retransmitted_segments: Vec<Series>,
    /// Retransmission timeouts (tcp_info's total_rto, Linux 6.7).
    pub retransmit_timeouts: Vec<Series>,
    /// Listener groups only.
    pub listen_queue_full: Vec<Series>,
    pub durations: Vec<(Labels, DurationHistogram)>,
    /// Connections by the side that closed first, with a `side` label
    /// last (`local`, `peer`): only those where a poll saw it.
    pub closed_first: Vec<Series>,
    /// Connections counted in `listener="other"` for want of room.
    pub over_the_cap: u64,
    /// Times the kernel dropped destroy notifications: the connections
    /// that closed meanwhile count what the last poll saw of them.
    pub notifications_lost: u64,
    /// When each group's counters began (ms since the Unix epoch: the
    /// moment its first connection was counted), by the group's labels;
    /// OpenMetrics' `_created`.
    pub created: Vec<(Labels, i64)>,
    /// When counting began (the first poll or notification): the
    /// `_created` of the counters of no group.
    pub started: Option<i64>,
}

/// The three byte and segment counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Sums {
    received: u64,
    acked: u64,
    retransmitted: u64,
    timeouts: u64,
}

impl Sums {
    fn of(c: &Counters) -> Sums {
        Sums {
            received: c.bytes_received.unwrap_or(0),
            acked: c.bytes_acked.unwrap_or(0),
            retransmitted: c.total_retrans.unwrap_or(0),
            timeouts: c.total_rto.unwrap_or(0),
        }
    }

    fn add(&mut self, other: Sums) {
        self.received += other.received;
        self.acked += other.acked;
        self.retransmitted += other.retransmitted;
        self.timeouts += other.timeouts;
    }

    fn sub(&mut self, other: Sums) {
        self.received = self.received.saturating_sub(other.received);
        self.acked = self.acked.saturating_sub(other.acked);
        self.retransmitted = self.retransmitted.saturating_sub(other.retransmitted);
        self.timeouts = self.timeouts.saturating_sub(other.timeouts);
    }
}

#[derive(Debug, Default)]
struct Group {
    labels: Labels,
    listener: bool,
    opened: u64,
    /// By the state last seen by a poll (`none`: no poll saw it open).
    closed: BTreeMap<String, u64>,
    /// The closed connections' final counters.
    done: Sums,
    /// The open connections' counters as last seen.
    live: Sums,
    durations: DurationHistogram,
    queue_full: u64,
    /// When it was made (ms since the Unix epoch).
    created: i64,
    /// By [`Side`]: this side, the peer.
    closed_first: [u64; 2],
}

/// The side of a connection that closed first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Local = 0,
    Peer = 1,
}

impl Side {
    /// What a socket in `state` says of who closed first.
    fn of(state: State) -> Option<Side> {
        match state {
            State::FinWait1 | State::FinWait2 | State::Closing | State::TimeWait => {
                Some(Side::Local)
            }
            State::CloseWait | State::LastAck => Some(Side::Peer),
            _ => None,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Side::Local => "local",
            Side::Peer => "peer",
        }
    }
}

/// An open connection: its group and what it has counted there. A
/// connection no known listener accepted waits for the next poll (which
/// finds a listener opened since the last one) with its entry.
#[derive(Debug)]
struct Live {
    group: Option<usize>,
    counted: Sums,
    entry: Option<Box<EntryBuf>>,
    /// Who closed first, once a poll saw it (counted with its group).
    side: Option<Side>,
}

/// A connection that closed before its group was known.
#[derive(Debug)]
struct Unplaced {
    id: u64,
    entry: EntryBuf,
    end: End,
    /// Its last socket is gone too (no TIME_WAIT of it is to come).
    ended: bool,
}

/// How a connection ended, for its group.
#[derive(Debug)]
struct End {
    last: Sums,
    state: String,
    /// Seconds from its first poll to its end (None: no poll saw it).
    lived: Option<f64>,
    side: Option<Side>,
}

/// Counters of what happened (see the [module](self) documentation).
#[derive(Debug, Default)]
pub struct Tally {
    options: TallyOptions,
    /// Listening sockets by namespace and port: (address, tracker id).
    listeners: HashMap<(u64, u16), Vec<(IpAddr, u64)>>,
    live: HashMap<u64, Live>,
    /// Closed connections whose TIME_WAIT may yet say that this side
    /// closed first: their group, until they end.
    closing: HashMap<u64, usize>,
    /// By tracker id (the order they came in).
    unplaced: BTreeMap<u64, Unplaced>,
    groups: Vec<Group>,
    index: HashMap<Labels, usize>,
    over_the_cap: u64,
    lost: u64,
    /// The time of what was last taken in (ms since the Unix epoch), and
    /// of the first.
    now: i64,
    started: Option<i64>,
}

impl Tally {
    pub fn new(options: TallyOptions) -> Tally {
        Tally {
            options,
            ..Tally::default()
        }
    }

    /// Take in what a monitor handed over.
    pub fn happened(&mut self, happened: &Happened<'_>) {
        let at = match happened {
            Happened::Event(event) => event.at,
            Happened::Polled(done) => done.at,
            Happened::Lost { at, .. } => *at,
        };
        self.now = self.now.max(at);
        self.started.get_or_insert(at);
        match happened {
            Happened::Event(event) => self.event(event),
            Happened::Polled(done) => self.polled(&done.snapshot.sockets),
            Happened::Lost { .. } => self.lost += 1,
        }
    }

    /// After a poll's events: the listeners it found are known, so the
    /// connections waiting for their group get it; then the accept queues.
    fn polled(&mut self, sockets: &[EntryBuf]) {
        let waiting: Vec<u64> = self
            .live
            .iter()
            .filter(|(_, l)| l.group.is_none())
            .map(|(&id, _)| id)
            .collect();
        for id in waiting {
            let Some(live) = self.live.get_mut(&id) else {
                continue;
            };
            let Some(entry) = live.entry.take() else {
                continue;
            };
            let (counted, side) = (live.counted, live.side);
            let group = self.place(&entry);
            self.groups[group].live.add(counted);
            if let Some(side) = side {
                self.groups[group].closed_first[side as usize] += 1;
            }
            if let Some(live) = self.live.get_mut(&id) {
                live.group = Some(group);
            }
        }
        for u in std::mem::take(&mut self.unplaced).into_values() {
            let group = self.place(&u.entry);
            match u.end.side {
                Some(side) => self.groups[group].closed_first[side as usize] += 1,
                None if !u.ended => _ = self.closing.insert(u.id, group),
                None => {}
            }
            self.end(group, u.end);
        }
        for buf in sockets {
            self.listen_queue(buf);
        }
    }

    fn event(&mut self, event: &Event) {
        let conn = &event.conn;
        let listening = conn.first_state == State::Listen;
        match event.change {
            Change::Opened if listening => {
                let s = &conn.entry.socket;
                self.listeners
                    .entry((netns_of(&conn.entry), s.local.port()))
                    .or_default()
                    .push((canonical(s.local).ip(), conn.id));
            }
            Change::Opened => {
                let counted = Sums::of(&conn.counters);
                let group = self
                    .listener_of(&conn.entry)
                    .map(|_| self.place(&conn.entry));
                let side = Side::of(conn.entry.socket.state);
                if let Some(g) = group {
                    self.groups[g].live.add(counted);
                    if let Some(side) = side {
                        self.groups[g].closed_first[side as usize] += 1;
                    }
                }
                let entry = group.is_none().then(|| Box::new(conn.entry.clone()));
                self.live.insert(
                    conn.id,
                    Live {
                        group,
                        counted,
                        entry,
                        side,
                    },
                );
            }
            Change::Closed { .. } | Change::Ended { .. } if listening => {
                let s = &conn.entry.socket;
                let key = (netns_of(&conn.entry), s.local.port());
                if let Some(all) = self.listeners.get_mut(&key) {
                    all.retain(|&(_, id)| id != conn.id);
                    if all.is_empty() {
                        self.listeners.remove(&key);
                    }
                }
            }
            Change::Closed { .. } => self.closed(conn),
            Change::Ended { .. } => {
                self.closed(conn);
                self.closing.remove(&conn.id);
                if let Some(u) = self.unplaced.get_mut(&conn.id) {
                    u.ended = true;
                }
            }
            Change::StateChanged { .. } | Change::Updated | Change::QueueGrowth => {
                let side = Side::of(conn.entry.socket.state);
                if let Some(live) = self.live.get_mut(&conn.id) {
                    let now = Sums::of(&conn.counters);
                    if let Some(g) = live.group {
                        let g = &mut self.groups[g];
                        g.live.sub(live.counted);
                        g.live.add(now);
                        if let (None, Some(side)) = (live.side, side) {
                            g.closed_first[side as usize] += 1;
                        }
                    }
                    live.counted = now;
                    live.side = live.side.or(side);
                } else if let Some(side) = side {
                    // Its TIME_WAIT, after its socket was destroyed.
                    if let Some(g) = self.closing.remove(&conn.id) {
                        self.groups[g].closed_first[side as usize] += 1;
                    } else if let Some(u) = self.unplaced.get_mut(&conn.id) {
                        u.end.side = u.end.side.or(Some(side));
                    }
                }
            }
        }
    }

    /// A connection's socket is gone (once: a TIME_WAIT after it, or its
    /// end, is not counted again).
    fn closed(&mut self, conn: &Conn) {
        let Some(live) = self.live.remove(&conn.id) else {
            return;
        };
        let at = conn
            .closed
            .or(conn.ended)
            .map_or(conn.last_seen, |(at, _)| at);
        let end = End {
            last: Sums::of(&conn.counters),
            state: match conn.seen_by_poll {
                true => conn.entry.socket.state.to_string(),
                false => "none".to_string(),
            },
            lived: conn
                .seen_by_poll
                .then(|| (at - conn.first_seen).max(0) as f64 / 1000.0),
            side: live.side,
        };
        match (live.group, live.entry) {
            (Some(group), _) => {
                self.groups[group].live.sub(live.counted);
                if live.side.is_none() && conn.ended.is_none() {
                    self.closing.insert(conn.id, group);
                }
                self.end(group, end);
            }
            (None, Some(entry)) => {
                let u = Unplaced {
                    id: conn.id,
                    entry: *entry,
                    end,
                    ended: false,
                };
                self.unplaced.insert(conn.id, u);
            }
            (None, None) => {}
        }
    }

    /// A connection of `group` ended (its opening was counted with its
    /// group, or is counted now for one placed at its end).
    fn end(&mut self, group: usize, end: End) {
        let g = &mut self.groups[group];
        g.done.add(end.last);
        *g.closed.entry(end.state).or_default() += 1;
        if let Some(seconds) = end.lived {
            g.durations.observe(seconds);
        }
    }

    /// A listener's accept queue, at a poll.
    fn listen_queue(&mut self, buf: &EntryBuf) {
        let s = &buf.socket;
        let limit = buf.diag.as_ref().and_then(|d| d.backlog_limit);
        let full = limit.is_some_and(|l| s.rx_queue > l);
        if s.state != State::Listen || !full {
            return;
        }
        let labels = self.labels(buf, Some(endpoint(s.local)));
        if let Some(group) = self.group(labels, true) {
            self.groups[group].queue_full += 1;
        }
    }

    /// The counters as of now, group by group in label order.
    pub fn tallied(&self) -> Tallied {
        let mut groups: Vec<&Group> = self.groups.iter().collect();
        groups.sort_by(|a, b| a.labels.cmp(&b.labels));
        let mut out = Tallied {
            over_the_cap: self.over_the_cap,
            notifications_lost: self.lost,
            started: self.started,
            ..Tallied::default()
        };
        for g in groups {
            let series = |value: u64| Series {
                labels: g.labels.clone(),
                value,
            };
            let mut sums = g.done;
            sums.add(g.live);
            out.opened.push(series(g.opened));
            for (state, n) in &g.closed {
                let mut labels = g.labels.clone();
                labels.push(("state", state.clone()));
                out.closed.push(Series { labels, value: *n });
            }
            out.bytes_received.push(series(sums.received));
            out.bytes_acked.push(series(sums.acked));
            out.retransmitted_segments.push(series(sums.retransmitted));
            out.retransmit_timeouts.push(series(sums.timeouts));
            if g.listener {
                out.listen_queue_full.push(series(g.queue_full));
            }
            for side in [Side::Local, Side::Peer] {
                let mut labels = g.labels.clone();
                labels.push(("side", side.label().to_string()));
                let value = g.closed_first[side as usize];
                out.closed_first.push(Series { labels, value });
            }
            out.durations.push((g.labels.clone(), g.durations.clone()));
            out.created.push((g.labels.clone(), g.created));
        }
        out
    }
}

fn netns_of(entry: &EntryBuf) -> u64 {
    entry.namespace.as_ref().map_or(0, |n| n.inode)
}

mod groups;
#[cfg(test)]
mod tests;
