//! [`Snapshot`]: every socket a query selects, held.

use std::sync::Arc;

use super::report::Report;
use crate::model::{Entry, EntryBuf, Namespace};
use crate::owners::OwnerScan;

/// Every socket a query selects, held, in the order read: each an
/// [`EntryBuf`] (the sockets of one namespace share its
/// [`Namespace`]), with its owners when the query looked them up.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Snapshot {
    pub sockets: Vec<EntryBuf>,
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

    /// The socket at `index` as an [`Entry`].
    pub fn entry(&self, index: usize) -> Entry<'_> {
        self.sockets[index].as_entry()
    }

    /// Every socket as an [`Entry`], in the order read.
    pub fn entries(&self) -> impl Iterator<Item = Entry<'_>> + '_ {
        self.sockets.iter().map(EntryBuf::as_entry)
    }
}
