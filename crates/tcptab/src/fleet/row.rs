//! One line of the store's answer (`JSONEachRow`) as the history's
//! [`Columns`]: the columns read back, and each line's members borrowed in
//! the order the statement named them, each value decoded when asked.

use serde_json::value::RawValue;
use serde_json::Value;

use crate::history::{Columns, RowError, COLUMN_NAMES, WORKLOAD_COLUMNS};

/// The columns read back after [`COLUMN_NAMES`]: these, the workload's
/// ([`WORKLOAD_COLUMNS`]), then [`HOST`].
const OWNERS_AND_STATES: [&str; 5] = [
    "owner_pids",
    "owner_fds",
    "owner_commands",
    "state_times",
    "states",
];

/// The host's columns, read back last.
const HOST: [&str; 4] = ["hostname", "machine_id", "boot_id", "recorder"];

/// Every column after [`COLUMN_NAMES`], in the order read back.
pub(super) fn extra_columns() -> impl Iterator<Item = &'static str> {
    OWNERS_AND_STATES
        .iter()
        .chain(&WORKLOAD_COLUMNS)
        .chain(&HOST)
        .copied()
}

/// One JSONEachRow line as [`Columns`]: its members in the order the
/// statement named them, borrowed from the line, each decoded when asked
/// (a map of owned keys and values cost more than all the rest).
pub(super) struct JsonRow<'a> {
    members: Vec<(&'a str, &'a RawValue)>,
}

impl<'a> JsonRow<'a> {
    pub(super) fn parse(line: &'a str) -> serde_json::Result<JsonRow<'a>> {
        let Members(members) = serde_json::from_str(line)?;
        Ok(JsonRow { members })
    }

    /// The member `name`, looked for first at `place` (where the statement
    /// put it).
    fn member(&self, place: usize, name: &str) -> Option<&'a RawValue> {
        match self.members.get(place) {
            Some((key, value)) if *key == name => Some(value),
            _ => self
                .members
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, v)| *v),
        }
    }

    fn value(&self, i: usize) -> Option<&'a RawValue> {
        self.member(i, COLUMN_NAMES[i])
    }

    /// One of the columns after [`COLUMN_NAMES`] ([`extra_columns`],
    /// then `last_poll`).
    fn extra(&self, name: &str) -> Option<&'a RawValue> {
        let place = extra_columns()
            .position(|n| n == name)
            .unwrap_or_else(|| extra_columns().count());
        self.member(COLUMN_NAMES.len() + place, name)
    }

    pub(super) fn text_of(&self, name: &str) -> Option<String> {
        self.extra(name).and_then(raw_text)
    }

    pub(super) fn int_of(&self, name: &str) -> Option<i64> {
        self.extra(name).and_then(raw_int)
    }

    pub(super) fn list(&self, name: &str) -> Vec<Value> {
        self.extra(name)
            .and_then(|raw| serde_json::from_str(raw.get()).ok())
            .unwrap_or_default()
    }

    fn bad(&self, i: usize, v: &RawValue) -> RowError {
        RowError::Value {
            table: "connections",
            id: self.member(0, "id").and_then(raw_int).unwrap_or(0),
            column: COLUMN_NAMES[i],
            value: v.get().to_string(),
        }
    }
}

/// A JSON object's members, borrowed (its keys hold no escapes).
struct Members<'a>(Vec<(&'a str, &'a RawValue)>);

impl<'de> serde::Deserialize<'de> for Members<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Members<'de>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut map: M,
            ) -> Result<Members<'de>, M::Error> {
                let mut members = Vec::with_capacity(64);
                while let Some(member) = map.next_entry::<&'de str, &'de RawValue>()? {
                    members.push(member);
                }
                Ok(Members(members))
            }
        }
        d.deserialize_map(Visit)
    }
}

/// A string member (None: null, or not a string).
fn raw_text(raw: &RawValue) -> Option<String> {
    let s = raw.get();
    match s.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        Some(inner) if !inner.contains('\\') => Some(inner.to_string()),
        Some(_) => serde_json::from_str(s).ok(),
        None => None,
    }
}

/// An integer member, quoted or not (64-bit integers come quoted from
/// some servers); None: null, or not an integer.
fn raw_int(raw: &RawValue) -> Option<i64> {
    let s = raw.get();
    s.strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(s)
        .parse()
        .ok()
}

pub(super) fn json_int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        // 64-bit integers come quoted from some servers.
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

impl Columns for JsonRow<'_> {
    fn text(&self, i: usize) -> Result<Option<String>, RowError> {
        match self.value(i) {
            None => Ok(None),
            Some(v) if v.get() == "null" => Ok(None),
            Some(v) => raw_text(v).map(Some).ok_or_else(|| self.bad(i, v)),
        }
    }

    fn int(&self, i: usize) -> Result<Option<i64>, RowError> {
        match self.value(i) {
            None => Ok(None),
            Some(v) if v.get() == "null" => Ok(None),
            Some(v) => raw_int(v).map(Some).ok_or_else(|| self.bad(i, v)),
        }
    }
}

/// A row that cannot be decoded, as one line.
pub(super) fn row_error(e: RowError) -> String {
    match e {
        RowError::Value {
            id, column, value, ..
        } => {
            format!("connections row {id}, column {column}: {value}")
        }
        RowError::Sqlite(e) => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_is_read_by_place_or_by_name_with_its_escapes_nulls_and_quotes() {
        // In the statement's order: found at its place.
        let line =
            r#"{"id":"7","cookie":null,"first_seen":1800000000000,"local_address":"a\"b\\c"}"#;
        let row = JsonRow::parse(line).unwrap();
        assert_eq!(row.int(0).unwrap(), Some(7));
        assert_eq!(row.int(1).unwrap(), None);
        assert_eq!(row.int(2).unwrap(), Some(1_800_000_000_000));
        let local = COLUMN_NAMES
            .iter()
            .position(|c| *c == "local_address")
            .unwrap();
        assert_eq!(row.text(local).unwrap().as_deref(), Some("a\"b\\c"));
        // Elsewhere: found by its name; absent: null.
        let line = r#"{"hostname":"h\u00e9","first_seen":"12","last_poll":5}"#;
        let row = JsonRow::parse(line).unwrap();
        assert_eq!(row.int(2).unwrap(), Some(12));
        assert_eq!(row.int(0).unwrap(), None);
        assert_eq!(row.text_of("hostname").as_deref(), Some("h\u{e9}"));
        assert_eq!(row.int_of("last_poll"), Some(5));
        // A value of the wrong kind names its column.
        let row = JsonRow::parse(r#"{"id":1,"cookie":"x"}"#).unwrap();
        let e = row_error(row.int(1).unwrap_err());
        assert_eq!(e, "connections row 1, column cookie: \"x\"");
        assert!(JsonRow::parse("[1]").is_err());
    }
}
