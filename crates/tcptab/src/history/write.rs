//! The recorder's side: [`Writer`] keeps what the connection tracker
//! ([`crate::track`]) says happened, one transaction per poll: a row per
//! connection opened, its changes, its end, and the poll's own row.

use super::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::{params, Connection};

use super::columns::{lived, SETTLE};
use super::read::bad_row;
use super::rows;
use super::session::{poll_row, PollOutcome, PollRecord, Row, Session};
use super::{
    check, check_header, migration, schema, sqlite, Error, Result, APPLICATION_ID, VERSION,
};
use crate::model::Owners;
use crate::track::{Conn, Counters, End, Event, Tracker};

/// How every connection that writes a history file commits (the
/// recorder's writer and its shipper, [`super::Outbox`]): synchronous
/// NORMAL in WAL, and a checkpoint once the WAL holds 8,192 pages. Any
/// connection's commit checkpoints when the WAL is past its own limit, so
/// one with SQLite's default (1,000 pages) would copy the writer's pages
/// into the file every time it commits, and wait for the disk.
pub(super) const COMMITS: &str = "PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 8192;";

/// Writes a history database: see the [module](super) documentation.
#[derive(Debug)]
pub struct Writer {
    conn: Connection,
    path: PathBuf,
    retention_ms: i64,
    last_expiry: Option<i64>,
    /// Holds the one-recorder lock while the writer lives.
    _lock: std::fs::File,
    boot: i64,
    /// This process's network namespace (the inode of [`Namespaces::Current`](crate::query::Namespaces::Current)).
    own_netns: u64,
    /// Namespace inode to `namespaces.id`.
    namespaces: HashMap<u64, i64>,
    /// The tracker's connection id to its row.
    rows: HashMap<u64, Row>,
    /// cgroup path to `workloads.id`.
    workloads: HashMap<String, i64>,
    /// The tracker's connections whose open row does not follow the polls
    /// (the last one did not find them): they keep their own `last_seen`.
    pinned: HashSet<u64>,
    /// Polls recorded.
    polls: u64,
    /// In a file shipped from (now, with [`Writer::ship`], or by an
    /// earlier recorder): the next transaction's number, which the rows
    /// it changes keep, to be shipped (by the next recorder that ships,
    /// when this one does not).
    seq: Option<i64>,
    /// Who is told what each transaction changed (shipping on).
    teller: Option<super::outbox::Teller>,
}

impl Writer {
    /// Open the database at `path`, creating it (and its tables) if it does
    /// not exist or is empty, keeping `retention_ms` of history. Refuses a
    /// file that is not a tcptab history database (from its header, before
    /// SQLite opens it); takes a file of an earlier version up to this one.
    pub fn open(path: &Path, retention_ms: i64) -> Result<Writer> {
        let err = sqlite(path);
        let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
        if let Some(dir) = parent.filter(|d| !d.is_dir()) {
            return Err(Error::Io {
                path: path.to_path_buf(),
                what: format!("{} is not a directory that exists", dir.display()),
            });
        }
        let lock = lock(path)?;
        let existing = std::fs::metadata(path).map_or(0, |m| m.len());
        if existing > 0 {
            let mut header = [0u8; 100];
            let n = read_head(&lock, &mut header).map_err(|e| Error::Io {
                path: path.to_path_buf(),
                what: e.to_string(),
            })?;
            check_header(&header[..n], path)?;
        }
        let conn = Connection::open(path).map_err(&err)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(&err)?;
        let version = (existing > 0).then(|| check(&conn, path)).transpose()?;
        match version {
            // The ids go in the file's own header before the journal turns
            // to WAL, so that a look at its first bytes finds them.
            None => conn
                .execute_batch(&format!(
                    "PRAGMA application_id = {APPLICATION_ID};
                     PRAGMA user_version = {VERSION};
                     BEGIN;
                     {schema}
                     INSERT INTO meta VALUES ('created', {now}), ('tcptab', '{version}');
                     COMMIT;
                     PRAGMA journal_mode = WAL;",
                    schema = schema(),
                    now = crate::time::now_ms(),
                    version = env!("CARGO_PKG_VERSION"),
                ))
                .map_err(&err)?,
            Some(v) if v < VERSION => {
                let mut steps = String::from("BEGIN;");
                for from in v..VERSION {
                    steps.push_str(&migration(from));
                }
                if v <= 5 && super::outbox::version_5_outbox(&conn).map_err(&err)? {
                    steps.push_str(super::outbox::FROM_VERSION_5);
                }
                steps.push_str(&format!("PRAGMA user_version = {VERSION}; COMMIT;"));
                conn.execute_batch(&steps).map_err(&err)?;
            }
            Some(_) => {}
        }
        // WAL with synchronous=NORMAL: a killed recorder loses at most the
        // transaction it was writing, never the file. A page cache of 16
        // MiB (SQLite's default is 2): the close of a TIME_WAIT updates the
        // row its connection wrote a minute before, which under churn (7
        // MiB of rows a minute at 1,000 notifications a second) a smaller
        // cache has let go, to read it again and spill the transaction's
        // pages to the WAL before its commit. A checkpoint every 8,192
        // pages of WAL (32 MiB, SQLite's default is 1,000), not every 20 s or
        // so under that churn: a page changed by an insert and by that close
        // a minute later is then mostly copied into the file once.
        conn.execute_batch(&format!(
            "PRAGMA journal_mode = WAL;
             PRAGMA journal_size_limit = 67108864;
             PRAGMA cache_size = -16384;
             {COMMITS}"
        ))
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
        // The machine, so that a fleet's files merge by it.
        let host = crate::model::Host::read();
        conn.execute(
            "INSERT OR REPLACE INTO meta VALUES ('hostname', ?1), ('machine_id', ?2)",
            params![host.hostname, host.machine_id],
        )
        .map_err(&err)?;
        // The file's own id: what tells two recorders of one machine apart
        // in a fleet's store.
        let recorder = std::fs::read_to_string("/proc/sys/kernel/random/uuid")
            .map(|u| u.trim().to_string())
            .unwrap_or_else(|_| format!("{}-{}", crate::time::now_ms(), std::process::id()));
        conn.execute(
            "INSERT OR IGNORE INTO meta VALUES ('recorder', ?1)",
            params![recorder],
        )
        .map_err(&err)?;
        let seq = super::outbox::next_seq(&conn).map_err(&err)?;
        let own_netns = std::fs::metadata("/proc/thread-self/ns/net")
            .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
            .unwrap_or(0);
        Ok(Writer {
            conn,
            path: path.to_path_buf(),
            retention_ms,
            last_expiry: None,
            _lock: lock,
            boot,
            own_netns,
            namespaces: HashMap::default(),
            rows: HashMap::default(),
            workloads: HashMap::default(),
            pinned: HashSet::default(),
            polls: 0,
            seq,
            teller: None,
        })
    }

    /// From now on, every row a transaction changes waits to be shipped
    /// to a fleet's store, under the transaction's number; the feed tells
    /// a shipper ([`super::Outbox::fed`]) which rows those are. Turned on
    /// for the first time in a file, every connection it holds waits.
    pub fn ship(&mut self) -> Result<super::Feed> {
        let err = sqlite(&self.path);
        let tx = self.conn.transaction().map_err(&err)?;
        let seq = super::outbox::start(&tx).map_err(&err)?;
        tx.commit().map_err(&err)?;
        let (teller, feed) = super::outbox::feed();
        self.seq = Some(seq);
        self.teller = Some(teller);
        Ok(feed)
    }

    /// Record this host name instead of the machine's (for machines that
    /// share one): in the file and in what is shipped from it.
    pub fn set_hostname(&mut self, name: &str) -> Result<()> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO meta VALUES ('hostname', ?1)",
                [name],
            )
            .map_err(sqlite(&self.path))?;
        Ok(())
    }

    /// The path of the database.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Polls recorded by this writer.
    pub fn polls(&self) -> u64 {
        self.polls
    }

    /// Connections with an open row.
    pub fn open_connections(&self) -> usize {
        self.rows.values().filter(|r| !r.closed).count()
    }

    /// Take up where an earlier recorder left off, into `tracker` (before
    /// its first poll): the connections of this boot still open in the
    /// file, and those its notification closed shortly before its last
    /// poll (their TIME_WAIT may still come); the last poll's time, for
    /// the gap since. Connections of an earlier boot are closed when the
    /// machine restarted, after their last sighting (`closed_by =
    /// 'reboot'`). `named` says whether the recorder's query names
    /// namespaces (with `--netns` and the like its sockets carry theirs;
    /// without, its own namespace is implicit). Returns the connections
    /// taken up.
    pub fn resume(&mut self, tracker: &mut Tracker, named: bool) -> Result<usize> {
        let path = self.path.clone();
        let err = sqlite(&path);
        let tx = self.conn.transaction().map_err(&err)?;
        // An earlier recorder killed left its last poll in `open_seen`.
        tx.execute_batch(SETTLE).map_err(&err)?;
        // Closed by the restart: shipped as any change is.
        let rebooted = close_earlier_boots(&tx, self.boot, self.seq).map_err(&err)?;
        if let Some(seq) = self.seq.filter(|_| !rebooted.is_empty()) {
            super::outbox::mark(&tx, seq).map_err(&err)?;
        }
        let last_poll: Option<i64> = tx
            .query_row(
                "SELECT max(at) FROM polls WHERE boot = ?1",
                [self.boot],
                |r| r.get(0),
            )
            .map_err(&err)?;
        let mut taken = 0;
        if let Some(last_poll) = last_poll {
            let columns = super::columns::COLUMNS;
            let known = super::read::workloads(&tx).map_err(&err)?;
            for (id, w) in &known {
                self.workloads.insert(w.cgroup.clone(), *id);
            }
            let mut stmt = tx
                .prepare(&format!(
                    "SELECT {columns}, c.workload FROM connections c JOIN namespaces n ON n.id = c.netns
                     WHERE c.boot = ?1 AND (c.closed_at IS NULL
                        OR (c.closed_by = 'destroy' AND c.closed_at >= ?2))"
                ))
                .map_err(&err)?;
            let mut found = stmt
                .query(params![self.boot, last_poll - TIME_WAIT_MS])
                .map_err(&err)?;
            let mut owners = tx
                .prepare(
                    "SELECT pid, command, fd FROM owners WHERE connection = ?1 ORDER BY pid, fd",
                )
                .map_err(&err)?;
            while let Some(r) = found.next().map_err(&err)? {
                let mut lived = lived(r).map_err(|e| bad_row(&path, e))?;
                let workload_id: Option<i64> = r.get(35).map_err(&err)?;
                lived.entry.workload = workload_id.and_then(|id| known.get(&id).cloned());
                let has_workload = lived.entry.workload.is_some();
                let list = stored_owners(&mut owners, lived.id).map_err(&err)?;
                let mut stored: Vec<(u32, u32)> = list.iter().map(|o| (o.pid, o.fd)).collect();
                stored.sort_unstable();
                let mut entry = lived.entry;
                let inode = entry.netns();
                self.namespaces.entry(inode).or_insert(0);
                if !named && inode == self.own_netns {
                    entry.namespace = None;
                }
                if matches!(entry.owners, Some(Owners::Owned(_))) {
                    entry.owners = Some(Owners::Owned(list.into()));
                }
                let l = &lived.lifetime;
                let closing = l.closed_at;
                let conn = Conn {
                    id: 0,
                    entry,
                    first_state: lived.first_state,
                    first_seen: l.first_seen,
                    last_seen: l.last_seen,
                    seen_by_poll: true,
                    closed: closing.map(|at| (at, End::Destroy)),
                    ended: None,
                    counters: Counters {
                        bytes_acked: l.bytes_acked,
                        bytes_received: l.bytes_received,
                        total_retrans: l.total_retrans,
                        total_rto: None,
                        rtt_us: l.rtt_us,
                    },
                    last_words: None,
                };
                let id = tracker.resume(conn, closing);
                self.rows.insert(
                    id,
                    Row {
                        id: lived.id,
                        owners: stored,
                        workload: has_workload,
                        closed: closing.is_some(),
                        indexed: true,
                        written: None,
                    },
                );
                taken += usize::from(closing.is_none());
            }
            tracker.resume_polls(last_poll);
        }
        // The rows taken up follow this recorder's polls (its first one
        // puts back those it does not find).
        tx.execute(
            "UPDATE connection_rows SET follows = 1 WHERE closed_at IS NULL AND boot = ?1",
            [self.boot],
        )
        .map_err(&err)?;
        // The namespaces' row ids, looked up again by the first poll.
        self.namespaces.clear();
        tx.commit().map_err(&err)?;
        self.told(rebooted, Vec::new());
        Ok(taken)
    }

    /// A transaction that changed the rows `ids` was committed: the
    /// shipper is told, and the next transaction takes the next number.
    fn told(&mut self, ids: Vec<i64>, closes: Vec<super::rows::Closed>) {
        let Some(seq) = self.seq.as_mut().filter(|_| !ids.is_empty()) else {
            return;
        };
        if let Some(teller) = &self.teller {
            teller.tell(*seq, crate::time::now_ms(), ids, closes);
        }
        *seq += 1;
    }

    /// Write the last poll's time into the open rows that followed the
    /// polls, so that each row's `last_seen` says it alone (for the file's
    /// other readers): what a recorder does when it stops.
    pub fn settle(&mut self) -> Result<()> {
        let tx = self.conn.transaction().map_err(sqlite(&self.path))?;
        tx.execute_batch(SETTLE).map_err(sqlite(&self.path))?;
        tx.commit().map_err(sqlite(&self.path))
    }

    /// Record, in one transaction, what happened since the last call:
    /// `events` in the order they came, then the poll (when there was one;
    /// `tracker` is the one that gave the events, after the poll).
    pub fn record(
        &mut self,
        events: &[Event],
        poll: Option<&PollRecord<'_>>,
        tracker: &Tracker,
    ) -> Result<PollOutcome> {
        let expire_now = poll.is_some_and(|p| {
            let every = (self.retention_ms / 2).min(60_000);
            self.last_expiry.is_none_or(|t| p.at - t >= every)
        });
        let path = self.path.clone();
        let tx = self.conn.transaction().map_err(sqlite(&path))?;
        let mut out = PollOutcome::default();
        let mut state = Session {
            boot: self.boot,
            own_netns: self.own_netns,
            namespaces: &mut self.namespaces,
            rows: &mut self.rows,
            workloads: &mut self.workloads,
            pinned: &mut self.pinned,
            span: None,
            seq: self.seq,
            closes: Vec::new(),
        };
        let seq = state.seq;
        let mut changed = Vec::new();
        let written = (|| -> rusqlite::Result<PollOutcome> {
            if let Some(p) = poll {
                state.namespaces_read(&tx, p)?;
                out.id = poll_row(&tx, state.boot, p)?;
                out.sockets = p.snapshot.sockets.len() as u64;
            }
            state.apply_all(&tx, events, &mut out, &mut changed)?;
            if let Some(span) = state.span {
                span.write(&tx)?;
            }
            if let Some(seq) = seq.filter(|_| !changed.is_empty()) {
                changed.sort_unstable();
                // A close is only its times when nothing else of this
                // transaction wrote its row.
                let once = |id: &i64| changed.partition_point(|c| c <= id) - changed.partition_point(|c| c < id) == 1;
                state.closes.retain(|c| once(&c.id));
                state.closes.sort_unstable_by_key(|c| c.id);
                changed.dedup();
                super::outbox::mark(&tx, seq)?;
            }
            if let Some(p) = poll {
                state.listen_queues(&tx, p, out.id, tracker)?;
                state.last_seen(&tx, p.at, tracker)?;
                if expire_now {
                    out.expired = rows::expire(&tx, p.at - self.retention_ms)?;
                }
                tx.execute(
                    "UPDATE polls SET sockets = ?2, opened = ?3, closed = ?4, notifications = ?5 WHERE id = ?1",
                    params![out.id, out.sockets as i64, out.opened as i64, out.closed as i64, out.notifications as i64],
                )?;
            }
            Ok(out)
        })()
        .map_err(sqlite(&path))?;
        tx.commit().map_err(sqlite(&path))?;
        let closes = std::mem::take(&mut state.closes);
        self.told(changed, closes);
        if expire_now {
            self.last_expiry = poll.map(|p| p.at);
        }
        self.polls += u64::from(poll.is_some());
        Ok(written)
    }
}

/// Close the connections an earlier boot left open: the machine restarted
/// after their last sighting (`closed_by = 'reboot'`); `seq`, shipping's
/// number for the transaction. The rows closed.
fn close_earlier_boots(
    tx: &rusqlite::Transaction<'_>,
    boot: i64,
    seq: Option<i64>,
) -> rusqlite::Result<Vec<i64>> {
    let ended: Vec<(i64, i64, i64)> = {
        let mut stmt = tx.prepare(
            "SELECT id, first_seen, first_seen + last_seen FROM connection_rows WHERE closed_at IS NULL AND boot != ?1",
        )?;
        let rows = stmt.query_map([boot], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let mut hot = rows::Hot::new(tx);
    for &(id, first_seen, last_seen) in &ended {
        rows::close(
            &mut hot,
            id,
            (last_seen, End::Reboot),
            (first_seen, last_seen),
            true,
            seq,
        )?;
    }
    Ok(ended.into_iter().map(|(id, _, _)| id).collect())
}

/// The owners stored for connection row `id` (`owners`, a prepared
/// `SELECT pid, command, fd ... WHERE connection = ?1`).
fn stored_owners(
    owners: &mut rusqlite::Statement<'_>,
    id: i64,
) -> rusqlite::Result<Vec<crate::model::Owner>> {
    owners
        .query_map([id], |r| {
            Ok(crate::model::Owner {
                pid: r.get(0)?,
                command: Arc::from(r.get::<_, String>(1)?),
                fd: r.get(2)?,
            })
        })?
        .collect()
}

/// How long a TIME_WAIT lasts (Linux's TCP_TIMEWAIT_LEN), and a little:
/// a connection its notification closed this long before the last poll
/// may still be found as a TIME_WAIT.
const TIME_WAIT_MS: i64 = 65_000;

/// The one-recorder lock: an advisory lock (flock, apart from SQLite's
/// own locks), released when the process ends, however. Opening the file
/// for it gives the system's reason when it cannot be written (SQLite
/// says only that it could not open it).
fn lock(path: &Path) -> Result<std::fs::File> {
    use std::os::unix::fs::FileTypeExt;
    if let Ok(meta) = std::fs::metadata(path) {
        let ty = meta.file_type();
        if !ty.is_file() {
            let kind = if ty.is_dir() {
                "a directory"
            } else if ty.is_fifo() {
                "a FIFO"
            } else {
                "not a regular file"
            };
            return Err(Error::Io {
                path: path.to_path_buf(),
                what: format!("{kind}, not a history file"),
            });
        }
    }
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
    if rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
        return Err(Error::Io {
            path: path.to_path_buf(),
            what: "another tcptab record is writing it (one recorder per file)".into(),
        });
    }
    Ok(lock)
}

/// The first bytes of `file` into `buf`: how many.
fn read_head(file: &std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    use std::os::unix::fs::FileExt;
    let mut n = 0;
    while n < buf.len() {
        match file.read_at(&mut buf[n..], n as u64)? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}
