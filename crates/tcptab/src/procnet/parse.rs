//! The line parser: one `/proc/net/tcp{,6}` line to a [`Socket`].
//!
//! It works on a byte slice, allocates nothing, and checks every byte it
//! reads, so it cannot panic. This module is the dispatch: a line in the
//! kernel's own layout takes a fast path (`sse2.rs` on x86_64, then the
//! portable SWAR path in `fast.rs`); any other width takes the general path
//! (`general.rs`), which also produces the errors. `reference.rs` holds a
//! plain implementation of the same grammar that the tests compare with.

use super::fast;
pub use super::general::parse_general;
pub use super::layout::ByteOrder;
use crate::error::LineError;
use crate::model::{Family, RowKind, Socket};

/// Whether the first token of `line` is `sl` (a header line, docs/proc-net-tcp.md §1.1).
pub fn is_header(line: &[u8]) -> bool {
    let start = line.iter().position(|&b| b != b' ').unwrap_or(line.len());
    let rest = &line[start..];
    rest.starts_with(b"sl") && rest.get(2).is_none_or(|&b| b == b' ')
}

/// Where a header line holds more than a header: a carriage return before
/// its end (lines that end in CR alone), or a word that starts a row
/// (`12:`, an entry number and its colon). None for a header alone.
pub fn header_extra(line: &[u8]) -> Option<usize> {
    let body = line.strip_suffix(b"\r").unwrap_or(line);
    if let Some(cr) = body.iter().position(|&b| b == b'\r') {
        let next = body[cr + 1..].iter().position(|&b| b != b' ').unwrap_or(0);
        return Some(cr + 1 + next);
    }
    let mut at = 0;
    for word in body.split(|&b| b == b' ') {
        if let [digits @ .., b':'] = word {
            if !digits.is_empty() && digits.iter().all(u8::is_ascii_digit) {
                return Some(at);
            }
        }
        at += word.len() + 1;
    }
    None
}

/// The fast paths for the kernel's own layout: fill `out` and return true,
/// or return false and leave `out` alone, for [`parse_general`] to handle
/// the line. On x86_64 the SSE2 path goes first; the portable SWAR path
/// takes what it leaves (a tail of over 64 bytes) and is the only fast
/// path elsewhere.
#[inline(always)]
fn parse_canonical(line: &[u8], order: ByteOrder, out: &mut Socket) -> bool {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    if super::sse2::parse_canonical(line, order, out) {
        return true;
    }
    fast::parse_canonical(line, order, out).is_some()
}

/// The fastest path, for a reader's buffer: parse the line at the start of
/// `buffer` into `out` and return its length (without the line feed), if it
/// is in the kernel's layout and the buffer holds its line feed and enough
/// after it; else `None` (with `out` perhaps partly written), and the
/// caller splits the line and calls [`parse_line_into`], which writes every
/// field or fails. (The SSE2 path finds the line feed while it reads the
/// tail; elsewhere this always returns `None`.)
#[inline(always)]
pub(super) fn parse_buffered(buffer: &[u8], order: ByteOrder, out: &mut Socket) -> Option<usize> {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    return super::sse2::parse_buffered(buffer, order, out);
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
    {
        let _ = (buffer, order, out);
        None
    }
}

/// Parse one data line (without its line feed).
#[inline]
pub fn parse_line(line: &[u8], order: ByteOrder) -> Result<Socket, LineError> {
    let mut socket = Socket::empty(Family::Ipv4, RowKind::Full);
    if parse_canonical(line, order, &mut socket) {
        Ok(socket)
    } else {
        parse_general(line, order)
    }
}

/// Parse one data line into `socket`, overwriting every field; on error
/// `socket` is left as it was. For loops that reuse one `Socket`: nothing
/// is moved around but the fields themselves.
#[inline]
pub fn parse_line_into(
    line: &[u8],
    order: ByteOrder,
    socket: &mut Socket,
) -> Result<(), LineError> {
    if !parse_canonical(line, order, socket) {
        *socket = parse_general(line, order)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{Field, ParseErrorKind};
    #[allow(unused_imports)]
    use crate::model::*;

    fn parse(s: &str) -> Socket {
        parse_line(s.as_bytes(), ByteOrder::Little).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn error(s: &str) -> LineError {
        parse_line(s.as_bytes(), ByteOrder::Little).expect_err(s)
    }

    #[test]
    fn canonical_lines_take_the_fast_path() {
        let lines = [
            "   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 23145 1 0000000000000000 100 0 0 10 0                     ",
            "   5: 0500000A:0CEA 00000000:0000 0A 00000000:00000000 00:00000000 00000000 100999        0 1073741825 1 ffff8881043a2d00 100 0 0 10 0",
            "  13: 0100007F:8E80 0100007F:1F90 06 00000000:00000000 03:00001707 00000000     0        0 0 3 0000000000000000                                      ",
            "   2: B80D0120000000000000000010000000:01BB B80D0120000000000000000099000000:C822 01 00000000:00000000 02:0006DDD0 00000000    33        0 88123 1 0000000000000000 21 4 1 10 -1",
            "   6: B80D0120000000000000000010000000:01BB B80D0120000000000000000078000000:D6D9 03 00000000:00000000 01:0000004B 00000000    33        0 0 0 0000000000000000",
            "12345: 0100007F:8E80 0100007F:1F90 01 0000000A:FFFFFFFF 04:FFFFFFFF 7FFFFFFF 4294967295 2147483647 18446744073709551615 -2147483648 0123456789abcdef 18446744073709551615 0 4294967295 4294967295 -2147483648",
        ];
        for order in [ByteOrder::Little, ByteOrder::Big] {
            for line in lines {
                let fast = fast::parse_owned(line.as_bytes(), order);
                assert_eq!(fast, parse_general(line.as_bytes(), order).ok(), "{line}");
                assert!(fast.is_some(), "{line}");
                let mut into = Socket::empty(Family::Ipv6, RowKind::Request);
                parse_line_into(line.as_bytes(), order, &mut into).unwrap();
                assert_eq!(Some(into), fast);
            }
        }
    }

    #[test]
    fn other_layouts_take_the_general_path() {
        let lines = [
            // Two spaces after "sl:", 9-digit timer, 8-digit pointer,
            // signed uid.
            "   0:  0100007F:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0",
            "   0: 0100007F:0016 00000000:0000 0A 00000000:00000000 00:000000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0",
            "   0: 0100007F:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 00000000 100 0 0 10 0",
            "   0: 0100007F:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000    -2        0 1 1 0000000000000000 100 0 0 10 0",
        ];
        for line in lines {
            assert_eq!(
                fast::parse_owned(line.as_bytes(), ByteOrder::Little),
                None,
                "{line}"
            );
            assert!(
                parse_general(line.as_bytes(), ByteOrder::Little).is_ok(),
                "{line}"
            );
        }
        let mut socket = Socket::empty(Family::Ipv4, RowKind::Full);
        let before = socket;
        assert!(parse_line_into(b"   0: 0100007F:001G", ByteOrder::Little, &mut socket).is_err());
        assert_eq!(socket, before, "an error leaves the socket as it was");
    }

    #[test]
    fn header_detection() {
        assert!(is_header(b"  sl  local_address rem_address   st"));
        assert!(is_header(b"sl"));
        assert!(!is_header(b"   0: 0100007F:0016"));
        assert!(!is_header(b"slx"));
        let header = b"  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode";
        assert_eq!(header_extra(header), None);
        assert_eq!(header_extra(b"  sl  local_address\r"), None);
        assert_eq!(
            header_extra(b"  sl  local_address\r   0: 0100007F:0016"),
            Some(23)
        );
        assert_eq!(header_extra(b"  sl  inode   0: 0100007F:0016"), Some(14));
    }

    #[test]
    fn listener_with_fast_open_limit() {
        let s = parse("   1: 3500007F:0035 00000000:0000 0A 00000000:00000000 00:00000000 00000000   101        0 19876 1 0000000000000000 100 0 0 10 5");
        assert_eq!(s.local, "127.0.0.53:53".parse().unwrap());
        assert_eq!(s.state, State::Listen);
        assert_eq!(s.kind, RowKind::Full);
        assert_eq!(s.uid, 101);
        assert_eq!(
            s.congestion.unwrap().ssthresh,
            Ssthresh::FastOpenQueueLimit(5)
        );
    }

    #[test]
    fn big_endian_producer() {
        let s = parse_line(
            b"   3: 7F000001:1538 00000000:0000 0A 00000000:00000000 00:00000000 00000000   114        0 41022 1 0000000000000000 100 0 0 10 0",
            ByteOrder::Big,
        )
        .unwrap();
        assert_eq!(s.local, "127.0.0.1:5432".parse().unwrap());
        let s = parse_line(b"   7: 00000000000000000000FFFFC0A8010A:1F90 00000000000000000000FFFFC0A80132:C93B 01 00000000:00000000 00:00000000 00000000  1000        0 99100 1 0000000000000000 20 4 0 10 -1", ByteOrder::Big).unwrap();
        assert_eq!(s.local, "[::ffff:192.168.1.10]:8080".parse().unwrap());
    }

    #[test]
    fn legacy_forms() {
        // 11-digit tm->when, raw pointer, lower-case hex.
        let s = parse("   3: 0100007f:0cea 0100007F:D3A2 01 00000000:00000000 02:1AD7F29ABCA 00000000   500        0 81237 2 ffff88003a7c1e00 20 4 1 2 -1");
        assert_eq!(s.timer.expires, Ticks(0x1AD7F29ABCA));
        assert_eq!(s.local.port(), 0x0CEA);
        // Signed uid.
        let s = parse("   0: 0100007F:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000    -2        0 5412 2 ffff81003e5e0680 3000 0 0 2 -1");
        assert_eq!(s.uid, 4294967294);
        // 32-bit pointer.
        let s = parse("   1: 0200A8C0:0016 0900A8C0:0401 01 00000000:00000000 02:0006DD5E 00000000     0        0 3318 2 cd1e6040 25 4 27 3 -1");
        assert_eq!(s.pointer.as_str(), "cd1e6040");
    }

    #[test]
    fn short_rows() {
        let tw = parse("  16: 0A01A8C0:1F90 4D01A8C0:EE49 05 00000000:00000000 03:00000C1C 00000000     0        0 0 3 0000000000000000");
        assert_eq!(tw.kind, RowKind::TimeWait);
        assert_eq!(tw.state, State::FinWait2);
        let req = parse("  21: 0A01A8C0:1F90 097100CB:80E9 03 00000000:00000000 01:00000000 00000005  1000        0 0 0 0000000000000000");
        assert_eq!(req.kind, RowKind::Request);
        assert_eq!(req.retransmits, 5);
        let e = error("  21: 0A01A8C0:1F90 097100CB:80E9 01 00000000:00000000 00:00000000 00000005  1000        0 0 0 0000000000000000");
        assert_eq!(e.kind, ParseErrorKind::UnknownShortRow);
    }

    /// (what a good line has, what the bad line has instead, the field
    /// the error names, its kind).
    const FIELD_CASES: &[(&str, &str, Field, ParseErrorKind)] = &[
        ("   6:", "   x:", Field::Sl, ParseErrorKind::InvalidDecimal),
        (
            "0A01A8C0:0016",
            "0A01A8C:0016",
            Field::LocalAddress,
            ParseErrorKind::BadLength,
        ),
        (
            "0A01A8C0:0016",
            "0A01A8CG:0016",
            Field::LocalAddress,
            ParseErrorKind::InvalidHex,
        ),
        (
            ":0016",
            ":00016",
            Field::LocalPort,
            ParseErrorKind::BadLength,
        ),
        (
            ":D431",
            ":D43Z",
            Field::RemotePort,
            ParseErrorKind::InvalidHex,
        ),
        (" 01 ", " 1FF ", Field::State, ParseErrorKind::OutOfRange),
        (
            "00000000:00000000",
            "0000000G:00000000",
            Field::TxQueue,
            ParseErrorKind::InvalidHex,
        ),
        (
            "00000000:00000000",
            "00000000-00000000",
            Field::TxQueue,
            ParseErrorKind::BadSeparator,
        ),
        (
            "00000000:00000000",
            "00000000:000000001",
            Field::RxQueue,
            ParseErrorKind::BadLength,
        ),
        (
            "02:000AF2D4",
            "02:000AF2DX",
            Field::TimerExpires,
            ParseErrorKind::InvalidHex,
        ),
        (
            "02:000AF2D4",
            "002000AF2D4",
            Field::TimerKind,
            ParseErrorKind::BadLength,
        ),
        (
            " 00000000 ",
            " 0000000x ",
            Field::Retransmits,
            ParseErrorKind::InvalidHex,
        ),
        (
            "    0  ",
            "   a0  ",
            Field::Uid,
            ParseErrorKind::InvalidDecimal,
        ),
        (
            "      0 4",
            "      - 4",
            Field::Probes,
            ParseErrorKind::InvalidDecimal,
        ),
        (
            " 45678 ",
            " 99999999999999999999 ",
            Field::Inode,
            ParseErrorKind::OutOfRange,
        ),
        (
            " 1 0000",
            " 1x 0000",
            Field::Refcount,
            ParseErrorKind::InvalidDecimal,
        ),
        (
            "0000000000000000",
            "000000000000000",
            Field::Pointer,
            ParseErrorKind::BadLength,
        ),
        (
            "0000000000000000",
            "00000000000000zz",
            Field::Pointer,
            ParseErrorKind::InvalidHex,
        ),
        (
            " 24 4",
            " 2.4 4",
            Field::Rto,
            ParseErrorKind::InvalidDecimal,
        ),
        (
            " 4 1 10",
            " 4 1 4294967296",
            Field::Cwnd,
            ParseErrorKind::OutOfRange,
        ),
        (" -1", " -1 7", Field::Line, ParseErrorKind::TrailingData),
        (
            " -1",
            " -2147483649",
            Field::Ssthresh,
            ParseErrorKind::OutOfRange,
        ),
        (" 10 -1", "", Field::Cwnd, ParseErrorKind::Missing),
    ];

    #[test]
    fn errors_name_the_field() {
        let good = "   6: 0A01A8C0:0016 3201A8C0:D431 01 00000000:00000000 02:000AF2D4 00000000     0        0 45678 1 0000000000000000 24 4 1 10 -1";
        assert!(parse_line(good.as_bytes(), ByteOrder::Little).is_ok());
        let cases = FIELD_CASES;
        for (from, to, field, kind) in cases {
            assert!(good.contains(from), "{from}");
            let bad = good.replacen(from, to, 1);
            let e = error(&bad);
            assert_eq!((e.field, e.kind), (*field, *kind), "{bad}");
        }
        assert_eq!(error("").kind, ParseErrorKind::EmptyLine);
        assert_eq!(error("     ").kind, ParseErrorKind::EmptyLine);
        let mixed = "   0: 0100007F:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0";
        assert_eq!(error(mixed).kind, ParseErrorKind::FamilyMismatch);
    }
}
