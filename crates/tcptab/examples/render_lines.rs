//! Profiling aid: time render_line alone over the sockets of a file.
use std::time::Instant;
fn main() {
    let path = std::env::args().nth(1).expect("FILE");
    let data = std::fs::read(&path).unwrap();
    let sockets: Vec<_> = tcptab::procnet::TableReader::new(&data[..], "x", Default::default())
        .map(Result::unwrap)
        .collect();
    let mut out = Vec::with_capacity(data.len());
    for _ in 0..3 {
        out.clear();
        let t = Instant::now();
        for s in &sockets {
            tcptab::procnet::render_line(s, tcptab::procnet::ByteOrder::Little, &mut out);
        }
        let el = t.elapsed();
        println!(
            "{} sockets {:?} {:.1} ns/line",
            sockets.len(),
            el,
            el.as_nanos() as f64 / sockets.len() as f64
        );
    }
}
