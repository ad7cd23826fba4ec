//! `summary`, `explain` and `watch` on real sockets in fresh namespaces and
//! on the spec's test vectors; `watch` in watch.rs.

use std::collections::BTreeMap;
use std::process::Command;

use common::{json, json_line, tcptab};
use serde_json::Value;
use testkit::Scenario;

#[path = "../common/mod.rs"]
mod common;
mod watch;

#[test]
fn summary_counts_every_state_including_zeros() {
    let Some(scenario) = testkit::live("sockets.py") else { return };
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
        assert_eq!(report["schema_version"], 1);
        let object = report["states"].as_object().unwrap();
        // Every state, in the kernel's order.
        let order: Vec<&str> = object.keys().map(String::as_str).collect();
        let kernel: Vec<String> = tcptab::State::LISTED
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(order, kernel, "{source}");
        let states: BTreeMap<String, u64> = object
            .iter()
            .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
            .collect();
        assert_eq!(states, expected, "{source}");
        assert_eq!(report["states"]["LISTEN"], expected["LISTEN"], "{source}");
        assert!(states.values().any(|&n| n == 0), "zero rows are present");
        assert_eq!(report["total"], scenario.manifest.sockets.len());
        // Accept queues: with netlink the limit is known.
        let queued = common::items(&report["listeners"])
            .find(|l| l["queued"] == 2)
            .unwrap();
        if source == "netlink" {
            assert_eq!(queued["limit"], 8);
        } else {
            assert!(queued["limit"].is_null());
        }
        // Listeners are addressed as list addresses them.
        let listening: Vec<&testkit::Expected> = scenario
            .manifest
            .sockets
            .iter()
            .filter(|e| e.state == "LISTEN")
            .collect();
        let listeners = report["listeners"].as_array().unwrap();
        assert_eq!(listeners.len(), listening.len(), "{source}");
        for e in &listening {
            assert!(
                listeners.iter().any(|l| {
                    l["local_address"] == e.local.ip().to_string()
                        && l["local_port"] == e.local.port()
                }),
                "{source}: {} in {listeners:?}",
                e.local
            );
        }
        // The busiest local ports and remote hosts: objects, busiest first.
        let ports = report["busiest_local_ports"].as_array().unwrap();
        assert!(!ports.is_empty());
        let counts: Vec<u64> = ports
            .iter()
            .map(|p| p["sockets"].as_u64().unwrap())
            .collect();
        assert!(counts.windows(2).all(|w| w[0] >= w[1]), "{ports:?}");
        // Against the listing of the same namespace (itself checked
        // against ss elsewhere).
        let listed = json(&["list", "--netns-pid", &pid, "--source", source, "--json"]);
        for p in ports {
            let port = p["local_port"].as_u64().unwrap();
            let n = common::items(&listed)
                .filter(|r| r["state"] != "LISTEN" && r["local_port"] == port)
                .count() as u64;
            assert_eq!(p["sockets"], n, "{source}: port {port}");
        }
        assert!(report["busiest_remote_hosts"][0]["remote_address"].is_string());
        // TIME_WAIT mini-sockets, the FIN_WAIT2 substate included.
        let minis = scenario
            .manifest
            .sockets
            .iter()
            .filter(|e| e.kind.as_deref() == Some("time_wait"))
            .count() as u64;
        assert_eq!(report["time_wait"], minis, "{source}");
    }
    let report = json_line(&format!("summary --netns-pid {pid} -p --json"));
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
    let total = scenario.manifest.sockets.len();
    assert!(text.starts_with(&format!("{total} sockets: ")), "{text}");
}

/// The table's count reads as a sentence: "0 sockets", "1 socket".
#[test]
fn summary_counts_one_socket_in_the_singular() {
    testkit::needs_root!();
    let ns = testkit::NamedNetns::add("tcptab-one");
    let first_line = || {
        let out = tcptab(&["summary", "-N", &ns.name]);
        testkit::assert_success!(out);
        let text = String::from_utf8(out.stdout).unwrap();
        text.lines().next().unwrap_or_default().to_string()
    };
    assert_eq!(first_line(), "0 sockets: 0 IPv4, 0 IPv6 (source: netlink)");
    let listen = "import socket, time\n\
        s = socket.socket()\n\
        s.bind(('127.0.0.1', 0))\n\
        s.listen()\n\
        print('ready', flush=True)\n\
        time.sleep(60)";
    let (mut child, ready) = testkit::spawn_until_line(ns.command("python3").args(["-c", listen]));
    assert_eq!(ready, "ready");
    let line = first_line();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(line, "1 socket: 1 IPv4, 0 IPv6 (source: netlink)");
}

#[test]
fn diagnose_finds_what_the_test_broke_and_nothing_in_a_quiet_namespace() {
    let Some(trouble) = testkit::live("trouble.py") else { return };
    let pid = trouble.pid().to_string();
    // Exit status for scripts: 1 with a critical finding (the full accept
    // queue) by default, and with a warning under --fail-on warning; 0
    // with --fail-on never.
    let out = tcptab(&["explain", "--diagnose", "--netns-pid", &pid]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("of severity critical or worse"));
    let report = json_line(&format!(
        "explain --diagnose -p --netns-pid {pid} --json --fail-on never"
    ));
    assert_eq!(report["schema_version"], 1);
    let findings = report["findings"].clone();
    let kinds: Vec<&str> = common::items(&findings)
        .map(|f| f["kind"].as_str().unwrap())
        .collect();
    for kind in ["close_wait", "accept_queue", "zero_window"] {
        assert!(kinds.contains(&kind), "{kind} in {findings}");
    }
    the_close_wait_pile_up_with_its_holder_and_kill_command(&findings, &trouble);

    the_full_queue_and_the_zero_window_client(&findings, &trouble);

    // A threshold is an option: 13 CLOSE_WAIT are not a pile-up of 12.
    let findings = json_line(&format!(
        "explain --diagnose --netns-pid {pid} --close-wait 13 --json --fail-on never"
    ));
    assert!(findings["findings"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f["kind"] != "close_wait"));

    a_quiet_namespace_has_no_finding();
}

/// The finding of `kind` in a report's findings.
fn finding<'a>(findings: &'a serde_json::Value, kind: &str) -> &'a serde_json::Value {
    let found = common::items(findings).find(|f| f["kind"] == kind);
    found.unwrap_or_else(|| panic!("no {kind} in {findings}"))
}

/// The CLOSE_WAIT pile-up: its holder, its evidence, and the kill command
/// whose dry run lists exactly those sockets.
fn the_close_wait_pile_up_with_its_holder_and_kill_command(
    findings: &serde_json::Value,
    trouble: &Scenario,
) {
    let pid = trouble.pid().to_string();
    let cw = finding(findings, "close_wait");
    assert_eq!(cw["count"], 12);
    assert_eq!(cw["severity"], "warning");
    assert!(
        cw["summary"]
            .as_str()
            .unwrap()
            .contains(&format!("python3 (pid {pid})")),
        "{cw}"
    );
    // The holder as data, and the sockets as list's records.
    assert_eq!(
        cw["evidence"]["processes"],
        serde_json::json!([{"pid": trouble.pid(), "command": "python3"}]),
        "{cw}"
    );
    // The exact kill command that clears them: its dry run lists exactly
    // the twelve.
    let command = format!("tcptab kill --netns-pid {pid} --state close-wait --pid {pid}");
    assert_eq!(cw["kill_command"], command.as_str(), "{cw}");
    let words: Vec<&str> = command.split(' ').skip(1).collect();
    let dry = json(&[&words[..], &["--json"]].concat());
    assert_eq!(dry.as_array().unwrap().len(), 12, "{dry}");
    assert!(dry
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["state"] == "CLOSE_WAIT" && r["result"] == "would_destroy"));
    let evidence = cw["evidence"]["sockets"].as_array().unwrap();
    assert_eq!(evidence.len(), 5);
    for s in evidence {
        assert_eq!(s["state"], "CLOSE_WAIT", "{s}");
        assert_eq!(s["owner_status"], "owned", "{s}");
        assert_eq!(s["owners"][0]["pid"], trouble.pid(), "{s}");
    }
}

/// The full accept queue, and the zero-window client named exactly.
fn the_full_queue_and_the_zero_window_client(findings: &serde_json::Value, trouble: &Scenario) {
    let aq = finding(findings, "accept_queue");
    assert_eq!(aq["severity"], "critical");
    assert!(aq["summary"]
        .as_str()
        .unwrap()
        .contains(&trouble.manifest.names["full_listener"]));
    let zw = finding(findings, "zero_window");
    assert!(zw["details"][0]
        .as_str()
        .unwrap()
        .starts_with(&trouble.manifest.names["zero_window_client"]));
    // The zero-window client, named exactly; its dry run lists it alone.
    let command = zw["kill_command"]
        .as_str()
        .unwrap_or_else(|| panic!("{zw}"));
    let words: Vec<&str> = command.split(' ').skip(1).collect();
    let dry = json(&[&words[..], &["--json"]].concat());
    let dry = dry.as_array().unwrap();
    assert_eq!(dry.len(), 1, "{command}: {dry:?}");
    assert_eq!(dry[0]["timer"], "zero_window_probe", "{command}: {dry:?}");
    let probing = &zw["evidence"]["sockets"][0];
    assert_eq!(probing["timer"], "zero_window_probe", "{zw}");
    let client: std::net::SocketAddr = trouble.manifest.names["zero_window_client"]
        .parse()
        .unwrap();
    assert_eq!(probing["local_port"], client.port(), "{zw}");
    let listener = &aq["evidence"]["sockets"][0];
    assert_eq!(listener["state"], "LISTEN", "{aq}");
    assert!(
        listener["rx_queue"].as_u64().unwrap() >= listener["backlog_limit"].as_u64().unwrap(),
        "{aq}"
    );
}

/// A quiet namespace: no finding, exit 0.
fn a_quiet_namespace_has_no_finding() {
    let quiet = Scenario::start("quiet.py");
    let pid = quiet.pid().to_string();
    let report = json_line(&format!(
        "explain --diagnose -p --netns-pid {pid} --json --fail-on warning"
    ));
    assert_eq!(
        report["findings"],
        Value::Array(vec![]),
        "a quiet namespace has no findings"
    );
    assert_eq!(report["sockets_examined"], 3);
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
        testkit::assert_success!(out, "{name}");
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
        // A leading '-' in a value is the value's, never a flag.
        (
            &["top", "--interval", "-1s"],
            "'-1s': a duration cannot be negative",
        ),
        (
            &["record", "--db", "/nonexistent/h.db", "--retention", "-7d"],
            "'-7d': a duration cannot be negative",
        ),
        (
            &["summary", "--netns-pid", "-3"],
            "'-3' is not a process id",
        ),
        (
            &["watch", "--interval", "1ns"],
            "'1ns' is too short: at least 10ms",
        ),
        (
            &["watch", "--interval", "9223372036854775807s"],
            "is too long: at most 1 days",
        ),
        (
            &["watch", "--duration", "300000000000years"],
            "is too long: at most 365 days",
        ),
        (
            &["serve", "--read-timeout", "300000000000years"],
            "is too long: at most 1m",
        ),
        (
            &["serve", "--min-interval", "nan"],
            "'nan' is not a duration",
        ),
        (
            &["list", "--netns", "../../proc/self/ns/net"],
            "not a namespace name",
        ),
        (&["list", "--netns", ""], "not a namespace name"),
        (
            &["explain", "--diagnose", "--accept-queue", "2"],
            "--accept-queue takes a fraction",
        ),
        (
            &["summary", "--frobnicate"],
            "unexpected argument '--frobnicate'",
        ),
    ];
    // Bare numbers are seconds, as the shell's sleep takes them.
    for (interval, duration) in [("1", "1"), ("0.5", "0.7"), ("250ms", "0.3s")] {
        let out = tcptab(&[
            "watch",
            "--interval",
            interval,
            "--duration",
            duration,
            "--source",
            "proc",
        ]);
        assert!(out.status.success(), "--interval {interval}: {out:?}");
    }
    for (args, expected) in cases {
        let out = tcptab(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains(expected), "{args:?}: {err}");
        if err.starts_with("error: line") || args[0] == "list" || args[0] == "explain" {
            assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        }
    }
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
