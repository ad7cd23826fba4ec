//! The questions asked of a history database afterwards: [`Reader`].

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::{Connection, OpenFlags, OptionalExtension, Row};

use super::{ceil_s, check, floor_s, sqlite, Error, Result};
use crate::model::Diag;
use crate::model::Source;
use crate::model::{Family, RowKind, Socket, State, Ticks, TimerKind};
use crate::model::{Owner, Ownership};
use crate::record::Lifetime;
use crate::{Entry, Namespace};

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
pub struct Span {
    pub first_poll: i64,
    pub last_poll: i64,
    pub polls: u64,
}

/// One poll, as recorded: what was read and what could not be seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Poll {
    pub at: i64,
    pub source: String,
    pub sockets: u64,
    /// What could not be seen, one sentence per line (None: nothing).
    pub not_seen: Option<String>,
}

/// One recorded connection, as last seen, with when it was seen.
#[derive(Debug, Clone)]
pub struct Lived {
    /// Its row id in `connections`.
    pub id: i64,
    pub socket: Socket,
    /// What netlink added (None when it was read from /proc).
    pub diag: Option<Diag>,
    pub source: Source,
    pub namespace: Namespace,
    pub owner_status: Option<String>,
    /// Every process seen holding it.
    pub owners: Vec<Owner>,
    pub lifetime: Lifetime,
}

impl Lived {
    /// As an entry of the query engine, for filters and the record.
    pub fn entry(&self) -> Entry<'_> {
        let owners = match self.owner_status.as_deref() {
            Some("owned") => Some(Ownership::Owned(&self.owners)),
            Some("no_process") => Some(Ownership::NoProcess),
            Some("unknown") => Some(Ownership::Unknown),
            Some("not_found") => Some(Ownership::NotFound),
            _ => None,
        };
        Entry {
            socket: &self.socket,
            diag: self.diag.as_ref(),
            source: self.source,
            namespace: Some(&self.namespace),
            owners,
        }
    }
}

/// Reads a history database (read-only).
#[derive(Debug)]
pub struct Reader {
    conn: Connection,
    path: PathBuf,
}

impl Reader {
    /// Open `path` for reading; refuses a file that is not a tcptab
    /// history database.
    pub fn open(path: &Path) -> Result<Reader> {
        let opened = std::fs::File::open(path).and_then(|f| f.metadata());
        let why = match opened {
            Err(e) => Some(e.to_string()),
            Ok(m) if m.is_dir() => Some("a directory, not a history file".into()),
            Ok(_) => None,
        };
        if let Some(what) = why {
            return Err(Error::Io {
                path: path.to_path_buf(),
                what,
            });
        }
        let conn = open_read_only(path)?;
        Ok(Reader {
            conn,
            path: path.to_path_buf(),
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

    /// The polls from `from` to `to` (ms), and the one just before `from`
    /// (whose sighting lasts until the next).
    pub fn polls(&self, from: i64, to: i64) -> Result<Vec<Poll>> {
        let err = sqlite(&self.path);
        let mut stmt = self
            .conn
            .prepare(
                "SELECT at, source, sockets, not_seen FROM polls
                 WHERE at <= ?2 AND at >= coalesce((SELECT max(at) FROM polls WHERE at <= ?1), ?1)
                 ORDER BY at",
            )
            .map_err(&err)?;
        let rows = stmt
            .query_map([from, to], |r| {
                Ok(Poll {
                    at: r.get(0)?,
                    source: r.get(1)?,
                    sockets: r.get::<_, i64>(2)? as u64,
                    not_seen: r.get(3)?,
                })
            })
            .map_err(&err)?;
        rows.collect::<rusqlite::Result<_>>().map_err(&err)
    }

    /// Hand every connection of `window` to `f`, in the order they were
    /// first seen. A connection is taken to exist from its first sighting
    /// to its close (`closed_at`), or to its last sighting while it has
    /// none. With [`Window::At`], its state (and row shape) is the one it
    /// had at that moment, from its state changes; every other field is as
    /// last seen.
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
        let columns = "c.id, c.cookie, c.first_seen, c.last_seen, c.closed_at, c.closed_by, c.family, c.kind,
             c.state, c.local_address, c.local_port, c.remote_address, c.remote_port, c.tx_queue, c.rx_queue,
             c.timer, c.timer_ms, c.retransmits, c.uid, c.probes, c.inode, c.source, c.interface,
             c.backlog_limit, c.congestion_algorithm, c.shutdown, c.v6only, c.owner_status, c.bytes_acked,
             c.bytes_received, c.total_retrans, c.rtt_us, n.inode, n.name, c.first_state";
        let sql = if window == Window::All {
            format!(
                "SELECT {columns} FROM connections c JOIN namespaces n ON n.id = c.netns ORDER BY c.first_seen, c.id"
            )
        } else {
            format!(
                "SELECT {columns} FROM lifetimes l JOIN connections c ON c.id = l.id JOIN namespaces n ON n.id = c.netns
                 WHERE l.start_s <= ?2 AND l.end_s >= ?1 AND c.first_seen <= ?4
                   AND coalesce(c.closed_at, c.last_seen) >= ?3
                 ORDER BY c.first_seen, c.id"
            )
        };
        let mut stmt = self.conn.prepare(&sql).map_err(|e| E::from(err(e)))?;
        let mut owners = self
            .conn
            .prepare("SELECT pid, command, fd FROM owners WHERE connection = ?1 ORDER BY pid, fd")
            .map_err(|e| E::from(err(e)))?;
        let mut state_at = self
            .conn
            .prepare(
                "SELECT state FROM state_changes WHERE connection = ?1 AND at <= ?2 ORDER BY at DESC LIMIT 1",
            )
            .map_err(|e| E::from(err(e)))?;
        let mut rows = if window == Window::All {
            stmt.query([])
        } else {
            stmt.query(rusqlite::params![floor_s(from), ceil_s(to), from, to])
        }
        .map_err(|e| E::from(err(e)))?;
        while let Some(row) = rows.next().map_err(|e| E::from(err(e)))? {
            let mut lived = lived(row).map_err(|e| E::from(self.bad_row(e)))?;
            if let Window::At(t) = window {
                let changed: Option<String> = state_at
                    .query_row(rusqlite::params![lived.id, t], |r| r.get(0))
                    .optional()
                    .map_err(|e| E::from(err(e)))?;
                let first: String = row.get(34).map_err(|e| E::from(err(e)))?;
                let then = changed.or(Some(first));
                if let Some(state) = then.as_deref().and_then(state_of) {
                    if state != lived.socket.state {
                        lived.socket.state = state;
                        lived.socket.kind = match (state, lived.socket.kind) {
                            (State::TimeWait, _) => RowKind::TimeWait,
                            (_, RowKind::TimeWait) => RowKind::Full,
                            (_, kind) => kind,
                        };
                    }
                }
            }
            if lived.owner_status.as_deref() == Some("owned") {
                let list = owners
                    .query_map([lived.id], |r| {
                        Ok(Owner {
                            pid: r.get(0)?,
                            command: Arc::from(r.get::<_, String>(1)?),
                            fd: r.get(2)?,
                        })
                    })
                    .map_err(|e| E::from(err(e)))?;
                lived.owners = list
                    .collect::<rusqlite::Result<_>>()
                    .map_err(|e| E::from(err(e)))?;
            }
            f(&lived)?;
        }
        Ok(())
    }

    fn bad_row(&self, e: RowError) -> Error {
        match e {
            RowError::Sqlite(e) => sqlite(&self.path)(e),
            RowError::Value { id, column, value } => Error::NotHistory {
                path: self.path.clone(),
                why: format!(
                    "connection {id}: column {column} holds {value:?}, which tcptab did not write"
                ),
            },
        }
    }
}

enum RowError {
    Sqlite(rusqlite::Error),
    Value {
        id: i64,
        column: &'static str,
        value: String,
    },
}

impl From<rusqlite::Error> for RowError {
    fn from(e: rusqlite::Error) -> RowError {
        RowError::Sqlite(e)
    }
}

/// `path` opened read-only. A file in WAL mode that no recorder has open
/// has no `-shm` beside it, which a read-only connection cannot create: it
/// is then opened as immutable (nothing writes it meanwhile).
fn open_read_only(path: &Path) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let open = |flags: OpenFlags, target: &str| -> Result<Connection> {
        let conn = Connection::open_with_flags(target, flags).map_err(sqlite(path))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(sqlite(path))?;
        check(&conn, path)?;
        Ok(conn)
    };
    let target = path.to_string_lossy();
    match open(flags, &target) {
        Err(Error::Sqlite {
            error: rusqlite::Error::SqliteFailure(e, _),
            ..
        }) if e.code == rusqlite::ErrorCode::ReadOnly => {
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

/// A state as stored: the kernel's name, or `UNKNOWN(0x..)`.
pub(super) fn state_of(text: &str) -> Option<State> {
    text.parse().ok().or_else(|| {
        let hex = text.strip_prefix("UNKNOWN(0x")?.strip_suffix(')')?;
        Some(State::from_code(u8::from_str_radix(hex, 16).ok()?))
    })
}

/// A timer as stored: its name, or `unknown(N)` for a code without one.
pub(super) fn timer_of(text: &str) -> Option<TimerKind> {
    match text
        .strip_prefix("unknown(")
        .and_then(|t| t.strip_suffix(')'))
    {
        Some(code) => Some(TimerKind::from_code(code.parse().ok()?)),
        None => (0..=4u8)
            .map(TimerKind::from_code)
            .find(|t| t.name() == Some(text)),
    }
}

fn lived(r: &Row<'_>) -> std::result::Result<Lived, RowError> {
    let id: i64 = r.get(0)?;
    let bad = |column: &'static str, value: &str| RowError::Value {
        id,
        column,
        value: value.to_string(),
    };
    let text = |i: usize| -> rusqlite::Result<String> { r.get(i) };
    let family = match text(6)?.as_str() {
        "ipv4" => Family::Ipv4,
        "ipv6" => Family::Ipv6,
        other => return Err(bad("family", other)),
    };
    let kind = match text(7)?.as_str() {
        "full" => RowKind::Full,
        "time_wait" => RowKind::TimeWait,
        "request" => RowKind::Request,
        other => return Err(bad("kind", other)),
    };
    let state_text = text(8)?;
    let state = state_of(&state_text).ok_or_else(|| bad("state", &state_text))?;
    let addr = |i: usize, column: &'static str| -> std::result::Result<SocketAddr, RowError> {
        let a = text(i)?;
        let ip: IpAddr = a.parse().map_err(|_| bad(column, &a))?;
        let port: u16 = r.get(i + 1)?;
        Ok(SocketAddr::new(ip, port))
    };
    let timer_text = text(15)?;
    let timer_ms: u32 = r.get(16)?;
    let mut socket = Socket::empty(family, kind);
    socket.state = state;
    socket.local = addr(9, "local_address")?;
    socket.remote = addr(11, "remote_address")?;
    socket.tx_queue = r.get(13)?;
    socket.rx_queue = r.get(14)?;
    socket.timer.kind = timer_of(&timer_text).ok_or_else(|| bad("timer", &timer_text))?;
    socket.timer.expires = Ticks(u64::from(timer_ms) / 10);
    socket.retransmits = r.get(17)?;
    socket.uid = r.get(18)?;
    socket.probes = r.get(19)?;
    socket.inode = r.get::<_, i64>(20)? as u64;
    socket.congestion = None;
    let source_text = text(21)?;
    let source = match source_text.as_str() {
        "netlink" => Source::Netlink,
        "proc" => Source::Proc,
        other => return Err(bad("source", other)),
    };
    let cookie: Option<i64> = r.get(1)?;
    let diag = (source == Source::Netlink).then(|| -> rusqlite::Result<Diag> {
        Ok(Diag {
            cookie: cookie.unwrap_or(0) as u64,
            backlog_limit: r.get(23)?,
            interface: r.get::<_, Option<u32>>(22)?.unwrap_or(0),
            timer_ms,
            tcp_info: None,
            congestion_algorithm: r.get(24)?,
            memory: None,
            shutdown: r.get(25)?,
            v6only: r.get(26)?,
        })
    });
    let diag = diag.transpose()?;
    let u = |i: usize| -> rusqlite::Result<Option<u64>> {
        Ok(r.get::<_, Option<i64>>(i)?.map(|v| v as u64))
    };
    let lifetime = Lifetime {
        first_seen: r.get(2)?,
        last_seen: r.get(3)?,
        closed_at: r.get(4)?,
        closed_by: r.get(5)?,
        bytes_acked: u(28)?,
        bytes_received: u(29)?,
        total_retrans: u(30)?,
        rtt_us: u(31)?,
    };
    let inode: i64 = r.get(32)?;
    Ok(Lived {
        id,
        socket,
        diag,
        source,
        namespace: Namespace {
            inode: inode as u64,
            name: r.get(33)?,
            pid: None,
            path: None,
        },
        owner_status: r.get(27)?,
        owners: Vec::new(),
        lifetime,
    })
}
