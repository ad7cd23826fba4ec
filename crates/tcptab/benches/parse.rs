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

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tcptab::procnet::{render_line, ByteOrder, ReadOptions, TableReader};

#[path = "../examples/passes/mod.rs"]
mod passes;

const ROWS: usize = 1_000_000;

fn bench(c: &mut Criterion) {
    let (v4, v6) = testkit::generate::tables(ROWS);
    let bytes = (v4.len() + v6.len()) as u64;
    let mut group = c.benchmark_group("parse_1M_rows");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(bytes));

    let tables = [&v4[..], &v6[..]];
    group.bench_function("tcptab", |b| {
        b.iter(|| assert_eq!(passes::tcptab_iter(&tables).unwrap(), ROWS))
    });
    group.bench_function("tcptab_read_socket", |b| {
        b.iter(|| assert_eq!(passes::tcptab_reused(&tables, false).unwrap(), ROWS))
    });
    group.bench_function("tcptab_slice", |b| {
        b.iter(|| assert_eq!(passes::tcptab_reused(&tables, true).unwrap(), ROWS))
    });
    group.bench_function("procfs_core", |b| {
        b.iter(|| assert_eq!(passes::procfs_core(&tables), ROWS))
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
