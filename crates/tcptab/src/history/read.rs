//! The questions asked of a history database afterwards: [`Reader`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::{Connection, OpenFlags};

use super::columns::{
    lived, set_state, state_of, states_during, Lived, RowError, COLUMNS, COLUMNS_V3, LAST_SEEN,
};
use super::{ceil_s, floor_s, sqlite, Error, Result, SHORT_MS};
use crate::model::{Host, Owner, Owners, Workload};

/// Which connections to answer for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// Those open at this moment (ms since the Unix epoch).
    At(i64),
    /// Those that existed at any moment from the first time to the second.
    Between(i64, i64),
    /// Every connection recorded.
    All,
}

/// The time the recorder covered: its first and last poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Span {
    pub first_poll: i64,
    pub last_poll: i64,
    pub polls: u64,
}

/// One poll, as recorded: what was read and what could not be seen.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Poll {
    pub at: i64,
    pub source: String,
    pub sockets: u64,
    /// What could not be seen, one sentence per line (None: nothing).
    pub not_seen: Option<String>,
    /// The recorder's interval when it took the poll (None in a file of
    /// schema version 1).
    pub interval_ms: Option<i64>,
}

/// A time the recorder did not observe: two polls further apart than its
/// interval allows (it was stopped, the machine slept, the clock jumped).
/// What ended in it ended at an unknown moment after its last sighting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Gap {
    /// The poll before it and the poll after it.
    pub from: i64,
    pub to: i64,
}

/// Reads a history database (read-only).
#[derive(Debug)]
pub struct Reader {
    conn: Connection,
    path: PathBuf,
    version: i32,
    /// The `workloads` table, by id (read once: one row per cgroup).
    workloads: std::collections::HashMap<i64, Arc<Workload>>,
    /// The recording machine in each of its boots, by `boots.id`.
    hosts: std::collections::HashMap<i64, Arc<Host>>,
}

impl Reader {
    /// Open `path` for reading. A file that is not a tcptab history
    /// database is refused from its first 100 bytes, before SQLite opens
    /// it (so nothing is ever made beside another program's file); so is
    /// anything but a regular file (a FIFO would block).
    pub fn open(path: &Path) -> Result<Reader> {
        check_file(path)?;
        let conn = open_read_only(path)?;
        let version = super::check(&conn, path)?;
        let workloads = workloads(&conn).map_err(sqlite(path))?;
        let hosts = hosts(&conn).map_err(sqlite(path))?;
        Ok(Reader {
            conn,
            path: path.to_path_buf(),
            version,
            workloads,
            hosts,
        })
    }

    /// The first and last poll recorded (None: no poll yet).
    pub fn span(&self) -> Result<Option<Span>> {
        let (first, last, n): (Option<i64>, Option<i64>, i64) = self
            .conn
            .query_row("SELECT min(at), max(at), count(*) FROM polls", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .map_err(sqlite(&self.path))?;
        Ok(first.zip(last).map(|(first_poll, last_poll)| Span {
            first_poll,
            last_poll,
            polls: n as u64,
        }))
    }

    /// The polls from `from` to `to` (ms), with the one just before `from`
    /// and the one just after `to` (between which the window lies).
    pub fn polls(&self, from: i64, to: i64) -> Result<Vec<Poll>> {
        let err = sqlite(&self.path);
        let interval = if self.version >= 2 {
            "interval_ms"
        } else {
            "NULL"
        };
        let sql = format!(
            "SELECT at, source, sockets, not_seen, {interval} FROM polls
             WHERE at <= coalesce((SELECT min(at) FROM polls WHERE at >= ?2), ?2)
               AND at >= coalesce((SELECT max(at) FROM polls WHERE at <= ?1), ?1)
             ORDER BY at"
        );
        let mut stmt = self.conn.prepare(&sql).map_err(&err)?;
        let rows = stmt
            .query_map([from, to], |r| {
                Ok(Poll {
                    at: r.get(0)?,
                    source: r.get(1)?,
                    sockets: r.get::<_, i64>(2)? as u64,
                    not_seen: r.get(3)?,
                    interval_ms: r.get(4)?,
                })
            })
            .map_err(&err)?;
        rows.collect::<rusqlite::Result<_>>().map_err(&err)
    }

    /// The gaps in the polls around `from` to `to` (see [`Gap`]).
    pub fn gaps(&self, from: i64, to: i64) -> Result<Vec<Gap>> {
        let polls = self.polls(from, to)?;
        Ok(polls
            .windows(2)
            .filter_map(|w| {
                let interval = w[1].interval_ms.or(w[0].interval_ms)?;
                let allowed = crate::track::gap_after_ms(interval);
                (w[1].at - w[0].at > allowed).then_some(Gap {
                    from: w[0].at,
                    to: w[1].at,
                })
            })
            .filter(|g| g.to >= from && g.from <= to)
            .collect())
    }

    /// Hand every connection of `window` to `f`, in the order they were
    /// first seen. A connection exists from its first sighting to its end
    /// (`closed_at`), or to its last sighting while it has none. Its
    /// `states` are those it had during the window, from its state
    /// changes; with [`Window::At`] its socket is in that state (and row
    /// shape); every other field is as last seen.
    pub fn connections<E: From<Error>>(
        &self,
        window: Window,
        mut f: impl FnMut(&Lived) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        let err = sqlite(&self.path);
        let (from, to) = match window {
            Window::At(t) => (t, t),
            Window::Between(a, b) => (a, b),
            Window::All => (i64::MIN / 2, i64::MAX / 2),
        };
        let sql = self.window_sql(window);
        let mut stmt = self.conn.prepare(&sql).map_err(|e| E::from(err(e)))?;
        let mut owners = self
            .conn
            .prepare("SELECT pid, command, fd FROM owners WHERE connection = ?1 ORDER BY pid, fd")
            .map_err(|e| E::from(err(e)))?;
        let mut changes = self
            .conn
            .prepare("SELECT at, state FROM state_changes WHERE connection = ?1 AND at <= ?2 ORDER BY at")
            .map_err(|e| E::from(err(e)))?;
        let mut rows = if window == Window::All {
            stmt.query([])
        } else {
            stmt.query(rusqlite::params![floor_s(from), ceil_s(to), from, to])
        }
        .map_err(|e| E::from(err(e)))?;
        while let Some(row) = rows.next().map_err(|e| E::from(err(e)))? {
            let mut lived = lived(row).map_err(|e| E::from(self.bad_row(e)))?;
            let workload_id: Option<i64> = row.get(35).map_err(|e| E::from(err(e)))?;
            lived.entry.workload = workload_id.and_then(|id| self.workloads.get(&id).cloned());
            let boot: i64 = row.get(36).map_err(|e| E::from(err(e)))?;
            lived.lifetime.host = self.hosts.get(&boot).cloned();
            // The states it was in from `from` to `to`: the last one before
            // the window (or its first) and every change in it.
            let list = changes
                .query_map(rusqlite::params![lived.id, to], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
                })
                .map_err(|e| E::from(err(e)))?;
            let mut read = Vec::new();
            for change in list {
                let (at, text) = change.map_err(|e| E::from(err(e)))?;
                let state = state_of(&text).ok_or_else(|| {
                    E::from(self.bad_row(RowError::Value {
                        table: "state_changes",
                        id: lived.id,
                        column: "state",
                        value: text.clone(),
                    }))
                })?;
                read.push((at, state));
            }
            let mut states = states_during(lived.first_state, read, from, to);
            if let Window::At(_) = window {
                let then = *states.last().expect("at least the first state");
                set_state(&mut lived.entry.socket, then);
                states = vec![then];
            }
            lived.states = states;
            if lived.entry.owners == Some(Owners::Owned(Arc::from([]))) {
                let list = owners
                    .query_map([lived.id], |r| {
                        Ok(Owner {
                            pid: r.get(0)?,
                            command: Arc::from(r.get::<_, String>(1)?),
                            fd: r.get(2)?,
                        })
                    })
                    .map_err(|e| E::from(err(e)))?;
                let list: Vec<Owner> = list
                    .collect::<rusqlite::Result<_>>()
                    .map_err(|e| E::from(err(e)))?;
                lived.entry.owners = Some(Owners::Owned(list.into()));
            }
            f(&lived)?;
        }
        Ok(())
    }

    /// What the file's shipper has sent and what waits (None: the file
    /// was never recorded with a store; docs/fleet.md).
    pub fn shipping(&self) -> Result<Option<super::Waiting>> {
        super::outbox::status(&self.conn).map_err(sqlite(&self.path))
    }

    /// The query of [`Reader::connections`] for `window` in this file's
    /// version (parameters: the window's first and last second, and its
    /// first and last millisecond).
    pub(super) fn window_sql(&self, window: Window) -> String {
        // A file before version 3 keeps no workloads.
        let workload = if self.version >= 3 {
            "c.workload"
        } else {
            "NULL"
        };
        // A file before version 4 keeps each row's last sighting in it.
        let (columns, last_seen) = if self.version >= 4 {
            (COLUMNS, LAST_SEEN)
        } else {
            (COLUMNS_V3, "c.last_seen")
        };
        if window == Window::All {
            format!(
                "SELECT {columns}, {workload}, c.boot FROM connections c JOIN namespaces n ON n.id = c.netns ORDER BY c.first_seen, c.id"
            )
        } else if self.version >= 5 {
            // Short connections by their spans, long ones by the lifetime
            // index, open ones by theirs. The joins' order is written out
            // (CROSS JOIN, MATERIALIZED, INDEXED BY): without it SQLite
            // 3.53 chose to scan every row of the file.
            format!(
                "WITH found (id) AS MATERIALIZED (
                    SELECT c.id FROM spans p CROSS JOIN connection_rows c ON c.id BETWEEN p.first_id AND p.last_id
                     WHERE p.first_seen_max >= ?3 - {SHORT_MS} AND p.first_seen_min <= ?4
                    UNION SELECT id FROM lifetimes WHERE start_s <= ?2 AND end_s >= ?1
                    UNION SELECT id FROM connection_rows INDEXED BY connections_open WHERE closed_at IS NULL)
                 SELECT {columns}, {workload}, c.boot FROM found f CROSS JOIN connections c ON c.id = f.id
                    JOIN namespaces n ON n.id = c.netns
                 WHERE c.first_seen <= ?4 AND coalesce(c.closed_at, {last_seen}) >= ?3
                 ORDER BY c.first_seen, c.id"
            )
        } else {
            // Before version 5, every connection is in the lifetime index.
            format!(
                "SELECT {columns}, {workload}, c.boot FROM lifetimes l CROSS JOIN connections c ON c.id = l.id JOIN namespaces n ON n.id = c.netns
                 WHERE l.start_s <= ?2 AND l.end_s >= ?1 AND c.first_seen <= ?4
                   AND coalesce(c.closed_at, {last_seen}) >= ?3
                 ORDER BY c.first_seen, c.id"
            )
        }
    }

    fn bad_row(&self, e: RowError) -> Error {
        bad_row(&self.path, e)
    }
}

/// A row tcptab cannot read, as an error naming the file, table, row and
/// column.
pub(super) fn bad_row(path: &Path, e: RowError) -> Error {
    match e {
        RowError::Sqlite(e) => sqlite(path)(e),
        RowError::Value {
            table,
            id,
            column,
            value,
        } => Error::NotHistory {
            path: path.to_path_buf(),
            why: format!("table {table}, row {id}, column {column}: {value}"),
        },
    }
}

/// The first 100 bytes of `path` say whether it may be a tcptab history
/// database (see [`super::check_header`]).
fn check_file(path: &Path) -> Result<()> {
    use std::io::Read;
    use std::os::unix::fs::FileTypeExt;
    let io = |what: String| Error::Io {
        path: path.to_path_buf(),
        what,
    };
    let meta = std::fs::metadata(path).map_err(|e| io(e.to_string()))?;
    let ty = meta.file_type();
    let kind = if ty.is_dir() {
        Some("a directory")
    } else if ty.is_fifo() {
        Some("a FIFO")
    } else if ty.is_socket() {
        Some("a socket")
    } else if ty.is_block_device() || ty.is_char_device() {
        Some("a device")
    } else {
        None
    };
    if let Some(kind) = kind {
        return Err(io(format!("{kind}, not a history file")));
    }
    let mut header = [0u8; 100];
    let mut file = std::fs::File::open(path).map_err(|e| io(e.to_string()))?;
    let mut read = 0;
    while read < header.len() {
        match file.read(&mut header[read..]) {
            Ok(0) => break,
            Ok(n) => read += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io(e.to_string())),
        }
    }
    super::check_header(&header[..read], path)
}

/// `path` opened read-only. A file in WAL mode that no recorder has open
/// has no `-shm` beside it, which a read-only connection cannot make where
/// it may not write (another user's directory, a read-only mount): it is
/// then opened as immutable (nothing writes it meanwhile).
fn open_read_only(path: &Path) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let open = |flags: OpenFlags, target: &str| -> Result<Connection> {
        let conn = Connection::open_with_flags(target, flags).map_err(sqlite(path))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(sqlite(path))?;
        // A first read: where the -shm cannot be made, this fails.
        conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
            r.get::<_, i64>(0)
        })
        .map_err(sqlite(path))?;
        Ok(conn)
    };
    let target = path.to_string_lossy();
    match open(flags, &target) {
        Err(Error::Sqlite {
            error: rusqlite::Error::SqliteFailure(e, _),
            ..
        }) if matches!(
            e.code,
            rusqlite::ErrorCode::ReadOnly | rusqlite::ErrorCode::CannotOpen
        ) =>
        {
            let mut uri = String::from("file:");
            for b in target.bytes() {
                match b {
                    b'%' | b'?' | b'#' => uri.push_str(&format!("%{b:02X}")),
                    _ => uri.push(b as char),
                }
            }
            uri.push_str("?immutable=1");
            open(flags | OpenFlags::SQLITE_OPEN_URI, &uri)
        }
        other => other,
    }
}

/// Every row of `workloads` by id (a file before version 3 has none).
pub(super) fn workloads(
    conn: &rusqlite::Connection,
) -> rusqlite::Result<std::collections::HashMap<i64, Arc<Workload>>> {
    let exists: bool = conn.query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'workloads'",
        [],
        |r| r.get(0),
    )?;
    let mut out = std::collections::HashMap::new();
    if !exists {
        return Ok(out);
    }
    let mut stmt = conn.prepare(
        "SELECT id, cgroup, unit, slice, runtime, container_id, container_name, pod_namespace, pod_name, pod_uid FROM workloads",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let mut w = Workload::from_cgroup(&r.get::<_, String>(1)?);
        w.unit = r.get(2)?;
        w.slice = r.get(3)?;
        w.runtime = r.get(4)?;
        w.container_id = r.get(5)?;
        w.container_name = r.get(6)?;
        w.pod_namespace = r.get(7)?;
        w.pod_name = r.get(8)?;
        w.pod_uid = r.get(9)?;
        out.insert(r.get(0)?, Arc::new(w));
    }
    Ok(out)
}

/// The recording machine in each boot the file holds: its host name and
/// machine id as the file's `meta` keeps them (the last recorder's), and
/// the boot's id.
fn hosts(
    conn: &rusqlite::Connection,
) -> rusqlite::Result<std::collections::HashMap<i64, Arc<Host>>> {
    let meta = |key: &str| -> rusqlite::Result<Option<String>> {
        use rusqlite::OptionalExtension;
        Ok(conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| {
                r.get::<_, Option<String>>(0)
            })
            .optional()?
            .flatten())
    };
    let (hostname, machine_id) = (meta("hostname")?, meta("machine_id")?);
    let mut out = std::collections::HashMap::new();
    let mut stmt = conn.prepare("SELECT id, boot_id FROM boots")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let host = Host {
            hostname: hostname.clone().unwrap_or_default(),
            machine_id: machine_id.clone(),
            boot_id: r.get(1)?,
        };
        out.insert(r.get(0)?, Arc::new(host));
    }
    Ok(out)
}
