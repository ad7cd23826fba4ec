//! `tcptab summary`: counts per state (zeros included), per family, per
//! listener's accept queue, busiest local ports and remote hosts, per
//! process with -p, and TIME_WAIT and orphan pressure.

use std::collections::HashMap;
use std::io::{self, Write};
use std::path::Path;

use anyhow::{Context, Result};
use comfy_table::{presets, Table};
use schemars::JsonSchema;
use serde::Serialize;
use tcptab::diag::Extensions;
use tcptab::summary::{Summarizer, Summary};

use crate::cli::{ReportFormat, SummaryArgs};
use crate::query;

/// `summary --format json` (docs/schema.md).
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(title = "tcptab summary")]
pub struct Report {
    /// The version of tcptab's documents (docs/schema.md).
    schema_version: u32,
    #[serde(flatten)]
    summary: Summary,
    /// Sockets per process (with -p), busiest first; null without -p.
    processes: Option<Vec<ProcessCount>>,
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

fn sysctl(root: &Path, name: &str) -> Option<u64> {
    std::fs::read_to_string(root.join("sys/net/ipv4").join(name))
        .ok()?
        .trim()
        .parse()
        .ok()
}

pub fn run(args: &SummaryArgs) -> Result<()> {
    let expr = query::filter(&args.filter)?;
    let query = query::query(
        &args.source,
        &args.namespaces,
        expr,
        Extensions::default(),
        args.processes,
    )?;
    // Counted as the table streams: only the counts are held.
    let mut summarizer = Summarizer::new();
    let mut per_pid: HashMap<u32, (String, u64)> = HashMap::new();
    let report = query.for_each(|e| {
        summarizer.add(e.socket, e.diag.and_then(|d| d.backlog_limit));
        for o in e.owners.map_or(&[][..], |o| o.owners()) {
            per_pid
                .entry(o.pid)
                .or_insert_with(|| (o.command.clone(), 0))
                .1 += 1;
        }
        Ok::<(), anyhow::Error>(())
    })?;
    query::notes(&report, args.source.verbose);
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
    let report = Report {
        schema_version: tcptab::SCHEMA_VERSION,
        summary: summarizer.finish(args.top),
        processes,
        tcp_max_tw_buckets: sysctl(&args.source.root, "tcp_max_tw_buckets"),
        tcp_max_orphans: sysctl(&args.source.root, "tcp_max_orphans"),
        source: report.read.first().map_or("proc", |r| r.source.as_str()),
    };
    let mut out = io::stdout().lock();
    match args.output.format() {
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
        t.add_row(vec![state.to_string(), count.to_string()]);
    }
    writeln!(out, "{t}\n")?;
    if !s.listeners.is_empty() {
        let mut t = table(&["Listener", "Accept queue", "Limit"]);
        for l in &s.listeners {
            t.add_row(vec![
                crate::output::table::Endpoint(
                    std::net::SocketAddr::new(l.local_address, l.local_port),
                    None,
                )
                .to_string(),
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
        for p in &s.busiest_local_ports {
            t.add_row(vec![p.local_port.to_string(), p.sockets.to_string()]);
        }
        writeln!(out, "{t}\n")?;
    }
    if !s.busiest_remote_hosts.is_empty() {
        let mut t = table(&["Remote host", "Sockets"]);
        for h in &s.busiest_remote_hosts {
            t.add_row(vec![h.remote_address.to_string(), h.sockets.to_string()]);
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
