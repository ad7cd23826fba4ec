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

mod block;
mod tail;

use block::{block_v4, block_v6};
use tail::{
    decimal, digit_word, pointer, signed, sl_prefix, tail_masks, to_u64_pair, TailMasks, Tokens,
};

use super::layout::{write_block, write_shape, write_tail, ByteOrder, Tail};
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
mod tests;
