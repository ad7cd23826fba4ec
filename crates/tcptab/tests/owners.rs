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
