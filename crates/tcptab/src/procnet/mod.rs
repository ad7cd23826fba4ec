//! The text tables `/proc/net/tcp` and `/proc/net/tcp6`: read from any
//! reader or from a directory laid out like `/proc`, and written back.
//!
//! - [`parse`]: one line to a [`Socket`] (the hot loop).
//! - [`render`]: a [`Socket`] to the kernel's exact bytes.
//! - [`TableReader`]: a streaming reader over any `Read`, adding the path and
//!   line number to errors, strict or lenient.
//! - [`ProcRoot`]: `<root>/net/tcp{,6}`, for `/proc`, `/proc/PID` or a
//!   captured copy.

mod fast;
mod general;
mod layout;
pub mod parse;
/// A plain reference parser the tests and fuzz targets compare with.
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod reference;
pub mod render;
mod root;
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
mod sse2;

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use memchr::memchr;

use crate::error::{Error, LineError, ParseErrorKind, Result};
use crate::model::{Family, Socket};
pub use parse::{header_extra, is_header, parse_line, parse_line_into, ByteOrder};
pub use render::{header, render_into, render_line, render_table, TableWriter, MAX_RENDERED};
pub use root::{ProcRoot, Table};

/// How to read a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadOptions {
    /// Byte order of the host that produced the table (default: this host).
    pub byte_order: ByteOrder,
    /// Skip malformed lines (of any length) and count them, instead of
    /// failing on the first.
    pub lenient: bool,
    /// Lenient: fail after this many malformed lines in a row (the input
    /// is not a TCP table); 0 for no limit. Default 1000.
    pub max_bad_lines: u64,
}

impl Default for ReadOptions {
    fn default() -> ReadOptions {
        ReadOptions {
            byte_order: ByteOrder::default(),
            lenient: false,
            max_bad_lines: 1000,
        }
    }
}

/// A streaming reader of one table: yields each socket line as a [`Socket`].
///
/// Header lines (first token `sl`) are skipped wherever they appear, so the
/// concatenation of `tcp` and `tcp6` reads as one stream. In strict mode the
/// first bad line ends the iteration with an [`Error::Parse`]; in lenient
/// mode bad lines are counted and the first one is kept ([`Lines`], through
/// [`TableReader::lines`]).
#[derive(Debug)]
pub struct TableReader<R> {
    inner: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    lines: Lines,
}

/// What both readers keep about the lines they have read: the path and line
/// number for errors, the lenient counts, the header.
#[derive(Debug)]
pub struct Lines {
    path: PathBuf,
    options: ReadOptions,
    /// The number of the last line read (from 1).
    line: u64,
    done: bool,
    skipped: u64,
    first_error: Option<Error>,
    /// Malformed lines in a row, ending at line `last_bad`.
    bad_in_a_row: u64,
    last_bad: u64,
    /// Header lines seen, and whether each was the kernel's own.
    headers: u64,
    odd_header: bool,
}

impl Lines {
    fn new(path: PathBuf, options: ReadOptions) -> Lines {
        Lines {
            path,
            options,
            line: 0,
            done: false,
            skipped: 0,
            first_error: None,
            bad_in_a_row: 0,
            last_bad: 0,
            headers: 0,
            odd_header: false,
        }
    }

    /// Lines skipped as malformed (lenient mode).
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// The first malformed line's error (lenient mode).
    pub fn first_error(&self) -> Option<&Error> {
        self.first_error.as_ref()
    }

    /// Hand the first malformed line's error over (the reader is done).
    pub(crate) fn take_first_error(&mut self) -> Option<Error> {
        self.first_error.take()
    }

    /// The path named in errors.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What is odd about the table's header, once read: none at all (with
    /// sockets in it: a capture cut at the top?), or not the kernel's.
    pub fn header_note(&self) -> Option<&'static str> {
        if self.headers == 0 && self.line > 0 {
            Some("no header line: the table may have been cut at the top")
        } else if self.odd_header {
            Some("its header is not the kernel's (another tool's output, or a kernel this parser does not know?)")
        } else {
            None
        }
    }

    /// A header line: counted, and compared with the kernel's.
    fn header(&mut self, line: &[u8]) {
        self.headers += 1;
        let trimmed = line.strip_suffix(b"\r").unwrap_or(line).trim_ascii_end();
        let known =
            [Family::Ipv4, Family::Ipv6].map(|f| render::header(f).trim_end().as_bytes().to_vec());
        if !known.iter().any(|h| h == trimmed) {
            self.odd_header = true;
        }
    }

    /// A malformed line skipped in lenient mode; an error once too many
    /// came in a row.
    fn skip(&mut self, error: Error) -> Result<()> {
        self.skipped += 1;
        self.first_error.get_or_insert(error);
        self.bad_in_a_row = if self.last_bad + 1 == self.line {
            self.bad_in_a_row + 1
        } else {
            1
        };
        self.last_bad = self.line;
        let limit = self.options.max_bad_lines;
        if limit > 0 && self.bad_in_a_row > limit {
            self.done = true;
            return Err(Error::Parse {
                path: self.path.clone(),
                line: self.line,
                field: crate::error::Field::Line,
                kind: ParseErrorKind::TooManyBadLines,
                token: format!("{limit}"),
            });
        }
        Ok(())
    }

    /// A whole line the fast path did not take, as line `self.line`: parse
    /// it with the general parser into `socket`. `Ok(true)`: a socket;
    /// `Ok(false)`: nothing to return (a header, or a bad line skipped in
    /// lenient mode); `Err`: a bad line in strict mode, which ends the
    /// reading.
    fn parse(&mut self, line: &[u8], socket: &mut Socket) -> Result<bool> {
        match parse_line_into(line, self.options.byte_order, socket) {
            Ok(()) => Ok(true),
            Err(_) if is_header(line) => match parse::header_extra(line) {
                None => {
                    self.header(line);
                    Ok(false)
                }
                // A header and more: the more is an error, not dropped.
                Some(offset) => {
                    self.header(&line[..offset]);
                    let e = LineError {
                        field: crate::error::Field::Line,
                        kind: ParseErrorKind::HeaderWithMore,
                        offset,
                    };
                    self.bad(line, e)
                }
            },
            Err(e) => self.bad(line, e),
        }
    }

    /// A line that is not a socket: in lenient mode skipped (counted),
    /// else the error that ends the reading.
    fn bad(&mut self, line: &[u8], e: LineError) -> Result<bool> {
        let error = self.error_at(line, e);
        if self.options.lenient {
            self.skip(error)?;
            return Ok(false);
        }
        self.done = true;
        Err(error)
    }

    #[cold]
    fn error_at(&self, line: &[u8], e: LineError) -> Error {
        let from = e.offset.min(line.len());
        let token_end = line[from..]
            .iter()
            .position(|&b| b == b' ')
            .map_or(line.len(), |p| from + p);
        let token = &line[from..token_end.min(from + 40)];
        Error::Parse {
            path: self.path.clone(),
            line: self.line,
            field: e.field,
            kind: e.kind,
            token: String::from_utf8_lossy(token).into_owned(),
        }
    }
}

/// The longest line accepted (a kernel line is under 300 bytes).
pub const MAX_LINE: usize = 64 * 1024;
const BUF_SIZE: usize = 256 * 1024;
const _: () = assert!(BUF_SIZE > MAX_LINE);

impl<R: Read> TableReader<R> {
    /// Read from `inner`; `path` names it in errors.
    pub fn new(inner: R, path: impl Into<PathBuf>, options: ReadOptions) -> TableReader<R> {
        TableReader {
            inner,
            buf: vec![0; BUF_SIZE],
            start: 0,
            end: 0,
            eof: false,
            lines: Lines::new(path.into(), options),
        }
    }

    /// What it has read so far: skipped lines, the header, the path.
    pub fn lines(&self) -> &Lines {
        &self.lines
    }

    pub(crate) fn lines_mut(&mut self) -> &mut Lines {
        &mut self.lines
    }

    /// The next complete line in the buffer, refilling it as needed. The
    /// returned range excludes the line feed.
    fn next_line(&mut self) -> io::Result<Option<(usize, usize)>> {
        loop {
            if let Some(i) = memchr(b'\n', &self.buf[self.start..self.end]) {
                let range = (self.start, self.start + i);
                self.start += i + 1;
                return Ok(Some(range));
            }
            if self.eof {
                if self.start < self.end {
                    let range = (self.start, self.end);
                    self.start = self.end;
                    return Ok(Some(range));
                }
                return Ok(None);
            }
            // Move the partial line to the front; the buffer is larger than
            // any line accepted, so there is then room to read more.
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.end >= MAX_LINE {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "line too long"));
            }
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

impl<R: Read> TableReader<R> {
    /// Read the next socket into `socket`, overwriting every field: `Ok(true)`
    /// when a socket was read, `Ok(false)` at the end of the table. Errors
    /// are as for the iterator; after an error in strict mode the reader is
    /// done. Reusing one `Socket` this way is the fastest way to read a table:
    /// nothing but the fields is written per line. After `Ok(false)` or an
    /// error, `socket` may have been partly overwritten (by a line that
    /// turned out bad).
    pub fn read_socket(&mut self, socket: &mut Socket) -> Result<bool> {
        while !self.lines.done {
            // The common case: a line in the kernel's layout, whole in the
            // buffer, parsed where it lies (the parser finds its end).
            let buffered = &self.buf[self.start..self.end];
            let order = self.lines.options.byte_order;
            if let Some(len) = parse::parse_buffered(buffered, order, socket) {
                self.start += len + 1;
                self.lines.line += 1;
                return Ok(true);
            }
            let range = match self.next_line() {
                Ok(Some(range)) => range,
                Ok(None) => {
                    self.lines.done = true;
                    return Ok(false);
                }
                Err(source)
                    if source.kind() == io::ErrorKind::InvalidData
                        && self.lines.options.lenient =>
                {
                    // A line longer than any table's: skipped whole.
                    self.lines.line += 1;
                    let error = self.read_error(source);
                    self.skip_rest_of_line().map_err(|e| self.read_error(e))?;
                    self.lines.skip(error)?;
                    continue;
                }
                Err(source) => {
                    self.lines.done = true;
                    return Err(self.read_error(source));
                }
            };
            self.lines.line += 1;
            if self.lines.parse(&self.buf[range.0..range.1], socket)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Discard the buffer and the input up to the next line feed (for a
    /// line too long to hold), or to the end.
    fn skip_rest_of_line(&mut self) -> io::Result<()> {
        loop {
            if let Some(i) = memchr(b'\n', &self.buf[self.start..self.end]) {
                self.start += i + 1;
                return Ok(());
            }
            self.start = 0;
            self.end = 0;
            if self.eof {
                return Ok(());
            }
            match self.inner.read(&mut self.buf) {
                Ok(0) => self.eof = true,
                Ok(n) => self.end = n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    #[cold]
    fn read_error(&self, source: io::Error) -> Error {
        if source.kind() == io::ErrorKind::InvalidData {
            Error::Parse {
                path: self.lines.path.clone(),
                line: self.lines.line + 1,
                field: crate::error::Field::Line,
                kind: ParseErrorKind::LineTooLong,
                token: String::new(),
            }
        } else {
            Error::Io {
                path: self.lines.path.clone(),
                error: source,
            }
        }
    }
}

impl<R: Read> Iterator for TableReader<R> {
    type Item = Result<Socket>;

    fn next(&mut self) -> Option<Result<Socket>> {
        owned(|socket| self.read_socket(socket))
    }
}

/// An iterator's item from a `read_socket`: the socket it filled, by value.
fn owned(read: impl FnOnce(&mut Socket) -> Result<bool>) -> Option<Result<Socket>> {
    let mut socket = Socket::empty(Family::Ipv4, crate::model::RowKind::Full);
    match read(&mut socket) {
        Ok(true) => Some(Ok(socket)),
        Ok(false) => None,
        Err(e) => Some(Err(e)),
    }
}

impl<R: Read + Send> TableReader<R> {
    /// Call `f` with every socket, in order, while a second thread parses
    /// ahead: the parse overlaps whatever `f` does (rendering, formatting,
    /// writing), so a large table is read in about the time of the slower
    /// of the two instead of their sum. Sockets travel in batches through a
    /// bounded channel, so memory stays bounded. Errors and the lenient
    /// counts are as for [`TableReader::read_socket`]; the first error `f`
    /// returns stops the reading and is returned.
    pub fn for_each_read_ahead<E: From<Error>>(
        &mut self,
        mut f: impl FnMut(&Socket) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        const BATCH: usize = 512;
        const DEPTH: usize = 4;
        let (full_tx, full_rx) = mpsc::sync_channel::<(Vec<Socket>, Result<bool>)>(DEPTH);
        let (empty_tx, empty_rx) = mpsc::channel::<Vec<Socket>>();
        std::thread::scope(|scope| {
            scope.spawn(move || loop {
                let mut batch = empty_rx
                    .try_recv()
                    .unwrap_or_else(|_| Vec::with_capacity(BATCH));
                batch.clear();
                let mut socket = Socket::empty(Family::Ipv4, crate::model::RowKind::Full);
                // Ok(true): the batch is full and there may be more.
                let mut status = Ok(true);
                while batch.len() < BATCH {
                    status = self.read_socket(&mut socket);
                    if !matches!(status, Ok(true)) {
                        break;
                    }
                    batch.push(socket);
                }
                let last = !matches!(status, Ok(true));
                // The receiver is gone only when it stopped at an error or
                // `f` panicked.
                if full_tx.send((batch, status)).is_err() || last {
                    return;
                }
            });
            for (batch, status) in full_rx {
                batch.iter().try_for_each(&mut f)?;
                let _ = empty_tx.send(batch);
                status?;
            }
            Ok(())
        })
    }
}

/// A table already in memory, parsed where it lies: the same sockets,
/// errors and lenient counts as a [`TableReader`] over the same bytes, with
/// no copy into a buffer. For captures loaded whole (from an archive, a
/// network message) and for measuring the parser alone.
///
/// ```
/// use tcptab::procnet::{ReadOptions, SliceReader};
/// let table = b"   0: 0100007F:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0\n";
/// let mut reader = SliceReader::new(table, "capture/net/tcp", ReadOptions::default());
/// let socket = reader.next().unwrap().unwrap();
/// assert_eq!(socket.local.port(), 22);
/// ```
#[derive(Debug)]
pub struct SliceReader<'a> {
    rest: &'a [u8],
    lines: Lines,
}

impl<'a> SliceReader<'a> {
    /// Read `bytes`; `path` names them in errors.
    pub fn new(bytes: &'a [u8], path: impl Into<PathBuf>, options: ReadOptions) -> SliceReader<'a> {
        SliceReader {
            rest: bytes,
            lines: Lines::new(path.into(), options),
        }
    }

    /// As [`TableReader::lines`].
    pub fn lines(&self) -> &Lines {
        &self.lines
    }

    /// As [`TableReader::read_socket`].
    pub fn read_socket(&mut self, socket: &mut Socket) -> Result<bool> {
        while !self.lines.done {
            let order = self.lines.options.byte_order;
            if let Some(len) = parse::parse_buffered(self.rest, order, socket) {
                self.rest = self.rest.get(len + 1..).unwrap_or_default();
                self.lines.line += 1;
                return Ok(true);
            }
            if self.rest.is_empty() {
                self.lines.done = true;
                return Ok(false);
            }
            let (line, rest) = match memchr(b'\n', self.rest) {
                Some(i) => (&self.rest[..i], &self.rest[i + 1..]),
                None => (self.rest, &[][..]),
            };
            self.rest = rest;
            self.lines.line += 1;
            if self.lines.parse(line, socket)? {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

impl Iterator for SliceReader<'_> {
    type Item = Result<Socket>;

    fn next(&mut self) -> Option<Result<Socket>> {
        owned(|socket| self.read_socket(socket))
    }
}

#[cfg(test)]
mod tests;
