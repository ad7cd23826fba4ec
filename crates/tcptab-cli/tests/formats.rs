//! Every output format from every source, on a live namespace that mixes
//! all three row shapes (LISTEN with a queue, ESTABLISHED, TIME_WAIT,
//! SYN_RECV request sockets, CLOSE_WAIT, IPv6): each combination of
//! format x source x column set x namespace option exits 0, parses back with
//! a real parser (serde_json with repeated keys refused, the csv crate, the
//! kernel format's own parser), and holds as many sockets as `ss -tan` in
//! that namespace.

use std::collections::BTreeSet;

mod common;

use common::{strict_json, tcptab};
use serde_json::Value;
use testkit::Scenario;

#[test]
fn strict_json_finds_a_repeated_key() {
    assert!(strict_json(r#"{"a":1,"b":{"a":2}}"#).is_ok());
    let e = strict_json(r#"{"a":1,"timer_ms":2,"timer_ms":3}"#).unwrap_err();
    assert!(e.contains("\"timer_ms\" repeated"), "{e}");
}

/// The namespace's inode, as the records' `netns` field gives it.
fn netns_inode(pid: u32) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/{pid}/ns/net"))
        .unwrap()
        .ino()
}

/// The sockets of `out` that belong to the scenario's namespace, checked
/// to parse back. Returns their count.
fn count(format: &str, out: &str, inode: u64, all_netns: bool, what: &str) -> usize {
    let ours = |r: &Value| !all_netns || r["netns"] == inode;
    match format {
        "json" => {
            let rows = strict_json(out).unwrap_or_else(|e| panic!("{what}: {e}"));
            let rows = rows
                .as_array()
                .unwrap_or_else(|| panic!("{what}: not an array"));
            for r in rows {
                record_sanity(r, what);
            }
            rows.iter().filter(|r| ours(r)).count()
        }
        "jsonl" => {
            let mut n = 0;
            for line in out.lines() {
                let r = strict_json(line).unwrap_or_else(|e| panic!("{what}: {e}: {line}"));
                record_sanity(&r, what);
                n += ours(&r) as usize;
            }
            n
        }
        "csv" => {
            // The csv crate refuses rows of another width than the header.
            let mut reader = csv::Reader::from_reader(out.as_bytes());
            let header = reader.headers().unwrap().clone();
            let names: BTreeSet<&str> = header.iter().collect();
            assert_eq!(names.len(), header.len(), "{what}: a column twice");
            let netns_col = header.iter().position(|h| h == "netns");
            let mut n = 0;
            for row in reader.records() {
                let row = row.unwrap_or_else(|e| panic!("{what}: {e}"));
                assert_eq!(row.len(), header.len(), "{what}");
                let here = netns_col.is_none_or(|i| row[i] == inode.to_string());
                n += (!all_netns || here) as usize;
            }
            n
        }
        "proc" => {
            // Every line is the kernel's text: a header or a row that the
            // parser reads back. Namespaces are not labelled in this format.
            let mut n = 0;
            for line in out.lines() {
                if tcptab::procnet::is_header(line.as_bytes()) {
                    continue;
                }
                tcptab::procnet::parse_line(line.as_bytes(), tcptab::procnet::ByteOrder::native())
                    .unwrap_or_else(|e| panic!("{what}: {e}: {line:?}"));
                n += 1;
            }
            n
        }
        "table" => {
            let mut lines = out.lines();
            let header = lines.next().unwrap_or_else(|| panic!("{what}: no header"));
            assert!(header.starts_with("State"), "{what}: {header}");
            // The namespace is the sixth cell (State, Recv-Q, Send-Q and
            // the two addresses have no spaces); blocks of rows are each
            // aligned, so columns are not found by the header's offsets.
            assert!(
                !all_netns || header.split_whitespace().nth(7) == Some("Netns"),
                "{what}: {header}"
            );
            lines
                .filter(|l| {
                    !all_netns || l.split_whitespace().nth(5) == Some(inode.to_string().as_str())
                })
                .count()
        }
        other => panic!("{other}"),
    }
}

/// What every record must hold, whatever its shape and source.
fn record_sanity(r: &Value, what: &str) {
    let source = r["source"]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: {r}"));
    assert!(source == "netlink" || source == "proc", "{what}: {r}");
    // The same keys for every row shape: a TIME_WAIT row has tcp_info and
    // memory keys too (null), and nothing a full row lacks.
    for key in [
        "kind", "state", "timer_ms", "tcp_info", "memory", "cookie", "refcount",
    ] {
        assert!(r.get(key).is_some(), "{what}: {key} missing in {r}");
    }
    if r["kind"] != "full" {
        assert!(r["tcp_info"].is_null(), "{what}: {r}");
        assert!(r["rto_ms"].is_null(), "{what}: {r}");
    }
    if source == "proc" {
        assert!(
            r["tcp_info"].is_null() && r["cookie"].is_null(),
            "{what}: {r}"
        );
    } else {
        assert!(
            r["refcount"].is_null() && r["cookie"].is_u64(),
            "{what}: {r}"
        );
    }
}

#[test]
fn every_format_from_every_source_on_a_live_mixed_table() {
    let Some(scenario) = testkit::live("sockets.py") else { return };
    let pid = scenario.pid().to_string();
    let inode = netns_inode(scenario.pid());
    let ss = scenario.ss(&[]).len();
    let shapes: BTreeSet<&str> = scenario
        .manifest
        .sockets
        .iter()
        .map(|e| e.kind.as_deref().unwrap_or("full"))
        .collect();
    assert_eq!(
        shapes.len(),
        3,
        "the scene mixes all row shapes: {shapes:?}"
    );
    let columns: [&[&str]; 4] = [&[], &["-p"], &["-i", "-m"], &["-e", "-o"]];
    let mut runs = 0;
    for format in ["table", "json", "jsonl", "csv", "proc"] {
        for source in ["netlink", "proc"] {
            for cols in columns {
                for namespaces in [&["--netns-pid", pid.as_str()][..], &["--all-netns"]] {
                    let mut args = vec!["list", "--format", format, "--source", source];
                    args.extend_from_slice(cols);
                    args.extend_from_slice(namespaces);
                    let what = args.join(" ");
                    let out = tcptab(&args);
                    testkit::assert_success!(out, "{what}");
                    let text = String::from_utf8(out.stdout).unwrap();
                    let all = namespaces[0] == "--all-netns";
                    let n = count(format, &text, inode, all, &what);
                    if all && format == "proc" {
                        // Every namespace's tables, unlabelled: at least ours.
                        assert!(n >= ss, "{what}: {n} rows, ss has {ss}");
                    } else {
                        assert_eq!(n, ss, "{what}: rows against ss -tan");
                    }
                    runs += 1;
                }
            }
        }
    }
    assert_eq!(runs, 80);
    one_family_is_its_table_alone(&scenario, &pid, inode);
}

/// `-4` or `-6`: that family's table alone (one header), as many rows as
/// `ss -tan -4` or `-6`, from either source.
fn one_family_is_its_table_alone(scenario: &Scenario, pid: &str, inode: u64) {
    for (flag, header) in [("-4", "rem_address"), ("-6", "remote_address")] {
        let n = scenario.ss(&[flag]).len();
        assert!(n > 0, "the scene has {flag} sockets");
        for source in ["netlink", "proc"] {
            let args = [
                "list",
                "--format",
                "proc",
                "--source",
                source,
                flag,
                "--netns-pid",
                pid,
            ];
            let what = args.join(" ");
            let out = String::from_utf8(tcptab(&args).stdout).unwrap();
            let headers: Vec<&str> = out
                .lines()
                .filter(|l| tcptab::procnet::is_header(l.as_bytes()))
                .collect();
            assert!(
                headers.len() == 1 && headers[0].contains(header),
                "{what}: {out}"
            );
            assert_eq!(count("proc", &out, inode, false, &what), n, "{what}");
        }
    }
}

#[test]
fn live_output_follows_the_published_schemas() {
    testkit::needs_root!();
    let record = common::schema("record");
    let summary = common::schema("summary");
    let diagnose = common::schema("diagnose");
    // The schemas can fail: a key too many, a wrong type, a missing key.
    let good = common::json_line("list --format json --source proc");
    let mut bad = good[0].clone();
    bad["extra"] = 1.into();
    assert!(!record.is_valid(&bad));
    let mut bad = good[0].clone();
    bad["local_port"] = "22".into();
    assert!(!record.is_valid(&bad));
    let mut bad = good[0].clone();
    bad.as_object_mut().unwrap().remove("state");
    assert!(!record.is_valid(&bad));

    let scenario = Scenario::start("sockets.py");
    let pid = scenario.pid().to_string();
    for source in ["netlink", "proc"] {
        for extra in [&[][..], &["-p"], &["--all-netns", "-p"]] {
            let mut args = vec![
                "list",
                "--netns-pid",
                &pid,
                "--source",
                source,
                "--format",
                "jsonl",
            ];
            if extra.first() == Some(&"--all-netns") {
                args.drain(1..3);
            }
            args.extend_from_slice(extra);
            let out = tcptab(&args);
            assert!(out.status.success(), "{args:?}");
            for line in String::from_utf8(out.stdout).unwrap().lines() {
                let value = strict_json(line).unwrap();
                common::conforms(&record, &value, &args.join(" "));
            }
        }
        let report = common::json(&[
            "summary",
            "--netns-pid",
            &pid,
            "--source",
            source,
            "-p",
            "--json",
        ]);
        common::conforms(&summary, &report, "summary");
    }
    let trouble = Scenario::start("trouble.py");
    let tpid = trouble.pid().to_string();
    for extra in [&[][..], &["-p"]] {
        let mut args = vec![
            "explain",
            "--diagnose",
            "--netns-pid",
            &tpid,
            "--json",
            "--fail-on",
            "never",
        ];
        args.extend_from_slice(extra);
        let report = common::json(&args);
        assert!(!report["findings"].as_array().unwrap().is_empty());
        common::conforms(&diagnose, &report, &args.join(" "));
    }
}
