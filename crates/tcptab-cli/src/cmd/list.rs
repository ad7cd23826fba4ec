//! `tcptab list`: the sockets of both tables, filtered, with owners,
//! namespaces and tcp_info on request, in the chosen format.
//!
//! Text tables without owners or sorting stream to the output (constant
//! memory); otherwise the sockets are gathered first.

use std::collections::HashSet;
use std::io;
use std::path::Path;

use anyhow::{Context, Result};
use tcptab::diag::{Diag, Extensions};
use tcptab::{Expr, Family, Namespace, OwnerScan, Socket};

use crate::cli::{Format, ListArgs, SortField};
use crate::output::{self, Columns, OutputOptions, Row, Sink};
use crate::query::{self, Sockets, Want};

pub fn run(args: &ListArgs) -> Result<()> {
    let expr = query::filter(&args.filter)?;
    let format = args.format();
    let wants_owners = args.processes || expr.needs_owners() || args.sort == Some(SortField::Pid);
    let renumber = expr != Expr::All || args.sort.is_some();
    // JSON and CSV carry every field, and the kernel's text has rto, ato,
    // cwnd and ssthresh: these ask the dump for tcp_info too.
    let full_record = matches!(
        format,
        Format::Json | Format::Jsonl | Format::Csv | Format::Proc
    );
    let want = Want {
        extensions: Extensions {
            info: args.info || args.extended || full_record,
            memory: args.memory || full_record,
        },
        states: expr.states(),
    };
    let (sources, ns_denied) = query::sources(&args.source, &args.namespaces, want)?;
    query::report_sources(&sources, args.source.verbose);
    if (args.info || args.memory) && sources.iter().any(|s| s.used.name() == "proc") {
        eprintln!("tcptab: -i and -m need the netlink source (/proc has no tcp_info or socket memory); shown as '-'");
    }
    if ns_denied > 0 {
        eprintln!(
            "tcptab: the network namespace of {ns_denied} process(es) could not be read (permission denied); run as root to see every namespace"
        );
    }
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

    let mut entries: Vec<Entry> = Vec::new();
    let mut namespaces: Vec<Option<Namespace>> = Vec::new();
    let gather = wants_owners || args.sort.is_some();
    for (index, source) in sources.into_iter().enumerate() {
        let source_name = source.used.name();
        match source.sockets {
            Sockets::Tables(mut tables) => {
                for (family, slot) in [Family::Ipv4, Family::Ipv6]
                    .into_iter()
                    .zip(tables.iter_mut())
                {
                    let Some(reader) = slot else { continue };
                    if !gather {
                        sink.table(family)?;
                    }
                    let mut sl = 0u32;
                    for socket in reader.by_ref() {
                        let mut socket = socket?;
                        if gather {
                            if expr.needs_owners() || expr.matches(&socket, None) {
                                entries.push(Entry {
                                    socket,
                                    diag: None,
                                    ns: index,
                                    source: source_name,
                                });
                            }
                            continue;
                        }
                        if !expr.matches(&socket, None) {
                            continue;
                        }
                        if renumber {
                            socket.sl = sl;
                            sl += 1;
                        }
                        sink.row(&Row {
                            socket: &socket,
                            diag: None,
                            source: source_name,
                            netns: source.namespace.as_ref(),
                            owners: None,
                        })?;
                    }
                    query::report_skipped(reader);
                }
            }
            Sockets::Dumped(dumped) => {
                for d in dumped {
                    if expr.needs_owners() || expr.matches(&d.socket, None) {
                        entries.push(Entry {
                            socket: d.socket,
                            diag: Some(d.diag),
                            ns: index,
                            source: source_name,
                        });
                    }
                }
            }
        }
        namespaces.push(source.namespace);
    }

    let owners = if wants_owners {
        let wanted: HashSet<u64> = entries
            .iter()
            .map(|e| e.socket.inode)
            .filter(|&i| i != 0)
            .collect();
        let scan = OwnerScan::scan(Path::new(&args.source.root), &wanted)
            .with_context(|| format!("reading processes under {}", args.source.root.display()))?;
        report_uninspected(&scan);
        Some(scan)
    } else {
        None
    };
    if expr.needs_owners() {
        entries.retain(|e| expr.matches(&e.socket, owners.as_ref()));
    }
    if let Some(field) = args.sort {
        let key = |e: &Entry| sort_key(field, &e.socket, owners.as_ref());
        entries.sort_by_key(key);
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
        &mut entries,
        &namespaces,
        owners.as_ref(),
        renumber,
    )?;
    sink.finish().context("writing output")
}

/// One gathered socket.
struct Entry {
    socket: Socket,
    diag: Option<Diag>,
    /// Index of its source in `namespaces`.
    ns: usize,
    source: &'static str,
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

/// Say once how many processes could not be inspected, and why.
pub fn report_uninspected(scan: &OwnerScan) {
    if scan.denied > 0 {
        let why = match scan.denied_reason {
            Some(io::ErrorKind::PermissionDenied) | None => "permission denied".to_string(),
            Some(kind) => kind.to_string(),
        };
        eprintln!(
            "tcptab: {} process(es) could not be inspected ({why}); sockets they may hold show their owner as unknown. Run as root to see every owner.",
            scan.denied
        );
    }
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
