//! What a query read, and what it could not see: [`Report`].

use std::io;

use crate::model::{Family, Namespace, Source};

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

/// What the engine read, and what it could not see.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
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
    /// When the reading of the tables began (ms since the Unix epoch):
    /// after the owner scan that comes first, before the first dump was
    /// asked for. A socket in the answer was there at some moment after
    /// it; what ended before it is not in the answer.
    pub read_at: Option<i64>,
}

/// One namespace that was read.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
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

impl NamespaceRead {
    /// ` PREPOSITION network namespace LABEL` for a sentence about this
    /// read (`"in"`, `"for"`), or nothing for the reader's own
    /// namespace.
    pub fn target(&self, preposition: &str) -> String {
        Namespace::in_sentence(self.namespace.as_ref(), preposition)
    }

    /// A namespace's read as it begins: nothing read yet.
    pub(super) fn begun() -> NamespaceRead {
        NamespaceRead {
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
        }
    }
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

/// What the owner scan saw (see [`crate::OwnerScan`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OwnerReport {
    pub inspected: u32,
    /// Processes whose descriptors could not be read: their sockets show
    /// [`Ownership::Unknown`].
    pub denied: u32,
    pub denied_reason: Option<io::ErrorKind>,
    /// Processes that exited during the scan.
    pub vanished: u32,
    /// The scan was an earlier one, kept ([`crate::Query::snapshot_with`]):
    /// no `/proc` was read for it but for what had changed.
    pub kept: bool,
    /// The scan took this many socket links from the one before instead
    /// of reading them ([`crate::OwnerScan::rescan`]; 0 for a new scan).
    pub reused: u32,
    /// The scan was one walk of the kernel's task files
    /// ([`crate::OwnerScan::walk_unavailable`] says why not).
    pub walked: bool,
}
