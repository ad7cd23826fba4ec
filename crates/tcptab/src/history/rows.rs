//! The rows a recorder writes, one statement each: a connection's row,
//! its changes, its close, its owners; namespaces; and what the retention
//! window deletes.

use std::borrow::Cow;

use rusqlite::{params, OptionalExtension, Transaction};

use super::{ceil_s, floor_s, OPEN_END};
use crate::model::{Owners, State, TimerKind, Workload};
use crate::track::{Conn, End};

/// A state as stored: the kernel's name (no allocation), or `UNKNOWN(0x..)`.
pub(super) fn state_name(state: State) -> Cow<'static, str> {
    state
        .kernel_name()
        .map_or_else(|| state.to_string().into(), Cow::Borrowed)
}

/// A timer as stored: its name (no allocation), or `unknown(N)`.
pub(super) fn timer_name(kind: TimerKind) -> Cow<'static, str> {
    kind.name()
        .map_or_else(|| kind.to_string().into(), Cow::Borrowed)
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

fn owner_status(conn: &Conn) -> Option<&'static str> {
    conn.entry.owners.as_ref().map(Owners::as_str)
}

/// A new connection's row (closed already when its end is known).
pub(super) fn insert(
    tx: &Transaction<'_>,
    boot: i64,
    netns: i64,
    conn: &Conn,
) -> rusqlite::Result<i64> {
    let s = &conn.entry.socket;
    let d = conn.entry.diag.as_ref();
    let [acked, received, retrans, rtt] = counters(conn);
    let (closed_at, closed_by) = match conn.ended {
        Some((at, by)) => (Some(at.max(conn.first_seen)), Some(by.as_str())),
        None => (None, None),
    };
    tx.prepare_cached(
        "INSERT INTO connections (boot, netns, cookie, first_seen, last_seen, first_state, family, kind, state,
             local_address, local_port, remote_address, remote_port, tx_queue, rx_queue, timer, timer_ms,
             retransmits, uid, probes, inode, source, interface, backlog_limit, congestion_algorithm,
             shutdown, v6only, owner_status, bytes_acked, bytes_received, total_retrans, rtt_us,
             closed_at, closed_by, follows)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20,
             ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32, ?33, ?34, 1)",
    )?
    .execute(params![
        boot,
        netns,
        d.map(|d| d.cookie as i64).filter(|&c| c != 0),
        conn.first_seen,
        conn.last_seen.max(conn.first_seen),
        state_name(conn.first_state),
        s.family.as_str(),
        s.kind.as_str(),
        state_name(s.state),
        s.local.ip().to_string(),
        s.local.port(),
        s.remote.ip().to_string(),
        s.remote.port(),
        s.tx_queue,
        s.rx_queue,
        timer_name(s.timer.kind),
        timer_ms(conn),
        s.retransmits,
        s.uid,
        s.probes,
        s.inode as i64,
        conn.entry.source.as_str(),
        d.map(|d| d.interface),
        d.and_then(|d| d.backlog_limit),
        d.and_then(|d| d.congestion_algorithm.as_deref()),
        d.and_then(|d| d.shutdown),
        d.and_then(|d| d.v6only),
        owner_status(conn),
        acked,
        received,
        retrans,
        rtt,
        closed_at,
        closed_by,
    ])?;
    let id = tx.last_insert_rowid();
    let end = closed_at.map_or(OPEN_END, ceil_s);
    tx.prepare_cached("INSERT INTO lifetimes (id, start_s, end_s) VALUES (?1, ?2, ?3)")?
        .execute(params![id, floor_s(conn.first_seen), end])?;
    Ok(id)
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
pub(super) fn update(tx: &Transaction<'_>, id: i64, conn: &Conn) -> rusqlite::Result<()> {
    let s = &conn.entry.socket;
    let d = conn.entry.diag.as_ref();
    let [acked, received, retrans, rtt] = counters(conn);
    tx.prepare_cached(concat!(
        "UPDATE connections SET last_seen = max(last_seen, ?2), state = ?3, kind = ?4, tx_queue = ?5,
             rx_queue = ?6, timer = ?7, timer_ms = ?8, retransmits = ?9, probes = ?10,
             inode = CASE WHEN ?11 != 0 THEN ?11 ELSE inode END,
             owner_status = coalesce(?12, owner_status),
             congestion_algorithm = coalesce(?13, congestion_algorithm), shutdown = coalesce(?14, shutdown),
             cookie = coalesce(?19, cookie), local_address = ?20, local_port = ?21,
             remote_address = ?22, remote_port = ?23, ",
        keep_counters!("?15", "?16", "?17", "?18"),
        " WHERE id = ?1"
    ))?
    .execute(params![
        id,
        conn.last_seen,
        state_name(s.state),
        s.kind.as_str(),
        s.tx_queue,
        s.rx_queue,
        timer_name(s.timer.kind),
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
        s.local.ip().to_string(),
        s.local.port(),
        s.remote.ip().to_string(),
        s.remote.port(),
    ])?;
    Ok(())
}

/// The counters alone (a destroy notification's final ones).
pub(super) fn update_counters(tx: &Transaction<'_>, id: i64, conn: &Conn) -> rusqlite::Result<()> {
    let [acked, received, retrans, rtt] = counters(conn);
    tx.prepare_cached(concat!(
        "UPDATE connections SET last_seen = max(last_seen, ?6), ",
        keep_counters!("?2", "?3", "?4", "?5"),
        " WHERE id = ?1"
    ))?
    .execute(params![id, acked, received, retrans, rtt, conn.last_seen])?;
    Ok(())
}

pub(super) fn state_change(
    tx: &Transaction<'_>,
    id: i64,
    at: i64,
    state: State,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT OR REPLACE INTO state_changes (connection, at, state) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![id, at, state_name(state)])?;
    Ok(())
}

/// The connection's end: never before its first or last sighting (the
/// clock can be set back), nor its index entry before its start (which the
/// R*Tree refuses).
pub(super) fn close(
    tx: &Transaction<'_>,
    id: i64,
    at: i64,
    by: End,
    last_seen: i64,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "UPDATE connections SET last_seen = max(last_seen, ?4),
             closed_at = max(?2, first_seen, max(last_seen, ?4)), closed_by = ?3 WHERE id = ?1",
    )?
    .execute(params![id, at, by.as_str(), last_seen])?;
    tx.prepare_cached("UPDATE lifetimes SET end_s = max(?2, start_s) WHERE id = ?1")?
        .execute(params![id, ceil_s(at.max(last_seen))])?;
    Ok(())
}

/// A connection closed in the file that is there again (its TIME_WAIT,
/// found by a recorder that took up the file).
pub(super) fn reopen(tx: &Transaction<'_>, id: i64) -> rusqlite::Result<()> {
    tx.prepare_cached("UPDATE connections SET closed_at = NULL, closed_by = NULL WHERE id = ?1")?
        .execute([id])?;
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
            tx.prepare_cached(
                "INSERT OR IGNORE INTO owners (connection, pid, fd, command, first_seen) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![id, o.pid, o.fd, &*o.command, at])?;
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

/// Delete what ended before `cutoff_ms`: connections (with their owners
/// and state changes), polls (with their listen queues), namespaces last
/// seen an hour before (their connections ended before the cutoff). The
/// freed pages are reused, so the file stops growing once the window is
/// full. Returns the connections deleted.
pub(super) fn expire(tx: &Transaction<'_>, cutoff_ms: i64) -> rusqlite::Result<u64> {
    let ids: Vec<i64> = {
        let mut stmt = tx.prepare("SELECT id FROM lifetimes WHERE end_s < ?1")?;
        let rows = stmt.query_map([floor_s(cutoff_ms)], |r| r.get(0))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    super::outbox::expired(tx, &ids)?;
    for id in &ids {
        for sql in [
            "DELETE FROM owners WHERE connection = ?1",
            "DELETE FROM state_changes WHERE connection = ?1",
            "DELETE FROM connections WHERE id = ?1",
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
