//! Times, files and states as a user types them: relative times, the
//! README's examples, a read-only mount, a FIFO, another program's file.

use super::*;

#[test]
fn times_files_and_states_as_a_user_types_them() {
    testkit::needs_root!();
    let (dir, db) = scratch_db("typed");
    let (mut scenario, pid, _) = ledger_scenario(&dir);
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
    // The moment the connection was established, as a time of day with
    // its offset (the latest such moment) and as Unix time: the same
    // connections as in RFC 3339.
    let rfc = tcptab::time::format_rfc3339(established);
    let seconds = format!("@{}.{:03}", established / 1000, established % 1000);
    let answer = |moment: &str| {
        let out = common::tcptab(&[
            "history", "--db", db_arg, "--at", moment, "--format", "jsonl",
        ]);
        testkit::assert_success!(out);
        String::from_utf8(out.stdout).unwrap()
    };
    let expected = answer(&rfc);
    assert!(
        expected.contains(&format!("\"local_port\":{port},")),
        "{expected}"
    );
    for moment in [&rfc[11..], &seconds] {
        assert_eq!(answer(moment), expected, "--at {moment} against --at {rfc}");
    }
    // An interval of two times of day around it (the second the first
    // such moment after the first), as the same interval in RFC 3339.
    let between = |a: &str, b: &str| {
        let out = common::tcptab(&[
            "history",
            "--db",
            db_arg,
            "--between",
            a,
            b,
            "--format",
            "jsonl",
        ]);
        testkit::assert_success!(out);
        String::from_utf8(out.stdout).unwrap()
    };
    let (a, b) = (
        tcptab::time::format_rfc3339(established - 1000),
        tcptab::time::format_rfc3339(established + 1000),
    );
    let expected = between(&a, &b);
    assert!(
        expected.contains(&format!("\"local_port\":{port},")),
        "{expected}"
    );
    assert_eq!(between(&a[11..], &b[11..]), expected, "--between {a} {b}");
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
    testkit::assert_success!(out);
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
    for (update, named) in [
        // A number no state has (the file stores states as numbers).
        ("state = 300", "column state: \"300\""),
        // Text that is not UTF-8.
        (
            "local_address = CAST(x'ff41' AS TEXT)",
            "column local_address",
        ),
    ] {
        std::fs::copy(db, &bad).unwrap();
        sql(
            &bad,
            &format!("UPDATE connection_rows SET {update} WHERE id = 2"),
        );
        let out = common::tcptab(&["history", "--db", bad.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains(&format!("table connections, row 2, {named}")),
            "{stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
}
