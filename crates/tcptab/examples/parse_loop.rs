//! Parse a proc root's tables from memory, alternating tcptab and the
//! `procfs` crate (procfs-core) pass by pass, and print each one's median
//! time per pass and the ratio: the parsers alone, no I/O, compared in the
//! same run. For quick comparisons while tuning; `bench/parse.sh` and the
//! criterion benchmark give the recorded figures.
//!
//!     cargo run --release -p tcptab --example parse_loop -- ROOT [PASSES]

use std::io::BufReader;
use std::time::Instant;

use procfs_core::net::TcpNetEntries;
use procfs_core::{ExplicitSystemInfo, FromBufReadSI};
use tcptab::procnet::TableReader;
use tcptab::{Family, ReadOptions, RowKind, Socket};

#[inline(never)]
fn tcptab_pass(tables: &[Vec<u8>]) -> Result<usize, tcptab::Error> {
    let mut rows = 0;
    let mut socket = Socket::empty(Family::Ipv4, RowKind::Full);
    for table in tables {
        let mut reader = TableReader::new(&table[..], "table", ReadOptions::default());
        while reader.read_socket(&mut socket)? {
            std::hint::black_box(&socket);
            rows += 1;
        }
    }
    Ok(rows)
}

#[inline(never)]
fn procfs_pass(tables: &[Vec<u8>]) -> usize {
    let info = ExplicitSystemInfo {
        boot_time_secs: 0,
        ticks_per_second: 100,
        page_size: 4096,
        is_little_endian: cfg!(target_endian = "little"),
    };
    let mut rows = 0;
    for table in tables {
        let entries = TcpNetEntries::from_buf_read(BufReader::new(&table[..]), &info)
            .expect("procfs-core parses the table");
        rows += std::hint::black_box(entries).0.len();
    }
    rows
}

fn median(mut times: Vec<f64>) -> f64 {
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let root = std::path::PathBuf::from(args.next().unwrap_or_else(|| "/proc".into()));
    let passes: usize = args.next().map_or(Ok(9), |s| s.parse())?;
    let tables = [
        std::fs::read(root.join("net/tcp"))?,
        std::fs::read(root.join("net/tcp6"))?,
    ];
    let bytes: usize = tables.iter().map(Vec::len).sum();
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    let mut rows = 0;
    for _ in 0..passes {
        let start = Instant::now();
        rows = tcptab_pass(&tables)?;
        ours.push(start.elapsed().as_secs_f64());
        let start = Instant::now();
        assert_eq!(procfs_pass(&tables), rows, "both parsers see every row");
        theirs.push(start.elapsed().as_secs_f64());
    }
    let (ours, theirs) = (median(ours), median(theirs));
    for (name, t) in [("tcptab", ours), ("procfs-core", theirs)] {
        println!(
            "{name:12} {:8.1} ms  {:6.0} ns/row  {:6.0} MB/s",
            t * 1e3,
            t * 1e9 / rows as f64,
            bytes as f64 / t / 1e6
        );
    }
    println!(
        "{rows} rows, {bytes} bytes, {passes} passes: tcptab {:.1}x the throughput",
        theirs / ours
    );
    Ok(())
}
