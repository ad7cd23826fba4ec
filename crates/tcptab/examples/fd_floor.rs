//! The floor of an owner scan: every /proc/PID/fd link read once and
//! nothing kept (getdents64 into one buffer, readlinkat into the stack),
//! on one thread and on one per core; beside it `OwnerScan::scan_all`.
//! Medians of RUNS (default 15) in milliseconds.
//!
//!     cargo run --release -p tcptab --example fd_floor [RUNS]

use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::time::Instant;

use rustix::fs::{openat, Mode, OFlags, RawDir, CWD};

fn pids(root: &OwnedFd) -> Vec<String> {
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut dir = RawDir::new(root, buf.spare_capacity_mut());
    let mut pids = Vec::new();
    while let Some(Ok(e)) = dir.next() {
        let name = e.file_name().to_bytes();
        if !name.is_empty() && name.iter().all(u8::is_ascii_digit) {
            pids.push(format!("{}/fd", String::from_utf8_lossy(name)));
        }
    }
    pids
}

/// Socket links read in the `fd` directories of `pids`.
fn walk(root: &OwnedFd, pids: &[&String]) -> usize {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let mut buf = Vec::with_capacity(32 * 1024);
    let mut sockets = 0;
    for path in pids {
        let Ok(fds) = openat(root, path.as_str(), flags, Mode::empty()) else {
            continue;
        };
        let mut dir = RawDir::new(&fds, buf.spare_capacity_mut());
        while let Some(Ok(e)) = dir.next() {
            let mut link = [MaybeUninit::<u8>::uninit(); 64];
            if let Ok((target, _)) = rustix::fs::readlinkat_raw(&fds, e.file_name(), &mut link) {
                sockets += target.starts_with(b"socket:[") as usize;
            }
        }
    }
    sockets
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(15);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let (mut one, mut many, mut scan) = (Vec::new(), Vec::new(), Vec::new());
    let mut found = 0;
    for _ in 0..runs {
        let t = Instant::now();
        let root = openat(CWD, "/proc", flags, Mode::empty()).unwrap();
        let all = pids(&root);
        found = walk(&root, &all.iter().collect::<Vec<_>>());
        one.push(t.elapsed().as_secs_f64() * 1e3);

        let t = Instant::now();
        let root = openat(CWD, "/proc", flags, Mode::empty()).unwrap();
        let all = pids(&root);
        std::thread::scope(|s| {
            for k in 0..threads {
                let part: Vec<&String> = all.iter().skip(k).step_by(threads).collect();
                let root = &root;
                s.spawn(move || walk(root, &part));
            }
        });
        many.push(t.elapsed().as_secs_f64() * 1e3);

        let t = Instant::now();
        let owners = tcptab::OwnerScan::scan_all(std::path::Path::new("/proc")).unwrap();
        scan.push(t.elapsed().as_secs_f64() * 1e3);
        assert!(owners.inspected > 0);
    }
    println!("socket links: {found}");
    println!("floor, 1 thread:        {:8.1} ms", median(one));
    println!("floor, {threads} threads:       {:8.1} ms", median(many));
    println!("OwnerScan::scan_all:    {:8.1} ms", median(scan));
}
