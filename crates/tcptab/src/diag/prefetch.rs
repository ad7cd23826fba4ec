//! A dump read ahead on a thread of its own: its datagrams are received
//! (the kernel builds a dump inside `recvmsg`, walking its tables then)
//! into a bounded queue, and [`Prefetch`] hands them over as a
//! [`Transport`] would. With one for each family, the two walks run side
//! by side and the caller only decodes and writes, on the other core.

use std::io;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use super::transport::{NetlinkSocket, Transport};
use super::wire::{messages, View, NLMSG_DONE, NLMSG_ERROR};

/// Datagrams held ahead at most (each at most 64 KiB): the memory a read
/// ahead may take, whatever the table's size.
pub const AHEAD: usize = 64;

/// The size of each datagram buffer: a netlink dump's datagrams are at
/// most this long.
const DATAGRAM: usize = 64 * 1024;

/// A dump request sent by a thread of its own, its answer queued.
#[derive(Debug)]
pub struct Prefetch {
    /// Each datagram in a buffer of [`DATAGRAM`] bytes, with its length.
    datagrams: Receiver<io::Result<(Vec<u8>, usize)>>,
    /// Buffers read, given back to the thread to receive into again (not
    /// allocated and cleared anew for every datagram).
    spare: SyncSender<Vec<u8>>,
}

impl Prefetch {
    /// Send `request` on `socket` from a new thread, which then receives
    /// the answer until its end (`NLMSG_DONE` or an error), at most
    /// [`AHEAD`] datagrams ahead of the reader.
    pub fn start(mut socket: NetlinkSocket, request: Vec<u8>) -> io::Result<Prefetch> {
        let (tx, datagrams) = sync_channel(AHEAD);
        let (spare, spares) = sync_channel::<Vec<u8>>(AHEAD + 2);
        std::thread::Builder::new()
            .name("dump-ahead".into())
            .spawn(move || {
                if let Err(e) = socket.send(&request) {
                    let _ = tx.send(Err(e));
                    return;
                }
                loop {
                    let mut buf = spares.try_recv().unwrap_or_else(|_| vec![0u8; DATAGRAM]);
                    let got = socket.recv(&mut buf).map(|len| {
                        let len = len.min(buf.len());
                        (buf, len)
                    });
                    let last = got
                        .as_ref()
                        .map_or(true, |(b, len)| *len == 0 || ends(&b[..*len]));
                    // The reader went away: nothing more to do.
                    if tx.send(got).is_err() || last {
                        return;
                    }
                }
            })?;
        Ok(Prefetch { datagrams, spare })
    }
}

/// Whether a datagram ends a dump (or is the kernel's error).
fn ends(datagram: &[u8]) -> bool {
    messages(View::new(datagram))
        .any(|m| m.is_err() || m.is_ok_and(|m| m.kind == NLMSG_DONE || m.kind == NLMSG_ERROR))
}

impl Transport for Prefetch {
    /// The request went when the prefetch started.
    fn send(&mut self, _request: &[u8]) -> io::Result<()> {
        Ok(())
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let datagram = self.datagrams.recv().map_err(|_| {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the read-ahead thread stopped",
            )
        })??;
        let (datagram, len) = datagram;
        let n = len.min(buf.len());
        buf[..n].copy_from_slice(&datagram[..n]);
        // Full (the thread ended, or enough are spare): dropped.
        let _ = self.spare.try_send(datagram);
        Ok(len)
    }
}
