//! A batch of connections read from the file, in the store's columns
//! ([`read_batch`]).

use rusqlite::types::{Value, ValueRef};
use rusqlite::vtab::array::Array;
use rusqlite::Transaction;

use super::kept::{Kept, Span};
use super::raw::{self, Values};
use super::{Batch, Changes, HashMap, HashSet};
use crate::history::codes;
use crate::history::columns::{COLUMNS, COLUMN_NAMES};
use crate::history::shipped::{self, Fragments, Host, Type, CONNECTION_COLUMNS, NO_WORKLOAD};

/// The rows `ids`, as the store's rows (their state changes the store did
/// not acknowledge, `acked_changes`, too), written after what `body`
/// holds (the caller gives it room: about [`ROW_ROOM`] a row); and the ids
/// found.
pub(super) fn read_batch(
    tx: &Transaction<'_>,
    host: &Host,
    acked_changes: &HashMap<i64, Changes>,
    ids: &Array,
    body: Vec<u8>,
) -> rusqlite::Result<(Batch, HashSet<i64>)> {
    let order: Vec<i64> = ids
        .iter()
        .map(|v| match v {
            Value::Integer(id) => *id,
            _ => unreachable!("a batch's ids are numbers"),
        })
        .collect();
    // Every statement walks the ids in their order, a connection's owners
    // and state changes in the order of their table's key; so each is
    // taken beside its connection's row, none kept in a map.
    let walk = Walk::of(&order, ids);
    let sql = walk.select("w.pid, w.fd, w.command", "owners w", "w.connection");
    let mut owners = tx.prepare_cached(&sql)?;
    let mut owners = Beside::new(walk.query(&mut owners)?, &order, |r| {
        Ok((r.get(1)?, r.get(2)?, r.get(3)?))
    })?;
    // (at, the state's code).
    let sql = walk.select("s.at, s.state", "state_change_rows s", "s.connection");
    let mut states = tx.prepare_cached(&sql)?;
    let mut states = Beside::new(walk.query(&mut states)?, &order, |r| {
        Ok((r.get(1)?, r.get(2)?))
    })?;
    // The namespace, boot and workload by their ids: their values are
    // encoded once a batch ([`Fragments`]).
    // `last_seen` as the row keeps it, and whether the row follows
    // its boot's polls: the boot's `open_seen` is read once a batch,
    // not once a row ([`crate::history::columns::LAST_SEEN`]).
    let columns = raw_columns()
        .replacen("n.inode, n.name", "c.netns, NULL", 1)
        .replacen(&own_last_seen(), "(c.first_seen + c.last_seen)", 1);
    debug_assert!(!columns.contains("open_seen"), "{columns}");
    // `c.id` first, as the ids' own column.
    let columns = columns.strip_prefix("c.id, ").expect("the id first");
    let columns =
        format!("{columns}, c.changed, c.boot, c.workload, c.closed_at IS NULL AND c.follows");
    let sql = walk.select(&columns, "connection_rows c", "c.id");
    let mut stmt = tx.prepare_cached(&sql)?;
    let mut rows = walk.query(&mut stmt)?;
    let mut batch = Batch {
        body,
        ..Batch::default()
    };
    let mut found = HashSet::with_capacity_and_hasher(ids.len(), Default::default());
    let mut row = RowWriter {
        at: Columns::of_history(),
        opening: host.opening(),
        fragments: Fragments::default(),
        acked_changes,
        owned: Vec::new(),
        changes: Vec::new(),
    };
    let mut place = 0;
    raw::each_row(tx, &sql, &mut rows, |values, r| {
        let id = values.int(r, 0)?;
        place = place_of(&order, place, id)?;
        owners.take(place, &mut row.owned)?;
        states.take(place, &mut row.changes)?;
        row.write(tx, r, values, id, &mut batch)?;
        found.insert(id);
        Ok(())
    })?;
    Ok((batch, found))
}

/// About the bytes a connection's row takes in a batch (about 350 under
/// churn), reserved ahead for each so that the body is not copied as it
/// grows.
pub(super) const ROW_ROOM: usize = 512;

/// Where each column the shipper treats apart is among the history's
/// ([`COLUMN_NAMES`]), and how it writes each.
struct Columns {
    slots: Vec<Slot>,
    closed_at: usize,
    netns: usize,
    last_seen: usize,
    /// The first column after `closed_by`.
    after_times: usize,
    kind: usize,
    /// The first column after the history's: `changed`, `boot`,
    /// `workload`, whether the row follows its boot's polls.
    after: usize,
}

impl Columns {
    fn of_history() -> Columns {
        let at = |column: &str| {
            COLUMN_NAMES
                .iter()
                .position(|c| *c == column)
                .expect("a column of the history")
        };
        let (netns, last_seen) = (at("netns"), at("last_seen"));
        debug_assert_eq!(COLUMN_NAMES[netns + 1], "netns_name");
        Columns {
            slots: Slot::of_columns(netns, last_seen),
            closed_at: at("closed_at"),
            netns,
            last_seen,
            after_times: at("closed_by") + 1,
            kind: at("kind"),
            after: COLUMN_NAMES.len(),
        }
    }
}

/// Writes a batch's rows, one at a time, with what they share.
struct RowWriter<'a> {
    at: Columns,
    opening: Vec<u8>,
    fragments: Fragments,
    acked_changes: &'a HashMap<i64, Changes>,
    /// The row's owners (pid, fd, command) and state changes (at, the
    /// state's code), each in order.
    owned: Vec<(i64, i64, String)>,
    changes: Vec<(i64, i64)>,
}

impl RowWriter<'_> {
    /// The row `r` (connection `id`, its values read through `values`),
    /// its owners and state changes taken.
    fn write(
        &mut self,
        tx: &Transaction<'_>,
        r: &rusqlite::Row<'_>,
        values: &Values,
        id: i64,
        batch: &mut Batch,
    ) -> rusqlite::Result<()> {
        let (at, n) = (&self.at, self.at.after);
        let seq = values.int(r, n)?;
        let (boot, workload) = (values.int(r, n + 1)?, values.number(r, n + 2)?);
        let follows = values.number(r, n + 3)?.is_some_and(|f| f != 0);
        let netns = values.int(r, at.netns)?;
        let fragments = &mut self.fragments;
        fragments.read(tx, netns, boot, workload)?;
        let out = &mut batch.body;
        // The host's columns: `hostname`, `machine_id`, `recorder`,
        // `boot_id`, `version`.
        let start = out.len();
        out.extend_from_slice(&self.opening);
        out.extend_from_slice(&fragments.boots[&boot]);
        let version = out.len();
        shipped::int(out, seq);
        let id_at = out.len();
        let (mut times, mut rest) = (0, 0);
        for (i, slot) in at.slots.iter().enumerate() {
            if i == at.last_seen {
                times = out.len();
            } else if i == at.after_times {
                rest = out.len();
            }
            match *slot {
                Slot::Namespace => out.extend_from_slice(&fragments.namespaces[&netns]),
                Slot::Skip => {}
                Slot::LastSeen => {
                    let own = values.int(r, i)?;
                    let open_seen = fragments.open_seen[&boot].filter(|_| follows);
                    shipped::int(out, open_seen.map_or(own, |seen| own.max(seen)));
                }
                Slot::Value(..) => slot.write(out, values.get(r, i)?, i)?,
            }
        }
        let owned = &self.owned;
        shipped::numbers(out, owned.iter().map(|o| o.0));
        shipped::numbers(out, owned.iter().map(|o| o.1));
        shipped::texts(out, owned.iter().map(|o| o.2.as_str()));
        let changes = &self.changes;
        shipped::numbers(out, changes.iter().map(|c| c.0));
        shipped::texts(out, changes.iter().map(|c| codes::STATE.name(c.1)));
        match workload {
            Some(w) => out.extend_from_slice(&fragments.workloads[&w]),
            None => out.extend_from_slice(&NO_WORKLOAD),
        }
        let end = out.len();
        let acked = self
            .acked_changes
            .get(&id)
            .map_or(&[][..], |c| c.as_slice());
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
        let time_wait = ValueRef::Integer(codes::kind(crate::model::RowKind::TimeWait));
        if values.get(r, at.closed_at)? != ValueRef::Null {
            batch.closed.push(id);
        } else if values.get(r, at.kind)? == time_wait {
            let (key, version, id) = ((seq, id), version, id_at);
            #[rustfmt::skip]
            batch.kept.push(Span { key, start, version, id, times, rest, end });
        }
        batch.rows += 1;
        Ok(())
    }
}

/// How a batch's statements walk its ids.
enum Walk<'a> {
    /// Through the list (`rarray` the outer loop: its order, no sort by
    /// SQLite), each id sought in the table's key.
    List(&'a Array),
    /// Along the table's key from the first id to the last, with no seek
    /// an id: the ids are one run of consecutive numbers, in order. Under
    /// churn nearly every batch is: the rows waiting are the new ones,
    /// and a TIME_WAIT's close is made from the row kept ([`Kept`]).
    Run(i64, i64),
}

impl<'a> Walk<'a> {
    fn of(order: &[i64], ids: &'a Array) -> Walk<'a> {
        let run = order.windows(2).all(|w| w[0].checked_add(1) == Some(w[1]));
        match (order.first(), order.last()) {
            (Some(&first), Some(&last)) if run => Walk::Run(first, last),
            _ => Walk::List(ids),
        }
    }

    /// The statement reading `columns` of `table` (with its alias), whose
    /// column `key` holds the ids, for the batch's ids: the id first.
    fn select(&self, columns: &str, table: &str, key: &str) -> String {
        match self {
            Walk::List(_) => format!(
                "SELECT o.value, {columns} FROM rarray(?1) o CROSS JOIN {table} ON {key} = o.value"
            ),
            Walk::Run(..) => format!(
                "SELECT {key}, {columns} FROM {table} WHERE {key} BETWEEN ?1 AND ?2 ORDER BY {key}"
            ),
        }
    }

    fn query<'s>(
        &self,
        stmt: &'s mut rusqlite::Statement<'_>,
    ) -> rusqlite::Result<rusqlite::Rows<'s>> {
        match *self {
            Walk::List(ids) => stmt.query([ids]),
            Walk::Run(first, last) => stmt.query([first, last]),
        }
    }
}

/// The place of `id` in `order`, at or after `from`: SQLite gives a
/// `CROSS JOIN`'s rows in the order of its outer loop, here the ids'.
fn place_of(order: &[i64], from: usize, id: i64) -> rusqlite::Result<usize> {
    match order[from..].iter().position(|&o| o == id) {
        Some(found) => Ok(from + found),
        None => Err(rusqlite::Error::ModuleError(format!(
            "connection {id}'s rows came out of the order of the batch's ids"
        ))),
    }
}

/// The rows of a statement over a batch's ids, taken beside each
/// connection's own row: both walk the ids in their order.
struct Beside<'s, T> {
    rows: rusqlite::Rows<'s>,
    order: &'s [i64],
    item: fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    /// The next row's item, and its id's place in `order`.
    next: Option<(usize, T)>,
}

impl<'s, T: Ord> Beside<'s, T> {
    fn new(
        rows: rusqlite::Rows<'s>,
        order: &'s [i64],
        item: fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<Beside<'s, T>> {
        let mut beside = Beside {
            rows,
            order,
            item,
            next: None,
        };
        beside.advance(0)?;
        Ok(beside)
    }

    fn advance(&mut self, from: usize) -> rusqlite::Result<()> {
        self.next = match self.rows.next()? {
            Some(r) => {
                let place = place_of(self.order, from, r.get(0)?)?;
                Some((place, (self.item)(r)?))
            }
            None => None,
        };
        Ok(())
    }

    /// The items of the id at `place` into `out`, in order (those of ids
    /// before it, whose rows were not found, passed).
    fn take(&mut self, place: usize, out: &mut Vec<T>) -> rusqlite::Result<()> {
        out.clear();
        while let Some((at, _)) = &self.next {
            let at = *at;
            if at > place {
                break;
            }
            let (_, item) = self.next.take().expect("looked at");
            if at == place {
                out.push(item);
            }
            self.advance(at)?;
        }
        out.sort_unstable();
        Ok(())
    }
}

/// The rows `keys` closed, each made from the row `kept` keeps and the
/// times its close wrote (none read from the file): their ids.
pub(super) fn write_closed(
    batch: &mut Batch,
    kept: &Kept,
    keys: &[(i64, i64)],
) -> rusqlite::Result<Vec<i64>> {
    let at = Columns::of_history();
    let (slots, closed_at, closed_by) = (&at.slots, at.closed_at, at.after_times - 1);
    debug_assert_eq!((closed_at, closed_by), (at.last_seen + 1, at.last_seen + 2));
    let mut written = Vec::with_capacity(keys.len());
    for &(seq, id) in keys {
        let Some((row, c)) = kept.closed((seq, id)) else {
            continue;
        };
        let out = &mut batch.body;
        out.extend_from_slice(row.head);
        shipped::int(out, seq);
        out.extend_from_slice(row.ids);
        // A closed row's last sighting is its own.
        shipped::int(out, c.last_seen);
        slots[closed_at].write(out, ValueRef::Integer(c.closed_at), closed_at)?;
        slots[closed_by].write(out, ValueRef::Integer(c.closed_by), closed_by)?;
        out.extend_from_slice(row.rest);
        batch.closed.push(id);
        batch.rows += 1;
        written.push(id);
    }
    Ok(written)
}

/// How the shipper writes a column of the history ([`COLUMN_NAMES`]).
#[derive(Clone, Copy)]
enum Slot {
    /// `netns`: the namespace's values (its inode and name).
    Namespace,
    /// `netns_name`, written with `netns`.
    Skip,
    /// The row's own `last_seen`, or its boot's last poll.
    LastSeen,
    /// The value as read, of that type; named when the column keeps
    /// numbers for names.
    Value(Type, Option<&'static codes::Names>),
}

impl Slot {
    /// `value` of column `i`, as a [`Slot::Value`] writes it.
    #[inline]
    fn write(&self, out: &mut Vec<u8>, value: ValueRef<'_>, i: usize) -> rusqlite::Result<()> {
        let Slot::Value(ty, names) = *self else {
            unreachable!("only a value's slot writes a value");
        };
        match (names, value) {
            (Some(names), ValueRef::Integer(code)) => shipped::text(out, ty, &names.name(code)),
            (_, value) => shipped::value(out, ty, value, (i, COLUMN_NAMES[i]))?,
        }
        Ok(())
    }

    /// Each column's, decided once a batch (not once a value).
    fn of_columns(netns: usize, last_seen: usize) -> Vec<Slot> {
        let typed = CONNECTION_COLUMNS.iter().zip(COLUMN_NAMES);
        typed
            .enumerate()
            .map(|(i, ((_, ty), name))| match i {
                _ if i == netns => Slot::Namespace,
                _ if i == netns + 1 => Slot::Skip,
                _ if i == last_seen => Slot::LastSeen,
                _ => Slot::Value(*ty, codes::names_of(name)),
            })
            .collect()
    }
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

/// `last_seen` as [`raw_columns`] says it (the boot's `open_seen` read in
/// each row), replaced where the shipper reads it once a batch.
fn own_last_seen() -> String {
    crate::history::columns::LAST_SEEN.replace("c.last_seen", "(c.first_seen + c.last_seen)")
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;

    use super::*;

    fn walk(order: &[i64]) -> Option<(i64, i64)> {
        let ids: Array = Rc::new(order.iter().map(|&id| Value::Integer(id)).collect());
        match Walk::of(order, &ids) {
            Walk::Run(first, last) => Some((first, last)),
            Walk::List(list) => {
                assert_eq!(list.len(), order.len());
                None
            }
        }
    }

    /// Only ids that are one run of consecutive numbers, in order, are
    /// read along the tables' keys; any gap, repeat or turn back is read
    /// through the list.
    #[test]
    fn only_one_run_of_ids_is_walked_along_the_key() {
        assert_eq!(walk(&[7]), Some((7, 7)));
        assert_eq!(walk(&[3, 4, 5, 6]), Some((3, 6)));
        assert_eq!(walk(&[]), None);
        assert_eq!(walk(&[3, 5, 6]), None);
        assert_eq!(walk(&[3, 4, 4, 6]), None);
        assert_eq!(walk(&[4, 3]), None);
        assert_eq!(walk(&[3, 5, 4, 6]), None);
        assert_eq!(walk(&[i64::MIN, i64::MAX]), None);
    }
}
