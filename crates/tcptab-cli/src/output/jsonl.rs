//! `--format jsonl`: one JSON object per line, written as it comes.

use std::io::{self, Write};

use tcptab::record::{Fields, Record};

use super::json::JsonRecord;
use super::{Chunked, Columns, RecordSink};

pub struct JsonlSink<'a> {
    out: Chunked<Box<dyn Write + 'a>>,
    fields: Fields,
    line: Vec<u8>,
}

impl<'a> JsonlSink<'a> {
    pub fn new(out: Box<dyn Write + 'a>, columns: Columns) -> JsonlSink<'a> {
        JsonlSink {
            out: Chunked::new(out),
            fields: columns.fields(),
            line: Vec::with_capacity(4096),
        }
    }
}

impl RecordSink for JsonlSink<'_> {
    fn fields(&self) -> Fields {
        self.fields
    }

    fn end(mut self: Box<Self>) -> io::Result<()> {
        self.out.finish()
    }

    fn record(&mut self, record: Record<'_>) -> io::Result<()> {
        self.line.clear();
        JsonRecord::write(&mut self.line, &record);
        self.line.push(b'\n');
        self.out.write_all(&self.line)?;
        self.out.end_record()
    }
}
