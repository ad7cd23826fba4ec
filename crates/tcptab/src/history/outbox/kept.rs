//! Rows a shipper sent in TIME_WAIT, kept as it encoded them: their next
//! version is nearly always their close, which changes only their times
//! ([`Closed`], as the writer tells it). That version is then made from
//! the row kept and the times told, without reading the row again (under
//! churn, a client's row is shipped twice: in TIME_WAIT, then closed a
//! minute later).
//!
//! A kept row is used only while what the writer told of it since is
//! that close alone: any other change it is told of forgets the row, and
//! so does any transaction it was not told of (the file read instead).

use std::sync::Arc;

use super::HashMap;
use crate::history::rows::Closed;

/// Rows kept at most (about 350 bytes each under churn, 12 MiB in all):
/// beyond, closes are read from the file as other rows are.
pub(super) const KEPT: usize = 32_768;

/// A row as the store acknowledged it, split around its version and its
/// times: `head`, the host's columns before the version (one for the
/// rows of a boot); `bytes[..ids]` the row's id, cookie and first
/// sighting, and `bytes[ids..]` every column after `closed_by`.
#[derive(Debug)]
pub(super) struct KeptRow {
    pub(super) head: Arc<[u8]>,
    pub(super) bytes: Box<[u8]>,
    pub(super) ids: usize,
}

/// Where a row shipped in TIME_WAIT lies in its batch's body (offsets as
/// [`KeptRow`]'s, from `start`), and its version.
#[derive(Debug, Clone, Copy)]
pub(super) struct Span {
    pub(super) key: (i64, i64),
    pub(super) start: usize,
    /// Where the version begins, where the id begins, where the times
    /// begin, where the columns after them begin, and the end.
    pub(super) version: usize,
    pub(super) id: usize,
    pub(super) times: usize,
    pub(super) rest: usize,
    pub(super) end: usize,
}

#[derive(Debug, Default)]
pub(super) struct Kept {
    rows: HashMap<i64, KeptRow>,
    /// The close told for a row kept (only those: a row forgotten takes
    /// its close with it), under the number of its transaction.
    closes: HashMap<i64, (i64, Closed)>,
}

impl Kept {
    /// The transaction `seq` changed the rows `ids`; of those, `closes`
    /// only by closing them (both sorted by id).
    pub(super) fn told(&mut self, seq: i64, ids: &[i64], closes: &[Closed]) {
        let mut only_closed = closes.iter().map(|c| c.id).peekable();
        for id in ids {
            while only_closed.next_if(|c| c < id).is_some() {}
            if only_closed.next_if_eq(id).is_some() {
                continue;
            }
            if self.rows.remove(id).is_some() {
                self.closes.remove(id);
            }
        }
        for c in closes.iter().filter(|c| self.rows.contains_key(&c.id)) {
            self.closes.insert(c.id, (seq, *c));
        }
    }

    /// Something changed that the shipper was not told of.
    pub(super) fn clear(&mut self) {
        self.rows.clear();
        self.closes.clear();
    }

    /// The row `key` as its close made it, when that is all that changed
    /// since the row kept.
    pub(super) fn closed(&self, (seq, id): (i64, i64)) -> Option<(&KeptRow, Closed)> {
        let &(told, closed) = self.closes.get(&id)?;
        let row = self.rows.get(&id)?;
        (told == seq).then_some((row, closed))
    }

    /// The store acknowledged the rows of `body` (forgotten already,
    /// [`Kept::forget`]): those in `spans` are kept, unless `newer` says a
    /// later version of one was told already.
    pub(super) fn acked(&mut self, body: &[u8], spans: &[Span], newer: impl Fn(i64, i64) -> bool) {
        let mut head: Option<Arc<[u8]>> = None;
        for s in spans {
            let (seq, id) = s.key;
            if self.rows.len() >= KEPT || newer(seq, id) {
                continue;
            }
            let this = &body[s.start..s.version];
            let head = match &head {
                Some(h) if **h == *this => h.clone(),
                _ => head.insert(Arc::from(this)).clone(),
            };
            let mut bytes = Vec::with_capacity((s.times - s.id) + (s.end - s.rest));
            bytes.extend_from_slice(&body[s.id..s.times]);
            bytes.extend_from_slice(&body[s.rest..s.end]);
            let ids = s.times - s.id;
            let bytes = bytes.into_boxed_slice();
            self.rows.insert(id, KeptRow { head, bytes, ids });
        }
    }

    /// The rows `ids` are gone from the file, or shipped.
    pub(super) fn forget(&mut self, ids: impl Iterator<Item = i64>) {
        for id in ids {
            // A close is told only for a row kept.
            if self.rows.remove(&id).is_some() {
                self.closes.remove(&id);
            }
        }
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.rows.len()
    }
}
