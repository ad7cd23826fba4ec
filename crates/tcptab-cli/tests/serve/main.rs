//! `tcptab serve`: scraped by a real Prometheus, checked by promtool, put
//! under a bounded load on loopback, and run unprivileged.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

#[path = "../common/mod.rs"]
mod common;
mod owners;

use common::server::{promtool_accepts, sample, Prometheus, Server};
use testkit::http::{get, request};

#[test]
fn promtool_accepts_the_output() {
    let server = Server::start(&["--per-remote-port", "--rtt-histogram", "--port", "22"]);
    let body = server.metrics();
    promtool_accepts(&body);
    for name in [
        "tcptab_sockets{",
        "tcptab_up 1",
        "tcptab_collections_total",
        "tcptab_scrape_duration_seconds",
        "tcptab_series_dropped{",
    ] {
        assert!(body.contains(name), "{name} in\n{body}");
    }
    // Every state of both families is present, zeros included.
    assert_eq!(
        body.lines()
            .filter(|l| l.starts_with("tcptab_sockets{"))
            .count(),
        22
    );
    // OpenMetrics on request.
    let om = request(
        server.addr,
        "GET",
        "/metrics",
        &[("Accept", "application/openmetrics-text;version=1.0.0")],
    )
    .unwrap();
    assert!(om
        .header("content-type")
        .unwrap()
        .starts_with("application/openmetrics-text"));
    assert!(om.body.ends_with("# EOF\n"));
    let page = get(server.addr, "/").unwrap();
    assert!(page.status == 200 && page.body.contains("href=\"/metrics\""));
}

#[test]
fn prometheus_scrapes_the_exporter() {
    let Some(scenario) = testkit::live("sockets.py") else { return };
    let pid = scenario.pid().to_string();
    let server = Server::start(&["--netns-pid", &pid, "--min-interval", "0s"]);
    let prometheus = Prometheus::scraping(server.addr, "sockets");
    let result = prometheus.query_until("sum by (state) (tcptab_sockets)", |_| true);
    drop(prometheus);
    let from_prometheus: BTreeMap<String, u64> = result
        .iter()
        .map(|r| {
            let state = r["metric"]["state"].as_str().unwrap().to_string();
            let value = r["value"][1].as_str().unwrap().parse::<f64>().unwrap() as u64;
            (state, value)
        })
        .collect();
    let mut created: BTreeMap<String, u64> = tcptab::State::LISTED
        .iter()
        .map(|s| (s.to_string(), 0))
        .collect();
    for e in &scenario.manifest.sockets {
        *created.get_mut(&e.state).unwrap() += 1;
    }
    assert_eq!(from_prometheus, created);
}

#[test]
fn bounded_load_no_stampede_and_hostile_clients() {
    let server = Server::start(&[
        "--min-interval",
        "1s",
        "--read-timeout",
        "1s",
        "--max-connections",
        "64",
    ]);
    let addr = server.addr;
    server.metrics();
    let rss_before = server.rss_kib();
    let started = Instant::now();
    let threads: Vec<_> = (0..50)
        .map(|_| {
            std::thread::spawn(move || {
                let mut failures = 0;
                for _ in 0..100 {
                    match get(addr, "/metrics") {
                        Ok(r) if r.status == 200 && r.body.contains("tcptab_up 1") => {}
                        _ => failures += 1,
                    }
                }
                failures
            })
        })
        .collect();
    let failures: u32 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    let elapsed = started.elapsed().as_secs_f64();
    assert_eq!(failures, 0, "5,000 requests, no errors");
    // One collection per second at most, however many scrapes.
    let body = server.metrics();
    let collections = sample(&body, "tcptab_collections_total").unwrap();
    assert!(
        collections <= elapsed.ceil() + 3.0,
        "{collections} collections in {elapsed:.1} s for 5,000 scrapes"
    );
    let rss_after = server.rss_kib();
    assert!(
        rss_after < rss_before + 32 * 1024,
        "RSS {rss_before} KiB -> {rss_after} KiB"
    );

    // A client that never finishes its headers is cut off.
    let mut slow = TcpStream::connect(addr).unwrap();
    slow.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let t = Instant::now();
    let mut buf = Vec::new();
    let _ = slow.read_to_end(&mut buf);
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "cut off after the 1 s read timeout, took {:?}",
        t.elapsed()
    );
    // Oversized headers are refused.
    let big = "x".repeat(40 * 1024);
    // Oversized headers are refused (431), or the connection is closed.
    if let Ok(r) = request(addr, "GET", "/metrics", &[("X-Big", big.as_str())]) {
        assert_eq!(r.status, 431, "oversized headers");
    }
    // Methods and paths.
    let post = request(addr, "POST", "/metrics", &[("Content-Length", "0")]).unwrap();
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
    assert_eq!(get(addr, "/nope").unwrap().status, 404);
    let head = request(addr, "HEAD", "/metrics", &[]).unwrap();
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
}

#[test]
fn unprivileged_exporter_serves_and_reports_what_it_could_not_see() {
    testkit::needs_root!();
    let bin = testkit::SharedBin::of(env!("CARGO_BIN_EXE_tcptab"), "tcptab-serve-unpriv");
    let command = testkit::as_nobody(&bin);
    // A named namespace with no process in it: an unprivileged exporter
    // cannot enter it, and counts it as not inspected instead of failing.
    let netns = testkit::NamedNetns::add("tcptab-serve-eperm");
    let server = Server::start_with(command, &["--per-process", "--all-netns"]);
    let body = server.metrics();
    drop(server);
    drop(netns);
    drop(bin);
    assert!(body.contains("tcptab_up 1"), "{body}");
    assert!(
        sample(&body, "tcptab_processes_not_inspected").unwrap() > 0.0,
        "{body}"
    );
    assert!(
        sample(&body, "tcptab_namespaces_not_inspected").unwrap() > 0.0,
        "{body}"
    );
}

#[test]
fn shipped_prometheus_config_and_rules_are_valid() {
    let contrib = testkit::repo_root().join("contrib");
    // The rules and the configuration are valid, and the rules do what
    // they say on series made for them.
    for args in [
        ["check", "rules", "tcptab-alerts.yml"],
        ["check", "config", "prometheus.yml"],
        ["test", "rules", "tcptab-alerts.test.yml"],
    ] {
        let out = testkit::tool("promtool")
            .args(&args[..2])
            .arg(contrib.join(args[2]))
            .output()
            .expect("promtool");
        assert!(
            out.status.success(),
            "promtool {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn every_exported_metric_is_documented() {
    let server = Server::start(&[
        "--per-remote-port",
        "--rtt-histogram",
        "--port",
        "22",
        "--per-process",
        "--per-workload",
        "--kernel-counters",
        "--connection-counters",
    ]);
    let body = server.metrics();
    let docs = std::fs::read_to_string(testkit::repo_root().join("docs/exporter.md")).unwrap();
    for line in body.lines().filter_map(|l| l.strip_prefix("# HELP ")) {
        let (name, help) = line.split_once(' ').unwrap();
        let row = docs
            .lines()
            .find(|l| l.starts_with(&format!("| `{name}` |")))
            .unwrap_or_else(|| panic!("{name} is not in docs/exporter.md"));
        let help = help.trim_end_matches('.');
        assert!(
            row.contains(help.split(" (").next().unwrap()),
            "{name}: docs say {row}, the exporter {help}"
        );
    }
}

#[test]
fn a_local_flood_of_idle_connections_cannot_blind_the_exporter() {
    // 1,000 connections that connect and send nothing, 80 clients that do
    // the same and reconnect whenever they are closed, and a scraper once a
    // second: the idle ones are closed after the read timeout, or to make
    // room at the cap, so the scraper gets through.
    let server = Server::start(&["--max-connections", "64", "--min-interval", "0s"]);
    let addr = server.addr;
    server.metrics();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let idle: Vec<TcpStream> = (0..1000)
        .filter_map(|_| TcpStream::connect(addr).ok())
        .collect();
    assert!(idle.len() >= 900, "{} idle connections opened", idle.len());
    let flooders: Vec<_> = (0..80)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut opened = 0u32;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let Ok(mut s) = TcpStream::connect(addr) else {
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    };
                    opened += 1;
                    // Wait until the server closes it, then come back.
                    until_closed(&mut s, &stop);
                }
                opened
            })
        })
        .collect();
    let (mut ok, mut scrapes) = (0, 0);
    let rss_start = server.rss_kib();
    let until = Instant::now() + Duration::from_secs(15);
    while Instant::now() < until {
        let t = Instant::now();
        scrapes += 1;
        if let Ok(r) = get(addr, "/metrics") {
            if r.status == 200 && r.body.contains("tcptab_up 1") {
                ok += 1;
            }
        }
        std::thread::sleep(Duration::from_secs(1).saturating_sub(t.elapsed()));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let reconnects: u32 = flooders.into_iter().map(|t| t.join().unwrap()).sum();
    drop(idle);
    let rss_end = server.rss_kib();
    assert!(
        ok * 100 >= scrapes * 95,
        "{ok} of {scrapes} scrapes succeeded"
    );
    assert!(
        reconnects > 80,
        "the flooders were closed and came back: {reconnects}"
    );
    assert!(
        rss_end < rss_start + 32 * 1024,
        "RSS {rss_start} KiB -> {rss_end} KiB"
    );
    let body = server.metrics();
    assert!(
        sample(&body, "tcptab_evicted_connections_total").unwrap() > 0.0,
        "{body}"
    );
}

/// A listener on 0.0.0.0:80 with `backlog` in the named namespace, held
/// until the returned child is killed (it prints "ready" once listening).
fn listener_in(netns: &testkit::NamedNetns, backlog: u32) -> Child {
    let code = format!(
        "import socket, sys, time\n\
         s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
         s.bind(('0.0.0.0', 80)); s.listen({backlog})\n\
         print('ready', flush=True); time.sleep(600)\n"
    );
    let (child, line) = testkit::spawn_until_line(netns.command("python3").args(["-c", &code]));
    assert_eq!(line, "ready");
    child
}

/// Two new namespaces, `PREFIX-a` and `PREFIX-b`, each with a listener on
/// port 80 of these backlogs.
fn listeners_in_two(prefix: &str, backlogs: [u32; 2]) -> ([testkit::NamedNetns; 2], [Child; 2]) {
    let a = testkit::NamedNetns::add(&format!("{prefix}-a"));
    let b = testkit::NamedNetns::add(&format!("{prefix}-b"));
    let held = [listener_in(&a, backlogs[0]), listener_in(&b, backlogs[1])];
    ([a, b], held)
}

#[test]
fn namespaces_are_series_of_their_own() {
    testkit::needs_root!();
    let ([a, b], mut held) = listeners_in_two("tcptab-serve", [511, 128]);
    let server = Server::start(&["--all-netns", "--per-remote-port"]);
    let body = server.metrics();
    for child in &mut held {
        let _ = child.kill();
        let _ = child.wait();
    }
    for (ns, limit) in [(&a.name, 511.0), (&b.name, 128.0)] {
        let series = format!("tcptab_listen_queue_limit{{netns=\"{ns}\",local=\"0.0.0.0:80\"}}");
        assert_eq!(sample(&body, &series), Some(limit), "{series} in\n{body}");
        let sockets = format!("tcptab_sockets{{netns=\"{ns}\",family=\"ipv4\",state=\"LISTEN\"}}");
        assert_eq!(sample(&body, &sockets), Some(1.0), "{sockets}");
    }
    // No series without its namespace, and the host is `host`.
    for line in body.lines().filter(|l| l.starts_with("tcptab_sockets{")) {
        assert!(line.starts_with("tcptab_sockets{netns="), "{line}");
    }
    assert!(body.contains("tcptab_sockets{netns=\"host\""), "{body}");
    assert!(
        body.contains(&format!(
            "tcptab_build_info{{version=\"{}\"",
            env!("CARGO_PKG_VERSION")
        )),
        "{body}"
    );
    // promtool is content with it.
    promtool_accepts(&body);
}

#[test]
fn remote_ports_are_the_services_not_the_clients() {
    let Some(scenario) = testkit::live("sockets.py") else { return };
    let pid = scenario.pid().to_string();
    let range = std::fs::read_to_string(format!(
        "/proc/{pid}/root/proc/sys/net/ipv4/ip_local_port_range"
    ))
    .or_else(|_| std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range"))
    .unwrap();
    let mut bounds = range.split_whitespace().map(|w| w.parse::<u16>().unwrap());
    let (low, high) = (bounds.next().unwrap(), bounds.next().unwrap());
    let ports = |extra: &[&str]| -> Vec<u16> {
        let mut args = vec![
            "--netns-pid",
            &pid,
            "--per-remote-port",
            "--max-series",
            "1000",
        ];
        args.extend_from_slice(extra);
        let server = Server::start(&args);
        server
            .metrics()
            .lines()
            .filter_map(|l| l.strip_prefix("tcptab_remote_port_sockets{port=\""))
            .map(|l| l.split('"').next().unwrap().parse().unwrap())
            .collect()
    };
    let services = ports(&[]);
    assert!(!services.is_empty());
    assert!(
        services.iter().all(|p| !(low..=high).contains(p)),
        "{services:?} in {low}-{high}"
    );
    let every = ports(&["--every-remote-port"]);
    assert!(every.iter().any(|p| (low..=high).contains(p)), "{every:?}");
    assert!(every.len() > services.len());
}

#[test]
fn at_the_cap_honest_clients_are_never_cut_off_and_a_flood_cannot_keep_a_scraper_out() {
    let server = Server::start(&["--max-connections", "64", "--min-interval", "1s"]);
    let addr = server.addr;
    server.metrics();
    // 65 honest clients, one request per connection, 5,000 requests.
    let threads: Vec<_> = (0..65)
        .map(|_| {
            std::thread::spawn(move || {
                (0..77)
                    .filter(|_| {
                        !matches!(get(addr, "/metrics"), Ok(r) if r.status == 200 && r.body.contains("tcptab_up 1"))
                    })
                    .count()
            })
        })
        .collect();
    let failures: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(
        failures, 0,
        "of 5,005 requests by 65 clients at a cap of 64"
    );

    // 500 clients that connect, send one byte and come back at once when
    // closed; a scraper once a second for 25 s.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flood: Vec<_> = (0..500)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let Ok(mut s) = TcpStream::connect(addr) else {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    };
                    let _ = s.write_all(b"G");
                    // Until the server closes it: then straight back.
                    until_closed(&mut s, &stop);
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    let mut ok = 0;
    let mut failed = Vec::new();
    for _ in 0..25 {
        let t = Instant::now();
        match get(addr, "/metrics") {
            Ok(r) if r.status == 200 && r.body.contains("tcptab_up 1") => ok += 1,
            other => failed.push((t.elapsed(), other.map(|r| r.status))),
        }
        std::thread::sleep(Duration::from_secs(1).saturating_sub(t.elapsed()));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in flood {
        t.join().unwrap();
    }
    assert!(
        ok >= 24,
        "{ok} of 25 scrapes through a reconnect flood: {failed:?}"
    );
}

#[test]
fn option_values_that_make_no_sense_are_errors() {
    for (args, says) in [
        (&["--max-connections", "0"][..], "--max-connections"),
        (&["--max-series", "0"][..], "--max-series"),
        (&["--every-remote-port"][..], "--per-remote-port"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_tcptab"))
            .arg("serve")
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

/// Connect `n` clients inside `netns` to its port 80 and leave them:
/// with a backlog of 1 and no accept(), the listener overflows.
fn flood(netns: &testkit::NamedNetns, n: u32) {
    let code = format!(
        "import socket\n\
         held = []\n\
         for i in range({n}):\n\
         \x20   c = socket.socket(); c.setblocking(False)\n\
         \x20   try: c.connect(('127.0.0.1', 80))\n\
         \x20   except BlockingIOError: pass\n\
         \x20   held.append(c)\n\
         import time; time.sleep(2)\n"
    );
    let out = netns
        .command("python3")
        .args(["-c", &code])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

/// `nstat -az NAME` in `netns`: the kernel's absolute value.
fn nstat(netns: &testkit::NamedNetns, name: &str) -> u64 {
    let out = netns.command("nstat").args(["-az", name]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| {
            let mut words = l.split_whitespace();
            (words.next() == Some(name)).then(|| words.next()?.parse().ok())?
        })
        .unwrap_or_else(|| panic!("{name} in nstat's {text}"))
}

#[test]
fn each_namespace_s_kernel_counters_are_its_own() {
    testkit::needs_root!();
    let ([a, b], mut held) = listeners_in_two("tcptab-kc", [1, 1]);
    // Only a is flooded.
    flood(&a, 12);
    let server = Server::start(&["--all-netns", "--kernel-counters", "--connection-counters"]);
    // The listener's own count: polls that found its queue full (the
    // counters' first poll runs beside the first scrape).
    let full = |body: &str, ns: &str| {
        sample(
            body,
            &format!("tcptab_listen_queue_full_total{{netns=\"{ns}\",listener=\"0.0.0.0:80\"}}"),
        )
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let body = loop {
        let body = server.metrics();
        if full(&body, &a.name).is_some() || Instant::now() > deadline {
            break body;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        full(&body, &a.name) >= Some(1.0),
        "a's listener found full\n{body}"
    );
    assert_eq!(full(&body, &b.name), None, "b's listener never full");
    for child in &mut held {
        let _ = child.kill();
        let _ = child.wait();
    }
    let counter = |ns: &str, name: &str| {
        sample(
            &body,
            &format!("tcptab_kernel_tcp_total{{netns=\"{ns}\",counter=\"{name}\"}}"),
        )
    };
    let overflows_a = counter(&a.name, "TcpExtListenOverflows").expect("a's series");
    assert!(overflows_a >= 1.0, "the flood overflowed a's queue\n{body}");
    assert_eq!(overflows_a as u64, nstat(&a, "TcpExtListenOverflows"));
    assert_eq!(counter(&b.name, "TcpExtListenOverflows"), Some(0.0));
    assert_eq!(
        counter(&a.name, "TcpActiveOpens").map(|v| v as u64),
        Some(nstat(&a, "TcpActiveOpens"))
    );
    // Settings and gauges are not counters.
    assert!(!body.contains("counter=\"TcpCurrEstab\""));
    assert!(!body.contains("counter=\"TcpMaxConn\""));
    promtool_accepts(&body);
}

/// Read `s` until its server closes it (or `stop` is set).
fn until_closed(s: &mut TcpStream, stop: &std::sync::atomic::AtomicBool) {
    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    let mut buf = [0u8; 64];
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => break,
        }
    }
}
