//! Library-level benchmark: the sock_diag dump and parse alone, and the
//! /proc read and parse alone, in this process's network namespace.
//!
//!     cargo run --release -p tcptab --example dump -- [RUNS]
//!
//! Prints the median of RUNS (default 15) for each, with the socket count.

use std::time::Instant;

use tcptab::diag::{self, Extensions, NetlinkSocket};
use tcptab::procnet::{ProcRoot, ReadOptions};
use tcptab::{Family, StateSet};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn time(runs: usize, mut f: impl FnMut() -> usize) -> (f64, usize) {
    let mut times = Vec::new();
    let mut count = 0;
    for _ in 0..runs {
        let t = Instant::now();
        count = f();
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    (median(times), count)
}

fn main() {
    let runs = std::env::args()
        .nth(1)
        .and_then(|r| r.parse().ok())
        .unwrap_or(15);
    let both = [Family::Ipv4, Family::Ipv6];
    let mut socket = NetlinkSocket::open().expect("netlink socket");
    for (name, ext) in [
        ("netlink dump", Extensions::default()),
        (
            "netlink dump with tcp_info",
            Extensions {
                info: true,
                memory: false,
            },
        ),
    ] {
        let (ms, n) = time(runs, || {
            diag::dump(&mut socket, &both, ext, StateSet::ALL)
                .unwrap()
                .sockets
                .len()
        });
        println!("{name:<28} {ms:8.1} ms  {n} sockets");
    }
    let (ms, n) = time(runs, || {
        ProcRoot::new("/proc")
            .read(ReadOptions::default())
            .unwrap()
            .sockets
            .len()
    });
    println!("{:<28} {ms:8.1} ms  {n} sockets", "proc read and parse");
}
