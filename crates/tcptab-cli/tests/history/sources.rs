//! Both sources record what ss sees on a table of every row shape.

use super::*;

#[test]
fn both_sources_record_what_ss_sees_on_a_mixed_table() {
    // Every state and all three row shapes (TIME_WAIT, SYN_RECV requests).
    let Some(scenario) = testkit::live("sockets.py") else { return };
    let pid = scenario.pid().to_string();
    let dir = scratch("sources");
    let validator = common::schema("history-record");
    let ss: std::collections::BTreeSet<(String, String)> = scenario
        .ss(&[])
        .into_iter()
        .map(|r| (r.local, r.peer))
        .collect();
    for source in ["netlink", "proc"] {
        let db = dir.join(format!("{source}.db"));
        let args = [
            "--netns-pid",
            &pid,
            "--source",
            source,
            "--interval",
            "0.3",
            "--count",
            "3",
        ];
        let status = record(&db, &args).wait().unwrap();
        assert!(status.success());
        let last: i64 = sql(&db, "SELECT max(at) FROM polls").parse().unwrap();
        let (rows, _) = history(&db, &["--at", &at(last)]);
        let seen: std::collections::BTreeSet<(String, String)> = rows
            .iter()
            .filter(|r| r["last_seen"] == at(last))
            .map(|r| {
                let end = |a: &str, p: &str| {
                    testkit::endpoint(std::net::SocketAddr::new(
                        r[a].as_str().unwrap().parse().unwrap(),
                        r[p].as_u64().unwrap() as u16,
                    ))
                };
                (
                    end("local_address", "local_port"),
                    end("remote_address", "remote_port"),
                )
            })
            .collect();
        assert_eq!(seen, ss, "{source}: the last poll against ss -tan");
        let kinds: std::collections::BTreeSet<&str> =
            rows.iter().map(|r| r["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds.len(), 3, "{source}: {kinds:?}");
        for row in &rows {
            common::conforms(&validator, row, source);
            assert_eq!(row["source"], source);
            assert_eq!(row["cookie"].is_null(), source == "proc", "{row}");
        }
        for format in ["jsonl", "csv", "table"] {
            let out = common::tcptab(&[
                "history",
                "--db",
                db.to_str().unwrap(),
                "--at",
                &at(last),
                "--format",
                format,
            ]);
            assert!(out.status.success());
            let lines = String::from_utf8(out.stdout).unwrap().lines().count();
            let header = usize::from(format != "jsonl");
            assert_eq!(lines, rows.len() + header, "{source} {format}");
        }
    }
}
