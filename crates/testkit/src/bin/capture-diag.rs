//! `capture-diag DIR`: dump this network namespace's TCP sockets over
//! sock_diag (both families, with tcp_info, congestion algorithm and
//! memory) and save the raw datagrams to DIR/diag-dump.bin. Run inside the
//! namespace (testdata/capture.sh does).

use std::path::PathBuf;

use tcptab::diag::{self, Extensions, NetlinkSocket};
use tcptab::{Family, StateSet};
use testkit::diag::{save, Recorder};

fn main() {
    let Some(dir) = std::env::args().nth(1) else {
        eprintln!("usage: capture-diag DIR");
        std::process::exit(2);
    };
    let socket = NetlinkSocket::open().unwrap_or_else(|e| {
        eprintln!("capture-diag: opening a NETLINK_SOCK_DIAG socket: {e}");
        std::process::exit(1)
    });
    let mut recorder = Recorder {
        inner: socket,
        datagrams: Vec::new(),
    };
    let extensions = Extensions {
        info: true,
        memory: true,
    };
    let dump = diag::dump(
        &mut recorder,
        &[Family::Ipv4, Family::Ipv6],
        extensions,
        StateSet::ALL,
    )
    .unwrap_or_else(|e| {
        eprintln!("capture-diag: {e}");
        std::process::exit(1)
    });
    let path = PathBuf::from(dir).join("diag-dump.bin");
    save(&path, &recorder.datagrams).expect("writing the capture");
    eprintln!(
        "capture-diag: {} sockets in {} datagrams to {}",
        dump.sockets.len(),
        recorder.datagrams.len(),
        path.display()
    );
}
