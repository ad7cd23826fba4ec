//! A recording's lifetimes, owners and final counts, in every format and
//! as sqlite3 and the docs' queries read them.

use super::*;

#[test]
fn lifetimes_owners_and_final_counts() {
    let Some(mut scenario) = testkit::live("lifetimes.py") else { return };
    let pid = scenario.pid();
    let (_dir, db) = scratch_db("lifetimes");
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
    the_summary_s_bytes_are_the_file_s(db);
}

/// `--summary`'s bytes, in all and per command holding the connections,
/// against the file's own rows through sqlite3.
fn the_summary_s_bytes_are_the_file_s(db: &Path) {
    let out = common::tcptab(&[
        "history",
        "--db",
        db.to_str().unwrap(),
        "--summary",
        "--json",
    ]);
    testkit::assert_success!(out);
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    let line = |v: &Value| {
        format!(
            "{}|{}|{}",
            v["connections"], v["bytes_sent"], v["bytes_received"]
        )
    };
    let all = sql(
        db,
        "SELECT count(*), sum(bytes_acked), sum(bytes_received) FROM connections",
    );
    assert_eq!(line(&summary), all);
    assert!(summary["bytes_sent"].as_u64().unwrap() > 1000, "{summary}");
    let per_command = sql(
        db,
        "SELECT w.command, count(*), sum(c.bytes_acked), sum(c.bytes_received)
         FROM connections c JOIN (SELECT DISTINCT connection, command FROM owners) w
           ON w.connection = c.id
         GROUP BY w.command ORDER BY w.command",
    );
    let mut ours: Vec<String> = summary["processes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| !p["command"].as_str().unwrap().starts_with('('))
        .map(|p| format!("{}|{}", p["command"].as_str().unwrap(), line(p)))
        .collect();
    ours.sort();
    assert_eq!(ours.join("\n"), per_command);
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
    testkit::assert_success!(out);
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
            "SELECT count(*) FROM connections c JOIN sightings s ON s.connection = c.id
             WHERE c.first_seen <= {t} AND coalesce(c.closed_at, s.last_seen) >= {t}"
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
    // The last one, through the spans and the lifetime index, counts
    // what the whole table says (at a whole second: unixepoch's).
    let second = t / 1000 * 1000;
    let counted = sql(
        db,
        &examples[2]
            .replace(":at", &format!("'{}'", at(second)))
            .replace(":port", &a.to_string()),
    );
    let everything = sql(
        db,
        &format!(
            "SELECT count(*) FROM connections c JOIN sightings s ON s.connection = c.id
             WHERE c.remote_port = {a} AND c.first_seen <= {second}
               AND coalesce(c.closed_at, s.last_seen) >= {second}"
        ),
    );
    assert_ne!(everything, "0");
    assert_eq!(counted, everything);
}

/// The SQL blocks of a document (```sql ... ```).
fn examples(doc: &str) -> Vec<String> {
    let mut out = Vec::new();
    let section = doc
        .find("## Querying the file directly")
        .expect("docs/history.md's section of example queries");
    let mut rest = &doc[section..];
    while let Some(start) = rest.find("```sql\n") {
        let body = &rest[start + 7..];
        let end = body.find("```").unwrap();
        out.push(body[..end].to_string());
        rest = &body[end..];
    }
    out
}
