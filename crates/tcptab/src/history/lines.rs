//! A store's rows as JSON lines (ClickHouse's `JSONEachRow`), written
//! member by member for the shipper ([`super::Outbox`]): the host's
//! opening of every line, the members a batch's rows share, and the
//! rest of each line. NULL members and empty lists are left out: the
//! store fills those columns with their defaults.

use std::collections::HashMap;

use rusqlite::types::ValueRef;
use rusqlite::{OptionalExtension, Transaction};
use serde_json::Value;

/// The workload columns a shipped row carries, after the connection's.
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

/// Who recorded the rows.
pub(super) struct Host {
    pub(super) hostname: String,
    pub(super) machine_id: String,
    pub(super) recorder: String,
}

impl Host {
    /// The opening of every line: `{"hostname":…,"machine_id":…,"recorder":…`,
    /// written once a batch.
    pub(super) fn opening(&self) -> String {
        let mut out = String::new();
        let mut line = Line::new(&mut out, "");
        line.text("hostname", &self.hostname);
        line.text("machine_id", &self.machine_id);
        line.text("recorder", &self.recorder);
        out
    }
}

/// One JSON object on one line, written member by member (no map built,
/// no allocation per member), after the batch's opening.
pub(super) struct Line<'a> {
    out: &'a mut String,
    first: bool,
}

impl<'a> Line<'a> {
    pub(super) fn new(out: &'a mut String, opening: &str) -> Line<'a> {
        out.push_str(opening);
        Line {
            out,
            first: opening.is_empty(),
        }
    }

    /// What goes before a member: the object's opening brace, or a comma.
    fn separate(&mut self) {
        self.out.push(if self.first { '{' } else { ',' });
        self.first = false;
    }

    fn key(&mut self, key: &str) {
        self.separate();
        self.out.push('"');
        self.out.push_str(key);
        self.out.push_str("\":");
    }

    pub(super) fn text(&mut self, key: &str, text: &str) {
        self.key(key);
        json_string(self.out, text);
    }

    /// A column's value, text escaped; NULL is left out (the store fills
    /// an omitted member with its column's default: NULL, or `[]`).
    pub(super) fn value(&mut self, key: &str, v: ValueRef<'_>) {
        match v {
            ValueRef::Null => {}
            ValueRef::Integer(i) => {
                self.key(key);
                self.out.push_str(itoa::Buffer::new().format(i));
            }
            ValueRef::Real(f) => {
                self.key(key);
                self.out.push_str(&Value::from(f).to_string());
            }
            ValueRef::Text(t) | ValueRef::Blob(t) => {
                self.key(key);
                json_string(self.out, &String::from_utf8_lossy(t));
            }
        }
    }

    /// Members written before (`"a":1,"b":"x"`, a [`Fragments`] entry);
    /// none when empty.
    pub(super) fn members(&mut self, members: &str) {
        if members.is_empty() {
            return;
        }
        self.separate();
        self.out.push_str(members);
    }

    /// A list of numbers; an empty one is left out (the store's default).
    pub(super) fn numbers(&mut self, key: &str, items: impl ExactSizeIterator<Item = i64>) {
        if items.len() == 0 {
            return;
        }
        self.key(key);
        self.out.push('[');
        let mut digits = itoa::Buffer::new();
        for (i, item) in items.enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            self.out.push_str(digits.format(item));
        }
        self.out.push(']');
    }

    /// A list of texts; an empty one is left out (the store's default).
    pub(super) fn texts<'t>(&mut self, key: &str, items: impl ExactSizeIterator<Item = &'t str>) {
        if items.len() == 0 {
            return;
        }
        self.key(key);
        self.out.push('[');
        for (i, item) in items.enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            json_string(self.out, item);
        }
        self.out.push(']');
    }

    /// The object's end (an object of no member is `{}`).
    pub(super) fn end(self) {
        if self.first {
            self.out.push('{');
        }
        self.out.push_str("}\n");
    }
}

/// `text` as a JSON string: as it is between quotes when nothing in it
/// needs escaping (addresses, states, names), else as serde_json writes it.
fn json_string(out: &mut String, text: &str) {
    if text.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push('"');
        out.push_str(text);
        out.push('"');
    } else {
        out.push_str(&Value::from(text).to_string());
    }
}

/// The members a batch's rows share, written once a batch and copied into
/// each line that has them (not joined and written again for every row):
/// a boot's `boot_id`, a namespace's `netns` and `netns_name`, a
/// workload's [`WORKLOAD_COLUMNS`]. One batch's (a namespace may be named
/// later); NULL members left out as [`Line::value`] does.
#[derive(Default)]
pub(super) struct Fragments {
    pub(super) boots: HashMap<i64, String>,
    pub(super) namespaces: HashMap<i64, String>,
    pub(super) workloads: HashMap<i64, String>,
}

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
            &["netns", "netns_name"],
        )?;
        fragment(
            &mut self.boots,
            tx,
            boot,
            "SELECT boot_id FROM boots WHERE id = ?1",
            &["boot_id"],
        )?;
        if let Some(w) = workload {
            let sql = "SELECT cgroup, unit, slice, runtime, container_id, container_name, pod_namespace, pod_name, pod_uid
                       FROM workloads WHERE id = ?1";
            fragment(&mut self.workloads, tx, w, sql, &WORKLOAD_COLUMNS)?;
        }
        Ok(())
    }
}

/// The members `names` of the row `sql` finds for `id` (none if it finds
/// none), into `made` unless there.
fn fragment(
    made: &mut HashMap<i64, String>,
    tx: &Transaction<'_>,
    id: i64,
    sql: &str,
    names: &[&str],
) -> rusqlite::Result<()> {
    if made.contains_key(&id) {
        return Ok(());
    }
    let mut out = String::new();
    tx.prepare_cached(sql)?
        .query_row([id], |r| {
            let mut line = Line::new(&mut out, "");
            for (i, name) in names.iter().enumerate() {
                line.value(name, r.get_ref(i)?);
            }
            Ok(())
        })
        .optional()?;
    // Members without the object's opening brace.
    made.insert(id, out.get(1..).unwrap_or_default().to_string());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_one_json_object_whatever_its_text_holds_nulls_left_out() {
        let host = Host {
            hostname: "db-1".into(),
            machine_id: "a\"b\\c".into(),
            recorder: "x\ny\u{1}é".into(),
        };
        let mut out = String::new();
        let mut line = Line::new(&mut out, &host.opening());
        line.value("n", ValueRef::Null);
        line.value("i", ValueRef::Integer(-3));
        line.members("");
        line.members("\"m\":1,\"o\":\"p\"");
        line.value("t", ValueRef::Text(b"10.0.0.1"));
        line.numbers("pids", [1, 22].into_iter());
        line.numbers("none", std::iter::empty());
        line.texts("commands", ["nginx", "a \"q\""].into_iter());
        line.end();
        assert!(out.ends_with("}\n") && out.matches('\n').count() == 1);
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "hostname": "db-1", "machine_id": "a\"b\\c", "recorder": "x\ny\u{1}é",
                "i": -3, "m": 1, "o": "p", "t": "10.0.0.1", "pids": [1, 22],
                "commands": ["nginx", "a \"q\""],
            })
        );
        // A line whose every member is left out is still an object.
        let mut empty = String::new();
        let mut line = Line::new(&mut empty, "");
        line.value("n", ValueRef::Null);
        line.end();
        assert_eq!(empty, "{}\n");
    }
}
