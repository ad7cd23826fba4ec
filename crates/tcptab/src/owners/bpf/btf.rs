//! The running kernel's own description of its types (BTF,
//! `/sys/kernel/btf/vmlinux`; linux/btf.h), read for what the iterator
//! program needs: the id of the function it attaches to, and where the
//! fields it reads lie in the kernel's structs. Offsets read here, not
//! compiled in, are what lets one program run on any kernel that
//! describes itself.

use std::io;

const MAGIC: u16 = 0xeb9f;

// BTF_KIND_* (linux/btf.h).
const INT: u32 = 1;
const PTR: u32 = 2;
const ARRAY: u32 = 3;
const STRUCT: u32 = 4;
const UNION: u32 = 5;
const ENUM: u32 = 6;
const FWD: u32 = 7;
const TYPEDEF: u32 = 8;
const VOLATILE: u32 = 9;
const CONST: u32 = 10;
const RESTRICT: u32 = 11;
const FUNC: u32 = 12;
const FUNC_PROTO: u32 = 13;
const VAR: u32 = 14;
const DATASEC: u32 = 15;
const FLOAT: u32 = 16;
const DECL_TAG: u32 = 17;
const TYPE_TAG: u32 = 18;
const ENUM64: u32 = 19;

/// One type: its kind, name, `size_or_type`, and where its trailing
/// records (members, parameters) begin, with how many.
#[derive(Debug, Clone, Copy)]
struct Type {
    kind: u32,
    kind_flag: bool,
    name: u32,
    size_or_type: u32,
    records: usize,
    vlen: usize,
}

/// The types of one BTF blob, by id (id 0 is `void`): where each one's
/// record starts, decoded when asked for (the kernel describes some
/// 126,000 types; the program needs a few dozen of them).
#[derive(Debug)]
pub(super) struct Btf {
    data: Blob,
    strings: std::ops::Range<usize>,
    /// The byte offset of each type's record (0 for `void`).
    offsets: Vec<u32>,
}

/// The blob: the kernel's file mapped (Linux 6.16 and later), or read.
#[derive(Debug)]
enum Blob {
    Mapped(super::sys::Mapped),
    Read(Vec<u8>),
}

impl std::ops::Deref for Blob {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Blob::Mapped(m) => m.bytes(),
            Blob::Read(v) => v,
        }
    }
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("BTF: {what}"))
}

fn u32_at(data: &[u8], at: usize) -> io::Result<u32> {
    data.get(at..at + 4)
        .map(|b| u32::from_le_bytes(b.try_into().expect("four bytes")))
        .ok_or_else(|| bad("cut short"))
}

/// A member found: its offset in bits from the struct's start, and its
/// type's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Member {
    pub(super) bits: u32,
    pub(super) type_id: u32,
}

impl Btf {
    /// The running kernel's types.
    pub(super) fn kernel() -> io::Result<Btf> {
        let path = "/sys/kernel/btf/vmlinux";
        let file = std::fs::File::open(path)?;
        match super::sys::Mapped::of(&file) {
            Ok(mapped) => Btf::of(Blob::Mapped(mapped)),
            // Mapped since Linux 6.16: read before.
            Err(_) => Btf::of(Blob::Read(std::fs::read(path)?)),
        }
    }

    #[cfg(test)]
    fn parse(data: Vec<u8>) -> io::Result<Btf> {
        Btf::of(Blob::Read(data))
    }

    fn of(data: Blob) -> io::Result<Btf> {
        let magic = data.get(..2).ok_or_else(|| bad("empty"))?;
        if u16::from_le_bytes([magic[0], magic[1]]) != MAGIC {
            return Err(bad("not little-endian BTF"));
        }
        let header = u32_at(&data, 4)? as usize;
        let field = |i: usize| -> io::Result<usize> { Ok(u32_at(&data, 8 + 4 * i)? as usize) };
        let (type_off, type_len, str_off, str_len) = (field(0)?, field(1)?, field(2)?, field(3)?);
        let types_at = header + type_off;
        let strings = header + str_off..header + str_off + str_len;
        if strings.end > data.len()
            || types_at + type_len > data.len()
            || data.len() > u32::MAX as usize
        {
            return Err(bad("sections beyond the blob"));
        }
        let mut offsets = Vec::with_capacity(type_len / 24);
        offsets.push(0);
        let mut at = types_at;
        while at < types_at + type_len {
            let info = u32_at(&data, at + 4)?;
            let vlen = (info & 0xffff) as usize;
            let extra = match (info >> 24) & 0x1f {
                INT | VAR | DECL_TAG => 4,
                ARRAY => 12,
                STRUCT | UNION | DATASEC | ENUM64 => 12 * vlen,
                ENUM | FUNC_PROTO => 8 * vlen,
                PTR | FWD | TYPEDEF | VOLATILE | CONST | RESTRICT | FUNC | FLOAT | TYPE_TAG => 0,
                kind => return Err(bad(&format!("unknown kind {kind}"))),
            };
            offsets.push(at as u32);
            at += 12 + extra;
        }
        if at > types_at + type_len {
            return Err(bad("a type beyond its section"));
        }
        Ok(Btf {
            data,
            strings,
            offsets,
        })
    }

    /// Type `id`, decoded (None: no such type, or `void`).
    fn ty(&self, id: u32) -> Option<Type> {
        let at = *self.offsets.get(id as usize).filter(|&&at| at != 0)? as usize;
        let info = u32_at(&self.data, at + 4).ok()?;
        Some(Type {
            kind: (info >> 24) & 0x1f,
            kind_flag: info >> 31 == 1,
            name: u32_at(&self.data, at).ok()?,
            size_or_type: u32_at(&self.data, at + 8).ok()?,
            records: at + 12,
            vlen: (info & 0xffff) as usize,
        })
    }

    fn name(&self, offset: u32) -> &[u8] {
        let text = &self.data[self.strings.clone()];
        let rest = text.get(offset as usize..).unwrap_or_default();
        &rest[..memchr::memchr(0, rest).unwrap_or(rest.len())]
    }

    /// Whether the string at `offset` is `name` (no search for its end:
    /// most names differ in their first bytes).
    fn is_named(&self, offset: u32, name: &[u8]) -> bool {
        let text = &self.data[self.strings.clone()];
        text.get(offset as usize..)
            .is_some_and(|rest| rest.starts_with(name) && rest.get(name.len()) == Some(&0))
    }

    /// The ids of the first function and of the first structs of these
    /// names, in one pass over the types.
    pub(super) fn find(&self, function: &str, structs: &[&str]) -> io::Result<(u32, Vec<u32>)> {
        let mut func = None;
        let mut found = vec![None; structs.len()];
        for id in 1..self.offsets.len() as u32 {
            let Some(t) = self.ty(id) else { continue };
            match t.kind {
                FUNC if func.is_none() && self.is_named(t.name, function.as_bytes()) => {
                    func = Some(id);
                }
                STRUCT => {
                    for (slot, name) in found.iter_mut().zip(structs) {
                        if slot.is_none() && self.is_named(t.name, name.as_bytes()) {
                            *slot = Some(id);
                        }
                    }
                }
                _ => {}
            }
        }
        let func = func.ok_or_else(|| bad(&format!("no function {function}")))?;
        let ids = found
            .into_iter()
            .zip(structs)
            .map(|(id, name)| id.ok_or_else(|| bad(&format!("no struct {name}"))))
            .collect::<io::Result<_>>()?;
        Ok((func, ids))
    }

    /// The names of function `id`'s parameters, in order.
    pub(super) fn parameters(&self, id: u32) -> Vec<String> {
        let Some(proto) = self.ty(id).and_then(|f| self.ty(f.size_or_type)) else {
            return Vec::new();
        };
        (0..proto.vlen)
            .map(|i| {
                let name = u32_at(&self.data, proto.records + 8 * i).unwrap_or(0);
                String::from_utf8_lossy(self.name(name)).into_owned()
            })
            .collect()
    }

    /// Member `member` of struct `id`, looked for in its anonymous
    /// unions and structs too (their offsets added).
    pub(super) fn member(&self, id: u32, member: &str) -> io::Result<Member> {
        self.member_of(id, member.as_bytes(), 0).ok_or_else(|| {
            let name = self.ty(id).map_or(0, |t| t.name);
            let name = String::from_utf8_lossy(self.name(name)).into_owned();
            bad(&format!("no member {member} in struct {name}"))
        })
    }

    /// `depth`: how many anonymous members deep (a blob whose members
    /// would nest without end is not followed past 16).
    fn member_of(&self, id: u32, member: &[u8], depth: u32) -> Option<Member> {
        let t = self.ty(id)?;
        if (t.kind != STRUCT && t.kind != UNION) || depth > 16 {
            return None;
        }
        for i in 0..t.vlen {
            let at = t.records + 12 * i;
            let (name, type_id, offset) = (
                u32_at(&self.data, at).ok()?,
                u32_at(&self.data, at + 4).ok()?,
                u32_at(&self.data, at + 8).ok()?,
            );
            // With kind_flag, the offset's high byte is a bitfield's size.
            let bits = if t.kind_flag {
                offset & 0xff_ffff
            } else {
                offset
            };
            let here = self.name(name);
            if here == member {
                return Some(Member { bits, type_id });
            }
            if here.is_empty() {
                let inner = self.skip_qualifiers(type_id);
                if let Some(found) = self.member_of(inner, member, depth + 1) {
                    return Some(Member {
                        bits: bits + found.bits,
                        type_id: found.type_id,
                    });
                }
            }
        }
        None
    }

    /// The type under `id`'s typedefs and qualifiers (at most 32 of
    /// them: a blob whose would go round is not followed).
    fn skip_qualifiers(&self, mut id: u32) -> u32 {
        for _ in 0..32 {
            match self.ty(id) {
                Some(t) if matches!(t.kind, TYPEDEF | VOLATILE | CONST | RESTRICT | TYPE_TAG) => {
                    id = t.size_or_type;
                }
                _ => break,
            }
        }
        id
    }

    /// The size in bytes of a member's type: an integer's (or an enum's)
    /// size, 8 for a pointer; None for anything else.
    pub(super) fn scalar_size(&self, id: u32) -> Option<u32> {
        let t = self.ty(self.skip_qualifiers(id))?;
        match t.kind {
            INT | ENUM | ENUM64 => Some(t.size_or_type),
            PTR => Some(8),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A blob of two types: `int` (4 bytes) and `struct s { int a; union
    /// { int b; }; }`, with the union anonymous at byte 4.
    fn blob() -> Vec<u8> {
        let strings = b"\0int\0s\0a\0b\0";
        let mut types = Vec::new();
        let mut put = |words: &[u32]| {
            for w in words {
                types.extend_from_slice(&w.to_le_bytes());
            }
        };
        // 1: int, 4 bytes, 32 bits.
        put(&[1, INT << 24, 4, 32]);
        // 2: struct s, 8 bytes, two members.
        put(&[5, STRUCT << 24 | 2, 8, 7, 1, 0, 0, 3, 32]);
        // 3: an anonymous union of b.
        put(&[0, UNION << 24 | 1, 4, 9, 1, 0]);
        let mut out = Vec::new();
        out.extend_from_slice(&MAGIC.to_le_bytes());
        out.extend_from_slice(&[1, 0]);
        for w in [
            24u32,
            0,
            types.len() as u32,
            types.len() as u32,
            strings.len() as u32,
        ] {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out.extend_from_slice(&types);
        out.extend_from_slice(strings);
        out
    }

    #[test]
    fn members_are_found_inside_anonymous_unions() {
        let btf = Btf::parse(blob()).unwrap();
        assert!(btf.find("f", &["s"]).is_err(), "no function f");
        let s = 2;
        assert_eq!(
            btf.member(s, "a").unwrap(),
            Member {
                bits: 0,
                type_id: 1
            }
        );
        assert_eq!(
            btf.member(s, "b").unwrap(),
            Member {
                bits: 32,
                type_id: 1
            }
        );
        assert_eq!(btf.scalar_size(1), Some(4));
        let missing = btf.member(s, "c").unwrap_err().to_string();
        assert_eq!(missing, "BTF: no member c in struct s");
        assert!(btf.member(1, "a").is_err(), "int is no struct");
    }

    #[test]
    fn a_blob_cut_short_is_an_error_not_a_panic() {
        let whole = blob();
        for len in 0..whole.len() {
            let _ = Btf::parse(whole[..len].to_vec());
        }
        assert!(Btf::parse(b"\x9f\xeb".to_vec()).is_err());
    }
}
