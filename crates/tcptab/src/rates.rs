//! Per-connection rates from successive looks at the table: tcp_info's
//! cumulative `bytes_acked` (sent, and acknowledged by the peer) and
//! `bytes_received` counters, differenced between two looks, so a rate is
//! exact over the interval without capturing packets. What `tcptab top`
//! shows.
//!
//! A connection is known by whatever key the caller gives (the connection
//! tracker's id, say, which a TIME_WAIT keeps). The tracker keeps only the
//! connections of the last look: its memory is bounded by the table.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use std::hash::Hash;

use crate::model::Diag;

/// One connection's rates over the last interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Bytes received per second (tcp_info `bytes_received`); None when
    /// there is no earlier look of it or no tcp_info.
    pub rx_bytes_per_s: Option<f64>,
    /// Bytes sent and acknowledged per second (tcp_info `bytes_acked`).
    pub tx_bytes_per_s: Option<f64>,
    /// Since the tracker first saw it.
    pub age: Duration,
}

#[derive(Debug, Clone, Copy)]
struct Seen {
    first: Instant,
    at: Instant,
    counters: Option<(u64, u64)>,
    /// The look that saw it last.
    look: u64,
}

impl Seen {
    /// The rate from these counters to `counters` at `at` (None without
    /// both, or when `adjacent` is false).
    fn rate(&self, counters: Option<(u64, u64)>, at: Instant, adjacent: bool) -> Rate {
        let dt = at.saturating_duration_since(self.at).as_secs_f64();
        let per_s = |now: u64, then: u64| now.saturating_sub(then) as f64 / dt;
        // A sighting without counters before one with them was a request
        // socket (SYN_RECV: no tcp_info), which had moved no data yet.
        let before = self.counters.or(counters.map(|_| (0, 0)));
        let (rx, tx) = match (counters, before) {
            (Some((rx, tx)), Some((rx0, tx0))) if dt > 0.0 && adjacent => {
                (Some(per_s(rx, rx0)), Some(per_s(tx, tx0)))
            }
            _ => (None, None),
        };
        Rate {
            rx_bytes_per_s: rx,
            tx_bytes_per_s: tx,
            age: at.saturating_duration_since(self.first),
        }
    }
}

/// tcp_info's `bytes_received` and `bytes_acked`, the counters a rate is
/// taken of.
pub fn counters(diag: Option<&Diag>) -> Option<(u64, u64)> {
    diag.and_then(|d| d.tcp_info.as_ref())
        .map(|t| (t.bytes_received, t.bytes_acked))
}

/// Rates across looks (see the module documentation).
#[derive(Debug)]
pub struct RateTracker<K> {
    seen: HashMap<K, Seen>,
    look: u64,
    /// When the current and the last look were taken.
    at: Option<Instant>,
    last_at: Option<Instant>,
}

impl<K> Default for RateTracker<K> {
    fn default() -> Self {
        RateTracker {
            seen: HashMap::new(),
            look: 0,
            at: None,
            last_at: None,
        }
    }
}

impl<K: Hash + Eq + Copy> RateTracker<K> {
    pub fn new() -> RateTracker<K> {
        RateTracker::default()
    }

    /// Start a look: then [`RateTracker::rate`] for each of its
    /// connections (and [`RateTracker::closed`] for those that closed since
    /// the last), then [`RateTracker::end_look`].
    pub fn begin_look(&mut self, at: Instant) {
        self.look += 1;
        self.last_at = self.at.replace(at);
    }

    /// What an earlier look knew of `key`: its own sighting, or, for a
    /// connection `born` after the last look (which no look saw, so its
    /// counters began at 0 since), zero counters then.
    fn before(&mut self, key: K, born: bool) -> Option<Seen> {
        let look = self.look;
        match (self.seen.get(&key), self.last_at) {
            (Some(s), _) => Some(*s),
            (None, Some(last)) if born => Some(Seen {
                first: last,
                at: last,
                counters: Some((0, 0)),
                look: look - 1,
            }),
            _ => None,
        }
    }

    /// The rate of one connection of the current look, at `at`, from its
    /// `counters` (received and acked bytes, see [`counters`]), and
    /// remember them. `born`: it opened after the last look (so what it
    /// moved, it moved since).
    pub fn rate(&mut self, key: K, counters: Option<(u64, u64)>, at: Instant, born: bool) -> Rate {
        let look = self.look;
        let before = self.before(key, born).unwrap_or(Seen {
            first: at,
            at,
            counters: None,
            look,
        });
        let seen = self.seen.entry(key).or_insert(before);
        // Differences only over one interval: not across a look it missed.
        let rate = seen.rate(counters, at, seen.look + 1 == look);
        seen.at = at;
        seen.counters = counters;
        seen.look = look;
        rate
    }

    /// The rate of a connection that closed since the last look, from its
    /// final counters (a destroy notification's), and forget it. `born`:
    /// it opened after the last look.
    pub fn closed(
        &mut self,
        key: K,
        counters: Option<(u64, u64)>,
        at: Instant,
        born: bool,
    ) -> Rate {
        let before = self.before(key, born);
        self.seen.remove(&key);
        match before {
            Some(seen) => seen.rate(counters, at, true),
            None => Rate {
                rx_bytes_per_s: None,
                tx_bytes_per_s: None,
                age: Duration::ZERO,
            },
        }
    }

    /// End the current look: forget the connections it did not see.
    pub fn end_look(&mut self) {
        let look = self.look;
        self.seen.retain(|_, s| s.look == look);
    }

    /// Connections remembered (those of the last look).
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TcpInfo;

    fn diag(cookie: u64, rx: u64, tx: u64) -> Diag {
        Diag {
            cookie,
            tcp_info: Some(std::sync::Arc::new(TcpInfo {
                bytes_received: rx,
                bytes_acked: tx,
                ..Default::default()
            })),
            ..Default::default()
        }
    }

    #[test]
    fn rates_are_the_counters_differences_over_the_interval() {
        let mut t = RateTracker::new();
        let t0 = Instant::now();
        let a = diag(7, 1000, 500);
        let key = 7u64;
        t.begin_look(t0);
        let first = t.rate(key, counters(Some(&a)), t0, false);
        t.end_look();
        assert_eq!((first.rx_bytes_per_s, first.tx_bytes_per_s), (None, None));
        let t1 = t0 + Duration::from_millis(500);
        t.begin_look(t1);
        let b = diag(7, 3000, 500);
        let second = t.rate(key, counters(Some(&b)), t1, false);
        t.end_look();
        assert_eq!(second.rx_bytes_per_s, Some(4000.0));
        assert_eq!(second.tx_bytes_per_s, Some(0.0));
        assert_eq!(second.age, Duration::from_millis(500));
        // One born since the last look and closed in this one: what it
        // moved, over the interval.
        let t2 = t1 + Duration::from_millis(500);
        t.begin_look(t2);
        let flash = t.closed(8, Some((1000, 250)), t2, true);
        assert_eq!(flash.rx_bytes_per_s, Some(2000.0));
        assert_eq!(flash.tx_bytes_per_s, Some(500.0));
        // First seen as a request socket (no tcp_info), closed by the next
        // look: what it moved since.
        t.rate(9, None, t2, false);
        t.end_look();
        let t3 = t2 + Duration::from_millis(500);
        t.begin_look(t3);
        let accepted = t.closed(9, Some((500, 100)), t3, false);
        assert_eq!(accepted.rx_bytes_per_s, Some(1000.0));
        assert_eq!(accepted.tx_bytes_per_s, Some(200.0));
        // Not seen in a look: forgotten, so memory follows the table.
        t.end_look();
        assert!(t.is_empty());
    }
}
