//! `--format jsonl`: one JSON object per line, written as it comes.

use std::io::{self, Write};

use super::record::RowRecord;
use super::{Chunked, Columns, Row, Sink};

pub struct JsonlSink<'a> {
    out: Chunked<Box<dyn Write + 'a>>,
    columns: Columns,
}

impl<'a> JsonlSink<'a> {
    pub fn new(out: Box<dyn Write + 'a>, columns: Columns) -> JsonlSink<'a> {
        JsonlSink {
            out: Chunked::new(out),
            columns,
        }
    }
}

impl Sink for JsonlSink<'_> {
    fn row(&mut self, row: &Row<'_>) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, &RowRecord::new(row, self.columns))?;
        self.out.write_all(b"\n")
    }

    fn finish(mut self: Box<Self>) -> io::Result<()> {
        self.out.finish()
    }
}
