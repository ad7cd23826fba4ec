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

mod passes;

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
    let files = [
        std::fs::read(root.join("net/tcp"))?,
        std::fs::read(root.join("net/tcp6"))?,
    ];
    let tables = [&files[0][..], &files[1][..]];
    let bytes: usize = tables.iter().map(|t| t.len()).sum();
    let (mut reader, mut slice, mut theirs) = (Vec::new(), Vec::new(), Vec::new());
    let mut rows = 0;
    for _ in 0..passes {
        rows = timed(&mut reader, || passes::tcptab_reused(&tables, false))?;
        assert_eq!(
            timed(&mut slice, || passes::tcptab_reused(&tables, true))?,
            rows
        );
        let theirs_rows = timed(&mut theirs, || passes::procfs_core(&tables));
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
