//! `--format table`: aligned columns for people, like `ss -tan`.
//!
//! Cells are written into one growing string (no allocation per cell), a
//! block of rows at a time: each block's column widths are the widest cell
//! seen so far (a column never narrows), so the listing streams in memory
//! bounded by one block however large the table, and columns line up
//! within a block and from one block to the next unless a later cell is
//! wider than any before it.

use std::fmt::Write as _;
use std::io::{self, Write};

use super::cells::{write_info, Bound, DualStack, ExtendedCell, MemoryCell, OwnersCell, TimerCell};
use super::services::Services;
use super::{Chunked, Columns, Sink};
use tcptab::{Entry, Ownership};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// Rows held before they are written: enough for the widths of a typical
/// host's table to settle in the first block.
const BLOCK_ROWS: usize = 4096;

/// A text table built cell by cell and written block by block.
#[derive(Debug)]
pub struct TextTable {
    headers: Vec<(&'static str, Align)>,
    text: String,
    /// End offset in `text` of each cell, row after row.
    ends: Vec<u32>,
    /// Each cell's colour (an SGR code), when colour is on.
    styles: Vec<Option<&'static str>>,
    /// The widths in use (after the first block is written).
    widths: Vec<usize>,
    header_written: bool,
    line: String,
    /// The terminal's width: when a block's lines would pass it, the
    /// columns after the first `fixed` go on indented lines of their own
    /// under each row, wrapped within it (as ss puts -i on a second line).
    fit: Option<usize>,
    fixed: usize,
    flowing: bool,
}

/// A table of names and their counts under `headers`; None when `rows` is
/// empty.
pub fn counts<N: std::fmt::Display>(
    headers: [(&'static str, Align); 2],
    rows: impl Iterator<Item = (N, u64)>,
) -> Option<TextTable> {
    let mut t = TextTable::new(headers.to_vec());
    let mut any = false;
    for (name, n) in rows {
        t.cell(format_args!("{name}"));
        t.cell(format_args!("{n}"));
        any = true;
    }
    any.then_some(t)
}

impl TextTable {
    pub fn new(headers: Vec<(&'static str, Align)>) -> TextTable {
        let widths = headers.iter().map(|(h, _)| h.len()).collect();
        TextTable {
            headers,
            text: String::new(),
            ends: Vec::new(),
            styles: Vec::new(),
            widths,
            header_written: false,
            line: String::new(),
            fit: None,
            fixed: usize::MAX,
            flowing: false,
        }
    }

    /// Between two columns: two spaces, one when fitting a terminal.
    fn gap(&self) -> &'static str {
        if self.flowing {
            " "
        } else {
            "  "
        }
    }

    /// Write no header line.
    pub fn no_header(&mut self) {
        self.header_written = true;
    }

    /// Fit lines within `width` characters (a terminal's) by moving the
    /// columns after the first `fixed` under each row when they would not.
    pub fn fit(&mut self, width: Option<usize>, fixed: usize) {
        self.fit = width;
        self.fixed = fixed;
    }

    /// Append a cell; call it once per column for each row.
    pub fn cell(&mut self, value: std::fmt::Arguments<'_>) {
        self.styled(None, value);
    }

    /// Append a cell in a colour (an SGR code such as `"1;31"`), or none.
    pub fn styled(&mut self, style: Option<&'static str>, value: std::fmt::Arguments<'_>) {
        let _ = self.text.write_fmt(value);
        self.end_cell(style);
    }

    /// Append a cell that `write` writes straight into the table's text.
    pub fn write_cell(&mut self, write: impl FnOnce(&mut String)) {
        write(&mut self.text);
        self.end_cell(None);
    }

    /// Append a cell of text, in a colour or none (no formatter: the
    /// columns every row has).
    pub fn styled_str(&mut self, style: Option<&'static str>, value: &str) {
        self.text.push_str(value);
        self.end_cell(style);
    }

    /// The cell written since the last one ends here.
    fn end_cell(&mut self, style: Option<&'static str>) {
        self.ends.push(self.text.len() as u32);
        self.styles.push(style);
    }

    /// Append a number.
    pub fn number(&mut self, style: Option<&'static str>, value: u64) {
        self.styled_str(style, itoa::Buffer::new().format(value));
    }

    /// Whether a block of rows is held (time to [`TextTable::write_block`]).
    pub fn block_full(&self) -> bool {
        self.ends.len() >= BLOCK_ROWS * self.headers.len()
    }

    /// Write the rows held (the header first, once), widening columns to
    /// the widest cell so far, and forget them.
    pub fn write_block(&mut self, out: &mut impl Write) -> io::Result<()> {
        let columns = self.headers.len();
        let mut start = 0usize;
        for (i, &end) in self.ends.iter().enumerate() {
            let len = self.text[start..end as usize].chars().count();
            self.widths[i % columns] = self.widths[i % columns].max(len);
            start = end as usize;
        }
        let total = self.widths.iter().sum::<usize>() + 2 * (columns - 1);
        if let Some(fit) = self.fit {
            self.flowing |= columns > self.fixed && total > fit;
        }
        let shown = if self.flowing { self.fixed } else { columns };
        let gap = self.gap();
        if !self.header_written {
            self.line.clear();
            let headers = self.headers[..shown].iter().map(|(h, a)| (*h, *a, None));
            push_row(&mut self.line, headers, &self.widths, gap);
            if self.flowing {
                // What the indented lines hold, in order.
                let names: Vec<&str> = self.headers[shown..].iter().map(|(h, _)| *h).collect();
                let _ = writeln!(self.line, "{INDENT}{}", names.join("  "));
            }
            out.write_all(self.line.as_bytes())?;
            self.header_written = true;
        }
        let mut start = 0usize;
        for (row, styles) in self.ends.chunks(columns).zip(self.styles.chunks(columns)) {
            self.line.clear();
            let mut cells =
                row.iter()
                    .zip(&self.headers)
                    .zip(styles)
                    .map(|((&end, (_, align)), style)| {
                        let cell = &self.text[start..end as usize];
                        start = end as usize;
                        (cell, *align, *style)
                    });
            push_row(
                &mut self.line,
                cells.by_ref().take(shown),
                &self.widths,
                gap,
            );
            if let (true, Some(fit)) = (self.flowing, self.fit) {
                flow(&mut self.line, cells, fit);
            }
            out.write_all(self.line.as_bytes())?;
        }
        self.text.clear();
        self.ends.clear();
        self.styles.clear();
        Ok(())
    }
}

/// The indent of the lines under a row.
const INDENT: &str = "    ";

/// `cells` on indented lines under a row, two spaces apart, wrapped within
/// `fit` characters (a cell longer than a line is broken after a space or
/// a comma).
fn flow<'c>(
    line: &mut String,
    cells: impl Iterator<Item = (&'c str, Align, Option<&'static str>)>,
    fit: usize,
) {
    let room = fit.saturating_sub(INDENT.len()).max(20);
    let mut used: Option<usize> = None;
    for (cell, _, style) in cells {
        for piece in wrapped(cell, room) {
            let len = piece.chars().count();
            match used {
                Some(n) if n + 2 + len <= room => {
                    line.push_str("  ");
                    used = Some(n + 2 + len);
                }
                Some(_) => {
                    line.push('\n');
                    line.push_str(INDENT);
                    used = Some(len);
                }
                None => {
                    line.push_str(INDENT);
                    used = Some(len);
                }
            }
            match style {
                Some(code) => {
                    let _ = write!(line, "\x1b[{code}m{piece}\x1b[0m");
                }
                None => line.push_str(piece),
            }
        }
    }
    if used.is_some() {
        line.push('\n');
    }
}

fn push_row<'c>(
    line: &mut String,
    cells: impl Iterator<Item = (&'c str, Align, Option<&'static str>)>,
    widths: &[usize],
    gap: &str,
) {
    // The colour wraps the text alone: padding is counted on what shows.
    let paint = |line: &mut String, cell: &str, style: Option<&str>| match style {
        Some(code) => {
            let _ = write!(line, "\x1b[{code}m{cell}\x1b[0m");
        }
        None => line.push_str(cell),
    };
    let mut cells = cells.zip(widths).peekable();
    while let Some(((cell, align, style), &width)) = cells.next() {
        let pad = width.saturating_sub(cell.chars().count());
        let last = cells.peek().is_none();
        match align {
            Align::Left if last => paint(line, cell, style),
            Align::Left => {
                paint(line, cell, style);
                line.extend(std::iter::repeat_n(' ', pad));
            }
            Align::Right => {
                line.extend(std::iter::repeat_n(' ', pad));
                paint(line, cell, style);
            }
        }
        if !last {
            line.push_str(gap);
        }
    }
    line.push('\n');
}

/// `text` in pieces of at most `width` characters, broken after a space or
/// a comma where there is one (the spaces at a break are dropped).
fn wrapped(text: &str, width: usize) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = match rest.char_indices().nth(width) {
            None => rest.len(),
            Some((limit, _)) => rest[..limit]
                .rfind([' ', ','])
                .map(|at| at + 1)
                .filter(|&at| at > limit / 2)
                .unwrap_or(limit),
        };
        let (piece, tail) = rest.split_at(end);
        rest = tail.trim_start_matches(' ');
        Some(piece.trim_end_matches(' '))
    })
}

const RED: &str = "31";
const YELLOW: &str = "33";

/// Problem states stand out; the common ones keep the terminal's colour.
fn state_color(state: tcptab::State) -> Option<&'static str> {
    use tcptab::State;
    match state {
        State::CloseWait | State::SynSent | State::LastAck | State::Closing => Some("1;31"),
        State::FinWait1 | State::FinWait2 | State::SynRecv => Some(YELLOW),
        State::Listen => Some("32"),
        _ => None,
    }
}

pub struct TableSink<'a> {
    out: Chunked<Box<dyn Write + 'a>>,
    table: TextTable,
    columns: Columns,
    services: Option<Services>,
    /// Interface names by namespace inode and index, looked up once.
    interfaces: std::collections::HashMap<(u64, u32), Option<String>>,
}

impl<'a> TableSink<'a> {
    pub fn new(out: Box<dyn Write + 'a>, columns: Columns) -> io::Result<TableSink<'a>> {
        let mut headers = vec![
            ("State", Align::Left),
            ("Recv-Q", Align::Right),
            ("Send-Q", Align::Right),
            ("Local Address:Port", Align::Left),
            ("Peer Address:Port", Align::Left),
        ];
        // The optional columns, in their order; all left-aligned.
        let optional = [
            (columns.netns, "Netns"),
            (columns.processes, "Process"),
            (columns.workload, "Workload"),
            (columns.timers, "Timer"),
            (columns.extended, "Details"),
            (columns.info, "TCP info"),
            (columns.memory, "Memory"),
        ];
        headers.extend(
            optional
                .iter()
                .filter(|(on, _)| *on)
                .map(|(_, name)| (*name, Align::Left)),
        );
        let mut table = TextTable::new(headers);
        table.header_written = columns.no_header;
        // State, the queues and the two ends stay on the row's line.
        table.fit(columns.width, 5);
        Ok(TableSink {
            out: Chunked::new(out),
            table,
            columns,
            services: columns.resolve.then(Services::load),
            interfaces: Default::default(),
        })
    }
}

impl Sink for TableSink<'_> {
    fn row(&mut self, row: &Entry<'_>) -> io::Result<()> {
        let s = row.socket;
        let services = self.services.as_ref();
        let color = self.columns.color;
        let t = &mut self.table;
        let state_style = color.then(|| state_color(s.state)).flatten();
        match s.state.kernel_name() {
            Some(name) => t.styled_str(state_style, name),
            None => t.styled(state_style, format_args!("{}", s.state)),
        }
        let queued = (color && s.rx_queue > 0).then_some(YELLOW);
        t.number(queued, u64::from(s.rx_queue));
        // Like ss: a listener's Send-Q is its backlog limit, when known.
        let limit = row.diag.and_then(|d| d.backlog_limit);
        t.number(None, u64::from(limit.unwrap_or(s.tx_queue)));
        // An IPv6 wildcard that takes IPv4 too is `*`, as ss writes it
        // (known from netlink only; /proc does not say).
        let dual = row.diag.and_then(|d| d.v6only) == Some(false);
        let interface = match row.diag.map(|d| d.interface) {
            Some(index) if index != 0 => {
                let key = (row.namespace.map_or(0, |n| n.inode), index);
                self.interfaces
                    .entry(key)
                    .or_insert_with(|| tcptab::netns::interface_name(row.namespace, index))
                    .as_deref()
            }
            _ => None,
        };
        let t = &mut self.table;
        t.cell(format_args!(
            "{}",
            Bound(DualStack(s.local, services, dual), interface)
        ));
        t.cell(format_args!("{}", DualStack(s.remote, services, dual)));
        if self.columns.netns {
            match row.namespace {
                Some(ns) => t.cell(format_args!("{}", ns.label())),
                None => t.cell(format_args!("")),
            }
        }
        if self.columns.processes {
            match row.owners {
                Some(o @ (Ownership::Unknown | Ownership::NotFound)) => {
                    t.styled(color.then_some(RED), format_args!("{}", OwnersCell(o)))
                }
                Some(o) => t.cell(format_args!("{}", OwnersCell(o))),
                None => t.cell(format_args!("")),
            }
        }
        if self.columns.workload {
            // The pod/container, else the unit, else the cgroup; `-` when
            // the kernel keeps none (TIME_WAIT, request sockets).
            match row.workload {
                Some(w) => t.cell(format_args!("{w}")),
                None => t.cell(format_args!("-")),
            }
        }
        if self.columns.timers {
            t.cell(format_args!("{}", TimerCell(s)));
        }
        if self.columns.extended {
            t.cell(format_args!("{}", ExtendedCell(s)));
        }
        if self.columns.info {
            match row.diag {
                Some(d) => t.write_cell(|text| write_info(text, d)),
                None => t.cell(format_args!("-")),
            }
        }
        if self.columns.memory {
            match row.diag.and_then(|d| d.memory.as_ref()) {
                Some(m) => t.cell(format_args!("{}", MemoryCell(m))),
                None => t.cell(format_args!("-")),
            }
        }
        if t.block_full() {
            t.write_block(&mut self.out)?;
            self.out.end_record()?;
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> io::Result<()> {
        self.table.write_block(&mut self.out)?;
        self.out.finish()
    }
}
