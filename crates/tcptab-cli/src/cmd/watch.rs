//! `tcptab watch`: looks at the table every interval and prints what
//! changed: opened, closed, state changed, queue growth. With the netlink
//! source it also listens to the kernel's notifications of destroyed
//! sockets, so a connection that opens and closes between two looks is
//! still reported closed, with its final counters.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use serde::Serialize;
use tcptab::diag::{self, Diag, Extensions, NetlinkSocket};
use tcptab::watch::{Change, Event, Tracker};
use tcptab::{Owner, OwnerScan, Socket, StateSet};

use crate::cli::{WatchArgs, WatchFormat};
use crate::output::table::Endpoint;
use crate::query::{self, Want};

#[derive(Debug, Serialize)]
struct EventRecord<'a> {
    time: String,
    event: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    old_state: Option<String>,
    state: String,
    family: &'static str,
    local_address: std::net::IpAddr,
    local_port: u16,
    remote_address: std::net::IpAddr,
    remote_port: u16,
    rx_queue: u32,
    tx_queue: u32,
    inode: u64,
    /// For `closed`: whether an earlier look had seen the connection open
    /// (false: it opened and closed between two looks).
    #[serde(skip_serializing_if = "Option::is_none")]
    seen_open: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    owners: Option<&'a [Owner]>,
    /// Final counters from the kernel's destroy notification.
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes_acked: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes_received: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    total_retrans: Option<u32>,
}

fn record<'a>(e: &'a Event, owners: Option<&'a [Owner]>) -> EventRecord<'a> {
    let s = &e.socket;
    let (event, old_state, seen_open) = match &e.change {
        Change::Opened => ("opened", None, None),
        Change::Closed { seen } => ("closed", None, Some(*seen)),
        Change::StateChanged { from } => ("state_changed", Some(from.to_string()), None),
        Change::QueueGrowth => ("queue_growth", None, None),
    };
    let info = e.diag.as_ref().and_then(|d: &Diag| d.tcp_info.as_ref());
    EventRecord {
        time: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
        event,
        old_state,
        state: s.state.to_string(),
        family: s.family.as_str(),
        local_address: s.local.ip(),
        local_port: s.local.port(),
        remote_address: s.remote.ip(),
        remote_port: s.remote.port(),
        rx_queue: s.rx_queue,
        tx_queue: s.tx_queue,
        inode: s.inode,
        seen_open,
        owners,
        bytes_acked: info.map(|i| i.bytes_acked),
        bytes_received: info.map(|i| i.bytes_received),
        total_retrans: info.map(|i| i.total_retrans),
    }
}

fn text(r: &EventRecord<'_>, s: &Socket) -> String {
    let mut line = format!(
        "{} {:<13} {} -> {}",
        r.time,
        r.event,
        Endpoint(s.local, None),
        Endpoint(s.remote, None)
    );
    match (&r.old_state, r.event) {
        (Some(old), _) => line.push_str(&format!(" {old} -> {}", r.state)),
        (None, "queue_growth") => line.push_str(&format!(
            " {} recv-q {} send-q {}",
            r.state, r.rx_queue, r.tx_queue
        )),
        (None, _) => line.push_str(&format!(" {}", r.state)),
    }
    if r.seen_open == Some(false) {
        line.push_str(" (opened and closed between two looks)");
    }
    if let (Some(acked), Some(received)) = (r.bytes_acked, r.bytes_received) {
        line.push_str(&format!(
            " final: {acked} bytes acked, {received} received, {} retransmitted",
            r.total_retrans.unwrap_or(0)
        ));
    }
    if let Some(owners) = r.owners {
        let names: Vec<String> = owners
            .iter()
            .map(|o| format!("{}(pid={},fd={})", o.command, o.pid, o.fd))
            .collect();
        if !names.is_empty() {
            line.push_str(&format!(" {}", names.join(",")));
        }
    }
    line
}

pub fn run(args: &WatchArgs) -> Result<()> {
    let expr = query::filter(&args.filter)?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
        .context("installing the Ctrl-C handler")?;
    let want = Want {
        extensions: Extensions::default(),
        states: StateSet::ALL,
    };
    let started = Instant::now();
    let mut tracker = Tracker::new(args.queue_threshold);
    let mut listener: Option<NetlinkSocket> = None;
    let mut first = true;
    let mut printed = 0u64;
    let mut out = io::stdout().lock();
    let mut buf = vec![0u8; 64 * 1024];
    let done = |printed: u64| {
        stop.load(Ordering::SeqCst)
            || args.count.is_some_and(|n| printed >= n)
            || args.duration.is_some_and(|d| started.elapsed() >= d)
    };
    loop {
        let (sources, _) = query::sources(&args.source, &args.namespaces, want)?;
        let first_look = first;
        if first {
            query::report_sources(&sources, args.source.verbose);
            if sources.len() == 1 && sources[0].used == diag::Used::Netlink {
                listener = destroy_listener(&sources[0], &args.source.root, args.source.verbose);
            } else if args.source.verbose {
                note!("tcptab: no destroy notifications (they need the netlink source and one namespace): connections shorter than --interval may go unseen");
            }
            first = false;
        }
        let gathered = query::gather(sources, &expr, &args.source.root, args.processes)?;
        if let (true, Some(scan)) = (first_look, &gathered.owners) {
            query::report_uninspected(scan);
        }
        let sockets: Vec<Socket> = gathered.entries.iter().map(|e| e.socket).collect();
        for event in tracker.look(&sockets) {
            emit(&mut out, args.format, &event, gathered.owners.as_ref())?;
            printed += 1;
            if done(printed) {
                return Ok(());
            }
        }
        // Until the next look: sleep, or take the kernel's destroy notices.
        let next = Instant::now() + args.interval;
        while Instant::now() < next {
            if done(printed) {
                return Ok(());
            }
            let wait = next
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(100));
            match listener.as_mut() {
                None => std::thread::sleep(wait),
                Some(socket) => {
                    let len = socket
                        .recv_within(&mut buf, wait)
                        .context("receiving destroy notifications")?;
                    if len == 0 {
                        continue;
                    }
                    for d in diag::destroyed(&buf[..len.min(buf.len())])? {
                        if !expr.matches(&d.socket, None) {
                            continue;
                        }
                        if let Some(event) = tracker.destroyed(d) {
                            emit(&mut out, args.format, &event, None)?;
                            printed += 1;
                        }
                    }
                }
            }
        }
        if done(printed) {
            return Ok(());
        }
    }
}

fn destroy_listener(
    source: &query::Source,
    proc_root: &std::path::Path,
    verbose: bool,
) -> Option<NetlinkSocket> {
    let socket = query::netlink_socket(source.namespace.as_ref(), proc_root, false)
        .map_err(|e| std::io::Error::other(e.to_string()))
        .and_then(NetlinkSocket::subscribe_destroy);
    match socket {
        Ok(s) => Some(s),
        Err(e) => {
            if verbose {
                note!("tcptab: no destroy notifications ({e}; they need CAP_NET_ADMIN): connections shorter than --interval may go unseen");
            }
            None
        }
    }
}

fn emit(
    out: &mut impl Write,
    format: WatchFormat,
    event: &Event,
    owners: Option<&OwnerScan>,
) -> Result<()> {
    let list = owners.map(|o| o.owners(&event.socket));
    let r = record(event, list);
    match format {
        WatchFormat::Jsonl => {
            serde_json::to_writer(&mut *out, &r)?;
            writeln!(out)?;
        }
        WatchFormat::Text => writeln!(out, "{}", text(&r, &event.socket))?,
    }
    out.flush().context("writing output")
}
