//! Findings: patterns in the socket table that point at a problem, each
//! with its evidence and what to do.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use crate::owners::{OwnerScan, Ownership};
use crate::socket::{canonical, RowKind, Socket, State, TimerKind};

/// When a pattern becomes a finding.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// CLOSE_WAIT sockets held by one process.
    pub close_wait: u64,
    /// Accept queue length as a fraction of its limit.
    pub accept_queue: f64,
    /// Consecutive retransmission timeouts on one socket.
    pub retransmits: u32,
    /// TIME_WAIT sockets towards one remote address and port.
    pub time_wait: u64,
    /// Orphaned sockets (closed by their application, still finishing).
    pub orphans: u64,
}

impl Default for Thresholds {
    fn default() -> Thresholds {
        Thresholds {
            close_wait: 10,
            accept_queue: 0.9,
            retransmits: 3,
            time_wait: 500,
            orphans: 100,
        }
    }
}

/// What a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Kind {
    /// CLOSE_WAIT sockets piling up behind one holder.
    CloseWait,
    /// A listener's accept queue at or near its limit.
    AcceptQueue,
    /// Sockets probing a peer's zero window.
    ZeroWindow,
    /// Sockets with retransmission timeouts in a row.
    Retransmits,
    /// TIME_WAIT sockets towards one remote endpoint.
    TimeWait,
    /// Sockets with an inode that no process holds.
    NoOwner,
    /// Orphaned sockets (closed by their application, still finishing).
    Orphans,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::CloseWait => "close_wait",
            Kind::AcceptQueue => "accept_queue",
            Kind::ZeroWindow => "zero_window",
            Kind::Retransmits => "retransmits",
            Kind::TimeWait => "time_wait",
            Kind::NoOwner => "no_owner",
            Kind::Orphans => "orphans",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How bad a finding is (ordered: `Warning < Critical`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Severity {
    Warning,
    Critical,
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        })
    }
}

/// A process involved in a finding.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub struct Process {
    pub pid: u32,
    pub command: String,
}

/// One finding.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Finding {
    pub kind: Kind,
    pub severity: Severity,
    pub summary: String,
    pub advice: &'static str,
    /// How many sockets are involved.
    pub count: u64,
    /// The sockets that show it (a few at most), as indices into the
    /// slice given to [`diagnose`].
    pub sockets: Vec<usize>,
    /// The processes involved, when owners were looked up.
    pub processes: Vec<Process>,
    /// One line per evidence socket (or group) for people.
    pub details: Vec<String>,
    /// For a finding that destroying the sockets would clear: the filter of
    /// `tcptab kill` that selects exactly them (namespace options are the
    /// caller's to add).
    pub kill_filter: Option<String>,
}

/// One socket to look at, with what only netlink knows.
#[derive(Debug, Clone, Copy)]
pub struct Observed<'a> {
    pub socket: &'a Socket,
    /// LISTEN: the accept queue limit (netlink).
    pub backlog_limit: Option<u32>,
}

const EVIDENCE: usize = 5;

fn endpoint(addr: SocketAddr) -> String {
    let addr = canonical(addr);
    if addr.is_ipv6() {
        format!("[{}]:{}", addr.ip(), addr.port())
    } else {
        addr.to_string()
    }
}

fn pair(s: &Socket) -> String {
    format!("{} -> {}", endpoint(s.local), endpoint(s.remote))
}

/// Look for every pattern in `sockets`. Owners (`-p`) name the processes
/// in CLOSE_WAIT findings and find sockets no process holds.
pub fn diagnose(
    sockets: &[Observed<'_>],
    owners: Option<&OwnerScan>,
    t: &Thresholds,
) -> Vec<Finding> {
    let mut findings = Vec::new();

    // CLOSE_WAIT piling up, per process.
    let mut close_wait: BTreeMap<String, (Vec<Process>, Vec<usize>)> = BTreeMap::new();
    for (i, o) in sockets
        .iter()
        .enumerate()
        .filter(|(_, o)| o.socket.state == State::CloseWait)
    {
        let (holder, processes) = match owners.map(|scan| scan.ownership(o.socket)) {
            Some(Ownership::Owned(list)) => (
                list.iter()
                    .map(|p| format!("{} (pid {})", p.command, p.pid))
                    .collect::<Vec<_>>()
                    .join(", "),
                list.iter()
                    .map(|p| Process {
                        pid: p.pid,
                        command: p.command.clone(),
                    })
                    .collect(),
            ),
            Some(Ownership::NoProcess) => ("no process (not yet accepted)".into(), Vec::new()),
            _ => (
                "an unknown process (run with -p as root to name it)".into(),
                Vec::new(),
            ),
        };
        let group = close_wait.entry(holder).or_default();
        if group.0.is_empty() {
            group.0 = processes;
        }
        group.1.push(i);
    }
    for (holder, (processes, list)) in close_wait {
        if list.len() as u64 >= t.close_wait {
            let shown: Vec<usize> = list.iter().copied().take(EVIDENCE).collect();
            findings.push(Finding {
                kind: Kind::CloseWait,
                severity: Severity::Warning,
                summary: format!("{} sockets in CLOSE_WAIT held by {holder}", list.len()),
                details: shown.iter().map(|&i| pair(sockets[i].socket)).collect(),
                advice: "the peers closed these connections but the application has not called close(): look for a leak of connections or a stuck worker",
                count: list.len() as u64,
                kill_filter: Some(close_wait_filter(&processes, &list, sockets)),
                sockets: shown,
                processes: processes.into_iter().fold(Vec::new(), |mut v, p| {
                    if !v.contains(&p) {
                        v.push(p);
                    }
                    v
                }),
            });
        }
    }

    // Accept queues near or at their limit.
    for (i, o) in sockets
        .iter()
        .enumerate()
        .filter(|(_, o)| o.socket.state == State::Listen)
    {
        let Some(limit) = o.backlog_limit else {
            continue;
        };
        let queued = o.socket.rx_queue;
        if queued == 0 || (queued as f64) < t.accept_queue * limit as f64 {
            continue;
        }
        let full = queued >= limit;
        findings.push(Finding {
            kind: Kind::AcceptQueue,
            severity: if full {
                Severity::Critical
            } else {
                Severity::Warning
            },
            summary: format!(
                "accept queue of {} {} {queued}/{limit}",
                endpoint(o.socket.local),
                if full { "is full:" } else { "is nearly full:" }
            ),
            details: vec![format!("{} waiting for accept(), limit {limit}", queued)],
            advice: "the application is not accepting connections fast enough: new handshakes are dropped (listen overflow); accept faster, add workers, or raise the listen() backlog and net.core.somaxconn",
            count: 1,
            sockets: vec![i],
            processes: processes_of(owners, &[o.socket]),
            kill_filter: None,
        });
    }

    // Zero window probing: the peer stopped reading.
    let probing = matching(sockets, |s| s.timer.kind == TimerKind::ZeroWindowProbe);
    if !probing.is_empty() {
        findings.push(Finding {
            kind: Kind::ZeroWindow,
            severity: Severity::Warning,
            summary: format!("{} sockets probing a zero window: their peers stopped reading", probing.len()),
            details: evidence(sockets, &probing)
                .map(|s| format!("{} ({} bytes unsent, {} unanswered probes)", pair(s), s.tx_queue, s.probes))
                .collect(),
            advice: "the receiving application is not reading its socket (blocked, overloaded or stuck): look at the peer, not at this host",
            count: probing.len() as u64,
            processes: processes_of(owners, &evidence(sockets, &probing).collect::<Vec<_>>()),
            kill_filter: zero_window_filter(&probing, sockets),
            sockets: probing.iter().copied().take(EVIDENCE).collect(),
        });
    }

    // Retransmission timeouts piling up: loss or a dead peer.
    let lossy = matching(sockets, |s| {
        s.kind == RowKind::Full && s.retransmits >= t.retransmits
    });
    if !lossy.is_empty() {
        findings.push(Finding {
            kind: Kind::Retransmits,
            severity: Severity::Warning,
            summary: format!(
                "{} sockets with {} or more retransmission timeouts in a row",
                lossy.len(),
                t.retransmits
            ),
            details: evidence(sockets, &lossy)
                .map(|s| {
                    let rto = s.congestion.map(|c| c.rto.as_millis()).unwrap_or(0);
                    format!("{} ({} timeouts, rto {} ms, {})", pair(s), s.retransmits, rto, s.state)
                })
                .collect(),
            advice: "packets to these peers are being lost or the peers are gone: check the path (loss, MTU, firewall) and whether the peers are alive",
            count: lossy.len() as u64,
            processes: processes_of(owners, &evidence(sockets, &lossy).collect::<Vec<_>>()),
            kill_filter: None,
            sockets: lossy.iter().copied().take(EVIDENCE).collect(),
        });
    }

    // TIME_WAIT towards one remote endpoint: ephemeral port pressure.
    let mut time_wait: BTreeMap<String, (u64, Vec<usize>)> = BTreeMap::new();
    for (i, o) in sockets
        .iter()
        .enumerate()
        .filter(|(_, o)| o.socket.kind == RowKind::TimeWait && o.socket.state == State::TimeWait)
    {
        let group = time_wait.entry(endpoint(o.socket.remote)).or_default();
        group.0 += 1;
        if group.1.len() < EVIDENCE {
            group.1.push(i);
        }
    }
    for (remote, (count, shown)) in time_wait {
        if count >= t.time_wait {
            findings.push(Finding {
                kind: Kind::TimeWait,
                severity: Severity::Warning,
                summary: format!("{count} TIME_WAIT sockets towards {remote}"),
                details: vec![format!("{count} recently closed connections to {remote}")],
                advice: "many short connections to one endpoint use up local ports (each TIME_WAIT holds one for 60 s): reuse connections (keep-alive, pooling), or widen net.ipv4.ip_local_port_range",
                count,
                sockets: shown,
                processes: Vec::new(),
                kill_filter: None,
            });
        }
    }

    // Sockets held by no process although they have an inode.
    if let Some(scan) = owners {
        let unowned = matching(sockets, |s| scan.ownership(s) == Ownership::NotFound);
        if !unowned.is_empty() {
            findings.push(Finding {
                kind: Kind::NoOwner,
                severity: Severity::Warning,
                summary: format!("{} sockets that no process holds", unowned.len()),
                details: evidence(sockets, &unowned)
                    .map(|s| format!("{} {} inode {}", s.state, pair(s), s.inode))
                    .collect(),
                advice: "a socket with an inode but no process is held by the kernel or in flight over a Unix socket; if it persists, look for a process in another PID namespace",
                count: unowned.len() as u64,
                sockets: unowned.iter().copied().take(EVIDENCE).collect(),
                processes: Vec::new(),
                kill_filter: None,
            });
        }
    }

    // Orphans: closed by their application, still finishing.
    let orphans = matching(sockets, |s| {
        s.kind == RowKind::Full
            && s.inode == 0
            && matches!(
                s.state,
                State::FinWait1 | State::FinWait2 | State::Closing | State::LastAck
            )
    });
    if orphans.len() as u64 >= t.orphans {
        findings.push(Finding {
            kind: Kind::Orphans,
            severity: Severity::Warning,
            summary: format!("{} orphaned sockets (closed by their application, still finishing)", orphans.len()),
            details: evidence(sockets, &orphans).map(|s| format!("{} {}", s.state, pair(s))).collect(),
            advice: "orphans use memory and count against net.ipv4.tcp_max_orphans; many in FIN_WAIT1 or LAST_ACK point at peers that stopped answering",
            count: orphans.len() as u64,
            sockets: orphans.iter().copied().take(EVIDENCE).collect(),
            processes: Vec::new(),
            kill_filter: None,
        });
    }
    findings
}

/// The indices of the sockets that `test` selects.
fn matching(sockets: &[Observed<'_>], test: impl Fn(&Socket) -> bool) -> Vec<usize> {
    (0..sockets.len())
        .filter(|&i| test(sockets[i].socket))
        .collect()
}

/// The first few of `indices`, as sockets.
fn evidence<'a>(
    sockets: &'a [Observed<'a>],
    indices: &'a [usize],
) -> impl Iterator<Item = &'a Socket> + 'a {
    indices.iter().take(EVIDENCE).map(|&i| sockets[i].socket)
}

/// The processes holding any of `list`, each once, by pid.
fn processes_of(owners: Option<&OwnerScan>, list: &[&Socket]) -> Vec<Process> {
    let mut out: Vec<Process> = Vec::new();
    for s in list {
        for o in owners.map_or(&[][..], |scan| scan.owners(s)) {
            if !out.iter().any(|p| p.pid == o.pid) {
                out.push(Process {
                    pid: o.pid,
                    command: o.command.clone(),
                });
            }
        }
    }
    out.sort_by_key(|p| p.pid);
    out
}

/// The `tcptab kill` filter for a CLOSE_WAIT group: by its one holder when
/// it has one, else by the local port they share, else all CLOSE_WAIT.
fn close_wait_filter(holders: &[Process], group: &[usize], sockets: &[Observed<'_>]) -> String {
    let mut pids: Vec<u32> = holders.iter().map(|p| p.pid).collect();
    pids.dedup();
    if let [pid] = pids[..] {
        return format!("--state close-wait --pid {pid}");
    }
    let port = sockets[group[0]].socket.local.port();
    if group
        .iter()
        .all(|&i| sockets[i].socket.local.port() == port)
    {
        return format!("--state close-wait --sport {port}");
    }
    "--state close-wait".to_string()
}

/// The `tcptab kill` filter for sockets probing a zero window, when they
/// all talk to one peer address and port (the peer that stopped reading);
/// one socket is named by its local port too.
fn zero_window_filter(probing: &[usize], sockets: &[Observed<'_>]) -> Option<String> {
    let first = sockets[*probing.first()?].socket;
    let peer = canonical(first.remote);
    if !probing
        .iter()
        .all(|&i| canonical(sockets[i].socket.remote) == peer)
    {
        return None;
    }
    let mut filter = format!("--dst {} --dport {}", peer.ip(), peer.port());
    if let [_] = probing {
        filter.push_str(&format!(" --sport {}", first.local.port()));
    }
    Some(filter)
}
