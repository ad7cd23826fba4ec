//! The shipper: a thread beside the recorder that sends what the history
//! file's outbox holds ([`crate::history::Outbox`]) to the store, oldest
//! first, at most once per interval (and at once again while a batch is
//! full), and marks what the store acknowledged. The recorder never waits
//! for it: a store away means rows wait in the file, to be sent in order
//! when it answers again (after a restart of the store, the recorder or
//! the machine). A batch sent twice (acknowledged but the answer lost)
//! carries the same versions, which the store's `FINAL` keeps once. What
//! it sent, failed and left waiting is counted in the file
//! ([`crate::history::Reader::shipping`]), where any process reads it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::{Client, Error};
use crate::history::Outbox;

/// Sends a history file's outbox to a store.
#[derive(Debug)]
pub struct Shipper {
    client: Client,
    outbox: Outbox,
    /// Rows per insert, at most.
    batch: usize,
}

impl Shipper {
    pub fn new(client: Client, outbox: Outbox, batch: usize) -> Shipper {
        Shipper {
            client,
            outbox,
            batch: batch.max(1),
        }
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
                // A connection's state changes before it: a reader who
                // finds the connection finds them.
                let changes = (batch.change_rows > 0).then_some(("state_changes", &batch.changes));
                for (table, body) in changes.into_iter().chain([(table, &batch.body)]) {
                    if let Err(e) = self.client.insert(table, body) {
                        self.outbox.failed()?;
                        return Err(e.into());
                    }
                }
                self.outbox.acked(&batch)?;
                let rows = batch.rows;
                self.outbox.recycle(batch);
                sent += rows as u64;
                if rows < self.batch {
                    break;
                }
            }
        }
        Ok(sent)
    }

    /// Ship every `interval` until `stop`, then once more (what the
    /// recorder wrote last). Whoever sets `stop` unparks this thread
    /// ([`std::thread::Thread::unpark`]), or it stops when its interval
    /// ends. A failure is said once, through `say`, until
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
                        "tcptab: shipping to {base} works again: {} sent",
                        crate::counted(n, "waiting row")
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
            if last {
                if failing {
                    let w = self.outbox.waiting().map_or(0, |w| w.rows);
                    say(format!(
                        "tcptab: stopped with {} not shipped, kept in the file for the next recorder",
                        crate::counted(w, "connection row")
                    ));
                }
                return;
            }
            // Asleep until the interval ends, or whoever sets `stop`
            // unparks the thread (a wakeup early, or none, is looked at
            // again).
            while !stop.load(Ordering::SeqCst) {
                match interval.checked_sub(started.elapsed()) {
                    Some(left) if !left.is_zero() => std::thread::park_timeout(left),
                    _ => break,
                }
            }
        }
    }
}
