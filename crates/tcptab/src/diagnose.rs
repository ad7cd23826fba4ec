//! Findings: patterns in the socket table that point at a problem, each
//! with its evidence and what to do.
//!
//! [`Diagnoser`] looks at one socket at a time, so a table can stream
//! through it: it keeps only its groups (per CLOSE_WAIT holder, per
//! TIME_WAIT peer) and a few sockets of evidence per finding, copied.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use crate::model::{canonical, Entry, EntryBuf, Ownership, RowKind, Socket, State, TimerKind};

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

display_by_name!(Kind, as_str);

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
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Finding {
    pub kind: Kind,
    pub severity: Severity,
    pub summary: String,
    pub advice: &'static str,
    /// How many sockets are involved.
    pub count: u64,
    /// The sockets that show it (a few at most), kept with what came with
    /// them.
    pub sockets: Vec<EntryBuf>,
    /// The processes involved, when owners were looked up.
    pub processes: Vec<Process>,
    /// One line per evidence socket (or group) for people.
    pub details: Vec<String>,
    /// For a finding that destroying the sockets would clear: the filter of
    /// `tcptab kill` that selects exactly them (namespace options are the
    /// caller's to add).
    pub kill_filter: Option<String>,
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

/// Sockets that share a pattern: how many, and the first few.
#[derive(Debug, Default)]
struct Group {
    count: u64,
    evidence: Vec<EntryBuf>,
    processes: Vec<Process>,
}

impl Group {
    fn add(&mut self, e: &Entry<'_>) {
        self.count += 1;
        if self.evidence.len() < EVIDENCE {
            self.evidence.push(e.to_buf());
            for o in e.owners.map_or(&[][..], |o| o.owners()) {
                if !self.processes.iter().any(|p| p.pid == o.pid) {
                    self.processes.push(Process {
                        pid: o.pid,
                        command: o.command.to_string(),
                    });
                }
            }
        }
    }

    fn sockets(&self) -> impl Iterator<Item = &Socket> {
        self.evidence.iter().map(|e| &e.socket)
    }
}

/// Looks for every pattern, one socket at a time. Owners (when the entries
/// have them) name the holders of CLOSE_WAIT sockets and find sockets no
/// process holds.
#[derive(Debug)]
pub struct Diagnoser {
    t: Thresholds,
    examined: u64,
    owners_known: bool,
    /// Per holder (a description), its CLOSE_WAIT sockets.
    close_wait: BTreeMap<String, Group>,
    listeners: Vec<Finding>,
    probing: Group,
    lossy: Group,
    /// Per remote endpoint, its TIME_WAIT sockets: a count (a server has
    /// one endpoint per client port, so this stays small per endpoint), and
    /// evidence only for endpoints within five of the threshold.
    time_wait: std::collections::HashMap<SocketAddr, u64>,
    time_wait_evidence: std::collections::HashMap<SocketAddr, Vec<EntryBuf>>,
    unowned: Group,
    orphans: Group,
}

impl Diagnoser {
    pub fn new(thresholds: Thresholds) -> Diagnoser {
        Diagnoser {
            t: thresholds,
            examined: 0,
            owners_known: false,
            close_wait: BTreeMap::new(),
            listeners: Vec::new(),
            probing: Group::default(),
            lossy: Group::default(),
            time_wait: std::collections::HashMap::new(),
            time_wait_evidence: std::collections::HashMap::new(),
            unowned: Group::default(),
            orphans: Group::default(),
        }
    }

    /// Sockets looked at so far.
    pub fn examined(&self) -> u64 {
        self.examined
    }

    /// Look at one socket.
    pub fn add(&mut self, e: &Entry<'_>) {
        let s = e.socket;
        let t = self.t;
        self.examined += 1;
        self.owners_known |= e.owners.is_some();
        match s.state {
            State::CloseWait => {
                let holder = match e.owners {
                    Some(Ownership::Owned(list)) => list
                        .iter()
                        .map(|p| format!("{} (pid {})", p.command, p.pid))
                        .collect::<Vec<_>>()
                        .join(", "),
                    Some(Ownership::NoProcess) => "no process (not yet accepted)".into(),
                    _ => "an unknown process (run with -p as root to name it)".into(),
                };
                self.close_wait.entry(holder).or_default().add(e);
            }
            State::Listen => self.listener(e),
            _ => {}
        }
        if s.timer.kind == TimerKind::ZeroWindowProbe || waits_on_a_zero_window(e) {
            self.probing.add(e);
        }
        if s.kind == RowKind::Full && s.retransmits >= t.retransmits {
            self.lossy.add(e);
        }
        if s.kind == RowKind::TimeWait && s.state == State::TimeWait {
            let peer = canonical(s.remote);
            let count = self.time_wait.entry(peer).or_default();
            *count += 1;
            if *count + EVIDENCE as u64 > t.time_wait {
                let evidence = self.time_wait_evidence.entry(peer).or_default();
                if evidence.len() < EVIDENCE {
                    evidence.push(e.to_buf());
                }
            }
        }
        if e.owners == Some(Ownership::NotFound) {
            self.unowned.add(e);
        }
        if s.kind == RowKind::Full
            && s.inode == 0
            && matches!(
                s.state,
                State::FinWait1 | State::FinWait2 | State::Closing | State::LastAck
            )
        {
            self.orphans.add(e);
        }
    }

    /// An accept queue near or at its limit is a finding of its own.
    fn listener(&mut self, e: &Entry<'_>) {
        let Some(limit) = e.diag.and_then(|d| d.backlog_limit) else { return };
        let queued = e.socket.rx_queue;
        if queued == 0 || (queued as f64) < self.t.accept_queue * limit as f64 {
            return;
        }
        let full = queued >= limit;
        let mut group = Group::default();
        group.add(e);
        self.listeners.push(Finding {
            kind: Kind::AcceptQueue,
            severity: if full {
                Severity::Critical
            } else {
                Severity::Warning
            },
            summary: format!(
                "accept queue of {} {} {queued}/{limit}",
                endpoint(e.socket.local),
                if full { "is full:" } else { "is nearly full:" }
            ),
            details: vec![format!("{queued} waiting for accept(), limit {limit}")],
            advice: "the application is not accepting connections fast enough: new handshakes are dropped (listen overflow); accept faster, add workers, or raise the listen() backlog and net.core.somaxconn",
            count: 1,
            processes: group.processes,
            sockets: group.evidence,
            kill_filter: None,
        });
    }

    /// The findings, in a fixed order: CLOSE_WAIT, accept queues, zero
    /// windows, retransmissions, TIME_WAIT, sockets without an owner,
    /// orphans.
    pub fn finish(self) -> Vec<Finding> {
        let t = self.t;
        let mut findings = Vec::new();
        for (holder, group) in self.close_wait {
            if group.count >= t.close_wait {
                findings.push(close_wait(&holder, group));
            }
        }
        findings.extend(self.listeners);
        if self.probing.count > 0 {
            findings.push(zero_window(self.probing));
        }
        if self.lossy.count > 0 {
            findings.push(retransmits(self.lossy, t.retransmits));
        }
        let mut crowded: Vec<(SocketAddr, u64)> = self
            .time_wait
            .into_iter()
            .filter(|&(_, count)| count >= t.time_wait)
            .collect();
        crowded.sort_by_key(|&(peer, _)| endpoint(peer));
        let mut evidence = self.time_wait_evidence;
        for (peer, count) in crowded {
            let group = Group {
                count,
                evidence: evidence.remove(&peer).unwrap_or_default(),
                processes: Vec::new(),
            };
            findings.push(time_wait(peer, group));
        }
        if self.owners_known && self.unowned.count > 0 {
            findings.push(no_owner(self.unowned));
        }
        if self.orphans.count >= t.orphans {
            findings.push(orphans(self.orphans));
        }
        findings
    }
}

/// A warning about `group`'s sockets.
fn warning(
    kind: Kind,
    summary: String,
    group: Group,
    details: Vec<String>,
    advice: &'static str,
    kill_filter: Option<String>,
) -> Finding {
    Finding {
        kind,
        severity: Severity::Warning,
        summary,
        advice,
        count: group.count,
        details,
        kill_filter,
        processes: group.processes,
        sockets: group.evidence,
    }
}

fn close_wait(holder: &str, group: Group) -> Finding {
    let details = group.sockets().map(pair).collect();
    let filter = close_wait_filter(&group);
    warning(
        Kind::CloseWait,
        format!("{} in CLOSE_WAIT held by {holder}", crate::counted(group.count, "socket")),
        group,
        details,
        "the peers closed these connections but the application has not called close(): look for a leak of connections or a stuck worker",
        Some(filter),
    )
}

fn zero_window(group: Group) -> Finding {
    let details = group
        .sockets()
        .map(|s| {
            format!(
                "{} ({} bytes unsent, {} unanswered probes)",
                pair(s),
                s.tx_queue,
                s.probes
            )
        })
        .collect();
    let filter = zero_window_filter(&group);
    warning(
        Kind::ZeroWindow,
        format!("{} probing a zero window: their peers stopped reading", crate::counted(group.count, "socket")),
        group,
        details,
        "the receiving application is not reading its socket (blocked, overloaded or stuck): look at the peer, not at this host",
        filter,
    )
}

fn retransmits(group: Group, threshold: u32) -> Finding {
    let details = group
        .sockets()
        .map(|s| {
            let rto = s.congestion.map(|c| c.rto.as_millis()).unwrap_or(0);
            format!(
                "{} ({} timeouts, rto {} ms, {})",
                pair(s),
                s.retransmits,
                rto,
                s.state
            )
        })
        .collect();
    warning(
        Kind::Retransmits,
        format!("{} with {threshold} or more retransmission timeouts in a row", crate::counted(group.count, "socket")),
        group,
        details,
        "packets to these peers are being lost or the peers are gone: check the path (loss, MTU, firewall) and whether the peers are alive",
        None,
    )
}

fn time_wait(peer: SocketAddr, group: Group) -> Finding {
    let (count, remote) = (group.count, endpoint(peer));
    warning(
        Kind::TimeWait,
        format!("{count} TIME_WAIT sockets towards {remote}"),
        group,
        vec![format!("{count} recently closed connections to {remote}")],
        "many short connections to one endpoint use up local ports (each TIME_WAIT holds one for 60 s): reuse connections (keep-alive, pooling), or widen net.ipv4.ip_local_port_range",
        None,
    )
}

fn no_owner(group: Group) -> Finding {
    let details = group
        .sockets()
        .map(|s| format!("{} {} inode {}", s.state, pair(s), s.inode))
        .collect();
    warning(
        Kind::NoOwner,
        format!("{} that no process holds", crate::counted(group.count, "socket")),
        group,
        details,
        "a socket with an inode but no process is held by the kernel or in flight over a Unix socket; if it persists, look for a process in another PID namespace",
        None,
    )
}

fn orphans(group: Group) -> Finding {
    let details = group
        .sockets()
        .map(|s| format!("{} {}", s.state, pair(s)))
        .collect();
    warning(
        Kind::Orphans,
        format!("{} orphaned sockets (closed by their application, still finishing)", group.count),
        group,
        details,
        "orphans use memory and count against net.ipv4.tcp_max_orphans; many in FIN_WAIT1 or LAST_ACK point at peers that stopped answering",
        None,
    )
}

/// The `tcptab kill` filter for a CLOSE_WAIT group: by its one holder when
/// it has one, else by the local port its sockets share (as far as the
/// evidence shows), else all CLOSE_WAIT.
fn close_wait_filter(group: &Group) -> String {
    if let [p] = &group.processes[..] {
        return format!("--state close-wait --pid {}", p.pid);
    }
    let mut ports = group.sockets().map(|s| s.local.port());
    match ports.next() {
        Some(port) if group.count as usize == group.evidence.len() && ports.all(|p| p == port) => {
            format!("--state close-wait --sport {port}")
        }
        _ => "--state close-wait".to_string(),
    }
}

/// Data waits to be sent while the peer advertises a zero window (tcp_info
/// `snd_wnd` 0 with a send queue): the kernel may show only a retransmit
/// timer, not the probe timer, until its next probe. Needs a tcp_info long
/// enough to have `snd_wnd` (kernel 5.4 and later); never a guess from a
/// shorter one.
pub fn waits_on_a_zero_window(e: &Entry<'_>) -> bool {
    const SND_WND_END: usize = 232;
    let Some(info) = e.diag.and_then(|d| d.tcp_info.as_deref()) else {
        return false;
    };
    e.socket.state == State::Established
        && e.socket.tx_queue > 0
        && info.length >= SND_WND_END
        && info.snd_wnd == 0
}

/// What a connection shows on its own, for marking it where it is listed
/// (`tcptab top`): the finding its socket would be evidence of, if any.
/// (CLOSE_WAIT, TIME_WAIT and orphans become findings by their number;
/// here each such socket is marked.)
pub fn mark(e: &Entry<'_>, t: &Thresholds) -> Option<Kind> {
    let s = e.socket;
    if s.state == State::Listen {
        let limit = e.diag.and_then(|d| d.backlog_limit)?;
        let queued = s.rx_queue;
        return (queued > 0 && queued as f64 >= t.accept_queue * limit as f64)
            .then_some(Kind::AcceptQueue);
    }
    if s.state == State::CloseWait {
        return Some(Kind::CloseWait);
    }
    if s.timer.kind == TimerKind::ZeroWindowProbe || waits_on_a_zero_window(e) {
        return Some(Kind::ZeroWindow);
    }
    if s.kind == RowKind::Full && s.retransmits >= t.retransmits {
        return Some(Kind::Retransmits);
    }
    None
}

/// The `tcptab kill` filter for sockets probing a zero window, when they
/// all talk to one peer address and port (the peer that stopped reading);
/// one socket is named by its local port too. Known only when the evidence
/// holds every probing socket.
fn zero_window_filter(group: &Group) -> Option<String> {
    if group.count as usize != group.evidence.len() {
        return None;
    }
    let first = group.sockets().next()?;
    let peer = canonical(first.remote);
    if !group.sockets().all(|s| canonical(s.remote) == peer) {
        return None;
    }
    let mut filter = format!("--dst {} --dport {}", peer.ip(), peer.port());
    if group.count == 1 {
        filter.push_str(&format!(" --sport {}", first.local.port()));
    }
    Some(filter)
}

#[cfg(test)]
mod zero_window_tests {
    use super::*;
    use crate::model::{Diag, Source, TcpInfo};

    fn entry_with(socket: &Socket, diag: &Diag) -> bool {
        let e = Entry::new(socket, Source::Netlink).with_diag(Some(diag));
        waits_on_a_zero_window(&e) && mark(&e, &Thresholds::default()) == Some(Kind::ZeroWindow)
    }

    #[test]
    fn data_waiting_on_a_zero_window_is_found_only_when_tcp_info_says_so() {
        let mut socket = Socket::empty(crate::model::Family::Ipv4, RowKind::Full);
        socket.state = State::Established;
        socket.tx_queue = 4096;
        let diag = |length: usize, snd_wnd: u32| Diag {
            tcp_info: Some(std::sync::Arc::new(TcpInfo {
                length,
                snd_wnd,
                ..Default::default()
            })),
            ..Default::default()
        };
        assert!(entry_with(&socket, &diag(232, 0)));
        // The window is open, or the kernel's tcp_info has no snd_wnd.
        assert!(!entry_with(&socket, &diag(232, 65535)));
        assert!(!entry_with(&socket, &diag(224, 0)));
        // Nothing waits to be sent.
        socket.tx_queue = 0;
        assert!(!entry_with(&socket, &diag(232, 0)));
    }
}
