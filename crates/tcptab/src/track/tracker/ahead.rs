//! A poll's connections asked of memory ahead of their look.
//!
//! A poll meets its sockets in the kernel's order, and each one's
//! connection lies somewhere else in the slab: under churn (tens of
//! thousands of TIME_WAITs that a poll lists again unchanged) the look at
//! one is a few reads of fields spread over its entry, each a cache miss,
//! and little else. The order of the poll before says which connection
//! comes a few sockets later ([`Keys::ahead`](super::conns::Keys::ahead)),
//! so the lines of the fields its look reads are asked for then, and have
//! come by the time it is looked at. A wrong guess only costs the request.
//! The connections a poll did not find are ended one after the other the
//! same way: the next ones' lines are asked for while one is ended.

use super::conns::Slot;
use super::Tracked;

/// How many sockets (or connections) ahead of the one looked at its
/// connection is asked for: a look takes about a tenth of a memory round
/// trip when what it reads is there, so its reads must be asked for some
/// looks before.
pub(super) const AHEAD: usize = 6;

/// Where the fields a look reads lie, from the start of a slot: the same
/// for every slot (one type's layout), measured on the first connection
/// seen.
#[derive(Debug, Default)]
pub(super) struct Lines {
    offsets: Vec<usize>,
}

impl Lines {
    /// Measured on `slot`, which holds `t`.
    pub(super) fn of(slot: &Slot<Tracked>, t: &Tracked) -> Lines {
        let at = |field: *const u8| (field as usize).wrapping_sub(slot as *const _ as usize);
        let entry = &t.conn.entry;
        let mut offsets = vec![
            at(std::ptr::from_ref(&slot.0).cast()),
            at(std::ptr::from_ref(&t.missing_since).cast()),
            at(std::ptr::from_ref(&t.phase).cast()),
            at(std::ptr::from_ref(&t.expires).cast()),
            at(std::ptr::from_ref(&t.conn.last_seen).cast()),
            at(std::ptr::from_ref(&t.conn.seen_by_poll).cast()),
            at(std::ptr::from_ref(&entry.socket).cast()),
            at(std::ptr::from_ref(&entry.socket)
                .cast::<u8>()
                .wrapping_add(std::mem::size_of_val(&entry.socket) - 1)),
            at(std::ptr::from_ref(&entry.owners).cast()),
            at(std::ptr::from_ref(&entry.workload).cast()),
            at(std::ptr::from_ref(&entry.namespace).cast()),
            at(std::ptr::from_ref(&entry.peer_pod).cast()),
            at(std::ptr::from_ref(&entry.source).cast()),
            at(std::ptr::from_ref(&entry.diag).cast()),
        ];
        let size = std::mem::size_of_val(slot);
        offsets.retain(|&o| o < size);
        offsets.sort_unstable();
        offsets.dedup();
        Lines { offsets }
    }

    pub(super) fn is_measured(&self) -> bool {
        !self.offsets.is_empty()
    }

    /// Ask for the lines of the slot at `base`.
    pub(super) fn fetch(&self, base: *const u8) {
        let mut last = usize::MAX;
        for &o in &self.offsets {
            let at = base.wrapping_add(o);
            let line = at as usize >> 6;
            if line != last {
                prefetch(at);
                last = line;
            }
        }
    }
}

/// Ask for the cache line of `at` (a hint: it reads nothing the program
/// sees, and never faults, whatever the address).
pub(super) fn prefetch<T>(at: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 only hints the cache: it has no effect the
    // program can observe and never faults, valid address or not; SSE,
    // which it needs, is part of every x86_64.
    #[allow(unsafe_code)]
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(at.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = at;
}
