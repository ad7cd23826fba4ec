//! What waits above the mark, as a shipper knows it: what its writer
//! told it ([`Feed`]), held in memory up to a bound, and the file read
//! again when that is not everything.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::Arc;

use rusqlite::{params, Connection};

use super::kept::Kept;
use super::HashMap;
use crate::history::rows::Closed;

/// The rows a shipper keeps in memory, at most: beyond, it reads the file
/// again for the next ones when these are shipped.
pub(super) const HELD: usize = 200_000;

/// Transactions told to the shipper and not taken yet, at most: beyond,
/// the writer does not wait, and the shipper reads the file instead.
const TOLD: usize = 4096;

/// What a writer tells its shipper after each transaction: the rows it
/// changed ([`crate::history::Writer::ship`]).
#[derive(Debug)]
pub struct Feed {
    told: Receiver<Told>,
    /// The writer could not tell everything (the shipper did not take it
    /// in time): what is above the mark is read from the file again.
    missed: Arc<AtomicBool>,
}

#[derive(Debug)]
pub(in crate::history) struct Teller {
    told: SyncSender<Told>,
    missed: Arc<AtomicBool>,
}

#[derive(Debug)]
struct Told {
    seq: i64,
    at: i64,
    ids: Vec<i64>,
    /// Those of `ids` whose close was all that changed.
    closes: Vec<Closed>,
}

/// A writer's feed to its shipper, and the writer's end of it.
pub(in crate::history) fn feed() -> (Teller, Feed) {
    let (told, taken) = std::sync::mpsc::sync_channel(TOLD);
    let missed = Arc::new(AtomicBool::new(false));
    (
        Teller {
            told,
            missed: missed.clone(),
        },
        Feed {
            told: taken,
            missed,
        },
    )
}

impl Teller {
    /// The transaction `seq` (at `at`) changed the rows `ids` (committed);
    /// of them, `closes` only by closing them.
    pub(in crate::history) fn tell(&self, seq: i64, at: i64, ids: Vec<i64>, closes: Vec<Closed>) {
        let told = Told {
            seq,
            at,
            ids,
            closes,
        };
        match self.told.try_send(told) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(_)) => self.missed.store(true, Ordering::SeqCst),
        }
    }
}

/// What waits above the mark, as the shipper knows it.
#[derive(Debug, Default)]
pub(super) struct Above {
    /// (seq, connection), oldest change first; each connection once, under
    /// its latest number.
    pub(super) keys: Waits,
    /// When each transaction above the mark was (ms since the epoch).
    pub(super) times: BTreeMap<i64, i64>,
    /// `keys` holds every row above the mark (false: those beyond it are
    /// found by reading the file again).
    pub(super) all: bool,
    /// Rows above the mark not in `keys` (as of the last reading of the
    /// file, and those told since), when not `all`.
    pub(super) beyond: u64,
    pub(super) mark: (i64, i64),
    /// Rows held at most ([`HELD`]).
    pub(super) held: usize,
    /// Rows shipped in TIME_WAIT, whose close is shipped without reading
    /// them again while all that was told of them since is that close.
    pub(super) kept: Kept,
}

impl Above {
    pub(super) fn add(&mut self, key: (i64, i64), at: i64) {
        let (seq, id) = key;
        if key <= self.mark || self.keys.seq_of(id).is_some_and(|s| s >= seq) {
            return;
        }
        self.keys.push(key);
        // A transaction's rows come together: its time is most often
        // the last one kept.
        match self.times.last_entry() {
            Some(mut last) if *last.key() == seq => *last.get_mut() = (*last.get()).min(at),
            _ => {
                let t = self.times.entry(seq).or_insert(at);
                *t = (*t).min(at);
            }
        }
    }

    /// What was told since: kept while everything above the mark is held
    /// (and within [`HELD`]); else left to the next reading of the file.
    pub(super) fn take(&mut self, feed: &Feed) {
        while let Ok(told) = feed.told.try_recv() {
            if !self.all {
                self.beyond += told.ids.len() as u64;
                self.kept.clear();
                continue;
            }
            self.kept.told(told.seq, &told.ids, &told.closes);
            for id in told.ids {
                self.add((told.seq, id), told.at);
            }
        }
        // Looked at after the feed was read: a transaction the writer could
        // not tell came after every one read. What is held may then miss
        // rows below others it holds: the file is read again, from the mark.
        if feed.missed.swap(false, Ordering::SeqCst) {
            self.all = false;
            self.kept.clear();
            self.beyond += self.keys.len() as u64;
            self.keys.clear();
        }
        if self.all && self.keys.len() > self.held {
            self.all = false;
            self.kept.clear();
            while self.keys.len() > self.held {
                self.keys.pop_newest();
                self.beyond += 1;
            }
        }
    }

    /// The file's rows above the mark, oldest change first, up to
    /// [`HELD`]; `fed`: what the writer tells from now on is kept.
    pub(super) fn read(&mut self, tx: &Connection, fed: bool) -> rusqlite::Result<()> {
        self.keys.clear();
        let mut stmt = tx.prepare_cached(
            "SELECT changed, id, first_seen + coalesce(closed_at, last_seen) FROM connection_rows
             WHERE (changed, id) > (?1, ?2) ORDER BY changed, id LIMIT ?3",
        )?;
        let mut rows = stmt.query(params![self.mark.0, self.mark.1, self.held as i64 + 1])?;
        let mut more = false;
        while let Some(r) = rows.next()? {
            if self.keys.len() == self.held {
                more = true;
                break;
            }
            self.add((r.get(0)?, r.get(1)?), r.get(2)?);
        }
        self.beyond = 0;
        if more {
            let (seq, id) = self.mark;
            self.beyond = tx.query_row(
                "SELECT count(*) FROM connection_rows WHERE (changed, id) > (?1, ?2)",
                params![seq, id],
                |r| r.get::<_, i64>(0),
            )? as u64
                - self.held as u64;
        }
        self.all = fed && !more;
        Ok(())
    }

    pub(super) fn forget(&mut self, keys: &[(i64, i64)]) {
        self.kept.forget(keys.iter().map(|&(_, id)| id));
        self.keys.remove_all(keys.iter().copied());
    }

    /// The store has the rows `keys` (in order): forgotten, and the mark
    /// moved to the last.
    pub(super) fn acked(&mut self, keys: &[(i64, i64)]) {
        self.forget(keys);
        if let Some(&last) = keys.iter().max() {
            self.mark = self.mark.max(last);
        }
        let mark = self.mark.0;
        self.times.retain(|&seq, _| seq > mark);
    }

    pub(super) fn rows(&self) -> u64 {
        self.keys.len() as u64 + self.beyond
    }

    pub(super) fn oldest(&self) -> Option<i64> {
        let (seq, _) = self.keys.first()?;
        self.times.get(&seq).copied()
    }
}

/// Stale entries that [`Waits`] keeps beyond as many as it holds live
/// (few in tests, so that they clear it often).
const STALE: usize = if cfg!(test) { 16 } else { 1024 };

/// Rows waiting, each once under its latest number, oldest first: a
/// queue in (seq, id) order, in which an entry that a later number of its
/// row made stale is skipped, not removed, until it reaches the front (a
/// row told again, or shipped, costs no search of the queue).
#[derive(Debug, Default)]
pub(super) struct Waits {
    queue: VecDeque<(i64, i64)>,
    /// Each waiting row's number: an entry of `queue` is live when it is
    /// its row's.
    seq_of: HashMap<i64, i64>,
}

impl Waits {
    fn live(&self, &(seq, id): &(i64, i64)) -> bool {
        self.seq_of.get(&id) == Some(&seq)
    }

    pub(super) fn len(&self) -> usize {
        self.seq_of.len()
    }

    /// The number `id` waits under.
    pub(super) fn seq_of(&self, id: i64) -> Option<i64> {
        self.seq_of.get(&id).copied()
    }

    /// The waiting rows, oldest first.
    pub(super) fn iter(&self) -> impl Iterator<Item = (i64, i64)> + '_ {
        self.queue.iter().copied().filter(|k| self.live(k))
    }

    pub(super) fn first(&self) -> Option<(i64, i64)> {
        self.iter().next()
    }

    /// `key` waits, in place of an older number of its row. Keys come in
    /// order (a transaction's after the last's, its rows by id); one that
    /// does not goes to its place.
    pub(super) fn push(&mut self, key: (i64, i64)) {
        self.seq_of.insert(key.1, key.0);
        match self.queue.back() {
            Some(&last) if last >= key => {
                if let Err(at) = self.queue.binary_search(&key) {
                    self.queue.insert(at, key);
                }
            }
            _ => self.queue.push_back(key),
        }
        self.tidy();
    }

    /// Stale entries are at most about as many as the live ones.
    fn tidy(&mut self) {
        if self.queue.len() > 2 * self.seq_of.len() + STALE {
            let seq_of = &self.seq_of;
            self.queue.retain(|(seq, id)| seq_of.get(id) == Some(seq));
        }
    }

    /// Each of `keys` waits no more (if it still waited under that
    /// number): a batch's, whose stale entries before them are passed
    /// once, not once a key.
    pub(super) fn remove_all(&mut self, keys: impl IntoIterator<Item = (i64, i64)>) {
        for (seq, id) in keys {
            if let Entry::Occupied(waits) = self.seq_of.entry(id) {
                if *waits.get() == seq {
                    waits.remove();
                }
            }
        }
        while self.queue.front().is_some_and(|k| !self.live(k)) {
            self.queue.pop_front();
        }
        self.tidy();
    }

    /// The newest row waits no more.
    pub(super) fn pop_newest(&mut self) {
        while let Some(key) = self.queue.pop_back() {
            if self.live(&key) {
                self.seq_of.remove(&key.1);
                break;
            }
        }
        self.tidy();
    }

    pub(super) fn clear(&mut self) {
        self.queue.clear();
        self.seq_of.clear();
    }

    #[cfg(test)]
    pub(super) fn is_empty(&self) -> bool {
        self.seq_of.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holding_all(held: usize) -> Above {
        Above {
            held,
            all: true,
            mark: (-1, 0),
            ..Above::default()
        }
    }

    /// A transaction the writer could not tell (the feed full) may have
    /// changed rows below others held: nothing held is shipped before the
    /// file is read again.
    #[test]
    fn a_transaction_not_told_makes_the_file_read_again() {
        let (teller, feed) = feed();
        let mut above = holding_all(100_000);
        teller.tell(1, 10, vec![7], vec![]);
        above.take(&feed);
        assert_eq!(above.keys.iter().collect::<Vec<_>>(), [(1, 7)]);
        assert_eq!(above.oldest(), Some(10));
        for seq in 2..(TOLD as i64 + 3) {
            teller.tell(seq, 10, vec![seq + 1000], vec![]);
        }
        above.take(&feed);
        assert!(!above.all && above.keys.is_empty(), "{above:?}");
        assert_eq!(above.rows(), TOLD as u64 + 1);
    }

    /// A row told again waits once, under its last number; what is at or
    /// below the mark is not held; beyond what it holds, the highest go.
    #[test]
    fn each_row_is_held_once_under_its_last_number() {
        let (teller, feed) = feed();
        let mut above = holding_all(3);
        above.mark = (1, 9);
        teller.tell(1, 0, vec![5, 9], vec![]);
        teller.tell(2, 0, vec![5, 6], vec![]);
        teller.tell(3, 0, vec![6], vec![]);
        above.take(&feed);
        let held: Vec<_> = above.keys.iter().collect();
        assert_eq!(held, [(2, 5), (3, 6)]);
        teller.tell(4, 0, vec![1, 2], vec![]);
        above.take(&feed);
        let held: Vec<_> = above.keys.iter().collect();
        assert_eq!(held, [(2, 5), (3, 6), (4, 1)]);
        assert!(!above.all);
        assert_eq!(above.rows(), 4);
        above.acked(&[(2, 5), (3, 6)]);
        assert_eq!(above.mark, (3, 6));
    }

    /// What `Waits` replaced: an ordered set of (seq, id) and each row's
    /// number. Both are given the same pushes (in order, or not), removals
    /// and drops of the newest, and hold the same rows in the same order.
    mod waits {
        use super::super::Waits;
        use proptest::prelude::*;
        use std::collections::{BTreeSet, HashMap};

        #[derive(Debug, Default)]
        struct Model {
            keys: BTreeSet<(i64, i64)>,
            seq_of: HashMap<i64, i64>,
        }

        impl Model {
            fn push(&mut self, (seq, id): (i64, i64)) {
                if let Some(old) = self.seq_of.insert(id, seq) {
                    self.keys.remove(&(old, id));
                }
                self.keys.insert((seq, id));
            }
            fn remove(&mut self, key: (i64, i64)) {
                if self.keys.remove(&key) {
                    self.seq_of.remove(&key.1);
                }
            }
            fn pop_newest(&mut self) {
                if let Some((_, id)) = self.keys.pop_last() {
                    self.seq_of.remove(&id);
                }
            }
        }

        #[derive(Debug, Clone)]
        enum Op {
            /// A transaction's rows, after every earlier one.
            Told(Vec<i64>),
            /// A row under a number of its own (a read of the file).
            Push(i64, i64),
            /// The n-th waiting row shipped (or a key that no longer waits).
            Remove(usize),
            /// The first n waiting rows shipped at once (a batch), and a
            /// key that no longer waits among them.
            Batch(usize, i64, i64),
            Stale(i64, i64),
            PopNewest,
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                4 => proptest::collection::vec(0..40i64, 0..8).prop_map(Op::Told),
                1 => (0..60i64, 0..40i64).prop_map(|(s, i)| Op::Push(s, i)),
                3 => (0..50usize).prop_map(Op::Remove),
                2 => (0..20usize, 0..60i64, 0..40i64).prop_map(|(n, s, i)| Op::Batch(n, s, i)),
                1 => (0..60i64, 0..40i64).prop_map(|(s, i)| Op::Stale(s, i)),
                1 => Just(Op::PopNewest),
            ]
        }

        proptest! {
            #[test]
            fn waits_as_the_ordered_set_did(ops in proptest::collection::vec(op(), 0..300)) {
                let (mut waits, mut model) = (Waits::default(), Model::default());
                let mut seq = 0;
                for op in ops {
                    match op {
                        Op::Told(mut ids) => {
                            seq += 1;
                            ids.sort_unstable();
                            ids.dedup();
                            for id in ids {
                                waits.push((seq, id));
                                model.push((seq, id));
                            }
                        }
                        // `Above::add` pushes no key at or below the one
                        // its row waits under.
                        Op::Push(s, id) => {
                            if model.seq_of.get(&id).is_none_or(|&old| old < s) {
                                waits.push((s, id));
                                model.push((s, id));
                            }
                        }
                        Op::Remove(n) => {
                            if let Some(&key) = model.keys.iter().nth(n) {
                                waits.remove_all([key]);
                                model.remove(key);
                            }
                        }
                        Op::Batch(n, s, id) => {
                            let mut keys: Vec<_> = model.keys.iter().take(n).copied().collect();
                            keys.insert(keys.len() / 2, (s, id));
                            waits.remove_all(keys.iter().copied());
                            for key in keys {
                                model.remove(key);
                            }
                        }
                        Op::Stale(s, id) => {
                            waits.remove_all([(s, id)]);
                            model.remove((s, id));
                        }
                        Op::PopNewest => {
                            waits.pop_newest();
                            model.pop_newest();
                        }
                    }
                    let held: Vec<_> = waits.iter().collect();
                    let want: Vec<_> = model.keys.iter().copied().collect();
                    prop_assert_eq!(&held, &want);
                    prop_assert_eq!(waits.len(), want.len());
                    prop_assert_eq!(waits.first(), want.first().copied());
                    for &(s, id) in &want {
                        prop_assert_eq!(waits.seq_of(id), Some(s));
                    }
                    prop_assert!(waits.queue.len() <= 2 * want.len() + super::super::STALE);
                }
            }
        }
    }
}
