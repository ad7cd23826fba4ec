//! Bad input named, and a moment that was not recorded said so.

use super::*;

#[test]
fn bad_input_is_named_and_an_unrecorded_moment_is_said() {
    let (dir, db) = scratch_db("bad");
    let status = record(&db, &["--count", "1", "--no-owners"])
        .wait()
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

/// A bad `TCPTAB_FLEET_KEYS_SENT` is one line naming it, before any
/// store is asked (the URL here answers nothing).
#[test]
fn a_bad_keys_limit_is_named() {
    let out = Command::new(env!("CARGO_BIN_EXE_tcptab"))
        .args([
            "history",
            "--clickhouse",
            "http://127.0.0.1:1/",
            "--at",
            "now",
        ])
        .env("TCPTAB_FLEET_KEYS_SENT", "many")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(
        stderr.trim(),
        "error: TCPTAB_FLEET_KEYS_SENT: 'many' is not a whole number of keys (the default is 1000000)"
    );
}
