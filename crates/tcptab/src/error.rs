//! The library's one error type.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// A column of a `/proc/net/tcp{,6}` line, as named in parse errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// The line as a whole (field count, line length, empty line).
    Line,
    Sl,
    LocalAddress,
    LocalPort,
    RemoteAddress,
    RemotePort,
    State,
    TxQueue,
    RxQueue,
    TimerKind,
    TimerExpires,
    Retransmits,
    Uid,
    Probes,
    Inode,
    Refcount,
    Pointer,
    Rto,
    Ato,
    QuickPingpong,
    Cwnd,
    Ssthresh,
}

impl Field {
    /// The name used in messages: the kernel's header name where it has one.
    pub fn name(self) -> &'static str {
        match self {
            Field::Line => "line",
            Field::Sl => "sl",
            Field::LocalAddress => "local_address",
            Field::LocalPort => "local_port",
            Field::RemoteAddress => "rem_address",
            Field::RemotePort => "rem_port",
            Field::State => "st",
            Field::TxQueue => "tx_queue",
            Field::RxQueue => "rx_queue",
            Field::TimerKind => "tr",
            Field::TimerExpires => "tm->when",
            Field::Retransmits => "retrnsmt",
            Field::Uid => "uid",
            Field::Probes => "timeout",
            Field::Inode => "inode",
            Field::Refcount => "ref",
            Field::Pointer => "pointer",
            Field::Rto => "rto",
            Field::Ato => "ato",
            Field::QuickPingpong => "quick/pingpong",
            Field::Cwnd => "cwnd",
            Field::Ssthresh => "ssthresh",
        }
    }
}

display_by_name!(Field, name);

/// What was wrong with a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParseErrorKind {
    /// The line ended before this field.
    Missing,
    /// Expected hexadecimal digits.
    InvalidHex,
    /// Expected decimal digits.
    InvalidDecimal,
    /// Too many or too few digits for this field.
    BadLength,
    /// The value does not fit the field.
    OutOfRange,
    /// A separator (`:` or space) was expected here.
    BadSeparator,
    /// Text after the last field (the line has more than 17 fields).
    TrailingData,
    /// A 12-field line that is neither a TIME_WAIT (timer 3) nor a request
    /// socket (timer 1, state 03).
    UnknownShortRow,
    /// A line with no fields.
    EmptyLine,
    /// A line longer than the reader accepts.
    LineTooLong,
    /// The local and remote addresses have different lengths.
    FamilyMismatch,
    /// Lenient: more malformed lines in a row than the limit (the token
    /// holds the limit).
    TooManyBadLines,
    /// A header line with more after it: a row glued to the header, or a
    /// table whose lines end in CR alone (the token is what follows).
    HeaderWithMore,
}

impl ParseErrorKind {
    pub fn describe(self) -> &'static str {
        match self {
            ParseErrorKind::Missing => "missing (the line ends too early)",
            ParseErrorKind::InvalidHex => "not hexadecimal",
            ParseErrorKind::InvalidDecimal => "not a decimal number",
            ParseErrorKind::BadLength => "wrong number of digits",
            ParseErrorKind::OutOfRange => "value out of range",
            ParseErrorKind::BadSeparator => "wrong separator",
            ParseErrorKind::TrailingData => {
                "unexpected text after the last field (a row has 12 or 17 fields)"
            }
            ParseErrorKind::UnknownShortRow => {
                "a 12-field row must be a TIME_WAIT socket (tr 03) or a request socket (st 03, tr 01)"
            }
            ParseErrorKind::EmptyLine => "empty line",
            ParseErrorKind::LineTooLong => "line too long",
            ParseErrorKind::FamilyMismatch => "local and remote addresses are of different families",
            ParseErrorKind::HeaderWithMore => {
                "a row on the header's line (a row glued to the header, or lines that end in CR alone)"
            }
            ParseErrorKind::TooManyBadLines => {
                "too many malformed lines in a row (--lenient gives up: is this a TCP table?); the limit is"
            }
        }
    }
}

impl fmt::Display for ParseErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// Where a parse error is and what it is, without the file: what the hot
/// parser returns. `Copy`, no allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineError {
    pub field: Field,
    pub kind: ParseErrorKind,
    /// Byte offset of the offending token in the line.
    pub offset: usize,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "field '{}' at byte {}: {}",
            self.field,
            self.offset + 1,
            self.kind
        )
    }
}

impl std::error::Error for LineError {}

/// The library's error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading a file failed. (The cause is part of the message, so it is
    /// not also exposed as `source()`: printed chains say it once.)
    #[error("{}: {error}", path.display())]
    Io { path: PathBuf, error: io::Error },

    /// The directory given as the proc root does not exist.
    #[error("{}: no such directory (expected a directory laid out like /proc, with net/tcp inside)", path.display())]
    RootNotFound { path: PathBuf },

    /// A line of a table could not be parsed.
    #[error("{}:{line}: field '{field}': {kind}: {token:?}", path.display())]
    Parse {
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        field: Field,
        kind: ParseErrorKind,
        /// The offending token (or the start of the line), shortened.
        token: String,
    },

    /// A netlink request failed; `errno` is the kernel's error number.
    #[error("netlink: {context}: {error}")]
    Netlink {
        context: &'static str,
        error: io::Error,
    },

    /// A netlink message could not be decoded.
    #[error("netlink: malformed message: {0}")]
    Malformed(String),

    /// Entering a network namespace failed.
    #[error("network namespace {name}: {error}")]
    Namespace { name: String, error: io::Error },

    /// A query that cannot be answered as asked (a captured root with
    /// namespaces, netlink on a captured root).
    #[error("{0}")]
    Query(String),
}

/// The library's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
