//! Golden tests on the test vectors of the format specification (§10),
//! built into `testdata/spec-vectors/` by its `make.py`: the parser must
//! produce the spec's decoded tables (`expected.json`), and rendering must
//! give back the fixture byte for byte.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;
use tcptab::procnet::{parse_line, render_table};
use tcptab::procnet::{ByteOrder, ProcRoot, ReadOptions};
use tcptab::{Family, PointerKind, RowKind, Socket, State};

fn vectors() -> PathBuf {
    testkit::repo_root().join("testdata/spec-vectors")
}

#[derive(Debug, Deserialize)]
struct Expected {
    table: String,
    sl: u32,
    kind: String,
    local: SocketAddr,
    remote: SocketAddr,
    state: String,
    timer_code: u8,
    ticks: u64,
    retransmits: u32,
    uid: u32,
    probes: i32,
    inode: u64,
    refcount: i32,
    pointer: String,
    pad: usize,
    tx_queue: u32,
    rx_queue: u32,
    rto: Option<u64>,
    ato: Option<u64>,
    quick_pingpong: Option<u32>,
    cwnd: Option<u32>,
    last: Option<i32>,
}

fn read(family: Family) -> (Vec<u8>, Vec<Socket>) {
    let path = ProcRoot::new(vectors()).table_path(family);
    let bytes = std::fs::read(&path).unwrap();
    let sockets = tcptab::procnet::TableReader::new(&bytes[..], &path, ReadOptions::default())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    (bytes, sockets)
}

#[test]
fn every_vector_decodes_to_the_spec_tables() {
    let expected: Vec<Expected> =
        serde_json::from_slice(&std::fs::read(vectors().join("expected.json")).unwrap()).unwrap();
    assert_eq!(expected.len(), 35);
    let (_, v4) = read(Family::Ipv4);
    let (_, v6) = read(Family::Ipv6);
    for e in &expected {
        let (family, sockets) = if e.table == "tcp" {
            (Family::Ipv4, &v4)
        } else {
            (Family::Ipv6, &v6)
        };
        let s = sockets
            .iter()
            .find(|s| s.sl == e.sl)
            .unwrap_or_else(|| panic!("{} sl {}", e.table, e.sl));
        let at = format!("{} sl {}", e.table, e.sl);
        assert_eq!(s.family, family, "{at}");
        assert_eq!(s.kind.as_str(), e.kind, "{at}");
        assert_eq!(s.local, e.local, "{at}");
        assert_eq!(s.remote, e.remote, "{at}");
        assert_eq!(s.state, e.state.parse::<State>().unwrap(), "{at}");
        assert_eq!(s.timer.kind.code(), e.timer_code, "{at}");
        assert_eq!(s.timer.expires.0, e.ticks, "{at}");
        assert_eq!(s.retransmits, e.retransmits, "{at}");
        assert_eq!(s.uid, e.uid, "{at}");
        assert_eq!(s.probes, e.probes, "{at}");
        assert_eq!(s.inode, e.inode, "{at}");
        assert_eq!(s.refcount, e.refcount, "{at}");
        assert_eq!(s.pointer.as_str(), e.pointer, "{at}");
        assert_eq!((s.tx_queue, s.rx_queue), (e.tx_queue, e.rx_queue), "{at}");
        let c = s.congestion;
        assert_eq!(c.map(|c| c.rto.0), e.rto, "{at}");
        assert_eq!(c.map(|c| c.ato.0), e.ato, "{at}");
        assert_eq!(c.map(|c| c.quick_pingpong), e.quick_pingpong, "{at}");
        assert_eq!(c.map(|c| c.cwnd), e.cwnd, "{at}");
        assert_eq!(c.map(|c| c.ssthresh.to_column()), e.last, "{at}");
        // The padding the spec gives for each IPv4 line.
        let mut line = Vec::new();
        tcptab::procnet::render_line(s, ByteOrder::Little, &mut line);
        let text_len = line.iter().rposition(|&b| b != b' ' && b != b'\n').unwrap() + 1;
        let pad = line.len() - 1 - text_len;
        assert_eq!(pad, e.pad, "{at}: padding");
    }
}

#[test]
fn render_of_parse_is_the_fixture_byte_for_byte() {
    for family in [Family::Ipv4, Family::Ipv6] {
        let (bytes, sockets) = read(family);
        let rendered = render_table(family, &sockets, ByteOrder::Little);
        assert_eq!(
            String::from_utf8_lossy(&rendered),
            String::from_utf8_lossy(&bytes)
        );
    }
}

#[test]
fn over_long_ipv4_line_is_not_padded() {
    let (bytes, sockets) = read(Family::Ipv4);
    let last = sockets.last().unwrap();
    assert_eq!(last.sl, 12345);
    assert_eq!(last.uid, 4294967294);
    assert_eq!(last.inode, 4294967295);
    assert_eq!(last.congestion.unwrap().cwnd, 4294967295);
    assert_eq!(last.congestion.unwrap().quick_acks(), 16);
    assert!(last.congestion.unwrap().pingpong());
    assert_eq!(last.pointer.kind(), PointerKind::Raw);
    let text = String::from_utf8(bytes).unwrap();
    assert_eq!(text.lines().last().unwrap().len(), 161);
}

#[test]
fn big_endian_vectors_decode_and_render() {
    let root = ProcRoot::new(vectors().join("big-endian"));
    let options = ReadOptions {
        byte_order: ByteOrder::Big,
        ..Default::default()
    };
    let table = root.read(options).unwrap();
    assert_eq!(table.sockets[0].local, "127.0.0.1:5432".parse().unwrap());
    assert_eq!(
        table.sockets[1].local,
        "[::ffff:192.168.1.10]:8080".parse().unwrap()
    );
    assert_eq!(
        table.sockets[1].remote,
        "[::ffff:192.168.1.50]:51515".parse().unwrap()
    );
    for (family, socket) in [
        (Family::Ipv4, &table.sockets[0]),
        (Family::Ipv6, &table.sockets[1]),
    ] {
        let bytes = std::fs::read(root.table_path(family)).unwrap();
        assert_eq!(render_table(family, [socket], ByteOrder::Big), bytes);
    }
    // Read as little-endian, the same bytes are other addresses: the order
    // is a real parameter.
    let wrong = root.read(ReadOptions::default()).unwrap();
    assert_eq!(wrong.sockets[0].local, "1.0.0.127:5432".parse().unwrap());
}

#[test]
fn legacy_lines_parse() {
    let text = std::fs::read_to_string(vectors().join("legacy.txt")).unwrap();
    let lines: Vec<Socket> = text
        .lines()
        .map(|l| parse_line(l.as_bytes(), ByteOrder::Little).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    assert_eq!(lines.len(), 4);
    // 2.6.18: raw jiffies rto, LISTEN last column -1.
    assert_eq!(lines[0].congestion.unwrap().rto.0, 3000);
    assert_eq!(lines[0].congestion.unwrap().ssthresh.to_column(), -1);
    // 2.6.32: an 11-digit negative timer delta.
    assert_eq!(lines[1].timer.expires.0, 0x1AD7F29ABCA);
    // 3.x request socket: the listener's refcount.
    assert_eq!((lines[2].kind, lines[2].refcount), (RowKind::Request, 2));
    // 32-bit kernel: 8-digit pointer.
    assert_eq!(lines[3].pointer.as_str(), "cd1e6040");
    assert_eq!(lines[3].congestion.unwrap().rto.as_millis(), 250);
}
