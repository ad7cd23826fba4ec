//! A dump read ahead on a thread of its own: its datagrams are received
//! (the kernel builds a dump inside `recvmsg`, walking its tables then)
//! into a bounded queue, and [`Prefetch`] hands them over as a
//! [`Transport`] would. With one for each family, the two walks run side
//! by side and the caller only decodes and writes, on the other core.

use std::io;
use std::sync::mpsc::{sync_channel, Receiver};

use super::transport::{NetlinkSocket, Transport};
use super::wire::{messages, View, NLMSG_DONE, NLMSG_ERROR};

/// Datagrams held ahead at most (each at most 64 KiB): the memory a read
/// ahead may take, whatever the table's size.
pub const AHEAD: usize = 64;

/// A dump request sent by a thread of its own, its answer queued.
#[derive(Debug)]
pub struct Prefetch {
    datagrams: Receiver<io::Result<Vec<u8>>>,
}

impl Prefetch {
    /// Send `request` on `socket` from a new thread, which then receives
    /// the answer until its end (`NLMSG_DONE` or an error), at most
    /// [`AHEAD`] datagrams ahead of the reader.
    pub fn start(mut socket: NetlinkSocket, request: Vec<u8>) -> io::Result<Prefetch> {
        let (tx, datagrams) = sync_channel(AHEAD);
        std::thread::Builder::new()
            .name("dump-ahead".into())
            .spawn(move || {
                if let Err(e) = socket.send(&request) {
                    let _ = tx.send(Err(e));
                    return;
                }
                loop {
                    let mut buf = vec![0u8; 64 * 1024];
                    let got = socket.recv(&mut buf).map(|len| {
                        buf.truncate(len.min(buf.len()));
                        buf.shrink_to_fit();
                        buf
                    });
                    let last = got.as_ref().map_or(true, |b| b.is_empty() || ends(b));
                    // The reader went away: nothing more to do.
                    if tx.send(got).is_err() || last {
                        return;
                    }
                }
            })?;
        Ok(Prefetch { datagrams })
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
        let n = datagram.len().min(buf.len());
        buf[..n].copy_from_slice(&datagram[..n]);
        Ok(datagram.len())
    }
}
