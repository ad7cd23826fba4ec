//! `watch` (and ss's `-E`) on real connections: opens, changes, closes
//! and connections of milliseconds, `--count`, lost notifications, and
//! each connection closed once.

use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::Duration;

use serde_json::Value;

use crate::common;

/// The driver scenario, and `tcptab LINE` (the driver's pid for `{pid}`)
/// with its watch events read as they come, each checked against the
/// published schema.
fn driven(line: &str) -> (testkit::Scenario, Child, Receiver<Value>) {
    let driver = testkit::Scenario::start("driver.py");
    let line = line.replace("{pid}", &driver.pid().to_string());
    let (watch, rx) = common::jsonl_line(&line, Some("watch-event"));
    (driver, watch, rx)
}

/// Read events into `seen` until one matching `want` has been printed.
fn wait_for(
    rx: &Receiver<Value>,
    seen: &mut Vec<Value>,
    what: &str,
    want: &dyn Fn(&Value) -> bool,
) {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !seen.iter().any(want) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(event) => seen.push(event),
            Err(_) => panic!("no {what} event; got {seen:#?}"),
        }
    }
}

#[test]
fn watch_reports_opens_changes_closes_and_short_connections() {
    testkit::needs_root!();
    // Events as they come (each line is flushed when it happens), each
    // checked against the published schema, with no key twice.
    let (mut driver, mut watch, rx) =
        driven("watch --netns-pid {pid} --format jsonl --interval 1s --duration 60s");
    let mut seen: Vec<Value> = Vec::new();
    let mut wait_for =
        |what: &str, want: &dyn Fn(&Value) -> bool| wait_for(&rx, &mut seen, what, want);
    // The first look is the baseline; one more interval makes sure of it.
    std::thread::sleep(Duration::from_millis(1500));
    let a: u64 = driver.command("open a")[3..].parse().unwrap();
    wait_for("opened", &|e| {
        e["event"] == "opened" && e["local_port"] == a && e["state"] == "ESTABLISHED"
    });
    driver.command("shutdown a");
    wait_for("state_changed (client)", &|e| {
        e["event"] == "state_changed"
            && e["local_port"] == a
            && e["old_state"] == "ESTABLISHED"
            && e["state"] == "FIN_WAIT2"
    });
    wait_for("state_changed (server)", &|e| {
        e["event"] == "state_changed" && e["remote_port"] == a && e["state"] == "CLOSE_WAIT"
    });
    driver.command("close a");
    wait_for("closed (server)", &|e| {
        e["event"] == "closed" && e["remote_port"] == a
    });
    wait_for("TIME_WAIT (client)", &|e| {
        e["event"] == "state_changed" && e["local_port"] == a && e["state"] == "TIME_WAIT"
    });
    // Opened and closed well within one interval: only the kernel's destroy
    // notification can tell.
    let flash: u64 = driver.command("flash")[3..].parse().unwrap();
    wait_for("closed (short connection)", &|e| {
        e["event"] == "closed" && e["local_port"] == flash && e["seen_open"] == false
    });
    let _ = watch.kill();
    let _ = watch.wait();
    for e in &seen {
        assert!(e["time"].as_str().unwrap().ends_with('Z'), "{e}");
    }
    let short = seen.iter().find(|e| e["local_port"] == flash).unwrap();
    assert!(
        short["tcp_info"]["bytes_acked"].as_u64().is_some(),
        "final counters from the kernel: {short}"
    );
    // Every event carries the socket record's keys, once each (serde_json
    // keeps the last of a repeated key, so count them in the raw text).
    for e in &seen {
        assert_eq!(e["schema_version"], 1, "{e}");
        for key in [
            "family",
            "state",
            "local_address",
            "timer_ms",
            "source",
            "tcp_info",
        ] {
            assert!(e.get(key).is_some(), "{key} in {e}");
        }
    }
}

#[test]
fn watch_stops_after_count_events() {
    let Some(mut driver) = testkit::live("driver.py") else { return };
    let pid = driver.pid().to_string();
    let watch = Command::new(env!("CARGO_BIN_EXE_tcptab"))
        .args([
            "watch",
            "--netns-pid",
            &pid,
            "--interval",
            "200ms",
            "--count",
            "2",
            "--duration",
            "30s",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    driver.command("open b");
    let out = watch.wait_with_output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.lines().all(|l| l.contains(" opened ")), "{text}");
}

#[test]
fn watch_survives_lost_notifications_and_closes_each_connection_once() {
    testkit::needs_root!();
    // A receive buffer of a few notifications: a burst overflows it.
    // Read as it comes: a reader that stops reading is another way to
    // lose notifications (watch blocks on the full pipe meanwhile).
    let (mut driver, watch, rx) = driven(
        "watch --netns-pid {pid} --format jsonl --interval 1 --duration 8 --notify-buffer 1",
    );
    std::thread::sleep(Duration::from_millis(1500));
    driver.command("burst 300");
    std::thread::sleep(Duration::from_millis(2000));
    // Still watching: later short connections are reported (three, apart:
    // with a buffer this small, one notification may still meet a full
    // buffer and be lost too).
    let flashes: Vec<u64> = (0..3)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(300));
            driver.command("flash")[3..].parse().unwrap()
        })
        .collect();
    let out = watch.wait_with_output().unwrap();
    testkit::assert_success!(out, "watch died");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.matches("the kernel dropped destroy notifications")
            .count(),
        1,
        "{err}"
    );
    let events: Vec<Value> = rx.iter().collect();
    assert!(events.iter().any(|e| e["event"] == "lost"), "a lost event");
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "closed" && flashes.iter().any(|&f| e["local_port"] == f)),
        "the flashes after the burst: {flashes:?}"
    );
    // One closed event per connection (a client port), never two: its
    // TIME_WAIT expiring later is not a second close. A flash may take
    // the ends of one of the burst's TIME_WAITs (the kernel gives a
    // TIME_WAIT's ends to a new connection after a second on loopback):
    // that is a second connection on those ends, with its own close.
    let mut closed = std::collections::BTreeMap::<(String, u64, u64), u32>::new();
    for e in events.iter().filter(|e| e["event"] == "closed") {
        let key = (
            e["local_address"].as_str().unwrap().to_string(),
            e["local_port"].as_u64().unwrap(),
            e["remote_port"].as_u64().unwrap(),
        );
        *closed.entry(key).or_default() += 1;
    }
    let connections = |port: u64| 1 + flashes.iter().filter(|&&f| f == port).count() as u32;
    let twice: Vec<_> = closed
        .iter()
        .filter(|((_, port, _), n)| **n > connections(*port))
        .collect();
    let told: Vec<&Value> = events
        .iter()
        .filter(|e| {
            twice
                .iter()
                .any(|((_, port, _), _)| e["local_port"] == *port)
        })
        .collect();
    assert!(
        twice.is_empty(),
        "closed twice: {twice:?} (the flashes' ports: {flashes:?}); their events: {told:#?}"
    );
}

#[test]
fn ss_dash_e_reports_only_what_closes() {
    testkit::needs_root!();
    // `tcptab -E` as ss users type it: watch, closed events only.
    let (mut driver, mut watch, rx) =
        driven("-E --netns-pid {pid} --format jsonl --interval 200ms --count 1");
    std::thread::sleep(Duration::from_millis(700));
    // Opened, changed and closed: only the close is printed (the server's
    // end; the client's goes to TIME_WAIT, a change of state).
    driver.command("open a");
    std::thread::sleep(Duration::from_millis(500));
    driver.command("shutdown a");
    std::thread::sleep(Duration::from_millis(500));
    driver.command("close a");
    let started = std::time::Instant::now();
    while watch.try_wait().unwrap().is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "tcptab -E did not end"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let events: Vec<Value> = rx.iter().collect();
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0]["event"], "closed", "{events:#?}");
}

#[test]
fn a_connection_on_a_time_wait_s_ends_is_a_new_connection() {
    testkit::needs_root!();
    // A TIME_WAIT made before watch began: the first look finds it, with
    // no notification of its socket to come.
    let mut driver = testkit::Scenario::start("driver.py");
    let port: u64 = driver.command("flash")[3..].parse().unwrap();
    let line = format!(
        "watch --netns-pid {} --format jsonl --interval 2s --duration 30s",
        driver.pid()
    );
    let (mut watch, rx) = common::jsonl_line(&line, Some("watch-event"));
    // The first look is the baseline (the next is 2 s after it).
    std::thread::sleep(Duration::from_millis(1500));
    // A connection on its ends (the kernel ends the TIME_WAIT), opened
    // and closed before the next look: its notification is all there is
    // of it, and it is not the TIME_WAIT's socket.
    let again: u64 = driver.command(&format!("flash {port}"))[3..]
        .parse()
        .unwrap();
    assert_eq!(again, port, "the driver took the TIME_WAIT's ends");
    let mut seen: Vec<Value> = Vec::new();
    wait_for(&rx, &mut seen, "closed (the new client end)", &|e| {
        e["event"] == "closed" && e["local_port"] == port && e["seen_open"] == false
    });
    // The rest of what watch tells by its next look.
    std::thread::sleep(Duration::from_millis(2500));
    let _ = watch.kill();
    let _ = watch.wait();
    seen.extend(rx.try_iter());
    let of = |event: &str, end: &str| -> Vec<&Value> {
        seen.iter()
            .filter(|e| e["event"] == event && e[end] == port && e["state"] != "TIME_WAIT")
            .collect()
    };
    // The new connection: each end opened once and closed once, as one
    // no look saw. The TIME_WAIT before it closed once, as one a look saw.
    for end in ["local_port", "remote_port"] {
        assert_eq!(of("opened", end).len(), 1, "{end} {port}: {seen:#?}");
    }
    let of_port = |event: &str| {
        let on_port = |e: &&Value| e["event"] == event && e["local_port"] == port;
        seen.iter().filter(on_port).count()
    };
    let closed = |seen_open: bool, state: &str| {
        seen.iter()
            .filter(|e| e["event"] == "closed" && e["local_port"] == port)
            .filter(|e| e["seen_open"] == seen_open && e["state"] == state)
            .count()
    };
    assert_eq!(
        (
            closed(false, "CLOSE"),
            closed(true, "TIME_WAIT"),
            of_port("closed")
        ),
        (1, 1, 2),
        "{seen:#?}"
    );
    assert_eq!(of("closed", "remote_port").len(), 1, "{seen:#?}");
}

#[test]
fn a_socket_that_never_connects_is_no_connection() {
    testkit::needs_root!();
    let (mut driver, mut watch, rx) =
        driven("watch --netns-pid {pid} --format jsonl --interval 1s --duration 30s");
    std::thread::sleep(Duration::from_millis(1500));
    // Their ends are reported by the kernel too (no remote address).
    let answer = driver.command("unconnected");
    let ports: Vec<u64> = answer[3..]
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    let (bound, held) = (ports[0], ports[1]);
    // A connection after them: once it is told, they would have been.
    let flash: u64 = driver.command("flash")[3..].parse().unwrap();
    let mut seen: Vec<Value> = Vec::new();
    wait_for(&rx, &mut seen, "closed (the flash)", &|e| {
        e["event"] == "closed" && e["local_port"] == flash
    });
    std::thread::sleep(Duration::from_millis(1500));
    let _ = watch.kill();
    let _ = watch.wait();
    seen.extend(rx.try_iter());
    // Those that never had a peer, and those whose connect() failed (the
    // kernel cleared their remote port): none. The connection held while
    // one of them failed is told.
    let unconnected: Vec<&Value> = seen
        .iter()
        .filter(|e| e["remote_port"] == 0 || e["local_port"] == bound)
        .collect();
    let told = |event: &str| {
        seen.iter()
            .any(|e| e["event"] == event && e["local_port"] == held && e["remote_port"] != 0)
    };
    assert!(told("opened") && told("closed"), "{seen:#?}");
    assert!(unconnected.is_empty(), "{unconnected:#?}");
}
