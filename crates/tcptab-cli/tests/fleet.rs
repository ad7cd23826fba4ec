//! A fleet's history in a real ClickHouse (Debian's 18.16, started here on
//! free ports with its own data directory): two recorders with their own
//! host names record two namespaces under churn (`ledger.py`) and ship
//! to it. The store is stopped for 20 s in the middle and started again,
//! and one recorder is SIGKILLed and started again. Afterwards the store
//! (after `FINAL`) holds each host's connections exactly as its own file
//! answers `history --between` over the whole run: every connection once,
//! same owners, states and byte counts; `history --clickhouse` gives each
//! host's answer and their union. Bad URLs, a refused password and a
//! missing table are one line each, and the recorder goes on recording.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::clickhouse::ClickHouse;
use common::proxy::{Fault, Proxy};
use common::recorder::{record, scratch, sql, stop, wait_polls};
use common::server::{promtool_accepts, sample, Server};
use serde_json::Value;
use testkit::Scenario;

fn tcptab(args: &[String]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tcptab"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("running tcptab")
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// `history ... --format jsonl`: one record per connection, keyed by its
/// ends, first sighting and cookie (the row ids differ between a file and
/// the store of two files).
fn answer(args: &[String]) -> BTreeMap<String, Value> {
    answer_with(args, &[])
}

/// [`answer`], with `env` set for tcptab.
fn answer_with(args: &[String], env: &[(&str, &str)]) -> BTreeMap<String, Value> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tcptab"))
        .args(args)
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    testkit::assert_success!(out, "{args:?}");
    let mut rows = BTreeMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let mut v: Value = serde_json::from_str(line).unwrap();
        v.as_object_mut().unwrap().remove("sl");
        let key = format!(
            "{} {}:{} {}:{} {} {}",
            v["hostname"],
            v["local_address"],
            v["local_port"],
            v["remote_address"],
            v["remote_port"],
            v["first_seen"],
            v["cookie"]
        );
        assert!(
            rows.insert(key.clone(), v).is_none(),
            "{key} twice in {args:?}"
        );
    }
    rows
}

fn recorder(db: &Path, pid: &str, host: &str, store: Vec<String>) -> Child {
    let mut args = strings(&[
        "--netns-pid",
        pid,
        "--interval",
        "0.5",
        "--host-name",
        host,
        "--ship-interval",
        "1s",
    ]);
    args.extend(store);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    record(db, &args)
}

/// `tcptab record` of three polls into `db`, shipping every
/// `ship_interval` to the store `store` (its URL, then any options).
fn three_polls(db: &Path, ship_interval: &str, store: &[String]) -> Vec<String> {
    let mut args = strings(&[
        "record",
        "--db",
        db.to_str().unwrap(),
        "--count",
        "3",
        "--interval",
        "0.3",
        "--ship-interval",
        ship_interval,
        "--clickhouse",
    ]);
    args.extend(store.iter().cloned());
    args
}

/// A fresh scratch folder, and a ClickHouse in it with tcptab's tables
/// made.
fn store_with_tables(test: &str) -> (testkit::Scratch, ClickHouse) {
    let dir = scratch(test);
    let server = ClickHouse::start(&dir.join("clickhouse"));
    make_tables(&server);
    (dir, server)
}

/// `tcptab schema clickhouse` makes the store's tables (without TTL:
/// 18.16 has none, which it says).
fn make_tables(server: &ClickHouse) {
    let mut create = strings(&["schema", "clickhouse", "--retention", "7d"]);
    create.extend(server.options("fleet"));
    let out = tcptab(&create);
    testkit::assert_success!(out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no table TTL"), "{stderr}");
}

/// The rows of a history file that wait to be shipped: docs/history.md's
/// query, as written there.
fn waiting(db: &Path) -> u64 {
    let doc = std::fs::read_to_string(testkit::repo_root().join("docs/history.md")).unwrap();
    let section = &doc[doc
        .find("### What waits to be shipped")
        .expect("the section")..];
    let body = &section[section.find("```sql\n").expect("its query") + 7..];
    let query = &body[..body.find("```").unwrap()];
    sql(db, query).parse().unwrap()
}

/// The store holds the file's connections, state changes and polls, once each (after
/// merging), and nothing waits in the file.
fn holds_once(server: &ClickHouse, db: &Path, host: &str) {
    assert_eq!(waiting(db), 0, "{host}");
    let file: u64 = sql(db, "SELECT count(*) FROM connections").parse().unwrap();
    assert!(file > 1000, "{host}: {file} connections recorded");
    assert_eq!(count(server, "connections", host), file, "{host}");
    let polls: u64 = sql(db, "SELECT count(*) FROM polls").parse().unwrap();
    assert_eq!(count(server, "polls", host), polls, "{host}");
    // Every change of state, once, at its time.
    let file = sql(
        db,
        "SELECT count(*), sum(at % 1000003), sum(length(state)) FROM state_changes",
    );
    let store = server.query(&format!(
        "SELECT count(), sum(at % 1000003), sum(length(state)) FROM fleet.state_changes FINAL WHERE hostname = '{host}' FORMAT TSV"
    ));
    assert_eq!(
        store.trim().replace('\t', "|"),
        file,
        "{host}: state changes"
    );
}

/// `history --between` of the file and of the store for `host` (through
/// `window`, a `--between` and a format): record for record the same.
fn answers_alike(
    server: &ClickHouse,
    db: &Path,
    host: &str,
    window: &[String],
) -> BTreeMap<String, Value> {
    let mut local = strings(&["history", "--db", db.to_str().unwrap()]);
    local.extend(window.iter().cloned());
    let local = answer(&local);
    let mut fleet = strings(&["history", "--host", host]);
    fleet.extend(server.options("fleet"));
    fleet.extend(window.iter().cloned());
    let sent = answer(&fleet);
    // The same with the keys computed again by the server (past
    // TCPTAB_FLEET_KEYS_SENT of them).
    let again = answer_with(&fleet, &[("TCPTAB_FLEET_KEYS_SENT", "1")]);
    assert_eq!(local.len(), sent.len(), "{host}");
    for (key, row) in &local {
        assert_eq!(Some(row), sent.get(key), "{host}: {key}");
    }
    assert!(
        sent == again,
        "{host}: the keys sent and computed again differ"
    );
    local
}

/// Rows in the store's table, after merging.
fn count(server: &ClickHouse, table: &str, host: &str) -> u64 {
    server
        .query(&format!(
            "SELECT count() FROM fleet.{table} FINAL WHERE hostname = '{host}'"
        ))
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn two_hosts_ship_every_connection_once_through_a_stopped_store_and_a_killed_recorder() {
    testkit::needs_root!();
    let (dir, mut server) = store_with_tables("fleet");

    let mut a = Scenario::start_with("ledger.py", &[dir.join("a.jsonl").to_str().unwrap()]);
    let mut b = Scenario::start_with("ledger.py", &[dir.join("b.jsonl").to_str().unwrap()]);
    let (pid_a, pid_b) = (a.pid().to_string(), b.pid().to_string());
    let (db_a, db_b) = (dir.join("a.db"), dir.join("b.db"));
    let t0 = tcptab::time::now_ms();
    let rec_a = recorder(&db_a, &pid_a, "host-a", server.options("fleet"));
    let rec_b = recorder(&db_b, &pid_b, "host-b", server.options("fleet"));
    wait_polls(&db_a, 2);
    wait_polls(&db_b, 2);
    assert!(a.command("run 300 3").starts_with("ok"));
    assert!(b.command("run 300 3").starts_with("ok"));
    // The store goes away for 20 s while both churn; one recorder dies.
    std::thread::sleep(Duration::from_millis(1500));
    server.stop();
    assert_eq!(a.command("wait"), "ok");
    assert_eq!(b.command("wait"), "ok");
    assert!(a.command("run 300 2").starts_with("ok"));
    common::signal(&rec_a, "-KILL");
    let mut rec_a = rec_a;
    rec_a.wait().unwrap();
    assert!(
        waiting(&db_a) > 0,
        "nothing waits in the file while the store is away"
    );
    let rec_a = recorder(&db_a, &pid_a, "host-a", server.options("fleet"));
    assert_eq!(a.command("wait"), "ok");
    std::thread::sleep(Duration::from_millis(20_000 - 5_000));
    server.restart();
    assert!(a.command("run 300 2").starts_with("ok"));
    assert!(b.command("run 300 2").starts_with("ok"));
    assert_eq!(a.command("wait"), "ok");
    assert_eq!(b.command("wait"), "ok");
    std::thread::sleep(Duration::from_millis(1500));
    stop(rec_a);
    stop(rec_b);
    let t1 = tcptab::time::now_ms();
    drop((a, b));

    for db in [&db_a, &db_b] {
        the_exporter_says_everything_was_shipped(db);
    }

    // Everything was acknowledged (nothing waits in the files), and the store
    // holds each file's connections, state changes and polls, once each.
    for (db, host) in [(&db_a, "host-a"), (&db_b, "host-b")] {
        holds_once(&server, db, host);
    }
    let (from, to) = (
        tcptab::time::format_rfc3339(t0 - 1000),
        tcptab::time::format_rfc3339(t1 + 1000),
    );
    let window = strings(&["--between", &from, &to, "--format", "jsonl"]);
    let mut union = BTreeMap::new();
    let mut whole = Vec::new();
    for (db, host) in [(&db_a, "host-a"), (&db_b, "host-b")] {
        let answer = answers_alike(&server, db, host, &window);
        whole.push(answer.len());
        union.extend(answer);
    }
    // Moments and a window inside the run: connections closed before them
    // are left out alike, though the store holds older versions of them,
    // still open (made here: each closed row again, open, one version
    // older, in a part of its own).
    older_open_versions(&server);
    let rows = |sql: &str| server.query(sql).trim().parse::<u64>().unwrap();
    let open_again = rows("SELECT count() FROM fleet.connections WHERE closed_at IS NULL AND (hostname, id) IN (SELECT hostname, id FROM fleet.connections WHERE closed_at IS NOT NULL)");
    assert!(open_again > 100, "{open_again} older versions");
    let inside = |k: i64| tcptab::time::format_rfc3339(t0 + (t1 - t0) * k / 6);
    let mut left_out = 0;
    for ((db, host), whole) in [(&db_a, "host-a"), (&db_b, "host-b")]
        .into_iter()
        .zip(whole)
    {
        for k in [2, 3, 4] {
            let at = strings(&["--at", &inside(k), "--format", "jsonl"]);
            let open = answers_alike(&server, db, host, &at);
            left_out += whole - open.len();
        }
        let part = strings(&["--between", &inside(2), &inside(3), "--format", "jsonl"]);
        answers_alike(&server, db, host, &part);
    }
    assert!(left_out > 0, "every connection was open at every moment");
    let mut all = strings(&["history"]);
    all.extend(server.options("fleet"));
    all.extend(window.clone());
    assert_eq!(answer(&all), union);
    the_summary_counts_per_host(&server, &from, &to, &union);

    a_filter_is_answered_alike(&server, &db_b, window);
}

/// Each closed connection of the store again, open, one version older, in
/// a part of its own (merges stopped: only FINAL at the query decides).
fn older_open_versions(server: &ClickHouse) {
    let columns = server.query(
        "SELECT name FROM system.columns WHERE database = 'fleet' AND table = 'connections' FORMAT TSV",
    );
    let older: Vec<String> = columns
        .lines()
        .map(|c| match c {
            "closed_at" => "CAST(NULL AS Nullable(Int64)) AS closed_at".to_string(),
            "closed_by" => "CAST(NULL AS Nullable(String)) AS closed_by".to_string(),
            "version" => "version - 1 AS version".to_string(),
            c => c.to_string(),
        })
        .collect();
    server.query("SYSTEM STOP MERGES");
    server.query(&format!(
        // (The closed rows are chosen in a subquery: there, `closed_at`
        // is the column, not the NULL of the same name.)
        "INSERT INTO fleet.connections SELECT {} FROM (SELECT * FROM fleet.connections FINAL WHERE closed_at IS NOT NULL)",
        older.join(", ")
    ));
}

/// The exporter reads a file's shipping status: nothing waits, the batches
/// the stopped store did not take were counted, and every row of the file
/// was sent at least once.
fn the_exporter_says_everything_was_shipped(db: &Path) {
    let server = Server::start(&["--ship-status", db.to_str().unwrap()]);
    let metrics = server.metrics();
    promtool_accepts(&metrics);
    assert_eq!(
        sample(&metrics, "tcptab_ship_rows_waiting "),
        Some(0.0),
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, "tcptab_ship_oldest_waiting_seconds "),
        Some(0.0)
    );
    assert_eq!(
        sample(&metrics, "tcptab_ship_rows_dropped_total "),
        Some(0.0)
    );
    let rows: f64 = sql(
        db,
        "SELECT (SELECT count(*) FROM connections) + (SELECT count(*) FROM polls)",
    )
    .parse()
    .unwrap();
    let sent = sample(&metrics, "tcptab_ship_rows_sent_total ").unwrap();
    assert!(sent >= rows, "{sent} rows sent of {rows}");
    let failures = sample(&metrics, "tcptab_ship_batches_failed_total ").unwrap();
    assert!(failures > 0.0, "{metrics}");
}

/// `--summary` counts per host what each file holds.
fn the_summary_counts_per_host(
    server: &ClickHouse,
    from: &str,
    to: &str,
    union: &BTreeMap<String, Value>,
) {
    // --summary counts per host what each file holds.
    let mut summary = strings(&["history", "--summary", "--json", "--between", from, to]);
    summary.extend(server.options("fleet"));
    let out = tcptab(&summary);
    testkit::assert_success!(out);
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut per_host: Vec<(String, u64)> = common::items(&summary["hosts"])
        .map(|h| {
            (
                h["hostname"].as_str().unwrap().to_string(),
                h["connections"].as_u64().unwrap(),
            )
        })
        .collect();
    per_host.sort();
    let count = |host: &str| {
        union
            .keys()
            .filter(|k| k.starts_with(&format!("\"{host}\"")))
            .count() as u64
    };
    assert_eq!(
        per_host,
        [
            ("host-a".to_string(), count("host-a")),
            ("host-b".to_string(), count("host-b"))
        ]
    );
    assert_eq!(summary["connections"].as_u64(), Some(union.len() as u64));
    // The bytes, as the files' rows have them.
    for (bytes, column) in [
        ("bytes_sent", "bytes_acked"),
        ("bytes_received", "bytes_received"),
    ] {
        let files: u64 = union.values().filter_map(|r| r[column].as_u64()).sum();
        assert_eq!(summary[bytes].as_u64(), Some(files), "{bytes}");
        assert!(files > 0, "{bytes}");
    }
}

/// A filter is answered the same from the store (part of it in its SQL).
fn a_filter_is_answered_alike(server: &ClickHouse, db: &Path, window: Vec<String>) {
    // A filter is answered the same from the store (part of it in its SQL).
    let mut local = strings(&["history", "--db", db.to_str().unwrap()]);
    local.extend(window.clone());
    local.push("sport > :1024 and state time-wait".into());
    let mut fleet = strings(&["history", "--host", "host-b"]);
    fleet.extend(server.options("fleet"));
    fleet.extend(window);
    fleet.push("sport > :1024 and state time-wait".into());
    let local = answer(&local);
    assert!(!local.is_empty());
    assert_eq!(local, answer(&fleet));
}

/// Inserts broken in flight, each way an HTTP insert breaks: the store's
/// answer lost after the rows were in (sent again: the store keeps them
/// once), a request cut in the middle (nothing in: sent again), and the
/// store killed and started again with a batch half sent. Afterwards the
/// store holds the file's connections, state changes and polls once each, and answers as
/// the file does.
#[test]
fn inserts_broken_in_flight_are_sent_again_and_kept_once() {
    testkit::needs_root!();
    let (dir, mut server) = store_with_tables("fleet-in-flight");
    let proxy = Proxy::start(server.http_port);
    let mut scenario = Scenario::start_with("ledger.py", &[dir.join("c.jsonl").to_str().unwrap()]);
    let pid = scenario.pid().to_string();
    let db = dir.join("c.db");
    let t0 = tcptab::time::now_ms();
    let rec = recorder(&db, &pid, "host-c", server.options_via("fleet", proxy.port));
    wait_polls(&db, 2);
    assert!(scenario.command("run 200 12").starts_with("ok"));
    for fault in [Fault::LoseAnswer, Fault::CutRequest, Fault::Hold] {
        proxy.arm(fault);
        proxy.wait_for(fault, 1);
    }
    // A batch is half sent: the store dies under it and comes back.
    server.kill();
    server.restart();
    proxy.release();
    assert_eq!(scenario.command("wait"), "ok");
    std::thread::sleep(Duration::from_millis(1500));
    stop(rec);
    let t1 = tcptab::time::now_ms();
    drop(scenario);
    holds_once(&server, &db, "host-c");
    let (from, to) = (
        tcptab::time::format_rfc3339(t0 - 1000),
        tcptab::time::format_rfc3339(t1 + 1000),
    );
    let window = strings(&["--between", &from, &to, "--format", "jsonl"]);
    let rows = answers_alike(&server, &db, "host-c", &window);
    assert!(rows.len() > 1000, "{} connections", rows.len());
}

#[test]
fn a_store_that_refuses_is_one_line_and_recording_goes_on() {
    testkit::needs_root!();
    let dir = scratch("fleet-refused");
    let server = ClickHouse::start(&dir.join("clickhouse"));
    std::fs::write(dir.join("wrong"), "not-the-password\n").unwrap();
    let url = server.url("fleet");
    // No table: made by nobody yet.
    let cases = [
        (vec![url.clone()], "fleet"),
        (
            vec![
                url.clone(),
                "--clickhouse-user".into(),
                "tcptab".into(),
                "--clickhouse-password-file".into(),
                dir.join("wrong").display().to_string(),
            ],
            "tcptab",
        ),
        (
            vec![format!("http://127.0.0.1:{}/", testkit::http::free_port())],
            "127.0.0.1",
        ),
    ];
    for (i, (store, says)) in cases.iter().enumerate() {
        let db = dir.join(format!("{i}.db"));
        let out = tcptab(&three_polls(&db, "0.2s", store));
        testkit::assert_success!(out, "{store:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let shipping: Vec<&str> = stderr.lines().filter(|l| l.contains("shipping")).collect();
        assert_eq!(shipping.len(), 1, "{store:?}: {stderr}");
        assert!(shipping[0].contains(says), "{store:?}: {stderr}");
        assert!(!stderr.contains("s3cret") && !stderr.contains("not-the-password"));
        assert_eq!(
            sql(&db, "SELECT count(*) FROM polls"),
            "3",
            "{store:?}: recorded locally"
        );
        assert!(stderr.contains("not shipped"), "{stderr}");
    }
    // The shipper asleep for its interval is woken to stop: the recorder
    // ends with its polls, not an hour later (killed, and the test failed,
    // if it is still there after a minute).
    let db = dir.join("asleep.db");
    let closed = format!("http://127.0.0.1:{}/", testkit::http::free_port());
    let mut asleep = Command::new(env!("CARGO_BIN_EXE_tcptab"))
        .args(three_polls(&db, "1h", &[closed]))
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running tcptab");
    let started = std::time::Instant::now();
    while asleep.try_wait().unwrap().is_none() {
        if started.elapsed() > std::time::Duration::from_secs(60) {
            asleep.kill().unwrap();
            panic!("record waited for its shipper's interval to end");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let out = asleep.wait_with_output().unwrap();
    testkit::assert_success!(out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not shipped"));
    for (url, says) in [
        ("localhost:8123", "is not a URL"),
        ("http://u:p@h:1/", "carries credentials"),
    ] {
        let out = tcptab(&strings(&["history", "--clickhouse", url, "--at", "now"]));
        assert_eq!(out.status.code(), Some(2), "{url}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(says), "{stderr}");
    }
}
