//! What a walk looks up beside the sockets: the owner scan (made before
//! the dump) and each socket's workload (cached per cgroup).

use std::cell::RefCell;
use std::sync::{Arc, Mutex};

use crate::model::{Diag, Owners, Ownership, Socket, Workload};
use crate::owners::OwnerScan;
use crate::workload::Workloads;

use super::peers::Peers;

/// The lookups of one walk, lent to each socket's visit.
pub(super) struct Looks<'a> {
    pub scan: Option<&'a OwnerScan>,
    /// The query's resolver (kept across walks: each cgroup is resolved
    /// once per process, not per poll).
    pub workloads: Option<&'a Mutex<Option<Workloads>>>,
    /// The last cgroup id looked up and its workload: neighbours in a dump
    /// are often of one cgroup.
    pub last: RefCell<Option<(u64, Option<Arc<Workload>>)>>,
    /// The pods' addresses, with every namespace read and workloads.
    pub peers: Peers,
}

impl Looks<'_> {
    /// The pod at the other end of `socket`, if its remote address is a
    /// pod's.
    pub fn peer(&self, socket: &Socket) -> Option<&Arc<str>> {
        self.peers.pod(socket.remote.ip())
    }

    /// The socket's owners, owned (shared with the scan), when the walk
    /// scanned them.
    pub fn owners(&self, socket: &Socket) -> Option<Owners> {
        self.scan.map(|o| o.owners_of(socket))
    }

    /// The socket's owners, when the walk scanned them.
    pub fn ownership(&self, socket: &Socket) -> Option<Ownership<'_>> {
        self.scan.map(|o| o.ownership(socket))
    }

    /// The socket's workload, when the walk looks them up: a full
    /// socket's cgroup through netlink, else its first owner's (a /proc
    /// row, with owners scanned). None for TIME_WAIT and request sockets
    /// (the kernel keeps no cgroup for them) and for a cgroup removed
    /// since.
    pub fn workload(&self, socket: &Socket, diag: Option<&Diag>) -> Option<Arc<Workload>> {
        let workloads = self.workloads?;
        let lookup = |f: &dyn Fn(&mut Workloads) -> Option<Arc<Workload>>| {
            let mut guard = workloads.lock().unwrap_or_else(|e| e.into_inner());
            guard.as_mut().and_then(f)
        };
        match diag.map(|d| d.cgroup_id) {
            Some(0) => None,
            Some(id) => {
                if let Some((last, w)) = &*self.last.borrow() {
                    if *last == id {
                        return w.clone();
                    }
                }
                let w = lookup(&|w| w.by_id(id));
                *self.last.borrow_mut() = Some((id, w.clone()));
                w
            }
            None => {
                let pid = self.ownership(socket)?.owners().first()?.pid;
                lookup(&|w| w.by_pid(pid))
            }
        }
    }
}
