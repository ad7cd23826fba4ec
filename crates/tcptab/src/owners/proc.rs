//! Reading `/proc` for the scan: which processes it reads (by network
//! namespace), the process list, `comm`, socket links, and the threads it
//! spreads over.

use std::io;
use std::os::fd::OwnedFd;
use std::sync::{Arc, OnceLock};

/// Which processes a scan reads, by their network namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Among {
    All,
    /// Those of the namespace of this inode, and those whose namespace
    /// cannot be read.
    Of(u64),
    /// The rest: those of another namespace.
    Outside(u64),
}

impl Among {
    /// Whether process `pid` is among them.
    pub(super) fn has(self, root: &std::os::fd::OwnedFd, pid: u32, reader: &mut Reader) -> bool {
        use std::fmt::Write;
        let (Among::Of(netns) | Among::Outside(netns)) = self else {
            return true;
        };
        reader.path.clear();
        let _ = write!(reader.path, "{pid}/ns/net");
        let flags = rustix::fs::AtFlags::empty();
        let inode = rustix::fs::statat(root, reader.path.as_str(), flags).map(|st| st.st_ino);
        match self {
            Among::Of(_) => inode.map_or(true, |i| i == netns),
            _ => inode.is_ok_and(|i| i != netns),
        }
    }
}

impl Among {
    /// The namespace a scan among these processes is of (None: all, or
    /// the rest).
    pub(super) fn scope(self) -> Option<u64> {
        match self {
            Among::Of(netns) => Some(netns),
            Among::All | Among::Outside(_) => None,
        }
    }
}

/// A process with more descriptors than this has its links read by every
/// thread of the scan, each taking a share.
pub(super) const SHARED_ABOVE: usize = 4096;

/// One process's descriptor table, as it is read.
pub(super) struct Process {
    pub(super) pid: u32,
    /// Its `fd` directory.
    pub(super) dir: OwnedFd,
    /// Its descriptor numbers (a process set aside).
    pub(super) fds: Vec<u32>,
    /// Its command name, read when its first socket is found.
    pub(super) command: OnceLock<Arc<str>>,
}

/// `f(0)`, `f(1)`, ... `f(n - 1)`, each on a thread of its own (none
/// for one), in order.
pub(super) fn in_parallel<T: Send>(n: usize, f: &(dyn Fn(usize) -> T + Sync)) -> Vec<T> {
    if n <= 1 {
        return vec![f(0)];
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..n).map(|t| s.spawn(move || f(t))).collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}

/// `n` in decimal, as a C string in `buf`.
pub(super) fn decimal(mut n: u32, buf: &mut [u8; 11]) -> &std::ffi::CStr {
    let mut at = buf.len() - 1;
    buf[at] = 0;
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    std::ffi::CStr::from_bytes_with_nul(&buf[at..]).expect("one NUL, at the end")
}

/// Buffers one scanning thread reuses for every process.
pub(super) struct Reader {
    pub(super) dir: Vec<u8>,
    pub(super) path: String,
    pub(super) fds: Vec<u32>,
}

impl Default for Reader {
    fn default() -> Reader {
        Reader {
            dir: Vec::with_capacity(32 * 1024),
            path: String::with_capacity(32),
            fds: Vec::new(),
        }
    }
}

impl Reader {
    /// Buffers for paths alone (a scan that reads no directory: the
    /// default's 32 KiB directory buffer is an allocation it would not
    /// use).
    pub(super) fn paths_only() -> Reader {
        Reader {
            dir: Vec::new(),
            path: String::with_capacity(32),
            fds: Vec::new(),
        }
    }
}

/// The process ids in `/proc` (`root`), in the order listed.
pub(super) fn list_processes(root: &OwnedFd) -> io::Result<Vec<u32>> {
    let mut pids = Vec::new();
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut dir = rustix::fs::RawDir::new(root, buf.spare_capacity_mut());
    while let Some(entry) = dir.next() {
        if let Some(pid) = number(entry?.file_name().to_bytes()) {
            pids.push(pid);
        }
    }
    Ok(pids)
}

/// A decimal name (a pid, a descriptor number); None for `.` and others.
pub(super) fn number(name: &[u8]) -> Option<u32> {
    if name.is_empty() || name.len() > 10 || !name.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(name).ok()?.parse().ok()
}

/// `PID/comm` under the proc root, without its newline ("" if unreadable).
pub(super) fn read_comm(root: &OwnedFd, path: &str) -> String {
    use rustix::fs::{openat, Mode, OFlags};
    let Ok(fd) = openat(root, path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()) else {
        return String::new();
    };
    let mut buf = [0u8; 64];
    let n = rustix::io::read(&fd, &mut buf).unwrap_or(0);
    String::from_utf8_lossy(&buf[..n])
        .trim_end_matches('\n')
        .to_string()
}

/// `socket:[12345]` → 12345.
pub(super) fn socket_inode(link: &[u8]) -> Option<u64> {
    let digits = link.strip_prefix(b"socket:[")?.strip_suffix(b"]")?;
    std::str::from_utf8(digits).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_is_among_its_namespace_s_or_outside_the_others() {
        use std::os::unix::fs::MetadataExt;
        let own = std::fs::metadata("/proc/self/ns/net").unwrap().ino();
        let root = rustix::fs::open(
            "/proc",
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY,
            rustix::fs::Mode::empty(),
        )
        .unwrap();
        let mut reader = Reader::default();
        let me = std::process::id();
        let mut among = |a: Among| a.has(&root, me, &mut reader);
        assert!(among(Among::All));
        assert!(among(Among::Of(own)));
        assert!(!among(Among::Outside(own)));
        assert!(!among(Among::Of(own + 1)));
        assert!(among(Among::Outside(own + 1)));
        // A process that is gone: its namespace cannot be read, so the
        // namespace's scan reads it (and finds nothing), the others' not.
        let gone = u32::MAX - 1;
        assert!(Among::Of(own).has(&root, gone, &mut reader));
        assert!(!Among::Outside(own).has(&root, gone, &mut reader));
    }

    #[test]
    fn decimal_names() {
        let mut buf = [0u8; 11];
        for n in [0, 7, 10, 4096, u32::MAX] {
            assert_eq!(decimal(n, &mut buf).to_str().unwrap(), n.to_string());
        }
    }

    #[test]
    fn socket_links() {
        assert_eq!(socket_inode(b"socket:[12345]"), Some(12345));
        assert_eq!(socket_inode(b"pipe:[12345]"), None);
        assert_eq!(socket_inode(b"socket:[x]"), None);
        assert_eq!(socket_inode(b"/dev/null"), None);
    }
}
