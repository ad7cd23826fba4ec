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
    /// Print the JSON Schema of a document tcptab writes (docs/schema.md).
    Schema(SchemaArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(CompletionsArgs),
    /// Print the manual page (roff; `tcptab man | man -l -`).
    Man,
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
/// TIME_WAIT and SYN_RECV request sockets can be destroyed too. Listening
/// sockets only when the filter names the listening state (-l, --state
/// listening). With no filter at all it refuses, unless -a/--all says
/// every socket is meant. Exit status: 0 when every socket was destroyed or already
/// gone (or a dry run), 1 when the kernel refused some, 2 on errors (and
/// for a refusal that holds for every socket, with nothing destroyed).
#[derive(Debug, Clone, Args)]
pub struct KillArgs {
    /// Destroy them (without it: a dry run that destroys nothing).
    #[arg(long)]
    pub yes: bool,

    /// Refuse, destroying nothing, when more sockets than this match.
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub max: usize,

    /// Output format of the listing and the results.
    #[arg(long, value_enum, default_value_t = KillFormat::Table)]
    pub format: KillFormat,

    /// Shorthand for --format json.
    #[arg(long, conflicts_with = "format")]
    pub json: bool,

    /// Say on stderr which namespaces were read.
    #[arg(short = 'v', long)]
    pub verbose: bool,

    #[command(flatten)]
    pub filter: FilterArgs,

    #[command(flatten)]
    pub namespaces: NamespaceArgs,
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
}

/// Poll the table every --interval and keep what it saw in an SQLite file
/// (WAL mode): one row per connection (keyed by boot, namespace and socket
/// cookie) with its owners, state changes, listeners' accept queues, and
/// one row per poll saying what could not be seen. With netlink, the
/// kernel's destroy notifications bring every connection that closes, also
/// one shorter than a poll, with its final counters. Runs until Ctrl-C or SIGTERM (or --count polls); a SIGKILL
/// loses at most the poll being written.
#[derive(Debug, Clone, Args)]
pub struct RecordArgs {
    /// The database file (created if missing).
    #[arg(long, value_name = "FILE")]
    pub db: PathBuf,

    /// Time between two polls: seconds (5, 0.5) or with a unit (500ms, 1m).
    #[arg(long, default_value = "5s", value_parser = parse_interval)]
    pub interval: std::time::Duration,

    /// Delete connections and polls that ended longer ago than this (7d,
    /// 12h, 30m; at least a second).
    #[arg(long, default_value = "7d", value_parser = parse_retention)]
    pub retention: std::time::Duration,

    /// Stop after this many polls.
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,

    /// Do not look up the processes holding each socket (faster; owners
    /// are then unknown).
    #[arg(long)]
    pub no_owners: bool,

    #[command(flatten)]
    pub filter: FilterArgs,

    #[command(flatten)]
    pub namespaces: NamespaceArgs,

    #[command(flatten)]
    pub source: SourceArgs,
}

/// The connections a recording saw open at one moment (--at), or at any
/// moment of an interval (--between, closed ones included), filtered as
/// `list` filters (also by owner: --pid, --process). Without either, every
/// connection recorded. Times: RFC 3339 (2026-12-01T03:12:00Z, or local
/// with an offset: 2026-12-01T04:12:00+01:00), `now`, or relative (-15m,
/// -2h, -1d). A moment outside the recorded span is said so, with no rows
/// (exit 0).
#[derive(Debug, Clone, Args)]
pub struct HistoryArgs {
    /// The database `tcptab record` wrote.
    #[arg(long, value_name = "FILE")]
    pub db: PathBuf,

    /// The connections open at this moment.
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub at: Option<String>,

    /// Every connection that existed at any moment from T1 to T2.
    #[arg(long, num_args = 2, value_names = ["T1", "T2"], conflicts_with = "at", allow_hyphen_values = true)]
    pub between: Vec<String>,

    /// Counts per state, per remote host and per process instead of the
    /// connections.
    #[arg(long)]
    pub summary: bool,

    /// Output format.
    #[arg(long, value_enum, default_value_t = HistoryFormat::Table)]
    pub format: HistoryFormat,

    /// Shorthand for --format json.
    #[arg(long, conflicts_with = "format")]
    pub json: bool,

    /// No header line (table and CSV).
    #[arg(short = 'H', long = "no-header")]
    pub no_header: bool,

    #[command(flatten)]
    pub filter: FilterArgs,
}

impl HistoryArgs {
    pub fn format(&self) -> HistoryFormat {
        if self.json {
            HistoryFormat::Json
        } else {
            self.format
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HistoryFormat {
    Table,
    Json,
    Jsonl,
    Csv,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address and port to listen on. The default is loopback only;
    /// binding to other addresses is an explicit choice.
    #[arg(long, default_value = "127.0.0.1:9867", value_name = "ADDR:PORT")]
    pub listen: std::net::SocketAddr,

    /// Count sockets per local port for this port (repeatable): only the
    /// ports listed get a series.
    #[arg(long = "port", value_name = "PORT")]
    pub ports: Vec<u16>,

    /// Count sockets per remote port.
    #[arg(long)]
    pub per_remote_port: bool,

    /// Count sockets per process command name (reads /proc/*/fd).
    #[arg(long)]
    pub per_process: bool,

    /// Export smoothed RTTs as a histogram (netlink source).
    #[arg(long)]
    pub rtt_histogram: bool,

    /// At most this many series in each optional family and in the
    /// listener family; what is cut is counted in tcptab_series_dropped.
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub max_series: usize,

    /// Collect at most once per this interval; scrapes in between, and
    /// concurrent scrapes, share the last collection (0s: every scrape
    /// collects, concurrent ones still share).
    #[arg(long, default_value = "1s", value_parser = parse_min_interval)]
    pub min_interval: std::time::Duration,

    /// Connections served at once; more are closed at once.
    #[arg(long, default_value_t = 64, value_name = "N")]
    pub max_connections: usize,

    /// Time a client has to send a complete request head (100ms to 60s);
    /// a connection that sends nothing is closed after it.
    #[arg(long, default_value = "2s", value_parser = parse_read_timeout)]
    pub read_timeout: std::time::Duration,

    #[command(flatten)]
    pub namespaces: NamespaceArgs,

    #[command(flatten)]
    pub source: SourceArgs,
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
    #[arg(long, value_enum, default_value_t = ReportFormat::Table)]
    pub format: ReportFormat,

    /// Shorthand for --format json.
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
}

impl ReportOutput {
    pub fn format(&self) -> ReportFormat {
        if self.json {
            ReportFormat::Json
        } else {
            self.format
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct SummaryArgs {
    /// Also count sockets per process.
    #[arg(short = 'p', long = "processes")]
    pub processes: bool,

    /// How many of the busiest ports, hosts and processes to show.
    #[arg(long, default_value_t = 10)]
    pub top: usize,

    #[command(flatten)]
    pub output: ReportOutput,

    #[command(flatten)]
    pub filter: FilterArgs,

    #[command(flatten)]
    pub namespaces: NamespaceArgs,

    #[command(flatten)]
    pub source: SourceArgs,
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

    /// With --diagnose: exit with status 1 when a finding of this severity
    /// or worse is found (0 otherwise, 2 on errors), for scripts.
    #[arg(long, value_enum, default_value_t = FailOn::Critical, value_name = "SEVERITY")]
    pub fail_on: FailOn,

    #[command(flatten)]
    pub output: ReportOutput,

    #[command(flatten)]
    pub namespaces: NamespaceArgs,

    #[command(flatten)]
    pub source: SourceArgs,
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

#[derive(Debug, Clone, Args)]
pub struct WatchArgs {
    /// Time between two looks at the table: seconds (1, 0.5) or with a
    /// unit (500ms); 10ms to a day.
    #[arg(long, default_value = "1s", value_parser = parse_interval)]
    pub interval: std::time::Duration,

    /// Also report a socket whose receive or send queue grows past this many
    /// bytes.
    #[arg(long, value_name = "BYTES")]
    pub queue_threshold: Option<u32>,

    /// Show the processes holding each socket.
    #[arg(short = 'p', long = "processes")]
    pub processes: bool,

    /// Stop after this many events.
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,

    /// Stop after this long (e.g. 30, 30s, 5m; at most a year).
    #[arg(long, value_parser = parse_run_time)]
    pub duration: Option<std::time::Duration>,

    /// `text` lines for people, or `jsonl`: one object per event.
    #[arg(long, value_enum, default_value_t = WatchFormat::Text)]
    pub format: WatchFormat,

    /// Only these events (comma-separated; all by default). `tcptab -E`
    /// is `tcptab watch --events closed`, as `ss -E` shows the sockets
    /// that close.
    #[arg(long, value_enum, value_delimiter = ',', value_name = "KIND[,KIND]")]
    pub events: Vec<EventKind>,

    /// Receive buffer for the kernel's destroy notifications, in bytes. When
    /// a burst overflows it, the kernel drops notifications: watch says so
    /// (a `lost` event) and goes on.
    #[arg(long, default_value_t = tcptab::diag::NetlinkSocket::DESTROY_BUFFER, value_name = "BYTES", value_parser = clap::value_parser!(usize))]
    pub notify_buffer: usize,

    #[command(flatten)]
    pub filter: FilterArgs,

    #[command(flatten)]
    pub namespaces: NamespaceArgs,

    #[command(flatten)]
    pub source: SourceArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WatchFormat {
    Text,
    Jsonl,
}

#[derive(Debug, Clone, Args)]
pub struct TopArgs {
    /// Time between two refreshes: seconds (1, 0.5) or with a unit
    /// (500ms); 10ms to a day.
    #[arg(long, default_value = "1s", value_parser = parse_interval)]
    pub interval: std::time::Duration,

    /// `screen`: the full-screen view (keys: ? shows them). `jsonl`: one
    /// JSON object per refresh (`{time, interval_s, sockets}`), for scripts.
    #[arg(long, value_enum, default_value_t = TopFormat::Screen)]
    pub format: TopFormat,

    /// Stop after this many frames.
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,

    /// Show the processes holding each socket.
    #[arg(short = 'p', long = "processes")]
    pub processes: bool,

    #[command(flatten)]
    pub filter: FilterArgs,

    #[command(flatten)]
    pub namespaces: NamespaceArgs,

    #[command(flatten)]
    pub source: SourceArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TopFormat {
    Screen,
    Jsonl,
}

/// The kinds of watch events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EventKind {
    Opened,
    Closed,
    #[value(name = "state_changed", alias = "state")]
    StateChanged,
    #[value(name = "queue_growth", alias = "queue")]
    QueueGrowth,
}

impl EventKind {
    pub fn of(change: &tcptab::watch::Change) -> EventKind {
        use tcptab::watch::Change;
        match change {
            Change::Opened => EventKind::Opened,
            Change::Closed { .. } => EventKind::Closed,
            Change::StateChanged { .. } => EventKind::StateChanged,
            Change::QueueGrowth => EventKind::QueueGrowth,
        }
    }
}

/// `--uid`: a number, or a user name from /etc/passwd.
fn parse_user(text: &str) -> Result<u32, String> {
    if let Ok(uid) = text.parse::<u32>() {
        return Ok(uid);
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            let uid = fields.nth(1)?.parse::<u32>().ok()?;
            Some((name, uid))
        })
        .find(|(name, _)| *name == text)
        .map(|(_, uid)| uid)
        .ok_or_else(|| {
            format!(
                "'{}' is neither a uid nor a user in /etc/passwd",
                tcptab::filter::excerpt(text)
            )
        })
}

/// `--pid` and the like: a process id.
fn parse_pid(text: &str) -> Result<u32, String> {
    text.parse::<u32>().map_err(|_| {
        format!(
            "'{}' is not a process id (a number such as 1234)",
            tcptab::filter::excerpt(text)
        )
    })
}

/// A duration: a bare number of seconds (`1`, `0.5`) or with units (`1s`,
/// `500ms`, `2m`), within `min..=max`; an error names what is expected.
fn duration_in(
    text: &str,
    min: std::time::Duration,
    max: std::time::Duration,
) -> Result<std::time::Duration, String> {
    let shown = tcptab::filter::excerpt(text);
    let d = match text.trim().parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs >= 0.0 => std::time::Duration::try_from_secs_f64(secs)
            .map_err(|_| format!("'{shown}' is too long a duration"))?,
        Ok(_) => {
            return Err(format!(
                "'{shown}' is not a duration (a number of seconds such as 1 or 0.5, or 500ms, 2m)"
            ))
        }
        Err(_) => humantime::parse_duration(text).map_err(|e| {
            format!("'{shown}' is not a duration such as 1, 0.5, 1s or 500ms ({e})")
        })?,
    };
    let fmt = |d: std::time::Duration| match d.as_secs() {
        s if s >= 86_400 && s % 86_400 == 0 && d.subsec_nanos() == 0 => {
            format!("{} days", s / 86_400)
        }
        _ => humantime::format_duration(d).to_string(),
    };
    if d < min {
        return Err(if min.is_zero() {
            format!("'{shown}' is not a duration")
        } else if d.is_zero() {
            format!(
                "'{shown}': the duration must be more than zero (at least {})",
                fmt(min)
            )
        } else {
            format!("'{shown}' is too short: at least {}", fmt(min))
        });
    }
    if d > max {
        return Err(format!("'{shown}' is too long: at most {}", fmt(max)));
    }
    Ok(d)
}

const MS: std::time::Duration = std::time::Duration::from_millis(1);
const HOUR: std::time::Duration = std::time::Duration::from_secs(3600);
const DAY: std::time::Duration = std::time::Duration::from_secs(86_400);

/// `watch --interval`: 10 ms to a day (a shorter one would spin without
/// reading the notifications).
fn parse_interval(text: &str) -> Result<std::time::Duration, String> {
    duration_in(text, 10 * MS, DAY)
}

/// `record --retention`: a second to ten years.
fn parse_retention(text: &str) -> Result<std::time::Duration, String> {
    duration_in(text, std::time::Duration::from_secs(1), 3650 * DAY)
}

/// `watch --duration`: more than zero, at most a year.
fn parse_run_time(text: &str) -> Result<std::time::Duration, String> {
    duration_in(text, MS, 365 * DAY)
}

/// `serve --min-interval`: 0 (every scrape collects) to an hour.
fn parse_min_interval(text: &str) -> Result<std::time::Duration, String> {
    duration_in(text, std::time::Duration::ZERO, HOUR)
}

/// `serve --read-timeout`: 100 ms to a minute.
fn parse_read_timeout(text: &str) -> Result<std::time::Duration, String> {
    duration_in(text, 100 * MS, std::time::Duration::from_secs(60))
}

/// Where the sockets are read from.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Source")]
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
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,

    /// Shorthand for --format json.
    #[arg(long, conflicts_with = "format")]
    pub json: bool,

    #[command(flatten)]
    pub filter: FilterArgs,

    #[command(flatten)]
    pub namespaces: NamespaceArgs,

    #[command(flatten)]
    pub source: SourceArgs,
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

/// Which network namespaces to read (default: this process's).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Network namespaces")]
pub struct NamespaceArgs {
    /// A named network namespace (under /run/netns, as `ip netns` makes;
    /// -N as in ss).
    #[arg(short = 'N', long, value_name = "NAME", conflicts_with_all = ["netns_pid", "all_netns"])]
    pub netns: Option<String>,

    /// The network namespace of process PID.
    #[arg(long, value_name = "PID", conflicts_with = "all_netns", value_parser = parse_pid)]
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
    #[arg(long = "state", value_name = "NAME")]
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

    /// Local address or prefix (10.0.0.0/8, 10/8, ::1); an IPv4 prefix also
    /// matches the IPv4-mapped addresses in it. Repeatable: any of them.
    #[arg(long, value_name = "ADDR[/LEN]")]
    pub src: Vec<String>,

    /// Remote address or prefix. Repeatable: any of them.
    #[arg(long, value_name = "ADDR[/LEN]")]
    pub dst: Vec<String>,

    /// Only sockets owned by this user: a uid or a user name (/etc/passwd).
    #[arg(long, value_name = "USER", value_parser = parse_user)]
    pub uid: Option<u32>,

    /// Only sockets held by this process.
    #[arg(long, value_name = "PID", value_parser = parse_pid)]
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

impl ListArgs {
    pub fn format(&self) -> Format {
        if self.json {
            Format::Json
        } else {
            self.format
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Duration;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Any text into every duration option: an error or a duration in
        /// its range, never a panic.
        #[test]
        fn durations_never_panic_and_stay_in_range(text in any::<String>()) {
            for (parse, min, max) in [
                (parse_interval as fn(&str) -> Result<Duration, String>, 10 * MS, DAY),
                (parse_run_time, MS, 365 * DAY),
                (parse_min_interval, Duration::ZERO, HOUR),
                (parse_read_timeout, 100 * MS, Duration::from_secs(60)),
            ] {
                if let Ok(d) = parse(&text) {
                    prop_assert!(d >= min && d <= max, "{text:?}: {d:?}");
                }
            }
        }

        /// Numbers and units, the shapes people type.
        #[test]
        fn duration_shapes(n in any::<f64>(), unit in prop::sample::select(vec!["", "s", "ms", "m", "h", "d", "ns", "years"])) {
            let text = format!("{n}{unit}");
            if let Ok(d) = parse_interval(&text) {
                prop_assert!(d >= 10 * MS && d <= DAY, "{text:?}: {d:?}");
            }
        }
    }

    #[test]
    fn bare_seconds_and_units() {
        assert_eq!(parse_interval("1"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_interval("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_interval("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_interval("1e308").is_err());
        assert!(parse_interval("inf").is_err());
        assert!(parse_interval("-1").is_err());
        assert_eq!(parse_min_interval("0"), Ok(Duration::ZERO));
    }
}
