//! The shipper: a thread beside the recorder that sends what the history
//! file's outbox holds ([`crate::history::Outbox`]) to the store, oldest
//! first, at most once per interval (and at once again while a batch is
//! full), and marks what the store acknowledged. The recorder never waits
//! for it: a store away means rows wait in the file, to be sent in order
//! when it answers again (after a restart of the store, the recorder or
//! the machine). A batch sent twice (acknowledged but the answer lost)
//! carries the same versions, which the store's `FINAL` keeps once.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Client, Error};
use crate::history::Outbox;

/// What the shipper did, readable from other threads (for notes and
/// metrics).
#[derive(Debug, Default)]
pub struct ShipStats {
    /// Connection and poll rows the store acknowledged.
    pub rows_sent: AtomicU64,
    pub batches_sent: AtomicU64,
    pub batches_failed: AtomicU64,
    /// Connection rows waiting in the outbox after the last attempt.
    pub rows_waiting: AtomicU64,
    /// When the oldest waiting row changed (ms since the epoch; 0: none).
    pub oldest_waiting: AtomicI64,
    /// Rows the local retention deleted before they were shipped.
    pub rows_dropped: AtomicU64,
}

/// Sends a history file's outbox to a store.
#[derive(Debug)]
pub struct Shipper {
    client: Client,
    outbox: Outbox,
    /// Rows per insert, at most.
    batch: usize,
    stats: Arc<ShipStats>,
}

impl Shipper {
    pub fn new(client: Client, outbox: Outbox, batch: usize) -> Shipper {
        Shipper {
            client,
            outbox,
            batch: batch.max(1),
            stats: Arc::default(),
        }
    }

    pub fn stats(&self) -> Arc<ShipStats> {
        self.stats.clone()
    }

    /// Send everything waiting: connections first, then the polls (so
    /// that a reader never sees a poll newer than the closes before it).
    /// Stops at the first failure; what was acknowledged stays marked.
    pub fn drain(&mut self) -> Result<u64, Error> {
        let mut sent = 0;
        for table in ["connections", "polls"] {
            loop {
                let batch = match table {
                    "connections" => self.outbox.connections(self.batch)?,
                    _ => self.outbox.polls(self.batch)?,
                };
                if batch.rows == 0 {
                    break;
                }
                if let Err(e) = self.client.insert(table, &batch.body) {
                    self.stats.batches_failed.fetch_add(1, Ordering::Relaxed);
                    self.outbox.failed()?;
                    return Err(e.into());
                }
                self.outbox.acked(&batch)?;
                sent += batch.rows as u64;
                self.stats
                    .rows_sent
                    .fetch_add(batch.rows as u64, Ordering::Relaxed);
                self.stats.batches_sent.fetch_add(1, Ordering::Relaxed);
                if batch.rows < self.batch {
                    break;
                }
            }
        }
        Ok(sent)
    }

    fn count_waiting(&self) {
        if let Ok(w) = self.outbox.waiting() {
            let s = &self.stats;
            s.rows_waiting.store(w.rows, Ordering::Relaxed);
            s.oldest_waiting
                .store(w.oldest.unwrap_or(0), Ordering::Relaxed);
            s.rows_dropped.store(w.dropped, Ordering::Relaxed);
        }
    }

    /// Ship every `interval` until `stop`, then once more (what the
    /// recorder wrote last). A failure is said once, through `say`, until
    /// shipping works again, which is said too.
    pub fn run(mut self, interval: Duration, stop: &AtomicBool, say: &mut dyn FnMut(String)) {
        let mut failing = false;
        let base = self.client.target().base.clone();
        loop {
            let last = stop.load(Ordering::SeqCst);
            let started = Instant::now();
            match self.drain() {
                Ok(n) if failing => {
                    say(format!(
                        "tcptab: shipping to {base} works again: {n} waiting row(s) sent"
                    ));
                    failing = false;
                }
                Ok(_) => {}
                Err(e) => {
                    if !failing {
                        say(format!("tcptab: shipping: {e}; recording goes on in the file, and what was not shipped is sent when the store answers"));
                        failing = true;
                    }
                }
            }
            self.count_waiting();
            if last {
                if failing {
                    let w = self.stats.rows_waiting.load(Ordering::Relaxed);
                    say(format!("tcptab: stopped with {w} connection row(s) not shipped: they wait in the file for the next recorder"));
                }
                return;
            }
            while started.elapsed() < interval && !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}
