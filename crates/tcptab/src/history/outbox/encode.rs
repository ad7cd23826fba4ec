//! A batch's rows written in the store's columns ([`Encoder`]): each row
//! read from the file, or made from what its writer kept in memory
//! ([`Stored`]), through the same code.

use rusqlite::types::ValueRef;
use rusqlite::vtab::array::Array;
use rusqlite::Transaction;

use super::{by_connection, own_last_seen, raw_columns, Batch, HashMap, HashSet};
use crate::history::codes;
use crate::history::columns::COLUMN_NAMES;
use crate::history::shipped::{self, Fragments, Host, Type, CONNECTION_COLUMNS, NO_WORKLOAD};
use crate::history::stored::{self, Stored};

/// A row's cells, as the shipper's statement reads them from the file
/// or as its writer kept them ([`Stored::cell`]).
pub(super) trait Cells {
    fn cell(&self, i: usize) -> rusqlite::Result<ValueRef<'_>>;

    fn int(&self, i: usize) -> rusqlite::Result<i64> {
        match self.cell(i)? {
            ValueRef::Integer(n) => Ok(n),
            other => Err(rusqlite::Error::InvalidColumnType(
                i,
                COLUMN_NAMES.get(i).copied().unwrap_or("changed").into(),
                other.data_type(),
            )),
        }
    }

    fn opt_int(&self, i: usize) -> rusqlite::Result<Option<i64>> {
        match self.cell(i)? {
            ValueRef::Null => Ok(None),
            _ => self.int(i).map(Some),
        }
    }
}

impl Cells for rusqlite::Row<'_> {
    fn cell(&self, i: usize) -> rusqlite::Result<ValueRef<'_>> {
        self.get_ref(i)
    }
}

impl Cells for Stored {
    fn cell(&self, i: usize) -> rusqlite::Result<ValueRef<'_>> {
        Ok(Stored::cell(self, i))
    }
}

/// Where an open row that follows its boot's polls was last seen, beyond
/// its own `last_seen`: the boot's `open_seen`.
#[derive(Debug, Clone, Copy)]
pub(super) enum Seen {
    /// As the file says it in the batch's snapshot (a row read from it).
    File,
    /// As its writer told it with the rows it kept (a row kept in memory:
    /// the poll that found it, not a later one that may not have).
    Told(Option<i64>),
}

/// Whether a row follows its boot's polls (open), its owners ((pid, fd,
/// command), sorted) and its state changes ((at, the state's code),
/// sorted).
pub(super) type With<'r, O> = (Option<Seen>, &'r [(i64, i64, O)], &'r [(i64, i64)]);

/// Writes a batch's rows in the store's columns.
pub(super) struct Encoder<'a> {
    opening: Vec<u8>,
    /// The state changes the store acknowledged, per connection.
    acked_changes: &'a HashMap<i64, Vec<(i64, i64)>>,
    fragments: Fragments,
    /// The columns read as numbers, named here.
    named: Vec<Option<&'static codes::Names>>,
    closed_at: usize,
    netns: usize,
    last_seen: usize,
}

impl<'a> Encoder<'a> {
    pub(super) fn new(host: Host, acked_changes: &'a HashMap<i64, Vec<(i64, i64)>>) -> Encoder<'a> {
        let at = |column: &str| {
            COLUMN_NAMES
                .iter()
                .position(|c| *c == column)
                .expect("a column of the history")
        };
        let netns = at("netns");
        debug_assert_eq!(COLUMN_NAMES[netns + 1], "netns_name");
        Encoder {
            opening: host.opening(),
            acked_changes,
            fragments: Fragments::default(),
            named: COLUMN_NAMES.iter().map(|c| codes::names_of(c)).collect(),
            closed_at: at("closed_at"),
            netns,
            last_seen: at("last_seen"),
        }
    }

    /// The rows `ids` read from the file (those found into `found`).
    pub(super) fn read(
        &mut self,
        tx: &Transaction<'_>,
        batch: &mut Batch,
        ids: &Array,
        found: &mut HashSet<i64>,
    ) -> rusqlite::Result<()> {
        let first = "rarray(?1) o";
        // Each in the order of its table's key (no sort by SQLite: the
        // keys of a batch come in no order; each connection's are sorted
        // here).
        let mut owners: HashMap<i64, Vec<(i64, i64, String)>> = by_connection(
            tx,
            &format!(
                "SELECT o.value, w.pid, w.fd, w.command FROM {first} JOIN owners w ON w.connection = o.value"
            ),
            ids,
            |r| Ok((r.get(1)?, r.get(2)?, r.get(3)?)),
        )?;
        // (at, the state's code).
        let mut states: HashMap<i64, Vec<(i64, i64)>> = by_connection(
            tx,
            &format!(
                "SELECT o.value, s.at, s.state FROM {first} JOIN state_change_rows s ON s.connection = o.value"
            ),
            ids,
            |r| Ok((r.get(1)?, r.get(2)?)),
        )?;
        // The namespace, boot and workload by their ids: their values are
        // encoded once a batch ([`Fragments`]).
        // `last_seen` as the row keeps it, and whether the row follows
        // its boot's polls: the boot's `open_seen` is read once a batch,
        // not once a row ([`super::columns::LAST_SEEN`]).
        let columns = raw_columns()
            .replacen("n.inode, n.name", "c.netns, NULL", 1)
            .replacen(&own_last_seen(), "(c.first_seen + c.last_seen)", 1);
        debug_assert!(!columns.contains("open_seen"), "{columns}");
        let mut stmt = tx.prepare_cached(&format!(
            "SELECT {columns}, c.changed, c.boot, c.workload, c.closed_at IS NULL AND c.follows
             FROM {first} CROSS JOIN connection_rows c ON c.id = o.value"
        ))?;
        let mut rows = stmt.query([ids])?;
        while let Some(r) = rows.next()? {
            let id: i64 = r.get(0)?;
            let follows = r.get::<_, Option<bool>>(stored::CELLS)?.unwrap_or(false);
            let follows = follows.then_some(Seen::File);
            found.insert(id);
            let owned = owners.remove(&id).unwrap_or_default();
            let changes = states.remove(&id).unwrap_or_default();
            self.row(tx, batch, r, (follows, &owned, &changes))?;
        }
        Ok(())
    }

    /// One row into the batch (and its state changes the store has not
    /// acknowledged).
    pub(super) fn row<O: AsRef<str>>(
        &mut self,
        tx: &Transaction<'_>,
        batch: &mut Batch,
        r: &impl Cells,
        (follows, owned, changes): With<'_, O>,
    ) -> rusqlite::Result<()> {
        let n = COLUMN_NAMES.len();
        let id = r.int(0)?;
        let seq = r.int(stored::CHANGED)?;
        let boot = r.int(stored::BOOT)?;
        let workload = r.opt_int(stored::WORKLOAD)?;
        let fragments = &mut self.fragments;
        fragments.read(tx, r.int(self.netns)?, boot, workload)?;
        let out = &mut batch.body;
        // The host's columns: `hostname`, `machine_id`, `recorder`,
        // `boot_id`, `version`.
        out.extend_from_slice(&self.opening);
        out.extend_from_slice(&fragments.boots[&boot]);
        shipped::int(out, seq);
        let typed = CONNECTION_COLUMNS.iter().zip(&self.named);
        for (i, ((name, ty), names)) in typed.take(n).enumerate() {
            match (names, r.cell(i)?) {
                // `netns` and `netns_name`: the namespace's values.
                _ if i == self.netns => {
                    out.extend_from_slice(&fragments.namespaces[&r.int(i)?]);
                }
                _ if i == self.netns + 1 => {}
                _ if i == self.last_seen => {
                    let own = r.int(i)?;
                    let open_seen = match follows {
                        None => None,
                        Some(Seen::File) => fragments.open_seen[&boot],
                        Some(Seen::Told(seen)) => seen,
                    };
                    shipped::int(out, open_seen.map_or(own, |seen| own.max(seen)));
                }
                (Some(names), ValueRef::Integer(code)) => {
                    shipped::text(out, *ty, &names.name(code))
                }
                (_, value) => shipped::value(out, *ty, value, (i, name))?,
            }
        }
        shipped::numbers(out, owned.iter().map(|o| o.0));
        shipped::numbers(out, owned.iter().map(|o| o.1));
        shipped::texts(out, owned.iter().map(|o| o.2.as_ref()));
        shipped::numbers(out, changes.iter().map(|c| c.0));
        shipped::texts(out, changes.iter().map(|c| codes::STATE.name(c.1)));
        match workload {
            Some(w) => out.extend_from_slice(&fragments.workloads[&w]),
            None => out.extend_from_slice(&NO_WORKLOAD),
        }
        let closed = r.cell(self.closed_at)? != ValueRef::Null;
        let acked = self.acked_changes.get(&id).map_or(&[][..], Vec::as_slice);
        for &(at, state) in changes.iter().filter(|c| !acked.contains(c)) {
            let change = &mut batch.changes;
            change.extend_from_slice(&self.opening);
            change.extend_from_slice(&fragments.boots[&boot]);
            shipped::int(change, id);
            shipped::int(change, at);
            shipped::text(change, Type::String, &codes::STATE.name(state));
            batch.change_rows += 1;
            batch.sent_changes.push((id, at, state));
        }
        if closed {
            batch.closed.push(id);
        }
        batch.rows += 1;
        Ok(())
    }
}
