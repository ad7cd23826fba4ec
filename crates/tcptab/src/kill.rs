//! Destroying sockets (the kernel's SOCK_DESTROY, as `ss -K`), as an
//! operation on the entries a [`Query`] returns: each socket is named by the
//! full socket id of the dump that found it (addresses, ports, interface
//! and cookie), so a socket that closed, or was replaced by another with
//! the same addresses, between the dump and the destroy is not hit; the
//! request goes to the socket's own network namespace.
//!
//! ```no_run
//! use tcptab::kill::{Destroyer, Outcome};
//! use tcptab::filter::Expr;
//! use tcptab::{Query, State, StateSet};
//!
//! let query = Query::new().filter(Expr::State(StateSet::of(&[State::CloseWait])));
//! let snapshot = query.snapshot()?;
//! let mut destroyer = Destroyer::new(&query);
//! for entry in snapshot.entries() {
//!     match destroyer.destroy(&entry)? {
//!         Outcome::Destroyed => println!("destroyed {}", entry.socket.local),
//!         other => println!("{}: {other}", entry.socket.local),
//!     }
//! }
//! # Ok::<(), tcptab::Error>(())
//! ```

use std::collections::HashMap;
use std::fmt;
use std::io;

use crate::diag::{self, NetlinkSocket, SocketId};
use crate::error::{Error, Result};
use crate::model::{Entry, Source};
use crate::query::Query;

/// What became of one socket.
#[derive(Debug)]
pub enum Outcome {
    Destroyed,
    /// It was no longer there: closed since the dump (ENOENT), or its
    /// addresses now belong to another socket, which was left alone
    /// (ESTALE: the cookie differs).
    Gone(GoneWhy),
    /// The kernel refused: the error says why (EPERM without CAP_NET_ADMIN,
    /// EOPNOTSUPP without CONFIG_INET_DIAG_DESTROY, ...).
    Refused(io::Error),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GoneWhy {
    Closed,
    Replaced,
}

impl Outcome {
    /// `destroyed`, `gone` or `refused`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Destroyed => "destroyed",
            Outcome::Gone(_) => "gone",
            Outcome::Refused(_) => "refused",
        }
    }

    /// Whether the refusal says that no socket can be destroyed here: the
    /// caller lacks CAP_NET_ADMIN, or the kernel lacks the feature.
    pub fn refuses_every_socket(&self) -> bool {
        match self {
            Outcome::Refused(e) => matches!(
                e.raw_os_error(),
                Some(EPERM) | Some(EACCES) | Some(EOPNOTSUPP)
            ),
            _ => false,
        }
    }
}

const EPERM: i32 = 1;
const ENOENT: i32 = 2;
const EACCES: i32 = 13;
const EOPNOTSUPP: i32 = 95;
const ESTALE: i32 = 116;

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Destroyed => f.write_str("destroyed"),
            Outcome::Gone(GoneWhy::Closed) => {
                f.write_str("already gone (closed since it was listed)")
            }
            Outcome::Gone(GoneWhy::Replaced) => {
                f.write_str("already gone (its addresses now belong to another socket, left alone)")
            }
            Outcome::Refused(e) => match e.raw_os_error() {
                Some(EPERM) | Some(EACCES) => {
                    f.write_str("refused: destroying sockets needs CAP_NET_ADMIN (run as root)")
                }
                Some(EOPNOTSUPP) => f.write_str(
                    "refused: this kernel cannot destroy sockets (CONFIG_INET_DIAG_DESTROY is off)",
                ),
                _ => write!(f, "refused: {e}"),
            },
        }
    }
}

/// The socket id an entry's dump gave, or `None` for an entry read from
/// /proc (which has no cookie and cannot be named exactly).
pub fn socket_id(entry: &Entry<'_>) -> Option<SocketId> {
    let diag = entry.diag.filter(|_| entry.source == Source::Netlink)?;
    Some(SocketId {
        family: entry.socket.family,
        local: entry.socket.local,
        remote: entry.socket.remote,
        interface: diag.interface,
        cookie: diag.cookie,
    })
}

/// Destroys sockets found by one query, with one netlink socket per
/// network namespace, opened there when first needed.
#[derive(Debug)]
pub struct Destroyer<'q> {
    query: &'q Query,
    sockets: HashMap<Option<u64>, NetlinkSocket>,
    seq: u32,
}

impl<'q> Destroyer<'q> {
    pub fn new(query: &'q Query) -> Destroyer<'q> {
        Destroyer {
            query,
            sockets: HashMap::new(),
            seq: 0,
        }
    }

    /// Destroy the socket of `entry` (from the netlink source). An error is
    /// the transport's: the namespace could not be entered or netlink
    /// answered nothing sensible.
    pub fn destroy(&mut self, entry: &Entry<'_>) -> Result<Outcome> {
        let id = socket_id(entry).ok_or_else(|| {
            Error::Query(
                "only a socket from a netlink dump can be destroyed (it names the socket exactly)"
                    .into(),
            )
        })?;
        let socket = match self.sockets.entry(entry.namespace.map(|n| n.inode)) {
            std::collections::hash_map::Entry::Occupied(open) => open.into_mut(),
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(self.query.netlink_socket(entry.namespace)?)
            }
        };
        self.seq = self.seq.wrapping_add(1);
        Ok(match diag::destroy(socket, &id, self.seq)? {
            Ok(()) => Outcome::Destroyed,
            Err(e) if e.raw_os_error() == Some(ENOENT) => Outcome::Gone(GoneWhy::Closed),
            Err(e) if e.raw_os_error() == Some(ESTALE) => Outcome::Gone(GoneWhy::Replaced),
            Err(e) => Outcome::Refused(e),
        })
    }
}
