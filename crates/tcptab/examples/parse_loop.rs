//! Parse a proc root's tables from memory, alternating tcptab and the
//! `procfs` crate (procfs-core) pass by pass, and print each one's median
//! time per pass and the ratio: the parsers alone, no I/O, compared in the
//! same run. tcptab is measured twice: through `TableReader` (a `Read`
//! source, copied into its buffer, as files are read) and through
//! `SliceReader` (parsed where the bytes lie). procfs-core reads the bytes
//! through `BufRead` on the slice itself, its own no-copy path. For quick
//! comparisons while tuning; `bench/parse.sh` and the criterion benchmark
//! give the recorded figures.
//!
//!     cargo run --release -p tcptab --example parse_loop -- ROOT [PASSES]

use std::time::Instant;

use procfs_core::net::TcpNetEntries;
use procfs_core::{ExplicitSystemInfo, FromBufReadSI};
use tcptab::procnet::TableReader;
use tcptab::procnet::{ReadOptions, SliceReader};
use tcptab::{Family, RowKind, Socket};

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
fn tcptab_slice_pass(tables: &[Vec<u8>]) -> Result<usize, tcptab::Error> {
    let mut rows = 0;
    let mut socket = Socket::empty(Family::Ipv4, RowKind::Full);
    for table in tables {
        let mut reader = SliceReader::new(table, "table", ReadOptions::default());
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
        let entries =
            TcpNetEntries::from_buf_read(&table[..], &info).expect("procfs-core parses the table");
        rows += std::hint::black_box(entries).0.len();
    }
    rows
}

fn median(mut times: Vec<f64>) -> f64 {
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn timed<T>(times: &mut Vec<f64>, f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = f();
    times.push(start.elapsed().as_secs_f64());
    out
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
    let (mut reader, mut slice, mut theirs) = (Vec::new(), Vec::new(), Vec::new());
    let mut rows = 0;
    for _ in 0..passes {
        rows = timed(&mut reader, || tcptab_pass(&tables))?;
        assert_eq!(timed(&mut slice, || tcptab_slice_pass(&tables))?, rows);
        let theirs_rows = timed(&mut theirs, || procfs_pass(&tables));
        assert_eq!(theirs_rows, rows, "both parsers see every row");
    }
    let (reader, slice, theirs) = (median(reader), median(slice), median(theirs));
    for (name, t) in [
        ("tcptab TableReader", reader),
        ("tcptab SliceReader", slice),
        ("procfs-core", theirs),
    ] {
        println!(
            "{name:20} {:8.1} ms  {:6.0} ns/row  {:6.0} MB/s  {:5.1}x",
            t * 1e3,
            t * 1e9 / rows as f64,
            bytes as f64 / t / 1e6,
            theirs / t,
        );
    }
    println!("{rows} rows, {bytes} bytes, {passes} passes, medians; last column: throughput against procfs-core");
    Ok(())
}
