//! Every JSON document says which machine it is about: the host name, the
//! machine id and the boot id, as the machine itself says them.

mod common;

use common::recorder::{history, record, scratch_db, stop, wait_polls};
use common::{json, tcptab_line};

/// What the machine says: `uname -n` (coreutils, always there),
/// /etc/machine-id and the boot id.
fn expected() -> serde_json::Value {
    let line = |path: &str| {
        std::fs::read_to_string(path)
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let hostname = std::process::Command::new("uname")
        .arg("-n")
        .output()
        .expect("uname");
    serde_json::json!({
        "hostname": String::from_utf8(hostname.stdout).unwrap().trim(),
        "machine_id": line("/etc/machine-id"),
        "boot_id": line("/proc/sys/kernel/random/boot_id"),
    })
}

#[test]
fn every_document_names_its_host() {
    let host = expected();
    assert!(host["boot_id"].is_string(), "{host}");
    let summary = json(&["summary", "--format", "json"]);
    assert_eq!(summary["host"], host);
    let out = tcptab_line("explain --diagnose --format json --fail-on never");
    let diagnose: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(diagnose["host"], host);
    let out = tcptab_line("top --format jsonl --count 1 --interval 100ms");
    let frame: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(frame["host"], host);
}

/// A history record names the machine that recorded it, in its boot.
#[test]
fn history_records_name_the_recording_host() {
    testkit::needs_root!();
    let host = expected();
    // A listener of this test's own, so that there is a connection to keep.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (dir, db) = scratch_db("host");
    let recorder = record(&db, &["--interval", "200ms"]);
    wait_polls(&db, 2);
    stop(recorder);
    let (rows, _) = history(
        &db,
        &["--between", "-1h", "now", &format!("sport = :{port}")],
    );
    assert_eq!(rows.len(), 1, "{rows:?}");
    for key in ["hostname", "machine_id", "boot_id"] {
        assert_eq!(rows[0][key], host[key], "{key}: {}", rows[0]);
    }
    drop(listener);
    let _ = std::fs::remove_dir_all(&dir);
}
