//! From options to a query: the filter built from the command line, and
//! the `tcptab::Query` that the source and namespace options describe; then,
//! after the query ran, the notes its report calls for on stderr.

use anyhow::{bail, Context, Result};
use tcptab::diag::Extensions;
use tcptab::filter::Expr;
use tcptab::filter::{Cidr, PortRange, Side};
use tcptab::procnet::ReadOptions;
use tcptab::{Family, Query, StateSet};
use tcptab::{Namespaces, NotInspectedReason, Report, Why};

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
    // Each port or address option may be given several times: any of its
    // values (the options together: all of them).
    for (flag, values, side) in [
        ("--sport", &args.sport, Side::Local),
        ("--dport", &args.dport, Side::Remote),
        ("--port", &args.port, Side::Either),
    ] {
        let mut any = Vec::new();
        for text in values {
            let range: PortRange = text
                .parse()
                .map_err(|e: String| anyhow::anyhow!("{flag}: {e}"))?;
            any.push(Expr::PortRange { side, range });
        }
        expr = expr.and(Expr::any(any));
    }
    for (flag, values, side) in [
        ("--src", &args.src, Side::Local),
        ("--dst", &args.dst, Side::Remote),
    ] {
        let mut any = Vec::new();
        for text in values {
            let net: Cidr = text
                .parse()
                .map_err(|e: String| anyhow::anyhow!("{flag}: {e}"))?;
            any.push(Expr::Addr {
                side,
                net,
                port: None,
            });
        }
        expr = expr.and(Expr::any(any));
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

/// The query the source and namespace options describe, for `filter`,
/// asking netlink for `extensions` and owners when `owners` says so.
pub fn query(
    source: &SourceArgs,
    ns: &NamespaceArgs,
    filter: Expr,
    extensions: Extensions,
    owners: bool,
) -> Result<Query> {
    let query = Query::new()
        .root(&source.root)
        .source(source.source.into())
        .read_options(read_options(source))
        .extensions(extensions)
        .filter(filter)
        .owners(owners)
        .kernel_filter(!source.no_kernel_filter);
    if query.is_captured() && ns.named() {
        bail!("--root reads captured tables; it cannot be combined with --netns, --netns-pid or --all-netns");
    }
    if query.is_captured() && source.source == crate::cli::SourceArg::Netlink {
        bail!("--source netlink cannot read a captured --root (netlink reads the live kernel); use --source proc or auto");
    }
    Ok(query.namespaces(namespaces(ns)))
}

/// The namespaces the options name.
pub fn namespaces(ns: &NamespaceArgs) -> Namespaces {
    if let Some(name) = &ns.netns {
        Namespaces::Named(name.clone())
    } else if let Some(pid) = ns.netns_pid {
        Namespaces::Pid(pid)
    } else if ns.all_netns {
        Namespaces::All
    } else {
        Namespaces::Current
    }
}

pub fn read_options(source: &SourceArgs) -> ReadOptions {
    ReadOptions {
        byte_order: source.byte_order.into(),
        lenient: source.lenient,
        max_bad_lines: source.max_bad_lines,
    }
}

/// Say on stderr what the report holds that a user should know: under -v
/// the source of each namespace and why; always, lenient skips, interrupted
/// dumps, namespaces and processes that could not be inspected.
pub fn notes(report: &Report, verbose: bool) {
    for read in &report.read {
        let target = read
            .namespace
            .as_ref()
            .map(|n| format!(" for network namespace {}", n.label()))
            .unwrap_or_default();
        if verbose {
            match &read.why {
                Why::Chosen if read.source == tcptab::Source::Netlink => {
                    note!("tcptab: source: netlink (sock_diag){target}")
                }
                Why::Chosen => note!("tcptab: source: proc{target}"),
                Why::Captured => {
                    note!("tcptab: source: proc{target} (a captured root is read from its files)")
                }
                Why::Fallback(why) => {
                    note!("tcptab: source: proc{target} (netlink unavailable: {why})")
                }
            }
        }
        if verbose {
            match &read.kernel_filter {
                Some(k) => note!(
                    "tcptab: filter in the kernel{target}: {} ({}; {} bytes of bytecode); it sent {} socket(s), {} matched",
                    k.runs,
                    if k.whole {
                        "the whole filter"
                    } else {
                        "the rest was tested after the dump"
                    },
                    k.bytes,
                    read.sockets,
                    read.matched
                ),
                None if read.source == tcptab::Source::Netlink => note!(
                    "tcptab: no filter in the kernel{target}; {} socket(s) read, {} matched",
                    read.sockets,
                    read.matched
                ),
                None => note!(
                    "tcptab: {} socket(s) read{target}, {} matched",
                    read.sockets,
                    read.matched
                ),
            }
            for n in &read.notes {
                note!("tcptab: {n}");
            }
        }
        if verbose && read.repeated > 0 {
            note!(
                "tcptab: dropped {} row(s){target} that the kernel's walk of /proc listed twice (sockets changed while it was read)",
                read.repeated
            );
        }
        if read.interrupted {
            note!("tcptab: the kernel's socket tables changed during the dump{target}; a socket may be missing or repeated");
        }
        if read.skipped_lines > 0 {
            note!(
                "tcptab: skipped {} malformed line(s){target} (first: {})",
                read.skipped_lines,
                read.first_skipped.as_deref().unwrap_or("?")
            );
        }
    }
    let vanished = report
        .not_inspected
        .iter()
        .filter(|n| n.reason == NotInspectedReason::Vanished)
        .count();
    if verbose && vanished > 0 {
        note!("tcptab: {vanished} network namespace(s) vanished while they were read (skipped)");
    }
    for n in &report.not_inspected {
        if let NotInspectedReason::PermissionDenied(why) = &n.reason {
            note!(
                "tcptab: network namespace {} not inspected: {why}",
                n.namespace.label()
            );
        }
    }
    if report.processes_unreadable > 0 {
        let advice = if is_root() {
            "even as root (a sandbox or a security module hides them)"
        } else {
            "run as root to see every namespace"
        };
        note!(
            "tcptab: the network namespace of {} process(es) could not be read (permission denied); {advice}",
            report.processes_unreadable
        );
    }
    if let Some(owners) = &report.owners {
        if owners.denied > 0 {
            let why = match owners.denied_reason {
                Some(std::io::ErrorKind::PermissionDenied) | None => {
                    "permission denied".to_string()
                }
                Some(kind) => kind.to_string(),
            };
            let advice = if is_root() {
                "Even root may not read them here (a sandbox or a security module)."
            } else {
                "Run as root to see every owner."
            };
            note!(
                "tcptab: {} process(es) could not be inspected ({why}); sockets they may hold show their owner as unknown. {advice}",
                owners.denied
            );
        }
    }
}

/// Whether every namespace was read from /proc (for notes about what
/// only netlink has).
pub fn any_proc(report: &Report) -> bool {
    report.read.iter().any(|r| r.source == tcptab::Source::Proc)
}

/// Whether this process runs as root (effective uid 0), from /proc.
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("Uid:"))?;
            line.split_whitespace().nth(2).map(|euid| euid == "0")
        })
        .unwrap_or(false)
}
