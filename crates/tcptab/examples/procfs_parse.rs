//! The peer for the parse benchmark: the `procfs` crate's parser
//! (procfs-core) reading both tables of a proc root, counting sockets.
//!
//!     cargo run --release -p tcptab --example procfs_parse -- ROOT

mod passes;

use std::fs::File;
use std::io::BufReader;

use procfs_core::net::TcpNetEntries;
use procfs_core::FromBufReadSI;

fn main() {
    let root = std::env::args().nth(1).unwrap_or_else(|| "/proc".into());
    let info = passes::system_info();
    let mut n = 0;
    for name in ["tcp", "tcp6"] {
        let file = File::open(format!("{root}/net/{name}")).expect("open table");
        let entries = TcpNetEntries::from_buf_read(BufReader::new(file), &info).expect("parse");
        n += entries.0.len();
    }
    println!("{n}");
}
