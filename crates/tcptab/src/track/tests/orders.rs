//! A connection's sockets, its notification and the polls in every
//! order: one connection each, joined by cookie or by ends, and a new one
//! where a 4-tuple is used again.

use super::*;

/// Connection 7 on port 40000, closed from this side: its notification
/// at T + 100, then its TIME_WAIT at the poll of T + 1000.
fn closed_into_time_wait() -> (Tracker, Vec<Event>) {
    let (mut t, mut out) = tracker();
    t.poll(T, &[dumped(40000, State::Established, 7)], &mut out);
    t.notified(0, T + 100, dumped(40000, State::Close, 7), &mut out);
    t.poll(T + 1000, &[dumped(40000, State::TimeWait, 7)], &mut out);
    (t, out)
}

/// What [`closed_into_time_wait`] tells first: opened at T, closed by its
/// notification, out of ESTABLISHED at once.
fn told_of_closed_into_time_wait(rest: &[(Change, i64, u64)]) -> Vec<(Change, i64, u64)> {
    let told = [
        (Change::Opened, T, 1),
        (Change::Closed { by: End::Destroy }, T + 100, 1),
        changed(State::Established, T + 100, 1),
    ];
    [&told[..], rest].concat()
}

#[test]
fn a_notification_before_the_time_wait_is_one_connection_in_time_wait_from_then() {
    let (mut t, mut out) = closed_into_time_wait();
    t.poll(T + 70_000, &[], &mut out);
    once_each(&out);
    assert_eq!(
        changes(&out),
        told_of_closed_into_time_wait(&[
            // The TIME_WAIT's timer said when it would go.
            (Change::Ended { by: End::Expired }, T + 61_000, 1),
        ])
    );
    assert!(out[0].baseline);
    assert!(t.is_empty());
}

#[test]
fn a_time_wait_before_the_notification_is_the_same_connection() {
    let (mut t, mut out) = tracker();
    t.poll(T, &[dumped(40000, State::Established, 7)], &mut out);
    t.poll(T + 1000, &[dumped(40000, State::TimeWait, 7)], &mut out);
    t.notified(0, T + 1500, dumped(40000, State::Close, 7), &mut out);
    t.poll(T + 2000, &[], &mut out);
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
        let (mut t, mut out) = tracker();
        t.poll(T, &[], &mut out);
        if notification_first {
            t.notified(0, T + 100, dumped(40001, State::Close, 11), &mut out);
            t.poll(T + 1000, &[dumped(40001, State::TimeWait, 12)], &mut out);
        } else {
            t.poll(T + 1000, &[dumped(40001, State::TimeWait, 12)], &mut out);
            t.notified(0, T + 1100, dumped(40001, State::Close, 11), &mut out);
        }
        t.poll(T + 2000, &[dumped(40001, State::TimeWait, 12)], &mut out);
        t.poll(T + 70_000, &[], &mut out);
        once_each(&out);
        let ids: std::collections::BTreeSet<u64> = out.iter().map(|e| e.conn.id).collect();
        assert_eq!(ids.len(), 1, "{notification_first}: {:#?}", changes(&out));
        let ended = out.last().unwrap();
        assert_eq!(ended.change, Change::Ended { by: End::Expired });
    }
}

#[test]
fn a_four_tuple_used_again_is_another_connection() {
    let (mut t, mut out) = tracker();
    t.poll(T, &[dumped(40002, State::Established, 1)], &mut out);
    t.notified(0, T + 100, dumped(40002, State::Close, 1), &mut out);
    t.poll(T + 1000, &[dumped(40002, State::Established, 2)], &mut out);
    t.poll(T + 2000, &[dumped(40002, State::Established, 2)], &mut out);
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
    let (mut t, mut out) = tracker();
    t.poll(T, &[], &mut out);
    t.poll(T + 1000, &[dumped(40000, State::SynRecv, 5)], &mut out);
    t.notified(0, T + 1004, dumped(40000, State::Close, 9), &mut out);
    t.poll(T + 2000, &[], &mut out);
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
    let (mut t, mut out) = tracker();
    t.poll(T, &[], &mut out);
    t.poll(T + 1000, &[dumped(40001, State::SynRecv, 5)], &mut out);
    t.notified(0, T + 1004, dumped(40001, State::Close, 9), &mut out);
    t.poll(T + 2000, &[dumped(40001, State::TimeWait, 9)], &mut out);
    once_each(&out);
    assert_eq!(t.len(), 1);
    assert!(out.iter().all(|e| e.conn.id == 1), "{out:#?}");
}

#[test]
fn a_notification_with_its_port_released_joins_its_time_wait() {
    // The kernel had released the local port when it reported the socket
    // destroyed (port 0); its TIME_WAIT has its ends and a cookie of its
    // own.
    let (mut t, mut out) = tracker();
    t.poll(T, &[], &mut out);
    let mut d = dumped(40000, State::Close, 7);
    d.socket.local.set_port(0);
    t.notified(0, T + 100, d, &mut out);
    t.poll(T + 1000, &[dumped(40000, State::TimeWait, 8)], &mut out);
    once_each(&out);
    assert_eq!(t.len(), 1);
    let conn = t.conns().next().unwrap();
    assert_eq!(conn.entry.socket.local.port(), 40000);
    assert!(out.iter().all(|e| e.conn.id == 1), "{out:#?}");
}

#[test]
fn a_reset_connection_s_notification_keeps_its_ends() {
    let (mut t, mut out) = tracker();
    t.poll(T, &[dumped(40012, State::Established, 15)], &mut out);
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
    let (mut t, mut out) = closed_into_time_wait();
    t.notified(0, T + 1500, dumped(40000, State::Close, 9), &mut out);
    t.poll(T + 2000, &[], &mut out);
    once_each(&out);
    assert_eq!(
        changes(&out),
        told_of_closed_into_time_wait(&[
            // Not at the poll of T + 2000: the new connection was there by
            // T + 1500.
            (Change::Ended { by: End::Poll }, T + 1500, 1),
            (Change::Opened, T + 1500, 2),
            (Change::Closed { by: End::Destroy }, T + 1500, 2),
            (Change::Ended { by: End::Destroy }, T + 1500, 2),
        ])
    );
    assert!(t.is_empty());
}

#[test]
fn a_new_connection_a_poll_finds_on_a_time_wait_s_ends_follows_its_end() {
    let (mut t, mut out) = tracker();
    t.poll(T, &[dumped(40000, State::TimeWait, 7)], &mut out);
    t.poll(T + 1000, &[dumped(40000, State::Established, 9)], &mut out);
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

/// The notification of a socket that last heard from its peer `ago` ms
/// before it was destroyed.
fn notified_heard(port: u16, cookie: u64, ago: u32) -> DiagSocket {
    let mut d = dumped(port, State::Close, cookie);
    d.diag.tcp_info = Some(std::sync::Arc::new(crate::model::TcpInfo {
        last_ack_recv_ms: ago,
        ..Default::default()
    }));
    d
}

#[test]
fn a_connection_on_the_ends_of_a_time_wait_seen_on_its_own_is_a_new_one() {
    // A TIME_WAIT the first poll finds (it began at T: its timer says 60 s
    // to go). Its ends taken by a new connection (cookie 9) that lived and
    // closed between two polls, into a TIME_WAIT of its own (cookie 10):
    // its socket heard from its peer 1.5 s after the TIME_WAIT began, so
    // it is not the TIME_WAIT's socket.
    let (mut t, mut out) = tracker();
    t.poll(T, &[dumped(40000, State::TimeWait, 7)], &mut out);
    t.notified(0, T + 1500, notified_heard(40000, 9, 2), &mut out);
    t.poll(T + 2000, &[dumped(40000, State::TimeWait, 10)], &mut out);
    once_each(&out);
    assert_eq!(
        changes(&out),
        [
            (Change::Opened, T, 1),
            (Change::Closed { by: End::Poll }, T + 1500, 1),
            (Change::Ended { by: End::Poll }, T + 1500, 1),
            (Change::Opened, T + 1500, 2),
            (Change::Closed { by: End::Destroy }, T + 1500, 2),
            // Into its TIME_WAIT when it closed.
            changed(State::Close, T + 1500, 2),
        ]
    );
    // The TIME_WAIT's own socket, notified after a poll found the
    // TIME_WAIT: it last heard from its peer when the TIME_WAIT began.
    let (mut t, mut out) = tracker();
    t.poll(T, &[], &mut out);
    t.poll(T + 1000, &[dumped(40001, State::TimeWait, 12)], &mut out);
    t.notified(0, T + 1100, notified_heard(40001, 11, 150), &mut out);
    once_each(&out);
    assert_eq!(
        changes(&out),
        [
            (Change::Opened, T + 1000, 1),
            (Change::Closed { by: End::Destroy }, T + 1100, 1),
        ]
    );
}

#[test]
fn a_socket_that_never_had_a_peer_is_no_connection() {
    // socket() and close(), or bind() and close(): the kernel reports
    // their end too, with no remote address.
    let (mut t, mut out) = tracker();
    t.poll(T, &[], &mut out);
    for local in ["0.0.0.0:0", "127.0.0.1:40020", "[::]:0"] {
        let mut d = dumped(40020, State::Close, 21);
        d.socket.local = local.parse().unwrap();
        d.socket.remote = match d.socket.local {
            std::net::SocketAddr::V4(_) => "0.0.0.0:0".parse().unwrap(),
            std::net::SocketAddr::V6(_) => "[::]:0".parse().unwrap(),
        };
        t.notified(0, T + 100, d, &mut out);
    }
    // A connect() refused, or failed for want of free ends: the kernel
    // cleared the remote port, and no round trip was ever measured.
    let failed = |port: u16, cookie: u64, min_rtt_us: u32| {
        let mut d = dumped(port, State::Close, cookie);
        d.socket.local = format!("0.0.0.0:{port}").parse().unwrap();
        d.socket.remote = "127.0.0.1:0".parse().unwrap();
        d.diag.tcp_info = Some(std::sync::Arc::new(crate::model::TcpInfo {
            min_rtt_us,
            ..Default::default()
        }));
        d
    };
    t.notified(0, T + 150, failed(40022, 23, u32::MAX), &mut out);
    assert!(out.is_empty(), "{:#?}", changes(&out));
    assert!(t.is_empty());
    // A connection reset by its own side (SO_LINGER 0): the kernel cleared
    // its remote port too, but its handshake measured a round trip.
    t.notified(0, T + 200, failed(40021, 22, 8), &mut out);
    assert_eq!(
        changes(&out),
        [
            (Change::Opened, T + 200, 1),
            (Change::Closed { by: End::Destroy }, T + 200, 1),
        ]
    );
}
