//! A scan that takes what the scan before read where nothing can have
//! changed: under churn every poll sees new sockets, and reading every
//! descriptor's link again (most of them held by processes that sleep
//! between polls, on the same sockets) was most of a recorder's owner
//! scan.
//!
//! A process's descriptor table changes only by what its threads do (a
//! `socket`, `accept`, `close`, `dup`, a descriptor received): a process
//! none of whose threads ran since the scan before read its table has the
//! same table. So each process's threads' run time and count of runs
//! (`/proc/PID/task/TID/schedstat`) are read before its table; where they
//! are those of the scan before, its links are taken from that scan, and
//! otherwise its table is read whole. What this cannot see: a table
//! shared with another process (`clone(CLONE_FILES)` without a thread
//! group) that the other changed, or a descriptor that a seccomp
//! supervisor added to a process still blocked in its system call; a
//! process with more than [`THREADS_FOLLOWED`] threads is always read
//! whole, and a [`KeptScan`] is made anew at least every
//! [`KEEP_SCAN_FOR`].

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::{Duration, Instant};

use super::proc::{number, Reader};
use super::OwnerScan;

type Fast = foldhash::fast::RandomState;

/// A process with more threads than this is read whole at every rescan
/// (reading each thread's run time would cost about what its links do).
pub const THREADS_FOLLOWED: usize = 64;

/// How long a kept scan is brought up to date rather than made anew:
/// every process's table is read at least this often.
pub const KEEP_SCAN_FOR: Duration = Duration::from_secs(60);

/// An owner scan kept from one reading of the table to the next (a
/// monitor's polls, an exporter's collections): each reading takes it
/// brought up to date ([`OwnerScan::rescan`]) instead of reading every
/// process's descriptors, until it is [`KEEP_SCAN_FOR`] old.
#[derive(Debug, Default)]
pub struct KeptScan {
    scan: Option<OwnerScan>,
    /// When the whole scan the kept one grew from was made.
    since: Option<Instant>,
}

impl KeptScan {
    pub fn new() -> KeptScan {
        KeptScan::default()
    }

    /// The kept scan brought up to date for a new reading; None when none
    /// is kept, or it is too old, or `/proc` could not be read (the
    /// reading then scans anew, and [`keep`](KeptScan::keep) starts over).
    pub fn take(&mut self, proc_root: &Path) -> Option<OwnerScan> {
        let (Some(scan), Some(since)) = (self.scan.take(), self.since) else {
            self.since = None;
            return None;
        };
        let fresh = since.elapsed() < KEEP_SCAN_FOR;
        let again = fresh.then(|| scan.rescan(proc_root).ok()).flatten();
        if again.is_none() {
            self.since = None;
        }
        again
    }

    /// Keep `scan`, the one the reading used, for the next. `made` is
    /// when it was made, if it is a new whole scan (a scan
    /// [`take`](KeptScan::take) gave keeps the age of the one it grew
    /// from).
    pub fn keep(&mut self, scan: OwnerScan, made: Instant) {
        self.since.get_or_insert(made);
        self.scan = Some(scan);
    }
}

/// What a scan keeps and knows: the inodes it wants (None: every socket)
/// and the scan before it.
#[derive(Default)]
pub(super) struct Ask<'a> {
    pub(super) wanted: Option<&'a std::collections::HashSet<u64>>,
    pub(super) known: Option<&'a Known<'a>>,
}

/// The scan before, by process: where each one's links are, and how much
/// its threads had run when its table was read; and the processes to
/// read now, with how much theirs have run (read before any table).
pub(super) struct Known<'a> {
    earlier: &'a OwnerScan,
    /// Each process's entries in `earlier`.
    entries: HashMap<u32, Vec<usize>, Fast>,
    /// The processes to read, sorted, and how much each one's threads
    /// have run.
    now: Vec<(u32, Option<u64>)>,
}

impl Known<'_> {
    /// The processes to read.
    pub(super) fn processes(&self) -> Vec<u32> {
        self.now.iter().map(|&(pid, _)| pid).collect()
    }

    /// How much process `pid`'s threads had run before its table is read.
    pub(super) fn ran(&self, pid: u32) -> Option<u64> {
        let at = self.now.binary_search_by_key(&pid, |&(p, _)| p).ok()?;
        self.now[at].1
    }

    /// The entries of the scan before for process `pid`, when its threads
    /// have not run since (`ran` now is what it was then).
    pub(super) fn unchanged(&self, pid: u32, ran: Option<u64>) -> Option<&[usize]> {
        let ran = ran?;
        if self.earlier.ran.get(&pid) != Some(&ran) {
            return None;
        }
        Some(self.entries.get(&pid).map_or(&[], Vec::as_slice))
    }

    /// The scan before's entry `at`: its inode and owner.
    pub(super) fn entry(&self, at: usize) -> (u64, &crate::model::Owner) {
        (self.earlier.inodes[at], &self.earlier.owners[at])
    }
}

/// How much the threads of process `pid` have run: a hash of each
/// thread's id, run time and count of runs. None when it cannot be read
/// or the process has more than [`THREADS_FOLLOWED`] threads.
pub(super) fn ran(root: &OwnedFd, pid: u32, reader: &mut Reader) -> Option<u64> {
    use rustix::fs::{openat, Mode, OFlags};
    use std::fmt::Write;
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    reader.path.clear();
    let _ = write!(reader.path, "{pid}/task");
    let tasks = openat(root, reader.path.as_str(), flags, Mode::empty()).ok()?;
    let mut tids = Vec::new();
    let mut dir = rustix::fs::RawDir::new(&tasks, reader.dir.spare_capacity_mut());
    while let Some(entry) = dir.next() {
        if let Some(tid) = number(entry.ok()?.file_name().to_bytes()) {
            tids.push(tid);
            if tids.len() > THREADS_FOLLOWED {
                return None;
            }
        }
    }
    let mut hash = foldhash::fast::FixedState::with_seed(0).hash_one(tids.len());
    for tid in tids {
        reader.path.clear();
        let _ = write!(reader.path, "{tid}/schedstat");
        let file = OFlags::RDONLY | OFlags::CLOEXEC;
        let stat = openat(&tasks, reader.path.as_str(), file, Mode::empty()).ok()?;
        let mut buf = [0u8; 96];
        let n = rustix::io::read(&stat, &mut buf).ok()?;
        let mut fields = buf[..n].split(|&b| b == b' ' || b == b'\n');
        let runtime = fields.next()?;
        let _waited = fields.next()?;
        let runs = fields.next()?;
        hash = foldhash::fast::FixedState::with_seed(hash).hash_one((tid, runtime, runs));
    }
    Some(hash)
}

impl OwnerScan {
    /// This scan brought up to date: the processes it read (those of its
    /// namespace, or all; a process that started since is read whole),
    /// taking the links of each process whose threads did not run since
    /// this one read it (see the module's note). What
    /// [`scan_all`](OwnerScan::scan_all) or
    /// [`scan_namespace`](OwnerScan::scan_namespace) would find, at the
    /// cost of reading only the tables of the processes that ran; when
    /// none ran and none came or went, it is this scan itself (the lists
    /// of holders it shares stay shared).
    ///
    /// Where the kernel's iterator can be used (`bpf/`), every table is
    /// walked anew instead: that costs less than reading the run times,
    /// and sees what they cannot.
    pub fn rescan(mut self, proc_root: &Path) -> io::Result<OwnerScan> {
        match OwnerScan::walked(proc_root, None, self.among()) {
            Some(mut scan) => {
                if scan.inodes == self.inodes && scan.owners == self.owners {
                    scan.shared = std::mem::take(&mut self.shared);
                }
                Ok(scan)
            }
            None => self.rescan_reading(proc_root),
        }
    }

    /// [`rescan`](OwnerScan::rescan) by reading `/proc`: the tables of
    /// the processes that ran.
    pub(super) fn rescan_reading(mut self, proc_root: &Path) -> io::Result<OwnerScan> {
        use rustix::fs::{openat, Mode, OFlags, CWD};
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let root = openat(CWD, proc_root, flags, Mode::empty())?;
        let mut reader = Reader::default();
        let among = self.among();
        let mut now = Vec::new();
        for pid in super::proc::list_processes(&root)? {
            if among.has(&root, pid, &mut reader) {
                now.push((pid, ran(&root, pid, &mut reader)));
            }
        }
        now.sort_unstable_by_key(|&(pid, _)| pid);
        let unchanged = now.len() == self.processes.len()
            && now.iter().zip(&self.processes).all(|(&(pid, ran), &was)| {
                pid == was && ran.is_some() && self.ran.get(&pid) == ran.as_ref()
            });
        if unchanged {
            self.reused = self.owners.len() as u32;
            self.vanished = 0;
            return Ok(self);
        }
        let mut entries: HashMap<u32, Vec<usize>, Fast> = HashMap::default();
        for (at, owner) in self.owners.iter().enumerate() {
            entries.entry(owner.pid).or_default().push(at);
        }
        let known = Known {
            earlier: &self,
            entries,
            now,
        };
        let ask = Ask {
            wanted: None,
            known: Some(&known),
        };
        let mut scan = OwnerScan::scan_with(proc_root, &ask, among)?;
        if scan.inodes == self.inodes && scan.owners == self.owners {
            // What ran holds what it held (the reader itself, say, in the
            // namespace it reads): the lists of holders already made for
            // the scan before are still right, and still shared.
            scan.shared = std::mem::take(&mut self.shared);
        }
        Ok(scan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Family, RowKind, Socket};
    use std::io::{BufRead, BufReader, Write};
    use std::os::fd::AsRawFd;
    use std::process::{Command, Stdio};
    use std::sync::Arc;

    fn inode_of(fd: i32) -> u64 {
        let target = std::fs::read_link(format!("/proc/self/fd/{fd}")).unwrap();
        super::super::proc::socket_inode(target.as_os_str().as_encoded_bytes()).unwrap()
    }

    fn holders(scan: &OwnerScan, inode: u64) -> Vec<(u32, u32)> {
        let mut socket = Socket::empty(Family::Ipv4, RowKind::Full);
        socket.inode = inode;
        let mut found: Vec<(u32, u32)> =
            scan.owners(&socket).iter().map(|o| (o.pid, o.fd)).collect();
        found.sort_unstable();
        found
    }

    /// A process that sleeps holding a listener, and opens another when
    /// told: it prints each one's descriptor and inode.
    const SLEEPER: &str = "import os, socket, sys
held = []
def listen():
    s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); held.append(s)
    print(s.fileno(), os.fstat(s.fileno()).st_ino, flush=True)
listen()
for line in sys.stdin:
    listen()
";

    /// Waits until `pid` sleeps: its run time (schedstat) the same over
    /// 100 ms (on a loaded machine it may take a while to reach its read).
    fn asleep(pid: u32) {
        let ran = || std::fs::read_to_string(format!("/proc/{pid}/schedstat")).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut before = ran();
        loop {
            std::thread::sleep(std::time::Duration::from_millis(100));
            let now = ran();
            if now == before || std::time::Instant::now() > deadline {
                return;
            }
            before = now;
        }
    }

    /// A rescan finds what a new scan finds: the sockets of a process
    /// that slept (taken, not read), one a process opened since it woke,
    /// this process's own opened and closed since; and it took the
    /// sleeper's links instead of reading them.
    #[test]
    fn a_rescan_finds_what_a_new_scan_finds() {
        let mut sleeper = Command::new("python3")
            .args(["-c", SLEEPER])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = sleeper.id();
        let mut lines = BufReader::new(sleeper.stdout.take().unwrap()).lines();
        let mut next = || -> (u32, u64) {
            let line = lines.next().unwrap().unwrap();
            let (fd, inode) = line.split_once(' ').unwrap();
            (fd.parse().unwrap(), inode.parse().unwrap())
        };
        let (first_fd, first) = next();
        let me = std::process::id();
        let closing = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let closing_inode = inode_of(closing.as_raw_fd());
        // Give the sleeper time to be asleep in its read.
        std::thread::sleep(std::time::Duration::from_millis(200));
        let before = OwnerScan::scan_all(Path::new("/proc")).unwrap();
        // A whole scan says nothing of how much each process had run: the
        // first rescan reads every table; the next takes the sleeper's.
        let again = before.rescan_reading(Path::new("/proc")).unwrap();
        assert_eq!(again.reused, 0);
        let from_again = again.rescan_reading(Path::new("/proc")).unwrap();
        assert!(from_again.reused >= 1, "{}", from_again.reused);
        assert_eq!(holders(&from_again, first), [(pid, first_fd)]);
        drop(closing);
        let opened = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let opened_inode = inode_of(opened.as_raw_fd());
        // The sleeper wakes and opens a second listener.
        writeln!(sleeper.stdin.as_mut().unwrap(), "open").unwrap();
        let (second_fd, second) = next();
        let later = from_again.rescan_reading(Path::new("/proc")).unwrap();
        let fresh = OwnerScan::scan_all(Path::new("/proc")).unwrap();
        for inode in [first, second, closing_inode, opened_inode] {
            assert_eq!(holders(&later, inode), holders(&fresh, inode), "{inode}");
        }
        assert_eq!(holders(&later, second), [(pid, second_fd)]);
        assert_eq!(
            holders(&later, opened_inode),
            [(me, opened.as_raw_fd() as u32)]
        );
        assert!(holders(&later, closing_inode).is_empty());
        drop(sleeper.stdin.take());
        sleeper.wait().unwrap();
    }

    /// A sleeping process in a namespace of its own holding a listener:
    /// the process, its namespace, and the listener's fd and inode (as
    /// root: `unshare --net`).
    fn sleeper_alone() -> Option<(std::process::Child, u64, u32, u64)> {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: needs root (unshare --net)");
            return None;
        }
        let mut sleeper = Command::new("unshare")
            .args(["--net", "python3", "-c", SLEEPER])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(sleeper.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let (fd, inode) = line.trim().split_once(' ').unwrap();
        let pid = sleeper.id();
        let netns = std::fs::metadata(format!("/proc/{pid}/ns/net")).unwrap();
        let netns = std::os::unix::fs::MetadataExt::ino(&netns);
        asleep(pid);
        Some((sleeper, netns, fd.parse().unwrap(), inode.parse().unwrap()))
    }

    /// The list of holders `scan` lends for the socket `inode`.
    fn shared_list(scan: &OwnerScan, inode: u64) -> Arc<[crate::model::Owner]> {
        let mut socket = Socket::empty(Family::Ipv4, RowKind::Full);
        socket.inode = inode;
        match scan.owners_of(&socket) {
            crate::model::Owners::Owned(list) => list,
            other => panic!("the sleeper's listener is owned: {other:?}"),
        }
    }

    /// Where no process ran and none came or went, a rescan is the scan
    /// itself: every link taken, the lists of holders it shares still
    /// the same lists (the namespace of one sleeping process; as root).
    #[test]
    fn a_rescan_where_nothing_ran_is_the_scan_itself() {
        let Some((mut sleeper, netns, fd, inode)) = sleeper_alone() else {
            return;
        };
        let scan = OwnerScan::scan_namespace(Path::new("/proc"), netns).unwrap();
        let scan = scan.rescan_reading(Path::new("/proc")).unwrap();
        let before = shared_list(&scan, inode);
        let again = scan.rescan_reading(Path::new("/proc")).unwrap();
        assert_eq!(again.reused as usize, again.owners.len());
        assert_eq!(holders(&again, inode), [(sleeper.id(), fd)]);
        assert!(Arc::ptr_eq(&before, &shared_list(&again, inode)));
        drop(sleeper.stdin.take());
        sleeper.wait().unwrap();
    }

    /// Where the kernel's iterator walks, a rescan is a new walk: a
    /// socket opened since is there at once, one closed is gone, and
    /// where nothing changed the lists of holders stay shared.
    #[test]
    fn a_walked_rescan_finds_what_is_held_now_and_keeps_its_lists() {
        if let Some(why) = OwnerScan::walk_unavailable() {
            eprintln!("skipped: the scan reads /proc here ({why})");
            return;
        }
        let Some((mut sleeper, netns, fd, inode)) = sleeper_alone() else {
            return;
        };
        let proc_root = Path::new("/proc");
        let scan = OwnerScan::scan_namespace(proc_root, netns).unwrap();
        let before = shared_list(&scan, inode);
        let scan = scan.rescan(proc_root).unwrap();
        assert_eq!(scan.reused, 0);
        assert_eq!(holders(&scan, inode), [(sleeper.id(), fd)]);
        assert!(Arc::ptr_eq(&before, &shared_list(&scan, inode)));
        drop(sleeper.stdin.take());
        sleeper.wait().unwrap();
        let all = OwnerScan::scan_all(proc_root).unwrap();
        let opened = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let opened_inode = inode_of(opened.as_raw_fd());
        assert!(holders(&all, opened_inode).is_empty());
        let all = all.rescan(proc_root).unwrap();
        let me = (std::process::id(), opened.as_raw_fd() as u32);
        assert_eq!(holders(&all, opened_inode), [me]);
        drop(opened);
        let all = all.rescan(proc_root).unwrap();
        assert!(holders(&all, opened_inode).is_empty());
    }

    /// Where a process ran but holds the sockets it held (a reader in the
    /// namespace it reads, say), its table is read again, and the lists
    /// of holders made for the scan before are still lent, not made anew.
    #[test]
    fn a_rescan_where_what_ran_holds_what_it_held_keeps_its_lists() {
        let Some((mut sleeper, netns, fd, inode)) = sleeper_alone() else {
            return;
        };
        let mut busy = Command::new("nsenter")
            .arg(format!("--net=/proc/{}/ns/net", sleeper.id()))
            // Bounded: it ends by itself if the test fails before its kill.
            .args([
                "python3",
                "-c",
                "import time\nfor _ in range(3000): time.sleep(0.01)",
            ])
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(300));
        let scan = OwnerScan::scan_namespace(Path::new("/proc"), netns).unwrap();
        let scan = scan.rescan_reading(Path::new("/proc")).unwrap();
        let before = shared_list(&scan, inode);
        let ran = scan.ran.get(&busy.id()).copied();
        std::thread::sleep(std::time::Duration::from_millis(100));
        let again = scan.rescan_reading(Path::new("/proc")).unwrap();
        let ran_again = again.ran.get(&busy.id()).copied();
        busy.kill().unwrap();
        busy.wait().unwrap();
        // The busy process ran, and its table was read again.
        assert!(ran.is_some() && ran_again.is_some() && ran != ran_again);
        assert_eq!(holders(&again, inode), [(sleeper.id(), fd)]);
        assert!(Arc::ptr_eq(&before, &shared_list(&again, inode)));
        drop(sleeper.stdin.take());
        sleeper.wait().unwrap();
    }
}
