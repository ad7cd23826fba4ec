//! `--format csv`: a header row, then one row per socket (the columns of
//! `SocketRecord`), quoted by the csv crate.

use std::io::{self, Write};

use tcptab::{Family, RowKind, Socket, SocketRecord};

use super::{Chunked, Sink};

pub struct CsvSink<'a> {
    out: csv::Writer<Chunked<Box<dyn Write + 'a>>>,
    rows: u64,
}

impl<'a> CsvSink<'a> {
    pub fn new(out: Box<dyn Write + 'a>) -> CsvSink<'a> {
        CsvSink {
            out: csv::Writer::from_writer(Chunked::new(out)),
            rows: 0,
        }
    }
}

fn to_io(e: csv::Error) -> io::Error {
    match e.into_kind() {
        csv::ErrorKind::Io(e) => e,
        other => io::Error::other(format!("{other:?}")),
    }
}

impl Sink for CsvSink<'_> {
    fn socket(&mut self, socket: &Socket) -> io::Result<()> {
        self.rows += 1;
        self.out
            .serialize(SocketRecord::from(socket))
            .map_err(to_io)
    }

    fn finish(self: Box<Self>) -> io::Result<()> {
        if self.rows == 0 {
            // The csv crate writes the header with the first record; with no
            // record, take the header from a serialised placeholder.
            let mut probe = csv::Writer::from_writer(Vec::new());
            let placeholder = Socket::empty(Family::Ipv4, RowKind::Full);
            probe
                .serialize(SocketRecord::from(&placeholder))
                .map_err(to_io)?;
            let bytes = probe
                .into_inner()
                .map_err(|e| io::Error::other(e.to_string()))?;
            let header_end = bytes
                .iter()
                .position(|&b| b == b'\n')
                .map_or(bytes.len(), |i| i + 1);
            let mut out = self
                .out
                .into_inner()
                .map_err(|e| io::Error::other(e.to_string()))?;
            out.write_all(&bytes[..header_end])?;
            return out.finish();
        }
        let mut out = self
            .out
            .into_inner()
            .map_err(|e| io::Error::other(e.to_string()))?;
        out.finish()
    }
}
