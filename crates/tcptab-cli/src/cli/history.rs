//! The options of `record` and `history`: the recorder's file, its store,
//! and the questions asked of them.

use std::path::PathBuf;

use clap::builder::ArgPredicate;
use clap::{Args, ValueEnum};

use super::values::{parse_interval, parse_retention};
use super::{FilterArgs, Selection, StoreArgs};

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
    #[arg(long, value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    pub db: PathBuf,

    /// Time between two polls: seconds (5, 0.5) or with a unit (500ms, 1m).
    #[arg(long, allow_hyphen_values = true, default_value = "5s", value_parser = parse_interval)]
    pub interval: std::time::Duration,

    /// Delete connections and polls that ended longer ago than this (7d,
    /// 12h, 30m; at least a second).
    #[arg(long, allow_hyphen_values = true, default_value = "7d", value_parser = parse_retention)]
    pub retention: std::time::Duration,

    /// Stop after this many polls (at least 1).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,

    /// Do not look up the processes holding each socket (faster; owners
    /// are then unknown).
    #[arg(long)]
    pub no_owners: bool,

    /// Record this host name instead of the machine's (for machines that
    /// share one), in the file and in what is shipped.
    #[arg(long, value_name = "NAME")]
    pub host_name: Option<String>,

    /// With --clickhouse: ship what changed at most once per this interval
    /// (and at once again while batches are full).
    #[arg(long, allow_hyphen_values = true, default_value = "10s", value_parser = parse_interval, requires = "clickhouse")]
    pub ship_interval: std::time::Duration,

    /// Ship every connection and poll to this store as well (the file
    /// stays the spool: what the store did not acknowledge is sent again
    /// when it answers).
    #[command(flatten)]
    pub store: StoreArgs,

    #[command(flatten)]
    pub select: Selection,
}

/// The connections a recording saw open at one moment (--at), or at any
/// moment of an interval (--between, closed ones included), filtered as
/// `list` filters (also by owner: --pid, --process). Without either, every
/// connection recorded. Times: RFC 3339 (2026-12-01T03:12:00Z, or local
/// with an offset: 2026-12-01T04:12:00+01:00; the seconds may be left
/// out), a time of day with its offset (03:12Z: the latest such moment),
/// `now`, relative (-15m, -2h, -1d) or Unix time (@1796094720). A moment
/// outside the recorded span is said so, with no rows (exit 0).
/// History's filter is read against the recorded connections.
const HISTORY_FILTER: &str = "A filter expression in ss's language (docs/filters.md), tested on the recorded connections as they are read from the file (nothing runs in the kernel)";

#[derive(Debug, Clone, Args)]
#[command(mut_arg("expression", |a| a.help(HISTORY_FILTER)))]
pub struct HistoryArgs {
    /// The database `tcptab record` wrote.
    #[arg(long, value_name = "FILE", value_hint = clap::ValueHint::FilePath, required_unless_present = "clickhouse", conflicts_with = "clickhouse")]
    pub db: Option<PathBuf>,

    /// Ask a fleet's store instead of a file: every host's connections
    /// (or --host's), each with its host.
    #[command(flatten)]
    pub store: StoreArgs,

    /// With --clickhouse: only this host's connections (its host name).
    #[arg(long, value_name = "NAME", requires = "clickhouse")]
    pub host: Option<String>,

    /// The connections open at this moment.
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub at: Option<String>,

    /// Every connection that existed at any moment from T1 to T2.
    #[arg(long, num_args = 2, value_names = ["T1", "T2"], conflicts_with = "at", allow_hyphen_values = true)]
    pub between: Vec<String>,

    /// Counts per state, remote host, process, workload and recording host,
    /// with the bytes their connections sent and received, instead of the
    /// connections.
    #[arg(long)]
    pub summary: bool,

    /// Output format.
    #[arg(long, value_enum, default_value_t = HistoryFormat::Table, default_value_if("json", ArgPredicate::IsPresent, "json"))]
    pub format: HistoryFormat,

    /// Shorthand for --format json.
    #[arg(long, conflicts_with = "format")]
    pub json: bool,

    /// No header line (table and CSV).
    #[arg(short = 'H', long = "no-header")]
    pub no_header: bool,

    /// The processes that held each connection (history always shows
    /// them; accepted as in `ss -p`, so `-tanp` works as typed).
    #[arg(short = 'p', long = "processes", hide = true)]
    pub processes: bool,

    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HistoryFormat {
    Table,
    Json,
    Jsonl,
    Csv,
}
