//! Every JSON document says which machine it is about: the host name, the
//! machine id and the boot id, as the machine itself says them.

mod common;

use common::{json, tcptab};

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
    let out = tcptab(&[
        "explain",
        "--diagnose",
        "--format",
        "json",
        "--fail-on",
        "never",
    ]);
    let diagnose: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(diagnose["host"], host);
    let out = tcptab(&[
        "top",
        "--format",
        "jsonl",
        "--count",
        "1",
        "--interval",
        "100ms",
    ]);
    let frame: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(frame["host"], host);
}
