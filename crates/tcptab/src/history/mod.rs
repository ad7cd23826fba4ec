//! The history database: what a recorder saw of the TCP table, poll after
//! poll, in one SQLite file (WAL mode), and the questions asked of it
//! afterwards ("what was open at 03:12, and who held it?").
//!
//! - [`Writer`] keeps one row per connection, keyed by boot, network
//!   namespace and socket cookie (the address tuple repeats across
//!   namespaces and over time); its state changes; listeners' accept queues
//!   per poll; one row per poll saying what was read and what could not be
//!   seen; and deletes what is older than the retention window as it goes.
//!   Each poll is one transaction: a recorder killed at any moment loses at
//!   most the poll it was writing.
//! - [`Reader`] answers for a moment or an interval with [`Lived`]
//!   connections, which become the common socket record
//!   ([`crate::record::Record`]) plus when they were seen and their final counters.
//!
//! The tables are documented in `docs/history.md` of the repository, for
//! people who query the file with `sqlite3` or DuckDB directly. Times are
//! integers, milliseconds since the Unix epoch ([`crate::time`]).

#[macro_use]
mod bind;
mod codes;
mod columns;
mod outbox;
mod read;
mod rows;
mod session;
mod shipped;
mod write;

use std::path::{Path, PathBuf};

pub use columns::{lived, Columns, Lived, RowError, COLUMN_NAMES};
#[cfg(feature = "fleet")]
pub(crate) use columns::{set_state, states_during};
pub use outbox::{Batch, Feed, Outbox, Waiting};
pub use read::{Gap, Poll, Reader, Span, Window};
pub use session::{PollOutcome, PollRecord};
pub use shipped::{table_columns, Type, WORKLOAD_COLUMNS};
pub use write::Writer;

/// The history's maps and sets, keyed by ids and names of its own (the
/// tracker's connection ids, the file's row ids, cgroup paths): hashed
/// fast (foldhash, seeded per map), not against attackers. They are
/// looked up for every event a transaction writes and every row a batch
/// ships.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
type HashSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

/// The database's `application_id` (`PRAGMA application_id`): "tcpt".
pub const APPLICATION_ID: i32 = 0x7463_7074;

/// The version of the tables (`PRAGMA user_version`). Raised when a table
/// or column changes meaning; a newer file is refused, not misread.
pub const VERSION: i32 = 6;

/// What makes a file of version `from` one of `from + 1`: version 2 adds
/// each poll's interval (gaps are found from it), version 3 each
/// connection's workload, version 4 the boot's `open_seen` and the rows'
/// `follows` (a poll writes when it saw the open rows once, not on each;
/// [`columns::LAST_SEEN`]), version 5 stores names as numbers behind views
/// of the old names ([`codes`]) and indexes short connections by their
/// spans, not in `lifetimes` ([`SHORT_MS`]), version 6 keeps what waits to
/// be shipped in each row's `changed` instead of an `outbox` table (whose
/// rows [`Writer::open`] moves there).
fn migration(from: i32) -> String {
    match from {
        1 => "ALTER TABLE polls ADD COLUMN interval_ms INTEGER;".into(),
        2 => format!("ALTER TABLE connections ADD COLUMN workload INTEGER; {WORKLOADS}"),
        3 => format!(
            "ALTER TABLE boots ADD COLUMN open_seen INTEGER;
             ALTER TABLE connections ADD COLUMN follows INTEGER; {SIGHTINGS}"
        ),
        4 => format!(
            "DROP INDEX connections_open; DROP INDEX connections_remote;
             {CONNECTION_TABLES} {rows} {SIGHTINGS}",
            rows = codes::from_version_4()
        ),
        5 => CHANGED.into(),
        _ => String::new(),
    }
}

/// The transaction that last changed each row, for the shipper
/// ([`outbox`]; version 6).
const CHANGED: &str = "ALTER TABLE connection_rows ADD COLUMN changed INTEGER NOT NULL DEFAULT 0;";

/// The tables of a new file, with their views.
fn schema() -> String {
    format!(
        "{SCHEMA} {CONNECTION_TABLES} {CHANGED} {views} {WORKLOADS} {SIGHTINGS}",
        views = codes::connections_view()
    )
}

/// Each connection's last sighting, as [`columns::LAST_SEEN`] says it
/// (version 4): what a query of the file reads instead of
/// `connections.last_seen` while a recorder writes it.
const SIGHTINGS: &str = concat!(
    "CREATE VIEW sightings (connection, last_seen) AS SELECT c.id, ",
    columns::last_seen_sql!(),
    " FROM connections c;"
);

/// The workloads connections were held by, one row per cgroup (version 3).
const WORKLOADS: &str = "CREATE TABLE workloads (
    id             INTEGER PRIMARY KEY,
    cgroup         TEXT NOT NULL UNIQUE,
    unit           TEXT,
    slice          TEXT,
    runtime        TEXT,
    container_id   TEXT,
    container_name TEXT,
    pod_namespace  TEXT,
    pod_name       TEXT,
    pod_uid        TEXT
) STRICT;";

/// What went wrong with a history file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: not a tcptab history database ({why})", path.display())]
    NotHistory { path: PathBuf, why: String },
    #[error("{}: history database version {found}, newer than this tcptab's {VERSION}", path.display())]
    Newer { path: PathBuf, found: i32 },
    #[error("{}: {}", path.display(), sqlite_message(error, path))]
    Sqlite {
        path: PathBuf,
        /// Not a `source`: its message is in this one's already.
        error: rusqlite::Error,
    },
    #[error("{}: {what}", path.display())]
    Io { path: PathBuf, what: String },
}

pub type Result<T> = std::result::Result<T, Error>;

/// SQLite's message once (rusqlite's Display repeats it with the code),
/// without the path it may end with (the error names it first).
fn sqlite_message(e: &rusqlite::Error, path: &Path) -> String {
    let message = match e {
        rusqlite::Error::SqliteFailure(_, Some(message)) => message.clone(),
        other => other.to_string(),
    };
    let suffix = format!(": {}", path.display());
    message
        .strip_suffix(&suffix)
        .map_or(message.clone(), str::to_string)
}

/// The tables, indexes and the lifetime index (an R*Tree of whole seconds,
/// rounded outwards, over which `--at` and `--between` search).
const SCHEMA: &str = "
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value ANY
) STRICT, WITHOUT ROWID;
CREATE TABLE boots (
    id         INTEGER PRIMARY KEY,
    boot_id    TEXT NOT NULL UNIQUE,
    first_seen INTEGER NOT NULL,
    open_seen  INTEGER
) STRICT;
CREATE TABLE namespaces (
    id         INTEGER PRIMARY KEY,
    boot       INTEGER NOT NULL REFERENCES boots (id),
    inode      INTEGER NOT NULL,
    name       TEXT,
    first_seen INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL,
    UNIQUE (boot, inode)
) STRICT;
CREATE TABLE polls (
    id            INTEGER PRIMARY KEY,
    at            INTEGER NOT NULL,
    boot          INTEGER NOT NULL REFERENCES boots (id),
    source        TEXT NOT NULL,
    namespaces    INTEGER NOT NULL,
    sockets       INTEGER NOT NULL,
    opened        INTEGER NOT NULL,
    closed        INTEGER NOT NULL,
    notifications INTEGER NOT NULL,
    took_us       INTEGER NOT NULL,
    not_seen      TEXT,
    interval_ms   INTEGER
) STRICT;
CREATE INDEX polls_at ON polls (at);
CREATE TABLE owners (
    connection INTEGER NOT NULL,
    pid        INTEGER NOT NULL,
    fd         INTEGER NOT NULL,
    command    TEXT NOT NULL,
    first_seen INTEGER NOT NULL,
    PRIMARY KEY (connection, pid, fd)
) STRICT, WITHOUT ROWID;
CREATE INDEX owners_pid ON owners (pid);
CREATE TABLE listen_queues (
    poll          INTEGER NOT NULL,
    connection    INTEGER NOT NULL,
    queued        INTEGER NOT NULL,
    backlog_limit INTEGER,
    PRIMARY KEY (poll, connection)
) STRICT, WITHOUT ROWID;
CREATE VIRTUAL TABLE lifetimes USING rtree_i32 (id, start_s, end_s);
";

/// The connections' tables (version 5): their names as numbers
/// ([`codes`]), `last_seen` and `closed_at` in ms after `first_seen` (a
/// few bytes, none for a connection closed where it was first seen), and
/// the spans of rows each transaction added.
const CONNECTION_TABLES: &str = "
CREATE TABLE connection_rows (
    id                   INTEGER PRIMARY KEY,
    boot                 INTEGER NOT NULL REFERENCES boots (id),
    netns                INTEGER NOT NULL REFERENCES namespaces (id),
    cookie               INTEGER,
    first_seen           INTEGER NOT NULL,
    last_seen            INTEGER NOT NULL,
    closed_at            INTEGER,
    closed_by            INTEGER,
    first_state          INTEGER NOT NULL,
    family               INTEGER NOT NULL,
    kind                 INTEGER NOT NULL,
    state                INTEGER NOT NULL,
    local_address        TEXT NOT NULL,
    local_port           INTEGER NOT NULL,
    remote_address       TEXT NOT NULL,
    remote_port          INTEGER NOT NULL,
    tx_queue             INTEGER NOT NULL,
    rx_queue             INTEGER NOT NULL,
    timer                INTEGER NOT NULL,
    timer_ms             INTEGER NOT NULL,
    retransmits          INTEGER NOT NULL,
    uid                  INTEGER NOT NULL,
    probes               INTEGER NOT NULL,
    inode                INTEGER NOT NULL,
    source               INTEGER NOT NULL,
    interface            INTEGER,
    backlog_limit        INTEGER,
    congestion_algorithm TEXT,
    shutdown             INTEGER,
    v6only               INTEGER,
    owner_status         INTEGER,
    bytes_acked          INTEGER,
    bytes_received       INTEGER,
    total_retrans        INTEGER,
    rtt_us               INTEGER,
    workload             INTEGER,
    follows              INTEGER
) STRICT;
CREATE INDEX connections_open ON connection_rows (boot, netns) WHERE closed_at IS NULL;
CREATE TABLE state_change_rows (
    connection INTEGER NOT NULL,
    at         INTEGER NOT NULL,
    state      INTEGER NOT NULL,
    PRIMARY KEY (connection, at, state)
) STRICT, WITHOUT ROWID;
CREATE TABLE spans (
    first_id       INTEGER PRIMARY KEY,
    last_id        INTEGER NOT NULL,
    first_seen_min INTEGER NOT NULL,
    first_seen_max INTEGER NOT NULL
) STRICT;
";

/// How long a connection lives at most to be found through its span
/// (`spans`) rather than the lifetime index (version 5): a connection
/// that ends later than this after its first sighting goes into
/// `lifetimes` when it ends. Longer than a TIME_WAIT (60 s) and the poll
/// that finds it gone, so that the churn of short connections, most of a
/// busy file, costs the index nothing.
pub(crate) const SHORT_MS: i64 = 180_000;

/// `end_s` of a connection still open: the R*Tree's largest value.
const OPEN_END: i64 = i32::MAX as i64;

/// The lifetime index counts seconds from 2020-01-01T00:00:00Z, so that its
/// 32-bit integers last until 2088.
const INDEX_EPOCH_MS: i64 = 1_577_836_800_000;

/// Seconds for the lifetime index, rounded down (starts) or up (ends): the
/// index finds a superset, the exact times in milliseconds are checked
/// after.
fn floor_s(ms: i64) -> i64 {
    (ms - INDEX_EPOCH_MS).div_euclid(1000)
}
fn ceil_s(ms: i64) -> i64 {
    -(INDEX_EPOCH_MS - ms).div_euclid(1000)
}

fn sqlite(path: &Path) -> impl Fn(rusqlite::Error) -> Error + '_ {
    move |error| Error::Sqlite {
        path: path.to_path_buf(),
        error,
    }
}

/// Check from its first bytes (the SQLite header: `header` holds what
/// the file has of its first 100) that `path` may be a tcptab history
/// database, before SQLite opens it: an SQLite file whose application id
/// is tcptab's, or is not yet in the file itself because it is still in
/// the write-ahead log beside it (a recorder killed before a checkpoint).
/// [`check`] says the rest once it is open.
fn check_header(header: &[u8], path: &Path) -> Result<()> {
    let not_history = |why: String| Error::NotHistory {
        path: path.to_path_buf(),
        why,
    };
    if header.is_empty() {
        return Err(not_history("an empty file".into()));
    }
    if header.len() < 100 || !header.starts_with(b"SQLite format 3\0") {
        return Err(not_history("not an SQLite file".into()));
    }
    let id = i32::from_be_bytes([header[68], header[69], header[70], header[71]]);
    let wal = Path::new(&format!("{}-wal", path.display())).exists();
    if id == APPLICATION_ID || wal {
        return Ok(());
    }
    Err(not_history(application(id)))
}

fn application(id: i32) -> String {
    if id == 0 {
        "an SQLite file without tcptab's application id".into()
    } else {
        format!("an SQLite file with application id {id:#x}")
    }
}

/// Check that `conn` (at `path`) is a tcptab history database this version
/// reads: its schema version.
fn check(conn: &rusqlite::Connection, path: &Path) -> Result<i32> {
    let not_history = |why: String| Error::NotHistory {
        path: path.to_path_buf(),
        why,
    };
    let id: i32 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(sqlite(path))?;
    if id != APPLICATION_ID {
        return Err(not_history(application(id)));
    }
    let version: i32 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(sqlite(path))?;
    if version > VERSION {
        return Err(Error::Newer {
            path: path.to_path_buf(),
            found: version,
        });
    }
    if version < 1 {
        return Err(not_history(format!("schema version {version}")));
    }
    Ok(version)
}

/// This boot's id (`/proc/sys/kernel/random/boot_id`).
fn boot_id() -> std::io::Result<String> {
    Ok(std::fs::read_to_string("/proc/sys/kernel/random/boot_id")?
        .trim()
        .to_string())
}

#[cfg(test)]
mod tests;
