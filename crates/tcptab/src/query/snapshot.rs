//! [`Snapshot`]: every socket a query selects, held.

use std::sync::Arc;

use super::report::Report;
use crate::model::{Entry, EntryBuf, Namespace, Timer};
use crate::owners::OwnerScan;

/// Every socket a query selects, held, in the order read: each an
/// [`EntryBuf`] (the sockets of one namespace share its
/// [`Namespace`]), with its owners when the query looked them up.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Snapshot {
    pub sockets: Vec<EntryBuf>,
    /// The TIME_WAITs the reader was told it knows as they are, found
    /// again with only their timer moved ([`Query::snapshot_passing`](super::Query::snapshot_passing)):
    /// not made into sockets.
    pub again: Vec<TimeWaitAgain>,
    /// The namespaces read, in the order of [`Report::read`] (None for the
    /// reader's own).
    pub namespaces: Vec<Option<Arc<Namespace>>>,
    /// The owner scan the owners came from, when owners were looked up.
    pub owners: Option<OwnerScan>,
    pub report: Report,
    /// When the reading of the tables began ([`Report::read_at`]): after
    /// the owner scan that comes first (on a host with many processes the
    /// scan takes seconds, while sockets open and close), before the
    /// kernel began to walk its tables.
    pub read_at: Option<i64>,
}

impl Snapshot {
    /// A snapshot of `sockets` (tests, and callers that build one from
    /// what they kept).
    pub fn of(sockets: Vec<EntryBuf>) -> Snapshot {
        Snapshot {
            sockets,
            namespaces: vec![None],
            ..Snapshot::default()
        }
    }

    /// How many sockets the reading listed: those held and those found
    /// again ([`Snapshot::again`]).
    pub fn listed(&self) -> usize {
        self.sockets.len() + self.again.len()
    }

    /// The socket at `index` as an [`Entry`].
    pub fn entry(&self, index: usize) -> Entry<'_> {
        self.sockets[index].as_entry()
    }

    /// Every socket as an [`Entry`], in the order read.
    pub fn entries(&self) -> impl Iterator<Item = Entry<'_>> + '_ {
        self.sockets.iter().map(EntryBuf::as_entry)
    }
}

/// A TIME_WAIT found again as its reader's caller knows it: its key (a
/// netlink socket's cookie, in its namespace), its place and its timer
/// now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWaitAgain {
    pub netns: u64,
    pub cookie: u64,
    /// Its place in the listing ([`crate::Socket::sl`]).
    pub sl: u32,
    pub timer: Timer,
    /// The kernel's time to expiry, ms.
    pub timer_ms: u32,
}
