use proptest::prelude::*;

use std::arch::x86_64::{_mm_movemask_epi8, _mm_set1_epi8};

use super::block::{is_digit, is_letter};
use super::*;
use crate::model::RowKind;
use crate::procnet::{fast, parse::parse_general};

/// A number that is small (the common case, short tails) or anything.
fn number(max: u64) -> impl Strategy<Value = u64> {
    prop_oneof![0..1000u64.min(max), 0..=max]
}

prop_compose! {
    /// A line as a kernel prints it (any of the three shapes, either
    /// family), with the layout of docs/proc-net-tcp.md §2.1.
    fn kernel_line()(
        v6 in any::<bool>(),
        sl in prop_oneof![0..10_000u32, any::<u32>()],
        words in any::<[u32; 8]>(),
        ports in any::<[u16; 2]>(),
        state in any::<u8>(),
        queues in any::<[u32; 2]>(),
        timer in 0u8..6,
        when in any::<u32>(),
        retransmits in any::<u32>(),
        uid in number(u32::MAX as u64),
        probes in prop_oneof![0..10i32, any::<i32>()],
        inode in number(u64::MAX),
        refcount in prop_oneof![0..5i32, any::<i32>()],
        pointer in prop_oneof![Just(0u64), any::<u32>().prop_map(u64::from), any::<u64>()],
        shape in 0u8..3,
        rto in number(u64::MAX),
        ato in number(u64::MAX),
        quick in number(u32::MAX as u64),
        cwnd in number(u32::MAX as u64),
        last in prop_oneof![-1..100i32, any::<i32>()],
    ) -> String {
        let address = |w: &[u32]| w.iter().map(|w| format!("{w:08X}")).collect::<String>();
        let (local, remote) = if v6 {
            (address(&words[..4]), address(&words[4..]))
        } else {
            (address(&words[..1]), address(&words[4..5]))
        };
        let mut line = format!(
            "{sl:4}: {local}:{:04X} {remote}:{:04X} {state:02X} {:08X}:{:08X} {timer:02X}:{when:08X} {retransmits:08X} {uid:5} {probes:8} {inode} {refcount} {pointer:016x}",
            ports[0], ports[1], queues[0], queues[1],
        );
        if shape == 0 {
            line.push_str(&format!(" {rto} {ato} {quick} {cwnd} {last}"));
        }
        if !v6 && line.len() < 149 {
            line.push_str(&" ".repeat(149 - line.len()));
        }
        line
    }
}

/// A line whose every field differs from the empty socket's.
const OTHER: &[u8] = b"   7: 0000000000000000FFFF00000100007F:0016 0000000000000000FFFF00000200007F:9ABB 01 00000010:00000020 02:00000030 00000004  1000        5 293226 3 000000008c6052a5 21 4 3 10 7";

fn sse2(line: &[u8], order: ByteOrder) -> Option<Socket> {
    let mut socket = Socket::empty(Family::Ipv4, RowKind::Full);
    parse_canonical(line, order, &mut socket).then_some(socket)
}

/// The tail after the fixed block, padding excluded, fits the 64-byte
/// masks.
fn short_tail(line: &str) -> bool {
    let p = line.find(": ").unwrap() + 2;
    let block = if line.as_bytes()[p + 8] == b':' {
        70
    } else {
        118
    };
    line.trim_end().len() < p + block + 64
}

/// A byte's classes: (digit, hex letter).
#[target_feature(enable = "sse2")]
fn classes(byte: u8) -> (bool, bool) {
    let v = _mm_set1_epi8(byte as i8);
    (
        _mm_movemask_epi8(is_digit(v)) == 0xFFFF,
        _mm_movemask_epi8(is_letter(v)) == 0xFFFF,
    )
}

/// The byte classes, for every byte value.
#[test]
#[allow(unsafe_code)]
fn classes_of_every_byte() {
    for byte in 0..=255u8 {
        // SAFETY: SSE2 is enabled for the build (see the entry points).
        let (digit, letter) = unsafe { classes(byte) };
        assert_eq!(digit, byte.is_ascii_digit(), "{byte:#x}");
        assert_eq!(
            letter,
            byte.is_ascii_hexdigit() && !byte.is_ascii_digit(),
            "{byte:#x}"
        );
    }
}

/// Each number of a full line's tail replaced by values around the
/// limits: eight and nine digits (where the vector conversion hands
/// over to the scalar one), u32, i32 and u64 limits, negatives.
#[test]
fn tail_numbers_at_the_limits() {
    let values = [
        "0",
        "7",
        "10",
        "-1",
        "-0",
        "99999999",
        "100000000",
        "-99999999",
        "-100000000",
        "999999999",
        "2147483647",
        "2147483648",
        "-2147483648",
        "-2147483649",
        "4294967295",
        "4294967296",
        "18446744073709551615",
        "18446744073709551616",
    ];
    let fields = [
        "1000",
        "0",
        "293226",
        "3",
        "000000008c6052a5",
        "100",
        "4",
        "0",
        "10",
        "-1",
    ];
    let mut accepted = 0;
    for field in [0, 1, 2, 3, 5, 6, 7, 8, 9] {
        for value in values {
            let mut tail = fields;
            tail[field] = value;
            let line = format!(
                "   0: 0100007F:8191 00000000:0000 0A 00000000:00000002 00:00000000 00000000 {}",
                tail.join(" ")
            );
            // The fast path may decline a line (a signed uid, a legacy
            // form, is the general parser's); what it accepts, it
            // parses as the general parser does.
            let general = parse_general(line.as_bytes(), ByteOrder::Little).ok();
            if let Some(socket) = sse2(line.as_bytes(), ByteOrder::Little) {
                assert_eq!(Some(socket), general, "{line}");
                accepted += 1;
            }
        }
    }
    assert!(accepted > 60, "{accepted}");
}

/// Every line of the real capture, with every byte in turn replaced by
/// each of a set of bytes (separators, signs, digits, letters, a line
/// feed, a high byte) or removed: whatever the SSE2 path accepts, on
/// its own or in a buffer, the general parser accepts the same way.
#[test]
fn every_single_byte_change_of_a_real_capture() {
    let root = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/6.18.44-sockets/net/"
    );
    let mut checked = 0;
    for table in ["tcp", "tcp6"] {
        let text = std::fs::read(format!("{root}{table}")).unwrap();
        for line in text
            .split(|&b| b == b'\n')
            .skip(1)
            .filter(|l| !l.is_empty())
        {
            assert!(
                sse2(line, ByteOrder::Little).is_some(),
                "the capture is canonical"
            );
            for at in 0..line.len() {
                for byte in [
                    None,
                    Some(b' '),
                    Some(b'-'),
                    Some(b'0'),
                    Some(b'9'),
                    Some(b'a'),
                    Some(b'F'),
                    Some(b'G'),
                    Some(b':'),
                    Some(b'\n'),
                    Some(0xB0),
                ] {
                    let mut bytes = line.to_vec();
                    match byte {
                        Some(byte) => bytes[at] = byte,
                        None => drop(bytes.remove(at)),
                    }
                    let general = parse_general(&bytes, ByteOrder::Little).ok();
                    if let Some(socket) = sse2(&bytes, ByteOrder::Little) {
                        assert_eq!(Some(socket), general, "{}", String::from_utf8_lossy(&bytes));
                    }
                    let mut buffer = bytes.clone();
                    buffer.extend_from_slice(&[b'\n'; 80]);
                    let mut socket = Socket::empty(Family::Ipv4, RowKind::Full);
                    if let Some(len) = parse_buffered(&buffer, ByteOrder::Little, &mut socket) {
                        let general = parse_general(&buffer[..len], ByteOrder::Little).ok();
                        assert_eq!(Some(socket), general, "{}", String::from_utf8_lossy(&bytes));
                    }
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 10_000, "{checked}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    /// On every line it accepts, the SSE2 path returns what the SWAR
    /// path and the general parser return; it accepts every valid line
    /// whose tail fits its masks.
    #[test]
    fn agrees_with_the_other_paths(line in kernel_line(), big in any::<bool>()) {
        let order = if big { ByteOrder::Big } else { ByteOrder::Little };
        let general = parse_general(line.as_bytes(), order).ok();
        let swar = fast::parse_owned(line.as_bytes(), order);
        let sse = sse2(line.as_bytes(), order);
        prop_assert_eq!(swar, general);
        if sse.is_some() {
            prop_assert_eq!(sse, general);
        }
        if general.is_some() && short_tail(&line) {
            prop_assert!(sse.is_some(), "declined: {}", line);
        }
    }

    /// In a reader's buffer: the line, its line feed, then anything
    /// (the next line, or bytes that are not a line). The buffered
    /// path finds the line's end, and accepts and parses exactly as on
    /// the line alone.
    #[test]
    fn in_a_buffer(
        line in kernel_line(),
        next in prop_oneof![kernel_line().prop_map(String::into_bytes), prop::collection::vec(any::<u8>(), 0..200)],
    ) {
        let mut buffer = line.clone().into_bytes();
        buffer.push(b'\n');
        buffer.extend_from_slice(&next);
        // Every field must be written: start from another socket with
        // none of them empty.
        let mut socket = parse_general(OTHER, ByteOrder::Little).unwrap();
        match parse_buffered(&buffer, ByteOrder::Little, &mut socket) {
            Some(len) => {
                prop_assert_eq!(len, line.len());
                prop_assert_eq!(Some(socket), sse2(line.as_bytes(), ByteOrder::Little));
            }
            // Declined: not a valid line, or its tail does not fit, or
            // the buffer ends too soon after the line.
            None => prop_assert!(
                parse_general(line.as_bytes(), ByteOrder::Little).is_err()
                    || !short_tail(&line)
                    || buffer.len() < line.len() + 64,
                "declined: {}", line
            ),
        }
    }

    /// A corrupted line: whatever the SSE2 path accepts, the general
    /// parser accepts the same way.
    #[test]
    fn corrupted_lines(
        line in kernel_line(),
        at in any::<prop::sample::Index>(),
        byte in prop_oneof![Just(b' '), Just(b':'), Just(b'-'), Just(b'0'), Just(b'f'), Just(b'G'), any::<u8>()],
        cut in any::<bool>(),
    ) {
        let mut bytes = line.into_bytes();
        let i = at.index(bytes.len());
        if cut {
            bytes.truncate(i);
        } else {
            bytes[i] = byte;
        }
        if let Some(socket) = sse2(&bytes, ByteOrder::Little) {
            prop_assert_eq!(Some(socket), parse_general(&bytes, ByteOrder::Little).ok());
        }
        // The same bytes in a buffer, a line feed and more after them:
        // a line the buffered path accepts (up to its first line feed,
        // which a corruption may have put in) parses as on its own.
        let mut buffer = bytes.clone();
        buffer.extend_from_slice(b"\n                                                                ");
        let mut socket = Socket::empty(Family::Ipv4, RowKind::Full);
        if let Some(len) = parse_buffered(&buffer, ByteOrder::Little, &mut socket) {
            prop_assert!(!buffer[..len].contains(&b'\n'));
            prop_assert_eq!(buffer[len], b'\n');
            prop_assert_eq!(Some(socket), parse_general(&buffer[..len], ByteOrder::Little).ok());
        }
    }
}
