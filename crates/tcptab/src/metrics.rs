//! Metric values for an exporter, computed from the model: what operators
//! alert on, with label cardinality bounded. Encoding and serving are the
//! caller's (the `tcptab serve` command uses prometheus-client and hyper).

use std::collections::{BTreeMap, HashSet};

use crate::model::Diag;
use crate::model::{canonical, Family, RowKind, Socket, State, TimerKind};
use crate::owners::OwnerScan;

/// Which optional label families to produce, and their bound.
#[derive(Debug, Clone, Default)]
pub struct MetricOptions {
    /// Count sockets per local port for these ports only.
    pub ports: Vec<u16>,
    /// Count sockets per remote port.
    pub per_remote_port: bool,
    /// Count sockets per process command name (needs an owner scan).
    pub per_process: bool,
    /// Count sockets per network namespace.
    pub per_namespace: bool,
    /// At most this many series in each optional family (and in the
    /// listener family); the rest are summed into the dropped counts.
    pub max_series: usize,
}

/// One socket as the exporter sees it.
#[derive(Debug, Clone, Copy)]
pub struct Sample<'a> {
    pub socket: &'a Socket,
    pub diag: Option<&'a Diag>,
    /// Its namespace's label, when several are read.
    pub namespace: Option<&'a str>,
}

/// One listener's accept queue (listeners sharing an address are summed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerMetric {
    /// `address:port`, IPv6 in brackets.
    pub local: String,
    pub queued: u64,
    /// The sum of the limits, when every one is known (netlink).
    pub limit: Option<u64>,
}

/// The values of one collection.
#[derive(Debug, Clone, Default)]
pub struct Collected {
    /// Every (family, state) pair of the listed states, zeros included.
    pub sockets: Vec<(Family, State, u64)>,
    pub listeners: Vec<ListenerMetric>,
    /// Sum of the retransmit column (unrecovered RTO timeouts now).
    pub retransmits_now: u64,
    /// Sum of tcp_info's total_retrans (netlink with tcp_info).
    pub retransmits_total: Option<u64>,
    pub zero_window_probing: u64,
    pub keepalive_pending: u64,
    pub local_ports: Vec<(u16, u64)>,
    pub remote_ports: Vec<(u16, u64)>,
    pub processes: Vec<(String, u64)>,
    pub namespaces: Vec<(String, u64)>,
    /// Smoothed RTTs in seconds (netlink with tcp_info, full sockets).
    pub rtt_seconds: Vec<f64>,
    /// Series cut by `max_series`, per family name.
    pub dropped: Vec<(&'static str, u64)>,
    pub sockets_read: u64,
}

/// Keep the `max` largest series; report how many were cut.
fn bounded<K: Ord + Clone>(
    counts: BTreeMap<K, u64>,
    max: usize,
    name: &'static str,
    dropped: &mut Vec<(&'static str, u64)>,
) -> Vec<(K, u64)> {
    let mut all: Vec<(K, u64)> = counts.into_iter().collect();
    if all.len() > max {
        all.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        dropped.push((name, (all.len() - max) as u64));
        all.truncate(max);
        all.sort_by(|a, b| a.0.cmp(&b.0));
    } else {
        dropped.push((name, 0));
    }
    all
}

fn endpoint(addr: std::net::SocketAddr) -> String {
    let addr = canonical(addr);
    if addr.is_ipv6() {
        format!("[{}]:{}", addr.ip(), addr.port())
    } else {
        addr.to_string()
    }
}

/// Compute the metrics of `samples`. `owners` is needed for
/// `per_process`.
pub fn collect(
    samples: &[Sample<'_>],
    owners: Option<&OwnerScan>,
    options: &MetricOptions,
) -> Collected {
    let mut acc = Accumulator::new(options);
    for sample in samples {
        acc.add(sample, owners.map(|o| o.owners(sample.socket)));
    }
    acc.finish()
}

/// Metrics built one socket at a time, so a caller can feed a dump as it
/// streams in and hold no socket.
#[derive(Debug, Clone)]
pub struct Accumulator {
    options: MetricOptions,
    wanted_ports: HashSet<u16>,
    by_state: BTreeMap<(Family, State), u64>,
    listeners: BTreeMap<String, (u64, Option<u64>)>,
    local_ports: BTreeMap<u16, u64>,
    remote_ports: BTreeMap<u16, u64>,
    processes: BTreeMap<String, u64>,
    namespaces: BTreeMap<String, u64>,
    total_retrans: Option<u64>,
    c: Collected,
}

impl Accumulator {
    pub fn new(options: &MetricOptions) -> Accumulator {
        Accumulator {
            options: options.clone(),
            wanted_ports: options.ports.iter().copied().collect(),
            by_state: BTreeMap::new(),
            listeners: BTreeMap::new(),
            local_ports: options.ports.iter().map(|&p| (p, 0)).collect(),
            remote_ports: BTreeMap::new(),
            processes: BTreeMap::new(),
            namespaces: BTreeMap::new(),
            total_retrans: None,
            c: Collected::default(),
        }
    }

    /// Count one socket. Its `owners` are needed for `per_process`.
    pub fn add(&mut self, sample: &Sample<'_>, owners: Option<&[crate::model::Owner]>) {
        let s = sample.socket;
        let c = &mut self.c;
        c.sockets_read += 1;
        *self.by_state.entry((s.family, s.state)).or_default() += 1;
        c.retransmits_now += s.retransmits as u64;
        match s.timer.kind {
            TimerKind::ZeroWindowProbe => c.zero_window_probing += 1,
            TimerKind::Keepalive => c.keepalive_pending += 1,
            _ => {}
        }
        if s.state == State::Listen {
            let entry = self
                .listeners
                .entry(endpoint(s.local))
                .or_insert((0, Some(0)));
            entry.0 += s.rx_queue as u64;
            entry.1 = match (entry.1, sample.diag.and_then(|d| d.backlog_limit)) {
                (Some(sum), Some(limit)) => Some(sum + limit as u64),
                _ => None,
            };
        }
        if self.wanted_ports.contains(&s.local.port()) {
            *self.local_ports.entry(s.local.port()).or_default() += 1;
        }
        if self.options.per_remote_port && s.state != State::Listen {
            *self.remote_ports.entry(s.remote.port()).or_default() += 1;
        }
        if self.options.per_process {
            if let Some(owners) = owners {
                let mut names: Vec<&str> = owners.iter().map(|o| &*o.command).collect();
                names.sort_unstable();
                names.dedup();
                for name in names {
                    *self.processes.entry(name.to_string()).or_default() += 1;
                }
            }
        }
        if self.options.per_namespace {
            *self
                .namespaces
                .entry(sample.namespace.unwrap_or("").to_string())
                .or_default() += 1;
        }
        if let Some(info) = sample.diag.and_then(|d| d.tcp_info.as_ref()) {
            *self.total_retrans.get_or_insert(0) += info.total_retrans as u64;
            if s.kind == RowKind::Full && s.state != State::Listen && info.rtt_us > 0 {
                c.rtt_seconds.push(info.rtt_us as f64 / 1e6);
            }
        }
    }

    /// The metrics of everything added.
    pub fn finish(self) -> Collected {
        let mut c = self.c;
        c.retransmits_total = self.total_retrans;
        for family in [Family::Ipv4, Family::Ipv6] {
            for state in State::LISTED {
                c.sockets.push((
                    family,
                    state,
                    self.by_state.get(&(family, state)).copied().unwrap_or(0),
                ));
            }
        }
        let max = self.options.max_series.max(1);
        let mut all: Vec<ListenerMetric> = self
            .listeners
            .into_iter()
            .map(|(local, (queued, limit))| ListenerMetric {
                local,
                queued,
                limit,
            })
            .collect();
        if all.len() > max {
            // Keep the fullest queues.
            all.sort_by(|a, b| b.queued.cmp(&a.queued).then(a.local.cmp(&b.local)));
            c.dropped.push(("listeners", (all.len() - max) as u64));
            all.truncate(max);
            all.sort_by(|a, b| a.local.cmp(&b.local));
        } else {
            c.dropped.push(("listeners", 0));
        }
        c.listeners = all;
        c.local_ports = bounded(self.local_ports, max, "local_port", &mut c.dropped);
        if self.options.per_remote_port {
            c.remote_ports = bounded(self.remote_ports, max, "remote_port", &mut c.dropped);
        }
        if self.options.per_process {
            c.processes = bounded(self.processes, max, "process", &mut c.dropped);
        }
        if self.options.per_namespace {
            c.namespaces = bounded(self.namespaces, max, "netns", &mut c.dropped);
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::procnet::{parse_line, ByteOrder};

    fn sock(line: &str) -> Socket {
        parse_line(line.as_bytes(), ByteOrder::Little).unwrap()
    }

    #[test]
    fn every_state_with_zeros_and_bounded_families() {
        let a = sock("   0: 0100007F:0016 00000000:0000 0A 00000000:00000003 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0");
        let b = sock("   1: 0100007F:0016 0100007F:9000 01 00000000:00000000 04:00000010 00000002     0        0 2 1 0000000000000000 20 4 0 10 -1");
        let c2 = sock("   2: 0100007F:0017 0100007F:9001 01 00000000:00000000 02:00000010 00000000     0        0 3 1 0000000000000000 20 4 0 10 -1");
        let samples: Vec<Sample> = [&a, &b, &c2]
            .iter()
            .map(|s| Sample {
                socket: s,
                diag: None,
                namespace: None,
            })
            .collect();
        let options = MetricOptions {
            per_remote_port: true,
            max_series: 1,
            ..Default::default()
        };
        let m = collect(&samples, None, &options);
        assert_eq!(m.sockets.len(), 22, "11 states x 2 families");
        assert!(m.sockets.contains(&(Family::Ipv6, State::CloseWait, 0)));
        assert!(m.sockets.contains(&(Family::Ipv4, State::Established, 2)));
        assert_eq!(
            m.listeners,
            vec![ListenerMetric {
                local: "127.0.0.1:22".into(),
                queued: 3,
                limit: None
            }]
        );
        assert_eq!(
            (
                m.zero_window_probing,
                m.keepalive_pending,
                m.retransmits_now
            ),
            (1, 1, 2)
        );
        assert_eq!(m.remote_ports.len(), 1, "bounded to one series");
        assert!(m.dropped.contains(&("remote_port", 1)));
    }
}
