//! The sock_diag source: real sockets dumped over netlink agree with the
//! /proc tables and with `ss -tani`; golden tests on a captured dump;
//! shortened, longer and truncated messages; the fallback of `auto`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use tcptab::diag;
use tcptab::diag::response::parse_message;
use tcptab::diag::wire::View;
use tcptab::procnet::{ProcRoot, ReadOptions};
use tcptab::DiagSocket;
use tcptab::TcpInfo;
use tcptab::{Error, RowKind, Socket, State, StateSet};
use testkit::diag::{load, Refused, Replay};
use testkit::endpoint;

mod common;
use common::{dump_namespace, key, ALL, EVERYTHING};

fn capture() -> PathBuf {
    testkit::repo_root().join("testdata/6.18.44-sockets")
}

#[test]
fn netlink_and_proc_return_the_same_sockets() {
    let Some(scenario) = testkit::live("sockets.py") else { return };
    let dumped = dump_namespace(&scenario);
    let table = ProcRoot::new(scenario.proc_root())
        .read(ReadOptions::default())
        .unwrap();
    let proc: BTreeMap<_, &Socket> = table.sockets.iter().map(|s| (key(s), s)).collect();
    let netlink: BTreeMap<_, &DiagSocket> = dumped.iter().map(|d| (key(&d.socket), d)).collect();
    assert_eq!(
        proc.keys().collect::<Vec<_>>(),
        netlink.keys().collect::<Vec<_>>()
    );
    for (k, p) in &proc {
        let n = &netlink[k].socket;
        assert_eq!(n.family, p.family, "{k:?}");
        assert_eq!(n.kind, p.kind, "{k:?}");
        assert_eq!(n.inode, p.inode, "{k:?}");
        assert_eq!(n.timer.kind, p.timer.kind, "{k:?}");
        assert_eq!(n.rx_queue, p.rx_queue, "{k:?}");
        assert_eq!(n.tx_queue, p.tx_queue, "{k:?}");
        // sock_diag reports 0 for a request socket's uid; /proc the
        // listener's (documented).
        if p.kind != RowKind::Request {
            assert_eq!(n.uid, p.uid, "{k:?}");
        }
        if let (Some(a), Some(b)) = (n.congestion, p.congestion) {
            assert_eq!(a.cwnd, b.cwnd, "{k:?}");
        }
    }
    // The listen backlog limit equals the backlog given to listen().
    for e in scenario
        .manifest
        .sockets
        .iter()
        .filter(|e| e.state == "LISTEN")
    {
        let d = dumped
            .iter()
            .find(|d| d.socket.state == State::Listen && d.socket.local == e.local)
            .unwrap();
        let expected = e.backlog.unwrap_or(16);
        assert_eq!(d.diag.backlog_limit, Some(expected), "{}", e.name);
        if let Some(rx) = e.rx_queue {
            assert_eq!(d.socket.rx_queue, rx, "{}: accept queue", e.name);
        }
    }
}

/// The second line of each `ss -tani` entry, keyed by (local, peer).
fn ss_info(text: &str) -> BTreeMap<(String, String), String> {
    let mut out = BTreeMap::new();
    let mut last: Option<(String, String)> = None;
    for line in text.lines() {
        if line.starts_with(char::is_whitespace) {
            if let Some(k) = last.take() {
                out.insert(k, line.trim().to_string());
            }
        } else {
            let row = testkit::SsRow::parse(line);
            last = Some((row.local, row.peer));
        }
    }
    out
}

fn field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.split_whitespace()
        .find_map(|w| w.strip_prefix(name).and_then(|v| v.strip_prefix(':')))
}

#[test]
fn tcp_info_agrees_with_ss_tani() {
    let Some(scenario) = testkit::live("sockets.py") else { return };
    let ss = ss_info(&scenario.run_in("ss", &["-tanHi"]));
    let dumped = dump_namespace(&scenario);
    let mut checked = 0;
    for d in dumped
        .iter()
        .filter(|d| d.socket.state == State::Established)
    {
        let k = (endpoint(d.socket.local), endpoint(d.socket.remote));
        let Some(theirs) = ss.get(&k) else { continue };
        let info = d.diag.tcp_info.as_ref().expect("tcp_info");
        let cc = d.diag.congestion_algorithm.as_deref().unwrap();
        assert!(theirs.starts_with(cc), "{k:?}: {cc} vs {theirs}");
        assert_eq!(
            field(theirs, "cwnd"),
            Some(info.snd_cwnd.to_string().as_str()),
            "{k:?}"
        );
        // rtt: ss prints ms with 3 decimals; the dumps are moments apart.
        let rtt: f64 = field(theirs, "rtt")
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let ours = info.rtt_us as f64 / 1000.0;
        assert!(
            (rtt - ours).abs() <= 0.5 + ours,
            "{k:?}: rtt {rtt} vs {ours}"
        );
        let retrans = field(theirs, "retrans")
            .map(|r| r.split('/').nth(1).unwrap().parse::<u32>().unwrap())
            .unwrap_or(0);
        assert_eq!(retrans, info.total_retrans, "{k:?}");
        checked += 1;
    }
    assert!(checked >= 8, "checked {checked} established sockets");
}

#[test]
fn golden_captured_dump_decodes_like_the_captured_tables() {
    let datagrams = load(&capture().join("diag-dump.bin")).unwrap();
    let mut replay = Replay::new(datagrams);
    let dump = diag::dump(&mut replay, &ALL, EVERYTHING, StateSet::ALL).unwrap();
    let table = ProcRoot::new(capture())
        .read(ReadOptions::default())
        .unwrap();
    let mut from_dump: Vec<_> = dump
        .sockets
        .iter()
        .map(|d| (key(&d.socket), d.socket.inode))
        .collect();
    let mut from_proc: Vec<_> = table.sockets.iter().map(|s| (key(s), s.inode)).collect();
    from_dump.sort();
    from_proc.sort();
    assert_eq!(
        from_dump, from_proc,
        "the capture's dump and tables hold the same sockets"
    );
    assert!(!dump.interrupted);
    let listeners = dump
        .sockets
        .iter()
        .filter(|d| d.socket.state == State::Listen);
    assert!(listeners.clone().all(|d| d.diag.backlog_limit.is_some()));
    assert!(listeners.clone().any(|d| d.diag.backlog_limit == Some(8)));
    let info = dump
        .sockets
        .iter()
        .find_map(|d| d.diag.tcp_info.as_ref())
        .unwrap();
    assert!(info.length >= TcpInfo::KNOWN_LEN && !info.truncated);
    // Memory and tcp_info come with full sockets only (not TIME_WAIT or request).
    assert!(dump
        .sockets
        .iter()
        .filter(|d| d.socket.kind == RowKind::Full)
        .all(|d| d.diag.memory.is_some() && d.diag.tcp_info.is_some()));
    assert!(dump
        .sockets
        .iter()
        .filter(|d| d.socket.kind != RowKind::Full)
        .all(|d| d.diag.tcp_info.is_none()));
    let kernel = std::fs::read_to_string(capture().join("kernel.txt")).unwrap();
    assert!(kernel.contains("6.18"), "{kernel}");
}

/// One SOCK_DIAG_BY_FAMILY payload: an ESTABLISHED IPv4 socket with a
/// tcp_info attribute of `info_len` bytes.
fn message_with_info(info_len: usize) -> Vec<u8> {
    let mut m = vec![0u8; 72];
    m[0] = 2; // AF_INET
    m[1] = 1; // ESTABLISHED
    m[4..6].copy_from_slice(&8080u16.to_be_bytes());
    m[6..8].copy_from_slice(&443u16.to_be_bytes());
    m[8..12].copy_from_slice(&[127, 0, 0, 1]);
    m[24..28].copy_from_slice(&[10, 0, 0, 2]);
    m[68..72].copy_from_slice(&4242u32.to_ne_bytes());
    let mut info = vec![0u8; info_len];
    let mut put = |at: usize, v: u32| {
        if at + 4 <= info.len() {
            info[at..at + 4].copy_from_slice(&v.to_ne_bytes());
        }
    };
    put(8, 204_000); // rto
    put(68, 1500); // rtt
    put(80, 10); // cwnd
    put(100, 3); // total_retrans
    put(228, 65535); // snd_wnd
    put(240, 0x0002_0005); // total_rto 5, total_rto_recoveries 2
    put(244, 1234); // total_rto_time
    m.extend_from_slice(&((info_len + 4) as u16).to_ne_bytes());
    m.extend_from_slice(&2u16.to_ne_bytes()); // INET_DIAG_INFO
    m.extend_from_slice(&info);
    while !m.len().is_multiple_of(4) {
        m.push(0);
    }
    m
}

#[test]
fn shorter_tcp_info_is_zero_filled_and_marked() {
    // 104 bytes: an old kernel's tcp_info, ending at tcpi_total_retrans.
    let d = parse_message(View::new(&message_with_info(104)), 0).unwrap();
    let info = d.diag.tcp_info.unwrap();
    assert!(info.truncated);
    assert_eq!(info.length, 104);
    assert_eq!(
        (info.rtt_us, info.snd_cwnd, info.total_retrans),
        (1500, 10, 3)
    );
    assert_eq!(info.snd_wnd, 0, "beyond the kernel's struct: zero");
    assert_eq!(d.socket.congestion.unwrap().rto.0, 20);
    assert_eq!(d.socket.local, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(d.socket.inode, 4242);
    // A newer kernel's longer struct: the extra bytes are ignored.
    let info = parse_message(View::new(&message_with_info(320)), 0)
        .unwrap()
        .diag
        .tcp_info
        .unwrap();
    assert!(!info.truncated);
    assert_eq!(info.snd_wnd, 65535);
    assert_eq!(
        (
            info.total_rto,
            info.total_rto_recoveries,
            info.total_rto_time_ms
        ),
        (5, 2, 1234)
    );
    // Linux 6.1's 232 bytes: marked, the RTO counts zero.
    let info = parse_message(View::new(&message_with_info(232)), 0)
        .unwrap()
        .diag
        .tcp_info
        .unwrap();
    assert!(info.truncated);
    assert_eq!((info.snd_wnd, info.total_rto), (65535, 0));
}

#[test]
fn truncated_and_malformed_messages_are_errors_not_panics() {
    let full = message_with_info(232);
    // Cut inside the fixed header, inside the attribute.
    for cut in [0, 10, 71, 80, full.len() - 1] {
        let r = parse_message(View::new(&full[..cut]), 0);
        if cut < 72 {
            let e = r.unwrap_err();
            assert!(
                e.to_string()
                    .starts_with("inet_diag_msg at byte 0: needs 72 bytes"),
                "{e}"
            );
        } else {
            assert!(r.is_err(), "cut at {cut}");
        }
    }
    // A datagram that stops in the middle of a message.
    let datagrams = load(&capture().join("diag-dump.bin")).unwrap();
    let mut first = datagrams[0].clone();
    first.truncate(first.len() - 7);
    let e = diag::dump(
        &mut Replay::new(vec![first]),
        &ALL,
        EVERYTHING,
        StateSet::ALL,
    )
    .unwrap_err();
    assert!(matches!(e, Error::Malformed(_)), "{e}");
    assert!(e.to_string().contains("netlink message at byte"), "{e}");
    // A kernel error answer.
    let mut err = vec![0u8; 36];
    err[..4].copy_from_slice(&36u32.to_ne_bytes());
    err[4..6].copy_from_slice(&2u16.to_ne_bytes());
    err[8..12].copy_from_slice(&1u32.to_ne_bytes());
    err[16..20].copy_from_slice(&(-13i32).to_ne_bytes());
    let e = diag::dump(&mut Replay::new(vec![err]), &ALL, EVERYTHING, StateSet::ALL).unwrap_err();
    assert!(
        e.to_string().contains("refused the dump") && e.to_string().contains("Permission denied"),
        "{e}"
    );
    // An error number with no positive counterpart (i32::MIN: the fuzzer
    // found it overflowing a negation) is an error, not a panic.
    let mut err = vec![0u8; 36];
    err[..4].copy_from_slice(&36u32.to_ne_bytes());
    err[4..6].copy_from_slice(&2u16.to_ne_bytes());
    err[8..12].copy_from_slice(&1u32.to_ne_bytes());
    err[16..20].copy_from_slice(&i32::MIN.to_ne_bytes());
    let e = diag::dump(&mut Replay::new(vec![err]), &ALL, EVERYTHING, StateSet::ALL).unwrap_err();
    assert!(e.to_string().contains("refused the dump"), "{e}");
    // A refused request is a netlink error (what auto falls back on).
    let e = diag::dump(&mut Refused(1), &ALL, EVERYTHING, StateSet::ALL).unwrap_err();
    assert!(matches!(e, tcptab::Error::Netlink { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("sending the dump request: Operation not permitted"),
        "{e}"
    );
    // Ended without NLMSG_DONE.
    let e = diag::dump(&mut Replay::new(vec![]), &ALL, EVERYTHING, StateSet::ALL).unwrap_err();
    assert!(e.to_string().contains("without NLMSG_DONE"), "{e}");
}
