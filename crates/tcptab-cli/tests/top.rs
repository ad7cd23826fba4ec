//! `tcptab top --format jsonl` on a transfer of known speed: the rates on
//! both ends within 20% of it, 0 on an idle connection, and a connection
//! that lives a few milliseconds in exactly one frame, with its final
//! counters.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

#[test]
fn frames_carry_exact_rates_and_short_connections() {
    let Some(mut scenario) = testkit::live("paced.py") else { return };
    let names = scenario.manifest.names.clone();
    let port = |name: &str| names[name].parse::<u64>().unwrap();
    let (listen, sender, idle) = (port("listen_port"), port("sender_port"), port("idle_port"));
    let rate = port("rate") as f64;
    let pid = scenario.pid().to_string();
    let (mut top, rx) = common::jsonl_line(
        &format!("top --format jsonl --netns-pid {pid} --interval 1s --count 4"),
        None,
    );
    let next = || rx.recv_timeout(Duration::from_secs(10)).expect("a frame");
    let mut frames = vec![next()];
    // Between two refreshes: a connection that opens, carries 1000 bytes
    // and closes.
    let flash: u64 = scenario.command("flash")[3..].parse().unwrap();
    for _ in 0..3 {
        frames.push(next());
    }
    assert!(top.wait().unwrap().success());

    let mut flashes = Vec::new();
    let (mut sent, mut received) = (Vec::new(), Vec::new());
    for frame in &frames {
        assert_eq!(frame["schema_version"], 1);
        assert!(frame["time"].as_str().unwrap().ends_with('Z'));
        let interval = frame["interval_s"].as_f64().unwrap();
        assert!((0.9..2.0).contains(&interval), "{interval}");
        let sockets = frame["sockets"].as_array().unwrap();
        let find = |local: u64, remote: u64| {
            sockets
                .iter()
                .find(|s| s["local_port"] == local && s["remote_port"] == remote)
                .unwrap_or_else(|| panic!("{local} -> {remote} in {frame}"))
        };
        // Each frame within half of the speed (a busy machine can hold the
        // paced sender back for part of an interval, which the next one
        // makes up); their median within 20%, below.
        let near = |v: &Value| (v.as_f64().unwrap() - rate).abs() <= rate * 0.5;
        let out = find(sender, listen);
        assert!(near(&out["tx_bytes_per_s"]), "sender: {out}");
        sent.push(out["tx_bytes_per_s"].as_f64().unwrap());
        let inn = find(listen, sender);
        assert!(near(&inn["rx_bytes_per_s"]), "receiver: {inn}");
        received.push(inn["rx_bytes_per_s"].as_f64().unwrap());
        for s in [find(idle, listen), find(listen, idle)] {
            assert_eq!(s["tx_bytes_per_s"].as_f64(), Some(0.0), "{s}");
            assert_eq!(s["rx_bytes_per_s"].as_f64(), Some(0.0), "{s}");
            assert!(s["age_s"].as_f64().unwrap() >= 0.9, "{s}");
            assert_eq!(s["closed"], false);
        }
        // Every socket is the common record plus the frame's fields.
        for s in sockets {
            for key in [
                "state",
                "local_address",
                "tcp_info",
                "source",
                "rx_bytes_per_s",
                "age_s",
                "closed",
            ] {
                assert!(s.get(key).is_some(), "{key} in {s}");
            }
        }
        flashes.extend(
            sockets
                .iter()
                .filter(|s| s["local_port"] == flash || s["remote_port"] == flash)
                // The client closed first: its TIME_WAIT row lives on.
                .filter(|s| s["kind"] != "time_wait")
                .cloned(),
        );
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    for (what, v) in [("sent", &mut sent), ("received", &mut received)] {
        let m = median(v);
        assert!(
            (m - rate).abs() <= rate * 0.2,
            "{what}: median {m} of {v:?}, paced at {rate}"
        );
    }
    // Both ends of the short connection (full sockets), once each, closed,
    // with the kernel's final counters.
    assert_eq!(flashes.len(), 2, "{flashes:#?}");
    for s in &flashes {
        assert_eq!(s["closed"], true, "{s}");
        let info = &s["tcp_info"];
        let moved =
            info["bytes_acked"].as_u64().unwrap() + info["bytes_received"].as_u64().unwrap();
        assert!(moved >= 1000, "{s}");
    }
}

#[test]
fn without_a_terminal_top_asks_for_jsonl() {
    let out = Command::new(env!("CARGO_BIN_EXE_tcptab"))
        .args(["top"])
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not a terminal") && err.contains("--format jsonl"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

fn tmux(args: &[&str]) -> String {
    let out = testkit::tool("tmux")
        .args(args)
        .output()
        .expect("running tmux");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Wait until the pane shows `what`; the pane.
fn pane_with(session: &str, what: &str) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let pane = tmux(&["capture-pane", "-p", "-t", session]);
        if pane.contains(what) || std::time::Instant::now() > deadline {
            return pane;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Start `tcptab top --netns-pid PID OPTIONS` in a tmux session of the
/// size given, followed by `echo EXIT=$?`; the session's name.
fn top_in_tmux(name: &str, pid: &str, options: &str, (width, height): (u16, u16)) -> String {
    let session = format!("tcptab-top-{name}-{}", std::process::id());
    let command = format!(
        "{} top --netns-pid {pid} {options}; echo EXIT=$?; sleep 60",
        env!("CARGO_BIN_EXE_tcptab")
    );
    let (width, height) = (width.to_string(), height.to_string());
    tmux(&[
        "new-session",
        "-d",
        "-x",
        &width,
        "-y",
        &height,
        "-s",
        &session,
        &command,
    ]);
    session
}

#[test]
fn the_screen_shows_rates_and_q_restores_the_terminal() {
    let Some(scenario) = testkit::live("paced.py") else { return };
    let sender = &scenario.manifest.names["sender_port"];
    let pid = scenario.pid().to_string();
    let session = top_in_tmux("screen", &pid, "", (120, 20));
    // After a refresh: the sender's row sends at about 2 MB/s.
    let sender_row = |pane: &str| {
        pane.lines()
            .find(|l| l.starts_with(&format!("ESTABLISHED 127.0.0.1:{sender} ")))
            .map(str::to_string)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let (pane, row) = loop {
        let pane = tmux(&["capture-pane", "-p", "-t", &session]);
        match sender_row(&pane) {
            Some(row) if row.contains('M') => break (pane, row),
            _ if std::time::Instant::now() > deadline => panic!("no rate: {pane}"),
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    assert!(pane.starts_with("tcptab top"), "{pane}");
    let tx: f64 = row
        .split_whitespace()
        .find_map(|cell| cell.strip_suffix('M').and_then(|v| v.parse().ok()))
        .unwrap_or_else(|| panic!("a rate in {row}"));
    assert!((1.0..=3.0).contains(&tx), "{row}");
    // The keys: help, then quit; the shell's screen comes back.
    tmux(&["send-keys", "-t", &session, "?"]);
    let help = pane_with(&session, "sort by the next column");
    assert!(help.contains("reverse the sort"), "{help}");
    tmux(&["send-keys", "-t", &session, "Escape"]);
    tmux(&["send-keys", "-t", &session, "q"]);
    let after = pane_with(&session, "EXIT=");
    tmux(&["kill-session", "-t", &session]);
    assert!(after.contains("EXIT=0"), "{after}");
    assert!(
        !after.contains("tcptab top"),
        "the alternate screen is left: {after}"
    );
}

#[test]
fn problems_are_marked_on_their_rows_and_listed() {
    let Some(scenario) = testkit::live("sockets.py") else { return };
    let pid = scenario.pid().to_string();
    let session = top_in_tmux("problems", &pid, "--interval 500ms", (150, 45));
    // The server that does not read: a large receive queue for three
    // refreshes in a row.
    let pane = pane_with(&session, "not reading");
    tmux(&["send-keys", "-t", &session, "q"]);
    tmux(&["kill-session", "-t", &session]);
    let row_with = |what: &str| {
        pane.lines()
            .find(|l| l.ends_with(what) && !l.starts_with('!'))
            .unwrap_or_else(|| panic!("a row marked {what}: {pane}"))
            .to_string()
    };
    assert!(row_with("not reading").contains("ESTABLISHED"), "{pane}");
    // The client whose peer's window is zero while data waits.
    assert!(row_with("zero window").contains("ESTABLISHED"), "{pane}");
    assert!(row_with("close-wait").starts_with("CLOSE_WAIT"), "{pane}");
    // The footer lists the findings.
    assert!(
        pane.lines()
            .any(|l| l.starts_with("! ") && l.contains("zero window")),
        "{pane}"
    );
    assert!(
        pane.lines()
            .any(|l| l.starts_with("! ") && l.contains("does not read")),
        "{pane}"
    );
}

#[test]
fn k_destroys_the_selected_connection_after_y() {
    let Some(scenario) = testkit::live("paced.py") else { return };
    let idle = scenario.manifest.names["idle_port"].clone();
    let pid = scenario.pid().to_string();
    let session = top_in_tmux("kill", &pid, "--interval 500ms", (150, 30));
    pane_with(&session, "ESTABLISHED");
    // Only the idle client, then destroy it.
    tmux(&[
        "send-keys",
        "-t",
        &session,
        "-l",
        &format!("/sport = :{idle}"),
    ]);
    tmux(&["send-keys", "-t", &session, "Enter"]);
    pane_with(&session, &format!("filter: sport = :{idle}"));
    tmux(&["send-keys", "-t", &session, "k"]);
    let asking = pane_with(&session, "y to confirm");
    assert!(asking.contains(&format!("127.0.0.1:{idle}")), "{asking}");
    tmux(&["send-keys", "-t", &session, "y"]);
    let done = pane_with(&session, ": destroyed");
    tmux(&["send-keys", "-t", &session, "q"]);
    tmux(&["kill-session", "-t", &session]);
    assert!(done.contains(": destroyed"), "{done}");
    let left = scenario.ss(&[&format!("sport = :{idle}")]);
    assert!(left.is_empty(), "still there: {left:?}");
    // The sender's connection is untouched.
    assert!(!scenario
        .ss(&[&format!(
            "sport = :{}",
            scenario.manifest.names["sender_port"]
        )])
        .is_empty());
}

/// A socket of a JSON frame as the screen writes its ends: `addr:port`,
/// an IPv6 address in brackets, port 0 as `*`.
fn end(s: &Value, side: &str) -> String {
    let address = s[format!("{side}_address")].as_str().unwrap();
    let port = match s[format!("{side}_port")].as_u64().unwrap() {
        0 => "*".to_string(),
        p => p.to_string(),
    };
    if address.contains(':') {
        format!("[{address}]:{port}")
    } else {
        format!("{address}:{port}")
    }
}

/// Whether `shown` is `whole`, or `whole` elided in its host with the
/// marker, its port kept.
fn shows(shown: &str, whole: &str) -> bool {
    if shown == whole {
        return true;
    }
    let Some((host, port)) = shown.rsplit_once(':') else {
        return false;
    };
    let Some((head, tail)) = host.split_once('…') else {
        return false;
    };
    !head.is_empty()
        && !tail.is_empty()
        && whole.starts_with(head)
        && whole.ends_with(&format!("{tail}:{port}"))
        && whole.chars().count() > shown.chars().count() - 1
}

/// One screen row checked against the frame's sockets: its state and ends
/// name a socket (whole, or elided with the marker); its owner is that
/// socket's; every number is a whole number in its column's form.
fn check_row(row: &str, titles: &[&str], sockets: &[Value], size: &str) {
    let mut tokens = row.split_whitespace().peekable();
    let mut cells: Vec<(&str, String)> = Vec::new();
    for &title in titles {
        let Some(first) = tokens.next() else {
            assert_eq!(title, "Problem", "{size}: {row:?} ends before {title}");
            break;
        };
        let mut cell = first.to_string();
        // An owner's `+N`, the problem's words.
        while (title == "Owner" && tokens.peek().is_some_and(|t| t.starts_with('+')))
            || (title == "Problem" && tokens.peek().is_some())
        {
            cell.push(' ');
            cell.push_str(tokens.next().unwrap());
        }
        cells.push((title, cell));
    }
    assert!(
        tokens.next().is_none(),
        "{size}: more cells than titles in {row:?}"
    );
    let cell = |title: &str| {
        cells
            .iter()
            .find(|(t, _)| *t == title)
            .map(|(_, c)| c.as_str())
    };
    let socket = sockets
        .iter()
        .find(|s| {
            Some(s["state"].as_str().unwrap()) == cell("State")
                && cell("Local").is_none_or(|c| shows(c, &end(s, "local")))
                && cell("Peer").is_none_or(|c| shows(c, &end(s, "remote")))
        })
        .unwrap_or_else(|| panic!("{size}: no socket of the frame is {row:?}"));
    let number = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    for (title, value) in &cells {
        let ok = match *title {
            "State" | "Local" | "Peer" => true,
            "Owner" => {
                let owners = socket["owners"].as_array().cloned().unwrap_or_default();
                match owners.first() {
                    Some(o) => {
                        let first = format!("{}({})", o["command"].as_str().unwrap(), o["pid"]);
                        match owners.len() {
                            1 => *value == first,
                            n => *value == format!("{first} +{}", n - 1),
                        }
                    }
                    None => value == "-" || value == "?",
                }
            }
            "Rx/s" | "Tx/s" => {
                value == "-"
                    || number(value)
                    || value
                        .strip_suffix(['k', 'M', 'G'])
                        .and_then(|v| v.split_once('.'))
                        .is_some_and(|(a, b)| number(a) && b.len() == 1 && number(b))
            }
            "RTT" => {
                value == "-"
                    || value
                        .split_once('.')
                        .is_some_and(|(a, b)| number(a) && b.len() == 2 && number(b))
            }
            "Retr" | "Cwnd" => value == "-" || number(value),
            "RecvQ" => value.parse::<u64>().ok() == socket["rx_queue"].as_u64(),
            "SendQ" => value.parse::<u64>().ok() == socket["tx_queue"].as_u64(),
            "Age" => ["s", "m", "h"].iter().any(|u| value.ends_with(u)),
            "Problem" => [
                "close-wait",
                "queue full",
                "zero window",
                "retransmits",
                "not reading",
            ]
            .contains(&value.as_str()),
            other => panic!("{size}: a column {other:?}"),
        };
        assert!(ok, "{size}: {title} {value:?} in {row:?} for {socket}");
    }
}

#[test]
fn at_every_size_each_cell_is_a_whole_value_of_its_socket() {
    let Some(scenario) = testkit::live("sockets.py") else { return };
    let pid = scenario.pid().to_string();
    for (width, height) in [(60u16, 15u16), (80, 24), (200, 50)] {
        let size = format!("{width}x{height}");
        let session = top_in_tmux(&format!("size{size}"), &pid, "", (width, height));
        let pane = pane_with(&session, "State");
        // What the kernel has meanwhile, as a frame.
        let frame = Command::new(env!("CARGO_BIN_EXE_tcptab"))
            .args([
                "top",
                "--format",
                "jsonl",
                "-p",
                "--count",
                "1",
                "--netns-pid",
                &pid,
            ])
            .args(["--interval", "100ms"])
            .output()
            .unwrap();
        tmux(&["send-keys", "-t", &session, "q"]);
        let after = pane_with(&session, "EXIT=");
        tmux(&["kill-session", "-t", &session]);
        assert!(after.contains("EXIT=0"), "{size}: {after}");
        let frame = common::strict_json(String::from_utf8_lossy(&frame.stdout).trim()).unwrap();
        let sockets = frame["sockets"].as_array().unwrap();
        let lines: Vec<&str> = pane.lines().collect();
        assert!(lines.iter().all(|l| l.chars().count() <= width as usize));
        // The header: whole parts; the titles: whole words, the ends and
        // the state always among them.
        assert!(lines[0].starts_with("tcptab top  "), "{size}: {pane}");
        let head = lines[1].replace(['▼', '▲'], "").replace("RTT ms", "RTT");
        let titles: Vec<&str> = head.split_whitespace().collect();
        for title in &titles {
            assert!(
                [
                    "State", "Local", "Peer", "Owner", "Rx/s", "Tx/s", "RTT", "Retr", "Cwnd",
                    "RecvQ", "SendQ", "Age", "Problem"
                ]
                .contains(title),
                "{size}: a cut title {title:?} in {pane}"
            );
        }
        assert_eq!(titles[..3], ["State", "Local", "Peer"], "{size}: {pane}");
        if width >= 80 {
            assert!(
                titles.contains(&"Rx/s") && titles.contains(&"Tx/s"),
                "{size}: {pane}"
            );
        }
        if width >= 200 {
            assert_eq!(titles.len(), 13, "{size}: every column: {pane}");
        }
        // Every row under them, up to the findings and the keys.
        eprintln!("{size}:\n{pane}");
        let rows: Vec<&str> = lines[2..]
            .iter()
            .copied()
            .take_while(|l| !l.is_empty() && !l.starts_with("! "))
            .collect();
        assert!(rows.len() >= 5, "{size}: {pane}");
        for row in rows {
            check_row(row, &titles, sockets, &size);
        }
        // The keys line: whole keys.
        let keys = lines.iter().rev().find(|l| !l.is_empty()).unwrap();
        assert!(keys.starts_with("q quit  ? keys"), "{size}: {keys}");
    }
}

/// The shell's view of the terminal after top: its mode and the cursor.
#[test]
fn each_signal_restores_the_terminal_and_exits_as_the_shell_expects() {
    let Some(scenario) = testkit::live("paced.py") else { return };
    let pid = scenario.pid().to_string();
    for (signal, status) in [("TERM", 143), ("INT", 130), ("HUP", 129)] {
        let session = format!("tcptab-top-sig{signal}-{}", std::process::id());
        let command = format!(
            "{} top --netns-pid {pid}; echo EXIT=$?; stty -a | grep -o -- '-*icanon' | sed 's/^/MODE=/'; sleep 60",
            env!("CARGO_BIN_EXE_tcptab")
        );
        tmux(&[
            "new-session",
            "-d",
            "-x",
            "100",
            "-y",
            "20",
            "-s",
            &session,
            &command,
        ]);
        pane_with(&session, "ESTABLISHED");
        let shell = tmux(&["display", "-p", "-t", &session, "#{pane_pid}"]);
        let top = testkit::tool("pgrep")
            .args(["-P", shell.trim(), "-x", "tcptab"])
            .output()
            .unwrap();
        let top = String::from_utf8_lossy(&top.stdout).trim().to_string();
        assert!(!top.is_empty(), "top's pid under {shell}");
        let killed = Command::new("kill")
            .args([&format!("-{signal}"), &top])
            .status()
            .unwrap();
        assert!(killed.success());
        let after = pane_with(&session, "MODE=");
        let cursor = tmux(&["display", "-p", "-t", &session, "#{cursor_flag}"]);
        let alternate = tmux(&["display", "-p", "-t", &session, "#{alternate_on}"]);
        tmux(&["kill-session", "-t", &session]);
        assert!(
            after.contains(&format!("EXIT={status}")),
            "SIG{signal}: {after}"
        );
        assert!(
            after.contains("MODE=icanon"),
            "SIG{signal}: still raw: {after}"
        );
        assert!(!after.contains("tcptab top"), "SIG{signal}: {after}");
        assert_eq!(cursor.trim(), "1", "SIG{signal}: the cursor is hidden");
        assert_eq!(
            alternate.trim(),
            "0",
            "SIG{signal}: on the alternate screen"
        );
    }
}
