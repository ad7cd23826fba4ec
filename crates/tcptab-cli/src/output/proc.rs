//! `--format proc`: the kernel's own text, byte for byte.

use std::io::{self, Write};

use tcptab::procnet::ByteOrder;
use tcptab::procnet::TableWriter;
use tcptab::Family;

use super::Sink;
use tcptab::Entry;

pub struct ProcSink<'a> {
    writer: TableWriter<Box<dyn Write + 'a>>,
    no_header: bool,
}

impl<'a> ProcSink<'a> {
    pub fn new(out: Box<dyn Write + 'a>, order: ByteOrder, no_header: bool) -> ProcSink<'a> {
        ProcSink {
            writer: TableWriter::new(out, order),
            no_header,
        }
    }
}

impl Sink for ProcSink<'_> {
    fn table(&mut self, family: Family) -> io::Result<()> {
        if self.no_header {
            return Ok(());
        }
        self.writer.header(family)
    }

    fn row(&mut self, row: &Entry<'_>) -> io::Result<()> {
        self.writer.socket(row.socket)
    }

    fn finish(self: Box<Self>) -> io::Result<()> {
        self.writer.finish().map(drop)
    }
}
