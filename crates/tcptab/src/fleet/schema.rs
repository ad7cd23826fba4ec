//! The store's tables (`tcptab schema clickhouse`): `connections`, one row
//! per connection and version, `state_changes`, one row per change of
//! state of a connection, and `polls`, per recorder. docs/fleet.md
//! explains them.

use std::time::Duration;

use crate::history::{table_columns, Type};

/// A table's columns as its DDL says them, one a line.
fn columns_sql(table: &str) -> String {
    let columns: Vec<(&str, Type)> = table_columns(table).expect("a table of the store");
    let lines: Vec<String> = columns
        .iter()
        .map(|(name, ty)| format!("    {name:<20} {}", ty.sql()))
        .collect();
    lines.join(",\n")
}

/// The time bucket that leads the order of `connections` (10 minutes):
/// the rows of one bucket are read together.
pub const BUCKET_MS: i64 = 600_000;

/// How the tables are made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schema {
    pub database: String,
    /// Rows older than this are deleted by the server (TTL) where it has
    /// TTL (19.6 and later); older servers keep everything, and their
    /// day partitions are dropped by hand (docs/fleet.md).
    pub retention: Option<Duration>,
    /// The server has `TTL` on tables.
    pub ttl: bool,
}

impl Schema {
    /// The statements that make the database and its tables, one per
    /// request (`IF NOT EXISTS`: running them again changes nothing).
    pub fn statements(&self) -> Vec<String> {
        let db = &self.database;
        let ttl = |column: &str| match (self.ttl, self.retention) {
            (true, Some(r)) => format!(
                "\nTTL toDateTime(intDiv({column}, 1000)) + INTERVAL {} SECOND",
                r.as_secs().max(1)
            ),
            _ => String::new(),
        };
        vec![
            format!("CREATE DATABASE IF NOT EXISTS {db}"),
            format!(
                "CREATE TABLE IF NOT EXISTS {db}.connections\n(\n{}\n)\n\
                 ENGINE = ReplacingMergeTree(version)\n\
                 PARTITION BY toYYYYMMDD(toDateTime(intDiv(first_seen, 1000)))\n\
                 ORDER BY (intDiv(first_seen, {BUCKET_MS}), remote_address, remote_port, hostname, machine_id, recorder, id){}",
                columns_sql("connections"),
                ttl("last_seen")
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {db}.state_changes\n(\n{}\n)\n\
                 ENGINE = ReplacingMergeTree\n\
                 PARTITION BY toYYYYMMDD(toDateTime(intDiv(at, 1000)))\n\
                 ORDER BY (intDiv(at, {BUCKET_MS}), state, hostname, machine_id, recorder, connection, at){}",
                columns_sql("state_changes"),
                ttl("at")
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {db}.polls\n(\n{}\n)\n\
                 ENGINE = ReplacingMergeTree\n\
                 PARTITION BY toYYYYMMDD(toDateTime(intDiv(at, 1000)))\n\
                 ORDER BY (machine_id, recorder, id){}",
                columns_sql("polls"),
                ttl("at")
            ),
        ]
    }
}

/// Whether a server of this version has table TTLs (19.6).
pub fn has_ttl((major, minor): (u32, u32)) -> bool {
    (major, minor) >= (19, 6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_columns_are_the_history_files_in_its_order() {
        let columns = table_columns("connections").unwrap();
        let names: Vec<&str> = columns.iter().map(|c| c.0).collect();
        let file = crate::history::COLUMN_NAMES;
        // After the host's five.
        assert_eq!(&names[5..5 + file.len()], &file[..]);
        assert_eq!(
            &names[names.len() - crate::history::WORKLOAD_COLUMNS.len()..],
            &crate::history::WORKLOAD_COLUMNS[..]
        );
        // Each column made once, in the DDL as it is written.
        let ddl = &Schema {
            database: "fleet".into(),
            retention: None,
            ttl: false,
        }
        .statements()[1];
        for name in &names {
            assert_eq!(ddl.matches(&format!("\n    {name} ")).count(), 1, "{name}");
        }
        assert!(ddl.contains("    congestion_algorithm Nullable(String),\n"));
    }

    #[test]
    fn ttl_only_where_the_server_has_it() {
        let mut s = Schema {
            database: "fleet".into(),
            retention: Some(Duration::from_secs(86_400)),
            ttl: false,
        };
        assert!(!s.statements().concat().contains("TTL"));
        s.ttl = true;
        assert!(s.statements()[1].contains("INTERVAL 86400 SECOND"));
        assert!(has_ttl((24, 8)) && !has_ttl((18, 16)));
    }
}
