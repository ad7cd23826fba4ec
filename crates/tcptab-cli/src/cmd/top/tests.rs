//! The screen drawn from a view of known rows, and what keys do to it.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::backend::TestBackend;
use ratatui::Terminal;
use tcptab::{Diag, EntryBuf, Owner, Owners, State, TcpInfo};

use super::draw::{cell, draw};
use super::layout::{Col, ELIDED};
use super::view::{Grouping, Row, View, CLOSED_REFRESHES};

fn owner(command: &str, pid: u32) -> Owner {
    Owner {
        pid,
        command: Arc::from(command),
        fd: 7,
    }
}

fn row(local: &str, remote: &str, state: State, rx: f64, tx: f64, closed_for: u8) -> Row {
    let (l, r): (SocketAddr, SocketAddr) = (local.parse().unwrap(), remote.parse().unwrap());
    let family = if l.is_ipv4() {
        tcptab::Family::Ipv4
    } else {
        tcptab::Family::Ipv6
    };
    let mut socket = tcptab::Socket::empty(family, tcptab::RowKind::Full);
    socket.local = l;
    socket.remote = r;
    socket.state = state;
    socket.inode = 4242;
    let owners = if state == State::Listen {
        vec![owner("nginx", 812), owner("nginx", 813)]
    } else {
        vec![owner("curl", 4410)]
    };
    let mut diag = Diag::default();
    diag.cookie = u64::from(l.port()) << 16 | u64::from(r.port());
    diag.tcp_info = Some(Arc::new(TcpInfo {
        rtt_us: 250,
        snd_cwnd: 10,
        ..Default::default()
    }));
    Row {
        key: diag.cookie,
        entry: EntryBuf::dumped(tcptab::DiagSocket { socket, diag })
            .with_owners(Some(Owners::Owned(owners.into()))),
        rx_bytes_per_s: Some(rx),
        tx_bytes_per_s: Some(tx),
        age: Duration::from_secs(75),
        closed_for,
        problem: (state == State::CloseWait).then_some("close-wait"),
    }
}

fn view() -> View {
    let mut v = View::new("netlink".into(), Duration::from_secs(1));
    v.findings = vec!["1 CLOSE_WAIT socket held by curl (pid 4410)".into()];
    v.update(vec![
        row("10.0.0.5:443", "0.0.0.0:0", State::Listen, 0.0, 0.0, 0),
        row(
            "10.0.0.5:443",
            "10.0.0.9:51000",
            State::Established,
            2_000_000.0,
            15_000.0,
            0,
        ),
        row(
            "10.0.0.5:443",
            "10.0.0.7:40000",
            State::Established,
            300.0,
            9_500_000.0,
            0,
        ),
        row(
            "10.0.0.5:443",
            "10.0.0.8:41000",
            State::CloseWait,
            0.0,
            0.0,
            CLOSED_REFRESHES,
        ),
    ]);
    v
}

fn screen_sized(v: &View, width: u16, height: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|f| draw(f, v)).unwrap();
    let buffer = terminal.backend().buffer();
    let mut text = String::new();
    for y in 0..buffer.area.height {
        let line: String = (0..buffer.area.width)
            .map(|x| buffer[(x, y)].symbol().to_string())
            .collect();
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

fn screen(v: &View) -> String {
    screen_sized(v, 132, 16)
}

fn keys(v: &mut View, keys: &str) {
    for c in keys.chars() {
        v.key(KeyEvent::from(KeyCode::Char(c)));
    }
}

fn remotes(v: &View) -> Vec<String> {
    v.rows.iter().map(|r| cell(r, Col::Peer)).collect()
}

#[test]
fn the_table() {
    insta::assert_snapshot!("top_table", screen(&view()));
}

#[test]
fn the_help() {
    let mut v = view();
    v.key(KeyEvent::from(KeyCode::Char('?')));
    let help = screen(&v);
    insta::assert_snapshot!("top_help", help);
    // Every key's explanation whole, even on a narrow screen.
    let narrow = screen_sized(&v, 60, 40);
    for word in ["namespace", "connections)", "resume)"] {
        assert!(narrow.contains(word), "{word}: {narrow}");
    }
    v.key(KeyEvent::from(KeyCode::Esc));
    assert!(!v.help && !v.quit);
    v.key(KeyEvent::from(KeyCode::Esc));
    assert!(v.quit);
}

#[test]
fn the_filter_prompt_with_an_error_then_applied() {
    let mut v = view();
    keys(&mut v, "/dport = :nosuchservice");
    v.key(KeyEvent::from(KeyCode::Enter));
    assert!(v.prompt_error.is_some(), "no such service");
    assert!(v.prompt.is_some(), "the prompt stays open");
    let mut v = view();
    keys(&mut v, "/dport = :4x");
    v.key(KeyEvent::from(KeyCode::Enter));
    insta::assert_snapshot!("top_prompt_error", screen(&v));
    // Ctrl-U clears the line as a shell's does; fixed and applied: only
    // the matching rows are shown.
    v.key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL));
    keys(&mut v, "dport = :51000");
    v.key(KeyEvent::from(KeyCode::Enter));
    assert!(v.prompt.is_none() && v.prompt_error.is_none());
    let shown: Vec<String> = v.shown().iter().map(|r| cell(r, Col::Peer)).collect();
    assert_eq!(shown, ["10.0.0.9:51000"]);
    assert!(screen(&v).contains("filter: dport = :51000"));
    // Esc clears it.
    v.key(KeyEvent::from(KeyCode::Esc));
    assert_eq!(v.shown().len(), 4);
    assert!(!v.quit);
}

#[test]
fn the_grouped_view_and_the_detail_view() {
    let mut v = view();
    keys(&mut v, "g");
    insta::assert_snapshot!("top_grouped", screen(&v));
    // Enter: the busiest process's connections only; Esc back.
    v.key(KeyEvent::from(KeyCode::Enter));
    assert!(v.grouped.is_none());
    assert!(v.shown().iter().all(|r| r.owner() == "curl(4410)"));
    assert_eq!(v.shown().len(), 3);
    v.key(KeyEvent::from(KeyCode::Esc));
    assert_eq!(v.grouped, Some(Grouping::Process));
    assert_eq!(v.shown().len(), 4);
    keys(&mut v, "n");
    assert_eq!(v.groups().len(), 1, "one namespace: {:?}", v.groups());
    v.key(KeyEvent::from(KeyCode::Esc));
    assert!(v.grouped.is_none() && !v.quit);
    // The detail of the listener: both its owners, the kernel's line
    // decoded with units.
    let mut v = view();
    v.key(KeyEvent::from(KeyCode::End));
    v.key(KeyEvent::from(KeyCode::Up));
    v.key(KeyEvent::from(KeyCode::Enter));
    let detail = screen_sized(&v, 132, 40);
    for part in [
        "nginx",
        "pid 812",
        "pid 813",
        "local_address",
        "10.0.0.5:443",
    ] {
        assert!(detail.contains(part), "{part}: {detail}");
    }
    insta::assert_snapshot!("top_detail", detail);
    // It scrolls to the lines further down, the last one included.
    for _ in 0..200 {
        v.key(KeyEvent::from(KeyCode::Down));
    }
    let scrolled = screen(&v);
    assert!(
        scrolled.contains("tcp_info length") && !scrolled.contains("local_address"),
        "{scrolled}"
    );
    v.key(KeyEvent::from(KeyCode::Esc));
    assert!(!v.detail && !v.quit);
}

#[test]
fn k_asks_before_it_destroys_and_refuses_listeners() {
    let mut v = view();
    // The busiest connection is selected: k asks, n keeps it.
    keys(&mut v, "k");
    assert!(v.confirm.is_some());
    assert!(screen(&v).contains("y to confirm"));
    keys(&mut v, "n");
    assert_eq!((v.confirm, v.destroy), (None, None));
    assert_eq!(v.message.as_deref(), Some("not destroyed"));
    // y confirms: the caller destroys it.
    let chosen = v.selected;
    keys(&mut v, "ky");
    assert_eq!(v.destroy, chosen);
    // A listener is tcptab kill's, naming its state.
    v.destroy = None;
    v.key(KeyEvent::from(KeyCode::End));
    v.key(KeyEvent::from(KeyCode::Up));
    assert_eq!(v.selected_row().unwrap().state(), State::Listen);
    keys(&mut v, "k");
    assert!(v.confirm.is_none());
    assert!(v.message.as_deref().unwrap().contains("tcptab kill"));
}

#[test]
fn sorting_keeps_the_selection_and_rows_do_not_jump() {
    let mut v = view();
    // Busiest receiver first; the selection follows its connection.
    assert_eq!(remotes(&v)[0], "10.0.0.9:51000");
    v.key(KeyEvent::from(KeyCode::Down));
    let chosen = v.selected;
    v.key(KeyEvent::from(KeyCode::Char('s'))); // by tx
    assert_eq!(remotes(&v)[0], "10.0.0.7:40000");
    assert_eq!(v.selected, chosen);
    v.key(KeyEvent::from(KeyCode::Char('r')));
    assert_eq!(remotes(&v).last().unwrap(), "10.0.0.7:40000");
    // The same rows again: the same order (ties by the ends).
    let order = remotes(&v);
    v.update(open_rows(&v));
    assert_eq!(order, remotes(&v));
    // A closed row stays for its refreshes, then goes.
    for _ in 0..CLOSED_REFRESHES {
        v.update(open_rows(&v));
    }
    assert!(v.rows.iter().all(|r| r.closed_for == 0), "{:?}", v.rows);
    v.key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL));
    assert!(v.quit);
}

#[test]
fn ports_sort_as_numbers() {
    let mut v = View::new("netlink".into(), Duration::from_secs(1));
    v.update(vec![
        row("127.0.0.1:7000", "0.0.0.0:0", State::Listen, 0.0, 0.0, 0),
        row("127.0.0.1:80", "0.0.0.0:0", State::Listen, 0.0, 0.0, 0),
        row("127.0.0.1:443", "0.0.0.0:0", State::Listen, 0.0, 0.0, 0),
    ]);
    // Sort by the local end: s from rx goes tx, state, local.
    keys(&mut v, "sss");
    let locals: Vec<String> = v.rows.iter().map(|r| cell(r, Col::Local)).collect();
    assert_eq!(locals, ["127.0.0.1:80", "127.0.0.1:443", "127.0.0.1:7000"]);
}

/// Every cell on a screen of `width` columns: whole, or an address elided
/// with the marker keeping its port; never a cut value.
#[test]
fn on_narrow_screens_values_are_whole_or_marked() {
    let mut v = view();
    v.update(vec![
        row(
            "[2001:db8:aaaa:bbbb::1]:5432",
            "[2001:db8:cccc:dddd::2]:60792",
            State::Established,
            1_048_576.0,
            0.0,
            0,
        ),
        row(
            "127.0.0.1:5432",
            "127.0.0.1:60791",
            State::Established,
            2e6,
            0.0,
            0,
        ),
    ]);
    for (width, height) in [(60, 15), (80, 24), (200, 50)] {
        let text = screen_sized(&v, width, height);
        let lines: Vec<&str> = text.lines().collect();
        let head = lines[1];
        // The titles are whole words.
        for word in head.split_whitespace() {
            let bare = word.trim_end_matches(['▼', '▲']);
            assert!(
                Col::ALL
                    .iter()
                    .any(|c| c.title().split(' ').any(|t| t == bare)),
                "{width}x{height}: title {word:?} in {head:?}"
            );
        }
        // The rows in their order under the titles, every one on screen.
        assert_eq!(v.shown().len(), 6);
        for (r, line) in v.shown().into_iter().zip(&lines[2..]) {
            let whole: Vec<String> = Col::ALL.iter().map(|&c| cell(r, c)).collect();
            assert!(
                line.starts_with(&whole[0]),
                "{width}x{height}: {line:?} for {whole:?}"
            );
            for word in line.split_whitespace() {
                let ok = whole.iter().any(|w| w.split(' ').any(|p| p == word))
                    || (word.contains(ELIDED)
                        && whole.iter().any(|w| {
                            let (host, port) = word.rsplit_once(':').unwrap();
                            let (head, tail) = host.split_once(ELIDED).unwrap();
                            w.ends_with(&format!("{tail}:{port}")) && w.starts_with(head)
                        }));
                assert!(
                    ok,
                    "{width}x{height}: {word:?} is not a value of {whole:?}\n{text}"
                );
            }
        }
        // Nothing goes past the right edge.
        assert!(lines.iter().all(|l| l.chars().count() <= width as usize));
    }
    let wide = screen_sized(&v, 200, 50);
    assert!(
        wide.contains("[2001:db8:aaaa:bbbb::1]:5432") && wide.contains("1.0M"),
        "{wide}"
    );
}

#[test]
fn the_workload_column_and_grouping() {
    let mut v = view();
    // Without --workload no column is spent on it.
    assert!(!screen(&v).contains("Workload"));
    let web = Arc::new(tcptab::Workload::from_cgroup("/system.slice/web.service"));
    let mut rows = v.rows.clone();
    for r in rows
        .iter_mut()
        .filter(|r| r.entry.socket.state != State::Listen)
    {
        r.entry.workload = Some(web.clone());
    }
    v.update(rows);
    v.workload = true;
    let shown = screen(&v);
    assert!(
        shown.contains("Workload") && shown.contains("web.service"),
        "{shown}"
    );
    // One group per workload, of what process grouping counts too.
    keys(&mut v, "g");
    let counted: usize = v.groups().iter().map(|(_, n, ..)| n).sum();
    keys(&mut v, "w");
    assert_eq!(v.grouped, Some(Grouping::Workload));
    let groups: Vec<(String, usize)> = v
        .groups()
        .into_iter()
        .map(|(name, n, ..)| (name, n))
        .collect();
    let names: BTreeSet<&str> = groups.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, BTreeSet::from(["-", "web.service"]), "{groups:?}");
    assert_eq!(groups.iter().map(|(_, n)| n).sum::<usize>(), counted);
}

/// The rows of `v` still open, as the next refresh would give them.
fn open_rows(v: &View) -> Vec<Row> {
    v.rows
        .iter()
        .filter(|r| r.closed_for == 0)
        .cloned()
        .collect()
}
