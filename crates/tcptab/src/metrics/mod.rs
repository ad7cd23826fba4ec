//! Metric values for an exporter, computed from the model: what operators
//! alert on, with label cardinality bounded. Encoding and serving are the
//! caller's (the `tcptab serve` command uses prometheus-client and hyper).
//!
//! Every family is a list of [`Series`]: its labels and its value. With
//! several namespaces read, each per-socket family carries a `netns` label
//! first ([`netns_label`]: the name under /run/netns, `host` for the
//! initial namespace, else the inode), so that series of different
//! namespaces never add up.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::filter::PortRange;
use crate::model::{canonical, Entry, Family, Namespace, RowKind, State, TimerKind};

mod tally;

pub use tally::{DurationHistogram, Tallied, Tally, TallyOptions};

/// Which optional label families to produce, and their bound.
#[derive(Debug, Clone, Default)]
pub struct MetricOptions {
    /// Count sockets per local port for these ports only.
    pub ports: Vec<u16>,
    /// Count sockets per remote port.
    pub per_remote_port: bool,
    /// With `per_remote_port`: count every remote port, also those in the
    /// ephemeral range (by default only the others: the services).
    pub every_remote_port: bool,
    /// Count sockets per process command name (needs owners).
    pub per_process: bool,
    /// Count sockets per workload: pod, Kubernetes namespace, container
    /// and unit (needs the entries' workloads).
    pub per_workload: bool,
    /// Label every per-socket family with its network namespace.
    pub per_namespace: bool,
    /// At most this many series in each optional family (and in the
    /// listener family); the rest are counted in `dropped`.
    pub max_series: usize,
}

/// A series' labels, in order: name and value.
pub type Labels = Vec<(&'static str, String)>;

/// One series of a family: its labels, in order, and its value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Series {
    pub labels: Labels,
    pub value: u64,
}

/// The values of one collection, family by family.
#[derive(Debug, Clone, Default)]
pub struct Collected {
    /// Sockets per state and family (every listed state, zeros included).
    pub sockets: Vec<Series>,
    /// Connections waiting for accept() per listening address.
    pub listen_queue_length: Vec<Series>,
    /// The accept queue's limit per listening address (when every one
    /// sharing it is known: netlink).
    pub listen_queue_limit: Vec<Series>,
    /// Sum of the retransmit column (unrecovered RTO timeouts now).
    pub retransmit_timeouts: Vec<Series>,
    /// Sum of tcp_info's total_retrans over the sockets read (netlink
    /// with tcp_info).
    pub retransmitted_segments: Vec<Series>,
    pub zero_window_probing: Vec<Series>,
    pub keepalive_pending: Vec<Series>,
    pub local_port_sockets: Vec<Series>,
    pub remote_port_sockets: Vec<Series>,
    pub process_sockets: Vec<Series>,
    /// Sockets per workload (`namespace`, `pod`, `container`, `unit`;
    /// empty where the workload has none).
    pub workload_sockets: Vec<Series>,
    pub netns_sockets: Vec<Series>,
    /// Smoothed RTTs in seconds (netlink with tcp_info, full sockets), by
    /// the labels of their namespace.
    pub rtt_seconds: Vec<(Labels, Vec<f64>)>,
    /// Series cut by `max_series`, per family name.
    pub dropped: Vec<(&'static str, u64)>,
    pub sockets_read: u64,
}

/// A namespace as a label value: its name under /run/netns, `host` for
/// the initial namespace, else its inode (empty for the reader's own,
/// when namespaces are not named).
pub fn netns_label(namespace: Option<&Namespace>) -> String {
    namespace.map_or_else(String::new, Namespace::label)
}

/// A workload's label values: Kubernetes namespace, pod, container (its
/// name, else its id) and unit, empty where it has none.
fn workload_key(w: &crate::model::Workload) -> [String; 4] {
    let part = |p: &Option<String>| p.clone().unwrap_or_default();
    [
        part(&w.pod_namespace),
        part(&w.pod_name),
        w.container_name
            .clone()
            .or_else(|| w.container_id.clone())
            .unwrap_or_default(),
        part(&w.unit),
    ]
}

/// The names of [`workload_key`]'s labels.
const WORKLOAD_LABELS: [&str; 4] = ["namespace", "pod", "container", "unit"];

/// `address:port`, IPv6 in brackets.
fn endpoint(addr: std::net::SocketAddr) -> String {
    let addr = canonical(addr);
    if addr.is_ipv6() {
        format!("[{}]:{}", addr.ip(), addr.port())
    } else {
        addr.to_string()
    }
}

/// What one namespace (or the whole table) adds up.
#[derive(Debug, Default)]
struct Counts {
    by_state: BTreeMap<(Family, State), u64>,
    listeners: BTreeMap<String, (u64, Option<u64>)>,
    local_ports: BTreeMap<u16, u64>,
    remote_ports: BTreeMap<u16, u64>,
    processes: BTreeMap<String, u64>,
    workloads: BTreeMap<[String; 4], u64>,
    sockets: u64,
    retransmits_now: u64,
    total_retrans: Option<u64>,
    zero_window_probing: u64,
    keepalive_pending: u64,
    rtt_seconds: Vec<f64>,
}

/// Metrics built one socket at a time, so a caller can feed a dump as it
/// streams in and hold no socket.
#[derive(Debug)]
pub struct Accumulator {
    options: MetricOptions,
    wanted_ports: HashSet<u16>,
    /// By namespace label (one, empty, without `per_namespace`).
    counts: BTreeMap<String, Counts>,
    /// Each namespace's ephemeral range (for `per_remote_port`).
    ephemeral: HashMap<String, PortRange>,
    sockets_read: u64,
}

impl Accumulator {
    pub fn new(options: &MetricOptions) -> Accumulator {
        Accumulator {
            options: options.clone(),
            wanted_ports: options.ports.iter().copied().collect(),
            counts: BTreeMap::new(),
            ephemeral: HashMap::new(),
            sockets_read: 0,
        }
    }

    /// The ephemeral port range of the namespace labelled `netns`: remote
    /// ports in it are not counted per port (they are the clients' own).
    pub fn ephemeral_range(&mut self, netns: String, range: PortRange) {
        self.ephemeral.insert(netns, range);
    }

    /// Count one socket (its owners are needed for `per_process`).
    pub fn add(&mut self, e: &Entry<'_>) {
        let s = e.socket;
        self.sockets_read += 1;
        let netns = netns_label(e.namespace);
        let ephemeral = self.ephemeral.get(&netns).copied();
        let label = if self.options.per_namespace {
            netns
        } else {
            String::new()
        };
        let every_remote = self.options.every_remote_port;
        let c = self.counts.entry(label).or_default();
        c.sockets += 1;
        *c.by_state.entry((s.family, s.state)).or_default() += 1;
        c.retransmits_now += u64::from(s.retransmits);
        match s.timer.kind {
            TimerKind::ZeroWindowProbe => c.zero_window_probing += 1,
            TimerKind::Keepalive => c.keepalive_pending += 1,
            _ => {}
        }
        if s.state == State::Listen {
            let entry = c.listeners.entry(endpoint(s.local)).or_insert((0, Some(0)));
            entry.0 += u64::from(s.rx_queue);
            entry.1 = match (entry.1, e.diag.and_then(|d| d.backlog_limit)) {
                (Some(sum), Some(limit)) => Some(sum + u64::from(limit)),
                _ => None,
            };
        }
        if self.wanted_ports.contains(&s.local.port()) {
            *c.local_ports.entry(s.local.port()).or_default() += 1;
        }
        let port = s.remote.port();
        let service = every_remote || !ephemeral.is_some_and(|r| r.contains(port));
        if self.options.per_remote_port && s.state != State::Listen && port != 0 && service {
            *c.remote_ports.entry(port).or_default() += 1;
        }
        if self.options.per_process {
            for name in e.owners.map_or_else(Vec::new, |o| o.commands()) {
                *c.processes.entry(name.to_string()).or_default() += 1;
            }
        }
        if self.options.per_workload {
            if let Some(w) = e.workload {
                *c.workloads.entry(workload_key(w)).or_default() += 1;
            }
        }
        if let Some(info) = e.diag.and_then(|d| d.tcp_info.as_ref()) {
            *c.total_retrans.get_or_insert(0) += u64::from(info.total_retrans);
            if s.kind == RowKind::Full && s.state != State::Listen && info.rtt_us > 0 {
                c.rtt_seconds.push(f64::from(info.rtt_us) / 1e6);
            }
        }
    }

    /// The metrics of everything added.
    pub fn finish(self) -> Collected {
        let per_namespace = self.options.per_namespace;
        let max = self.options.max_series.max(1);
        let mut out = Collected {
            sockets_read: self.sockets_read,
            ..Collected::default()
        };
        // Without namespaces, the reader's own is there even when empty.
        let mut counts = self.counts;
        if counts.is_empty() && !per_namespace {
            counts.insert(String::new(), Counts::default());
        }
        let mut listeners = Vec::new();
        let (mut local, mut remote, mut processes) = (Vec::new(), Vec::new(), Vec::new());
        let mut workloads = Vec::new();
        for (netns, c) in counts {
            let base: Labels = if per_namespace {
                vec![("netns", netns.clone())]
            } else {
                Vec::new()
            };
            let with = |extra: Labels| {
                let mut labels = base.clone();
                labels.extend(extra);
                labels
            };
            for family in [Family::Ipv4, Family::Ipv6] {
                for state in State::LISTED {
                    out.sockets.push(Series {
                        labels: with(vec![
                            ("family", family.as_str().into()),
                            ("state", state.to_string()),
                        ]),
                        value: c.by_state.get(&(family, state)).copied().unwrap_or(0),
                    });
                }
            }
            for (addr, (queued, limit)) in c.listeners {
                listeners.push((with(vec![("local", addr)]), queued, limit));
            }
            let one = |value: u64| Series {
                labels: base.clone(),
                value,
            };
            out.retransmit_timeouts.push(one(c.retransmits_now));
            if let Some(total) = c.total_retrans {
                out.retransmitted_segments.push(one(total));
            }
            out.zero_window_probing.push(one(c.zero_window_probing));
            out.keepalive_pending.push(one(c.keepalive_pending));
            if per_namespace {
                out.netns_sockets.push(one(c.sockets));
            }
            for &p in &self.options.ports {
                let value = c.local_ports.get(&p).copied().unwrap_or(0);
                local.push(Series {
                    labels: with(vec![("port", p.to_string())]),
                    value,
                });
            }
            for (p, value) in c.remote_ports {
                remote.push(Series {
                    labels: with(vec![("port", p.to_string())]),
                    value,
                });
            }
            for (name, value) in c.processes {
                processes.push(Series {
                    labels: with(vec![("command", name)]),
                    value,
                });
            }
            for (key, value) in c.workloads {
                workloads.push(Series {
                    labels: with(WORKLOAD_LABELS.into_iter().zip(key).collect()),
                    value,
                });
            }
            if !c.rtt_seconds.is_empty() || !per_namespace {
                out.rtt_seconds.push((base, c.rtt_seconds));
            }
        }
        // The fullest queues are kept.
        listeners.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        out.dropped
            .push(("listeners", listeners.len().saturating_sub(max) as u64));
        listeners.truncate(max);
        listeners.sort();
        for (labels, queued, limit) in listeners {
            if let Some(limit) = limit {
                out.listen_queue_limit.push(Series {
                    labels: labels.clone(),
                    value: limit,
                });
            }
            out.listen_queue_length.push(Series {
                labels,
                value: queued,
            });
        }
        out.local_port_sockets = bounded(local, max, "local_port", &mut out.dropped);
        if self.options.per_remote_port {
            out.remote_port_sockets = bounded(remote, max, "remote_port", &mut out.dropped);
        }
        if self.options.per_process {
            out.process_sockets = bounded(processes, max, "process", &mut out.dropped);
        }
        if self.options.per_workload {
            out.workload_sockets = bounded(workloads, max, "workload", &mut out.dropped);
        }
        if per_namespace {
            let all = std::mem::take(&mut out.netns_sockets);
            out.netns_sockets = bounded(all, max, "netns", &mut out.dropped);
        }
        out
    }
}

/// Keep the `max` largest series (in label order); count how many were
/// cut.
fn bounded(
    mut all: Vec<Series>,
    max: usize,
    name: &'static str,
    dropped: &mut Vec<(&'static str, u64)>,
) -> Vec<Series> {
    dropped.push((name, all.len().saturating_sub(max) as u64));
    if all.len() > max {
        all.sort_by(|a, b| b.value.cmp(&a.value).then(a.labels.cmp(&b.labels)));
        all.truncate(max);
    }
    all.sort();
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Socket, Source};
    use crate::procnet::{parse_line, ByteOrder};

    fn sock(line: &str) -> Socket {
        parse_line(line.as_bytes(), ByteOrder::Little).unwrap()
    }

    fn value(series: &[Series], labels: &[(&str, &str)]) -> Option<u64> {
        series
            .iter()
            .find(|s| {
                s.labels.len() == labels.len()
                    && s.labels
                        .iter()
                        .zip(labels)
                        .all(|(a, b)| a.0 == b.0 && a.1 == b.1)
            })
            .map(|s| s.value)
    }

    #[test]
    fn every_state_with_zeros_and_bounded_families() {
        let a = sock("   0: 0100007F:0016 00000000:0000 0A 00000000:00000003 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0");
        let b = sock("   1: 0100007F:0016 0100007F:9000 01 00000000:00000000 04:00000010 00000002     0        0 2 1 0000000000000000 20 4 0 10 -1");
        let c2 = sock("   2: 0100007F:0017 0100007F:0050 01 00000000:00000000 02:00000010 00000000     0        0 3 1 0000000000000000 20 4 0 10 -1");
        let c3 = sock("   3: 0100007F:0018 0100007F:01BB 01 00000000:00000000 00:00000000 00000000     0        0 4 1 0000000000000000 20 4 0 10 -1");
        let options = MetricOptions {
            per_remote_port: true,
            max_series: 1,
            ..Default::default()
        };
        let mut acc = Accumulator::new(&options);
        acc.ephemeral_range(
            String::new(),
            PortRange {
                low: 32768,
                high: 60999,
            },
        );
        for s in [&a, &b, &c2, &c3] {
            acc.add(&Entry::new(s, Source::Proc));
        }
        let m = acc.finish();
        assert_eq!(m.sockets.len(), 22, "11 states x 2 families");
        assert_eq!(
            value(&m.sockets, &[("family", "ipv6"), ("state", "CLOSE_WAIT")]),
            Some(0)
        );
        assert_eq!(
            value(&m.sockets, &[("family", "ipv4"), ("state", "ESTABLISHED")]),
            Some(3)
        );
        assert_eq!(
            value(&m.listen_queue_length, &[("local", "127.0.0.1:22")]),
            Some(3)
        );
        assert_eq!(m.zero_window_probing[0].value, 1);
        assert_eq!(m.keepalive_pending[0].value, 1);
        assert_eq!(m.retransmit_timeouts[0].value, 2);
        // Port 36864 (0x9000) is ephemeral: not a series; 80 and 443 are,
        // bounded to one.
        assert_eq!(m.remote_port_sockets.len(), 1, "bounded to one series");
        assert!(m.dropped.contains(&("remote_port", 1)));
        assert!(m.remote_port_sockets[0].labels[0].1 != "36864");
    }

    #[test]
    fn namespaces_never_add_up() {
        let l = sock("   0: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0");
        let ns = |inode: u64, name: Option<&str>| Namespace {
            inode,
            name: name.map(str::to_string),
            pid: None,
            path: None,
            pod: None,
        };
        let (host, blue) = (
            ns(crate::model::Namespace::INITIAL, None),
            ns(4026532999, Some("blue")),
        );
        let options = MetricOptions {
            per_namespace: true,
            max_series: 100,
            ..Default::default()
        };
        let mut acc = Accumulator::new(&options);
        let mut with = |s: &Socket, n: &Namespace, queued: u32| {
            let mut s = *s;
            s.rx_queue = queued;
            acc.add(&Entry::new(&s, Source::Proc).with_namespace(Some(n)));
        };
        with(&l, &host, 5);
        with(&l, &blue, 7);
        let m = acc.finish();
        assert_eq!(
            value(
                &m.listen_queue_length,
                &[("netns", "host"), ("local", "0.0.0.0:80")]
            ),
            Some(5)
        );
        assert_eq!(
            value(
                &m.listen_queue_length,
                &[("netns", "blue"), ("local", "0.0.0.0:80")]
            ),
            Some(7)
        );
        assert_eq!(
            value(
                &m.sockets,
                &[("netns", "blue"), ("family", "ipv4"), ("state", "LISTEN")]
            ),
            Some(1)
        );
        assert_eq!(m.netns_sockets.len(), 2);
    }
}
