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
use tokio::sync::Mutex;

use crate::cli::ServeArgs;

mod collect;
mod conns;
mod tally;

use conns::Connections;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Longest a connection may stay open, whatever it does.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);
/// The kernel's queue of connections not yet accepted (capped by
/// net.core.somaxconn).
const LISTEN_QUEUE: u32 = 4096;
/// Request head buffer (request line and headers).
const MAX_HEAD: usize = 16 * 1024;

/// What persists across collections.
#[derive(Debug, Default)]
struct Stats {
    collections: AtomicU64,
    parse_errors: AtomicU64,
    netlink_errors: AtomicU64,
    other_errors: AtomicU64,
    evicted_connections: AtomicU64,
}

struct App {
    args: ServeArgs,
    stats: Stats,
    /// The last collection: when it finished, and its encoded metrics
    /// (OpenMetrics text without the final `# EOF`).
    cache: Mutex<Option<(Instant, Arc<String>)>>,
    /// With --connection-counters: what the counters' thread counted.
    tally: Option<Arc<std::sync::Mutex<tcptab::metrics::Tally>>>,
    /// With --per-process: the last collection's owner scan, which the
    /// next brings up to date instead of reading every descriptor again.
    owners: std::sync::Mutex<tcptab::KeptScan>,
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
    // A listen queue long enough for connections that wait their turn at
    // the cap (tokio's default is 128).
    let listener = (|| {
        let socket = match args.listen {
            std::net::SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            std::net::SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
        };
        socket.set_reuseaddr(true)?;
        socket.bind(args.listen)?;
        socket.listen(LISTEN_QUEUE)
    })()
    .with_context(|| format!("listening on {}", args.listen))?;
    let local = listener.local_addr()?;
    note!("tcptab: serving metrics on http://{local}/metrics");
    let cap = args.max_connections as usize;
    let connections = Arc::new(Connections::default());
    let tally = match args.connection_counters {
        true => Some(tally::start(&args)?),
        false => None,
    };
    let app = Arc::new(App {
        args,
        stats: Stats::default(),
        cache: Mutex::new(None),
        owners: Default::default(),
        tally,
    });
    loop {
        // At the cap, one connection makes room (the policy is conns.rs's);
        // when none may yet, the next one waits in the kernel's listen
        // queue until one closes or may be closed.
        if connections.len() >= cap && !connections.evict_one() {
            tokio::select! {
                _ = connections.closed.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                _ = tokio::signal::ctrl_c() => return Ok(()),
            }
            continue;
        }
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
        let conn = connections.add(&stream);
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
                        conn.begin();
                        let response = handle(req, app).await;
                        conn.end();
                        response
                    }
                }
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(timeout)
                .max_buf_size(MAX_HEAD)
                .serve_connection(TokioIo::new(stream), service);
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
}

/// The Prometheus text format (0.0.4) from prometheus-client's OpenMetrics
/// output: a counter's HELP and TYPE name the `_total` sample, and UNIT
/// lines and the `_created` samples of counters and histograms go (0.0.4
/// has neither).
fn to_prometheus_text(openmetrics: &str) -> String {
    let typed = |kind: &'static str| -> std::collections::HashSet<&str> {
        openmetrics
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.strip_suffix(kind))
            .collect()
    };
    let counters = typed(" counter");
    let histograms = typed(" histogram");
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let name = line.split(['{', ' ']).next().unwrap_or_default();
        if name
            .strip_suffix("_created")
            .is_some_and(|family| counters.contains(family) || histograms.contains(family))
        {
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
        let om = "# HELP tcptab_errors Failed.\n# TYPE tcptab_errors counter\ntcptab_errors_total{kind=\"parse\"} 0\ntcptab_errors_created{kind=\"parse\"} 1800000000.250\n# HELP tcptab_took Took.\n# TYPE tcptab_took histogram\ntcptab_took_bucket{le=\"+Inf\"} 0\ntcptab_took_created 1800000000.250\n# HELP tcptab_up Up.\n# TYPE tcptab_up gauge\ntcptab_up 1\n# EOF\n";
        assert_eq!(
            to_prometheus_text(om),
            "# HELP tcptab_errors_total Failed.\n# TYPE tcptab_errors_total counter\ntcptab_errors_total{kind=\"parse\"} 0\n# HELP tcptab_took Took.\n# TYPE tcptab_took histogram\ntcptab_took_bucket{le=\"+Inf\"} 0\n# HELP tcptab_up Up.\n# TYPE tcptab_up gauge\ntcptab_up 1\n"
        );
    }
}
