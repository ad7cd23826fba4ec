//! A batch of connections read from the file, in the store's columns
//! ([`read_batch`]).

use rusqlite::types::ValueRef;
use rusqlite::vtab::array::Array;
use rusqlite::Transaction;

use super::kept::{Kept, Span};
use super::{Batch, HashMap, HashSet};
use crate::history::codes;
use crate::history::columns::{COLUMNS, COLUMN_NAMES};
use crate::history::shipped::{self, Fragments, Host, Type, CONNECTION_COLUMNS, NO_WORKLOAD};

/// The rows `ids`, as the store's rows (their state changes the store did
/// not acknowledge, `acked_changes`, too); and the ids found.
pub(super) fn read_batch(
    tx: &Transaction<'_>,
    host: &Host,
    acked_changes: &HashMap<i64, Vec<(i64, i64)>>,
    ids: &Array,
) -> rusqlite::Result<(Batch, HashSet<i64>)> {
    let opening = host.opening();
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
    // not once a row ([`crate::history::columns::LAST_SEEN`]).
    let columns = raw_columns()
        .replacen("n.inode, n.name", "c.netns, NULL", 1)
        .replacen(&own_last_seen(), "(c.first_seen + c.last_seen)", 1);
    debug_assert!(!columns.contains("open_seen"), "{columns}");
    let mut stmt = tx.prepare_cached(&format!(
        "SELECT {columns}, c.changed, c.boot, c.workload, c.closed_at IS NULL AND c.follows
         FROM {first} CROSS JOIN connection_rows c ON c.id = o.value"
    ))?;
    let mut batch = Batch::default();
    let mut rows = stmt.query([ids])?;
    let n = COLUMN_NAMES.len();
    let at = |column: &str| {
        COLUMN_NAMES
            .iter()
            .position(|c| *c == column)
            .expect("a column of the history")
    };
    let (closed_at, netns, last_seen) = (at("closed_at"), at("netns"), at("last_seen"));
    let (kind, after_times) = (at("kind"), at("closed_by") + 1);
    let time_wait = ValueRef::Integer(codes::kind(crate::model::RowKind::TimeWait));
    debug_assert_eq!(COLUMN_NAMES[netns + 1], "netns_name");
    let slots = Slot::of_columns(netns, last_seen);
    let mut fragments = Fragments::default();
    let mut found = HashSet::with_capacity_and_hasher(ids.len(), Default::default());
    let out = &mut batch.body;
    // About what a row takes, so that the body is not copied as it grows.
    out.reserve(ids.len() * 512);
    while let Some(r) = rows.next()? {
        let id: i64 = r.get(0)?;
        let seq: i64 = r.get(n)?;
        let (boot, workload) = (r.get(n + 1)?, r.get(n + 2)?);
        let follows = r.get::<_, Option<bool>>(n + 3)?.unwrap_or(false);
        found.insert(id);
        fragments.read(tx, r.get(netns)?, boot, workload)?;
        // The host's columns: `hostname`, `machine_id`, `recorder`,
        // `boot_id`, `version`.
        let start = out.len();
        out.extend_from_slice(&opening);
        out.extend_from_slice(&fragments.boots[&boot]);
        let version = out.len();
        shipped::int(out, seq);
        let id_at = out.len();
        let (mut times, mut rest) = (0, 0);
        for (i, slot) in slots.iter().enumerate() {
            if i == last_seen {
                times = out.len();
            } else if i == after_times {
                rest = out.len();
            }
            match *slot {
                Slot::Namespace => out.extend_from_slice(&fragments.namespaces[&r.get(i)?]),
                Slot::Skip => {}
                Slot::LastSeen => {
                    let own: i64 = r.get(i)?;
                    let open_seen = fragments.open_seen[&boot].filter(|_| follows);
                    shipped::int(out, open_seen.map_or(own, |seen| own.max(seen)));
                }
                Slot::Value(..) => slot.write(out, r.get_ref(i)?, i)?,
            }
        }
        let owned = owners.remove(&id).unwrap_or_default();
        shipped::numbers(out, owned.iter().map(|o| o.0));
        shipped::numbers(out, owned.iter().map(|o| o.1));
        shipped::texts(out, owned.iter().map(|o| o.2.as_str()));
        let changes = states.remove(&id).unwrap_or_default();
        shipped::numbers(out, changes.iter().map(|c| c.0));
        shipped::texts(out, changes.iter().map(|c| codes::STATE.name(c.1)));
        match workload {
            Some(w) => out.extend_from_slice(&fragments.workloads[&w]),
            None => out.extend_from_slice(&NO_WORKLOAD),
        }
        let closed = r.get_ref(closed_at)? != ValueRef::Null;
        let acked = acked_changes.get(&id).map_or(&[][..], Vec::as_slice);
        for (at, state) in changes.into_iter().filter(|c| !acked.contains(c)) {
            let change = &mut batch.changes;
            change.extend_from_slice(&opening);
            change.extend_from_slice(&fragments.boots[&boot]);
            shipped::int(change, id);
            shipped::int(change, at);
            shipped::text(change, Type::String, &codes::STATE.name(state));
            batch.change_rows += 1;
            batch.sent_changes.push((id, at, state));
        }
        if closed {
            batch.closed.push(id);
        } else if r.get_ref(kind)? == time_wait {
            let end = out.len();
            let (key, version, id) = ((seq, id), version, id_at);
            #[rustfmt::skip]
            batch.kept.push(Span { key, start, version, id, times, rest, end });
        }
        batch.rows += 1;
    }
    Ok((batch, found))
}

/// The rows `keys` closed, each made from the row `kept` keeps and the
/// times its close wrote (none read from the file): their ids.
pub(super) fn write_closed(
    batch: &mut Batch,
    kept: &Kept,
    keys: &[(i64, i64)],
) -> rusqlite::Result<Vec<i64>> {
    let at = |column: &str| {
        COLUMN_NAMES
            .iter()
            .position(|c| *c == column)
            .expect("a column")
    };
    let (netns, last_seen) = (at("netns"), at("last_seen"));
    let slots = Slot::of_columns(netns, last_seen);
    let (closed_at, closed_by) = (at("closed_at"), at("closed_by"));
    debug_assert_eq!((closed_at, closed_by), (last_seen + 1, last_seen + 2));
    let mut written = Vec::with_capacity(keys.len());
    for &(seq, id) in keys {
        let Some((row, c)) = kept.closed((seq, id)) else {
            continue;
        };
        let out = &mut batch.body;
        out.extend_from_slice(&row.head);
        shipped::int(out, seq);
        out.extend_from_slice(&row.bytes[..row.ids]);
        // A closed row's last sighting is its own.
        shipped::int(out, c.last_seen);
        slots[closed_at].write(out, ValueRef::Integer(c.closed_at), closed_at)?;
        slots[closed_by].write(out, ValueRef::Integer(c.closed_by), closed_by)?;
        out.extend_from_slice(&row.bytes[row.ids..]);
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

/// The rows of `sql` (its first column a connection's id) by connection,
/// each as `item` reads it, in order.
fn by_connection<T: Ord>(
    tx: &Transaction<'_>,
    sql: &str,
    ids: &Array,
    item: impl Fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<HashMap<i64, Vec<T>>> {
    let mut stmt = tx.prepare_cached(sql)?;
    let mut rows = stmt.query([ids])?;
    let mut out: HashMap<i64, Vec<T>> = HashMap::default();
    while let Some(r) = rows.next()? {
        out.entry(r.get(0)?).or_default().push(item(r)?);
    }
    for items in out.values_mut() {
        items.sort_unstable();
    }
    Ok(out)
}
