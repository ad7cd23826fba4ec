//! Socket inode → the processes that hold it, from `/proc/<pid>/fd`.
//!
//! Every process's descriptor table is read once (threads share their
//! process's table), each `socket:[N]` link is kept when `N` is wanted, and
//! what could not be read is counted rather than dropped: a caller can say
//! how many processes were not inspected and why.
//!
//! The scan is linear (one hash lookup per descriptor). It does not stop
//! when every wanted inode has been seen once: a socket shared after
//! `fork()` has several owners, and only a complete scan finds them all.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::path::Path;

use crate::socket::{RowKind, Socket};

/// One process holding a socket.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Owner {
    pub pid: u32,
    /// The command name (`/proc/<pid>/comm`).
    pub command: String,
    /// The file descriptor number in that process.
    pub fd: u32,
}

/// Why a socket has no owner listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ownership<'a> {
    /// These processes hold it (sorted by pid, then fd).
    Owned(&'a [Owner]),
    /// No process can hold it: TIME_WAIT and request sockets, orphaned
    /// sockets and children not yet accepted (inode 0).
    NoProcess,
    /// Not found, and some processes could not be inspected: it may be
    /// theirs.
    Unknown,
    /// Not found although every process was inspected (a socket held only
    /// by the kernel, or in flight over a Unix socket).
    NotFound,
}

impl<'a> Ownership<'a> {
    /// The processes holding the socket (empty unless [`Ownership::Owned`]).
    pub fn owners(self) -> &'a [Owner] {
        match self {
            Ownership::Owned(list) => list,
            _ => &[],
        }
    }

    /// `owned`, `no_process`, `unknown` or `not_found`.
    pub fn as_str(self) -> &'static str {
        match self {
            Ownership::Owned(_) => "owned",
            Ownership::NoProcess => "no_process",
            Ownership::Unknown => "unknown",
            Ownership::NotFound => "not_found",
        }
    }
}

/// The result of one scan of `/proc/*/fd`.
#[derive(Debug, Default, Clone)]
pub struct OwnerScan {
    by_inode: HashMap<u64, Vec<Owner>>,
    /// Processes whose descriptors were read.
    pub inspected: u32,
    /// Processes whose descriptors could not be read (not root, or another
    /// user's process).
    pub denied: u32,
    /// The error that denied the first of them.
    pub denied_reason: Option<io::ErrorKind>,
    /// Processes that exited during the scan.
    pub vanished: u32,
}

impl OwnerScan {
    /// Scan `<proc_root>/<pid>/fd` of every process, keeping the sockets
    /// whose inode is in `wanted`. An empty `wanted` reads nothing.
    pub fn scan(proc_root: &Path, wanted: &HashSet<u64>) -> io::Result<OwnerScan> {
        if wanted.is_empty() {
            return Ok(OwnerScan::default());
        }
        OwnerScan::scan_with(proc_root, Some(wanted))
    }

    /// Scan `<proc_root>/<pid>/fd` of every process, keeping every socket:
    /// what a caller needs that looks owners up before it reads the table
    /// (as `ss -p` does), so the table can stream.
    pub fn scan_all(proc_root: &Path) -> io::Result<OwnerScan> {
        OwnerScan::scan_with(proc_root, None)
    }

    fn scan_with(proc_root: &Path, wanted: Option<&HashSet<u64>>) -> io::Result<OwnerScan> {
        let mut scan = OwnerScan::default();
        for entry in fs::read_dir(proc_root)? {
            let Ok(entry) = entry else { continue };
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|name| name.parse::<u32>().ok())
            else {
                continue;
            };
            scan.process(proc_root, pid, wanted);
        }
        for owners in scan.by_inode.values_mut() {
            owners.sort();
        }
        Ok(scan)
    }

    fn process(&mut self, proc_root: &Path, pid: u32, wanted: Option<&HashSet<u64>>) {
        let dir = proc_root.join(pid.to_string());
        let fds = match fs::read_dir(dir.join("fd")) {
            Ok(fds) => fds,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.vanished += 1;
                return;
            }
            Err(e) => {
                self.denied += 1;
                self.denied_reason.get_or_insert(e.kind());
                return;
            }
        };
        self.inspected += 1;
        let mut command: Option<String> = None;
        for fd in fds {
            let Ok(fd) = fd else { continue };
            // A descriptor closed since the directory was read: skip it.
            let Ok(target) = fs::read_link(fd.path()) else {
                continue;
            };
            let Some(inode) = socket_inode(target.as_os_str().as_encoded_bytes()) else {
                continue;
            };
            if wanted.is_some_and(|w| !w.contains(&inode)) {
                continue;
            }
            let Some(fd_number) = fd.file_name().to_str().and_then(|n| n.parse().ok()) else {
                continue;
            };
            let command = command
                .get_or_insert_with(|| {
                    fs::read_to_string(dir.join("comm"))
                        .map(|c| c.trim_end_matches('\n').to_string())
                        .unwrap_or_default()
                })
                .clone();
            self.by_inode.entry(inode).or_default().push(Owner {
                pid,
                command,
                fd: fd_number,
            });
        }
    }

    /// Who holds `socket`, or why no one is listed.
    pub fn ownership(&self, socket: &Socket) -> Ownership<'_> {
        if socket.inode == 0 || socket.kind != RowKind::Full {
            return Ownership::NoProcess;
        }
        match self.by_inode.get(&socket.inode) {
            Some(owners) => Ownership::Owned(owners),
            None if self.denied > 0 => Ownership::Unknown,
            None => Ownership::NotFound,
        }
    }

    /// The owners of `socket` (empty when none is known).
    pub fn owners(&self, socket: &Socket) -> &[Owner] {
        match self.ownership(socket) {
            Ownership::Owned(owners) => owners,
            _ => &[],
        }
    }
}

/// `socket:[12345]` → 12345.
fn socket_inode(link: &[u8]) -> Option<u64> {
    let digits = link.strip_prefix(b"socket:[")?.strip_suffix(b"]")?;
    std::str::from_utf8(digits).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_links() {
        assert_eq!(socket_inode(b"socket:[12345]"), Some(12345));
        assert_eq!(socket_inode(b"pipe:[12345]"), None);
        assert_eq!(socket_inode(b"socket:[x]"), None);
        assert_eq!(socket_inode(b"/dev/null"), None);
    }

    #[test]
    fn finds_its_own_socket() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let me = std::process::id();
        // The listener's inode, from our own fd table.
        let mut inode = None;
        for fd in fs::read_dir("/proc/self/fd").unwrap() {
            let target = fs::read_link(fd.unwrap().path()).unwrap_or_default();
            if let Some(i) = socket_inode(target.as_os_str().as_encoded_bytes()) {
                inode = Some(i);
            }
        }
        let inode = inode.expect("a socket in our fd table");
        let scan = OwnerScan::scan(Path::new("/proc"), &HashSet::from([inode])).unwrap();
        let mut socket = Socket::empty(crate::Family::Ipv4, RowKind::Full);
        socket.inode = inode;
        let owners = scan.owners(&socket);
        assert!(owners.iter().any(|o| o.pid == me), "{owners:?}");
        assert!(scan.inspected > 0);
        drop(listener);
        let mut tw = Socket::empty(crate::Family::Ipv4, RowKind::TimeWait);
        tw.inode = inode;
        assert_eq!(scan.ownership(&tw), Ownership::NoProcess);
    }
}
