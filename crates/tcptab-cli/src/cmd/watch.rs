//! `tcptab watch`: what happens to connections, as it happens: opened,
//! closed, state changed, queue growth. The library's monitor
//! ([`tcptab::track::Monitor`]) polls the table every interval and, with
//! the netlink source, listens to the kernel's destroy notifications, so
//! every connection closes once, also one that opened and closed between
//! two polls, with its final counters; notifications the kernel dropped
//! come out as a `lost` event.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use tcptab::diag::Extensions;
use tcptab::record::{Fields, Record, Value, SCHEMA_VERSION};
use tcptab::track::{Change, Event, Happened, Monitor, MonitorOptions};
use tcptab::{Entry, Ownership};

use crate::cli::{EventKind, WatchArgs, WatchFormat};
use crate::output::cells::Endpoint;
use crate::output::json::JsonRecord;
use crate::report;

/// The event's own fields, before the socket record's.
struct EventHead<'a> {
    time: String,
    event: &'static str,
    old_state: Option<String>,
    /// For `closed`: whether a poll had seen the connection open (false:
    /// it opened and closed between two polls).
    seen_open: Option<bool>,
    entry: Entry<'a>,
}

impl EventKind {
    /// The watch event a tracker's change is, if any.
    fn of(change: Change) -> Option<EventKind> {
        Some(match change {
            Change::Opened => EventKind::Opened,
            Change::Closed { .. } => EventKind::Closed,
            Change::StateChanged { .. } => EventKind::StateChanged,
            Change::QueueGrowth => EventKind::QueueGrowth,
            Change::Updated | Change::Ended { .. } => return None,
        })
    }
}

fn head(e: &Event) -> EventHead<'_> {
    let (event, old_state, seen_open) = match e.change {
        Change::StateChanged { from } => ("state_changed", Some(from.to_string()), None),
        Change::Closed { .. } => ("closed", None, Some(e.conn.seen_by_poll)),
        Change::QueueGrowth => ("queue_growth", None, None),
        _ => ("opened", None, None),
    };
    // A closing reports the socket as the kernel last reported it.
    let entry = match e.change {
        Change::Closed { .. } => e.conn.closing_entry().as_entry(),
        _ => e.conn.entry.as_entry(),
    };
    EventHead {
        time: rfc3339(e.at),
        event,
        old_state,
        seen_open,
        entry,
    }
}

fn rfc3339(ms: i64) -> String {
    tcptab::time::format_rfc3339(ms)
}

/// One JSON line: the event's fields, then the socket record's.
fn jsonl(h: &EventHead<'_>, fields: Fields) -> Vec<u8> {
    use crate::output::json::{string, value_into};
    let mut line = Vec::with_capacity(2048);
    line.extend_from_slice(b"{\"schema_version\":");
    value_into(&mut line, Value::U64(SCHEMA_VERSION as u64));
    crate::output::json::host_member(&mut line);
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
    JsonRecord::write(&mut record, &Record::new(&h.entry, fields));
    // The record's members continue this object.
    line.push(b',');
    line.extend_from_slice(&record[1..]);
    line.push(b'\n');
    line
}

fn text(h: &EventHead<'_>, owners: bool) -> String {
    let s = h.entry.socket;
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
        line.push_str(" (opened and closed between two polls)");
    }
    if h.event == "closed" {
        if let Some(info) = h.entry.diag.and_then(|d| d.tcp_info.as_ref()) {
            line.push_str(&format!(
                " final: {} bytes acked, {} received, {} retransmitted",
                info.bytes_acked, info.bytes_received, info.total_retrans
            ));
        }
    }
    let names: Vec<String> = h
        .entry
        .owners
        .filter(|_| owners)
        .map_or(&[][..], Ownership::owners)
        .iter()
        .map(|o| format!("{}(pid={},fd={})", o.command, o.pid, o.fd))
        .collect();
    if !names.is_empty() {
        line.push_str(&format!(" {}", names.join(",")));
    }
    line
}

pub fn run(args: &WatchArgs) -> Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
        .context("installing the Ctrl-C handler")?;
    // Final counters come with the notifications; tcp_info is not needed.
    let query = args
        .select
        .query(Extensions::default(), args.processes)?
        .workloads(args.workload)
        // Read again every interval: one walk of the kernel's tables
        // for both families costs less than two.
        .one_walk_all(true);
    let mut options = MonitorOptions::every(args.interval);
    options.track.queue_threshold = args.queue_threshold;
    options.notify_buffer = args.notify_buffer;
    let mut monitor = Monitor::new(&query, options);
    let fields = Fields {
        netns: args.select.named(),
        owners: args.processes,
        workload: args.workload,
        history: false,
    };
    let started = Instant::now();
    let mut printed = 0u64;
    let mut lost_noted = false;
    let mut out = io::stdout().lock();
    let verbose = args.select.verbose();
    let done = |printed: u64| {
        args.count.is_some_and(|n| printed >= n)
            || args.duration.is_some_and(|d| started.elapsed() >= d)
    };
    let stopped =
        || stop.load(Ordering::SeqCst) || args.duration.is_some_and(|d| started.elapsed() >= d);
    let mut handle = |happened: Happened<'_>| -> Result<()> {
        if done(printed) {
            stop.store(true, Ordering::SeqCst);
            return Ok(());
        }
        match happened {
            Happened::Event(event) => {
                if event.baseline {
                    return Ok(());
                }
                let Some(kind) = EventKind::of(event.change) else {
                    return Ok(());
                };
                if !args.events.is_empty() && !args.events.contains(&kind) {
                    return Ok(());
                }
                let h = head(&event);
                match args.format {
                    WatchFormat::Jsonl => out.write_all(&jsonl(&h, fields))?,
                    WatchFormat::Text => writeln!(out, "{}", text(&h, args.processes))?,
                }
                out.flush().context("writing output")?;
                printed += 1;
            }
            Happened::Lost { at, .. } => {
                lost(&mut out, args.format, at, &mut lost_noted)?;
                printed += 1;
            }
            Happened::Polled(poll) => {
                if poll.first {
                    report::notes(&poll.snapshot.report, verbose);
                    if verbose {
                        for note in poll.notes {
                            note!("tcptab: {note}");
                        }
                    }
                }
            }
        }
        if done(printed) {
            stop.store(true, Ordering::SeqCst);
        }
        Ok(())
    };
    monitor.run(&stopped, &mut handle)
}

/// Notifications were lost: a note on stderr (once) and a `lost` event.
fn lost(out: &mut impl Write, format: WatchFormat, at: i64, noted: &mut bool) -> Result<()> {
    if !*noted {
        note!("tcptab: the kernel dropped destroy notifications (a burst overflowed their buffer; see --notify-buffer): connections that closed meanwhile are reported closed by the next polls, without their final counters; watching on");
        *noted = true;
    }
    let time = rfc3339(at);
    match format {
        WatchFormat::Jsonl => {
            use crate::output::json::string;
            let mut line = Vec::with_capacity(128);
            line.extend_from_slice(b"{\"schema_version\":");
            line.extend_from_slice(SCHEMA_VERSION.to_string().as_bytes());
            crate::output::json::host_member(&mut line);
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
