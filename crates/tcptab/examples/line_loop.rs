//! Profiling aid: time `parse_line` and `render_line` alone over the lines
//! of a table in memory (three passes each), then a `TableReader` over the
//! whole table.
//!
//!     cargo run --release -p tcptab --example line_loop -- FILE

use std::time::{Duration, Instant};

use tcptab::procnet::{parse_line, render_line, ByteOrder, TableReader};

fn main() {
    let path = std::env::args().nth(1).expect("FILE");
    let data = std::fs::read(&path).unwrap();
    let lines: Vec<&[u8]> = data
        .split(|&b| b == b'\n')
        .skip(1)
        .filter(|l| !l.is_empty())
        .collect();
    for _ in 0..3 {
        let t = Instant::now();
        let mut n = 0u64;
        for l in &lines {
            n = n.wrapping_add(parse_line(l, ByteOrder::Little).unwrap().inode);
        }
        say(&format!("parse_line ({n})"), lines.len(), t.elapsed());
    }
    let sockets: Vec<_> = TableReader::new(&data[..], "x", Default::default())
        .map(Result::unwrap)
        .collect();
    let mut out = Vec::with_capacity(data.len());
    for _ in 0..3 {
        out.clear();
        let t = Instant::now();
        for s in &sockets {
            render_line(s, ByteOrder::Little, &mut out);
        }
        say("render_line", sockets.len(), t.elapsed());
    }
    let t = Instant::now();
    let n = TableReader::new(&data[..], "x", Default::default()).count();
    say("TableReader", n, t.elapsed());
}

fn say(what: &str, lines: usize, took: Duration) {
    let per = took.as_nanos() as f64 / lines as f64;
    println!("{what}: {lines} lines {took:?} {per:.1} ns/line");
}
