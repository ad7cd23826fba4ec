//! `gen-table DIR ROWS`: write a proc root DIR/net/tcp{,6} holding ROWS
//! generated sockets (half each family, every row shape), for benchmarks.

use std::path::PathBuf;

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(rows)) = (args.next(), args.next()) else {
        eprintln!("usage: gen-table DIR ROWS");
        std::process::exit(2);
    };
    let rows: usize = rows.parse().unwrap_or_else(|_| {
        eprintln!("gen-table: ROWS must be a number, not {rows:?}");
        std::process::exit(2)
    });
    let net = PathBuf::from(dir).join("net");
    std::fs::create_dir_all(&net).expect("creating DIR/net");
    let (v4, v6) = testkit::generate::tables(rows);
    std::fs::write(net.join("tcp"), v4).expect("writing net/tcp");
    std::fs::write(net.join("tcp6"), v6).expect("writing net/tcp6");
}
