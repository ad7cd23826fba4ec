//! What a recorder has not shipped yet to a fleet's store
//! ([`crate::fleet`]): the history file is the spool.
//!
//! With shipping on ([`super::Writer::ship`]), every transaction that
//! changes a connection's row (opened, a state, its owners or counters,
//! its close) puts the row in `outbox` under the transaction's sequence
//! number (`meta.ship_seq`, one more each time): a row changed again
//! before it was shipped is there once, with the later number, which is
//! also the version the store keeps the newest of. [`Outbox`] reads the
//! rows in sequence order as the store's rows, and forgets those the store
//! acknowledged (only if they did not change meanwhile). Polls are shipped
//! after `meta.ship_polls`, the last poll id acknowledged. A row the
//! retention window deletes before it was shipped is counted in
//! `meta.ship_dropped`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rusqlite::types::ValueRef;
use rusqlite::{params, Connection, OptionalExtension, Transaction};

use super::columns::{COLUMNS, COLUMN_NAMES};
use super::lines::{Fragments, Host, Line};
use super::{codes, sqlite, Result};

/// The outbox's table, made when shipping is turned on.
pub(super) const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS outbox (
    connection INTEGER PRIMARY KEY,
    seq        INTEGER NOT NULL,
    since      INTEGER NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS outbox_seq ON outbox (seq, connection);";

fn meta_int(tx: &Connection, key: &str) -> rusqlite::Result<i64> {
    Ok(tx
        .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| {
            r.get::<_, Option<i64>>(0)
        })
        .optional()?
        .flatten()
        .unwrap_or(0))
}

fn set_meta_int(tx: &Connection, key: &str, value: i64) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
        params![key, value],
    )?;
    Ok(())
}

/// Make the outbox; made now, it holds every connection of the file.
pub(super) fn start(tx: &Transaction<'_>, now: i64) -> rusqlite::Result<()> {
    if outbox_exists(tx)? {
        return Ok(());
    }
    tx.execute_batch(SCHEMA)?;
    let seq = meta_int(tx, "ship_seq")? + 1;
    set_meta_int(tx, "ship_seq", seq)?;
    tx.execute(
        "INSERT INTO outbox (connection, seq, since) SELECT id, ?1, ?2 FROM connections",
        params![seq, now],
    )?;
    Ok(())
}

fn outbox_exists(tx: &Connection) -> rusqlite::Result<bool> {
    tx.query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'outbox'",
        [],
        |r| r.get(0),
    )
}

/// Put the rows `ids` (changed by this transaction, at `now`) in the
/// outbox under a new sequence number.
pub(super) fn mark(tx: &Transaction<'_>, ids: &[i64], now: i64) -> rusqlite::Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let seq = meta_int(tx, "ship_seq")? + 1;
    set_meta_int(tx, "ship_seq", seq)?;
    let mut stmt = tx.prepare_cached(
        "INSERT INTO outbox (connection, seq, since) VALUES (?1, ?2, ?3)
         ON CONFLICT (connection) DO UPDATE SET seq = excluded.seq",
    )?;
    for id in ids {
        stmt.execute(params![id, seq, now])?;
    }
    Ok(())
}

/// The rows `ids` are deleted by the retention window: those still in the
/// outbox were never shipped, and are counted.
pub(super) fn expired(tx: &Transaction<'_>, ids: &[i64]) -> rusqlite::Result<u64> {
    if !outbox_exists(tx)? {
        return Ok(0);
    }
    let mut dropped = 0;
    let mut stmt = tx.prepare_cached("DELETE FROM outbox WHERE connection = ?1")?;
    for id in ids {
        dropped += stmt.execute([id])? as u64;
    }
    if dropped > 0 {
        let before = meta_int(tx, "ship_dropped")?;
        set_meta_int(tx, "ship_dropped", before + dropped as i64)?;
    }
    Ok(dropped)
}

/// Rows to ship: one JSON object per line (ClickHouse's `JSONEachRow`),
/// and what acknowledging them forgets.
#[derive(Debug, Default)]
pub struct Batch {
    /// The rows, each a line ending in `\n`.
    pub body: String,
    pub rows: usize,
    /// A batch of connections: their state changes, as the store's
    /// `state_changes` rows (every change of each connection, sent again
    /// with each of its versions: the store keeps each once).
    pub changes: String,
    pub change_rows: usize,
    /// (seq, connection) of the last connection row, in the order the
    /// batch was read: acknowledging forgets the rows up to it.
    last_key: Option<(i64, i64)>,
    /// The state changes sent, by connection, and the connections sent
    /// closed.
    sent_changes: Vec<(i64, i64, String)>,
    closed: Vec<i64>,
    /// The last poll id of a batch of polls.
    last_poll: Option<i64>,
}

/// What waits to be shipped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Waiting {
    pub rows: u64,
    /// When the oldest waiting row first changed (ms since the epoch).
    pub oldest: Option<i64>,
    /// Rows the retention window deleted before they were shipped.
    pub dropped: u64,
    /// Rows the store acknowledged (a row that changed again is sent
    /// again), in batches; batches it refused or did not answer.
    pub sent: u64,
    pub batches: u64,
    pub failed: u64,
}

/// The outbox of a history file, read by a shipper beside its recorder
/// (its own connection: WAL lets both work).
#[derive(Debug)]
pub struct Outbox {
    conn: Connection,
    path: PathBuf,
    /// The state changes the store acknowledged, per connection still
    /// open, since this outbox was opened: a new version of a connection
    /// sends only the changes not among them (they were sent again with
    /// every version). Forgotten when its closed version is acknowledged;
    /// a new outbox (a recorder started again) sends each once more, which
    /// the store keeps once.
    pub(super) shipped: HashMap<i64, Vec<(i64, String)>>,
}

impl Outbox {
    pub fn open(path: &Path) -> Result<Outbox> {
        let err = sqlite(path);
        let conn = Connection::open(path).map_err(&err)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(&err)?;
        conn.execute_batch(SCHEMA).map_err(&err)?;
        Ok(Outbox {
            conn,
            path: path.to_path_buf(),
            shipped: HashMap::new(),
        })
    }

    /// (hostname, machine id, recorder id) as the file keeps them.
    fn host(&self) -> rusqlite::Result<Host> {
        let text = |key: &str| -> rusqlite::Result<String> {
            Ok(self
                .conn
                .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| {
                    r.get::<_, Option<String>>(0)
                })
                .optional()?
                .flatten()
                .unwrap_or_default())
        };
        Ok(Host {
            hostname: text("hostname")?,
            machine_id: text("machine_id")?,
            recorder: text("recorder")?,
        })
    }

    /// Up to `limit` connection rows, oldest change first, as the store's
    /// rows: [`COLUMN_NAMES`], the owners (`owner_pids`, `owner_fds`,
    /// `owner_commands`), the state changes (`state_times`, `states`), the
    /// workload ([`WORKLOAD_COLUMNS`](super::WORKLOAD_COLUMNS)), the host (`hostname`,
    /// `machine_id`, `boot_id`) and `version`.
    pub fn connections(&self, limit: usize) -> Result<Batch> {
        self.read_connections(limit).map_err(sqlite(&self.path))
    }

    fn read_connections(&self, limit: usize) -> rusqlite::Result<Batch> {
        // One snapshot for the three reads: the recorder may change the
        // outbox between them.
        let tx = self.conn.unchecked_transaction()?;
        let host = self.host()?;
        let batch = Self::read_batch(&tx, &host, &self.shipped, limit)?;
        tx.finish()?;
        Ok(batch)
    }

    fn read_batch(
        tx: &Transaction<'_>,
        host: &Host,
        shipped: &HashMap<i64, Vec<(i64, String)>>,
        limit: usize,
    ) -> rusqlite::Result<Batch> {
        let opening = host.opening();
        let first = "(SELECT connection FROM outbox ORDER BY seq, connection LIMIT ?1) o";
        let mut owners: HashMap<i64, Vec<(i64, i64, String)>> = by_connection(
            tx,
            &format!(
                "SELECT o.connection, w.pid, w.fd, w.command FROM {first} JOIN owners w ON w.connection = o.connection
                 ORDER BY o.connection, w.pid, w.fd"
            ),
            limit,
            |r| Ok((r.get(1)?, r.get(2)?, r.get(3)?)),
        )?;
        let mut states: HashMap<i64, Vec<(i64, String)>> = by_connection(
            tx,
            &format!(
                "SELECT o.connection, s.at, s.state FROM {first} JOIN state_change_rows s ON s.connection = o.connection
                 ORDER BY o.connection, s.at"
            ),
            limit,
            |r| Ok((r.get(1)?, codes::STATE.name(r.get(2)?).into_owned())),
        )?;
        // The namespace, boot and workload by their ids: their members are
        // written once a batch ([`Fragments`]).
        let columns = raw_columns().replacen("n.inode, n.name", "c.netns, NULL", 1);
        let mut stmt = tx.prepare_cached(&format!(
            "SELECT {columns}, o.seq, c.boot, c.workload
             FROM outbox o JOIN connection_rows c ON c.id = o.connection
             ORDER BY o.seq, o.connection LIMIT ?1"
        ))?;
        let mut batch = Batch::default();
        let mut rows = stmt.query([limit as i64])?;
        let n = COLUMN_NAMES.len();
        let at = |column: &str| {
            COLUMN_NAMES
                .iter()
                .position(|c| *c == column)
                .expect("a column of the history")
        };
        let (closed_at, netns) = (at("closed_at"), at("netns"));
        debug_assert_eq!(COLUMN_NAMES[netns + 1], "netns_name");
        // The columns read as numbers, named here.
        let named: Vec<_> = COLUMN_NAMES.iter().map(|c| codes::names_of(c)).collect();
        let mut fragments = Fragments::default();
        while let Some(r) = rows.next()? {
            let id: i64 = r.get(0)?;
            let seq: i64 = r.get(n)?;
            let (boot, workload) = (r.get(n + 1)?, r.get(n + 2)?);
            fragments.read(tx, r.get(netns)?, boot, workload)?;
            let mut line = Line::new(&mut batch.body, &opening);
            for (i, (name, names)) in COLUMN_NAMES.iter().zip(&named).enumerate() {
                match (names, r.get_ref(i)?) {
                    // `netns` and `netns_name`: the namespace's members.
                    _ if i == netns => line.members(&fragments.namespaces[&r.get(i)?]),
                    _ if i == netns + 1 => {}
                    (Some(names), ValueRef::Integer(code)) => line.text(name, &names.name(code)),
                    (_, value) => line.value(name, value),
                }
            }
            line.value("version", ValueRef::Integer(seq));
            line.members(&fragments.boots[&boot]);
            if let Some(w) = workload {
                line.members(&fragments.workloads[&w]);
            }
            let owned = owners.remove(&id).unwrap_or_default();
            line.numbers("owner_pids", owned.iter().map(|o| o.0));
            line.numbers("owner_fds", owned.iter().map(|o| o.1));
            line.texts("owner_commands", owned.iter().map(|o| o.2.as_str()));
            let changes = states.remove(&id).unwrap_or_default();
            line.numbers("state_times", changes.iter().map(|c| c.0));
            line.texts("states", changes.iter().map(|c| c.1.as_str()));
            line.end();
            let closed = r.get_ref(closed_at)? != ValueRef::Null;
            let acked = shipped.get(&id).map_or(&[][..], Vec::as_slice);
            for (at, state) in changes.into_iter().filter(|c| !acked.contains(c)) {
                let mut line = Line::new(&mut batch.changes, &opening);
                line.members(&fragments.boots[&boot]);
                line.value("connection", ValueRef::Integer(id));
                line.value("at", ValueRef::Integer(at));
                line.text("state", &state);
                line.end();
                batch.change_rows += 1;
                batch.sent_changes.push((id, at, state));
            }
            if closed {
                batch.closed.push(id);
            }
            batch.rows += 1;
            batch.last_key = Some((seq, id));
        }
        Ok(batch)
    }

    /// Up to `limit` polls not shipped yet, as the store's `polls` rows.
    pub fn polls(&self, limit: usize) -> Result<Batch> {
        self.read_polls(limit).map_err(sqlite(&self.path))
    }

    fn read_polls(&self, limit: usize) -> rusqlite::Result<Batch> {
        let opening = self.host()?.opening();
        let after = meta_int(&self.conn, "ship_polls")?;
        let mut stmt = self.conn.prepare_cached(
            "SELECT p.id, p.at, b.boot_id, p.source, p.namespaces, p.sockets, p.opened, p.closed,
                    p.notifications, p.took_us, p.not_seen, p.interval_ms
             FROM polls p JOIN boots b ON b.id = p.boot WHERE p.id > ?1 ORDER BY p.id LIMIT ?2",
        )?;
        let names = [
            "id",
            "at",
            "boot_id",
            "source",
            "namespaces",
            "sockets",
            "opened",
            "closed",
            "notifications",
            "took_us",
            "not_seen",
            "interval_ms",
        ];
        let mut batch = Batch::default();
        let mut rows = stmt.query(params![after, limit as i64])?;
        while let Some(r) = rows.next()? {
            let mut line = Line::new(&mut batch.body, &opening);
            for (i, name) in names.iter().enumerate() {
                line.value(name, r.get_ref(i)?);
            }
            line.end();
            batch.rows += 1;
            batch.last_poll = Some(r.get(0)?);
        }
        Ok(batch)
    }

    /// The store has `batch`: forget its rows (those that did not change
    /// meanwhile), or move past its polls.
    pub fn acked(&mut self, batch: &Batch) -> Result<()> {
        let err = sqlite(&self.path);
        let tx = self.conn.transaction().map_err(&err)?;
        // The batch was the first rows in (seq, connection) order, and a
        // row changed since has a new seq, above every one read: what is
        // still at or below the batch's last key is the batch, unchanged.
        if let Some((seq, id)) = batch.last_key {
            tx.prepare_cached("DELETE FROM outbox WHERE (seq, connection) <= (?1, ?2)")
                .and_then(|mut stmt| stmt.execute(params![seq, id]))
                .map_err(&err)?;
        }
        if let Some(last) = batch.last_poll {
            set_meta_int(&tx, "ship_polls", last).map_err(&err)?;
        }
        for (key, add) in [("ship_sent", batch.rows as i64), ("ship_batches", 1)] {
            let before = meta_int(&tx, key).map_err(&err)?;
            set_meta_int(&tx, key, before + add).map_err(&err)?;
        }
        tx.commit().map_err(&err)?;
        for (id, at, state) in &batch.sent_changes {
            self.shipped
                .entry(*id)
                .or_default()
                .push((*at, state.clone()));
        }
        for id in &batch.closed {
            self.shipped.remove(id);
        }
        Ok(())
    }

    /// What waits to be shipped, and what was shipped so far.
    pub fn waiting(&self) -> Result<Waiting> {
        status(&self.conn)
            .map(Option::unwrap_or_default)
            .map_err(sqlite(&self.path))
    }

    /// A batch was refused or not answered: counted in the file.
    pub fn failed(&mut self) -> Result<()> {
        let n = meta_int(&self.conn, "ship_failed").map_err(sqlite(&self.path))?;
        set_meta_int(&self.conn, "ship_failed", n + 1).map_err(sqlite(&self.path))
    }
}

/// The shipping status a file keeps (None: it was never shipped).
pub(super) fn status(conn: &Connection) -> rusqlite::Result<Option<Waiting>> {
    if !outbox_exists(conn)? {
        return Ok(None);
    }
    let (rows, oldest): (i64, Option<i64>) =
        conn.query_row("SELECT count(*), min(since) FROM outbox", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    let count = |key: &str| -> rusqlite::Result<u64> { Ok(meta_int(conn, key)?.max(0) as u64) };
    Ok(Some(Waiting {
        rows: rows as u64,
        oldest,
        dropped: count("ship_dropped")?,
        sent: count("ship_sent")?,
        batches: count("ship_batches")?,
        failed: count("ship_failed")?,
    }))
}

/// [`COLUMNS`] read from `connection_rows` itself, not through the
/// `connections` view (which names every number of every row in SQL):
/// the numbers as they are, named by the reader ([`codes::names_of`]),
/// the times after the first sighting made times again.
fn raw_columns() -> String {
    let view_times = COLUMNS.replacen("c.closed_at,", "c.first_seen + c.closed_at,", 1);
    // `last_seen` as the view says it, wherever the view's is read.
    view_times.replace("c.last_seen", "(c.first_seen + c.last_seen)")
}

/// The rows of `sql` (given `limit`; its first column a connection's id)
/// by connection, each as `item` reads it.
fn by_connection<T>(
    tx: &Transaction<'_>,
    sql: &str,
    limit: usize,
    item: impl Fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<HashMap<i64, Vec<T>>> {
    let mut stmt = tx.prepare_cached(sql)?;
    let mut rows = stmt.query([limit as i64])?;
    let mut out: HashMap<i64, Vec<T>> = HashMap::new();
    while let Some(r) = rows.next()? {
        out.entry(r.get(0)?).or_default().push(item(r)?);
    }
    Ok(out)
}
