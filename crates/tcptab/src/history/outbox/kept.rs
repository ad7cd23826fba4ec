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

/// Garbage bytes the arena of kept rows holds before it is made again
/// (few in tests, so that they make it again often).
const ARENA_SLACK: usize = if cfg!(test) { 1024 } else { 1 << 20 };

/// A row as the store acknowledged it, split around its version and its
/// times: `head`, the host's columns before the version (one for the
/// rows of a boot); then, in [`Kept`]'s arena from `at`, the row's id,
/// cookie and first sighting (`ids` bytes), and every column after
/// `closed_by` (to `len`).
#[derive(Debug)]
struct KeptRow {
    head: Arc<[u8]>,
    at: usize,
    len: u32,
    ids: u32,
    /// Its close, when told (and nothing else since), under the number of
    /// its transaction.
    close: Option<(i64, Closed)>,
}

/// A kept row's bytes ([`KeptRow`]).
#[derive(Debug, Clone, Copy)]
pub(super) struct KeptBytes<'a> {
    pub(super) head: &'a [u8],
    /// The id, cookie and first sighting.
    pub(super) ids: &'a [u8],
    /// Every column after `closed_by`.
    pub(super) rest: &'a [u8],
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
    /// The kept rows' bytes, one after the other (no allocation a row):
    /// those of rows forgotten, `garbage` bytes, until the others are
    /// moved over them ([`Kept::drop_row`]).
    arena: Vec<u8>,
    garbage: usize,
}

impl Kept {
    /// The transaction `seq` changed the rows `ids`; of those, `closes`
    /// only by closing them (both sorted by id).
    pub(super) fn told(&mut self, seq: i64, ids: &[i64], closes: &[Closed]) {
        let mut only_closed = closes.iter().map(|c| c.id).peekable();
        for &id in ids {
            while only_closed.next_if(|&c| c < id).is_some() {}
            if only_closed.next_if_eq(&id).is_some() {
                continue;
            }
            self.drop_row(id);
        }
        for c in closes {
            if let Some(row) = self.rows.get_mut(&c.id) {
                row.close = Some((seq, *c));
            }
        }
    }

    /// Something changed that the shipper was not told of.
    pub(super) fn clear(&mut self) {
        self.rows.clear();
        self.arena.clear();
        self.garbage = 0;
    }

    /// The row `key` as its close made it, when that is all that changed
    /// since the row kept.
    pub(super) fn closed(&self, (seq, id): (i64, i64)) -> Option<(KeptBytes<'_>, Closed)> {
        let row = self.rows.get(&id)?;
        let (told, closed) = row.close?;
        let bytes = &self.arena[row.at..row.at + row.len as usize];
        let (ids, rest) = bytes.split_at(row.ids as usize);
        let head = &row.head;
        (told == seq).then_some((KeptBytes { head, ids, rest }, closed))
    }

    /// The row `id` is no longer kept: its bytes are garbage. When garbage
    /// is most of the arena, the rows kept are moved over it, in their
    /// order, in the arena itself: no other arena is made, so its pages
    /// are not made again either.
    fn drop_row(&mut self, id: i64) {
        if let Some(row) = self.rows.remove(&id) {
            self.garbage += row.len as usize;
        }
        if self.garbage > ARENA_SLACK && self.garbage * 2 > self.arena.len() {
            let mut rows: Vec<&mut KeptRow> = self.rows.values_mut().collect();
            rows.sort_unstable_by_key(|row| row.at);
            let mut to = 0;
            for row in rows {
                let len = row.len as usize;
                self.arena.copy_within(row.at..row.at + len, to);
                row.at = to;
                to += len;
            }
            self.arena.truncate(to);
            self.garbage = 0;
        }
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
            // A row kept again (told again, shipped again in TIME_WAIT)
            // leaves its old bytes behind.
            self.drop_row(id);
            let at = self.arena.len();
            self.arena.extend_from_slice(&body[s.id..s.times]);
            self.arena.extend_from_slice(&body[s.rest..s.end]);
            let (len, ids) = ((self.arena.len() - at) as u32, (s.times - s.id) as u32);
            #[rustfmt::skip]
            self.rows.insert(id, KeptRow { head, at, len, ids, close: None });
        }
    }

    /// The rows `ids` are gone from the file, or shipped.
    pub(super) fn forget(&mut self, ids: impl Iterator<Item = i64>) {
        for id in ids {
            // A close is told only for a row kept.
            self.drop_row(id);
        }
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.rows.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A body of `n` rows, each `[head | version | id bytes | times |
    /// rest]`, with bytes that name their row; and the spans of them.
    fn body(first: i64, n: i64) -> (Vec<u8>, Vec<Span>) {
        let (mut body, mut spans) = (Vec::new(), Vec::new());
        for id in first..first + n {
            let start = body.len();
            body.extend_from_slice(b"HEAD");
            let version = body.len();
            body.push(9);
            let at = body.len();
            body.extend_from_slice(format!("id{id}:").as_bytes());
            let times = body.len();
            body.extend_from_slice(b"TIMES");
            let rest = body.len();
            body.extend_from_slice(
                format!("rest of {id} {}", "x".repeat(id as usize % 50)).as_bytes(),
            );
            let end = body.len();
            let key = (1, id);
            #[rustfmt::skip]
            spans.push(Span { key, start, version, id: at, times, rest, end });
        }
        (body, spans)
    }

    fn closes(ids: impl Iterator<Item = i64>) -> Vec<Closed> {
        ids.map(|id| Closed {
            id,
            last_seen: id,
            closed_at: id + 1,
            closed_by: 0,
        })
        .collect()
    }

    /// Rows forgotten, told again or kept anew leave garbage in the arena,
    /// which is made again of the rows kept: each still gives its own
    /// bytes, and the arena holds about what is kept.
    #[test]
    fn kept_rows_give_their_own_bytes_as_the_arena_is_made_again() {
        let mut kept = Kept::default();
        let (b, spans) = body(0, 400);
        kept.acked(&b, &spans, |_, _| false);
        assert_eq!(kept.len(), 400);
        // Half forgotten (shipped), a quarter changed by something else.
        kept.forget((0..200).map(|id| id * 2));
        let changed: Vec<i64> = (0..100).map(|i| i * 4 + 1).collect();
        kept.told(2, &changed, &[]);
        let left: Vec<i64> = (0..400).filter(|id| id % 4 == 3).collect();
        kept.told(3, &left, &closes(left.iter().copied()));
        let (b2, spans2) = body(1000, 50);
        kept.acked(&b2, &spans2, |_, _| false);
        let mut live = 0;
        for id in (0..400).chain(1000..1050) {
            let row = kept.closed((3, id));
            if id < 1000 && id % 4 == 3 {
                let (bytes, c) = row.expect("kept, and its close told");
                assert_eq!(bytes.head, b"HEAD");
                assert_eq!(bytes.ids, format!("id{id}:").as_bytes());
                let rest = format!("rest of {id} {}", "x".repeat(id as usize % 50));
                assert_eq!(bytes.rest, rest.as_bytes());
                assert_eq!(c.closed_at, id + 1);
                live += bytes.ids.len() + bytes.rest.len();
            } else {
                assert!(row.is_none(), "{id}");
            }
        }
        assert_eq!(kept.len(), 150);
        for id in 1000..1050 {
            live += kept.rows[&id].len as usize;
        }
        assert!(kept.garbage < ARENA_SLACK + live, "{} {live}", kept.garbage);
        assert_eq!(kept.arena.len(), live + kept.garbage);
        kept.clear();
        assert_eq!((kept.len(), kept.arena.len()), (0, 0));
    }
}
