//! The owner scan (threads, getdents, readlinkat) against the plain one
//! (std, one thread): the same owners for every socket of a live namespace,
//! a socket shared by two processes included, while processes come and go.

use std::process::{Command, Stdio};

use tcptab::diag::{self, Extensions, NetlinkSocket};
use tcptab::{Family, OwnerScan, StateSet};

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
    let mut shared = 0;
    for _ in 0..5 {
        let fast = OwnerScan::scan_all(root).unwrap();
        let plain = OwnerScan::scan_plain(root).unwrap();
        assert!(fast.inspected > 10 && plain.inspected > 10);
        for d in &sockets {
            let a = fast.owners(&d.socket);
            let b = plain.owners(&d.socket);
            assert_eq!(a, b, "{:?} -> {:?}", d.socket.local, d.socket.remote);
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
