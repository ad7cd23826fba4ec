//! One output format per module, each behind the one-method-per-event
//! [`Sink`] trait: the list command feeds sockets in, the sink writes them.

mod csv;
mod json;
mod jsonl;
mod proc;
mod table;

use std::io::{self, Write};

use tcptab::{ByteOrder, Family, Socket};

use crate::cli::Format;

/// Receives the sockets of one listing, in order.
pub trait Sink {
    /// A family's table begins (the proc format writes its header here).
    fn table(&mut self, _family: Family) -> io::Result<()> {
        Ok(())
    }

    fn socket(&mut self, socket: &Socket) -> io::Result<()>;

    /// Write whatever is still held and flush.
    fn finish(self: Box<Self>) -> io::Result<()>;
}

/// Options that shape the output.
#[derive(Debug, Clone, Copy)]
pub struct OutputOptions {
    pub format: Format,
    pub byte_order: ByteOrder,
}

/// A write buffer that passes its bytes on in 64 KiB blocks and, unlike
/// `BufWriter`, writes nothing when dropped: a listing that fails on a bad
/// line prints none of what is still buffered (for a small table, nothing).
pub struct Chunked<W: Write> {
    out: W,
    buf: Vec<u8>,
}

impl<W: Write> Chunked<W> {
    const BLOCK: usize = 64 * 1024;

    pub fn new(out: W) -> Chunked<W> {
        Chunked {
            out,
            buf: Vec::with_capacity(Self::BLOCK),
        }
    }

    /// Write what is buffered, then flush.
    pub fn finish(&mut self) -> io::Result<()> {
        self.out.write_all(&self.buf)?;
        self.buf.clear();
        self.out.flush()
    }
}

impl<W: Write> Write for Chunked<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= Self::BLOCK {
            self.out.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(data.len())
    }

    /// Deliberately a no-op: only [`Chunked::finish`] empties the buffer.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

pub fn sink<'a>(out: Box<dyn Write + 'a>, options: OutputOptions) -> Box<dyn Sink + 'a> {
    match options.format {
        Format::Table => Box::new(table::TableSink::new(out)),
        Format::Json => Box::new(json::JsonSink::new(out)),
        Format::Jsonl => Box::new(jsonl::JsonlSink::new(out)),
        Format::Csv => Box::new(csv::CsvSink::new(out)),
        Format::Proc => Box::new(proc::ProcSink::new(out, options.byte_order)),
    }
}
