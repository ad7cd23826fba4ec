//! What a connection keeps through its states: its workload, its
//! owners, its counters.

use super::*;

fn workload(cgroup: &str) -> std::sync::Arc<crate::model::Workload> {
    std::sync::Arc::new(crate::model::Workload::from_cgroup(cgroup))
}

#[test]
fn the_workload_seen_survives_the_time_wait_and_the_notification() {
    let (mut t, mut out) = tracker();
    let w = workload("/system.slice/reportgen.service");
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
    let (mut t, mut out) = tracker();
    let w = workload("/system.slice/dbserver.service");
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
    let (mut t, mut out) = tracker();
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
fn counters_keep_their_highest_value() {
    let (mut t, mut out) = tracker();
    let mut live = dumped(40011, State::Established, 14);
    live.diag.tcp_info = Some(std::sync::Arc::new(crate::model::TcpInfo {
        bytes_acked: 5000,
        bytes_received: 7000,
        ..Default::default()
    }));
    let mut last = dumped(40011, State::Close, 14);
    // SO_LINGER 0: the kernel zeroed them before the notification.
    last.diag.tcp_info = Some(std::sync::Arc::default());
    t.poll(T, &[live], &mut out);
    t.notified(0, T + 10, last, &mut out);
    t.poll(T + 1000, &[], &mut out);
    let ended = out.last().unwrap();
    assert_eq!(ended.conn.counters.bytes_acked, Some(5000));
    assert_eq!(ended.conn.counters.bytes_received, Some(7000));
}

/// A TIME_WAIT seen again by later polls tells nothing, keeps the owner
/// of its connection, and takes its timer: it ends when its last timer
/// said, not its first.
#[test]
fn a_time_wait_seen_again_takes_its_timer_and_tells_nothing() {
    let (mut t, mut out) = tracker();
    let owner = Owners::Owned(
        vec![Owner {
            pid: 4242,
            command: "client".into(),
            fd: 3,
        }]
        .into(),
    );
    let owned =
        EntryBuf::dumped(dumped(40008, State::Established, 8)).with_owners(Some(owner.clone()));
    let tw = |timer_ms: u32| {
        let mut d = dumped(40008, State::TimeWait, 8);
        d.diag.timer_ms = timer_ms;
        // Its place in each poll's listing moves under churn.
        d.socket.sl = timer_ms / 1000;
        EntryBuf::dumped(d).with_owners(Some(Owners::NoProcess))
    };
    t.polled(&Snapshot::of(vec![owned]), T, &mut out);
    t.polled(&Snapshot::of(vec![tw(60_000)]), T + 1000, &mut out);
    let told = out.len();
    t.polled(&Snapshot::of(vec![tw(59_000)]), T + 2000, &mut out);
    t.polled(&Snapshot::of(vec![tw(40_000)]), T + 3000, &mut out);
    assert_eq!(out.len(), told, "{:#?}", &out[told..]);
    let conn = t.conns().next().unwrap();
    assert_eq!(conn.entry.diag.as_ref().unwrap().timer_ms, 40_000);
    assert_eq!(conn.entry.owners, Some(owner.clone()));
    assert_eq!(conn.last_seen, T + 3000);
    t.polled(&Snapshot::of(vec![]), T + 70_000, &mut out);
    let ended = out
        .iter()
        .find(|e| matches!(e.change, Change::Ended { .. }))
        .unwrap();
    assert_eq!(
        (ended.change, ended.at),
        (Change::Ended { by: End::Expired }, T + 43_000)
    );
    assert_eq!(ended.conn.entry.owners, Some(owner));
}
