//! The recorder, history and watch keep each connection's workload.

use super::*;

/// A connection made in a unit's cgroup and closed from its side: the
/// recorder keeps its workload on every row it writes, its TIME_WAIT
/// included (the kernel keeps no cgroup for a TIME_WAIT).
#[test]
fn history_keeps_each_connection_s_workload_through_time_wait() {
    let _beside = MACHINE.read().unwrap_or_else(|e| e.into_inner());
    let Some(mut layout) = layout("history") else { return };
    // The client: in its unit's cgroup, it listens, connects to itself,
    // holds the connection for six seconds (watch and the recorder see it
    // open in a poll, even on a loaded machine), closes first and says so.
    let cgroup = format!("{}/system.slice/client.service", layout.prefix);
    let dir = layout.mount.join(cgroup.trim_start_matches('/'));
    std::fs::create_dir_all(&dir).unwrap();
    let script = r#"
import socket, threading, time
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen()
def serve():
    s, _ = l.accept()
    while s.recv(100): pass
    s.close()
threading.Thread(target=serve, daemon=True).start()
c = socket.create_connection(l.getsockname())
print(c.getsockname()[1], l.getsockname()[1], flush=True)
time.sleep(6)
c.close()
print("closed", flush=True)
time.sleep(300)
"#;
    let db_dir = scratch("workload-history");
    let db = db_dir.join("h.db");
    let recorder = record(&db, &["--interval", "500ms", "--source", "netlink"]);
    let watch = Command::new(env!("CARGO_BIN_EXE_tcptab"))
        .args([
            "watch",
            "--format",
            "jsonl",
            "--workload",
            "--interval",
            "500ms",
        ])
        .args(["--duration", "14s", "--source", "netlink"])
        // Only the unit's connections: a busy machine's others would only
        // slow watch down (a filter on the workload, tested here).
        .arg("unit client.service")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    wait_polls(&db, 1);
    let mut child = Command::new("sh")
        .args([
            "-c",
            &format!(
                "echo $$ > {}/cgroup.procs && exec python3 -c '{script}'",
                dir.display()
            ),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ports = lines.next().unwrap().unwrap();
    let (client, server) = ports.split_once(' ').unwrap();
    assert_eq!(lines.next().unwrap().unwrap(), "closed");
    layout.children.push(child);
    // Two polls after the close: the TIME_WAIT has been seen.
    let polls: u64 = sql(&db, "SELECT count(*) FROM polls").parse().unwrap();
    wait_polls(&db, polls + 2);
    stop(recorder);

    the_file_and_history_keep_the_workload(&db, &cgroup, client, server);

    let _ = std::fs::remove_dir_all(&db_dir);

    watch_s_events_carry_the_workload(watch, client, server);
}

/// The file (through sqlite3) and `history` (its filter and summary): the
/// client's connection with its workload, from opening to TIME_WAIT.
fn the_file_and_history_keep_the_workload(db: &Path, cgroup: &str, client: &str, server: &str) {
    // The oracle: every row of the client's connection has the workload.
    let rows = sql(
        db,
        &format!(
            "SELECT c.state, coalesce(w.cgroup, '-'), coalesce(w.unit, '-') FROM connections c LEFT JOIN workloads w ON w.id = c.workload WHERE c.local_port = {client} AND c.remote_port = {server}"
        ),
    );
    assert_eq!(
        rows,
        format!("TIME_WAIT|{cgroup}|client.service"),
        "one connection, closed into TIME_WAIT, with its workload"
    );
    // history says the same, and filters by it.
    let (found, _) = history(
        db,
        &[
            "--between",
            "-1h",
            "now",
            &format!("sport = :{client} and dport = :{server}"),
        ],
    );
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        found[0]["workload"]["unit"], "client.service",
        "{}",
        found[0]
    );
    assert_eq!(found[0]["workload"]["cgroup"].as_str(), Some(cgroup));
    // (Other programs on the machine may use the same ports: the test
    // looks at its own ends only.)
    let mine = format!("unit client.service and ( sport = :{client} or sport = :{server} )");
    let (by_unit, _) = history(db, &["--between", "-1h", "now", &mine]);
    let mut ports: Vec<u64> = by_unit
        .iter()
        .map(|r| r["local_port"].as_u64().unwrap())
        .collect();
    ports.sort();
    let mut expected: Vec<u64> = vec![client.parse().unwrap(), server.parse().unwrap()];
    // The listener, the client's end and the server's accepted end.
    expected.push(server.parse().unwrap());
    expected.sort();
    assert_eq!(ports, expected, "{by_unit:?}");
    // The summary counts them under their workload.
    let out = tcptab(&[
        "history",
        "--db",
        db.to_str().unwrap(),
        "--between",
        "-1h",
        "now",
        "--summary",
        "--format",
        "json",
        &mine,
    ]);
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // All three are the unit's: its bytes are all the summary's.
    assert_eq!(
        summary["workloads"],
        serde_json::json!([{
            "workload": "client.service",
            "connections": 3,
            "bytes_sent": summary["bytes_sent"],
            "bytes_received": summary["bytes_received"],
        }]),
        "{summary}"
    );
}

/// watch's events of the client's connection, each with its workload.
fn watch_s_events_carry_the_workload(watch: std::process::Child, client: &str, server: &str) {
    // watch's events of the client's connection, from its opening (seen
    // by a poll: a destroy notification carries no cgroup) to its
    // TIME_WAIT, each with the connection's workload.
    let out = watch.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|e: &serde_json::Value| {
            e["local_port"].as_u64() == client.parse().ok()
                && e["remote_port"].as_u64() == server.parse().ok()
        })
        .collect();
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    assert!(kinds.contains(&"opened") && kinds.len() >= 2, "{events:?}");
    for e in &events {
        assert_eq!(e["workload"]["unit"], "client.service", "{e}");
        // Each event names its machine (as tests/host.rs checks it).
        assert_eq!(e["host"], events[0]["host"]);
        assert!(e["host"]["boot_id"].is_string(), "{e}");
    }
}
