//! `tcptab serve`: a Prometheus exporter.
//!
//! GET /metrics collects the table (netlink, falling back to /proc),
//! computes `tcptab::metrics`, and encodes them with prometheus-client:
//! OpenMetrics when the scraper asks for it, the Prometheus text format
//! otherwise. Protecting the host: scrapes that arrive while a collection
//! runs, or within --min-interval of the last one, share it; request
//! headers are bounded in size and time; connections are bounded in number
//! and lifetime; anything but GET and HEAD gets 405, unknown paths 404.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ACCEPT, ALLOW, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::encoding::text::encode_registry;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tcptab::diag::Extensions;
use tcptab::metrics::{Accumulator, Collected, MetricOptions, Sample};
use tokio::net::TcpListener;
use tokio::sync::Mutex;

use crate::cli::ServeArgs;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Longest a connection may stay open, whatever it does.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);
/// Request head buffer (request line and headers).
const MAX_HEAD: usize = 16 * 1024;

type Labels = Vec<(String, String)>;

/// What persists across collections.
#[derive(Debug, Default)]
struct Stats {
    collections: AtomicU64,
    parse_errors: AtomicU64,
    netlink_errors: AtomicU64,
    other_errors: AtomicU64,
    rejected_connections: AtomicU64,
    evicted_connections: AtomicU64,
}

/// One collection's result, from either path.
struct Read {
    metrics: Collected,
    source: &'static str,
    ns_denied: u32,
    not_inspected: u32,
}

struct App {
    args: ServeArgs,
    stats: Stats,
    /// The last collection: when it finished, and its encoded metrics
    /// (OpenMetrics text without the final `# EOF`).
    cache: Mutex<Option<(Instant, Arc<String>)>>,
}

pub fn run(args: &ServeArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(2)
        .build()
        .context("starting the runtime")?;
    runtime.block_on(serve(args.clone()))
}

async fn serve(args: ServeArgs) -> Result<()> {
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let local = listener.local_addr()?;
    note!("tcptab: serving metrics on http://{local}/metrics");
    let cap = args.max_connections.max(1);
    let connections = Arc::new(Connections::default());
    let app = Arc::new(App {
        args,
        stats: Stats::default(),
        cache: Mutex::new(None),
    });
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors or a reset before accept: back off.
                    note!("tcptab: accepting a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        // At the cap, the connection idle the longest (no request in
        // flight) makes room for the new one: clients that connect and
        // wait cannot keep a scraper out. With every connection busy, the
        // new one is refused.
        if connections.len() >= cap && !connections.evict_idlest() {
            app.stats
                .rejected_connections
                .fetch_add(1, Ordering::Relaxed);
            drop(stream);
            continue;
        }
        let conn = connections.add();
        let app = app.clone();
        let connections = connections.clone();
        tokio::spawn(async move {
            let timeout = app.args.read_timeout;
            let service = service_fn({
                let app = app.clone();
                let conn = conn.clone();
                move |req| {
                    let app = app.clone();
                    let conn = conn.clone();
                    async move {
                        conn.busy.store(true, Ordering::Relaxed);
                        let response = handle(req, app).await;
                        conn.touch();
                        conn.busy.store(false, Ordering::Relaxed);
                        conn.arriving.store(0, Ordering::Relaxed);
                        response
                    }
                }
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(timeout)
                .max_buf_size(MAX_HEAD)
                .serve_connection(
                    TokioIo::new(Arriving {
                        stream,
                        conn: conn.clone(),
                    }),
                    service,
                );
            tokio::select! {
                _ = connection => {}
                _ = conn.evict.notified() => {
                    app.stats.evicted_connections.fetch_add(1, Ordering::Relaxed);
                }
                _ = tokio::time::sleep(CONNECTION_LIFETIME) => {}
            }
            connections.remove(conn.id);
        });
    }
}

/// A connection's stream that notes when the bytes of a request begin to
/// arrive (before hyper has the whole head): a scraper whose request is on
/// its way is not the one closed to make room, for [`ARRIVING`] (a client
/// that sends a byte and stalls is evictable after that).
struct Arriving {
    stream: tokio::net::TcpStream,
    conn: Arc<Conn>,
}

impl tokio::io::AsyncRead for Arriving {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before && self.conn.arriving.load(Ordering::Relaxed) == 0 {
            self.conn.arriving.store(now_ms().max(1), Ordering::Relaxed);
        }
        polled
    }
}

impl tokio::io::AsyncWrite for Arriving {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.stream).poll_write(cx, data)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// The open connections, for the cap and for choosing whom to close.
#[derive(Default)]
struct Connections {
    next: AtomicU64,
    open: std::sync::Mutex<std::collections::HashMap<u64, Arc<Conn>>>,
}

/// One connection: when it was last active and whether a request is in
/// flight.
struct Conn {
    id: u64,
    /// Milliseconds since the exporter started.
    last_active: AtomicU64,
    busy: std::sync::atomic::AtomicBool,
    /// When the bytes of its current request began to arrive (ms since
    /// start; 0: none yet).
    arriving: AtomicU64,
    evict: tokio::sync::Notify,
}

/// How long a request on its way protects its connection from eviction.
const ARRIVING: u64 = 500;

fn now_ms() -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

impl Conn {
    fn touch(&self) {
        self.last_active.store(now_ms(), Ordering::Relaxed);
    }
}

impl Connections {
    fn len(&self) -> usize {
        self.open.lock().map_or(0, |open| open.len())
    }

    fn add(&self) -> Arc<Conn> {
        let conn = Arc::new(Conn {
            id: self.next.fetch_add(1, Ordering::Relaxed),
            last_active: AtomicU64::new(now_ms()),
            busy: std::sync::atomic::AtomicBool::new(false),
            arriving: AtomicU64::new(0),
            evict: tokio::sync::Notify::new(),
        });
        if let Ok(mut open) = self.open.lock() {
            open.insert(conn.id, conn.clone());
        }
        conn
    }

    fn remove(&self, id: u64) {
        if let Ok(mut open) = self.open.lock() {
            open.remove(&id);
        }
    }

    /// Close the connection idle the longest; false if every one is busy
    /// (answering, or a request arriving).
    fn evict_idlest(&self) -> bool {
        let Ok(mut open) = self.open.lock() else {
            return false;
        };
        let now = now_ms();
        let idlest = open
            .values()
            .filter(|c| !c.busy.load(Ordering::Relaxed))
            .filter(|c| {
                let arriving = c.arriving.load(Ordering::Relaxed);
                arriving == 0 || now.saturating_sub(arriving) > ARRIVING
            })
            .min_by_key(|c| c.last_active.load(Ordering::Relaxed))
            .map(|c| c.id);
        match idlest.and_then(|id| open.remove(&id)) {
            Some(conn) => {
                conn.evict.notify_one();
                true
            }
            None => false,
        }
    }
}

fn response(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

async fn handle(
    req: Request<Incoming>,
    app: Arc<App>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = response(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "only GET and HEAD are served\n",
        );
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return Ok(r);
    }
    let head = req.method() == Method::HEAD;
    let r = match req.uri().path() {
        "/" => response(
            StatusCode::OK,
            "text/html; charset=utf-8",
            "<!doctype html><html><head><title>tcptab exporter</title></head><body>\
             <h1>tcptab exporter</h1><p>The TCP socket table as Prometheus metrics: \
             <a href=\"/metrics\">/metrics</a></p></body></html>\n",
        ),
        "/metrics" => {
            let openmetrics = req
                .headers()
                .get(ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|a| a.contains("application/openmetrics-text"));
            let body = app.metrics(Instant::now()).await;
            if openmetrics {
                response(StatusCode::OK, OPENMETRICS, format!("{body}# EOF\n"))
            } else {
                response(StatusCode::OK, PROMETHEUS_TEXT, to_prometheus_text(&body))
            }
        }
        _ => response(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found: try /metrics\n",
        ),
    };
    Ok(if head {
        r.map(|_| Full::new(Bytes::new()))
    } else {
        r
    })
}

impl App {
    /// The metrics for a scrape that arrived at `asked`: the last
    /// collection if it finished after that, or within --min-interval;
    /// otherwise a new one. Scrapes waiting meanwhile share it.
    async fn metrics(self: &Arc<Self>, asked: Instant) -> Arc<String> {
        let mut cache = self.cache.lock().await;
        if let Some((at, body)) = cache.as_ref() {
            if *at >= asked || at.elapsed() < self.args.min_interval {
                return body.clone();
            }
        }
        let app = self.clone();
        let body = tokio::task::spawn_blocking(move || app.collect())
            .await
            .map(Arc::new)
            .unwrap_or_else(|e| Arc::new(format!("# collection failed: {e}\n")));
        *cache = Some((Instant::now(), body.clone()));
        body
    }

    /// One collection, encoded (blocking: reads /proc or netlink).
    fn collect(&self) -> String {
        let started = Instant::now();
        let n = self.stats.collections.fetch_add(1, Ordering::Relaxed) + 1;
        let args = &self.args;
        let mut registry = Registry::with_prefix("tcptab");
        let options = MetricOptions {
            ports: args.ports.clone(),
            per_remote_port: args.per_remote_port,
            per_process: args.per_process,
            per_namespace: args.scope.namespaces.all_netns,
            max_series: args.max_series,
        };
        let read = (|| -> Result<Read> {
            let extensions = Extensions::TCP_INFO;
            let query =
                args.scope
                    .query(tcptab::filter::Expr::All, extensions, args.per_process)?;
            // Count while the table streams in: memory stays flat however
            // many sockets there are (plus the owner map with
            // --per-process).
            let mut acc = Accumulator::new(&options);
            let report = query.for_each(|e| {
                let label = e.namespace.map(|n| n.label());
                acc.add(
                    &Sample {
                        socket: e.socket,
                        diag: e.diag,
                        namespace: label.as_deref(),
                    },
                    e.owners.map(|o| o.owners()),
                );
                Ok::<(), anyhow::Error>(())
            })?;
            let not_inspected = report
                .not_inspected
                .iter()
                .filter(|n| matches!(n.reason, tcptab::NotInspectedReason::PermissionDenied(_)));
            Ok(Read {
                metrics: acc.finish(),
                source: report.read.first().map_or("proc", |r| r.source.as_str()),
                ns_denied: report.processes_unreadable + not_inspected.count() as u32,
                not_inspected: report.owners.map_or(0, |o| o.denied),
            })
        })();
        let up = Gauge::<i64>::default();
        match read {
            Ok(read) => {
                up.set(1);
                register_socket_metrics(&mut registry, &read.metrics, args.rtt_histogram);
                let source = Family::<Labels, Gauge>::default();
                source
                    .get_or_create(&vec![("source".into(), read.source.into())])
                    .set(1);
                registry.register(
                    "source",
                    "The source read: netlink (sock_diag) or proc",
                    source,
                );
                let sockets_read = Gauge::<i64>::default();
                sockets_read.set(read.metrics.sockets_read as i64);
                registry.register(
                    "sockets_read",
                    "Sockets read in the last collection",
                    sockets_read,
                );
                let denied = Gauge::<i64>::default();
                denied.set(read.not_inspected as i64);
                registry.register(
                    "processes_not_inspected",
                    "Processes whose sockets could not be attributed (not root); 0 without --per-process",
                    denied,
                );
                let ns = Gauge::<i64>::default();
                ns.set(read.ns_denied as i64);
                registry.register(
                    "namespaces_not_inspected",
                    "Processes whose network namespace could not be read (not root), with --all-netns",
                    ns,
                );
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
        let collections = Counter::<u64>::default();
        collections.inc_by(n);
        registry.register(
            "collections",
            "Collections of the socket table (scrapes share them)",
            collections,
        );
        let rejected = Counter::<u64>::default();
        rejected.inc_by(self.stats.rejected_connections.load(Ordering::Relaxed));
        registry.register(
            "rejected_connections",
            "HTTP connections closed at once: --max-connections were open, all with a request in flight",
            rejected,
        );
        let evicted = Counter::<u64>::default();
        evicted.inc_by(self.stats.evicted_connections.load(Ordering::Relaxed));
        registry.register(
            "evicted_connections",
            "Idle HTTP connections closed to make room for a new one at --max-connections",
            evicted,
        );
        let duration = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        duration.set(started.elapsed().as_secs_f64());
        registry.register(
            "scrape_duration_seconds",
            "Time the last collection took",
            duration,
        );
        let mut out = String::new();
        if let Err(e) = encode_registry(&mut out, &registry) {
            return format!("# encoding failed: {e}\n");
        }
        out
    }
}

fn register_socket_metrics(registry: &mut Registry, m: &tcptab::metrics::Collected, rtt: bool) {
    let gauge = |value: u64| {
        let g = Gauge::<i64>::default();
        g.set(value as i64);
        g
    };
    let sockets = Family::<Labels, Gauge>::default();
    for (family, state, count) in &m.sockets {
        sockets
            .get_or_create(&vec![
                ("family".into(), family.as_str().into()),
                ("state".into(), state.to_string()),
            ])
            .set(*count as i64);
    }
    registry.register(
        "sockets",
        "TCP sockets per state and family (every state, zeros included)",
        sockets,
    );
    let queued = Family::<Labels, Gauge>::default();
    let limit = Family::<Labels, Gauge>::default();
    for l in &m.listeners {
        let labels = vec![("local".into(), l.local.clone())];
        queued.get_or_create(&labels).set(l.queued as i64);
        if let Some(n) = l.limit {
            limit.get_or_create(&labels).set(n as i64);
        }
    }
    registry.register(
        "listen_queue_length",
        "Connections waiting for accept() on each listening address",
        queued,
    );
    registry.register(
        "listen_queue_limit",
        "Accept queue limit (listen() backlog) of each listening address (netlink source)",
        limit,
    );
    registry.register(
        "retransmit_timeouts",
        "Sum over sockets of unrecovered retransmission timeouts (the retrnsmt column)",
        gauge(m.retransmits_now),
    );
    if let Some(total) = m.retransmits_total {
        registry.register(
            "retransmitted_segments",
            "Sum over current sockets of tcp_info total_retrans (netlink source)",
            gauge(total),
        );
    }
    registry.register(
        "zero_window_probing_sockets",
        "Sockets with a zero window probe timer pending (their peer stopped reading)",
        gauge(m.zero_window_probing),
    );
    registry.register(
        "keepalive_pending_sockets",
        "Sockets with a keepalive timer pending",
        gauge(m.keepalive_pending),
    );
    let per = |pairs: Vec<(String, u64)>, label: &str| {
        let f = Family::<Labels, Gauge>::default();
        for (value, count) in pairs {
            f.get_or_create(&vec![(label.to_string(), value)])
                .set(count as i64);
        }
        f
    };
    if !m.local_ports.is_empty() {
        registry.register(
            "local_port_sockets",
            "Sockets per local port (the --port allow-list)",
            per(
                m.local_ports
                    .iter()
                    .map(|(p, n)| (p.to_string(), *n))
                    .collect(),
                "port",
            ),
        );
    }
    if !m.remote_ports.is_empty() {
        registry.register(
            "remote_port_sockets",
            "Sockets per remote port (--per-remote-port)",
            per(
                m.remote_ports
                    .iter()
                    .map(|(p, n)| (p.to_string(), *n))
                    .collect(),
                "port",
            ),
        );
    }
    if !m.processes.is_empty() {
        registry.register(
            "process_sockets",
            "Sockets per process command name (--per-process)",
            per(m.processes.clone(), "command"),
        );
    }
    if !m.namespaces.is_empty() {
        registry.register(
            "netns_sockets",
            "Sockets per network namespace (--all-netns)",
            per(m.namespaces.clone(), "netns"),
        );
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
        let histogram = Histogram::new(exponential_buckets(0.000_05, 2.0, 16));
        for &seconds in &m.rtt_seconds {
            histogram.observe(seconds);
        }
        registry.register(
            "rtt_seconds",
            "Smoothed round-trip time of connected sockets (netlink source)",
            histogram,
        );
    }
}

/// The Prometheus text format (0.0.4) from prometheus-client's OpenMetrics
/// output: a counter's HELP and TYPE name the `_total` sample, and UNIT
/// lines go (0.0.4 has none).
fn to_prometheus_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        match renamed {
            Some(l) => out.push_str(&l),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::to_prometheus_text;

    #[test]
    fn counters_are_renamed_for_the_text_format() {
        let om = "# HELP tcptab_errors Failed.\n# TYPE tcptab_errors counter\ntcptab_errors_total{kind=\"parse\"} 0\n# HELP tcptab_up Up.\n# TYPE tcptab_up gauge\ntcptab_up 1\n# EOF\n";
        assert_eq!(
            to_prometheus_text(om),
            "# HELP tcptab_errors_total Failed.\n# TYPE tcptab_errors_total counter\ntcptab_errors_total{kind=\"parse\"} 0\n# HELP tcptab_up Up.\n# TYPE tcptab_up gauge\ntcptab_up 1\n"
        );
    }
}
