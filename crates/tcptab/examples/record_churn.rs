//! The recorder's own work under churn, without the kernel: the tracker
//! and the history writer fed the polls and destroy notifications of
//! `bench/history.sh`'s scene, made up in memory. HELD connections (both
//! ends, with tcp_info and an owner) stay open; RATE connections a second
//! open and close, the client first: the server's socket is notified
//! destroyed, the client's as it turns into TIME_WAIT, which later polls
//! find (60 s) and which then expires. Polls every 5 s over SECONDS of
//! made-up time; the notifications are given to the tracker in batches of
//! a tenth of a second, as the recorder takes them, and written with the
//! poll after them, in its transaction, as the recorder writes them.
//! Prints the CPU time per notification of the tracker and of the writer
//! apart (a measure that does not move with the machine's other load as
//! the live scene does) and the closed file's size per notification. With `KEEP` set in the
//! environment the file is kept (its path printed) for a look with
//! `sqlite3` (`dbstat`). With `SHIP` set, shipping is on: every other
//! poll, the outbox is read in batches of 10,000 rows as a shipper reads
//! it and acknowledged (no store, no compression: the cost of the spool
//! alone), timed apart; with `COMPRESS` set too (and `--features fleet`),
//! each batch is compressed as the shipper sends it (ClickHouse's LZ4
//! blocks; BENCHMARKS.md's older sections set `GZIP`, when it was gzip). With `WORKLOAD` set, the server's end of each
//! churned connection is notified with a workload (as a live recorder
//! gives it its listener's).
//!
//!   cargo run --release --example record_churn --features history -- [HELD] [RATE] [SECONDS]

use std::sync::Arc;
use std::time::{Duration, Instant};

use tcptab::history::{Outbox, PollRecord, Writer};
use tcptab::track::{Event, TrackOptions, Tracker};
use tcptab::{
    Diag, DiagSocket, EntryBuf, Family, Owner, Owners, RowKind, Snapshot, Socket, State, TcpInfo,
    TimerKind, Workload,
};

const T0: i64 = 1_800_000_000_000;
const POLL_MS: i64 = 5_000;
const BATCH_MS: i64 = 100;
const TIME_WAIT_MS: i64 = 60_000;

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("HELD RATE SECONDS: numbers"))
        .collect();
    let held = args.first().copied().unwrap_or(10_000);
    let rate = args.get(1).copied().unwrap_or(500);
    let seconds = args.get(2).copied().unwrap_or(120) as i64;
    let dir = std::env::temp_dir().join(format!("tcptab-record-churn-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("churn.db");
    let mut writer = Writer::open(&db, 7 * 86_400_000).expect("a history file");
    let mut outbox = std::env::var_os("SHIP").map(|_| {
        let feed = writer.ship().unwrap();
        Outbox::open(&db).unwrap().fed(feed)
    });
    let (mut shipping, mut shipped, mut shipped_bytes) = (Duration::ZERO, 0u64, 0u64);
    let mut compressing = Duration::ZERO;
    let mut tracker = Tracker::new(TrackOptions {
        queue_threshold: None,
        gap_after_ms: Some(3 * POLL_MS + 1000),
    });
    tracker.set_notified(0, true);
    let mut scene = Scene::new(held);
    let (mut tracking, mut writing) = (Duration::ZERO, Duration::ZERO);
    let mut notifications = 0u64;
    let workload = std::env::var_os("WORKLOAD")
        .map(|_| Arc::new(Workload::from_cgroup("/system.slice/churn.service")));
    let mut events: Vec<Event> = Vec::new();
    let per_batch = rate * BATCH_MS as u64 / 1000;
    let mut now = T0;
    while now < T0 + seconds * 1000 {
        // A poll, then a poll interval of notifications in batches.
        let snapshot = scene.snapshot(now);
        let t = Instant::now();
        tracker.polled(&snapshot, now, &mut events);
        tracking += t.elapsed();
        let record = PollRecord {
            at: now,
            took_us: 0,
            interval_ms: POLL_MS,
            snapshot: &snapshot,
            notes: &[],
        };
        let t = Instant::now();
        writer.record(&events, Some(&record), &tracker).unwrap();
        writing += t.elapsed();
        events.clear();
        for batch in 0..POLL_MS / BATCH_MS {
            let at = now + batch * BATCH_MS;
            let t = Instant::now();
            for i in 0..per_batch {
                let when = at + (i as i64 * BATCH_MS) / per_batch.max(1) as i64;
                let [client, server] = scene.churn(when);
                tracker.notified(0, when, client, &mut events);
                tracker.notified_with(0, when, server, workload.clone(), &mut events);
                notifications += 2;
            }
            tracking += t.elapsed();
        }
        if let Some(outbox) = outbox.as_mut().filter(|_| (now - T0) % (2 * POLL_MS) == 0) {
            let t = Instant::now();
            let (rows, bytes) = ship(outbox, &mut compressing);
            shipped += rows;
            shipped_bytes += bytes;
            shipping += t.elapsed();
        }
        now += POLL_MS;
    }
    writer.settle().unwrap();
    // Closed (the last of its connections), SQLite moves the write-ahead
    // log into the file.
    drop(writer);
    let shipping_on = outbox.is_some();
    drop(outbox);
    let size = std::fs::metadata(&db).map_or(0, |m| m.len());
    let per = |d: Duration| d.as_secs_f64() * 1e6 / notifications as f64;
    println!(
        "{held} held, {rate} a second, {seconds} s: {notifications} notifications; per notification: tracker {:.1} us, writer {:.1} us, both {:.1} us; file {:.1} MiB, {} bytes per notification",
        per(tracking),
        per(writing),
        per(tracking + writing),
        size as f64 / (1 << 20) as f64,
        size / notifications.max(1)
    );
    if shipping_on {
        println!(
            "shipping: {shipped} rows ({} closes made from kept rows), {:.1} us per notification, {:.1} us per row, {} bytes per row",
            KEPT_ROWS.load(std::sync::atomic::Ordering::Relaxed),
            per(shipping),
            shipping.as_secs_f64() * 1e6 / shipped.max(1) as f64,
            shipped_bytes / shipped.max(1)
        );
        if std::env::var_os("COMPRESS").is_some() {
            let per_row = compressing.as_secs_f64() * 1e6 / shipped.max(1) as f64;
            println!("of which compressing: {per_row:.2} us per row");
        }
    }
    if std::env::var_os("KEEP").is_some() {
        println!("kept: {}", db.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// Rows shipped as closes made from rows the outbox kept.
static KEPT_ROWS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// What a shipper does with the outbox, but send: its batches read and
/// acknowledged until it is empty. The rows read, and their bytes
/// (`RowBinary`, before it is compressed).
fn ship(outbox: &mut Outbox, compressing: &mut Duration) -> (u64, u64) {
    let (mut rows, mut bytes) = (0, 0);
    loop {
        let batch = outbox.connections(10_000).unwrap();
        if batch.rows == 0 {
            return (rows, bytes);
        }
        std::hint::black_box((&batch.body, &batch.changes));
        if std::env::var_os("COMPRESS").is_some() {
            let t = Instant::now();
            compress(&batch.body, &batch.changes);
            *compressing += t.elapsed();
        }
        outbox.acked(&batch).unwrap();
        KEPT_ROWS.fetch_add(batch.kept_rows as u64, std::sync::atomic::Ordering::Relaxed);
        rows += batch.rows as u64;
        bytes += batch.body.len() as u64;
        outbox.recycle(batch);
    }
}

/// Both bodies as the shipper sends them.
#[cfg(feature = "fleet")]
fn compress(body: &[u8], changes: &[u8]) {
    std::hint::black_box((
        tcptab::fleet::compress(body),
        tcptab::fleet::compress(changes),
    ));
}

#[cfg(not(feature = "fleet"))]
fn compress(_: &[u8], _: &[u8]) {
    eprintln!("record_churn: COMPRESS needs --features fleet");
    std::process::exit(2);
}

/// The made-up table: the held connections and the churn's TIME_WAITs.
struct Scene {
    held: Vec<DiagSocket>,
    /// (expires at, the TIME_WAIT socket) of the churn's clients.
    time_waits: std::collections::VecDeque<(i64, DiagSocket)>,
    next_port: u32,
    next_cookie: u64,
    owner: Owners,
}

impl Scene {
    fn new(held: u64) -> Scene {
        let owner = Owners::Owned(Arc::from([Owner {
            pid: 4242,
            command: "holder".into(),
            fd: 3,
        }]));
        let mut scene = Scene {
            held: Vec::new(),
            time_waits: Default::default(),
            next_port: 0,
            next_cookie: 1,
            owner,
        };
        for _ in 0..held {
            let (client, server) = scene.pair(State::Established);
            scene.held.push(client);
            scene.held.push(server);
        }
        scene
    }

    /// Both ends of a new connection on loopback, in `state`.
    fn pair(&mut self, state: State) -> (DiagSocket, DiagSocket) {
        self.next_port += 1;
        let port = 10_000 + (self.next_port % 50_000) as u16;
        let server_port = 5_000 + (self.next_port / 50_000) as u16;
        let client = (port, server_port);
        let server = (server_port, port);
        let make = |(local, remote): (u16, u16), cookie: u64| {
            let mut s = Socket::empty(Family::Ipv4, RowKind::Full);
            s.state = state;
            s.local = format!("127.0.0.1:{local}").parse().unwrap();
            s.remote = format!("127.0.0.1:{remote}").parse().unwrap();
            s.inode = cookie;
            let mut diag = Diag::default();
            diag.cookie = cookie;
            diag.tcp_info = Some(Arc::new(TcpInfo {
                bytes_acked: 100,
                bytes_received: 100,
                rtt_us: 50,
                ..TcpInfo::default()
            }));
            diag.congestion_algorithm = Some("cubic".into());
            DiagSocket { socket: s, diag }
        };
        let c = make(client, self.next_cookie);
        let s = make(server, self.next_cookie + 1);
        self.next_cookie += 2;
        (c, s)
    }

    /// One churned connection at `at`: the server's socket and the
    /// client's full socket destroyed (the client's TIME_WAIT stays).
    fn churn(&mut self, at: i64) -> [DiagSocket; 2] {
        let (mut client, mut server) = self.pair(State::Established);
        let mut time_wait = client.clone();
        time_wait.socket.kind = RowKind::TimeWait;
        time_wait.socket.state = State::TimeWait;
        time_wait.socket.inode = 0;
        time_wait.socket.timer.kind = TimerKind::TimeWait;
        time_wait.diag.tcp_info = None;
        time_wait.diag.congestion_algorithm = None;
        self.time_waits.push_back((at + TIME_WAIT_MS, time_wait));
        client.socket.state = State::FinWait2;
        server.socket.state = State::LastAck;
        [client, server]
    }

    /// A poll at `at`: the held sockets and the TIME_WAITs not expired.
    fn snapshot(&mut self, at: i64) -> Snapshot {
        while self
            .time_waits
            .front()
            .is_some_and(|(until, _)| *until <= at)
        {
            self.time_waits.pop_front();
        }
        let mut sockets: Vec<EntryBuf> =
            Vec::with_capacity(self.held.len() + self.time_waits.len());
        for d in &self.held {
            sockets.push(EntryBuf::dumped(d.clone()).with_owners(Some(self.owner.clone())));
        }
        for (until, d) in &self.time_waits {
            let mut d = d.clone();
            d.diag.timer_ms = (until - at) as u32;
            sockets.push(EntryBuf::dumped(d).with_owners(Some(Owners::NoProcess)));
        }
        Snapshot::of(sockets)
    }
}
