//! The `bpf` system call (linux/bpf.h), the only `unsafe` of the owner
//! scan: each command's attributes are a zeroed `union bpf_attr` prefix
//! filled at the offsets the header gives.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

// Commands and the values the iterator needs (linux/bpf.h).
const BPF_PROG_LOAD: i32 = 5;
const BPF_LINK_CREATE: i32 = 28;
const BPF_ITER_CREATE: i32 = 33;
const BPF_PROG_TYPE_TRACING: u32 = 26;
const BPF_TRACE_ITER: u32 = 28;

/// A `union bpf_attr` prefix, written field by field.
struct Attr([u8; 120]);

impl Attr {
    fn new() -> Attr {
        Attr([0; 120])
    }

    fn u32(&mut self, at: usize, value: u32) -> &mut Attr {
        self.0[at..at + 4].copy_from_slice(&value.to_ne_bytes());
        self
    }

    fn u64(&mut self, at: usize, value: u64) -> &mut Attr {
        self.0[at..at + 8].copy_from_slice(&value.to_ne_bytes());
        self
    }

    /// The command: a new descriptor, or the error (and for a program
    /// refused, the verifier's words in `log`).
    #[allow(unsafe_code)]
    fn call(&mut self, command: i32, len: usize) -> io::Result<OwnedFd> {
        // SAFETY: the attributes are a plain byte buffer of at least
        // `len` bytes, every pointer written into them (instructions,
        // license, log) outlives the call, and a descriptor returned is
        // new and ours to own.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                command,
                self.0.as_mut_ptr(),
                len as libc::c_uint,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: as above: a new descriptor.
        Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
    }
}

/// Load an iterator program (`instructions`, eight bytes each) attached
/// to the kernel's function `attach_btf_id`; the verifier's log says why
/// one is refused.
pub(super) fn load_iterator(instructions: &[u8], attach_btf_id: u32) -> io::Result<OwnedFd> {
    // The helper that writes to the iterator's output is the kernel's
    // GPL-only: the program's license must be one the kernel counts as
    // compatible, and this one is also the project's (MIT).
    let license = b"Dual MIT/GPL\0";
    let name = b"tcptab_owners\0\0\0";
    let mut attr = Attr::new();
    attr.u32(0, BPF_PROG_TYPE_TRACING)
        .u32(4, (instructions.len() / 8) as u32)
        .u64(8, instructions.as_ptr() as u64)
        .u64(16, license.as_ptr() as u64)
        .u32(68, BPF_TRACE_ITER)
        .u32(108, attach_btf_id);
    attr.0[48..64].copy_from_slice(name);
    match attr.call(BPF_PROG_LOAD, 112) {
        Ok(fd) => Ok(fd),
        Err(e)
            if e.raw_os_error() == Some(libc::EACCES) || e.raw_os_error() == Some(libc::EINVAL) =>
        {
            // Again with the verifier's log, to say why.
            let mut log = vec![0u8; 64 * 1024];
            attr.u32(24, 1)
                .u32(28, log.len() as u32)
                .u64(32, log.as_mut_ptr() as u64);
            let _ = attr.call(BPF_PROG_LOAD, 112);
            let said = String::from_utf8_lossy(&log[..memchr::memchr(0, &log).unwrap_or(0)]);
            let last = said
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            Err(io::Error::new(
                e.kind(),
                format!("the kernel refused the owner program: {e}: {last}"),
            ))
        }
        Err(e) => Err(e),
    }
}

/// A link of `program` to its iterator: each [`iterate`] of it walks
/// every task's descriptors anew.
pub(super) fn link(program: &OwnedFd) -> io::Result<OwnedFd> {
    use std::os::fd::AsRawFd;
    let mut attr = Attr::new();
    attr.u32(0, program.as_raw_fd() as u32)
        .u32(8, BPF_TRACE_ITER);
    attr.call(BPF_LINK_CREATE, 32)
}

/// A new walk of `link`'s iterator: what its program writes, read as a
/// file.
pub(super) fn iterate(link: &OwnedFd) -> io::Result<OwnedFd> {
    use std::os::fd::AsRawFd;
    let mut attr = Attr::new();
    attr.u32(0, link.as_raw_fd() as u32);
    attr.call(BPF_ITER_CREATE, 8)
}

/// A file mapped read-only, whole (the kernel's BTF: no copy).
#[derive(Debug)]
pub(super) struct Mapped {
    at: *mut std::ffi::c_void,
    len: usize,
}

impl Mapped {
    #[allow(unsafe_code)]
    pub(super) fn of(file: &std::fs::File) -> io::Result<Mapped> {
        use rustix::mm::{mmap, MapFlags, ProtFlags};
        let len = usize::try_from(file.metadata()?.len()).map_err(io::Error::other)?;
        if len == 0 {
            return Err(io::Error::other("an empty file"));
        }
        // SAFETY: a new private, read-only mapping of `len` bytes of an
        // open file, at an address the kernel picks; unmapped on drop.
        let at = unsafe {
            mmap(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ,
                MapFlags::PRIVATE,
                file,
                0,
            )?
        };
        Ok(Mapped { at, len })
    }

    #[allow(unsafe_code)]
    pub(super) fn bytes(&self) -> &[u8] {
        // SAFETY: `len` bytes mapped readable at `at` for as long as
        // `self` lives (the kernel's BTF does not change while it runs).
        unsafe { std::slice::from_raw_parts(self.at.cast::<u8>(), self.len) }
    }
}

impl Drop for Mapped {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        // SAFETY: the mapping made in `of`, unmapped once.
        let _ = unsafe { rustix::mm::munmap(self.at, self.len) };
    }
}
