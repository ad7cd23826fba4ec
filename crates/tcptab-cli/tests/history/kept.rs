//! A recorder keeps its owner scan from poll to poll (a host where
//! nothing changes need not read every process's descriptors each time)
//! and brings it up to date reading again only the tables of the
//! processes that ran: a connection opened meanwhile by a process already
//! there, a process forked to hold it too, and a connection whose
//! descriptor numbers its process closed and gave again while the child
//! still holds the old sockets, all get their owners.

use super::*;

/// Reading `/proc` (`TCPTAB_OWNER_SCAN=proc`): the kept scan brought up
/// to date.
#[test]
fn owners_are_found_while_the_scan_is_kept() {
    owners_are_found(true);
}

/// Walking the kernel's task files where that can be done (as root): a
/// new walk each poll finds the same owners.
#[test]
fn owners_are_found_walking_each_poll() {
    owners_are_found(false);
}

fn owners_are_found(reading_proc: bool) {
    let Some(mut scenario) = testkit::live("driver.py") else { return };
    let pid = scenario.pid();
    let (dir, db) = scratch_db(if reading_proc { "kept" } else { "walked" });
    // -v: each poll's line says whether its owners came from a kept scan.
    let log = dir.join("record.log");
    let mut recorder = Command::new(env!("CARGO_BIN_EXE_tcptab"));
    if reading_proc {
        recorder.env("TCPTAB_OWNER_SCAN", "proc");
    }
    let recorder = recorder
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
    // The parent closes its copies of a (the child holds them on) and
    // opens b, whose descriptors take a's numbers: a link the scan before
    // read, to a socket still in the table, that now holds another.
    scenario.command("close a");
    let port_b: u64 = scenario.command("open b")[3..].parse().unwrap();
    wait_polls(&db, polls(&db) + 4);
    stop(recorder);
    let log = std::fs::read_to_string(&log).unwrap();
    // The poll that first saw a connection brought an earlier poll's
    // scan up to date: the path this test is about was taken.
    let rescanned_and_opened = log.lines().any(|l| {
        l.contains("owners from an earlier poll's scan brought up to date")
            && l.split(", ")
                .any(|part| part.ends_with(" opened") && part != "0 opened")
    });
    if reading_proc {
        assert!(
            rescanned_and_opened,
            "no poll opened a connection on a rescan:\n{log}"
        );
    } else if tcptab::OwnerScan::walk_unavailable().is_none() {
        let walked = log
            .lines()
            .filter(|l| l.ends_with(", owners from one walk of the kernel's task files"))
            .count();
        assert!(walked > 4, "no poll walked:\n{log}");
    }
    let last: i64 = sql(&db, "SELECT max(at) FROM polls").parse().unwrap();
    let (rows, _) = history(&db, &["--at", &at(last)]);
    let both = ends(&rows, port);
    assert_eq!(both.len(), 2, "{rows:#?}");
    for end in &both {
        assert_eq!(end["owner_status"], "owned", "{end}");
        let pids: Vec<u64> = common::items(&end["owners"])
            .map(|o| o["pid"].as_u64().unwrap())
            .collect();
        assert!(pids.contains(&u64::from(pid)), "{end}");
        assert!(pids.contains(&u64::from(child)), "{end}");
    }
    // b is the parent's alone (the child was forked before it).
    let pids_of = |port: u64| -> Vec<Vec<u64>> {
        ends(&rows, port)
            .iter()
            .map(|end| {
                let mut pids: Vec<u64> = common::items(&end["owners"])
                    .map(|o| o["pid"].as_u64().unwrap())
                    .collect();
                pids.dedup();
                pids
            })
            .collect()
    };
    assert_eq!(pids_of(port_b), [[u64::from(pid)]; 2], "{rows:#?}");
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
