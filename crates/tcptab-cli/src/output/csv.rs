//! `--format csv`: a header row, then one row per socket, quoted by the csv
//! crate. The columns are the keys of the JSON record, in the same order;
//! the owners list becomes `pid:command:fd` items joined by `;`.

use std::io::{self, Write};

use serde_json::Value;
use tcptab::{Family, RowKind, Socket};

use super::record::RowRecord;
use super::{Chunked, Columns, Row, Sink};

pub struct CsvSink<'a> {
    out: csv::Writer<Chunked<Box<dyn Write + 'a>>>,
    columns: Columns,
    header_written: bool,
}

impl<'a> CsvSink<'a> {
    pub fn new(out: Box<dyn Write + 'a>, columns: Columns) -> CsvSink<'a> {
        CsvSink {
            out: csv::Writer::from_writer(Chunked::new(out)),
            columns,
            header_written: false,
        }
    }

    fn write(&mut self, record: &RowRecord<'_>, values: bool) -> io::Result<()> {
        let Value::Object(map) = serde_json::to_value(record)? else {
            return Err(io::Error::other("a record is not an object"));
        };
        let mut columns = Vec::with_capacity(map.len() + 64);
        flatten("", &Value::Object(map), &mut columns);
        if !self.header_written {
            self.out
                .write_record(columns.iter().map(|(k, _)| k))
                .map_err(to_io)?;
            self.header_written = true;
        }
        if values {
            self.out
                .write_record(columns.iter().map(|(_, v)| v))
                .map_err(to_io)?;
        }
        Ok(())
    }
}

/// Nested objects (tcp_info, memory) become `outer.inner` columns.
fn flatten(prefix: &str, value: &Value, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(fields) => {
            for (key, value) in fields {
                let name = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                if value.is_object() {
                    flatten(&name, value, out);
                } else {
                    out.push((name, cell(value)));
                }
            }
        }
        other => out.push((prefix.to_string(), cell(other))),
    }
}

fn cell(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(cell).collect::<Vec<_>>().join(";"),
        Value::Object(fields) => fields.values().map(cell).collect::<Vec<_>>().join(":"),
        other => other.to_string(),
    }
}

fn to_io(e: csv::Error) -> io::Error {
    match e.into_kind() {
        csv::ErrorKind::Io(e) => e,
        other => io::Error::other(format!("{other:?}")),
    }
}

impl Sink for CsvSink<'_> {
    fn row(&mut self, row: &Row<'_>) -> io::Result<()> {
        let record = RowRecord::new(row, self.columns);
        self.write(&record, true)
    }

    fn finish(mut self: Box<Self>) -> io::Result<()> {
        if !self.header_written {
            // No rows: the header still names the columns.
            let placeholder = Socket::empty(Family::Ipv4, RowKind::Full);
            let owners = self
                .columns
                .processes
                .then_some(tcptab::Ownership::NotFound);
            let row = Row {
                socket: &placeholder,
                diag: None,
                source: "proc",
                netns: None,
                owners,
            };
            let record = RowRecord::new(&row, self.columns);
            self.write(&record, false)?;
        }
        self.out.flush()?;
        let mut out = self
            .out
            .into_inner()
            .map_err(|e| io::Error::other(e.to_string()))?;
        out.finish()
    }
}
