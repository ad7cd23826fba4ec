//! tcptab: the Linux kernel's TCP socket table, read and written exactly.
//!
//! The kernel lists every TCP socket in the text tables `/proc/net/tcp` and
//! `/proc/net/tcp6`. This crate reads them into one typed model that keeps
//! every column of all three row shapes (full sockets, TIME_WAIT
//! mini-sockets and SYN_RECV request sockets), and renders that model back
//! to the kernel's text byte for byte.
//!
//! ```no_run
//! use tcptab::procnet::{ProcRoot, ReadOptions};
//! use tcptab::{Family, State};
//!
//! // `/proc`, or `/proc/PID`, or a captured copy of a machine's /proc.
//! let root = ProcRoot::new("/proc");
//! let table = root.read(ReadOptions::default())?;
//! for s in table.sockets.iter().filter(|s| s.state == State::Listen) {
//!     println!("{} listening on {} (inode {})", s.family, s.local, s.inode);
//! }
//! # Ok::<(), tcptab::Error>(())
//! ```
//!
//! Parsing and rendering work on any reader and any buffer:
//!
//! ```
//! use tcptab::procnet::{parse_line, render_line, ByteOrder};
//! use tcptab::{RowKind, State, TimerKind};
//!
//! let line = "  13: 0100007F:8E80 0100007F:1F90 06 00000000:00000000 03:00001707 00000000     0        0 0 3 0000000000000000";
//! let s = parse_line(line.as_bytes(), ByteOrder::Little).unwrap();
//! assert_eq!(s.kind, RowKind::TimeWait);
//! assert_eq!(s.state, State::TimeWait);
//! assert_eq!(s.remote, "127.0.0.1:8080".parse().unwrap());
//! assert_eq!(s.timer.kind, TimerKind::TimeWait);
//! assert_eq!(s.timer.expires.as_millis(), 58_950);
//!
//! let mut out = Vec::new();
//! render_line(&s, ByteOrder::Little, &mut out);
//! assert_eq!(out.len(), 150); // IPv4 records are padded to 149 characters
//! assert!(out.starts_with(line.as_bytes()));
//! ```
//!
//! The same sockets come faster, and with more per socket (listen backlog
//! limits, tcp_info, congestion control, memory, the cookie), from the
//! kernel's sock_diag netlink interface, which [`diag`] implements:
//!
//! ```no_run
//! use tcptab::diag::{self, Extensions, NetlinkSocket};
//! use tcptab::{Family, StateSet};
//!
//! let mut socket = NetlinkSocket::open()?;
//! let info = Extensions { info: true, memory: false };
//! let dump = diag::dump(&mut socket, &[Family::Ipv4, Family::Ipv6], info, StateSet::ALL)?;
//! for d in &dump.sockets {
//!     let rtt = d.diag.tcp_info.as_ref().map(|i| i.rtt_us);
//!     println!("{} {} backlog {:?} rtt {:?} us", d.socket.state, d.socket.local, d.diag.backlog_limit, rtt);
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! One question about the table, answered streamed or collected, in any
//! namespace, with owners, from either source: [`Query`], whose [`Report`]
//! says what it read and could not see. What every layer carries is one
//! socket and what came with it: borrowed as an [`Entry`], owned as an
//! [`EntryBuf`].
//!
//! Around the model: [`OwnerScan`] maps sockets to the processes holding them,
//! [`filter`] selects sockets (with `ss`'s expression language), [`netns`]
//! finds and enters network namespaces, [`summary`], [`diagnose`] and
//! [`explain`] answer the questions people dig for by hand, [`track`]
//! follows every connection's life through polls and the kernel's destroy
//! notifications (what `watch`, `top` and `record` share),
//! [`metrics`] computes what an exporter serves, and `history` (feature
//! `history`) records the table to an SQLite file and answers for a past
//! moment.
//!
//! The text format is described in `docs/proc-net-tcp.md` of the
//! repository; the doc comments here cite its sections.

/// `impl Display for $type` writing the name its `$name` method gives.
macro_rules! display_by_name {
    ($type:ty, $name:ident) => {
        impl std::fmt::Display for $type {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.$name())
            }
        }
    };
}

/// Builder methods that set one field each and give the value back:
/// `fn name(arg: Type) => field;` is `pub fn name(mut self, arg: Type)
/// -> Self`, with the doc comments written above it.
macro_rules! setters {
    ($($(#[$attr:meta])* fn $name:ident($arg:ident: $type:ty) => $field:ident;)*) => {
        $(
            $(#[$attr])*
            pub fn $name(mut self, $arg: $type) -> Self {
                self.$field = $arg;
                self
            }
        )*
    };
}

pub mod audit;
pub mod diag;
pub mod diagnose;
mod error;
pub mod explain;
pub mod filter;
#[cfg(feature = "fleet")]
pub mod fleet;
#[cfg(feature = "history")]
pub mod history;
pub mod interfaces;
pub mod kill;
pub mod metrics;
mod model;
pub mod netns;
pub mod netstat;
mod owners;
pub mod procnet;
mod query;
pub mod rates;
pub mod record;
pub mod summary;
pub mod time;
pub mod track;
pub mod workload;

pub use error::{Error, Field, LineError, ParseErrorKind, Result};
pub use model::{
    canonical, Congestion, Diag, DiagSocket, Entry, EntryBuf, Family, Host, IpText, Key, MemInfo,
    Namespace, Owner, Owners, Ownership, Pointer, PointerKind, RowKind, Socket, Source, Ssthresh,
    State, StateSet, TcpInfo, Ticks, Timer, TimerKind, UnknownState, Workload, USER_HZ,
};
pub use owners::{KeptScan, OwnerScan, KEEP_SCAN_FOR};
pub use query::{
    KernelFilter, NamespaceRead, Namespaces, NotInspected, NotInspectedReason, OwnerReport, Query,
    Report, Snapshot, Visitor, Why,
};

/// `n` and `noun`, in the plural unless `n` is 1: `counted(1, "socket")`
/// is "1 socket", `counted(3, "socket")` "3 sockets" (the nouns tcptab
/// counts take an s, or es after s, x, sh and ch).
///
/// ```
/// assert_eq!(tcptab::counted(1u32, "socket"), "1 socket");
/// assert_eq!(tcptab::counted(0u64, "connection"), "0 connections");
/// assert_eq!(tcptab::counted(2u32, "process"), "2 processes");
/// ```
pub fn counted(n: impl Into<u64>, noun: &str) -> String {
    let es = ["s", "x", "sh", "ch"].iter().any(|end| noun.ends_with(end));
    match n.into() {
        1 => format!("1 {noun}"),
        n if es => format!("{n} {noun}es"),
        n => format!("{n} {noun}s"),
    }
}

/// The README's Rust examples, run as doctests (they read this machine's
/// live tables).
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeExamples;
