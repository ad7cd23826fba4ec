//! `tcptab record` and `tcptab history` on real connections in fresh
//! namespaces: a connection of four seconds found with its owner in the
//! middle of its life and absent before and after, one of milliseconds
//! found with its final byte counts, a recorder killed with SIGKILL, the
//! retention window, namespaces that come and go, an unprivileged
//! recorder, and bad input. `sqlite3` is the oracle for the file.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::recorder::{at, history, record, scratch, sql, stop, wait_polls};
use serde_json::Value;
use tcptab::time::now_ms;
use testkit::{require_root, NamedNetns, Scenario};

/// The rows of one connection's two ends (client port `port`).
fn ends(rows: &[Value], port: u64) -> Vec<&Value> {
    rows.iter()
        .filter(|r| r["local_port"] == port || r["remote_port"] == port)
        .collect()
}

/// A byte count of `n` bytes of data: tcp_info counts the SYN (and a FIN)
/// as a byte each.
fn bytes(v: &Value, n: u64) -> bool {
    (n..=n + 2).contains(&v.as_u64().unwrap())
}

/// What the lifetimes scenario did, and when (ms since the Unix epoch).
#[derive(Debug, Clone, Copy)]
struct Moments {
    pid: u32,
    /// The long connection's client port, and the flash's.
    a: u64,
    f: u64,
    opened: i64,
    opened_after: i64,
    closing: i64,
    closed: i64,
    flashed: i64,
}

#[test]
fn lifetimes_owners_and_final_counts() {
    let Some(mut scenario) = testkit::live("lifetimes.py") else { return };
    let pid = scenario.pid();
    let dir = scratch("lifetimes");
    let db = dir.join("h.db");
    let recorder = record(&db, &["--netns-pid", &pid.to_string(), "--interval", "0.5"]);
    wait_polls(&db, 2);

    let opened = now_ms();
    let a: u64 = scenario.command("open a")[3..].parse().unwrap();
    let opened_after = now_ms();
    std::thread::sleep(Duration::from_secs(4));
    let closing = now_ms();
    scenario.command("close a");
    let closed = now_ms();
    let flash = scenario.command("flash");
    let flashed = now_ms();
    let mut words = flash.split_whitespace().skip(1);
    let f: u64 = words.next().unwrap().parse().unwrap();
    let lived: f64 = words.next().unwrap().parse().unwrap();
    assert!(lived < 200.0, "the flash lived {lived} ms");
    std::thread::sleep(Duration::from_millis(1500));
    stop(recorder);
    let m = Moments {
        pid,
        a,
        f,
        opened,
        opened_after,
        closing,
        closed,
        flashed,
    };

    let mid = in_the_middle_of_its_life(&db, &m);

    the_flash_from_its_notifications(&db, &m);

    the_summary_in_the_middle(&db, &m);

    every_format_the_same_and_readable_by_another_user(&db, &m);

    sqlite3_agrees_and_the_docs_queries_run(&db, &m, &mid);
}

/// The connection at a moment of its life, through every filter, and
/// before and after it: its records at that moment.
fn in_the_middle_of_its_life(db: &Path, m: &Moments) -> Vec<Value> {
    let &Moments {
        a,
        opened,
        opened_after,
        closing,
        closed,
        pid,
        ..
    } = m;
    // In the middle of its life: both ends, established, with their owner.
    let (mid, _) = history(db, &["--at", &at(opened_after + 2000)]);
    let both = ends(&mid, a);
    assert_eq!(both.len(), 2, "{mid:#?}");
    for end in &both {
        assert_eq!(end["state"], "ESTABLISHED", "{end}");
        assert_eq!(end["owner_status"], "owned", "{end}");
        let owners = end["owners"].as_array().unwrap();
        assert!(
            owners
                .iter()
                .any(|o| o["pid"] == pid && o["command"] == "python3"),
            "{end}"
        );
        assert_eq!(end["closed_by"], "destroy", "{end}");
        assert_eq!(end["source"], "netlink");
        assert!(end["cookie"].as_u64().unwrap() > 0);
        let closed_at = tcptab::time::parse_rfc3339(end["closed_at"].as_str().unwrap()).unwrap();
        assert!((closing..closed + 1000).contains(&closed_at), "{end}");
        let first = tcptab::time::parse_rfc3339(end["first_seen"].as_str().unwrap()).unwrap();
        assert!((opened..opened_after + 1000).contains(&first), "{end}");
    }
    let server = both.iter().find(|r| r["remote_port"] == a).unwrap();
    assert!(bytes(&server["bytes_received"], 3000), "{server}");
    let client = both.iter().find(|r| r["local_port"] == a).unwrap();
    assert!(bytes(&client["bytes_acked"], 3000), "{client}");
    // Filters as list's: by owner, by port, by state.
    let (by_pid, _) = history(
        db,
        &["--at", &at(opened_after + 2000), "--pid", &pid.to_string()],
    );
    assert_eq!(ends(&by_pid, a).len(), 2);
    let (other_pid, _) = history(db, &["--at", &at(opened_after + 2000), "--pid", "1"]);
    assert!(ends(&other_pid, a).is_empty());
    let (by_port, _) = history(
        db,
        &["--at", &at(opened_after + 2000), &format!("sport = :{a}")],
    );
    assert_eq!(by_port.len(), 1);
    let (listening, _) = history(db, &["--at", &at(opened_after + 2000), "-l"]);
    assert_eq!(listening.len(), 1);
    assert_eq!(listening[0]["state"], "LISTEN");

    // Before it opened and after it closed: absent.
    let (before, _) = history(db, &["--at", &at(opened - 300)]);
    assert!(ends(&before, a).is_empty(), "{before:#?}");
    assert_eq!(before.len(), 1, "only the listener: {before:#?}");
    let (after, _) = history(db, &["--at", &at(closed + 700)]);
    assert!(ends(&after, a).is_empty(), "{after:#?}");
    mid
}

/// The flash, shorter than a poll.
fn the_flash_from_its_notifications(db: &Path, m: &Moments) {
    let &Moments {
        f, closed, flashed, ..
    } = m;
    // The flash, shorter than a poll: found by --between, with its final
    // counters from the destroy notifications.
    let (between, _) = history(db, &["--between", &at(closed), &at(flashed + 300)]);
    let flash_ends = ends(&between, f);
    assert_eq!(flash_ends.len(), 2, "{between:#?}");
    // The server's end was destroyed; the client's went on as TIME_WAIT.
    let server = flash_ends.iter().find(|r| r["remote_port"] == f).unwrap();
    assert!(bytes(&server["bytes_received"], 5000), "{server}");
    assert_eq!(server["closed_by"], "destroy", "{server}");
    let client = flash_ends.iter().find(|r| r["local_port"] == f).unwrap();
    assert!(bytes(&client["bytes_acked"], 5000), "{client}");
    assert_eq!(client["state"], "TIME_WAIT", "{client}");
    // Later, only the client's TIME_WAIT is left, the same connection.
    let (later, _) = history(db, &["--at", &at(flashed + 700)]);
    let left: Vec<_> = ends(&later, f);
    assert_eq!(left.len(), 1, "{later:#?}");
    assert_eq!(left[0]["state"], "TIME_WAIT");
    assert_eq!(left[0]["local_port"], f);
    assert!(bytes(&left[0]["bytes_acked"], 5000), "{}", left[0]);
}

/// `--summary` at the middle of a's life.
fn the_summary_in_the_middle(db: &Path, m: &Moments) {
    let &Moments { opened_after, .. } = m;
    // --summary at the middle of a's life.
    let out = common::tcptab(&[
        "history",
        "--db",
        db.to_str().unwrap(),
        "--summary",
        "--at",
        &at(opened_after + 2000),
        "--format",
        "json",
    ]);
    assert!(out.status.success());
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    common::conforms(
        &common::schema("history-summary"),
        &summary,
        "history --summary",
    );
    assert_eq!(summary["connections"], 3);
    assert_eq!(summary["states"]["ESTABLISHED"], 2);
    assert_eq!(summary["states"]["LISTEN"], 1);
    assert_eq!(summary["processes"][0]["command"], "python3");
    assert_eq!(summary["processes"][0]["connections"], 3);
    assert_eq!(summary["remote_hosts"][0]["address"], "127.0.0.1");
}

/// Every format, the same connections, and the file read by another user.
fn every_format_the_same_and_readable_by_another_user(db: &Path, m: &Moments) {
    let &Moments {
        a, opened, flashed, ..
    } = m;
    // Every format, the same connections; the JSON ones follow the schema.
    let span = ["--between", &at(opened - 300), &at(flashed + 300)].map(String::from);
    let span: Vec<&str> = span.iter().map(String::as_str).collect();
    let (json, _) = history(db, &span);
    assert!(json.len() >= 5, "{json:#?}");
    let validator = common::schema("history-record");
    for row in &json {
        common::conforms(&validator, row, "history --format json");
    }
    let run = |format: &str| {
        let mut args = vec!["history", "--db", db.to_str().unwrap(), "--format", format];
        args.extend_from_slice(&span);
        let out = common::tcptab(&args);
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    let jsonl: Vec<Value> = run("jsonl")
        .lines()
        .map(|l| common::strict_json(l).unwrap())
        .collect();
    assert_eq!(jsonl, json);
    let csv_text = run("csv");
    let mut csv = csv::Reader::from_reader(csv_text.as_bytes());
    let header: Vec<String> = csv.headers().unwrap().iter().map(String::from).collect();
    let keys: Vec<String> = json[0]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(k, v)| match (k.as_str(), v) {
            ("tcp_info", _) => tcptab::record::TCP_INFO_FIELDS
                .iter()
                .map(|d| format!("tcp_info.{}", d.name))
                .collect(),
            ("memory", _) => tcptab::record::MEMORY_FIELDS
                .iter()
                .map(|d| format!("memory.{}", d.name))
                .collect(),
            ("workload", _) => tcptab::record::WORKLOAD_FIELDS
                .iter()
                .map(|d| format!("workload.{}", d.name))
                .collect(),
            _ => vec![k.clone()],
        })
        .collect();
    assert_eq!(header, keys);
    let csv_rows: Vec<csv::StringRecord> = csv.records().map(Result::unwrap).collect();
    assert_eq!(csv_rows.len(), json.len());
    let first_seen = header.iter().position(|h| h == "first_seen").unwrap();
    for (row, j) in csv_rows.iter().zip(&json) {
        assert_eq!(row[first_seen], *j["first_seen"].as_str().unwrap());
    }
    let table = run("table");
    assert_eq!(table.lines().count(), json.len() + 1, "{table}");
    assert!(table
        .lines()
        .any(|l| l.contains(&format!("127.0.0.1:{a} ")) && l.contains("python3")));

    // Another user reads root's file (its recorder gone: no -shm to share).
    let out = testkit::as_nobody(env!("CARGO_BIN_EXE_tcptab"))
        .args(["history", "--db", db.to_str().unwrap(), "--format", "jsonl"])
        .args(&span)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().lines().count(),
        json.len()
    );
}

/// The file itself through sqlite3, and docs/history.md's queries.
fn sqlite3_agrees_and_the_docs_queries_run(db: &Path, m: &Moments, mid: &[Value]) {
    let &Moments {
        a,
        opened_after,
        pid,
        ..
    } = m;
    // The oracle: the file itself, through sqlite3.
    assert_eq!(sql(db, "PRAGMA integrity_check"), "ok");
    assert_eq!(sql(db, "PRAGMA journal_mode"), "wal");
    let t = opened_after + 2000;
    let open_then = sql(
        db,
        &format!(
            "SELECT count(*) FROM connections WHERE first_seen <= {t} AND coalesce(closed_at, last_seen) >= {t}"
        ),
    );
    assert_eq!(open_then, mid.len().to_string());
    // docs/history.md's example queries, run as written there.
    let doc = std::fs::read_to_string(testkit::repo_root().join("docs/history.md")).unwrap();
    let examples = examples(&doc);
    assert_eq!(
        examples.len(),
        3,
        "docs/history.md has three example queries"
    );
    let who = examples[0]
        .replace(":port", &a.to_string())
        .replace(":at", &format!("'{}'", at(t)));
    let answer = sql(db, &who);
    assert!(
        answer.contains(&format!("{pid}|python3")),
        "{who}\n{answer}"
    );
    for example in &examples[1..] {
        let q = example
            .replace(":at", &format!("'{}'", at(t)))
            .replace(":port", &a.to_string());
        sql(db, &q);
    }
}

/// The SQL blocks of a document (```sql ... ```).
fn examples(doc: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = doc;
    while let Some(start) = rest.find("```sql\n") {
        let body = &rest[start + 7..];
        let end = body.find("```").unwrap();
        out.push(body[..end].to_string());
        rest = &body[end..];
    }
    out
}

#[test]
fn a_killed_recorder_leaves_a_whole_file() {
    let Some(mut scenario) = testkit::live("lifetimes.py") else { return };
    let pid = scenario.pid().to_string();
    let dir = scratch("killed");
    let db = dir.join("h.db");
    let mut recorder = record(&db, &["--netns-pid", &pid, "--interval", "0.1"]);
    wait_polls(&db, 1);
    scenario.command("open kept");
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        scenario.command("churn 10");
        std::thread::sleep(Duration::from_millis(20));
    }
    // A second recorder on the same file is refused, naming it.
    let second = common::tcptab(&["record", "--db", db.to_str().unwrap(), "--count", "1"]);
    assert_eq!(second.status.code(), Some(2));
    let says = String::from_utf8_lossy(&second.stderr);
    assert!(
        says.contains("another tcptab record is writing it"),
        "{says}"
    );
    // Killed while connections close all around it.
    recorder.kill().unwrap();
    recorder.wait().unwrap();
    assert_eq!(sql(&db, "PRAGMA integrity_check"), "ok");
    let polls: u64 = sql(&db, "SELECT count(*) FROM polls").parse().unwrap();
    assert!(polls >= 3, "{polls} polls");
    // Up to the last poll, the answer is there: what it saw is open then.
    let last = sql(
        &db,
        "SELECT at || '|' || sockets FROM polls ORDER BY id DESC LIMIT 1",
    );
    let (last_at, sockets) = last.split_once('|').unwrap();
    let last_at: i64 = last_at.parse().unwrap();
    let (rows, _) = history(&db, &["--at", &at(last_at)]);
    // (A connection known only from its notification, which may have come
    // in the poll's millisecond, was not seen by it: its state is the
    // kernel's last word, CLOSE.) A connection the poll saw whose
    // notification came while the poll ran has its last sighting after
    // the poll's start, and so may one the poll missed whose notification
    // came then: those are counted apart, and the poll's count lies
    // between.
    let seen = |r: &&Value| r["state"] != "CLOSE";
    let ms = |t: &Value| tcptab::time::parse_rfc3339(t.as_str().unwrap()).unwrap();
    let exact = rows
        .iter()
        .filter(seen)
        .filter(|r| r["last_seen"] == at(last_at))
        .count();
    let later = rows
        .iter()
        .filter(seen)
        .filter(|r| ms(&r["last_seen"]) > last_at && ms(&r["first_seen"]) <= last_at)
        .count();
    let sockets: usize = sockets.parse().unwrap();
    assert!(
        (exact..=exact + later).contains(&sockets),
        "{sockets} sockets in the last poll, {exact} rows last seen by it and {later} after: {rows:#?}"
    );
    let churned: u64 = sql(
        &db,
        "SELECT count(*) FROM connections WHERE closed_by = 'destroy'",
    )
    .parse()
    .unwrap();
    assert!(
        churned >= 40,
        "{churned} connections closed by notification"
    );

    // A new recorder takes up the open connections: no row twice.
    let again = Command::new(env!("CARGO_BIN_EXE_tcptab"))
        .args([
            "record",
            "--db",
            db.to_str().unwrap(),
            "--netns-pid",
            &pid,
            "--interval",
            "0.1",
            "--count",
            "2",
        ])
        .status()
        .unwrap();
    assert!(again.success());
    assert_eq!(sql(&db, "PRAGMA integrity_check"), "ok");
    assert_eq!(
        sql(&db, "SELECT count(*) FROM (SELECT 1 FROM connections WHERE cookie IS NOT NULL GROUP BY netns, cookie HAVING count(*) > 1)"),
        "0"
    );
    assert_eq!(
        sql(
            &db,
            "SELECT count(*) FROM connections WHERE state = 'LISTEN'"
        ),
        "1"
    );
    assert_eq!(
        sql(
            &db,
            "SELECT count(*) FROM connections WHERE closed_at IS NULL AND state = 'ESTABLISHED'"
        ),
        "2",
        "the kept pair, still open, once"
    );
}

#[test]
fn retention_deletes_what_ended_before_the_window() {
    let Some(mut scenario) = testkit::live("lifetimes.py") else { return };
    let pid = scenario.pid().to_string();
    let dir = scratch("retention");
    let db = dir.join("h.db");
    let recorder = record(
        &db,
        &[
            "--netns-pid",
            &pid,
            "--interval",
            "0.3",
            "--retention",
            "3s",
        ],
    );
    wait_polls(&db, 1);
    let old: u64 = scenario.command("open old")[3..].parse().unwrap();
    std::thread::sleep(Duration::from_millis(700));
    scenario.command("close old");
    let kept: u64 = scenario.command("open kept")[3..].parse().unwrap();
    wait_polls(&db, 4);
    let gone =
        format!("SELECT count(*) FROM connections WHERE local_port = {old} OR remote_port = {old}");
    assert_eq!(sql(&db, &gone), "2", "recorded first");
    std::thread::sleep(Duration::from_secs(6));
    stop(recorder);
    let stopped = now_ms();
    assert_eq!(sql(&db, &gone), "0", "deleted after the window");
    assert_eq!(
        sql(&db, &format!("SELECT count(*) FROM connections WHERE local_port = {kept} OR remote_port = {kept}")),
        "2",
        "an open connection stays"
    );
    let oldest: i64 = sql(&db, "SELECT min(at) FROM polls").parse().unwrap();
    assert!(
        oldest >= stopped - 3000 - 2500,
        "a poll {} ms old",
        stopped - oldest
    );
    for orphans in [
        "SELECT count(*) FROM owners WHERE connection NOT IN (SELECT id FROM connections)",
        "SELECT count(*) FROM state_changes WHERE connection NOT IN (SELECT id FROM connections)",
        "SELECT count(*) FROM lifetimes WHERE id NOT IN (SELECT id FROM connections)",
        "SELECT count(*) FROM listen_queues WHERE poll NOT IN (SELECT id FROM polls)",
    ] {
        assert_eq!(sql(&db, orphans), "0", "{orphans}");
    }
}

#[test]
fn namespaces_that_come_and_go_are_recorded_and_labelled() {
    if !require_root("namespaces_that_come_and_go_are_recorded_and_labelled") {
        return;
    }
    let dir = scratch("netns");
    let db = dir.join("h.db");
    let started = now_ms();
    let recorder = record(&db, &["--all-netns", "--interval", "0.3", "--no-owners"]);
    wait_polls(&db, 1);
    let netns = NamedNetns::add("tcptab-hist");
    let name = netns.name.clone();
    let script = "import socket, time
l = socket.socket(); l.bind(('127.0.0.1', 0)); l.listen()
c = socket.create_connection(l.getsockname()); s, _ = l.accept()
print('ok', flush=True); time.sleep(1.5)";
    let out = netns
        .command("python3")
        .args(["-c", script])
        .output()
        .unwrap();
    assert!(out.status.success());
    drop(netns);
    let deleted = now_ms();
    std::thread::sleep(Duration::from_secs(1));
    stop(recorder);

    let (rows, _) = history(&db, &["--between", &at(started), &at(now_ms())]);
    let inside: Vec<&Value> = rows
        .iter()
        .filter(|r| r["netns_name"] == name.as_str())
        .collect();
    assert_eq!(
        inside.len(),
        3,
        "a listener and a pair in {name}: {rows:#?}"
    );
    for r in &inside {
        assert!(r["netns"].as_u64().unwrap() > 0);
        let closed = tcptab::time::parse_rfc3339(r["closed_at"].as_str().unwrap()).unwrap();
        assert!(closed <= deleted + 1000, "{r}");
    }
    let last_seen: i64 = sql(
        &db,
        &format!("SELECT last_seen FROM namespaces WHERE name = '{name}'"),
    )
    .parse()
    .unwrap();
    let last_poll: i64 = sql(&db, "SELECT max(at) FROM polls").parse().unwrap();
    assert!(
        last_seen < last_poll,
        "the namespace is gone from the later polls"
    );
}

#[test]
fn an_unprivileged_recorder_stores_what_it_could_not_see() {
    let Some(mut scenario) = testkit::live("lifetimes.py") else { return };
    let pid = scenario.pid().to_string();
    let a: u64 = scenario.command("open a")[3..].parse().unwrap();
    let dir = scratch("unprivileged");
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let db = dir.join("u.db");
    let recorder = testkit::as_nobody_in(&pid, env!("CARGO_BIN_EXE_tcptab"))
        .args([
            "record",
            "--db",
            db.to_str().unwrap(),
            "--interval",
            "0.3",
            "--count",
            "5",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_polls(&db, 2);
    let f: u64 = scenario
        .command("flash")
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let out = recorder.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let not_seen = sql(&db, "SELECT DISTINCT not_seen FROM polls");
    assert!(not_seen.contains("could not be inspected"), "{not_seen}");
    // Destroy notifications: where the kernel lets an unprivileged
    // process subscribe (sock_diag's groups take any receiver on current
    // kernels), the flash below is recorded from them; where not, every
    // poll says there were none.
    let notified = !not_seen.contains("no destroy notifications");
    let (rows, stderr) = history(&db, &[]);
    let both = ends(&rows, a);
    assert_eq!(both.len(), 2, "{rows:#?}");
    for end in both {
        assert_eq!(end["owner_status"], "unknown", "{end}");
    }
    assert!(stderr.contains("could not be inspected"), "{stderr}");
    assert_eq!(
        !stderr.contains("no destroy notifications"),
        notified,
        "{stderr}"
    );
    if notified {
        let flash = ends(&rows, f);
        assert_eq!(flash.len(), 2, "{rows:#?}");
        let server = flash.iter().find(|r| r["remote_port"] == f).unwrap();
        assert_eq!(server["closed_by"], "destroy", "{server}");
    }
}

#[test]
fn bad_input_is_named_and_an_unrecorded_moment_is_said() {
    let dir = scratch("bad");
    let db = dir.join("h.db");
    let status = Command::new(env!("CARGO_BIN_EXE_tcptab"))
        .args([
            "record",
            "--db",
            db.to_str().unwrap(),
            "--count",
            "1",
            "--no-owners",
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let text = dir.join("notes.txt");
    std::fs::write(&text, "not a database\n").unwrap();
    let foreign = dir.join("other.db");
    sql(&foreign, "CREATE TABLE t (a)");
    for (file, says) in [
        (&text, "not a tcptab history database (not an SQLite file)"),
        (
            &foreign,
            "not a tcptab history database (an SQLite file without tcptab's application id)",
        ),
    ] {
        let file_arg = file.to_str().unwrap();
        for args in [
            vec!["history", "--db", file_arg],
            vec!["record", "--db", file_arg, "--count", "1"],
        ] {
            let command = args[0];
            let (code, stdout, stderr) = run(&args);
            assert_eq!(code, Some(2), "{command} {stderr}");
            assert!(stdout.is_empty());
            assert!(
                stderr.contains(&format!("{}: {says}", file.display())),
                "{command}: {stderr}"
            );
            assert_eq!(stderr.lines().count(), 1, "{stderr}");
        }
    }
    // The foreign file is left as it was.
    assert_eq!(sql(&foreign, "SELECT count(*) FROM sqlite_master"), "1");
    let missing = dir.join("missing.db");
    let (code, _, stderr) = run(&["history", "--db", missing.to_str().unwrap()]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains(&format!("{}: No such file", missing.display())),
        "{stderr}"
    );

    let (code, _, stderr) = run(&["history", "--db", dir.to_str().unwrap()]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("a directory, not a history file"),
        "{stderr}"
    );
    let nowhere = dir.join("no/such/dir/h.db");
    let (code, _, stderr) = run(&["record", "--db", nowhere.to_str().unwrap(), "--count", "1"]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("is not a directory that exists"),
        "{stderr}"
    );

    let db = db.to_str().unwrap();
    bad_times_are_one_line_each(db);

    outside_the_recorded_span_is_said(db);
}

/// `tcptab ARGS`: its exit code, stdout and stderr.
fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let out = common::tcptab(args);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A time that is not one: one line naming the option and what it expects.
fn bad_times_are_one_line_each(db: &str) {
    for (args, says) in [
        (
            vec!["--at", "yesterday"],
            "--at: 'yesterday' is not a time: expected YYYY-MM-DD",
        ),
        (
            vec!["--at", "2026-12-01T03:12:00"],
            "does not guess a time zone",
        ),
        (
            vec!["--at", "-5 fortnights"],
            "--at: '-5 fortnights' is not a relative time",
        ),
        (vec!["--between", "-1m", "-2m"], "--between: "),
        (vec!["--at", "-1m", "dev", "lo"], "need the live namespace"),
    ] {
        let mut all = vec!["history", "--db", db];
        all.extend_from_slice(&args);
        let (code, stdout, stderr) = run(&all);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(stdout.is_empty());
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(
            !stderr.contains("panicked") && !stderr.contains("Error {"),
            "{stderr}"
        );
    }
}

/// Outside the recorded span: said, no rows, success, in every format.
fn outside_the_recorded_span_is_said(db: &str) {
    // Outside the recorded span: said, no rows, success.
    for format in ["json", "jsonl", "csv", "table"] {
        let (code, stdout, stderr) = run(&[
            "history",
            "--db",
            db,
            "--at",
            "2020-01-01T00:00:00Z",
            "--format",
            format,
        ]);
        assert_eq!(code, Some(0), "{stderr}");
        assert!(stderr.contains("is outside the recorded span"), "{stderr}");
        match format {
            "json" => assert_eq!(stdout, "[]\n"),
            "jsonl" => assert_eq!(stdout, ""),
            _ => assert_eq!(stdout.lines().count(), 1, "the header: {stdout}"),
        }
    }
}

#[test]
fn both_sources_record_what_ss_sees_on_a_mixed_table() {
    if !require_root("both_sources_record_what_ss_sees_on_a_mixed_table") {
        return;
    }
    // Every state and all three row shapes (TIME_WAIT, SYN_RECV requests).
    let scenario = Scenario::start("sockets.py");
    let pid = scenario.pid().to_string();
    let dir = scratch("sources");
    let validator = common::schema("history-record");
    let ss: std::collections::BTreeSet<(String, String)> = scenario
        .ss(&[])
        .into_iter()
        .map(|r| (r.local, r.peer))
        .collect();
    for source in ["netlink", "proc"] {
        let db = dir.join(format!("{source}.db"));
        let status = Command::new(env!("CARGO_BIN_EXE_tcptab"))
            .args(["record", "--db", db.to_str().unwrap(), "--netns-pid", &pid])
            .args(["--source", source, "--interval", "0.3", "--count", "3"])
            .status()
            .unwrap();
        assert!(status.success());
        let last: i64 = sql(&db, "SELECT max(at) FROM polls").parse().unwrap();
        let (rows, _) = history(&db, &["--at", &at(last)]);
        let seen: std::collections::BTreeSet<(String, String)> = rows
            .iter()
            .filter(|r| r["last_seen"] == at(last))
            .map(|r| {
                let end = |a: &str, p: &str| {
                    testkit::endpoint(std::net::SocketAddr::new(
                        r[a].as_str().unwrap().parse().unwrap(),
                        r[p].as_u64().unwrap() as u16,
                    ))
                };
                (
                    end("local_address", "local_port"),
                    end("remote_address", "remote_port"),
                )
            })
            .collect();
        assert_eq!(seen, ss, "{source}: the last poll against ss -tan");
        let kinds: std::collections::BTreeSet<&str> =
            rows.iter().map(|r| r["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds.len(), 3, "{source}: {kinds:?}");
        for row in &rows {
            common::conforms(&validator, row, source);
            assert_eq!(row["source"], source);
            assert_eq!(row["cookie"].is_null(), source == "proc", "{row}");
        }
        for format in ["jsonl", "csv", "table"] {
            let out = common::tcptab(&[
                "history",
                "--db",
                db.to_str().unwrap(),
                "--at",
                &at(last),
                "--format",
                format,
            ]);
            assert!(out.status.success());
            let lines = String::from_utf8(out.stdout).unwrap().lines().count();
            let header = usize::from(format != "jsonl");
            assert_eq!(lines, rows.len() + header, "{source} {format}");
        }
    }
}

#[test]
fn times_files_and_states_as_a_user_types_them() {
    if !require_root("times_files_and_states_as_a_user_types_them") {
        return;
    }
    let dir = scratch("typed");
    let db = dir.join("h.db");
    let ledger = dir.join("ledger.jsonl");
    let mut scenario = Scenario::start_with("ledger.py", &[ledger.to_str().unwrap()]);
    let pid = scenario.pid().to_string();
    let recorder = record(&db, &["--netns-pid", &pid, "--interval", "0.5"]);
    wait_polls(&db, 1);
    let port: u64 = scenario.command("hold a")[3..].parse().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let established = now_ms();
    std::thread::sleep(Duration::from_millis(500));
    // The client closes first: its end goes to TIME_WAIT.
    assert_eq!(scenario.command("close a"), "ok");
    std::thread::sleep(Duration::from_millis(1500));
    let client = |rows: &[Value]| -> Vec<Value> {
        rows.iter()
            .filter(|r| r["local_port"] == port)
            .cloned()
            .collect()
    };
    // ESTABLISHED all through a window and TIME_WAIT now: a state filter
    // selects it by the states it had in the window, any of them.
    let window = [at(established - 200), at(established + 200)];
    let closing = [at(established - 200), at(now_ms())];
    for (window, state, found) in [
        (&window, "established", 1),
        (&window, "time-wait", 0),
        (&closing, "established", 1),
        (&closing, "time-wait", 1),
    ] {
        let (rows, _) = history(
            &db,
            &["--between", &window[0], &window[1], "--state", state],
        );
        assert_eq!(
            client(&rows).len(),
            found,
            "{window:?} --state {state}: {rows:#?}"
        );
    }
    let (rows, _) = history(
        &db,
        &["--between", &window[0], &window[1], "state", "syn-sent"],
    );
    assert!(client(&rows).is_empty(), "{rows:#?}");
    // --at now on a recording that goes on: the last poll, said so.
    let (rows, stderr) = history(&db, &["--at", "now"]);
    assert!(stderr.contains("--at now: as of the last poll"), "{stderr}");
    assert_eq!(client(&rows)[0]["state"], "TIME_WAIT", "{rows:#?}");
    // Every relative form, as typed (the README's too), and RFC 3339 with
    // an offset and a leap second: each answers, exit 0.
    let db_arg = db.to_str().unwrap();
    for args in [
        vec!["--at", "-1s"],
        vec!["--at", "-30s"],
        vec!["--at", "-10m"],
        vec!["--at", "-1d"],
        vec!["--at", "-1w"],
        vec!["--at", "-1h", "--summary"],
        vec!["--between", "-20m", "-10m"],
        vec!["--between", "-20m", "-10m", "--format", "jsonl"],
        vec!["--between", "-10s", "now"],
        vec!["--at=-2s"],
        // ss's letters as its users type them.
        vec!["--at", "-10m", "-tanp"],
        vec!["-tnp", "--between", "-20m", "-10m", "state", "established"],
        vec!["--at", "2016-12-31T23:59:60Z"],
        vec!["--at", "2026-12-01T04:12:00+01:00"],
    ] {
        let mut all = vec!["history", "--db", db_arg];
        all.extend_from_slice(&args);
        let out = common::tcptab(&all);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
    }
    for (args, says) in [
        (
            vec!["--at", "2026-02-30T00:00:00Z"],
            "day 30 is not in month 2",
        ),
        (vec!["--at", "2026-12-01T03:12:60Z"], "is not a leap second"),
    ] {
        let mut all = vec!["history", "--db", db_arg];
        all.extend_from_slice(&args);
        let out = common::tcptab(&all);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
    stop(recorder);
    drop(scenario);

    a_closed_file_on_a_read_only_mount_is_read(&dir, &db, port);

    a_fifo_is_refused_at_once(&dir);

    another_program_s_database_is_refused_untouched(&dir);

    a_value_tcptab_did_not_write_is_named(&dir, &db);
}

/// A cleanly closed file on a read-only mount is read.
fn a_closed_file_on_a_read_only_mount_is_read(dir: &Path, db: &Path, port: u64) {
    // A cleanly closed file on a read-only mount is read.
    let ro = dir.join("ro");
    std::fs::create_dir_all(&ro).unwrap();
    let mount = |args: &[&str]| {
        let status = Command::new("mount").args(args).status().unwrap();
        assert!(status.success(), "mount {args:?}");
    };
    mount(&["-t", "tmpfs", "tmpfs", ro.to_str().unwrap()]);
    std::fs::copy(db, ro.join("h.db")).unwrap();
    mount(&["-o", "remount,ro", ro.to_str().unwrap()]);
    let out = common::tcptab(&[
        "history",
        "--db",
        ro.join("h.db").to_str().unwrap(),
        "--format",
        "json",
    ]);
    let _ = Command::new("umount").arg(&ro).status();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let client = rows.iter().filter(|r| r["local_port"] == port).count();
    assert_eq!(client, 1, "the client's end: {rows:#?}");
}

/// A FIFO is refused at once, not read (which would block).
fn a_fifo_is_refused_at_once(dir: &Path) {
    // A FIFO is refused at once, not read (which would block).
    let fifo = dir.join("fifo.db");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tcptab"))
        .args(["history", "--db", fifo.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("history --db FIFO hangs");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("a FIFO, not a history file"),
        "{out:?}"
    );
}

/// Another program's database in WAL mode: refused, nothing made beside it.
fn another_program_s_database_is_refused_untouched(dir: &Path) {
    // Another program's database in WAL mode: refused, nothing made
    // beside it.
    let foreign = dir.join("app.db");
    sql(
        &foreign,
        "PRAGMA journal_mode = WAL; CREATE TABLE t (a); INSERT INTO t VALUES (1);",
    );
    let beside = |name: &str| dir.join(format!("app.db{name}")).exists();
    assert!(!beside("-wal") && !beside("-shm"));
    for command in ["history", "record"] {
        let out = common::tcptab(
            &[command, "--db", foreign.to_str().unwrap(), "--count", "1"]
                [..if command == "history" { 3 } else { 5 }],
        );
        assert_eq!(out.status.code(), Some(2), "{command}");
        assert!(
            !beside("-wal") && !beside("-shm"),
            "{command} left files beside it"
        );
    }
}

/// A value tcptab did not write: the error names the table, row and column.
fn a_value_tcptab_did_not_write_is_named(dir: &Path, db: &Path) {
    // A value tcptab did not write: the error names the table, row and
    // column.
    let bad = dir.join("bad.db");
    std::fs::copy(db, &bad).unwrap();
    sql(
        &bad,
        "UPDATE connections SET state = CAST(x'ff41' AS TEXT) WHERE id = 2",
    );
    let out = common::tcptab(&["history", "--db", bad.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("table connections, row 2, column state"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}
