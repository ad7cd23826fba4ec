//! Counts over a set of sockets: per state (every state, zeros included),
//! per family, each listener's accept queue against its limit, the busiest
//! local ports and remote hosts, TIME_WAIT and orphans.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use serde::Serialize;

use crate::socket::{canonical, Family, RowKind, Socket, State};

/// One listener's accept queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListenerQueue {
    pub local: SocketAddr,
    pub inode: u64,
    /// Connections waiting for accept().
    pub queued: u32,
    /// The limit (listen()'s backlog), known from netlink only.
    pub limit: Option<u32>,
}

/// The counts.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub total: u64,
    /// Every listed state, in kernel order, zeros included.
    pub states: Vec<(String, u64)>,
    pub ipv4: u64,
    pub ipv6: u64,
    pub listeners: Vec<ListenerQueue>,
    /// Local ports with the most non-listening sockets, busiest first.
    pub busiest_local_ports: Vec<(u16, u64)>,
    /// Remote hosts with the most connections (IPv4-mapped as IPv4).
    pub busiest_remote_hosts: Vec<(IpAddr, u64)>,
    pub time_wait: u64,
    /// Full sockets no process holds any more (closed by the application,
    /// still finishing: FIN_WAIT1, FIN_WAIT2, CLOSING, LAST_ACK).
    pub orphans: u64,
}

/// Summarise `sockets` (each with its listen backlog limit when known),
/// keeping the `top` busiest ports and hosts.
pub fn summarize<'a>(
    sockets: impl IntoIterator<Item = (&'a Socket, Option<u32>)>,
    top: usize,
) -> Summary {
    let mut by_state: HashMap<State, u64> = HashMap::new();
    let mut ports: HashMap<u16, u64> = HashMap::new();
    let mut hosts: HashMap<IpAddr, u64> = HashMap::new();
    let mut s = Summary::default();
    for (socket, limit) in sockets {
        s.total += 1;
        *by_state.entry(socket.state).or_default() += 1;
        match socket.family {
            Family::Ipv4 => s.ipv4 += 1,
            Family::Ipv6 => s.ipv6 += 1,
        }
        if socket.state == State::Listen {
            s.listeners.push(ListenerQueue {
                local: socket.local,
                inode: socket.inode,
                queued: socket.rx_queue,
                limit,
            });
            continue;
        }
        *ports.entry(socket.local.port()).or_default() += 1;
        if !socket.remote.ip().is_unspecified() {
            *hosts.entry(canonical(socket.remote).ip()).or_default() += 1;
        }
        if socket.kind == RowKind::TimeWait {
            s.time_wait += 1;
        }
        if socket.kind == RowKind::Full
            && socket.inode == 0
            && matches!(
                socket.state,
                State::FinWait1 | State::FinWait2 | State::Closing | State::LastAck
            )
        {
            s.orphans += 1;
        }
    }
    s.states = State::LISTED
        .iter()
        .map(|st| (st.to_string(), by_state.get(st).copied().unwrap_or(0)))
        .collect();
    for (state, count) in by_state {
        if !State::LISTED.contains(&state) {
            s.states.push((state.to_string(), count));
        }
    }
    s.busiest_local_ports = top_n(ports, top);
    s.busiest_remote_hosts = top_n(hosts, top);
    s
}

fn top_n<K: Ord + Copy>(counts: HashMap<K, u64>, n: usize) -> Vec<(K, u64)> {
    let mut v: Vec<(K, u64)> = counts.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v.truncate(n);
    v
}
