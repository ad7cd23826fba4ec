//! A killed recorder, the retention window, namespaces that come and go,
//! an unprivileged recorder.

use super::*;

#[test]
fn a_killed_recorder_leaves_a_whole_file() {
    let Some(mut scenario) = testkit::live("lifetimes.py") else { return };
    let pid = scenario.pid().to_string();
    let (_dir, db) = scratch_db("killed");
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
    // The file read without tcptab (its `sightings` view, as
    // docs/history.md queries it) answers the same, though no recorder
    // wrote the last poll's time into the rows it followed.
    let open_then: usize = sql(
        &db,
        &format!(
            "SELECT count(*) FROM connections c JOIN sightings s ON s.connection = c.id
             WHERE c.first_seen <= {last_at} AND coalesce(c.closed_at, s.last_seen) >= {last_at}"
        ),
    )
    .parse()
    .unwrap();
    assert_eq!(open_then, rows.len());
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
    let args = ["--netns-pid", &pid, "--interval", "0.1", "--count", "2"];
    let again = record(&db, &args).wait().unwrap();
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
    let (_dir, db) = scratch_db("retention");
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
    testkit::needs_root!();
    let (_dir, db) = scratch_db("netns");
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
    testkit::assert_success!(out);
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
