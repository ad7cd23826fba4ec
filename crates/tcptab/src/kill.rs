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
use crate::model::{Entry, EntryBuf, Source, State, StateSet};
use crate::query::Query;

/// What a kill would do to the sockets a filter selected: the rule is on
/// the sockets, not on the words of the filter. A listener is destroyed
/// only when the filter named its state by itself (`-l`, `--state
/// listening`, `state listening`: not a group such as `all` or `big`, not
/// what an `exclude` or a `not` leaves), or the caller says listeners are
/// meant.
#[derive(Debug, Default)]
pub struct Plan {
    /// The sockets to destroy.
    pub destroy: Vec<EntryBuf>,
    /// The sockets the filter selected that are left alone, and why.
    pub left_out: Vec<(EntryBuf, LeftOut)>,
}

/// Why a selected socket is left alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeftOut {
    /// A listener whose state the filter did not name.
    ListenerNotNamed,
}

impl fmt::Display for LeftOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LeftOut::ListenerNotNamed => f.write_str(
                "a listener, and the filter does not name the listening state (-l, --state listening, or --listeners)",
            ),
        }
    }
}

/// The plan for `selected`: `named`, the states the filter named by
/// themselves ([`crate::filter::Expr::parse_naming`], and the options'
/// own); `listeners`, that every listener selected is meant.
pub fn plan(selected: Vec<EntryBuf>, named: StateSet, listeners: bool) -> Plan {
    let mut plan = Plan::default();
    let listeners_meant = listeners || named.contains(State::Listen);
    for e in selected {
        if e.socket.state == State::Listen && !listeners_meant {
            plan.left_out.push((e, LeftOut::ListenerNotNamed));
        } else {
            plan.destroy.push(e);
        }
    }
    plan
}

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

// The errors SOCK_DESTROY answers with (errno numbers, as rustix has them).
const EPERM: i32 = rustix::io::Errno::PERM.raw_os_error();
const ENOENT: i32 = rustix::io::Errno::NOENT.raw_os_error();
const EACCES: i32 = rustix::io::Errno::ACCESS.raw_os_error();
const EOPNOTSUPP: i32 = rustix::io::Errno::OPNOTSUPP.raw_os_error();
const ESTALE: i32 = rustix::io::Errno::STALE.raw_os_error();

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::Expr;
    use crate::model::{Family, RowKind, Socket};
    use proptest::prelude::*;

    /// A table of every listed state, listeners among them.
    fn table() -> Vec<EntryBuf> {
        let mut out = Vec::new();
        for (i, state) in State::LISTED.iter().enumerate() {
            let kind = match state {
                State::TimeWait => RowKind::TimeWait,
                State::SynRecv => RowKind::Request,
                _ => RowKind::Full,
            };
            let mut s = Socket::empty(Family::Ipv4, kind);
            s.state = *state;
            s.local = format!("127.0.0.1:{}", 80 + i).parse().unwrap();
            s.remote = if *state == State::Listen {
                "0.0.0.0:0".parse().unwrap()
            } else {
                format!("127.0.0.1:{}", 40000 + i).parse().unwrap()
            };
            out.push(EntryBuf::new(s, Source::Netlink));
        }
        out
    }

    /// What a kill with `filter` would destroy of [`table`].
    fn destroyed(filter: &str, listeners: bool) -> Vec<State> {
        let (expr, named) = Expr::parse_naming(filter).unwrap();
        plan(select(&expr), named, listeners)
            .destroy
            .iter()
            .map(|e| e.socket.state)
            .collect()
    }

    #[test]
    fn a_listener_only_when_its_state_is_named() {
        let more = [
            "sport = :89",
            "state connected or sport = :89",
            "! ( state listening )",
        ];
        for filter in testkit::FILTERS_NOT_NAMING_LISTENERS
            .into_iter()
            .chain(more)
        {
            let states = destroyed(filter, false);
            assert!(!states.contains(&State::Listen), "{filter}: {states:?}");
        }
        for filter in [
            "state listening",
            "state listen",
            "state established state listening",
            "sport = :89 and state listening",
            "not not state listening",
        ] {
            let states = destroyed(filter, false);
            assert!(states.contains(&State::Listen), "{filter}: {states:?}");
        }
        // --listeners means them whatever the filter.
        assert!(destroyed("state all", true).contains(&State::Listen));
        // What is left out says why.
        let (expr, named) = Expr::parse_naming("state all").unwrap();
        let selected: Vec<EntryBuf> = table()
            .into_iter()
            .filter(|e| expr.matches(&e.socket, None, None))
            .collect();
        let p = plan(selected, named, false);
        assert_eq!(p.left_out.len(), 1);
        assert_eq!(p.left_out[0].1, LeftOut::ListenerNotNamed);
    }

    /// The words of a random filter.
    fn word() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(vec![
                "state",
                "exclude",
                "not",
                "!",
                "and",
                "or",
                "(",
                ")",
                "all",
                "big",
                "connected",
                "synchronized",
                "bucket",
                "established",
                "close-wait",
                "time-wait",
                "syn-recv",
                "fin-wait-1",
                "unconnected",
                "sport",
                "dport",
                "=",
                "!=",
                ">",
                "<",
            ])
            .prop_map(str::to_string),
            (80u16..95).prop_map(|p| format!(":{p}")),
        ]
    }

    /// The sockets of [`table`] that `expr` matches, as the kernel would
    /// select them.
    fn select(expr: &Expr) -> Vec<EntryBuf> {
        table()
            .into_iter()
            .filter(|e| expr.matches(&e.socket, None, None))
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        /// Never a listener destroyed unless a word of the filter names
        /// its state (these filters have none).
        #[test]
        fn never_a_listener_unless_named(words in prop::collection::vec(word(), 0..12)) {
            let text = words.join(" ");
            if let Ok((expr, named)) = Expr::parse_naming(&text) {
                let selected = select(&expr);
                let p = plan(selected, named, false);
                prop_assert!(
                    p.destroy.iter().all(|e| e.socket.state != State::Listen),
                    "{text}"
                );
            }
        }

        /// With a listening word somewhere in it, a listener is destroyed
        /// only when that word stands positively (the plan and a filter
        /// without it agree on everything else).
        #[test]
        fn the_rest_is_the_filter_s(words in prop::collection::vec(word(), 0..12)) {
            let text = words.join(" ");
            if let Ok((expr, named)) = Expr::parse_naming(&text) {
                let selected = select(&expr);
                let total = selected.len();
                let p = plan(selected, named, false);
                prop_assert_eq!(p.destroy.len() + p.left_out.len(), total);
                prop_assert!(p.destroy.iter().all(|e| e.socket.state != State::Listen || named.contains(State::Listen)));
            }
        }
    }
}
