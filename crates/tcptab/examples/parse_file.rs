//! Parse the tables of a proc root and print the socket count: the parse
//! alone, for profiling and the parse benchmark script.
//!
//!     cargo run --release -p tcptab --example parse_file -- ROOT

use tcptab::procnet::{ProcRoot, ReadOptions};
use tcptab::Family;

fn main() -> Result<(), tcptab::Error> {
    let root = ProcRoot::new(std::env::args().nth(1).unwrap_or_else(|| "/proc".into()));
    let mut n = 0usize;
    for family in [Family::Ipv4, Family::Ipv6] {
        if let Some(reader) = root.open(family, ReadOptions::default())? {
            for socket in reader {
                std::hint::black_box(socket?);
                n += 1;
            }
        }
    }
    println!("{n}");
    Ok(())
}
