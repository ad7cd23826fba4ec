//! Library-level benchmark: the sock_diag dump and parse alone, and the
//! /proc read and parse alone, in this process's network namespace.
//!
//!     cargo run --release -p tcptab --example dump -- [RUNS]
//!
//! Prints the median of RUNS (default 15) for each, with the socket count;
//! for the query's two ways of reading every socket, also the CPU per read.

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
    // The query's netlink read of every socket with tcp_info: each family's
    // dump read ahead on a thread of its own (`list`), or both in one walk
    // on this thread (the commands that poll). Wall time, then the
    // process's CPU (all threads) per read.
    let query = tcptab::Query::new()
        .source(diag::Choice::Netlink)
        .extensions(Extensions::TCP_INFO);
    for (name, query) in [
        ("snapshot, a walk per family", query.clone()),
        ("snapshot, one walk", query.one_walk_all(true)),
    ] {
        let cpu0 = cpu_seconds();
        let (ms, n) = time(runs, || query.snapshot().unwrap().sockets.len());
        let cpu = (cpu_seconds() - cpu0) / runs as f64 * 1000.0;
        println!("{name:<28} {ms:8.1} ms  {n} sockets  {cpu:.1} ms of CPU");
    }
}

/// This process's CPU time so far, user and system, all threads (those
/// ended too), from /proc/self/stat: in clock ticks, which Linux reports
/// at 100 a second (USER_HZ).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // The fields after the command's closing parenthesis: utime and stime
    // are the 12th and 13th.
    let after = &stat[stat.rfind(')').expect("a command in parentheses") + 2..];
    let ticks: Vec<f64> = after
        .split(' ')
        .skip(11)
        .take(2)
        .map(|f| f.parse().expect("a number of ticks"))
        .collect();
    (ticks[0] + ticks[1]) / 100.0
}
