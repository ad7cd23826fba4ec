//! Connection lifetimes: the one loop behind `watch`, `top` and `record`.
//!
//! Two things come in: polls of the table (a query's [`Snapshot`]) and the
//! kernel's destroy notifications (one listener per network namespace read
//! through netlink). One thing goes out: a stream of [`Event`]s about
//! connections ([`Conn`]), each one identity from its first sighting to
//! its last, whatever the order in which its TIME_WAIT, its notification
//! and the next poll arrive:
//!
//! - [`Change::Opened`] once, when it is first seen (by a poll, or by its
//!   notification when it lived between two polls);
//! - [`Change::StateChanged`] as polls find it in another state (into
//!   TIME_WAIT too);
//! - [`Change::Closed`] once, when its socket was destroyed (the kernel's
//!   notification: exact, with the final counters) or missed by a poll
//!   without one; a connection closed from this side then lingers as a
//!   TIME_WAIT, the same connection;
//! - [`Change::Ended`] once, when no socket of it is left (the end a
//!   history records);
//! - [`Change::Updated`] and [`Change::QueueGrowth`] when a poll finds its
//!   queues, timer, counters or owners changed.
//!
//! A 4-tuple used again is another connection (the socket cookie says
//! so). Without a cookie (/proc), a connection is known by its inode and
//! ends, and a TIME_WAIT or a full socket that follows a request socket is
//! joined to its connection by the ends, when the poll no longer finds
//! the socket before it. What could not be seen is said: notifications the
//! kernel dropped come out as [`Happened::Lost`], never silently.
//!
//! [`Tracker`] is the state machine (no I/O: tests feed it polls and
//! notifications); [`Monitor`] runs it on a query, with the listeners.

mod monitor;
mod notify;
mod tracker;

pub use monitor::{Happened, Monitor, MonitorOptions, PollDone};

/// How long without a poll, for a recorder polling every `interval_ms`,
/// means a gap: three intervals and a second (a slow poll is not one).
pub fn gap_after_ms(interval_ms: i64) -> i64 {
    interval_ms.saturating_mul(3).saturating_add(1000)
}
pub use notify::{Notice, Notifier};
pub use tracker::{TrackOptions, Tracker};

use std::sync::Arc;

use crate::model::{EntryBuf, State, TcpInfo};
use crate::record::Lifetime;

/// How the end of a connection (or of its socket) was known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum End {
    /// The kernel's destroy notification: the time is exact.
    Destroy,
    /// A poll no longer found it: it ended between its last sighting and
    /// that poll (the time given).
    Poll,
    /// A TIME_WAIT that a poll no longer found, after the moment its timer
    /// said it would expire: that moment.
    Expired,
    /// It was not found after a gap in the polls (the recorder stopped,
    /// the machine slept, the clock jumped): it ended at some unobserved
    /// moment after its last sighting, which is the time given.
    Gap,
    /// The machine restarted after its last sighting (history only).
    Reboot,
}

impl End {
    /// `destroy`, `poll`, `expired`, `gap` or `reboot`.
    pub fn as_str(self) -> &'static str {
        match self {
            End::Destroy => "destroy",
            End::Poll => "poll",
            End::Expired => "expired",
            End::Gap => "gap",
            End::Reboot => "reboot",
        }
    }

    pub fn from_name(name: &str) -> Option<End> {
        Some(match name {
            "destroy" => End::Destroy,
            "poll" => End::Poll,
            "expired" => End::Expired,
            "gap" => End::Gap,
            "reboot" => End::Reboot,
            _ => return None,
        })
    }
}

/// A connection's cumulative counters (tcp_info's names), as high as they
/// were ever seen: a close with SO_LINGER 0 zeroes them in the kernel
/// before its notification, which must not undo what was counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Counters {
    pub bytes_acked: Option<u64>,
    pub bytes_received: Option<u64>,
    pub total_retrans: Option<u64>,
    /// Retransmission timeouts (tcp_info's total_rto: Linux 6.7, else 0).
    pub total_rto: Option<u64>,
    /// The last round-trip time that was not 0, microseconds.
    pub rtt_us: Option<u64>,
}

impl Counters {
    /// Take in what `info` says.
    pub fn add(&mut self, info: &TcpInfo) {
        let max = |a: Option<u64>, b: u64| Some(a.map_or(b, |a| a.max(b)));
        self.bytes_acked = max(self.bytes_acked, info.bytes_acked);
        self.bytes_received = max(self.bytes_received, info.bytes_received);
        self.total_retrans = max(self.total_retrans, u64::from(info.total_retrans));
        self.total_rto = max(self.total_rto, u64::from(info.total_rto));
        if info.rtt_us > 0 || self.rtt_us.is_none() {
            self.rtt_us = Some(u64::from(info.rtt_us));
        }
    }
}

/// One connection the tracker follows, as of its last change.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Conn {
    /// The tracker's number for it: unique while the tracker lives.
    pub id: u64,
    /// As last seen alive by a poll (or, for one only its notification
    /// brought, as the notification reported it), with every owner ever
    /// seen holding it and the best owner status seen (a TIME_WAIT has no
    /// process: it does not undo "owned").
    pub entry: EntryBuf,
    /// The state it was first seen in.
    pub first_state: State,
    /// When it was first and last seen (ms since the Unix epoch): by a
    /// poll, or by its notification.
    pub first_seen: i64,
    pub last_seen: i64,
    /// Whether a poll ever saw it (false: it opened and closed between two
    /// polls, known from its notification only).
    pub seen_by_poll: bool,
    /// When and how its socket ended ([`Change::Closed`]); it may linger
    /// as a TIME_WAIT after.
    pub closed: Option<(i64, End)>,
    /// When and how its last socket ended ([`Change::Ended`]).
    pub ended: Option<(i64, End)>,
    pub counters: Counters,
    /// The socket as the kernel reported it in its destroy notification
    /// (state CLOSE, the final counters), when one came: shared by the
    /// events told of the connection after it (it never changes).
    pub last_words: Option<Arc<EntryBuf>>,
}

impl Conn {
    /// The lifetime as a history record has it: the end is the end of its
    /// last socket.
    pub fn lifetime(&self) -> Lifetime {
        Lifetime {
            first_seen: self.first_seen,
            last_seen: self.last_seen,
            closed_at: self.ended.map(|(at, _)| at),
            closed_by: self.ended.map(|(_, by)| by.as_str().to_string()),
            bytes_acked: self.counters.bytes_acked,
            bytes_received: self.counters.bytes_received,
            total_retrans: self.counters.total_retrans,
            rtt_us: self.counters.rtt_us,
            host: None,
        }
    }

    /// What a report of its closing shows: the kernel's last word when
    /// there was one, else its last sighting.
    pub fn closing_entry(&self) -> &EntryBuf {
        self.last_words.as_deref().unwrap_or(&self.entry)
    }
}

/// What happened to a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Opened,
    StateChanged {
        from: State,
    },
    /// A poll found its queues, timer, counters or owners changed.
    Updated,
    /// Its receive or send queue grew past the threshold
    /// ([`TrackOptions::queue_threshold`]).
    QueueGrowth,
    Closed {
        by: End,
    },
    Ended {
        by: End,
    },
}

/// One change of one connection.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Event {
    pub change: Change,
    /// When it happened, as well as the tracker knows (ms since the Unix
    /// epoch): a notification's arrival, a poll's start, or what a
    /// TIME_WAIT's timer said.
    pub at: i64,
    /// The connection after the change.
    pub conn: Conn,
    /// Found by the first poll: it was there when tracking began (an
    /// `Opened` that a watcher may not want to hear about).
    pub baseline: bool,
}

#[cfg(test)]
mod tests;
