//! The renderer: sockets back to the kernel's exact text (docs/proc-net-tcp.md §1.2 and §2.1).
//!
//! Upper-case zero-padded hex for every `%X` field, the pointer as kept,
//! `sl` right-aligned in 4 columns, uid in 5, timeout in 8, and every IPv4
//! record (the header too) padded with spaces to 149 characters.

use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr};

use super::layout::ByteOrder;
use crate::model::{Congestion, Family, RowKind, Socket, Ssthresh, Ticks};

/// Width of an IPv4 record before its line feed (`TMPSZ - 1`).
pub const IPV4_RECORD_WIDTH: usize = 149;

/// The header of `/proc/net/tcp`, padding and line feed included.
pub const HEADER_V4: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode                                                     \n";

/// The header of `/proc/net/tcp6`, line feed included.
pub const HEADER_V6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";

/// The header line of a family's table.
pub fn header(family: Family) -> &'static str {
    match family {
        Family::Ipv4 => HEADER_V4,
        Family::Ipv6 => HEADER_V6,
    }
}

const fn repeat(byte: u8) -> u64 {
    byte as u64 * 0x0101_0101_0101_0101
}

/// `%08X` of a u32: eight upper-case hex digits, computed at once (SWAR).
#[inline(always)]
fn hex8(value: u32) -> [u8; 8] {
    // Bytes of the value, most significant first, one per 16-bit lane.
    let s = value.swap_bytes() as u64;
    let mut x = (s | (s << 16)) & 0x0000_FFFF_0000_FFFF;
    x = (x | (x << 8)) & 0x00FF_00FF_00FF_00FF;
    // Each byte into its two nibbles, high nibble first.
    x = ((x >> 4) & 0x000F_000F_000F_000F) | ((x & 0x000F_000F_000F_000F) << 8);
    // Nibble to ASCII: '0'..'9', then 'A'..'F' (7 more for 10 and up).
    let letters = ((x + repeat(0x76)) >> 7) & repeat(0x01);
    (x + repeat(b'0') + letters * 7).to_le_bytes()
}

/// The longest line: 10-digit `sl`, IPv6 addresses, every number at its
/// widest (20-digit u64s, 11-character i32s), separators, plus room for the
/// eight-byte stores that write padding.
pub const MAX_RENDERED: usize = 384;

const SPACES: [u8; 8] = [b' '; 8];

/// One line being built in a caller's buffer. Every byte of the line is
/// written (nothing is pre-filled): padding goes in as eight-byte stores of
/// spaces that the next field overwrites, and fixed-size copies compile to
/// plain stores.
struct Line<'a> {
    buf: &'a mut [u8; MAX_RENDERED],
    len: usize,
}

impl Line<'_> {
    #[inline(always)]
    fn byte(&mut self, b: u8) {
        self.buf[self.len] = b;
        self.len += 1;
    }

    #[inline(always)]
    fn bytes<const N: usize>(&mut self, b: &[u8; N]) {
        self.buf[self.len..self.len + N].copy_from_slice(b);
        self.len += N;
    }

    #[inline(always)]
    fn hex8(&mut self, value: u32) {
        self.bytes(&hex8(value));
    }

    /// The last `N` hex digits of `value` (a port: 4, a state or timer
    /// code: 2).
    #[inline(always)]
    fn hex<const N: usize>(&mut self, value: u32) {
        let digits = hex8(value);
        let last: &[u8; N] = digits[8 - N..].try_into().expect("N is at most 8");
        self.bytes(last);
    }

    /// Spaces so that a field of `used` characters ends at column `width`
    /// (widths are at most 8).
    #[inline(always)]
    fn pad(&mut self, width: usize, used: usize) {
        self.buf[self.len..self.len + 8].copy_from_slice(&SPACES);
        self.len += width.saturating_sub(used);
    }

    /// An unsigned decimal right-aligned in `width` columns, written two
    /// digits at a time.
    #[inline(always)]
    fn decimal(&mut self, value: u64, width: usize) {
        let digits = decimal_digits(value);
        self.pad(width, digits);
        let end = self.len + digits;
        let mut at = end;
        let mut v = value;
        while v >= 100 {
            let pair = (v % 100) as usize * 2;
            v /= 100;
            at -= 2;
            self.buf[at] = DIGIT_PAIRS[pair];
            self.buf[at + 1] = DIGIT_PAIRS[pair + 1];
        }
        if v >= 10 {
            let pair = v as usize * 2;
            at -= 2;
            self.buf[at] = DIGIT_PAIRS[pair];
            self.buf[at + 1] = DIGIT_PAIRS[pair + 1];
        } else {
            at -= 1;
            self.buf[at] = b'0' + v as u8;
        }
        self.len = end;
    }

    #[inline(always)]
    fn signed(&mut self, value: i64, width: usize) {
        if value < 0 {
            let digits = decimal_digits(value.unsigned_abs());
            self.pad(width, digits + 1);
            self.byte(b'-');
            self.decimal(value.unsigned_abs(), 0);
        } else {
            self.decimal(value as u64, width);
        }
    }

    /// Spaces up to column `width`, if the line is shorter.
    #[inline(always)]
    fn pad_to(&mut self, width: usize) {
        let mut at = self.len;
        while at < width {
            self.buf[at..at + 8].copy_from_slice(&SPACES);
            at += 8;
        }
        self.len = self.len.max(width);
    }

    fn address(&mut self, family: Family, ip: IpAddr, order: ByteOrder) {
        match family {
            Family::Ipv4 => {
                let v4 = match ip {
                    IpAddr::V4(v4) => v4,
                    IpAddr::V6(v6) => v6.to_ipv4_mapped().unwrap_or(Ipv4Addr::UNSPECIFIED),
                };
                self.hex8(order.bytes_to_word(v4.octets()));
            }
            Family::Ipv6 => {
                let v6 = match ip {
                    IpAddr::V6(v6) => v6,
                    IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                };
                let o = v6.octets();
                for i in 0..4 {
                    let word = [o[i * 4], o[i * 4 + 1], o[i * 4 + 2], o[i * 4 + 3]];
                    self.hex8(order.bytes_to_word(word));
                }
            }
        }
    }
}

#[inline(always)]
fn decimal_digits(value: u64) -> usize {
    value.checked_ilog10().map_or(1, |log| log as usize + 1)
}

/// "00" to "99".
static DIGIT_PAIRS: [u8; 200] = {
    let mut table = [0u8; 200];
    let mut i = 0;
    while i < 100 {
        table[i * 2] = b'0' + (i / 10) as u8;
        table[i * 2 + 1] = b'0' + (i % 10) as u8;
        i += 1;
    }
    table
};

/// Append one socket's line, line feed included, as the kernel writes it.
pub fn render_line(socket: &Socket, order: ByteOrder, out: &mut Vec<u8>) {
    let mut buf = [0u8; MAX_RENDERED];
    let len = render_into(socket, order, &mut buf);
    out.extend_from_slice(&buf[..len]);
}

/// Write one socket's line, line feed included, at the start of `buf`, and
/// return its length. Only the returned length is meaningful: bytes after it
/// may have been written as scratch.
pub fn render_into(socket: &Socket, order: ByteOrder, buf: &mut [u8; MAX_RENDERED]) -> usize {
    let mut line = Line { buf, len: 0 };
    let family = socket.family;
    line.decimal(socket.sl as u64, 4);
    line.bytes(b": ");
    line.address(family, socket.local.ip(), order);
    line.byte(b':');
    line.hex::<4>(socket.local.port() as u32);
    line.byte(b' ');
    line.address(family, socket.remote.ip(), order);
    line.byte(b':');
    line.hex::<4>(socket.remote.port() as u32);
    line.byte(b' ');
    line.hex::<2>(socket.state.code() as u32);
    line.byte(b' ');
    line.hex8(socket.tx_queue);
    line.byte(b':');
    line.hex8(socket.rx_queue);
    line.byte(b' ');
    line.hex::<2>(socket.timer.kind.code() as u32);
    line.byte(b':');
    match u32::try_from(socket.timer.expires.0) {
        Ok(when) => line.hex8(when),
        Err(_) => {
            // Legacy kernels: more than 8 digits.
            let high = (socket.timer.expires.0 >> 32) as u32;
            let digits = hex8(high);
            let skip = digits.iter().take_while(|&&d| d == b'0').count();
            for &d in &digits[skip..] {
                line.byte(d);
            }
            line.hex8(socket.timer.expires.0 as u32);
        }
    }
    line.byte(b' ');
    line.hex8(socket.retransmits);
    line.byte(b' ');
    line.decimal(socket.uid as u64, 5);
    line.byte(b' ');
    line.signed(socket.probes as i64, 8);
    line.byte(b' ');
    line.decimal(socket.inode, 0);
    line.byte(b' ');
    line.signed(socket.refcount as i64, 0);
    line.byte(b' ');
    let pointer = socket.pointer.as_bytes();
    if let Ok(sixteen) = <&[u8; 16]>::try_from(pointer) {
        line.bytes(sixteen);
    } else {
        line.buf[line.len..line.len + pointer.len()].copy_from_slice(pointer);
        line.len += pointer.len();
    }
    // A full socket always has the five columns; a source that could not
    // fill them (netlink without tcp_info) prints zeros.
    let congestion = match (socket.kind, socket.congestion) {
        (RowKind::Full, None) => Some(Congestion {
            rto: Ticks(0),
            ato: Ticks(0),
            quick_pingpong: 0,
            cwnd: 0,
            ssthresh: Ssthresh::Segments(0),
        }),
        (_, c) => c,
    };
    if let Some(c) = &congestion {
        line.byte(b' ');
        line.decimal(c.rto.0, 0);
        line.byte(b' ');
        line.decimal(c.ato.0, 0);
        line.byte(b' ');
        line.decimal(c.quick_pingpong as u64, 0);
        line.byte(b' ');
        line.decimal(c.cwnd as u64, 0);
        line.byte(b' ');
        line.signed(c.ssthresh.to_column() as i64, 0);
    }
    if family == Family::Ipv4 {
        line.pad_to(IPV4_RECORD_WIDTH);
    }
    line.byte(b'\n');
    line.len
}

/// Writes tables (header, then lines) through an internal buffer that is
/// flushed in large blocks. Lines are rendered in place in that buffer.
#[derive(Debug)]
pub struct TableWriter<W: Write> {
    out: W,
    buf: Box<[u8]>,
    len: usize,
    order: ByteOrder,
}

impl<W: Write> TableWriter<W> {
    const FLUSH_AT: usize = 64 * 1024;

    pub fn new(out: W, order: ByteOrder) -> TableWriter<W> {
        TableWriter {
            out,
            buf: vec![0; Self::FLUSH_AT + MAX_RENDERED].into_boxed_slice(),
            len: 0,
            order,
        }
    }

    pub fn header(&mut self, family: Family) -> io::Result<()> {
        let text = header(family).as_bytes();
        self.buf[self.len..self.len + text.len()].copy_from_slice(text);
        self.len += text.len();
        self.maybe_flush()
    }

    pub fn socket(&mut self, socket: &Socket) -> io::Result<()> {
        let line: &mut [u8; MAX_RENDERED] = (&mut self.buf[self.len..self.len + MAX_RENDERED])
            .try_into()
            .expect("the buffer keeps MAX_RENDERED bytes past FLUSH_AT");
        self.len += render_into(socket, self.order, line);
        self.maybe_flush()
    }

    /// Keep room for one more line (or header, which is shorter).
    #[inline]
    fn maybe_flush(&mut self) -> io::Result<()> {
        if self.len >= Self::FLUSH_AT {
            self.out.write_all(&self.buf[..self.len])?;
            self.len = 0;
        }
        Ok(())
    }

    /// Write what is buffered and return the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.write_all(&self.buf[..self.len])?;
        self.len = 0;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Render a whole table (header and the sockets, in the order given).
pub fn render_table<'a>(
    family: Family,
    sockets: impl IntoIterator<Item = &'a Socket>,
    order: ByteOrder,
) -> Vec<u8> {
    let mut out = header(family).as_bytes().to_vec();
    for s in sockets {
        render_line(s, order, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_sizes() {
        assert_eq!(HEADER_V4.len(), 150);
        assert_eq!(HEADER_V6.len(), 145);
        assert!(HEADER_V4.starts_with("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode "));
    }

    #[test]
    fn swar_hex8_matches_format() {
        for v in [
            0u32,
            1,
            9,
            10,
            15,
            16,
            0xABCDEF01,
            0x0100007F,
            u32::MAX,
            0x89ABCDEF,
        ] {
            assert_eq!(hex8(v), *format!("{v:08X}").as_bytes(), "{v:#x}");
        }
    }

    #[test]
    fn long_timer_values_render_all_their_digits() {
        use crate::model::{RowKind, Ticks};
        for (ticks, text) in [
            (0x1AD7F29ABCA, "02:1AD7F29ABCA "),
            (u64::MAX, "02:FFFFFFFFFFFFFFFF "),
            (0x1_0000_0000, "02:100000000 "),
        ] {
            let mut s = Socket::empty(Family::Ipv6, RowKind::Full);
            s.timer.kind = crate::model::TimerKind::Keepalive;
            s.timer.expires = Ticks(ticks);
            let mut out = Vec::new();
            render_line(&s, ByteOrder::Little, &mut out);
            assert!(String::from_utf8(out).unwrap().contains(text), "{text}");
        }
    }
}
