//! What every socket-reading command shares: the filter built from the
//! command line, and the sources (one per network namespace) to read.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use tcptab::filter::{Cidr, PortRange, Side};
use tcptab::netns::{self, Namespace};
use tcptab::{Expr, Family, ProcRoot, ReadOptions, StateSet, TableReader};

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

/// One place to read sockets from: a proc root, or a network namespace.
#[derive(Debug)]
pub struct Source {
    /// The namespace, when one was chosen (labels the sockets).
    pub namespace: Option<Namespace>,
    /// The two tables (tcp6 may be absent).
    pub tables: [Option<TableReader<std::fs::File>>; 2],
}

/// The sources the options ask for, opened. Also says how many processes'
/// namespaces could not be read (with --all-netns).
pub fn sources(source: &SourceArgs, ns: &NamespaceArgs) -> Result<(Vec<Source>, u32)> {
    let options = read_options(source);
    let proc_root = &source.root;
    let custom_root = proc_root != &PathBuf::from("/proc");
    if custom_root && (ns.netns.is_some() || ns.netns_pid.is_some() || ns.all_netns) {
        bail!("--root reads captured tables; it cannot be combined with --netns, --netns-pid or --all-netns");
    }
    let open = |namespace: Namespace| -> Result<Source> {
        let tables = namespace.open(proc_root, options)?;
        Ok(Source {
            namespace: Some(namespace),
            tables,
        })
    };
    if let Some(name) = &ns.netns {
        return Ok((vec![open(netns::named(name)?)?], 0));
    }
    if let Some(pid) = ns.netns_pid {
        return Ok((vec![open(netns::of_process(proc_root, pid)?)?], 0));
    }
    if ns.all_netns {
        let (found, denied) = netns::discover(proc_root)?;
        let mut sources = Vec::new();
        for namespace in found {
            sources.push(open(namespace)?);
        }
        return Ok((sources, denied));
    }
    let root = ProcRoot::new(proc_root);
    let tables = [
        root.open(Family::Ipv4, options)?,
        root.open(Family::Ipv6, options)?,
    ];
    Ok((
        vec![Source {
            namespace: None,
            tables,
        }],
        0,
    ))
}

pub fn read_options(source: &SourceArgs) -> ReadOptions {
    ReadOptions {
        byte_order: source.byte_order.into(),
        lenient: source.lenient,
    }
}

/// Say once on stderr how many malformed lines a lenient read skipped.
pub fn report_skipped(reader: &TableReader<std::fs::File>) {
    if reader.skipped() > 0 {
        if let Some(first) = reader.first_error() {
            eprintln!(
                "tcptab: skipped {} malformed line(s) in {} (first: {first})",
                reader.skipped(),
                reader.path().display()
            );
        }
    }
}
