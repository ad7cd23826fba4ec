//! The owner scan against the plain one (std, one thread): the walk of
//! the kernel's iterator and the threaded read of `/proc` (getdents,
//! readlinkat) find the same owners for every socket of a live namespace,
//! a socket shared by two processes included, while processes come and go.

use std::process::{Command, Stdio};

use tcptab::diag::{self, Extensions, NetlinkSocket};
use tcptab::{Family, OwnerScan, StateSet};

/// Root in the initial PID namespace, on a kernel that describes itself
/// (BTF): the scan walks the kernel's iterator, and the tests compare
/// that walk (elsewhere they compare the `/proc` scan twice, and say so).
fn expect_the_walk() {
    let initial = std::fs::read_link("/proc/self/ns/pid")
        .is_ok_and(|ns| ns.to_string_lossy() == "pid:[4026531836]");
    let root = rustix::process::geteuid().is_root();
    let btf = std::path::Path::new("/sys/kernel/btf/vmlinux").exists();
    let why = OwnerScan::walk_unavailable();
    if initial && root && btf && std::env::var_os("TCPTAB_OWNER_SCAN").is_none() {
        assert_eq!(why, None, "the walk is expected here");
    } else {
        eprintln!("the owner scan reads /proc here: {why:?}");
    }
}

#[test]
fn the_threaded_scan_finds_the_owners_the_plain_one_finds() {
    let Some(scenario) = testkit::live("sockets.py") else { return };
    let ns = scenario.proc_root().join("ns/net");
    let mut socket = NetlinkSocket::open_in(&ns).unwrap();
    let sockets = diag::dump(
        &mut socket,
        &[Family::Ipv4, Family::Ipv6],
        Extensions::default(),
        StateSet::ALL,
    )
    .unwrap()
    .sockets;
    // Processes starting and exiting all through the scans.
    let mut churn = Command::new("sh")
        .args(["-c", "while :; do /bin/true & /bin/true & wait; done"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let root = std::path::Path::new("/proc");
    expect_the_walk();
    let mut shared = 0;
    for _ in 0..5 {
        let fast = OwnerScan::scan_all(root).unwrap();
        let reading = OwnerScan::scan_all_reading(root).unwrap();
        let plain = OwnerScan::scan_plain(root).unwrap();
        assert!(fast.inspected > 10 && plain.inspected > 10);
        for d in &sockets {
            let a = fast.owners(&d.socket);
            let b = plain.owners(&d.socket);
            assert_eq!(a, b, "{:?} -> {:?}", d.socket.local, d.socket.remote);
            assert_eq!(reading.owners(&d.socket), b);
            if a.len() > 1 {
                shared += 1;
            }
        }
        // The scenario's own process holds its sockets.
        let pid = scenario.pid();
        assert!(sockets.iter().any(|d| fast
            .owners(&d.socket)
            .iter()
            .any(|o| o.pid == pid && &*o.command == "python3")));
    }
    churn.kill().unwrap();
    let _ = churn.wait();
    // The listener shared by two processes (after fork) has both.
    assert!(shared >= 5, "{shared}");
}

/// A process holding thousands of sockets has its descriptors read by
/// every thread of the scan, each taking a share: every one of them is
/// found, once, with its descriptor number, as the plain scan finds it.
#[test]
fn a_process_with_thousands_of_sockets_is_read_whole() {
    let code = "import resource, socket, sys, time\n\
                resource.setrlimit(resource.RLIMIT_NOFILE, (12000, 12000))\n\
                held = [socket.socketpair() for _ in range(5000)]\n\
                print('ready', flush=True)\n\
                time.sleep(600)\n";
    let (mut holder, line) = testkit::spawn_until_line(Command::new("python3").args(["-c", code]));
    assert_eq!(line, "ready");
    let pid = holder.id();
    // Its sockets, read here with std.
    let mut held = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap() {
        let entry = entry.unwrap();
        let target = std::fs::read_link(entry.path()).unwrap();
        let target = target.to_string_lossy();
        if let Some(inode) = target
            .strip_prefix("socket:[")
            .and_then(|t| t.strip_suffix(']'))
        {
            let fd: u32 = entry.file_name().to_str().unwrap().parse().unwrap();
            held.push((inode.parse::<u64>().unwrap(), fd));
        }
    }
    assert!(held.len() >= 10_000, "{}", held.len());
    let root = std::path::Path::new("/proc");
    let fast = OwnerScan::scan_all(root).unwrap();
    let reading = OwnerScan::scan_all_reading(root).unwrap();
    let plain = OwnerScan::scan_plain(root).unwrap();
    let _ = holder.kill();
    let _ = holder.wait();
    let mut socket = tcptab::Socket::empty(Family::Ipv4, tcptab::RowKind::Full);
    for (inode, fd) in held {
        socket.inode = inode;
        let owners = fast.owners(&socket);
        assert_eq!(owners, plain.owners(&socket), "socket {inode}");
        assert_eq!(owners, reading.owners(&socket), "socket {inode}");
        let ours: Vec<_> = owners.iter().filter(|o| o.pid == pid).collect();
        assert_eq!(ours.len(), 1, "socket {inode}: {owners:?}");
        assert_eq!((ours[0].fd, &*ours[0].command), (fd, "python3"));
    }
}

/// A snapshot of one namespace looks for owners among that namespace's
/// processes first, then among all for the sockets left without one: a
/// listener of the namespace held by a process that moved to another
/// namespace keeps its owner, as the full scan finds it.
#[test]
fn a_socket_held_from_another_namespace_keeps_its_owner() {
    let Some(scenario) = testkit::live("sockets.py") else { return };
    let code = "import os, socket\n\
                s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\n\
                print(s.getsockname()[1], flush=True)\n\
                os.set_inheritable(s.fileno(), True)\n\
                os.execvp('unshare', ['unshare', '--net', 'sleep', '600'])\n";
    let mut command = Command::new("nsenter");
    command
        .arg("-t")
        .arg(scenario.pid().to_string())
        .args(["-n", "python3", "-c", code]);
    let (holder, line) = testkit::spawn_until_line(&mut command);
    // Killed however the test ends (it holds the test's output open).
    struct Killed(std::process::Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let holder = Killed(holder);
    let port: u16 = line.trim().parse().unwrap();
    // Until it lives in a namespace of its own.
    let ns_of = |root: std::path::PathBuf| std::fs::read_link(root.join("ns/net")).unwrap();
    let holder_root = std::path::PathBuf::from(format!("/proc/{}", holder.0.id()));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while ns_of(holder_root.clone()) == ns_of(scenario.proc_root()) {
        assert!(
            std::time::Instant::now() < deadline,
            "the holder never left"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let query = tcptab::Query::new()
        .namespaces(tcptab::Namespaces::Pid(scenario.pid()))
        .owners(true);
    let snapshot = query.snapshot().unwrap();
    let listener = snapshot
        .sockets
        .iter()
        .find(|e| e.socket.local.port() == port)
        .expect("the listener in the snapshot");
    let full = OwnerScan::scan_all(std::path::Path::new("/proc")).unwrap();
    let want: Vec<u32> = full
        .owners(&listener.socket)
        .iter()
        .map(|o| o.pid)
        .collect();
    assert_eq!(want, [holder.0.id()]);
    let got: Vec<u32> = match &listener.owners {
        Some(tcptab::Owners::Owned(list)) => list.iter().map(|o| o.pid).collect(),
        other => panic!("{other:?}"),
    };
    assert_eq!(got, want);
}

/// A thread with a descriptor table of its own (`unshare(CLONE_FILES)`):
/// the walk goes through its table apart from its process's. A socket in
/// both tables (opened before the unshare) is its process's once; one
/// opened by the thread afterwards is its process's too, where reading
/// `/proc/PID/fd` (the process's table only) does not find it.
#[test]
fn a_thread_with_a_table_of_its_own_holds_its_sockets_once() {
    if let Some(why) = OwnerScan::walk_unavailable() {
        eprintln!("skipped: the scan reads /proc here ({why})");
        return;
    }
    let code = "import ctypes, os, socket, threading, time\n\
                libc = ctypes.CDLL(None, use_errno=True)\n\
                both = socket.socket(); both.bind(('127.0.0.1', 0)); both.listen()\n\
                def own():\n    \
                    if libc.unshare(0x400) != 0: raise OSError(ctypes.get_errno(), 'unshare')\n    \
                    mine = socket.socket(); mine.bind(('127.0.0.1', 0)); mine.listen()\n    \
                    ino = lambda s: os.fstat(s.fileno()).st_ino\n    \
                    print(both.fileno(), ino(both), mine.fileno(), ino(mine), flush=True)\n    \
                    time.sleep(600)\n\
                threading.Thread(target=own, daemon=True).start()\n\
                time.sleep(600)\n";
    let (mut holder, line) = testkit::spawn_until_line(Command::new("python3").args(["-c", code]));
    let pid = holder.id();
    let n: Vec<u64> = line.split(' ').map(|w| w.trim().parse().unwrap()).collect();
    let root = std::path::Path::new("/proc");
    let walked = OwnerScan::scan_all(root).unwrap();
    let reading = OwnerScan::scan_all_reading(root).unwrap();
    let _ = holder.kill();
    let _ = holder.wait();
    let holders = |scan: &OwnerScan, inode: u64| -> Vec<(u32, u32)> {
        let mut socket = tcptab::Socket::empty(Family::Ipv4, tcptab::RowKind::Full);
        socket.inode = inode;
        scan.owners(&socket).iter().map(|o| (o.pid, o.fd)).collect()
    };
    let (both, mine) = ((n[0] as u32, n[1]), (n[2] as u32, n[3]));
    assert_eq!(holders(&walked, both.1), [(pid, both.0)]);
    assert_eq!(holders(&reading, both.1), [(pid, both.0)]);
    assert_eq!(holders(&walked, mine.1), [(pid, mine.0)]);
    assert_eq!(holders(&reading, mine.1), []);
}

/// A listing with owners starts its dumps before the owner scan (the
/// kernel walks its tables while the scan walks the processes'): the
/// same sockets, in the same order, with the same owners as a listing
/// that reads its dumps only after the scan.
#[test]
fn dumps_started_before_the_scan_give_the_same_owners() {
    let Some(scenario) = testkit::live("sockets.py") else { return };
    let query = tcptab::Query::new()
        .source(diag::Choice::Netlink)
        .namespaces(tcptab::Namespaces::Pid(scenario.pid()))
        .owners(true);
    /// Each socket's ends and its owners' (pid, fd).
    type Listed = Vec<(String, String, Vec<(u32, u32)>)>;
    let listed = |q: &tcptab::Query| -> Listed {
        q.snapshot()
            .unwrap()
            .sockets
            .iter()
            .map(|e| {
                let owners = match &e.owners {
                    Some(tcptab::Owners::Owned(list)) => {
                        list.iter().map(|o| (o.pid, o.fd)).collect()
                    }
                    _ => Vec::new(),
                };
                (
                    e.socket.local.to_string(),
                    e.socket.remote.to_string(),
                    owners,
                )
            })
            .collect()
    };
    let early = listed(&query);
    let after = listed(&query.clone().read_ahead(false));
    assert_eq!(early, after);
    let owned = early.iter().filter(|(_, _, o)| !o.is_empty()).count();
    assert!(owned > 10, "{early:?}");
}
