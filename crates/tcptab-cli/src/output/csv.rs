//! `--format csv`: a header row naming the socket record's fields (fixed by
//! the options before the first row), then one row per socket, quoted by
//! the csv crate. Groups become `tcp_info.rtt_us` ... columns; a value a
//! row does not have is an empty cell; the owners list becomes
//! `pid:command:fd` items joined by `;`.

use std::io::{self, Write};

use tcptab::record::{field_defs, FieldDef, Fields, Record, Value, Visit};

use super::{Chunked, Columns, RecordSink};

/// The block buffer under the csv writer: the sink flushes the csv writer
/// after each record, so a flush here is a record's end.
struct Records<W: Write>(Chunked<W>);

impl<W: Write> Write for Records<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.0.write(data)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.end_record()
    }
}

pub struct CsvSink<'a> {
    out: csv::Writer<Records<Box<dyn Write + 'a>>>,
    fields: Fields,
    header_written: bool,
    /// The cells of the row being written (reused).
    cells: Cells,
}

/// A record's cells as CSV text, in the order of [`header`].
#[derive(Default)]
pub struct Cells {
    text: Vec<u8>,
    ends: Vec<usize>,
}

impl Visit for Cells {
    fn field(&mut self, _: &'static FieldDef, value: Value<'_>) {
        let out = &mut self.text;
        match value {
            Value::Null => {}
            Value::Bool(b) => out.extend_from_slice(if b { b"true" } else { b"false" }),
            Value::U64(n) => out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes()),
            Value::I64(n) => out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes()),
            Value::Str(s) => out.extend_from_slice(s.as_bytes()),
            Value::Ip(ip) => {
                let _ = write!(out, "{ip}");
            }
            Value::Owners(owners) => {
                for (i, o) in owners.iter().enumerate() {
                    if i > 0 {
                        out.push(b';');
                    }
                    let _ = write!(out, "{}:{}:{}", o.pid, o.command, o.fd);
                }
            }
        }
        self.ends.push(out.len());
    }

    fn group(&mut self, _: &'static FieldDef, _: bool) {}

    fn end_group(&mut self) {}
}

impl Cells {
    /// The cells of `record`, replacing the last ones.
    pub fn of(&mut self, record: &Record<'_>) -> impl Iterator<Item = &[u8]> {
        self.text.clear();
        self.ends.clear();
        record.visit(self);
        let text = &self.text;
        let mut start = 0;
        self.ends.iter().map(move |&end| {
            let cell = &text[start..end];
            start = end;
            cell
        })
    }
}

/// The column names of a record with `fields` (groups as `group.field`).
pub fn header(fields: Fields) -> impl Iterator<Item = String> {
    field_defs(fields)
        .into_iter()
        .map(|(group, def)| match group {
            Some(g) => format!("{}.{}", g.name, def.name),
            None => def.name.to_string(),
        })
}

impl<'a> CsvSink<'a> {
    pub fn new(out: Box<dyn Write + 'a>, columns: Columns) -> CsvSink<'a> {
        CsvSink {
            out: csv::Writer::from_writer(Records(Chunked::new(out))),
            fields: columns.fields(),
            header_written: false,
            cells: Cells::default(),
        }
    }

    fn header(&mut self) -> io::Result<()> {
        if !self.header_written {
            let names = field_defs(self.fields)
                .into_iter()
                .map(|(group, def)| match group {
                    Some(g) => format!("{}.{}", g.name, def.name),
                    None => def.name.to_string(),
                });
            self.out.write_record(names).map_err(to_io)?;
            self.header_written = true;
        }
        Ok(())
    }
}

fn to_io(e: csv::Error) -> io::Error {
    match e.into_kind() {
        csv::ErrorKind::Io(e) => e,
        other => io::Error::other(format!("writing CSV: {other:?}")),
    }
}

impl RecordSink for CsvSink<'_> {
    fn fields(&self) -> Fields {
        self.fields
    }

    fn record(&mut self, record: Record<'_>) -> io::Result<()> {
        self.header()?;
        let cells = self.cells.of(&record);
        self.out.write_record(cells).map_err(to_io)?;
        // The whole record into the block buffer, then maybe out.
        self.out.flush()
    }

    fn end(mut self: Box<Self>) -> io::Result<()> {
        // No rows: the header still names the columns.
        self.header()?;
        self.out.flush()?;
        let mut out = self
            .out
            .into_inner()
            .map_err(|e| io::Error::other(e.to_string()))?;
        out.0.finish()
    }
}
