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
//! A scan kept from one reading of the table to the next is brought up to
//! date by reading again only the processes that ran since (`rescan.rs`).

use std::collections::{HashMap, HashSet};
use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use crate::model::{Owner, Owners, Ownership, RowKind, Socket};

mod bpf;
mod index;
mod proc;
mod rescan;
use index::Index;
pub(crate) use proc::Among;
use proc::{
    decimal, in_parallel, list_processes, number, read_comm, socket_inode, Process, Reader,
    SHARED_ABOVE,
};
use rescan::{Ask, Known};
pub use rescan::{KeptScan, KEEP_SCAN_FOR};

/// One socket's holders, shared once made.
type Shared = OnceLock<Arc<[Owner]>>;

/// The result of one scan of `/proc/*/fd`.
#[derive(Debug, Default, Clone)]
pub struct OwnerScan {
    /// Every socket descriptor found: `inodes[i]` is the socket `owners[i]`
    /// holds, sorted by inode, then pid and fd (a shared socket's owners
    /// side by side). While scanning, in the order found.
    inodes: Vec<u64>,
    owners: Vec<Owner>,
    /// Where each slice of the inodes' range starts in `inodes` (a few
    /// entries each): a lookup searches one slice, not the whole list,
    /// which at half a million sockets was most of its cost.
    index: Index,
    /// Each socket's holders as one shared list, made when first asked
    /// for (at the slot of its first holder): a scan kept across polls
    /// lends the same list to every poll instead of a copy each. Made
    /// when [`owners_of`](OwnerScan::owners_of) is first called: a
    /// listing, which borrows, has none.
    shared: OnceLock<Box<[Shared]>>,
    /// Processes whose descriptors were read.
    pub inspected: u32,
    /// Processes whose descriptors could not be read (not root, or another
    /// user's process).
    pub denied: u32,
    /// The error that denied the first of them.
    pub denied_reason: Option<io::ErrorKind>,
    /// Processes that exited during the scan.
    pub vanished: u32,
    /// Socket links taken from the scan before instead of read again
    /// ([`rescan`](OwnerScan::rescan)).
    pub reused: u32,
    /// The scan was one walk of the kernel's task files, not a reading of
    /// `/proc` ([`walk_unavailable`](OwnerScan::walk_unavailable)).
    pub walked: bool,
    /// How much each process's threads had run when its table was read
    /// (a rescan's only: [`rescan`](OwnerScan::rescan)).
    ran: HashMap<u32, u64, foldhash::fast::RandomState>,
    /// The processes whose descriptors were to be read (listed when the
    /// scan began, of its namespace), sorted.
    processes: Vec<u32>,
    /// The network namespace whose processes were read (None: all).
    scope: Option<u64>,
}

impl OwnerScan {
    /// Scan `<proc_root>/<pid>/fd` of every process, keeping the sockets
    /// whose inode is in `wanted`. An empty `wanted` reads nothing.
    pub fn scan(proc_root: &Path, wanted: &HashSet<u64>) -> io::Result<OwnerScan> {
        OwnerScan::scan_for(proc_root, wanted, Among::All)
    }

    /// Scan `<proc_root>/<pid>/fd` of every process, keeping every socket:
    /// what a caller needs that looks owners up before it reads the table
    /// (as `ss -p` does), so the table can stream.
    pub fn scan_all(proc_root: &Path) -> io::Result<OwnerScan> {
        OwnerScan::scan_with(proc_root, &Ask::default(), Among::All)
    }

    /// Like [`scan_all`](OwnerScan::scan_all), but only the processes
    /// that live in the network namespace of inode `netns` (and those
    /// whose namespace cannot be read): on a host where other namespaces'
    /// processes hold many descriptors, a scan of one namespace's owners
    /// that takes milliseconds, not seconds. A socket of the namespace
    /// held by a process of another one is not found by it.
    pub fn scan_namespace(proc_root: &Path, netns: u64) -> io::Result<OwnerScan> {
        OwnerScan::scan_with(proc_root, &Ask::default(), Among::Of(netns))
    }

    /// The sockets of `wanted` among the processes `among` names (for
    /// example those of one namespace, as
    /// [`scan_namespace`](OwnerScan::scan_namespace), and then the rest);
    /// nothing read for none wanted.
    pub(crate) fn scan_for(
        proc_root: &Path,
        wanted: &HashSet<u64>,
        among: Among,
    ) -> io::Result<OwnerScan> {
        if wanted.is_empty() {
            return Ok(OwnerScan::default());
        }
        let ask = Ask {
            wanted: Some(wanted),
            known: None,
        };
        OwnerScan::scan_with(proc_root, &ask, among)
    }

    /// The scan: a new one (not a rescan) is one walk of the kernel's
    /// iterator where it can be used (`bpf/`), and otherwise reads `/proc`
    /// ([`scan_reading`](OwnerScan::scan_reading)).
    fn scan_with(proc_root: &Path, ask: &Ask<'_>, among: Among) -> io::Result<OwnerScan> {
        if ask.known.is_none() {
            if let Some(scan) = OwnerScan::walked(proc_root, ask.wanted, among) {
                return Ok(scan);
            }
        }
        OwnerScan::scan_reading(proc_root, ask, among)
    }

    /// Why a scan reads `/proc` rather than walking the kernel's iterator
    /// (not root, an older kernel, a PID namespace of its own,
    /// `TCPTAB_OWNER_SCAN=proc`); None: it walks.
    pub fn walk_unavailable() -> Option<String> {
        bpf::unavailable()
    }

    /// [`scan_all`](OwnerScan::scan_all) reading `/proc`, never walking:
    /// what the walk is tested against.
    #[cfg(any(test, feature = "internals"))]
    #[doc(hidden)]
    pub fn scan_all_reading(proc_root: &Path) -> io::Result<OwnerScan> {
        let ask = Ask::default();
        OwnerScan::scan_reading(proc_root, &ask, Among::All)
    }

    /// The scan of `/proc`: the process directories listed once, then
    /// split over up to one thread per core, each reading its processes'
    /// `fd` directories with `getdents64` into a reused buffer and each
    /// link with `readlinkat` into a stack buffer (no allocation per
    /// descriptor; one per owner found). A process with more than
    /// [`SHARED_ABOVE`] descriptors is set aside and its links are read
    /// afterwards by every thread, each taking a share: one process often
    /// holds most of a host's sockets (a proxy, a database, a server).
    fn scan_reading(proc_root: &Path, ask: &Ask<'_>, among: Among) -> io::Result<OwnerScan> {
        use rustix::fs::{openat, Mode, OFlags, CWD};
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let root = openat(CWD, proc_root, flags, Mode::empty())?;
        let pids = match ask.known {
            Some(known) => known.processes(),
            None => list_processes(&root)?,
        };
        let cores = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(8);
        let threads = cores.min(pids.len() / 64 + 1);
        let shared = cores > 1;
        let root = &root;
        let scan_part = move |t: usize| {
            let mut scan = OwnerScan::default();
            let mut big = Vec::new();
            let mut reader = Reader::default();
            // Interleaved, so that each thread gets processes of every age
            // (the old ones hold most descriptors).
            for &pid in pids.iter().skip(t).step_by(threads) {
                // A rescan's processes are those of its namespace already.
                if ask.known.is_some() || among.has(root, pid, &mut reader) {
                    scan.processes.push(pid);
                    let ran = ask.known.and_then(|known| known.ran(pid));
                    if let Some(known) = ask.known {
                        if let Some(entries) = known.unchanged(pid, ran) {
                            scan.take(known, entries);
                            scan.ran.extend(ran.map(|ran| (pid, ran)));
                            continue;
                        }
                    }
                    let set_aside = shared.then_some(&mut big);
                    let inspected = scan.inspected;
                    scan.process(root, pid, ask, set_aside, &mut reader);
                    // Only a table read may be taken again (one denied
                    // stays denied, and says so, at every scan).
                    if scan.inspected > inspected {
                        scan.ran.extend(ran.map(|ran| (pid, ran)));
                    }
                }
            }
            (scan, big)
        };
        let mut scan = OwnerScan::default();
        let mut set_aside = Vec::new();
        for (part, big) in in_parallel(threads, &scan_part) {
            scan.merge(part);
            set_aside.extend(big);
        }
        for process in &set_aside {
            let share = process.fds.len().div_ceil(cores);
            let parts = in_parallel(cores, &|t: usize| {
                let mut part = OwnerScan::default();
                let fds = process.fds.chunks(share).nth(t).unwrap_or_default();
                part.links(root, process, fds, ask);
                part
            });
            for part in parts {
                scan.merge(part);
            }
        }
        scan.sort();
        scan.processes.sort_unstable();
        scan.scope = among.scope();
        Ok(scan)
    }

    /// The processes it read: those of its namespace, or all.
    fn among(&self) -> Among {
        self.scope.map_or(Among::All, Among::Of)
    }

    /// Sort the descriptors found by inode, pid and fd, and index them.
    fn sort(&mut self) {
        let mut found: Vec<(u64, Owner)> = std::mem::take(&mut self.inodes)
            .into_iter()
            .zip(std::mem::take(&mut self.owners))
            .collect();
        found.sort_unstable_by_key(|(inode, o)| (*inode, o.pid, o.fd));
        (self.inodes, self.owners) = found.into_iter().unzip();
        self.index = Index::of(&self.inodes);
        self.shared = OnceLock::new();
    }

    /// Add another part's processes.
    fn merge(&mut self, part: OwnerScan) {
        self.inodes.extend(part.inodes);
        self.owners.extend(part.owners);
        self.processes.extend(part.processes);
        self.inspected += part.inspected;
        self.denied += part.denied;
        self.vanished += part.vanished;
        self.reused += part.reused;
        self.ran.extend(part.ran);
        if self.denied_reason.is_none() {
            self.denied_reason = part.denied_reason;
        }
    }

    /// Read the descriptors of process `pid`: its links at once, or, with
    /// `set_aside` and more than [`SHARED_ABOVE`] of them, its descriptor
    /// numbers, set aside there for every thread to share.
    fn process(
        &mut self,
        root: &OwnedFd,
        pid: u32,
        ask: &Ask<'_>,
        set_aside: Option<&mut Vec<Process>>,
        reader: &mut Reader,
    ) {
        use rustix::fs::{openat, Mode, OFlags};
        use std::fmt::Write;
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        reader.path.clear();
        let _ = write!(reader.path, "{pid}/fd");
        let fds = match openat(root, reader.path.as_str(), flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT | rustix::io::Errno::SRCH) => {
                self.vanished += 1;
                return;
            }
            Err(e) => {
                self.denied += 1;
                self.denied_reason.get_or_insert(io::Error::from(e).kind());
                return;
            }
        };
        self.inspected += 1;
        let mut process = Process {
            pid,
            dir: fds,
            fds: Vec::new(),
            command: OnceLock::new(),
        };
        let mut dir = rustix::fs::RawDir::new(&process.dir, reader.dir.spare_capacity_mut());
        while let Some(entry) = dir.next() {
            let Ok(entry) = entry else { break };
            if let Some(fd) = number(entry.file_name().to_bytes()) {
                reader.fds.push(fd); // not . and ..
            }
        }
        match set_aside {
            Some(set_aside) if reader.fds.len() > SHARED_ABOVE => {
                process.fds = std::mem::take(&mut reader.fds);
                set_aside.push(process);
            }
            _ => {
                self.links(root, &process, &reader.fds, ask);
                reader.fds.clear();
            }
        }
    }

    /// Read the links of descriptors `fds` of `process`, keeping the
    /// sockets among them.
    fn links(&mut self, root: &OwnedFd, process: &Process, fds: &[u32], ask: &Ask<'_>) {
        let mut name = [0u8; 11];
        for &fd in fds {
            let mut link = [std::mem::MaybeUninit::<u8>::uninit(); 64];
            // A descriptor closed since the directory was read: skip it.
            let Ok((target, _)) =
                rustix::fs::readlinkat_raw(&process.dir, decimal(fd, &mut name), &mut link)
            else {
                continue;
            };
            let Some(inode) = socket_inode(target) else {
                continue;
            };
            if ask.wanted.is_some_and(|w| !w.contains(&inode)) {
                continue;
            }
            let command = process
                .command
                .get_or_init(|| read_comm(root, &format!("{}/comm", process.pid)).into());
            self.inodes.push(inode);
            self.owners.push(Owner {
                pid: process.pid,
                command: command.clone(),
                fd,
            });
        }
    }

    /// Take process `pid`'s entries `at` of the scan before (its threads
    /// did not run since: [`rescan`](OwnerScan::rescan)).
    fn take(&mut self, known: &Known<'_>, at: &[usize]) {
        self.inspected += 1;
        self.reused += at.len() as u32;
        for &at in at {
            let (inode, owner) = known.entry(at);
            self.inodes.push(inode);
            self.owners.push(owner.clone());
        }
    }

    /// The scan written plainly (std's directory reading, one thread): what
    /// the fast scan is tested against.
    #[cfg(any(test, feature = "internals"))]
    #[doc(hidden)]
    pub fn scan_plain(proc_root: &Path) -> io::Result<OwnerScan> {
        let wanted: Option<&HashSet<u64>> = None;
        let mut scan = OwnerScan::default();
        for entry in std::fs::read_dir(proc_root)? {
            let Ok(entry) = entry else { continue };
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|name| name.parse::<u32>().ok())
            else {
                continue;
            };
            scan.process_plain(proc_root, pid, wanted);
        }
        scan.sort();
        Ok(scan)
    }

    #[cfg(any(test, feature = "internals"))]
    fn process_plain(&mut self, proc_root: &Path, pid: u32, wanted: Option<&HashSet<u64>>) {
        let dir = proc_root.join(pid.to_string());
        let fds = match std::fs::read_dir(dir.join("fd")) {
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
        let mut command: Option<Arc<str>> = None;
        for fd in fds {
            let Ok(fd) = fd else { continue };
            // A descriptor closed since the directory was read: skip it.
            let Ok(target) = std::fs::read_link(fd.path()) else {
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
                    std::fs::read_to_string(dir.join("comm"))
                        .map(|c| c.trim_end_matches('\n').into())
                        .unwrap_or_else(|_| "".into())
                })
                .clone();
            self.inodes.push(inode);
            self.owners.push(Owner {
                pid,
                command,
                fd: fd_number,
            });
        }
    }

    /// Who holds `socket`, or why no one is listed.
    pub fn ownership(&self, socket: &Socket) -> Ownership<'_> {
        match self.holders(socket) {
            Some((start, len)) => Ownership::Owned(&self.owners[start..start + len]),
            None => self.none_listed(socket),
        }
    }

    /// [`ownership`](OwnerScan::ownership), owned: the list of holders is
    /// made once per scan and shared.
    pub fn owners_of(&self, socket: &Socket) -> Owners {
        match self.holders(socket) {
            Some((start, len)) => {
                let make = || Arc::from(&self.owners[start..start + len]);
                let shared = self.shared.get_or_init(|| {
                    std::iter::repeat_with(OnceLock::new)
                        .take(self.owners.len())
                        .collect()
                });
                Owners::Owned(match shared.get(start) {
                    Some(cell) => cell.get_or_init(make).clone(),
                    None => make(),
                })
            }
            None => self.none_listed(socket).to_owners(),
        }
    }

    /// Where the holders of `socket` are (first, how many), if any.
    fn holders(&self, socket: &Socket) -> Option<(usize, usize)> {
        if socket.inode == 0 || socket.kind != RowKind::Full {
            return None;
        }
        let (low, high) = self.index.slice(socket.inode);
        let slice = &self.inodes[low..high];
        let start = low + slice.partition_point(|&i| i < socket.inode);
        let len = self.inodes[start..high].partition_point(|&i| i == socket.inode);
        (len > 0).then_some((start, len))
    }

    /// Why no holder of `socket` is listed.
    fn none_listed(&self, socket: &Socket) -> Ownership<'static> {
        if socket.inode == 0 || socket.kind != RowKind::Full {
            Ownership::NoProcess
        } else if self.denied > 0 {
            Ownership::Unknown
        } else {
            Ownership::NotFound
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

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Every inode's run of entries lies in its slice, and one that is
        /// not in the list finds an empty run.
        #[test]
        fn the_index_finds_what_a_search_of_the_whole_list_finds(
            mut inodes in proptest::collection::vec(
                proptest::prop_oneof![0u64..64, 1000u64..1100, proptest::num::u64::ANY],
                0..200,
            ),
            probes in proptest::collection::vec(proptest::num::u64::ANY, 0..20),
        ) {
            inodes.sort_unstable();
            let index = Index::of(&inodes);
            for &inode in inodes.iter().chain(&probes).chain(&[0, 1, 63, 1050, u64::MAX]) {
                let whole = inodes.iter().filter(|&&i| i == inode).count();
                let (low, high) = index.slice(inode);
                let found = inodes[low..high].iter().filter(|&&i| i == inode).count();
                proptest::prop_assert_eq!(found, whole, "{} in {:?}", inode, inodes);
            }
        }
    }

    #[test]
    fn finds_its_own_socket() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let me = std::process::id();
        // The listener's inode, from our own fd table.
        let mut inode = None;
        for fd in std::fs::read_dir("/proc/self/fd").unwrap() {
            let target = std::fs::read_link(fd.unwrap().path()).unwrap_or_default();
            if let Some(i) = socket_inode(target.as_os_str().as_encoded_bytes()) {
                inode = Some(i);
            }
        }
        let inode = inode.expect("a socket in our fd table");
        let scan = OwnerScan::scan(Path::new("/proc"), &HashSet::from([inode])).unwrap();
        let mut socket = Socket::empty(crate::model::Family::Ipv4, RowKind::Full);
        socket.inode = inode;
        let owners = scan.owners(&socket);
        assert!(owners.iter().any(|o| o.pid == me), "{owners:?}");
        assert!(scan.inspected > 0);
        // Owned, the same holders, one list shared by every asker.
        let (Owners::Owned(first), Owners::Owned(again)) =
            (scan.owners_of(&socket), scan.owners_of(&socket))
        else {
            panic!("owned");
        };
        assert_eq!(&*first, owners);
        assert!(Arc::ptr_eq(&first, &again));
        let mut unknown = socket;
        unknown.inode = u64::MAX;
        assert_eq!(
            scan.owners_of(&unknown),
            scan.ownership(&unknown).to_owners()
        );
        drop(listener);
        let mut tw = Socket::empty(crate::model::Family::Ipv4, RowKind::TimeWait);
        tw.inode = inode;
        assert_eq!(scan.ownership(&tw), Ownership::NoProcess);
        assert_eq!(scan.owners_of(&tw), Owners::NoProcess);
    }
}
