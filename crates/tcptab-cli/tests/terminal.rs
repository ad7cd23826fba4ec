//! The table on a real terminal (tmux, 80 columns): no line wider than the
//! terminal, and the same sockets and cells as the piped output, whose
//! lines stay whole.

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use common::tmux;

#[test]
fn the_table_fits_an_80_column_terminal() {
    let Some(scenario) = testkit::live("sockets.py") else { return };
    let pid = scenario.pid().to_string();
    let bin = env!("CARGO_BIN_EXE_tcptab");
    let args = ["list", "-p", "-i", "--netns-pid", &pid];
    let piped = Command::new(bin).args(args).output().unwrap();
    assert!(piped.status.success());
    let piped = String::from_utf8(piped.stdout).unwrap();
    // Piped: one whole line per socket, wider than 80.
    assert!(piped.lines().any(|l| l.len() > 80), "{piped}");

    let session = format!("tcptab-terminal-{}", std::process::id());
    let command = format!("{bin} {}; echo END-OF-LISTING; sleep 60", args.join(" "));
    tmux(&[
        "new-session",
        "-d",
        "-x",
        "80",
        "-y",
        "400",
        "-s",
        &session,
        &command,
    ]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let screen = loop {
        let screen = tmux(&["capture-pane", "-p", "-J", "-S", "-", "-t", &session]);
        if screen.contains("END-OF-LISTING") || Instant::now() > deadline {
            break screen;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    tmux(&["kill-session", "-t", &session]);
    let screen: Vec<&str> = screen
        .lines()
        .take_while(|l| !l.starts_with("END-OF-LISTING"))
        .collect();
    assert!(screen.len() > 10, "{screen:#?}");
    for line in &screen {
        assert!(
            line.chars().count() <= 80,
            "{} columns: {line:?}",
            line.chars().count()
        );
    }
    // Each row and the indented lines under it hold the piped line's
    // cells (wrapping breaks at spaces and commas only).
    let mut rows: Vec<String> = Vec::new();
    for line in &screen[2..] {
        if line.starts_with(' ') {
            rows.last_mut().expect("a row first").push_str(line);
        } else {
            rows.push(line.to_string());
        }
    }
    let squeeze = |s: &str| s.split_whitespace().collect::<String>();
    let on_screen: BTreeSet<String> = rows.iter().map(|r| squeeze(r)).collect();
    let piped: BTreeSet<String> = piped.lines().skip(1).map(squeeze).collect();
    assert_eq!(on_screen, piped);
    // The header names what the indented lines hold.
    assert!(screen[0].starts_with("State"), "{}", screen[0]);
    assert_eq!(screen[1].trim(), "Process  TCP info");
}
