//! `tcptab list`: the sockets of both tables, filtered, with owners and
//! namespaces on request, in the chosen format.
//!
//! Without owners or sorting the sockets stream from the tables to the
//! output (constant memory); otherwise they are gathered first.

use std::collections::HashSet;
use std::io;
use std::path::Path;

use anyhow::{Context, Result};
use tcptab::{Expr, Family, Namespace, OwnerScan, Socket};

use crate::cli::{Format, ListArgs, SortField};
use crate::output::{self, Columns, OutputOptions, Row};
use crate::query;

pub fn run(args: &ListArgs) -> Result<()> {
    let expr = query::filter(&args.filter)?;
    let format = args.format();
    let wants_owners = args.processes || expr.needs_owners() || args.sort == Some(SortField::Pid);
    let filtered = expr != Expr::All;
    let (sources, ns_denied) = query::sources(&args.source, &args.namespaces)?;
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
        },
    };
    let stdout = io::stdout().lock();
    let mut sink = output::sink(Box::new(stdout), options)?;

    if !wants_owners && args.sort.is_none() {
        // Stream.
        for mut source in sources {
            for (family, slot) in [Family::Ipv4, Family::Ipv6]
                .into_iter()
                .zip(source.tables.iter_mut())
            {
                let Some(reader) = slot else { continue };
                sink.table(family)?;
                let mut sl = 0u32;
                for socket in reader.by_ref() {
                    let mut socket = socket?;
                    if !expr.matches(&socket, None) {
                        continue;
                    }
                    if filtered {
                        socket.sl = sl;
                        sl += 1;
                    }
                    sink.row(&Row {
                        socket: &socket,
                        netns: source.namespace.as_ref(),
                        owners: None,
                    })?;
                }
                query::report_skipped(reader);
            }
        }
        return sink.finish().context("writing output");
    }

    // Gather, then resolve owners, filter, sort.
    let mut entries: Vec<(Socket, usize)> = Vec::new();
    let mut namespaces: Vec<Option<Namespace>> = Vec::new();
    for (index, mut source) in sources.into_iter().enumerate() {
        for reader in source.tables.iter_mut().flatten() {
            for socket in reader.by_ref() {
                let socket = socket?;
                // Owner conditions wait for the scan; the rest apply now.
                if expr.needs_owners() || expr.matches(&socket, None) {
                    entries.push((socket, index));
                }
            }
            query::report_skipped(reader);
        }
        namespaces.push(source.namespace.take());
    }
    let owners = if wants_owners {
        let wanted: HashSet<u64> = entries
            .iter()
            .map(|(s, _)| s.inode)
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
        entries.retain(|(s, _)| expr.matches(s, owners.as_ref()));
    }
    if let Some(field) = args.sort {
        let key = |(s, ns): &(Socket, usize)| sort_key(field, s, owners.as_ref(), *ns);
        // The proc format keeps each table together.
        if format == Format::Proc {
            entries.sort_by(|a, b| {
                (a.1, a.0.family)
                    .cmp(&(b.1, b.0.family))
                    .then_with(|| key(a).cmp(&key(b)))
            });
        } else {
            entries.sort_by_key(key);
        }
        if args.reverse {
            entries.reverse();
            if format == Format::Proc {
                entries.sort_by_key(|(s, ns)| (*ns, s.family));
            }
        }
    }
    let mut current: Option<(usize, Family)> = None;
    let mut sl = 0u32;
    for (socket, ns) in &mut entries {
        if current != Some((*ns, socket.family)) {
            current = Some((*ns, socket.family));
            sink.table(socket.family)?;
            sl = 0;
        }
        if filtered || args.sort.is_some() {
            socket.sl = sl;
            sl += 1;
        }
        sink.row(&Row {
            socket,
            netns: namespaces[*ns].as_ref(),
            owners: owners.as_ref().map(|o| o.ownership(socket)),
        })?;
    }
    sink.finish().context("writing output")
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

fn sort_key(field: SortField, s: &Socket, owners: Option<&OwnerScan>, _ns: usize) -> Key {
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
