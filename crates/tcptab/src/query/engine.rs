//! The engine behind [`Query`]: the namespaces a query reads, the source
//! chosen (and the fallback) for each, the netlink dumps (one walk or one
//! per family, the filter compiled for the kernel) and the /proc reads,
//! each socket filtered and handed over as it is read.

use std::io;
use std::path::Path;

use super::looks::Looks;
use super::peers::Peers;
use super::report::{NamespaceRead, NotInspected, NotInspectedReason, OwnerReport, Report};
use super::{Namespaces, Query};
use crate::diag::Choice;
use crate::error::{Error, Result};
use crate::filter::{Expr, Facts};
use crate::model::{Diag, DiagSocket, Family, Namespace, Socket, Source};
use crate::netns;
use crate::owners::OwnerScan;
use crate::workload::Workloads;

/// How a socket reaches the engine's walk: by reference, so the walk moves
/// no socket; a dumped one sits in a slot that a snapshot takes it from
/// (the others only look).
pub(super) enum Raw<'a> {
    /// A table (a namespace's family) begins: its sockets follow.
    Table(Family, Source),
    Dumped(&'a mut Option<DiagSocket>),
    Read(&'a Socket),
}

impl Raw<'_> {
    /// The socket, and what only netlink has.
    pub(super) fn socket(&self) -> Option<(&Socket, Option<&Diag>)> {
        match self {
            Raw::Table(..) => None,
            Raw::Dumped(slot) => slot.as_ref().map(|d| (&d.socket, Some(&d.diag))),
            Raw::Read(s) => Some((s, None)),
        }
    }
}

/// Why a namespace's read stopped: the library's error (which may lead to
/// a fallback or a skip) or the caller's (returned as it is).
pub(super) enum Stop<E> {
    Lib(Error),
    Caller(E),
}

impl<E> From<Error> for Stop<E> {
    fn from(e: Error) -> Stop<E> {
        Stop::Lib(e)
    }
}

impl Query {
    /// Where owners are looked for first: the inode of the one live
    /// namespace `targets` names (this process's for None), if there is
    /// exactly one, and the filter does not test owners (it judges each
    /// socket by the first scan's answer).
    pub(super) fn owners_namespace(&self, targets: &[Option<Namespace>]) -> Option<u64> {
        use std::os::unix::fs::MetadataExt;
        match targets {
            _ if self.is_captured() || self.namespaces == Namespaces::All => None,
            _ if self.filter.needs_owners() => None,
            [Some(ns)] => Some(ns.inode),
            [None] => std::fs::metadata(self.root.join("self/ns/net"))
                .ok()
                .map(|m| m.ino()),
            _ => None,
        }
    }

    /// The namespaces to read (None: this one or the capture), and how many
    /// processes' namespace links could not be read.
    pub(super) fn targets(&self) -> Result<(Vec<Option<Namespace>>, u32)> {
        if self.is_captured() {
            if self.namespaces != Namespaces::Current {
                return Err(Error::Query(
                    "a captured root holds one namespace's tables; it cannot be combined with other namespaces".into(),
                ));
            }
            if self.source == Choice::Netlink {
                return Err(Error::Query(
                    "netlink reads the live kernel, not a captured root; read it from its files (the proc source)".into(),
                ));
            }
        }
        Ok(match &self.namespaces {
            Namespaces::Current => (vec![None], 0),
            Namespaces::Named(name) => (vec![Some(netns::named(name)?)], 0),
            Namespaces::Pid(pid) => (vec![Some(netns::of_process(&self.root, *pid)?)], 0),
            Namespaces::All => {
                let (mut found, denied) = netns::discover(&self.root)?;
                if self.looks_up_workloads() {
                    for ns in found.iter_mut().filter(|n| n.name.is_none()) {
                        ns.pod = self.pod_of(ns.pid);
                    }
                }
                (found.into_iter().map(Some).collect(), denied)
            }
        })
    }

    /// `NAMESPACE/POD` of the pod process `pid` is in (a namespace's
    /// lowest process: in a pod, its sandbox's).
    fn pod_of(&self, pid: Option<u32>) -> Option<String> {
        let w = self.with_resolver(|w| w.by_pid(pid?))?;
        match (&w.pod_namespace, &w.pod_name) {
            (Some(ns), Some(pod)) => Some(format!("{ns}/{pod}")),
            (None, Some(pod)) => Some(pod.clone()),
            _ => None,
        }
    }

    /// The one walk behind [`for_each`](Query::for_each) and
    /// [`snapshot`](Query::snapshot): `visit` gets the namespace's index in
    /// [`Report::read`], the namespace, the owner scan and each matching
    /// socket. With `namespace_first`, the owners of a single namespace
    /// are looked for among its own processes only (the caller looks
    /// again, among all, for the sockets left without one). With `kept`,
    /// owners are looked up in that scan instead of a new one.
    pub(super) fn walk<E: From<Error>>(
        &self,
        namespace_first: bool,
        kept: Option<OwnerScan>,
        mut visit: impl FnMut(
            usize,
            Option<&Namespace>,
            &Looks<'_>,
            Raw<'_>,
        ) -> std::result::Result<(), E>,
    ) -> std::result::Result<(Report, Option<OwnerScan>), E> {
        let (targets, processes_unreadable) = self.targets()?;
        // Before a new owner scan, the first namespace's dumps start, so
        // that the kernel walks its tables while the scan walks the
        // processes' (what is read ahead is bounded: the rest waits).
        let early = match self.looks_up_owners() && kept.is_none() {
            true => targets.first().and_then(|t| self.start_ahead(t.as_ref())),
            false => None,
        };
        let early_at = early.is_some().then(crate::time::now_ms);
        let kept_scan = kept.is_some() && self.looks_up_owners();
        let scan = if !self.looks_up_owners() {
            None
        } else if let Some(kept) = kept {
            Some(kept)
        } else {
            let only = match namespace_first {
                true => self.owners_namespace(&targets),
                false => None,
            };
            let scan = match only {
                Some(netns) => OwnerScan::scan_namespace(&self.root, netns),
                None => OwnerScan::scan_all(&self.root),
            };
            Some(scan.map_err(|error| Error::Io {
                path: self.root.clone(),
                error,
            })?)
        };
        let workloads = self.looks_up_workloads().then(|| {
            self.with_resolver(Workloads::new_walk);
            &*self.workload_cache
        });
        let peers = match workloads.is_some() && self.namespaces == Namespaces::All {
            true => Peers::of(&targets, &self.root),
            false => Peers::default(),
        };
        let looks = Looks {
            scan: scan.as_ref(),
            workloads,
            last: Default::default(),
            peers,
        };
        let mut report = Report {
            processes_unreadable,
            owners: scan.as_ref().map(|s| OwnerReport {
                inspected: s.inspected,
                denied: s.denied,
                denied_reason: s.denied_reason,
                vanished: s.vanished,
                kept: kept_scan,
                reused: s.reused,
                walked: s.walked,
            }),
            read_at: early_at.or_else(|| Some(crate::time::now_ms())),
            ..Report::default()
        };
        // With several namespaces, the next one's dumps start while one
        // is read (where it would read ahead at all).
        let mut targets = targets.into_iter().peekable();
        let mut ahead = early;
        while let Some(target) = targets.next() {
            let started = ahead.take();
            let index = report.read.len();
            let mut read = NamespaceRead::begun();
            // The filter with this namespace's facts (autobound's port
            // range, dev's interface index), shared by every socket.
            let bound = std::cell::OnceCell::<Expr>::new();
            // Binding fills in facts, never adds a word: asked once.
            let needs_workload = self.filter.needs_workload();
            let mut deliver = |raw: Raw<'_>| -> std::result::Result<(), Stop<E>> {
                if let Raw::Table(family, _) = raw {
                    read.tables.push(family);
                    return visit(index, target.as_ref(), &looks, raw).map_err(Stop::Caller);
                }
                let Some((socket, diag)) = raw.socket() else {
                    return Ok(());
                };
                read.sockets += 1;
                let filter = bound.get().unwrap_or(&self.filter);
                let workload = match needs_workload {
                    true => looks.workload(socket, diag),
                    false => None,
                };
                let owners = |s: &Socket| looks.ownership(s).map(|o| o.owners());
                if !filter.test_with(socket, diag, &owners, &|| workload.as_deref()) {
                    return Ok(());
                }
                read.matched += 1;
                visit(index, target.as_ref(), &looks, raw).map_err(Stop::Caller)
            };
            let outcome = self
                .filter_for(target.as_ref())
                .map_err(Stop::Lib)
                .and_then(|filter| {
                    let _ = bound.set(filter.clone());
                    ahead = targets
                        .peek()
                        .and_then(|next| self.start_ahead(next.as_ref()));
                    self.read_namespace(target.as_ref(), &filter, started, &mut deliver)
                });
            let delivered = read.sockets;
            match outcome {
                Ok(how) => {
                    how.fill(&mut read);
                    read.namespace = target;
                    report.read.push(read);
                }
                Err(Stop::Caller(e)) => return Err(e),
                Err(Stop::Lib(e)) => {
                    let skipped = self.not_inspected(target, delivered, e)?;
                    report.not_inspected.push(skipped);
                }
            }
        }
        Ok((report, scan))
    }

    /// A namespace that failed before any socket came from it is not
    /// inspected when it vanished meanwhile, or when permission was denied
    /// while discovering every namespace; anything else is an error.
    fn not_inspected(
        &self,
        target: Option<Namespace>,
        delivered: u64,
        e: Error,
    ) -> Result<NotInspected> {
        let namespace = match target {
            Some(ns) if delivered == 0 => ns,
            _ => return Err(e),
        };
        let reason = if vanished(&namespace, &self.root) || replaced(&namespace, &e) {
            NotInspectedReason::Vanished
        } else if self.namespaces == Namespaces::All && permission_denied(&e) {
            NotInspectedReason::PermissionDenied(e.to_string())
        } else {
            return Err(e);
        };
        Ok(NotInspected { namespace, reason })
    }

    /// The ephemeral port range of `namespace` (the reader's own for
    /// None): `net.ipv4.ip_local_port_range`, read inside it.
    pub fn ephemeral_range(
        &self,
        namespace: Option<&Namespace>,
    ) -> Result<crate::filter::PortRange> {
        Ok(self.facts(namespace, &[])?.ephemeral)
    }

    /// What `autobound` and `dev` need of `namespace`, read inside it.
    fn facts(&self, namespace: Option<&Namespace>, names: &[String]) -> Result<Facts> {
        let range = Path::new("sys/net/ipv4/ip_local_port_range");
        match namespace.and_then(|n| n.file(&self.root).map(|f| (n, f))) {
            None => Facts::read(&self.root.join(range), names).map_err(|error| Error::Io {
                path: self.root.join(range),
                error,
            }),
            Some((ns, file)) => {
                let names = names.to_vec();
                netns::run_in(&file, move || {
                    Facts::read(&Path::new("/proc").join(range), &names)
                })
                .map_err(|error| Error::Namespace {
                    name: ns.label(),
                    error,
                })
            }
        }
    }

    /// The query's filter with the facts of `namespace` filled in, when it
    /// needs any (`autobound`'s port range, `dev NAME`'s index): what the
    /// engine tests the namespace's sockets with, e.g. for sockets a
    /// destroy notification brings.
    pub fn filter_for(&self, namespace: Option<&Namespace>) -> Result<Expr> {
        if !self.filter.needs_facts() {
            return Ok(self.filter.clone());
        }
        let names = self.filter.device_names();
        let mut facts = self.facts(namespace, &names)?;
        let paths = self.filter.cgroup_paths();
        if !paths.is_empty() {
            let resolver = self.workload_resolver();
            for path in paths {
                let id = resolver.id_of(&path).map_err(|e| {
                    Error::Query(format!(
                        "filter: cgroup '{}': no such cgroup under {} ({e})",
                        crate::filter::excerpt(&path),
                        resolver
                            .mount()
                            .map_or("the cgroup2 mount".into(), |m| m.display().to_string())
                    ))
                })?;
                facts.cgroups.insert(path, id);
            }
        }
        if self.namespaces != Namespaces::All {
            if let Some(missing) = names.iter().find(|n| !facts.interfaces.contains_key(*n)) {
                return Err(Error::Query(format!(
                    "filter: dev '{}': no such interface{}",
                    crate::filter::excerpt(missing),
                    namespace.map_or(String::new(), |n| format!(
                        " in network namespace {}",
                        n.label()
                    ))
                )));
            }
        }
        Ok(self.filter.bind(&facts))
    }
}

/// A namespace that is gone: its name no longer leads to it and its process
/// has exited (a zombie included, whose /proc directory lingers without
/// `ns/net`). A link that cannot be read for another reason (permission) is
/// not gone: the failure to read it is an error to report, not to hide.
fn vanished(ns: &Namespace, proc_root: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    if ns.path.is_none() && ns.pid.is_none() {
        return false;
    }
    let still_there = |file: &Path| match std::fs::metadata(file) {
        Ok(meta) => meta.ino() == ns.inode || ns.inode == 0,
        Err(e) => e.kind() != io::ErrorKind::NotFound,
    };
    let by_name = ns.path.as_deref().is_some_and(still_there);
    let by_pid = ns
        .pid
        .is_some_and(|pid| still_there(&proc_root.join(pid.to_string()).join("ns/net")));
    !by_name && !by_pid
}

/// A name whose file was no namespace when it was entered (EINVAL from
/// `setns`): `ip netns del` had unmounted it, or `ip netns add` had not
/// mounted it yet; or that was not there to open (`ip netns del` had
/// removed it). Its namespace is gone even when the name leads to a new
/// one by now, which may even have the old one's inode number (the kernel
/// gives the lowest free one again).
fn replaced(ns: &Namespace, e: &Error) -> bool {
    let kind = match e {
        Error::Namespace { error, .. } if error.kind() == io::ErrorKind::NotFound => {
            return ns.path.is_some();
        }
        Error::Namespace { error, .. } | Error::Netlink { error, .. } => error.kind(),
        _ => return false,
    };
    ns.path.is_some() && kind == io::ErrorKind::InvalidInput
}

/// An error that says this process may not enter or read a namespace.
fn permission_denied(e: &Error) -> bool {
    let kind = match e {
        Error::Namespace { error, .. } | Error::Netlink { error, .. } | Error::Io { error, .. } => {
            error.kind()
        }
        _ => return false,
    };
    kind == io::ErrorKind::PermissionDenied
}
