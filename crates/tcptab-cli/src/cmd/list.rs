//! `tcptab list`: the sockets of both tables, filtered, with owners,
//! namespaces and tcp_info on request, in the chosen format.
//!
//! Without sorting, rows go from the query engine straight to the output
//! (the text tables and the dump stream); `--sort` holds the table first.

use std::io;

use anyhow::{Context, Result};
use tcptab::diag::Extensions;
use tcptab::filter::Expr;
use tcptab::{Entry, Family, OwnerScan, Socket};

use crate::cli::{Format, ListArgs, SortField};
use crate::output::{self, Columns, OutputOptions, Sink};
use crate::report;

pub fn run(args: &ListArgs) -> Result<()> {
    let expr = args.select.filter.expr()?;
    let format = args.format;
    let renumber = expr != Expr::All || !args.sort.is_empty();
    // JSON and CSV carry every field, and the kernel's text has rto, ato,
    // cwnd and ssthresh: these ask the dump for tcp_info too.
    let full_record = matches!(format, Format::Json | Format::Jsonl | Format::Csv);
    let extensions = Extensions {
        info: args.info || args.extended || full_record || format == Format::Proc,
        memory: args.memory || full_record,
    };
    let owners = args.processes || args.sort.contains(&SortField::Pid);
    let query = args
        .select
        .scope
        .query(expr, extensions, owners)?
        .workloads(args.workload);
    let options = OutputOptions {
        format,
        byte_order: args.select.scope.source.read_options().byte_order,
        columns: Columns {
            processes: args.processes,
            workload: args.workload,
            timers: args.timers,
            extended: args.extended,
            netns: args.select.scope.namespaces.all_netns,
            resolve: args.resolve,
            info: args.info,
            memory: args.memory,
            netns_fields: args.select.named(),
            history: false,
            no_header: args.no_header,
            color: args.color.enabled(),
            width: output::terminal_width(),
        },
    };
    let stdout = io::stdout().lock();
    let mut sink = output::sink(Box::new(stdout), options)?;
    let mut tables = Tables::default();

    let report = match &args.sort[..] {
        [] => query.visit(&mut Listing {
            sink: &mut *sink,
            tables: &mut tables,
            renumber,
        })?,
        fields => {
            let snapshot = query.snapshot()?;
            let mut order: Vec<usize> = (0..snapshot.sockets.len()).collect();
            let owners = snapshot.owners.as_ref();
            order.sort_by_cached_key(|&i| {
                let socket = &snapshot.sockets[i].socket;
                fields
                    .iter()
                    .map(|&field| sort_key(field, socket, owners))
                    .collect::<Vec<_>>()
            });
            if args.reverse {
                order.reverse();
            }
            if format == Format::Proc {
                // The kernel's text keeps each table together, with its
                // header even when empty: table by table, sorted within
                // (the sort is stable).
                let index: std::collections::HashMap<Option<u64>, usize> = snapshot
                    .namespaces
                    .iter()
                    .enumerate()
                    .map(|(i, n)| (n.as_ref().map(|n| n.inode), i))
                    .collect();
                let table_of = |i: usize| {
                    let kept = &snapshot.sockets[i];
                    let ns = index[&kept.namespace.as_ref().map(|n| n.inode)];
                    (ns, kept.socket.family)
                };
                order.sort_by_key(|&i| table_of(i));
                let mut rows = order.into_iter().peekable();
                for (ns, read) in snapshot.report.read.iter().enumerate() {
                    for &family in &read.tables {
                        let key = (read.namespace.as_ref().map(|n| n.inode), family);
                        tables.begin(&mut *sink, key)?;
                        while let Some(i) = rows.next_if(|&i| table_of(i) == (ns, family)) {
                            tables.emit(&mut *sink, &snapshot.entry(i), true)?;
                        }
                    }
                }
            } else {
                for i in order {
                    tables.emit(&mut *sink, &snapshot.entry(i), true)?;
                }
            }
            snapshot.report
        }
    };
    sink.finish().context("writing output")?;
    report::notes(&report, args.select.verbose());
    if (args.info || args.memory) && report::any_proc(&report) {
        note!("tcptab: -i and -m need the netlink source (/proc has no tcp_info or socket memory); shown as '-'");
    }
    Ok(())
}

/// The streamed listing: each table as the engine announces it (the proc
/// format writes a header for an empty one too), then its rows.
struct Listing<'s, 'o> {
    sink: &'s mut (dyn Sink + 'o),
    tables: &'s mut Tables,
    renumber: bool,
}

impl tcptab::Visitor<anyhow::Error> for Listing<'_, '_> {
    fn table(
        &mut self,
        namespace: Option<&tcptab::Namespace>,
        family: Family,
        _: tcptab::Source,
    ) -> Result<()> {
        self.tables
            .begin(&mut *self.sink, (namespace.map(|n| n.inode), family))
    }

    fn entry(&mut self, entry: &Entry<'_>) -> Result<()> {
        self.tables.emit(&mut *self.sink, entry, self.renumber)
    }
}

/// Where one table (a namespace's family) begins, and the rows' numbers.
#[derive(Debug, Default)]
struct Tables {
    current: Option<(Option<u64>, Family)>,
    sl: u32,
}

impl Tables {
    /// Hand `entry` to the sink, starting a table where the namespace or
    /// family changes. `sl` is renumbered from 0 in each table when the
    /// listing is filtered or sorted, and always for a dump (whose `sl` is
    /// the position in the kernel's answer).
    fn begin(&mut self, sink: &mut dyn Sink, table: (Option<u64>, Family)) -> Result<()> {
        self.current = Some(table);
        sink.table(table.1)?;
        self.sl = 0;
        Ok(())
    }

    fn emit(&mut self, sink: &mut dyn Sink, entry: &Entry<'_>, renumber: bool) -> Result<()> {
        let table = (entry.namespace.map(|n| n.inode), entry.socket.family);
        if self.current != Some(table) {
            self.begin(sink, table)?;
        }
        if renumber || entry.diag.is_some() {
            let mut socket = *entry.socket;
            socket.sl = self.sl;
            self.sl += 1;
            sink.row(&entry.with_socket(&socket))?;
        } else {
            sink.row(entry)?;
        }
        Ok(())
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
