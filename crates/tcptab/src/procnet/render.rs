//! The renderer: sockets back to the kernel's exact text (spec §7.4).
//!
//! Upper-case zero-padded hex for every `%X` field, the pointer as kept,
//! `sl` right-aligned in 4 columns, uid in 5, timeout in 8, and every IPv4
//! record (the header too) padded with spaces to 149 characters.

use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr};

use super::parse::ByteOrder;
use crate::socket::{Family, Socket};

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

const UPPER_HEX: &[u8; 16] = b"0123456789ABCDEF";

#[inline]
fn push_hex(out: &mut Vec<u8>, value: u64, min_digits: usize) {
    let significant = (64 - value.leading_zeros() as usize).div_ceil(4);
    let digits = significant.max(min_digits);
    let mut buf = [b'0'; 16];
    let mut v = value;
    for slot in buf[16 - digits.min(16)..].iter_mut().rev() {
        *slot = UPPER_HEX[(v & 0xF) as usize];
        v >>= 4;
    }
    if digits > 16 {
        out.resize(out.len() + digits - 16, b'0');
    }
    out.extend_from_slice(&buf[16 - digits.min(16)..]);
}

#[inline]
fn push_right(out: &mut Vec<u8>, text: &[u8], width: usize) {
    if text.len() < width {
        out.resize(out.len() + width - text.len(), b' ');
    }
    out.extend_from_slice(text);
}

#[inline]
fn push_int<I: itoa::Integer>(out: &mut Vec<u8>, value: I) {
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

/// The address as the family's table prints it (an IPv4 socket's address is
/// an IPv4 address; an IPv6 table holds IPv4 peers in mapped form).
fn push_address(out: &mut Vec<u8>, family: Family, ip: IpAddr, order: ByteOrder) {
    match family {
        Family::Ipv4 => {
            let v4 = match ip {
                IpAddr::V4(v4) => v4,
                IpAddr::V6(v6) => v6.to_ipv4_mapped().unwrap_or(Ipv4Addr::UNSPECIFIED),
            };
            push_hex(out, order.bytes_to_word(v4.octets()) as u64, 8);
        }
        Family::Ipv6 => {
            let v6 = match ip {
                IpAddr::V6(v6) => v6,
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
            };
            let bytes = v6.octets();
            for chunk in bytes.chunks_exact(4) {
                let word = [chunk[0], chunk[1], chunk[2], chunk[3]];
                push_hex(out, order.bytes_to_word(word) as u64, 8);
            }
        }
    }
}

/// Append one socket's line, line feed included, as the kernel writes it.
pub fn render_line(socket: &Socket, order: ByteOrder, out: &mut Vec<u8>) {
    let start = out.len();
    let family = socket.family;
    let mut sl = itoa::Buffer::new();
    push_right(out, sl.format(socket.sl).as_bytes(), 4);
    out.extend_from_slice(b": ");
    push_address(out, family, socket.local.ip(), order);
    out.push(b':');
    push_hex(out, socket.local.port() as u64, 4);
    out.push(b' ');
    push_address(out, family, socket.remote.ip(), order);
    out.push(b':');
    push_hex(out, socket.remote.port() as u64, 4);
    out.push(b' ');
    push_hex(out, socket.state.code() as u64, 2);
    out.push(b' ');
    push_hex(out, socket.tx_queue as u64, 8);
    out.push(b':');
    push_hex(out, socket.rx_queue as u64, 8);
    out.push(b' ');
    push_hex(out, socket.timer.kind.code() as u64, 2);
    out.push(b':');
    push_hex(out, socket.timer.expires.0, 8);
    out.push(b' ');
    push_hex(out, socket.retransmits as u64, 8);
    out.push(b' ');
    let mut num = itoa::Buffer::new();
    push_right(out, num.format(socket.uid).as_bytes(), 5);
    out.push(b' ');
    push_right(out, num.format(socket.probes).as_bytes(), 8);
    out.push(b' ');
    push_int(out, socket.inode);
    out.push(b' ');
    push_int(out, socket.refcount);
    out.push(b' ');
    out.extend_from_slice(socket.pointer.as_bytes());
    if let Some(c) = &socket.congestion {
        out.push(b' ');
        push_int(out, c.rto.0);
        out.push(b' ');
        push_int(out, c.ato.0);
        out.push(b' ');
        push_int(out, c.quick_pingpong);
        out.push(b' ');
        push_int(out, c.cwnd);
        out.push(b' ');
        push_int(out, c.ssthresh.to_column());
    }
    if family == Family::Ipv4 {
        let len = out.len() - start;
        if len < IPV4_RECORD_WIDTH {
            out.resize(start + IPV4_RECORD_WIDTH, b' ');
        }
    }
    out.push(b'\n');
}

/// Writes one table (header, then lines) through an internal buffer that is
/// flushed in large blocks.
#[derive(Debug)]
pub struct TableWriter<W: Write> {
    out: W,
    buf: Vec<u8>,
    order: ByteOrder,
}

impl<W: Write> TableWriter<W> {
    const FLUSH_AT: usize = 64 * 1024;

    pub fn new(out: W, order: ByteOrder) -> TableWriter<W> {
        TableWriter {
            out,
            buf: Vec::with_capacity(Self::FLUSH_AT + 512),
            order,
        }
    }

    pub fn header(&mut self, family: Family) -> io::Result<()> {
        self.buf.extend_from_slice(header(family).as_bytes());
        self.maybe_flush()
    }

    pub fn socket(&mut self, socket: &Socket) -> io::Result<()> {
        render_line(socket, self.order, &mut self.buf);
        self.maybe_flush()
    }

    #[inline]
    fn maybe_flush(&mut self) -> io::Result<()> {
        if self.buf.len() >= Self::FLUSH_AT {
            self.out.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    /// Write what is buffered and return the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.write_all(&self.buf)?;
        self.buf.clear();
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
    fn hex_widths() {
        let mut out = Vec::new();
        push_hex(&mut out, 0x1AD7F29ABCA, 8);
        assert_eq!(out, b"1AD7F29ABCA");
        out.clear();
        push_hex(&mut out, u64::MAX, 8);
        assert_eq!(out, b"FFFFFFFFFFFFFFFF");
        out.clear();
        push_hex(&mut out, 0, 2);
        assert_eq!(out, b"00");
    }
}
