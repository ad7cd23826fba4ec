//! The variable-width tail of a line: bit masks of its bytes, tokens
//! found with bit arithmetic, numbers converted two at a time.

use std::arch::x86_64::*;

use super::super::layout::{digits, prefix, repeat};
use super::block::{halves, is_digit, is_letter, load};
use crate::model::Pointer;

/// Bit masks of the first 64 bytes of a line's tail, one bit per byte:
/// spaces, digits and minus signs, and `line`, set for the bytes before the
/// line feed.
pub(super) struct TailMasks {
    pub(super) space: u64,
    pub(super) digit: u64,
    pub(super) minus: u64,
    pub(super) line: u64,
}

/// The masks of the tail at `start` of the line at the start of `buffer`,
/// and where the line ends (its line feed). `None` when the buffer holds
/// less than 64 bytes of tail, or when anything but spaces follows the
/// first 64 bytes of the tail before the line feed, or there is no line
/// feed in the buffer.
#[inline]
#[target_feature(enable = "sse2")]
pub(super) fn tail_masks(buffer: &[u8], start: usize) -> Option<(TailMasks, usize, &Window)> {
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
pub(super) fn padding_end(buffer: &[u8], mut at: usize) -> Option<usize> {
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
pub(super) fn sl_prefix(line: &[u8]) -> Option<(u32, usize)> {
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
pub(super) fn pointer(window: &Window, start: usize) -> Option<Pointer> {
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
pub(super) fn decimal(line: &[u8], at: usize, len: usize) -> Option<u64> {
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
pub(super) fn digit_values(word: u64, len: usize) -> u64 {
    (word ^ repeat(b'0')) & (u64::MAX << (8 * (8 - len)))
}

/// The eight bytes before the tail and its first 64: a token's bytes, and
/// the eight ending at any token's end, are read from it at offsets the
/// compiler can prove in range (no bounds checks).
pub(super) type Window = [u8; 72];

/// The digit values of the `len` (1 to 8) digits of the token at `start`
/// of the tail (checked by the caller), as in [`digit_values`].
#[inline(always)]
pub(super) fn digit_word(window: &Window, (start, len): (usize, usize)) -> u64 {
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
pub(super) fn to_u64_pair(a: u64, b: u64) -> (u64, u64) {
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
pub(super) fn to_u64(word: u64, len: usize) -> u64 {
    let mut x = digit_values(word, len);
    x = ((x & 0x0F0F_0F0F_0F0F_0F0F).wrapping_mul(2561)) >> 8;
    x = ((x & 0x00FF_00FF_00FF_00FF).wrapping_mul(6_553_601)) >> 16;
    ((x & 0x0000_FFFF_0000_FFFF).wrapping_mul(42_949_672_960_001)) >> 32
}

/// The tail's tokens, in order: start and length (relative to the tail).
pub(super) struct Tokens {
    pub(super) starts: u64,
    pub(super) ends: u64,
}

impl Tokens {
    #[inline(always)]
    pub(super) fn next(&mut self) -> (usize, usize) {
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
pub(super) fn signed(line: &[u8], at: usize, len: usize, negative: bool) -> Option<i32> {
    let n = negative as usize;
    let magnitude = i64::try_from(decimal(line, at + n, len - n)?).ok()?;
    let sign = -(n as i64);
    i32::try_from((magnitude ^ sign) - sign).ok()
}
