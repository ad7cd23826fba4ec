//! What every socket-reading command shares: the filter built from the
//! command line, and the sources (one per network namespace) to read, each
//! through netlink or /proc as `--source` says.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use tcptab::diag::{self, Choice, DiagSocket, Extensions, NetlinkSocket, Used};
use tcptab::filter::{Cidr, PortRange, Side};
use tcptab::netns::{self, Namespace};
use tcptab::{Error, Expr, Family, ProcRoot, ReadOptions, StateSet, TableReader};

use crate::cli::{FilterArgs, NamespaceArgs, SourceArgs};

/// The filter of `-l`, `--state`, `-4`, ports, addresses, owners and the
/// expression, all and-ed.
pub fn filter(args: &FilterArgs) -> Result<Expr> {
    let mut expr = Expr::All;
    if args.listening {
        expr = expr.and(Expr::State(StateSet::of(&[tcptab::State::Listen])));
    }
    if !args.states.is_empty() {
        let mut set = StateSet::EMPTY;
        for name in &args.states {
            set = set.union(StateSet::from_name(name).context("--state")?);
        }
        expr = expr.and(Expr::State(set));
    }
    if args.ipv4 {
        expr = expr.and(Expr::Family(Family::Ipv4));
    }
    if args.ipv6 {
        expr = expr.and(Expr::Family(Family::Ipv6));
    }
    for (flag, value, side) in [
        ("--sport", &args.sport, Side::Local),
        ("--dport", &args.dport, Side::Remote),
        ("--port", &args.port, Side::Either),
    ] {
        if let Some(text) = value {
            let range: PortRange = text
                .parse()
                .map_err(|e: String| anyhow::anyhow!("{flag}: {e}"))?;
            expr = expr.and(Expr::PortRange { side, range });
        }
    }
    for (flag, value, side) in [
        ("--src", &args.src, Side::Local),
        ("--dst", &args.dst, Side::Remote),
    ] {
        if let Some(text) = value {
            let net: Cidr = text
                .parse()
                .map_err(|e: String| anyhow::anyhow!("{flag}: {e}"))?;
            expr = expr.and(Expr::Addr {
                side,
                net,
                port: None,
            });
        }
    }
    if let Some(uid) = args.uid {
        expr = expr.and(Expr::Uid(uid));
    }
    if let Some(pid) = args.pid {
        expr = expr.and(Expr::Pid(pid));
    }
    if let Some(name) = &args.process {
        expr = expr.and(Expr::Process(name.clone()));
    }
    if !args.expression.is_empty() {
        expr = expr.and(Expr::parse(&args.expression.join(" "))?);
    }
    Ok(expr)
}

/// The sockets of one source: streamed text tables, or a netlink dump.
#[derive(Debug)]
pub enum Sockets {
    Tables(Box<[Option<TableReader<File>>; 2]>),
    Dumped(Vec<DiagSocket>),
}

/// One place sockets were read from.
#[derive(Debug)]
pub struct Source {
    /// The namespace, when one was chosen (labels the sockets).
    pub namespace: Option<Namespace>,
    pub sockets: Sockets,
    pub used: Used,
}

/// What to ask a netlink dump for.
#[derive(Debug, Clone, Copy)]
pub struct Want {
    pub extensions: Extensions,
    pub states: StateSet,
}

/// The namespaces the options name (None: this process's, or the captured
/// root), and how many processes' namespaces could not be read.
fn targets(source: &SourceArgs, ns: &NamespaceArgs) -> Result<(Vec<Option<Namespace>>, u32)> {
    let proc_root = &source.root;
    let captured = proc_root != &PathBuf::from("/proc");
    if captured && (ns.netns.is_some() || ns.netns_pid.is_some() || ns.all_netns) {
        bail!("--root reads captured tables; it cannot be combined with --netns, --netns-pid or --all-netns");
    }
    if captured && source.source == crate::cli::SourceArg::Netlink {
        bail!("--source netlink cannot read a captured --root (netlink reads the live kernel); use --source proc or auto");
    }
    Ok(if let Some(name) = &ns.netns {
        (vec![Some(netns::named(name)?)], 0)
    } else if let Some(pid) = ns.netns_pid {
        (vec![Some(netns::of_process(proc_root, pid)?)], 0)
    } else if ns.all_netns {
        let (found, denied) = netns::discover(proc_root)?;
        (found.into_iter().map(Some).collect(), denied)
    } else {
        (vec![None], 0)
    })
}

/// The sources the options ask for, opened. Also says how many processes'
/// namespaces could not be read (with --all-netns).
pub fn sources(source: &SourceArgs, ns: &NamespaceArgs, want: Want) -> Result<(Vec<Source>, u32)> {
    let options = read_options(source);
    let proc_root = &source.root;
    let captured = proc_root != &PathBuf::from("/proc");
    let choice: Choice = source.source.into();
    let (targets, mut denied) = targets(source, ns)?;
    let mut sources = Vec::with_capacity(targets.len());
    for target in targets {
        let gone = target.clone();
        match open(target, proc_root, captured, choice, options, want) {
            Ok(source) => sources.push(source),
            Err(_) if vanished(gone.as_ref(), proc_root) => {}
            Err(e) if ns.all_netns && not_permitted(e.downcast_ref()) => denied += 1,
            Err(e) => return Err(e),
        }
    }
    Ok((sources, denied))
}

/// A namespace known only through a process that has exited since it was
/// found (`--all-netns` while namespaces come and go): skipped, as a
/// process that exits during an owner scan is. Discovery could stat the
/// process's `ns/net`; an exited process (a zombie included, whose /proc
/// directory lingers) no longer has one.
fn vanished(namespace: Option<&Namespace>, proc_root: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Some(ns) = namespace.filter(|ns| ns.path.is_some() || ns.pid.is_some()) else {
        return false;
    };
    // Still there if its name or its process still leads to it. A deleted
    // name can leave its mount point behind for a moment (an empty file,
    // which setns refuses with EINVAL); an exited process can leave a
    // zombie whose ns/net is gone.
    let leads_to_it = |file: &Path| std::fs::metadata(file).is_ok_and(|m| m.ino() == ns.inode);
    let by_name = ns.path.as_deref().is_some_and(leads_to_it);
    let by_pid = ns
        .pid
        .is_some_and(|pid| leads_to_it(&proc_root.join(pid.to_string()).join("ns/net")));
    !by_name && !by_pid
}

/// A namespace this process may not enter (an unprivileged `--all-netns`
/// meeting a named namespace no process of its own lives in): counted
/// with the namespaces not inspected, not fatal.
fn not_permitted(e: Option<&Error>) -> bool {
    matches!(e, Some(Error::Namespace { error, .. }) if error.kind() == std::io::ErrorKind::PermissionDenied)
}

/// A NETLINK_SOCK_DIAG socket in `namespace` (this process's for None).
/// A captured root has no kernel behind it: an error, so `auto` falls back.
pub fn netlink_socket(
    namespace: Option<&Namespace>,
    proc_root: &Path,
    captured: bool,
) -> tcptab::Result<NetlinkSocket> {
    if captured {
        return Err(Error::Netlink {
            context: "reading a captured --root",
            error: std::io::Error::other("netlink reads only the live kernel"),
        });
    }
    let ns_file = namespace.and_then(|n| match (&n.path, n.pid) {
        (Some(path), _) => Some(path.clone()),
        (None, Some(pid)) => Some(proc_root.join(pid.to_string()).join("ns/net")),
        (None, None) => None,
    });
    match ns_file {
        None => NetlinkSocket::open(),
        Some(path) => NetlinkSocket::open_in(&path),
    }
    .map_err(|error| Error::Netlink {
        context: "opening a NETLINK_SOCK_DIAG socket",
        error,
    })
}

/// The text tables of `namespace` (or of the root).
fn open_tables(
    namespace: Option<&Namespace>,
    proc_root: &Path,
    options: ReadOptions,
) -> tcptab::Result<[Option<TableReader<File>>; 2]> {
    match namespace {
        Some(n) => n.open(proc_root, options),
        None => {
            let root = ProcRoot::new(proc_root);
            Ok([
                root.open(Family::Ipv4, options)?,
                root.open(Family::Ipv6, options)?,
            ])
        }
    }
}

fn report_interrupted(interrupted: bool) {
    if interrupted {
        note!("tcptab: the kernel's socket tables changed during the dump; a socket may be missing or repeated");
    }
}

/// Receives the sockets of [`visit`], one at a time.
pub trait Visitor {
    fn socket(
        &mut self,
        socket: &tcptab::Socket,
        diag: Option<&tcptab::diag::Diag>,
        namespace: Option<&str>,
    );
}

/// Visit every socket the options select without holding them: text tables
/// line by line, netlink dumps message by message. Same targets and source
/// choice as [`sources`]; `auto` falls back to /proc only when netlink
/// failed before handing over any socket, so nothing is visited twice.
/// Returns the source used for the first target and the namespaces that
/// could not be read.
pub fn visit(
    source: &SourceArgs,
    ns: &NamespaceArgs,
    want: Want,
    visitor: &mut dyn Visitor,
) -> Result<(Used, u32)> {
    let options = read_options(source);
    let proc_root = &source.root;
    let captured = proc_root != &PathBuf::from("/proc");
    let choice: Choice = source.source.into();
    let (targets, mut denied) = targets(source, ns)?;
    let mut first_used = None;
    for target in &targets {
        let label = target.as_ref().map(|n| n.label());
        let label = label.as_deref();
        let mut delivered = 0u64;
        let netlink = |visitor: &mut dyn Visitor, delivered: &mut u64| -> tcptab::Result<()> {
            let mut socket = netlink_socket(target.as_ref(), proc_root, captured)?;
            let interrupted = diag::dump_each(
                &mut socket,
                &[Family::Ipv4, Family::Ipv6],
                want.extensions,
                want.states,
                &mut |d| {
                    *delivered += 1;
                    visitor.socket(&d.socket, Some(&d.diag), label);
                },
            )?;
            report_interrupted(interrupted);
            Ok(())
        };
        let proc = |visitor: &mut dyn Visitor| -> tcptab::Result<()> {
            let mut tables = open_tables(target.as_ref(), proc_root, options)?;
            for reader in tables.iter_mut().flatten() {
                reader.for_each_read_ahead(|socket| {
                    visitor.socket(socket, None, label);
                    Ok::<(), Error>(())
                })?;
                report_skipped(reader);
            }
            Ok(())
        };
        let used = match choice {
            Choice::Proc => proc(visitor).map(|()| Used::Proc { fallback: None }),
            Choice::Netlink => netlink(visitor, &mut delivered).map(|()| Used::Netlink),
            Choice::Auto => match netlink(visitor, &mut delivered) {
                Ok(()) => Ok(Used::Netlink),
                Err(e @ Error::Netlink { .. }) if delivered == 0 => {
                    proc(visitor).map(|()| Used::Proc {
                        fallback: Some(e.to_string()),
                    })
                }
                Err(e) => Err(e),
            },
        };
        match used {
            Ok(used) => {
                first_used.get_or_insert(used);
            }
            Err(_) if delivered == 0 && vanished(target.as_ref(), proc_root) => {}
            Err(e) if delivered == 0 && ns.all_netns && not_permitted(Some(&e)) => denied += 1,
            Err(e) => return Err(e.into()),
        }
    }
    Ok((first_used.unwrap_or(Used::Proc { fallback: None }), denied))
}

fn open(
    namespace: Option<Namespace>,
    proc_root: &Path,
    captured: bool,
    choice: Choice,
    options: ReadOptions,
    want: Want,
) -> Result<Source> {
    let netlink = || -> tcptab::Result<Sockets> {
        let mut socket = netlink_socket(namespace.as_ref(), proc_root, captured)?;
        let dump = diag::dump(
            &mut socket,
            &[Family::Ipv4, Family::Ipv6],
            want.extensions,
            want.states,
        )?;
        report_interrupted(dump.interrupted);
        Ok(Sockets::Dumped(dump.sockets))
    };
    let proc = || -> tcptab::Result<Sockets> {
        Ok(Sockets::Tables(Box::new(open_tables(
            namespace.as_ref(),
            proc_root,
            options,
        )?)))
    };
    let (sockets, used) = diag::read_with(choice, netlink, proc)?;
    Ok(Source {
        namespace,
        sockets,
        used,
    })
}

pub fn read_options(source: &SourceArgs) -> ReadOptions {
    ReadOptions {
        byte_order: source.byte_order.into(),
        lenient: source.lenient,
    }
}

/// Under -v, say which source each namespace was read from.
pub fn report_sources(sources: &[Source], verbose: bool) {
    if !verbose {
        return;
    }
    for s in sources {
        let target = s
            .namespace
            .as_ref()
            .map(|n| format!(" for network namespace {}", n.label()))
            .unwrap_or_default();
        match &s.used {
            Used::Netlink => note!("tcptab: source: netlink (sock_diag){target}"),
            Used::Proc { fallback: None } => note!("tcptab: source: proc{target}"),
            Used::Proc {
                fallback: Some(why),
            } => note!("tcptab: source: proc{target} (netlink unavailable: {why})"),
        }
    }
}

/// Say once on stderr how many malformed lines a lenient read skipped.
pub fn report_skipped(reader: &TableReader<File>) {
    if reader.skipped() > 0 {
        if let Some(first) = reader.first_error() {
            note!(
                "tcptab: skipped {} malformed line(s) in {} (first: {first})",
                reader.skipped(),
                reader.path().display()
            );
        }
    }
}

/// One socket read from a source.
#[derive(Debug, Clone)]
pub struct Entry {
    pub socket: tcptab::Socket,
    /// What only netlink has, when it came from a dump.
    pub diag: Option<tcptab::diag::Diag>,
    /// Index of its source in [`Gathered::namespaces`].
    pub ns: usize,
    /// `netlink` or `proc`.
    pub source: &'static str,
}

/// Every socket of the sources that passes the filter.
#[derive(Debug, Default)]
pub struct Gathered {
    pub entries: Vec<Entry>,
    pub namespaces: Vec<Option<Namespace>>,
    pub owners: Option<tcptab::OwnerScan>,
}

/// Read every source, keep what `expr` selects, and look up owners when
/// asked to (or when the filter needs them). The caller reports what the
/// owner scan could not see ([`report_uninspected`]).
pub fn gather(
    sources: Vec<Source>,
    expr: &Expr,
    proc_root: &Path,
    owners: bool,
) -> Result<Gathered> {
    let mut out = Gathered::default();
    let keep = |s: &tcptab::Socket| expr.needs_owners() || expr.matches(s, None);
    for (index, source) in sources.into_iter().enumerate() {
        let name = source.used.name();
        match source.sockets {
            Sockets::Tables(mut tables) => {
                for reader in tables.iter_mut().flatten() {
                    reader.for_each_read_ahead(|socket| {
                        if keep(socket) {
                            out.entries.push(Entry {
                                socket: *socket,
                                diag: None,
                                ns: index,
                                source: name,
                            });
                        }
                        Ok::<(), Error>(())
                    })?;
                    report_skipped(reader);
                }
            }
            Sockets::Dumped(dumped) => {
                for d in dumped {
                    if keep(&d.socket) {
                        out.entries.push(Entry {
                            socket: d.socket,
                            diag: Some(d.diag),
                            ns: index,
                            source: name,
                        });
                    }
                }
            }
        }
        out.namespaces.push(source.namespace);
    }
    if owners || expr.needs_owners() {
        let wanted: std::collections::HashSet<u64> = out
            .entries
            .iter()
            .map(|e| e.socket.inode)
            .filter(|&i| i != 0)
            .collect();
        let scan = tcptab::OwnerScan::scan(proc_root, &wanted)
            .with_context(|| format!("reading processes under {}", proc_root.display()))?;
        if expr.needs_owners() {
            out.entries.retain(|e| expr.matches(&e.socket, Some(&scan)));
        }
        out.owners = Some(scan);
    }
    Ok(out)
}

/// Say once how many processes could not be inspected, and why.
pub fn report_uninspected(scan: &tcptab::OwnerScan) {
    if scan.denied > 0 {
        let why = match scan.denied_reason {
            Some(std::io::ErrorKind::PermissionDenied) | None => "permission denied".to_string(),
            Some(kind) => kind.to_string(),
        };
        note!(
            "tcptab: {} process(es) could not be inspected ({why}); sockets they may hold show their owner as unknown. Run as root to see every owner.",
            scan.denied
        );
    }
}

/// Say once how many processes' namespaces could not be read.
pub fn report_namespaces_denied(denied: u32) {
    if denied > 0 {
        note!(
            "tcptab: the network namespace of {denied} process(es) could not be read (permission denied); run as root to see every namespace"
        );
    }
}
