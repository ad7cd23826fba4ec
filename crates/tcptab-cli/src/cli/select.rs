//! Which sockets a command reads: the one selection (filter, network
//! namespaces, source) every command that reads the table flattens, and
//! the [`tcptab::Query`] it builds, once.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use tcptab::diag::Extensions;
use tcptab::filter::{Expr, PortRange, Side};
use tcptab::procnet::ReadOptions;
use tcptab::{Family, Namespaces, Query, StateSet};

use super::values::{parse_pid, parse_user, StateName};

/// Which sockets a command reads, and from where: the options every
/// command that reads the live table takes, resolved once into a
/// [`Query`].
#[derive(Debug, Clone, Args)]
pub struct Selection {
    #[command(flatten)]
    pub filter: FilterArgs,

    #[command(flatten)]
    pub scope: Scope,
}

impl Selection {
    /// The query: the filter, the namespaces and the source, asking
    /// netlink for `extensions` and owners when `owners` says so.
    pub fn query(&self, extensions: Extensions, owners: bool) -> Result<Query> {
        self.scope.query(self.filter.expr()?, extensions, owners)
    }

    pub fn verbose(&self) -> bool {
        self.scope.verbose()
    }

    pub fn named(&self) -> bool {
        self.scope.named()
    }
}

/// Where to read: the network namespaces and the source.
#[derive(Debug, Clone, Args)]
pub struct Scope {
    #[command(flatten)]
    pub namespaces: NamespaceArgs,

    #[command(flatten)]
    pub source: SourceArgs,
}

/// Where the sockets are read from.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Source")]
pub struct SourceArgs {
    /// Read a directory laid out like /proc (ROOT/net/tcp, ROOT/net/tcp6):
    /// a captured copy, a sosreport, or /proc/PID for that process's
    /// network namespace.
    #[arg(long, value_name = "DIR", default_value = "/proc", value_hint = clap::ValueHint::DirPath)]
    pub root: PathBuf,

    /// Byte order of the machine that produced the tables (for captures from
    /// another architecture).
    #[arg(long, value_enum, default_value_t = ByteOrderArg::Native)]
    pub byte_order: ByteOrderArg,

    /// Skip malformed lines, of any length (counted on stderr), instead of
    /// failing.
    #[arg(long)]
    pub lenient: bool,

    /// With --lenient: give up after this many malformed lines in a row
    /// (the input is not a TCP table); 0 for no limit.
    #[arg(long, default_value_t = 1000, value_name = "N", requires = "lenient")]
    pub max_bad_lines: u64,

    /// Where to read the sockets: sock_diag netlink (fast, with the listen
    /// backlog limit and tcp_info) or the /proc text tables. `auto` uses
    /// netlink and falls back to /proc when netlink cannot be used (and
    /// always reads a captured --root from its files).
    #[arg(long, value_enum, default_value_t = SourceArg::Auto)]
    pub source: SourceArg,

    /// Netlink: test the whole filter here instead of sending its address,
    /// port, interface and autobound part to the kernel as a program (the
    /// same sockets, more to read; for comparing). Without the kernel,
    /// autobound is judged by the ephemeral port range alone.
    #[arg(long)]
    pub no_kernel_filter: bool,

    /// Where the container runtimes' files are read for workload names
    /// (Docker's, containerd's, CRI-O's, Podman's and the kubelet's log
    /// links: docs/workloads.md); `/` on a live host.
    #[arg(long, value_name = "DIR", default_value = "/", value_hint = clap::ValueHint::DirPath)]
    pub runtime_root: PathBuf,

    /// Say on stderr which source was read and why, and what part of the
    /// filter ran in the kernel.
    #[arg(short = 'v', long)]
    pub verbose: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SourceArg {
    Auto,
    Netlink,
    Proc,
}

impl From<SourceArg> for tcptab::diag::Choice {
    fn from(arg: SourceArg) -> tcptab::diag::Choice {
        match arg {
            SourceArg::Auto => tcptab::diag::Choice::Auto,
            SourceArg::Netlink => tcptab::diag::Choice::Netlink,
            SourceArg::Proc => tcptab::diag::Choice::Proc,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ByteOrderArg {
    Native,
    Little,
    Big,
}

impl From<ByteOrderArg> for tcptab::procnet::ByteOrder {
    fn from(arg: ByteOrderArg) -> tcptab::procnet::ByteOrder {
        match arg {
            ByteOrderArg::Native => tcptab::procnet::ByteOrder::native(),
            ByteOrderArg::Little => tcptab::procnet::ByteOrder::Little,
            ByteOrderArg::Big => tcptab::procnet::ByteOrder::Big,
        }
    }
}

/// Which network namespaces to read (default: this process's).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Network namespaces")]
pub struct NamespaceArgs {
    /// A named network namespace (under /run/netns, as `ip netns` makes;
    /// -N or --net as in ss).
    #[arg(short = 'N', long, alias = "net", value_name = "NETNS", conflicts_with_all = ["netns_pid", "all_netns"])]
    pub netns: Option<String>,

    /// The network namespace of process PID.
    #[arg(long, allow_hyphen_values = true, value_name = "PID", conflicts_with = "all_netns", value_parser = parse_pid)]
    pub netns_pid: Option<u32>,

    /// Every network namespace on the machine, each socket labelled with its
    /// namespace.
    #[arg(long)]
    pub all_netns: bool,
}

impl NamespaceArgs {
    /// Whether any namespace option was given.
    pub fn named(&self) -> bool {
        self.netns.is_some() || self.netns_pid.is_some() || self.all_netns
    }
}

/// Which sockets to show. All given conditions must hold.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Filters")]
pub struct FilterArgs {
    /// Only listening sockets.
    #[arg(short = 'l', long)]
    pub listening: bool,

    /// All states (the default).
    #[arg(short = 'a', long, conflicts_with = "listening")]
    pub all: bool,

    /// Only sockets in this state: a kernel name (ESTABLISHED), an ss name
    /// (estab, syn-recv) or an ss group (connected, synchronized, bucket,
    /// big, all). Repeatable.
    #[arg(long = "state", value_name = "NAME", value_parser = StateName, hide_possible_values = true)]
    pub states: Vec<String>,

    /// Only IPv4 sockets.
    #[arg(short = '4', long = "ipv4", conflicts_with = "ipv6")]
    pub ipv4: bool,

    /// Only IPv6 sockets (including IPv4-mapped ones).
    #[arg(short = '6', long = "ipv6")]
    pub ipv6: bool,

    /// Local port or range (443, 1000-2000). Repeatable: any of them.
    #[arg(long, value_name = "PORT[-PORT]")]
    pub sport: Vec<String>,

    /// Remote port or range. Repeatable: any of them.
    #[arg(long, value_name = "PORT[-PORT]")]
    pub dport: Vec<String>,

    /// Local or remote port or range. Repeatable: any of them.
    #[arg(long, value_name = "PORT[-PORT]")]
    pub port: Vec<String>,

    /// Local address or prefix (10.0.0.0/8, 10/8, ::1, [::1]), optionally
    /// with a port (127.0.0.1:80, [::1]:443), or a name in /etc/hosts
    /// (localhost): what the filter's `src` takes. An IPv4 prefix also
    /// matches the IPv4-mapped addresses in it. Repeatable: any of them.
    #[arg(long, value_name = "HOST")]
    pub src: Vec<String>,

    /// Remote address or prefix, as --src. Repeatable: any of them.
    #[arg(long, value_name = "HOST")]
    pub dst: Vec<String>,

    /// Only sockets owned by this user: a uid or a user name (/etc/passwd).
    #[arg(long, value_name = "USER", value_parser = parse_user)]
    pub uid: Option<u32>,

    /// Only sockets held by this process.
    #[arg(long, allow_hyphen_values = true, value_name = "PID", value_parser = parse_pid)]
    pub pid: Option<u32>,

    /// TCP sockets (what tcptab always reads; accepted as in `ss -t`).
    #[arg(short = 't', long = "tcp", hide = true)]
    pub tcp: bool,

    /// Numeric addresses and ports (tcptab's default; accepted as in `ss -n`).
    #[arg(short = 'n', long = "numeric", hide = true)]
    pub numeric: bool,

    /// Only sockets held by a process with this command name.
    #[arg(long, value_name = "NAME")]
    pub process: Option<String>,

    /// A filter expression in ss's language, e.g.
    /// 'state established ( dport = :https or dport = :80 ) and dst 10/8';
    /// `and` and `or` bind equally, left to right, as in ss (docs/filters.md).
    /// Its address, port, dev and autobound part runs in the kernel.
    #[arg(value_name = "FILTER", num_args = 0..)]
    pub expression: Vec<String>,
}

/// The filter of `-l`, `--state`, `-4`, ports, addresses, owners and the
/// expression, all and-ed.
impl FilterArgs {
    /// The filter of `-l`, `--state`, `-4`, ports, addresses, owners and
    /// the expression, all and-ed.
    pub fn expr(&self) -> Result<Expr> {
        self.expr_naming().map(|(expr, _)| expr)
    }

    /// [`expr`](Self::expr), and the states named one by one (`-l`,
    /// `--state NAME` with a single state, `state NAME` in the expression
    /// outside a `not`): what `kill` needs named before it destroys a
    /// listener.
    pub fn expr_naming(&self) -> Result<(Expr, StateSet)> {
        let args = self;
        let mut named = StateSet::EMPTY;
        if args.listening {
            named.insert(tcptab::State::Listen);
        }
        for name in &args.states {
            if let Ok(state) = name.parse::<tcptab::State>() {
                named.insert(state);
            }
        }
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
                // As the expression's `src`/`dst` read their operand.
                let e = Expr::endpoint(side, text).map_err(|e| anyhow::anyhow!("{flag}: {e}"))?;
                any.push(e);
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
            let (parsed, by_name) = Expr::parse_naming(&args.expression.join(" "))?;
            expr = expr.and(parsed);
            named = named.union(by_name);
        }
        Ok((expr, named))
    }
}

impl Scope {
    /// The query the source and namespace options describe, for `filter`,
    /// asking netlink for `extensions` and owners when `owners` says so.
    pub fn query(&self, filter: Expr, extensions: Extensions, owners: bool) -> Result<Query> {
        let (source, ns) = (&self.source, &self.namespaces);
        let query = Query::new()
            .root(&source.root)
            .source(source.source.into())
            .read_options(source.read_options())
            .extensions(extensions)
            .filter(filter)
            .owners(owners)
            .workload_roots(tcptab::workload::Roots {
                files: source.runtime_root.clone(),
                ..Default::default()
            })
            .kernel_filter(!source.no_kernel_filter);
        if query.is_captured() && ns.named() {
            bail!("--root reads captured tables; it cannot be combined with --netns, --netns-pid or --all-netns");
        }
        if query.is_captured() && source.source == crate::cli::SourceArg::Netlink {
            bail!("--source netlink cannot read a captured --root (netlink reads the live kernel); use --source proc or auto");
        }
        Ok(query.namespaces(ns.namespaces()))
    }

    /// Whether -v was given.
    pub fn verbose(&self) -> bool {
        self.source.verbose
    }

    /// Whether a namespace option was given (sockets are then labelled
    /// with theirs).
    pub fn named(&self) -> bool {
        self.namespaces.named()
    }
}

impl NamespaceArgs {
    /// The namespaces the options name.
    pub fn namespaces(&self) -> Namespaces {
        let ns = self;
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
}

impl SourceArgs {
    /// Byte order and leniency of the /proc parser.
    pub fn read_options(&self) -> ReadOptions {
        let source = self;
        ReadOptions {
            byte_order: source.byte_order.into(),
            lenient: source.lenient,
            max_bad_lines: source.max_bad_lines,
        }
    }
}
