//! The tracker on every order in which a connection's sockets, its
//! notification and the polls can come (the helpers they share here).

use super::*;
use crate::model::{Diag, DiagSocket, EntryBuf, Family, Owner, Owners, RowKind, Socket, Source};
use crate::query::Snapshot;

const T: i64 = 1_800_000_000_000;

/// A socket from 127.0.0.1:`port` to 127.0.0.1:80.
fn socket(port: u16, state: State) -> Socket {
    let kind = match state {
        State::TimeWait => RowKind::TimeWait,
        State::SynRecv => RowKind::Request,
        _ => RowKind::Full,
    };
    let mut s = Socket::empty(Family::Ipv4, kind);
    s.state = state;
    s.local = format!("127.0.0.1:{port}").parse().unwrap();
    s.remote = "127.0.0.1:80".parse().unwrap();
    s
}

fn dumped(port: u16, state: State, cookie: u64) -> DiagSocket {
    let diag = Diag {
        cookie,
        timer_ms: if state == State::TimeWait { 60_000 } else { 0 },
        ..Diag::default()
    };
    DiagSocket {
        socket: socket(port, state),
        diag,
    }
}

fn netlink(sockets: &[DiagSocket]) -> Snapshot {
    Snapshot::of(sockets.iter().cloned().map(EntryBuf::dumped).collect())
}

/// A netlink poll at `at` that lists `sockets`.
trait Poll {
    fn poll(&mut self, at: i64, sockets: &[DiagSocket], out: &mut Vec<Event>);
}

impl Poll for Tracker {
    fn poll(&mut self, at: i64, sockets: &[DiagSocket], out: &mut Vec<Event>) {
        self.polled(&netlink(sockets), at, out);
    }
}

fn proc(sockets: &[Socket]) -> Snapshot {
    Snapshot::of(
        sockets
            .iter()
            .map(|s| EntryBuf::new(*s, Source::Proc))
            .collect(),
    )
}

/// A tracker with notifications on in the reader's own namespace, and
/// the list its events go to.
fn tracker() -> (Tracker, Vec<Event>) {
    let mut t = Tracker::new(TrackOptions {
        queue_threshold: None,
        gap_after_ms: Some(20_000),
    });
    t.set_notified(0, true);
    (t, Vec::new())
}

/// (change, at, id) of each event, for comparing.
/// A change of state from `from`, at `at`, of connection `id`.
fn changed(from: State, at: i64, id: u64) -> (Change, i64, u64) {
    (Change::StateChanged { from }, at, id)
}

/// Each event's change, time and connection: the connection numbered in
/// the order it was first told of (1, 2, ...), which is what tells two
/// apart (the tracker's ids name its slots, reused).
fn changes(events: &[Event]) -> Vec<(Change, i64, u64)> {
    let mut order: Vec<u64> = Vec::new();
    let mut nth = |id: u64| match order.iter().position(|&o| o == id) {
        Some(i) => i as u64 + 1,
        None => {
            order.push(id);
            order.len() as u64
        }
    };
    events
        .iter()
        .map(|e| (e.change, e.at, nth(e.conn.id)))
        .collect()
}

/// Every connection once: one Opened, at most one Closed and Ended each.
fn once_each(events: &[Event]) {
    use std::collections::HashMap;
    let mut seen: HashMap<(u64, &str), u32> = HashMap::new();
    for e in events {
        let kind = match e.change {
            Change::Opened => "opened",
            Change::Closed { .. } => "closed",
            Change::Ended { .. } => "ended",
            _ => continue,
        };
        *seen.entry((e.conn.id, kind)).or_default() += 1;
    }
    for ((id, kind), n) in seen {
        assert_eq!(n, 1, "connection {id}: {kind} {n} times in {events:#?}");
    }
}

mod kept;
mod orders;
mod polls;
