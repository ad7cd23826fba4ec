//! The tally on a tracker fed polls and notifications.

use super::*;
use crate::model::{Diag, DiagSocket, Family, RowKind, Socket, TcpInfo};
use crate::query::Snapshot;
use crate::track::{TrackOptions, Tracker};

const T: i64 = 1_800_000_000_000;

fn dumped(local: &str, remote: &str, state: State, cookie: u64, received: u64) -> DiagSocket {
    let mut s = Socket::empty(Family::Ipv4, RowKind::Full);
    s.state = state;
    s.local = local.parse().unwrap();
    s.remote = remote.parse().unwrap();
    let tcp_info = (state != State::Listen).then(|| {
        std::sync::Arc::new(TcpInfo {
            bytes_received: received,
            bytes_acked: received / 2,
            total_retrans: 1,
            total_rto: 2,
            ..TcpInfo::default()
        })
    });
    DiagSocket {
        socket: s,
        diag: Diag {
            cookie,
            tcp_info,
            backlog_limit: (state == State::Listen).then_some(2),
            ..Diag::default()
        },
    }
}

fn listener() -> DiagSocket {
    dumped("0.0.0.0:80", "0.0.0.0:0", State::Listen, 1, 0)
}

fn accepted(received: u64) -> DiagSocket {
    dumped(
        "127.0.0.1:80",
        "127.0.0.1:40000",
        State::Established,
        2,
        received,
    )
}

fn outgoing(received: u64) -> DiagSocket {
    dumped(
        "127.0.0.1:40001",
        "127.0.0.1:443",
        State::Established,
        3,
        received,
    )
}

/// A tracker with notifications in its own namespace, and a tally of
/// what it says.
struct Scene {
    t: Tracker,
    tally: Tally,
}

/// A scene whose tally keeps at most `max_series` groups.
fn fresh(max_series: usize) -> Scene {
    let mut t = Tracker::new(TrackOptions::default());
    t.set_notified(0, true);
    let tally = Tally::new(TallyOptions {
        max_series,
        ..TallyOptions::default()
    });
    Scene { t, tally }
}

impl Scene {
    fn poll(&mut self, sockets: &[DiagSocket], at: i64) {
        let snapshot = Snapshot::of(sockets.iter().cloned().map(EntryBuf::dumped).collect());
        let mut events = Vec::new();
        self.t.polled(&snapshot, at, &mut events);
        for e in events {
            self.tally.happened(&Happened::Event(e));
        }
        self.tally.polled(&snapshot.sockets);
    }

    fn notified(&mut self, d: DiagSocket, at: i64) {
        let mut events = Vec::new();
        self.t.notified_with(0, at, d, None, &mut events);
        for e in events {
            self.tally.happened(&Happened::Event(e));
        }
    }

    fn tallied(&self) -> Tallied {
        self.tally.tallied()
    }
}

/// [`fresh`], polled at T: a listener on port 80, one connection it
/// accepted and one outgoing, with the bytes each received.
fn polled_once(max_series: usize, accepted_bytes: u64, outgoing_bytes: u64) -> Scene {
    let mut s = fresh(max_series);
    s.poll(
        &[
            listener(),
            accepted(accepted_bytes),
            outgoing(outgoing_bytes),
        ],
        T,
    );
    s
}

/// (listener, value) of each series.
fn by_listener(series: &[Series]) -> Vec<(String, u64)> {
    series
        .iter()
        .map(|s| (s.labels[0].1.clone(), s.value))
        .collect()
}

#[test]
fn each_connection_counts_once_in_its_listener_s_group_and_never_down() {
    let mut s = polled_once(10, 100, 10);
    let now = s.tallied();
    assert_eq!(
        by_listener(&now.opened),
        [("".into(), 1), ("0.0.0.0:80".into(), 1)]
    );
    assert_eq!(
        by_listener(&now.bytes_received),
        [("".into(), 10), ("0.0.0.0:80".into(), 100)]
    );
    s.poll(&[listener(), accepted(300), outgoing(10)], T + 1000);
    assert_eq!(by_listener(&s.tallied().bytes_received)[1].1, 300);
    // The accepted one closes with its final counters; the outgoing one
    // is reset (the kernel zeroed its counters): it keeps what was seen.
    let mut closing = accepted(350);
    closing.socket.state = State::Close;
    s.notified(closing, T + 1500);
    let mut reset = outgoing(0);
    reset.socket.state = State::Close;
    s.notified(reset, T + 1600);
    // The next poll finds neither: nothing is counted again.
    let mut full = listener();
    full.socket.rx_queue = 3;
    s.poll(&[full], T + 2000);
    let now = s.tallied();
    // (this host's connections, the listener's) per counter.
    for (what, series, here, listener) in [
        ("opened", &now.opened, 1, 1),
        ("bytes received", &now.bytes_received, 10, 350),
        ("bytes acked", &now.bytes_acked, 5, 175),
        ("retransmitted", &now.retransmitted_segments, 1, 1),
        ("timeouts", &now.retransmit_timeouts, 2, 2),
    ] {
        assert_eq!(
            by_listener(series),
            [("".into(), here), ("0.0.0.0:80".into(), listener)],
            "{what}"
        );
    }
    assert_eq!(
        by_listener(&now.listen_queue_full),
        [("0.0.0.0:80".into(), 1)]
    );
    let closed: Vec<_> = now
        .closed
        .iter()
        .map(|s| (s.labels.clone(), s.value))
        .collect();
    assert_eq!(
        closed,
        [
            (
                vec![("listener", "".into()), ("state", "ESTABLISHED".into())],
                1
            ),
            (
                vec![
                    ("listener", "0.0.0.0:80".into()),
                    ("state", "ESTABLISHED".into())
                ],
                1
            ),
        ]
    );
    let (_, lived) = &now.durations[1];
    assert_eq!((lived.count, lived.sum), (1, 1.5));
}

#[test]
fn a_connection_of_a_listener_opened_since_the_last_poll_waits_for_the_next() {
    let mut s = fresh(10);
    s.poll(&[], T);
    // Opened and closed between two polls, by a listener the first
    // poll did not see.
    let mut flash = accepted(70);
    flash.socket.state = State::Close;
    s.notified(flash, T + 100);
    assert!(s.tallied().opened.is_empty());
    s.poll(&[listener()], T + 1000);
    let now = s.tallied();
    assert_eq!(by_listener(&now.opened), [("0.0.0.0:80".into(), 1)]);
    assert_eq!(
        by_listener(&now.bytes_received),
        [("0.0.0.0:80".into(), 70)]
    );
    assert_eq!(now.closed[0].labels[1], ("state", "none".into()));
    // No poll saw it: how long it lived is not known.
    assert_eq!(now.durations[0].1.count, 0);
}

#[test]
fn beyond_the_cap_connections_go_to_the_other_group() {
    let now = polled_once(1, 1, 2).tallied();
    assert_eq!(
        by_listener(&now.opened),
        [("0.0.0.0:80".into(), 1), ("other".into(), 1)]
    );
    assert_eq!(now.over_the_cap, 1);
}

/// (labels, value) of each series whose last label is `side`.
fn sides(series: &[Series]) -> Vec<(String, String, u64)> {
    series
        .iter()
        .map(|s| (s.labels[0].1.clone(), s.labels[1].1.clone(), s.value))
        .collect()
}

#[test]
fn who_closed_first_is_counted_once_where_a_poll_saw_it() {
    let mut s = polled_once(10, 100, 10);
    // This side closes the accepted one: its socket is destroyed, then
    // the next poll finds its TIME_WAIT. The peer closes the outgoing
    // one: the poll finds it in CLOSE-WAIT.
    let mut closing = accepted(100);
    closing.socket.state = State::Close;
    s.notified(closing, T + 500);
    let mut time_wait = accepted(0);
    time_wait.socket.kind = RowKind::TimeWait;
    time_wait.socket.state = State::TimeWait;
    time_wait.diag.cookie = 20;
    time_wait.diag.tcp_info = None;
    let mut close_wait = outgoing(10);
    close_wait.socket.state = State::CloseWait;
    for at in [T + 1000, T + 2000] {
        let sockets = [listener(), time_wait.clone(), close_wait.clone()];
        s.poll(&sockets, at);
        assert_eq!(
            sides(&s.tallied().closed_first),
            [
                ("".into(), "local".into(), 0),
                ("".into(), "peer".into(), 1),
                ("0.0.0.0:80".into(), "local".into(), 1),
                ("0.0.0.0:80".into(), "peer".into(), 0),
            ]
        );
    }
    // A reset says nothing of who closed first.
    let mut s = fresh(10);
    s.poll(&[listener(), accepted(1)], T);
    let mut reset = accepted(0);
    reset.socket.state = State::Close;
    s.notified(reset, T + 100);
    s.poll(&[listener()], T + 1000);
    let firsts: u64 = s.tallied().closed_first.iter().map(|s| s.value).sum();
    assert_eq!(firsts, 0);
}

#[test]
fn a_time_wait_after_a_poll_that_raced_the_close_still_says_who_closed_first() {
    let mut s = fresh(10);
    s.poll(&[listener()], T);
    // A poll's events, then the close's notification before the poll is
    // done: the connection is placed when it already closed, and its
    // TIME_WAIT comes with the next poll.
    let snapshot = Snapshot::of(vec![
        EntryBuf::dumped(listener()),
        EntryBuf::dumped(outgoing(10)),
    ]);
    let mut events = Vec::new();
    s.t.polled(&snapshot, T + 1000, &mut events);
    for e in events {
        s.tally.happened(&Happened::Event(e));
    }
    let mut closing = outgoing(10);
    closing.socket.state = State::Close;
    s.notified(closing, T + 1100);
    s.tally.polled(&snapshot.sockets);
    let mut time_wait = outgoing(0);
    time_wait.socket.kind = RowKind::TimeWait;
    time_wait.socket.state = State::TimeWait;
    time_wait.diag.cookie = 30;
    time_wait.diag.tcp_info = None;
    s.poll(&[listener(), time_wait], T + 2000);
    assert_eq!(
        sides(&s.tallied().closed_first),
        [
            ("".into(), "local".into(), 1),
            ("".into(), "peer".into(), 0)
        ]
    );
}
