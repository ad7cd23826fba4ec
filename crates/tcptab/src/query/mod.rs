//! The query engine: one question (which sockets, from which source, in
//! which network namespaces, with which extras and owners) answered either
//! streamed ([`Query::for_each`]) or collected ([`Query::snapshot`]), with a
//! [`Report`] of what was read and what could not be seen.
//!
//! ```no_run
//! use tcptab::filter::Expr;
//! use tcptab::{Namespaces, Query};
//! use tcptab::{State, StateSet};
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

mod engine;
mod kernel;
mod later;
mod looks;
mod peers;
mod read;
mod report;
mod snapshot;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::diag::{Choice, Extensions, NetlinkSocket};
use crate::error::{Error, Result};
use crate::filter::Expr;

use crate::model::{Diag, Entry, EntryBuf, Family, Namespace, Source, Workload};
use crate::owners::OwnerScan;
use crate::procnet::ReadOptions;
use crate::workload::{Roots, Workloads};
use engine::Raw;
pub use report::{
    KernelFilter, NamespaceRead, NotInspected, NotInspectedReason, OwnerReport, Report, Why,
};
pub use snapshot::Snapshot;

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
    workloads: bool,
    workload_roots: Roots,
    /// The resolver, made on first use and kept by the query (and its
    /// clones) across walks.
    workload_cache: Arc<Mutex<Option<Workloads>>>,
    read: ReadOptions,
    kernel: bool,
    kernel_program: Option<Vec<u8>>,
    one_walk: bool,
    read_ahead: bool,
    one_walk_all: bool,
    /// The room a one walk keeps IPv6's messages in, kept by the query
    /// (and its clones) for its next read: a poll does not fault in
    /// megabytes of new pages each time.
    ipv6_room: Arc<Mutex<Vec<u8>>>,
    held_ipv6: usize,
}

impl Default for Query {
    fn default() -> Query {
        Query::new()
    }
}

/// Receives what [`Query::visit`] reads: each table as it begins (also an
/// empty one), then its matching sockets.
pub trait Visitor<E> {
    /// A table begins: the sockets of `family` in `namespace`, from
    /// `source`. Netlink has both families' tables, /proc those of
    /// its files (tcp6 is absent without IPv6); a filter that allows one
    /// family only (`-4`, `-6`) has that family's table alone.
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

impl Query {
    pub fn new() -> Query {
        Query {
            root: PathBuf::from("/proc"),
            source: Choice::Auto,
            namespaces: Namespaces::Current,
            extensions: Extensions::default(),
            filter: Expr::All,
            owners: false,
            workloads: false,
            workload_roots: Roots::default(),
            workload_cache: Arc::default(),
            read: ReadOptions::default(),
            kernel: true,
            kernel_program: None,
            one_walk: true,
            read_ahead: true,
            one_walk_all: false,
            ipv6_room: Arc::default(),
            held_ipv6: Self::HELD_IPV6,
        }
    }

    setters! {
        /// Whether a filtered netlink query may read both families in one walk
        /// of the kernel's tables (the default; off, one dump per family).
        fn one_walk(on: bool) => one_walk;

        /// Whether a netlink read of every socket reads each family's dump
        /// ahead on a thread of its own while the caller decodes (the default;
        /// off, one dump after the other on the caller's thread). The answer
        /// and its order are the same.
        fn read_ahead(on: bool) => read_ahead;

        /// Whether a netlink read of every socket walks the kernel's tables
        /// once for both families, on the caller's thread, instead of once
        /// per family, each read ahead on a thread of its own (off by
        /// default). The kernel then looks at each socket once and walks its
        /// hash tables once, not twice, and no thread is woken per
        /// datagram: less CPU for a read that ends later (BENCHMARKS.md).
        /// For what reads the table again and again (record, watch, top,
        /// serve). The IPv6 sockets' messages are kept, not decoded, until
        /// the IPv4 ones are handed over: the answer and its order are the
        /// same.
        fn one_walk_all(on: bool) => one_walk_all;

        /// Whether netlink dumps carry the filter's kernel part as a program
        /// (the default; off, every socket is sent and filtered here: the same
        /// answer, slower).
        fn kernel_filter(on: bool) => kernel;
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

    setters! {
        fn source(source: Choice) => source;

        fn namespaces(namespaces: Namespaces) => namespaces;

        /// What netlink dumps carry beyond the basic message (tcp_info,
        /// memory). /proc has neither; its entries have no [`Diag`].
        fn extensions(extensions: Extensions) => extensions;

        /// Only sockets that match. The states it allows are asked of the
        /// kernel; the rest is applied to each socket read.
        fn filter(filter: Expr) => filter;

        /// Look up the processes holding each socket (also done whenever the
        /// filter names a pid or a process).
        fn owners(owners: bool) => owners;

        /// Look up each socket's workload (cgroup, unit, container, pod); also
        /// done whenever the filter names a unit, container or pod.
        fn workloads(on: bool) => workloads;

        /// Byte order and leniency of the /proc parser.
        fn read_options(read: ReadOptions) => read;
    }

    /// Where workloads are read from (the cgroup2 mount, the runtimes'
    /// files); `cgroup PATH` in the filter is resolved there too.
    pub fn workload_roots(mut self, roots: Roots) -> Query {
        self.workload_roots = roots;
        self.workload_cache = Arc::default();
        self
    }

    /// Whether workloads are looked up (asked for, or needed by the
    /// filter).
    pub fn looks_up_workloads(&self) -> bool {
        self.workloads || self.filter.needs_workload()
    }

    /// The workload of a socket's cgroup (a full socket's `diag`), from the
    /// query's resolver, when the query looks workloads up: e.g. for a
    /// socket a destroy notification brings.
    pub fn workload_of(&self, diag: Option<&Diag>) -> Option<Arc<Workload>> {
        if !self.looks_up_workloads() {
            return None;
        }
        let id = diag.map(|d| d.cgroup_id).filter(|&id| id != 0)?;
        self.with_resolver(|w| w.by_id(id))
    }

    /// `f` on the query's resolver (made on first use, kept after).
    pub(super) fn with_resolver<T>(&self, f: impl FnOnce(&mut Workloads) -> T) -> T {
        let mut cache = self
            .workload_cache
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        f(cache.get_or_insert_with(|| self.workload_resolver()))
    }

    /// A resolver of workloads from this query's roots.
    pub fn workload_resolver(&self) -> Workloads {
        Workloads::new(self.workload_roots.clone())
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

    /// The source asked for.
    pub fn source_choice(&self) -> Choice {
        self.source
    }

    /// The namespaces the query would read now (None: the reader's own):
    /// e.g. to listen there before reading.
    pub fn namespaces_to_read(&self) -> Result<Vec<Option<Namespace>>> {
        Ok(self.targets()?.0)
    }

    /// Whether owners are looked up (asked for, or needed by the filter).
    pub fn looks_up_owners(&self) -> bool {
        self.owners || self.filter.needs_owners()
    }

    /// Whether an earlier owner scan may stand for a new one: owners are
    /// looked up for the output only, not tested by the filter (which
    /// judges each socket as it is read).
    pub fn may_keep_owners(&self) -> bool {
        self.owners && !self.filter.needs_owners() && !self.is_captured()
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
        Ok(self.visit_with(None, visitor)?.0)
    }

    /// [`visit`](Query::visit), with owners looked up in `kept` (an
    /// earlier reading's scan, brought up to date: [`crate::KeptScan`]) instead
    /// of a new scan; the owner scan used is returned, to keep for the
    /// next (when [`may_keep_owners`](Query::may_keep_owners)).
    pub fn visit_with<E: From<Error>>(
        &self,
        kept: Option<OwnerScan>,
        visitor: &mut dyn Visitor<E>,
    ) -> std::result::Result<(Report, Option<OwnerScan>), E> {
        self.walk(false, kept, |_, namespace, looks, raw| {
            if let Raw::Table(family, source) = raw {
                return visitor.table(namespace, family, source);
            }
            let Some((socket, diag)) = raw.socket() else {
                return Ok(());
            };
            let source = if diag.is_some() {
                Source::Netlink
            } else {
                Source::Proc
            };
            let workload = looks.workload(socket, diag);
            visitor.entry(
                &Entry::new(socket, source)
                    .with_diag(diag)
                    .with_namespace(namespace)
                    .with_owners(looks.ownership(socket))
                    .with_workload(workload.as_ref())
                    .with_peer_pod(looks.peer(socket)),
            )
        })
    }

    /// Every matching socket, held.
    pub fn snapshot(&self) -> Result<Snapshot> {
        self.snapshot_with(None, Vec::new())
    }

    /// [`snapshot`](Query::snapshot), with owners looked up in `kept` (an
    /// earlier snapshot's scan, brought up to date: a monitor's,
    /// [`crate::KeptScan`]) instead of a new scan of `/proc` before the
    /// dump. When the table holds a socket it does not know, the scan is
    /// brought up to date again after the dump ([`OwnerScan::rescan`]:
    /// only the tables of the processes that ran since are read), and the
    /// sockets without an owner take theirs from it.
    /// The sockets are put in `sockets` after what it holds: an earlier
    /// snapshot's, emptied, keeps its room for them.
    pub fn snapshot_with(
        &self,
        kept: Option<OwnerScan>,
        mut sockets: Vec<EntryBuf>,
    ) -> Result<Snapshot> {
        let mut namespaces: Vec<Option<Arc<Namespace>>> = Vec::new();
        // Owners among the namespace's own processes first (fast on a busy
        // host), then, for what is left, among every process.
        let (mut report, mut owners) = self.walk(true, kept, |index, namespace, looks, raw| {
            // The namespace at `index` (one that failed after a table
            // was announced is replaced by the next one read).
            if namespaces.len() <= index {
                namespaces.resize(index + 1, None);
            }
            if namespaces[index].as_ref().map(|n| n.inode) != namespace.map(|n| n.inode) {
                namespaces[index] = namespace.map(|n| Arc::new(n.clone()));
            }
            let shared = namespaces[index].clone();
            let owners = |socket| looks.owners(socket);
            sockets.push(match raw {
                Raw::Table(..) | Raw::Dumped(None) => return Ok(()),
                Raw::Dumped(slot) => {
                    let d = slot.take().expect("a dumped socket in its slot");
                    // Made where it is kept (a socket is 312 bytes: each
                    // builder step would copy it, on every socket of a poll).
                    EntryBuf {
                        owners: owners(&d.socket),
                        workload: looks.workload(&d.socket, Some(&d.diag)),
                        peer_pod: looks.peer(&d.socket).cloned(),
                        socket: d.socket,
                        diag: Some(d.diag),
                        source: Source::Netlink,
                        namespace: shared,
                    }
                }
                Raw::Read(s) => EntryBuf::new(*s, Source::Proc)
                    .with_namespace(shared)
                    .with_owners(owners(s))
                    .with_workload(looks.workload(s, None))
                    .with_peer_pod(looks.peer(s).cloned()),
            });
            Ok::<(), Error>(())
        })?;
        if let Some(scan) = owners.as_mut() {
            let rescanned = match report.owners.as_mut() {
                Some(seen) if seen.kept => later::rescan_kept(&mut sockets, scan, seen, &self.root),
                _ => false,
            };
            let read: Vec<Option<Namespace>> =
                report.read.iter().map(|r| r.namespace.clone()).collect();
            let netns = self.owners_namespace(&read);
            later::owners_made_after_the_scan(&mut sockets, scan, &self.root, netns, rescanned);
        }
        // Namespaces read without a socket of theirs.
        namespaces.resize(report.read.len(), None);
        for (slot, read) in namespaces.iter_mut().zip(&report.read) {
            if slot.is_none() {
                *slot = read.namespace.clone().map(Arc::new);
            }
        }
        Ok(Snapshot {
            sockets,
            namespaces,
            owners,
            read_at: report.read_at,
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
}
