//! The engine behind [`Query`]: the namespaces a query reads, the source
//! chosen (and the fallback) for each, the netlink dumps (one walk or one
//! per family, the filter compiled for the kernel) and the /proc reads,
//! each socket filtered and handed over as it is read.

use std::fs::File;
use std::io;
use std::path::Path;

use super::looks::Looks;
use super::report::{
    KernelFilter, NamespaceRead, NotInspected, NotInspectedReason, OwnerReport, Report, Why,
};
use super::{Namespaces, Query};
use crate::diag::{self, Choice, NetlinkSocket};
use crate::error::{Error, Result};
use crate::filter::{Expr, Facts};
use crate::model::{Diag, DiagSocket, Family, Namespace, Socket, Source};
use crate::netns;
use crate::owners::OwnerScan;
use crate::procnet::{ProcRoot, TableReader};
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
enum Stop<E> {
    Lib(Error),
    Caller(E),
}

impl<E> From<Error> for Stop<E> {
    fn from(e: Error) -> Stop<E> {
        Stop::Lib(e)
    }
}

impl Query {
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
    /// socket.
    pub(super) fn walk<E: From<Error>>(
        &self,
        mut visit: impl FnMut(
            usize,
            Option<&Namespace>,
            &Looks<'_>,
            Raw<'_>,
        ) -> std::result::Result<(), E>,
    ) -> std::result::Result<(Report, Option<OwnerScan>), E> {
        let (targets, processes_unreadable) = self.targets()?;
        let scan = if self.looks_up_owners() {
            Some(OwnerScan::scan_all(&self.root).map_err(|error| Error::Io {
                path: self.root.clone(),
                error,
            })?)
        } else {
            None
        };
        let workloads = self.looks_up_workloads().then(|| {
            self.with_resolver(Workloads::new_walk);
            &*self.workload_cache
        });
        let looks = Looks {
            scan: scan.as_ref(),
            workloads,
            last: Default::default(),
        };
        let mut report = Report {
            processes_unreadable,
            owners: scan.as_ref().map(|s| OwnerReport {
                inspected: s.inspected,
                denied: s.denied,
                denied_reason: s.denied_reason,
                vanished: s.vanished,
            }),
            ..Report::default()
        };
        for target in targets {
            let index = report.read.len();
            let mut read = NamespaceRead {
                namespace: None,
                source: Source::Proc,
                why: Why::Chosen,
                sockets: 0,
                matched: 0,
                interrupted: false,
                tables: Vec::with_capacity(2),
                skipped_lines: 0,
                first_skipped: None,
                notes: Vec::new(),
                repeated: 0,
                kernel_filter: None,
            };
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
                    self.read_namespace(target.as_ref(), &filter, &mut deliver)
                });
            let delivered = read.sockets;
            match outcome {
                Ok(how) => {
                    read.source = how.source;
                    read.why = how.why;
                    read.interrupted = how.interrupted;
                    read.skipped_lines = how.skipped_lines;
                    read.first_skipped = how.first_skipped;
                    read.notes = how.notes;
                    read.repeated = how.repeated;
                    read.kernel_filter = how.kernel_filter;
                    read.namespace = target;
                    report.read.push(read);
                }
                Err(Stop::Caller(e)) => return Err(e),
                Err(Stop::Lib(e)) => {
                    let namespace = match target {
                        Some(ns) if delivered == 0 => ns,
                        _ => return Err(e.into()),
                    };
                    let reason = if vanished(&namespace, &self.root) {
                        NotInspectedReason::Vanished
                    } else if self.namespaces == Namespaces::All && permission_denied(&e) {
                        NotInspectedReason::PermissionDenied(e.to_string())
                    } else {
                        return Err(e.into());
                    };
                    report
                        .not_inspected
                        .push(NotInspected { namespace, reason });
                }
            }
        }
        Ok((report, scan))
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

    /// Read one namespace through the chosen source.
    fn read_namespace<E>(
        &self,
        namespace: Option<&Namespace>,
        filter: &Expr,
        deliver: &mut dyn FnMut(Raw<'_>) -> std::result::Result<(), Stop<E>>,
    ) -> std::result::Result<How, Stop<E>> {
        let proc = |why: Why| -> std::result::Result<(), Stop<E>> {
            if filter.needs_netlink() {
                let why = match why {
                    Why::Fallback(reason) => format!(" ({reason})"),
                    _ => String::new(),
                };
                let (word, what) = if filter.has(&|e| matches!(e, Expr::Dev { .. })) {
                    ("dev", "which interface a socket is bound to")
                } else {
                    ("cgroup", "which cgroup made a socket")
                };
                return Err(Stop::Lib(Error::Query(format!(
                    "the filter's '{word}' needs netlink, and the sockets were read from /proc{why}, whose tables do not say {what}"
                ))));
            }
            Ok(())
        };
        if self.is_captured() {
            proc(Why::Captured)?;
            return self.read_proc(namespace, deliver, Why::Captured);
        }
        match self.source {
            Choice::Proc => {
                proc(Why::Chosen)?;
                self.read_proc(namespace, deliver, Why::Chosen)
            }
            Choice::Netlink => self.read_netlink(namespace, filter, deliver, &mut 0),
            Choice::Auto => {
                let mut delivered = 0u64;
                match self.read_netlink(namespace, filter, deliver, &mut delivered) {
                    Err(Stop::Lib(e @ Error::Netlink { .. })) if delivered == 0 => {
                        let why = Why::Fallback(e.to_string());
                        proc(why.clone())?;
                        self.read_proc(namespace, deliver, why)
                    }
                    other => other,
                }
            }
        }
    }

    fn read_netlink<E>(
        &self,
        namespace: Option<&Namespace>,
        filter: &Expr,
        deliver: &mut dyn FnMut(Raw<'_>) -> std::result::Result<(), Stop<E>>,
        delivered: &mut u64,
    ) -> std::result::Result<How, Stop<E>> {
        let mut socket = self.netlink_socket(namespace)?;
        let mut how = How::new(Source::Netlink, Why::Chosen);
        // The address, port, interface and autobound conditions run in the
        // kernel, which then sends only what can match; the whole filter
        // is still applied to what it sends.
        let mut program = match &self.kernel_program {
            Some(bytes) => Some((bytes.clone(), None)),
            None if !self.kernel => None,
            None => diag::bytecode::compile(filter).map(|p| {
                let kernel = KernelFilter {
                    runs: p.runs.to_string(),
                    whole: p.whole,
                    bytes: p.bytes.len(),
                };
                (p.bytes, Some(kernel))
            }),
        };
        let mut families = vec![Family::Ipv4, Family::Ipv6];
        // A narrow question: both families in one walk of the kernel's
        // tables, which is then most of the cost.
        if program.is_some() && self.one_walk {
            match self.read_both_families(&mut socket, filter, &program, deliver, delivered) {
                Ok((interrupted, rest)) => {
                    how.interrupted |= interrupted;
                    how.notes.push(match rest {
                        Some(_) => format!(
                            "IPv4 in one walk of the kernel's tables with IPv6, then more than {} IPv6 sockets matched: IPv6 read again by its own dump",
                            self.held_ipv6
                        ),
                        None => "both families in one walk of the kernel's tables".to_string(),
                    });
                    families = rest.into_iter().collect();
                }
                // The older request is refused (or the program is): ask
                // per family, as below.
                Err(Stop::Lib(Error::Netlink { .. })) if *delivered == 0 => {}
                Err(e) => return Err(e),
            }
        }
        for family in families {
            loop {
                // Announced before its first socket, or after an empty
                // dump: a dump that fails at once (auto falls back, a
                // refused program is dropped) announces none.
                let mut announced = false;
                let dumped = diag::dump_each(
                    &mut socket,
                    &[family],
                    self.extensions,
                    filter.states(),
                    program.as_ref().map(|(bytes, _)| bytes.as_slice()),
                    &mut |d| {
                        if !announced {
                            announced = true;
                            deliver(Raw::Table(family, Source::Netlink))?;
                        }
                        *delivered += 1;
                        deliver(Raw::Dumped(&mut Some(d)))
                    },
                );
                match dumped {
                    Ok(interrupted) => how.interrupted |= interrupted,
                    Err(Stop::Lib(Error::Netlink { error, .. }))
                        if !announced
                            && program.is_some()
                            && error.raw_os_error()
                                == Some(rustix::io::Errno::INVAL.raw_os_error()) =>
                    {
                        // The kernel's audit refused the program: filter
                        // after the dump instead, and say so.
                        program = None;
                        how.notes.push(format!(
                            "the kernel refused the filter program ({error}); every socket was read and filtered here{}",
                            if filter.has(&|e| matches!(e, Expr::Autobound { .. })) {
                                ", and autobound was judged by the ephemeral port range alone"
                            } else {
                                ""
                            }
                        ));
                        continue;
                    }
                    Err(e) => return Err(e),
                }
                if !announced {
                    // Counted as delivered: a failure after this cannot
                    // fall back without announcing the table twice.
                    *delivered += 1;
                    deliver(Raw::Table(family, Source::Netlink))?;
                }
                break;
            }
        }
        how.kernel_filter = program.and_then(|(_, kernel)| kernel);
        Ok(how)
    }

    /// The most IPv6 sockets a one-walk dump holds by default until its
    /// IPv4 ones are delivered (the tables come one family after the
    /// other).
    pub(super) const HELD_IPV6: usize = 4096;

    /// Hold at most `n` IPv6 sockets in a one-walk dump (tests: the path
    /// where more match).
    #[cfg(feature = "internals")]
    #[doc(hidden)]
    pub fn held_ipv6(mut self, n: usize) -> Query {
        self.held_ipv6 = n;
        self
    }

    /// Both families in one dump: IPv4 sockets delivered as they come,
    /// IPv6 ones held (up to [`Self::HELD_IPV6`] by default) and delivered
    /// after. When
    /// more IPv6 sockets match than that, they are dropped and
    /// `Some(Ipv6)` says that IPv6 is still to be read.
    fn read_both_families<E>(
        &self,
        socket: &mut NetlinkSocket,
        filter: &Expr,
        program: &Option<(Vec<u8>, Option<KernelFilter>)>,
        deliver: &mut dyn FnMut(Raw<'_>) -> std::result::Result<(), Stop<E>>,
        delivered: &mut u64,
    ) -> std::result::Result<(bool, Option<Family>), Stop<E>> {
        let mut announced = false;
        let mut held: Vec<DiagSocket> = Vec::new();
        let mut overflow = false;
        let mut v4_sl = 0u32;
        let interrupted = diag::dump_both_each(
            socket,
            self.extensions,
            filter.states(),
            program.as_ref().map(|(bytes, _)| bytes.as_slice()),
            &mut |mut d| {
                if d.socket.family == Family::Ipv6 {
                    if !overflow {
                        if held.len() == self.held_ipv6 {
                            overflow = true;
                            held = Vec::new();
                        } else {
                            held.push(d);
                        }
                    }
                    return Ok(());
                }
                if !announced {
                    announced = true;
                    deliver(Raw::Table(Family::Ipv4, Source::Netlink))?;
                }
                d.socket.sl = v4_sl;
                v4_sl += 1;
                *delivered += 1;
                deliver(Raw::Dumped(&mut Some(d)))
            },
        )?;
        if !announced {
            *delivered += 1;
            deliver(Raw::Table(Family::Ipv4, Source::Netlink))?;
        }
        if overflow {
            return Ok((interrupted, Some(Family::Ipv6)));
        }
        *delivered += 1;
        deliver(Raw::Table(Family::Ipv6, Source::Netlink))?;
        for (sl, mut d) in (0u32..).zip(held) {
            d.socket.sl = sl;
            deliver(Raw::Dumped(&mut Some(d)))?;
        }
        Ok((interrupted, None))
    }

    fn read_proc<E>(
        &self,
        namespace: Option<&Namespace>,
        deliver: &mut dyn FnMut(Raw<'_>) -> std::result::Result<(), Stop<E>>,
        why: Why,
    ) -> std::result::Result<How, Stop<E>> {
        let mut tables = self.open_tables(namespace)?;
        let mut how = How::new(Source::Proc, why);
        for (reader, family) in tables.iter_mut().zip([Family::Ipv4, Family::Ipv6]) {
            let Some(reader) = reader else { continue };
            deliver(Raw::Table(family, Source::Proc))?;
            // The kernel resumes its walk by position between two reads: a
            // socket that opens or closes meanwhile can make rows of the
            // bucket it resumes in appear twice, shortly after their first
            // time. A live table's repeated rows (same addresses, ports and
            // inode) within the last rows read are dropped and counted; a
            // capture is kept as it was taken.
            let mut recent = (!self.is_captured()).then(Recent::default);
            // Parsing runs on a second thread, overlapping the caller.
            reader.for_each_read_ahead(|socket| {
                if let Some(recent) = recent.as_mut() {
                    if recent.seen_again(socket) {
                        how.repeated += 1;
                        return Ok(());
                    }
                }
                deliver(Raw::Read(socket))
            })?;
            how.skipped_lines += reader.lines().skipped();
            if how.first_skipped.is_none() {
                how.first_skipped = reader.lines().first_error().map(|e| e.to_string());
            }
            if let Some(note) = reader.lines().header_note() {
                how.notes
                    .push(format!("{}: {note}", reader.lines().path().display()));
            }
        }
        Ok(how)
    }

    /// The text tables of `namespace` (or of the root).
    fn open_tables(&self, namespace: Option<&Namespace>) -> Result<[Option<TableReader<File>>; 2]> {
        match namespace {
            Some(n) => n.open(&self.root, self.read),
            None => {
                let root = ProcRoot::new(&self.root);
                Ok([
                    root.open(Family::Ipv4, self.read)?,
                    root.open(Family::Ipv6, self.read)?,
                ])
            }
        }
    }
}

/// The rows read most recently, as 64-bit digests of their addresses,
/// ports and inode: a repeat the kernel's walk makes comes within a few
/// read buffers of the row's first time, so a window of rows (constant
/// memory) finds it.
#[derive(Default)]
struct Recent {
    order: std::collections::VecDeque<u64>,
    set: std::collections::HashSet<u64>,
}

impl Recent {
    /// Rows kept: about four of the reader's buffers of full lines.
    const WINDOW: usize = 8192;

    /// Whether `socket` is among the recent rows; remembers it if not.
    fn seen_again(&mut self, socket: &Socket) -> bool {
        use std::hash::{Hash, Hasher};
        let mut digest = std::collections::hash_map::DefaultHasher::new();
        (socket.local, socket.remote, socket.inode).hash(&mut digest);
        let digest = digest.finish();
        if !self.set.insert(digest) {
            return true;
        }
        self.order.push_back(digest);
        if self.order.len() > Self::WINDOW {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        false
    }
}

/// How one namespace was read.
struct How {
    source: Source,
    why: Why,
    interrupted: bool,
    skipped_lines: u64,
    first_skipped: Option<String>,
    notes: Vec<String>,
    repeated: u64,
    kernel_filter: Option<KernelFilter>,
}

impl How {
    fn new(source: Source, why: Why) -> How {
        How {
            source,
            why,
            interrupted: false,
            skipped_lines: 0,
            first_skipped: None,
            notes: Vec::new(),
            repeated: 0,
            kernel_filter: None,
        }
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
