//! One output format per module, each behind the [`Sink`] trait: the
//! commands feed rows in, the sink writes them.

pub mod cells;
pub mod csv;
pub mod json;
mod jsonl;
mod proc;
mod services;
pub mod table;

use std::io::{self, Write};

use tcptab::procnet::ByteOrder;
use tcptab::record::{Fields, Lifetime, Record};
use tcptab::{Entry, Family};

use crate::cli::Format;

/// Receives the rows of one listing, in order.
pub trait Sink {
    /// A family's table begins (the proc format writes its header here).
    fn table(&mut self, _family: Family) -> io::Result<()> {
        Ok(())
    }

    fn row(&mut self, row: &Entry<'_>) -> io::Result<()>;

    /// A recorded connection (`history`): the row, with when it was seen.
    /// The record formats write it as a history record; the others as a row.
    fn lived(&mut self, row: &Entry<'_>, _lifetime: &tcptab::record::Lifetime) -> io::Result<()> {
        self.row(row)
    }

    /// Write whatever is still held and flush.
    fn finish(self: Box<Self>) -> io::Result<()>;
}

/// A format that writes each socket as a [`Record`] of fixed fields (JSON,
/// JSON Lines, CSV): a [`Sink`] through it, rows and recorded connections
/// alike.
pub trait RecordSink {
    fn fields(&self) -> Fields;

    fn record(&mut self, record: Record<'_>) -> io::Result<()>;

    /// Write whatever is still held and flush.
    fn end(self: Box<Self>) -> io::Result<()>;
}

impl<T: RecordSink> Sink for T {
    fn row(&mut self, row: &Entry<'_>) -> io::Result<()> {
        let fields = self.fields();
        self.record(Record::new(row, fields))
    }

    fn lived(&mut self, row: &Entry<'_>, lifetime: &Lifetime) -> io::Result<()> {
        let fields = self.fields();
        self.record(Record::lived(row, fields, lifetime))
    }

    fn finish(self: Box<Self>) -> io::Result<()> {
        self.end()
    }
}

/// Which optional columns to show.
#[derive(Debug, Clone, Copy, Default)]
pub struct Columns {
    pub processes: bool,
    /// The workload column (table) and group (records).
    pub workload: bool,
    pub timers: bool,
    pub extended: bool,
    pub netns: bool,
    pub resolve: bool,
    pub info: bool,
    pub memory: bool,
    /// The record's namespace fields (any namespace option given).
    pub netns_fields: bool,
    /// The history record's fields (`history`).
    pub history: bool,
    /// No header line (`-H`): the table and the kernel's text.
    pub no_header: bool,
    /// Colour in the table (problem states, queued data, unknown owners).
    pub color: bool,
    /// The terminal's width, when stdout is one: the table's last column
    /// wraps within it (piped, lines are whole).
    pub width: Option<usize>,
}

/// The width of the terminal stdout is, if it is one.
pub fn terminal_width() -> Option<usize> {
    use std::io::IsTerminal;
    let stdout = std::io::stdout();
    if !stdout.is_terminal() {
        return None;
    }
    let size = rustix::termios::tcgetwinsize(&stdout).ok()?;
    (size.ws_col > 0).then_some(size.ws_col as usize)
}

impl Columns {
    /// The optional fields of the socket record these columns ask for.
    pub fn fields(self) -> tcptab::record::Fields {
        tcptab::record::Fields {
            netns: self.netns || self.netns_fields,
            owners: self.processes,
            workload: self.workload,
            history: self.history,
        }
    }
}

/// Options that shape the output.
#[derive(Debug, Clone, Copy)]
pub struct OutputOptions {
    pub format: Format,
    pub byte_order: ByteOrder,
    pub columns: Columns,
}

pub fn sink<'a>(
    out: Box<dyn Write + 'a>,
    options: OutputOptions,
) -> io::Result<Box<dyn Sink + 'a>> {
    Ok(match options.format {
        Format::Table => Box::new(table::TableSink::new(out, options.columns)?),
        Format::Json => Box::new(json::JsonSink::new(out, options.columns)),
        Format::Jsonl => Box::new(jsonl::JsonlSink::new(out, options.columns)),
        Format::Csv => Box::new(csv::CsvSink::new(out, options.columns)),
        Format::Proc => Box::new(proc::ProcSink::new(
            out,
            options.byte_order,
            options.columns.no_header,
        )),
    })
}

/// A write buffer that passes its bytes on in blocks of about 64 KiB, each
/// ending at a whole record ([`Chunked::end_record`]), and, unlike
/// `BufWriter`, writes nothing when dropped: a listing that fails on a bad
/// line prints none of what is still buffered (for a small table, nothing),
/// and what it did print ends at a whole record.
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

    /// A record ends here: pass the buffer on if it holds a block.
    pub fn end_record(&mut self) -> io::Result<()> {
        if self.buf.len() >= Self::BLOCK {
            self.out.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
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
        Ok(data.len())
    }

    /// Deliberately a no-op: only [`Chunked::finish`] empties the buffer.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
