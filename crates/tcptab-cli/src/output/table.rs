//! `--format table`: aligned columns for people, like `ss -tan`.
//!
//! Cells are written into one growing string (no allocation per cell) and
//! the column widths computed from them; the table is printed at the end.

use std::fmt::Write as _;
use std::io::{self, BufWriter, Write};
use std::net::SocketAddr;

use tcptab::Socket;

use super::Sink;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// A text table built cell by cell.
#[derive(Debug)]
pub struct TextTable {
    headers: Vec<(&'static str, Align)>,
    text: String,
    /// End offset in `text` of each cell, row after row.
    ends: Vec<u32>,
}

impl TextTable {
    pub fn new(headers: Vec<(&'static str, Align)>) -> TextTable {
        TextTable {
            headers,
            text: String::new(),
            ends: Vec::new(),
        }
    }

    /// Append a cell; call it once per column for each row.
    pub fn cell(&mut self, value: std::fmt::Arguments<'_>) {
        let _ = self.text.write_fmt(value);
        self.ends.push(self.text.len() as u32);
    }

    pub fn write_to(&self, out: impl Write) -> io::Result<()> {
        let columns = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|(h, _)| h.len()).collect();
        let mut start = 0usize;
        for (i, &end) in self.ends.iter().enumerate() {
            let len = self.text[start..end as usize].chars().count();
            widths[i % columns] = widths[i % columns].max(len);
            start = end as usize;
        }
        let mut out = BufWriter::with_capacity(64 * 1024, out);
        let mut line = String::new();
        let headers = self.headers.iter().map(|(h, a)| (*h, *a));
        push_row(&mut line, headers, &widths);
        out.write_all(line.as_bytes())?;
        let mut start = 0usize;
        for row in self.ends.chunks(columns) {
            line.clear();
            let cells = row.iter().zip(&self.headers).map(|(&end, (_, align))| {
                let cell = &self.text[start..end as usize];
                start = end as usize;
                (cell, *align)
            });
            push_row(&mut line, cells, &widths);
            out.write_all(line.as_bytes())?;
        }
        out.flush()
    }
}

fn push_row<'c>(
    line: &mut String,
    cells: impl Iterator<Item = (&'c str, Align)>,
    widths: &[usize],
) {
    let mut cells = cells.zip(widths).peekable();
    while let Some(((cell, align), &width)) = cells.next() {
        let pad = width.saturating_sub(cell.chars().count());
        let last = cells.peek().is_none();
        match align {
            Align::Left if last => line.push_str(cell),
            Align::Left => {
                line.push_str(cell);
                line.extend(std::iter::repeat_n(' ', pad));
            }
            Align::Right => {
                line.extend(std::iter::repeat_n(' ', pad));
                line.push_str(cell);
            }
        }
        if !last {
            line.push_str("  ");
        }
    }
    line.push('\n');
}

/// `address:port` as `ss` writes it: IPv6 in brackets, wildcards as `*`.
pub struct Endpoint(pub SocketAddr);

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ip = self.0.ip();
        if ip.is_unspecified() {
            f.write_str("*")?;
        } else if ip.is_ipv6() {
            write!(f, "[{ip}]")?;
        } else {
            write!(f, "{ip}")?;
        }
        match self.0.port() {
            0 => f.write_str(":*"),
            port => write!(f, ":{port}"),
        }
    }
}

pub struct TableSink<'a> {
    out: Box<dyn Write + 'a>,
    table: TextTable,
}

impl<'a> TableSink<'a> {
    pub fn new(out: Box<dyn Write + 'a>) -> TableSink<'a> {
        let table = TextTable::new(vec![
            ("State", Align::Left),
            ("Recv-Q", Align::Right),
            ("Send-Q", Align::Right),
            ("Local Address:Port", Align::Left),
            ("Peer Address:Port", Align::Left),
        ]);
        TableSink { out, table }
    }
}

impl Sink for TableSink<'_> {
    fn socket(&mut self, s: &Socket) -> io::Result<()> {
        let t = &mut self.table;
        t.cell(format_args!("{}", s.state));
        t.cell(format_args!("{}", s.rx_queue));
        t.cell(format_args!("{}", s.tx_queue));
        t.cell(format_args!("{}", Endpoint(s.local)));
        t.cell(format_args!("{}", Endpoint(s.remote)));
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> io::Result<()> {
        self.table.write_to(&mut self.out)
    }
}
