//! "A socket and what came with it", the one currency of the crate: the
//! borrowed [`Entry`] (what a query visits, holding nothing) and its owned
//! twin [`EntryBuf`] (what is kept: evidence, events, frames, history
//! rows), with a conversion each way; and [`Key`], what identifies one
//! connection across looks.

use std::net::SocketAddr;
use std::sync::Arc;

use super::diag::{Diag, DiagSocket};
use super::netns::Namespace;
use super::owners::{Owners, Ownership};
use super::socket::Socket;
use super::workload::Workload;

/// Where a socket was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// The sock_diag netlink interface.
    Netlink,
    /// The /proc text tables.
    Proc,
}

impl Source {
    /// `netlink` or `proc`.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Netlink => "netlink",
            Source::Proc => "proc",
        }
    }
}

display_by_name!(Source, as_str);

/// One socket as the engine hands it over, borrowed: built with
/// [`Entry::new`] and the `with_` methods, or from an [`EntryBuf`].
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Entry<'a> {
    pub socket: &'a Socket,
    /// What only netlink has, when the socket came from a dump.
    pub diag: Option<&'a Diag>,
    pub source: Source,
    /// Its network namespace, when the query named namespaces (None for
    /// the reader's own).
    pub namespace: Option<&'a Namespace>,
    /// Its owners, when they were looked up.
    pub owners: Option<Ownership<'a>>,
    /// Its workload (cgroup, unit, container, pod), when looked up and
    /// known: a full socket's through netlink, or its owner's.
    pub workload: Option<&'a Arc<Workload>>,
    /// The pod at the other end (`NAMESPACE/POD`): its remote address is
    /// one of the pod's namespace on this host (every namespace read, with
    /// workloads).
    pub peer_pod: Option<&'a Arc<str>>,
}

impl<'a> Entry<'a> {
    /// `socket` read from `source`, with nothing else known.
    pub fn new(socket: &'a Socket, source: Source) -> Entry<'a> {
        Entry {
            socket,
            diag: None,
            source,
            namespace: None,
            owners: None,
            workload: None,
            peer_pod: None,
        }
    }

    /// The same entry for another copy of its socket (renumbered, say).
    pub fn with_socket<'b>(self, socket: &'b Socket) -> Entry<'b>
    where
        'a: 'b,
    {
        Entry { socket, ..self }
    }

    setters! {
        fn with_diag(diag: Option<&'a Diag>) => diag;
        fn with_namespace(namespace: Option<&'a Namespace>) => namespace;
        fn with_owners(owners: Option<Ownership<'a>>) => owners;
        fn with_workload(workload: Option<&'a Arc<Workload>>) => workload;
        fn with_peer_pod(peer_pod: Option<&'a Arc<str>>) => peer_pod;
    }

    /// The owned twin (its diag, namespace and owners copied).
    pub fn to_buf(&self) -> EntryBuf {
        EntryBuf {
            socket: *self.socket,
            diag: self.diag.cloned(),
            source: self.source,
            namespace: self.namespace.map(|n| Arc::new(n.clone())),
            owners: self.owners.map(Ownership::to_owners),
            workload: self.workload.cloned(),
            peer_pod: self.peer_pod.cloned(),
        }
    }

    /// The key of its connection.
    pub fn key(&self) -> Key {
        Key::of(
            self.namespace.map_or(0, |n| n.inode),
            self.socket,
            self.diag,
        )
    }
}

/// One socket and what came with it, owned: what is kept after a query's
/// walk (a snapshot, the evidence of a finding, a watch event, a history
/// row). [`EntryBuf::as_entry`] lends it as an [`Entry`].
#[derive(Debug, PartialEq)]
#[non_exhaustive]
pub struct EntryBuf {
    pub socket: Socket,
    pub diag: Option<Diag>,
    pub source: Source,
    /// Shared by the sockets of one namespace.
    pub namespace: Option<Arc<Namespace>>,
    pub owners: Option<Owners>,
    pub workload: Option<Arc<Workload>>,
    /// The pod at the other end ([`Entry::peer_pod`]).
    pub peer_pod: Option<Arc<str>>,
}

// `clone_from` keeps the allocations it has (the tcp_info box, the
// algorithm's name): see `Diag`.
impl Clone for EntryBuf {
    fn clone(&self) -> EntryBuf {
        EntryBuf {
            socket: self.socket,
            diag: self.diag.clone(),
            source: self.source,
            namespace: self.namespace.clone(),
            owners: self.owners.clone(),
            workload: self.workload.clone(),
            peer_pod: self.peer_pod.clone(),
        }
    }

    fn clone_from(&mut self, from: &EntryBuf) {
        self.socket = from.socket;
        self.diag.clone_from(&from.diag);
        self.source = from.source;
        self.namespace.clone_from(&from.namespace);
        self.owners.clone_from(&from.owners);
        self.workload.clone_from(&from.workload);
        self.peer_pod.clone_from(&from.peer_pod);
    }
}

impl EntryBuf {
    /// `socket` read from `source`, with nothing else known.
    pub fn new(socket: Socket, source: Source) -> EntryBuf {
        Entry::new(&socket, source).to_buf()
    }

    /// A socket of a netlink dump or destroy notification.
    pub fn dumped(d: DiagSocket) -> EntryBuf {
        // Made in place: each notification's socket comes through here.
        EntryBuf {
            socket: d.socket,
            diag: Some(d.diag),
            source: Source::Netlink,
            namespace: None,
            owners: None,
            workload: None,
            peer_pod: None,
        }
    }

    pub fn with_namespace(mut self, namespace: Option<Arc<Namespace>>) -> EntryBuf {
        self.namespace = namespace;
        self
    }

    pub fn with_owners(mut self, owners: Option<Owners>) -> EntryBuf {
        self.owners = owners;
        self
    }

    pub fn with_workload(mut self, workload: Option<Arc<Workload>>) -> EntryBuf {
        self.workload = workload;
        self
    }

    pub fn with_peer_pod(mut self, pod: Option<Arc<str>>) -> EntryBuf {
        self.peer_pod = pod;
        self
    }

    /// `entry` owned, in the shared `namespace` (which it must be in):
    /// what a snapshot keeps, one namespace for many sockets.
    pub fn in_namespace(entry: &Entry<'_>, namespace: Option<Arc<Namespace>>) -> EntryBuf {
        EntryBuf {
            socket: *entry.socket,
            diag: entry.diag.cloned(),
            source: entry.source,
            namespace,
            owners: entry.owners.map(Ownership::to_owners),
            workload: entry.workload.cloned(),
            peer_pod: entry.peer_pod.cloned(),
        }
    }

    /// The borrowed view.
    pub fn as_entry(&self) -> Entry<'_> {
        Entry {
            socket: &self.socket,
            diag: self.diag.as_ref(),
            source: self.source,
            namespace: self.namespace.as_deref(),
            owners: self.owners.as_ref().map(Owners::as_ownership),
            workload: self.workload.as_ref(),
            peer_pod: self.peer_pod.as_ref(),
        }
    }

    /// The key of its connection.
    pub fn key(&self) -> Key {
        self.as_entry().key()
    }

    /// Its namespace's inode (0: the reader's own, unnamed).
    pub fn netns(&self) -> u64 {
        self.namespace.as_ref().map_or(0, |n| n.inode)
    }
}

/// What identifies one connection across looks: its namespace and socket
/// cookie (netlink), or without a cookie (/proc) its inode and ends. A
/// TIME_WAIT socket keeps its connection's cookie when the kernel had
/// made one; a 4-tuple used again is another connection (another cookie).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    Cookie {
        netns: u64,
        cookie: u64,
    },
    Ends {
        netns: u64,
        inode: u64,
        local: SocketAddr,
        remote: SocketAddr,
    },
}

impl Key {
    /// The key of `socket` (with what netlink adds) in namespace `netns`
    /// (its inode; 0 for the reader's own).
    pub fn of(netns: u64, socket: &Socket, diag: Option<&Diag>) -> Key {
        match diag {
            Some(d) if d.cookie != 0 => Key::Cookie {
                netns,
                cookie: d.cookie,
            },
            _ => Key::Ends {
                netns,
                inode: socket.inode,
                local: socket.local,
                remote: socket.remote,
            },
        }
    }

    /// The namespace's inode.
    pub fn netns(&self) -> u64 {
        match *self {
            Key::Cookie { netns, .. } | Key::Ends { netns, .. } => netns,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Family, MemInfo, Owner, RowKind, TcpInfo};

    /// Entries with each part present or not, and different values.
    fn entries() -> Vec<EntryBuf> {
        let mut all = Vec::new();
        for (i, with_diag) in [(1u32, false), (2, true), (3, true)] {
            let mut socket = Socket::empty(Family::Ipv4, RowKind::Full);
            socket.inode = u64::from(i);
            let mut e = EntryBuf::new(socket, Source::Proc);
            if with_diag {
                e.source = Source::Netlink;
                e.diag = Some(Diag {
                    cookie: u64::from(i),
                    tcp_info: (i == 2).then(|| {
                        Arc::new(TcpInfo {
                            bytes_acked: 7,
                            ..TcpInfo::default()
                        })
                    }),
                    congestion_algorithm: Some(["cubic", "bbr"][i as usize % 2].into()),
                    memory: (i == 3).then(|| Box::new(MemInfo::default())),
                    ..Diag::default()
                });
                e.owners = Some(Owners::Owned(Arc::from([Owner {
                    pid: i,
                    command: "x".into(),
                    fd: 3,
                }])));
                e.workload = Some(Arc::new(Workload::from_cgroup("/a.slice/b.service")));
                e.peer_pod = Some("ns/pod".into());
            }
            all.push(e);
        }
        all
    }

    #[test]
    fn clone_from_gives_what_clone_gives_whatever_it_held() {
        for from in entries() {
            for mut to in entries() {
                to.clone_from(&from);
                assert_eq!(to, from.clone());
            }
        }
    }
}
