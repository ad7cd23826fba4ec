//! One pass of each parser over tables in memory, counting the sockets:
//! what the criterion benchmark (`benches/parse.rs`) and `parse_loop` time.
//! Every pass hands each socket to `black_box`, so nothing is skipped.

#![allow(dead_code)] // each user times the passes it names

use std::hint::black_box;

use procfs_core::net::TcpNetEntries;
use procfs_core::{ExplicitSystemInfo, FromBufReadSI};
use tcptab::procnet::{ReadOptions, SliceReader, TableReader};
use tcptab::{Family, RowKind, Socket};

/// tcptab's iterator: a `Socket` per item, through `Read` (copied into the
/// reader's buffer, as a file is read).
#[inline(never)]
pub fn tcptab_iter(tables: &[&[u8]]) -> Result<usize, tcptab::Error> {
    let mut rows = 0;
    for table in tables {
        for s in TableReader::new(*table, "table", ReadOptions::default()) {
            black_box(s?);
            rows += 1;
        }
    }
    Ok(rows)
}

/// tcptab with one `Socket` reused: through `Read` (`TableReader`, copied
/// into its buffer) or, `in_place`, where the bytes lie (`SliceReader`).
#[inline(never)]
pub fn tcptab_reused(tables: &[&[u8]], in_place: bool) -> Result<usize, tcptab::Error> {
    if in_place {
        reused(
            tables,
            |t, o| SliceReader::new(t, "table", o),
            |r, s| r.read_socket(s),
        )
    } else {
        reused(
            tables,
            |t, o| TableReader::new(t, "table", o),
            |r, s| r.read_socket(s),
        )
    }
}

/// The sockets of every table, each read into one `Socket` by the reader
/// `open` makes of it (with the default options), until `read` says there
/// are no more.
#[inline(always)]
fn reused<'t, R>(
    tables: &[&'t [u8]],
    open: impl Fn(&'t [u8], ReadOptions) -> R,
    read: impl Fn(&mut R, &mut Socket) -> Result<bool, tcptab::Error>,
) -> Result<usize, tcptab::Error> {
    let mut socket = Socket::empty(Family::Ipv4, RowKind::Full);
    let mut rows = 0;
    for table in tables {
        let mut reader = open(table, ReadOptions::default());
        while read(&mut reader, &mut socket)? {
            black_box(&socket);
            rows += 1;
        }
    }
    Ok(rows)
}

/// The peer: procfs-core through `BufRead` on the slice itself (its
/// no-copy path).
#[inline(never)]
pub fn procfs_core(tables: &[&[u8]]) -> usize {
    let mut rows = 0;
    for table in tables {
        let entries =
            TcpNetEntries::from_buf_read(*table, &system_info()).expect("procfs-core parses");
        rows += black_box(entries).0.len();
    }
    rows
}

/// What procfs-core is told of the system: this machine's byte order (the
/// rest does not change what a TCP table parses to).
pub fn system_info() -> ExplicitSystemInfo {
    ExplicitSystemInfo {
        boot_time_secs: 0,
        ticks_per_second: 100,
        page_size: 4096,
        is_little_endian: cfg!(target_endian = "little"),
    }
}
