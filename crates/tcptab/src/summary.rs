//! Counts over a set of sockets: per state (every state, zeros included),
//! per family, each listener's accept queue against its limit, the busiest
//! local ports and remote hosts, TIME_WAIT and orphans.
//!
//! [`Summarizer`] counts one socket at a time, so a caller can feed it a
//! table as it streams and hold no socket (only the listeners, ports and
//! hosts it counts).

use std::collections::HashMap;
use std::net::IpAddr;

use crate::model::{canonical, Family, RowKind, Socket, State};

/// One listener's accept queue.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[non_exhaustive]
pub struct ListenerQueue {
    pub local_address: IpAddr,
    pub local_port: u16,
    pub inode: u64,
    /// Connections waiting for accept().
    pub queued: u32,
    /// The limit (listen()'s backlog), known from netlink only.
    pub limit: Option<u32>,
}

/// Sockets on one local port.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub struct PortCount {
    pub local_port: u16,
    pub sockets: u64,
}

/// Connections to one remote host.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub struct HostCount {
    /// IPv4-mapped IPv6 addresses are counted as their IPv4 address.
    pub remote_address: IpAddr,
    pub sockets: u64,
}

/// The counts.
#[derive(Debug, Clone, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[non_exhaustive]
pub struct Summary {
    pub total: u64,
    pub ipv4: u64,
    pub ipv6: u64,
    /// Every state in kernel order, zeros included (unknown codes after
    /// them); serialised as an object keyed by the kernel's state name.
    #[cfg_attr(feature = "serde", serde(serialize_with = "states_object"))]
    #[cfg_attr(feature = "schemars", schemars(schema_with = "states_schema"))]
    pub states: Vec<(State, u64)>,
    pub listeners: Vec<ListenerQueue>,
    /// Local ports with the most non-listening sockets, busiest first.
    pub busiest_local_ports: Vec<PortCount>,
    /// Remote hosts with the most connections, busiest first.
    pub busiest_remote_hosts: Vec<HostCount>,
    pub time_wait: u64,
    /// Full sockets no process holds any more (closed by the application,
    /// still finishing: FIN_WAIT1, FIN_WAIT2, CLOSING, LAST_ACK).
    pub orphans: u64,
}

impl Summary {
    /// The count of `state`.
    pub fn state(&self, state: State) -> u64 {
        self.states
            .iter()
            .find(|(s, _)| *s == state)
            .map_or(0, |(_, n)| *n)
    }
}

#[cfg(feature = "serde")]
fn states_object<S: serde::Serializer>(states: &[(State, u64)], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = s.serialize_map(Some(states.len()))?;
    for (state, count) in states {
        map.serialize_entry(&state.to_string(), count)?;
    }
    map.end()
}

/// `states`: every kernel state name, each a count.
#[cfg(feature = "schemars")]
fn states_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let names: Vec<String> = State::LISTED.iter().map(|s| s.to_string()).collect();
    let properties: serde_json::Map<String, serde_json::Value> = names
        .iter()
        .map(|n| {
            (
                n.clone(),
                serde_json::json!({"type": "integer", "minimum": 0}),
            )
        })
        .collect();
    schemars::json_schema!({
        "type": "object",
        "description": "Sockets per state, keyed by the kernel's state name, in kernel order, zeros included (a code the kernel does not define appears as UNKNOWN(0x..) after them)",
        "properties": properties,
        "required": names,
        "additionalProperties": {"type": "integer", "minimum": 0}
    })
}

/// Counts sockets one at a time. What it holds is bounded by the ports (a
/// fixed array), the remote hosts and the listeners, not the sockets.
#[derive(Debug, Clone)]
pub struct Summarizer {
    by_state: HashMap<State, u64>,
    /// Sockets per local port (every port: a fixed 512 KiB).
    ports: Box<[u64]>,
    hosts: HashMap<IpAddr, u64>,
    s: Summary,
}

impl Default for Summarizer {
    fn default() -> Summarizer {
        Summarizer {
            by_state: HashMap::new(),
            ports: vec![0u64; 1 << 16].into_boxed_slice(),
            hosts: HashMap::new(),
            s: Summary::default(),
        }
    }
}

impl Summarizer {
    pub fn new() -> Summarizer {
        Summarizer::default()
    }

    /// Count `socket`, with its listen backlog limit when known.
    pub fn add(&mut self, socket: &Socket, backlog_limit: Option<u32>) {
        let s = &mut self.s;
        s.total += 1;
        *self.by_state.entry(socket.state).or_default() += 1;
        match socket.family {
            Family::Ipv4 => s.ipv4 += 1,
            Family::Ipv6 => s.ipv6 += 1,
        }
        if socket.state == State::Listen {
            s.listeners.push(ListenerQueue {
                local_address: socket.local.ip(),
                local_port: socket.local.port(),
                inode: socket.inode,
                queued: socket.rx_queue,
                limit: backlog_limit,
            });
            return;
        }
        self.ports[socket.local.port() as usize] += 1;
        if !socket.remote.ip().is_unspecified() {
            *self.hosts.entry(canonical(socket.remote).ip()).or_default() += 1;
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

    /// The counts, keeping the `top` busiest ports and hosts.
    pub fn finish(self, top: usize) -> Summary {
        let mut s = self.s;
        s.states = State::LISTED
            .iter()
            .map(|st| (*st, self.by_state.get(st).copied().unwrap_or(0)))
            .collect();
        let mut others: Vec<(State, u64)> = self
            .by_state
            .into_iter()
            .filter(|(state, _)| !State::LISTED.contains(state))
            .collect();
        others.sort_by_key(|(state, _)| state.code());
        s.states.extend(others);
        let ports: HashMap<u16, u64> = self
            .ports
            .iter()
            .enumerate()
            .filter(|(_, &n)| n > 0)
            .map(|(port, &n)| (port as u16, n))
            .collect();
        s.busiest_local_ports = top_n(ports, top)
            .into_iter()
            .map(|(local_port, sockets)| PortCount {
                local_port,
                sockets,
            })
            .collect();
        s.busiest_remote_hosts = top_n(self.hosts, top)
            .into_iter()
            .map(|(remote_address, sockets)| HostCount {
                remote_address,
                sockets,
            })
            .collect();
        s
    }
}

/// Summarise `sockets` (each with its listen backlog limit when known),
/// keeping the `top` busiest ports and hosts.
pub fn summarize<'a>(
    sockets: impl IntoIterator<Item = (&'a Socket, Option<u32>)>,
    top: usize,
) -> Summary {
    let mut summarizer = Summarizer::new();
    for (socket, limit) in sockets {
        summarizer.add(socket, limit);
    }
    summarizer.finish(top)
}

fn top_n<K: Ord + Copy>(counts: HashMap<K, u64>, n: usize) -> Vec<(K, u64)> {
    let mut v: Vec<(K, u64)> = counts.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v.truncate(n);
    v
}
