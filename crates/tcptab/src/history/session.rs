//! One transaction of the recorder: what the tracker said happened since
//! the last poll, applied to the rows ([`Session`]), and the poll's own
//! row with what it could not see; what a poll brings ([`PollRecord`]) and
//! what it recorded ([`PollOutcome`]).

use super::{HashMap, HashSet};

use rusqlite::{params, Transaction};

use super::rows;
use crate::model::{Namespace, State};
use crate::query::{NotInspectedReason, Report, Snapshot};
use crate::track::{Change, Conn, End, Event, Tracker};

/// What one poll recorded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PollOutcome {
    /// The poll's row id.
    pub id: i64,
    /// Sockets the poll saw (after the filter).
    pub sockets: u64,
    /// Connections seen for the first time (by the poll or by a notification).
    pub opened: u64,
    /// Connections that ended.
    pub closed: u64,
    /// Destroy notifications applied.
    pub notifications: u64,
    /// Rows deleted by the retention window (connections).
    pub expired: u64,
}

/// One poll as the recorder took it.
#[derive(Debug, Clone, Copy)]
pub struct PollRecord<'a> {
    /// When its reading began (ms since the Unix epoch).
    pub at: i64,
    pub took_us: u64,
    /// The recorder's interval (gaps in the file are found from it).
    pub interval_ms: i64,
    pub snapshot: &'a Snapshot,
    /// What could not be seen beyond the query's report.
    pub notes: &'a [String],
}

/// A connection's row.
#[derive(Debug)]
pub(super) struct Row {
    pub(super) id: i64,
    /// (pid, fd) of every owner stored, sorted.
    pub(super) owners: Vec<(u32, u32)>,
    /// Its workload is stored (it is kept once known).
    pub(super) workload: bool,
    /// Closed in the file (taken up as closing: its TIME_WAIT may still
    /// come).
    pub(super) closed: bool,
    /// It may be in the lifetime index (taken up from the file, or
    /// inserted closed and long): its end is written there too.
    pub(super) indexed: bool,
    /// The last sighting and counters this writer last wrote into it
    /// (None: not known): writing them again would change nothing (the
    /// counters and `last_seen` only grow), so it is not done.
    pub(super) written: Option<Written>,
}

/// A row's `last_seen` and counters, as written.
pub(super) type Written = (i64, [Option<i64>; 4]);

/// What `conn` would write of its last sighting and counters.
fn written(conn: &Conn) -> Written {
    (conn.last_seen, rows::counters(conn))
}

/// What a transaction needs of the writer.
pub(super) struct Session<'a> {
    pub(super) boot: i64,
    pub(super) own_netns: u64,
    pub(super) namespaces: &'a mut HashMap<u64, i64>,
    pub(super) rows: &'a mut HashMap<u64, Row>,
    pub(super) workloads: &'a mut HashMap<String, i64>,
    /// The tracker's connections whose row keeps its own `last_seen`.
    pub(super) pinned: &'a mut HashSet<u64>,
    /// The rows this transaction added.
    pub(super) span: Option<rows::Span>,
    /// In a file shipped from, this transaction's number, written into
    /// the `changed` of every row it writes ([`super::outbox`]).
    pub(super) seq: Option<i64>,
    /// The rows this transaction closed (shipping on) whose close changed
    /// nothing but their times.
    pub(super) closes: Vec<rows::Closed>,
}

impl Session<'_> {
    /// The namespaces the poll read, as rows.
    pub(super) fn namespaces_read(
        &mut self,
        tx: &Transaction<'_>,
        p: &PollRecord<'_>,
    ) -> rusqlite::Result<()> {
        for ns in &p.snapshot.namespaces {
            self.namespace_id(tx, ns.as_deref(), p.at)?;
        }
        Ok(())
    }

    pub(super) fn namespace_id(
        &mut self,
        tx: &Transaction<'_>,
        ns: Option<&Namespace>,
        at: i64,
    ) -> rusqlite::Result<i64> {
        let inode = ns.map_or(self.own_netns, |n| n.inode);
        if let Some(&id) = self.namespaces.get(&inode) {
            return Ok(id);
        }
        let id = rows::namespace(tx, self.boot, inode, ns.and_then(|n| n.name.as_deref()), at)?;
        self.namespaces.insert(inode, id);
        Ok(id)
    }

    /// The tracker's events, in the order they came: the rows they
    /// changed into `changed`. A connection that opens within them is
    /// written once as it was at its last event there (its row made with
    /// its state, counters and end by then), and its other events there
    /// add only what has rows of its own (its changes of state, owners):
    /// a churn's connections are mostly that, first known by their
    /// notification and, by the poll after it, ended or found in
    /// TIME_WAIT.
    pub(super) fn apply_all(
        &mut self,
        tx: &Transaction<'_>,
        events: &[Event],
        out: &mut PollOutcome,
        changed: &mut Vec<i64>,
    ) -> rusqlite::Result<()> {
        let mut hot = rows::Hot::new(tx);
        let hot = &mut hot;
        let runs = opened_within(events);
        // Connections that end here: their close writes their last
        // sighting ([`rows::close`]).
        let ending: HashSet<u64> = events
            .iter()
            .filter(|e| matches!(e.change, Change::Ended { .. }))
            .map(|e| e.conn.id)
            .collect();
        for (i, event) in events.iter().enumerate() {
            match runs.get(&event.conn.id) {
                Some(&(opened, last)) if i == opened => {
                    changed.push(self.open(hot, event, &events[last], out)?);
                }
                Some(_) => self.within(hot, event, out)?,
                None => {
                    let ends = ending.contains(&event.conn.id);
                    changed.extend(self.apply(hot, event, ends, out)?);
                }
            }
        }
        Ok(())
    }

    /// A connection's first row: as `event` opened it, and as it was at
    /// `last`, its last event in the same transaction (its end, if that
    /// is); its id.
    fn open(
        &mut self,
        hot: &mut rows::Hot<'_>,
        event: &Event,
        last: &Event,
        out: &mut PollOutcome,
    ) -> rusqlite::Result<i64> {
        let tx = hot.tx;
        let conn = &event.conn;
        let ns = self.namespace_id(tx, conn.entry.namespace.as_deref(), event.at)?;
        // The workload goes into the row as it is made.
        let workload = workload_id(tx, self.workloads, &last.conn)?;
        let ending = match last.change {
            Change::Ended { by } => Some(rows::Ending {
                conn: &last.conn,
                at: last.at,
                by,
            }),
            _ => None,
        };
        let ids = (self.boot, ns, workload);
        let (id, indexed) = rows::insert(hot, ids, (conn, &last.conn, ending), self.seq)?;
        self.span = Some(rows::Span::add(self.span, id, conn.first_seen));
        let now = &last.conn;
        let mut row = Row {
            id,
            owners: Vec::new(),
            workload: workload.is_some(),
            closed: false,
            indexed,
            written: (now.last_seen >= now.first_seen).then(|| written(now)),
        };
        rows::owners(tx, id, conn, event.at, &mut row.owners)?;
        self.rows.insert(conn.id, row);
        out.opened += 1;
        Ok(id)
    }

    /// An event after the opening of a connection whose row that opening
    /// made ([`Session::open`]) as it was at its last event: what has rows
    /// of its own (a change of state, owners seen then), and the counts.
    fn within(
        &mut self,
        hot: &mut rows::Hot<'_>,
        event: &Event,
        out: &mut PollOutcome,
    ) -> rusqlite::Result<()> {
        let tx = hot.tx;
        let conn = &event.conn;
        let Some(row) = self.rows.get_mut(&conn.id) else {
            return Ok(());
        };
        match event.change {
            Change::StateChanged { .. } => {
                rows::state_change(hot, row.id, event.at, conn.entry.socket.state)?;
                rows::owners(tx, row.id, conn, event.at, &mut row.owners)?;
            }
            Change::Updated => rows::owners(tx, row.id, conn, event.at, &mut row.owners)?,
            Change::Closed { by } => out.notifications += u64::from(by == End::Destroy),
            Change::Ended { .. } => {
                out.closed += 1;
                self.rows.remove(&conn.id);
            }
            Change::Opened | Change::QueueGrowth => {}
        }
        Ok(())
    }

    /// One event of the tracker (`ends`: its connection ends later in the
    /// same transaction): the row it changed.
    fn apply(
        &mut self,
        hot: &mut rows::Hot<'_>,
        event: &Event,
        ends: bool,
        out: &mut PollOutcome,
    ) -> rusqlite::Result<Option<i64>> {
        let tx = hot.tx;
        let conn = &event.conn;
        if event.change == Change::Opened {
            return self.open(hot, event, event, out).map(Some);
        }
        let Some(row) = self.rows.get_mut(&conn.id) else {
            return Ok(None);
        };
        let id = row.id;
        match event.change {
            Change::Opened => unreachable!("handled above"),
            Change::StateChanged { .. } => {
                if row.closed {
                    rows::reopen(tx, row.id, self.seq)?;
                    row.closed = false;
                }
                rows::update(tx, row.id, conn, self.seq)?;
                row.written = Some(written(conn));
                rows::state_change(hot, row.id, event.at, conn.entry.socket.state)?;
                rows::owners(tx, row.id, conn, event.at, &mut row.owners)?;
                workload(tx, self.workloads, row, conn)?;
            }
            Change::Updated => {
                rows::update(tx, row.id, conn, self.seq)?;
                row.written = Some(written(conn));
                rows::owners(tx, row.id, conn, event.at, &mut row.owners)?;
                workload(tx, self.workloads, row, conn)?;
            }
            // Nothing written: the row has not changed.
            Change::QueueGrowth => return Ok(None),
            Change::Closed { by } => {
                out.notifications += u64::from(by == End::Destroy);
                // Ending here with the counters the row has: its close
                // writes the rest.
                let same = row.written.is_some_and(|(_, c)| c == rows::counters(conn));
                if ends && same || !write_counters(tx, row, conn, self.seq)? {
                    return Ok(None);
                }
            }
            Change::Ended { by } => {
                // Counters the row has already: the close changes only its
                // times, which a shipper is told ([`rows::Closed`]).
                let same = row.written.is_some_and(|(_, c)| c == rows::counters(conn));
                // The close writes the last sighting itself.
                if !same {
                    write_counters(tx, row, conn, self.seq)?;
                }
                let closed = rows::close(
                    hot,
                    row.id,
                    (event.at, by),
                    (conn.first_seen, conn.last_seen),
                    row.indexed,
                    self.seq,
                )?;
                if same && self.seq.is_some() {
                    self.closes.push(closed);
                }
                // One taken up closed ended before.
                out.closed += u64::from(!row.closed);
                self.rows.remove(&conn.id);
            }
        }
        Ok(Some(id))
    }

    /// Each listener's accept queue against its limit.
    pub(super) fn listen_queues(
        &self,
        tx: &Transaction<'_>,
        p: &PollRecord<'_>,
        poll: i64,
        tracker: &Tracker,
    ) -> rusqlite::Result<()> {
        for e in p.snapshot.entries() {
            if e.socket.state != State::Listen {
                continue;
            }
            let Some(row) = tracker.id_of(&e).and_then(|id| self.rows.get(&id)) else {
                continue;
            };
            tx.prepare_cached(
                "INSERT OR REPLACE INTO listen_queues (poll, connection, queued, backlog_limit) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![
                poll,
                row.id,
                e.socket.rx_queue,
                e.diag.and_then(|d| d.backlog_limit)
            ])?;
        }
        Ok(())
    }

    /// Every connection the poll found was seen then: one time for all
    /// the open rows that follow the polls (the boot's `open_seen`;
    /// [`LAST_SEEN`](super::columns::LAST_SEEN)). A row the poll did not
    /// find (waiting for its notification, or its TIME_WAIT) stops
    /// following and keeps its own time; one found again follows again.
    pub(super) fn last_seen(
        &mut self,
        tx: &Transaction<'_>,
        at: i64,
        tracker: &Tracker,
    ) -> rusqlite::Result<()> {
        tx.prepare_cached(
            "UPDATE boots SET open_seen = max(coalesce(open_seen, ?1), ?1) WHERE id = ?2",
        )?
        .execute(params![at, self.boot])?;
        // One last seen before the poll is one the poll did not see.
        for conn in tracker.unseen().filter(|c| c.last_seen < at) {
            if let Some(row) = self.rows.get(&conn.id) {
                let mut pin = tx.prepare_cached(
                    "UPDATE connection_rows SET last_seen = ?2 - first_seen, follows = NULL WHERE id = ?1",
                )?;
                execute_typed!(&mut pin, [row.id, conn.last_seen])?;
                self.pinned.insert(conn.id);
            }
        }
        let found: Vec<u64> = self
            .pinned
            .iter()
            .copied()
            .filter(|&id| tracker.get(id).is_none_or(|c| c.last_seen >= at))
            .collect();
        for id in found {
            self.pinned.remove(&id);
            if let (Some(conn), Some(row)) = (tracker.get(id), self.rows.get(&id)) {
                let mut unpin = tx.prepare_cached(
                    "UPDATE connection_rows SET last_seen = max(last_seen, ?2 - first_seen), follows = 1 WHERE id = ?1",
                )?;
                execute_typed!(&mut unpin, [row.id, conn.last_seen])?;
            }
        }
        Ok(())
    }
}

/// The connections that open within `events`: by the tracker's id, the
/// places of their opening and of their last event.
fn opened_within(events: &[Event]) -> HashMap<u64, (usize, usize)> {
    let mut runs: HashMap<u64, (usize, usize)> = HashMap::default();
    for (i, e) in events.iter().enumerate() {
        match e.change {
            Change::Opened => {
                runs.insert(e.conn.id, (i, i));
            }
            _ => {
                if let Some(run) = runs.get_mut(&e.conn.id) {
                    run.1 = i;
                }
            }
        }
    }
    runs
}

/// A connection's last sighting and counters into its row, unless the
/// row has them already (a connection closed in the batch that opened
/// it, its end right after its close).
fn write_counters(
    tx: &Transaction<'_>,
    row: &mut Row,
    conn: &Conn,
    seq: Option<i64>,
) -> rusqlite::Result<bool> {
    let now = written(conn);
    if row.written == Some(now) {
        return Ok(false);
    }
    rows::update_counters(tx, row.id, conn, seq)?;
    row.written = Some(now);
    Ok(true)
}

/// The poll's own row (its counts are written at the end): its id.
pub(super) fn poll_row(
    tx: &Transaction<'_>,
    boot: i64,
    p: &PollRecord<'_>,
) -> rusqlite::Result<i64> {
    let snapshot = p.snapshot;
    let mut sources: Vec<&str> = snapshot
        .report
        .read
        .iter()
        .map(|r| r.source.as_str())
        .collect();
    sources.sort_unstable();
    sources.dedup();
    let mut not_seen = unseen(&snapshot.report);
    not_seen.extend(p.notes.iter().cloned());
    tx.execute(
        "INSERT INTO polls (at, boot, source, namespaces, sockets, opened, closed, notifications, took_us, not_seen, interval_ms)
         VALUES (?1, ?2, ?3, ?4, 0, 0, 0, 0, ?5, ?6, ?7)",
        params![
            p.at,
            boot,
            sources.join("+"),
            snapshot.namespaces.len() as i64,
            p.took_us as i64,
            (!not_seen.is_empty()).then(|| not_seen.join("\n")),
            p.interval_ms,
        ],
    )?;
    Ok(tx.last_insert_rowid())
}

/// What a query's report says could not be seen, one sentence each.
fn unseen(report: &Report) -> Vec<String> {
    let mut out = Vec::new();
    for read in &report.read {
        let target = read.target("in");
        if let crate::query::Why::Fallback(why) = &read.why {
            out.push(format!(
                "read from /proc{target} (netlink unavailable: {why}): no cookies, counters or destroy notifications"
            ));
        }
        if read.interrupted {
            out.push(format!(
                "the kernel's tables changed during the dump{target}: a socket may be missing"
            ));
        }
        if read.skipped_lines > 0 {
            out.push(format!(
                "{} skipped{target}",
                crate::counted(read.skipped_lines, "malformed line")
            ));
        }
    }
    for n in &report.not_inspected {
        if let NotInspectedReason::PermissionDenied(why) = &n.reason {
            out.push(format!(
                "network namespace {} not inspected: {why}",
                n.namespace.label()
            ));
        }
    }
    if report.processes_unreadable > 0 {
        out.push(format!(
            "the network namespace of {} could not be read (permission denied)",
            crate::counted(report.processes_unreadable, "process")
        ));
    }
    if let Some(owners) = &report.owners {
        if owners.denied > 0 {
            out.push(format!(
                "{} could not be inspected: the owners of their sockets are unknown",
                crate::counted(owners.denied, "process")
            ));
        }
    }
    out
}

/// Store the connection's workload once it is known (a row keeps the first
/// one: its TIME_WAIT has none).
fn workload(
    tx: &Transaction<'_>,
    ids: &mut HashMap<String, i64>,
    row: &mut Row,
    conn: &Conn,
) -> rusqlite::Result<()> {
    if row.workload {
        return Ok(());
    }
    let Some(id) = workload_id(tx, ids, conn)? else { return Ok(()) };
    tx.prepare_cached("UPDATE connection_rows SET workload = ?2 WHERE id = ?1")?
        .execute(rusqlite::params![row.id, id])?;
    row.workload = true;
    Ok(())
}

/// The `workloads` row of `conn`'s workload (made the first time).
fn workload_id(
    tx: &Transaction<'_>,
    ids: &mut HashMap<String, i64>,
    conn: &Conn,
) -> rusqlite::Result<Option<i64>> {
    let Some(w) = conn.entry.workload.as_deref() else { return Ok(None) };
    if let Some(&id) = ids.get(&w.cgroup) {
        return Ok(Some(id));
    }
    let id = rows::workload(tx, w)?;
    ids.insert(w.cgroup.clone(), id);
    Ok(Some(id))
}
