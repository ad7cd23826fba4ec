//! Per-connection rates from successive looks at the table: tcp_info's
//! cumulative `bytes_acked` (sent, and acknowledged by the peer) and
//! `bytes_received` counters, differenced between two looks, so a rate is
//! exact over the interval without capturing packets. What `tcptab top`
//! shows.
//!
//! A connection is known by its namespace and socket cookie (netlink), or
//! without a cookie (/proc, which has no tcp_info and so no rates) by its
//! inode and ends. The tracker keeps only the connections of the last look:
//! its memory is bounded by the table.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::model::{Diag, Key};

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
        let (rx, tx) = match (counters, self.counters) {
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

/// tcp_info's `bytes_received` and `bytes_acked`.
fn counters(diag: Option<&Diag>) -> Option<(u64, u64)> {
    diag.and_then(|d| d.tcp_info.as_ref())
        .map(|t| (t.bytes_received, t.bytes_acked))
}

/// Rates across looks (see the module documentation).
#[derive(Debug, Default)]
pub struct RateTracker {
    seen: HashMap<Key, Seen>,
    look: u64,
}

impl RateTracker {
    pub fn new() -> RateTracker {
        RateTracker::default()
    }

    /// Start a look: then [`RateTracker::rate`] for each of its
    /// connections (and [`RateTracker::closed`] for those that closed since
    /// the last), then [`RateTracker::end_look`].
    pub fn begin_look(&mut self) {
        self.look += 1;
    }

    /// The rate of one connection of the current look, at `at`, from its
    /// counters (`diag`'s tcp_info), and remember them.
    pub fn rate(&mut self, key: Key, diag: Option<&Diag>, at: Instant) -> Rate {
        let counters = counters(diag);
        let look = self.look;
        let seen = self.seen.entry(key).or_insert(Seen {
            first: at,
            at,
            counters: None,
            look,
        });
        // Differences only over one interval: not across a look it missed.
        let rate = seen.rate(counters, at, seen.look + 1 == look);
        seen.at = at;
        seen.counters = counters;
        seen.look = look;
        rate
    }

    /// The rate of a connection that closed since the last look, from its
    /// final counters (a destroy notification's), and forget it.
    pub fn closed(&mut self, key: Key, diag: Option<&Diag>, at: Instant) -> Rate {
        match self.seen.remove(&key) {
            Some(seen) => seen.rate(counters(diag), at, true),
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
            tcp_info: Some(Box::new(TcpInfo {
                bytes_received: rx,
                bytes_acked: tx,
                ..Default::default()
            })),
            ..Default::default()
        }
    }

    #[test]
    fn rates_are_the_counters_differences_over_the_interval() {
        let socket = crate::Socket::empty(crate::Family::Ipv4, crate::RowKind::Full);
        let mut t = RateTracker::new();
        let t0 = Instant::now();
        let a = diag(7, 1000, 500);
        let key = Key::of(1, &socket, Some(&a));
        t.begin_look();
        let first = t.rate(key, Some(&a), t0);
        t.end_look();
        assert_eq!((first.rx_bytes_per_s, first.tx_bytes_per_s), (None, None));
        t.begin_look();
        let b = diag(7, 3000, 500);
        let second = t.rate(key, Some(&b), t0 + Duration::from_millis(500));
        t.end_look();
        assert_eq!(second.rx_bytes_per_s, Some(4000.0));
        assert_eq!(second.tx_bytes_per_s, Some(0.0));
        assert_eq!(second.age, Duration::from_millis(500));
        // Not seen in a look: forgotten, so memory follows the table.
        t.begin_look();
        t.end_look();
        assert!(t.is_empty());
        // The same cookie in another namespace is another connection.
        assert_ne!(Key::of(2, &socket, Some(&a)), key);
    }
}
