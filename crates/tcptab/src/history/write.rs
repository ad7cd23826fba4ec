//! The recorder's side: [`Writer`] turns each poll of the table (a query's
//! [`Snapshot`]) and the destroy notifications received since the last one
//! into rows, in one transaction per poll.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use super::{
    ceil_s, check, floor_s, sqlite, Error, Result, APPLICATION_ID, OPEN_END, SCHEMA, VERSION,
};
use crate::model::DiagSocket;
use crate::model::Key;
use crate::model::Ownership;
use crate::query::{NotInspectedReason, Report, Snapshot};
use crate::{Entry, State, TimerKind};

/// A connection the kernel said it destroyed (a destroy notification),
/// with when it was received.
#[derive(Debug, Clone)]
pub struct Closed {
    /// The network namespace's inode (see [`crate::netns::Namespace`]).
    pub netns: u64,
    pub at_ms: i64,
    pub socket: DiagSocket,
}

/// What one poll recorded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PollOutcome {
    /// The poll's row id.
    pub id: i64,
    /// Sockets the poll saw (after the filter).
    pub sockets: u64,
    /// Connections seen for the first time (by the poll or by a notification).
    pub opened: u64,
    /// Connections closed (by a notification, or missing from the poll).
    pub closed: u64,
    /// Destroy notifications applied.
    pub notifications: u64,
    /// Rows deleted by the retention window (connections).
    pub expired: u64,
}

/// One connection open at the last poll.
#[derive(Debug)]
struct Open {
    id: i64,
    state: State,
    /// The best owner status seen: once owned, a connection stays owned
    /// (its TIME_WAIT has no process, its owners are kept).
    status: u8,
    /// (pid, fd) of every owner stored, sorted.
    owners: Vec<(u32, u32)>,
    /// The poll that last saw it.
    generation: u64,
    /// What its row holds of the fields that change ([`fingerprint`]): a
    /// poll that finds them unchanged only moves `last_seen`, for all such
    /// rows in one statement.
    fingerprint: u64,
}

/// A hash of the fields a poll may find changed (not `timer_ms`, which
/// changes all the time: it is written with the others).
fn fingerprint(entry: &Entry<'_>, status: u8) -> u64 {
    use std::hash::{Hash, Hasher};
    let s = entry.socket;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (
        s.state.code(),
        s.kind.as_str(),
        s.tx_queue,
        s.rx_queue,
        s.timer.kind.code(),
        s.retransmits,
        s.probes,
        s.inode,
        status,
        counters(entry),
        entry.diag.and_then(|d| d.shutdown),
    )
        .hash(&mut h);
    h.finish()
}

/// Writes a history database: see the [module](super) documentation.
#[derive(Debug)]
pub struct Writer {
    conn: Connection,
    path: PathBuf,
    retention_ms: i64,
    last_expiry: Option<i64>,
    /// Holds the one-recorder lock while the writer lives.
    _lock: std::fs::File,
    tracker: Tracker,
}

/// What the writer knows between polls: the connections open at the last
/// one and those it closed.
#[derive(Debug)]
struct Tracker {
    boot: i64,
    /// This process's network namespace (the inode of [`Namespaces::Current`](crate::Namespaces::Current)).
    own_netns: u64,
    open: HashMap<Key, Open>,
    /// Connections closed by the last poll.
    recent: Recent,
    /// Namespace inode to `namespaces.id`.
    namespaces: HashMap<u64, i64>,
    generation: u64,
}

/// The ends of a connection in a namespace.
type Ends = (u64, SocketAddr, SocketAddr);

/// Connections closed by one poll: a destroy notification or a TIME_WAIT
/// socket (which keeps the cookie) may still come for them.
#[derive(Debug, Default)]
struct Recent {
    by_key: HashMap<Key, i64>,
    /// Those a notification closed, by ends: a connection that was never
    /// dumped had no cookie yet when its TIME_WAIT socket was made, which
    /// then gets a cookie of its own. With the key it has in `by_key`.
    by_ends: HashMap<Ends, (i64, Key)>,
}

impl Recent {
    fn get(&self, key: &Key) -> Option<i64> {
        self.by_key.get(key).copied()
    }

    fn by_ends(&self, ends: &Ends) -> Option<i64> {
        self.by_ends.get(ends).map(|&(id, _)| id)
    }

    /// A connection open again (found by `key` or by `ends`).
    fn forget(&mut self, key: &Key, ends: &Ends) {
        if let Some((_, noticed)) = self.by_ends.remove(ends) {
            self.by_key.remove(&noticed);
        }
        self.by_key.remove(key);
    }
}

/// Owner statuses by rank (see [`Open::status`]).
const STATUSES: [&str; 5] = ["", "no_process", "not_found", "unknown", "owned"];

fn rank(status: Option<&str>) -> u8 {
    status
        .and_then(|s| STATUSES.iter().position(|x| *x == s))
        .unwrap_or(0) as u8
}

impl Writer {
    /// Open the database at `path`, creating it (and its tables) if it does
    /// not exist or is empty, keeping `retention_ms` of history. Refuses a
    /// file that is not a tcptab history database.
    pub fn open(path: &Path, retention_ms: i64) -> Result<Writer> {
        let err = sqlite(path);
        let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
        if let Some(dir) = parent.filter(|d| !d.is_dir()) {
            return Err(Error::Io {
                path: path.to_path_buf(),
                what: format!("{} is not a directory that exists", dir.display()),
            });
        }
        // The system's reason when the file cannot be opened for writing
        // (SQLite says only that it could not open it).
        let lock = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| Error::Io {
                path: path.to_path_buf(),
                what: e.to_string(),
            })?;
        // One recorder per file: an advisory lock (flock, apart from
        // SQLite's own locks), released when the process ends, however.
        if rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
            return Err(Error::Io {
                path: path.to_path_buf(),
                what: "another tcptab record is writing it (one recorder per file)".into(),
            });
        }
        let conn = Connection::open(path).map_err(&err)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(&err)?;
        let objects: i64 =
            match conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0)) {
                Ok(n) => n,
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.code == rusqlite::ErrorCode::NotADatabase =>
                {
                    return Err(Error::NotHistory {
                        path: path.to_path_buf(),
                        why: "not an SQLite file".into(),
                    })
                }
                Err(e) => return Err(err(e)),
            };
        let id: i32 = conn
            .query_row("PRAGMA application_id", [], |r| r.get(0))
            .map_err(&err)?;
        if objects == 0 && id == 0 {
            conn.execute_batch(&format!(
                "PRAGMA journal_mode = WAL;
                 PRAGMA application_id = {APPLICATION_ID};
                 PRAGMA user_version = {VERSION};
                 BEGIN;
                 {SCHEMA}
                 INSERT INTO meta VALUES ('created', {now}), ('tcptab', '{version}');
                 COMMIT;",
                now = crate::time::now_ms(),
                version = env!("CARGO_PKG_VERSION"),
            ))
            .map_err(&err)?;
        } else {
            check(&conn, path)?;
        }
        // WAL with synchronous=NORMAL: a killed recorder loses at most the
        // transaction it was writing, never the file.
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             PRAGMA journal_size_limit = 67108864;",
        )
        .map_err(&err)?;
        let boot_id = super::boot_id().map_err(|e| Error::Io {
            path: "/proc/sys/kernel/random/boot_id".into(),
            what: e.to_string(),
        })?;
        conn.execute(
            "INSERT OR IGNORE INTO boots (boot_id, first_seen) VALUES (?1, ?2)",
            params![boot_id, crate::time::now_ms()],
        )
        .map_err(&err)?;
        let boot: i64 = conn
            .query_row("SELECT id FROM boots WHERE boot_id = ?1", [&boot_id], |r| {
                r.get(0)
            })
            .map_err(&err)?;
        let own_netns = std::fs::metadata("/proc/thread-self/ns/net")
            .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
            .unwrap_or(0);
        let mut writer = Writer {
            conn,
            path: path.to_path_buf(),
            retention_ms,
            last_expiry: None,
            _lock: lock,
            tracker: Tracker {
                boot,
                own_netns,
                open: HashMap::new(),
                recent: Recent::default(),
                namespaces: HashMap::new(),
                generation: 0,
            },
        };
        writer.resume()?;
        Ok(writer)
    }

    /// The path of the database.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Take up where an earlier recorder left off: connections of this boot
    /// still open in the file are matched against the next poll; those of
    /// an earlier boot closed when the machine rebooted, after their last
    /// sighting (`closed_by = 'reboot'`, `closed_at = last_seen`).
    fn resume(&mut self) -> Result<()> {
        let err = sqlite(&self.path);
        let tx = self.conn.transaction().map_err(&err)?;
        let ended: Vec<(i64, i64)> = {
            let mut stmt = tx
                .prepare(
                    "SELECT id, last_seen FROM connections WHERE closed_at IS NULL AND boot != ?1",
                )
                .map_err(&err)?;
            let rows = stmt
                .query_map([self.tracker.boot], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(&err)?;
            rows.collect::<rusqlite::Result<_>>().map_err(&err)?
        };
        for (id, last_seen) in ended {
            close_row(&tx, id, last_seen, "reboot").map_err(&err)?;
        }
        {
            let mut stmt = tx
                .prepare(
                    "SELECT c.id, n.inode, c.cookie, c.inode, c.local_address, c.local_port,
                            c.remote_address, c.remote_port, c.state, c.owner_status, n.id
                     FROM connections c JOIN namespaces n ON n.id = c.netns
                     WHERE c.closed_at IS NULL AND c.boot = ?1",
                )
                .map_err(&err)?;
            let mut rows = stmt.query([self.tracker.boot]).map_err(&err)?;
            while let Some(r) = rows.next().map_err(&err)? {
                let id: i64 = r.get(0).map_err(&err)?;
                let netns: i64 = r.get(1).map_err(&err)?;
                let netns = netns as u64;
                let cookie: Option<i64> = r.get(2).map_err(&err)?;
                let key = match cookie {
                    Some(cookie) => Key::Cookie {
                        netns,
                        cookie: cookie as u64,
                    },
                    None => {
                        let addr = |a: String, p: i64| -> Option<std::net::SocketAddr> {
                            Some(std::net::SocketAddr::new(a.parse().ok()?, p as u16))
                        };
                        let (Some(local), Some(remote)) = (
                            addr(r.get(4).map_err(&err)?, r.get(5).map_err(&err)?),
                            addr(r.get(6).map_err(&err)?, r.get(7).map_err(&err)?),
                        ) else {
                            continue;
                        };
                        let inode: i64 = r.get(3).map_err(&err)?;
                        Key::Ends {
                            netns,
                            inode: inode as u64,
                            local,
                            remote,
                        }
                    }
                };
                let state: String = r.get(8).map_err(&err)?;
                let status: Option<String> = r.get(9).map_err(&err)?;
                self.tracker
                    .namespaces
                    .insert(netns, r.get(10).map_err(&err)?);
                self.tracker.open.insert(
                    key,
                    Open {
                        id,
                        state: state.parse().unwrap_or(State::Close),
                        status: rank(status.as_deref()),
                        owners: Vec::new(),
                        generation: 0,
                        fingerprint: 0,
                    },
                );
            }
        }
        // Owners already stored are not stored twice.
        {
            let mut stmt = tx
                .prepare("SELECT pid, fd FROM owners WHERE connection = ?1")
                .map_err(&err)?;
            for open in self.tracker.open.values_mut() {
                let rows = stmt
                    .query_map([open.id], |r| {
                        Ok((r.get::<_, u32>(0)?, r.get::<_, u32>(1)?))
                    })
                    .map_err(&err)?;
                open.owners = rows.collect::<rusqlite::Result<_>>().map_err(&err)?;
                open.owners.sort_unstable();
            }
        }
        tx.commit().map_err(&err)
    }

    /// Record one poll taken at `at_ms`: the sockets of `snapshot`, the
    /// connections the kernel said it destroyed since the last poll
    /// (`closed`), and what could not be seen (the report's gaps and
    /// `notes`, e.g. that destroy notifications were not available).
    pub fn poll(
        &mut self,
        snapshot: &Snapshot,
        at_ms: i64,
        took_us: u64,
        closed: &[Closed],
        notes: &[String],
    ) -> Result<PollOutcome> {
        let mut not_seen = unseen(&snapshot.report);
        not_seen.extend(notes.iter().cloned());
        let every = (self.retention_ms / 2).min(60_000);
        let expire_now = self.last_expiry.is_none_or(|t| at_ms - t >= every);
        let cutoff = at_ms - self.retention_ms;
        let tx = self.conn.transaction().map_err(sqlite(&self.path))?;
        let out = self
            .tracker
            .poll(&tx, snapshot, at_ms, took_us, closed, &not_seen)
            .and_then(|mut out| {
                // The retention window, once a minute (or twice a window,
                // for a window under two minutes).
                if expire_now {
                    out.expired = expire(&tx, cutoff)?;
                }
                tx.execute(
                    "UPDATE polls SET sockets = ?2, opened = ?3, closed = ?4, notifications = ?5 WHERE id = ?1",
                    params![out.id, out.sockets as i64, out.opened as i64, out.closed as i64, out.notifications as i64],
                )?;
                Ok(out)
            })
            .map_err(sqlite(&self.path))?;
        tx.commit().map_err(sqlite(&self.path))?;
        if expire_now {
            self.last_expiry = Some(at_ms);
        }
        Ok(out)
    }

    /// Connections open at the last poll.
    pub fn open_connections(&self) -> usize {
        self.tracker.open.len()
    }
}

impl Tracker {
    /// One poll, in `tx`: its row, the notifications, its sockets, and the
    /// connections it no longer finds.
    fn poll(
        &mut self,
        tx: &Transaction<'_>,
        snapshot: &Snapshot,
        at_ms: i64,
        took_us: u64,
        closed: &[Closed],
        not_seen: &[String],
    ) -> rusqlite::Result<PollOutcome> {
        self.generation += 1;
        let mut out = PollOutcome::default();
        let mut recent = Recent::default();
        self.namespaces_read(tx, snapshot, at_ms)?;
        out.id = self.poll_row(tx, snapshot, at_ms, took_us, not_seen)?;
        for c in closed {
            self.notified(tx, c, &mut recent, &mut out)?;
        }
        for (i, kept) in snapshot.sockets.iter().enumerate() {
            let inode = kept.namespace.as_ref().map_or(self.own_netns, |n| n.inode);
            let ns = (inode, self.namespaces[&inode]);
            self.seen(tx, &snapshot.entry(i), ns, at_ms, &mut recent, &mut out)?;
        }
        self.missing(tx, at_ms, &mut recent, &mut out)?;
        self.recent = recent;
        // Every connection still open was seen by this poll.
        tx.prepare_cached(
            "UPDATE connections SET last_seen = ?1 WHERE closed_at IS NULL AND boot = ?2 AND last_seen < ?1",
        )?
        .execute(params![at_ms, self.boot])?;
        Ok(out)
    }

    /// The namespaces the poll read: (inode, `namespaces.id`) of each.
    fn namespaces_read(
        &mut self,
        tx: &Transaction<'_>,
        snapshot: &Snapshot,
        at_ms: i64,
    ) -> rusqlite::Result<Vec<(u64, i64)>> {
        let mut ids = Vec::with_capacity(snapshot.namespaces.len());
        for ns in &snapshot.namespaces {
            let inode = ns.as_ref().map_or(self.own_netns, |n| n.inode);
            let name = ns.as_ref().and_then(|n| n.name.as_deref());
            let id = namespace_row(tx, self.boot, inode, name, at_ms)?;
            self.namespaces.insert(inode, id);
            ids.push((inode, id));
        }
        Ok(ids)
    }

    /// The poll's own row (its counts are written at the end): its id.
    fn poll_row(
        &self,
        tx: &Transaction<'_>,
        snapshot: &Snapshot,
        at_ms: i64,
        took_us: u64,
        not_seen: &[String],
    ) -> rusqlite::Result<i64> {
        let mut sources: Vec<&str> = snapshot
            .report
            .read
            .iter()
            .map(|r| r.source.as_str())
            .collect();
        sources.sort_unstable();
        sources.dedup();
        tx.execute(
            "INSERT INTO polls (at, boot, source, namespaces, sockets, opened, closed, notifications, took_us, not_seen)
             VALUES (?1, ?2, ?3, ?4, 0, 0, 0, 0, ?5, ?6)",
            params![
                at_ms,
                self.boot,
                sources.join("+"),
                snapshot.namespaces.len() as i64,
                took_us as i64,
                (!not_seen.is_empty()).then(|| not_seen.join("\n")),
            ],
        )?;
        Ok(tx.last_insert_rowid())
    }

    /// A destroy notification: the connection's end, with its final
    /// counters.
    fn notified(
        &mut self,
        tx: &Transaction<'_>,
        c: &Closed,
        recent: &mut Recent,
        out: &mut PollOutcome,
    ) -> rusqlite::Result<()> {
        let netns = if c.netns == 0 {
            self.own_netns
        } else {
            c.netns
        };
        let key = Key::of(netns, &c.socket.socket, Some(&c.socket.diag));
        let entry = Entry {
            socket: &c.socket.socket,
            diag: Some(&c.socket.diag),
            source: crate::model::Source::Netlink,
            namespace: None,
            owners: None,
        };
        out.notifications += 1;
        let ends = (netns, c.socket.socket.local, c.socket.socket.remote);
        let id = if let Some(open) = self.open.remove(&key) {
            update_row(tx, open.id, &entry, c.at_ms, open.status)?;
            if entry.socket.state != open.state {
                state_change(tx, open.id, c.at_ms, entry.socket.state)?;
            }
            close_row(tx, open.id, c.at_ms, "destroy")?;
            out.closed += 1;
            recent.by_ends.insert(ends, (open.id, key));
            open.id
        } else if let Some(id) = self.recent.get(&key).or(recent.get(&key)) {
            // Missed by the last poll, notified now: its counters and the
            // kernel's time of the end.
            update_counters(tx, id, &entry)?;
            tx.execute(
                "UPDATE connections SET closed_at = max(first_seen, min(closed_at, ?2)), closed_by = 'destroy' WHERE id = ?1",
                params![id, c.at_ms],
            )?;
            id
        } else {
            // Opened and closed between two polls: seen only now.
            let ns_id = match self.namespaces.get(&netns) {
                Some(&id) => id,
                None => {
                    let id = namespace_row(tx, self.boot, netns, None, c.at_ms)?;
                    self.namespaces.insert(netns, id);
                    id
                }
            };
            let id = insert_row(tx, self.boot, ns_id, &entry, c.at_ms, Some("destroy"))?;
            out.opened += 1;
            out.closed += 1;
            recent.by_ends.insert(ends, (id, key));
            id
        };
        recent.by_key.insert(key, id);
        Ok(())
    }

    /// A socket of the poll (`out.id`): its connection's row (new, updated,
    /// or open again), owners and accept queue.
    fn seen(
        &mut self,
        tx: &Transaction<'_>,
        entry: &Entry<'_>,
        (netns, ns_id): (u64, i64),
        at_ms: i64,
        recent: &mut Recent,
        out: &mut PollOutcome,
    ) -> rusqlite::Result<()> {
        let key = Key::of(netns, entry.socket, entry.diag);
        out.sockets += 1;
        let status = rank(entry.owners.map(|o| o.as_str()));
        let open = match self.open.get_mut(&key) {
            Some(open) => {
                let best = open.status.max(status);
                let now = fingerprint(entry, best);
                if now != open.fingerprint {
                    update_row(tx, open.id, entry, at_ms, best)?;
                    open.fingerprint = now;
                }
                if entry.socket.state != open.state {
                    state_change(tx, open.id, at_ms, entry.socket.state)?;
                    open.state = entry.socket.state;
                }
                open.status = best;
                open
            }
            None => {
                let ends = (netns, entry.socket.local, entry.socket.remote);
                let time_wait = entry.socket.state == State::TimeWait;
                let reopened = self.recent.get(&key).or(recent.get(&key)).or_else(|| {
                    time_wait
                        .then(|| self.recent.by_ends(&ends).or(recent.by_ends(&ends)))
                        .flatten()
                });
                let (id, stored) = match reopened {
                    // The same connection, still in the table (its
                    // TIME_WAIT): open again.
                    Some(id) => {
                        tx.execute(
                            "UPDATE connections SET closed_at = NULL, closed_by = NULL WHERE id = ?1",
                            [id],
                        )?;
                        tx.execute(
                            "UPDATE lifetimes SET end_s = ?2 WHERE id = ?1",
                            params![id, OPEN_END],
                        )?;
                        recent.forget(&key, &ends);
                        self.recent.forget(&key, &ends);
                        out.closed = out.closed.saturating_sub(1);
                        update_row(tx, id, entry, at_ms, status)?;
                        state_change(tx, id, at_ms, entry.socket.state)?;
                        let stored: Option<String> = tx.query_row(
                            "SELECT owner_status FROM connections WHERE id = ?1",
                            [id],
                            |r| r.get(0),
                        )?;
                        (id, rank(stored.as_deref()))
                    }
                    None => {
                        out.opened += 1;
                        (insert_row(tx, self.boot, ns_id, entry, at_ms, None)?, 0)
                    }
                };
                let best = status.max(stored);
                self.open.entry(key).or_insert(Open {
                    id,
                    state: entry.socket.state,
                    status: best,
                    owners: Vec::new(),
                    generation: self.generation,
                    fingerprint: fingerprint(entry, best),
                })
            }
        };
        open.generation = self.generation;
        if let Some(Ownership::Owned(owners)) = entry.owners {
            for o in owners {
                let k = (o.pid, o.fd);
                if let Err(at) = open.owners.binary_search(&k) {
                    tx.prepare_cached(
                        "INSERT OR IGNORE INTO owners (connection, pid, fd, command, first_seen) VALUES (?1, ?2, ?3, ?4, ?5)",
                    )?
                    .execute(params![open.id, o.pid, o.fd, &*o.command, at_ms])?;
                    open.owners.insert(at, k);
                }
            }
        }
        if entry.socket.state == State::Listen {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO listen_queues (poll, connection, queued, backlog_limit) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![
                out.id,
                open.id,
                entry.socket.rx_queue,
                entry.diag.and_then(|d| d.backlog_limit)
            ])?;
        }
        Ok(())
    }

    /// Open at the last poll, missing from this one: closed since.
    fn missing(
        &mut self,
        tx: &Transaction<'_>,
        at_ms: i64,
        recent: &mut Recent,
        out: &mut PollOutcome,
    ) -> rusqlite::Result<()> {
        let generation = self.generation;
        let gone: Vec<Key> = self
            .open
            .iter()
            .filter(|(_, o)| o.generation != generation)
            .map(|(k, _)| *k)
            .collect();
        for key in gone {
            let open = self.open.remove(&key).expect("listed above");
            close_row(tx, open.id, at_ms, "poll")?;
            out.closed += 1;
            recent.by_key.insert(key, open.id);
        }
        Ok(())
    }
}

/// What a query's report says could not be seen, one sentence each.
pub fn unseen(report: &Report) -> Vec<String> {
    let mut out = Vec::new();
    for read in &report.read {
        let target = read
            .namespace
            .as_ref()
            .map(|n| format!(" in network namespace {}", n.label()))
            .unwrap_or_default();
        if let crate::query::Why::Fallback(why) = &read.why {
            out.push(format!(
                "read from /proc{target} (netlink unavailable: {why}): no cookies, counters or destroy notifications"
            ));
        }
        if read.interrupted {
            out.push(format!(
                "the kernel's tables changed during the dump{target}: a socket may be missing"
            ));
        }
        if read.skipped_lines > 0 {
            out.push(format!(
                "{} malformed line(s) skipped{target}",
                read.skipped_lines
            ));
        }
    }
    for n in &report.not_inspected {
        if let NotInspectedReason::PermissionDenied(why) = &n.reason {
            out.push(format!(
                "network namespace {} not inspected: {why}",
                n.namespace.label()
            ));
        }
    }
    if report.processes_unreadable > 0 {
        out.push(format!(
            "the network namespace of {} process(es) could not be read (permission denied)",
            report.processes_unreadable
        ));
    }
    if let Some(owners) = &report.owners {
        if owners.denied > 0 {
            out.push(format!(
                "{} process(es) could not be inspected: the owners of their sockets are unknown",
                owners.denied
            ));
        }
    }
    out
}

fn namespace_row(
    tx: &Transaction<'_>,
    boot: i64,
    inode: u64,
    name: Option<&str>,
    at_ms: i64,
) -> rusqlite::Result<i64> {
    tx.prepare_cached(
        "INSERT INTO namespaces (boot, inode, name, first_seen, last_seen) VALUES (?1, ?2, ?3, ?4, ?4)
         ON CONFLICT (boot, inode) DO UPDATE SET last_seen = max(last_seen, ?4), name = coalesce(?3, name)",
    )?
    .execute(params![boot, inode as i64, name, at_ms])?;
    tx.prepare_cached("SELECT id FROM namespaces WHERE boot = ?1 AND inode = ?2")?
        .query_row(params![boot, inode as i64], |r| r.get(0))
}

fn counters(entry: &Entry<'_>) -> [Option<i64>; 4] {
    match entry.diag.and_then(|d| d.tcp_info.as_deref()) {
        None => [None; 4],
        Some(i) => [
            Some(i.bytes_acked as i64),
            Some(i.bytes_received as i64),
            Some(i64::from(i.total_retrans)),
            Some(i64::from(i.rtt_us)),
        ],
    }
}

/// A state as stored: the kernel's name (no allocation), or `UNKNOWN(0x..)`.
pub(super) fn state_name(state: State) -> Cow<'static, str> {
    state
        .kernel_name()
        .map_or_else(|| state.to_string().into(), Cow::Borrowed)
}

/// A timer as stored: its name (no allocation), or `unknown(N)`.
pub(super) fn timer_name(kind: TimerKind) -> Cow<'static, str> {
    kind.name()
        .map_or_else(|| kind.to_string().into(), Cow::Borrowed)
}

/// Time to the timer's expiry in ms: netlink's own, else /proc's ticks.
fn timer_ms(entry: &Entry<'_>) -> i64 {
    let s = entry.socket;
    entry
        .diag
        .map_or(s.timer.expires.as_millis(), |d| u64::from(d.timer_ms)) as i64
}

/// A new connection's row, first seen at `at_ms` (and closed then, by
/// `closed_by`, for one known only from its destroy notification). Its
/// first state is `first_state`: `state_changes` holds the changes after it.
fn insert_row(
    tx: &Transaction<'_>,
    boot: i64,
    netns: i64,
    entry: &Entry<'_>,
    at_ms: i64,
    closed_by: Option<&str>,
) -> rusqlite::Result<i64> {
    let s = entry.socket;
    let d = entry.diag;
    let state = state_name(s.state);
    let [acked, received, retrans, rtt] = counters(entry);
    tx.prepare_cached(
        "INSERT INTO connections (boot, netns, cookie, first_seen, last_seen, first_state, family, kind, state,
             local_address, local_port, remote_address, remote_port, tx_queue, rx_queue, timer, timer_ms,
             retransmits, uid, probes, inode, source, interface, backlog_limit, congestion_algorithm,
             shutdown, v6only, owner_status, bytes_acked, bytes_received, total_retrans, rtt_us,
             closed_at, closed_by)
         VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6, ?7, ?5, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,
             ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30,
             CASE WHEN ?31 IS NULL THEN NULL ELSE ?4 END, ?31)",
    )?
    .execute(params![
        boot,
        netns,
        d.map(|d| d.cookie as i64).filter(|&c| c != 0),
        at_ms,
        state,
        s.family.as_str(),
        s.kind.as_str(),
        s.local.ip().to_string(),
        s.local.port(),
        s.remote.ip().to_string(),
        s.remote.port(),
        s.tx_queue,
        s.rx_queue,
        timer_name(s.timer.kind),
        timer_ms(entry),
        s.retransmits,
        s.uid,
        s.probes,
        s.inode as i64,
        entry.source.as_str(),
        d.map(|d| d.interface),
        d.and_then(|d| d.backlog_limit),
        d.and_then(|d| d.congestion_algorithm.as_deref()),
        d.and_then(|d| d.shutdown),
        d.and_then(|d| d.v6only),
        entry.owners.map(|o| o.as_str()),
        acked,
        received,
        retrans,
        rtt,
        closed_by,
    ])?;
    let id = tx.last_insert_rowid();
    let end = if closed_by.is_some() {
        ceil_s(at_ms)
    } else {
        OPEN_END
    };
    tx.prepare_cached("INSERT INTO lifetimes (id, start_s, end_s) VALUES (?1, ?2, ?3)")?
        .execute(params![id, floor_s(at_ms), end])?;
    Ok(id)
}

/// The SQL that sets the four counters from the parameters named: the byte
/// and retransmission counts keep their highest value, the round-trip time
/// its last that was not 0 (see [`update_row`]).
macro_rules! keep_counters {
    ($acked:literal, $received:literal, $retrans:literal, $rtt:literal) => {
        concat!(
            "bytes_acked = CASE WHEN bytes_acked > ",
            $acked,
            " THEN bytes_acked ELSE coalesce(",
            $acked,
            ", bytes_acked) END, ",
            "bytes_received = CASE WHEN bytes_received > ",
            $received,
            " THEN bytes_received ELSE coalesce(",
            $received,
            ", bytes_received) END, ",
            "total_retrans = CASE WHEN total_retrans > ",
            $retrans,
            " THEN total_retrans ELSE coalesce(",
            $retrans,
            ", total_retrans) END, ",
            "rtt_us = CASE WHEN ",
            $rtt,
            " > 0 THEN ",
            $rtt,
            " ELSE coalesce(rtt_us, ",
            $rtt,
            ") END"
        )
    };
}

/// The row as the socket is now: last seen, state, queues, timer, owner
/// status (`status`, the best seen) and counters. The byte and
/// retransmission counters only grow: a lower value is the kernel's reset
/// of a connection closed with SO_LINGER 0 (tcp_disconnect zeroes them
/// before the destroy notification), and the higher one seen is kept, as
/// is the last round-trip time that was not 0.
fn update_row(
    tx: &Transaction<'_>,
    id: i64,
    entry: &Entry<'_>,
    at_ms: i64,
    status: u8,
) -> rusqlite::Result<()> {
    let s = entry.socket;
    let d = entry.diag;
    let [acked, received, retrans, rtt] = counters(entry);
    tx.prepare_cached(concat!(
        "UPDATE connections SET last_seen = max(last_seen, ?2), state = ?3, kind = ?4, tx_queue = ?5,
             rx_queue = ?6, timer = ?7, timer_ms = ?8, retransmits = ?9, probes = ?10,
             inode = CASE WHEN ?11 != 0 THEN ?11 ELSE inode END,
             owner_status = coalesce(?12, owner_status),
             congestion_algorithm = coalesce(?13, congestion_algorithm), shutdown = coalesce(?14, shutdown), ",
        keep_counters!("?15", "?16", "?17", "?18"),
        " WHERE id = ?1"
    ))?
    .execute(params![
        id,
        at_ms,
        state_name(s.state),
        s.kind.as_str(),
        s.tx_queue,
        s.rx_queue,
        timer_name(s.timer.kind),
        timer_ms(entry),
        s.retransmits,
        s.probes,
        s.inode as i64,
        (status > 0).then(|| STATUSES[status as usize]),
        d.and_then(|d| d.congestion_algorithm.as_deref()),
        d.and_then(|d| d.shutdown),
        acked,
        received,
        retrans,
        rtt,
    ])?;
    Ok(())
}

fn update_counters(tx: &Transaction<'_>, id: i64, entry: &Entry<'_>) -> rusqlite::Result<()> {
    let [acked, received, retrans, rtt] = counters(entry);
    tx.execute(
        concat!(
            "UPDATE connections SET ",
            keep_counters!("?2", "?3", "?4", "?5"),
            " WHERE id = ?1"
        ),
        params![id, acked, received, retrans, rtt],
    )?;
    Ok(())
}

fn state_change(tx: &Transaction<'_>, id: i64, at_ms: i64, state: State) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT OR IGNORE INTO state_changes (connection, at, state) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![id, at_ms, state_name(state)])?;
    Ok(())
}

fn close_row(tx: &Transaction<'_>, id: i64, at_ms: i64, by: &str) -> rusqlite::Result<()> {
    // Never before its first sighting, nor its index entry before its
    // start (which the R*Tree refuses): the clock can be set back.
    tx.prepare_cached(
        "UPDATE connections SET closed_at = max(?2, first_seen), closed_by = ?3 WHERE id = ?1",
    )?
    .execute(params![id, at_ms, by])?;
    tx.prepare_cached("UPDATE lifetimes SET end_s = max(?2, start_s) WHERE id = ?1")?
        .execute(params![id, ceil_s(at_ms)])?;
    Ok(())
}

/// Delete what ended before `cutoff_ms`: connections (with their owners
/// and state changes), polls (with their listen queues), namespaces last
/// seen an hour before (their connections ended before the cutoff). The
/// freed pages are reused, so the file stops growing once the window is
/// full. Returns the connections deleted.
fn expire(tx: &Transaction<'_>, cutoff_ms: i64) -> rusqlite::Result<u64> {
    let ids: Vec<i64> = {
        let mut stmt = tx.prepare("SELECT id FROM lifetimes WHERE end_s < ?1")?;
        let rows = stmt.query_map([floor_s(cutoff_ms)], |r| r.get(0))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    for id in &ids {
        for sql in [
            "DELETE FROM owners WHERE connection = ?1",
            "DELETE FROM state_changes WHERE connection = ?1",
            "DELETE FROM connections WHERE id = ?1",
            "DELETE FROM lifetimes WHERE id = ?1",
        ] {
            tx.prepare_cached(sql)?.execute([id])?;
        }
    }
    let first_poll: Option<i64> = tx
        .query_row(
            "SELECT min(id) FROM polls WHERE at >= ?1",
            [cutoff_ms],
            |r| r.get(0),
        )
        .optional()?
        .flatten();
    if let Some(first) = first_poll {
        tx.execute("DELETE FROM polls WHERE id < ?1", [first])?;
        tx.execute("DELETE FROM listen_queues WHERE poll < ?1", [first])?;
    }
    tx.execute(
        "DELETE FROM namespaces WHERE last_seen < ?1",
        [cutoff_ms - 3_600_000],
    )?;
    Ok(ids.len() as u64)
}
