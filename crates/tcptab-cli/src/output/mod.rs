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

pub fn sink<'a>(out: Box<dyn Write + 'a>, options: OutputOptions) -> Box<dyn Sink + 'a> {
    match options.format {
        Format::Table => Box::new(table::TableSink::new(out)),
        Format::Json => Box::new(json::JsonSink::new(out)),
        Format::Jsonl => Box::new(jsonl::JsonlSink::new(out)),
        Format::Csv => Box::new(csv::CsvSink::new(out)),
        Format::Proc => Box::new(proc::ProcSink::new(out, options.byte_order)),
    }
}
