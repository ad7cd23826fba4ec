//! Changes between two looks at the socket table: sockets that opened,
//! closed or changed state, and queues that grew past a threshold; plus
//! what the kernel's destroy notifications (netlink) add between looks.
//!
//! Memory is bounded by the table itself: the tracker keeps one entry per
//! socket present at the last look, and forgets destroyed ones at the next.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;

use crate::model::{Diag, DiagSocket};
use crate::model::{Family, RowKind, Socket, State};

/// What identifies a connection across looks (a socket keeps it from
/// SYN_SENT through TIME_WAIT).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    pub family: Family,
    pub local: SocketAddr,
    pub remote: SocketAddr,
}

impl Key {
    pub fn of(s: &Socket) -> Key {
        Key {
            family: s.family,
            local: s.local,
            remote: s.remote,
        }
    }
}

/// What happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Opened,
    /// Gone. `seen` is false for a connection that opened and closed
    /// between two looks (known from a destroy notification only).
    Closed {
        seen: bool,
    },
    StateChanged {
        from: State,
    },
    /// A queue grew past the threshold.
    QueueGrowth,
}

/// One event: the change and the socket as last seen (for `Closed` from a
/// destroy notification, as the kernel reported it, with its final
/// counters in `diag`).
#[derive(Debug, Clone)]
pub struct Event {
    pub change: Change,
    pub socket: Socket,
    pub diag: Option<Diag>,
}

#[derive(Debug, Clone)]
struct Seen {
    socket: Socket,
    over_threshold: bool,
    /// Final counters from a destroy notification, kept for the `Closed`.
    last_words: Option<Diag>,
    /// Its connection was already reported closed (a destroy notification
    /// for a connection no look had seen): the TIME_WAIT it left behind
    /// ends without a second `Closed`.
    closed_reported: bool,
}

/// Compares each look with the previous one.
#[derive(Debug, Default)]
pub struct Tracker {
    seen: HashMap<Key, Seen>,
    /// Connections the kernel said it destroyed since the last look.
    destroyed: HashSet<Key>,
    queue_threshold: Option<u32>,
    started: bool,
}

impl Tracker {
    /// `queue_threshold`: report a socket whose receive or send queue grows
    /// past this many bytes.
    pub fn new(queue_threshold: Option<u32>) -> Tracker {
        Tracker {
            queue_threshold,
            ..Tracker::default()
        }
    }

    /// Sockets present now.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    fn over(&self, s: &Socket) -> bool {
        self.queue_threshold
            .is_some_and(|t| s.state != State::Listen && (s.rx_queue > t || s.tx_queue > t))
    }

    /// A new look at the table. The first look is the baseline and reports
    /// nothing.
    pub fn look(&mut self, sockets: &[Socket]) -> Vec<Event> {
        let mut events = Vec::new();
        let mut now: HashMap<Key, Seen> = HashMap::with_capacity(sockets.len());
        for s in sockets {
            let key = Key::of(s);
            let over = self.over(s);
            let before = self.seen.remove(&key);
            // A TIME_WAIT left behind by a connection whose closing was
            // already reported is not a new connection.
            let already_closed = s.kind == RowKind::TimeWait && self.destroyed.contains(&key);
            let reported = match &before {
                Some(b) => {
                    if b.socket.state != s.state {
                        events.push(Event {
                            change: Change::StateChanged {
                                from: b.socket.state,
                            },
                            socket: *s,
                            diag: None,
                        });
                    }
                    true
                }
                None if self.started && !already_closed => {
                    events.push(Event {
                        change: Change::Opened,
                        socket: *s,
                        diag: None,
                    });
                    true
                }
                None => false,
            };
            let was_over = before.as_ref().is_some_and(|b| b.over_threshold);
            if reported && over && !was_over {
                events.push(Event {
                    change: Change::QueueGrowth,
                    socket: *s,
                    diag: None,
                });
            }
            let closed_reported =
                already_closed || before.as_ref().is_some_and(|b| b.closed_reported);
            now.insert(
                key,
                Seen {
                    socket: *s,
                    over_threshold: over,
                    last_words: before.and_then(|b| b.last_words),
                    closed_reported,
                },
            );
        }
        // Whatever was seen before and is not now has closed (unless a
        // destroy notification already said so).
        for (key, before) in self.seen.drain() {
            if before.closed_reported
                || self.destroyed.contains(&key) && before.last_words.is_none()
            {
                continue;
            }
            events.push(Event {
                change: Change::Closed { seen: true },
                socket: before.socket,
                diag: before.last_words,
            });
        }
        self.seen = now;
        self.destroyed.clear();
        self.started = true;
        events
    }

    /// The kernel destroyed a socket (a netlink destroy notification).
    /// Reported at once when the connection was never seen (it opened and
    /// closed between looks); otherwise its final counters are kept for the
    /// `Closed` event of the look that finds it gone.
    pub fn destroyed(&mut self, d: DiagSocket) -> Option<Event> {
        let key = Key::of(&d.socket);
        let first = self.destroyed.insert(key);
        match self.seen.get_mut(&key) {
            Some(seen) => {
                seen.last_words = Some(d.diag);
                None
            }
            None if first => Some(Event {
                change: Change::Closed { seen: false },
                socket: d.socket,
                diag: Some(d.diag),
            }),
            None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::procnet::{parse_line, ByteOrder};

    fn sock(state: &str, port: u16) -> Socket {
        let line = format!("   0: 0100007F:{port:04X} 0100007F:1F90 {state} 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 20 4 0 10 -1");
        parse_line(line.as_bytes(), ByteOrder::Little).unwrap()
    }

    #[test]
    fn queue_growth_is_reported_once_when_it_crosses() {
        let mut t = Tracker::new(Some(100));
        let mut s = sock("01", 1000);
        t.look(&[s]);
        s.rx_queue = 500;
        let e = t.look(&[s]);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].change, Change::QueueGrowth);
        assert!(t.look(&[s]).is_empty(), "still over: not again");
        let mut new = sock("01", 1001);
        new.tx_queue = 1000;
        let e = t.look(&[s, new]);
        let changes: Vec<_> = e.iter().map(|e| &e.change).collect();
        assert_eq!(changes, [&Change::Opened, &Change::QueueGrowth]);
    }

    #[test]
    fn a_short_connection_is_closed_once() {
        let mut t = Tracker::new(None);
        assert!(t.look(&[]).is_empty());
        // Opened and closed between two looks: the destroy notification
        // says so at once...
        let full = sock("01", 1000);
        let d = DiagSocket {
            socket: full,
            diag: Diag {
                cookie: 1,
                backlog_limit: None,
                interface: 0,
                timer_ms: 0,
                tcp_info: None,
                congestion_algorithm: None,
                memory: None,
                shutdown: None,
                v6only: None,
            },
        };
        let e = t.destroyed(d).unwrap();
        assert_eq!(e.change, Change::Closed { seen: false });
        // ... its TIME_WAIT shows at the next look, silently ...
        let tw = parse_line(
            b"   0: 0100007F:03E8 0100007F:1F90 06 00000000:00000000 03:00001707 00000000     0        0 0 3 0000000000000000",
            ByteOrder::Little,
        )
        .unwrap();
        assert!(t.look(&[tw]).is_empty());
        assert!(t.look(&[tw]).is_empty());
        // ... and its expiry is not a second close.
        assert!(t.look(&[]).is_empty(), "closed twice");
    }

    #[test]
    fn opened_changed_closed() {
        let mut t = Tracker::new(None);
        assert!(
            t.look(&[sock("01", 1000)]).is_empty(),
            "the baseline reports nothing"
        );
        let e = t.look(&[sock("08", 1000), sock("01", 1001)]);
        let changes: Vec<_> = e
            .iter()
            .map(|e| (&e.change, e.socket.local.port()))
            .collect();
        assert!(changes.contains(&(
            &Change::StateChanged {
                from: State::Established
            },
            1000
        )));
        assert!(changes.contains(&(&Change::Opened, 1001)));
        let e = t.look(&[]);
        assert_eq!(e.len(), 2);
        assert!(e.iter().all(|e| e.change == Change::Closed { seen: true }));
        assert!(t.is_empty(), "memory is the current table only");
    }
}
