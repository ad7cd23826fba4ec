//! `--connection-counters`: a monitor on its own thread (polls every
//! --counters-interval, destroy notifications as they come) feeds a
//! [`Tally`]; each collection encodes what it has counted so far.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::{Registry, Unit};
use tcptab::diag::Extensions;
use tcptab::filter::Expr;
use tcptab::metrics::{DurationHistogram, Series, Tally, TallyOptions};
use tcptab::track::{Happened, Monitor, MonitorOptions};

use crate::cli::ServeArgs;

type Labels = Vec<(String, String)>;

/// Start counting: the tally the monitor's thread feeds.
pub fn start(args: &ServeArgs) -> Result<Arc<Mutex<Tally>>> {
    let query = args
        .scope
        .query(Expr::All, Extensions::TCP_INFO, false)?
        .workloads(args.per_workload)
        // Read again every interval: one walk of the kernel's tables
        // for both families costs less than two.
        .one_walk_all(true);
    let tally = Arc::new(Mutex::new(Tally::new(TallyOptions {
        per_namespace: args.scope.namespaces.all_netns,
        per_workload: args.per_workload,
        max_series: args.max_series as usize,
        ports: args.ports.clone(),
    })));
    let shared = tally.clone();
    let interval = args.counters_interval;
    std::thread::Builder::new()
        .name("counters".into())
        .spawn(move || {
            let mut monitor = Monitor::new(&query, MonitorOptions::every(interval));
            let mut noted = false;
            loop {
                let ran = monitor.run(&|| false, &mut |h| -> Result<(), tcptab::Error> {
                    if let Happened::Polled(done) = &h {
                        if !noted && !done.notes.is_empty() {
                            note!("tcptab: --connection-counters: {}", done.notes.join("; "));
                            noted = true;
                        }
                    }
                    if let Ok(mut tally) = shared.lock() {
                        tally.happened(&h);
                    }
                    Ok(())
                });
                // A poll failed: said, and tried again at the next one.
                if let Err(e) = ran {
                    note!("tcptab: --connection-counters: {e}");
                    std::thread::sleep(interval);
                }
            }
        })
        .context("starting the counters' thread")?;
    Ok(tally)
}

/// The counters, registered family by family; their OpenMetrics
/// `_created` samples, which prometheus-client does not write.
pub fn register(registry: &mut Registry, tally: &Mutex<Tally>) -> Created {
    let mut created = Created::default();
    let Ok(t) = tally.lock().map(|t| t.tallied()) else {
        return created;
    };
    let began: HashMap<&[(&str, String)], i64> =
        t.created.iter().map(|(l, at)| (&l[..], *at)).collect();
    let families: [(&str, &str, Option<Unit>, &[Series]); 8] = [
        ("connections_opened", "Connections opened (those open when counting began included), per listener that accepted them (empty: opened by this host)", None, &t.opened),
        ("connections_closed", "Connections whose socket the kernel destroyed, per listener and the state they were last seen in", None, &t.closed),
        ("connections_closed_first", "Connections by the side that closed first (side=\"local\": seen in FIN_WAIT1, FIN_WAIT2, CLOSING or TIME_WAIT; \"peer\": seen in CLOSE_WAIT or LAST_ACK); resets and closes no poll saw are in neither", None, &t.closed_first),
        ("connection_received", "Bytes received on connections (tcp_info bytes_received: the closed ones' final count, the open ones' at the last poll)", Some(Unit::Bytes), &t.bytes_received),
        ("connection_acked", "Bytes sent on connections and acknowledged by the peer (tcp_info bytes_acked, the SYN and FIN counted one each)", Some(Unit::Bytes), &t.bytes_acked),
        ("connection_retransmitted_segments", "Segments retransmitted on connections (tcp_info total_retrans)", None, &t.retransmitted_segments),
        ("connection_retransmit_timeouts", "Retransmission timeouts on connections (tcp_info total_rto: Linux 6.7 and later, 0 before)", None, &t.retransmit_timeouts),
        ("listen_queue_full", "Polls that found the listener's accept queue full (more waiting than its backlog: new connections are dropped)", None, &t.listen_queue_full),
    ];
    for (name, help, unit, series) in families {
        let family = Family::<Labels, Counter>::default();
        let unit_suffix = unit
            .as_ref()
            .map_or(String::new(), |u| format!("_{}", u.as_str()));
        for s in series {
            let labels = labels(s);
            family.get_or_create(&labels).inc_by(s.value);
            // A series of a group, or of a group and one label more.
            let group = (0..=s.labels.len())
                .rev()
                .find_map(|n| began.get(&s.labels[..n]));
            if let Some(&at) = group {
                created.add(&format!("tcptab_{name}{unit_suffix}"), &labels, at);
            }
        }
        match unit {
            Some(unit) => registry.register_with_unit(name, help, unit, family),
            None => registry.register(name, help, family),
        }
    }
    let durations = Family::<Labels, Fixed>::default();
    for (l, histogram) in &t.durations {
        if let Some(&at) = began.get(&l[..]) {
            created.histogram("tcptab_connection_duration_seconds", &owned(l), at);
        }
        if let Ok(mut h) = durations.get_or_create(&owned(l)).0.lock() {
            *h = histogram.clone();
        }
    }
    registry.register_with_unit(
        "connection_duration",
        "How long the closed connections lived, from their first sighting to the kernel's destroy notification",
        Unit::Seconds,
        durations,
    );
    if let Some(at) = t.started {
        for name in ["connection_counters_over_cap", "notifications_lost"] {
            created.add(&format!("tcptab_{name}"), &[], at);
        }
    }
    registry.register(
        "connection_counters_over_cap",
        "Connections counted in the group listener=\"other\": more groups than --max-series",
        counter(t.over_the_cap),
    );
    registry.register(
        "notifications_lost",
        "Times the kernel dropped destroy notifications: connections that closed meanwhile count what the last poll saw",
        counter(t.notifications_lost),
    );
    created
}

/// OpenMetrics `_created` samples (when a counter began, in seconds since
/// the Unix epoch), each written after its counter's sample.
#[derive(Debug, Default)]
pub struct Created(HashMap<String, String>);

impl Created {
    /// A counter's: after its `_total` sample.
    fn add(&mut self, name: &str, labels: &[(String, String)], at_ms: i64) {
        let rendered = render_labels(labels);
        self.0.insert(
            format!("{name}_total{rendered}"),
            format!("{name}_created{rendered} {}", seconds(at_ms)),
        );
    }

    /// A histogram's: after its last bucket (`le="+Inf"`, a label
    /// prometheus-client writes first), the last sample it writes of it.
    fn histogram(&mut self, name: &str, labels: &[(String, String)], at_ms: i64) {
        let mut last = vec![("le".to_string(), "+Inf".to_string())];
        last.extend_from_slice(labels);
        self.0.insert(
            format!("{name}_bucket{}", render_labels(&last)),
            format!("{name}_created{} {}", render_labels(labels), seconds(at_ms)),
        );
    }

    /// `body` (OpenMetrics text) with the `_created` samples.
    pub fn follow(&self, body: &str) -> String {
        let mut out = String::with_capacity(body.len() + self.0.len() * 96);
        for line in body.lines() {
            out.push_str(line);
            out.push('\n');
            let sample = line.rsplit_once(' ').map(|(series, _)| series);
            if let Some(created) = sample.and_then(|s| self.0.get(s)) {
                out.push_str(created);
                out.push('\n');
            }
        }
        out
    }
}

/// Seconds since the Unix epoch, to the millisecond.
fn seconds(at_ms: i64) -> String {
    format!("{:.3}", at_ms as f64 / 1000.0)
}

/// `{k="v",...}` as prometheus-client writes a label set (nothing for
/// none).
fn render_labels(labels: &[(String, String)]) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let mut out = String::from("{");
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(k);
        out.push_str("=\"");
        for c in v.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out.push('}');
    out
}

fn labels(s: &Series) -> Labels {
    owned(&s.labels)
}

fn owned(labels: &[(&str, String)]) -> Labels {
    labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

/// A histogram given by its bucket counts (prometheus-client's own only
/// takes observations one by one).
#[derive(Debug, Default)]
struct Fixed(Mutex<DurationHistogram>);

impl TypedMetric for Fixed {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Fixed {
    fn encode(&self, mut encoder: MetricEncoder) -> std::fmt::Result {
        let h = self.0.lock().map_err(|_| std::fmt::Error)?;
        encoder.encode_histogram::<NoLabelSet>(h.sum, h.count, &h.buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// A counter at `value`.
pub(super) fn counter(value: u64) -> Counter {
    let c = Counter::<u64>::default();
    c.inc_by(value);
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_counter_sample_is_followed_by_its_created() {
        let mut created = Created::default();
        let labels = vec![
            ("listener".to_string(), "127.0.0.1:80".to_string()),
            ("pod".to_string(), "a\"b\\c".to_string()),
        ];
        created.add("tcptab_connections_opened", &labels, 1_800_000_000_250);
        created.add("tcptab_notifications_lost", &[], -1);
        let body = "# TYPE tcptab_connections_opened counter\n\
                    tcptab_connections_opened_total{listener=\"127.0.0.1:80\",pod=\"a\\\"b\\\\c\"} 3\n\
                    tcptab_connections_opened_total{listener=\"\",pod=\"\"} 1\n\
                    # TYPE tcptab_notifications_lost counter\n\
                    tcptab_notifications_lost_total 0\n";
        assert_eq!(
            created.follow(body),
            "# TYPE tcptab_connections_opened counter\n\
             tcptab_connections_opened_total{listener=\"127.0.0.1:80\",pod=\"a\\\"b\\\\c\"} 3\n\
             tcptab_connections_opened_created{listener=\"127.0.0.1:80\",pod=\"a\\\"b\\\\c\"} 1800000000.250\n\
             tcptab_connections_opened_total{listener=\"\",pod=\"\"} 1\n\
             # TYPE tcptab_notifications_lost counter\n\
             tcptab_notifications_lost_total 0\n\
             tcptab_notifications_lost_created -0.001\n"
        );
    }
}
