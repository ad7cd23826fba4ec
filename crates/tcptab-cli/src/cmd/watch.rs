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
use tcptab::diag::{self, Extensions, NetlinkSocket};
use tcptab::record::Value;
use tcptab::watch::{Change, Event, Tracker};
use tcptab::Diag;
use tcptab::Source;
use tcptab::{Entry, Namespace, OwnerScan, Ownership, Socket};

use crate::cli::{WatchArgs, WatchFormat};
use crate::output::json::JsonRecord;
use crate::output::table::Endpoint;
use crate::query;

/// The event's own fields, before the socket record's.
struct EventHead<'a> {
    time: String,
    event: &'static str,
    old_state: Option<String>,
    /// For `closed`: whether an earlier look had seen the connection open
    /// (false: it opened and closed between two looks).
    seen_open: Option<bool>,
    socket: &'a Socket,
    /// Final counters from the kernel's destroy notification.
    diag: Option<&'a Diag>,
}

fn head(e: &Event) -> EventHead<'_> {
    let (event, old_state, seen_open) = match &e.change {
        Change::Opened => ("opened", None, None),
        Change::Closed { seen } => ("closed", None, Some(*seen)),
        Change::StateChanged { from } => ("state_changed", Some(from.to_string()), None),
        Change::QueueGrowth => ("queue_growth", None, None),
    };
    EventHead {
        time: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
        event,
        old_state,
        seen_open,
        socket: &e.socket,
        diag: e.diag.as_ref(),
    }
}

/// One JSON line: the event's fields, then the socket record's.
fn jsonl(h: &EventHead<'_>, entry: &Entry<'_>, fields: tcptab::record::Fields) -> Vec<u8> {
    use crate::output::json::{string, value_into};
    let mut line = Vec::with_capacity(2048);
    line.extend_from_slice(b"{\"schema_version\":");
    value_into(&mut line, Value::U64(tcptab::record::SCHEMA_VERSION as u64));
    line.extend_from_slice(b",\"time\":");
    string(&mut line, &h.time);
    line.extend_from_slice(b",\"event\":");
    string(&mut line, h.event);
    line.extend_from_slice(b",\"old_state\":");
    value_into(
        &mut line,
        h.old_state.as_deref().map_or(Value::Null, Value::Str),
    );
    line.extend_from_slice(b",\"seen_open\":");
    value_into(&mut line, h.seen_open.map_or(Value::Null, Value::Bool));
    let mut record = Vec::with_capacity(2048);
    JsonRecord::write(&mut record, &tcptab::record::Record::new(entry, fields));
    // The record's members continue this object.
    line.push(b',');
    line.extend_from_slice(&record[1..]);
    line.push(b'\n');
    line
}

fn text(h: &EventHead<'_>, owners: Option<Ownership<'_>>) -> String {
    let s = h.socket;
    let mut line = format!(
        "{} {:<13} {} -> {}",
        h.time,
        h.event,
        Endpoint(s.local, None),
        Endpoint(s.remote, None)
    );
    match (&h.old_state, h.event) {
        (Some(old), _) => line.push_str(&format!(" {old} -> {}", s.state)),
        (None, "queue_growth") => line.push_str(&format!(
            " {} recv-q {} send-q {}",
            s.state, s.rx_queue, s.tx_queue
        )),
        (None, _) => line.push_str(&format!(" {}", s.state)),
    }
    if h.seen_open == Some(false) {
        line.push_str(" (opened and closed between two looks)");
    }
    if let Some(info) = h.diag.and_then(|d| d.tcp_info.as_ref()) {
        line.push_str(&format!(
            " final: {} bytes acked, {} received, {} retransmitted",
            info.bytes_acked, info.bytes_received, info.total_retrans
        ));
    }
    let names: Vec<String> = owners
        .map_or(&[][..], |o| o.owners())
        .iter()
        .map(|o| format!("{}(pid={},fd={})", o.command, o.pid, o.fd))
        .collect();
    if !names.is_empty() {
        line.push_str(&format!(" {}", names.join(",")));
    }
    line
}

pub fn run(args: &WatchArgs) -> Result<()> {
    let expr = query::filter(&args.filter)?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
        .context("installing the Ctrl-C handler")?;
    let query = query::query(
        &args.source,
        &args.namespaces,
        expr.clone(),
        Extensions::default(),
        args.processes,
    )?;
    let started = Instant::now();
    let mut tracker = Tracker::new(args.queue_threshold);
    let mut listener: Option<NetlinkSocket> = None;
    let mut first = true;
    let mut printed = 0u64;
    let mut out = io::stdout().lock();
    let mut buf = vec![0u8; 64 * 1024];
    let mut lost_noted = false;
    // The filter for sockets the destroy notifications bring, with the
    // namespace's facts (autobound, dev) once the first look found it.
    let mut closed_filter = expr.clone();
    let wanted = |event: &Event| {
        args.events.is_empty()
            || args
                .events
                .contains(&crate::cli::EventKind::of(&event.change))
    };
    let done = |printed: u64| {
        stop.load(Ordering::SeqCst)
            || args.count.is_some_and(|n| printed >= n)
            || args.duration.is_some_and(|d| started.elapsed() >= d)
    };
    let fields = tcptab::record::Fields {
        netns: args.namespaces.named(),
        owners: args.processes,
        history: false,
    };
    loop {
        let snapshot = query.snapshot()?;
        let report = &snapshot.report;
        if first {
            query::notes(report, args.source.verbose);
            if report.read.len() == 1 && report.read[0].source == Source::Netlink {
                closed_filter = query.filter_for(report.read[0].namespace.as_ref())?;
                listener = destroy_listener(
                    &query,
                    report.read[0].namespace.as_ref(),
                    args.notify_buffer,
                    args.source.verbose,
                );
            } else if args.source.verbose {
                note!("tcptab: no destroy notifications (they need the netlink source and one namespace): connections shorter than --interval may go unseen");
            }
            first = false;
        }
        let look = Look {
            source: report.read.first().map_or(Source::Proc, |r| r.source),
            namespace: snapshot.namespaces.first().and_then(Option::as_deref),
            owners: snapshot.owners.as_ref(),
        };
        let sockets: Vec<Socket> = snapshot.sockets.iter().map(|k| k.socket).collect();
        for event in tracker.look(&sockets) {
            if !wanted(&event) {
                continue;
            }
            emit(&mut out, args.format, &event, &look, fields)?;
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
                    let len = match socket.recv_within(&mut buf, wait) {
                        Ok(len) => len,
                        // The kernel dropped notifications (its buffer for
                        // this socket overflowed): say so and go on; the
                        // next look sees what is still open.
                        Err(e) if e.raw_os_error() == Some(ENOBUFS) => {
                            lost(&mut out, args.format, &mut lost_noted)?;
                            printed += 1;
                            continue;
                        }
                        Err(e) => {
                            return Err(e).context("receiving destroy notifications");
                        }
                    };
                    if len == 0 {
                        continue;
                    }
                    for d in diag::destroyed(&buf[..len.min(buf.len())])? {
                        if !closed_filter.matches(&d.socket, Some(&d.diag), None) {
                            continue;
                        }
                        if let Some(event) = tracker.destroyed(d).filter(|e| wanted(e)) {
                            let destroyed = Look {
                                source: Source::Netlink,
                                owners: None,
                                ..look
                            };
                            emit(&mut out, args.format, &event, &destroyed, fields)?;
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

/// What a look knows about the sockets of its events.
#[derive(Clone, Copy)]
struct Look<'a> {
    source: Source,
    namespace: Option<&'a Namespace>,
    owners: Option<&'a OwnerScan>,
}

pub(crate) const ENOBUFS: i32 = 105;

/// Notifications were lost: a note on stderr (once) and, in jsonl, a
/// `lost` event.
fn lost(out: &mut impl Write, format: WatchFormat, noted: &mut bool) -> Result<()> {
    if !*noted {
        note!("tcptab: the kernel dropped destroy notifications (a burst overflowed their buffer; see --notify-buffer): connections that closed meanwhile may go unreported; watching on");
        *noted = true;
    }
    let time = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
    match format {
        WatchFormat::Jsonl => {
            use crate::output::json::string;
            let mut line = Vec::with_capacity(128);
            line.extend_from_slice(b"{\"schema_version\":");
            line.extend_from_slice(tcptab::record::SCHEMA_VERSION.to_string().as_bytes());
            line.extend_from_slice(b",\"time\":");
            string(&mut line, &time);
            line.extend_from_slice(b",\"event\":\"lost\",\"lost\":\"destroy_notifications\"}\n");
            out.write_all(&line)?;
        }
        WatchFormat::Text => writeln!(
            out,
            "{time} lost          destroy notifications (the kernel's buffer overflowed)"
        )?,
    }
    out.flush().context("writing output")
}

pub(crate) fn destroy_listener(
    query: &tcptab::Query,
    namespace: Option<&Namespace>,
    buffer: usize,
    verbose: bool,
) -> Option<NetlinkSocket> {
    let socket = query
        .netlink_socket(namespace)
        .map_err(|e| std::io::Error::other(e.to_string()))
        .and_then(|s| s.subscribe_destroy(buffer));
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
    look: &Look<'_>,
    fields: tcptab::record::Fields,
) -> Result<()> {
    let h = head(event);
    let owners = look.owners.map(|o| o.ownership(&event.socket));
    match format {
        WatchFormat::Jsonl => {
            let source = if event.diag.is_some() {
                Source::Netlink
            } else {
                look.source
            };
            let entry = Entry::new(&event.socket, source)
                .with_diag(event.diag.as_ref())
                .with_namespace(look.namespace)
                .with_owners(owners);
            out.write_all(&jsonl(&h, &entry, fields))?;
        }
        WatchFormat::Text => writeln!(out, "{}", text(&h, owners))?,
    }
    out.flush().context("writing output")
}
