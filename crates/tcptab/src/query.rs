//! The query engine: one question (which sockets, from which source, in
//! which network namespaces, with which extras and owners) answered either
//! streamed ([`Query::for_each`]) or collected ([`Query::snapshot`]), with a
//! [`Report`] of what was read and what could not be seen.
//!
//! ```no_run
//! use tcptab::query::{Namespaces, Query};
//! use tcptab::{Expr, StateSet, State};
//!
//! // The listeners of the named namespace `blue`, through netlink (falling
//! // back to /proc), with the processes that hold them.
//! let query = Query::new()
//!     .namespaces(Namespaces::Named("blue".into()))
//!     .filter(Expr::State(StateSet::of(&[State::Listen])))
//!     .owners(true);
//! let report = query.for_each(|entry| {
//!     let holders = entry.owners.map(|o| o.owners().len()).unwrap_or(0);
//!     println!("{} held by {holders} process(es), read from {}", entry.socket.local, entry.source);
//!     Ok::<(), tcptab::Error>(())
//! })?;
//! for read in &report.read {
//!     println!("{} sockets read from {}", read.sockets, read.source);
//! }
//! # Ok::<(), tcptab::Error>(())
//! ```
//!
//! How a source is chosen, per namespace: [`Choice::Auto`] reads netlink and
//! falls back to /proc when netlink cannot be used before any socket was
//! handed over (so nothing is seen twice); a captured root (anything but
//! `/proc`) is always read from its files, known before anything is opened.
//!
//! What is an error and what is a note: a namespace that cannot be entered,
//! read or dumped is an error, unless it vanished while the query ran (its
//! process exited, its name was deleted) or, with [`Namespaces::All`], it is
//! one this process may not enter: those are named in
//! [`Report::not_inspected`].

use std::fmt;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use crate::diag::{self, Choice, Diag, DiagSocket, Extensions, NetlinkSocket};
use crate::error::{Error, Result};
use crate::filter::{Expr, Facts};
use crate::netns::{self, Namespace};
use crate::owners::{OwnerScan, Ownership};
use crate::procnet::{ProcRoot, ReadOptions, TableReader};
use crate::socket::{Family, Socket};

/// Which network namespaces a query reads.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Namespaces {
    /// This process's (or, for a captured root, the capture's).
    #[default]
    Current,
    /// A named namespace under /run/netns (as `ip netns` makes them).
    Named(String),
    /// The namespace of a process.
    Pid(u32),
    /// Every namespace on the machine: those of all processes and the named
    /// ones.
    All,
}

/// Where a namespace's sockets were read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// The sock_diag netlink interface.
    Netlink,
    /// The /proc text tables.
    Proc,
}

impl Source {
    /// `netlink` or `proc`.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Netlink => "netlink",
            Source::Proc => "proc",
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a namespace was read from its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Why {
    /// The query asked for this source (or for auto, and netlink worked).
    Chosen,
    /// The root is a captured copy: only its files can be read.
    Captured,
    /// Auto: netlink could not be used, for this reason.
    Fallback(String),
}

/// One socket as the engine hands it over.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    pub socket: &'a Socket,
    /// What only netlink has, when the socket came from a dump.
    pub diag: Option<&'a Diag>,
    pub source: Source,
    /// Its network namespace, when the query named namespaces (None for
    /// [`Namespaces::Current`]).
    pub namespace: Option<&'a Namespace>,
    /// Its owners, when the query looked them up.
    pub owners: Option<Ownership<'a>>,
}

/// What the engine read, and what it could not see.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// One per namespace read, in the order read.
    pub read: Vec<NamespaceRead>,
    /// Namespaces found but not read, and why.
    pub not_inspected: Vec<NotInspected>,
    /// With [`Namespaces::All`]: processes whose namespace link could not
    /// be read (another user's, when not root), so their namespace may be
    /// missing from the answer.
    pub processes_unreadable: u32,
    /// What the owner scan could not see, when owners were looked up.
    pub owners: Option<OwnerReport>,
}

/// One namespace that was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceRead {
    /// None for [`Namespaces::Current`].
    pub namespace: Option<Namespace>,
    pub source: Source,
    pub why: Why,
    /// Sockets read, before the filter.
    pub sockets: u64,
    /// Sockets that passed the filter.
    pub matched: u64,
    /// Netlink flagged the dump as interrupted (the kernel's tables changed
    /// while it walked them): a socket may be missing or repeated.
    pub interrupted: bool,
    /// The tables read, in order: both families from netlink, those whose
    /// files exist from /proc (tcp6 is absent without IPv6).
    pub tables: Vec<Family>,
    /// Malformed lines a lenient read skipped, and the first of them.
    pub skipped_lines: u64,
    pub first_skipped: Option<String>,
    /// What was odd about the tables read (a missing or unknown header),
    /// each naming its file.
    pub notes: Vec<String>,
    /// /proc: rows the kernel's walk repeated (same addresses, ports and
    /// inode, while sockets came and went), dropped.
    pub repeated: u64,
    /// Netlink: the part of the filter the kernel ran during the dump
    /// (then `sockets` counts what it sent), if any.
    pub kernel_filter: Option<KernelFilter>,
}

/// The part of a filter that ran in the kernel (see [`diag::bytecode`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelFilter {
    /// In the filter language.
    pub runs: String,
    /// The kernel tested the whole filter; otherwise the rest was tested
    /// after the dump.
    pub whole: bool,
    /// The program's length in bytes.
    pub bytes: usize,
}

/// A namespace that was found but not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotInspected {
    pub namespace: Namespace,
    pub reason: NotInspectedReason,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotInspectedReason {
    /// Its process exited, or its name was deleted, while the query ran.
    Vanished,
    /// This process may not enter it (with [`Namespaces::All`] only;
    /// otherwise it is an error). The text is the system's error.
    PermissionDenied(String),
}

/// What the owner scan saw (see [`OwnerScan`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OwnerReport {
    pub inspected: u32,
    /// Processes whose descriptors could not be read: their sockets show
    /// [`Ownership::Unknown`].
    pub denied: u32,
    pub denied_reason: Option<io::ErrorKind>,
    /// Processes that exited during the scan.
    pub vanished: u32,
}

/// A socket kept by [`Query::snapshot`].
#[derive(Debug, Clone)]
pub struct Kept {
    pub socket: Socket,
    pub diag: Option<Diag>,
    pub source: Source,
    /// Index into [`Snapshot::namespaces`].
    pub namespace: usize,
}

/// Every socket a query selects, held.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub sockets: Vec<Kept>,
    /// The namespaces read, in order (None for [`Namespaces::Current`]).
    pub namespaces: Vec<Option<Namespace>>,
    pub owners: Option<OwnerScan>,
    pub report: Report,
}

impl Snapshot {
    /// The socket at `index` as an [`Entry`].
    pub fn entry(&self, index: usize) -> Entry<'_> {
        let kept = &self.sockets[index];
        Entry {
            socket: &kept.socket,
            diag: kept.diag.as_ref(),
            source: kept.source,
            namespace: self.namespaces[kept.namespace].as_ref(),
            owners: self.owners.as_ref().map(|o| o.ownership(&kept.socket)),
        }
    }

    /// Every socket as an [`Entry`], in the order read.
    pub fn entries(&self) -> impl Iterator<Item = Entry<'_>> + '_ {
        (0..self.sockets.len()).map(|i| self.entry(i))
    }
}

/// One question about the socket table. Built with the methods below; the
/// default reads this namespace's `/proc` root with [`Choice::Auto`], no
/// extensions, no filter and no owners.
#[derive(Debug, Clone)]
pub struct Query {
    root: PathBuf,
    source: Choice,
    namespaces: Namespaces,
    extensions: Extensions,
    filter: Expr,
    owners: bool,
    read: ReadOptions,
    kernel: bool,
    kernel_program: Option<Vec<u8>>,
    one_walk: bool,
    held_ipv6: usize,
}

impl Default for Query {
    fn default() -> Query {
        Query::new()
    }
}

/// How a socket reaches the engine's walk: by reference, so the walk moves
/// no socket; a dumped one sits in a slot that a snapshot takes it from
/// (the others only look).
enum Raw<'a> {
    /// A table (a namespace's family) begins: its sockets follow.
    Table(Family, Source),
    Dumped(&'a mut Option<DiagSocket>),
    Read(&'a Socket),
}

impl Raw<'_> {
    /// The socket, and what only netlink has.
    fn socket(&self) -> Option<(&Socket, Option<&Diag>)> {
        match self {
            Raw::Table(..) => None,
            Raw::Dumped(slot) => slot.as_ref().map(|d| (&d.socket, Some(&d.diag))),
            Raw::Read(s) => Some((s, None)),
        }
    }
}

/// Receives what [`Query::visit`] reads: each table as it begins (also an
/// empty one), then its matching sockets.
pub trait Visitor<E> {
    /// A table begins: the sockets of `family` in `namespace`, from
    /// `source`. Netlink always has both families' tables; /proc those of
    /// its files (tcp6 is absent without IPv6).
    fn table(
        &mut self,
        namespace: Option<&Namespace>,
        family: Family,
        source: Source,
    ) -> std::result::Result<(), E> {
        let _ = (namespace, family, source);
        Ok(())
    }

    fn entry(&mut self, entry: &Entry<'_>) -> std::result::Result<(), E>;
}

/// Why a namespace's read stopped: the library's error (which may lead to
/// a fallback or a skip) or the caller's (returned as it is).
enum Stop<E> {
    Lib(Error),
    Caller(E),
}

impl<E> From<Error> for Stop<E> {
    fn from(e: Error) -> Stop<E> {
        Stop::Lib(e)
    }
}

impl Query {
    pub fn new() -> Query {
        Query {
            root: PathBuf::from("/proc"),
            source: Choice::Auto,
            namespaces: Namespaces::Current,
            extensions: Extensions::default(),
            filter: Expr::All,
            owners: false,
            read: ReadOptions::default(),
            kernel: true,
            kernel_program: None,
            one_walk: true,
            held_ipv6: Self::HELD_IPV6,
        }
    }

    /// Whether a filtered netlink query may read both families in one walk
    /// of the kernel's tables (the default; off, one dump per family).
    pub fn one_walk(mut self, on: bool) -> Query {
        self.one_walk = on;
        self
    }

    /// Whether netlink dumps carry the filter's kernel part as a program
    /// (the default; off, every socket is sent and filtered here: the same
    /// answer, slower).
    pub fn kernel_filter(mut self, on: bool) -> Query {
        self.kernel = on;
        self
    }

    /// Send these bytes as the filter program instead of the compiled one
    /// (tests: what a refused program does).
    #[cfg(feature = "internals")]
    #[doc(hidden)]
    pub fn kernel_program(mut self, bytes: Vec<u8>) -> Query {
        self.kernel_program = Some(bytes);
        self
    }

    /// `/proc`, `/proc/PID` (that process's namespace, from its files), or
    /// a captured copy laid out like /proc (`ROOT/net/tcp`).
    pub fn root(mut self, root: impl Into<PathBuf>) -> Query {
        self.root = root.into();
        self
    }

    pub fn source(mut self, source: Choice) -> Query {
        self.source = source;
        self
    }

    pub fn namespaces(mut self, namespaces: Namespaces) -> Query {
        self.namespaces = namespaces;
        self
    }

    /// What netlink dumps carry beyond the basic message (tcp_info,
    /// memory). /proc has neither; its entries have no [`Diag`].
    pub fn extensions(mut self, extensions: Extensions) -> Query {
        self.extensions = extensions;
        self
    }

    /// Only sockets that match. The states it allows are asked of the
    /// kernel; the rest is applied to each socket read.
    pub fn filter(mut self, filter: Expr) -> Query {
        self.filter = filter;
        self
    }

    /// Look up the processes holding each socket (also done whenever the
    /// filter names a pid or a process).
    pub fn owners(mut self, owners: bool) -> Query {
        self.owners = owners;
        self
    }

    /// Byte order and leniency of the /proc parser.
    pub fn read_options(mut self, read: ReadOptions) -> Query {
        self.read = read;
        self
    }

    pub fn root_path(&self) -> &Path {
        &self.root
    }

    pub fn filter_expr(&self) -> &Expr {
        &self.filter
    }

    /// Whether the root is a captured copy (anything but `/proc`): read from
    /// its files only, in its own single namespace.
    pub fn is_captured(&self) -> bool {
        self.root != Path::new("/proc")
    }

    /// Whether owners are looked up (asked for, or needed by the filter).
    pub fn looks_up_owners(&self) -> bool {
        self.owners || self.filter.needs_owners()
    }

    /// Hand every matching socket to `f` as it is read, holding none (beyond
    /// the owner map, when owners are looked up: the scan runs first, as
    /// `ss -p` does). An error from `f` ends the walk and is returned.
    pub fn for_each<E: From<Error>>(
        &self,
        f: impl FnMut(&Entry<'_>) -> std::result::Result<(), E>,
    ) -> std::result::Result<Report, E> {
        struct Each<F>(F);
        impl<E, F: FnMut(&Entry<'_>) -> std::result::Result<(), E>> Visitor<E> for Each<F> {
            fn entry(&mut self, entry: &Entry<'_>) -> std::result::Result<(), E> {
                (self.0)(entry)
            }
        }
        self.visit(&mut Each(f))
    }

    /// Like [`for_each`](Query::for_each), with each table's beginning
    /// announced to `visitor` (what a writer of the kernel's text needs for
    /// its headers).
    pub fn visit<E: From<Error>>(
        &self,
        visitor: &mut dyn Visitor<E>,
    ) -> std::result::Result<Report, E> {
        let (report, _) = self.walk(|_, namespace, scan, raw| {
            if let Raw::Table(family, source) = raw {
                return visitor.table(namespace, family, source);
            }
            let Some((socket, diag)) = raw.socket() else {
                return Ok(());
            };
            visitor.entry(&Entry {
                socket,
                diag,
                source: if diag.is_some() {
                    Source::Netlink
                } else {
                    Source::Proc
                },
                namespace,
                owners: scan.map(|o| o.ownership(socket)),
            })
        })?;
        Ok(report)
    }

    /// Every matching socket, held.
    pub fn snapshot(&self) -> Result<Snapshot> {
        let mut sockets = Vec::new();
        let (report, owners) = self.walk(|index, _, _, raw| {
            sockets.push(match raw {
                Raw::Table(..) | Raw::Dumped(None) => return Ok(()),
                Raw::Dumped(slot) => {
                    let d = slot.take().expect("a dumped socket in its slot");
                    Kept {
                        socket: d.socket,
                        diag: Some(d.diag),
                        source: Source::Netlink,
                        namespace: index,
                    }
                }
                Raw::Read(s) => Kept {
                    socket: *s,
                    diag: None,
                    source: Source::Proc,
                    namespace: index,
                },
            });
            Ok::<(), Error>(())
        })?;
        let namespaces = report.read.iter().map(|r| r.namespace.clone()).collect();
        Ok(Snapshot {
            sockets,
            namespaces,
            owners,
            report,
        })
    }

    /// A NETLINK_SOCK_DIAG socket in `namespace` (this process's for None),
    /// e.g. to subscribe to destroy notifications where a query read.
    pub fn netlink_socket(&self, namespace: Option<&Namespace>) -> Result<NetlinkSocket> {
        if self.is_captured() {
            return Err(Error::Query(
                "netlink reads the live kernel, not a captured root".into(),
            ));
        }
        let opened = match namespace.and_then(|n| n.file(&self.root)) {
            None => NetlinkSocket::open(),
            Some(path) => NetlinkSocket::open_in(&path),
        };
        // A netlink error either way, so that auto can fall back to the
        // namespace's /proc tables.
        opened.map_err(|error| Error::Netlink {
            context: match namespace {
                Some(_) if error.kind() == io::ErrorKind::PermissionDenied => {
                    "entering the network namespace (needs root: CAP_SYS_ADMIN)"
                }
                Some(_) => "opening a NETLINK_SOCK_DIAG socket in the network namespace",
                None => "opening a NETLINK_SOCK_DIAG socket",
            },
            error,
        })
    }

    /// The namespaces to read (None: this one or the capture), and how many
    /// processes' namespace links could not be read.
    fn targets(&self) -> Result<(Vec<Option<Namespace>>, u32)> {
        if self.is_captured() {
            if self.namespaces != Namespaces::Current {
                return Err(Error::Query(
                    "a captured root holds one namespace's tables; it cannot be combined with other namespaces".into(),
                ));
            }
            if self.source == Choice::Netlink {
                return Err(Error::Query(
                    "netlink reads the live kernel, not a captured root; read it from its files (the proc source)".into(),
                ));
            }
        }
        Ok(match &self.namespaces {
            Namespaces::Current => (vec![None], 0),
            Namespaces::Named(name) => (vec![Some(netns::named(name)?)], 0),
            Namespaces::Pid(pid) => (vec![Some(netns::of_process(&self.root, *pid)?)], 0),
            Namespaces::All => {
                let (found, denied) = netns::discover(&self.root)?;
                (found.into_iter().map(Some).collect(), denied)
            }
        })
    }

    /// The one walk behind [`for_each`](Query::for_each) and
    /// [`snapshot`](Query::snapshot): `visit` gets the namespace's index in
    /// [`Report::read`], the namespace, the owner scan and each matching
    /// socket.
    fn walk<E: From<Error>>(
        &self,
        mut visit: impl FnMut(
            usize,
            Option<&Namespace>,
            Option<&OwnerScan>,
            Raw<'_>,
        ) -> std::result::Result<(), E>,
    ) -> std::result::Result<(Report, Option<OwnerScan>), E> {
        let (targets, processes_unreadable) = self.targets()?;
        let scan = if self.looks_up_owners() {
            Some(OwnerScan::scan_all(&self.root).map_err(|error| Error::Io {
                path: self.root.clone(),
                error,
            })?)
        } else {
            None
        };
        let mut report = Report {
            processes_unreadable,
            owners: scan.as_ref().map(|s| OwnerReport {
                inspected: s.inspected,
                denied: s.denied,
                denied_reason: s.denied_reason,
                vanished: s.vanished,
            }),
            ..Report::default()
        };
        for target in targets {
            let index = report.read.len();
            let mut read = NamespaceRead {
                namespace: None,
                source: Source::Proc,
                why: Why::Chosen,
                sockets: 0,
                matched: 0,
                interrupted: false,
                tables: Vec::with_capacity(2),
                skipped_lines: 0,
                first_skipped: None,
                notes: Vec::new(),
                repeated: 0,
                kernel_filter: None,
            };
            // The filter with this namespace's facts (autobound's port
            // range, dev's interface index), shared by every socket.
            let bound = std::cell::OnceCell::<Expr>::new();
            let mut deliver = |raw: Raw<'_>| -> std::result::Result<(), Stop<E>> {
                if let Raw::Table(family, _) = raw {
                    read.tables.push(family);
                    return visit(index, target.as_ref(), scan.as_ref(), raw).map_err(Stop::Caller);
                }
                let Some((socket, diag)) = raw.socket() else {
                    return Ok(());
                };
                read.sockets += 1;
                let filter = bound.get().unwrap_or(&self.filter);
                if !filter.matches(socket, diag, scan.as_ref()) {
                    return Ok(());
                }
                read.matched += 1;
                visit(index, target.as_ref(), scan.as_ref(), raw).map_err(Stop::Caller)
            };
            let outcome = self
                .filter_for(target.as_ref())
                .map_err(Stop::Lib)
                .and_then(|filter| {
                    let _ = bound.set(filter.clone());
                    self.read_namespace(target.as_ref(), &filter, &mut deliver)
                });
            let delivered = read.sockets;
            match outcome {
                Ok(how) => {
                    read.source = how.source;
                    read.why = how.why;
                    read.interrupted = how.interrupted;
                    read.skipped_lines = how.skipped_lines;
                    read.first_skipped = how.first_skipped;
                    read.notes = how.notes;
                    read.repeated = how.repeated;
                    read.kernel_filter = how.kernel_filter;
                    read.namespace = target;
                    report.read.push(read);
                }
                Err(Stop::Caller(e)) => return Err(e),
                Err(Stop::Lib(e)) => {
                    let namespace = match target {
                        Some(ns) if delivered == 0 => ns,
                        _ => return Err(e.into()),
                    };
                    let reason = if vanished(&namespace, &self.root) {
                        NotInspectedReason::Vanished
                    } else if self.namespaces == Namespaces::All && permission_denied(&e) {
                        NotInspectedReason::PermissionDenied(e.to_string())
                    } else {
                        return Err(e.into());
                    };
                    report
                        .not_inspected
                        .push(NotInspected { namespace, reason });
                }
            }
        }
        Ok((report, scan))
    }

    /// The query's filter with the facts of `namespace` filled in, when it
    /// needs any (`autobound`'s port range, `dev NAME`'s index): what the
    /// engine tests the namespace's sockets with, e.g. for sockets a
    /// destroy notification brings.
    pub fn filter_for(&self, namespace: Option<&Namespace>) -> Result<Expr> {
        if !self.filter.needs_facts() {
            return Ok(self.filter.clone());
        }
        let names = self.filter.device_names();
        let range = Path::new("sys/net/ipv4/ip_local_port_range");
        let facts = match namespace.and_then(|n| n.file(&self.root).map(|f| (n, f))) {
            None => Facts::read(&self.root.join(range), &names).map_err(|error| Error::Io {
                path: self.root.join(range),
                error,
            })?,
            Some((ns, file)) => {
                let names = names.clone();
                netns::run_in(&file, move || {
                    Facts::read(&Path::new("/proc").join(range), &names)
                })
                .map_err(|error| Error::Namespace {
                    name: ns.label(),
                    error,
                })?
            }
        };
        if self.namespaces != Namespaces::All {
            if let Some(missing) = names.iter().find(|n| !facts.interfaces.contains_key(*n)) {
                return Err(Error::Query(format!(
                    "filter: dev '{}': no such interface{}",
                    crate::filter::excerpt(missing),
                    namespace.map_or(String::new(), |n| format!(
                        " in network namespace {}",
                        n.label()
                    ))
                )));
            }
        }
        Ok(self.filter.bind(&facts))
    }

    /// Read one namespace through the chosen source.
    fn read_namespace<E>(
        &self,
        namespace: Option<&Namespace>,
        filter: &Expr,
        deliver: &mut dyn FnMut(Raw<'_>) -> std::result::Result<(), Stop<E>>,
    ) -> std::result::Result<How, Stop<E>> {
        let proc = |why: Why| -> std::result::Result<(), Stop<E>> {
            if filter.needs_netlink() {
                let why = match why {
                    Why::Fallback(reason) => format!(" ({reason})"),
                    _ => String::new(),
                };
                return Err(Stop::Lib(Error::Query(format!(
                    "the filter's 'dev' needs netlink, and the sockets were read from /proc{why}, whose tables do not say which interface a socket is bound to"
                ))));
            }
            Ok(())
        };
        if self.is_captured() {
            proc(Why::Captured)?;
            return self.read_proc(namespace, deliver, Why::Captured);
        }
        match self.source {
            Choice::Proc => {
                proc(Why::Chosen)?;
                self.read_proc(namespace, deliver, Why::Chosen)
            }
            Choice::Netlink => self.read_netlink(namespace, filter, deliver, &mut 0),
            Choice::Auto => {
                let mut delivered = 0u64;
                match self.read_netlink(namespace, filter, deliver, &mut delivered) {
                    Err(Stop::Lib(e @ Error::Netlink { .. })) if delivered == 0 => {
                        let why = Why::Fallback(e.to_string());
                        proc(why.clone())?;
                        self.read_proc(namespace, deliver, why)
                    }
                    other => other,
                }
            }
        }
    }

    fn read_netlink<E>(
        &self,
        namespace: Option<&Namespace>,
        filter: &Expr,
        deliver: &mut dyn FnMut(Raw<'_>) -> std::result::Result<(), Stop<E>>,
        delivered: &mut u64,
    ) -> std::result::Result<How, Stop<E>> {
        let mut socket = self.netlink_socket(namespace)?;
        let mut how = How::new(Source::Netlink, Why::Chosen);
        // The address, port, interface and autobound conditions run in the
        // kernel, which then sends only what can match; the whole filter
        // is still applied to what it sends.
        let mut program = match &self.kernel_program {
            Some(bytes) => Some((bytes.clone(), None)),
            None if !self.kernel => None,
            None => diag::bytecode::compile(filter).map(|p| {
                let kernel = KernelFilter {
                    runs: p.runs.to_string(),
                    whole: p.whole,
                    bytes: p.bytes.len(),
                };
                (p.bytes, Some(kernel))
            }),
        };
        let mut families = vec![Family::Ipv4, Family::Ipv6];
        // A narrow question: both families in one walk of the kernel's
        // tables, which is then most of the cost.
        if program.is_some() && self.one_walk {
            match self.read_both_families(&mut socket, filter, &program, deliver, delivered) {
                Ok((interrupted, rest)) => {
                    how.interrupted |= interrupted;
                    how.notes.push(match rest {
                        Some(_) => format!(
                            "IPv4 in one walk of the kernel's tables with IPv6, then more than {} IPv6 sockets matched: IPv6 read again by its own dump",
                            self.held_ipv6
                        ),
                        None => "both families in one walk of the kernel's tables".to_string(),
                    });
                    families = rest.into_iter().collect();
                }
                // The older request is refused (or the program is): ask
                // per family, as below.
                Err(Stop::Lib(Error::Netlink { .. })) if *delivered == 0 => {}
                Err(e) => return Err(e),
            }
        }
        for family in families {
            loop {
                // Announced before its first socket, or after an empty
                // dump: a dump that fails at once (auto falls back, a
                // refused program is dropped) announces none.
                let mut announced = false;
                let dumped = diag::dump_each(
                    &mut socket,
                    &[family],
                    self.extensions,
                    filter.states(),
                    program.as_ref().map(|(bytes, _)| bytes.as_slice()),
                    &mut |d| {
                        if !announced {
                            announced = true;
                            deliver(Raw::Table(family, Source::Netlink))?;
                        }
                        *delivered += 1;
                        deliver(Raw::Dumped(&mut Some(d)))
                    },
                );
                match dumped {
                    Ok(interrupted) => how.interrupted |= interrupted,
                    Err(Stop::Lib(Error::Netlink { error, .. }))
                        if !announced
                            && program.is_some()
                            && error.raw_os_error()
                                == Some(rustix::io::Errno::INVAL.raw_os_error()) =>
                    {
                        // The kernel's audit refused the program: filter
                        // after the dump instead, and say so.
                        program = None;
                        how.notes.push(format!(
                            "the kernel refused the filter program ({error}); every socket was read and filtered here{}",
                            if filter.has(&|e| matches!(e, Expr::Autobound { .. })) {
                                ", and autobound was judged by the ephemeral port range alone"
                            } else {
                                ""
                            }
                        ));
                        continue;
                    }
                    Err(e) => return Err(e),
                }
                if !announced {
                    // Counted as delivered: a failure after this cannot
                    // fall back without announcing the table twice.
                    *delivered += 1;
                    deliver(Raw::Table(family, Source::Netlink))?;
                }
                break;
            }
        }
        how.kernel_filter = program.and_then(|(_, kernel)| kernel);
        Ok(how)
    }

    /// The most IPv6 sockets a one-walk dump holds by default until its
    /// IPv4 ones are delivered (the tables come one family after the
    /// other).
    const HELD_IPV6: usize = 4096;

    /// Hold at most `n` IPv6 sockets in a one-walk dump (tests: the path
    /// where more match).
    #[cfg(feature = "internals")]
    #[doc(hidden)]
    pub fn held_ipv6(mut self, n: usize) -> Query {
        self.held_ipv6 = n;
        self
    }

    /// Both families in one dump: IPv4 sockets delivered as they come,
    /// IPv6 ones held (up to [`Self::HELD_IPV6`] by default) and delivered
    /// after. When
    /// more IPv6 sockets match than that, they are dropped and
    /// `Some(Ipv6)` says that IPv6 is still to be read.
    fn read_both_families<E>(
        &self,
        socket: &mut NetlinkSocket,
        filter: &Expr,
        program: &Option<(Vec<u8>, Option<KernelFilter>)>,
        deliver: &mut dyn FnMut(Raw<'_>) -> std::result::Result<(), Stop<E>>,
        delivered: &mut u64,
    ) -> std::result::Result<(bool, Option<Family>), Stop<E>> {
        let mut announced = false;
        let mut held: Vec<DiagSocket> = Vec::new();
        let mut overflow = false;
        let mut v4_sl = 0u32;
        let interrupted = diag::dump_both_each(
            socket,
            self.extensions,
            filter.states(),
            program.as_ref().map(|(bytes, _)| bytes.as_slice()),
            &mut |mut d| {
                if d.socket.family == Family::Ipv6 {
                    if !overflow {
                        if held.len() == self.held_ipv6 {
                            overflow = true;
                            held = Vec::new();
                        } else {
                            held.push(d);
                        }
                    }
                    return Ok(());
                }
                if !announced {
                    announced = true;
                    deliver(Raw::Table(Family::Ipv4, Source::Netlink))?;
                }
                d.socket.sl = v4_sl;
                v4_sl += 1;
                *delivered += 1;
                deliver(Raw::Dumped(&mut Some(d)))
            },
        )?;
        if !announced {
            *delivered += 1;
            deliver(Raw::Table(Family::Ipv4, Source::Netlink))?;
        }
        if overflow {
            return Ok((interrupted, Some(Family::Ipv6)));
        }
        *delivered += 1;
        deliver(Raw::Table(Family::Ipv6, Source::Netlink))?;
        for (sl, mut d) in (0u32..).zip(held) {
            d.socket.sl = sl;
            deliver(Raw::Dumped(&mut Some(d)))?;
        }
        Ok((interrupted, None))
    }

    fn read_proc<E>(
        &self,
        namespace: Option<&Namespace>,
        deliver: &mut dyn FnMut(Raw<'_>) -> std::result::Result<(), Stop<E>>,
        why: Why,
    ) -> std::result::Result<How, Stop<E>> {
        let mut tables = self.open_tables(namespace)?;
        let mut how = How::new(Source::Proc, why);
        for (reader, family) in tables.iter_mut().zip([Family::Ipv4, Family::Ipv6]) {
            let Some(reader) = reader else { continue };
            deliver(Raw::Table(family, Source::Proc))?;
            // The kernel resumes its walk by position between two reads: a
            // socket that opens or closes meanwhile can make rows of the
            // bucket it resumes in appear twice, shortly after their first
            // time. A live table's repeated rows (same addresses, ports and
            // inode) within the last rows read are dropped and counted; a
            // capture is kept as it was taken.
            let mut recent = (!self.is_captured()).then(Recent::default);
            // Parsing runs on a second thread, overlapping the caller.
            reader.for_each_read_ahead(|socket| {
                if let Some(recent) = recent.as_mut() {
                    if recent.seen_again(socket) {
                        how.repeated += 1;
                        return Ok(());
                    }
                }
                deliver(Raw::Read(socket))
            })?;
            how.skipped_lines += reader.skipped();
            if how.first_skipped.is_none() {
                how.first_skipped = reader.first_error().map(|e| e.to_string());
            }
            if let Some(note) = reader.header_note() {
                how.notes
                    .push(format!("{}: {note}", reader.path().display()));
            }
        }
        Ok(how)
    }

    /// The text tables of `namespace` (or of the root).
    fn open_tables(&self, namespace: Option<&Namespace>) -> Result<[Option<TableReader<File>>; 2]> {
        match namespace {
            Some(n) => n.open(&self.root, self.read),
            None => {
                let root = ProcRoot::new(&self.root);
                Ok([
                    root.open(Family::Ipv4, self.read)?,
                    root.open(Family::Ipv6, self.read)?,
                ])
            }
        }
    }
}

/// The rows read most recently, as 64-bit digests of their addresses,
/// ports and inode: a repeat the kernel's walk makes comes within a few
/// read buffers of the row's first time, so a window of rows (constant
/// memory) finds it.
#[derive(Default)]
struct Recent {
    order: std::collections::VecDeque<u64>,
    set: std::collections::HashSet<u64>,
}

impl Recent {
    /// Rows kept: about four of the reader's buffers of full lines.
    const WINDOW: usize = 8192;

    /// Whether `socket` is among the recent rows; remembers it if not.
    fn seen_again(&mut self, socket: &Socket) -> bool {
        use std::hash::{Hash, Hasher};
        let mut digest = std::collections::hash_map::DefaultHasher::new();
        (socket.local, socket.remote, socket.inode).hash(&mut digest);
        let digest = digest.finish();
        if !self.set.insert(digest) {
            return true;
        }
        self.order.push_back(digest);
        if self.order.len() > Self::WINDOW {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        false
    }
}

/// How one namespace was read.
struct How {
    source: Source,
    why: Why,
    interrupted: bool,
    skipped_lines: u64,
    first_skipped: Option<String>,
    notes: Vec<String>,
    repeated: u64,
    kernel_filter: Option<KernelFilter>,
}

impl How {
    fn new(source: Source, why: Why) -> How {
        How {
            source,
            why,
            interrupted: false,
            skipped_lines: 0,
            first_skipped: None,
            notes: Vec::new(),
            repeated: 0,
            kernel_filter: None,
        }
    }
}

/// A namespace that is gone: its name no longer leads to it and its process
/// has exited (a zombie included, whose /proc directory lingers without
/// `ns/net`). A link that cannot be read for another reason (permission) is
/// not gone: the failure to read it is an error to report, not to hide.
fn vanished(ns: &Namespace, proc_root: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    if ns.path.is_none() && ns.pid.is_none() {
        return false;
    }
    let still_there = |file: &Path| match std::fs::metadata(file) {
        Ok(meta) => meta.ino() == ns.inode || ns.inode == 0,
        Err(e) => e.kind() != io::ErrorKind::NotFound,
    };
    let by_name = ns.path.as_deref().is_some_and(still_there);
    let by_pid = ns
        .pid
        .is_some_and(|pid| still_there(&proc_root.join(pid.to_string()).join("ns/net")));
    !by_name && !by_pid
}

/// An error that says this process may not enter or read a namespace.
fn permission_denied(e: &Error) -> bool {
    let kind = match e {
        Error::Namespace { error, .. } | Error::Netlink { error, .. } | Error::Io { error, .. } => {
            error.kind()
        }
        _ => return false,
    };
    kind == io::ErrorKind::PermissionDenied
}
