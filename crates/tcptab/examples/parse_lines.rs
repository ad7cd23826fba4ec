//! Profiling aid: time parse_line alone over the lines of a file in memory.
use std::time::Instant;
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
            let s = tcptab::procnet::parse_line(l, tcptab::procnet::ByteOrder::Little).unwrap();
            n = n.wrapping_add(s.inode);
        }
        let el = t.elapsed();
        println!(
            "{} lines {:?} {:.1} ns/line ({n})",
            lines.len(),
            el,
            el.as_nanos() as f64 / lines.len() as f64
        );
    }
    let t = Instant::now();
    let n = tcptab::procnet::TableReader::new(&data[..], "x", Default::default()).count();
    println!("reader: {n} in {:?}", t.elapsed());
}
