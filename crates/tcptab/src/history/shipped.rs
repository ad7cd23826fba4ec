//! The store's rows as the shipper writes them: the columns of the
//! store's tables with their types (the one list the tables are made
//! from, [`crate::fleet::Schema`], and the rows are written to), and
//! ClickHouse's `RowBinary` encoding, written value by value for the
//! shipper ([`super::Outbox`]): the host's opening of every row, the
//! values a batch's rows share, and the rest of each row.
//!
//! `RowBinary` is each column's value in the insert's order, without
//! names: integers as 8 bytes little-endian, a string as its length
//! (LEB128) and its bytes, a `Nullable` as one byte (1: NULL) then the
//! value unless NULL, an `Array` as its length then its items.

use rusqlite::types::ValueRef;
use rusqlite::{OptionalExtension, Transaction};

use super::HashMap;

/// A column's type in the store, as the rows are written in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    Int64,
    UInt64,
    String,
    NullableInt64,
    NullableString,
    ArrayInt64,
    ArrayString,
}

impl Type {
    /// As the store's DDL says it.
    pub fn sql(self) -> &'static str {
        match self {
            Type::Int64 => "Int64",
            Type::UInt64 => "UInt64",
            Type::String => "String",
            Type::NullableInt64 => "Nullable(Int64)",
            Type::NullableString => "Nullable(String)",
            Type::ArrayInt64 => "Array(Int64)",
            Type::ArrayString => "Array(String)",
        }
    }
}

use Type::{
    ArrayInt64 as ArrI, ArrayString as ArrS, Int64 as I, NullableInt64 as NI, NullableString as NS,
    String as S,
};

/// A table's columns, in the order of its DDL and of the rows written.
pub type Columns = &'static [(&'static str, Type)];

/// Who recorded a row (the machine, the history file, the boot), and the
/// row's version: the first columns of `connections`.
pub const HOST_COLUMNS: Columns = &[
    ("hostname", S),
    ("machine_id", S),
    ("recorder", S),
    ("boot_id", S),
    ("version", Type::UInt64),
];

/// The columns of `connections` after [`HOST_COLUMNS`]: the history
/// file's ([`super::COLUMN_NAMES`], same names and order), then the
/// owners, the states and the workload ([`WORKLOAD_COLUMNS`]).
pub const CONNECTION_COLUMNS: Columns = &[
    ("id", I),
    ("cookie", NI),
    ("first_seen", I),
    ("last_seen", I),
    ("closed_at", NI),
    ("closed_by", NS),
    ("family", S),
    ("kind", S),
    ("state", S),
    ("local_address", S),
    ("local_port", I),
    ("remote_address", S),
    ("remote_port", I),
    ("tx_queue", I),
    ("rx_queue", I),
    ("timer", S),
    ("timer_ms", I),
    ("retransmits", I),
    ("uid", I),
    ("probes", I),
    ("inode", I),
    ("source", S),
    ("interface", NI),
    ("backlog_limit", NI),
    ("congestion_algorithm", NS),
    ("shutdown", NI),
    ("v6only", NI),
    ("owner_status", NS),
    ("bytes_acked", NI),
    ("bytes_received", NI),
    ("total_retrans", NI),
    ("rtt_us", NI),
    ("netns", I),
    ("netns_name", NS),
    ("first_state", S),
    ("owner_pids", ArrI),
    ("owner_fds", ArrI),
    ("owner_commands", ArrS),
    ("state_times", ArrI),
    ("states", ArrS),
    ("workload_cgroup", NS),
    ("unit", NS),
    ("slice", NS),
    ("runtime", NS),
    ("container_id", NS),
    ("container_name", NS),
    ("pod_namespace", NS),
    ("pod_name", NS),
    ("pod_uid", NS),
];

/// The workload columns a shipped row carries, last.
pub const WORKLOAD_COLUMNS: [&str; 9] = [
    "workload_cgroup",
    "unit",
    "slice",
    "runtime",
    "container_id",
    "container_name",
    "pod_namespace",
    "pod_name",
    "pod_uid",
];

/// The columns a row of `table` is written in (None: not a table of
/// the store's).
pub fn table_columns(table: &str) -> Option<Vec<(&'static str, Type)>> {
    Some(match table {
        "connections" => HOST_COLUMNS
            .iter()
            .chain(CONNECTION_COLUMNS)
            .copied()
            .collect(),
        "state_changes" => STATE_CHANGE_COLUMNS.to_vec(),
        "polls" => POLL_COLUMNS.to_vec(),
        _ => return None,
    })
}

/// The columns of `state_changes`.
pub const STATE_CHANGE_COLUMNS: Columns = &[
    ("hostname", S),
    ("machine_id", S),
    ("recorder", S),
    ("boot_id", S),
    ("connection", I),
    ("at", I),
    ("state", S),
];

/// The columns of `polls`.
pub const POLL_COLUMNS: Columns = &[
    ("hostname", S),
    ("machine_id", S),
    ("recorder", S),
    ("boot_id", S),
    ("id", I),
    ("at", I),
    ("source", S),
    ("namespaces", I),
    ("sockets", I),
    ("opened", I),
    ("closed", I),
    ("notifications", I),
    ("took_us", I),
    ("not_seen", NS),
    ("interval_ms", NI),
];

/// Who recorded the rows.
pub(super) struct Host {
    pub(super) hostname: String,
    pub(super) machine_id: String,
    pub(super) recorder: String,
}

impl Host {
    /// The opening of every row (`hostname`, `machine_id`, `recorder`),
    /// written once a batch.
    pub(super) fn opening(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for text in [&self.hostname, &self.machine_id, &self.recorder] {
            string(&mut out, text.as_bytes());
        }
        out
    }
}

/// `n` as LEB128, the lengths' encoding.
fn varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push(n as u8 | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

pub(super) fn string(out: &mut Vec<u8>, bytes: &[u8]) {
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

pub(super) fn int(out: &mut Vec<u8>, n: i64) {
    out.extend_from_slice(&n.to_le_bytes());
}

/// A column's value, of the column `column` (its index and name, said
/// when the file holds a value the column cannot take: a text where a
/// number goes). NULL in a column that is not `Nullable` is its default
/// (0, or the empty string).
#[inline]
pub(super) fn value(
    out: &mut Vec<u8>,
    ty: Type,
    v: ValueRef<'_>,
    column: (usize, &str),
) -> rusqlite::Result<()> {
    let ty = match ty {
        Type::NullableInt64 | Type::NullableString if v == ValueRef::Null => {
            out.push(1);
            return Ok(());
        }
        Type::NullableInt64 => {
            out.push(0);
            Type::Int64
        }
        Type::NullableString => {
            out.push(0);
            Type::String
        }
        ty => ty,
    };
    match (ty, v) {
        (Type::Int64 | Type::UInt64, ValueRef::Integer(n)) => int(out, n),
        (Type::Int64 | Type::UInt64, ValueRef::Real(f)) => int(out, f as i64),
        (Type::Int64 | Type::UInt64, ValueRef::Null) => int(out, 0),
        (Type::String, ValueRef::Text(t) | ValueRef::Blob(t)) => string(out, t),
        (Type::String, ValueRef::Integer(n)) => {
            string(out, itoa::Buffer::new().format(n).as_bytes())
        }
        (Type::String, ValueRef::Real(f)) => string(out, f.to_string().as_bytes()),
        (Type::String, ValueRef::Null) => string(out, b""),
        (_, v) => {
            return Err(rusqlite::Error::InvalidColumnType(
                column.0,
                column.1.to_string(),
                v.data_type(),
            ))
        }
    }
    Ok(())
}

/// A text in a column of type `ty` (a `String` or a `Nullable(String)`).
pub(super) fn text(out: &mut Vec<u8>, ty: Type, text: &str) {
    if ty == Type::NullableString {
        out.push(0);
    }
    string(out, text.as_bytes());
}

/// A list of numbers.
pub(super) fn numbers(out: &mut Vec<u8>, items: impl ExactSizeIterator<Item = i64>) {
    varint(out, items.len() as u64);
    for n in items {
        int(out, n);
    }
}

/// A list of texts.
pub(super) fn texts<T: AsRef<str>>(out: &mut Vec<u8>, items: impl ExactSizeIterator<Item = T>) {
    varint(out, items.len() as u64);
    for t in items {
        string(out, t.as_ref().as_bytes());
    }
}

/// The values a batch's rows share, written once a batch and copied into
/// each row that has them (not joined and written again for every row):
/// a boot's `boot_id`, a namespace's `netns` and `netns_name`, a
/// workload's [`WORKLOAD_COLUMNS`] (a row of no workload: [`NO_WORKLOAD`]).
/// One batch's (a namespace may be named later).
#[derive(Default)]
pub(super) struct Fragments {
    pub(super) boots: HashMap<i64, Vec<u8>>,
    /// Each boot's `open_seen` (the last poll that found its open rows
    /// that follow, [`super::columns::LAST_SEEN`]), as the batch's
    /// snapshot of the file says it.
    pub(super) open_seen: HashMap<i64, Option<i64>>,
    pub(super) namespaces: HashMap<i64, Vec<u8>>,
    pub(super) workloads: HashMap<i64, Vec<u8>>,
}

/// The workload columns of a row of no workload: each NULL.
pub(super) const NO_WORKLOAD: [u8; 9] = [1; 9];

impl Fragments {
    /// Those of one row, read unless read before.
    pub(super) fn read(
        &mut self,
        tx: &Transaction<'_>,
        netns: i64,
        boot: i64,
        workload: Option<i64>,
    ) -> rusqlite::Result<()> {
        fragment(
            &mut self.namespaces,
            tx,
            netns,
            "SELECT inode, name FROM namespaces WHERE id = ?1",
            &[("netns", Type::Int64), ("netns_name", Type::NullableString)],
        )?;
        fragment(
            &mut self.boots,
            tx,
            boot,
            "SELECT boot_id FROM boots WHERE id = ?1",
            &[("boot_id", Type::String)],
        )?;
        if let std::collections::hash_map::Entry::Vacant(e) = self.open_seen.entry(boot) {
            let seen = tx
                .prepare_cached("SELECT open_seen FROM boots WHERE id = ?1")?
                .query_row([boot], |r| r.get(0))
                .optional()?
                .flatten();
            e.insert(seen);
        }
        if let Some(w) = workload {
            let sql = "SELECT cgroup, unit, slice, runtime, container_id, container_name, pod_namespace, pod_name, pod_uid
                       FROM workloads WHERE id = ?1";
            let columns = &CONNECTION_COLUMNS[CONNECTION_COLUMNS.len() - WORKLOAD_COLUMNS.len()..];
            fragment(&mut self.workloads, tx, w, sql, columns)?;
        }
        Ok(())
    }
}

/// The values of `columns` in the row `sql` finds for `id` (their
/// defaults if it finds none), into `made` unless there.
fn fragment(
    made: &mut HashMap<i64, Vec<u8>>,
    tx: &Transaction<'_>,
    id: i64,
    sql: &str,
    columns: &[(&str, Type)],
) -> rusqlite::Result<()> {
    if made.contains_key(&id) {
        return Ok(());
    }
    let mut out = Vec::new();
    let found = tx
        .prepare_cached(sql)?
        .query_row([id], |r| {
            for (i, (name, ty)) in columns.iter().enumerate() {
                value(&mut out, *ty, r.get_ref(i)?, (i, name))?;
            }
            Ok(())
        })
        .optional()?;
    if found.is_none() {
        out.clear();
        for (i, (name, ty)) in columns.iter().enumerate() {
            value(&mut out, *ty, ValueRef::Null, (i, name))?;
        }
    }
    made.insert(id, out);
    Ok(())
}

/// Rows written in `RowBinary` read back, each as a JSON object of its
/// columns (NULLs and empty lists left out), one a line: what the tests
/// look into. None if the bytes are not rows of `columns`.
#[cfg(test)]
pub(super) fn decoded(columns: &[(&str, Type)], mut bytes: &[u8]) -> Option<String> {
    use serde_json::{Map, Value};
    fn take<'b>(bytes: &mut &'b [u8], n: usize) -> Option<&'b [u8]> {
        let (head, rest) = (bytes.get(..n)?, bytes.get(n..)?);
        *bytes = rest;
        Some(head)
    }
    fn len(bytes: &mut &[u8]) -> Option<usize> {
        let (mut n, mut shift) = (0u64, 0);
        loop {
            let b = take(bytes, 1)?[0];
            n |= u64::from(b & 0x7f) << shift;
            shift += 7;
            if b < 0x80 {
                return usize::try_from(n).ok();
            }
        }
    }
    fn int(bytes: &mut &[u8]) -> Option<i64> {
        Some(i64::from_le_bytes(take(bytes, 8)?.try_into().ok()?))
    }
    fn text(bytes: &mut &[u8]) -> Option<String> {
        let n = len(bytes)?;
        String::from_utf8(take(bytes, n)?.to_vec()).ok()
    }
    let mut out = String::new();
    while !bytes.is_empty() {
        let mut row = Map::new();
        for (name, ty) in columns {
            let v = match ty {
                Type::Int64 | Type::UInt64 => Value::from(int(&mut bytes)?),
                Type::String => Value::from(text(&mut bytes)?),
                Type::NullableInt64 | Type::NullableString => match take(&mut bytes, 1)?[0] {
                    1 => continue,
                    0 if *ty == Type::NullableInt64 => Value::from(int(&mut bytes)?),
                    0 => Value::from(text(&mut bytes)?),
                    _ => return None,
                },
                Type::ArrayInt64 | Type::ArrayString => {
                    let n = len(&mut bytes)?;
                    let items: Option<Vec<Value>> = (0..n)
                        .map(|_| match ty {
                            Type::ArrayInt64 => int(&mut bytes).map(Value::from),
                            _ => text(&mut bytes).map(Value::from),
                        })
                        .collect();
                    match items? {
                        items if items.is_empty() => continue,
                        items => Value::from(items),
                    }
                }
            };
            row.insert(name.to_string(), v);
        }
        out.push_str(&Value::Object(row).to_string());
        out.push('\n');
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::types::Type as SqlType;

    #[test]
    fn a_row_reads_back_as_written_whatever_its_text_holds() {
        let host = Host {
            hostname: "db-1".into(),
            machine_id: "a\"b\\c".into(),
            recorder: "x\ny\u{1}é".into(),
        };
        const COLUMNS: Columns = &[
            ("hostname", S),
            ("machine_id", S),
            ("recorder", S),
            ("n", NI),
            ("i", I),
            ("v", Type::UInt64),
            ("t", NS),
            ("e", S),
            ("pids", ArrI),
            ("none", ArrI),
            ("commands", ArrS),
            ("name", S),
        ];
        let mut out = host.opening();
        let long = "l".repeat(300);
        for (i, (v, ty)) in [
            (ValueRef::Null, NI),
            (ValueRef::Integer(-3), I),
            (ValueRef::Integer(7), Type::UInt64),
            (ValueRef::Text(long.as_bytes()), NS),
            (ValueRef::Null, S),
        ]
        .into_iter()
        .enumerate()
        {
            value(&mut out, ty, v, (i, "c")).unwrap();
        }
        numbers(&mut out, [1, 22].into_iter());
        numbers(&mut out, std::iter::empty());
        texts(&mut out, ["nginx", "a \"q\""].into_iter());
        text(&mut out, S, "ESTABLISHED");
        let rows = decoded(COLUMNS, &out).unwrap();
        let v: serde_json::Value = serde_json::from_str(&rows).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "hostname": "db-1", "machine_id": "a\"b\\c", "recorder": "x\ny\u{1}é",
                "i": -3, "v": 7, "t": long, "e": "", "pids": [1, 22],
                "commands": ["nginx", "a \"q\""], "name": "ESTABLISHED",
            })
        );
        // A byte short is not a row.
        assert_eq!(decoded(COLUMNS, &out[..out.len() - 1]), None);
    }

    #[test]
    fn a_text_where_a_number_goes_is_an_error_naming_the_column() {
        let mut out = Vec::new();
        let e = value(&mut out, I, ValueRef::Text(b"x"), (4, "local_port")).unwrap_err();
        assert!(e.to_string().contains("local_port"), "{e}");
        assert!(matches!(
            e,
            rusqlite::Error::InvalidColumnType(4, _, SqlType::Text)
        ));
    }
}
