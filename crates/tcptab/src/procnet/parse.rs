//! The line parser: one `/proc/net/tcp{,6}` line to a [`Socket`].
//!
//! It works on a byte slice, allocates nothing, and checks every byte it
//! reads, so it cannot panic. Hex fields are decoded eight digits at a time
//! through a lookup table when they have the kernel's usual width; any other
//! width takes the general path. `reference.rs` holds a plain
//! implementation of the same grammar that the tests compare with this one.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::fast;
use crate::error::{Field, LineError, ParseErrorKind};
use crate::socket::{
    Congestion, Family, Pointer, RowKind, Socket, Ssthresh, State, Ticks, Timer, TimerKind,
};

/// Byte order of the host that produced a table (docs/proc-net-tcp.md §3): the address
/// columns are the address bytes read as integers in that order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ByteOrder {
    /// x86, arm64, riscv, ppc64le, ...
    #[cfg_attr(target_endian = "little", default)]
    Little,
    /// s390x, ppc64 (BE), sparc64, ...
    #[cfg_attr(target_endian = "big", default)]
    Big,
}

impl ByteOrder {
    /// The byte order of this host.
    pub const fn native() -> ByteOrder {
        if cfg!(target_endian = "big") {
            ByteOrder::Big
        } else {
            ByteOrder::Little
        }
    }

    /// The address bytes printed as the hex word `word`.
    #[inline]
    pub fn word_to_bytes(self, word: u32) -> [u8; 4] {
        match self {
            ByteOrder::Little => word.to_le_bytes(),
            ByteOrder::Big => word.to_be_bytes(),
        }
    }

    /// The hex word printed for the address bytes `bytes`.
    #[inline]
    pub fn bytes_to_word(self, bytes: [u8; 4]) -> u32 {
        match self {
            ByteOrder::Little => u32::from_le_bytes(bytes),
            ByteOrder::Big => u32::from_be_bytes(bytes),
        }
    }
}

/// Digit value of each byte, or `BAD`.
const BAD: u8 = 0xFF;
static HEX: [u8; 256] = {
    let mut table = [BAD; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'A' as usize + i] = 10 + i as u8;
        table[b'a' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};

#[inline]
fn hex_value(byte: u8) -> u8 {
    HEX[byte as usize]
}

/// Whether the first token of `line` is `sl` (a header line, docs/proc-net-tcp.md §1.1).
pub fn is_header(line: &[u8]) -> bool {
    let start = line.iter().position(|&b| b != b' ').unwrap_or(line.len());
    let rest = &line[start..];
    rest.starts_with(b"sl") && rest.get(2).is_none_or(|&b| b == b' ')
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

/// The general parser: any width the spec allows, and precise errors.
pub(super) fn parse_general(line: &[u8], order: ByteOrder) -> Result<Socket, LineError> {
    let mut c = Cursor { b: line, pos: 0 };

    // "%4d: "
    c.skip_spaces();
    if c.at_end() {
        return Err(c.err(Field::Line, ParseErrorKind::EmptyLine));
    }
    let sl = c.decimal_u64(Field::Sl, b':')?;
    let sl = u32::try_from(sl).map_err(|_| c.err(Field::Sl, ParseErrorKind::OutOfRange))?;
    c.expect(b':', Field::Sl)?;
    c.separator(Field::LocalAddress)?;

    let (local_ip, local_family) = c.address(Field::LocalAddress, order)?;
    c.expect(b':', Field::LocalAddress)?;
    let local_port = c.hex_bounded(Field::LocalPort, 4, b' ', 0xFFFF)? as u16;
    c.separator(Field::RemoteAddress)?;
    let remote_start = c.pos;
    let (remote_ip, remote_family) = c.address(Field::RemoteAddress, order)?;
    if remote_family != local_family {
        return Err(LineError {
            field: Field::RemoteAddress,
            kind: ParseErrorKind::FamilyMismatch,
            offset: remote_start,
        });
    }
    c.expect(b':', Field::RemoteAddress)?;
    let remote_port = c.hex_bounded(Field::RemotePort, 4, b' ', 0xFFFF)? as u16;
    c.separator(Field::State)?;
    let state = c.hex_bounded(Field::State, 8, b' ', 0xFF)? as u8;
    c.separator(Field::TxQueue)?;
    let tx_queue = c.hex_bounded(Field::TxQueue, 8, b':', u32::MAX as u64)? as u32;
    c.expect(b':', Field::TxQueue)?;
    let rx_queue = c.hex_bounded(Field::RxQueue, 8, b' ', u32::MAX as u64)? as u32;
    c.separator(Field::TimerKind)?;
    let timer_code = c.hex_bounded(Field::TimerKind, 8, b':', 0xFF)? as u8;
    c.expect(b':', Field::TimerKind)?;
    let expires = c.hex_bounded(Field::TimerExpires, 16, b' ', u64::MAX)?;
    c.separator(Field::Retransmits)?;
    let retransmits = c.hex_bounded(Field::Retransmits, 8, b' ', u32::MAX as u64)? as u32;
    c.separator(Field::Uid)?;
    let uid = c.uid()?;
    c.separator(Field::Probes)?;
    let probes = c.decimal_i32(Field::Probes)?;
    c.separator(Field::Inode)?;
    let inode = c.decimal_u64(Field::Inode, b' ')?;
    c.separator(Field::Refcount)?;
    let refcount = c.decimal_i32(Field::Refcount)?;
    c.separator(Field::Pointer)?;
    let pointer = c.pointer()?;

    let state = State::from_code(state);
    let timer = Timer {
        kind: TimerKind::from_code(timer_code),
        expires: Ticks(expires),
    };
    let (kind, congestion) = c.tail(state, timer)?;

    Ok(Socket {
        sl,
        family: local_family,
        kind,
        state,
        local: SocketAddr::new(local_ip, local_port),
        remote: SocketAddr::new(remote_ip, remote_port),
        tx_queue,
        rx_queue,
        timer,
        retransmits,
        uid,
        probes,
        inode,
        refcount,
        pointer,
        congestion,
    })
}

struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    /// After the pointer: nothing but padding (a 12-column TIME_WAIT or
    /// request row), or the five congestion columns of a full socket.
    #[inline]
    fn tail(
        &mut self,
        state: State,
        timer: Timer,
    ) -> Result<(RowKind, Option<Congestion>), LineError> {
        let after_pointer = self.pos;
        self.skip_trailing_spaces();
        if self.at_end() {
            let kind = match (timer.kind, state) {
                (TimerKind::TimeWait, _) => RowKind::TimeWait,
                (TimerKind::Retransmit, State::SynRecv) => RowKind::Request,
                _ => {
                    return Err(LineError {
                        field: Field::Line,
                        kind: ParseErrorKind::UnknownShortRow,
                        offset: after_pointer,
                    })
                }
            };
            return Ok((kind, None));
        }
        let rto = self.decimal_u64(Field::Rto, b' ')?;
        self.separator(Field::Ato)?;
        let ato = self.decimal_u64(Field::Ato, b' ')?;
        self.separator(Field::QuickPingpong)?;
        let quick_pingpong = self.decimal_u32(Field::QuickPingpong)?;
        self.separator(Field::Cwnd)?;
        let cwnd = self.decimal_u32(Field::Cwnd)?;
        self.separator(Field::Ssthresh)?;
        let last = self.decimal_i32(Field::Ssthresh)?;
        self.skip_trailing_spaces();
        if !self.at_end() {
            return Err(self.err(Field::Line, ParseErrorKind::TrailingData));
        }
        let congestion = Congestion {
            rto: Ticks(rto),
            ato: Ticks(ato),
            quick_pingpong,
            cwnd,
            ssthresh: Ssthresh::from_column(state, last),
        };
        Ok((RowKind::Full, Some(congestion)))
    }

    #[inline]
    fn at_end(&self) -> bool {
        self.pos >= self.b.len()
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    #[inline]
    fn err(&self, field: Field, kind: ParseErrorKind) -> LineError {
        LineError {
            field,
            kind,
            offset: self.pos.min(self.b.len()),
        }
    }

    #[inline]
    fn skip_spaces(&mut self) {
        while self.peek() == Some(b' ') {
            self.pos += 1;
        }
    }

    /// Skip the padding at the end of an IPv4 line, eight bytes at a time.
    #[inline]
    fn skip_trailing_spaces(&mut self) {
        while let Some(chunk) = self.b.get(self.pos..self.pos + 8) {
            if chunk != b"        " {
                break;
            }
            self.pos += 8;
        }
        self.skip_spaces();
    }

    /// One or more spaces before `next`.
    #[inline]
    fn separator(&mut self, next: Field) -> Result<(), LineError> {
        match self.peek() {
            Some(b' ') => {
                self.pos += 1;
                self.skip_spaces();
                if self.at_end() {
                    Err(self.err(next, ParseErrorKind::Missing))
                } else {
                    Ok(())
                }
            }
            None => Err(self.err(next, ParseErrorKind::Missing)),
            Some(_) => Err(self.err(next, ParseErrorKind::BadSeparator)),
        }
    }

    #[inline]
    fn expect(&mut self, byte: u8, field: Field) -> Result<(), LineError> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.err(field, ParseErrorKind::BadSeparator))
        }
    }

    /// The error for a token that stopped at `self.pos` before `terminator`.
    #[cold]
    fn bad_end(&self, field: Field, start: usize, hex: bool) -> LineError {
        match self.peek() {
            Some(b) if !matches!(b, b' ' | b':' | b'-') => LineError {
                field,
                kind: if hex {
                    ParseErrorKind::InvalidHex
                } else {
                    ParseErrorKind::InvalidDecimal
                },
                offset: start,
            },
            _ => self.err(field, ParseErrorKind::BadSeparator),
        }
    }

    /// Eight hex digits at `pos`, if they are all hex.
    #[inline]
    fn hex8_at(&self, pos: usize) -> Option<u32> {
        let chunk: &[u8; 8] = self.b.get(pos..pos + 8)?.try_into().ok()?;
        let mut acc = 0u32;
        let mut bad = 0u8;
        for &byte in chunk {
            let d = hex_value(byte);
            bad |= d;
            acc = (acc << 4) | (d & 0x0F) as u32;
        }
        (bad & 0xF0 == 0).then_some(acc)
    }

    /// A hex number of 1 to `max_digits` digits ending in `terminator` (a
    /// space also accepts the end of the line), at most `max_value`.
    #[inline]
    fn hex_bounded(
        &mut self,
        field: Field,
        max_digits: usize,
        terminator: u8,
        max_value: u64,
    ) -> Result<u64, LineError> {
        let start = self.pos;
        // Fast path: the kernel's 8-digit width.
        if max_digits >= 8 {
            if let Some(value) = self.hex8_at(start) {
                let next = self.b.get(start + 8).copied();
                if next == Some(terminator) || (terminator == b' ' && next.is_none()) {
                    self.pos = start + 8;
                    return if value as u64 <= max_value {
                        Ok(value as u64)
                    } else {
                        Err(LineError {
                            field,
                            kind: ParseErrorKind::OutOfRange,
                            offset: start,
                        })
                    };
                }
            }
        }
        let mut value = 0u64;
        let mut digits = 0usize;
        while let Some(byte) = self.peek() {
            let d = hex_value(byte);
            if d == BAD {
                break;
            }
            value = (value << 4) | d as u64;
            digits += 1;
            self.pos += 1;
        }
        if digits == 0 {
            return Err(LineError {
                field,
                kind: if self.at_end() {
                    ParseErrorKind::Missing
                } else {
                    ParseErrorKind::InvalidHex
                },
                offset: start,
            });
        }
        if digits > max_digits {
            return Err(LineError {
                field,
                kind: ParseErrorKind::BadLength,
                offset: start,
            });
        }
        let ends_ok = match self.peek() {
            None => terminator == b' ',
            Some(b) => b == terminator,
        };
        if !ends_ok {
            return Err(if self.at_end() {
                self.err(field, ParseErrorKind::Missing)
            } else {
                self.bad_end(field, start, true)
            });
        }
        if value > max_value {
            return Err(LineError {
                field,
                kind: ParseErrorKind::OutOfRange,
                offset: start,
            });
        }
        Ok(value)
    }

    /// An address: 8 hex digits (IPv4) or 32 (IPv6), then `:`.
    #[inline]
    fn address(&mut self, field: Field, order: ByteOrder) -> Result<(IpAddr, Family), LineError> {
        let start = self.pos;
        if let Some(w0) = self.hex8_at(start) {
            match self.b.get(start + 8) {
                Some(b':') => {
                    self.pos = start + 8;
                    let ip = Ipv4Addr::from(order.word_to_bytes(w0));
                    return Ok((IpAddr::V4(ip), Family::Ipv4));
                }
                Some(&b) if hex_value(b) != BAD => {
                    if let (Some(w1), Some(w2), Some(w3)) = (
                        self.hex8_at(start + 8),
                        self.hex8_at(start + 16),
                        self.hex8_at(start + 24),
                    ) {
                        if self.b.get(start + 32) == Some(&b':') {
                            self.pos = start + 32;
                            let mut bytes = [0u8; 16];
                            for (i, w) in [w0, w1, w2, w3].into_iter().enumerate() {
                                bytes[i * 4..i * 4 + 4].copy_from_slice(&order.word_to_bytes(w));
                            }
                            return Ok((IpAddr::V6(Ipv6Addr::from(bytes)), Family::Ipv6));
                        }
                    }
                }
                _ => {}
            }
        }
        Err(self.address_error(field, start))
    }

    #[cold]
    fn address_error(&mut self, field: Field, start: usize) -> LineError {
        let digits = self.b[start..]
            .iter()
            .take_while(|&&b| hex_value(b) != BAD)
            .count();
        self.pos = start + digits;
        match self.peek() {
            None if digits == 0 => self.err(field, ParseErrorKind::Missing),
            Some(b':') | Some(b' ') | None => LineError {
                field,
                kind: ParseErrorKind::BadLength,
                offset: start,
            },
            Some(_) => self.bad_end(field, start, true),
        }
    }

    /// Decimal digits up to `terminator` (a space also accepts the end).
    #[inline]
    fn digits_u64(&mut self, field: Field, terminator: u8) -> Result<u64, LineError> {
        let start = self.pos;
        let mut value = 0u64;
        while let Some(byte) = self.peek() {
            let d = byte.wrapping_sub(b'0');
            if d > 9 {
                break;
            }
            value = match value.checked_mul(10).and_then(|v| v.checked_add(d as u64)) {
                Some(v) => v,
                None => {
                    return Err(LineError {
                        field,
                        kind: ParseErrorKind::OutOfRange,
                        offset: start,
                    })
                }
            };
            self.pos += 1;
        }
        let ends_ok = match self.peek() {
            None => terminator == b' ',
            Some(b) => b == terminator,
        };
        if self.pos == start {
            return Err(if self.at_end() {
                self.err(field, ParseErrorKind::Missing)
            } else {
                LineError {
                    field,
                    kind: ParseErrorKind::InvalidDecimal,
                    offset: start,
                }
            });
        }
        if !ends_ok {
            return Err(if self.at_end() {
                self.err(field, ParseErrorKind::Missing)
            } else {
                self.bad_end(field, start, false)
            });
        }
        Ok(value)
    }

    #[inline]
    fn decimal_u64(&mut self, field: Field, terminator: u8) -> Result<u64, LineError> {
        self.digits_u64(field, terminator)
    }

    #[inline]
    fn decimal_u32(&mut self, field: Field) -> Result<u32, LineError> {
        let start = self.pos;
        let v = self.digits_u64(field, b' ')?;
        u32::try_from(v).map_err(|_| LineError {
            field,
            kind: ParseErrorKind::OutOfRange,
            offset: start,
        })
    }

    /// A signed decimal (`%d`): an optional `-`, then digits.
    #[inline]
    fn signed(&mut self, field: Field) -> Result<i64, LineError> {
        let start = self.pos;
        let negative = self.peek() == Some(b'-');
        if negative {
            self.pos += 1;
        }
        let magnitude = self.digits_u64(field, b' ').map_err(|mut e| {
            e.offset = start;
            e
        })?;
        let value = if negative {
            0i64.checked_sub_unsigned(magnitude)
        } else {
            i64::try_from(magnitude).ok()
        };
        value.ok_or(LineError {
            field,
            kind: ParseErrorKind::OutOfRange,
            offset: start,
        })
    }

    #[inline]
    fn decimal_i32(&mut self, field: Field) -> Result<i32, LineError> {
        let start = self.pos;
        let v = self.signed(field)?;
        i32::try_from(v).map_err(|_| LineError {
            field,
            kind: ParseErrorKind::OutOfRange,
            offset: start,
        })
    }

    /// `%5u`, or on old kernels `%5d` (a uid of 2^31 or more printed
    /// negative): a negative value is taken as the u32 it was.
    #[inline]
    fn uid(&mut self) -> Result<u32, LineError> {
        let start = self.pos;
        let v = self.signed(Field::Uid)?;
        if v < 0 {
            i32::try_from(v).map(|v| v as u32)
        } else {
            u32::try_from(v)
        }
        .map_err(|_| LineError {
            field: Field::Uid,
            kind: ParseErrorKind::OutOfRange,
            offset: start,
        })
    }

    /// The pointer: 8 or 16 hex digits, or a `(...)` placeholder.
    #[inline]
    fn pointer(&mut self) -> Result<Pointer, LineError> {
        let start = self.pos;
        let len = self.b[start..]
            .iter()
            .position(|&b| b == b' ')
            .unwrap_or(self.b.len() - start);
        let token = &self.b[start..start + len];
        let ok = match token.first() {
            Some(b'(') => token.last() == Some(&b')') && len >= 2,
            _ => (len == 8 || len == 16) && token.iter().all(|&b| hex_value(b) != BAD),
        };
        let pointer = if ok { Pointer::from_text(token) } else { None };
        match pointer {
            Some(p) => {
                self.pos = start + len;
                Ok(p)
            }
            None => Err(LineError {
                field: Field::Pointer,
                kind: if token.iter().all(|&b| hex_value(b) != BAD) {
                    ParseErrorKind::BadLength
                } else {
                    ParseErrorKind::InvalidHex
                },
                offset: start,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn errors_name_the_field() {
        let good = "   6: 0A01A8C0:0016 3201A8C0:D431 01 00000000:00000000 02:000AF2D4 00000000     0        0 45678 1 0000000000000000 24 4 1 10 -1";
        assert!(parse_line(good.as_bytes(), ByteOrder::Little).is_ok());
        let cases: &[(&str, &str, Field, ParseErrorKind)] = &[
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
