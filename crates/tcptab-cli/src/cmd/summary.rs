//! `tcptab summary`: counts per state (zeros included), per family, per
//! listener's accept queue, busiest local ports and remote hosts, per
//! process with -p, per workload with --workload, and TIME_WAIT and orphan
//! pressure.

use std::collections::HashMap;
use std::io::{self, Write};
use std::path::Path;

use crate::output::table::{Align, TextTable};
use anyhow::{Context, Result};
use schemars::JsonSchema;
use serde::Serialize;
use tcptab::diag::Extensions;
use tcptab::summary::{Summarizer, Summary};

use crate::cli::{ReportFormat, SummaryArgs};
use crate::report;

/// `summary --format json` (docs/schema.md).
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(title = "tcptab summary")]
pub struct Report {
    /// The version of tcptab's documents (docs/schema.md).
    schema_version: u32,
    /// The machine it is about.
    host: tcptab::Host,
    #[serde(flatten)]
    summary: Summary,
    /// Sockets per process (with -p), busiest first; null without -p.
    processes: Option<Vec<ProcessCount>>,
    /// Sockets per workload (with --workload), busiest first; null
    /// without it. TIME_WAIT and request sockets have none: they are
    /// counted under a null cgroup.
    workloads: Option<Vec<WorkloadCount>>,
    /// The kernel's limits for TIME_WAIT and orphans, where readable.
    tcp_max_tw_buckets: Option<u64>,
    tcp_max_orphans: Option<u64>,
    /// `netlink` or `proc` (of the first namespace read); from /proc the
    /// accept queue limits are unknown.
    source: &'static str,
}

#[derive(Debug, Serialize, JsonSchema)]
struct ProcessCount {
    pid: u32,
    command: String,
    sockets: u64,
}

#[derive(Debug, Serialize, JsonSchema)]
struct WorkloadCount {
    /// What the table shows: `namespace/pod/container`, the container,
    /// the unit or the cgroup; `-` for sockets without a cgroup.
    workload: String,
    /// The cgroup v2 path (null: sockets without one).
    cgroup: Option<String>,
    unit: Option<String>,
    container_name: Option<String>,
    pod_namespace: Option<String>,
    pod_name: Option<String>,
    sockets: u64,
    established: u64,
    listening: u64,
}

impl WorkloadCount {
    fn of(w: Option<&tcptab::Workload>) -> WorkloadCount {
        WorkloadCount {
            workload: w.map_or("-".into(), |w| w.label()),
            cgroup: w.map(|w| w.cgroup.clone()),
            unit: w.and_then(|w| w.unit.clone()),
            container_name: w.and_then(|w| w.container_name.clone()),
            pod_namespace: w.and_then(|w| w.pod_namespace.clone()),
            pod_name: w.and_then(|w| w.pod_name.clone()),
            sockets: 0,
            established: 0,
            listening: 0,
        }
    }
}

fn sysctl(root: &Path, name: &str) -> Option<u64> {
    std::fs::read_to_string(root.join("sys/net/ipv4").join(name))
        .ok()?
        .trim()
        .parse()
        .ok()
}

pub fn run(args: &SummaryArgs) -> Result<()> {
    let query = args
        .select
        .query(Extensions::default(), args.processes)?
        .workloads(args.workload);
    // Counted as the table streams: only the counts are held.
    let mut summarizer = Summarizer::new();
    let mut per_pid: HashMap<u32, (String, u64)> = HashMap::new();
    let mut per_workload: HashMap<Option<String>, WorkloadCount> = HashMap::new();
    let report = query.for_each(|e| {
        summarizer.add(e.socket, e.diag.and_then(|d| d.backlog_limit));
        if args.workload {
            let w = e.workload.map(|w| &**w);
            let count = per_workload
                .entry(w.map(|w| w.cgroup.clone()))
                .or_insert_with(|| WorkloadCount::of(w));
            count.sockets += 1;
            count.established += (e.socket.state == tcptab::State::Established) as u64;
            count.listening += (e.socket.state == tcptab::State::Listen) as u64;
        }
        for o in e.owners.map_or(&[][..], |o| o.owners()) {
            per_pid
                .entry(o.pid)
                .or_insert_with(|| (o.command.to_string(), 0))
                .1 += 1;
        }
        Ok::<(), anyhow::Error>(())
    })?;
    report::notes(&report, args.select.verbose());
    let processes = args.processes.then(|| {
        let mut list: Vec<ProcessCount> = per_pid
            .into_iter()
            .map(|(pid, (command, sockets))| ProcessCount {
                pid,
                command,
                sockets,
            })
            .collect();
        list.sort_by(|a, b| b.sockets.cmp(&a.sockets).then(a.pid.cmp(&b.pid)));
        list.truncate(args.top);
        list
    });
    let workloads = args.workload.then(|| {
        let mut list: Vec<WorkloadCount> = per_workload.into_values().collect();
        list.sort_by(|a, b| b.sockets.cmp(&a.sockets).then(a.cgroup.cmp(&b.cgroup)));
        list.truncate(args.top);
        list
    });
    let report = Report {
        schema_version: tcptab::record::SCHEMA_VERSION,
        host: crate::output::json::host().clone(),
        summary: summarizer.finish(args.top),
        processes,
        workloads,
        tcp_max_tw_buckets: sysctl(&args.select.scope.source.root, "tcp_max_tw_buckets"),
        tcp_max_orphans: sysctl(&args.select.scope.source.root, "tcp_max_orphans"),
        source: report.read.first().map_or("proc", |r| r.source.as_str()),
    };
    let mut out = io::stdout().lock();
    match args.output.format {
        ReportFormat::Json => {
            serde_json::to_writer_pretty(&mut out, &report)?;
            writeln!(out)?;
        }
        ReportFormat::Table => write_table(&mut out, &report)?,
    }
    out.flush().context("writing output")
}

/// A table of the summary: names left, numbers right, no trailing spaces.
fn table(headers: &[(&'static str, Align)]) -> TextTable {
    TextTable::new(headers.to_vec())
}

/// A block of the busiest names and their sockets, when there is any.
fn busiest<N: std::fmt::Display>(
    out: &mut impl Write,
    name: (&'static str, Align),
    rows: impl Iterator<Item = (N, u64)>,
) -> io::Result<()> {
    let headers = [name, ("Sockets", Align::Right)];
    if let Some(mut t) = crate::output::table::counts(headers, rows) {
        t.write_block(out)?;
        writeln!(out)?;
    }
    Ok(())
}

fn write_table(out: &mut impl Write, r: &Report) -> io::Result<()> {
    let s = &r.summary;
    writeln!(
        out,
        "{}: {} IPv4, {} IPv6 (source: {})\n",
        tcptab::counted(s.total, "socket"),
        s.ipv4,
        s.ipv6,
        r.source
    )?;
    use Align::{Left, Right};
    let mut t = table(&[("State", Left), ("Sockets", Right)]);
    for (state, count) in &s.states {
        t.cell(format_args!("{state}"));
        t.cell(format_args!("{count}"));
    }
    t.write_block(out)?;
    writeln!(out)?;
    if !s.listeners.is_empty() {
        let mut t = table(&[
            ("Listener", Left),
            ("Accept queue", Right),
            ("Limit", Right),
        ]);
        for l in &s.listeners {
            let at = std::net::SocketAddr::new(l.local_address, l.local_port);
            t.cell(format_args!("{}", crate::output::cells::Endpoint(at, None)));
            t.cell(format_args!("{}", l.queued));
            match l.limit {
                Some(n) => t.cell(format_args!("{n}")),
                None => t.cell(format_args!("?")),
            }
        }
        t.write_block(out)?;
        if s.listeners.iter().any(|l| l.limit.is_none()) {
            writeln!(
                out,
                "(?: /proc does not show accept queue limits; the netlink source does)"
            )?;
        }
        writeln!(out)?;
    }
    let ports = s
        .busiest_local_ports
        .iter()
        .map(|p| (p.local_port, p.sockets));
    busiest(out, ("Local port", Right), ports)?;
    let hosts = s
        .busiest_remote_hosts
        .iter()
        .map(|h| (h.remote_address, h.sockets));
    busiest(out, ("Remote host", Left), hosts)?;
    if let Some(processes) = &r.processes {
        let mut t = table(&[("Process", Left), ("PID", Right), ("Sockets", Right)]);
        for p in processes {
            t.cell(format_args!("{}", p.command));
            t.cell(format_args!("{}", p.pid));
            t.cell(format_args!("{}", p.sockets));
        }
        t.write_block(out)?;
        writeln!(out)?;
    }
    if let Some(workloads) = &r.workloads {
        let mut t = table(&[
            ("Workload", Left),
            ("Sockets", Right),
            ("Established", Right),
            ("Listening", Right),
        ]);
        for w in workloads {
            t.cell(format_args!("{}", w.workload));
            t.cell(format_args!("{}", w.sockets));
            t.cell(format_args!("{}", w.established));
            t.cell(format_args!("{}", w.listening));
        }
        t.write_block(out)?;
        writeln!(out)?;
    }
    let limit = |v: Option<u64>| v.map_or(String::new(), |n| format!(" (limit {n})"));
    writeln!(
        out,
        "TIME_WAIT: {}{}",
        s.time_wait,
        limit(r.tcp_max_tw_buckets)
    )?;
    writeln!(out, "Orphans:   {}{}", s.orphans, limit(r.tcp_max_orphans))
}
