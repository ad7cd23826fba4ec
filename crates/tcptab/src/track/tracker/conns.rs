//! The connections a tracker follows, by id ([`Conns`]: a slab, not a
//! hash map) and by their sockets' keys ([`Keys`]); the cookies of those
//! that ended lately ([`Ended`]).
//!
//! Every socket of every poll looks up its connection, and a poll walks
//! them all for those it did not find: with tens of thousands followed
//! (a churn's TIME_WAITs), a hash map's probe of buckets of a connection's
//! size each was a cache miss more per socket. Here an id names its slot:
//! the low 32 bits are the slot plus one, the high ones how many
//! connections the slot held before, so an id is never given twice while
//! the tracker lives (a connection's watcher may remember it after its
//! end), and the first one given is 1.

use std::collections::VecDeque;

use super::{remove_if_is, Map, Tracked};
use crate::model::Key;

pub(super) type Conns = Slab<Tracked>;

/// A slot of a [`Slab`]: its id, and what it holds (None: free).
pub(super) type Slot<T> = (u64, Option<T>);

#[derive(Debug)]
pub(super) struct Slab<T> {
    slots: Vec<Slot<T>>,
    /// Each slot's mark, apart ([`FREE`] for a free slot): a poll walks
    /// them all for the connections it did not see, and reads no
    /// connection it saw.
    marks: Vec<u64>,
    free: Vec<u32>,
    len: usize,
}

/// The mark of a free slot.
const FREE: u64 = u64::MAX;

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            slots: Vec::new(),
            marks: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Slab<T> {
    /// The id the next [`Slab::insert`] must be given: a free slot's, or
    /// a new one's, taken (an id never inserted leaves its slot unused).
    pub(super) fn next_id(&mut self) -> u64 {
        if let Some(slot) = self.free.pop() {
            return self.slots[slot as usize].0;
        }
        let slot = self.slots.len();
        let slot = u32::try_from(slot).expect("fewer than 2^32 connections followed at once");
        self.slots.push((u64::from(slot) + 1, None));
        self.marks.push(FREE);
        u64::from(slot) + 1
    }

    fn slot(&self, id: u64) -> Option<usize> {
        let slot = slot_of(id)?;
        (self.slots.get(slot)?.0 == id).then_some(slot)
    }

    /// Follow `t` under `id`, which [`Slab::next_id`] gave, marked `mark`
    /// (less than `u64::MAX`).
    pub(super) fn insert(&mut self, id: u64, t: T, mark: u64) {
        let slot = self.slot(id).expect("an id next_id gave");
        let (_, held) = &mut self.slots[slot];
        assert!(held.is_none(), "connection {id} followed twice");
        *held = Some(t);
        self.marks[slot] = mark.min(FREE - 1);
        self.len += 1;
    }

    /// The mark of `id`, if it is followed.
    pub(super) fn mark(&self, id: u64) -> Option<u64> {
        let slot = self.slot(id)?;
        Some(self.marks[slot]).filter(|&m| m != FREE)
    }

    /// Mark `id` (if followed) `mark` (less than `u64::MAX`).
    pub(super) fn set_mark(&mut self, id: u64, mark: u64) {
        if let Some(slot) = self.slot(id).filter(|&s| self.marks[s] != FREE) {
            self.marks[slot] = mark.min(FREE - 1);
        }
    }

    /// Each followed one not marked `mark`, with its id, in the order of
    /// their slots: only their slots are read.
    pub(super) fn unmarked(&self, mark: u64) -> impl Iterator<Item = (u64, &T)> + '_ {
        self.marks
            .iter()
            .enumerate()
            .filter(move |&(_, &m)| m != mark && m != FREE)
            .filter_map(|(slot, _)| {
                let (id, t) = &self.slots[slot];
                t.as_ref().map(|t| (*id, t))
            })
    }

    pub(super) fn get(&self, id: &u64) -> Option<&T> {
        self.slots[self.slot(*id)?].1.as_ref()
    }

    pub(super) fn get_mut(&mut self, id: &u64) -> Option<&mut T> {
        let slot = self.slot(*id)?;
        self.slots[slot].1.as_mut()
    }

    /// No longer followed: its slot is free, under the next id.
    pub(super) fn remove(&mut self, id: &u64) -> Option<T> {
        let slot = self.slot(*id)?;
        let (held_id, held) = &mut self.slots[slot];
        let t = held.take()?;
        *held_id = held_id.wrapping_add(1 << 32);
        self.marks[slot] = FREE;
        self.free.push(slot as u32);
        self.len -= 1;
        Some(t)
    }

    /// Each followed connection with its id, in the order of their slots.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&u64, &T)> + '_ {
        self.slots
            .iter()
            .filter_map(|(id, t)| t.as_ref().map(|t| (id, t)))
    }

    pub(super) fn values(&self) -> impl Iterator<Item = &T> + '_ {
        self.iter().map(|(_, t)| t)
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Where the slot of `id` and its mark are (nothing read there: for
    /// [`ahead`](super::ahead)).
    pub(super) fn slot_at(&self, id: u64) -> Option<(*const u8, *const u64)> {
        let at = slot_of(id)?;
        let slot = self.slots.get(at)?;
        Some((
            std::ptr::from_ref(slot).cast(),
            std::ptr::from_ref(self.marks.get(at)?),
        ))
    }

    /// The first slot that holds something, and what.
    pub(super) fn first(&self) -> Option<(&Slot<T>, &T)> {
        self.slots
            .iter()
            .find_map(|slot| slot.1.as_ref().map(|t| (slot, t)))
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl<T> std::ops::Index<&u64> for Slab<T> {
    type Output = T;

    fn index(&self, id: &u64) -> &T {
        self.get(id).expect("a connection followed")
    }
}

/// Connections by the keys of their sockets. A socket's cookie is what
/// netlink gives, and the key most looked up: its index holds 16 bytes a
/// key, not a [`Key`]'s 80 (the ends /proc's keys carry).
///
/// A poll lists the sockets in the kernel's order, which stays from one
/// poll to the next (its hash chains'): a poll's cookie lookups
/// ([`Keys::find_in_order`]) expect the connection that came after the
/// last one found in the poll before, and look it up in the map only when
/// it is not that one. What is expected is checked against what the map
/// says (`owned`), never taken on trust.
#[derive(Debug, Default)]
pub(super) struct Keys {
    cookies: Map<(u64, u64), u64>,
    others: Map<Key, u64>,
    /// By slot ([`slot_of`]): the cookie key its connection was last
    /// given in `cookies`, while `cookies` gives it that connection, and
    /// where the connection was in the last poll's `order`.
    owned: Vec<Option<Owned>>,
    /// The connections the last poll's cookies found, in its order (and
    /// the room of the order before, for the next poll's).
    order: Vec<u64>,
    spare: Vec<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Owned {
    key: (u64, u64),
    id: u64,
    /// In the last poll's `order` (u32::MAX: not in it).
    at: u32,
}

/// The slot an id names ([`Slab`]'s ids).
fn slot_of(id: u64) -> Option<usize> {
    ((id & 0xffff_ffff) as usize).checked_sub(1)
}

/// Where a poll's lookups are in the last poll's order, and the order of
/// this one's.
#[derive(Debug, Default)]
pub(super) struct InOrder {
    at: usize,
    found: Vec<u64>,
}

impl Keys {
    pub(super) fn get(&self, key: &Key) -> Option<&u64> {
        match *key {
            Key::Cookie { netns, cookie } => self.cookies.get(&(netns, cookie)),
            _ => self.others.get(key),
        }
    }

    pub(super) fn contains_key(&self, key: &Key) -> bool {
        self.get(key).is_some()
    }

    fn owned_mut(&mut self, id: u64) -> Option<&mut Option<Owned>> {
        self.owned.get_mut(slot_of(id)?)
    }

    /// Whether `cookies` gives `key` to `id` (as `owned` knows it).
    fn owns(&self, id: u64, key: (u64, u64)) -> Option<Owned> {
        let owned = (*self.owned.get(slot_of(id)?)?)?;
        (owned.id == id && owned.key == key).then_some(owned)
    }

    pub(super) fn insert(&mut self, key: Key, id: u64) -> Option<u64> {
        let Key::Cookie { netns, cookie } = key else {
            return self.others.insert(key, id);
        };
        let key = (netns, cookie);
        let before = self.cookies.insert(key, id);
        if let Some(before) = before.filter(|&b| b != id) {
            if self.owns(before, key).is_some() {
                *self.owned_mut(before).expect("owned") = None;
            }
        }
        let Some(slot) = slot_of(id) else { return before };
        if self.owned.len() <= slot {
            self.owned.resize(slot + 1, None);
        }
        self.owned[slot] = Some(Owned {
            key,
            id,
            at: u32::MAX,
        });
        before
    }

    /// `key` no longer gives a connection, if it gives `id` (one lookup).
    pub(super) fn remove_if(&mut self, key: &Key, id: u64) {
        let Key::Cookie { netns, cookie } = *key else {
            remove_if_is(&mut self.others, *key, id);
            return;
        };
        if remove_if_is(&mut self.cookies, (netns, cookie), id)
            && self.owns(id, (netns, cookie)).is_some()
        {
            *self.owned_mut(id).expect("owned") = None;
        }
    }

    /// [`Keys::get`] for the sockets of a poll, in their order: the one
    /// after the last found in the poll before is tried first.
    pub(super) fn find_in_order(&mut self, key: &Key, poll: &mut InOrder) -> Option<u64> {
        let Key::Cookie { netns, cookie } = *key else {
            return self.others.get(key).copied();
        };
        let key = (netns, cookie);
        let expected = self.order.get(poll.at).copied();
        let id = match expected.filter(|&id| self.owns(id, key).is_some()) {
            Some(id) => {
                poll.at += 1;
                id
            }
            None => {
                let id = *self.cookies.get(&key)?;
                match self.owns(id, key) {
                    Some(o) if o.at != u32::MAX => poll.at = o.at as usize + 1,
                    _ => {}
                }
                id
            }
        };
        debug_assert_eq!(self.cookies.get(&key), Some(&id), "{key:?}");
        let at = u32::try_from(poll.found.len()).unwrap_or(u32::MAX);
        if self.owns(id, key).is_some() {
            if let Some(Some(owned)) = self.owned_mut(id) {
                owned.at = at;
            }
        }
        poll.found.push(id);
        Some(id)
    }

    /// The connection expected `by` sockets after the next one of `poll`
    /// (the last poll's order), with where its entry of `owned` is.
    pub(super) fn ahead(&self, poll: &InOrder, by: usize) -> Option<(u64, *const Option<Owned>)> {
        let id = *self.order.get(poll.at + by)?;
        let owned = self.owned.get(slot_of(id)?)?;
        Some((id, std::ptr::from_ref(owned)))
    }

    /// A poll's lookups begin ([`Keys::find_in_order`]).
    pub(super) fn begin(&mut self) -> InOrder {
        let mut found = std::mem::take(&mut self.spare);
        found.clear();
        InOrder { at: 0, found }
    }

    /// The poll's lookups are over: its order is the next one's guide.
    pub(super) fn polled(&mut self, poll: InOrder) {
        self.spare = std::mem::replace(&mut self.order, poll.found);
    }
}

/// The cookies of the connections that ended lately (the last `kept`):
/// a late destroy notification of one (its socket outlived its TIME_WAIT
/// in a process's hands) is not a new connection. Only cookies: the
/// socket of a notification always has one. Kept as 16-byte pairs, not
/// [`Key`]s (88 bytes, for the ends of /proc's sockets): every end adds
/// one, and under churn the set is always full.
#[derive(Debug)]
pub(super) struct Ended {
    cookies: std::collections::HashSet<(u64, u64), super::Fast>,
    order: VecDeque<(u64, u64)>,
    kept: usize,
}

impl Default for Ended {
    fn default() -> Ended {
        Ended::new(super::ENDED_KEPT)
    }
}

impl Ended {
    pub(super) fn new(kept: usize) -> Ended {
        Ended {
            cookies: Default::default(),
            order: VecDeque::new(),
            kept,
        }
    }

    pub(super) fn insert(&mut self, key: &Key) {
        let Key::Cookie { netns, cookie } = *key else { return };
        if !self.cookies.insert((netns, cookie)) {
            return;
        }
        self.order.push_back((netns, cookie));
        if self.order.len() > self.kept {
            if let Some(old) = self.order.pop_front() {
                self.cookies.remove(&old);
            }
        }
    }

    pub(super) fn contains(&self, key: &Key) -> bool {
        matches!(*key, Key::Cookie { netns, cookie } if self.cookies.contains(&(netns, cookie)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_cookies_ended_are_kept_and_only_cookies() {
        let cookie = |netns, cookie| Key::Cookie { netns, cookie };
        let mut ended = Ended::new(3);
        for c in 1..=4 {
            ended.insert(&cookie(7, c));
        }
        // Ended again: still one of the three kept, not two.
        ended.insert(&cookie(7, 4));
        ended.insert(&cookie(8, 1));
        let kept: Vec<bool> = [
            cookie(7, 1),
            cookie(7, 2),
            cookie(7, 3),
            cookie(7, 4),
            cookie(8, 1),
        ]
        .iter()
        .map(|k| ended.contains(k))
        .collect();
        assert_eq!(kept, [false, false, true, true, true]);
        // A /proc key (no cookie) is never kept.
        let ends = Key::Ends {
            netns: 7,
            inode: 9,
            local: "127.0.0.1:1".parse().unwrap(),
            remote: "127.0.0.1:2".parse().unwrap(),
        };
        ended.insert(&ends);
        assert!(!ended.contains(&ends));
        assert!(ended.contains(&cookie(7, 3)));
    }

    #[test]
    fn a_key_is_removed_only_from_the_connection_it_gives() {
        let mut keys = Keys::default();
        let key = Key::Cookie {
            netns: 0,
            cookie: 5,
        };
        keys.insert(key, 1);
        keys.remove_if(&key, 2);
        assert_eq!(keys.get(&key), Some(&1));
        keys.remove_if(&key, 1);
        assert_eq!(keys.get(&key), None);
    }

    #[test]
    fn an_id_names_one_connection_for_the_tracker_s_life() {
        let mut slab = Slab::default();
        let a = slab.next_id();
        slab.insert(a, "a", 0);
        let b = slab.next_id();
        slab.insert(b, "b", 0);
        assert_eq!((a, b), (1, 2));
        assert_eq!(slab.remove(&a), Some("a"));
        assert_eq!(slab.remove(&a), None);
        // The slot of `a` again, under another id: `a` finds nothing.
        let c = slab.next_id();
        slab.insert(c, "c", 0);
        assert!(![a, b].contains(&c), "{c}");
        assert_eq!(slab.get(&a), None);
        assert_eq!((slab[&b], slab[&c]), ("b", "c"));
        assert_eq!(slab.len(), 2);
        let all: Vec<_> = slab.iter().map(|(&id, &t)| (id, t)).collect();
        assert_eq!(all, [(c, "c"), (b, "b")]);
        // An id next_id gave, taken after another slot was freed.
        let d = slab.next_id();
        slab.remove(&b);
        slab.insert(d, "d", 0);
        let e = slab.next_id();
        slab.insert(e, "e", 0);
        assert_eq!((slab[&d], slab[&e], slab.len()), ("d", "e", 3));
        assert!(![a, b, c, d].contains(&e));
        assert_eq!(slab.get(&0), None);
        // Two ids taken before either is inserted are two slots.
        slab.remove(&c);
        slab.remove(&d);
        let (f, g) = (slab.next_id(), slab.next_id());
        assert_ne!(f, g);
        slab.insert(g, "g", 0);
        slab.insert(f, "f", 0);
        assert_eq!((slab[&f], slab[&g], slab.len()), ("f", "g", 3));
    }

    /// A poll's walk for the connections it did not see finds those
    /// marked otherwise, never a free slot, and follows each mark as set.
    #[test]
    fn the_unmarked_are_the_followed_marked_otherwise() {
        let mut slab = Slab::default();
        let ids: Vec<u64> = (0..5u64)
            .map(|m| {
                let id = slab.next_id();
                slab.insert(id, m, m % 2);
                id
            })
            .collect();
        // A slot taken and never filled, and one freed: neither is walked.
        let _unused = slab.next_id();
        slab.remove(&ids[2]);
        let walked = |slab: &Slab<u64>, mark| -> Vec<u64> {
            slab.unmarked(mark).map(|(id, &t)| id * 10 + t).collect()
        };
        assert_eq!(walked(&slab, 1), [ids[0] * 10, ids[4] * 10 + 4]);
        assert_eq!(walked(&slab, 0), [ids[1] * 10 + 1, ids[3] * 10 + 3]);
        slab.set_mark(ids[0], 1);
        slab.set_mark(ids[2], 1);
        assert_eq!(slab.mark(ids[0]), Some(1));
        assert_eq!(slab.mark(ids[2]), None);
        assert_eq!(walked(&slab, 1), [ids[4] * 10 + 4]);
        // The freed slot, filled again under another id, with its own mark.
        let again = slab.next_id();
        slab.insert(again, 9, 3);
        assert_eq!(
            walked(&slab, 3),
            [
                ids[0] * 10,
                ids[1] * 10 + 1,
                ids[3] * 10 + 3,
                ids[4] * 10 + 4
            ]
        );
        assert_eq!(slab.mark(again), Some(3));
    }

    fn cookie(n: u64) -> Key {
        Key::Cookie {
            netns: 7,
            cookie: n,
        }
    }

    /// What a run of polls and changes of the keys does, in the terms of
    /// [`keys_found_in_order_are_those_the_map_gives`].
    #[derive(Debug, Clone)]
    enum Step {
        /// A poll listing these cookies, in this order.
        Poll(Vec<u64>),
        /// A new connection given this cookie.
        Open(u64),
        /// The connection of this cookie ends (its slot freed).
        End(u64),
        /// This cookie given to the connection of another.
        Move(u64, u64),
    }

    fn step() -> impl proptest::strategy::Strategy<Value = Step> {
        use proptest::prelude::*;
        prop_oneof![
            3 => proptest::collection::vec(0u64..24, 0..30).prop_map(Step::Poll),
            2 => (0u64..24).prop_map(Step::Open),
            1 => (0u64..24).prop_map(Step::End),
            1 => (0u64..24, 0u64..24).prop_map(|(a, b)| Step::Move(a, b)),
        ]
    }

    proptest::proptest! {
        /// Whatever the order of a poll, and whatever changed since the
        /// last one, a lookup in order finds what the map gives.
        #[test]
        fn keys_found_in_order_are_those_the_map_gives(
            steps in proptest::collection::vec(step(), 1..60),
        ) {
            let mut slab: Slab<u64> = Slab::default();
            let mut keys = Keys::default();
            // The polls of a stable order too: each poll twice.
            for step in steps.iter().flat_map(|s| [s.clone(), s.clone()]) {
                match step {
                    Step::Poll(cookies) => {
                        let mut poll = keys.begin();
                        for c in cookies {
                            let want = keys.get(&cookie(c)).copied();
                            proptest::prop_assert_eq!(keys.find_in_order(&cookie(c), &mut poll), want);
                        }
                        keys.polled(poll);
                    }
                    Step::Open(c) if keys.get(&cookie(c)).is_none() => {
                        let id = slab.next_id();
                        slab.insert(id, c, 0);
                        keys.insert(cookie(c), id);
                    }
                    Step::End(c) => {
                        if let Some(&id) = keys.get(&cookie(c)) {
                            keys.remove_if(&cookie(c), id);
                            slab.remove(&id);
                        }
                    }
                    Step::Move(c, to) => {
                        if let Some(&id) = keys.get(&cookie(to)) {
                            keys.insert(cookie(c), id);
                        }
                    }
                    Step::Open(_) => {}
                }
            }
        }
    }
}
