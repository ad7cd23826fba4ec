//! What a recorder has not shipped yet to a fleet's store
//! ([`crate::fleet`]): the history file is the spool.
//!
//! Once shipping was turned on in a file ([`super::Writer::ship`]; every
//! later recorder on it, shipping or not), every transaction that
//! changes connection rows (opened, a state, owners or counters, a close)
//! takes the next sequence number (`meta.ship_seq`) and writes it into
//! each row's `changed`, in the statement that already writes the row
//! (no table, no index: nothing more for SQLite to keep). The store keeps
//! the newest version of a row, and `changed` is that version.
//!
//! What the store acknowledged is one mark, `meta.ship_acked` (a
//! sequence number and a row id): every row whose (`changed`, `id`) is at
//! or below it. A row changed after it was shipped has a higher number,
//! so it waits again. The shipper ([`Outbox`]) keeps what waits above the
//! mark in memory, as the writer tells it after each transaction
//! ([`Feed`]), and reads the file for it only when it does not know
//! (started on a file, told too much to hold, or told nothing): the rows
//! above the mark, oldest change first. Polls are shipped after
//! `meta.ship_polls`, the last poll id acknowledged. A row the retention
//! window deletes before it was shipped is counted in `meta.ship_dropped`.

use std::path::{Path, PathBuf};
use std::rc::Rc;

use rusqlite::types::Value;
use rusqlite::vtab::array::Array;
use rusqlite::{params, Connection, OptionalExtension, Transaction};

mod above;
mod kept;
mod raw;
mod read;

use super::{HashMap, HashSet};

/// A connection's state changes the store has: (at, the state's code).
pub(super) type Changes = smallvec::SmallVec<[(i64, i64); 2]>;

pub use above::Feed;
pub(in crate::history) use above::{feed, Teller};
use above::{Above, HELD};

use super::shipped::{self, Host};
use crate::history::{sqlite, Result};

/// A file of version 5 kept what waited in a table: its rows' numbers go
/// into `changed`, and what it did not hold was acknowledged.
pub(super) const FROM_VERSION_5: &str = "
UPDATE connection_rows SET changed = (SELECT seq FROM outbox o WHERE o.connection = connection_rows.id)
    WHERE id IN (SELECT connection FROM outbox);
INSERT OR REPLACE INTO meta (key, value) VALUES ('ship_acked', 0), ('ship_acked_id', 9223372036854775807);
DROP TABLE outbox;";

fn meta_int(tx: &Connection, key: &str) -> rusqlite::Result<Option<i64>> {
    Ok(tx
        .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| {
            r.get::<_, Option<i64>>(0)
        })
        .optional()?
        .flatten())
}

fn set_meta_int(tx: &Connection, key: &str, value: i64) -> rusqlite::Result<()> {
    tx.prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)")?
        .execute(params![key, value])?;
    Ok(())
}

/// The mark: every row at or below it was acknowledged. Never shipped:
/// below every row.
fn acked_mark(tx: &Connection) -> rusqlite::Result<(i64, i64)> {
    Ok((
        meta_int(tx, "ship_acked")?.unwrap_or(-1),
        meta_int(tx, "ship_acked_id")?.unwrap_or(0),
    ))
}

/// Shipping turned on: the first time in a file, every connection it
/// holds waits. The sequence number the next transaction takes.
pub(super) fn start(tx: &Transaction<'_>) -> rusqlite::Result<i64> {
    if meta_int(tx, "ship_acked")?.is_none() {
        set_meta_int(tx, "ship_acked", -1)?;
        set_meta_int(tx, "ship_acked_id", 0)?;
    }
    Ok(meta_int(tx, "ship_seq")?.unwrap_or(0) + 1)
}

/// The number the next transaction takes in a file shipped from (None:
/// shipping was never turned on in it).
pub(super) fn next_seq(tx: &Connection) -> rusqlite::Result<Option<i64>> {
    if meta_int(tx, "ship_acked")?.is_none() {
        return Ok(None);
    }
    Ok(Some(meta_int(tx, "ship_seq")?.unwrap_or(0) + 1))
}

/// The transaction of sequence `seq` changed rows (its statements wrote
/// `seq` into their `changed`): the next one takes the next number.
pub(super) fn mark(tx: &Transaction<'_>, seq: i64) -> rusqlite::Result<()> {
    set_meta_int(tx, "ship_seq", seq)
}

/// The rows `ids` are about to be deleted by the retention window: those
/// above the mark were never shipped, and are counted.
pub(super) fn expired(tx: &Transaction<'_>, ids: &[i64]) -> rusqlite::Result<u64> {
    if meta_int(tx, "ship_acked")?.is_none() {
        return Ok(0);
    }
    let (seq, last) = acked_mark(tx)?;
    let mut stmt = tx.prepare_cached(
        "SELECT count(*) FROM connection_rows WHERE id = ?1 AND (changed, id) > (?2, ?3)",
    )?;
    let mut dropped = 0;
    for id in ids {
        dropped += stmt.query_row(params![id, seq, last], |r| r.get::<_, i64>(0))? as u64;
    }
    if dropped > 0 {
        let before = meta_int(tx, "ship_dropped")?.unwrap_or(0);
        set_meta_int(tx, "ship_dropped", before + dropped as i64)?;
    }
    Ok(dropped)
}

/// Rows to ship, in ClickHouse's `RowBinary` (the columns of their table,
/// [`shipped::table_columns`]), and what acknowledging them forgets.
#[derive(Debug, Default)]
pub struct Batch {
    /// The rows, one after the other.
    pub body: Vec<u8>,
    pub rows: usize,
    /// A batch of connections: their state changes, as the store's
    /// `state_changes` rows (each change sent until the store acknowledged
    /// it once).
    pub changes: Vec<u8>,
    pub change_rows: usize,
    /// Of its rows, closes made from a row kept, not read from the file.
    pub kept_rows: usize,
    /// (seq, connection) of the rows it was read for, in order:
    /// acknowledging forgets them, and moves the mark to the last.
    keys: Vec<(i64, i64)>,
    /// The state changes sent, by connection, and the connections sent
    /// closed.
    sent_changes: Vec<(i64, i64, i64)>,
    closed: Vec<i64>,
    /// The last poll id of a batch of polls.
    last_poll: Option<i64>,
    /// Its rows in TIME_WAIT, kept once acknowledged ([`kept`]).
    kept: Vec<kept::Span>,
}

#[cfg(test)]
impl Batch {
    /// Its rows of `connections` read back, one JSON object a line (NULLs
    /// and empty lists left out).
    pub(crate) fn json(&self) -> String {
        let columns = shipped::table_columns("connections").unwrap();
        shipped::decoded(&columns, &self.body).expect("rows of connections")
    }

    /// Its rows of `state_changes` read back, as [`Batch::json`].
    pub(crate) fn changes_json(&self) -> String {
        shipped::decoded(shipped::STATE_CHANGE_COLUMNS, &self.changes).expect("state changes")
    }
}

/// What waits to be shipped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Waiting {
    pub rows: u64,
    /// When the oldest waiting row changed (ms since the epoch).
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
    /// sends only the changes not among them. Forgotten when its closed
    /// version is acknowledged; a new outbox (a recorder started again)
    /// sends each once more, which the store keeps once. Most have one or
    /// two (what a TIME_WAIT's row was shipped with), held in place.
    pub(super) shipped: HashMap<i64, Changes>,
    feed: Option<Feed>,
    above: Above,
    /// The largest body a batch gave back ([`Outbox::recycle`]), which
    /// the next batch empties and writes into: its pages are not given
    /// back and taken again (faulted in anew) at every batch.
    spare: Vec<u8>,
}

impl Outbox {
    /// The outbox of the file at `path`, which learns what waits by
    /// reading the file (each time it has shipped what it knew).
    pub fn open(path: &Path) -> Result<Outbox> {
        let err = sqlite(path);
        let conn = Connection::open(path).map_err(&err)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(&err)?;
        // It commits as the writer does: not a checkpoint at each batch.
        conn.execute_batch(super::write::COMMITS).map_err(&err)?;
        rusqlite::vtab::array::load_module(&conn).map_err(&err)?;
        let mark = acked_mark(&conn).map_err(&err)?;
        Ok(Outbox {
            conn,
            path: path.to_path_buf(),
            shipped: HashMap::default(),
            feed: None,
            above: Above {
                mark,
                held: HELD,
                ..Above::default()
            },
            spare: Vec::new(),
        })
    }

    /// Told by the file's writer what each transaction changed
    /// ([`super::Writer::ship`]): the file is read for what waits once,
    /// then only when more waited than it holds.
    pub fn fed(mut self, feed: Feed) -> Outbox {
        self.feed = Some(feed);
        self
    }

    /// Holds at most `rows` in memory (tests; [`HELD`] otherwise).
    #[cfg(test)]
    pub(super) fn holding(mut self, rows: usize) -> Outbox {
        self.above.held = rows.max(1);
        self
    }

    /// The rows kept to ship their close from ([`kept`]).
    #[cfg(test)]
    pub(super) fn kept(&self) -> usize {
        self.above.kept.len()
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
    pub fn connections(&mut self, limit: usize) -> Result<Batch> {
        self.read_connections(limit).map_err(sqlite(&self.path))
    }

    fn read_connections(&mut self, limit: usize) -> rusqlite::Result<Batch> {
        if let Some(feed) = &self.feed {
            self.above.take(feed);
        }
        // One snapshot for every read: the recorder goes on writing.
        let tx = self.conn.unchecked_transaction()?;
        if !self.above.all && self.above.keys.len() < limit {
            self.above.read(&tx, self.feed.is_some())?;
        }
        let keys: Vec<(i64, i64)> = self.above.keys.iter().take(limit).collect();
        // Rows whose close is all that changed since they were shipped in
        // TIME_WAIT are made from what was kept; the others are read.
        let (closes, reads): (Vec<_>, Vec<_>) = keys
            .iter()
            .partition(|&&k| self.above.kept.closed(k).is_some());
        let ids: Array = Rc::new(reads.iter().map(|&(_, id)| Value::Integer(id)).collect());
        let host = self.host()?;
        // Room for every row: those read, and the closes made after them.
        let mut body = std::mem::take(&mut self.spare);
        body.clear();
        body.reserve(keys.len() * read::ROW_ROOM);
        let (mut batch, mut found) = read::read_batch(&tx, &host, &self.shipped, &ids, body)?;
        let read_end = batch.body.len();
        let made = read::write_closed(&mut batch, &self.above.kept, &closes)?;
        batch.kept_rows = made.len();
        found.extend(made);
        if cfg!(debug_assertions) {
            self.same_as_read(&tx, &host, &closes, &batch.body[read_end..])?;
        }
        tx.finish()?;
        // A row the retention window deleted meanwhile is not there: it
        // waits no more (and was counted as dropped).
        let (there, gone): (Vec<_>, Vec<_>) =
            keys.into_iter().partition(|(_, id)| found.contains(id));
        self.above.forget(&gone);
        batch.keys = there;
        Ok(batch)
    }

    /// The rows `closes` made from what was kept (`made`, one after the
    /// other) are those the file gives, when it still has those versions
    /// (debug builds: the whole suite checks every row so made).
    fn same_as_read(
        &self,
        tx: &Transaction<'_>,
        host: &Host,
        closes: &[(i64, i64)],
        made: &[u8],
    ) -> rusqlite::Result<()> {
        let mut version = tx.prepare_cached("SELECT changed FROM connection_rows WHERE id = ?1")?;
        for &(seq, id) in closes {
            if version.query_row([id], |r| r.get::<_, i64>(0))? != seq {
                return Ok(());
            }
        }
        let ids: Array = Rc::new(closes.iter().map(|&(_, id)| Value::Integer(id)).collect());
        let (read, _) = read::read_batch(tx, host, &self.shipped, &ids, Vec::new())?;
        assert_eq!(
            read.change_rows, 0,
            "a close made from a kept row left state changes out"
        );
        assert!(
            read.body == made,
            "a close made from a kept row differs from the file's"
        );
        Ok(())
    }

    /// Up to `limit` polls not shipped yet, as the store's `polls` rows.
    pub fn polls(&self, limit: usize) -> Result<Batch> {
        self.read_polls(limit).map_err(sqlite(&self.path))
    }

    fn read_polls(&self, limit: usize) -> rusqlite::Result<Batch> {
        let opening = self.host()?.opening();
        let after = meta_int(&self.conn, "ship_polls")?.unwrap_or(0);
        let mut stmt = self.conn.prepare_cached(
            "SELECT b.boot_id, p.id, p.at, p.source, p.namespaces, p.sockets, p.opened, p.closed,
                    p.notifications, p.took_us, p.not_seen, p.interval_ms
             FROM polls p JOIN boots b ON b.id = p.boot WHERE p.id > ?1 ORDER BY p.id LIMIT ?2",
        )?;
        // After the host's `hostname`, `machine_id` and `recorder`.
        let columns = &shipped::POLL_COLUMNS[3..];
        let mut batch = Batch::default();
        let mut rows = stmt.query(params![after, limit as i64])?;
        while let Some(r) = rows.next()? {
            batch.body.extend_from_slice(&opening);
            for (i, (name, ty)) in columns.iter().enumerate() {
                shipped::value(&mut batch.body, *ty, r.get_ref(i)?, (i, name))?;
            }
            batch.rows += 1;
            batch.last_poll = Some(r.get(1)?);
        }
        Ok(batch)
    }

    /// The store has `batch`: forget its rows (a row changed since waits
    /// under its new number) and move the mark past them, or past its
    /// polls.
    pub fn acked(&mut self, batch: &Batch) -> Result<()> {
        let err = sqlite(&self.path);
        let mut above = std::mem::take(&mut self.above);
        above.acked(&batch.keys);
        let tx = self.conn.transaction().map_err(&err)?;
        let write = || -> rusqlite::Result<()> {
            if !batch.keys.is_empty() {
                set_meta_int(&tx, "ship_acked", above.mark.0)?;
                set_meta_int(&tx, "ship_acked_id", above.mark.1)?;
            }
            if let Some(last) = batch.last_poll {
                set_meta_int(&tx, "ship_polls", last)?;
            }
            for (key, add) in [("ship_sent", batch.rows as i64), ("ship_batches", 1)] {
                let before = meta_int(&tx, key)?.unwrap_or(0);
                set_meta_int(&tx, key, before + add)?;
            }
            said_waiting(&tx, &above)
        };
        let written = write();
        // Rows are kept only where the writer tells their closes.
        if self.feed.is_some() {
            let newer = |seq, id| above.keys.seq_of(id).is_some_and(|s| s > seq);
            let mut kept = std::mem::take(&mut above.kept);
            kept.acked(&batch.body, &batch.kept, newer);
            above.kept = kept;
        }
        self.above = above;
        written.map_err(&err)?;
        tx.commit().map_err(&err)?;
        // A connection shipped closed is not sent again: what the store
        // has of its changes is forgotten (kept only for those still open).
        let closed: HashSet<i64> = batch.closed.iter().copied().collect();
        for (id, at, state) in &batch.sent_changes {
            if !closed.contains(id) {
                self.shipped.entry(*id).or_default().push((*at, *state));
            }
        }
        for id in &batch.closed {
            self.shipped.remove(id);
        }
        Ok(())
    }

    /// A batch done with (acknowledged, or not sent): its body's room is
    /// kept for the next batch.
    pub fn recycle(&mut self, batch: Batch) {
        if batch.body.capacity() > self.spare.capacity() {
            self.spare = batch.body;
        }
    }

    /// What waits to be shipped, and what was shipped so far.
    pub fn waiting(&mut self) -> Result<Waiting> {
        let err = sqlite(&self.path);
        if let Some(feed) = &self.feed {
            self.above.take(feed);
        }
        if !self.above.all {
            let tx = self.conn.unchecked_transaction().map_err(&err)?;
            self.above.read(&tx, self.feed.is_some()).map_err(&err)?;
            tx.finish().map_err(&err)?;
        }
        let mut waiting = status(&self.conn).map_err(&err)?.unwrap_or_default();
        waiting.rows = self.above.rows();
        waiting.oldest = self.above.oldest();
        Ok(waiting)
    }

    /// A batch was refused or not answered: counted in the file.
    pub fn failed(&mut self) -> Result<()> {
        let err = sqlite(&self.path);
        if let Some(feed) = &self.feed {
            self.above.take(feed);
        }
        let n = meta_int(&self.conn, "ship_failed").map_err(&err)?;
        set_meta_int(&self.conn, "ship_failed", n.unwrap_or(0) + 1).map_err(&err)?;
        said_waiting(&self.conn, &self.above).map_err(&err)
    }
}

/// What waits, as the shipper knows it, for the file's other readers
/// ([`status`]).
fn said_waiting(tx: &Connection, above: &Above) -> rusqlite::Result<()> {
    set_meta_int(tx, "ship_waiting", above.rows() as i64)?;
    match above.oldest() {
        Some(at) => set_meta_int(tx, "ship_oldest", at),
        None => tx
            .execute("DELETE FROM meta WHERE key = 'ship_oldest'", [])
            .map(drop),
    }
}

/// The shipping status a file keeps (None: it was never shipped), as its
/// shipper last said it.
pub(super) fn status(conn: &Connection) -> rusqlite::Result<Option<Waiting>> {
    let count = |key: &str| -> rusqlite::Result<u64> {
        Ok(meta_int(conn, key)?.unwrap_or(0).max(0) as u64)
    };
    let (rows, oldest) = if meta_int(conn, "ship_acked")?.is_some() {
        (count("ship_waiting")?, meta_int(conn, "ship_oldest")?)
    } else if version_5_outbox(conn)? {
        // A file of version 5, read as it is: its table says what waits.
        let (rows, oldest): (i64, Option<i64>) =
            conn.query_row("SELECT count(*), min(since) FROM outbox", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
        (rows as u64, oldest)
    } else {
        return Ok(None);
    };
    Ok(Some(Waiting {
        rows,
        oldest,
        dropped: count("ship_dropped")?,
        sent: count("ship_sent")?,
        batches: count("ship_batches")?,
        failed: count("ship_failed")?,
    }))
}

/// Whether the file keeps version 5's `outbox` table.
pub(super) fn version_5_outbox(conn: &Connection) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'outbox'",
        [],
        |r| r.get(0),
    )
}
