//! `tcptab record`: the recorder. Each --interval it asks the query engine
//! for the table (owners looked up while the sockets are alive), and hands
//! the snapshot, with the destroy notifications received since the last
//! poll, to [`tcptab::history::Writer`], which keeps them in the database.
//!
//! Destroy notifications come from one thread per network namespace read
//! through netlink (a NETLINK_SOCK_DIAG socket subscribed in that
//! namespace), each stamped with the time it arrived. Where
//! there are none, each poll's row says so: connections shorter than a
//! poll go unseen there.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tcptab::diag::{self, Extensions, NetlinkSocket};
use tcptab::filter::Expr;
use tcptab::history::{Closed, Writer};
use tcptab::Namespace;
use tcptab::Source;

use crate::cli::RecordArgs;
use crate::cmd::watch::ENOBUFS;
use crate::query;

pub fn run(args: &RecordArgs) -> Result<()> {
    let expr = query::filter(&args.filter)?;
    // tcp_info for the counters kept with each connection.
    let query = query::query(
        &args.source,
        &args.namespaces,
        expr,
        Extensions::TCP_INFO,
        !args.no_owners,
    )?;
    let retention = i64::try_from(args.retention.as_millis()).unwrap_or(i64::MAX);
    let mut writer = Writer::open(&args.db, retention)?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
        .context("installing the Ctrl-C and SIGTERM handler")?;
    let mut notices = Notices::new(stop.clone());
    let verbose = args.source.verbose;
    if verbose {
        note!(
            "tcptab: recording to {} every {} (retention {})",
            args.db.display(),
            humantime::format_duration(args.interval),
            humantime::format_duration(args.retention)
        );
    }
    let mut polls = 0u64;
    let mut next = Instant::now();
    loop {
        let started = Instant::now();
        let at = tcptab::time::now_ms();
        let snapshot = query.snapshot()?;
        if polls == 0 {
            query::notes(&snapshot.report, verbose);
        }
        let took = started.elapsed();
        let mut notes = notices.follow(&query, &snapshot.report, verbose);
        if args.no_owners {
            notes.push("owners were not looked up (--no-owners)".into());
        }
        let (closed, lost) = notices.take_until(at);
        if lost {
            notes.push("the kernel dropped destroy notifications (a burst overflowed their buffer): some connections that closed were closed by a poll, or not seen".into());
        }
        let outcome = writer.poll(&snapshot, at, took.as_micros() as u64, &closed, &notes)?;
        polls += 1;
        if verbose {
            note!(
                "tcptab: poll {}: {} sockets, {} opened, {} closed ({} notified), {} expired, {} open, in {:.1} ms",
                outcome.id,
                outcome.sockets,
                outcome.opened,
                outcome.closed,
                outcome.notifications,
                outcome.expired,
                writer.open_connections(),
                started.elapsed().as_secs_f64() * 1e3
            );
        }
        if args.count.is_some_and(|n| polls >= n) || stop.load(Ordering::SeqCst) {
            break;
        }
        next += args.interval;
        let now = Instant::now();
        if next < now {
            // A poll took longer than the interval: the next starts now.
            next = now;
        }
        while Instant::now() < next && !stop.load(Ordering::SeqCst) {
            std::thread::sleep(
                next.saturating_duration_since(Instant::now())
                    .min(Duration::from_millis(100)),
            );
        }
        if stop.load(Ordering::SeqCst) {
            break;
        }
    }
    notices.stop();
    Ok(())
}

/// A destroy notification (or the news that some were lost).
enum Notice {
    Closed(Box<Closed>),
    Lost(u64),
}

/// The destroy notification listeners, one per namespace read through
/// netlink, and what they received.
struct Notices {
    tx: Sender<Notice>,
    rx: Receiver<Notice>,
    /// By namespace inode (0: this process's): the listener's stop flag,
    /// or None where it could not be opened (and why).
    listeners: HashMap<u64, std::result::Result<Arc<AtomicBool>, String>>,
    pending: Vec<Closed>,
    lost: Vec<u64>,
    stop: Arc<AtomicBool>,
}

impl Notices {
    fn new(stop: Arc<AtomicBool>) -> Notices {
        let (tx, rx) = mpsc::channel();
        Notices {
            tx,
            rx,
            listeners: HashMap::new(),
            pending: Vec::new(),
            lost: Vec::new(),
            stop,
        }
    }

    /// Listen in every namespace the poll read through netlink, stop
    /// listening in those it no longer found (so that a deleted namespace
    /// is not kept alive by the listener's socket); what the poll's row
    /// should say is missing.
    fn follow(
        &mut self,
        query: &tcptab::Query,
        report: &tcptab::Report,
        verbose: bool,
    ) -> Vec<String> {
        let mut read = Vec::new();
        for r in &report.read {
            let inode = r.namespace.as_ref().map_or(0, |n| n.inode);
            read.push(inode);
            if r.source != Source::Netlink || self.listeners.contains_key(&inode) {
                continue;
            }
            let listener = self.listen(query, r.namespace.as_ref());
            if let Err(why) = &listener {
                if verbose {
                    note!("tcptab: {why}");
                }
            }
            self.listeners.insert(inode, listener);
        }
        self.listeners.retain(|inode, listener| {
            let keep = read.contains(inode);
            if let (false, Ok(flag)) = (keep, &listener) {
                flag.store(true, Ordering::SeqCst);
            }
            keep
        });
        let mut notes = Vec::new();
        for r in &report.read {
            let inode = r.namespace.as_ref().map_or(0, |n| n.inode);
            let target = r
                .namespace
                .as_ref()
                .map(|n| format!(" in network namespace {}", n.label()))
                .unwrap_or_default();
            match self.listeners.get(&inode) {
                Some(Ok(_)) => {}
                Some(Err(why)) => notes.push(format!("{why}{target}")),
                None => notes.push(format!(
                    "no destroy notifications{target} (read from /proc): connections shorter than a poll are not seen"
                )),
            }
        }
        notes
    }

    /// Start a listener in `namespace`.
    fn listen(
        &self,
        query: &tcptab::Query,
        namespace: Option<&Namespace>,
    ) -> std::result::Result<Arc<AtomicBool>, String> {
        let filter = query.filter_for(namespace).map_err(|e| e.to_string())?;
        let socket = query
            .netlink_socket(namespace)
            .map_err(|e| std::io::Error::other(e.to_string()))
            .and_then(|s| s.subscribe_destroy(NetlinkSocket::DESTROY_BUFFER))
            .map_err(|e| {
                format!(
                    "no destroy notifications ({e}): connections shorter than a poll are not seen"
                )
            })?;
        let flag = Arc::new(AtomicBool::new(false));
        let stop = flag.clone();
        let all = self.stop.clone();
        let tx = self.tx.clone();
        let netns = namespace.map_or(0, |n| n.inode);
        std::thread::spawn(move || listen(socket, netns, filter, tx, stop, all));
        Ok(flag)
    }

    /// The connections notified closed before `at_ms` (later ones wait for
    /// the next poll, whose snapshot may still show them).
    fn take_until(&mut self, at_ms: i64) -> (Vec<Closed>, bool) {
        while let Ok(notice) = self.rx.try_recv() {
            match notice {
                Notice::Closed(c) => self.pending.push(*c),
                Notice::Lost(netns) => self.lost.push(netns),
            }
        }
        let (now, later): (Vec<Closed>, Vec<Closed>) =
            self.pending.drain(..).partition(|c| c.at_ms <= at_ms);
        self.pending = later;
        let lost = !self.lost.is_empty();
        if lost {
            note!("tcptab: the kernel dropped destroy notifications (a burst overflowed their buffer): connections that closed meanwhile may be missing or closed by a poll");
            self.lost.clear();
        }
        (now, lost)
    }

    fn stop(&self) {
        for flag in self.listeners.values().flatten() {
            flag.store(true, Ordering::SeqCst);
        }
    }
}

/// A listener thread: receives destroy notifications until told to stop.
fn listen(
    mut socket: NetlinkSocket,
    netns: u64,
    filter: Expr,
    tx: Sender<Notice>,
    stop: Arc<AtomicBool>,
    all: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::SeqCst) && !all.load(Ordering::SeqCst) {
        match socket.recv_within(&mut buf, Duration::from_millis(200)) {
            Ok(0) => {}
            Ok(len) => {
                let at_ms = tcptab::time::now_ms();
                let Ok(sockets) = diag::destroyed(&buf[..len.min(buf.len())]) else {
                    continue;
                };
                for socket in sockets {
                    if filter.matches(&socket.socket, Some(&socket.diag), None) {
                        let closed = Closed {
                            netns,
                            at_ms,
                            socket,
                        };
                        if tx.send(Notice::Closed(Box::new(closed))).is_err() {
                            return;
                        }
                    }
                }
            }
            Err(e) if e.raw_os_error() == Some(ENOBUFS) => {
                if tx.send(Notice::Lost(netns)).is_err() {
                    return;
                }
            }
            Err(_) => {
                let _ = tx.send(Notice::Lost(netns));
                return;
            }
        }
    }
}
