//! `serve --connection-counters` against what a scenario did: connections
//! opened, closed and their bytes, per listener, scraped directly and by a
//! real Prometheus before, during and after the traffic.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

mod common;

use common::server::{promtool_accepts, value, Prometheus, Server};
use testkit::Scenario;

/// Every counter sample of the connection families: series -> value.
fn counters(body: &str) -> BTreeMap<String, f64> {
    body.lines()
        .filter(|l| l.starts_with("tcptab_connection"))
        .filter(|l| l.contains("_total{") || l.contains("_count{") || l.contains("_bucket{"))
        .filter_map(|l| {
            let (series, v) = l.rsplit_once(' ')?;
            Some((series.to_string(), v.parse().ok()?))
        })
        .collect()
}

/// The sum of the samples of `name` whose labels contain `labels`.
fn sum(body: &str, name: &str, labels: &str) -> u64 {
    sum_where(body, name, &[labels])
}

/// The sum of the samples of `name` whose labels contain each of `all`.
fn sum_where(body: &str, name: &str, all: &[&str]) -> u64 {
    body.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && all.iter().all(|a| l.contains(a)))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// How much the connections of `group` closed first by `side` grew
/// between two scrapes.
fn closed_first(from: &str, to: &str, group: &str, side: &str) -> u64 {
    let name = "tcptab_connections_closed_first_total";
    let side = format!("side=\"{side}\"");
    sum_where(to, name, &[group, &side]) - sum_where(from, name, &[group, &side])
}

/// The ledger's connections (one JSON object a line) whose id is above
/// `after`.
fn ledger(path: &Path, after: u64) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["id"].as_u64().unwrap() > after)
        .collect()
}

/// What the ledger's connections add up to on each side: (connections,
/// bytes the client sent, bytes it received).
fn totals(conns: &[Value]) -> (u64, u64, u64) {
    let n = conns.len() as u64;
    let sent = conns.iter().map(|c| c["sent"].as_u64().unwrap()).sum();
    let received = conns.iter().map(|c| c["received"].as_u64().unwrap()).sum();
    (n, sent, received)
}

/// Scrape until the counters stop moving (the last poll has seen every
/// connection end): the body.
fn settled(server: &Server) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut last = counters(&server.metrics());
    loop {
        std::thread::sleep(Duration::from_millis(1200));
        let body = server.metrics();
        let now = counters(&body);
        if now == last {
            return body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the counters still moved 30 s after the traffic ended:\n{body}"
        );
        last = now;
    }
}

fn now_s() -> f64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since.unwrap().as_secs_f64()
}

/// In OpenMetrics, each sample of the counters of what happened is
/// followed by its `_created` (when its group's counting began), between
/// the exporter's start and now; the Prometheus text has none.
fn every_counter_has_its_created(server: &Server, began: f64) {
    let accept = [("Accept", "application/openmetrics-text;version=1.0.0")];
    let om = testkit::http::request(server.addr, "GET", "/metrics", &accept).unwrap();
    let lines: Vec<&str> = om.body.lines().collect();
    let mut counted = 0;
    for pair in lines.windows(2) {
        let Some((series, _)) = pair[0].rsplit_once(' ') else { continue };
        let (name, labels) = series.split_at(series.find('{').unwrap_or(series.len()));
        let counter =
            name.starts_with("tcptab_connection") || name == "tcptab_notifications_lost_total";
        let Some(base) = name.strip_suffix("_total").filter(|_| counter) else {
            continue;
        };
        let (created, at) = pair[1].rsplit_once(' ').unwrap();
        assert_eq!(
            created,
            format!("{base}_created{labels}"),
            "after {}",
            pair[0]
        );
        let at: f64 = at.parse().unwrap();
        assert!((began - 1.0..=now_s()).contains(&at), "{}", pair[1]);
        counted += 1;
    }
    assert!(
        counted >= 20,
        "{counted} counters with a _created:\n{}",
        om.body
    );
    // Each duration histogram's last bucket is followed by its `_created`.
    let name = "tcptab_connection_duration_seconds";
    let mut histograms = 0;
    for pair in lines.windows(2) {
        let Some(labels) = pair[0]
            .strip_prefix(&format!("{name}_bucket{{le=\"+Inf\","))
            .and_then(|l| l.split_once("} "))
            .map(|(labels, _)| labels)
        else {
            continue;
        };
        let created = format!("{name}_created{{{labels}}} ");
        assert!(
            pair[1].starts_with(&created),
            "after {}: {}",
            pair[0],
            pair[1]
        );
        histograms += 1;
    }
    assert!(histograms >= 2, "{histograms} histograms with a _created");
    assert!(!server.metrics().contains("_created"));
}

#[test]
fn counters_add_up_to_what_the_scenario_did_and_never_go_down() {
    testkit::needs_root!();
    let dir = testkit::Scratch::new("counters");
    let ledger_path = dir.join("ledger.jsonl");
    let mut scenario = Scenario::start_with("ledger.py", &[ledger_path.to_str().unwrap()]);
    let port = scenario.manifest.names["port"].clone();
    let pid = scenario.pid().to_string();
    let began = now_s();
    let server = Server::start(&[
        "--netns-pid",
        &pid,
        "--min-interval",
        "0s",
        "--connection-counters",
        "--counters-interval",
        "500ms",
        "--port",
        &port,
    ]);
    let prometheus = Prometheus::scraping(server.addr, "counters");
    let listener = format!("listener=\"127.0.0.1:{port}\"");
    // The client's ends: opened here, to the port asked for.
    let outgoing = format!("listener=\"\",port=\"{port}\"");
    let outgoing = outgoing.as_str();
    let before = settled(&server);

    // Scraped all along: no counter ever goes down.
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = never_down(server.addr, stop.clone());

    // Connections that end in order (their bytes are the kernel's to the
    // end), then reset ones (SO_LINGER 0 zeroes the counters before the
    // kernel reports the socket gone: what a poll saw of them counts).
    assert!(scenario
        .command("run 150 2 client_first,server_first,flash")
        .starts_with("ok"));
    assert_eq!(scenario.command("wait"), "ok");
    let orderly = ledger(&ledger_path, 0);
    let last_orderly = orderly
        .iter()
        .map(|c| c["id"].as_u64().unwrap())
        .max()
        .unwrap();
    let middle = settled(&server);
    assert!(scenario.command("run 100 1 reset").starts_with("ok"));
    assert_eq!(scenario.command("wait"), "ok");
    let after = settled(&server);
    stop.store(true, Ordering::Relaxed);
    let scrapes = watcher.join().expect("no counter went down");
    assert!(scrapes > 10, "{scrapes} scrapes while the traffic ran");
    let resets = ledger(&ledger_path, last_orderly);

    let span = |from, to, outgoing| Span {
        from,
        to,
        listener: &listener,
        outgoing,
    };
    the_orderly_ones_exactly(&span(&before, &middle, outgoing), &orderly);
    // A client's end reset before a poll saw it comes from the kernel
    // without its remote port: it is counted with the connections opened
    // here to no port asked for (`port=""`).
    the_reset_ones_once(&span(&middle, &after, "listener=\"\""), &resets);
    promtool_accepts(&after);
    every_counter_has_its_created(&server, began);
    prometheus_saw_the_same(&prometheus, &after, &listener);
    drop(scenario);
}

/// Scrape every 100 ms until `stop`: no counter ever goes down. The
/// number of scrapes.
fn never_down(addr: std::net::SocketAddr, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u32> {
    std::thread::spawn(move || {
        let mut last: BTreeMap<String, f64> = BTreeMap::new();
        let mut scrapes = 0;
        while !stop.load(Ordering::Relaxed) {
            let body = testkit::http::get(addr, "/metrics").unwrap().body;
            for (series, v) in counters(&body) {
                if let Some(&was) = last.get(&series) {
                    assert!(v >= was, "{series} went down from {was} to {v}");
                }
                last.insert(series, v);
            }
            scrapes += 1;
            std::thread::sleep(Duration::from_millis(100));
        }
        scrapes
    })
}

/// Two scrapes, and the groups of the server's ends and of the client's.
struct Span<'a> {
    from: &'a str,
    to: &'a str,
    listener: &'a str,
    outgoing: &'a str,
}

impl Span<'_> {
    /// How much `name` of `group` grew.
    fn grew(&self, name: &str, group: &str) -> u64 {
        sum(self.to, name, group) - sum(self.from, name, group)
    }

    /// Each end once: opened and closed in its group, and how long it
    /// lived for those a poll saw.
    fn once_each(&self, n: u64) {
        for group in [self.listener, self.outgoing] {
            for name in [
                "tcptab_connections_opened_total",
                "tcptab_connections_closed_total",
            ] {
                assert_eq!(self.grew(name, group), n, "{name}{{{group}}}");
            }
            let timed = self.grew("tcptab_connection_duration_seconds_count", group);
            assert!(timed <= n, "{timed} durations of {n} connections");
        }
    }

    fn closed_first(&self, group: &str, side: &str) -> u64 {
        closed_first(self.from, self.to, group, side)
    }
}

fn within(what: &str, got: u64, lo: u64, hi: u64) {
    assert!(
        (lo..=hi).contains(&got),
        "{what}: {got} not within {lo}..={hi}"
    );
}

/// The orderly ones, exactly: each end once, in its group, with the bytes
/// the ledger says plus the kernel's own: a SYN counts one byte acked on
/// the client's side, a FIN one acked or received when it came before the
/// socket was gone (0 or 1 each).
fn the_orderly_ones_exactly(span: &Span, orderly: &[Value]) {
    let (listener, outgoing) = (span.listener, span.outgoing);
    let (n, sent, received) = totals(orderly);
    assert!(n >= 250, "{n} connections");
    span.once_each(n);
    // Who closed first: the side that closed first keeps a TIME_WAIT,
    // which a poll finds (every one); the other side's CLOSE_WAIT lasts
    // only until it closes too (some).
    let how = |hows: &[&str]| {
        let of = |c: &&Value| hows.contains(&c["how"].as_str().unwrap());
        orderly.iter().filter(of).count() as u64
    };
    let (client_first, server_first) = (how(&["client_first", "flash"]), how(&["server_first"]));
    assert_eq!(span.closed_first(outgoing, "local"), client_first);
    assert_eq!(span.closed_first(listener, "local"), server_first);
    let peer = span.closed_first(listener, "peer");
    assert!(
        peer <= client_first,
        "{peer} of {client_first} closed by the client first"
    );
    let peer_seen = span.closed_first(outgoing, "peer");
    assert!(
        peer_seen <= server_first,
        "{peer_seen} of {server_first} closed by the server first"
    );
    eprintln!("closed first: the client {client_first} (the server saw {peer} of them as the peer's), the server {server_first} (the client saw {peer_seen})");
    let bytes = |name: &str, group: &str| span.grew(name, group);
    let (received_bytes, acked_bytes) = (
        "tcptab_connection_received_bytes_total",
        "tcptab_connection_acked_bytes_total",
    );
    eprintln!(
        "{n} orderly connections, {sent} bytes sent, {received} received; the server's end received {} and had {} acked",
        bytes(received_bytes, listener),
        bytes(acked_bytes, listener)
    );
    within(
        "server received",
        bytes(received_bytes, listener),
        sent,
        sent + n,
    );
    within(
        "server acked",
        bytes(acked_bytes, listener),
        received,
        received + n,
    );
    within(
        "client received",
        bytes(received_bytes, outgoing),
        received,
        received + n,
    );
    within(
        "client acked",
        bytes(acked_bytes, outgoing),
        sent + n,
        sent + 2 * n,
    );
}

/// The reset ones: counted once each, in neither side's closed-first;
/// their bytes at most what was sent.
fn the_reset_ones_once(span: &Span, resets: &[Value]) {
    let (n, sent, received) = totals(resets);
    span.once_each(n);
    for group in [span.listener, span.outgoing] {
        for side in ["local", "peer"] {
            assert_eq!(span.closed_first(group, side), 0, "{group} {side}");
        }
    }
    let received_bytes = "tcptab_connection_received_bytes_total";
    within(
        "server received (reset)",
        span.grew(received_bytes, span.listener),
        0,
        sent,
    );
    within(
        "client received (reset)",
        span.grew(received_bytes, span.outgoing),
        0,
        received,
    );
}

/// Prometheus scraped the same: its last value is ours, and it saw no
/// counter reset over the whole run.
fn prometheus_saw_the_same(prometheus: &Prometheus, after: &str, listener: &str) {
    let opened = format!("tcptab_connections_opened_total{{{listener}}}");
    let want = sum(after, "tcptab_connections_opened_total", listener) as f64;
    prometheus.query_until(&opened, |rows| value(&rows[0]) == want);
    for family in [
        "tcptab_connections_opened_total",
        "tcptab_connections_closed_total",
        "tcptab_connection_received_bytes_total",
        "tcptab_connection_acked_bytes_total",
    ] {
        let rows = prometheus.query(&format!("resets({family}[10m])"));
        assert!(!rows.is_empty(), "{family} in Prometheus");
        for row in rows {
            assert_eq!(value(&row), 0.0, "Prometheus saw {family} reset: {row}");
        }
    }
}

/// A server whose peer's link goes down while it sends: its retransmission
/// timeouts (tcp_info's total_rto, Linux 6.7) are counted in its
/// listener's group, as many as the kernel says for the socket.
#[test]
fn retransmission_timeouts_are_counted_as_the_kernel_counts_them() {
    testkit::needs_root!();
    let a = testkit::NamedNetns::add("tcptab-rto-a");
    let b = testkit::NamedNetns::add("tcptab-rto-b");
    let ip = |args: &[&str]| {
        let out = testkit::tool("ip").args(args).output().unwrap();
        assert!(out.status.success(), "ip {args:?}: {out:?}");
    };
    ip(&[
        "-n", &a.name, "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", &b.name,
    ]);
    ip(&["-n", &a.name, "addr", "add", "10.253.1.1/24", "dev", "va"]);
    ip(&["-n", &b.name, "addr", "add", "10.253.1.2/24", "dev", "vb"]);
    ip(&["-n", &a.name, "link", "set", "va", "up"]);
    ip(&["-n", &b.name, "link", "set", "vb", "up"]);
    // The server sends 64 KiB when told, the client reads it all.
    let (mut server, line) = testkit::spawn_until_line(
        a.command("python3")
            .args([
                "-c",
                "import socket, sys\n\
                 s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
                 s.bind(('10.253.1.1', 7070)); s.listen(); print('ready', flush=True)\n\
                 c, _ = s.accept(); sys.stdin.readline(); c.sendall(b'x' * 65536)\n\
                 sys.stdin.readline()\n",
            ])
            .stdin(std::process::Stdio::piped()),
    );
    assert_eq!(line, "ready");
    let (mut client, line) = testkit::spawn_until_line(b.command("python3").args([
        "-c",
        "import socket, time\n\
         c = socket.create_connection(('10.253.1.1', 7070)); print('connected', flush=True)\n\
         got = 0\n\
         while got < 65536: got += len(c.recv(65536))\n\
         time.sleep(300)\n",
    ]));
    assert_eq!(line, "connected");
    let server_addr = Server::start(&[
        "-N",
        &a.name,
        "--min-interval",
        "0s",
        "--connection-counters",
        "--counters-interval",
        "200ms",
    ]);
    // A poll sees the connection; then its peer's link goes down and the
    // server sends: its retransmission timer fires, again and again.
    std::thread::sleep(Duration::from_millis(600));
    ip(&["-n", &b.name, "link", "set", "vb", "down"]);
    {
        use std::io::Write;
        let stdin = server.stdin.as_mut().unwrap();
        stdin.write_all(b"go\n").unwrap();
        stdin.flush().unwrap();
    }
    std::thread::sleep(Duration::from_millis(2500));
    ip(&["-n", &b.name, "link", "set", "vb", "up"]);
    // The kernel's word on the server's socket: its send queue, and its
    // retransmission timeouts.
    let server_socket = || -> Value {
        let out = common::tcptab(&[
            "list",
            "-N",
            &a.name,
            "-i",
            "--format",
            "jsonl",
            "sport = :7070 and state established",
        ]);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        serde_json::from_str(text.lines().next().expect("the server's socket")).unwrap()
    };
    // Once the link is up, the next retransmission gets through and the
    // rest follows: nothing is left unacknowledged.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while server_socket()["tx_queue"] != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the data never got through"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let kernel = || server_socket()["tcp_info"]["total_rto"].as_u64().unwrap();
    let series = "tcptab_connection_retransmit_timeouts_total{listener=\"10.253.1.1:7070\"}";
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let (counted, timeouts) = loop {
        let timeouts = kernel();
        std::thread::sleep(Duration::from_millis(500));
        let counted = common::server::sample(&server_addr.metrics(), series).unwrap_or(0.0) as u64;
        if counted == timeouts || std::time::Instant::now() > deadline {
            break (counted, timeouts);
        }
    };
    for child in [&mut server, &mut client] {
        let _ = child.kill();
        let _ = child.wait();
    }
    eprintln!("{timeouts} retransmission timeouts by the kernel, {counted} counted");
    assert!(
        timeouts >= 1,
        "the link was down 2.5 s while the server sent"
    );
    assert_eq!(counted, timeouts, "{series}");
}
