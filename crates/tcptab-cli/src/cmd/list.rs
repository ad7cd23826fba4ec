//! `tcptab list`: the sockets of both tables, filtered, with owners,
//! namespaces and tcp_info on request, in the chosen format.
//!
//! Without owners or sorting, rows go straight to the output (text tables
//! stream in constant memory); otherwise the sockets are gathered first.

use std::io;

use anyhow::{Context, Result};
use tcptab::diag::Extensions;
use tcptab::{Expr, Family, Namespace, OwnerScan, Socket};

use crate::cli::{Format, ListArgs, SortField};
use crate::output::{self, Columns, OutputOptions, Row, Sink};
use crate::query::{self, Entry, Sockets, Want};

pub fn run(args: &ListArgs) -> Result<()> {
    let expr = query::filter(&args.filter)?;
    let format = args.format();
    let wants_owners = args.processes || expr.needs_owners() || args.sort == Some(SortField::Pid);
    let renumber = expr != Expr::All || args.sort.is_some();
    // JSON and CSV carry every field, and the kernel's text has rto, ato,
    // cwnd and ssthresh: these ask the dump for tcp_info too.
    let full_record = matches!(format, Format::Json | Format::Jsonl | Format::Csv);
    let want = Want {
        extensions: Extensions {
            info: args.info || args.extended || full_record || format == Format::Proc,
            memory: args.memory || full_record,
        },
        states: expr.states(),
    };
    let (sources, ns_denied) = query::sources(&args.source, &args.namespaces, want)?;
    query::report_sources(&sources, args.source.verbose);
    if (args.info || args.memory) && sources.iter().any(|s| s.used.name() == "proc") {
        note!("tcptab: -i and -m need the netlink source (/proc has no tcp_info or socket memory); shown as '-'");
    }
    query::report_namespaces_denied(ns_denied);
    let options = OutputOptions {
        format,
        byte_order: query::read_options(&args.source).byte_order,
        columns: Columns {
            processes: args.processes,
            timers: args.timers,
            extended: args.extended,
            netns: args.namespaces.all_netns,
            resolve: args.resolve,
            info: args.info,
            memory: args.memory,
        },
    };
    let stdout = io::stdout().lock();
    let mut sink = output::sink(Box::new(stdout), options)?;

    // Without owners or sorting, rows go straight to the output: text
    // tables stream in constant memory, dumps without copies.
    if !wants_owners && args.sort.is_none() {
        for mut source in sources {
            let tables = match &mut source.sockets {
                Sockets::Tables(tables) => tables,
                Sockets::Dumped(dumped) => {
                    let mut current = None;
                    let mut sl = 0u32;
                    for d in dumped.iter_mut().filter(|d| expr.matches(&d.socket, None)) {
                        if current != Some(d.socket.family) {
                            current = Some(d.socket.family);
                            sink.table(d.socket.family)?;
                            sl = 0;
                        }
                        d.socket.sl = sl;
                        sl += 1;
                        sink.row(&Row {
                            socket: &d.socket,
                            diag: Some(&d.diag),
                            source: source.used.name(),
                            netns: source.namespace.as_ref(),
                            owners: None,
                        })?;
                    }
                    continue;
                }
            };
            for (family, slot) in [Family::Ipv4, Family::Ipv6]
                .into_iter()
                .zip(tables.iter_mut())
            {
                let Some(reader) = slot else { continue };
                sink.table(family)?;
                let mut sl = 0u32;
                // Parsing runs on a second thread, overlapping the output.
                reader.for_each_read_ahead(|socket| {
                    if !expr.matches(socket, None) {
                        return Ok(());
                    }
                    let mut renumbered;
                    let socket = if renumber {
                        renumbered = *socket;
                        renumbered.sl = sl;
                        sl += 1;
                        &renumbered
                    } else {
                        socket
                    };
                    sink.row(&Row {
                        socket,
                        diag: None,
                        source: source.used.name(),
                        netns: source.namespace.as_ref(),
                        owners: None,
                    })
                    .map_err(anyhow::Error::from)
                })?;
                query::report_skipped(reader);
            }
        }
        return sink.finish().context("writing output");
    }

    let mut gathered = query::gather(sources, &expr, &args.source.root, wants_owners)?;
    if let Some(scan) = &gathered.owners {
        query::report_uninspected(scan);
    }
    let owners = gathered.owners.take();
    let entries = &mut gathered.entries;
    if let Some(field) = args.sort {
        entries.sort_by_key(|e| sort_key(field, &e.socket, owners.as_ref()));
        if args.reverse {
            entries.reverse();
        }
    }
    // The proc format keeps each table together (stable: sorted within).
    if format == Format::Proc {
        entries.sort_by_key(|e| (e.ns, e.socket.family));
    }
    emit(
        &mut *sink,
        entries,
        &gathered.namespaces,
        owners.as_ref(),
        renumber,
    )?;
    sink.finish().context("writing output")
}

fn emit(
    sink: &mut dyn Sink,
    entries: &mut [Entry],
    namespaces: &[Option<Namespace>],
    owners: Option<&OwnerScan>,
    renumber: bool,
) -> Result<()> {
    let mut current: Option<(usize, Family)> = None;
    let mut sl = 0u32;
    for e in entries {
        if current != Some((e.ns, e.socket.family)) {
            current = Some((e.ns, e.socket.family));
            sink.table(e.socket.family)?;
            sl = 0;
        }
        if renumber || e.diag.is_some() {
            e.socket.sl = sl;
            sl += 1;
        }
        sink.row(&Row {
            socket: &e.socket,
            diag: e.diag.as_ref(),
            source: e.source,
            netns: namespaces[e.ns].as_ref(),
            owners: owners.map(|o| o.ownership(&e.socket)),
        })?;
    }
    Ok(())
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Num(u64),
    Addr(std::net::IpAddr, u16),
}

fn sort_key(field: SortField, s: &Socket, owners: Option<&OwnerScan>) -> Key {
    match field {
        SortField::State => Key::Num(s.state.code() as u64),
        SortField::RxQueue => Key::Num(s.rx_queue as u64),
        SortField::TxQueue => Key::Num(s.tx_queue as u64),
        SortField::Local => Key::Addr(s.local_canonical().ip(), s.local.port()),
        SortField::Remote => Key::Addr(s.remote_canonical().ip(), s.remote.port()),
        SortField::Sport => Key::Num(s.local.port() as u64),
        SortField::Dport => Key::Num(s.remote.port() as u64),
        SortField::Uid => Key::Num(s.uid as u64),
        SortField::Inode => Key::Num(s.inode),
        SortField::Pid => Key::Num(
            owners
                .and_then(|o| o.owners(s).first().map(|o| o.pid as u64))
                .unwrap_or(u64::MAX),
        ),
    }
}
