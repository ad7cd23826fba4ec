//! Every socket descriptor of every process in one read: a BPF iterator
//! over the kernel's task files (`iter/task_file`, Linux 5.8) writes
//! (pid, fd, inode) for each descriptor that is a socket, where the
//! `/proc` scan reads each descriptor's link with a system call of its
//! own (about 2.6 us each on the benchmarks' machine).
//!
//! The program is a few instructions written here (no compiler, no
//! library): the offsets of the fields it reads come from the running
//! kernel's BTF ([`btf`]), so one program fits every kernel that
//! describes itself. It needs what loading a tracing program needs
//! (root, or `CAP_BPF` with `CAP_PERFMON`) and the initial PID namespace
//! (it reads the kernel's process ids); wherever it cannot be loaded, the
//! scan reads `/proc` as before ([`OwnerScan::walked`] says None). The
//! program is loaded once per process and its link kept: each scan is one
//! walk.

mod btf;
mod sys;

use std::collections::HashSet;
use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use btf::Btf;

use super::proc::{list_processes, read_comm, Among, Reader};
use super::OwnerScan;
use crate::model::Owner;

/// One socket descriptor: its process, its number, the socket's inode.
#[derive(Debug, Clone, Copy)]
struct Held {
    pid: u32,
    fd: u32,
    inode: u64,
}

/// The bytes the program writes per descriptor: pid (u32), fd (u32),
/// inode (u64), in the machine's order.
const RECORD: usize = 16;

/// The PID namespace every other one descends from (`PROC_PID_INIT_INO`).
const INITIAL_PID_NAMESPACE: u64 = 0xEFFF_FFFC;

/// Whether the walk is chosen: `TCPTAB_OWNER_SCAN=proc` keeps the
/// `/proc` scan (benchmarks, and the tests that compare the two).
fn chosen() -> bool {
    std::env::var_os("TCPTAB_OWNER_SCAN").is_none_or(|v| v != "proc")
}

/// The iterator's link, loaded once (None: it cannot be, and why).
fn iterator() -> Result<&'static OwnedFd, &'static io::Error> {
    static LINK: OnceLock<io::Result<OwnedFd>> = OnceLock::new();
    LINK.get_or_init(load).as_ref()
}

fn load() -> io::Result<OwnedFd> {
    let ns = std::fs::metadata("/proc/self/ns/pid")?;
    if std::os::unix::fs::MetadataExt::ino(&ns) != INITIAL_PID_NAMESPACE {
        return Err(io::Error::other("not in the initial PID namespace"));
    }
    let btf = Btf::kernel()?;
    let structs = ["task_struct", "file", "inode", "bpf_iter_meta"];
    let (function, ids) = btf.find("bpf_iter_task_file", &structs)?;
    let parameters = btf.parameters(function);
    if parameters != ["meta", "task", "fd", "file"] {
        return Err(io::Error::other(format!(
            "bpf_iter_task_file takes {parameters:?}"
        )));
    }
    let program = Program::of(&btf, &ids)?.instructions();
    let program = sys::load_iterator(&program, function)?;
    sys::link(&program)
}

/// Why the iterator is not used (None: it is).
pub(crate) fn unavailable() -> Option<String> {
    if !chosen() {
        return Some("TCPTAB_OWNER_SCAN=proc".into());
    }
    iterator().err().map(ToString::to_string)
}

impl OwnerScan {
    /// The scan of the processes `among` made from one walk of the
    /// iterator, keeping the sockets `wanted` (None: all): what the
    /// `/proc` scan finds. None where the iterator cannot be used (another
    /// proc root than the machine's, or it cannot be loaded), or its walk
    /// failed.
    pub(super) fn walked(
        proc_root: &Path,
        wanted: Option<&HashSet<u64>>,
        among: Among,
    ) -> Option<OwnerScan> {
        if proc_root != Path::new("/proc") || !chosen() {
            return None;
        }
        let link = iterator().ok()?;
        OwnerScan::walk(link, proc_root, wanted, among).ok()
    }

    /// Each descriptor the walk gives goes into the scan as it comes
    /// (the walk goes process by process: each one's namespace is looked
    /// at once, its command read at its first socket), so no list of
    /// every descriptor is held beside the scan. The processes are listed
    /// after the walk: one that exited meanwhile is not, and what the walk
    /// found of it is dropped.
    fn walk(
        link: &OwnedFd,
        proc_root: &Path,
        wanted: Option<&HashSet<u64>>,
        among: Among,
    ) -> io::Result<OwnerScan> {
        use rustix::fs::{openat, Mode, OFlags, CWD};
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let root = openat(CWD, proc_root, flags, Mode::empty())?;
        // No directory is read here (the default's buffer was a tenth of
        // the walk's time, in malloc).
        let mut reader = Reader::paths_only();
        // Whether each process with a socket is among those scanned,
        // looked at once.
        let mut scanned: Vec<(u32, bool)> = Vec::new();
        let mut scan = OwnerScan::default();
        // The process of the last descriptor: whether it is among those
        // scanned, and its command once read.
        let mut last: Option<(u32, bool, Option<Arc<str>>)> = None;
        read_all(link, &mut |h: Held| {
            if last.as_ref().is_none_or(|l| l.0 != h.pid) {
                let has = among.has(&root, h.pid, &mut reader);
                scanned.push((h.pid, has));
                last = Some((h.pid, has, None));
            }
            let Some((pid, true, command)) = &mut last else {
                return;
            };
            if wanted.is_some_and(|w| !w.contains(&h.inode)) {
                return;
            }
            let command = command
                .get_or_insert_with(|| read_comm(&root, &format!("{pid}/comm")).into())
                .clone();
            scan.inodes.push(h.inode);
            scan.owners.push(Owner {
                pid: *pid,
                command,
                fd: h.fd,
            });
        })?;
        let mut pids = list_processes(&root)?;
        pids.sort_unstable();
        scanned.sort_unstable();
        for &pid in &pids {
            let has = match scanned.binary_search_by_key(&pid, |&(p, _)| p) {
                Ok(at) => scanned[at].1,
                Err(_) => among.has(&root, pid, &mut reader),
            };
            if has {
                scan.processes.push(pid);
            }
        }
        scan.inspected = scan.processes.len() as u32;
        scan.walked = true;
        scan.sort();
        let gone = |o: &Owner| pids.binary_search(&o.pid).is_err();
        // A thread with a descriptor table of its own is walked apart
        // from its process: its sockets are its process's, once.
        let same =
            |(i, o): (&[u64], &[Owner])| i[0] == i[1] && (o[0].pid, o[0].fd) == (o[1].pid, o[1].fd);
        let mut pairs = scan.inodes.windows(2).zip(scan.owners.windows(2));
        if pairs.any(same) || scan.owners.iter().any(gone) {
            let mut exited: Vec<u32> = scan
                .owners
                .iter()
                .filter(|o| gone(o))
                .map(|o| o.pid)
                .collect();
            exited.sort_unstable();
            exited.dedup();
            scan.vanished = exited.len() as u32;
            let mut found: Vec<(u64, Owner)> = std::mem::take(&mut scan.inodes)
                .into_iter()
                .zip(std::mem::take(&mut scan.owners))
                .filter(|(_, o)| !gone(o))
                .collect();
            found.dedup_by(|a, b| a.0 == b.0 && (a.1.pid, a.1.fd) == (b.1.pid, b.1.fd));
            (scan.inodes, scan.owners) = found.into_iter().unzip();
            scan.index = super::Index::of(&scan.inodes);
        }
        scan.scope = among.scope();
        Ok(scan)
    }
}

/// One walk of the iterator, each socket descriptor given to `each` in
/// the kernel's order (process by process, each one's descriptors in
/// order).
fn read_all(link: &OwnedFd, each: &mut dyn FnMut(Held)) -> io::Result<()> {
    // The thread's buffer, kept from walk to walk (a recorder walks every
    // poll): allocating it would be the poll's one large allocation.
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    BUF.with_borrow_mut(|buf| {
        buf.resize(64 * 1024, 0);
        read_into(link, buf, each)
    })
}

fn read_into(link: &OwnedFd, buf: &mut [u8], each: &mut dyn FnMut(Held)) -> io::Result<()> {
    let walk = sys::iterate(link)?;
    let mut filled = 0;
    loop {
        let n = match rustix::io::read(&walk, &mut buf[filled..]) {
            Ok(n) => n,
            // EAGAIN: a million descriptors went by without a socket
            // among them (`bpf_seq_read`); the walk goes on where it was.
            Err(rustix::io::Errno::INTR | rustix::io::Errno::AGAIN) => continue,
            Err(e) => return Err(e.into()),
        };
        if n == 0 {
            break;
        }
        filled += n;
        let whole = filled / RECORD * RECORD;
        for record in buf[..whole].chunks_exact(RECORD) {
            let word = |at: usize| u32::from_ne_bytes(record[at..at + 4].try_into().unwrap());
            each(Held {
                pid: word(0),
                fd: word(4),
                inode: u64::from_ne_bytes(record[8..16].try_into().unwrap()),
            });
        }
        buf.copy_within(whole..filled, 0);
        filled -= whole;
    }
    if filled != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the owner iterator ended inside a record",
        ));
    }
    Ok(())
}

/// The byte offsets the program reads, and the widths it reads them at.
#[derive(Debug)]
struct Program {
    tgid: i16,
    f_inode: i16,
    i_mode: i16,
    i_ino: i16,
    seq: i16,
}

impl Program {
    /// Its offsets in the structs `ids` (task_struct, file, inode,
    /// bpf_iter_meta).
    fn of(btf: &Btf, ids: &[u32]) -> io::Result<Program> {
        let at = |st: usize, member: &str, size: u32| -> io::Result<i16> {
            let m = btf.member(ids[st], member)?;
            let found = btf.scalar_size(m.type_id);
            if m.bits % 8 != 0 || found != Some(size) {
                return Err(io::Error::other(format!(
                    "BTF: {member}: {found:?} bytes at bit {}",
                    m.bits
                )));
            }
            i16::try_from(m.bits / 8).map_err(|_| io::Error::other("offset beyond 32 KiB"))
        };
        Ok(Program {
            tgid: at(0, "tgid", 4)?,
            f_inode: at(1, "f_inode", 8)?,
            i_mode: at(2, "i_mode", 2)?,
            i_ino: at(2, "i_ino", 8)?,
            seq: at(3, "seq", 8)?,
        })
    }

    /// The program: for a descriptor whose file's inode is a socket,
    /// write (tgid, fd, i_ino) to the iterator's output.
    fn instructions(&self) -> Vec<u8> {
        // The context: the function's arguments, eight bytes each.
        const META: i16 = 0;
        const TASK: i16 = 8;
        const FD: i16 = 16;
        const FILE: i16 = 24;
        const S_IFMT: i32 = 0o170000;
        const S_IFSOCK: i32 = 0o140000;
        const SEQ_WRITE: i32 = 127;
        use Insn::*;
        let body = [
            Mov(6, 1),
            Load(8, 7, 6, TASK),
            JumpIfZero(7),
            Load(8, 8, 6, FILE),
            JumpIfZero(8),
            Load(8, 9, 8, self.f_inode),
            JumpIfZero(9),
            Load(2, 1, 9, self.i_mode),
            And(1, S_IFMT),
            JumpIfNot(1, S_IFSOCK),
            Load(8, 1, 9, self.i_ino),
            Store(8, 10, -8, 1),
            Load(4, 1, 6, FD),
            Store(4, 10, -12, 1),
            Load(4, 1, 7, self.tgid),
            Store(4, 10, -16, 1),
            Load(8, 1, 6, META),
            Load(8, 1, 1, self.seq),
            Mov(2, 10),
            Add(2, -16),
            MovImm(3, RECORD as i32),
            Call(SEQ_WRITE),
        ];
        let end = body.len() as i16;
        let mut out = Vec::with_capacity((body.len() + 2) * 8);
        for (i, insn) in body.iter().enumerate() {
            // A jump goes to the end, counted from the next instruction.
            out.extend_from_slice(&insn.encode(end - i as i16 - 1));
        }
        out.extend_from_slice(&MovImm(0, 0).encode(0));
        out.extend_from_slice(&Exit.encode(0));
        out
    }
}

/// The few eBPF instructions the program uses (linux/bpf_common.h,
/// linux/bpf.h): registers by number, widths in bytes.
#[derive(Debug, Clone, Copy)]
enum Insn {
    Mov(u8, u8),
    MovImm(u8, i32),
    Add(u8, i32),
    And(u8, i32),
    /// width, destination, source, offset.
    Load(u8, u8, u8, i16),
    /// width, destination, offset, source.
    Store(u8, u8, i16, u8),
    JumpIfZero(u8),
    JumpIfNot(u8, i32),
    Call(i32),
    Exit,
}

impl Insn {
    /// Its eight bytes; `to_end`, the distance a jump goes.
    fn encode(self, to_end: i16) -> [u8; 8] {
        let size = |width: u8| match width {
            1 => 0x10,
            2 => 0x08,
            4 => 0x00,
            _ => 0x18,
        };
        let (code, dst, src, off, imm) = match self {
            Insn::Mov(d, s) => (0xbf, d, s, 0, 0),
            Insn::MovImm(d, imm) => (0xb7, d, 0, 0, imm),
            Insn::Add(d, imm) => (0x07, d, 0, 0, imm),
            Insn::And(d, imm) => (0x57, d, 0, 0, imm),
            Insn::Load(w, d, s, off) => (0x61 | size(w), d, s, off, 0),
            Insn::Store(w, d, off, s) => (0x63 | size(w), d, s, off, 0),
            Insn::JumpIfZero(d) => (0x15, d, 0, to_end, 0),
            Insn::JumpIfNot(d, imm) => (0x55, d, 0, to_end, imm),
            Insn::Call(helper) => (0x85, 0, 0, 0, helper),
            Insn::Exit => (0x95, 0, 0, 0, 0),
        };
        let mut out = [0u8; 8];
        out[0] = code;
        out[1] = (src << 4) | (dst & 0x0f);
        out[2..4].copy_from_slice(&off.to_le_bytes());
        out[4..8].copy_from_slice(&imm.to_le_bytes());
        out
    }
}
