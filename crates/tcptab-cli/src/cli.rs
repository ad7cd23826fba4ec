//! The command line, as clap derive types. Doc comments are the help text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// The Linux kernel's TCP socket table: list, filter and render every socket.
///
/// With no subcommand, `tcptab` runs `tcptab list`.
#[derive(Debug, Parser)]
#[command(name = "tcptab", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub list: ListArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List every TCP socket of both tables (the default command).
    List(ListArgs),
}

/// Where the sockets are read from.
#[derive(Debug, Clone, Args)]
pub struct SourceArgs {
    /// Read a directory laid out like /proc (ROOT/net/tcp, ROOT/net/tcp6):
    /// a captured copy, a sosreport, or /proc/PID for that process's
    /// network namespace.
    #[arg(long, value_name = "DIR", default_value = "/proc")]
    pub root: PathBuf,

    /// Byte order of the machine that produced the tables (for captures from
    /// another architecture).
    #[arg(long, value_enum, default_value_t = ByteOrderArg::Native)]
    pub byte_order: ByteOrderArg,

    /// Skip malformed lines (counted on stderr) instead of failing.
    #[arg(long)]
    pub lenient: bool,

    /// Where to read the sockets: sock_diag netlink (fast, with the listen
    /// backlog limit and tcp_info) or the /proc text tables. `auto` uses
    /// netlink and falls back to /proc when netlink cannot be used (and
    /// always reads a captured --root from its files).
    #[arg(long, value_enum, default_value_t = SourceArg::Auto)]
    pub source: SourceArg,

    /// Say on stderr which source was read, and why.
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

impl From<ByteOrderArg> for tcptab::ByteOrder {
    fn from(arg: ByteOrderArg) -> tcptab::ByteOrder {
        match arg {
            ByteOrderArg::Native => tcptab::ByteOrder::native(),
            ByteOrderArg::Little => tcptab::ByteOrder::Little,
            ByteOrderArg::Big => tcptab::ByteOrder::Big,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns for people, like `ss -tan`.
    Table,
    /// One JSON array, one object per socket.
    Json,
    /// One JSON object per line, streamed.
    Jsonl,
    /// A header row, then one row per socket.
    Csv,
    /// The kernel's own text: the IPv4 table, then the IPv6 table.
    Proc,
}

#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub source: SourceArgs,

    #[command(flatten)]
    pub namespaces: NamespaceArgs,

    #[command(flatten)]
    pub filter: FilterArgs,

    /// Show the processes that hold each socket (pid, command, fd); all
    /// owners of a shared socket.
    #[arg(short = 'p', long = "processes")]
    pub processes: bool,

    /// Show timers: the pending timer, its time left in ms, retransmits.
    #[arg(short = 'o', long = "timers")]
    pub timers: bool,

    /// Show more of each socket: uid, inode, refcount, rto and ato in ms,
    /// cwnd, ssthresh, unanswered probes.
    #[arg(short = 'e', long)]
    pub extended: bool,

    /// Show port numbers as service names from /etc/services (no DNS).
    #[arg(short = 'r', long)]
    pub resolve: bool,

    /// Show TCP internals from tcp_info, like `ss -i`: rtt, rto, cwnd,
    /// ssthresh, bytes acked and received, retransmits, delivery and pacing
    /// rates, congestion algorithm, send window (netlink source).
    #[arg(short = 'i', long)]
    pub info: bool,

    /// Show socket memory, like `ss -m` (netlink source).
    #[arg(short = 'm', long)]
    pub memory: bool,

    /// Sort by a field (default: the kernel's order).
    #[arg(long, value_enum, value_name = "FIELD")]
    pub sort: Option<SortField>,

    /// Reverse the sort order.
    #[arg(long, requires = "sort")]
    pub reverse: bool,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,

    /// Shorthand for --format json.
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SortField {
    State,
    RxQueue,
    TxQueue,
    Local,
    Remote,
    Sport,
    Dport,
    Pid,
    Uid,
    Inode,
}

/// Which network namespaces to read (default: this process's).
#[derive(Debug, Clone, Args)]
pub struct NamespaceArgs {
    /// A named network namespace (under /run/netns, as `ip netns` makes).
    #[arg(long, value_name = "NAME", conflicts_with_all = ["netns_pid", "all_netns"])]
    pub netns: Option<String>,

    /// The network namespace of process PID.
    #[arg(long, value_name = "PID", conflicts_with = "all_netns")]
    pub netns_pid: Option<u32>,

    /// Every network namespace on the machine, each socket labelled with its
    /// namespace.
    #[arg(long)]
    pub all_netns: bool,
}

/// Which sockets to show. All given conditions must hold.
#[derive(Debug, Clone, Args)]
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
    #[arg(long = "state", value_name = "NAME")]
    pub states: Vec<String>,

    /// Only IPv4 sockets.
    #[arg(short = '4', long = "ipv4", conflicts_with = "ipv6")]
    pub ipv4: bool,

    /// Only IPv6 sockets (including IPv4-mapped ones).
    #[arg(short = '6', long = "ipv6")]
    pub ipv6: bool,

    /// Local port or range (443, 1000-2000).
    #[arg(long, value_name = "PORT[-PORT]")]
    pub sport: Option<String>,

    /// Remote port or range.
    #[arg(long, value_name = "PORT[-PORT]")]
    pub dport: Option<String>,

    /// Local or remote port or range.
    #[arg(long, value_name = "PORT[-PORT]")]
    pub port: Option<String>,

    /// Local address or prefix (10.0.0.0/8, ::1); IPv4-mapped addresses
    /// match their IPv4 form.
    #[arg(long, value_name = "ADDR[/LEN]")]
    pub src: Option<String>,

    /// Remote address or prefix.
    #[arg(long, value_name = "ADDR[/LEN]")]
    pub dst: Option<String>,

    /// Only sockets owned by this uid.
    #[arg(long)]
    pub uid: Option<u32>,

    /// Only sockets held by this process.
    #[arg(long)]
    pub pid: Option<u32>,

    /// Only sockets held by a process with this command name.
    #[arg(long, value_name = "NAME")]
    pub process: Option<String>,

    /// A filter expression in ss's language, e.g.
    /// 'state established and ( dport = :443 or dport = :80 ) and dst 10.0.0.0/8'.
    #[arg(value_name = "FILTER", num_args = 0..)]
    pub expression: Vec<String>,
}

impl ListArgs {
    pub fn format(&self) -> Format {
        if self.json {
            Format::Json
        } else {
            self.format
        }
    }
}
