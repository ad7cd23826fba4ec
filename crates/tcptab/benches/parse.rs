//! Parsing a generated 1,000,000-row table (both families, all row shapes),
//! against the `procfs` crate (procfs-core) parsing the same bytes.
//!
//!     cargo bench -p tcptab --bench parse
//!
//! Each iteration counts the sockets and asserts the count, so a broken
//! parser cannot look fast. `tcptab` is the iterator (a `Socket` per item);
//! `tcptab_read_socket` reuses one `Socket`; both read through `Read`,
//! copying into the reader's buffer as a file is read. `tcptab_slice` parses
//! the bytes where they lie (`SliceReader`). procfs-core reads through
//! `BufRead` on the slice itself (its no-copy path).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use procfs_core::net::TcpNetEntries;
use procfs_core::{ExplicitSystemInfo, FromBufReadSI};
use tcptab::procnet::{render_line, TableReader};
use tcptab::procnet::{ByteOrder, ReadOptions, SliceReader};
use tcptab::{Family, RowKind, Socket};

const ROWS: usize = 1_000_000;

fn bench(c: &mut Criterion) {
    let (v4, v6) = testkit::generate::tables(ROWS);
    let bytes = (v4.len() + v6.len()) as u64;
    let mut group = c.benchmark_group("parse_1M_rows");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(bytes));

    group.bench_function("tcptab", |b| {
        b.iter(|| {
            let mut n = 0;
            for table in [&v4, &v6] {
                for s in TableReader::new(&table[..], "bench", ReadOptions::default()) {
                    black_box(s.unwrap());
                    n += 1;
                }
            }
            assert_eq!(n, ROWS);
        })
    });

    group.bench_function("tcptab_read_socket", |b| {
        b.iter(|| {
            let mut n = 0;
            let mut socket = Socket::empty(Family::Ipv4, RowKind::Full);
            for table in [&v4, &v6] {
                let mut reader = TableReader::new(&table[..], "bench", ReadOptions::default());
                while reader.read_socket(&mut socket).unwrap() {
                    black_box(&socket);
                    n += 1;
                }
            }
            assert_eq!(n, ROWS);
        })
    });

    group.bench_function("tcptab_slice", |b| {
        b.iter(|| {
            let mut n = 0;
            let mut socket = Socket::empty(Family::Ipv4, RowKind::Full);
            for table in [&v4, &v6] {
                let mut reader = SliceReader::new(table, "bench", ReadOptions::default());
                while reader.read_socket(&mut socket).unwrap() {
                    black_box(&socket);
                    n += 1;
                }
            }
            assert_eq!(n, ROWS);
        })
    });

    let info = ExplicitSystemInfo {
        boot_time_secs: 0,
        ticks_per_second: 100,
        page_size: 4096,
        is_little_endian: cfg!(target_endian = "little"),
    };
    group.bench_function("procfs_core", |b| {
        b.iter(|| {
            let mut n = 0;
            for table in [&v4, &v6] {
                let entries = TcpNetEntries::from_buf_read(&table[..], &info).unwrap();
                n += black_box(entries).0.len();
            }
            assert_eq!(n, ROWS);
        })
    });

    group.bench_function("tcptab_parse_and_render", |b| {
        let mut out = Vec::with_capacity(bytes as usize);
        b.iter(|| {
            out.clear();
            for table in [&v4, &v6] {
                for s in TableReader::new(&table[..], "bench", ReadOptions::default()) {
                    render_line(&s.unwrap(), ByteOrder::native(), &mut out);
                }
            }
            assert_eq!(out.len() as u64 + 295, bytes);
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
