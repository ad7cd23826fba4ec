//! Shipping from the file: what waits (each row's `changed` above the
//! store's mark), what a batch carries, what an acknowledgement forgets,
//! the writer's feed and the file read when the feed is not enough.

use super::*;

/// What waits in the file, as docs/history.md counts it.
fn waiting_in(path: &Path) -> i64 {
    rusqlite::Connection::open(path)
        .unwrap()
        .query_row(
            "SELECT count(*) FROM connection_rows
             WHERE (changed, id) > ((SELECT value FROM meta WHERE key = 'ship_acked'),
                                    (SELECT value FROM meta WHERE key = 'ship_acked_id'))",
            [],
            |r| r.get(0),
        )
        .unwrap()
}

/// The ports of a batch's lines.
fn ports(batch: &Batch) -> Vec<i64> {
    let mut out: Vec<i64> = batch
        .json()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["local_port"]
                .as_i64()
                .unwrap()
        })
        .collect();
    out.sort_unstable();
    out
}

/// Fed by its writer, the outbox reads the file once, then ships each
/// change once as the writer tells it; what it read and was not
/// acknowledged is there again for the next recorder.
#[test]
fn a_fed_outbox_ships_each_change_once() {
    let path = scratch("ship-fed");
    let mut r = Recorder::open(&path);
    // Rows from before shipping was on wait too.
    r.poll(&[socket(40300, State::Established, 1)], T, &[]);
    let feed = r.writer.ship().unwrap();
    let mut outbox = Outbox::open(&path).unwrap().fed(feed);
    let (a, b) = (
        socket(40300, State::Established, 1),
        socket(40301, State::Established, 2),
    );
    r.poll(&[a.clone(), b.clone()], T + 5000, &[]);
    assert_eq!(waiting_in(&path), 2);
    let first = outbox.connections(100).unwrap();
    assert_eq!(ports(&first), [40300, 40301]);
    outbox.acked(&first).unwrap();
    assert_eq!((waiting_in(&path), outbox.waiting().unwrap().rows), (0, 0));
    // Nothing changed: nothing to ship.
    r.poll(&[a.clone(), b.clone()], T + 10_000, &[]);
    assert_eq!(outbox.connections(100).unwrap().rows, 0);
    let mut b_later = b.clone();
    b_later.socket.state = State::FinWait1;
    r.poll(&[a.clone(), b_later.clone()], T + 15_000, &[]);
    assert_eq!(outbox.waiting().unwrap().rows, 1);
    let second = outbox.connections(100).unwrap();
    assert_eq!(ports(&second), [40301]);
    assert!(second.json().contains("FIN_WAIT1"), "{}", second.json());
    // The recorder stops before the store answers: a new one ships it.
    drop((outbox, r));
    assert_eq!(waiting_in(&path), 1);
    let mut r = Recorder::open(&path);
    let feed = r.writer.ship().unwrap();
    let mut outbox = Outbox::open(&path).unwrap().fed(feed);
    let again = outbox.connections(100).unwrap();
    assert_eq!(ports(&again), [40301]);
    outbox.acked(&again).unwrap();
    assert_eq!(waiting_in(&path), 0);
    let status = Reader::open(&path).unwrap().shipping().unwrap().unwrap();
    assert_eq!((status.rows, status.sent, status.batches), (0, 3, 2));
}

/// An outbox that holds fewer rows than wait ships those it holds, then
/// reads the next from the file; what the writer told meanwhile is found
/// there. Every row is shipped, and none twice.
#[test]
fn an_outbox_that_holds_less_than_waits_reads_the_rest_from_the_file() {
    let path = scratch("ship-held");
    let mut r = Recorder::open(&path);
    let feed = r.writer.ship().unwrap();
    let mut outbox = Outbox::open(&path).unwrap().fed(feed).holding(2);
    let sockets: Vec<DiagSocket> = (0..5)
        .map(|i| socket(40400 + i, State::Established, 10 + u64::from(i)))
        .collect();
    r.poll(&sockets, T, &[]);
    let mut shipped = Vec::new();
    for round in 0..10 {
        if round == 1 {
            // Told while the outbox does not hold everything.
            let mut more = sockets.clone();
            more.push(socket(40405, State::Established, 20));
            r.poll(&more, T + 5000, &[]);
        }
        let batch = outbox.connections(100).unwrap();
        if batch.rows == 0 {
            break;
        }
        assert!(batch.rows <= 2, "{}", batch.json());
        shipped.extend(ports(&batch));
        outbox.acked(&batch).unwrap();
    }
    shipped.sort_unstable();
    assert_eq!(shipped, (40400..40406).collect::<Vec<i64>>());
    assert_eq!(waiting_in(&path), 0);
}

/// The connections a restart of the machine closed (found open by the
/// next recorder, of a new boot) are shipped closed, whether that
/// recorder ships or not: the store does not keep them open.
#[test]
fn connections_closed_by_a_restart_are_shipped() {
    for ships in [true, false] {
        let path = scratch(&format!("ship-reboot-{ships}"));
        let mut r = Recorder::open(&path);
        let feed = r.writer.ship().unwrap();
        let mut outbox = Outbox::open(&path).unwrap().fed(feed);
        r.poll(&[socket(40600, State::Established, 1)], T, &[]);
        let open = outbox.connections(100).unwrap();
        outbox.acked(&open).unwrap();
        drop((outbox, r));
        assert_eq!(waiting_in(&path), 0);
        // The machine restarted: the file's boot is an earlier one.
        rusqlite::Connection::open(&*path)
            .unwrap()
            .execute("UPDATE boots SET boot_id = 'an-earlier-boot'", [])
            .unwrap();
        let mut tracker = Tracker::new(TrackOptions::default());
        let mut writer = Writer::open(&path, 3_600_000).unwrap();
        let feed = ships.then(|| writer.ship().unwrap());
        writer.resume(&mut tracker, false).unwrap();
        assert_eq!(waiting_in(&path), 1, "ships: {ships}");
        let mut outbox = Outbox::open(&path).unwrap();
        if let Some(feed) = feed {
            outbox = outbox.fed(feed);
        }
        let closed = outbox.connections(100).unwrap();
        assert_eq!(ports(&closed), [40600]);
        assert!(
            closed.json().contains("\"closed_by\":\"reboot\""),
            "{}",
            closed.json()
        );
        outbox.acked(&closed).unwrap();
        assert_eq!(waiting_in(&path), 0);
    }
}

/// A recorder without shipping on a file shipped from leaves what it
/// changed waiting for the next one that ships: nothing is skipped.
#[test]
fn what_a_recorder_that_does_not_ship_changes_waits() {
    let path = scratch("ship-pause");
    let a = socket(40700, State::Established, 1);
    let mut r = Recorder::open(&path);
    let feed = r.writer.ship().unwrap();
    let mut outbox = Outbox::open(&path).unwrap().fed(feed);
    r.poll(std::slice::from_ref(&a), T, &[]);
    let first = outbox.connections(100).unwrap();
    outbox.acked(&first).unwrap();
    drop((outbox, r));
    let mut r = Recorder::open(&path);
    let mut a_later = a.clone();
    a_later.socket.state = State::FinWait1;
    r.poll(
        &[a_later, socket(40701, State::Established, 2)],
        T + 5000,
        &[],
    );
    drop(r);
    assert_eq!(waiting_in(&path), 2);
    let mut r = Recorder::open(&path);
    let feed = r.writer.ship().unwrap();
    let mut outbox = Outbox::open(&path).unwrap().fed(feed);
    let batch = outbox.connections(100).unwrap();
    assert_eq!(ports(&batch), [40700, 40701]);
    assert!(batch.json().contains("FIN_WAIT1"), "{}", batch.json());
}

/// A file of version 5 kept what waited in an `outbox` table: taken up,
/// those rows wait, and the others were acknowledged.
#[test]
fn a_version_5_outbox_is_taken_up() {
    let path = scratch("ship-v5");
    let mut r = Recorder::open(&path);
    r.poll(
        &[
            socket(40500, State::Established, 1),
            socket(40501, State::Established, 2),
        ],
        T,
        &[],
    );
    drop(r);
    rusqlite::Connection::open(&*path)
        .unwrap()
        .execute_batch(
            "CREATE TABLE outbox (connection INTEGER PRIMARY KEY, seq INTEGER NOT NULL, since INTEGER NOT NULL) STRICT;
             INSERT INTO outbox SELECT id, 7, 0 FROM connection_rows WHERE local_port = 40501;
             INSERT OR REPLACE INTO meta VALUES ('ship_seq', 7);
             ALTER TABLE connection_rows DROP COLUMN changed;
             PRAGMA user_version = 5;",
        )
        .unwrap();
    // Read as it is (a reader does not take a file up): its table counts.
    let status = Reader::open(&path).unwrap().shipping().unwrap().unwrap();
    assert_eq!((status.rows, status.oldest), (1, Some(0)));
    let mut r = Recorder::open(&path);
    assert_eq!(waiting_in(&path), 1);
    let feed = r.writer.ship().unwrap();
    let mut outbox = Outbox::open(&path).unwrap().fed(feed);
    let batch = outbox.connections(100).unwrap();
    assert_eq!(ports(&batch), [40501]);
    assert!(batch.json().contains("\"version\":7"), "{}", batch.json());
    outbox.acked(&batch).unwrap();
    // The next transaction's number is above the file's last.
    r.poll(&[socket(40502, State::Established, 3)], T + 5000, &[]);
    let next = outbox.connections(100).unwrap();
    assert!(next.json().contains("\"version\":8"), "{}", next.json());
}

/// A new version of a connection ships only the state changes the
/// store has not acknowledged; one not acknowledged is sent again, and
/// a new outbox sends every change once more.
#[test]
fn a_state_change_is_shipped_until_acknowledged_then_not_again() {
    let path = scratch("ship-changes");
    let mut r = Recorder::open(&path);
    r.writer.ship().unwrap();
    let t = 1_800_000_010_000;
    r.poll(&[socket(40000, State::Established, 7)], t, &[]);
    let mut outbox = Outbox::open(&path).unwrap();
    let first = outbox.connections(100).unwrap();
    assert_eq!(first.rows, 1);
    // Open: its NULL members (closed_at, closed_by) are left out.
    assert!(!first.json().contains("closed_"), "{}", first.json());
    outbox.acked(&first).unwrap();
    r.poll(&[socket(40000, State::FinWait1, 7)], t + 5000, &[]);
    let second = outbox.connections(100).unwrap();
    assert_eq!((second.rows, second.change_rows), (1, 1));
    assert!(
        second.changes_json().contains("FIN_WAIT1"),
        "{}",
        second.changes_json()
    );
    outbox.acked(&second).unwrap();
    r.poll(&[socket(40000, State::FinWait2, 7)], t + 10_000, &[]);
    let third = outbox.connections(100).unwrap();
    assert_eq!(
        (third.rows, third.change_rows),
        (1, 1),
        "{}",
        third.changes_json()
    );
    assert!(
        third.changes_json().contains("FIN_WAIT2"),
        "{}",
        third.changes_json()
    );
    // Every change is still in the row itself.
    assert!(third.json().contains("FIN_WAIT1") && third.json().contains("FIN_WAIT2"));
    // Not acknowledged: the same again; a new outbox: both changes.
    assert_eq!(outbox.connections(100).unwrap().change_rows, 1);
    let fresh = Outbox::open(&path).unwrap().connections(100).unwrap();
    assert_eq!(fresh.change_rows, 2);
    outbox.acked(&third).unwrap();
    // Closed: its last version acknowledged, it is forgotten.
    r.poll(&[], t + 15_000, &[]);
    r.poll(&[], t + 20_000, &[]);
    let last = outbox.connections(100).unwrap();
    assert_eq!(last.rows, 1);
    assert!(last.json().contains("\"closed_at\":"), "{}", last.json());
    outbox.acked(&last).unwrap();
    assert!(outbox.shipped.is_empty(), "{:?}", outbox.shipped);
}

/// The shipper reads the rows without the view, naming their numbers
/// itself: every column it ships says what the view says (open, closed,
/// in TIME_WAIT, an unknown state and timer).
#[test]
fn shipped_rows_say_what_the_view_says() {
    let path = scratch("ship-view");
    let mut r = Recorder::open(&path);
    r.writer.ship().unwrap();
    let open = socket(40200, State::Established, 1);
    let closing = socket(40201, State::Established, 2);
    let mut odd = socket(40202, State::Other(0x0e), 3);
    odd.socket.timer.kind = crate::model::TimerKind::Other(7);
    r.poll(&[open.clone(), closing.clone(), odd.clone()], T, &[]);
    let tw = socket(40201, State::TimeWait, 2);
    r.poll(&[open.clone(), tw, odd.clone()], T + 5000, &[]);
    // One of a named namespace, with a workload.
    let mut dressed = EntryBuf::dumped(socket(40203, State::Established, 4));
    dressed.namespace = Some(std::sync::Arc::new(crate::model::Namespace {
        inode: 4_026_532_999,
        name: Some("blue".into()),
        pid: None,
        path: None,
        pod: None,
    }));
    dressed.workload = Some(std::sync::Arc::new(crate::model::Workload {
        cgroup: "/system.slice/web.service".into(),
        unit: Some("web.service".into()),
        slice: Some("system.slice".into()),
        ..Default::default()
    }));
    let sockets = vec![EntryBuf::dumped(open.clone()), dressed];
    r.poll_entries(Snapshot::of(sockets), T + 10_000, &[]);
    let batch = Outbox::open(&path).unwrap().connections(100).unwrap();
    assert_eq!(batch.rows, 4);
    let db = rusqlite::Connection::open(&*path).unwrap();
    let sql = format!(
        "SELECT {} FROM connections c JOIN namespaces n ON n.id = c.netns WHERE c.id = ?1",
        columns::COLUMNS
    );
    for line in batch.json().lines() {
        let shipped: serde_json::Value = serde_json::from_str(line).unwrap();
        let id = shipped["id"].as_i64().unwrap();
        db.query_row(&sql, [id], |row| {
            for (i, name) in COLUMN_NAMES.iter().enumerate() {
                let view = match row.get_ref(i)? {
                    rusqlite::types::ValueRef::Null => serde_json::Value::Null,
                    rusqlite::types::ValueRef::Integer(n) => n.into(),
                    rusqlite::types::ValueRef::Text(t) => {
                        String::from_utf8_lossy(t).into_owned().into()
                    }
                    other => panic!("{name}: {other:?}"),
                };
                assert_eq!(shipped[*name], view, "{name} of {line}");
            }
            Ok(())
        })
        .unwrap();
        // The boot's and the workload's members, as their tables say.
        let with = "SELECT b.boot_id, w.cgroup, w.unit, w.slice, w.runtime, w.container_id, w.container_name,
                w.pod_namespace, w.pod_name, w.pod_uid
            FROM connection_rows c JOIN boots b ON b.id = c.boot LEFT JOIN workloads w ON w.id = c.workload
            WHERE c.id = ?1";
        db.query_row(with, [id], |row| {
            let names = ["boot_id"].iter().chain(&WORKLOAD_COLUMNS);
            for (i, name) in names.enumerate() {
                let value: Option<String> = row.get(i)?;
                assert_eq!(shipped[*name], serde_json::json!(value), "{name} of {line}");
            }
            Ok(())
        })
        .unwrap();
    }
    let rows = batch.json();
    let dressed = rows.lines().find(|l| l.contains("\"blue\"")).unwrap();
    for member in [
        "\"netns\":4026532999",
        "\"unit\":\"web.service\"",
        "\"boot_id\":\"",
    ] {
        assert!(dressed.contains(member), "{member} in {dressed}");
    }
    for text in ["UNKNOWN(0x0e)", "unknown(7)", "TIME_WAIT", "ESTABLISHED"] {
        assert!(batch.json().contains(text), "{text} in {}", batch.json());
    }
}

/// An acknowledgement forgets the rows of its batch only: not those
/// beyond its limit, nor one that changed after the batch was read.
#[test]
fn an_acknowledgement_forgets_its_batch_and_nothing_else() {
    let path = scratch("ship-ack");
    let mut r = Recorder::open(&path);
    r.writer.ship().unwrap();
    let (a, b, c) = (
        socket(40100, State::Established, 1),
        socket(40101, State::Established, 2),
        socket(40102, State::Established, 3),
    );
    r.poll(&[a.clone(), b.clone(), c.clone()], T, &[]);
    let mut outbox = Outbox::open(&path).unwrap();
    let waiting = |outbox: &mut Outbox| outbox.waiting().unwrap().rows;
    let batch = outbox.connections(2).unwrap();
    assert_eq!(batch.rows, 2);
    // One of the batch's rows changes before the store answers.
    let mut a_later = a.clone();
    a_later.socket.state = State::FinWait1;
    r.poll(&[a_later, b.clone(), c.clone()], T + 5000, &[]);
    outbox.acked(&batch).unwrap();
    // Left: the row beyond the limit and the changed one.
    assert_eq!(waiting(&mut outbox), 2);
    let rest = outbox.connections(10).unwrap();
    assert_eq!(rest.rows, 2);
    assert!(rest.json().contains("FIN_WAIT1"), "{}", rest.json());
    assert!(
        rest.json().contains(":40102") || rest.json().contains("40102"),
        "{}",
        rest.json()
    );
    outbox.acked(&rest).unwrap();
    assert_eq!(waiting(&mut outbox), 0);
}

/// A row shipped in TIME_WAIT is kept as shipped: its close, which changes
/// only its times, is made from it (the file not read), and is the row a
/// fresh outbox reads from the file, acknowledged or not; a row that went
/// into TIME_WAIT after it was shipped open is read, and kept then.
#[test]
fn a_time_wait_closed_is_shipped_from_the_row_kept() {
    let path = scratch("ship-kept");
    let mut r = Recorder::open(&path);
    let feed = r.writer.ship().unwrap();
    let mut outbox = Outbox::open(&path).unwrap().fed(feed);
    r.poll(&[], T, &[]);
    // Two connections closed between polls, found in TIME_WAIT; a third
    // open, in TIME_WAIT at the next poll.
    let notes = [
        (T + 100, with_bytes(socket(40401, State::Close, 31), 500)),
        (T + 200, with_bytes(socket(40402, State::Close, 32), 600)),
    ];
    let (tw1, tw2) = (
        socket(40401, State::TimeWait, 41),
        socket(40402, State::TimeWait, 42),
    );
    let open = with_bytes(socket(40403, State::Established, 33), 700);
    r.poll(&[tw1.clone(), tw2.clone(), open.clone()], T + 5000, &notes);
    let first = outbox.connections(100).unwrap();
    assert_eq!(ports(&first), [40401, 40402, 40403]);
    outbox.acked(&first).unwrap();
    assert_eq!(outbox.kept(), 2);
    // The first TIME_WAIT expires; the second is found again; the open
    // one goes into TIME_WAIT (a change of state: read again).
    let tw3 = socket(40403, State::TimeWait, 43);
    r.poll(&[tw2.clone(), tw3.clone()], T + 10_000, &[]);
    let second = outbox.connections(100).unwrap();
    assert_eq!((ports(&second), second.kept_rows), (vec![40401, 40403], 1));
    assert!(
        second.json().contains("\"closed_by\":\"poll\""),
        "{}",
        second.json()
    );
    let fresh = Outbox::open(&path).unwrap().connections(100).unwrap();
    let line = |b: &Batch, port: u16| {
        b.json()
            .lines()
            .find(|l| l.contains(&format!("\"local_port\":{port}")))
            .map(str::to_string)
    };
    assert_eq!(line(&second, 40401), line(&fresh, 40401));
    assert!(line(&second, 40401).is_some());
    outbox.acked(&second).unwrap();
    // The closed one is forgotten; the new TIME_WAIT kept.
    assert_eq!(outbox.kept(), 2);
    // Not acknowledged, a close made from a kept row is the same again.
    r.poll(&[], T + 70_000, &[]);
    let third = outbox.connections(100).unwrap();
    assert_eq!((ports(&third), third.kept_rows), (vec![40402, 40403], 2));
    assert_eq!(outbox.connections(100).unwrap().body, third.body);
    let fresh = Outbox::open(&path).unwrap().connections(100).unwrap();
    for port in [40402, 40403] {
        assert_eq!(line(&third, port), line(&fresh, port));
    }
    outbox.acked(&third).unwrap();
    assert_eq!((outbox.kept(), waiting_in(&path)), (0, 0));
}

/// A row kept in TIME_WAIT (the FIN_WAIT2 substate) that changes state
/// before its close, both shipped together, is read from the file: the
/// row kept is not the version before the close.
#[test]
fn a_kept_row_changed_before_its_close_is_read_again() {
    let path = scratch("ship-kept-changed");
    let mut r = Recorder::open(&path);
    let feed = r.writer.ship().unwrap();
    let mut outbox = Outbox::open(&path).unwrap().fed(feed);
    let mut fin_wait = socket(40404, State::FinWait2, 44);
    fin_wait.socket.kind = crate::model::RowKind::TimeWait;
    fin_wait.diag.timer_ms = 30_000;
    r.poll(std::slice::from_ref(&fin_wait), T, &[]);
    let first = outbox.connections(100).unwrap();
    outbox.acked(&first).unwrap();
    assert_eq!(outbox.kept(), 1);
    r.poll(&[socket(40404, State::TimeWait, 44)], T + 5000, &[]);
    r.poll(&[], T + 10_000, &[]);
    let second = outbox.connections(100).unwrap();
    assert_eq!(
        (second.rows, second.kept_rows, second.change_rows),
        (1, 0, 1)
    );
    let fresh = Outbox::open(&path).unwrap().connections(100).unwrap();
    assert_eq!(second.json(), fresh.json());
    assert!(
        second.json().contains("\"states\":[\"TIME_WAIT\"]"),
        "{}",
        second.json()
    );
    outbox.acked(&second).unwrap();
    assert_eq!(outbox.kept(), 0);
}

/// Each row carries its own owners and state changes, whatever the rows
/// around it have (none, one, several), as the file's tables keep them.
#[test]
fn each_row_carries_its_own_owners_and_state_changes() {
    use crate::model::{Owner, Owners};
    let path = scratch("ship-owners");
    let mut r = Recorder::open(&path);
    r.writer.ship().unwrap();
    let owned = |port: u16, state: State, owners: &[(u32, u32, &str)]| {
        let e = EntryBuf::dumped(socket(port, state, u64::from(port)));
        let list: Vec<Owner> = owners
            .iter()
            .map(|&(pid, fd, command)| Owner {
                pid,
                fd,
                command: command.into(),
            })
            .collect();
        match list.is_empty() {
            true => e,
            false => e.with_owners(Some(Owners::Owned(list.into()))),
        }
    };
    let two = [(70, 4, "api"), (71, 9, "api-worker")];
    let first = vec![
        owned(40500, State::Established, &two),
        owned(40501, State::Established, &[]),
        owned(40502, State::Established, &[(80, 3, "db")]),
        owned(40503, State::SynSent, &[(90, 5, "cron"), (91, 6, "cron2")]),
        owned(40504, State::Established, &[]),
    ];
    r.poll_entries(Snapshot::of(first), T, &[]);
    let second = vec![
        owned(40500, State::Established, &two),
        owned(40501, State::Established, &[]),
        owned(40502, State::FinWait1, &[(80, 3, "db")]),
        owned(
            40503,
            State::Established,
            &[(90, 5, "cron"), (91, 6, "cron2")],
        ),
        owned(40504, State::CloseWait, &[(99, 7, "late")]),
    ];
    r.poll_entries(Snapshot::of(second.clone()), T + 5000, &[]);
    let mut outbox = Outbox::open(&path).unwrap();
    // Rows 1 to 5: one run of ids, read along each table's key.
    let batch = outbox.connections(100).unwrap();
    assert_eq!(batch.rows, 5);
    let db = rusqlite::Connection::open(&*path).unwrap();
    let list = |sql: &str, id: i64| -> Vec<serde_json::Value> {
        let mut stmt = db.prepare(sql).unwrap();
        let rows = stmt.query_map([id], |r| {
            Ok(match r.get_ref(0)? {
                rusqlite::types::ValueRef::Integer(n) => n.into(),
                rusqlite::types::ValueRef::Text(t) => {
                    String::from_utf8_lossy(t).into_owned().into()
                }
                other => panic!("{other:?}"),
            })
        });
        rows.unwrap().map(|v| v.unwrap()).collect()
    };
    let check = |batch: &Batch| {
        let mut seen_owners = 0;
        for line in batch.json().lines() {
            let shipped: serde_json::Value = serde_json::from_str(line).unwrap();
            let id = shipped["id"].as_i64().unwrap();
            for (member, sql) in [
                (
                    "owner_pids",
                    "SELECT pid FROM owners WHERE connection = ?1 ORDER BY pid, fd",
                ),
                (
                    "owner_fds",
                    "SELECT fd FROM owners WHERE connection = ?1 ORDER BY pid, fd",
                ),
                (
                    "owner_commands",
                    "SELECT command FROM owners WHERE connection = ?1 ORDER BY pid, fd",
                ),
                (
                    "state_times",
                    "SELECT at FROM state_changes WHERE connection = ?1 ORDER BY at, state",
                ),
                (
                    "states",
                    "SELECT state FROM state_changes WHERE connection = ?1 ORDER BY at, state",
                ),
            ] {
                let want = list(sql, id);
                // Empty lists are left out of the line.
                let got = shipped[member].as_array().cloned().unwrap_or_default();
                assert_eq!(got, want, "{member} of {line}");
                seen_owners += usize::from(member == "owner_pids") * want.len();
            }
        }
        seen_owners
    };
    assert_eq!(check(&batch), 6);
    assert!(
        batch
            .json()
            .contains("\"owner_commands\":[\"api\",\"api-worker\"]"),
        "{}",
        batch.json()
    );
    // Rows 1, 3 and 5 changed again: ids with gaps, each sought.
    outbox.acked(&batch).unwrap();
    let mut third = second;
    third[0] = owned(40500, State::FinWait1, &[(70, 4, "api")]);
    third[2] = owned(40502, State::FinWait2, &[(80, 3, "db"), (81, 2, "db2")]);
    third[4] = owned(40504, State::LastAck, &[(99, 7, "late")]);
    r.poll_entries(Snapshot::of(third), T + 10_000, &[]);
    let batch = outbox.connections(100).unwrap();
    assert_eq!(ports(&batch), [40500, 40502, 40504]);
    let ids: Vec<i64> = batch
        .json()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert!(
        ids.windows(2).any(|w| w[1] != w[0] + 1),
        "ids with gaps: {ids:?}"
    );
    assert_eq!(check(&batch), 5);
}

/// The shipper's acknowledgement commits as the writer does: it leaves
/// the writer's pages in the WAL until the writer's own checkpoint (SQLite's
/// default would copy them into the file once the WAL held 1,000 pages,
/// at every batch, and wait for the disk).
#[test]
fn an_acknowledgement_leaves_the_checkpoint_to_the_writer() {
    let path = scratch("ship-checkpoint");
    let mut r = Recorder::open(&path);
    let feed = r.writer.ship().unwrap();
    let mut outbox = Outbox::open(&path).unwrap().fed(feed);
    let wal = {
        let mut name = path.as_os_str().to_owned();
        name.push("-wal");
        std::path::PathBuf::from(name)
    };
    let frames = || (std::fs::metadata(&wal).map_or(0, |m| m.len()) / (24 + 4096)) as u64;
    let (mut at, mut cookie) = (T, 1);
    while frames() < 1_200 {
        let sockets: Vec<DiagSocket> = (0..2_000u16)
            .map(|i| {
                cookie += 1;
                socket(10_000 + i, State::Established, cookie)
            })
            .collect();
        r.poll(&sockets, at, &[]);
        at += 5_000;
    }
    let size = || std::fs::metadata(&*path).unwrap().len();
    let before = size();
    let batch = outbox.connections(100).unwrap();
    assert_eq!(batch.rows, 100);
    outbox.acked(&batch).unwrap();
    assert_eq!(size(), before, "the acknowledgement checkpointed the WAL");
}
