//! The fast path on x86_64, with SSE2 (which every x86_64 CPU has).
//!
//! Same contract as [`super::fast`]: a line in the exact layout current
//! kernels print, or `None`; for every line it accepts, exactly what the
//! general parser returns. It differs in how it looks at the bytes:
//!
//! - It reads the reader's buffer, not a line: it finds the line's end
//!   itself, in the chunks it reads the tail with, so the reader needs no
//!   separate search for the line feed.
//! - The fixed block (70 or 118 bytes) is checked sixteen bytes at a time
//!   against a template of the layout: hex digits where the kernel prints
//!   hex, the separator where it prints one. The addresses, ports and the
//!   short hex columns are then converted in vector registers (sixteen
//!   digits to eight bytes in a few instructions), and written to the
//!   caller's socket at once.
//! - The variable-width tail is turned into bit masks (spaces, digits,
//!   minus signs, line feed), one bit per byte. Tokens are found with bit
//!   arithmetic, every byte of them checked with one mask test, and their
//!   numbers converted two at a time in a vector. A number of nine digits
//!   or more goes to a cold scalar path that checks for overflow.
//!
//! The intrinsics need `unsafe` only at the one entry point below, whose
//! safety argument is that SSE2 is enabled for the whole build.

use std::arch::x86_64::{
    __m128i, _mm_add_epi16, _mm_add_epi64, _mm_add_epi8, _mm_and_si128, _mm_cmpeq_epi8,
    _mm_cmplt_epi8, _mm_cvtsi128_si64, _mm_madd_epi16, _mm_movemask_epi8, _mm_mul_epu32,
    _mm_mullo_epi16, _mm_or_si128, _mm_packus_epi16, _mm_set1_epi16, _mm_set1_epi32,
    _mm_set1_epi64x, _mm_set1_epi8, _mm_set_epi64x, _mm_slli_epi16, _mm_srli_epi16, _mm_srli_epi64,
    _mm_unpackhi_epi64,
};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use super::layout::{
    digits, prefix, repeat, write_block, write_shape, write_tail, ByteOrder, Columns, Tail,
};
use crate::model::{Family, Pointer, Socket};

/// Parse the line at the start of `buffer` into `out` and return its
/// length (without the line feed), if it is in the canonical layout, ends
/// with a line feed, and at least 64 bytes of its tail are in the buffer
/// (the tail is read in four 16-byte chunks, past the line's end if need
/// be). Otherwise return `None`, with `out` perhaps partly written: the
/// caller parses the line again another way, which writes every field or
/// fails. The reader calls this on its buffer directly, so finding the
/// line's end costs nothing more: the tail's chunks find the line feed.
#[inline]
#[allow(unsafe_code)]
pub(super) fn parse_buffered(buffer: &[u8], order: ByteOrder, out: &mut Socket) -> Option<usize> {
    // SAFETY: `canonical` only requires SSE2, and this module is compiled
    // only when SSE2 is enabled for the build (`cfg(target_feature = "sse2")`
    // on the `mod` item; it is in the x86_64 baseline).
    unsafe { canonical(buffer, order, out) }
}

/// [`parse_buffered`] for one line on its own (no line feed): the line is
/// copied into a buffer with a line feed and room after it. Returns true
/// when the line was parsed into `out`; otherwise `out` is as it was.
#[inline]
pub(super) fn parse_canonical(line: &[u8], order: ByteOrder, out: &mut Socket) -> bool {
    const ROOM: usize = 512;
    let mut buffer = [0u8; ROOM];
    // Room for the line, its line feed and 64 bytes more: then 64 bytes
    // of its tail are in the buffer wherever the tail starts.
    if line.len() + 1 + 64 > ROOM {
        return false;
    }
    buffer[..line.len()].copy_from_slice(line);
    buffer[line.len()] = b'\n';
    // A scratch copy: `out` is left as it was unless the line is taken.
    let mut scratch = *out;
    let taken = parse_buffered(&buffer, order, &mut scratch) == Some(line.len());
    if taken {
        *out = scratch;
    }
    taken
}

/// The layout of the fixed block: `H` where a hex digit goes, otherwise the
/// separator itself.
const fn layout<const N: usize>(width: usize) -> [u8; N] {
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
const fn template<const N: usize>(layout: &[u8; N], at: usize) -> ([u8; 16], [u8; 16]) {
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

const LAYOUT_V4: [u8; 70] = layout::<70>(8);
const LAYOUT_V6: [u8; 118] = layout::<118>(32);

/// Where the 16-byte loads of each block start: at each address, so its
/// digits pair up from the first, and then enough to cover the rest.
const LOADS_V4: [usize; 5] = [0, 14, 30, 46, 54];
const LOADS_V6: [usize; 8] = [0, 16, 32, 38, 54, 70, 86, 102];

const fn templates<const N: usize, const K: usize>(
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

const TEMPLATES_V4: [([u8; 16], [u8; 16]); 5] = templates(&LAYOUT_V4, LOADS_V4);
const TEMPLATES_V6: [([u8; 16], [u8; 16]); 8] = templates(&LAYOUT_V6, LOADS_V6);

#[inline]
#[target_feature(enable = "sse2")]
fn vector(bytes: [u8; 16]) -> __m128i {
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
fn load<const N: usize>(b: &[u8; N], at: usize) -> __m128i {
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&b[at..at + 16]);
    vector(bytes)
}

/// Per byte: 0xFF where it is an ASCII digit. (Adding `0x80 - '0'` moves
/// '0'..='9' to the bottom of the signed range, -128..=-119, where one
/// signed comparison finds them; every other byte lands above.)
#[inline]
#[target_feature(enable = "sse2")]
fn is_digit(v: __m128i) -> __m128i {
    let shifted = _mm_add_epi8(v, _mm_set1_epi8((0x80 - b'0') as i8));
    _mm_cmplt_epi8(shifted, _mm_set1_epi8(-128 + 10))
}

/// Per byte: 0xFF where it is a hex letter (either case), as in
/// [`is_digit`] after folding upper case onto lower.
#[inline]
#[target_feature(enable = "sse2")]
fn is_letter(v: __m128i) -> __m128i {
    let lower = _mm_or_si128(v, _mm_set1_epi8(0x20));
    let shifted = _mm_add_epi8(lower, _mm_set1_epi8((0x80 - b'a') as i8));
    _mm_cmplt_epi8(shifted, _mm_set1_epi8(-128 + 6))
}

/// Sixteen hex digits (already checked) to eight bytes, first digit in the
/// high nibble of the first byte; the bytes are in the low half.
#[inline]
#[target_feature(enable = "sse2")]
fn hex_pairs(v: __m128i) -> __m128i {
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
fn halves(v: __m128i) -> (u64, u64) {
    (
        _mm_cvtsi128_si64(v) as u64,
        _mm_cvtsi128_si64(_mm_unpackhi_epi64(v, v)) as u64,
    )
}

/// Check a block against its templates: every hex position a hex digit,
/// every separator in place.
#[inline]
#[target_feature(enable = "sse2")]
fn block_ok<const N: usize, const K: usize>(
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
fn word<const N: usize, const LEN: usize>(b: &[u8; LEN], at: usize) -> u64 {
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
fn ports_and_columns<const N: usize>(
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
fn block_v4(b: &[u8; 70], order: ByteOrder) -> Option<(SocketAddr, SocketAddr, Columns)> {
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
fn block_v6(b: &[u8; 118], order: ByteOrder) -> Option<(SocketAddr, SocketAddr, Columns)> {
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

/// Bit masks of the first 64 bytes of a line's tail, one bit per byte:
/// spaces, digits and minus signs, and `line`, set for the bytes before the
/// line feed.
struct TailMasks {
    space: u64,
    digit: u64,
    minus: u64,
    line: u64,
}

/// The masks of the tail at `start` of the line at the start of `buffer`,
/// and where the line ends (its line feed). `None` when the buffer holds
/// less than 64 bytes of tail, or when anything but spaces follows the
/// first 64 bytes of the tail before the line feed, or there is no line
/// feed in the buffer.
#[inline]
#[target_feature(enable = "sse2")]
fn tail_masks(buffer: &[u8], start: usize) -> Option<(TailMasks, usize, &Window)> {
    let window: &Window = buffer
        .get(start.checked_sub(8)?..start + 64)?
        .try_into()
        .ok()?;
    let (mut space, mut digit, mut minus, mut newline) = (0u64, 0u64, 0u64, 0u64);
    for i in 0..4 {
        let v = load(window, 8 + 16 * i);
        let bits = |m: i32| (m as u32 as u64) << (16 * i);
        space |= bits(_mm_movemask_epi8(_mm_cmpeq_epi8(
            v,
            _mm_set1_epi8(b' ' as i8),
        )));
        digit |= bits(_mm_movemask_epi8(is_digit(v)));
        minus |= bits(_mm_movemask_epi8(_mm_cmpeq_epi8(
            v,
            _mm_set1_epi8(b'-' as i8),
        )));
        newline |= bits(_mm_movemask_epi8(_mm_cmpeq_epi8(
            v,
            _mm_set1_epi8(b'\n' as i8),
        )));
    }
    let end = if newline != 0 {
        start + newline.trailing_zeros() as usize
    } else {
        padding_end(buffer, start + 64)?
    };
    // The bits below the first line feed (all of them if there is none).
    let line = !newline & newline.wrapping_sub(1);
    let masks = TailMasks {
        space: space & line,
        digit: digit & line,
        minus: minus & line,
        line,
    };
    Some((masks, end, window))
}

/// The line feed ending a run of spaces that starts at `at`, or `None` if
/// something else ends it or the buffer does.
#[inline]
#[target_feature(enable = "sse2")]
fn padding_end(buffer: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let chunk: &[u8; 16] = buffer.get(at..at + 16)?.try_into().ok()?;
        let v = load(chunk, 0);
        let others = !_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(b' ' as i8))) & 0xFFFF;
        if others != 0 {
            let end = at + others.trailing_zeros() as usize;
            return (chunk[end - at] == b'\n').then_some(end);
        }
        at += 16;
    }
}

/// The `"%4d: "` prefix in the first sixteen bytes of the line: the `sl`
/// value and where the local address starts. An `sl` of more than eight
/// digits goes through the portable code.
#[inline]
#[target_feature(enable = "sse2")]
fn sl_prefix(line: &[u8]) -> Option<(u32, usize)> {
    let head: &[u8; 16] = line.get(..16)?.try_into().ok()?;
    let v = load(head, 0);
    let space = _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(b' ' as i8))) as u32;
    let digit = _mm_movemask_epi8(is_digit(v)) as u32;
    let colon = _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(b':' as i8))) as u32;
    let first = (!space).trailing_zeros();
    let colon = colon.trailing_zeros();
    // Spaces, then one to eight digits, then ": ".
    let number = (1u32 << colon.min(16)).wrapping_sub(1 << first.min(16));
    if colon >= 15 || colon <= first || number & !digit != 0 || space >> (colon + 1) & 1 == 0 {
        return None;
    }
    if colon - first > 8 {
        return prefix(line);
    }
    // The eight bytes ending at the colon, zeros shifted in when it is
    // nearer the start.
    let (end, len) = (colon as usize, (colon - first) as usize);
    let mut word = [0u8; 8];
    word.copy_from_slice(&head[end.max(8) - 8..end.max(8)]);
    let word = u64::from_le_bytes(word) << (8 * (8 - end.min(8)));
    Some((to_u64(word, len) as u32, end + 2))
}

/// The sixteen hex digits of the pointer at `start` of the tail (a token of
/// sixteen bytes, so `start` is at most 48), or `None`.
#[inline]
#[target_feature(enable = "sse2")]
fn pointer(window: &Window, start: usize) -> Option<Pointer> {
    let at = 8 + start.min(48);
    let mut text = [0u8; 16];
    text.copy_from_slice(&window[at..at + 16]);
    let v = load(&text, 0);
    let hex = _mm_movemask_epi8(_mm_or_si128(is_digit(v), is_letter(v)));
    (hex == 0xFFFF).then(|| Pointer::from_hex16(&text))
}

/// The value of `len` decimal digits at `at` (checked by the caller), or
/// `None` if it overflows a u64.
#[inline(always)]
fn decimal(line: &[u8], at: usize, len: usize) -> Option<u64> {
    let end = at + len;
    if len > 8 || end < 8 {
        return digits(line, at).map(|(v, _)| v);
    }
    // The eight bytes ending at the last digit (in the line: they follow
    // the fixed block).
    let mut word = [0u8; 8];
    word.copy_from_slice(line.get(end - 8..end)?);
    Some(to_u64(u64::from_le_bytes(word), len))
}

/// The `len` (1 to 8) digits in the top bytes of `word` as digit values,
/// zeros before them. (XOR turns digits into their values without a
/// borrow; the mask keeps the `len` digits.)
#[inline(always)]
fn digit_values(word: u64, len: usize) -> u64 {
    (word ^ repeat(b'0')) & (u64::MAX << (8 * (8 - len)))
}

/// The eight bytes before the tail and its first 64: a token's bytes, and
/// the eight ending at any token's end, are read from it at offsets the
/// compiler can prove in range (no bounds checks).
type Window = [u8; 72];

/// The digit values of the `len` (1 to 8) digits of the token at `start`
/// of the tail (checked by the caller), as in [`digit_values`].
#[inline(always)]
fn digit_word(window: &Window, (start, len): (usize, usize)) -> u64 {
    // The token ends by byte 63 of the tail: `end` below is at most 64.
    let end = (start + len).min(64);
    let mut word = [0u8; 8];
    word.copy_from_slice(&window[end..end + 8]);
    digit_values(u64::from_le_bytes(word), len)
}

/// Two words of digit values (as from [`digit_values`]) to their numbers,
/// in a vector: digit pairs, then fours, then eights.
#[inline]
#[target_feature(enable = "sse2")]
fn to_u64_pair(a: u64, b: u64) -> (u64, u64) {
    let v = _mm_set_epi64x(b as i64, a as i64);
    // Each 16-bit lane: its first digit (the low byte) times ten plus its
    // second.
    let tens = _mm_mullo_epi16(_mm_and_si128(v, _mm_set1_epi16(0xFF)), _mm_set1_epi16(10));
    let pairs = _mm_add_epi16(tens, _mm_srli_epi16(v, 8));
    // Each 32-bit lane: its first pair times 100 plus its second.
    let fours = _mm_madd_epi16(pairs, _mm_set1_epi32(0x0001_0064));
    // Each 64-bit lane: its first four digits times 10^4 plus the rest.
    let eights = _mm_add_epi64(
        _mm_mul_epu32(fours, _mm_set1_epi64x(10_000)),
        _mm_srli_epi64(fours, 32),
    );
    halves(eights)
}

/// The value of the `len` (1 to 8) digits in the top bytes of `word`.
#[inline(always)]
fn to_u64(word: u64, len: usize) -> u64 {
    let mut x = digit_values(word, len);
    x = ((x & 0x0F0F_0F0F_0F0F_0F0F).wrapping_mul(2561)) >> 8;
    x = ((x & 0x00FF_00FF_00FF_00FF).wrapping_mul(6_553_601)) >> 16;
    ((x & 0x0000_FFFF_0000_FFFF).wrapping_mul(42_949_672_960_001)) >> 32
}

/// The tail's tokens, in order: start and length (relative to the tail).
struct Tokens {
    starts: u64,
    ends: u64,
}

impl Tokens {
    #[inline(always)]
    fn next(&mut self) -> (usize, usize) {
        let start = self.starts.trailing_zeros() as usize;
        let end = self.ends.trailing_zeros() as usize;
        self.starts &= self.starts.wrapping_sub(1);
        self.ends &= self.ends.wrapping_sub(1);
        (start, end - start)
    }
}

/// The value of a `%d` token whose bytes are checked: an optional '-'
/// (`negative`), then digits. The sign is applied without a branch (tables
/// mix negative and positive values).
#[inline(always)]
fn signed(line: &[u8], at: usize, len: usize, negative: bool) -> Option<i32> {
    let n = negative as usize;
    let magnitude = i64::try_from(decimal(line, at + n, len - n)?).ok()?;
    let sign = -(n as i64);
    i32::try_from((magnitude ^ sign) - sign).ok()
}

/// The line at the start of `line` (a buffer holding it, its line feed,
/// and maybe more) into `out`; its length.
#[target_feature(enable = "sse2")]
fn canonical(line: &[u8], order: ByteOrder, out: &mut Socket) -> Option<usize> {
    let (sl, p) = sl_prefix(line)?;
    let (family, (local, remote, columns), tail) = if line.get(p + 8) == Some(&b':') {
        let b: &[u8; 70] = line.get(p..p + 70)?.try_into().ok()?;
        (Family::Ipv4, block_v4(b, order)?, p + 70)
    } else {
        let b: &[u8; 118] = line.get(p..p + 118)?.try_into().ok()?;
        (Family::Ipv6, block_v6(b, order)?, p + 118)
    };
    // Written now, so that none of it is kept in registers (or spilled)
    // while the tail is read; `out` is the caller's scratch.
    write_block((sl, family), (local, remote), columns, out);

    // The tail: "%5u %8d %lu %d %pK[ %lu %lu %u %u %d]", then padding.
    let (masks, end, window) = tail_masks(line, tail)?;
    let token = !masks.space & masks.line;
    // A token running into the 65th byte would have no end bit.
    if token >> 63 == 1 {
        return None;
    }
    let mut tokens = Tokens {
        starts: token & !(token << 1),
        ends: !token & (token << 1),
    };
    // Five tokens, or ten on a full socket's line, taken in two halves so
    // that few positions are held at once. (Counted as they are taken:
    // `count_ones` is a long sequence without POPCNT, which the x86_64
    // baseline lacks.) A token that is not there starts at 64 and has
    // length 0, so a pointer of sixteen proves the first five there.
    let [uid, probes, inode, refcount, pointer] = [(); 5].map(|()| tokens.next());
    if pointer.1 != 16 {
        return None;
    }
    let pointer_span = 0xFFFF << pointer.0;
    let numbers = token & !pointer_span;
    // A run of nine bytes or more among the number tokens needs the scalar
    // conversion, which takes any length and checks for overflow; up to
    // eight digits, two numbers are converted at once in a vector, and
    // nothing can overflow.
    let mut run = numbers & (numbers >> 1);
    run &= run >> 2;
    run &= run >> 4;
    run &= run >> 1;
    if run != 0 {
        write_tail(long_tail(line, tail, &masks, token)?, out)?;
        return Some(end);
    }
    // Every byte of the tokens is a digit, but for the pointer's (hex,
    // checked below) and a '-' that starts a %d token and is followed by a
    // digit.
    let bit = |(start, _): (usize, usize)| 1u64 << start;
    let mut minus = masks.minus & (bit(probes) | bit(refcount));
    let before_pointer = (pointer_span - 1) & !pointer_span;
    if numbers & before_pointer & !masks.digit & !minus != 0 || (minus << 1) & !masks.digit != 0 {
        return None;
    }
    let word = |token| digit_word(window, token);
    // A %d token: its magnitude's digits (after the '-' if there is one),
    // and its value from the magnitude (below 10^8, so exact).
    let magnitude = |(start, len): (usize, usize), minus: u64| {
        let n = (minus >> start & 1) as usize;
        word((start + n, len - n))
    };
    let signed = |(start, _): (usize, usize), minus: u64, magnitude: u64| {
        let sign = -((minus >> start & 1) as i64);
        ((magnitude as i64 ^ sign) - sign) as i32
    };
    let (uid_value, probes_value) = to_u64_pair(word(uid), magnitude(probes, minus));
    out.uid = uid_value as u32;
    out.probes = signed(probes, minus, probes_value);
    let (inode_value, refcount_value) = to_u64_pair(word(inode), magnitude(refcount, minus));
    out.inode = inode_value;
    out.refcount = signed(refcount, minus, refcount_value);
    out.pointer = self::pointer(window, pointer.0)?;
    let congestion = if tokens.starts != 0 {
        let [rto, ato, quick, cwnd, last] = [(); 5].map(|()| tokens.next());
        if last.1 == 0 || tokens.starts != 0 {
            return None;
        }
        minus |= masks.minus & bit(last);
        if numbers & !before_pointer & !masks.digit & !minus != 0
            || (minus << 1) & !masks.digit != 0
        {
            return None;
        }
        let (rto, ato) = to_u64_pair(word(rto), word(ato));
        let (quick, cwnd) = to_u64_pair(word(quick), word(cwnd));
        let (last_value, _) = to_u64_pair(magnitude(last, minus), 0);
        Some((
            rto,
            ato,
            quick as u32,
            cwnd as u32,
            signed(last, minus, last_value),
        ))
    } else {
        None
    };
    write_shape(congestion, out)?;
    Some(end)
}

/// The tail of a line with a number of nine digits or more: every token
/// converted by the scalar code, which checks for overflow.
#[cold]
#[inline(never)]
fn long_tail(line: &[u8], tail: usize, masks: &TailMasks, token: u64) -> Option<Tail> {
    let mut tokens = Tokens {
        starts: token & !(token << 1),
        ends: !token & (token << 1),
    };
    let full = match tokens.starts.count_ones() {
        5 => false,
        10 => true,
        _ => return None,
    };
    let [uid, probes, inode, refcount, pointer] = [(); 5].map(|()| tokens.next());
    let [rto, ato, quick, cwnd, last] = [(); 5].map(|()| match full {
        true => tokens.next(),
        false => (0, 1),
    });
    if pointer.1 != 16 {
        return None;
    }
    // As in the vector path: digits, but for the pointer and a '-' that
    // starts a %d token and is followed by a digit.
    let bit = |(start, _): (usize, usize)| 1u64 << start;
    let minus =
        masks.minus & (bit(probes) | bit(refcount) | bit(last) & (full as u64).wrapping_neg());
    let allowed = (0xFFFF << pointer.0) | minus;
    if token & !masks.digit & !allowed != 0 || (minus << 1) & !masks.digit != 0 {
        return None;
    }
    let negative = |(start, _): (usize, usize)| minus >> start & 1 == 1;
    let unsigned = |(start, len): (usize, usize)| decimal(line, tail + start, len);
    let signed = |t @ (start, len): (usize, usize)| signed(line, tail + start, len, negative(t));
    let text: &[u8; 16] = line
        .get(tail + pointer.0..tail + pointer.0 + 16)?
        .try_into()
        .ok()?;
    text.iter().all(u8::is_ascii_hexdigit).then_some(())?;
    let congestion = if full {
        Some((
            unsigned(rto)?,
            unsigned(ato)?,
            u32::try_from(unsigned(quick)?).ok()?,
            u32::try_from(unsigned(cwnd)?).ok()?,
            signed(last)?,
        ))
    } else {
        None
    };
    Some(Tail {
        uid: u32::try_from(unsigned(uid)?).ok()?,
        probes: signed(probes)?,
        inode: unsigned(inode)?,
        refcount: signed(refcount)?,
        pointer: Pointer::from_hex16(text),
        congestion,
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

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
                            assert_eq!(
                                Some(socket),
                                general,
                                "{}",
                                String::from_utf8_lossy(&bytes)
                            );
                        }
                        let mut buffer = bytes.clone();
                        buffer.extend_from_slice(&[b'\n'; 80]);
                        let mut socket = Socket::empty(Family::Ipv4, RowKind::Full);
                        if let Some(len) = parse_buffered(&buffer, ByteOrder::Little, &mut socket) {
                            let general = parse_general(&buffer[..len], ByteOrder::Little).ok();
                            assert_eq!(
                                Some(socket),
                                general,
                                "{}",
                                String::from_utf8_lossy(&bytes)
                            );
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
}
