//! [`Monitor`]: a [`Tracker`] run on a query, polling at an interval, with
//! a destroy-notification listener in every namespace the query reads
//! through netlink. What `watch`, `top` and `record` share; each differs
//! only in what it does with what [`Happened`].

use std::time::{Duration, Instant};

use super::notify::{Notice, Notifier};
use super::tracker::{TrackOptions, Tracker};
use super::Event;
use crate::diag::{Choice, NetlinkSocket};
use crate::error::Error;
use crate::model::{EntryBuf, Namespace};
use crate::owners::KeptScan;
use crate::query::{Query, Snapshot};

/// How a monitor runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MonitorOptions {
    /// Time between two polls.
    pub interval: Duration,
    pub track: TrackOptions,
    /// Listen to destroy notifications (where netlink can be used).
    pub notifications: bool,
    /// The listeners' receive buffer, bytes.
    pub notify_buffer: usize,
    /// Take the notifications received in batches, every tenth of a second
    /// (each keeps the time it arrived), rather than waking for each: for a
    /// caller that acts on them at the polls only (a recorder).
    pub batched: bool,
}

impl MonitorOptions {
    /// A poll every `interval`, notifications on with the default buffer,
    /// a gap after three intervals and a second without a poll.
    pub fn every(interval: Duration) -> MonitorOptions {
        MonitorOptions {
            interval,
            track: TrackOptions {
                queue_threshold: None,
                gap_after_ms: Some(super::gap_after_ms(interval.as_millis() as i64)),
            },
            notifications: true,
            notify_buffer: NetlinkSocket::DESTROY_BUFFER,
            batched: false,
        }
    }
}

/// One poll, done.
#[derive(Debug)]
#[non_exhaustive]
pub struct PollDone<'a> {
    /// When the reading of the table began (ms since the Unix epoch),
    /// after the owner scan before it.
    pub at: i64,
    /// How long the query took.
    pub took: Duration,
    pub snapshot: &'a Snapshot,
    /// The first poll of this monitor.
    pub first: bool,
    /// What could not be seen beyond the query's report: namespaces
    /// without notifications (and why), notifications dropped since the
    /// last poll.
    pub notes: &'a [String],
    /// Times the kernel dropped notifications since the last poll.
    pub lost: u64,
    /// The tracker, after the poll (its connections, which connection a
    /// socket of the snapshot is).
    pub tracker: &'a Tracker,
}

/// What a monitor hands over.
#[derive(Debug)]
// An event is moved once, to whoever keeps it (a box would cost an
// allocation per event, which is what handing it over saves).
#[allow(clippy::large_enum_variant)]
pub enum Happened<'a> {
    /// A connection's event, handed over: whoever keeps it takes it.
    Event(Event),
    /// The kernel dropped destroy notifications of namespace `netns` (at
    /// `at`): connections that closed meanwhile are closed by polls.
    Lost { netns: u64, at: i64 },
    /// A poll was applied (its events came before).
    Polled(&'a PollDone<'a>),
}

/// A tracker run on a query (see the [module](self) documentation).
#[derive(Debug)]
pub struct Monitor<'q> {
    query: &'q Query,
    options: MonitorOptions,
    tracker: Tracker,
    notifier: Option<Notifier>,
    polls: u64,
    next_poll: Instant,
    lost: u64,
    events: Vec<Event>,
    /// The last poll's owner scan, kept for the next: each poll brings
    /// it up to date before its dump, where a new scan would be made,
    /// reading again only the tables of the processes that ran since (on
    /// a quiet host, none); after the dump, a socket it still does not
    /// know brings it up to date again ([`crate::Query::snapshot_with`]).
    kept: KeptScan,
    /// The last snapshot's room for its sockets, emptied, for the next.
    room: Vec<EntryBuf>,
}

impl<'q> Monitor<'q> {
    pub fn new(query: &'q Query, options: MonitorOptions) -> Monitor<'q> {
        let netlink = !query.is_captured() && query.source_choice() != Choice::Proc;
        Monitor {
            query,
            options,
            tracker: Tracker::new(options.track),
            notifier: (options.notifications && netlink)
                .then(|| Notifier::new(options.notify_buffer)),
            polls: 0,
            next_poll: Instant::now(),
            lost: 0,
            events: Vec::new(),
            kept: KeptScan::new(),
            room: Vec::new(),
        }
    }

    pub fn query(&self) -> &'q Query {
        self.query
    }

    pub fn tracker(&self) -> &Tracker {
        &self.tracker
    }

    /// To take up what an earlier tracker followed (before the first poll).
    pub fn tracker_mut(&mut self) -> &mut Tracker {
        &mut self.tracker
    }

    /// Polls taken.
    pub fn polls(&self) -> u64 {
        self.polls
    }

    /// When the next poll is due.
    pub fn next_poll(&self) -> Instant {
        self.next_poll
    }

    /// Poll now: the notifications received before it began, the poll's
    /// changes, the notifications received while it ran, then
    /// [`Happened::Polled`].
    pub fn poll<E: From<Error>>(
        &mut self,
        f: &mut dyn FnMut(Happened<'_>) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        if self.polls == 0 {
            // Listen before the first poll, so that what closes right after
            // it is heard.
            if let Some(notifier) = self.notifier.as_mut() {
                for ns in self.query.namespaces_to_read()? {
                    let _ = notifier.listen(self.query, ns.as_ref());
                    let netns = ns.as_ref().map_or(0, |n| n.inode);
                    self.tracker
                        .set_notified(netns, notifier.is_listening(netns));
                }
            }
        }
        let started = Instant::now();
        let began = crate::time::now_ms();
        let kept = match self.query.may_keep_owners() {
            true => self.kept.take(self.query.root_path()),
            false => None,
        };
        // What the listeners hold unread went before the reading that
        // follows: told before the poll, whatever its stamp (a busy
        // listener reads up to 50 ms late).
        let flushed = self
            .notifier
            .as_mut()
            .map_or_else(Vec::new, Notifier::flush);
        let room = std::mem::take(&mut self.room);
        let mut snapshot = self.query.snapshot_with(kept, room)?;
        let took = started.elapsed();
        // The moment of the poll is when the reading of the table began,
        // after the owner scan (which may take seconds on a busy host):
        // a notification up to then is older than anything the dump
        // could show, and a socket first seen was there after it.
        let at = snapshot.read_at.unwrap_or(began).max(began);
        let mut notices = self
            .notifier
            .as_mut()
            .map_or_else(Vec::new, Notifier::drain);
        notices.sort_by_key(notice_at);
        // Before the poll: only what came in an earlier millisecond than
        // the reading began, which the dump cannot show (a TIME_WAIT made
        // then is in the kernel's tables before the walk begins). What
        // came in the same millisecond may have come during the walk.
        let later = notices.partition_point(|n| notice_at(n) < at);
        let after: Vec<Notice> = notices.drain(later..).collect();
        let mut before = flushed;
        before.append(&mut notices);
        before.sort_by_key(notice_at);
        for notice in before {
            self.notice(notice, f)?;
        }
        self.tracker.polled(&snapshot, at, &mut self.events);
        self.deliver(f)?;
        for notice in after {
            self.notice(notice, f)?;
        }
        let notes = self.follow(&snapshot);
        let first = self.polls == 0;
        self.polls += 1;
        let now = Instant::now();
        self.next_poll = (self.next_poll + self.options.interval).max(now);
        if first {
            self.next_poll = started + self.options.interval;
        }
        let lost = std::mem::take(&mut self.lost);
        f(Happened::Polled(&PollDone {
            at,
            took,
            snapshot: &snapshot,
            first,
            notes: &notes,
            lost,
            tracker: &self.tracker,
        }))?;
        if self.query.may_keep_owners() {
            if let Some(scan) = snapshot.owners.take() {
                self.kept.keep(scan, started);
            }
        }
        snapshot.sockets.clear();
        self.room = snapshot.sockets;
        Ok(())
    }

    /// Take notifications as they come until `until` (or until `stop`
    /// says so, looked at every 100 ms at the most).
    pub fn wait_until<E: From<Error>>(
        &mut self,
        until: Instant,
        stop: &dyn Fn() -> bool,
        f: &mut dyn FnMut(Happened<'_>) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        loop {
            let now = Instant::now();
            if now >= until || stop() {
                return Ok(());
            }
            let wait = until
                .saturating_duration_since(now)
                .min(Duration::from_millis(100));
            let batched = self.options.batched;
            match self.notifier.as_mut() {
                None => std::thread::sleep(wait),
                Some(notifier) if batched => {
                    std::thread::sleep(wait);
                    let notices = notifier.drain();
                    for notice in notices {
                        self.notice(notice, f)?;
                    }
                }
                Some(notifier) => {
                    if let Some(notice) = notifier.next(wait) {
                        self.notice(notice, f)?;
                    }
                }
            }
        }
    }

    /// Poll every interval, taking notifications between polls, until
    /// `stop` says so (looked at between notifications and after each
    /// poll).
    pub fn run<E: From<Error>>(
        &mut self,
        stop: &dyn Fn() -> bool,
        f: &mut dyn FnMut(Happened<'_>) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        while !stop() {
            self.poll(f)?;
            let next = self.next_poll;
            self.wait_until(next, stop, f)?;
        }
        Ok(())
    }

    /// The end: one last poll (so that every notification received is
    /// applied and every closing connection decided), then the
    /// connections whose notification came after it end there.
    pub fn finish<E: From<Error>>(
        &mut self,
        f: &mut dyn FnMut(Happened<'_>) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        self.poll(f)?;
        self.finish_without_poll(f)
    }

    /// The end without one last poll (the polls asked for were all): the
    /// notifications already there, then the connections whose
    /// notification came after the last poll end there.
    pub fn finish_without_poll<E: From<Error>>(
        &mut self,
        f: &mut dyn FnMut(Happened<'_>) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        if let Some(notifier) = self.notifier.as_mut() {
            notifier.stop();
            for notice in notifier.drain() {
                self.notice(notice, f)?;
            }
        }
        self.tracker.finish(&mut self.events);
        self.deliver(f)
    }

    fn notice<E: From<Error>>(
        &mut self,
        notice: Notice,
        f: &mut dyn FnMut(Happened<'_>) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        match notice {
            Notice::Closed { netns, at, socket } => {
                // The filter first: it costs less than the tracker's four
                // looks into its maps, which it spares when it matches.
                let selected = self
                    .notifier
                    .as_ref()
                    .is_some_and(|n| n.selects(netns, &socket))
                    || self.tracker.knows(netns, &socket);
                if selected {
                    let workload = self.query.workload_of(Some(&socket.diag));
                    self.tracker
                        .notified_with(netns, at, *socket, workload, &mut self.events);
                    self.deliver(f)?;
                }
                Ok(())
            }
            Notice::Lost { netns, at } => {
                self.lost += 1;
                f(Happened::Lost { netns, at })
            }
            Notice::Failed { netns, at, error } => {
                if let Some(n) = self.notifier.as_mut() {
                    n.failed(
                        netns,
                        format!("no destroy notifications (the listener failed: {error})"),
                    );
                }
                self.tracker.set_notified(netns, false);
                self.lost += 1;
                f(Happened::Lost { netns, at })
            }
        }
    }

    fn deliver<E>(
        &mut self,
        f: &mut dyn FnMut(Happened<'_>) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        // Drained, not taken: the list keeps its room for the next poll.
        for event in self.events.drain(..) {
            f(Happened::Event(event))?;
        }
        Ok(())
    }

    /// Listen in the namespaces the poll read through netlink, stop in
    /// those it no longer found; what the poll could not see for want of
    /// notifications.
    fn follow(&mut self, snapshot: &Snapshot) -> Vec<String> {
        let mut notes = Vec::new();
        let Some(notifier) = self.notifier.as_mut() else {
            if self.options.notifications {
                notes.push(
                    "no destroy notifications (the sockets were read from /proc): connections shorter than a poll are not seen"
                        .to_string(),
                );
            }
            return notes;
        };
        let read: Vec<u64> = snapshot
            .report
            .read
            .iter()
            .map(|r| r.namespace.as_ref().map_or(0, |n| n.inode))
            .collect();
        notifier.retain(|netns| read.contains(&netns));
        for r in &snapshot.report.read {
            let netns = r.namespace.as_ref().map_or(0, |n| n.inode);
            let target = label(r.namespace.as_ref());
            if r.source == crate::model::Source::Netlink {
                let _ = notifier.listen(self.query, r.namespace.as_ref());
            }
            let listening = notifier.is_listening(netns);
            self.tracker.set_notified(netns, listening);
            if listening {
                continue;
            }
            notes.push(match notifier.unavailable(netns) {
                Some(why) => format!(
                    "{why}{target}: connections shorter than a poll are not seen"
                ),
                None => format!(
                    "no destroy notifications{target} (read from /proc): connections shorter than a poll are not seen"
                ),
            });
        }
        notes
    }
}

fn label(namespace: Option<&Namespace>) -> String {
    Namespace::in_sentence(namespace, "in")
}

fn notice_at(n: &Notice) -> i64 {
    match n {
        Notice::Closed { at, .. } | Notice::Lost { at, .. } | Notice::Failed { at, .. } => *at,
    }
}
