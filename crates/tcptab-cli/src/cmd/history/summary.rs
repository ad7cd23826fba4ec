//! `tcptab history --summary`: the connections of the window counted per
//! state, remote host, process, workload and recording host, with the
//! bytes each group's connections sent and received.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Write};

use anyhow::{bail, Context, Result};
use schemars::JsonSchema;
use serde::Serialize;
use tcptab::history::{Lived, Span, Window};
use tcptab::time::format_rfc3339;

use crate::cli::{HistoryArgs, HistoryFormat};
use crate::output::table::Align;

/// One table of counts (none when empty), after a blank line.
fn counts(
    out: &mut impl Write,
    what: &'static str,
    rows: impl Iterator<Item = (String, u64)>,
) -> io::Result<()> {
    let headers = [(what, Align::Left), ("Connections", Align::Right)];
    if let Some(mut t) = crate::output::table::counts(headers, rows) {
        writeln!(out)?;
        t.write_block(out)?;
    }
    Ok(())
}

/// The counts of `--summary`.
#[derive(Debug, Default)]
pub(super) struct Counts {
    connections: u64,
    states: BTreeMap<String, u64>,
    remote: HashMap<std::net::IpAddr, u64>,
    processes: HashMap<String, u64>,
    workloads: HashMap<String, u64>,
    recorders: HashMap<String, u64>,
}

impl Counts {
    pub(super) fn add(&mut self, lived: &Lived) {
        let s = &lived.entry.socket;
        self.connections += 1;
        let host = lived
            .lifetime
            .host
            .as_ref()
            .map_or("", |h| h.hostname.as_str());
        *self.recorders.entry(host.to_string()).or_default() += 1;
        *self.states.entry(s.state.to_string()).or_default() += 1;
        if !s.remote.ip().is_unspecified() {
            *self
                .remote
                .entry(tcptab::canonical(s.remote).ip())
                .or_default() += 1;
        }
        let owners = lived.entry.as_entry().owners;
        let commands = owners.map_or_else(Vec::new, |o| o.commands());
        if commands.is_empty() {
            let none = match owners {
                Some(tcptab::Ownership::Unknown) => "(unknown)",
                _ => "(no process)",
            };
            *self.processes.entry(none.into()).or_default() += 1;
        }
        for c in commands {
            *self.processes.entry(c.into()).or_default() += 1;
        }
        let workload = lived
            .entry
            .workload
            .as_ref()
            .map_or_else(|| "(none)".to_string(), |w| w.label());
        *self.workloads.entry(workload).or_default() += 1;
    }
}

/// `(name, count)` of `map`, most first, then by name.
fn ranked<T>(map: HashMap<String, u64>, row: impl Fn(String, u64) -> T) -> Vec<T> {
    let mut list: Vec<(String, u64)> = map.into_iter().collect();
    list.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    list.into_iter().map(|(name, n)| row(name, n)).collect()
}

/// `history --summary --format json`.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(title = "tcptab history summary")]
pub struct Summary {
    /// The version of tcptab's documents (docs/schema.md).
    schema_version: u32,
    /// `--at`: the moment (RFC 3339); null otherwise.
    at: Option<String>,
    /// `--between`: the interval's ends; null otherwise.
    from: Option<String>,
    to: Option<String>,
    /// The first and last poll of the recording; null when it has none.
    first_poll: Option<String>,
    last_poll: Option<String>,
    /// Connections matching the filter.
    connections: u64,
    /// Connections per state (with --at, the state at that moment).
    states: BTreeMap<String, u64>,
    /// Connections per remote address, most first.
    remote_hosts: Vec<HostCount>,
    /// Connections per command holding them, most first (`(no process)`,
    /// `(unknown)` for those without a known owner).
    processes: Vec<ProcessCount>,
    /// Connections per workload (pod/container, else unit, else cgroup),
    /// most first (`(none)` for those without one).
    workloads: Vec<WorkloadCount>,
    /// Connections per recording host (its host name), most first: one
    /// for a file, every host of a fleet's store.
    hosts: Vec<RecorderCount>,
}

#[derive(Debug, Serialize, JsonSchema)]
struct RecorderCount {
    hostname: String,
    connections: u64,
}

#[derive(Debug, Serialize, JsonSchema)]
struct WorkloadCount {
    workload: String,
    connections: u64,
}

#[derive(Debug, Serialize, JsonSchema)]
struct HostCount {
    address: std::net::IpAddr,
    connections: u64,
}

#[derive(Debug, Serialize, JsonSchema)]
struct ProcessCount {
    command: String,
    connections: u64,
}

pub(super) fn write_summary(
    args: &HistoryArgs,
    window: Window,
    span: Option<Span>,
    c: Counts,
) -> Result<()> {
    let mut remote_hosts: Vec<HostCount> = c
        .remote
        .into_iter()
        .map(|(address, connections)| HostCount {
            address,
            connections,
        })
        .collect();
    remote_hosts.sort_by(|a, b| {
        b.connections
            .cmp(&a.connections)
            .then(a.address.cmp(&b.address))
    });
    let processes = ranked(c.processes, |command, connections| ProcessCount {
        command,
        connections,
    });
    let workloads = ranked(c.workloads, |workload, connections| WorkloadCount {
        workload,
        connections,
    });
    let hosts = ranked(c.recorders, |hostname, connections| RecorderCount {
        hostname,
        connections,
    });
    let (at, from, to) = match window {
        Window::At(t) => (Some(format_rfc3339(t)), None, None),
        Window::Between(a, b) => (None, Some(format_rfc3339(a)), Some(format_rfc3339(b))),
        Window::All => (None, None, None),
    };
    let summary = Summary {
        schema_version: tcptab::record::SCHEMA_VERSION,
        at,
        from,
        to,
        first_poll: span.map(|s| format_rfc3339(s.first_poll)),
        last_poll: span.map(|s| format_rfc3339(s.last_poll)),
        connections: c.connections,
        states: c.states,
        remote_hosts,
        processes,
        workloads,
        hosts,
    };
    let mut out = io::stdout().lock();
    match args.format {
        HistoryFormat::Json | HistoryFormat::Jsonl => {
            if args.format == HistoryFormat::Json {
                serde_json::to_writer_pretty(&mut out, &summary)?;
            } else {
                serde_json::to_writer(&mut out, &summary)?;
            }
            writeln!(out)?;
        }
        HistoryFormat::Csv => {
            bail!("--summary is written as a table or as JSON (--format table, json or jsonl)")
        }
        HistoryFormat::Table => {
            let when = match (&summary.at, &summary.from, &summary.to) {
                (Some(at), _, _) => format!("open at {at}"),
                (None, Some(a), Some(b)) => format!("that existed from {a} to {b}"),
                _ => "recorded".to_string(),
            };
            writeln!(
                out,
                "{} {when}",
                tcptab::counted(summary.connections, "connection")
            )?;
            let states = summary.states.iter().map(|(s, n)| (s.clone(), *n));
            counts(&mut out, "State", states)?;
            let hosts = summary
                .remote_hosts
                .iter()
                .map(|h| (h.address.to_string(), h.connections));
            counts(&mut out, "Remote host", hosts)?;
            let processes = summary
                .processes
                .iter()
                .map(|p| (p.command.clone(), p.connections));
            counts(&mut out, "Process", processes)?;
            let workloads = summary
                .workloads
                .iter()
                .map(|w| (w.workload.clone(), w.connections));
            counts(&mut out, "Workload", workloads)?;
            if summary.hosts.len() > 1 {
                let hosts = summary
                    .hosts
                    .iter()
                    .map(|h| (h.hostname.clone(), h.connections));
                counts(&mut out, "Host", hosts)?;
            }
        }
    }
    out.flush().context("writing output")
}
