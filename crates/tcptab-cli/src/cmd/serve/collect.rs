//! One collection: the table read through the query (counted as it
//! streams in), the metrics of `tcptab::metrics` registered family by
//! family, and the exporter's own, encoded as OpenMetrics text.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Instant;

use anyhow::Result;
use prometheus_client::encoding::text::encode_registry;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tcptab::diag::Extensions;
use tcptab::filter::{Expr, PortRange};
use tcptab::metrics::{netns_label, Accumulator, Collected, MetricOptions, Series};
use tcptab::{Entry, Family as AddressFamily, Namespace, Source};

use super::tally::counter;
use super::App;

type Labels = Vec<(String, String)>;

/// What one collection read.
struct Read {
    metrics: Collected,
    /// With --kernel-counters: each namespace's label and its counters.
    kernel: Vec<(String, Vec<tcptab::netstat::Counter>)>,
    source: &'static str,
    ns_denied: u32,
    not_inspected: u32,
}

impl App {
    /// One collection, encoded (blocking: reads /proc or netlink).
    pub(super) fn collect(&self) -> String {
        let started = Instant::now();
        let n = self.stats.collections.fetch_add(1, Ordering::Relaxed) + 1;
        let mut registry = Registry::with_prefix("tcptab");
        let up = Gauge::<i64>::default();
        match self.read() {
            Ok(read) => {
                up.set(1);
                register_socket_metrics(&mut registry, &read.metrics, self.args.rtt_histogram);
                register_read(&mut registry, &read);
                if self.args.kernel_counters {
                    register_kernel(
                        &mut registry,
                        &read.kernel,
                        self.args.scope.namespaces.all_netns,
                    );
                }
            }
            Err(e) => {
                up.set(0);
                let counter = match e.downcast_ref::<tcptab::Error>() {
                    Some(tcptab::Error::Parse { .. }) => &self.stats.parse_errors,
                    Some(tcptab::Error::Netlink { .. } | tcptab::Error::Malformed(_)) => {
                        &self.stats.netlink_errors
                    }
                    _ => &self.stats.other_errors,
                };
                counter.fetch_add(1, Ordering::Relaxed);
                note!("tcptab: collection {n} failed: {e:#}");
            }
        }
        registry.register(
            "up",
            "1 if the last collection read the table, 0 if it failed",
            up,
        );
        let created = self
            .tally
            .as_ref()
            .map(|tally| super::tally::register(&mut registry, tally));
        if let Some(db) = &self.args.ship_status {
            register_shipping(&mut registry, db);
        }
        self.register_own(&mut registry, n, started);
        let mut out = String::new();
        if let Err(e) = encode_registry(&mut out, &registry) {
            return format!("# encoding failed: {e}\n");
        }
        match created {
            Some(created) => created.follow(&out),
            None => out,
        }
    }

    /// The table, counted as it streams in: memory stays flat however many
    /// sockets there are (plus the owner map with --per-process).
    fn read(&self) -> Result<Read> {
        let args = &self.args;
        let options = MetricOptions {
            ports: args.ports.clone(),
            per_remote_port: args.per_remote_port,
            every_remote_port: args.every_remote_port,
            per_process: args.per_process,
            per_workload: args.per_workload,
            per_namespace: args.scope.namespaces.all_netns,
            max_series: args.max_series as usize,
        };
        let query = args
            .scope
            .query(Expr::All, Extensions::TCP_INFO, args.per_process)?
            .workloads(args.per_workload);
        let mut counting = Counting {
            acc: Accumulator::new(&options),
            query: &query,
            ranges: HashMap::new(),
            per_remote_port: args.per_remote_port && !args.every_remote_port,
            kernel_counters: args.kernel_counters,
            kernel: Vec::new(),
        };
        // The scan the last collection used, brought up to date.
        let owners = &self.owners;
        let lock = || owners.lock().unwrap_or_else(|e| e.into_inner());
        let kept = match query.may_keep_owners() {
            true => lock().take(query.root_path()),
            false => None,
        };
        let began = Instant::now();
        let (report, scan) = query.visit_with(kept, &mut counting)?;
        if let Some(scan) = scan.filter(|_| query.may_keep_owners()) {
            lock().keep(scan, began);
        }
        let not_inspected = report
            .not_inspected
            .iter()
            .filter(|n| matches!(n.reason, tcptab::NotInspectedReason::PermissionDenied(_)));
        Ok(Read {
            kernel: std::mem::take(&mut counting.kernel),
            metrics: counting.acc.finish(),
            source: report.read.first().map_or("proc", |r| r.source.as_str()),
            ns_denied: report.processes_unreadable + not_inspected.count() as u32,
            not_inspected: report.owners.map_or(0, |o| o.denied),
        })
    }

    /// What the exporter says of itself.
    fn register_own(&self, registry: &mut Registry, n: u64, started: Instant) {
        let errors = Family::<Labels, Counter>::default();
        for (kind, value) in [
            ("parse", &self.stats.parse_errors),
            ("netlink", &self.stats.netlink_errors),
            ("other", &self.stats.other_errors),
        ] {
            errors
                .get_or_create(&vec![("kind".into(), kind.into())])
                .inc_by(value.load(Ordering::Relaxed));
        }
        registry.register("errors", "Failed collections, by kind", errors);
        registry.register(
            "collections",
            "Collections of the socket table (scrapes share them)",
            counter(n),
        );
        registry.register(
            "evicted_connections",
            "HTTP connections closed to make room for a new one at --max-connections (none with a request arrived)",
            counter(self.stats.evicted_connections.load(Ordering::Relaxed)),
        );
        let duration = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        duration.set(started.elapsed().as_secs_f64());
        registry.register(
            "scrape_duration_seconds",
            "Time the last collection took",
            duration,
        );
        let build = Family::<Labels, Gauge>::default();
        build
            .get_or_create(&vec![
                ("version".to_string(), env!("CARGO_PKG_VERSION").to_string()),
                ("revision".to_string(), env!("TCPTAB_REVISION").to_string()),
            ])
            .set(1);
        registry.register(
            "build_info",
            "The tcptab that serves (always 1): its version and the commit it was built from",
            build,
        );
    }
}

/// Counts the table as the query reads it; at each namespace's first
/// table, that namespace's ephemeral port range (for --per-remote-port)
/// and its kernel counters (--kernel-counters).
struct Counting<'q> {
    acc: Accumulator,
    query: &'q tcptab::Query,
    ranges: HashMap<u64, Option<PortRange>>,
    per_remote_port: bool,
    kernel_counters: bool,
    kernel: Vec<(String, Vec<tcptab::netstat::Counter>)>,
}

impl tcptab::Visitor<anyhow::Error> for Counting<'_> {
    fn table(&mut self, namespace: Option<&Namespace>, _: AddressFamily, _: Source) -> Result<()> {
        let inode = namespace.map_or(0, |n| n.inode);
        let std::collections::hash_map::Entry::Vacant(v) = self.ranges.entry(inode) else {
            return Ok(());
        };
        // This namespace's first table.
        let range = match self.per_remote_port {
            true => self.query.ephemeral_range(namespace).ok(),
            false => None,
        };
        if let Some(range) = range {
            self.acc.ephemeral_range(netns_label(namespace), range);
        }
        v.insert(range);
        if self.kernel_counters {
            // A namespace gone meanwhile has none to give.
            if let Ok(counters) = self.query.kernel_counters(namespace) {
                self.kernel.push((netns_label(namespace), counters));
            }
        }
        Ok(())
    }

    fn entry(&mut self, entry: &Entry<'_>) -> Result<()> {
        self.acc.add(entry);
        Ok(())
    }
}

/// A gauge family of `series`, registered as `name`.
fn gauges(registry: &mut Registry, name: &str, help: &str, series: &[Series]) {
    let family = Family::<Labels, Gauge>::default();
    for s in series {
        let labels: Labels = s
            .labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        family.get_or_create(&labels).set(s.value as i64);
    }
    registry.register(name, help, family);
}

fn register_socket_metrics(registry: &mut Registry, m: &Collected, rtt: bool) {
    let families: [(&str, &str, &[Series], bool); 12] = [
        ("sockets", "TCP sockets per state and family (every state, zeros included)", &m.sockets, true),
        ("listen_queue_length", "Connections waiting for accept() on each listening address", &m.listen_queue_length, true),
        ("listen_queue_limit", "Accept queue limit (listen() backlog) of each listening address (netlink source)", &m.listen_queue_limit, true),
        ("retransmit_timeouts", "Sum over sockets of unrecovered retransmission timeouts (the retrnsmt column)", &m.retransmit_timeouts, true),
        ("retransmitted_segments", "Sum over current sockets of tcp_info total_retrans (netlink source)", &m.retransmitted_segments, !m.retransmitted_segments.is_empty()),
        ("zero_window_probing_sockets", "Sockets with a zero window probe timer pending (their peer stopped reading)", &m.zero_window_probing, true),
        ("keepalive_pending_sockets", "Sockets with a keepalive timer pending", &m.keepalive_pending, true),
        ("local_port_sockets", "Sockets per local port (the --port allow-list)", &m.local_port_sockets, !m.local_port_sockets.is_empty()),
        ("remote_port_sockets", "Sockets per remote port outside the ephemeral range (--per-remote-port; every port with --every-remote-port)", &m.remote_port_sockets, !m.remote_port_sockets.is_empty()),
        ("process_sockets", "Sockets per process command name (--per-process)", &m.process_sockets, !m.process_sockets.is_empty()),
        ("workload_sockets", "Sockets per workload: Kubernetes namespace, pod, container, systemd unit (--per-workload)", &m.workload_sockets, !m.workload_sockets.is_empty()),
        ("netns_sockets", "Sockets per network namespace (--all-netns)", &m.netns_sockets, !m.netns_sockets.is_empty()),
    ];
    for (name, help, series, shown) in families {
        if shown {
            gauges(registry, name, help, series);
        }
    }
    let dropped = Family::<Labels, Gauge>::default();
    for (family, count) in &m.dropped {
        dropped
            .get_or_create(&vec![("family".into(), (*family).into())])
            .set(*count as i64);
    }
    registry.register(
        "series_dropped",
        "Series cut by --max-series in the last collection, per metric family",
        dropped,
    );
    if rtt {
        let family = Family::<Labels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
        });
        for (labels, seconds) in &m.rtt_seconds {
            let labels: Labels = labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect();
            let histogram = family.get_or_create(&labels);
            for &s in seconds {
                histogram.observe(s);
            }
        }
        registry.register(
            "rtt_seconds",
            "Smoothed round-trip time of connected sockets (netlink source)",
            family,
        );
    }
}

/// What the collection read: its source, sockets, and what it could not
/// see.
fn register_read(registry: &mut Registry, read: &Read) {
    let source = Family::<Labels, Gauge>::default();
    source
        .get_or_create(&vec![("source".into(), read.source.into())])
        .set(1);
    registry.register(
        "source",
        "The source read: netlink (sock_diag) or proc",
        source,
    );
    let gauge = |value: u64| {
        let g = Gauge::<i64>::default();
        g.set(value as i64);
        g
    };
    registry.register(
        "sockets_read",
        "Sockets read in the last collection",
        gauge(read.metrics.sockets_read),
    );
    registry.register(
        "processes_not_inspected",
        "Processes whose sockets could not be attributed (not root); 0 without --per-process",
        gauge(u64::from(read.not_inspected)),
    );
    registry.register(
        "namespaces_not_inspected",
        "Processes whose network namespace could not be read (not root), with --all-netns",
        gauge(u64::from(read.ns_denied)),
    );
}

/// Each namespace's kernel TCP counters, as counters (`_total`), labelled
/// with the namespace under --all-netns.
fn register_kernel(
    registry: &mut Registry,
    kernel: &[(String, Vec<tcptab::netstat::Counter>)],
    per_namespace: bool,
) {
    let family = Family::<Labels, Counter>::default();
    for (netns, counters) in kernel {
        for (name, value) in counters {
            let mut labels: Labels = Vec::with_capacity(2);
            if per_namespace {
                labels.push(("netns".into(), netns.clone()));
            }
            labels.push(("counter".into(), name.clone()));
            family.get_or_create(&labels).inc_by(*value);
        }
    }
    registry.register(
        "kernel_tcp",
        "The kernel's TCP counters of each network namespace: Tcp of /proc/net/snmp and TcpExt of /proc/net/netstat, named as nstat names them (--kernel-counters)",
        family,
    );
}

/// A history file's shipping status (`--ship-status`), read from the file
/// at each collection (the recorder's shipper keeps it there). A file that
/// cannot be read is said, and its series are left out.
fn register_shipping(registry: &mut Registry, db: &std::path::Path) {
    let status = tcptab::history::Reader::open(db).and_then(|r| r.shipping());
    let status = match status {
        Ok(Some(status)) => status,
        Ok(None) => tcptab::history::Waiting::default(),
        Err(e) => {
            note!("tcptab: --ship-status: {e}");
            return;
        }
    };
    let gauge = |value: i64| {
        let g = Gauge::<i64>::default();
        g.set(value);
        g
    };
    registry.register(
        "ship_rows_sent",
        "Rows the fleet's store acknowledged (a row that changed again is sent again)",
        counter(status.sent),
    );
    registry.register(
        "ship_batches",
        "Batches the fleet's store acknowledged",
        counter(status.batches),
    );
    registry.register(
        "ship_batches_failed",
        "Batches the fleet's store refused or did not answer",
        counter(status.failed),
    );
    registry.register(
        "ship_rows_dropped",
        "Rows the local retention deleted before they were shipped",
        counter(status.dropped),
    );
    registry.register(
        "ship_rows_waiting",
        "Connection rows waiting to be shipped",
        gauge(status.rows as i64),
    );
    let age = status
        .oldest
        .map_or(0.0, |t| (tcptab::time::now_ms() - t).max(0) as f64 / 1000.0);
    let oldest = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
    oldest.set(age);
    registry.register_with_unit(
        "ship_oldest_waiting",
        "Age of the oldest row waiting to be shipped (0: none waits)",
        prometheus_client::registry::Unit::Seconds,
        oldest,
    );
}
