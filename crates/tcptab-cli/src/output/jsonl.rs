//! `--format jsonl`: one JSON object per line, written as it comes.

use std::io::{self, Write};

use tcptab::record::{Fields, Record};

use super::json::JsonRecord;
use super::{Chunked, Columns, Sink};
use tcptab::Entry;

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

impl Sink for JsonlSink<'_> {
    fn row(&mut self, row: &Entry<'_>) -> io::Result<()> {
        self.record(Record::new(row, self.fields))
    }

    fn lived(&mut self, row: &Entry<'_>, lifetime: &tcptab::record::Lifetime) -> io::Result<()> {
        self.record(Record::lived(row, self.fields, lifetime))
    }

    fn finish(mut self: Box<Self>) -> io::Result<()> {
        self.out.finish()
    }
}

impl JsonlSink<'_> {
    fn record(&mut self, record: Record<'_>) -> io::Result<()> {
        self.line.clear();
        JsonRecord::write(&mut self.line, &record);
        self.line.push(b'\n');
        self.out.write_all(&self.line)?;
        self.out.end_record()
    }
}
