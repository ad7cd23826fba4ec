//! The store's tables (`tcptab schema clickhouse`): `connections`, one row
//! per connection and version, `state_changes`, one row per change of
//! state of a connection, and `polls`, per recorder. docs/fleet.md
//! explains them.

use std::time::Duration;

/// The columns of `connections` after the host's: the history file's
/// ([`crate::history::COLUMN_NAMES`], same names and order) with their
/// ClickHouse types, then the owners, states and workload.
const CONNECTION_COLUMNS: &str = "
    id                   Int64,
    cookie               Nullable(Int64),
    first_seen           Int64,
    last_seen            Int64,
    closed_at            Nullable(Int64),
    closed_by            Nullable(String),
    family               String,
    kind                 String,
    state                String,
    local_address        String,
    local_port           Int64,
    remote_address       String,
    remote_port          Int64,
    tx_queue             Int64,
    rx_queue             Int64,
    timer                String,
    timer_ms             Int64,
    retransmits          Int64,
    uid                  Int64,
    probes               Int64,
    inode                Int64,
    source               String,
    interface            Nullable(Int64),
    backlog_limit        Nullable(Int64),
    congestion_algorithm Nullable(String),
    shutdown             Nullable(Int64),
    v6only               Nullable(Int64),
    owner_status         Nullable(String),
    bytes_acked          Nullable(Int64),
    bytes_received       Nullable(Int64),
    total_retrans        Nullable(Int64),
    rtt_us               Nullable(Int64),
    netns                Int64,
    netns_name           Nullable(String),
    first_state          String,
    owner_pids           Array(Int64),
    owner_fds            Array(Int64),
    owner_commands       Array(String),
    state_times          Array(Int64),
    states               Array(String),
    workload_cgroup      Nullable(String),
    unit                 Nullable(String),
    slice                Nullable(String),
    runtime              Nullable(String),
    container_id         Nullable(String),
    container_name       Nullable(String),
    pod_namespace        Nullable(String),
    pod_name             Nullable(String),
    pod_uid              Nullable(String)";

/// Who recorded a row: the machine, the history file (`recorder`, a
/// random id kept in the file: two recorders on one machine are two), the
/// boot; and the row's version.
const HOST_COLUMNS: &str = "
    hostname             String,
    machine_id           String,
    recorder             String,
    boot_id              String,
    version              UInt64,";

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
                "CREATE TABLE IF NOT EXISTS {db}.connections\n({HOST_COLUMNS}{CONNECTION_COLUMNS}\n)\n\
                 ENGINE = ReplacingMergeTree(version)\n\
                 PARTITION BY toYYYYMMDD(toDateTime(intDiv(first_seen, 1000)))\n\
                 ORDER BY (intDiv(first_seen, {BUCKET_MS}), remote_address, remote_port, hostname, machine_id, recorder, id){}",
                ttl("last_seen")
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {db}.state_changes\n(\n    hostname String,\n    machine_id String,\n    recorder String,\n    boot_id String,\n    connection Int64,\n    at Int64,\n    state String\n)\n\
                 ENGINE = ReplacingMergeTree\n\
                 PARTITION BY toYYYYMMDD(toDateTime(intDiv(at, 1000)))\n\
                 ORDER BY (intDiv(at, {BUCKET_MS}), state, hostname, machine_id, recorder, connection, at){}",
                ttl("at")
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {db}.polls\n(\n    hostname String,\n    machine_id String,\n    recorder String,\n    boot_id String,\n    id Int64,\n    at Int64,\n    source String,\n    namespaces Int64,\n    sockets Int64,\n    opened Int64,\n    closed Int64,\n    notifications Int64,\n    took_us Int64,\n    not_seen Nullable(String),\n    interval_ms Nullable(Int64)\n)\n\
                 ENGINE = ReplacingMergeTree\n\
                 PARTITION BY toYYYYMMDD(toDateTime(intDiv(at, 1000)))\n\
                 ORDER BY (machine_id, recorder, id){}",
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
        let names: Vec<&str> = CONNECTION_COLUMNS
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        let file = crate::history::COLUMN_NAMES;
        assert_eq!(&names[..file.len()], &file[..]);
        assert_eq!(
            &names[file.len() + 5..],
            &crate::history::WORKLOAD_COLUMNS[..]
        );
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
