//! Every namespace (`--all-netns`) read with the next one's dumps started
//! while one is read, or each in turn: the same sockets of each
//! namespace, in the same order, while namespaces come and go.

use std::process::{Child, Command, Stdio};

use tcptab::diag::Choice;
use tcptab::{Family, Namespaces, Query};

/// Five IPv4 listeners and one IPv6 (no loopback needed: bound to every
/// address).
const LISTENERS: &str = "import socket, time\n\
    held = []\n\
    for _ in range(5):\n    \
        s = socket.socket(); s.bind(('0.0.0.0', 0)); s.listen(); held.append(s)\n\
    s = socket.socket(socket.AF_INET6); s.bind(('::', 0)); s.listen(); held.append(s)\n\
    print('ready', flush=True)\n\
    time.sleep(600)\n";

/// Killed however the test ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn namespaces_read_ahead_give_what_reading_each_in_turn_gives() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root (unshare --net)");
        return;
    }
    let mut held = Vec::new();
    let mut inodes = Vec::new();
    for _ in 0..3 {
        let mut command = Command::new("unshare");
        command.args(["--net", "python3", "-c", LISTENERS]);
        let (child, line) = testkit::spawn_until_line(&mut command);
        assert_eq!(line.trim(), "ready");
        let ns = std::fs::metadata(format!("/proc/{}/ns/net", child.id())).unwrap();
        inodes.push(std::os::unix::fs::MetadataExt::ino(&ns));
        held.push(Killed(child));
    }
    // Namespaces made and gone all through the reads.
    let churn = Command::new("sh")
        .args(["-c", "while :; do unshare --net sleep 0.01; done"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let _churn = Killed(churn);
    let all = Query::new()
        .source(Choice::Netlink)
        .namespaces(Namespaces::All);
    let ours = |q: &Query| -> Vec<(u64, String)> {
        let snapshot = q.snapshot().unwrap();
        snapshot
            .sockets
            .iter()
            .filter_map(|e| {
                let inode = e.namespace.as_ref()?.inode;
                inodes
                    .contains(&inode)
                    .then(|| (inode, e.socket.local.to_string()))
            })
            .collect()
    };
    let one_walk = all.clone().one_walk_all(true);
    for _ in 0..5 {
        let ahead = ours(&all);
        let in_turn = ours(&all.clone().read_ahead(false));
        assert_eq!(ahead, in_turn);
        // Both families in one walk, namespace by namespace: the same, and
        // every namespace's two tables announced, also those of the empty
        // namespaces made and gone.
        assert_eq!(ours(&one_walk), in_turn);
        let report = one_walk.snapshot().unwrap().report;
        assert!(report.read.len() > 3, "{:?}", report.read);
        for read in &report.read {
            assert_eq!(read.tables, [Family::Ipv4, Family::Ipv6], "{read:?}");
        }
        assert_eq!(ahead.len(), 3 * 6, "{ahead:?}");
        for inode in &inodes {
            assert_eq!(ahead.iter().filter(|(i, _)| i == inode).count(), 6);
        }
    }
}
