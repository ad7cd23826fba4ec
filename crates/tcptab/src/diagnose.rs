//! Findings: patterns in the socket table that point at a problem, each
//! with its evidence and what to do.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::Serialize;

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

/// One finding.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// `close_wait`, `accept_queue`, `zero_window`, `retransmits`,
    /// `time_wait`, `no_owner`, `orphans`.
    pub kind: &'static str,
    /// `warning` or `critical`.
    pub severity: &'static str,
    pub summary: String,
    /// The sockets (or groups) that show it, a few at most.
    pub evidence: Vec<String>,
    pub advice: &'static str,
    /// How many sockets are involved.
    pub sockets: u64,
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
    let mut close_wait: BTreeMap<String, Vec<&Socket>> = BTreeMap::new();
    for o in sockets
        .iter()
        .filter(|o| o.socket.state == State::CloseWait)
    {
        let holder = match owners.map(|scan| scan.ownership(o.socket)) {
            Some(Ownership::Owned(list)) => list
                .iter()
                .map(|p| format!("{} (pid {})", p.command, p.pid))
                .collect::<Vec<_>>()
                .join(", "),
            Some(Ownership::NoProcess) => "no process (not yet accepted)".into(),
            _ => "an unknown process (run with -p as root to name it)".into(),
        };
        close_wait.entry(holder).or_default().push(o.socket);
    }
    for (holder, list) in close_wait {
        if list.len() as u64 >= t.close_wait {
            findings.push(Finding {
                kind: "close_wait",
                severity: "warning",
                summary: format!("{} sockets in CLOSE_WAIT held by {holder}", list.len()),
                evidence: list.iter().take(EVIDENCE).map(|s| pair(s)).collect(),
                advice: "the peers closed these connections but the application has not called close(): look for a leak of connections or a stuck worker",
                sockets: list.len() as u64,
            });
        }
    }

    // Accept queues near or at their limit.
    for o in sockets.iter().filter(|o| o.socket.state == State::Listen) {
        let Some(limit) = o.backlog_limit else {
            continue;
        };
        let queued = o.socket.rx_queue;
        if queued == 0 || (queued as f64) < t.accept_queue * limit as f64 {
            continue;
        }
        let full = queued >= limit;
        findings.push(Finding {
            kind: "accept_queue",
            severity: if full { "critical" } else { "warning" },
            summary: format!(
                "accept queue of {} {} {queued}/{limit}",
                endpoint(o.socket.local),
                if full { "is full:" } else { "is nearly full:" }
            ),
            evidence: vec![format!("{} waiting for accept(), limit {limit}", queued)],
            advice: "the application is not accepting connections fast enough: new handshakes are dropped (listen overflow); accept faster, add workers, or raise the listen() backlog and net.core.somaxconn",
            sockets: 1,
        });
    }

    // Zero window probing: the peer stopped reading.
    let probing: Vec<&Socket> = sockets
        .iter()
        .map(|o| o.socket)
        .filter(|s| s.timer.kind == TimerKind::ZeroWindowProbe)
        .collect();
    if !probing.is_empty() {
        findings.push(Finding {
            kind: "zero_window",
            severity: "warning",
            summary: format!("{} sockets probing a zero window: their peers stopped reading", probing.len()),
            evidence: probing
                .iter()
                .take(EVIDENCE)
                .map(|s| format!("{} ({} bytes unsent, {} unanswered probes)", pair(s), s.tx_queue, s.probes))
                .collect(),
            advice: "the receiving application is not reading its socket (blocked, overloaded or stuck): look at the peer, not at this host",
            sockets: probing.len() as u64,
        });
    }

    // Retransmission timeouts piling up: loss or a dead peer.
    let lossy: Vec<&Socket> = sockets
        .iter()
        .map(|o| o.socket)
        .filter(|s| s.kind == RowKind::Full && s.retransmits >= t.retransmits)
        .collect();
    if !lossy.is_empty() {
        findings.push(Finding {
            kind: "retransmits",
            severity: "warning",
            summary: format!(
                "{} sockets with {} or more retransmission timeouts in a row",
                lossy.len(),
                t.retransmits
            ),
            evidence: lossy
                .iter()
                .take(EVIDENCE)
                .map(|s| {
                    let rto = s.congestion.map(|c| c.rto.as_millis()).unwrap_or(0);
                    format!("{} ({} timeouts, rto {} ms, {})", pair(s), s.retransmits, rto, s.state)
                })
                .collect(),
            advice: "packets to these peers are being lost or the peers are gone: check the path (loss, MTU, firewall) and whether the peers are alive",
            sockets: lossy.len() as u64,
        });
    }

    // TIME_WAIT towards one remote endpoint: ephemeral port pressure.
    let mut time_wait: BTreeMap<String, u64> = BTreeMap::new();
    for o in sockets
        .iter()
        .filter(|o| o.socket.kind == RowKind::TimeWait && o.socket.state == State::TimeWait)
    {
        *time_wait.entry(endpoint(o.socket.remote)).or_default() += 1;
    }
    for (remote, count) in time_wait {
        if count >= t.time_wait {
            findings.push(Finding {
                kind: "time_wait",
                severity: "warning",
                summary: format!("{count} TIME_WAIT sockets towards {remote}"),
                evidence: vec![format!("{count} recently closed connections to {remote}")],
                advice: "many short connections to one endpoint use up local ports (each TIME_WAIT holds one for 60 s): reuse connections (keep-alive, pooling), or widen net.ipv4.ip_local_port_range",
                sockets: count,
            });
        }
    }

    // Sockets held by no process although they have an inode.
    if let Some(scan) = owners {
        let unowned: Vec<&Socket> = sockets
            .iter()
            .map(|o| o.socket)
            .filter(|s| scan.ownership(s) == Ownership::NotFound)
            .collect();
        if !unowned.is_empty() {
            findings.push(Finding {
                kind: "no_owner",
                severity: "warning",
                summary: format!("{} sockets that no process holds", unowned.len()),
                evidence: unowned
                    .iter()
                    .take(EVIDENCE)
                    .map(|s| format!("{} {} inode {}", s.state, pair(s), s.inode))
                    .collect(),
                advice: "a socket with an inode but no process is held by the kernel or in flight over a Unix socket; if it persists, look for a process in another PID namespace",
                sockets: unowned.len() as u64,
            });
        }
    }

    // Orphans: closed by their application, still finishing.
    let orphans: Vec<&Socket> = sockets
        .iter()
        .map(|o| o.socket)
        .filter(|s| {
            s.kind == RowKind::Full
                && s.inode == 0
                && matches!(
                    s.state,
                    State::FinWait1 | State::FinWait2 | State::Closing | State::LastAck
                )
        })
        .collect();
    if orphans.len() as u64 >= t.orphans {
        findings.push(Finding {
            kind: "orphans",
            severity: "warning",
            summary: format!("{} orphaned sockets (closed by their application, still finishing)", orphans.len()),
            evidence: orphans.iter().take(EVIDENCE).map(|s| format!("{} {}", s.state, pair(s))).collect(),
            advice: "orphans use memory and count against net.ipv4.tcp_max_orphans; many in FIN_WAIT1 or LAST_ACK point at peers that stopped answering",
            sockets: orphans.len() as u64,
        });
    }
    findings
}
