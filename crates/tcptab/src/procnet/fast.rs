//! The fast path: a line in the exact layout current kernels print.
//!
//! Between the `sl` column and the uid, a current kernel's line is a block
//! of fixed width (70 bytes for IPv4, 118 for IPv6) with every separator at
//! a known offset. This module reads that block as an array, so every
//! offset is a constant and no access is bounds-checked, and decodes its hex
//! eight digits at a time without branching: each word yields its value and
//! a "bad" mask, the masks are OR-ed together and tested once. The
//! variable-width decimal columns after it are read eight digits at a time.
//!
//! Anything else (another width anywhere in the block, long timer values, a
//! signed uid, an 8-digit or placeholder pointer, a field out of range)
//! returns `None` and goes through the general parser, which also produces
//! the errors. For every line this path accepts it returns exactly what the
//! general parser returns; the unit tests and the property tests check that.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use super::parse::ByteOrder;
use crate::socket::{
    Congestion, Family, Pointer, RowKind, Socket, Ssthresh, State, Ticks, Timer, TimerKind,
};

pub(super) const fn repeat(byte: u8) -> u64 {
    byte as u64 * 0x0101_0101_0101_0101
}

const HIGH: u64 = repeat(0x80);

/// Eight ASCII hex digits (either case), first digit in the lowest byte, to
/// their value (first digit most significant), and a mask that is nonzero
/// when any byte is not a hex digit. Branch-free.
#[inline(always)]
pub(super) fn hex8(v: u64) -> (u32, u64) {
    // Per byte, for bytes below 0x80 (no carries): x + (0x80 - lo) has its
    // high bit set iff x >= lo, and x + (0x7F - hi) iff x > hi. A byte with
    // its high bit set is bad whatever the sums say.
    let digit = v.wrapping_add(repeat(0x80 - b'0')) & !v.wrapping_add(repeat(0x7F - b'9'));
    let lower = v | repeat(0x20);
    let letter = lower.wrapping_add(repeat(0x80 - b'a')) & !lower.wrapping_add(repeat(0x7F - b'f'));
    let bad = (!(digit | letter) | v) & HIGH;
    // Digit values: the low nibble, plus 9 for letters (bit 6 set).
    let nib = (v & repeat(0x0F)) + ((v >> 6) & repeat(0x01)) * 9;
    let x = ((nib & 0x000F_000F_000F_000F) << 4) | ((nib >> 8) & 0x000F_000F_000F_000F);
    let y = ((x & 0x0000_00FF_0000_00FF) << 8) | ((x >> 16) & 0x0000_00FF_0000_00FF);
    ((((y & 0xFFFF) << 16) | ((y >> 32) & 0xFFFF)) as u32, bad)
}

/// `N` bytes of `b` at `at` as an array. Inlined with a constant `at` (as
/// every caller passes), the bounds check folds away.
#[inline(always)]
fn bytes<const N: usize, const LEN: usize>(b: &[u8; LEN], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&b[at..at + N]);
    out
}

#[inline(always)]
fn hex8_at<const LEN: usize>(b: &[u8; LEN], at: usize) -> (u32, u64) {
    hex8(u64::from_le_bytes(bytes::<8, LEN>(b, at)))
}

/// Four hex digits: padded on the left with '0's to eight.
#[inline(always)]
pub(super) fn hex4_at<const LEN: usize>(b: &[u8; LEN], at: usize) -> (u32, u64) {
    let v = u32::from_le_bytes(bytes::<4, LEN>(b, at)) as u64;
    hex8((v << 32) | (repeat(b'0') >> 32))
}

/// Two hex digits.
#[inline(always)]
fn hex2_at<const LEN: usize>(b: &[u8; LEN], at: usize) -> (u32, u64) {
    let v = u16::from_le_bytes(bytes::<2, LEN>(b, at)) as u64;
    hex8((v << 48) | (repeat(b'0') >> 16))
}

/// The columns between the addresses and the uid:
/// "SS TTTTTTTT:RRRRRRRR TR:WHENWHEN RETRRETR".
pub(super) struct Columns {
    pub state: u8,
    pub tx_queue: u32,
    pub rx_queue: u32,
    pub timer_code: u8,
    pub expires: u32,
    pub retransmits: u32,
}

/// The columns of a fixed block of `N` bytes (they are its last 42), and a
/// mask that is nonzero if one is not hex.
#[inline(always)]
pub(super) fn columns<const N: usize>(b: &[u8; N]) -> (Columns, u64) {
    let q = N - 42;
    let (state, b0) = hex2_at(b, q);
    let (tx_queue, b1) = hex8_at(b, q + 3);
    let (rx_queue, b2) = hex8_at(b, q + 12);
    let (timer_code, b3) = hex2_at(b, q + 21);
    let (expires, b4) = hex8_at(b, q + 24);
    let (retransmits, b5) = hex8_at(b, q + 33);
    let columns = Columns {
        state: state as u8,
        tx_queue,
        rx_queue,
        timer_code: timer_code as u8,
        expires,
        retransmits,
    };
    (columns, b0 | b1 | b2 | b3 | b4 | b5)
}

/// The fixed block: both endpoints and the columns after them.
struct Block {
    local: SocketAddr,
    remote: SocketAddr,
    columns: Columns,
}

/// The four words of an IPv6 address, as printed, to the address.
#[inline(always)]
fn ipv6(words: [u32; 4], order: ByteOrder) -> Ipv6Addr {
    let w = match order {
        // Each word's bytes in the producer's order, words in sequence.
        ByteOrder::Little => words.map(u32::swap_bytes),
        ByteOrder::Big => words,
    };
    Ipv6Addr::from(
        ((w[0] as u128) << 96) | ((w[1] as u128) << 64) | ((w[2] as u128) << 32) | w[3] as u128,
    )
}

macro_rules! block_fn {
    ($name:ident, $width:expr, $len:expr, $addr:ident) => {
        /// The fixed block of one family; `None` if a separator or a digit
        /// is not where the kernel puts it.
        #[inline(always)]
        fn $name(b: &[u8; $len], order: ByteOrder) -> Option<Block> {
            const W: usize = $width;
            const LPORT: usize = W + 1;
            const RADDR: usize = W + 6;
            const RPORT: usize = RADDR + W + 1;
            const Q: usize = RPORT + 5;
            const _: () = assert!(Q + 42 == $len);
            let separators = (b[W] == b':')
                & (b[LPORT + 4] == b' ')
                & (b[RPORT - 1] == b':')
                & (b[Q - 1] == b' ')
                & (b[Q + 2] == b' ')
                & (b[Q + 11] == b':')
                & (b[Q + 20] == b' ')
                & (b[Q + 23] == b':')
                & (b[Q + 32] == b' ')
                & (b[Q + 41] == b' ');
            let (lport, b0) = hex4_at(b, LPORT);
            let (rport, b1) = hex4_at(b, RPORT);
            let (columns, b2) = columns(b);
            let (local, remote, b3) = $addr(b, RADDR, order);
            if !separators || b0 | b1 | b2 | b3 != 0 {
                return None;
            }
            Some(Block {
                local: SocketAddr::from((local, lport as u16)),
                remote: SocketAddr::from((remote, rport as u16)),
                columns,
            })
        }
    };
}

#[inline(always)]
fn addresses_v4<const LEN: usize>(
    b: &[u8; LEN],
    raddr: usize,
    order: ByteOrder,
) -> (Ipv4Addr, Ipv4Addr, u64) {
    let (l, b0) = hex8_at(b, 0);
    let (r, b1) = hex8_at(b, raddr);
    (
        Ipv4Addr::from(order.word_to_bytes(l)),
        Ipv4Addr::from(order.word_to_bytes(r)),
        b0 | b1,
    )
}

#[inline(always)]
fn addresses_v6<const LEN: usize>(
    b: &[u8; LEN],
    raddr: usize,
    order: ByteOrder,
) -> (Ipv6Addr, Ipv6Addr, u64) {
    let (l0, b0) = hex8_at(b, 0);
    let (l1, b1) = hex8_at(b, 8);
    let (l2, b2) = hex8_at(b, 16);
    let (l3, b3) = hex8_at(b, 24);
    let (r0, b4) = hex8_at(b, raddr);
    let (r1, b5) = hex8_at(b, raddr + 8);
    let (r2, b6) = hex8_at(b, raddr + 16);
    let (r3, b7) = hex8_at(b, raddr + 24);
    (
        ipv6([l0, l1, l2, l3], order),
        ipv6([r0, r1, r2, r3], order),
        b0 | b1 | b2 | b3 | b4 | b5 | b6 | b7,
    )
}

block_fn!(block_v4, 8, 70, addresses_v4);
block_fn!(block_v6, 32, 118, addresses_v6);

/// The `"%4d: "` prefix: the `sl` value and where the local address starts.
#[inline(always)]
pub(super) fn prefix(line: &[u8]) -> Option<(u32, usize)> {
    let at = skip_spaces8(line, 0);
    let (sl, end) = digits(line, at)?;
    let sl = u32::try_from(sl).ok()?;
    if line.get(end..end + 2)? != b": " {
        return None;
    }
    Some((sl, end + 2))
}

/// Sixteen hex digits of pointer, or `None`.
#[inline(always)]
pub(super) fn pointer16(line: &[u8], at: usize) -> Option<Pointer> {
    let text: &[u8; 16] = line.get(at..at + 16)?.try_into().ok()?;
    let (_, bad_hi) = hex8(u64::from_le_bytes(text[..8].try_into().ok()?));
    let (_, bad_lo) = hex8(u64::from_le_bytes(text[8..].try_into().ok()?));
    (bad_hi | bad_lo == 0).then(|| Pointer::from_hex16(text))
}

/// The decimal columns after the fixed block, and the pointer.
pub(super) struct Tail {
    pub uid: u32,
    pub probes: i32,
    pub inode: u64,
    pub refcount: i32,
    pub pointer: Pointer,
    /// rto, ato, quick/pingpong, cwnd and the last column: full sockets only.
    pub congestion: Option<(u64, u64, u32, u32, i32)>,
}

/// Write the socket of a line whose parts both fast paths read the same
/// way into `out`; `None` (and `out` untouched) for a 12-column line that
/// is neither a TIME_WAIT nor a request socket (the general parser names
/// that error).
#[inline(always)]
pub(super) fn assemble(
    (sl, family): (u32, Family),
    (local, remote): (SocketAddr, SocketAddr),
    c: Columns,
    t: Tail,
    out: &mut Socket,
) -> Option<()> {
    // The one way to fail, checked before anything is written.
    let state = State::from_code(c.state);
    row_kind(
        t.congestion.is_some(),
        state,
        TimerKind::from_code(c.timer_code),
    )?;
    write_block((sl, family), (local, remote), c, out);
    write_tail(t, out)
}

/// The row shape: a full socket's line has the congestion columns; a
/// 12-column line is a TIME_WAIT socket (its timer) or a request socket
/// (SYN_RECV with the retransmit timer), else `None`.
#[inline(always)]
fn row_kind(full: bool, state: State, timer: TimerKind) -> Option<RowKind> {
    match (full, timer, state) {
        (true, _, _) => Some(RowKind::Full),
        (false, TimerKind::TimeWait, _) => Some(RowKind::TimeWait),
        (false, TimerKind::Retransmit, State::SynRecv) => Some(RowKind::Request),
        _ => None,
    }
}

/// The first half of [`assemble`], for a path that writes as it goes: the
/// fields of the fixed block.
#[inline(always)]
pub(super) fn write_block(
    (sl, family): (u32, Family),
    (local, remote): (SocketAddr, SocketAddr),
    c: Columns,
    out: &mut Socket,
) {
    out.sl = sl;
    out.family = family;
    out.state = State::from_code(c.state);
    out.local = local;
    out.remote = remote;
    out.tx_queue = c.tx_queue;
    out.rx_queue = c.rx_queue;
    out.timer = Timer {
        kind: TimerKind::from_code(c.timer_code),
        expires: Ticks(c.expires as u64),
    };
    out.retransmits = c.retransmits;
}

/// The second half: the tail's fields and the row shape, after
/// [`write_block`]. `None` for a 12-column line that is neither a
/// TIME_WAIT nor a request socket (with `out` partly written).
#[inline(always)]
pub(super) fn write_tail(t: Tail, out: &mut Socket) -> Option<()> {
    out.uid = t.uid;
    out.probes = t.probes;
    out.inode = t.inode;
    out.refcount = t.refcount;
    out.pointer = t.pointer;
    write_shape(t.congestion, out)
}

/// The row shape and the congestion columns (rto, ato, quick/pingpong,
/// cwnd and the last column: full sockets only), after [`write_block`]:
/// `None` for a 12-column line that is neither a TIME_WAIT nor a request
/// socket.
#[inline(always)]
pub(super) fn write_shape(
    congestion: Option<(u64, u64, u32, u32, i32)>,
    out: &mut Socket,
) -> Option<()> {
    out.kind = row_kind(congestion.is_some(), out.state, out.timer.kind)?;
    out.congestion = congestion.map(|(rto, ato, quick_pingpong, cwnd, last)| Congestion {
        rto: Ticks(rto),
        ato: Ticks(ato),
        quick_pingpong,
        cwnd,
        ssthresh: Ssthresh::from_column(out.state, last),
    });
    Some(())
}

/// Parse a line in the canonical layout into `out`; `None` (and `out`
/// untouched) for anything else.
#[inline(always)]
pub(super) fn parse_canonical(line: &[u8], order: ByteOrder, out: &mut Socket) -> Option<()> {
    let (sl, p) = prefix(line)?;
    // The address width decides the family: 8 or 32 hex digits, then ':'.
    let (family, block, after) = if line.get(p + 8) == Some(&b':') {
        let b: &[u8; 70] = line.get(p..p + 70)?.try_into().ok()?;
        (Family::Ipv4, block_v4(b, order)?, p + 70)
    } else {
        let b: &[u8; 118] = line.get(p..p + 118)?.try_into().ok()?;
        (Family::Ipv6, block_v6(b, order)?, p + 118)
    };

    // The variable-width rest: "%5u %8d %lu %d %pK[ %lu %lu %u %u %d]".
    let at = skip_spaces8(line, after);
    let (uid, next) = digits(line, at)?;
    let uid = u32::try_from(uid).ok()?;
    let at = field_start(line, next)?;
    let (probes, next) = dec_i32(line, at)?;
    let at = field_start(line, next)?;
    let (inode, next) = digits(line, at)?;
    let at = field_start(line, next)?;
    let (refcount, next) = dec_i32(line, at)?;
    let at = field_start(line, next)?;
    let pointer = pointer16(line, at)?;
    let end = at + 16;
    let at = skip_spaces8(line, end);
    let congestion = if at >= line.len() {
        None
    } else {
        if at == end {
            return None;
        }
        let (rto, next) = digits(line, at)?;
        let at = field_start(line, next)?;
        let (ato, next) = digits(line, at)?;
        let at = field_start(line, next)?;
        let (quick_pingpong, next) = digits(line, at)?;
        let at = field_start(line, next)?;
        let (cwnd, next) = digits(line, at)?;
        let at = field_start(line, next)?;
        let (last, next) = dec_i32(line, at)?;
        if skip_spaces8(line, next) < line.len() {
            return None;
        }
        Some((
            rto,
            ato,
            u32::try_from(quick_pingpong).ok()?,
            u32::try_from(cwnd).ok()?,
            last,
        ))
    };
    let tail = Tail {
        uid,
        probes,
        inode,
        refcount,
        pointer,
        congestion,
    };
    let endpoints = (block.local, block.remote);
    assemble((sl, family), endpoints, block.columns, tail, out)
}

/// [`parse_canonical`] returning the socket, for tests.
#[cfg(test)]
pub(super) fn parse_owned(line: &[u8], order: ByteOrder) -> Option<Socket> {
    let mut socket = Socket::empty(Family::Ipv4, RowKind::Full);
    parse_canonical(line, order, &mut socket).map(|()| socket)
}

/// Eight bytes at `at` as a little-endian word, zero-filled past the end
/// (a zero byte is neither a digit nor a space).
#[inline(always)]
fn load8(b: &[u8], at: usize) -> u64 {
    match b.get(at..at + 8) {
        Some(chunk) => {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            u64::from_le_bytes(word)
        }
        None => {
            // Byte by byte: a variable-length copy would call memcpy.
            let tail = b.get(at..).unwrap_or(&[]);
            let mut word = 0u64;
            for (i, &byte) in tail.iter().enumerate() {
                word |= (byte as u64) << (8 * i);
            }
            word
        }
    }
}

/// The position of the first non-space byte at or after `at`.
#[inline(always)]
pub(super) fn skip_spaces8(b: &[u8], mut at: usize) -> usize {
    loop {
        let others = load8(b, at) ^ repeat(b' ');
        if others != 0 {
            return (at + (others.trailing_zeros() / 8) as usize).min(b.len());
        }
        at += 8;
        if at >= b.len() {
            return b.len();
        }
    }
}

/// After a number ending at `at`: one or more spaces, then the next field.
#[inline(always)]
fn field_start(b: &[u8], at: usize) -> Option<usize> {
    if b.get(at) != Some(&b' ') {
        return None;
    }
    let next = skip_spaces8(b, at + 1);
    (next < b.len()).then_some(next)
}

/// Unsigned decimal digits at `at`, at least one, ending at a space, a ':'
/// or the end of the line (the caller checks which): (value, position after
/// the digits). Eight digits are converted at once; more one by one with
/// overflow checks.
#[inline(always)]
pub(super) fn digits(b: &[u8], at: usize) -> Option<(u64, usize)> {
    let v = load8(b, at);
    let low7 = v & repeat(0x7F);
    let at_least_0 = low7.wrapping_add(repeat(0x80 - b'0'));
    let above_9 = low7.wrapping_add(repeat(0x7F - b'9'));
    let is_digit = at_least_0 & !above_9 & !v & HIGH;
    let n = ((!is_digit & HIGH).trailing_zeros() / 8) as usize;
    if n == 0 {
        return None;
    }
    if n < 8 {
        let mut x = v.wrapping_sub(repeat(b'0')) << (8 * (8 - n));
        x = ((x & 0x0F0F_0F0F_0F0F_0F0F).wrapping_mul(2561)) >> 8;
        x = ((x & 0x00FF_00FF_00FF_00FF).wrapping_mul(6_553_601)) >> 16;
        x = ((x & 0x0000_FFFF_0000_FFFF).wrapping_mul(42_949_672_960_001)) >> 32;
        return Some((x, at + n));
    }
    // Eight digits or more: one by one, checked.
    let mut value = 0u64;
    let mut end = at;
    while let Some(&byte) = b.get(end) {
        let d = byte.wrapping_sub(b'0');
        if d > 9 {
            break;
        }
        value = value.checked_mul(10)?.checked_add(d as u64)?;
        end += 1;
    }
    Some((value, end))
}

/// A `%d` field: an optional '-', then digits; in i32 range.
#[inline(always)]
fn dec_i32(b: &[u8], at: usize) -> Option<(i32, usize)> {
    if b.get(at) == Some(&b'-') {
        let (magnitude, end) = digits(b, at + 1)?;
        let value = 0i64.checked_sub_unsigned(magnitude)?;
        Some((i32::try_from(value).ok()?, end))
    } else {
        let (value, end) = digits(b, at)?;
        Some((i32::try_from(value).ok()?, end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_words() {
        assert_eq!(hex8(u64::from_le_bytes(*b"0100007F")), (0x0100007F, 0));
        assert_eq!(hex8(u64::from_le_bytes(*b"deadBEEF")).0, 0xDEADBEEF);
        for bad in [b"0100007G", b"\x100100007", b"0100 07F", b"01000\xB07F"] {
            assert_ne!(hex8(u64::from_le_bytes(*bad)).1, 0, "{bad:?}");
        }
        let b = *b"12AB";
        assert_eq!(hex4_at(&b, 0), (0x12AB, 0));
        assert_eq!(hex2_at(&b, 2), (0xAB, 0));
    }

    #[test]
    fn decimals_and_spaces() {
        assert_eq!(digits(b"1234567 ", 0), Some((1234567, 7)));
        assert_eq!(digits(b"12345678", 0), Some((12345678, 8)));
        assert_eq!(digits(b"1073741825 1", 0), Some((1073741825, 10)));
        assert_eq!(digits(b"7", 0), Some((7, 1)));
        assert_eq!(digits(b"7x", 0), Some((7, 1)));
        assert_eq!(digits(b"x7", 0), None);
        assert_eq!(digits(b"99999999999999999999", 0), None);
        assert_eq!(dec_i32(b"-1", 0), Some((-1, 2)));
        assert_eq!(dec_i32(b"2147483648", 0), None);
        assert_eq!(skip_spaces8(b"           x", 0), 11);
        assert_eq!(skip_spaces8(b"   ", 0), 3);
        assert_eq!(skip_spaces8(b"", 0), 0);
    }
}
