//! Running `tcptab record` and asking `tcptab history`, with `sqlite3` as
//! the oracle for the file.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tcptab::time::format_rfc3339;

/// A fresh directory for one test's database.
pub fn scratch(test: &str) -> testkit::Scratch {
    testkit::Scratch::new(&format!("history-{test}"))
}

/// A fresh directory for one test's recording, and the recording's path in
/// it (`h.db`).
pub fn scratch_db(test: &str) -> (testkit::Scratch, PathBuf) {
    let dir = scratch(test);
    let db = dir.join("h.db");
    (dir, db)
}

/// The ledger scenario (`ledger.py`) writing what it does to
/// `dir/ledger.jsonl`: the scenario, its pid, and the ledger's path.
pub fn ledger_scenario(dir: &Path) -> (testkit::Scenario, String, PathBuf) {
    let ledger = dir.join("ledger.jsonl");
    let scenario = testkit::Scenario::start_with("ledger.py", &[ledger.to_str().unwrap()]);
    let pid = scenario.pid().to_string();
    (scenario, pid, ledger)
}

/// `sqlite3 DB SQL`: its output, trimmed.
pub fn sql(db: &Path, query: &str) -> String {
    let out = testkit::tool("sqlite3")
        .arg(db)
        .arg(query)
        .output()
        .expect("running sqlite3 (apt install sqlite3)");
    testkit::assert_success!(out, "sqlite3 {query}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Start `tcptab record --db DB ARGS`.
pub fn record(db: &Path, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_tcptab"))
        .arg("record")
        .arg("--db")
        .arg(db)
        .args(args)
        .stdin(Stdio::null())
        .spawn()
        .expect("starting tcptab record")
}

/// Wait until the database has `n` polls.
pub fn wait_polls(db: &Path, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let polls = db
            .exists()
            .then(|| {
                testkit::tool("sqlite3")
                    .arg(db)
                    .arg("SELECT count(*) FROM polls")
                    .output()
                    .ok()
            })
            .flatten()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or(0);
        if polls >= n {
            return;
        }
        assert!(Instant::now() < deadline, "{} polls in {}", n, db.display());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Stop a recorder with SIGTERM: it finishes its poll and exits 0.
pub fn stop(mut recorder: Child) {
    super::signal(&recorder, "-TERM");
    let status = recorder.wait().unwrap();
    assert!(status.success(), "record exited with {status}");
}

/// `tcptab history --db DB ARGS --format json`: the rows, and stderr.
pub fn history(db: &Path, args: &[&str]) -> (Vec<Value>, String) {
    let mut all = vec!["history", "--db", db.to_str().unwrap()];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--format", "json"]);
    let out = super::tcptab(&all);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "tcptab {all:?}: {stderr}");
    let rows = super::strict_json(std::str::from_utf8(&out.stdout).unwrap()).unwrap();
    (rows.as_array().unwrap().clone(), stderr)
}

pub fn at(t: i64) -> String {
    format_rfc3339(t)
}
