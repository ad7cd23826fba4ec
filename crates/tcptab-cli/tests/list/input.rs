//! `tcptab list` on corrupted and odd inputs: every error names the file,
//! the line and the field; `--lenient` skips what it can and says so.

use crate::common::{tcptab, tcptab_line};
use crate::{fails, ok, root_arg, spec, tempdir};

/// A copy of the spec-vector root with one line of net/tcp changed.
fn corrupted(name: &str, line: usize, from: &str, to: &str) -> testkit::Scratch {
    let dir = tempdir(name);
    let tcp = std::fs::read_to_string(spec().join("net/tcp")).unwrap();
    let mut lines: Vec<String> = tcp.lines().map(String::from).collect();
    assert!(lines[line - 1].contains(from), "{}", lines[line - 1]);
    lines[line - 1] = lines[line - 1].replacen(from, to, 1);
    std::fs::write(dir.join("net/tcp"), lines.join("\n") + "\n").unwrap();
    std::fs::copy(spec().join("net/tcp6"), dir.join("net/tcp6")).unwrap();
    dir
}

#[test]
fn every_error_names_file_line_and_field() {
    // (line number, text to replace, replacement, field named)
    let cases = [
        (2, "   0:", "  x0:", "'sl'"),
        (3, "3500007F:0035", "3500007F0035", "'local_address'"),
        (4, ":0050 ", ":00500 ", "'local_port'"),
        (5, "00000000:0000 0A", "0000000:0000 0A", "'rem_address'"),
        (6, "0A 00000000", "0Z 00000000", "'st'"),
        (7, "00000000:00000000", "0000000X:00000000", "'tx_queue'"),
        (8, "00000000:00000000", "00000000:0000000X", "'rx_queue'"),
        (8, "02:000AF2D4", "0X:000AF2D4", "'tr'"),
        (8, "02:000AF2D4", "02:000AF2DZ", "'tm->when'"),
        (9, " 00000000  1000", " 0000000Q  1000", "'retrnsmt'"),
        (9, " 1000 ", " 1e3 ", "'uid'"),
        (9, "  1000        0", "  1000        O", "'timeout'"),
        (9, " 98765 ", " 98x65 ", "'inode'"),
        (9, " 98765 2 ", " 98765 two ", "'ref'"),
        (9, " 0000000000000000 ", " 00000000000000000 ", "'pointer'"),
        (9, " 23 4 30 10 -1", " 23.5 4 30 10 -1", "'rto'"),
        (9, " 23 4 30 10 -1", " 23 4x 30 10 -1", "'ato'"),
        (9, " 23 4 30 10 -1", " 23 4 3O 10 -1", "'quick/pingpong'"),
        (9, " 23 4 30 10 -1", " 23 4 30 -10 -1", "'cwnd'"),
        (9, " 23 4 30 10 -1", " 23 4 30 10 --1", "'ssthresh'"),
        (9, " 23 4 30 10 -1", " 23 4 30 10 -1 99", "'line'"),
        (9, " 23 4 30 10 -1", " 23 4 30", "'cwnd'"),
    ];
    for (i, (line, from, to, field)) in cases.iter().enumerate() {
        let dir = corrupted(&format!("err{i}"), *line, from, to);
        let tcp = dir.join("net/tcp");
        for format in ["table", "json", "jsonl", "csv", "proc"] {
            let err = fails(&["list", "--root", &root_arg(&dir), "--format", format]);
            let at = format!("error: {}:{line}: field {field}", tcp.display());
            assert!(err.starts_with(&at), "{format}: expected {at:?} in {err:?}");
        }
        // Lenient: the bad line is skipped, counted on stderr, the rest listed.
        let out = tcptab(&[
            "list",
            "--root",
            &root_arg(&dir),
            "--lenient",
            "--format",
            "json",
        ]);
        assert!(out.status.success());
        let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(listed.as_array().unwrap().len(), 35, "{from} -> {to}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(
            err.contains("skipped 1 malformed line") && err.contains(field),
            "{err}"
        );
    }
}

#[test]
fn missing_root_and_missing_table() {
    let err = fails(&["list", "--root", "/nonexistent/tcptab-root"]);
    assert!(
        err.contains("/nonexistent/tcptab-root: no such directory"),
        "{err}"
    );
    let dir = tempdir("no-tcp");
    let err = fails(&["list", "--root", &root_arg(&dir)]);
    assert!(err.contains("net/tcp: No such file or directory"), "{err}");
    // No tcp6 (IPv6 disabled) is fine.
    std::fs::copy(spec().join("net/tcp"), dir.join("net/tcp")).unwrap();
    let out = ok(&["list", "--root", &root_arg(&dir), "--format", "proc"]);
    assert_eq!(
        out,
        std::fs::read_to_string(spec().join("net/tcp")).unwrap()
    );
}

#[test]
fn usage_errors_exit_2() {
    let out = tcptab(&["list", "--format", "yaml"]);
    assert_eq!(out.status.code(), Some(2));
    let out = tcptab(&["--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_bad_line_after_output_began_ends_at_a_whole_record() {
    // Enough good rows that more than one 64 KiB block is written before
    // the bad line, then the bad line.
    let dir = tempdir("late-error");
    let mut tcp = testkit::generate::table(tcptab::Family::Ipv4, 3000, 7);
    let good = String::from_utf8_lossy(&tcp).lines().count();
    tcp.extend_from_slice(b"   9: 0100007F:0016 00000000:0000 0Z 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0\n");
    std::fs::write(dir.join("net/tcp"), &tcp).unwrap();
    let root = root_arg(&dir);
    for format in ["json", "jsonl", "csv", "proc"] {
        let out = tcptab(&["list", "--root", &root, "--format", format]);
        assert_eq!(out.status.code(), Some(2), "{format}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{format}: {err}");
        assert!(
            err.contains(&format!(":{}: field 'st'", good + 1)),
            "{format}: {err}"
        );
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.len() > 64 * 1024, "{format}: output had begun");
        // JSON's array writes the separator before each record: its last
        // record ends the output; the other formats end with a newline.
        let end = if format == "json" { '}' } else { '\n' };
        assert!(text.ends_with(end), "{format}: cut inside a record");
        let last = text.lines().last().unwrap();
        match format {
            "json" | "jsonl" => {
                let record = last.strip_prefix(',').unwrap_or(last);
                serde_json::from_str::<serde_json::Value>(record)
                    .unwrap_or_else(|e| panic!("{format}: {e}: {last}"));
            }
            "csv" => {
                let header = text.lines().next().unwrap();
                let pair = format!("{header}\n{last}\n");
                let mut reader = csv::ReaderBuilder::new()
                    .has_headers(false)
                    .from_reader(pair.as_bytes());
                let rows: Vec<_> = reader.records().collect::<Result<_, _>>().unwrap();
                assert_eq!(rows[0].len(), rows[1].len(), "{format}: {last}");
            }
            _ => {
                tcptab::procnet::parse_line(last.as_bytes(), tcptab::procnet::ByteOrder::native())
                    .unwrap_or_else(|e| panic!("{format}: {e}: {last}"));
            }
        }
    }
}

#[test]
fn odd_tables_are_read_and_said_so() {
    let v4_line = "   0: 0100007F:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0";
    // An empty file and a header alone: fine, silently.
    for (name, text) in [
        ("empty", String::new()),
        (
            "header-only",
            tcptab::procnet::header(tcptab::Family::Ipv4).to_string(),
        ),
    ] {
        let dir = tempdir(name);
        std::fs::write(dir.join("net/tcp"), &text).unwrap();
        let out = tcptab(&["list", "--root", &root_arg(&dir), "-v", "--format", "jsonl"]);
        assert!(out.status.success(), "{name}");
        assert!(out.stdout.is_empty(), "{name}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("header"), "{name}: {err}");
    }
    // No header, or another one: listed, and said under -v.
    for (name, text, note) in [
        ("no-header", format!("{v4_line}\n"), "no header line"),
        (
            "odd-header",
            format!("  sl  local remote\n{v4_line}\n"),
            "its header is not the kernel's",
        ),
    ] {
        let dir = tempdir(name);
        std::fs::write(dir.join("net/tcp"), &text).unwrap();
        let out = tcptab(&["list", "--root", &root_arg(&dir), "-v", "--format", "jsonl"]);
        assert!(out.status.success(), "{name}: {out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).lines().count(),
            1,
            "{name}"
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(note) && err.contains("net/tcp"),
            "{name}: {err}"
        );
    }
}

#[test]
fn lenient_skips_lines_of_any_length_and_gives_up_on_garbage() {
    let v4_line = "   0: 0100007F:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0";
    // A long line the buffer holds, and one longer than the buffer.
    for (i, len) in [200_000usize, 1_000_000].into_iter().enumerate() {
        let dir = tempdir(&format!("long-line-{i}"));
        let text = format!(
            "{}{v4_line}\n{}\n{v4_line}\n",
            tcptab::procnet::header(tcptab::Family::Ipv4),
            "z".repeat(len)
        );
        std::fs::write(dir.join("net/tcp"), text).unwrap();
        let root = root_arg(&dir);
        let err = fails(&["list", "--root", &root]);
        assert!(err.contains("/net/tcp:3: field"), "{len}: {err}");
        let out = tcptab_line(&format!("list --root {root} --lenient --format jsonl"));
        assert!(out.status.success(), "{len}: {out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).lines().count(),
            2,
            "{len}"
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("skipped 1 malformed line"), "{len}: {err}");
        assert!(
            err.len() < 400,
            "{len}: the note quotes a short excerpt: {err}"
        );
    }

    // Random bytes: lenient gives up after --max-bad-lines in a row
    // instead of reading forever.
    let dir = tempdir("garbage");
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let garbage: Vec<u8> = (0..4_000_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    std::fs::write(dir.join("net/tcp"), garbage).unwrap();
    let root = root_arg(&dir);
    let (tx, rx) = std::sync::mpsc::channel();
    let args = [
        "list",
        "--root",
        root.as_str(),
        "--lenient",
        "--max-bad-lines",
        "50",
    ]
    .map(String::from);
    std::thread::spawn(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let _ = tx.send(tcptab(&args));
    });
    let out = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("--lenient on garbage ends");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("too many malformed lines in a row") && err.contains("\"50\""),
        "{err}"
    );
}

#[test]
fn a_row_on_the_headers_line_is_an_error_not_dropped() {
    let v4_line = "   0: 0100007F:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0";
    let header = tcptab::procnet::header(tcptab::Family::Ipv4);
    let cases = [
        // Lines that end in CR alone: the whole table on the header's line.
        (
            "cr-only",
            format!("{}\r{v4_line}\r{v4_line}\r", header.trim_end()),
        ),
        // The header glued to its first row.
        (
            "glued",
            format!("{}{v4_line}\n{v4_line}\n", header.trim_end()),
        ),
    ];
    for (name, text) in cases {
        let dir = tempdir(name);
        std::fs::write(dir.join("net/tcp"), text).unwrap();
        let root = root_arg(&dir);
        let err = fails(&["list", "--root", &root]);
        assert!(
            err.contains("/net/tcp:1: field 'line': a row on the header's line")
                && err.contains("\"0:\""),
            "{name}: {err}"
        );
        // Lenient: counted, said, and the rows that can be read are.
        let out = tcptab_line(&format!("list --root {root} --lenient --format jsonl"));
        assert!(out.status.success(), "{name}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("skipped 1 malformed line"), "{name}: {err}");
        let rows = String::from_utf8_lossy(&out.stdout).lines().count();
        assert_eq!(rows, usize::from(name == "glued"), "{name}");
    }
}
