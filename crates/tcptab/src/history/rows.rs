//! The rows a recorder writes, one statement each: a connection's row,
//! its changes, its close, its owners; namespaces; and what the retention
//! window deletes.

use rusqlite::{params, CachedStatement, OptionalExtension, Transaction};

use super::{ceil_s, codes, floor_s, OPEN_END, SHORT_MS};
use crate::model::{IpText, Owners, State, Workload};
use crate::track::{Conn, End};

/// The rows one transaction added: their ids and first sightings, which
/// `spans` keeps, so that a connection that lived less than [`SHORT_MS`]
/// is found from its first sighting without an index of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Span {
    first_id: i64,
    last_id: i64,
    first_seen_min: i64,
    first_seen_max: i64,
}

impl Span {
    /// With the row `id`, first seen at `first_seen`, added.
    pub(super) fn add(span: Option<Span>, id: i64, first_seen: i64) -> Span {
        match span {
            None => Span {
                first_id: id,
                last_id: id,
                first_seen_min: first_seen,
                first_seen_max: first_seen,
            },
            Some(s) => Span {
                first_id: s.first_id.min(id),
                last_id: s.last_id.max(id),
                first_seen_min: s.first_seen_min.min(first_seen),
                first_seen_max: s.first_seen_max.max(first_seen),
            },
        }
    }

    pub(super) fn write(&self, tx: &Transaction<'_>) -> rusqlite::Result<()> {
        tx.prepare_cached(
            "INSERT INTO spans (first_id, last_id, first_seen_min, first_seen_max) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![
            self.first_id,
            self.last_id,
            self.first_seen_min,
            self.first_seen_max
        ])?;
        Ok(())
    }
}

/// The statements a transaction runs once a connection (its insert, its
/// close, a change of its state), taken from the connection's cache once
/// a transaction rather than once a row: the cache finds a statement by
/// hashing its text, and for the insert's 700 bytes (hashed when taken and
/// again when put back) that cost half as much as binding its 36 values.
pub(super) struct Hot<'t> {
    pub(super) tx: &'t Transaction<'t>,
    insert: Option<CachedStatement<'t>>,
    close: Option<CachedStatement<'t>>,
    state_change: Option<CachedStatement<'t>>,
}

impl<'t> Hot<'t> {
    pub(super) fn new(tx: &'t Transaction<'t>) -> Hot<'t> {
        Hot {
            tx,
            insert: None,
            close: None,
            state_change: None,
        }
    }
}

/// The statement in `slot`, prepared (from the cache) the first time.
fn held<'s, 't>(
    tx: &'t Transaction<'t>,
    slot: &'s mut Option<CachedStatement<'t>>,
    sql: &str,
) -> rusqlite::Result<&'s mut CachedStatement<'t>> {
    if slot.is_none() {
        *slot = Some(tx.prepare_cached(sql)?);
    }
    Ok(slot.as_mut().expect("prepared above"))
}

/// Time to the timer's expiry in ms: netlink's own, else /proc's ticks.
fn timer_ms(conn: &Conn) -> i64 {
    let e = &conn.entry;
    e.diag
        .as_ref()
        .map_or(e.socket.timer.expires.as_millis(), |d| {
            u64::from(d.timer_ms)
        }) as i64
}

pub(super) fn counters(conn: &Conn) -> [Option<i64>; 4] {
    let c = &conn.counters;
    let i = |v: Option<u64>| v.map(|v| v as i64);
    [
        i(c.bytes_acked),
        i(c.bytes_received),
        i(c.total_retrans),
        i(c.rtt_us),
    ]
}

fn owner_status(conn: &Conn) -> Option<i64> {
    conn.entry.owners.as_ref().map(codes::owner_status)
}

/// A connection's end, known when its row is made: as it was at its end
/// (its last sighting and counters), when and how it ended.
#[derive(Clone, Copy)]
pub(super) struct Ending<'a> {
    pub(super) conn: &'a Conn,
    pub(super) at: i64,
    pub(super) by: End,
}

/// A new connection's row: as `first` opened, as `now` was last seen in
/// the same transaction (its state, queues, timer and ends, as
/// [`update`] would write them: the row its opening and the updates
/// after it would leave), closed already when its end is known (`end`,
/// or the connection's own), and then in the lifetime index if it lived
/// long: its id, and whether it went into the index. Made with its end,
/// the row is the one a [`close`] after it would leave too (the
/// tracker's counters and last sighting only grow).
pub(super) fn insert(
    hot: &mut Hot<'_>,
    (boot, netns, workload): (i64, i64, Option<i64>),
    (first, now, end): (&Conn, &Conn, Option<Ending<'_>>),
    seq: Option<i64>,
) -> rusqlite::Result<(i64, bool)> {
    let (s0, s) = (&first.entry.socket, &now.entry.socket);
    let (d0, d) = (first.entry.diag.as_ref(), now.entry.diag.as_ref());
    let last = end.map_or(now, |e| e.conn);
    let [acked, received, retrans, rtt] = counters(last);
    let last_seen = last.last_seen.max(first.first_seen);
    // Never before its last sighting (the clock can be set back).
    let ended = end.map(|e| (e.at, e.by)).or(now.ended);
    let (closed_at, closed_by) = match ended {
        Some((at, by)) => (Some(at.max(last_seen)), Some(codes::closed_by(by))),
        None => (None, None),
    };
    // What `update` keeps when the later sighting has none.
    let cookie = |d: Option<&crate::model::Diag>| d.map(|d| d.cookie as i64).filter(|&c| c != 0);
    let tx = hot.tx;
    let insert = held(
        tx,
        &mut hot.insert,
        "INSERT INTO connection_rows (boot, netns, cookie, first_seen, last_seen, first_state, family, kind, state,
             local_address, local_port, remote_address, remote_port, tx_queue, rx_queue, timer, timer_ms,
             retransmits, uid, probes, inode, source, interface, backlog_limit, congestion_algorithm,
             shutdown, v6only, owner_status, bytes_acked, bytes_received, total_retrans, rtt_us,
             closed_at, closed_by, follows, changed, workload)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20,
             ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32, ?33, ?34, 1, coalesce(?35, 0), ?36)",
    )?;
    execute_typed!(
        insert,
        [
            boot,
            netns,
            cookie(d).or(cookie(d0)),
            first.first_seen,
            last_seen - first.first_seen,
            first.first_state.code(),
            codes::family(s0.family),
            codes::kind(s.kind),
            s.state.code(),
            IpText::new(s.local.ip()).as_str(),
            s.local.port(),
            IpText::new(s.remote.ip()).as_str(),
            s.remote.port(),
            s.tx_queue,
            s.rx_queue,
            s.timer.kind.code(),
            timer_ms(now),
            s.retransmits,
            s0.uid,
            s.probes,
            if s.inode != 0 { s.inode } else { s0.inode } as i64,
            codes::source(first.entry.source),
            d0.map(|d| d.interface),
            d0.and_then(|d| d.backlog_limit),
            d.and_then(|d| d.congestion_algorithm.as_deref())
                .or(d0.and_then(|d| d.congestion_algorithm.as_deref())),
            d.and_then(|d| d.shutdown).or(d0.and_then(|d| d.shutdown)),
            d0.and_then(|d| d.v6only),
            owner_status(now).or(owner_status(first)),
            acked,
            received,
            retrans,
            rtt,
            closed_at.map(|at| at - first.first_seen),
            closed_by,
            seq,
            workload,
        ]
    )?;
    let id = tx.last_insert_rowid();
    // A new row is in no index yet: only a long one goes in.
    let long = closed_at.filter(|end| end - first.first_seen > SHORT_MS);
    if let Some(end) = long {
        index_end(tx, id, first.first_seen, end)?;
    }
    Ok((id, long.is_some()))
}

/// A connection that ended more than [`SHORT_MS`] after its first
/// sighting into the lifetime index (its span does not find it). One
/// indexed already (from its start, in a file taken up from version 4, or
/// when it ended before its TIME_WAIT reopened it) ends there, long or
/// not.
fn index_end(
    tx: &Transaction<'_>,
    id: i64,
    first_seen: i64,
    closed_at: i64,
) -> rusqlite::Result<()> {
    if closed_at - first_seen > SHORT_MS {
        tx.prepare_cached(
            "INSERT OR REPLACE INTO lifetimes (id, start_s, end_s) VALUES (?1, ?2, ?3)",
        )?
        .execute(params![id, floor_s(first_seen), ceil_s(closed_at)])?;
    } else {
        tx.prepare_cached("UPDATE lifetimes SET end_s = max(?2, start_s) WHERE id = ?1")?
            .execute(params![id, ceil_s(closed_at)])?;
    }
    Ok(())
}

/// The SQL that sets the four counters from the parameters named: the byte
/// and retransmission counts keep their highest value, the round-trip time
/// its last that was not 0.
macro_rules! keep_counters {
    ($acked:literal, $received:literal, $retrans:literal, $rtt:literal) => {
        concat!(
            "bytes_acked = CASE WHEN bytes_acked > ",
            $acked,
            " THEN bytes_acked ELSE coalesce(",
            $acked,
            ", bytes_acked) END, ",
            "bytes_received = CASE WHEN bytes_received > ",
            $received,
            " THEN bytes_received ELSE coalesce(",
            $received,
            ", bytes_received) END, ",
            "total_retrans = CASE WHEN total_retrans > ",
            $retrans,
            " THEN total_retrans ELSE coalesce(",
            $retrans,
            ", total_retrans) END, ",
            "rtt_us = CASE WHEN ",
            $rtt,
            " > 0 THEN ",
            $rtt,
            " ELSE coalesce(rtt_us, ",
            $rtt,
            ") END"
        )
    };
}

/// The row as the connection is now: last seen, state, queues, timer,
/// owner status (the best seen) and counters (which only grow).
pub(super) fn update(
    tx: &Transaction<'_>,
    id: i64,
    conn: &Conn,
    seq: Option<i64>,
) -> rusqlite::Result<()> {
    let s = &conn.entry.socket;
    let d = conn.entry.diag.as_ref();
    let [acked, received, retrans, rtt] = counters(conn);
    let mut update = tx.prepare_cached(concat!(
        "UPDATE connection_rows SET last_seen = max(last_seen, ?2 - first_seen), state = ?3, kind = ?4, tx_queue = ?5,
             rx_queue = ?6, timer = ?7, timer_ms = ?8, retransmits = ?9, probes = ?10,
             inode = CASE WHEN ?11 != 0 THEN ?11 ELSE inode END,
             owner_status = coalesce(?12, owner_status),
             congestion_algorithm = coalesce(?13, congestion_algorithm), shutdown = coalesce(?14, shutdown),
             cookie = coalesce(?19, cookie), local_address = ?20, local_port = ?21,
             remote_address = ?22, remote_port = ?23, changed = coalesce(?24, changed), ",
        keep_counters!("?15", "?16", "?17", "?18"),
        " WHERE id = ?1"
    ))?;
    execute_typed!(
        &mut update,
        [
            id,
            conn.last_seen,
            s.state.code(),
            codes::kind(s.kind),
            s.tx_queue,
            s.rx_queue,
            s.timer.kind.code(),
            timer_ms(conn),
            s.retransmits,
            s.probes,
            s.inode as i64,
            owner_status(conn),
            d.and_then(|d| d.congestion_algorithm.as_deref()),
            d.and_then(|d| d.shutdown),
            acked,
            received,
            retrans,
            rtt,
            // A TIME_WAIT that the kernel gave a cookie of its own (its
            // socket was never dumped) is found again by that one.
            d.map(|d| d.cookie as i64).filter(|&c| c != 0),
            // The ends as a poll found them: a connection first known by its
            // notification may have had its local port released already (the
            // kernel then reports port 0).
            IpText::new(s.local.ip()).as_str(),
            s.local.port(),
            IpText::new(s.remote.ip()).as_str(),
            s.remote.port(),
            seq,
        ]
    )?;
    Ok(())
}

/// The counters alone (a destroy notification's final ones).
pub(super) fn update_counters(
    tx: &Transaction<'_>,
    id: i64,
    conn: &Conn,
    seq: Option<i64>,
) -> rusqlite::Result<()> {
    let [acked, received, retrans, rtt] = counters(conn);
    let mut update = tx.prepare_cached(concat!(
        "UPDATE connection_rows SET last_seen = max(last_seen, ?6 - first_seen), changed = coalesce(?7, changed), ",
        keep_counters!("?2", "?3", "?4", "?5"),
        " WHERE id = ?1"
    ))?;
    execute_typed!(
        &mut update,
        [id, acked, received, retrans, rtt, conn.last_seen, seq]
    )?;
    Ok(())
}

pub(super) fn state_change(
    hot: &mut Hot<'_>,
    id: i64,
    at: i64,
    state: State,
) -> rusqlite::Result<()> {
    let insert = held(
        hot.tx,
        &mut hot.state_change,
        "INSERT OR REPLACE INTO state_change_rows (connection, at, state) VALUES (?1, ?2, ?3)",
    )?;
    execute_typed!(insert, [id, at, state.code()])?;
    Ok(())
}

/// A connection's end (`first_seen` its first sighting; `indexed`: it
/// may be in the lifetime index already): never before its first or last
/// sighting (the clock can be set back). One that lived long goes into
/// the lifetime index; one indexed already ends there.
pub(super) fn close(
    hot: &mut Hot<'_>,
    id: i64,
    (at, by): (i64, End),
    (first_seen, last_seen): (i64, i64),
    indexed: bool,
    seq: Option<i64>,
) -> rusqlite::Result<Closed> {
    const CLOSE: &str = "UPDATE connection_rows SET last_seen = max(last_seen, ?4 - first_seen),
         closed_at = max(?2 - first_seen, 0, last_seen, ?4 - first_seen), closed_by = ?3,
         changed = coalesce(?5, changed)
         WHERE id = ?1";
    let closed_by = codes::closed_by(by);
    let values = params![id, at, closed_by, last_seen, seq];
    // The row's stored last sighting is never later than the tracker's
    // (nor its first sighting other than the tracker's): so the times the
    // close writes are these; and a connection that ends well within
    // SHORT_MS of its first sighting is short, and needs no look at what
    // the row says.
    let closed = Closed {
        id,
        last_seen: last_seen.max(first_seen),
        closed_at: at.max(first_seen).max(last_seen),
        closed_by,
    };
    let tx = hot.tx;
    if !indexed && at.max(last_seen) - first_seen <= SHORT_MS / 2 {
        execute_typed!(
            held(tx, &mut hot.close, CLOSE)?,
            [id, at, closed_by, last_seen, seq]
        )?;
        return Ok(closed);
    }
    let row: Option<(i64, i64)> = tx
        .prepare_cached(&format!(
            "{CLOSE} RETURNING first_seen, first_seen + closed_at"
        ))?
        .query_row(values, |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    if let Some((first_seen, closed_at)) = row {
        index_end(tx, id, first_seen, closed_at)?;
    }
    Ok(closed)
}

/// A row's times as a close wrote them (ms since the epoch), and how it
/// closed ([`codes::closed_by`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Closed {
    pub(super) id: i64,
    pub(super) last_seen: i64,
    pub(super) closed_at: i64,
    pub(super) closed_by: i64,
}

/// A connection closed in the file that is there again (its TIME_WAIT,
/// found by a recorder that took up the file): open, it is found as open
/// rows are; in the lifetime index, its entry is open again until it ends.
pub(super) fn reopen(tx: &Transaction<'_>, id: i64, seq: Option<i64>) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "UPDATE connection_rows SET closed_at = NULL, closed_by = NULL, changed = coalesce(?2, changed) WHERE id = ?1",
    )?
    .execute(params![id, seq])?;
    tx.prepare_cached("UPDATE lifetimes SET end_s = ?2 WHERE id = ?1")?
        .execute(params![id, OPEN_END])?;
    Ok(())
}

/// The connection's owners not stored yet (`stored`: (pid, fd), sorted).
pub(super) fn owners(
    tx: &Transaction<'_>,
    id: i64,
    conn: &Conn,
    at: i64,
    stored: &mut Vec<(u32, u32)>,
) -> rusqlite::Result<()> {
    let Some(Owners::Owned(list)) = &conn.entry.owners else {
        return Ok(());
    };
    for o in list.iter() {
        let k = (o.pid, o.fd);
        if let Err(i) = stored.binary_search(&k) {
            let mut insert = tx.prepare_cached(
                "INSERT OR IGNORE INTO owners (connection, pid, fd, command, first_seen) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            execute_typed!(&mut insert, [id, o.pid, o.fd, &*o.command, at])?;
            stored.insert(i, k);
        }
    }
    Ok(())
}

/// The id of `w`'s row in `workloads` (made, or its names filled in).
pub(super) fn workload(tx: &Transaction<'_>, w: &Workload) -> rusqlite::Result<i64> {
    tx.prepare_cached(
        "INSERT INTO workloads (cgroup, unit, slice, runtime, container_id, container_name, pod_namespace, pod_name, pod_uid)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT (cgroup) DO UPDATE SET
            container_name = coalesce(container_name, ?6), pod_namespace = coalesce(pod_namespace, ?7),
            pod_name = coalesce(pod_name, ?8), runtime = coalesce(runtime, ?4)",
    )?
    .execute(params![
        w.cgroup,
        w.unit,
        w.slice,
        w.runtime,
        w.container_id,
        w.container_name,
        w.pod_namespace,
        w.pod_name,
        w.pod_uid
    ])?;
    tx.prepare_cached("SELECT id FROM workloads WHERE cgroup = ?1")?
        .query_row([&w.cgroup], |r| r.get(0))
}

pub(super) fn namespace(
    tx: &Transaction<'_>,
    boot: i64,
    inode: u64,
    name: Option<&str>,
    at: i64,
) -> rusqlite::Result<i64> {
    tx.prepare_cached(
        "INSERT INTO namespaces (boot, inode, name, first_seen, last_seen) VALUES (?1, ?2, ?3, ?4, ?4)
         ON CONFLICT (boot, inode) DO UPDATE SET last_seen = max(last_seen, ?4), name = coalesce(?3, name)",
    )?
    .execute(params![boot, inode as i64, name, at])?;
    tx.prepare_cached("SELECT id FROM namespaces WHERE boot = ?1 AND inode = ?2")?
        .query_row(params![boot, inode as i64], |r| r.get(0))
}

/// The rows of the spans first seen before `?1` that ended before it.
pub(super) const SPANS_ENDED: &str = "SELECT c.id
    FROM spans p CROSS JOIN connection_rows c ON c.id BETWEEN p.first_id AND p.last_id
    WHERE p.first_seen_min < ?1 AND c.first_seen + c.closed_at < ?1";

/// The open rows of the spans last first seen before `?1` that are not in
/// the lifetime index.
pub(super) const SPANS_LEFT_OPEN: &str = "SELECT c.id, c.first_seen
    FROM spans p CROSS JOIN connection_rows c ON c.id BETWEEN p.first_id AND p.last_id
    WHERE p.first_seen_max < ?1 AND c.closed_at IS NULL
      AND NOT EXISTS (SELECT 1 FROM lifetimes l WHERE l.id = c.id)";

/// Delete what ended before `cutoff_ms`: connections (with their owners
/// and state changes), polls (with their listen queues), namespaces last
/// seen an hour before (their connections ended before the cutoff). The
/// freed pages are reused, so the file stops growing once the window is
/// full. Returns the connections deleted.
///
/// A connection that lived long is found in the lifetime index, the
/// others in the spans first seen before the cutoff. A span first seen
/// more than [`SHORT_MS`] before the cutoff then goes: what it keeps is
/// open (and goes into the lifetime index, to end there), or ended after
/// the cutoff and so lived long (and is in the index already).
pub(super) fn expire(tx: &Transaction<'_>, cutoff_ms: i64) -> rusqlite::Result<u64> {
    let mut ids: Vec<i64> = {
        let mut stmt = tx.prepare("SELECT id FROM lifetimes WHERE end_s < ?1")?;
        let rows = stmt.query_map([floor_s(cutoff_ms)], |r| r.get(0))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    {
        let mut stmt = tx.prepare(SPANS_ENDED)?;
        let rows = stmt.query_map([cutoff_ms], |r| r.get(0))?;
        for id in rows {
            ids.push(id?);
        }
    }
    ids.sort_unstable();
    ids.dedup();
    // What the spans that go leave open goes into the lifetime index, to
    // end there whenever it ends.
    let open: Vec<(i64, i64)> = {
        let mut stmt = tx.prepare(SPANS_LEFT_OPEN)?;
        let rows = stmt.query_map([cutoff_ms - SHORT_MS], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    for (id, first_seen) in open {
        tx.prepare_cached("INSERT INTO lifetimes (id, start_s, end_s) VALUES (?1, ?2, ?3)")?
            .execute(params![id, floor_s(first_seen), OPEN_END])?;
    }
    tx.execute(
        "DELETE FROM spans WHERE first_seen_max < ?1",
        [cutoff_ms - SHORT_MS],
    )?;
    super::outbox::expired(tx, &ids)?;
    for id in &ids {
        for sql in [
            "DELETE FROM owners WHERE connection = ?1",
            "DELETE FROM state_change_rows WHERE connection = ?1",
            "DELETE FROM connection_rows WHERE id = ?1",
            "DELETE FROM lifetimes WHERE id = ?1",
        ] {
            tx.prepare_cached(sql)?.execute([id])?;
        }
    }
    let first_poll: Option<i64> = tx
        .query_row(
            "SELECT min(id) FROM polls WHERE at >= ?1",
            [cutoff_ms],
            |r| r.get(0),
        )
        .optional()?
        .flatten();
    if let Some(first) = first_poll {
        tx.execute("DELETE FROM polls WHERE id < ?1", [first])?;
        tx.execute("DELETE FROM listen_queues WHERE poll < ?1", [first])?;
    }
    tx.execute(
        "DELETE FROM namespaces WHERE last_seen < ?1",
        [cutoff_ms - 3_600_000],
    )?;
    Ok(ids.len() as u64)
}
