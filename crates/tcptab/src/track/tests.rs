//! The tracker on every order in which a connection's sockets, its
//! notification and the polls can come.

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

fn proc(sockets: &[Socket]) -> Snapshot {
    Snapshot::of(
        sockets
            .iter()
            .map(|s| EntryBuf::new(*s, Source::Proc))
            .collect(),
    )
}

/// A tracker with notifications on in the reader's own namespace.
fn tracker() -> Tracker {
    let mut t = Tracker::new(TrackOptions {
        queue_threshold: None,
        gap_after_ms: Some(20_000),
    });
    t.set_notified(0, true);
    t
}

/// (change, at, id) of each event, for comparing.
/// A change of state from `from`, at `at`, of connection `id`.
fn changed(from: State, at: i64, id: u64) -> (Change, i64, u64) {
    (Change::StateChanged { from }, at, id)
}

fn changes(events: &[Event]) -> Vec<(Change, i64, u64)> {
    events.iter().map(|e| (e.change, e.at, e.conn.id)).collect()
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

#[test]
fn a_notification_before_the_time_wait_is_one_connection_in_time_wait_from_then() {
    let mut t = tracker();
    let mut out = Vec::new();
    t.polled(
        &netlink(&[dumped(40000, State::Established, 7)]),
        T,
        &mut out,
    );
    t.notified(0, T + 100, dumped(40000, State::Close, 7), &mut out);
    t.polled(
        &netlink(&[dumped(40000, State::TimeWait, 7)]),
        T + 1000,
        &mut out,
    );
    t.polled(&netlink(&[]), T + 70_000, &mut out);
    once_each(&out);
    assert_eq!(
        changes(&out),
        [
            (Change::Opened, T, 1),
            (Change::Closed { by: End::Destroy }, T + 100, 1),
            changed(State::Established, T + 100, 1),
            // The TIME_WAIT's timer said when it would go.
            (Change::Ended { by: End::Expired }, T + 61_000, 1),
        ]
    );
    assert!(out[0].baseline);
    assert!(t.is_empty());
}

#[test]
fn a_time_wait_before_the_notification_is_the_same_connection() {
    let mut t = tracker();
    let mut out = Vec::new();
    t.polled(
        &netlink(&[dumped(40000, State::Established, 7)]),
        T,
        &mut out,
    );
    t.polled(
        &netlink(&[dumped(40000, State::TimeWait, 7)]),
        T + 1000,
        &mut out,
    );
    t.notified(0, T + 1500, dumped(40000, State::Close, 7), &mut out);
    t.polled(&netlink(&[]), T + 2000, &mut out);
    once_each(&out);
    assert_eq!(
        changes(&out),
        [
            (Change::Opened, T, 1),
            changed(State::Established, T + 1000, 1),
            (Change::Closed { by: End::Destroy }, T + 1500, 1),
            // Gone before its timer said: it ended by the poll.
            (Change::Ended { by: End::Poll }, T + 2000, 1),
        ]
    );
}

#[test]
fn a_short_connection_and_its_time_wait_with_a_cookie_of_its_own_are_one() {
    // Never dumped: its TIME_WAIT got a cookie of its own (12), its
    // notification the socket's (11). Both orders.
    for notification_first in [true, false] {
        let mut t = tracker();
        let mut out = Vec::new();
        t.polled(&netlink(&[]), T, &mut out);
        if notification_first {
            t.notified(0, T + 100, dumped(40001, State::Close, 11), &mut out);
            t.polled(
                &netlink(&[dumped(40001, State::TimeWait, 12)]),
                T + 1000,
                &mut out,
            );
        } else {
            t.polled(
                &netlink(&[dumped(40001, State::TimeWait, 12)]),
                T + 1000,
                &mut out,
            );
            t.notified(0, T + 1100, dumped(40001, State::Close, 11), &mut out);
        }
        t.polled(
            &netlink(&[dumped(40001, State::TimeWait, 12)]),
            T + 2000,
            &mut out,
        );
        t.polled(&netlink(&[]), T + 70_000, &mut out);
        once_each(&out);
        let ids: std::collections::BTreeSet<u64> = out.iter().map(|e| e.conn.id).collect();
        assert_eq!(ids.len(), 1, "{notification_first}: {:#?}", changes(&out));
        let ended = out.last().unwrap();
        assert_eq!(ended.change, Change::Ended { by: End::Expired });
    }
}

#[test]
fn a_four_tuple_used_again_is_another_connection() {
    let mut t = tracker();
    let mut out = Vec::new();
    t.polled(
        &netlink(&[dumped(40002, State::Established, 1)]),
        T,
        &mut out,
    );
    t.notified(0, T + 100, dumped(40002, State::Close, 1), &mut out);
    t.polled(
        &netlink(&[dumped(40002, State::Established, 2)]),
        T + 1000,
        &mut out,
    );
    t.polled(
        &netlink(&[dumped(40002, State::Established, 2)]),
        T + 2000,
        &mut out,
    );
    once_each(&out);
    assert_eq!(
        changes(&out),
        [
            (Change::Opened, T, 1),
            (Change::Closed { by: End::Destroy }, T + 100, 1),
            (Change::Opened, T + 1000, 2),
            (Change::Ended { by: End::Destroy }, T + 100, 1),
        ]
    );
}

#[test]
fn a_connection_a_poll_misses_waits_one_poll_for_its_notification() {
    // Its notification comes after the poll that missed it: exact.
    let mut t = tracker();
    let mut out = Vec::new();
    t.polled(
        &netlink(&[dumped(40003, State::Established, 3)]),
        T,
        &mut out,
    );
    t.polled(&netlink(&[]), T + 1000, &mut out);
    assert_eq!(out.len(), 1, "nothing yet: {:#?}", changes(&out));
    t.notified(0, T + 1001, dumped(40003, State::Close, 3), &mut out);
    t.polled(&netlink(&[]), T + 2000, &mut out);
    assert_eq!(
        changes(&out)[1..],
        [
            (Change::Closed { by: End::Destroy }, T + 1001, 1),
            (Change::Ended { by: End::Destroy }, T + 1001, 1),
        ]
    );
    // None comes: closed by the first poll that missed it.
    let mut t = tracker();
    let mut out = Vec::new();
    t.polled(
        &netlink(&[dumped(40003, State::Established, 3)]),
        T,
        &mut out,
    );
    t.polled(&netlink(&[]), T + 1000, &mut out);
    t.polled(&netlink(&[]), T + 2000, &mut out);
    assert_eq!(
        changes(&out)[1..],
        [
            (Change::Closed { by: End::Poll }, T + 1000, 1),
            (Change::Ended { by: End::Poll }, T + 1000, 1),
        ]
    );
    // Its notification after that is not a new connection.
    t.notified(0, T + 2500, dumped(40003, State::Close, 3), &mut out);
    assert_eq!(out.len(), 3);
}

#[test]
fn without_notifications_a_poll_that_misses_it_closes_it() {
    let mut t = Tracker::new(TrackOptions::default());
    let mut out = Vec::new();
    t.polled(
        &netlink(&[dumped(40004, State::Established, 4)]),
        T,
        &mut out,
    );
    t.polled(&netlink(&[]), T + 1000, &mut out);
    assert_eq!(
        changes(&out)[1..],
        [
            (Change::Closed { by: End::Poll }, T + 1000, 1),
            (Change::Ended { by: End::Poll }, T + 1000, 1),
        ]
    );
}

#[test]
fn from_proc_a_time_wait_and_a_full_socket_after_a_request_join_by_their_ends() {
    let mut t = Tracker::new(TrackOptions::default());
    let mut out = Vec::new();
    let mut request = socket(80, State::SynRecv);
    request.remote = "127.0.0.1:40005".parse().unwrap();
    request.local = "127.0.0.1:80".parse().unwrap();
    let mut full = request;
    full.kind = RowKind::Full;
    full.state = State::Established;
    full.inode = 555;
    let mut tw = full;
    tw.kind = RowKind::TimeWait;
    tw.state = State::TimeWait;
    tw.inode = 0;
    tw.timer.expires = crate::model::Ticks(6000);
    t.polled(&proc(&[]), T, &mut out);
    t.polled(&proc(&[request]), T + 1000, &mut out);
    t.polled(&proc(&[full]), T + 2000, &mut out);
    t.polled(&proc(&[tw]), T + 3000, &mut out);
    t.polled(&proc(&[]), T + 4000, &mut out);
    once_each(&out);
    assert_eq!(
        changes(&out),
        [
            (Change::Opened, T + 1000, 1),
            changed(State::SynRecv, T + 2000, 1),
            changed(State::Established, T + 3000, 1),
            (Change::Closed { by: End::Poll }, T + 4000, 1),
            (Change::Ended { by: End::Poll }, T + 4000, 1),
        ]
    );
}

#[test]
fn a_request_socket_and_the_full_socket_only_its_notification_brought_are_one() {
    // A poll sees the SYN_RECV request socket; the kernel makes a full
    // socket of it (a cookie of its own) that closes before the next poll.
    let mut t = tracker();
    let mut out = Vec::new();
    t.polled(&netlink(&[]), T, &mut out);
    t.polled(
        &netlink(&[dumped(40000, State::SynRecv, 5)]),
        T + 1000,
        &mut out,
    );
    t.notified(0, T + 1004, dumped(40000, State::Close, 9), &mut out);
    t.polled(&netlink(&[]), T + 2000, &mut out);
    once_each(&out);
    assert_eq!(
        changes(&out),
        [
            (Change::Opened, T + 1000, 1),
            (Change::Closed { by: End::Destroy }, T + 1004, 1),
            (Change::Ended { by: End::Destroy }, T + 1004, 1),
        ]
    );
    // Its TIME_WAIT, when there is one, joins it too.
    let mut t = tracker();
    let mut out = Vec::new();
    t.polled(&netlink(&[]), T, &mut out);
    t.polled(
        &netlink(&[dumped(40001, State::SynRecv, 5)]),
        T + 1000,
        &mut out,
    );
    t.notified(0, T + 1004, dumped(40001, State::Close, 9), &mut out);
    t.polled(
        &netlink(&[dumped(40001, State::TimeWait, 9)]),
        T + 2000,
        &mut out,
    );
    once_each(&out);
    assert_eq!(t.len(), 1);
    assert!(out.iter().all(|e| e.conn.id == 1), "{out:#?}");
}

#[test]
fn a_notification_with_its_port_released_joins_its_time_wait() {
    // The kernel had released the local port when it reported the socket
    // destroyed (port 0); its TIME_WAIT has its ends and a cookie of its
    // own.
    let mut t = tracker();
    let mut out = Vec::new();
    t.polled(&netlink(&[]), T, &mut out);
    let mut d = dumped(40000, State::Close, 7);
    d.socket.local.set_port(0);
    t.notified(0, T + 100, d, &mut out);
    t.polled(
        &netlink(&[dumped(40000, State::TimeWait, 8)]),
        T + 1000,
        &mut out,
    );
    once_each(&out);
    assert_eq!(t.len(), 1);
    let conn = t.conns().next().unwrap();
    assert_eq!(conn.entry.socket.local.port(), 40000);
    assert!(out.iter().all(|e| e.conn.id == 1), "{out:#?}");
}

#[test]
fn the_workload_seen_survives_the_time_wait_and_the_notification() {
    let mut t = tracker();
    let mut out = Vec::new();
    let w = std::sync::Arc::new(crate::model::Workload::from_cgroup(
        "/system.slice/reportgen.service",
    ));
    let held =
        EntryBuf::dumped(dumped(40007, State::Established, 7)).with_workload(Some(w.clone()));
    // The kernel keeps no cgroup for a TIME_WAIT: none comes with it.
    let tw = EntryBuf::dumped(dumped(40007, State::TimeWait, 7));
    t.polled(&Snapshot::of(vec![held]), T, &mut out);
    t.polled(&Snapshot::of(vec![tw]), T + 1000, &mut out);
    t.notified(0, T + 1500, dumped(40007, State::Close, 7), &mut out);
    t.polled(&Snapshot::of(vec![]), T + 2000, &mut out);
    assert!(out.len() >= 3, "{out:#?}");
    for e in &out {
        assert_eq!(e.conn.entry.workload.as_ref(), Some(&w), "{:?}", e.change);
    }
    let closed = out
        .iter()
        .find(|e| matches!(e.change, Change::Closed { .. }))
        .unwrap();
    assert_eq!(closed.conn.closing_entry().workload.as_ref(), Some(&w));
}

/// A connection only its notification brought takes the workload of the
/// listener that accepted it (the kernel gave it the listener's cgroup);
/// one this host opened has none.
#[test]
fn a_notified_connection_takes_its_listener_s_workload() {
    let mut t = tracker();
    let mut out = Vec::new();
    let w = std::sync::Arc::new(crate::model::Workload::from_cgroup(
        "/system.slice/dbserver.service",
    ));
    let mut listener = dumped(80, State::Listen, 1);
    listener.socket.local = "0.0.0.0:80".parse().unwrap();
    listener.socket.remote = "0.0.0.0:0".parse().unwrap();
    let listener = EntryBuf::dumped(listener).with_workload(Some(w.clone()));
    // A request socket the poll finds has no cgroup of its own.
    let mut request = dumped(80, State::SynRecv, 0);
    request.socket.remote = "127.0.0.1:40099".parse().unwrap();
    t.polled(
        &Snapshot::of(vec![listener, EntryBuf::dumped(request)]),
        T,
        &mut out,
    );
    // Accepted: 127.0.0.1:80 from 127.0.0.1:40100.
    let mut accepted = dumped(80, State::Close, 8);
    accepted.socket.remote = "127.0.0.1:40100".parse().unwrap();
    t.notified(0, T + 100, accepted, &mut out);
    // Opened by this host: 127.0.0.1:40101 to 127.0.0.1:80.
    t.notified(0, T + 200, dumped(40101, State::Close, 9), &mut out);
    let opened: Vec<_> = out
        .iter()
        .filter(|e| e.change == Change::Opened && e.conn.first_state != State::Listen)
        .map(|e| {
            (
                e.conn.entry.socket.local.port(),
                e.conn.entry.workload.clone(),
            )
        })
        .collect();
    assert_eq!(
        opened,
        [(80, Some(w.clone())), (80, Some(w)), (40101, None)]
    );
}

#[test]
fn the_owner_seen_survives_every_later_state() {
    let mut t = tracker();
    let mut out = Vec::new();
    let owner = Owner {
        pid: 32351,
        command: "reportgen".into(),
        fd: 7,
    };
    let owned = EntryBuf::dumped(dumped(40006, State::Established, 6))
        .with_owners(Some(Owners::Owned(vec![owner.clone()].into())));
    let tw =
        EntryBuf::dumped(dumped(40006, State::TimeWait, 6)).with_owners(Some(Owners::NoProcess));
    t.polled(&Snapshot::of(vec![owned]), T, &mut out);
    t.polled(&Snapshot::of(vec![tw]), T + 1000, &mut out);
    t.notified(0, T + 1500, dumped(40006, State::Close, 6), &mut out);
    t.polled(&Snapshot::of(vec![]), T + 2000, &mut out);
    for e in &out {
        assert_eq!(
            e.conn.entry.owners,
            Some(Owners::Owned(vec![owner.clone()].into())),
            "{:?}",
            e.change
        );
    }
    let closed = out
        .iter()
        .find(|e| matches!(e.change, Change::Closed { .. }))
        .unwrap();
    assert_eq!(
        closed.conn.closing_entry().owners,
        Some(Owners::Owned(vec![owner].into()))
    );
}

#[test]
fn after_a_gap_what_is_gone_ended_after_its_last_sighting() {
    let mut t = tracker();
    let mut out = Vec::new();
    t.polled(
        &netlink(&[
            dumped(40007, State::Established, 8),
            dumped(40008, State::Established, 9),
        ]),
        T,
        &mut out,
    );
    // 60 s later (more than the gap): one is still there.
    t.polled(
        &netlink(&[dumped(40008, State::Established, 9)]),
        T + 60_000,
        &mut out,
    );
    assert_eq!(
        changes(&out)[2..],
        [
            (Change::Closed { by: End::Gap }, T, 1),
            (Change::Ended { by: End::Gap }, T, 1),
        ]
    );
    assert_eq!(t.get(2).unwrap().last_seen, T + 60_000);
}

#[test]
fn a_clock_set_back_closes_nothing_before_its_last_sighting() {
    let mut t = Tracker::new(TrackOptions::default());
    let mut out = Vec::new();
    t.polled(
        &netlink(&[dumped(40009, State::Established, 10)]),
        T + 10_000,
        &mut out,
    );
    t.polled(&netlink(&[]), T + 5000, &mut out);
    for e in &out {
        assert!(e.at >= e.conn.first_seen, "{e:#?}");
        if let Some((end, _)) = e.conn.ended {
            assert!(end >= e.conn.last_seen);
        }
    }
}

#[test]
fn a_notification_for_a_connection_never_seen_ends_at_the_next_poll() {
    let mut t = tracker();
    let mut out = Vec::new();
    t.polled(&netlink(&[]), T, &mut out);
    t.notified(0, T + 300, dumped(40010, State::Close, 13), &mut out);
    t.polled(&netlink(&[]), T + 1000, &mut out);
    assert_eq!(
        changes(&out),
        [
            (Change::Opened, T + 300, 1),
            (Change::Closed { by: End::Destroy }, T + 300, 1),
            (Change::Ended { by: End::Destroy }, T + 300, 1),
        ]
    );
    assert!(!out[0].conn.seen_by_poll);
    assert!(!out[0].baseline);
}

#[test]
fn counters_keep_their_highest_value() {
    let mut t = tracker();
    let mut out = Vec::new();
    let mut live = dumped(40011, State::Established, 14);
    live.diag.tcp_info = Some(Box::new(crate::model::TcpInfo {
        bytes_acked: 5000,
        bytes_received: 7000,
        ..Default::default()
    }));
    let mut last = dumped(40011, State::Close, 14);
    // SO_LINGER 0: the kernel zeroed them before the notification.
    last.diag.tcp_info = Some(Box::default());
    t.polled(&netlink(&[live]), T, &mut out);
    t.notified(0, T + 10, last, &mut out);
    t.polled(&netlink(&[]), T + 1000, &mut out);
    let ended = out.last().unwrap();
    assert_eq!(ended.conn.counters.bytes_acked, Some(5000));
    assert_eq!(ended.conn.counters.bytes_received, Some(7000));
}

#[test]
fn a_reset_connection_s_notification_keeps_its_ends() {
    let mut t = tracker();
    let mut out = Vec::new();
    t.polled(
        &netlink(&[dumped(40012, State::Established, 15)]),
        T,
        &mut out,
    );
    // SO_LINGER 0: the kernel cleared the local address and remote port
    // before it reported the socket destroyed.
    let mut last = dumped(40012, State::Close, 15);
    last.socket.local = "0.0.0.0:40012".parse().unwrap();
    last.socket.remote = "127.0.0.1:0".parse().unwrap();
    t.notified(0, T + 10, last, &mut out);
    let closed = out.last().unwrap();
    assert_eq!(closed.change, Change::Closed { by: End::Destroy });
    let s = closed.conn.closing_entry().socket;
    assert_eq!(s.local, "127.0.0.1:40012".parse().unwrap());
    assert_eq!(s.remote, "127.0.0.1:80".parse().unwrap());
}

#[test]
fn a_new_connection_on_a_time_wait_s_ends_ends_the_time_wait_when_it_is_known() {
    // The kernel replaces a TIME_WAIT when it accepts a SYN on its ends:
    // the new connection (cookie 9) lived and closed between two polls.
    let mut t = tracker();
    let mut out = Vec::new();
    t.polled(
        &netlink(&[dumped(40000, State::Established, 7)]),
        T,
        &mut out,
    );
    t.notified(0, T + 100, dumped(40000, State::Close, 7), &mut out);
    t.polled(
        &netlink(&[dumped(40000, State::TimeWait, 7)]),
        T + 1000,
        &mut out,
    );
    t.notified(0, T + 1500, dumped(40000, State::Close, 9), &mut out);
    t.polled(&netlink(&[]), T + 2000, &mut out);
    once_each(&out);
    assert_eq!(
        changes(&out),
        [
            (Change::Opened, T, 1),
            (Change::Closed { by: End::Destroy }, T + 100, 1),
            changed(State::Established, T + 100, 1),
            // Not at the poll of T + 2000: the new connection was there by
            // T + 1500.
            (Change::Ended { by: End::Poll }, T + 1500, 1),
            (Change::Opened, T + 1500, 2),
            (Change::Closed { by: End::Destroy }, T + 1500, 2),
            (Change::Ended { by: End::Destroy }, T + 1500, 2),
        ]
    );
    assert!(t.is_empty());
}

#[test]
fn a_new_connection_a_poll_finds_on_a_time_wait_s_ends_follows_its_end() {
    let mut t = tracker();
    let mut out = Vec::new();
    t.polled(&netlink(&[dumped(40000, State::TimeWait, 7)]), T, &mut out);
    t.polled(
        &netlink(&[dumped(40000, State::Established, 9)]),
        T + 1000,
        &mut out,
    );
    // The TIME_WAIT is not taken for a new connection's notification.
    t.notified(0, T + 1500, dumped(40000, State::Close, 9), &mut out);
    once_each(&out);
    assert_eq!(
        changes(&out),
        [
            (Change::Opened, T, 1),
            (Change::Closed { by: End::Poll }, T + 1000, 1),
            (Change::Ended { by: End::Poll }, T + 1000, 1),
            (Change::Opened, T + 1000, 2),
            (Change::Closed { by: End::Destroy }, T + 1500, 2),
        ]
    );
}
