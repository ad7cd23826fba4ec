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
use crate::output::table::{Align, TextTable};

/// The state table (none when empty), after a blank line.
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

/// A table of tallies (none when empty), after a blank line: the
/// connections and the bytes they sent and received.
fn tallies<'a>(
    out: &mut impl Write,
    what: &'static str,
    rows: impl Iterator<Item = (String, &'a Tally)>,
) -> io::Result<()> {
    let mut t = TextTable::new(vec![
        (what, Align::Left),
        ("Connections", Align::Right),
        ("Bytes sent", Align::Right),
        ("Bytes received", Align::Right),
    ]);
    let mut any = false;
    for (name, tally) in rows {
        t.cell(format_args!("{name}"));
        t.cell(format_args!("{}", tally.connections));
        t.cell(format_args!("{}", tally.bytes_sent));
        t.cell(format_args!("{}", tally.bytes_received));
        any = true;
    }
    if any {
        writeln!(out)?;
        t.write_block(out)?;
    }
    Ok(())
}

/// Connections counted, and the bytes they sent and received: each
/// connection's own counters as last recorded (the kernel's
/// `bytes_acked` and `bytes_received` of its socket, over its whole life,
/// not only the window's part; none for one never seen with them).
#[derive(Debug, Default, Clone, Copy, Serialize, JsonSchema)]
pub struct Tally {
    /// Connections (each end a poll or notification saw is one).
    connections: u64,
    /// Bytes they sent that their peers acknowledged (`bytes_acked`).
    bytes_sent: u64,
    /// Bytes they received (`bytes_received`).
    bytes_received: u64,
}

impl Tally {
    fn add(&mut self, lived: &Lived) {
        self.connections += 1;
        self.bytes_sent += lived.lifetime.bytes_acked.unwrap_or(0);
        self.bytes_received += lived.lifetime.bytes_received.unwrap_or(0);
    }
}

/// The counts of `--summary`.
#[derive(Debug, Default)]
pub(super) struct Counts {
    all: Tally,
    states: BTreeMap<String, u64>,
    remote: HashMap<std::net::IpAddr, Tally>,
    processes: HashMap<String, Tally>,
    workloads: HashMap<String, Tally>,
    recorders: HashMap<String, Tally>,
}

impl Counts {
    pub(super) fn add(&mut self, lived: &Lived) {
        let s = &lived.entry.socket;
        self.all.add(lived);
        let host = lived
            .lifetime
            .host
            .as_ref()
            .map_or("", |h| h.hostname.as_str());
        self.recorders
            .entry(host.to_string())
            .or_default()
            .add(lived);
        *self.states.entry(s.state.to_string()).or_default() += 1;
        if !s.remote.ip().is_unspecified() {
            self.remote
                .entry(tcptab::canonical(s.remote).ip())
                .or_default()
                .add(lived);
        }
        let owners = lived.entry.as_entry().owners;
        let commands = owners.map_or_else(Vec::new, |o| o.commands());
        if commands.is_empty() {
            let none = match owners {
                Some(tcptab::Ownership::Unknown) => "(unknown)",
                _ => "(no process)",
            };
            self.processes.entry(none.into()).or_default().add(lived);
        }
        for c in commands {
            self.processes.entry(c.into()).or_default().add(lived);
        }
        let workload = lived
            .entry
            .workload
            .as_ref()
            .map_or_else(|| "(none)".to_string(), |w| w.label());
        self.workloads.entry(workload).or_default().add(lived);
    }
}

/// `(key, tally)` of `map`, most connections first, then by key.
fn ranked<K: Ord, T>(map: HashMap<K, Tally>, row: impl Fn(K, Tally) -> T) -> Vec<T> {
    let mut list: Vec<(K, Tally)> = map.into_iter().collect();
    list.sort_by(|a, b| b.1.connections.cmp(&a.1.connections).then(a.0.cmp(&b.0)));
    list.into_iter().map(|(key, n)| row(key, n)).collect()
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
    /// Connections matching the filter, and the bytes they sent and
    /// received (each connection's counters as last recorded, over its
    /// whole life).
    #[serde(flatten)]
    all: Tally,
    /// Connections per state (with --at, the state at that moment).
    states: BTreeMap<String, u64>,
    /// Connections (and their bytes) per remote address, most first.
    remote_hosts: Vec<HostCount>,
    /// Connections (and their bytes) per command holding them, most
    /// first (`(no process)`, `(unknown)` for those without a known
    /// owner; a connection held by two commands counts for each).
    processes: Vec<ProcessCount>,
    /// Connections (and their bytes) per workload (pod/container, else
    /// unit, else cgroup), most first (`(none)` for those without one).
    workloads: Vec<WorkloadCount>,
    /// Connections (and their bytes) per recording host (its host name),
    /// most first: one for a file, every host of a fleet's store.
    hosts: Vec<RecorderCount>,
}

/// A recording host's connections.
#[derive(Debug, Serialize, JsonSchema)]
struct RecorderCount {
    hostname: String,
    #[serde(flatten)]
    tally: Tally,
}

/// A workload's connections.
#[derive(Debug, Serialize, JsonSchema)]
struct WorkloadCount {
    workload: String,
    #[serde(flatten)]
    tally: Tally,
}

/// A remote address's connections.
#[derive(Debug, Serialize, JsonSchema)]
struct HostCount {
    address: std::net::IpAddr,
    #[serde(flatten)]
    tally: Tally,
}

/// A command's connections.
#[derive(Debug, Serialize, JsonSchema)]
struct ProcessCount {
    command: String,
    #[serde(flatten)]
    tally: Tally,
}

pub(super) fn write_summary(
    args: &HistoryArgs,
    window: Window,
    span: Option<Span>,
    c: Counts,
) -> Result<()> {
    let remote_hosts = ranked(c.remote, |address, tally| HostCount { address, tally });
    let processes = ranked(c.processes, |command, tally| ProcessCount {
        command,
        tally,
    });
    let workloads = ranked(c.workloads, |workload, tally| WorkloadCount {
        workload,
        tally,
    });
    let hosts = ranked(c.recorders, |hostname, tally| RecorderCount {
        hostname,
        tally,
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
        all: c.all,
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
        HistoryFormat::Table => write_table(&mut out, &summary)?,
    }
    out.flush().context("writing output")
}

fn write_table(out: &mut impl Write, summary: &Summary) -> io::Result<()> {
    let when = match (&summary.at, &summary.from, &summary.to) {
        (Some(at), _, _) => format!("open at {at}"),
        (None, Some(a), Some(b)) => format!("that existed from {a} to {b}"),
        _ => "recorded".to_string(),
    };
    let all = &summary.all;
    writeln!(
        out,
        "{} {when}: {} sent, {} received",
        tcptab::counted(all.connections, "connection"),
        tcptab::counted(all.bytes_sent, "byte"),
        tcptab::counted(all.bytes_received, "byte"),
    )?;
    let states = summary.states.iter().map(|(s, n)| (s.clone(), *n));
    counts(out, "State", states)?;
    let hosts = summary
        .remote_hosts
        .iter()
        .map(|h| (h.address.to_string(), &h.tally));
    tallies(out, "Remote host", hosts)?;
    let processes = summary
        .processes
        .iter()
        .map(|p| (p.command.clone(), &p.tally));
    tallies(out, "Process", processes)?;
    let workloads = summary
        .workloads
        .iter()
        .map(|w| (w.workload.clone(), &w.tally));
    tallies(out, "Workload", workloads)?;
    if summary.hosts.len() > 1 {
        let hosts = summary.hosts.iter().map(|h| (h.hostname.clone(), &h.tally));
        tallies(out, "Host", hosts)?;
    }
    Ok(())
}
