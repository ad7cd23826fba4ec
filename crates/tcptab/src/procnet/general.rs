//! The general path: every width the format allows (docs/proc-net-tcp.md
//! §2.1), one field at a time, with an error naming the field and the byte
//! where it went wrong. The fast paths hand it every line they do not take.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::layout::ByteOrder;
use crate::error::{Field, LineError, ParseErrorKind};
use crate::model::{
    Congestion, Family, Pointer, RowKind, Socket, Ssthresh, State, Ticks, Timer, TimerKind,
};

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

/// The general parser: any width the spec allows, and precise errors.
pub fn parse_general(line: &[u8], order: ByteOrder) -> Result<Socket, LineError> {
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
                        Err(out_of_range(field, start))
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
            return Err(out_of_range(field, start));
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
                None => return Err(out_of_range(field, start)),
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
        u32::try_from(v).map_err(|_| out_of_range(field, start))
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
        value.ok_or(out_of_range(field, start))
    }

    #[inline]
    fn decimal_i32(&mut self, field: Field) -> Result<i32, LineError> {
        let start = self.pos;
        let v = self.signed(field)?;
        i32::try_from(v).map_err(|_| out_of_range(field, start))
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
        .map_err(|_| out_of_range(Field::Uid, start))
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

/// `field`'s value, which begins at `start`, does not fit its type.
#[inline]
fn out_of_range(field: Field, start: usize) -> LineError {
    LineError {
        field,
        kind: ParseErrorKind::OutOfRange,
        offset: start,
    }
}
