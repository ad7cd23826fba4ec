//! A `connections` row as tcptab writes it, read back into a [`Lived`]
//! connection: from the history file (SQLite), or from any store that
//! keeps the same columns under the same names (a fleet's ClickHouse
//! table, [`crate::fleet`]). One decoder, so both answer alike.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use rusqlite::Row;

use crate::model::{
    Diag, EntryBuf, Family, Namespace, Owners, RowKind, Socket, Source, State, Ticks, TimerKind,
};
use crate::record::Lifetime;

/// One recorded connection, as last seen, with when it was seen.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Lived {
    /// Its row id in `connections`.
    pub id: i64,
    /// The socket as last seen (with [`Window::At`](super::Window::At), in the state it had
    /// then), its namespace (inode and name) and its owners: every process
    /// seen holding it, and the best status seen.
    pub entry: EntryBuf,
    /// The state it was first seen in.
    pub first_state: State,
    pub lifetime: Lifetime,
    /// The states it was in during the window asked, in order (one for
    /// [`Window::At`](super::Window::At)).
    pub states: Vec<State>,
}

// The SQL below, as macros so that `concat!` joins it at compile time.
macro_rules! last_seen_sql {
    () => {
        "CASE WHEN c.closed_at IS NULL AND c.follows
         THEN max(c.last_seen, coalesce((SELECT ob.open_seen FROM boots ob WHERE ob.id = c.boot), c.last_seen))
         ELSE c.last_seen END"
    };
}
pub(super) use last_seen_sql;
macro_rules! after_last_seen {
    () => {
        "c.closed_at, c.closed_by, c.family, c.kind,
     c.state, c.local_address, c.local_port, c.remote_address, c.remote_port, c.tx_queue, c.rx_queue,
     c.timer, c.timer_ms, c.retransmits, c.uid, c.probes, c.inode, c.source, c.interface,
     c.backlog_limit, c.congestion_algorithm, c.shutdown, c.v6only, c.owner_status, c.bytes_acked,
     c.bytes_received, c.total_retrans, c.rtt_us, n.inode, n.name, c.first_state"
    };
}

/// A row's last sighting (`c` a row of `connections`; version 4). A poll
/// that finds every open row writes when once, in its boot's `open_seen`,
/// instead of in each row; a row it did not find stops following
/// (`follows` NULL) and keeps its own `last_seen`. So while a row is open
/// and follows, its last sighting is the later of the two. A recorder
/// writes `open_seen` into the rows when it stops, and when it starts
/// after one that was killed ([`SETTLE`]).
pub(super) const LAST_SEEN: &str = last_seen_sql!();

/// Every open row that follows its boot's polls given its last sighting
/// (and the boots none), so that `last_seen` alone says it again (in
/// `connection_rows`, whose times after the first sighting count from it).
pub(super) const SETTLE: &str = "UPDATE connection_rows AS c SET last_seen = max(c.last_seen,
        coalesce((SELECT ob.open_seen FROM boots ob WHERE ob.id = c.boot) - c.first_seen, c.last_seen))
     WHERE c.closed_at IS NULL AND c.follows;
     UPDATE boots SET open_seen = NULL;";

/// The columns [`lived`] reads from SQLite, in the order of
/// [`COLUMN_NAMES`], from a file of this version.
pub(super) const COLUMNS: &str = concat!(
    "c.id, c.cookie, c.first_seen, ",
    last_seen_sql!(),
    ", ",
    after_last_seen!()
);

/// [`COLUMNS`] of a file before version 4, whose rows each keep their own
/// `last_seen`.
pub(super) const COLUMNS_V3: &str = concat!(
    "c.id, c.cookie, c.first_seen, c.last_seen, ",
    after_last_seen!()
);

/// The names of [`COLUMNS`], in order: `netns` and `netns_name` are the
/// namespace's inode and name.
pub const COLUMN_NAMES: [&str; 35] = [
    "id",
    "cookie",
    "first_seen",
    "last_seen",
    "closed_at",
    "closed_by",
    "family",
    "kind",
    "state",
    "local_address",
    "local_port",
    "remote_address",
    "remote_port",
    "tx_queue",
    "rx_queue",
    "timer",
    "timer_ms",
    "retransmits",
    "uid",
    "probes",
    "inode",
    "source",
    "interface",
    "backlog_limit",
    "congestion_algorithm",
    "shutdown",
    "v6only",
    "owner_status",
    "bytes_acked",
    "bytes_received",
    "total_retrans",
    "rtt_us",
    "netns",
    "netns_name",
    "first_state",
];

/// A row that cannot be read.
#[derive(Debug)]
pub enum RowError {
    Sqlite(rusqlite::Error),
    /// What a column holds that tcptab did not write (or cannot read).
    Value {
        table: &'static str,
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

/// Where a row's columns come from: column `i` is [`COLUMN_NAMES`]`[i]`.
pub trait Columns {
    /// As text; None for NULL.
    fn text(&self, i: usize) -> Result<Option<String>, RowError>;
    /// As an integer; None for NULL.
    fn int(&self, i: usize) -> Result<Option<i64>, RowError>;
}

impl Columns for Row<'_> {
    fn text(&self, i: usize) -> Result<Option<String>, RowError> {
        self.get(i).map_err(|e| sqlite_value(self, i, e))
    }

    fn int(&self, i: usize) -> Result<Option<i64>, RowError> {
        self.get(i).map_err(|e| sqlite_value(self, i, e))
    }
}

/// A value SQLite cannot give as asked, naming its column.
fn sqlite_value(r: &Row<'_>, i: usize, e: rusqlite::Error) -> RowError {
    match e {
        rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::InvalidColumnType(..)
        | rusqlite::Error::IntegralValueOutOfRange(..)
        | rusqlite::Error::Utf8Error(..) => RowError::Value {
            table: "connections",
            id: r.get(0).unwrap_or(0),
            column: COLUMN_NAMES[i],
            value: e.to_string(),
        },
        other => RowError::Sqlite(other),
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

/// A socket's state as it was: the row shape follows (a TIME_WAIT row, or
/// a full socket before it).
pub(crate) fn set_state(socket: &mut Socket, state: State) {
    if state == socket.state {
        return;
    }
    socket.state = state;
    socket.kind = match (state, socket.kind) {
        (State::TimeWait, _) => RowKind::TimeWait,
        (State::SynRecv, RowKind::Request) => RowKind::Request,
        (_, RowKind::TimeWait | RowKind::Request) => RowKind::Full,
        (_, kind) => kind,
    };
}

/// The states a connection first seen in `first` was in from `from` to
/// `to`, given its state changes (time, state) in time order: the last one
/// before the window (or its first) and every change in it.
pub(crate) fn states_during(
    first: State,
    changes: impl IntoIterator<Item = (i64, State)>,
    from: i64,
    to: i64,
) -> Vec<State> {
    let mut states = vec![first];
    for (at, state) in changes {
        if at > to {
            break;
        }
        if at <= from {
            states.clear();
        }
        if states.last() != Some(&state) {
            states.push(state);
        }
    }
    states
}

/// A row's cells, read with the row's id and the column's name in every
/// error.
struct Cells<'r, C> {
    r: &'r C,
    id: i64,
}

impl<C: Columns> Cells<'_, C> {
    fn bad(&self, i: usize, value: &str) -> RowError {
        RowError::Value {
            table: "connections",
            id: self.id,
            column: COLUMN_NAMES[i],
            value: format!("{value:?}, which tcptab did not write"),
        }
    }

    fn text(&self, i: usize) -> Result<String, RowError> {
        self.r.text(i)?.ok_or_else(|| self.bad(i, "NULL"))
    }

    fn opt(&self, i: usize) -> Result<Option<i64>, RowError> {
        self.r.int(i)
    }

    fn num(&self, i: usize) -> Result<i64, RowError> {
        self.opt(i)?.ok_or_else(|| self.bad(i, "NULL"))
    }

    /// An integer that must fit `T`.
    fn fit<T: TryFrom<i64>>(&self, i: usize) -> Result<T, RowError> {
        let v = self.num(i)?;
        T::try_from(v).map_err(|_| self.bad(i, &v.to_string()))
    }

    fn opt_fit<T: TryFrom<i64>>(&self, i: usize) -> Result<Option<T>, RowError> {
        self.opt(i)?
            .map(|v| T::try_from(v).map_err(|_| self.bad(i, &v.to_string())))
            .transpose()
    }

    /// Text that `read` must know.
    fn known<T>(&self, i: usize, read: impl Fn(&str) -> Option<T>) -> Result<T, RowError> {
        let text = self.text(i)?;
        read(&text).ok_or_else(|| self.bad(i, &text))
    }

    /// The address at `i` and the port after it.
    fn addr(&self, i: usize) -> Result<SocketAddr, RowError> {
        let ip: IpAddr = self.known(i, |a| a.parse().ok())?;
        Ok(SocketAddr::new(ip, self.fit(i + 1)?))
    }

    fn unsigned(&self, i: usize) -> Result<Option<u64>, RowError> {
        Ok(self.opt(i)?.map(|v| v as u64))
    }
}

/// The socket of a `connections` row, and its timer in milliseconds.
fn socket_of<C: Columns>(c: &Cells<'_, C>) -> Result<(Socket, u32), RowError> {
    let family = c.known(6, |t| match t {
        "ipv4" => Some(Family::Ipv4),
        "ipv6" => Some(Family::Ipv6),
        _ => None,
    })?;
    let kind = c.known(7, |t| match t {
        "full" => Some(RowKind::Full),
        "time_wait" => Some(RowKind::TimeWait),
        "request" => Some(RowKind::Request),
        _ => None,
    })?;
    let timer_ms: u32 = c.fit(16)?;
    let mut socket = Socket::empty(family, kind);
    socket.state = c.known(8, state_of)?;
    socket.local = c.addr(9)?;
    socket.remote = c.addr(11)?;
    socket.tx_queue = c.fit(13)?;
    socket.rx_queue = c.fit(14)?;
    socket.timer.kind = c.known(15, timer_of)?;
    socket.timer.expires = Ticks(u64::from(timer_ms) / 10);
    socket.retransmits = c.fit(17)?;
    socket.uid = c.fit(18)?;
    socket.probes = c.fit(19)?;
    socket.inode = c.num(20)? as u64;
    socket.congestion = None;
    Ok((socket, timer_ms))
}

/// One `connections` row as a [`Lived`] connection (its owners, workload,
/// host and states are the caller's to add).
pub fn lived(r: &impl Columns) -> Result<Lived, RowError> {
    let id = r.int(0)?.unwrap_or(0);
    let c = Cells { r, id };
    let (socket, timer_ms) = socket_of(&c)?;
    let first_state = c.known(34, state_of)?;
    let source = c.known(21, |t| match t {
        "netlink" => Some(Source::Netlink),
        "proc" => Some(Source::Proc),
        _ => None,
    })?;
    let diag = if source == Source::Netlink {
        Some(Diag {
            cookie: c.opt(1)?.unwrap_or(0) as u64,
            backlog_limit: c.opt_fit(23)?,
            interface: c.opt_fit(22)?.unwrap_or(0),
            timer_ms,
            congestion_algorithm: r
                .text(24)?
                .map(|name| crate::model::congestion_named(name.as_bytes())),
            shutdown: c.opt_fit(25)?,
            v6only: c.opt(26)?.map(|v| v != 0),
            ..Diag::default()
        })
    } else {
        None
    };
    let lifetime = Lifetime {
        first_seen: c.num(2)?,
        last_seen: c.num(3)?,
        closed_at: c.opt(4)?,
        closed_by: r.text(5)?,
        bytes_acked: c.unsigned(28)?,
        bytes_received: c.unsigned(29)?,
        total_retrans: c.unsigned(30)?,
        rtt_us: c.unsigned(31)?,
        host: None,
    };
    let owners = match r.text(27)?.as_deref() {
        None => None,
        Some(name) => Some(Owners::from_status(name).ok_or_else(|| c.bad(27, name))?),
    };
    let namespace = Namespace {
        inode: c.num(32)? as u64,
        name: r.text(33)?,
        pid: None,
        path: None,
        pod: None,
    };
    let mut entry = EntryBuf::new(socket, source)
        .with_namespace(Some(Arc::new(namespace)))
        .with_owners(owners);
    entry.diag = diag;
    Ok(Lived {
        id,
        entry,
        first_state,
        lifetime,
        states: Vec::new(),
    })
}
