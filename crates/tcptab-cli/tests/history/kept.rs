//! A quiet recorder keeps its owner scan from poll to poll (a host where
//! nothing changes need not read every process's descriptors each time):
//! a connection opened meanwhile by a process already there, and a
//! process forked to hold it too, still get their owners.

use super::*;

#[test]
fn owners_are_found_while_the_scan_is_kept() {
    if !require_root("owners_are_found_while_the_scan_is_kept") {
        return;
    }
    let mut scenario = Scenario::start("driver.py");
    let pid = scenario.pid();
    let dir = scratch("kept");
    let db = dir.join("kept.db");
    // -v: each poll's line says whether its owners came from a kept scan.
    let log = dir.join("record.log");
    let recorder = Command::new(env!("CARGO_BIN_EXE_tcptab"))
        .args(["record", "-v", "--db", db.to_str().unwrap()])
        .args(["--netns-pid", &pid.to_string(), "--interval", "0.3"])
        .stdin(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    // Quiet polls: only the listener, the same processes.
    wait_polls(&db, 4);
    let port: u64 = scenario.command("open a")[3..].parse().unwrap();
    let polls = |db: &Path| -> u64 { sql(db, "SELECT count(*) FROM polls").parse().unwrap() };
    wait_polls(&db, polls(&db) + 4);
    let child: u32 = scenario.command("fork")[3..].parse().unwrap();
    wait_polls(&db, polls(&db) + 4);
    stop(recorder);
    // The poll that first saw the connection kept the scan of the quiet
    // ones before it (its sockets were looked up after the dump): the
    // path this test is about was taken.
    let log = std::fs::read_to_string(&log).unwrap();
    let kept_and_opened = log.lines().any(|l| {
        l.contains("owners from an earlier poll's scan")
            && l.split(", ")
                .any(|part| part.ends_with(" opened") && part != "0 opened")
    });
    assert!(
        kept_and_opened,
        "no poll opened a connection on a kept scan:\n{log}"
    );
    let last: i64 = sql(&db, "SELECT max(at) FROM polls").parse().unwrap();
    let (rows, _) = history(&db, &["--at", &at(last)]);
    let both = ends(&rows, port);
    assert_eq!(both.len(), 2, "{rows:#?}");
    for end in &both {
        assert_eq!(end["owner_status"], "owned", "{end}");
        let pids: Vec<u64> = end["owners"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["pid"].as_u64().unwrap())
            .collect();
        assert!(pids.contains(&u64::from(pid)), "{end}");
        assert!(pids.contains(&u64::from(child)), "{end}");
    }
    // The file says the same (sqlite3): both processes hold both ends.
    let held = sql(
        &db,
        &format!(
            "SELECT count(DISTINCT o.pid) || ' ' || count(*) FROM owners o JOIN connections c ON c.id = o.connection
             WHERE c.local_port = {port} OR c.remote_port = {port}"
        ),
    );
    assert_eq!(held, "2 4", "{}", db.display());
}
