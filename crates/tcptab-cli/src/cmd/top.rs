//! `tcptab top`: every connection with its receive and send rates, one
//! refresh per interval. The rates are tcp_info's cumulative counters
//! differenced between two looks ([`tcptab::rates`]); with the netlink
//! source and one namespace, the kernel's destroy notifications bring the
//! connections that closed since the last refresh, so one that lived less
//! than an interval still appears once, with its final counters.
//!
//! So far headless: `--format jsonl` prints one object per refresh,
//! `{"schema_version", "time", "interval_s", "sockets": [...]}`, each socket
//! the common record plus `rx_bytes_per_s`, `tx_bytes_per_s`, `age_s` and
//! `closed`.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};
use tcptab::diag::{self, DiagSocket, Extensions, NetlinkSocket};
use tcptab::query::Source;
use tcptab::rates::{Key, Rate, RateTracker};
use tcptab::record::Record;
use tcptab::{Entry, Namespace};

use crate::cli::{TopArgs, TopFormat};
use crate::cmd::watch::{destroy_listener, ENOBUFS};
use crate::output::json::{string, JsonRecord};
use crate::query;

pub fn run(args: &TopArgs) -> Result<()> {
    if args.format != TopFormat::Jsonl {
        if !std::io::stdout().is_terminal() {
            bail!("tcptab top: stdout is not a terminal; for scripts, --format jsonl prints one frame per refresh");
        }
        bail!("tcptab top: the full-screen view is not built yet; --format jsonl prints one frame per refresh");
    }
    let expr = query::filter(&args.filter)?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
        .context("installing the Ctrl-C handler")?;
    // tcp_info for the counters the rates come from.
    let extensions = Extensions::TCP_INFO;
    let query = query::query(
        &args.source,
        &args.namespaces,
        expr,
        extensions,
        args.processes,
    )?;
    let fields = tcptab::Fields {
        netns: args.namespaces.named(),
        owners: args.processes,
    };
    let mut rates = RateTracker::new();
    let mut out = std::io::stdout().lock();
    let mut line = Vec::with_capacity(64 * 1024);
    let mut buf = vec![0u8; 64 * 1024];

    // The first look is the baseline the first frame's rates start from.
    let snapshot = query.snapshot()?;
    query::notes(&snapshot.report, args.source.verbose);
    let mut listener: Option<NetlinkSocket> = None;
    let mut closed_filter = query.filter_expr().clone();
    let report = &snapshot.report;
    if report.read.len() == 1 && report.read[0].source == Source::Netlink {
        let namespace = report.read[0].namespace.as_ref();
        closed_filter = query.filter_for(namespace)?;
        listener = destroy_listener(&query, namespace, 4 << 20, args.source.verbose);
    }
    let at = Instant::now();
    rates.begin_look();
    for kept in &snapshot.sockets {
        let netns = netns_of(&snapshot.namespaces[kept.namespace]);
        rates.rate(
            Key::of(netns, &kept.socket, kept.diag.as_ref()),
            kept.diag.as_ref(),
            at,
        );
    }
    rates.end_look();
    let mut previous = at;
    let mut frames = 0u64;
    let mut lost_noted = false;
    loop {
        // Until the next look: the kernel's notices of closed connections.
        let mut closed: Vec<DiagSocket> = Vec::new();
        let next = previous + args.interval;
        while Instant::now() < next && !stop.load(Ordering::SeqCst) {
            let wait = next
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(100));
            let Some(socket) = listener.as_mut() else {
                std::thread::sleep(wait);
                continue;
            };
            match socket.recv_within(&mut buf, wait) {
                Ok(0) => {}
                Ok(len) => {
                    for d in diag::destroyed(&buf[..len.min(buf.len())])? {
                        if closed_filter.matches(&d.socket, Some(&d.diag), None) {
                            closed.push(d);
                        }
                    }
                }
                Err(e) if e.raw_os_error() == Some(ENOBUFS) => {
                    if !lost_noted {
                        note!("tcptab: the kernel dropped destroy notifications (a burst overflowed their buffer): connections that closed meanwhile may be missing from a frame");
                        lost_noted = true;
                    }
                }
                Err(e) => return Err(e).context("receiving destroy notifications"),
            }
        }
        if stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        let snapshot = query.snapshot()?;
        let at = Instant::now();
        let interval = at.saturating_duration_since(previous);
        previous = at;
        line.clear();
        line.extend_from_slice(b"{\"schema_version\":");
        line.extend_from_slice(tcptab::SCHEMA_VERSION.to_string().as_bytes());
        line.extend_from_slice(b",\"time\":");
        string(
            &mut line,
            &humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
        );
        line.extend_from_slice(
            format!(
                ",\"interval_s\":{:.3},\"sockets\":[",
                interval.as_secs_f64()
            )
            .as_bytes(),
        );
        let mut first = true;
        rates.begin_look();
        for (i, kept) in snapshot.sockets.iter().enumerate() {
            let entry = snapshot.entry(i);
            let netns = netns_of(&snapshot.namespaces[kept.namespace]);
            let rate = rates.rate(
                Key::of(netns, &kept.socket, kept.diag.as_ref()),
                kept.diag.as_ref(),
                at,
            );
            socket_into(&mut line, &mut first, &entry, fields, rate, false);
        }
        let namespace = snapshot.namespaces.first().and_then(Option::as_ref);
        for d in &closed {
            let netns = namespace.map_or(0, |n| n.inode);
            let rate = rates.closed(Key::of(netns, &d.socket, Some(&d.diag)), Some(&d.diag), at);
            let entry = Entry {
                socket: &d.socket,
                diag: Some(&d.diag),
                source: Source::Netlink,
                namespace,
                owners: None,
            };
            socket_into(&mut line, &mut first, &entry, fields, rate, true);
        }
        rates.end_look();
        line.extend_from_slice(b"]}\n");
        out.write_all(&line)?;
        out.flush().context("writing output")?;
        frames += 1;
        if args.count.is_some_and(|n| frames >= n) {
            return Ok(());
        }
    }
}

fn netns_of(namespace: &Option<Namespace>) -> u64 {
    namespace.as_ref().map_or(0, |n| n.inode)
}

/// One socket of a frame: the record, then its rates, age and whether it
/// closed since the last refresh.
fn socket_into(
    line: &mut Vec<u8>,
    first: &mut bool,
    entry: &Entry<'_>,
    fields: tcptab::Fields,
    rate: Rate,
    closed: bool,
) {
    if !*first {
        line.push(b',');
    }
    *first = false;
    JsonRecord::write(line, &Record::new(entry, fields));
    line.pop(); // the record's closing brace
    let number = |line: &mut Vec<u8>, name: &str, value: Option<f64>| {
        line.extend_from_slice(format!(",\"{name}\":").as_bytes());
        match value {
            Some(v) => line.extend_from_slice(format!("{v:.1}").as_bytes()),
            None => line.extend_from_slice(b"null"),
        }
    };
    number(line, "rx_bytes_per_s", rate.rx_bytes_per_s);
    number(line, "tx_bytes_per_s", rate.tx_bytes_per_s);
    number(line, "age_s", Some(rate.age.as_secs_f64()));
    line.extend_from_slice(if closed {
        b",\"closed\":true}"
    } else {
        b",\"closed\":false}"
    });
}
