//! How the file finds a moment's connections (spans, the lifetime index,
//! the open rows), and files of earlier versions read and taken up.

use super::*;

/// A file of version 3 (every row keeps its own `last_seen`) is read
/// as it is, and a recorder takes it up to this version.
#[test]
fn a_file_of_version_3_is_read_and_taken_up() {
    let path = scratch("version3");
    let a = socket(40012, State::Established, 61);
    let mut r = Recorder::open(&path);
    r.poll(std::slice::from_ref(&a), T, &[]);
    r.poll(std::slice::from_ref(&a), T + 5000, &[]);
    r.writer.settle().unwrap();
    drop(r);
    as_version_4(&path);
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(
            "DROP VIEW sightings;
             ALTER TABLE connections DROP COLUMN follows;
             ALTER TABLE boots DROP COLUMN open_seen;
             PRAGMA user_version = 3;",
        )
        .unwrap();
    assert_eq!(last_seen_of(&path, Window::All), [(40012, T + 5000)]);
    let mut r = Recorder::open(&path);
    assert_eq!(r.writer.open_connections(), 1);
    r.poll(std::slice::from_ref(&a), T + 10_000, &[]);
    drop(r);
    assert_eq!(last_seen_of(&path, Window::All), [(40012, T + 10_000)]);
    let version: i32 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, VERSION);
    // The recorder was not stopped cleanly: the view says what the
    // row does not yet.
    assert_eq!(stored(&path, 40012), (T + 5000, Some(1)));
    let viewed: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("SELECT last_seen FROM sightings", [], |r| r.get(0))
        .unwrap();
    assert_eq!(viewed, T + 10_000);
}

/// The tables of version 4 that version 5 replaced: names as text.
const VERSION_4_TABLES: &str = "
CREATE TABLE c4 (
    id INTEGER PRIMARY KEY, boot INTEGER NOT NULL REFERENCES boots (id),
    netns INTEGER NOT NULL REFERENCES namespaces (id), cookie INTEGER,
    first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL, closed_at INTEGER, closed_by TEXT,
    first_state TEXT NOT NULL, family TEXT NOT NULL, kind TEXT NOT NULL, state TEXT NOT NULL,
    local_address TEXT NOT NULL, local_port INTEGER NOT NULL, remote_address TEXT NOT NULL,
    remote_port INTEGER NOT NULL, tx_queue INTEGER NOT NULL, rx_queue INTEGER NOT NULL,
    timer TEXT NOT NULL, timer_ms INTEGER NOT NULL, retransmits INTEGER NOT NULL,
    uid INTEGER NOT NULL, probes INTEGER NOT NULL, inode INTEGER NOT NULL, source TEXT NOT NULL,
    interface INTEGER, backlog_limit INTEGER, congestion_algorithm TEXT, shutdown INTEGER,
    v6only INTEGER, owner_status TEXT, bytes_acked INTEGER, bytes_received INTEGER,
    total_retrans INTEGER, rtt_us INTEGER, workload INTEGER, follows INTEGER
) STRICT;
CREATE TABLE s4 (
    connection INTEGER NOT NULL, at INTEGER NOT NULL, state TEXT NOT NULL,
    PRIMARY KEY (connection, at, state)
) STRICT, WITHOUT ROWID;
INSERT INTO c4 SELECT * FROM connections;
INSERT INTO s4 SELECT * FROM state_changes;
DROP VIEW sightings; DROP VIEW connections; DROP VIEW state_changes;
DROP TABLE connection_rows; DROP TABLE state_change_rows; DROP TABLE spans;
ALTER TABLE c4 RENAME TO connections; ALTER TABLE s4 RENAME TO state_changes;
CREATE INDEX connections_open ON connections (boot, netns) WHERE closed_at IS NULL;
CREATE INDEX connections_remote ON connections (remote_address, remote_port);
";

/// A file of this version made one of version 4, as a recorder of
/// version 4 would have written it: its names as text, every connection
/// in the lifetime index.
fn as_version_4(path: &Path) {
    let db = rusqlite::Connection::open(path).unwrap();
    db.execute_batch(&format!("BEGIN; {VERSION_4_TABLES} {SIGHTINGS}"))
        .unwrap();
    let rows: Vec<(i64, i64, Option<i64>)> = db
        .prepare("SELECT id, first_seen, closed_at FROM connections")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    for (id, first_seen, closed_at) in rows {
        db.execute(
            "INSERT OR REPLACE INTO lifetimes VALUES (?1, ?2, ?3)",
            rusqlite::params![id, floor_s(first_seen), closed_at.map_or(OPEN_END, ceil_s)],
        )
        .unwrap();
    }
    db.execute_batch("PRAGMA user_version = 4; COMMIT;")
        .unwrap();
}

/// Every connection of the file and what it was at `moments`, as text to
/// compare.
fn answers(path: &Path, moments: &[i64]) -> Vec<String> {
    let mut out = Vec::new();
    let reader = Reader::open(path).unwrap();
    for window in std::iter::once(Window::All).chain(moments.iter().map(|&t| Window::At(t))) {
        reader
            .connections(window, |l: &Lived| -> Result<()> {
                out.push(format!("{window:?} {l:?}"));
                Ok(())
            })
            .unwrap();
    }
    out
}

fn count(path: &Path, sql: &str) -> i64 {
    rusqlite::Connection::open(path)
        .unwrap()
        .query_row(sql, [], |r| r.get(0))
        .unwrap()
}

/// Polls every 5 s from `from` to `to` (inclusive) with `sockets`.
fn polls(r: &mut Recorder, sockets: &[DiagSocket], from: i64, to: i64) {
    let mut at = from;
    while at <= to {
        r.poll(sockets, at, &[]);
        at += 5000;
    }
}

/// The local ports of the connections open at `moment`.
fn ports_at(path: &Path, moment: i64) -> Vec<u16> {
    let mut out = Vec::new();
    Reader::open(path)
        .unwrap()
        .connections(Window::At(moment), |l: &Lived| -> Result<()> {
            out.push(l.entry.socket.local.port());
            Ok(())
        })
        .unwrap();
    out
}

/// A file of version 4 answers the same before and after a recorder
/// takes it up to version 5: every name (an unknown state and timer
/// too) becomes its number and reads back as it was.
#[test]
fn a_file_of_version_4_answers_the_same_once_taken_up() {
    let path = scratch("version4");
    let held = socket(40020, State::Established, 71);
    let short = socket(40021, State::Established, 72);
    let mut odd = socket(40022, State::Other(0x0e), 73);
    odd.socket.timer.kind = crate::model::TimerKind::Other(7);
    let mut r = Recorder::open(&path);
    r.poll(&[held.clone(), short.clone(), odd.clone()], T, &[]);
    r.poll(
        &[held.clone(), odd.clone()],
        T + 5000,
        &[(T + 2000, short.clone())],
    );
    r.poll(std::slice::from_ref(&held), T + 10_000, &[]);
    r.writer.settle().unwrap();
    drop(r);
    let moments = [T + 1000, T + 6000, T + 10_000];
    let before = answers(&path, &moments);
    let open = count(
        &path,
        "SELECT count(*) FROM connections WHERE closed_at IS NULL",
    );
    as_version_4(&path);
    assert_eq!(answers(&path, &moments), before, "read as version 4");
    assert_eq!(count(&path, "SELECT count(*) FROM lifetimes"), 3);
    let r = Recorder::open(&path);
    assert_eq!(r.writer.open_connections() as i64, open);
    drop(r);
    assert_eq!(answers(&path, &moments), before, "taken up to version 5");
    assert_eq!(
        count(
            &path,
            "SELECT count(*) FROM connection_rows WHERE state = 14 AND timer = 7"
        ),
        1
    );
    // The held connection, indexed from its start, ends there however
    // short its life.
    let mut r = Recorder::open(&path);
    r.poll(&[], T + 15_000, &[(T + 12_000, held.clone())]);
    drop(r);
    assert_eq!(
        count(&path, "SELECT end_s FROM lifetimes WHERE id = 1"),
        ceil_s(T + 12_000)
    );
    assert_eq!(ports_at(&path, T + 11_000), [40020]);
    assert_eq!(ports_at(&path, T + 13_000), [0u16; 0]);
}

/// Connections found at a moment whichever way the file finds them: a
/// short one by its span (it is not in the lifetime index), a long one
/// by the index once it ends, an open one by being open.
#[test]
fn short_long_and_open_connections_are_found_at_every_moment() {
    let path = scratch("spans");
    let short = socket(40030, State::Established, 81);
    let long = socket(40031, State::Established, 82);
    let open = socket(40032, State::Established, 83);
    let mut r = Recorder::open(&path);
    r.poll(&[short.clone(), long.clone(), open.clone()], T, &[]);
    r.poll(
        &[long.clone(), open.clone()],
        T + 5000,
        &[(T + 3000, short.clone())],
    );
    let end = T + 5000 + SHORT_MS + 10_000;
    polls(
        &mut r,
        &[long.clone(), open.clone()],
        T + 10_000,
        end - 5000,
    );
    r.poll(
        std::slice::from_ref(&open),
        end,
        &[(end - 1000, long.clone())],
    );
    drop(r);
    assert_eq!(
        count(&path, "SELECT count(*) FROM lifetimes"),
        1,
        "only the long one"
    );
    assert_eq!(ports_at(&path, T + 1000), [40030, 40031, 40032]);
    assert_eq!(ports_at(&path, T + 4000), [40031, 40032]);
    // More than SHORT_MS after the last span: only the index and the open
    // rows know them.
    assert_eq!(ports_at(&path, end - 2000), [40031, 40032]);
    assert_eq!(ports_at(&path, end), [40032]);
}

/// The retention window deletes short connections by their spans, and
/// what a span leaves open goes into the lifetime index, found and
/// deleted from there once it ends.
#[test]
fn retention_deletes_by_span_and_keeps_what_is_open() {
    let path = scratch("retention");
    let mut tracker = Tracker::new(TrackOptions {
        queue_threshold: None,
        gap_after_ms: Some(crate::track::gap_after_ms(5000)),
    });
    tracker.set_notified(0, true);
    let mut writer = Writer::open(&path, 10_000).unwrap();
    writer.resume(&mut tracker, false).unwrap();
    let mut r = Recorder { tracker, writer };
    let short = socket(40040, State::Established, 91);
    let open = socket(40041, State::Established, 92);
    r.poll(&[short.clone(), open.clone()], T, &[]);
    r.poll(
        std::slice::from_ref(&open),
        T + 5000,
        &[(T + 3000, short.clone())],
    );
    let end = T + SHORT_MS + 30_000;
    polls(&mut r, std::slice::from_ref(&open), T + 10_000, end);
    assert_eq!(
        count(&path, "SELECT count(*) FROM connection_rows"),
        1,
        "the short one went"
    );
    assert_eq!(count(&path, "SELECT count(*) FROM spans"), 0);
    assert_eq!(
        count(&path, "SELECT count(*) FROM lifetimes WHERE id = 2"),
        1
    );
    r.poll(&[], end + 5000, &[(end + 1000, open.clone())]);
    polls(&mut r, &[], end + 10_000, end + 30_000);
    assert_eq!(
        count(&path, "SELECT count(*) FROM connection_rows"),
        0,
        "the long one went"
    );
    assert_eq!(count(&path, "SELECT count(*) FROM lifetimes"), 0);
}

/// How SQLite reads the rows of a window and of the retention's spans:
/// through the spans, the indexes and row ids, never every row (SQLite
/// 3.53 chose that for a plain join: `--at` on four hours of churn took
/// minutes instead of half a second).
#[test]
fn a_window_reads_only_the_rows_its_indexes_find() {
    let path = scratch("plans");
    let mut r = Recorder::open(&path);
    r.poll(
        &[socket(40050, State::Established, 95)],
        1_800_000_000_000,
        &[],
    );
    drop(r);
    let reader = Reader::open(&path).unwrap();
    let db = rusqlite::Connection::open(&path).unwrap();
    let window = Window::At(1_800_000_000_000);
    for sql in [
        &*reader.window_sql(window),
        rows::SPANS_ENDED,
        rows::SPANS_LEFT_OPEN,
    ] {
        let mut stmt = db.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let n = stmt.parameter_count();
        let plan: Vec<String> = stmt
            .query_map(rusqlite::params_from_iter(1..=n as i64), |r| r.get(3))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        let scans: Vec<&String> = plan
            .iter()
            .filter(|step| {
                (step.contains("connection_rows") || step.starts_with("SCAN c"))
                    && !step.contains("PRIMARY KEY")
                    && !step.contains("INDEX connections_open")
            })
            .collect();
        assert!(scans.is_empty(), "{scans:?} in {plan:#?}");
    }
}
