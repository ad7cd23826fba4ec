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

use super::layout::*;
use crate::model::{Family, Socket};

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
    let mut socket = Socket::empty(Family::Ipv4, crate::model::RowKind::Full);
    parse_canonical(line, order, &mut socket).map(|()| socket)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[allow(unused_imports)]
    use crate::model::*;

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
