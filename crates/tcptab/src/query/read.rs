//! The engine's readers: one namespace read through netlink (both
//! families, one dump each) or through its /proc tables, each socket
//! handed to the walk as it comes ([`Raw`]), with how it was read
//! ([`How`]).

use std::fs::File;
use std::io;

use super::engine::{Raw, Stop};
use super::report::{KernelFilter, Why};
use super::Query;
use crate::diag::{self, Choice, NetlinkSocket};
use crate::error::{Error, Result};
use crate::filter::Expr;
use crate::model::{DiagSocket, Family, Namespace, Socket, Source};
use crate::procnet::{ProcRoot, TableReader};

/// A namespace's dumps started ahead ([`Query::start_ahead`]).
pub(super) type Ahead = Vec<(Family, diag::Prefetch)>;

impl Query {
    /// Read one namespace through the chosen source; `ahead`, its dumps
    /// if they were started while the namespace before was read.
    pub(super) fn read_namespace<E>(
        &self,
        namespace: Option<&Namespace>,
        filter: &Expr,
        ahead: Option<Ahead>,
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
            return self.read_proc(namespace, filter, deliver, Why::Captured);
        }
        match self.source {
            Choice::Proc => {
                proc(Why::Chosen)?;
                self.read_proc(namespace, filter, deliver, Why::Chosen)
            }
            Choice::Netlink => self.read_netlink(namespace, filter, ahead, deliver, &mut 0),
            Choice::Auto => {
                let mut delivered = 0u64;
                match self.read_netlink(namespace, filter, ahead, deliver, &mut delivered) {
                    Err(Stop::Lib(e @ Error::Netlink { .. })) if delivered == 0 => {
                        let why = Why::Fallback(e.to_string());
                        proc(why.clone())?;
                        self.read_proc(namespace, filter, deliver, why)
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
        started: Option<Ahead>,
        deliver: &mut dyn FnMut(Raw<'_>) -> std::result::Result<(), Stop<E>>,
        delivered: &mut u64,
    ) -> std::result::Result<How, Stop<E>> {
        let mut socket = self.netlink_socket(namespace)?;
        let mut how = How::new(Source::Netlink, Why::Chosen);
        let (mut program, ports) = self.plan(filter, &mut how.notes);
        // Only the families the filter allows (-4, -6) are asked for.
        let mut families: Vec<Family> = [Family::Ipv4, Family::Ipv6]
            .into_iter()
            .filter(|&f| filter.may_be(f))
            .collect();
        // A narrow question: both families in one walk of the kernel's
        // tables, which is then most of the cost.
        if program.is_some() && self.one_walk && families.len() == 2 {
            let read =
                self.read_both_families(&mut socket, filter, &program, ports, deliver, delivered);
            match read {
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
        // Every socket of both families, for a caller that reads again and
        // again: one walk of the kernel's tables, on this thread.
        if program.is_none() && families.len() == 2 && self.one_walk_all {
            match self.read_in_one_walk(&mut socket, filter, deliver, delivered) {
                Ok(interrupted) => {
                    how.interrupted |= interrupted;
                    return Ok(how);
                }
                // The older request is refused: a dump per family.
                Err(Stop::Lib(Error::Netlink { .. })) if *delivered == 0 => {}
                Err(e) => return Err(e),
            }
        }
        // Every socket of both families: each family's dump is read ahead
        // on a thread of its own (the kernel walks its tables inside
        // recvmsg), while the sockets are decoded and handed over here.
        let mut ahead = match (&program, families.as_slice()) {
            (None, [Family::Ipv4, Family::Ipv6]) if self.read_ahead => {
                started.unwrap_or_else(|| self.prefetch(namespace, filter))
            }
            _ => Vec::new(),
        };
        for family in families {
            loop {
                // Announced before its first socket, or after an empty
                // dump: a dump that fails at once (auto falls back, a
                // refused program is dropped) announces none.
                let mut announced = false;
                let mut visit = |d| {
                    if !announced {
                        announced = true;
                        deliver(Raw::Table(family, Source::Netlink))?;
                    }
                    *delivered += 1;
                    deliver(Raw::Dumped(&mut Some(d)))
                };
                let bytes = program.as_ref().map(|(bytes, _)| bytes.as_slice());
                let states = filter.states();
                let prefetched = ahead.iter_mut().find(|(f, _)| *f == family);
                let dumped = match prefetched {
                    Some((_, ahead)) => {
                        let ask = diag::Ask::new(self.extensions, states);
                        diag::dump_each(ahead, &[family], &ask, &mut visit)
                    }
                    None => {
                        let ask = diag::Ask {
                            program: bytes,
                            ports,
                            ..diag::Ask::new(self.extensions, states)
                        };
                        diag::dump_each(&mut socket, &[family], &ask, &mut visit)
                    }
                };
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
                        how.notes.push(refused(&error, filter));
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

    /// The dumps of `namespace` started now, to be read after the
    /// namespace being read (`--all-netns`: the kernel walks the next
    /// table while this one is decoded), where they would be read ahead
    /// anyway: netlink, every socket of both families, no program, a
    /// filter that needs no fact of its namespace. None otherwise.
    pub(super) fn start_ahead(&self, namespace: Option<&Namespace>) -> Option<Ahead> {
        let filter = &self.filter;
        let both = filter.may_be(Family::Ipv4) && filter.may_be(Family::Ipv6);
        if self.is_captured()
            || self.source == Choice::Proc
            || !self.read_ahead
            || self.one_walk_all
            || !both
            || filter.needs_facts()
        {
            return None;
        }
        let (program, _) = self.plan(filter, &mut Vec::new());
        program.is_none().then(|| self.prefetch(namespace, filter))
    }

    /// Both families' dumps started, each on its own socket and thread;
    /// a family whose socket cannot be opened is read in turn instead.
    fn prefetch(
        &self,
        namespace: Option<&Namespace>,
        filter: &Expr,
    ) -> Vec<(Family, diag::Prefetch)> {
        [Family::Ipv4, Family::Ipv6]
            .into_iter()
            .filter_map(|family| {
                let s = self.netlink_socket(namespace).ok()?;
                let states = filter.states();
                let prefetch = diag::read_ahead(s, family, self.extensions, states).ok()?;
                Some((family, prefetch))
            })
            .collect()
    }

    /// Every socket of both families from one walk of the kernel's tables
    /// ([`diag::dump_both_in_turn`]): the IPv4 table, then the IPv6 one,
    /// each announced before its sockets (also an empty one), as the
    /// dumps per family deliver them.
    fn read_in_one_walk<E>(
        &self,
        socket: &mut NetlinkSocket,
        filter: &Expr,
        deliver: &mut dyn FnMut(Raw<'_>) -> std::result::Result<(), Stop<E>>,
        delivered: &mut u64,
    ) -> std::result::Result<bool, Stop<E>> {
        // The tables announced up to `family`'s: the IPv4 table before
        // the IPv6 one, also when it is empty.
        fn announce<E>(
            family: Family,
            table: &mut Option<Family>,
            deliver: &mut dyn FnMut(Raw<'_>) -> std::result::Result<(), Stop<E>>,
            delivered: &mut u64,
        ) -> std::result::Result<(), Stop<E>> {
            for t in [Family::Ipv4, Family::Ipv6] {
                if *table >= Some(t) || t > family {
                    continue;
                }
                *delivered += 1;
                deliver(Raw::Table(t, Source::Netlink))?;
                *table = Some(t);
            }
            Ok(())
        }
        let mut table: Option<Family> = None;
        let ask = diag::Ask::new(self.extensions, filter.states());
        // The room of the query's last read (a fresh one while another
        // clone of the query reads).
        let room = self.ipv6_room.try_lock().ok();
        let mut later = room
            .map(|mut r| std::mem::take(&mut *r))
            .unwrap_or_default();
        let walked = diag::dump_both_in_turn(socket, &ask, &mut later, &mut |d| {
            announce(d.socket.family, &mut table, deliver, delivered)?;
            *delivered += 1;
            deliver(Raw::Dumped(&mut Some(d)))
        });
        if let Ok(mut room) = self.ipv6_room.try_lock() {
            later.clear();
            *room = later;
        }
        let interrupted = walked?;
        announce(Family::Ipv6, &mut table, deliver, delivered)?;
        Ok(interrupted)
    }

    /// What the kernel is asked to do for a filter: the program it runs
    /// (the address, port, interface and autobound conditions; the whole
    /// filter is still applied to what it sends) and the ports named in
    /// the request, which it compares before the program. Says which.
    fn plan(&self, filter: &Expr, notes: &mut Vec<String>) -> (Program, diag::Ports) {
        let program = match &self.kernel_program {
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
        let ports = match self.kernel {
            true => diag::Ports::of(filter),
            false => diag::Ports::default(),
        };
        if ports != diag::Ports::default() {
            let named = [("local", ports.local), ("remote", ports.remote)]
                .iter()
                .filter(|(_, port)| *port != 0)
                .map(|(end, port)| format!("{end} port {port}"))
                .collect::<Vec<_>>()
                .join(" and ");
            notes.push(format!(
                "the request names {named}: the kernel skipped the sockets on other ports before its program"
            ));
        }
        (program, ports)
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
        program: &Program,
        ports: diag::Ports,
        deliver: &mut dyn FnMut(Raw<'_>) -> std::result::Result<(), Stop<E>>,
        delivered: &mut u64,
    ) -> std::result::Result<(bool, Option<Family>), Stop<E>> {
        let mut announced = false;
        let mut held: Vec<DiagSocket> = Vec::new();
        let mut overflow = false;
        let mut v4_sl = 0u32;
        let ask = diag::Ask {
            program: program.as_ref().map(|(bytes, _)| bytes.as_slice()),
            ports,
            ..diag::Ask::new(self.extensions, filter.states())
        };
        let interrupted = diag::dump_both_each(socket, &ask, &mut |mut d| {
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
        })?;
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
        filter: &Expr,
        deliver: &mut dyn FnMut(Raw<'_>) -> std::result::Result<(), Stop<E>>,
        why: Why,
    ) -> std::result::Result<How, Stop<E>> {
        let mut tables = self.open_tables(namespace)?;
        let mut how = How::new(Source::Proc, why);
        for (reader, family) in tables.iter_mut().zip([Family::Ipv4, Family::Ipv6]) {
            let Some(reader) = reader else { continue };
            if !filter.may_be(family) {
                continue;
            }
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
pub(super) struct How {
    pub(super) source: Source,
    pub(super) why: Why,
    pub(super) interrupted: bool,
    pub(super) skipped_lines: u64,
    pub(super) first_skipped: Option<String>,
    pub(super) notes: Vec<String>,
    pub(super) repeated: u64,
    pub(super) kernel_filter: Option<KernelFilter>,
}

impl How {
    /// What the read says of itself, into its report.
    pub(super) fn fill(self, read: &mut super::NamespaceRead) {
        read.source = self.source;
        read.why = self.why;
        read.interrupted = self.interrupted;
        read.skipped_lines = self.skipped_lines;
        read.first_skipped = self.first_skipped;
        read.notes = self.notes;
        read.repeated = self.repeated;
        read.kernel_filter = self.kernel_filter;
    }

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

/// A filter program for the kernel, and what `-v` says of it (none when
/// the program was given as bytes).
type Program = Option<(Vec<u8>, Option<KernelFilter>)>;

/// The note for a program the kernel's audit refused.
fn refused(error: &io::Error, filter: &Expr) -> String {
    format!(
        "the kernel refused the filter program ({error}); every socket was read and filtered here{}",
        if filter.has(&|e| matches!(e, Expr::Autobound { .. })) {
            ", and autobound was judged by the ephemeral port range alone"
        } else {
            ""
        }
    )
}
