//! `summary`, `explain` and `watch` on real sockets in fresh namespaces and
//! on the spec's test vectors.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{json, tcptab};
use serde_json::Value;
use testkit::{require_root, Scenario};

mod common;

#[test]
fn summary_counts_every_state_including_zeros() {
    if !require_root("summary_counts_every_state_including_zeros") {
        return;
    }
    let scenario = Scenario::start("sockets.py");
    let pid = scenario.pid().to_string();
    let mut expected: BTreeMap<String, u64> = tcptab::State::LISTED
        .iter()
        .map(|s| (s.to_string(), 0))
        .collect();
    for e in &scenario.manifest.sockets {
        *expected.get_mut(&e.state).unwrap() += 1;
    }
    for source in ["netlink", "proc"] {
        let report = json(&["summary", "--netns-pid", &pid, "--source", source, "--json"]);
        let states: BTreeMap<String, u64> = report["states"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p[0].as_str().unwrap().to_string(), p[1].as_u64().unwrap()))
            .collect();
        assert_eq!(states, expected, "{source}");
        assert!(states.values().any(|&n| n == 0), "zero rows are present");
        assert_eq!(report["total"], scenario.manifest.sockets.len());
        // Accept queues: with netlink the limit is known.
        let queued = report["listeners"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["queued"] == 2)
            .unwrap();
        if source == "netlink" {
            assert_eq!(queued["limit"], 8);
        } else {
            assert!(queued["limit"].is_null());
        }
    }
    let report = json(&["summary", "--netns-pid", &pid, "-p", "--json"]);
    assert!(report["processes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["command"] == "python3"));
    let table = tcptab(&["summary", "--netns-pid", &pid]);
    let text = String::from_utf8(table.stdout).unwrap();
    assert!(
        text.contains("CLOSING") && text.contains("TIME_WAIT"),
        "{text}"
    );
}

#[test]
fn diagnose_finds_what_the_test_broke_and_nothing_in_a_quiet_namespace() {
    if !require_root("diagnose_finds_what_the_test_broke_and_nothing_in_a_quiet_namespace") {
        return;
    }
    let trouble = Scenario::start("trouble.py");
    let pid = trouble.pid().to_string();
    let findings = json(&["explain", "--diagnose", "-p", "--netns-pid", &pid, "--json"]);
    let kinds: Vec<&str> = findings
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap())
        .collect();
    for kind in ["close_wait", "accept_queue", "zero_window"] {
        assert!(kinds.contains(&kind), "{kind} in {findings}");
    }
    let cw = findings
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "close_wait")
        .unwrap();
    assert_eq!(cw["sockets"], 12);
    assert!(
        cw["summary"]
            .as_str()
            .unwrap()
            .contains(&format!("python3 (pid {pid})")),
        "{cw}"
    );
    let aq = findings
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "accept_queue")
        .unwrap();
    assert_eq!(aq["severity"], "critical");
    assert!(aq["summary"]
        .as_str()
        .unwrap()
        .contains(&trouble.manifest.names["full_listener"]));
    let zw = findings
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "zero_window")
        .unwrap();
    assert!(zw["evidence"][0]
        .as_str()
        .unwrap()
        .starts_with(&trouble.manifest.names["zero_window_client"]));
    // A threshold is an option: 13 CLOSE_WAIT are not a pile-up of 12.
    let findings = json(&[
        "explain",
        "--diagnose",
        "--netns-pid",
        &pid,
        "--close-wait",
        "13",
        "--json",
    ]);
    assert!(findings
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f["kind"] != "close_wait"));

    let quiet = Scenario::start("quiet.py");
    let pid = quiet.pid().to_string();
    let findings = json(&["explain", "--diagnose", "-p", "--netns-pid", &pid, "--json"]);
    assert_eq!(
        findings,
        Value::Array(vec![]),
        "a quiet namespace has no findings"
    );
    let out = tcptab(&["explain", "--diagnose", "--netns-pid", &pid]);
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "No findings in 3 sockets.\n"
    );
}

#[test]
fn explain_every_spec_vector() {
    let root = testkit::repo_root().join("testdata/spec-vectors");
    for (name, file, order) in [
        ("tcp", root.join("net/tcp"), "native"),
        ("tcp6", root.join("net/tcp6"), "native"),
        ("legacy", root.join("legacy.txt"), "native"),
        ("big_endian_tcp", root.join("big-endian/net/tcp"), "big"),
        ("big_endian_tcp6", root.join("big-endian/net/tcp6"), "big"),
    ] {
        let text = std::fs::read_to_string(&file).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_tcptab"))
            .args(["explain", "--byte-order", order])
            .stdin(std::fs::File::open(&file).unwrap())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let explained = String::from_utf8(out.stdout).unwrap();
        let lines = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("sl"))
            .count();
        assert_eq!(
            explained.matches(" full socket (17 fields)").count()
                + explained.matches("(12 fields)").count(),
            lines,
            "{name}"
        );
        let trimmed: String = explained
            .lines()
            .map(|l| l.trim_end().to_string() + "\n")
            .collect();
        insta::assert_snapshot!(format!("explain_{name}"), trimmed);
    }
}

#[test]
fn bad_input_for_explain_and_watch() {
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "explain",
                "   0: 0100007F:0016 00000000:0000 0Z 00000000:00000000",
            ],
            "error: line 1: field 'st' at column 35: not hexadecimal: \"0Z\"",
        ),
        (&["explain", "   0: 0100007F:0016"], "field 'rem_address'"),
        (&["watch", "--interval", "fast"], "'fast' is not a duration"),
        (&["watch", "--interval", "0s"], "more than zero"),
        (
            &["explain", "--diagnose", "--accept-queue", "2"],
            "--accept-queue takes a fraction",
        ),
        (
            &["summary", "--frobnicate"],
            "unexpected argument '--frobnicate'",
        ),
    ];
    for (args, expected) in cases {
        let out = tcptab(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains(expected), "{args:?}: {err}");
        if err.starts_with("error: line") || args[0] != "summary" && !args.contains(&"--interval") {
            assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        }
    }
}

#[test]
fn watch_reports_opens_changes_closes_and_short_connections() {
    if !require_root("watch_reports_opens_changes_closes_and_short_connections") {
        return;
    }
    let mut driver = Scenario::start("driver.py");
    let pid = driver.pid().to_string();
    let mut watch = Command::new(env!("CARGO_BIN_EXE_tcptab"))
        .args([
            "watch",
            "--netns-pid",
            &pid,
            "--format",
            "jsonl",
            "--interval",
            "1s",
            "--duration",
            "60s",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Events as they come (each line is flushed when it happens).
    let (tx, rx) = std::sync::mpsc::channel::<Value>();
    let stdout = watch.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(serde_json::from_str(&line).unwrap()).is_err() {
                break;
            }
        }
    });
    let mut seen: Vec<Value> = Vec::new();
    // Wait until an event matching `want` has been printed.
    let mut wait_for = |what: &str, want: &dyn Fn(&Value) -> bool| {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while !seen.iter().any(want) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(event) => seen.push(event),
                Err(_) => panic!("no {what} event; got {seen:#?}"),
            }
        }
    };
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
        short["bytes_acked"].as_u64().is_some(),
        "final counters from the kernel: {short}"
    );
}

#[test]
fn watch_stops_after_count_events() {
    if !require_root("watch_stops_after_count_events") {
        return;
    }
    let mut driver = Scenario::start("driver.py");
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
fn explain_survives_hostile_input() {
    for line in ["\u{e9}\u{e9}\u{e9}", "   0: 0100007F:00\u{e9}16 00000000:0000", "   0\u{2028}:", "\u{1}\u{2}\u{7f}", "   0: 0100007F:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 00000000000000\u{e9}0 1 2 3 4 5"] {
        let out = tcptab(&["explain", line]);
        assert_eq!(out.status.code(), Some(2), "{line:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with("error: line 1: field") && err.lines().count() == 1, "{line:?}: {err}");
    }
}
