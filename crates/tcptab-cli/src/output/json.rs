//! `--format json`: one array, one object per socket.

use std::io::{self, Write};

use super::record::RowRecord;
use super::{Columns, Row, Sink};

pub struct JsonSink<'a> {
    out: Box<dyn Write + 'a>,
    columns: Columns,
    records: Vec<serde_json::Value>,
}

impl<'a> JsonSink<'a> {
    pub fn new(out: Box<dyn Write + 'a>, columns: Columns) -> JsonSink<'a> {
        JsonSink {
            out,
            columns,
            records: Vec::new(),
        }
    }
}

impl Sink for JsonSink<'_> {
    fn row(&mut self, row: &Row<'_>) -> io::Result<()> {
        self.records
            .push(serde_json::to_value(RowRecord::new(row, self.columns))?);
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> io::Result<()> {
        let mut out = io::BufWriter::with_capacity(64 * 1024, &mut self.out);
        serde_json::to_writer_pretty(&mut out, &self.records)?;
        out.write_all(b"\n")?;
        out.flush()
    }
}
