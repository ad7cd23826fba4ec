//! The fixed block of a line (from the local address to the inode's
//! left edge): checked against a template of the layout sixteen bytes at a
//! time, and its hex converted in vector registers.

use std::arch::x86_64::*;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use super::super::layout::{repeat, ByteOrder, Columns};

/// The layout of the fixed block: `H` where a hex digit goes, otherwise the
/// separator itself.
pub(super) const fn layout<const N: usize>(width: usize) -> [u8; N] {
    let mut out = [b'H'; N];
    // The address block: "ADDR:PORT ADDR:PORT ".
    out[width] = b':';
    out[width + 5] = b' ';
    out[2 * width + 6] = b':';
    out[2 * width + 11] = b' ';
    // "SS TTTTTTTT:RRRRRRRR TR:WHENWHEN RETRRETR ".
    let q = 2 * width + 12;
    out[q + 2] = b' ';
    out[q + 11] = b':';
    out[q + 20] = b' ';
    out[q + 23] = b':';
    out[q + 32] = b' ';
    out[q + 41] = b' ';
    out
}

/// For the sixteen bytes at `at` of a layout: the byte each position may
/// equal (the separator; '0' where a hex digit goes, so that matching it
/// there is right too), and 0xFF where a hex digit goes.
pub(super) const fn template<const N: usize>(layout: &[u8; N], at: usize) -> ([u8; 16], [u8; 16]) {
    let mut sep = [0u8; 16];
    let mut hex = [0u8; 16];
    let mut i = 0;
    while i < 16 {
        if layout[at + i] == b'H' {
            sep[i] = b'0';
            hex[i] = 0xFF;
        } else {
            sep[i] = layout[at + i];
        }
        i += 1;
    }
    (sep, hex)
}

pub(super) const LAYOUT_V4: [u8; 70] = layout::<70>(8);
pub(super) const LAYOUT_V6: [u8; 118] = layout::<118>(32);

/// Where the 16-byte loads of each block start: at each address, so its
/// digits pair up from the first, and then enough to cover the rest.
pub(super) const LOADS_V4: [usize; 5] = [0, 14, 30, 46, 54];
pub(super) const LOADS_V6: [usize; 8] = [0, 16, 32, 38, 54, 70, 86, 102];

pub(super) const fn templates<const N: usize, const K: usize>(
    layout: &[u8; N],
    loads: [usize; K],
) -> [([u8; 16], [u8; 16]); K] {
    let mut out = [([0u8; 16], [0u8; 16]); K];
    let mut i = 0;
    while i < K {
        out[i] = template(layout, loads[i]);
        i += 1;
    }
    out
}

pub(super) const TEMPLATES_V4: [([u8; 16], [u8; 16]); 5] = templates(&LAYOUT_V4, LOADS_V4);
pub(super) const TEMPLATES_V6: [([u8; 16], [u8; 16]); 8] = templates(&LAYOUT_V6, LOADS_V6);

#[inline]
#[target_feature(enable = "sse2")]
pub(super) fn vector(bytes: [u8; 16]) -> __m128i {
    let lo = u64::from_le_bytes([
        bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
    ]);
    let hi = u64::from_le_bytes([
        bytes[8], bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15],
    ]);
    _mm_set_epi64x(hi as i64, lo as i64)
}

/// The sixteen bytes of `b` at `at` (the caller has checked the length).
#[inline]
#[target_feature(enable = "sse2")]
pub(super) fn load<const N: usize>(b: &[u8; N], at: usize) -> __m128i {
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&b[at..at + 16]);
    vector(bytes)
}

/// Per byte: 0xFF where it is an ASCII digit. (Adding `0x80 - '0'` moves
/// '0'..='9' to the bottom of the signed range, -128..=-119, where one
/// signed comparison finds them; every other byte lands above.)
#[inline]
#[target_feature(enable = "sse2")]
pub(super) fn is_digit(v: __m128i) -> __m128i {
    let shifted = _mm_add_epi8(v, _mm_set1_epi8((0x80 - b'0') as i8));
    _mm_cmplt_epi8(shifted, _mm_set1_epi8(-128 + 10))
}

/// Per byte: 0xFF where it is a hex letter (either case), as in
/// [`is_digit`] after folding upper case onto lower.
#[inline]
#[target_feature(enable = "sse2")]
pub(super) fn is_letter(v: __m128i) -> __m128i {
    let lower = _mm_or_si128(v, _mm_set1_epi8(0x20));
    let shifted = _mm_add_epi8(lower, _mm_set1_epi8((0x80 - b'a') as i8));
    _mm_cmplt_epi8(shifted, _mm_set1_epi8(-128 + 6))
}

/// Sixteen hex digits (already checked) to eight bytes, first digit in the
/// high nibble of the first byte; the bytes are in the low half.
#[inline]
#[target_feature(enable = "sse2")]
pub(super) fn hex_pairs(v: __m128i) -> __m128i {
    let nibbles = _mm_add_epi8(
        _mm_and_si128(v, _mm_set1_epi8(0x0F)),
        _mm_and_si128(is_letter(v), _mm_set1_epi8(9)),
    );
    // Each 16-bit lane holds two digits, the first in its low byte.
    let pairs = _mm_or_si128(_mm_slli_epi16(nibbles, 4), _mm_srli_epi16(nibbles, 8));
    _mm_and_si128(pairs, _mm_set1_epi16(0x00FF))
}

/// The two 64-bit halves of a vector.
#[inline]
#[target_feature(enable = "sse2")]
pub(super) fn halves(v: __m128i) -> (u64, u64) {
    (
        _mm_cvtsi128_si64(v) as u64,
        _mm_cvtsi128_si64(_mm_unpackhi_epi64(v, v)) as u64,
    )
}

/// Check a block against its templates: every hex position a hex digit,
/// every separator in place.
#[inline]
#[target_feature(enable = "sse2")]
pub(super) fn block_ok<const N: usize, const K: usize>(
    b: &[u8; N],
    loads: [usize; K],
    templates: &[([u8; 16], [u8; 16]); K],
) -> bool {
    let mut ok = _mm_set1_epi8(-1);
    for (&at, (sep, hex)) in loads.iter().zip(templates) {
        let v = load(b, at);
        let hex_ok = _mm_and_si128(_mm_or_si128(is_digit(v), is_letter(v)), vector(*hex));
        ok = _mm_and_si128(ok, _mm_or_si128(hex_ok, _mm_cmpeq_epi8(v, vector(*sep))));
    }
    _mm_movemask_epi8(ok) == 0xFFFF
}

/// `N` bytes of `b` at `at` as a little-endian word (the caller has
/// checked the length; with a constant `at` nothing is checked at run time).
#[inline(always)]
pub(super) fn word<const N: usize, const LEN: usize>(b: &[u8; LEN], at: usize) -> u64 {
    let mut bytes = [0u8; 8];
    bytes[..N].copy_from_slice(&b[at..at + N]);
    u64::from_le_bytes(bytes)
}

/// The two ports (four digits at `lport` and `rport`) and the columns after
/// the addresses, "SS TTTTTTTT:RRRRRRRR TR:WHENWHEN RETRRETR" (the last 42
/// bytes of the block), all decoded in three vectors. The template check has
/// proved every one of these positions a hex digit.
#[inline]
#[target_feature(enable = "sse2")]
pub(super) fn ports_and_columns<const N: usize>(
    b: &[u8; N],
    lport: usize,
    rport: usize,
) -> (u16, u16, Columns) {
    let q = N - 42;
    // tx and rx queue, expiry and retransmits: 32 digits, four values.
    let queues = _mm_set_epi64x(
        word::<8, N>(b, q + 12) as i64,
        word::<8, N>(b, q + 3) as i64,
    );
    let timers = _mm_set_epi64x(
        word::<8, N>(b, q + 33) as i64,
        word::<8, N>(b, q + 24) as i64,
    );
    let (queues, timers) = halves(_mm_packus_epi16(hex_pairs(queues), hex_pairs(timers)));
    // Each value's printed bytes, first digit's in the lowest byte: the
    // byte swap puts the first value in the high half.
    let (queues, timers) = (queues.swap_bytes(), timers.swap_bytes());
    // The ports, the state and the timer code; '0's fill the last four.
    let short_lo = word::<4, N>(b, lport) | word::<4, N>(b, rport) << 32;
    let short_hi = word::<2, N>(b, q) | word::<2, N>(b, q + 21) << 16 | repeat(b'0') << 32;
    let short = _mm_set_epi64x(short_hi as i64, short_lo as i64);
    let short = _mm_cvtsi128_si64(_mm_packus_epi16(hex_pairs(short), hex_pairs(short))) as u64;
    let columns = Columns {
        state: (short >> 32) as u8,
        tx_queue: (queues >> 32) as u32,
        rx_queue: queues as u32,
        timer_code: (short >> 40) as u8,
        expires: (timers >> 32) as u32,
        retransmits: timers as u32,
    };
    (
        (short as u16).swap_bytes(),
        ((short >> 16) as u16).swap_bytes(),
        columns,
    )
}

/// The IPv4 block: addresses, ports and the other columns.
#[inline]
#[target_feature(enable = "sse2")]
pub(super) fn block_v4(
    b: &[u8; 70],
    order: ByteOrder,
) -> Option<(SocketAddr, SocketAddr, Columns)> {
    if !block_ok(b, LOADS_V4, &TEMPLATES_V4) {
        return None;
    }
    // The local address's digits start the first load, the remote's the
    // second: one pack gives both, printed bytes in order.
    let packed = _mm_packus_epi16(hex_pairs(load(b, 0)), hex_pairs(load(b, 14)));
    let (local, remote) = halves(packed);
    let address = |printed: u64| {
        let le = printed as u32;
        Ipv4Addr::from_bits(match order {
            ByteOrder::Little => le,
            ByteOrder::Big => le.swap_bytes(),
        })
    };
    let (lport, rport, columns) = ports_and_columns(b, 9, 23);
    Some((
        SocketAddr::from((address(local), lport)),
        SocketAddr::from((address(remote), rport)),
        columns,
    ))
}

/// The IPv6 block: addresses, ports and the other columns.
#[inline]
#[target_feature(enable = "sse2")]
pub(super) fn block_v6(
    b: &[u8; 118],
    order: ByteOrder,
) -> Option<(SocketAddr, SocketAddr, Columns)> {
    if !block_ok(b, LOADS_V6, &TEMPLATES_V6) {
        return None;
    }
    let address = |first: __m128i, second: __m128i| {
        let (lo, hi) = halves(_mm_packus_epi16(hex_pairs(first), hex_pairs(second)));
        // `lo` and `hi` hold the printed bytes in order. The address is the
        // four words' bytes in the producer's order.
        let bits = match order {
            ByteOrder::Little => ((lo.rotate_left(32) as u128) << 64) | hi.rotate_left(32) as u128,
            ByteOrder::Big => ((lo.swap_bytes() as u128) << 64) | hi.swap_bytes() as u128,
        };
        Ipv6Addr::from_bits(bits)
    };
    let local = address(load(b, 0), load(b, 16));
    let remote = address(load(b, 38), load(b, 54));
    let (lport, rport, columns) = ports_and_columns(b, 33, 71);
    Some((
        SocketAddr::from((local, lport)),
        SocketAddr::from((remote, rport)),
        columns,
    ))
}
