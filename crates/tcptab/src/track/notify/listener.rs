//! A listener thread: what it reads from its socket, when, and how it
//! answers a flush.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Heard, Notice};
use crate::diag::NetlinkSocket;

/// A listener waits in its socket: a datagram wakes it at once, so nothing
/// waits unread.
pub(super) const IDLE: u8 = 0;
/// A listener reads, or lets notifications gather ([`GATHER`]).
pub(super) const BUSY: u8 = 1;

/// How long a busy listener lets notifications gather before it reads them
/// again: each is stamped at most this late, and under churn the thread
/// wakes at most once per this instead of once per notification (a wake
/// costs several times the notification's reading).
pub const GATHER: Duration = Duration::from_millis(50);

/// A wake ends when its datagrams pass this many bytes (a flood read
/// without a pause is passed on in pieces, and the stop looked at).
const BATCH_BYTES: usize = 1 << 20;

/// What a listener thread is given.
pub(super) struct Thread {
    pub(super) netns: u64,
    pub(super) tx: Sender<Heard>,
    pub(super) stop: Arc<AtomicBool>,
    /// Flushes asked ([`Notifier::flush`](super::Notifier::flush)).
    pub(super) woken: Receiver<u64>,
    /// What it does ([`IDLE`], [`BUSY`]), for the flushes.
    pub(super) doing: Arc<AtomicU8>,
}

/// A listener thread: receives notifications until told to stop. A wake
/// reads every datagram waiting. When wakes come closer together than
/// twice [`GATHER`] (more than about 10 notifications a second), the
/// thread sleeps [`GATHER`] before it waits again, so that the next wake
/// finds several (a flush asked ends the sleep: the socket is read, then
/// the flush answered); a quieter listener waits at once, and stamps each
/// notification as it comes.
pub(super) fn listen(mut socket: NetlinkSocket, thread: Thread) {
    let Thread {
        netns,
        tx,
        stop,
        woken,
        doing,
    } = thread;
    let mut buf = vec![0u8; 64 * 1024];
    let mut last_wake: Option<Instant> = None;
    let mut bytes = Vec::new();
    let mut ends = Vec::new();
    let pass_on = |bytes: &mut Vec<u8>, ends: &mut Vec<(usize, i64)>| {
        if ends.is_empty() {
            return true;
        }
        let heard = Heard::Datagrams {
            netns,
            bytes: std::mem::take(bytes),
            ends: std::mem::take(ends),
        };
        tx.send(heard).is_ok()
    };
    // A flush asked and not answered yet.
    let mut flush: Option<u64> = None;
    while !stop.load(Ordering::SeqCst) {
        flush = woken.try_iter().last().or(flush);
        let mut wait = match flush {
            Some(_) => Duration::ZERO,
            None => Duration::from_millis(100),
        };
        let mut heard = false;
        let mut drained = false;
        loop {
            if !wait.is_zero() {
                doing.store(IDLE, Ordering::SeqCst);
            }
            let notice = match socket.recv_within(&mut buf, wait) {
                Ok(0) => {
                    drained = wait.is_zero();
                    break;
                }
                Ok(len) => {
                    if !heard {
                        doing.store(BUSY, Ordering::SeqCst);
                    }
                    heard = true;
                    wait = Duration::ZERO;
                    bytes.extend_from_slice(&buf[..len.min(buf.len())]);
                    ends.push((bytes.len(), crate::time::now_ms()));
                    if bytes.len() >= BATCH_BYTES {
                        // A flood: passed on, and the stop looked at.
                        break;
                    }
                    continue;
                }
                Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NOBUFS.raw_os_error()) => {
                    Notice::Lost {
                        netns,
                        at: crate::time::now_ms(),
                    }
                }
                Err(e) => Notice::Failed {
                    netns,
                    at: crate::time::now_ms(),
                    error: e.to_string(),
                },
            };
            let failed = matches!(notice, Notice::Failed { .. });
            // What came before the loss is told before it.
            if !pass_on(&mut bytes, &mut ends) || tx.send(Heard::Notice(notice)).is_err() || failed
            {
                return;
            }
        }
        if !pass_on(&mut bytes, &mut ends) {
            return;
        }
        // Answered once the socket was read to the end (not in a flood's
        // middle).
        if let Some(n) = flush.filter(|_| drained) {
            flush = None;
            if tx.send(Heard::Flushed(n)).is_err() {
                return;
            }
        }
        if !heard {
            last_wake = None;
            continue;
        }
        let woke = Instant::now();
        if let Some(since) = last_wake.map(|last| woke - last) {
            if since < 2 * GATHER && flush.is_none() {
                // Gathering, unless a poll asks for what waits.
                match woken.recv_timeout(GATHER) {
                    Ok(n) => flush = Some(n),
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Err(mpsc::RecvTimeoutError::Disconnected) => return,
                }
            }
        }
        last_wake = Some(woke);
    }
}
