//! What a destroy notification does to the tracker: it closes the
//! connection it names (found by its cookie, by the ends of a TIME_WAIT
//! first seen on its own, or as the full socket of a request socket a poll
//! saw), or brings one that opened and closed between two polls.

use std::sync::Arc;

use super::{
    disconnected, emit, fingerprint, remove_if_is, Ends, Phase, Tracked, Tracker, ENDS_POLLS,
};
use crate::model::{DiagSocket, EntryBuf, Key, State, Workload};
use crate::track::{Change, Conn, Counters, End, Event};

impl Tracker {
    /// The kernel destroyed a socket of namespace `netns` (a destroy
    /// notification received at `at`).
    pub fn notified(&mut self, netns: u64, at: i64, d: DiagSocket, out: &mut Vec<Event>) {
        self.notified_with(netns, at, d, None, out);
    }

    /// [`Tracker::notified`], with the workload of the socket's cgroup when
    /// the notification carries its id. Linux's destroy notifications do
    /// not today: a connection seen only by its notification then takes
    /// the workload of the listener that accepted it, when the last poll
    /// saw that listener (the kernel gives an accepted socket its
    /// listener's cgroup); one it opened has none. One seen by a poll
    /// keeps its own.
    pub fn notified_with(
        &mut self,
        netns: u64,
        at: i64,
        d: DiagSocket,
        workload: Option<Arc<Workload>>,
        out: &mut Vec<Event>,
    ) {
        let key = Key::of(netns, &d.socket, Some(&d.diag));
        let ends = Ends::new(netns, d.socket.local, d.socket.remote);
        let workload = workload.or_else(|| self.listener_workload(netns, d.socket.local));
        let known = self.by_key.get(&key).copied().or_else(|| {
            // A TIME_WAIT first seen on its own, whose socket had no
            // cookie yet when the kernel made it; not one whose ends a new
            // connection took (that one is this notification's).
            self.by_ends.get(&ends).copied().filter(|id| {
                let t = &self.conns[id];
                t.phase == Phase::TimeWait && t.conn.closed.is_none() && !heard_after(t, at, &d)
            })
        });
        let known = known.or_else(|| {
            // The full socket of a request socket a poll saw: the same
            // connection, under the cookie the kernel gave the full one.
            let id = self.requests.remove(&ends)?;
            let t = self.conns.get_mut(&id)?;
            t.keys.push(key);
            self.by_key.insert(key, id);
            Some(id)
        });
        let namespace = self.namespace(netns);
        match known {
            Some(id) => {
                let t = self.conns.get_mut(&id).expect("indexed");
                if t.conn.closed.is_some() {
                    return;
                }
                if let Some(info) = d.diag.tcp_info.as_deref() {
                    t.conn.counters.add(info);
                }
                let at = at.max(t.conn.first_seen);
                let mut d = d;
                if disconnected(&d) {
                    // Reset by its own side: the kernel cleared the ends it
                    // reports; they were the connection's.
                    d.socket.local = t.conn.entry.socket.local;
                    d.socket.remote = t.conn.entry.socket.remote;
                }
                t.conn.last_words = Some(Arc::new(
                    EntryBuf::dumped(d)
                        .with_namespace(namespace)
                        .with_owners(t.conn.entry.owners.clone())
                        .with_workload(t.conn.entry.workload.clone().or(workload)),
                ));
                t.conn.closed = Some((at, End::Destroy));
                t.conn.last_seen = t.conn.last_seen.max(at);
                t.missing_since = None;
                match t.phase {
                    Phase::Live => {
                        t.phase = Phase::Closing { at };
                        t.ends_until = Some(self.generation + ENDS_POLLS);
                        self.by_ends.insert(ends, id);
                    }
                    Phase::TimeWait => {
                        t.ends_until = None;
                        remove_if_is(&mut self.by_ends, ends, id);
                    }
                    Phase::Closing { .. } => {}
                }
                emit(t, Change::Closed { by: End::Destroy }, at, false, out);
            }
            None if self.ended.contains(&key) => {}
            None if never_connected(&d) => {}
            None => self.open_notified(key, ends, at, d, workload, out),
        }
    }

    /// A connection opened and closed between two polls, seen only at its
    /// notification.
    fn open_notified(
        &mut self,
        key: Key,
        ends: Ends,
        at: i64,
        d: DiagSocket,
        workload: Option<Arc<Workload>>,
        out: &mut Vec<Event>,
    ) {
        self.superseded(ends, at, false, out);
        let namespace = self.namespace(ends.netns);
        // Opened and closed between two polls: seen only now.
        let id = self.conns.next_id();
        let entry = EntryBuf {
            namespace,
            workload,
            ..EntryBuf::dumped(d)
        };
        let mut counters = Counters::default();
        if let Some(info) = entry.diag.as_ref().and_then(|d| d.tcp_info.as_deref()) {
            counters.add(info);
        }
        let conn = Conn {
            id,
            first_state: entry.socket.state,
            first_seen: at,
            last_seen: at,
            seen_by_poll: false,
            closed: Some((at, End::Destroy)),
            ended: None,
            counters,
            last_words: Some(Arc::new(entry.clone())),
            entry,
        };
        let fingerprint = fingerprint(&conn.entry.as_entry(), &conn.counters);
        let t = Tracked {
            conn,
            phase: Phase::Closing { at },
            keys: vec![key],
            ends_until: Some(self.generation + ENDS_POLLS),
            missing_since: None,
            expires: None,
            fingerprint,
            over_threshold: false,
        };
        emit(&t, Change::Opened, at, false, out);
        emit(&t, Change::Closed { by: End::Destroy }, at, false, out);
        self.by_key.insert(key, id);
        self.by_ends.insert(ends, id);
        self.conns.insert(id, t, 0);
    }
}

/// How long a TIME_WAIT lasts (the kernel's TCP_TIMEWAIT_LEN): its timer
/// says when it began.
const TIME_WAIT_MS: i64 = 60_000;

/// How much later than a TIME_WAIT's beginning the notified socket may have
/// last heard from its peer and still be that TIME_WAIT's socket: the
/// notification's delivery and a poll's reading. The kernel gives a
/// TIME_WAIT's ends to an automatically bound connect() no sooner than
/// `tcp_tw_reuse_delay` (1 s by default) after it began.
const HEARD_SLACK_MS: i64 = 500;

/// Whether the notified socket heard from its peer after the TIME_WAIT `t`
/// began: then it is not that TIME_WAIT's socket (a socket stops hearing
/// when it goes into TIME_WAIT, at the segment that put it there) but a new
/// connection on its ends. Without the kernel's `tcp_info`, or for a
/// FIN_WAIT2 whose timer is not a TIME_WAIT's, it cannot tell: no.
fn heard_after(t: &Tracked, at: i64, d: &DiagSocket) -> bool {
    let (Some(expires), Some(info)) = (t.expires, d.diag.tcp_info.as_deref()) else {
        return false;
    };
    if t.conn.entry.socket.state != State::TimeWait {
        return false;
    }
    let began = expires - TIME_WAIT_MS;
    let heard = at - i64::from(info.last_ack_recv_ms);
    heard > began + HEARD_SLACK_MS
}

/// A socket that never had a connection, whose end the kernel reports too:
/// one that never had a peer (made and closed without a `connect()`, or
/// only bound), or whose `connect()` failed (refused, or no free ends):
/// the kernel cleared its remote port, and it never measured a round trip.
/// A connection reset by its own side has its remote port cleared as well,
/// but its handshake measured one.
fn never_connected(d: &DiagSocket) -> bool {
    d.socket.remote.ip().is_unspecified()
        || d.socket.remote.port() == 0
            && d.diag
                .tcp_info
                .as_deref()
                .is_some_and(|i| i.min_rtt_us == u32::MAX)
}
