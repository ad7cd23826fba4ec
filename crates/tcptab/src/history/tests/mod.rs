//! The recorder and its reader on scratch files: what each poll writes,
//! what a reader reads back.

use super::*;
use crate::model::{Diag, DiagSocket, EntryBuf, Family, RowKind, Socket, State};
use crate::query::Snapshot;
use crate::track::{TrackOptions, Tracker};

mod index;
mod ship;

/// A moment in 2027, in milliseconds: the tests' first poll.
const T: i64 = 1_800_000_000_000;

/// A state as the views name it: the kernel's name, or `UNKNOWN(0x..)`.
pub(super) fn state_name(state: State) -> String {
    state
        .kernel_name()
        .map_or_else(|| state.to_string(), str::to_string)
}

/// A timer as the views name it: its name, or `unknown(N)`.
pub(super) fn timer_name(kind: crate::model::TimerKind) -> String {
    kind.name().map_or_else(|| kind.to_string(), str::to_string)
}

/// A fresh database path for one test, its files removed when it goes.
fn scratch(name: &str) -> Scratch {
    let path = std::env::temp_dir().join(format!(
        "tcptab-history-unit-{}-{name}.db",
        std::process::id()
    ));
    remove(&path);
    Scratch(path)
}

/// A test's database path ([`scratch`]).
struct Scratch(PathBuf);

impl std::ops::Deref for Scratch {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        remove(&self.0);
    }
}

fn remove(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

/// A socket from 127.0.0.1:`port` to 127.0.0.1:80 with `cookie`.
fn socket(port: u16, state: State, cookie: u64) -> DiagSocket {
    let kind = if state == State::TimeWait {
        RowKind::TimeWait
    } else {
        RowKind::Full
    };
    let mut socket = Socket::empty(Family::Ipv4, kind);
    socket.state = state;
    socket.local = format!("127.0.0.1:{port}").parse().unwrap();
    socket.remote = "127.0.0.1:80".parse().unwrap();
    let diag = Diag {
        cookie,
        timer_ms: if state == State::TimeWait { 60_000 } else { 0 },
        ..Diag::default()
    };
    DiagSocket { socket, diag }
}

fn snapshot(sockets: &[DiagSocket]) -> Snapshot {
    Snapshot::of(sockets.iter().cloned().map(EntryBuf::dumped).collect())
}

/// A tracker of polls 5 s apart, told the destroy notifications of its
/// own namespace.
fn notified_tracker() -> Tracker {
    let mut tracker = Tracker::new(TrackOptions {
        queue_threshold: None,
        gap_after_ms: Some(crate::track::gap_after_ms(5000)),
    });
    tracker.set_notified(0, true);
    tracker
}

/// A new file at `path` with `batches` of events written into it, each in
/// a transaction of its own: what each recorded.
fn write_batches(
    path: &Path,
    tracker: &Tracker,
    batches: &[&[crate::track::Event]],
) -> Vec<PollOutcome> {
    let mut writer = Writer::open(path, 3_600_000).unwrap();
    batches
        .iter()
        .map(|batch| writer.record(batch, None, tracker).unwrap())
        .collect()
}

/// A recorder: a tracker with notifications on, and its writer.
struct Recorder {
    tracker: Tracker,
    writer: Writer,
}

impl Recorder {
    fn open(path: &Path) -> Recorder {
        let mut tracker = notified_tracker();
        let mut writer = Writer::open(path, 3_600_000).unwrap();
        writer.resume(&mut tracker, false).unwrap();
        Recorder { tracker, writer }
    }

    /// The notifications received before the poll at `at`, the poll.
    fn poll(
        &mut self,
        sockets: &[DiagSocket],
        at: i64,
        notes: &[(i64, DiagSocket)],
    ) -> PollOutcome {
        self.poll_entries(snapshot(sockets), at, notes)
    }

    /// [`Recorder::poll`] of sockets with their namespaces, owners and
    /// workloads.
    fn poll_entries(
        &mut self,
        snapshot: Snapshot,
        at: i64,
        notes: &[(i64, DiagSocket)],
    ) -> PollOutcome {
        let mut events = Vec::new();
        for (t, d) in notes {
            self.tracker.notified(0, *t, d.clone(), &mut events);
        }
        self.tracker.polled(&snapshot, at, &mut events);
        let poll = PollRecord {
            at,
            took_us: 0,
            interval_ms: 5000,
            snapshot: &snapshot,
            notes: &[],
        };
        self.writer
            .record(&events, Some(&poll), &self.tracker)
            .unwrap()
    }
}

fn all(path: &Path) -> Vec<Lived> {
    let mut out = Vec::new();
    Reader::open(path)
        .unwrap()
        .connections(Window::All, |l: &Lived| -> Result<()> {
            out.push(l.clone());
            Ok(())
        })
        .unwrap();
    out
}

#[test]
fn every_state_and_timer_code_reads_back_as_written() {
    for code in 0..=255u8 {
        let timer = crate::model::TimerKind::from_code(code);
        assert_eq!(columns::timer_of(&timer_name(timer)), Some(timer), "{code}");
        let state = State::from_code(code);
        assert_eq!(columns::state_of(&state_name(state)), Some(state), "{code}");
    }
    assert_eq!(columns::timer_of("unknown(x)"), None);
    assert_eq!(columns::state_of("ESTABLISHED?"), None);
}

#[test]
fn a_clock_set_back_closes_no_connection_before_it_was_seen() {
    let path = scratch("clock");
    let mut r = Recorder::open(&path);
    let t = 1_800_000_010_000;
    r.poll(&[socket(40000, State::Established, 7)], t, &[]);
    // The clock goes back five seconds; the connection is gone, and no
    // notification comes for it.
    r.poll(&[], t - 5000, &[]);
    r.poll(&[], t - 4000, &[]);
    drop(r);
    let rows = all(&path);
    assert_eq!(rows.len(), 1);
    let l = &rows[0].lifetime;
    assert_eq!(l.closed_by.as_deref(), Some("poll"));
    assert!(l.closed_at.unwrap() >= l.last_seen, "{l:?}");
    assert!(l.last_seen >= l.first_seen, "{l:?}");
}

#[test]
fn a_short_connection_and_its_time_wait_are_one_row() {
    let path = scratch("timewait");
    let mut r = Recorder::open(&path);
    r.poll(&[], T, &[]);
    // Opened and closed between two polls: its notification, then its
    // TIME_WAIT with a cookie of its own (it was never dumped).
    let closed = (T + 100, socket(40001, State::Close, 11));
    let tw = socket(40001, State::TimeWait, 12);
    let out = r.poll(std::slice::from_ref(&tw), T + 5000, &[closed]);
    assert_eq!((out.opened, out.closed, out.notifications), (1, 0, 1));
    // The TIME_WAIT expires (its timer said 60 s).
    r.poll(&[], T + 70_000, &[]);
    drop(r);
    let rows = all(&path);
    assert_eq!(rows.len(), 1, "{rows:#?}");
    let l = &rows[0].lifetime;
    assert_eq!(rows[0].entry.socket.state, State::TimeWait);
    assert_eq!((l.first_seen, l.closed_at), (T + 100, Some(T + 65_000)));
    assert_eq!(l.closed_by.as_deref(), Some("expired"));
}

/// `socket` with tcp_info carrying `acked` bytes.
fn with_bytes(mut d: DiagSocket, acked: u64) -> DiagSocket {
    d.diag.tcp_info = Some(std::sync::Arc::new(crate::model::TcpInfo {
        bytes_acked: acked,
        bytes_received: acked / 2,
        rtt_us: 40,
        ..Default::default()
    }));
    d
}

#[test]
fn counters_reach_the_row_whether_or_not_they_changed_since_the_last_write() {
    let path = scratch("counters");
    let mut r = Recorder::open(&path);
    let open = with_bytes(socket(40002, State::Established, 21), 100);
    r.poll(std::slice::from_ref(&open), T, &[]);
    r.poll(std::slice::from_ref(&open), T + 5000, &[]);
    // Its notification with the final counters (more than the polls saw),
    // then the poll that ends it; a second connection closes with the
    // counters its poll saw (nothing new to write at its close or end).
    let other = with_bytes(socket(40003, State::Established, 22), 7);
    r.poll(&[open.clone(), other.clone()], T + 10_000, &[]);
    let closed = (T + 10_100, with_bytes(socket(40002, State::Close, 21), 900));
    let same = (T + 10_200, with_bytes(socket(40003, State::Close, 22), 7));
    r.poll(&[], T + 15_000, &[closed, same]);
    r.poll(&[], T + 20_000, &[]);
    drop(r);
    let rows = all(&path);
    let by_port = |port: u16| {
        rows.iter()
            .find(|l| l.entry.socket.local.port() == port)
            .map(|l| &l.lifetime)
            .unwrap()
    };
    let (grown, same) = (by_port(40002), by_port(40003));
    assert_eq!(
        (grown.bytes_acked, grown.bytes_received, grown.rtt_us),
        (Some(900), Some(450), Some(40))
    );
    assert_eq!(
        (grown.closed_at, grown.closed_by.as_deref()),
        (Some(T + 10_100), Some("destroy"))
    );
    assert_eq!(grown.last_seen, T + 10_100);
    assert_eq!((same.bytes_acked, same.bytes_received), (Some(7), Some(3)));
    assert_eq!(
        (same.closed_at, same.closed_by.as_deref()),
        (Some(T + 10_200), Some("destroy"))
    );
    assert_eq!(same.last_seen, T + 10_200);
}

#[test]
fn a_new_writer_takes_up_the_open_connections() {
    let path = scratch("resume");
    let a = socket(40002, State::Established, 21);
    let mut r = Recorder::open(&path);
    r.poll(std::slice::from_ref(&a), T, &[]);
    // A second writer is refused while the first lives.
    let refused = Writer::open(&path, 3_600_000).unwrap_err().to_string();
    assert!(
        refused.contains("another tcptab record is writing it"),
        "{refused}"
    );
    drop(r);
    let mut r = Recorder::open(&path);
    assert_eq!(r.writer.open_connections(), 1);
    r.poll(std::slice::from_ref(&a), T + 5000, &[]);
    drop(r);
    let rows = all(&path);
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(rows[0].lifetime.last_seen, T + 5000);
    assert_eq!(rows[0].lifetime.closed_at, None);
}

#[test]
fn a_time_wait_found_by_the_next_recorder_reopens_its_row() {
    let path = scratch("reopen");
    let mut r = Recorder::open(&path);
    r.poll(&[socket(40003, State::Established, 31)], T, &[]);
    // Its notification comes after the last poll: the recorder stops
    // with it closed at the notification.
    let mut events = Vec::new();
    r.tracker
        .notified(0, T + 100, socket(40003, State::Close, 31), &mut events);
    r.tracker.finish(&mut events);
    r.writer.record(&events, None, &r.tracker).unwrap();
    drop(r);
    // The next recorder finds its TIME_WAIT: the same connection.
    let mut r = Recorder::open(&path);
    r.poll(&[socket(40003, State::TimeWait, 31)], T + 1000, &[]);
    drop(r);
    let rows = all(&path);
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(rows[0].lifetime.closed_at, None);
    assert_eq!(rows[0].entry.socket.state, State::TimeWait);
}

#[test]
fn after_a_gap_what_is_gone_ended_at_its_last_sighting() {
    let path = scratch("gap");
    let mut r = Recorder::open(&path);
    r.poll(&[socket(40004, State::Established, 41)], T, &[]);
    drop(r);
    // A recorder 19 s later: the connection is gone.
    let mut r = Recorder::open(&path);
    r.poll(&[], T + 19_000, &[]);
    drop(r);
    let rows = all(&path);
    let l = &rows[0].lifetime;
    assert_eq!(
        (l.closed_at, l.closed_by.as_deref()),
        (Some(T), Some("gap"))
    );
    let reader = Reader::open(&path).unwrap();
    assert_eq!(
        reader.gaps(T, T + 19_000).unwrap(),
        [Gap {
            from: T,
            to: T + 19_000
        }]
    );
}

/// (`last_seen` as stored, `follows`) of the row of local port `port`.
fn stored(path: &Path, port: u16) -> (i64, Option<i64>) {
    rusqlite::Connection::open(path)
        .unwrap()
        .query_row(
            "SELECT last_seen, follows FROM connections WHERE local_port = ?1",
            [port],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
}

fn last_seen_of(path: &Path, window: Window) -> Vec<(u16, i64)> {
    let mut out = Vec::new();
    Reader::open(path)
        .unwrap()
        .connections(window, |l: &Lived| -> Result<()> {
            out.push((l.entry.socket.local.port(), l.lifetime.last_seen));
            Ok(())
        })
        .unwrap();
    out
}

/// A quiet poll writes when it saw the open rows once (the boot's
/// `open_seen`), not in each row; a row a poll did not find keeps its
/// own last sighting and follows again once found; `settle` writes the
/// time into the rows, which then say it alone.
#[test]
fn open_rows_follow_the_polls_and_one_not_found_keeps_its_time() {
    let path = scratch("follows");
    let (a, b) = (
        socket(40010, State::Established, 51),
        socket(40011, State::Established, 52),
    );
    let mut r = Recorder::open(&path);
    r.poll(&[a.clone(), b.clone()], T, &[]);
    // b is not found (its notification may be on its way).
    r.poll(std::slice::from_ref(&a), T + 5000, &[]);
    assert_eq!(stored(&path, 40010), (T, Some(1)));
    assert_eq!(stored(&path, 40011), (T, None));
    let all_then = last_seen_of(&path, Window::All);
    assert_eq!(all_then, [(40010, T + 5000), (40011, T)]);
    // The view for the file's other readers says the same.
    let viewed: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row(
            "SELECT s.last_seen FROM sightings s JOIN connections c ON c.id = s.connection
             WHERE c.local_port = 40010",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(viewed, T + 5000);
    // Open at T + 5000 is a alone: b was last seen before.
    assert_eq!(
        last_seen_of(&path, Window::At(T + 5000)),
        [(40010, T + 5000)]
    );
    // Found again: it follows again.
    r.poll(&[a.clone(), b.clone()], T + 10_000, &[]);
    assert_eq!(stored(&path, 40011), (T + 10_000, Some(1)));
    r.poll(&[a.clone(), b.clone()], T + 15_000, &[]);
    assert_eq!(
        last_seen_of(&path, Window::All),
        [(40010, T + 15_000), (40011, T + 15_000)]
    );
    r.writer.settle().unwrap();
    assert_eq!(stored(&path, 40010), (T + 15_000, Some(1)));
    assert_eq!(stored(&path, 40011), (T + 15_000, Some(1)));
    // A recorder killed (no settle): the next one settles at its start.
    r.poll(&[a.clone(), b.clone()], T + 20_000, &[]);
    drop(r);
    assert_eq!(stored(&path, 40010).0, T + 15_000);
    let r = Recorder::open(&path);
    drop(r);
    assert_eq!(stored(&path, 40010), (T + 20_000, Some(1)));
}

#[test]
fn lifetime_seconds_round_outwards() {
    let e = INDEX_EPOCH_MS;
    assert_eq!((floor_s(e + 1999), ceil_s(e + 1999)), (1, 2));
    assert_eq!((floor_s(e + 2000), ceil_s(e + 2000)), (2, 2));
    assert_eq!((floor_s(e - 1), ceil_s(e - 1)), (-1, 0));
}

/// Each table's rows as text, in id order, but for the transaction
/// numbers of shipping (`changed`).
fn tables(path: &Path) -> Vec<String> {
    let db = rusqlite::Connection::open(path).unwrap();
    let mut out = Vec::new();
    for table in [
        "connection_rows",
        "lifetimes",
        "state_change_rows",
        "owners",
    ] {
        let mut stmt = db
            .prepare(&format!("SELECT * FROM {table} ORDER BY 1, 2"))
            .unwrap();
        let names: Vec<String> = stmt.column_names().iter().map(|n| n.to_string()).collect();
        let mut rows = stmt.query([]).unwrap();
        while let Some(row) = rows.next().unwrap() {
            let mut line = format!("{table}:");
            for (i, name) in names.iter().enumerate().filter(|(_, n)| *n != "changed") {
                let value: rusqlite::types::Value = row.get(i).unwrap();
                line.push_str(&format!(" {name}={value:?}"));
            }
            out.push(line);
        }
    }
    out
}

/// A connection that opens within one batch of events is written once, as
/// it was at its last event there: each table then holds what its events
/// written in two batches, or each in a batch of its own, leave.
/// Connections first known by their notification, seen by a poll and
/// notified with more bytes, long enough for the lifetime index, ended by
/// a poll after the clock went back, one whose queue changed between, and
/// one notified and then found in TIME_WAIT (the TIME_WAIT reports no
/// owner's uid, no tcp_info: the row keeps the socket's).
#[test]
fn a_connection_opened_in_one_batch_is_the_row_its_events_leave_apart() {
    let mut tracker = notified_tracker();
    let mut events = Vec::new();
    let long = with_bytes(socket(40010, State::Established, 31), 10);
    let mut at = T - 400_000;
    while at < T {
        tracker.polled(&snapshot(std::slice::from_ref(&long)), at, &mut events);
        at += 5000;
    }
    let seen = with_bytes(socket(40011, State::Established, 32), 100);
    let back = socket(40012, State::Established, 33);
    let busy = socket(40014, State::Established, 35);
    let mut queued = busy.clone();
    queued.socket.rx_queue = 7;
    tracker.polled(
        &snapshot(&[long.clone(), seen.clone(), back.clone(), busy]),
        T,
        &mut events,
    );
    // One goes into TIME_WAIT: its socket's notification, its TIME_WAIT.
    let mut closing = with_bytes(socket(40015, State::Close, 36), 70);
    closing.socket.uid = 1000;
    closing.diag.shutdown = Some(3);
    tracker.notified(0, T + 40, closing, &mut events);
    // One changes between its opening and its end.
    let tw = socket(40015, State::TimeWait, 36);
    tracker.polled(
        &snapshot(&[long, seen, back, queued, tw]),
        T + 50,
        &mut events,
    );
    for (at, d) in [
        (T + 100, with_bytes(socket(40013, State::Close, 34), 50)),
        (T + 250, socket(40014, State::Close, 35)),
        (T + 200, with_bytes(socket(40011, State::Close, 32), 900)),
        (T + 300, with_bytes(socket(40010, State::Close, 31), 20)),
    ] {
        tracker.notified(0, at, d, &mut events);
    }
    // The clock goes back: the polls after miss them all.
    for at in [T - 3000, T - 2000, T - 1000] {
        tracker.polled(&snapshot(&[]), at, &mut events);
    }
    let first_end = events
        .iter()
        .position(|e| matches!(e.change, crate::track::Change::Ended { .. }))
        .unwrap();
    let opened = |e: &crate::track::Event| e.change == crate::track::Change::Opened;
    assert_eq!(events.iter().filter(|e| opened(e)).count(), 6);
    assert!(events[first_end..].iter().all(|e| !opened(e)));
    assert_eq!(
        events[first_end..]
            .iter()
            .filter(|e| matches!(e.change, crate::track::Change::Ended { .. }))
            .count(),
        6,
        "{events:#?}"
    );
    let changed =
        |e: &crate::track::Event| matches!(e.change, crate::track::Change::StateChanged { .. });
    assert_eq!(events.iter().filter(|e| changed(e)).count(), 1);
    let (once, apart, alone) = (
        scratch("fold-once"),
        scratch("fold-apart"),
        scratch("fold-alone"),
    );
    let out = write_batches(&once, &tracker, &[&events]);
    let counts = (out[0].opened, out[0].closed, out[0].notifications);
    assert_eq!(counts, (6, 6, 5));
    write_batches(
        &apart,
        &tracker,
        &[&events[..first_end], &events[first_end..]],
    );
    write_batches(&alone, &tracker, &events.chunks(1).collect::<Vec<_>>());
    let (once, apart, alone) = (tables(&once), tables(&apart), tables(&alone));
    assert_eq!(
        once.iter().filter(|l| l.starts_with("lifetimes:")).count(),
        1
    );
    let time_wait = once
        .iter()
        .find(|l| l.contains("local_port=Integer(40015)"))
        .unwrap();
    for kept in [
        "uid=Integer(1000)",
        "shutdown=Integer(3)",
        "bytes_acked=Integer(70)",
    ] {
        assert!(time_wait.contains(kept), "{kept} not in {time_wait}");
    }
    assert_eq!(once, apart);
    assert_eq!(once, alone);
}

/// A TIME_WAIT seen by two polls and ended by a new connection on its
/// ends (its close and its end come together, in a later transaction than
/// its row): the row is the one its events leave written one by one, its
/// last sighting the later poll's.
#[test]
fn a_close_and_its_end_in_one_batch_leave_the_row_they_leave_apart() {
    let mut tracker = notified_tracker();
    let mut events = Vec::new();
    let tw = socket(40016, State::TimeWait, 37);
    tracker.polled(&snapshot(std::slice::from_ref(&tw)), T, &mut events);
    tracker.polled(&snapshot(std::slice::from_ref(&tw)), T + 5000, &mut events);
    let earlier = events.len();
    // A new connection on its ends, opened and closed between two polls.
    let new = with_bytes(socket(40016, State::Close, 38), 30);
    tracker.notified(0, T + 6000, new, &mut events);
    tracker.polled(&snapshot(&[]), T + 10_000, &mut events);
    let later = &events[earlier..];
    let ended = |e: &crate::track::Event| matches!(e.change, crate::track::Change::Ended { .. });
    let closed = |e: &crate::track::Event| matches!(e.change, crate::track::Change::Closed { .. });
    assert!(later
        .iter()
        .any(|e| e.conn.id == events[0].conn.id && closed(e)));
    assert!(later
        .iter()
        .any(|e| e.conn.id == events[0].conn.id && ended(e)));
    let (batched, alone) = (scratch("close-end-batched"), scratch("close-end-alone"));
    write_batches(&batched, &tracker, &[&events[..earlier], later]);
    write_batches(&alone, &tracker, &events.chunks(1).collect::<Vec<_>>());
    let tables_batched = tables(&batched);
    let row = tables_batched
        .iter()
        .find(|l| l.contains("cookie=Integer(37)"))
        .unwrap();
    // Seen last by the poll at T + 5000, ended at T + 6000.
    assert!(
        row.contains(" last_seen=Integer(5000) closed_at=Integer(6000)"),
        "{row}"
    );
    assert_eq!(tables_batched, tables(&alone));
}
