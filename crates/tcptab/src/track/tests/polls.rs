//! Connections a poll no longer finds: closed at once or after one more
//! poll, ended after a gap, and a clock set back.

use super::*;

#[test]
fn a_connection_a_poll_misses_waits_one_poll_for_its_notification() {
    // Its notification comes after the poll that missed it: exact.
    let (mut t, mut out) = tracker();
    t.poll(T, &[dumped(40003, State::Established, 3)], &mut out);
    t.poll(T + 1000, &[], &mut out);
    assert_eq!(out.len(), 1, "nothing yet: {:#?}", changes(&out));
    t.notified(0, T + 1001, dumped(40003, State::Close, 3), &mut out);
    t.poll(T + 2000, &[], &mut out);
    assert_eq!(
        changes(&out)[1..],
        [
            (Change::Closed { by: End::Destroy }, T + 1001, 1),
            (Change::Ended { by: End::Destroy }, T + 1001, 1),
        ]
    );
    // None comes: closed by the first poll that missed it.
    let (mut t, mut out) = tracker();
    t.poll(T, &[dumped(40003, State::Established, 3)], &mut out);
    t.poll(T + 1000, &[], &mut out);
    t.poll(T + 2000, &[], &mut out);
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
    t.poll(T, &[dumped(40004, State::Established, 4)], &mut out);
    t.poll(T + 1000, &[], &mut out);
    assert_eq!(
        changes(&out)[1..],
        [
            (Change::Closed { by: End::Poll }, T + 1000, 1),
            (Change::Ended { by: End::Poll }, T + 1000, 1),
        ]
    );
}

#[test]
fn after_a_gap_what_is_gone_ended_after_its_last_sighting() {
    let (mut t, mut out) = tracker();
    t.poll(
        T,
        &[
            dumped(40007, State::Established, 8),
            dumped(40008, State::Established, 9),
        ],
        &mut out,
    );
    // 60 s later (more than the gap): one is still there.
    t.poll(
        T + 60_000,
        &[dumped(40008, State::Established, 9)],
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
    t.poll(
        T + 10_000,
        &[dumped(40009, State::Established, 10)],
        &mut out,
    );
    t.poll(T + 5000, &[], &mut out);
    for e in &out {
        assert!(e.at >= e.conn.first_seen, "{e:#?}");
        if let Some((end, _)) = e.conn.ended {
            assert!(end >= e.conn.last_seen);
        }
    }
}

#[test]
fn a_notification_for_a_connection_never_seen_ends_at_the_next_poll() {
    let (mut t, mut out) = tracker();
    t.poll(T, &[], &mut out);
    t.notified(0, T + 300, dumped(40010, State::Close, 13), &mut out);
    t.poll(T + 1000, &[], &mut out);
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
