//! The command line, as clap derive types. Doc comments are the help text.

mod history;
mod live;
mod select;
mod serve;
mod store;
mod values;

use clap::builder::ArgPredicate;
use clap::{Args, Parser, Subcommand, ValueEnum};

pub use history::{HistoryArgs, HistoryFormat, RecordArgs};
pub use live::{EventKind, TopArgs, TopFormat, WatchArgs, WatchFormat};
pub use select::{FilterArgs, Scope, Selection, SourceArg};
pub use serve::ServeArgs;
pub use store::StoreArgs;
use values::parse_retention;
pub(crate) use values::parse_user;

/// The Linux kernel's TCP socket table: list, filter and render every socket.
///
/// With no subcommand, `tcptab` runs `tcptab list`. ss's options work as
/// in ss: bundles (-tanp), -s (summary), -E (watch closes), -K (kill),
/// -A tcp, -f inet or inet6, -F FILE (--filter=FILE: the filter from a
/// file), --net, --cgroup; other protocols are not read.
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
    /// Count sockets: per state (zeros included), per family, per listener's
    /// accept queue, busiest ports and hosts, per process with -p.
    Summary(SummaryArgs),
    /// Explain a raw /proc/net/tcp line field by field, or (--diagnose)
    /// look for problems in the live table.
    Explain(ExplainArgs),
    /// Print sockets opening, closing and changing state, as they happen.
    Watch(WatchArgs),
    /// Every connection with its receive and send rates, live (full screen,
    /// or --format jsonl: one frame per refresh).
    Top(TopArgs),
    /// Record the table to an SQLite file, poll after poll, with the
    /// connections that close between polls and their owners
    /// (docs/history.md).
    Record(RecordArgs),
    /// What was connected at a past moment or during an interval, and by
    /// whom, from a file `tcptab record` wrote.
    History(HistoryArgs),
    /// Serve metrics for Prometheus on /metrics (loopback only by default).
    Serve(ServeArgs),
    /// Destroy sockets (the kernel's SOCK_DESTROY, as `ss -K`): a dry run
    /// unless --yes.
    Kill(KillArgs),
    /// What listens, on which scope of address, held by whom, and whether a
    /// policy allows it; what changed since a baseline (docs/audit.md).
    Audit(AuditArgs),
    /// Print the JSON Schema of a document tcptab writes (docs/schema.md).
    Schema(SchemaArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(CompletionsArgs),
    /// Print the manual page of tcptab or of one command (roff; `tcptab man
    /// list | man -l -`), or write them all into a directory (--dir).
    Man(ManArgs),
}

#[derive(Debug, Clone, Args)]
pub struct ManArgs {
    /// The command whose page to print (tcptab's own without one).
    #[arg(value_name = "COMMAND")]
    pub command: Option<String>,

    /// Write every page (tcptab.1, tcptab-list.1, ...) into this directory.
    #[arg(long, value_name = "DIR", conflicts_with = "command", value_hint = clap::ValueHint::DirPath)]
    pub dir: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Destroy the sockets the filter selects, in their own network
/// namespaces, through SOCK_DESTROY (needs CAP_NET_ADMIN and a kernel with
/// CONFIG_INET_DIAG_DESTROY).
///
/// Without --yes it only lists what would be destroyed (with owners) and
/// destroys nothing. Each socket is named by the full socket id of the
/// dump that found it (addresses, ports, interface, cookie): one that
/// closed or was replaced since is reported as already gone, never hit.
/// TIME_WAIT and SYN_RECV request sockets can be destroyed too. A listening
/// socket only when the filter names the listening state by itself (-l,
/// --state listening, `state listening`; not a group such as `all` or
/// `big`, nor what `exclude` or `not` leaves) or --listeners is given;
/// the listeners it leaves out are listed, and why. With no filter at all
/// it refuses, unless -a/--all says every socket is meant. Exit status: 0 when every socket was destroyed or already
/// gone (or a dry run), 1 when the kernel refused some, 2 on errors (and
/// for a refusal that holds for every socket, with nothing destroyed).
#[derive(Debug, Clone, Args)]
pub struct KillArgs {
    /// Destroy them (without it: a dry run that destroys nothing).
    #[arg(long)]
    pub yes: bool,

    /// Refuse, destroying nothing, when more sockets than this would be
    /// destroyed.
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub max: usize,

    /// Destroy the listening sockets the filter selects too, whether or
    /// not it names their state.
    #[arg(long)]
    pub listeners: bool,

    /// Output format of the listing and the results.
    #[arg(long, value_enum, default_value_t = KillFormat::Table, default_value_if("json", ArgPredicate::IsPresent, "json"))]
    pub format: KillFormat,

    /// Shorthand for --format json.
    #[arg(long, conflicts_with = "format")]
    pub json: bool,

    #[command(flatten)]
    pub select: Selection,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KillFormat {
    /// One line per socket, for people.
    Table,
    /// One array: each socket's record with its `result`.
    Json,
    /// One object per line: each socket's record with its `result`.
    Jsonl,
    /// A header row, then one row per socket: `result`, `detail`, then the
    /// record's columns.
    Csv,
}

#[derive(Debug, Clone, Args)]
pub struct SchemaArgs {
    /// Which document.
    #[arg(value_enum)]
    pub name: SchemaName,

    /// `clickhouse`: the database the tables are made in.
    #[arg(long, value_name = "NAME", default_value = "tcptab")]
    pub database: String,

    /// `clickhouse`: the server deletes rows older than this (a TTL: servers
    /// 19.6 and later; docs/fleet.md says what to do on older ones).
    #[arg(long, allow_hyphen_values = true, value_parser = parse_retention)]
    pub retention: Option<std::time::Duration>,

    /// `clickhouse`: make the tables in this store (the database of its
    /// URL) instead of printing them; TTL if the server has it.
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SchemaName {
    /// One socket (list --format json, jsonl, csv; the sockets inside
    /// reports and events).
    Record,
    /// summary --format json.
    Summary,
    /// explain --diagnose --format json.
    Diagnose,
    /// One line of watch --format jsonl.
    WatchEvent,
    /// One socket of kill --format json or jsonl.
    Kill,
    /// One connection of history --format json, jsonl or csv.
    HistoryRecord,
    /// history --summary --format json.
    HistorySummary,
    /// audit --format json.
    Audit,
    /// The ClickHouse tables of a fleet's history (SQL statements, not a
    /// JSON Schema; docs/fleet.md).
    Clickhouse,
}

/// Output format of summary and explain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Table,
    Json,
}

/// `--format table|json` and `--json`, for summary and explain.
#[derive(Debug, Clone, Args)]
pub struct ReportOutput {
    /// Output format.
    #[arg(long, value_enum, default_value_t = ReportFormat::Table, default_value_if("json", ArgPredicate::IsPresent, "json"))]
    pub format: ReportFormat,

    /// Shorthand for --format json.
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct AuditArgs {
    /// A policy (TOML): `[[allow]]` and `[[deny]]` rules on port, scope,
    /// address, process, user, unit, container, pod, netns; the first
    /// matching rule decides, a listener no rule matches is a finding
    /// (docs/audit.md).
    #[arg(long, value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    pub policy: Option<std::path::PathBuf>,

    /// Report only what is new or gone since this baseline (written by
    /// --save-baseline).
    #[arg(long, value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    pub baseline: Option<std::path::PathBuf>,

    /// A recording of these namespaces (`tcptab record --db`): each
    /// listener's `listening_since`, when the recording first saw it
    /// listening (of the listeners open at its last poll).
    #[arg(long, value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    pub history: Option<std::path::PathBuf>,

    /// Also list the established connections' remote addresses, by scope
    /// (global first), with the processes holding them.
    #[arg(long)]
    pub connected: bool,

    /// Write the listeners seen now as a baseline.
    #[arg(long, value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    pub save_baseline: Option<std::path::PathBuf>,

    /// Exit with status 1 when a finding of this severity or worse is
    /// found (0 otherwise, 2 on errors).
    #[arg(long, value_enum, default_value_t = FailOn::Warning, value_name = "SEVERITY")]
    pub fail_on: FailOn,

    /// Output format: a table by scope, one JSON document (`tcptab schema
    /// audit`), JSON Lines (a line per listener, then one per finding, each
    /// with its `type`), or CSV (a row per listener, its findings last).
    #[arg(long, value_enum, default_value_t = AuditFormat::Table, default_value_if("json", ArgPredicate::IsPresent, "json"))]
    pub format: AuditFormat,

    /// Shorthand for --format json.
    #[arg(long, conflicts_with = "format")]
    pub json: bool,

    #[command(flatten)]
    pub select: Selection,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuditFormat {
    Table,
    Json,
    Jsonl,
    Csv,
}

#[derive(Debug, Clone, Args)]
pub struct SummaryArgs {
    /// Also count sockets per process.
    #[arg(short = 'p', long = "processes")]
    pub processes: bool,

    /// Also count sockets per workload: pod/container, else systemd unit,
    /// else cgroup (docs/workloads.md).
    #[arg(long)]
    pub workload: bool,

    /// How many of the busiest ports, hosts and processes to show.
    #[arg(long, default_value_t = 10)]
    pub top: usize,

    #[command(flatten)]
    pub output: ReportOutput,

    #[command(flatten)]
    pub select: Selection,
}

#[derive(Debug, Clone, Args)]
pub struct ExplainArgs {
    /// Raw lines of /proc/net/tcp or tcp6 (default: read lines from stdin).
    #[arg(value_name = "LINE", conflicts_with = "diagnose")]
    pub lines: Vec<String>,

    /// Look for problems in the table instead: CLOSE_WAIT piling up, full
    /// accept queues, zero-window peers, retransmissions, TIME_WAIT to one
    /// endpoint, sockets without an owner, orphans.
    #[arg(long)]
    pub diagnose: bool,

    #[command(flatten)]
    pub thresholds: ThresholdArgs,

    /// Look up process owners (names the processes holding CLOSE_WAIT
    /// sockets, finds sockets no process holds).
    #[arg(short = 'p', long = "processes")]
    pub processes: bool,

    /// Name the workloads (pod, container, unit) of each finding's sockets
    /// (docs/workloads.md).
    #[arg(long)]
    pub workload: bool,

    /// With --diagnose: exit with status 1 when a finding of this severity
    /// or worse is found (0 otherwise, 2 on errors), for scripts.
    #[arg(long, value_enum, default_value_t = FailOn::Critical, value_name = "SEVERITY")]
    pub fail_on: FailOn,

    #[command(flatten)]
    pub output: ReportOutput,

    #[command(flatten)]
    pub scope: Scope,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FailOn {
    Warning,
    Critical,
    /// Never: exit 0 whatever is found.
    Never,
}

/// When a pattern becomes a finding (explain --diagnose).
#[derive(Debug, Clone, Args)]
pub struct ThresholdArgs {
    /// CLOSE_WAIT sockets held by one process.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub close_wait: u64,

    /// Accept queue length as a fraction of its limit.
    #[arg(long, default_value_t = 0.9, value_name = "FRACTION")]
    pub accept_queue: f64,

    /// Retransmission timeouts in a row on one socket.
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub retransmits: u32,

    /// TIME_WAIT sockets towards one remote address and port.
    #[arg(long, default_value_t = 500, value_name = "N")]
    pub time_wait: u64,

    /// Orphaned sockets (closed by their application, still finishing).
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub orphans: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns for people, like `ss -tan` (written in blocks of
    /// rows: a column widens when a later cell needs it).
    Table,
    /// One JSON array, one object per socket, written as it is read.
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
    /// Show the processes that hold each socket (pid, command, fd); all
    /// owners of a shared socket.
    #[arg(short = 'p', long = "processes")]
    pub processes: bool,

    /// Show each socket's workload: its cgroup, systemd unit, container and
    /// Kubernetes pod (one short column in the table; the `workload` group
    /// in JSON and CSV). From the kernel's cgroup id and the runtimes' own
    /// files, no runtime socket (docs/workloads.md). ss's `--cgroup` is
    /// read as this.
    #[arg(long, alias = "cgroup")]
    pub workload: bool,

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

    /// Sort by fields, the first deciding (`--sort state,rx-queue`; the
    /// default is the kernel's order). Sorting holds the whole table in
    /// memory; every other listing streams.
    #[arg(long, value_enum, value_name = "FIELD[,FIELD]", value_delimiter = ',')]
    pub sort: Vec<SortField>,

    /// No header line (as `ss -H`): the table, and the kernel's text.
    #[arg(short = 'H', long)]
    pub no_header: bool,

    /// Each socket on one line (as `ss -O`): what tcptab always does, -i,
    /// -m, -e and -o being columns of the one line.
    #[arg(short = 'O', long, hide = true)]
    pub oneline: bool,

    /// Colour the table: `auto` (on a terminal, unless NO_COLOR is set),
    /// `always` or `never`.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    pub color: ColorChoice,

    /// Reverse the sort order.
    #[arg(long, requires = "sort")]
    pub reverse: bool,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table, default_value_if("json", ArgPredicate::IsPresent, "json"))]
    pub format: Format,

    /// Shorthand for --format json.
    #[arg(long, conflicts_with = "format")]
    pub json: bool,

    #[command(flatten)]
    pub select: Selection,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

impl ColorChoice {
    /// Whether to colour what goes to stdout.
    pub fn enabled(self) -> bool {
        use std::io::IsTerminal;
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                    && std::io::stdout().is_terminal()
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SortField {
    State,
    #[value(alias = "rx_queue", alias = "recv-q")]
    RxQueue,
    #[value(alias = "tx_queue", alias = "send-q")]
    TxQueue,
    Local,
    Remote,
    Sport,
    Dport,
    Pid,
    Uid,
    Inode,
}
