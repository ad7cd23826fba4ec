//! Checked views of netlink bytes: every read names what it reads and fails
//! with a [`Malformed`] error instead of reading past the end.
//!
//! Layouts from the kernel's headers (linux/netlink.h, linux/rtnetlink.h,
//! linux/inet_diag.h): a message is a 16-byte `nlmsghdr` then its payload,
//! padded to 4 bytes; attributes are a 4-byte `rtattr` (length, type) then
//! their data, padded to 4 bytes.

use std::fmt;

/// What was wrong with a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    /// What was being read, e.g. "inet_diag_msg.idiag_inode".
    pub what: &'static str,
    /// Byte offset in the buffer it came from.
    pub offset: usize,
    /// What was wrong.
    pub problem: String,
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}: {}", self.what, self.offset, self.problem)
    }
}

impl std::error::Error for Malformed {}

pub type WireResult<T> = Result<T, Malformed>;

/// A bounds-checked window on a byte buffer, remembering where it starts in
/// the original buffer (for error offsets).
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    bytes: &'a [u8],
    base: usize,
}

impl<'a> View<'a> {
    pub fn new(bytes: &'a [u8]) -> View<'a> {
        View { bytes, base: 0 }
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    #[cfg_attr(not(any(test, feature = "internals")), allow(dead_code))]
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// `len` bytes at `at`.
    pub fn slice(&self, at: usize, len: usize, what: &'static str) -> WireResult<View<'a>> {
        match at.checked_add(len).and_then(|end| self.bytes.get(at..end)) {
            Some(bytes) => Ok(View {
                bytes,
                base: self.base + at,
            }),
            None => Err(Malformed {
                what,
                offset: self.base + at,
                problem: format!(
                    "needs {len} bytes, {} left",
                    self.bytes.len().saturating_sub(at)
                ),
            }),
        }
    }

    /// Everything from `at` on.
    pub fn tail(&self, at: usize) -> View<'a> {
        View {
            bytes: self.bytes.get(at..).unwrap_or(&[]),
            base: self.base + at.min(self.bytes.len()),
        }
    }

    fn array<const N: usize>(&self, at: usize, what: &'static str) -> WireResult<[u8; N]> {
        let v = self.slice(at, N, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(v.bytes);
        Ok(out)
    }

    pub fn u8(&self, at: usize, what: &'static str) -> WireResult<u8> {
        Ok(self.array::<1>(at, what)?[0])
    }

    /// Host byte order (netlink headers and most diag fields).
    pub fn u16(&self, at: usize, what: &'static str) -> WireResult<u16> {
        Ok(u16::from_ne_bytes(self.array(at, what)?))
    }

    /// Network byte order (ports).
    pub fn u16_be(&self, at: usize, what: &'static str) -> WireResult<u16> {
        Ok(u16::from_be_bytes(self.array(at, what)?))
    }

    pub fn u32(&self, at: usize, what: &'static str) -> WireResult<u32> {
        Ok(u32::from_ne_bytes(self.array(at, what)?))
    }

    pub fn i32(&self, at: usize, what: &'static str) -> WireResult<i32> {
        Ok(i32::from_ne_bytes(self.array(at, what)?))
    }

    pub fn u64(&self, at: usize, what: &'static str) -> WireResult<u64> {
        Ok(u64::from_ne_bytes(self.array(at, what)?))
    }

    pub fn bytes16(&self, at: usize, what: &'static str) -> WireResult<[u8; 16]> {
        self.array(at, what)
    }

    pub fn malformed(
        &self,
        at: usize,
        what: &'static str,
        problem: impl Into<String>,
    ) -> Malformed {
        Malformed {
            what,
            offset: self.base + at,
            problem: problem.into(),
        }
    }
}

/// Round up to the 4-byte alignment of netlink messages and attributes.
pub const fn align4(len: usize) -> usize {
    (len + 3) & !3
}

pub use super::abi::{
    NLMSG_DONE, NLMSG_ERROR, NLMSG_HDRLEN, NLM_F_ACK, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST,
};

/// One netlink message: its header fields and payload.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    pub kind: u16,
    pub flags: u16,
    pub seq: u32,
    pub payload: View<'a>,
}

/// The netlink messages in one datagram.
pub fn messages(buf: View<'_>) -> impl Iterator<Item = WireResult<Message<'_>>> {
    let framing = Framing {
        // A message is tried while any byte is left: a short one is an
        // error.
        left: 1,
        header: NLMSG_HDRLEN,
        length: |buf, at, field| Ok(buf.u32(at, field)? as usize),
        length_field: "nlmsghdr.nlmsg_len",
        what: "netlink message",
    };
    framing.records(buf, |whole| {
        Ok(Message {
            kind: whole.u16(4, "nlmsghdr.nlmsg_type")?,
            flags: whole.u16(6, "nlmsghdr.nlmsg_flags")?,
            seq: whole.u32(8, "nlmsghdr.nlmsg_seq")?,
            payload: whole.tail(NLMSG_HDRLEN),
        })
    })
}

/// How length-prefixed records lie one after the other, each padded to 4
/// bytes: messages in a datagram, attributes in a payload.
struct Framing {
    /// Another record is read while at least this many bytes are left.
    left: usize,
    /// The header's size, the least a record's length can say.
    header: usize,
    /// The length a record's header says, at a byte offset, read as the
    /// field `length_field`.
    length: fn(View<'_>, usize, &'static str) -> WireResult<usize>,
    length_field: &'static str,
    what: &'static str,
}

impl Framing {
    /// The records of `buf`, each whole (header included) as `read` makes
    /// it. The walk ends after the first error.
    fn records<'a, T: 'a>(
        self,
        buf: View<'a>,
        read: impl Fn(View<'a>) -> WireResult<T> + 'a,
    ) -> impl Iterator<Item = WireResult<T>> + 'a {
        let mut at = 0usize;
        let mut failed = false;
        std::iter::from_fn(move || {
            if failed || at + self.left > buf.len() {
                return None;
            }
            let result = (|| {
                let len = (self.length)(buf, at, self.length_field)?;
                if len < self.header {
                    let why = format!("{len} is shorter than the {}-byte header", self.header);
                    return Err(buf.malformed(at, self.length_field, why));
                }
                let record = read(buf.slice(at, len, self.what)?)?;
                at += align4(len);
                Ok(record)
            })();
            failed = result.is_err();
            Some(result)
        })
    }
}

/// One attribute (`rtattr`): its type and data.
#[derive(Debug, Clone, Copy)]
pub struct Attribute<'a> {
    pub kind: u16,
    pub data: View<'a>,
}

/// The attributes that follow a fixed header in a payload.
pub fn attributes(buf: View<'_>) -> impl Iterator<Item = WireResult<Attribute<'_>>> {
    let framing = Framing {
        left: 4,
        header: 4,
        length: |buf, at, field| Ok(buf.u16(at, field)? as usize),
        length_field: "rtattr.rta_len",
        what: "attribute",
    };
    framing.records(buf, |whole| {
        Ok(Attribute {
            kind: whole.u16(2, "rtattr.rta_type")? & 0x3FFF,
            data: whole.tail(4),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_never_read_past_the_end() {
        let bytes = [1u8, 0, 0, 0, 2];
        let v = View::new(&bytes);
        assert_eq!(v.u32(0, "x"), Ok(u32::from_ne_bytes([1, 0, 0, 0])));
        let e = v.u32(2, "field").unwrap_err();
        assert_eq!(e.to_string(), "field at byte 2: needs 4 bytes, 3 left");
        assert!(v.u64(usize::MAX, "x").is_err());
        assert!(v.tail(10).is_empty());
    }

    #[test]
    fn message_and_attribute_walks_stop_on_garbage() {
        // A header claiming 8 bytes (less than a header).
        let mut bad = vec![0u8; 16];
        bad[..4].copy_from_slice(&8u32.to_ne_bytes());
        let all: Vec<_> = messages(View::new(&bad)).collect();
        assert_eq!(all.len(), 1);
        assert!(all[0].is_err());
        // An attribute longer than what is left.
        let mut attr = vec![0u8; 8];
        attr[..2].copy_from_slice(&40u16.to_ne_bytes());
        let all: Vec<_> = attributes(View::new(&attr)).collect();
        assert!(all.len() == 1 && all[0].is_err());
    }
}
