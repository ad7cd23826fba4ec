//! The exporter's series and counters per workload, within their bound.

use super::*;

/// What `tcptab serve ARGS` serves at its first scrape.
fn scrape(args: &[&str]) -> String {
    common::server::Server::start(args).metrics()
}

#[test]
fn the_exporter_counts_per_workload_within_its_bound() {
    // The exporter counts every layout's containers of one name as one
    // series: it runs alone.
    let _alone = MACHINE.write().unwrap_or_else(|e| e.into_inner());
    let Some(layout) = layout("serve") else { return };
    let root = layout.root_arg();
    let body = scrape(&[
        "--per-workload",
        "--max-series",
        "1000",
        "--runtime-root",
        &root,
    ]);
    common::server::promtool_accepts(&body);
    // Each container of the layout is one series of its own, value 1.
    for e in layout.by_port.values().filter(|e| e.container_id.is_some()) {
        let series = format!("tcptab_workload_sockets{{{}}} 1", e.labels());
        assert!(body.lines().any(|l| l == series), "{series} in\n{body}");
    }
    // Bounded: the busiest three, the rest counted as dropped.
    let all = body
        .lines()
        .filter(|l| l.starts_with("tcptab_workload_sockets{"))
        .count();
    let body = scrape(&[
        "--per-workload",
        "--max-series",
        "3",
        "--runtime-root",
        &root,
    ]);
    let kept = body
        .lines()
        .filter(|l| l.starts_with("tcptab_workload_sockets{"))
        .count();
    assert_eq!(kept, 3);
    let dropped = format!("tcptab_series_dropped{{family=\"workload\"}} {}", all - 3);
    assert!(body.lines().any(|l| l == dropped), "{dropped} in\n{body}");
}

/// `serve --connection-counters --per-workload`: a connection accepted by
/// a container's listener is counted in that listener's group with the
/// container's workload (the kernel gives the accepted socket its
/// listener's cgroup).
#[test]
fn the_exporter_s_counters_carry_the_listener_s_workload() {
    let _beside = MACHINE.read().unwrap_or_else(|e| e.into_inner());
    let Some(layout) = layout("counters") else { return };
    let root = layout.root_arg();
    let server = common::server::Server::start(&[
        "--connection-counters",
        "--counters-interval",
        "200ms",
        "--per-workload",
        "--max-series",
        "100000",
        "--runtime-root",
        &root,
    ]);
    // The listeners are known from the counters' first poll on.
    std::thread::sleep(std::time::Duration::from_millis(800));
    let held: Vec<std::net::TcpStream> = layout
        .by_port
        .keys()
        .map(|port| std::net::TcpStream::connect(("127.0.0.1", *port)).unwrap())
        .collect();
    let series: Vec<String> = layout
        .by_port
        .iter()
        .filter(|(_, e)| e.container_id.is_some())
        .map(|(port, e)| {
            format!(
                "tcptab_connections_opened_total{{listener=\"127.0.0.1:{port}\",{}}} 1",
                e.labels()
            )
        })
        .collect();
    assert!(!series.is_empty());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let body = server.metrics();
        let missing: Vec<&String> = series
            .iter()
            .filter(|s| !body.lines().any(|l| l == s.as_str()))
            .collect();
        if missing.is_empty() {
            common::server::promtool_accepts(&body);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{missing:#?} not in\n{body}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    drop(held);
}
