//! What a poll does to the tracker: each socket it lists is a connection
//! seen again, the successor of one it no longer finds (a TIME_WAIT, the
//! full socket after a request socket) or a new connection; a connection
//! it does not find has vanished (closed, expired, or lost in a gap).

use super::{ahead, Map};

use super::{
    best_owners, emit, ends, fingerprint, released, remove_if_is, timer_ms, Ends, Phase, Tracked,
    Tracker, ENDS_POLLS,
};
use crate::model::{canonical, EntryBuf, Owners, RowKind, State};
use crate::query::Snapshot;
use crate::track::{Change, Conn, Counters, End, Event};

impl Tracker {
    /// A poll taken at `at` (when its reading began): every notification
    /// received before `at` must have been given first, those received
    /// after it after.
    pub fn polled(&mut self, snapshot: &Snapshot, at: i64, out: &mut Vec<Event>) {
        self.generation += 1;
        let generation = self.generation;
        let baseline = self.last_poll_at.is_none();
        let gap = match (self.last_poll_at, self.options.gap_after_ms) {
            (Some(last), Some(gap)) => at - last > gap,
            _ => false,
        };
        for n in snapshot.namespaces.iter().flatten() {
            self.namespaces.insert(n.inode, n.clone());
        }
        self.listeners.clear();
        for buf in snapshot
            .sockets
            .iter()
            .filter(|b| b.socket.state == State::Listen)
        {
            if let Some(w) = &buf.workload {
                let local = buf.socket.local;
                self.listeners
                    .entry((buf.netns(), local.port()))
                    .or_default()
                    .push((canonical(local).ip(), w.clone()));
            }
        }
        let mut unmatched = Vec::new();
        let mut in_order = self.by_key.begin();
        if !self.lines.is_measured() {
            if let Some((slot, t)) = self.conns.first() {
                self.lines = ahead::Lines::of(slot, t);
            }
        }
        for (i, buf) in snapshot.sockets.iter().enumerate() {
            if let Some((id, owned)) = self.by_key.ahead(&in_order, ahead::AHEAD) {
                ahead::prefetch(owned);
                if let Some((slot, mark)) = self.conns.slot_at(id) {
                    ahead::prefetch(mark);
                    self.lines.fetch(slot);
                }
            }
            let entry = buf.as_entry();
            match self.by_key.find_in_order(&entry.key(), &mut in_order) {
                // One this poll saw already (a socket listed twice) is not
                // seen again.
                Some(id) => self.look(id, buf, at, false, out),
                None => unmatched.push(i),
            }
        }
        self.by_key.polled(in_order);
        if !unmatched.is_empty() {
            self.join_or_open(snapshot, &unmatched, at, baseline, out);
        }
        let gone: Vec<u64> = self.conns.unmarked(generation).map(|(id, _)| id).collect();
        for (i, &id) in gone.iter().enumerate() {
            if let Some((slot, _)) = gone
                .get(i + ahead::AHEAD)
                .and_then(|&a| self.conns.slot_at(a))
            {
                self.lines.fetch(slot);
            }
            self.vanished(id, at, gap, out);
        }
        self.by_ends.retain(|_, id| {
            self.conns
                .get(id)
                .and_then(|t| t.ends_until)
                .is_some_and(|until| until >= generation)
        });
        self.last_poll_at = Some(self.last_poll_at.map_or(at, |last| last.max(at)));
    }

    /// The sockets no connection's key found: the successor of a socket
    /// the poll no longer finds (its TIME_WAIT, the full socket after a
    /// request socket), or new connections.
    fn join_or_open(
        &mut self,
        snapshot: &Snapshot,
        unmatched: &[usize],
        at: i64,
        baseline: bool,
        out: &mut Vec<Event>,
    ) {
        let generation = self.generation;
        // Connections this poll did not find, by their ends.
        let mut missing: Map<Ends, u64> = Map::default();
        for (id, t) in self.conns.unmarked(generation) {
            if t.phase == Phase::Live {
                missing.insert(ends(&t.conn.entry.as_entry()), id);
            }
        }
        for &i in unmatched {
            let buf = &snapshot.sockets[i];
            let entry = buf.as_entry();
            let e = ends(&entry);
            let kind = entry.socket.kind;
            let joined = match kind {
                RowKind::TimeWait => [e, released(e)]
                    .iter()
                    .find_map(|e| self.by_ends.get(e).copied())
                    .filter(|id| matches!(self.conns[id].phase, Phase::Closing { .. }))
                    .or_else(|| {
                        missing
                            .get(&e)
                            .copied()
                            .filter(|id| self.conns[id].conn.entry.socket.kind == RowKind::Full)
                    }),
                RowKind::Full => missing
                    .get(&e)
                    .copied()
                    .filter(|id| self.conns[id].conn.entry.socket.kind == RowKind::Request),
                RowKind::Request => None,
            };
            match joined {
                Some(id) => {
                    missing.remove(&e);
                    remove_if_is(&mut self.requests, e, id);
                    let key = entry.key();
                    self.by_key.insert(key, id);
                    let t = self.conns.get_mut(&id).expect("indexed");
                    t.keys.push(key);
                    for e in [e, released(e)] {
                        remove_if_is(&mut self.by_ends, e, id);
                    }
                    self.seen(id, buf, at, out);
                }
                None => self.open(buf, at, baseline, out),
            }
        }
    }

    /// A connection first seen by this poll.
    fn open(&mut self, buf: &EntryBuf, at: i64, baseline: bool, out: &mut Vec<Event>) {
        let entry = buf.as_entry();
        let id = self.conns.next_id();
        let key = entry.key();
        let time_wait = entry.socket.kind == RowKind::TimeWait;
        let mut counters = Counters::default();
        if let Some(info) = entry.diag.and_then(|d| d.tcp_info.as_deref()) {
            counters.add(info);
        }
        let over = self.over(&entry);
        if !time_wait && entry.socket.state != State::Listen {
            self.superseded(ends(&entry), at, true, out);
        }
        let mut t = Tracked {
            conn: Conn {
                id,
                entry: buf.clone(),
                first_state: entry.socket.state,
                first_seen: at,
                last_seen: at,
                seen_by_poll: true,
                closed: None,
                ended: None,
                counters,
                last_words: None,
            },
            phase: if time_wait {
                Phase::TimeWait
            } else {
                Phase::Live
            },
            keys: vec![key],
            ends_until: None,
            missing_since: None,
            expires: time_wait.then(|| at + timer_ms(&entry)),
            fingerprint: fingerprint(&entry, &counters),
            over_threshold: over,
        };
        // A request socket (or a /proc row without owners) has no cgroup of
        // its own: a listener's connection has the listener's.
        if buf.workload.is_none() && entry.socket.state != State::Listen {
            t.conn.entry.workload = self.listener_workload(key.netns(), entry.socket.local);
        }
        emit(&t, Change::Opened, at, baseline, out);
        if over && !baseline {
            emit(&t, Change::QueueGrowth, at, false, out);
        }
        if entry.socket.kind == RowKind::Request {
            self.requests.insert(ends(&entry), id);
        }
        if time_wait {
            self.time_waits.insert(ends(&entry), id);
        }
        if time_wait && self.notified.contains(&key.netns()) {
            // Its socket may still be notified, under another cookie.
            t.ends_until = Some(self.generation + ENDS_POLLS);
            self.by_ends.insert(ends(&entry), id);
        }
        self.by_key.insert(key, id);
        self.conns.insert(id, t, self.generation);
    }

    /// A known connection found by this poll.
    fn seen(&mut self, id: u64, buf: &EntryBuf, at: i64, out: &mut Vec<Event>) {
        self.look(id, buf, at, true, out);
    }

    /// [`Tracker::seen`], or with `again` false nothing for a connection
    /// this poll saw already (one lookup of the connection for both).
    fn look(&mut self, id: u64, buf: &EntryBuf, at: i64, again: bool, out: &mut Vec<Event>) {
        let entry = buf.as_entry();
        let over = self.over(&entry);
        let generation = self.generation;
        if !again && self.conns.mark(id) == Some(generation) {
            return;
        }
        self.conns.set_mark(id, generation);
        let t = self.conns.get_mut(&id).expect("indexed");
        t.missing_since = None;
        t.conn.last_seen = t.conn.last_seen.max(at);
        t.conn.seen_by_poll = true;
        if t.phase == Phase::TimeWait && same_time_wait(&t.conn.entry, buf) {
            // Only its timer moved: nothing to merge, compare or tell (a
            // churn's TIME_WAITs are most of what a poll lists again).
            t.expires = Some(at + timer_ms(&entry));
            t.conn.entry.socket.timer = buf.socket.timer;
            t.conn.entry.socket.sl = buf.socket.sl;
            if let (Some(d), Some(now)) = (t.conn.entry.diag.as_mut(), buf.diag.as_ref()) {
                d.timer_ms = now.timer_ms;
            }
            return;
        }
        let from = t.conn.entry.socket.state;
        let mut changed_at = at;
        if entry.socket.kind == RowKind::TimeWait {
            t.expires = Some(at + timer_ms(&entry));
            if let Phase::Closing { at: closed } = t.phase {
                // The TIME_WAIT was there when the socket was destroyed.
                changed_at = closed.min(at);
            }
            if t.phase != Phase::TimeWait {
                t.phase = Phase::TimeWait;
                self.time_waits.insert(ends(&entry), id);
            }
        }
        let owners = best_owners(t.conn.entry.owners.take(), buf.owners.clone());
        // A TIME_WAIT has no cgroup: it keeps its connection's workload.
        let workload = buf.workload.clone().or(t.conn.entry.workload.take());
        t.conn.entry.clone_from(buf);
        t.conn.entry.owners = owners;
        t.conn.entry.workload = workload;
        if let Some(info) = entry.diag.and_then(|d| d.tcp_info.as_deref()) {
            t.conn.counters.add(info);
        }
        // A change of state is an update of the rest too.
        let now = fingerprint(&t.conn.entry.as_entry(), &t.conn.counters);
        if entry.socket.state != from {
            emit(t, Change::StateChanged { from }, changed_at, false, out);
        } else if now != t.fingerprint {
            emit(t, Change::Updated, at, false, out);
        }
        t.fingerprint = now;
        if over && !t.over_threshold {
            emit(t, Change::QueueGrowth, at, false, out);
        }
        t.over_threshold = over;
    }

    /// A connection this poll did not find.
    fn vanished(&mut self, id: u64, at: i64, gap: bool, out: &mut Vec<Event>) {
        let notified = self.notified.contains(&self.conns[&id].conn.entry.netns());
        let t = self.conns.get_mut(&id).expect("listed");
        let last_seen = t.conn.last_seen;
        let (end, by) = match t.phase {
            Phase::Closing { at: closed } => (closed, End::Destroy),
            Phase::TimeWait => match t.expires {
                Some(expiry) if expiry <= at => (expiry, End::Expired),
                _ if gap => (last_seen, End::Gap),
                _ => (at, End::Poll),
            },
            Phase::Live if notified && !gap && t.missing_since.is_none() => {
                // Its notification may be on its way: one more poll.
                t.missing_since = Some(at);
                return;
            }
            Phase::Live if gap => (last_seen, End::Gap),
            Phase::Live => (t.missing_since.unwrap_or(at), End::Poll),
        };
        let end = end.max(last_seen);
        if t.conn.closed.is_none() {
            t.conn.closed = Some((end, by));
            emit(t, Change::Closed { by }, end, false, out);
        }
        self.end(id, end, by, out);
    }
}

/// `now` is the TIME_WAIT `before` was, its timer and its place in the
/// listing (`sl`, which moves under churn) aside: the same socket in every
/// other field, owners that add nothing to those kept (a TIME_WAIT has no
/// process), no workload, the same namespace. A look of it would change
/// nothing but those two.
fn same_time_wait(before: &EntryBuf, now: &EntryBuf) -> bool {
    let (b, n) = (&before.socket, &now.socket);
    n.kind == RowKind::TimeWait
        && b.kind == RowKind::TimeWait
        && crate::model::Socket {
            timer: b.timer,
            sl: b.sl,
            ..*n
        } == *b
        && match (&before.owners, &now.owners) {
            (_, None) => true,
            // What `best_owners` keeps.
            (Some(b), Some(n)) => !matches!(n, Owners::Owned(_)) && (b == n || b.rank() > n.rank()),
            (None, Some(_)) => false,
        }
        && now.workload.is_none()
        && now.source == before.source
        && now.peer_pod == before.peer_pod
        && now.namespace.as_ref().map(|n| n.inode) == before.namespace.as_ref().map(|n| n.inode)
        && match (&before.diag, &now.diag) {
            (Some(b), Some(n)) => {
                b.cookie == n.cookie && b.tcp_info.is_none() && n.tcp_info.is_none()
            }
            (None, None) => true,
            _ => false,
        }
}

#[cfg(test)]
mod tests {
    use super::same_time_wait;
    use crate::model::{Diag, DiagSocket, EntryBuf, Family, Owners, RowKind, Socket, State};

    fn time_wait(sl: u32, timer_ms: u32, state: State) -> EntryBuf {
        let mut socket = Socket::empty(Family::Ipv4, RowKind::TimeWait);
        socket.state = state;
        socket.sl = sl;
        socket.local = "127.0.0.1:40001".parse().unwrap();
        socket.remote = "127.0.0.1:80".parse().unwrap();
        let diag = Diag {
            cookie: 7,
            timer_ms,
            ..Diag::default()
        };
        EntryBuf::dumped(DiagSocket { socket, diag }).with_owners(Some(Owners::NoProcess))
    }

    /// A TIME_WAIT listed again at another place, its timer lower, is the
    /// one seen before (under churn every poll lists it elsewhere); one
    /// whose state moved is not.
    #[test]
    fn a_time_wait_elsewhere_in_the_listing_is_the_same() {
        let before = time_wait(965, 52_090, State::TimeWait);
        assert!(same_time_wait(
            &before,
            &time_wait(1164, 51_090, State::TimeWait)
        ));
        assert!(!same_time_wait(
            &before,
            &time_wait(1164, 51_090, State::FinWait2)
        ));
    }
}
