//! `tcptab summary`: counts per state (zeros included), per family, per
//! listener's accept queue, busiest local ports and remote hosts, per
//! process with -p, and TIME_WAIT and orphan pressure.

use std::collections::HashMap;
use std::io::{self, Write};
use std::path::Path;

use anyhow::{Context, Result};
use comfy_table::{presets, Table};
use serde::Serialize;
use tcptab::diag::Extensions;
use tcptab::summary::{summarize, Summary};

use crate::cli::{ReportFormat, SummaryArgs};
use crate::query::{self, Want};

#[derive(Debug, Serialize)]
struct Report {
    #[serde(flatten)]
    summary: Summary,
    /// Sockets per process (with -p), busiest first.
    #[serde(skip_serializing_if = "Option::is_none")]
    processes: Option<Vec<ProcessCount>>,
    /// The kernel's limits for TIME_WAIT and orphans, where readable.
    tcp_max_tw_buckets: Option<u64>,
    tcp_max_orphans: Option<u64>,
    /// `netlink` or `proc`; from /proc the accept queue limits are unknown.
    source: &'static str,
}

#[derive(Debug, Serialize)]
struct ProcessCount {
    pid: u32,
    command: String,
    sockets: u64,
}

fn sysctl(root: &Path, name: &str) -> Option<u64> {
    std::fs::read_to_string(root.join("sys/net/ipv4").join(name))
        .ok()?
        .trim()
        .parse()
        .ok()
}

pub fn run(args: &SummaryArgs) -> Result<()> {
    let expr = query::filter(&args.filter)?;
    let want = Want {
        extensions: Extensions::default(),
        states: expr.states(),
    };
    let (sources, denied) = query::sources(&args.source, &args.namespaces, want)?;
    query::report_sources(&sources, args.source.verbose);
    query::report_namespaces_denied(denied);
    let source = sources.first().map_or("proc", |s| s.used.name());
    let gathered = query::gather(sources, &expr, &args.source.root, args.processes)?;
    if let Some(scan) = &gathered.owners {
        query::report_uninspected(scan);
    }
    let summary = summarize(
        gathered
            .entries
            .iter()
            .map(|e| (&e.socket, e.diag.as_ref().and_then(|d| d.backlog_limit))),
        args.top,
    );
    let processes = gathered.owners.as_ref().map(|scan| {
        let mut counts: HashMap<(u32, String), u64> = HashMap::new();
        for e in &gathered.entries {
            for o in scan.owners(&e.socket) {
                *counts.entry((o.pid, o.command.clone())).or_default() += 1;
            }
        }
        let mut list: Vec<ProcessCount> = counts
            .into_iter()
            .map(|((pid, command), sockets)| ProcessCount {
                pid,
                command,
                sockets,
            })
            .collect();
        list.sort_by(|a, b| b.sockets.cmp(&a.sockets).then(a.pid.cmp(&b.pid)));
        list.truncate(args.top);
        list
    });
    let report = Report {
        summary,
        processes,
        tcp_max_tw_buckets: sysctl(&args.source.root, "tcp_max_tw_buckets"),
        tcp_max_orphans: sysctl(&args.source.root, "tcp_max_orphans"),
        source,
    };
    let mut out = io::stdout().lock();
    let format = args.output.format();
    match format {
        ReportFormat::Json => {
            serde_json::to_writer_pretty(&mut out, &report)?;
            writeln!(out)?;
        }
        ReportFormat::Table => write_table(&mut out, &report)?,
    }
    out.flush().context("writing output")
}

fn table(headers: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(presets::NOTHING).set_header(headers.to_vec());
    t
}

fn write_table(out: &mut impl Write, r: &Report) -> io::Result<()> {
    let s = &r.summary;
    writeln!(
        out,
        "{} sockets: {} IPv4, {} IPv6 (source: {})\n",
        s.total, s.ipv4, s.ipv6, r.source
    )?;
    let mut t = table(&["State", "Sockets"]);
    for (state, count) in &s.states {
        t.add_row(vec![state.clone(), count.to_string()]);
    }
    writeln!(out, "{t}\n")?;
    if !s.listeners.is_empty() {
        let mut t = table(&["Listener", "Accept queue", "Limit"]);
        for l in &s.listeners {
            t.add_row(vec![
                crate::output::table::Endpoint(l.local, None).to_string(),
                l.queued.to_string(),
                l.limit.map_or("?".to_string(), |n| n.to_string()),
            ]);
        }
        writeln!(out, "{t}")?;
        if s.listeners.iter().any(|l| l.limit.is_none()) {
            writeln!(
                out,
                "(?: /proc does not show accept queue limits; the netlink source does)"
            )?;
        }
        writeln!(out)?;
    }
    if !s.busiest_local_ports.is_empty() {
        let mut t = table(&["Local port", "Sockets"]);
        for (port, n) in &s.busiest_local_ports {
            t.add_row(vec![port.to_string(), n.to_string()]);
        }
        writeln!(out, "{t}\n")?;
    }
    if !s.busiest_remote_hosts.is_empty() {
        let mut t = table(&["Remote host", "Sockets"]);
        for (host, n) in &s.busiest_remote_hosts {
            t.add_row(vec![host.to_string(), n.to_string()]);
        }
        writeln!(out, "{t}\n")?;
    }
    if let Some(processes) = &r.processes {
        let mut t = table(&["Process", "PID", "Sockets"]);
        for p in processes {
            t.add_row(vec![
                p.command.clone(),
                p.pid.to_string(),
                p.sockets.to_string(),
            ]);
        }
        writeln!(out, "{t}\n")?;
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
