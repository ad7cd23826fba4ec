//! The connections a tracker follows, by id ([`Conns`]: a slab, not a
//! hash map) and by their sockets' keys ([`Keys`]).
//!
//! Every socket of every poll looks up its connection, and a poll walks
//! them all for those it did not find: with tens of thousands followed
//! (a churn's TIME_WAITs), a hash map's probe of buckets of a connection's
//! size each was a cache miss more per socket. Here an id names its slot:
//! the low 32 bits are the slot plus one, the high ones how many
//! connections the slot held before, so an id is never given twice while
//! the tracker lives (a connection's watcher may remember it after its
//! end), and the first one given is 1.

use super::{Map, Tracked};
use crate::model::Key;

pub(super) type Conns = Slab<Tracked>;

#[derive(Debug)]
pub(super) struct Slab<T> {
    /// Each slot's id and connection (None: free).
    slots: Vec<(u64, Option<T>)>,
    free: Vec<u32>,
    len: usize,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Slab<T> {
    /// The id the next [`Slab::insert`] must be given (a free slot's).
    pub(super) fn next_id(&mut self) -> u64 {
        if let Some(&slot) = self.free.last() {
            return self.slots[slot as usize].0;
        }
        let slot = self.slots.len();
        let slot = u32::try_from(slot).expect("fewer than 2^32 connections followed at once");
        self.slots.push((u64::from(slot) + 1, None));
        self.free.push(slot);
        u64::from(slot) + 1
    }

    fn slot(&self, id: u64) -> Option<usize> {
        let slot = ((id & 0xffff_ffff) as usize).checked_sub(1)?;
        (self.slots.get(slot)?.0 == id).then_some(slot)
    }

    /// Follow `t` under `id`, which [`Slab::next_id`] gave.
    pub(super) fn insert(&mut self, id: u64, t: T) {
        let slot = self.slot(id).expect("an id next_id gave");
        let (_, held) = &mut self.slots[slot];
        assert!(held.is_none(), "connection {id} followed twice");
        *held = Some(t);
        // The slot next_id gave is the last free one (unless another was
        // freed since).
        match self.free.last() {
            Some(&last) if last as usize == slot => {
                self.free.pop();
            }
            _ => self.free.retain(|&s| s as usize != slot),
        }
        self.len += 1;
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
#[derive(Debug, Default)]
pub(super) struct Keys {
    cookies: Map<(u64, u64), u64>,
    others: Map<Key, u64>,
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

    pub(super) fn insert(&mut self, key: Key, id: u64) -> Option<u64> {
        match key {
            Key::Cookie { netns, cookie } => self.cookies.insert((netns, cookie), id),
            _ => self.others.insert(key, id),
        }
    }

    pub(super) fn remove(&mut self, key: &Key) -> Option<u64> {
        match *key {
            Key::Cookie { netns, cookie } => self.cookies.remove(&(netns, cookie)),
            _ => self.others.remove(key),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_names_one_connection_for_the_tracker_s_life() {
        let mut slab = Slab::default();
        let a = slab.next_id();
        slab.insert(a, "a");
        let b = slab.next_id();
        slab.insert(b, "b");
        assert_eq!((a, b), (1, 2));
        assert_eq!(slab.remove(&a), Some("a"));
        assert_eq!(slab.remove(&a), None);
        // The slot of `a` again, under another id: `a` finds nothing.
        let c = slab.next_id();
        slab.insert(c, "c");
        assert!(![a, b].contains(&c), "{c}");
        assert_eq!(slab.get(&a), None);
        assert_eq!((slab[&b], slab[&c]), ("b", "c"));
        assert_eq!(slab.len(), 2);
        let all: Vec<_> = slab.iter().map(|(&id, &t)| (id, t)).collect();
        assert_eq!(all, [(c, "c"), (b, "b")]);
        // An id next_id gave, taken after another slot was freed.
        let d = slab.next_id();
        slab.remove(&b);
        slab.insert(d, "d");
        let e = slab.next_id();
        slab.insert(e, "e");
        assert_eq!((slab[&d], slab[&e], slab.len()), ("d", "e", 3));
        assert!(![a, b, c, d].contains(&e));
        assert_eq!(slab.get(&0), None);
    }
}
