//! The sock_diag netlink interface (tcp_diag): the same sockets as
//! /proc/net/tcp, dumped by the kernel in binary, with more per socket.
//!
//! - [`wire`]: checked views over the bytes (messages, attributes).
//! - [`request`]: the `inet_diag_req_v2` dump request.
//! - [`bytecode`]: filters compiled for the kernel to run during the dump.
//! - [`response`]: `inet_diag_msg` and its attributes to [`DiagSocket`]s.
//! - [`transport`]: the netlink socket, behind the [`Transport`] trait.
//!
//! What each source has (see also the README):
//!
//! | field | /proc | netlink |
//! |---|---|---|
//! | state, addresses, ports, queues, timer, retransmits, uid, inode | yes | yes |
//! | LISTEN backlog limit, cookie, tcp_info, congestion algorithm, memory, shutdown | no | yes |
//! | refcount, pointer | yes | no (0 and zeros) |
//! | rto, ato, cwnd, ssthresh, probes | yes | with tcp_info (`-i`) |
//! | quick ACKs / pingpong, LISTEN Fast Open queue limit | yes | no (0) |
//! | request socket uid | the listener's | 0 |

mod abi;
pub mod bytecode;
mod prefetch;
// The wire views and the request builders are the crate's own; tcptab's
// tests and fuzz targets see them through the `internals` feature.
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod request;
#[cfg(not(feature = "internals"))]
mod request;
pub mod response;
pub mod transport;
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod wire;
#[cfg(not(feature = "internals"))]
pub(crate) mod wire;

use std::io;

use crate::model::DiagSocket;
pub use bytecode::Ports;
pub use prefetch::Prefetch;
pub use request::{Ask, Extensions, SocketId};
pub use transport::{NetlinkSocket, Transport};

use crate::error::{Error, Result};
use crate::model::{Family, StateSet};
use wire::{messages, View, NLMSG_DONE, NLMSG_ERROR, NLM_F_DUMP_INTR};

/// The sockets of one dump.
#[derive(Debug, Default, Clone)]
pub struct Dump {
    /// IPv4 sockets, then IPv6 sockets, in the kernel's order.
    pub sockets: Vec<DiagSocket>,
    /// The kernel flagged the dump as interrupted (the tables changed
    /// while it walked them): a socket may be missing or repeated.
    pub interrupted: bool,
}

/// Dump the TCP sockets of `families` in `states` through `transport`.
pub fn dump<T: Transport>(
    transport: &mut T,
    families: &[Family],
    extensions: Extensions,
    states: StateSet,
) -> Result<Dump> {
    let mut sockets = Vec::new();
    let ask = Ask::new(extensions, states);
    let interrupted = dump_each(transport, families, &ask, &mut |s| {
        sockets.push(s);
        Ok::<(), Error>(())
    })?;
    Ok(Dump {
        sockets,
        interrupted,
    })
}

/// Like [`dump`], but hands each socket to `visit` as its message is
/// decoded, holding none: memory stays at one datagram however many sockets
/// there are. Returns whether the kernel flagged the dump as interrupted.
/// An error from `visit` ends the dump and is returned as it is. With a
/// program (see [`bytecode`]) the kernel sends only the sockets it
/// accepts; a kernel that refuses the program fails the dump with EINVAL
/// before any socket. With ports (see [`Ports`]) it skips the sockets on
/// other ports before it runs the program.
pub fn dump_each<T: Transport, E: From<Error>>(
    transport: &mut T,
    families: &[Family],
    ask: &Ask<'_>,
    visit: &mut dyn FnMut(DiagSocket) -> std::result::Result<(), E>,
) -> std::result::Result<bool, E> {
    let mut interrupted = false;
    let mut buf = vec![0u8; 64 * 1024];
    for (seq, &family) in (1u32..).zip(families) {
        let request = request::dump_request(family, ask, seq);
        interrupted |= run_dump(transport, &request, seq, &mut buf, visit)?;
    }
    Ok(interrupted)
}

/// [`dump_each`] of one family read ahead on a thread of its own over
/// `socket` (see [`Prefetch`]): hand the result to `dump_each` with the
/// same family, extensions and states.
pub fn read_ahead(
    socket: NetlinkSocket,
    family: Family,
    extensions: Extensions,
    states: StateSet,
) -> io::Result<Prefetch> {
    Prefetch::start(
        socket,
        request::dump_request(family, &Ask::new(extensions, states), 1),
    )
}

/// Like [`dump_each`] for both families in one walk of the kernel's hash
/// tables (the older `TCPDIAG_GETSOCK` request): the sockets of the two
/// families come interleaved, in the kernel's order. Cheaper when a
/// program leaves few sockets to copy, since the walk is then most of the
/// cost; a kernel without the request fails with an error before any
/// socket.
pub fn dump_both_each<T: Transport, E: From<Error>>(
    transport: &mut T,
    ask: &Ask<'_>,
    visit: &mut dyn FnMut(DiagSocket) -> std::result::Result<(), E>,
) -> std::result::Result<bool, E> {
    let mut buf = vec![0u8; 64 * 1024];
    let request = request::both_families_request(ask, 1);
    run_dump(transport, &request, 1, &mut buf, visit)
}

/// Every socket of both families in one walk of the kernel's tables (see
/// [`dump_both_each`]), handed to `visit` as the two dumps of
/// [`dump_each`] would hand them: the IPv4 sockets as they come, then the
/// IPv6 ones, whose messages are kept undecoded (their bytes) until the
/// walk ends, in `later` (emptied first; its room is the caller's to keep
/// for the next dump). The kernel looks at each socket once, where a dump
/// per family walks its tables twice and passes over the other family's
/// sockets. Whether the kernel flagged the dump as interrupted.
pub fn dump_both_in_turn<T: Transport, E: From<Error>>(
    transport: &mut T,
    ask: &Ask<'_>,
    later: &mut Vec<u8>,
    visit: &mut dyn FnMut(DiagSocket) -> std::result::Result<(), E>,
) -> std::result::Result<bool, E> {
    let mut buf = vec![0u8; 64 * 1024];
    let request = request::both_families_request(ask, 1);
    later.clear();
    let interrupted = dump_keeping(transport, &request, 1, &mut buf, visit, Some(later))?;
    let mut at = 0;
    for sl in 0u32.. {
        let Some(len) = later.get(at..at + 4) else {
            break;
        };
        let len = u32::from_ne_bytes(len.try_into().expect("4 bytes")) as usize;
        let payload = View::new(&later[at + 4..at + 4 + len]);
        let socket =
            response::parse_message(payload, sl).map_err(|e| Error::Malformed(e.to_string()))?;
        visit(socket)?;
        at += 4 + len;
    }
    Ok(interrupted)
}

/// Send one dump request and hand each socket of its answer to `visit`;
/// whether the kernel flagged the dump as interrupted.
fn run_dump<T: Transport, E: From<Error>>(
    transport: &mut T,
    request: &[u8],
    seq: u32,
    buf: &mut [u8],
    visit: &mut dyn FnMut(DiagSocket) -> std::result::Result<(), E>,
) -> std::result::Result<bool, E> {
    dump_keeping(transport, request, seq, buf, visit, None)
}

/// [`run_dump`]; with `later`, each IPv6 socket's message is appended
/// there (its length, then its bytes) instead of being decoded.
fn dump_keeping<T: Transport, E: From<Error>>(
    transport: &mut T,
    request: &[u8],
    seq: u32,
    buf: &mut [u8],
    visit: &mut dyn FnMut(DiagSocket) -> std::result::Result<(), E>,
    mut later: Option<&mut Vec<u8>>,
) -> std::result::Result<bool, E> {
    let mut interrupted = false;
    {
        transport.send(request).map_err(|error| Error::Netlink {
            context: "sending the dump request",
            error,
        })?;
        let mut sl = 0u32;
        'datagrams: loop {
            let len = transport.recv(buf).map_err(|error| Error::Netlink {
                context: "receiving the dump",
                error,
            })?;
            if len > buf.len() {
                return Err(Error::Malformed(format!(
                    "a datagram of {len} bytes was truncated to {}",
                    buf.len()
                ))
                .into());
            }
            if len == 0 {
                return Err(Error::Malformed("the dump ended without NLMSG_DONE".into()).into());
            }
            for message in messages(View::new(&buf[..len])) {
                let message = message.map_err(|e| Error::Malformed(e.to_string()))?;
                if message.seq != seq {
                    continue; // an answer to another request
                }
                if message.flags & NLM_F_DUMP_INTR != 0 {
                    interrupted = true;
                }
                match message.kind {
                    NLMSG_DONE => break 'datagrams,
                    NLMSG_ERROR => {
                        let errno = message
                            .payload
                            .i32(0, "nlmsgerr.error")
                            .map_err(|e| Error::Malformed(e.to_string()))?;
                        if errno != 0 {
                            // The kernel sends -errno; i32::MIN has no
                            // positive counterpart (a corrupt answer).
                            return Err(Error::Netlink {
                                context: "the kernel refused the dump",
                                error: io::Error::from_raw_os_error(errno.saturating_neg()),
                            }
                            .into());
                        }
                    }
                    request::SOCK_DIAG_BY_FAMILY | request::TCPDIAG_GETSOCK => {
                        let payload = message.payload.bytes();
                        if let Some(later) = later.as_deref_mut() {
                            if payload.first() == Some(&abi::AF_INET6) {
                                later.extend_from_slice(&(payload.len() as u32).to_ne_bytes());
                                later.extend_from_slice(payload);
                                continue;
                            }
                        }
                        let socket = response::parse_message(message.payload, sl)
                            .map_err(|e| Error::Malformed(e.to_string()))?;
                        sl += 1;
                        visit(socket)?;
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(interrupted)
}

/// Ask the kernel to destroy the socket `id` names (`SOCK_DESTROY`, as
/// `ss -K` does; the kernel needs CONFIG_INET_DIAG_DESTROY and the caller
/// CAP_NET_ADMIN in the socket's network namespace). The outer result is
/// the transport's (the request could not be sent or the answer read); the
/// inner one the kernel's answer: `Ok(())` destroyed, or its error (ENOENT:
/// no such socket; ESTALE: another socket now has those addresses; EPERM;
/// EOPNOTSUPP).
pub fn destroy<T: Transport>(
    transport: &mut T,
    id: &SocketId,
    seq: u32,
) -> Result<std::result::Result<(), io::Error>> {
    let request = request::destroy_request(id, seq);
    transport.send(&request).map_err(|error| Error::Netlink {
        context: "sending the destroy request",
        error,
    })?;
    let mut buf = [0u8; 4096];
    loop {
        let len = transport.recv(&mut buf).map_err(|error| Error::Netlink {
            context: "receiving the answer to a destroy request",
            error,
        })?;
        if len == 0 {
            return Err(Error::Malformed("no answer to the destroy request".into()));
        }
        for message in messages(View::new(&buf[..len.min(buf.len())])) {
            let message = message.map_err(|e| Error::Malformed(e.to_string()))?;
            if message.seq != seq || message.kind != NLMSG_ERROR {
                continue;
            }
            let errno = message
                .payload
                .i32(0, "nlmsgerr.error")
                .map_err(|e| Error::Malformed(e.to_string()))?;
            return Ok(if errno == 0 {
                Ok(())
            } else {
                Err(io::Error::from_raw_os_error(errno.saturating_neg()))
            });
        }
    }
}

/// Decode the destroy notifications in one datagram (from a socket made
/// with [`NetlinkSocket::subscribe_destroy`]).
pub fn destroyed(datagram: &[u8]) -> Result<Vec<DiagSocket>> {
    let mut out = Vec::new();
    destroyed_each(datagram, &mut |socket| out.push(socket))?;
    Ok(out)
}

/// [`destroyed`], each socket handed to `each` as it is decoded (a
/// datagram carries one: no list made for it).
pub fn destroyed_each(datagram: &[u8], each: &mut dyn FnMut(DiagSocket)) -> Result<()> {
    for message in messages(View::new(datagram)) {
        let message = message.map_err(|e| Error::Malformed(e.to_string()))?;
        if message.kind == request::SOCK_DIAG_BY_FAMILY {
            each(
                response::parse_message(message.payload, 0)
                    .map_err(|e| Error::Malformed(e.to_string()))?,
            );
        }
    }
    Ok(())
}

/// Which source to read (the query engine uses each as the query asks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Choice {
    /// Netlink, falling back to /proc when netlink cannot be used.
    #[default]
    Auto,
    Netlink,
    Proc,
}
