//! A connection's row as its writer stored it, kept in memory while the
//! file is shipped from ([`super::Writer::ship`]): the shipper makes the
//! store's rows from it, and reads the file only for the rows it does not
//! hold (taken up from an earlier recorder, or told too late).
//!
//! A row's values are the shipper's cells ([`Stored::cell`]): the
//! history's columns ([`COLUMN_NAMES`]) as the shipper's statement reads
//! `connection_rows` (times as times, the namespace by its row id), then
//! `changed`, `boot` and `workload`. The writer makes the row's insert
//! from them ([`super::rows::insert`]), and then changes them by the same
//! rules as its SQL (the counters and the last sighting only grow, a
//! value not known keeps the one stored). In a debug build the writer
//! reads every row it tells back from the file and checks that the two
//! are equal ([`Stored::read`]).

use std::net::IpAddr;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, PoisonError};

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OptionalExtension};

use super::columns::COLUMN_NAMES;
use super::{codes, rows};
use crate::model::Owners;
use crate::track::{Conn, End};

/// The cells of a row: [`COLUMN_NAMES`], then `changed`, `boot`, `workload`.
pub(super) const CELLS: usize = COLUMN_NAMES.len() + 3;

/// The position of `name` in [`COLUMN_NAMES`].
const fn column(name: &str) -> usize {
    let mut i = 0;
    while i < COLUMN_NAMES.len() {
        let (a, b) = (COLUMN_NAMES[i].as_bytes(), name.as_bytes());
        if a.len() == b.len() {
            let mut j = 0;
            while j < a.len() && a[j] == b[j] {
                j += 1;
            }
            if j == a.len() {
                return i;
            }
        }
        i += 1;
    }
    panic!("not a column of the history")
}

const ID: usize = column("id");
const COOKIE: usize = column("cookie");
const KIND: usize = column("kind");
const LOCAL_ADDRESS: usize = column("local_address");
const REMOTE_ADDRESS: usize = column("remote_address");
const PROBES: usize = column("probes");
const UID: usize = column("uid");
const INODE: usize = column("inode");
const CONGESTION: usize = column("congestion_algorithm");
const SHUTDOWN: usize = column("shutdown");
const OWNER_STATUS: usize = column("owner_status");
const FIRST_SEEN: usize = column("first_seen");
const LAST_SEEN: usize = column("last_seen");
const CLOSED_AT: usize = column("closed_at");
const CLOSED_BY: usize = column("closed_by");
const NETNS_NAME: usize = column("netns_name");
pub(super) const CHANGED: usize = COLUMN_NAMES.len();
// The orders [`Stored::new`] and [`Stored::looked`] write cells in.
const _: () = {
    assert!(COOKIE == 1 && column("family") == COOKIE + 5);
    assert!(column("state") == KIND + 1 && LOCAL_ADDRESS == KIND + 2);
    assert!(REMOTE_ADDRESS == LOCAL_ADDRESS + 2 && column("remote_port") == REMOTE_ADDRESS + 1);
    assert!(
        column("tx_queue") == REMOTE_ADDRESS + 2 && column("retransmits") == REMOTE_ADDRESS + 6
    );
    assert!(column("rx_queue") == REMOTE_ADDRESS + 3 && column("timer_ms") == REMOTE_ADDRESS + 5);
    assert!(UID + 1 == PROBES && UID + 2 == INODE && column("first_state") == UID + 16);
    assert!(CONGESTION == UID + 6 && OWNER_STATUS == UID + 9);
};
pub(super) const BOOT: usize = CHANGED + 1;
pub(super) const WORKLOAD: usize = CHANGED + 2;

/// The counters, whose rules differ: the byte and retransmission counts
/// keep their highest value, the round-trip time its last that was not 0.
const COUNTERS: [usize; 4] = [
    column("bytes_acked"),
    column("bytes_received"),
    column("total_retrans"),
    column("rtt_us"),
];

/// A number as a row keeps it (every number a row keeps fits in an
/// `i64`), or NULL.
trait Num {
    fn num(self) -> Option<i64>;
}

macro_rules! num {
    ($($t:ty),*) => {$(
        impl Num for $t {
            fn num(self) -> Option<i64> {
                Some(self as i64)
            }
        }
    )*};
}
num!(u8, u16, u32, i32, i64);

impl Num for bool {
    fn num(self) -> Option<i64> {
        Some(i64::from(self))
    }
}

impl<T: Num> Num for Option<T> {
    fn num(self) -> Option<i64> {
        self.and_then(Num::num)
    }
}

/// Where a cell that holds text is in [`Stored::texts`].
const fn text_slot(i: usize) -> Option<usize> {
    match i {
        LOCAL_ADDRESS => Some(0),
        REMOTE_ADDRESS => Some(1),
        CONGESTION => Some(2),
        _ => None,
    }
}

/// A row kept in memory: shared by its writer, which changes it as it
/// changes the file, and its shipper, which makes the store's row from it
/// (a row it was told of is at least that version: a later one is
/// shipped under its own, later, number).
pub(crate) type Kept = Arc<Mutex<Stored>>;

/// The row `kept`, locked (a thread that panicked holding it left it
/// whole: each change is one assignment of cells).
pub(super) fn lock(kept: &Kept) -> MutexGuard<'_, Stored> {
    kept.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A connection's row, as stored: its cells as numbers (NULL ones 0, and
/// marked), the three that hold text apart.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    ints: [i64; CELLS],
    /// Bit `i`: cell `i` is NULL.
    nulls: u64,
    /// `local_address`, `remote_address`, `congestion_algorithm`, and the
    /// addresses' values (an address is written again
    /// only when it changed).
    texts: [Option<Box<str>>; 3],
    ips: [Option<IpAddr>; 2],
    /// It follows its boot's polls ([`super::columns::LAST_SEEN`]).
    follows: bool,
    /// (pid, fd, command), sorted.
    pub(super) owners: Vec<(i64, i64, Arc<str>)>,
    /// (at, the state's code), sorted.
    pub(super) states: Vec<(i64, i64)>,
}

const _: () = assert!(CELLS <= 64, "the NULL cells are marked in a u64");

/// The insert of a row, its values bound in the order of the cells (its
/// id is the file's; `netns_name` is not a column of the table).
static INSERT: LazyLock<String> = LazyLock::new(|| {
    let mut names = Vec::new();
    let mut values = Vec::new();
    for (i, name) in COLUMN_NAMES.iter().enumerate() {
        if i == ID || i == NETNS_NAME {
            continue;
        }
        let p = i + 1;
        names.push(*name);
        values.push(match i {
            // Times after the first sighting are kept from it.
            LAST_SEEN | CLOSED_AT => format!("?{p} - ?{}", FIRST_SEEN + 1),
            _ => format!("?{p}"),
        });
    }
    for (i, name) in [(CHANGED, "changed"), (BOOT, "boot"), (WORKLOAD, "workload")] {
        names.push(name);
        values.push(format!("?{}", i + 1));
    }
    format!(
        "INSERT INTO connection_rows ({}, follows) VALUES ({}, 1)",
        names.join(", "),
        values.join(", ")
    )
});

impl Stored {
    /// A new connection's row (closed already when its end is known), in
    /// the boot, namespace and workload of those row ids; `seq`, the
    /// transaction's number in a file shipped from.
    pub(super) fn new(
        (boot, netns, workload): (i64, i64, Option<i64>),
        conn: &Conn,
        seq: Option<i64>,
    ) -> Stored {
        let s = &conn.entry.socket;
        let d = conn.entry.diag.as_ref();
        let (closed_at, closed_by) = match conn.ended {
            Some((at, by)) => (Some(at.max(conn.first_seen)), Some(codes::closed_by(by))),
            None => (None, None),
        };
        let mut stored = Stored {
            ints: [0; CELLS],
            nulls: 0,
            texts: Default::default(),
            ips: [None; 2],
            follows: true,
            owners: Vec::new(),
            states: Vec::new(),
        };
        let first = [
            rows::cookie(conn),
            Some(conn.first_seen),
            Some(conn.last_seen.max(conn.first_seen)),
            closed_at,
            closed_by,
            Some(codes::family(s.family)),
        ];
        for (i, n) in first.into_iter().enumerate() {
            stored.set(COOKIE + i, n);
        }
        let last = [
            s.uid.num(),
            None,
            None,
            Some(codes::source(conn.entry.source)),
            d.map(|d| d.interface).num(),
            d.and_then(|d| d.backlog_limit).num(),
            None,
            None,
            d.and_then(|d| d.v6only).num(),
            None,
            None,
            None,
            None,
            None,
            Some(netns),
            None, // the namespace's name, not in the row
            conn.first_state.code().num(),
            Some(seq.unwrap_or(0)),
            Some(boot),
            workload,
        ];
        for (i, n) in last.into_iter().enumerate() {
            stored.set(UID + i, n);
        }
        stored.set(ID, None);
        stored.looked(conn);
        stored.counted(conn);
        stored
    }

    /// Cell `i` set to a number, or NULL.
    fn set(&mut self, i: usize, n: Option<i64>) {
        self.ints[i] = n.unwrap_or(0);
        match n {
            Some(_) => self.nulls &= !(1 << i),
            None => self.nulls |= 1 << i,
        }
    }

    fn int(&self, i: usize) -> Option<i64> {
        (self.nulls & (1 << i) == 0).then_some(self.ints[i])
    }

    /// Text cell `i` set (NULL: None).
    fn set_text(&mut self, i: usize, text: Option<&str>) {
        let slot = text_slot(i).expect("a cell of text");
        if self.texts[slot].as_deref() != text {
            self.texts[slot] = text.map(Box::from);
        }
        self.set(i, text.map(|_| 0));
    }

    /// An address cell, written again only when it changed.
    fn set_address(&mut self, i: usize, ip: IpAddr) {
        let slot = text_slot(i).expect("an address cell");
        if self.ips[slot] != Some(ip) || self.texts[slot].is_none() {
            self.ips[slot] = Some(ip);
            self.set_text(i, Some(&ip.to_string()));
        }
    }

    /// Inserted into the file: its id.
    pub(super) fn insert(&mut self, tx: &Connection) -> rusqlite::Result<i64> {
        let mut stmt = tx.prepare_cached(&INSERT)?;
        for i in 0..CELLS {
            if i != ID && i != NETNS_NAME {
                stmt.raw_bind_parameter(i + 1, ToSqlOutput::Borrowed(self.cell(i)))?;
            }
        }
        stmt.raw_execute()?;
        let id = tx.last_insert_rowid();
        self.set(ID, Some(id));
        Ok(id)
    }

    /// (first sighting, end) as stored.
    pub(super) fn lifetime(&self) -> (i64, Option<i64>) {
        (self.ints[FIRST_SEEN], self.int(CLOSED_AT))
    }

    /// Cell `i` as the shipper reads it: [`COLUMN_NAMES`], then
    /// `changed`, `boot`, `workload`.
    pub(super) fn cell(&self, i: usize) -> ValueRef<'_> {
        if self.nulls & (1 << i) != 0 {
            return ValueRef::Null;
        }
        match text_slot(i).and_then(|slot| self.texts[slot].as_deref()) {
            Some(text) => ValueRef::Text(text.as_bytes()),
            None => ValueRef::Integer(self.ints[i]),
        }
    }

    /// The version the store keeps of it (the transaction that changed it
    /// last).
    pub(super) fn changed(&self) -> i64 {
        self.ints[CHANGED]
    }

    /// Open, and following its boot's polls.
    pub(super) fn follows_open(&self) -> bool {
        self.follows && self.int(CLOSED_AT).is_none()
    }

    fn seen(&mut self, at: i64) {
        let last = self.int(LAST_SEEN).unwrap_or(at);
        self.set(LAST_SEEN, Some(last.max(at)));
    }

    fn changed_by(&mut self, seq: Option<i64>) {
        if let Some(seq) = seq {
            self.set(CHANGED, Some(seq));
        }
    }

    /// The counters by their rules.
    fn counted(&mut self, conn: &Conn) {
        for (&i, new) in COUNTERS.iter().zip(rows::counters(conn)) {
            let old = self.int(i);
            let kept = if i == COUNTERS[3] {
                new.filter(|&n| n > 0).or(old).or(new)
            } else {
                old.max(new)
            };
            self.set(i, kept);
        }
    }

    /// What a look at the connection sets: the state, queues, timer and
    /// ends as they are; the inode, cookie, owner status, congestion
    /// algorithm and shutdown when known.
    fn looked(&mut self, conn: &Conn) {
        let s = &conn.entry.socket;
        let d = conn.entry.diag.as_ref();
        self.set_address(LOCAL_ADDRESS, s.local.ip());
        self.set_address(REMOTE_ADDRESS, s.remote.ip());
        let now = [
            (KIND, codes::kind(s.kind)),
            (KIND + 1, i64::from(s.state.code())),
            (LOCAL_ADDRESS + 1, i64::from(s.local.port())),
            (REMOTE_ADDRESS + 1, i64::from(s.remote.port())),
            (REMOTE_ADDRESS + 2, i64::from(s.tx_queue)),
            (REMOTE_ADDRESS + 3, i64::from(s.rx_queue)),
            (REMOTE_ADDRESS + 4, i64::from(s.timer.kind.code())),
            (REMOTE_ADDRESS + 5, rows::timer_ms(conn)),
            (REMOTE_ADDRESS + 6, i64::from(s.retransmits)),
            (PROBES, i64::from(s.probes)),
        ];
        for (i, n) in now {
            self.set(i, Some(n));
        }
        if s.inode != 0 || self.int(INODE).is_none() {
            self.set(INODE, Some(s.inode as i64));
        }
        let known = [
            (COOKIE, rows::cookie(conn)),
            (OWNER_STATUS, rows::owner_status(conn)),
            (SHUTDOWN, d.and_then(|d| d.shutdown).num()),
        ];
        for (i, n) in known {
            if n.is_some() {
                self.set(i, n);
            }
        }
        if let Some(name) = d.and_then(|d| d.congestion_algorithm.as_deref()) {
            self.set_text(CONGESTION, Some(name));
        }
    }

    /// As [`rows::update`] changes it.
    pub(super) fn update(&mut self, conn: &Conn, seq: Option<i64>) {
        self.looked(conn);
        self.seen(conn.last_seen);
        self.changed_by(seq);
        self.counted(conn);
    }

    /// As [`rows::update_counters`] changes it.
    pub(super) fn update_counters(&mut self, conn: &Conn, seq: Option<i64>) {
        self.seen(conn.last_seen);
        self.changed_by(seq);
        self.counted(conn);
    }

    /// As [`rows::close`] changes it.
    pub(super) fn close(&mut self, (at, by): (i64, End), last_seen: i64, seq: Option<i64>) {
        let first = self.ints[FIRST_SEEN];
        let stored_last = self.int(LAST_SEEN).unwrap_or(first);
        let closed_at = at.max(first).max(stored_last).max(last_seen);
        self.seen(last_seen);
        self.set(CLOSED_AT, Some(closed_at));
        self.set(CLOSED_BY, Some(codes::closed_by(by)));
        self.changed_by(seq);
    }

    /// As [`rows::reopen`] changes it.
    pub(super) fn reopen(&mut self, seq: Option<i64>) {
        self.set(CLOSED_AT, None);
        self.set(CLOSED_BY, None);
        self.changed_by(seq);
    }

    /// A state change stored.
    pub(super) fn state_change(&mut self, at: i64, code: i64) {
        if let Err(i) = self.states.binary_search(&(at, code)) {
            self.states.insert(i, (at, code));
        }
    }

    /// `conn`'s owners not among `stored` ((pid, fd), sorted), as
    /// [`rows::owners`] stores them.
    pub(super) fn owners(&mut self, conn: &Conn, stored: &[(u32, u32)]) {
        let Some(Owners::Owned(list)) = &conn.entry.owners else {
            return;
        };
        for o in list.iter() {
            if stored.binary_search(&(o.pid, o.fd)).is_err() {
                let owner = (i64::from(o.pid), i64::from(o.fd), o.command.clone());
                if let Err(i) = self.owners.binary_search(&owner) {
                    self.owners.insert(i, owner);
                }
            }
        }
    }

    pub(super) fn set_workload(&mut self, id: i64) {
        self.set(WORKLOAD, Some(id));
    }

    /// Not found by a poll: its own last sighting, not its boot's.
    pub(super) fn pin(&mut self, last_seen: i64) {
        self.set(LAST_SEEN, Some(last_seen));
        self.follows = false;
    }

    /// Found again: it follows its boot's polls.
    pub(super) fn unpin(&mut self, last_seen: i64) {
        self.seen(last_seen);
        self.follows = true;
    }

    /// Row `id` as the file keeps it (None: not there), read as the
    /// shipper reads it.
    pub(super) fn read(conn: &Connection, id: i64) -> rusqlite::Result<Option<Stored>> {
        let sql = format!(
            "SELECT {}, c.changed, c.boot, c.workload, c.follows FROM connection_rows c WHERE c.id = ?1",
            super::outbox::raw_columns().replacen("n.inode, n.name", "c.netns, NULL", 1)
        );
        let row = conn
            .prepare_cached(&sql)?
            .query_row([id], |r| {
                let mut row = Stored {
                    ints: [0; CELLS],
                    nulls: 0,
                    texts: Default::default(),
                    ips: [None; 2],
                    follows: r.get::<_, Option<i64>>(CELLS)?.is_some(),
                    owners: Vec::new(),
                    states: Vec::new(),
                };
                for i in 0..CELLS {
                    match r.get_ref(i)? {
                        ValueRef::Integer(n) => row.set(i, Some(n)),
                        ValueRef::Text(t) => {
                            let t = String::from_utf8_lossy(t);
                            row.set_text(i, Some(&t));
                            if let Some(slot @ 0..=1) = text_slot(i) {
                                row.ips[slot] = t.parse().ok();
                            }
                        }
                        _ => row.set(i, None),
                    }
                }
                Ok(row)
            })
            .optional()?;
        let Some(mut row) = row else {
            return Ok(None);
        };
        row.owners = conn
            .prepare_cached("SELECT pid, fd, command FROM owners WHERE connection = ?1")?
            .query_map([id], |r| {
                Ok((r.get(0)?, r.get(1)?, Arc::from(r.get::<_, String>(2)?)))
            })?
            .collect::<rusqlite::Result<_>>()?;
        row.owners.sort_unstable();
        row.states = conn
            .prepare_cached("SELECT at, state FROM state_change_rows WHERE connection = ?1")?
            .query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        row.states.sort_unstable();
        Ok(Some(row))
    }
}
