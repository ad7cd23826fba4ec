//! `tcptab list` on captured roots: snapshots of each format, JSON and CSV
//! read back, output options; every error path with a corrupted input in
//! input.rs.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[path = "../common/mod.rs"]
mod common;
mod input;
use common::{ok_line, tcptab};

fn capture() -> PathBuf {
    testkit::repo_root().join("testdata/6.18.44-sockets")
}

fn spec() -> PathBuf {
    testkit::repo_root().join("testdata/spec-vectors")
}

fn ok(args: &[&str]) -> String {
    let out = tcptab(args);
    testkit::assert_success!(out, "tcptab {args:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// Exit status 2 and exactly one line on stderr, starting `error: `.
fn fails(args: &[&str]) -> String {
    let out = tcptab(args);
    assert_eq!(out.status.code(), Some(2), "tcptab {args:?}");
    assert!(
        out.stdout.is_empty(),
        "nothing printed as if it were fine: {:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "one-line error: {err}");
    assert!(err.starts_with("error: "), "{err}");
    err
}

fn root_arg(p: &Path) -> String {
    p.display().to_string()
}

/// An empty root of the given name, with its `net` folder.
fn tempdir(name: &str) -> testkit::Scratch {
    let dir = testkit::Scratch::new(&format!("cli-{name}"));
    std::fs::create_dir_all(dir.join("net")).unwrap();
    dir
}

#[test]
fn proc_format_is_cat_of_the_tables() {
    for root in [capture(), spec()] {
        let out = ok(&["list", "--root", &root_arg(&root), "--format", "proc"]);
        let mut cat = std::fs::read_to_string(root.join("net/tcp")).unwrap();
        cat.push_str(&std::fs::read_to_string(root.join("net/tcp6")).unwrap());
        assert_eq!(out, cat, "{}", root.display());
    }
}

#[test]
fn plain_tcptab_is_list() {
    let root = root_arg(&capture());
    assert_eq!(ok(&["--root", &root]), ok(&["list", "--root", &root]));
}

#[test]
fn table_format_snapshot() {
    insta::assert_snapshot!(ok(&["list", "--root", &root_arg(&capture())]));
    insta::assert_snapshot!("spec_table", ok(&["list", "--root", &root_arg(&spec())]));
}

#[test]
fn json_format_snapshot_and_keys() {
    let out = ok(&["list", "--root", &root_arg(&spec()), "--format", "json"]);
    let value: serde_json::Value = serde_json::from_str(&out).unwrap();
    let array = value.as_array().unwrap();
    assert_eq!(array.len(), 36);
    let keys = "family state local_address local_port remote_address remote_port \
                tx_queue rx_queue timer uid inode";
    for key in keys.split_whitespace() {
        assert!(
            array.iter().all(|o| o.get(key).is_some()),
            "every object has {key}"
        );
    }
    // The first IPv6 mapped row: compressed text addresses.
    let mapped = array
        .iter()
        .find(|o| o["local_address"] == "::ffff:192.168.1.10" && o["state"] == "ESTABLISHED")
        .unwrap();
    assert_eq!(mapped["family"], "ipv6");
    assert_eq!(mapped["local_port"], 8080);
    let tw = array.iter().find(|o| o["kind"] == "time_wait").unwrap();
    assert_eq!(tw["timer"], "time_wait");
    assert!(tw["rto_ms"].is_null());
    assert_eq!(
        ok(&["list", "--root", &root_arg(&spec()), "--json"]),
        out,
        "--json is --format json"
    );
    insta::assert_snapshot!(out);
}

#[test]
fn jsonl_and_csv_read_back() {
    let root = root_arg(&spec());
    let json: serde_json::Value =
        serde_json::from_str(&ok(&["list", "--root", &root, "--format", "json"])).unwrap();
    let jsonl = ok(&["list", "--root", &root, "--format", "jsonl"]);
    let lines: Vec<serde_json::Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(serde_json::Value::Array(lines), json);

    let csv = ok(&["list", "--root", &root, "--format", "csv"]);
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let headers = reader.headers().unwrap().clone();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 36);
    let col = |name: &str| headers.iter().position(|h| h == name).unwrap();
    for (row, obj) in rows.iter().zip(json.as_array().unwrap()) {
        assert_eq!(row[col("state")], *obj["state"].as_str().unwrap());
        assert_eq!(
            row[col("local_address")],
            *obj["local_address"].as_str().unwrap()
        );
        assert_eq!(row[col("inode")], obj["inode"].to_string());
    }
    insta::assert_snapshot!(csv);
}

#[test]
fn empty_tables_still_have_headers() {
    let dir = tempdir("empty");
    std::fs::write(
        dir.join("net/tcp"),
        tcptab::procnet::header(tcptab::Family::Ipv4),
    )
    .unwrap();
    let root = root_arg(&dir);
    assert_eq!(ok(&["--root", &root, "--format", "json"]).trim(), "[]");
    let csv = ok(&["--root", &root, "--format", "csv"]);
    assert!(csv.starts_with("family,kind,sl,state,"), "{csv}");
    assert_eq!(csv.lines().count(), 1);
    assert_eq!(
        ok(&["--root", &root, "--format", "proc"]),
        tcptab::procnet::header(tcptab::Family::Ipv4)
    );
}

#[test]
fn closed_pipe_ends_quietly() {
    // A reader that closes at once: like `tcptab | head -1`, for every
    // command and format that prints.
    let root = root_arg(&spec());
    let line = "   0: 0100007F:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0";
    let runs: Vec<Vec<&str>> = vec![
        vec!["list", "--root", &root, "--format", "jsonl"],
        vec!["list", "--root", &root, "--format", "json"],
        vec!["list", "--root", &root, "--format", "csv"],
        vec!["list", "--root", &root, "--format", "proc"],
        vec!["list", "--root", &root],
        vec!["summary", "--root", &root, "--format", "json"],
        vec!["summary", "--root", &root],
        vec!["explain", line, "--format", "json"],
        vec!["explain", line],
        vec!["explain", "--diagnose", "--root", &root, "--format", "json"],
        vec!["schema", "record"],
        vec!["man"],
        vec!["completions", "bash"],
    ];
    for args in runs {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tcptab"))
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success() || out.status.code() == Some(1),
            "{args:?}: {:?}",
            out.status
        );
        testkit::assert_quiet(&out, &format!("{args:?}"));
    }
}

#[test]
fn source_choice_on_a_captured_root() {
    let root = root_arg(&capture());
    // auto reads a captured root from its files, and says so under -v.
    let out = ok_line(&format!("list --root {root} -v --format json"));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("source: proc (a captured root is read from its files)"),
        "{err}"
    );
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(rows
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["source"] == "proc"));
    // An explicit netlink choice cannot read a capture: an error.
    let err = fails(&["list", "--root", &root, "--source", "netlink"]);
    assert!(
        err.contains("--source netlink cannot read a captured --root"),
        "{err}"
    );
    // -i on /proc data says what is missing.
    let out = tcptab(&["list", "--root", &root, "-i"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("-i and -m need the netlink source"));
}

#[test]
fn sorted_proc_output_keeps_every_table_with_its_header() {
    // An empty tcp6 (no IPv6 sockets) still has its header, sorted or not.
    let dir = tempdir("sorted-proc");
    std::fs::copy(spec().join("net/tcp"), dir.join("net/tcp")).unwrap();
    std::fs::write(
        dir.join("net/tcp6"),
        tcptab::procnet::header(tcptab::Family::Ipv6),
    )
    .unwrap();
    let root = root_arg(&dir);
    let plain = ok(&["--root", &root, "--format", "proc"]);
    let sorted = ok(&["--root", &root, "--format", "proc", "--sort", "state"]);
    for out in [&plain, &sorted] {
        let headers: Vec<&str> = out
            .lines()
            .filter(|l| tcptab::procnet::is_header(l.as_bytes()))
            .collect();
        assert_eq!(headers.len(), 2, "{out}");
        assert!(
            out.trim_end().ends_with("inode"),
            "the tcp6 header comes last: {out}"
        );
    }
    assert_eq!(plain.lines().count(), sorted.lines().count());
    // Sorted by state within the table.
    let states: Vec<u8> = sorted
        .lines()
        .filter(|l| !tcptab::procnet::is_header(l.as_bytes()))
        .map(|l| {
            tcptab::procnet::parse_line(l.as_bytes(), tcptab::procnet::ByteOrder::native())
                .unwrap()
                .state
                .code()
        })
        .collect();
    assert!(states.windows(2).all(|w| w[0] <= w[1]), "{states:?}");
}

#[test]
fn colour_only_when_asked_and_columns_still_line_up() {
    let root = root_arg(&spec());
    let plain = ok(&["--root", &root, "--color", "never"]);
    assert!(!plain.contains('\x1b'));
    let colour = ok(&["--root", &root, "--color", "always", "-p"]);
    assert!(colour.contains("\x1b[1;31mCLOSE_WAIT\x1b[0m"), "{colour}");
    assert!(colour.contains("\x1b[32mLISTEN\x1b[0m"), "{colour}");
    // Without the escapes, the same text as without colour.
    let mut stripped = String::new();
    let mut rest = colour.as_str();
    while let Some(at) = rest.find('\x1b') {
        stripped.push_str(&rest[..at]);
        let end = rest[at..].find('m').unwrap();
        rest = &rest[at + end + 1..];
    }
    stripped.push_str(rest);
    assert_eq!(stripped, ok(&["--root", &root, "--color", "never", "-p"]));
    // Not on a pipe by default, nor with NO_COLOR.
    assert!(!ok(&["--root", &root]).contains('\x1b'));
    let out = Command::new(env!("CARGO_BIN_EXE_tcptab"))
        .args(["--root", &root])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&out.stdout).contains('\x1b'));
}

#[test]
fn src_and_dst_options_take_what_the_filter_words_take() {
    let root = root_arg(&capture());
    for (option, value) in [
        ("--src", "localhost"),
        ("--dst", "127.0.0.1"),
        ("--src", "[::1]"),
        ("--src", "127/8"),
        ("--dst", "[::ffff:127.0.0.1]"),
        ("--src", "127.0.0.1:*"),
        ("--dst", "*:*"),
    ] {
        let word = &option[2..];
        let by_option = ok(&["--root", &root, option, value]);
        let by_word = ok(&["--root", &root, word, value]);
        assert_eq!(by_option, by_word, "{option} {value}");
    }
    // Some of them select something.
    assert!(ok(&["--root", &root, "--src", "localhost"]).lines().count() > 3);
    for (value, says) in [
        ("[::1", "missing ']'"),
        ("::1]", "not an address"),
        ("nosuchhost.invalid", "/etc/hosts"),
        ("10.0.0.0/40", "longer than 32"),
    ] {
        let err = fails(&["--root", &root, "--src", value]);
        assert!(
            err.starts_with("error: --src: ") && err.contains(says),
            "{value}: {err}"
        );
    }
}
