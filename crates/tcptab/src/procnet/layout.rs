//! The kernel's line layout, in one place: the producer's byte order, and
//! the fixed block and tail of a line (docs/proc-net-tcp.md §2.1) with the
//! branch-free primitives that decode them. The general, SWAR and SSE2
//! parsers all build on this module and on nothing of each other's.

use std::net::SocketAddr;

use crate::model::{
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

pub(super) const fn repeat(byte: u8) -> u64 {
    byte as u64 * 0x0101_0101_0101_0101
}

pub(super) const HIGH: u64 = repeat(0x80);

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
pub(super) fn bytes<const N: usize, const LEN: usize>(b: &[u8; LEN], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&b[at..at + N]);
    out
}

#[inline(always)]
pub(super) fn hex8_at<const LEN: usize>(b: &[u8; LEN], at: usize) -> (u32, u64) {
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
pub(super) fn hex2_at<const LEN: usize>(b: &[u8; LEN], at: usize) -> (u32, u64) {
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
pub(super) fn row_kind(full: bool, state: State, timer: TimerKind) -> Option<RowKind> {
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

/// Eight bytes at `at` as a little-endian word, zero-filled past the end
/// (a zero byte is neither a digit nor a space).
#[inline(always)]
pub(super) fn load8(b: &[u8], at: usize) -> u64 {
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
pub(super) fn field_start(b: &[u8], at: usize) -> Option<usize> {
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
pub(super) fn dec_i32(b: &[u8], at: usize) -> Option<(i32, usize)> {
    if b.get(at) == Some(&b'-') {
        let (magnitude, end) = digits(b, at + 1)?;
        let value = 0i64.checked_sub_unsigned(magnitude)?;
        Some((i32::try_from(value).ok()?, end))
    } else {
        let (value, end) = digits(b, at)?;
        Some((i32::try_from(value).ok()?, end))
    }
}
