//! The options of the live views: `watch` (events) and `top` (a screen).

use clap::{Args, ValueEnum};

use super::values::{parse_interval, parse_run_time};
use super::Selection;

#[derive(Debug, Clone, Args)]
pub struct WatchArgs {
    /// Time between two looks at the table: seconds (1, 0.5) or with a
    /// unit (500ms); 10ms to a day.
    #[arg(long, allow_hyphen_values = true, default_value = "1s", value_parser = parse_interval)]
    pub interval: std::time::Duration,

    /// Also report a socket whose receive or send queue grows past this many
    /// bytes.
    #[arg(long, value_name = "BYTES")]
    pub queue_threshold: Option<u32>,

    /// Show the processes holding each socket.
    #[arg(short = 'p', long = "processes")]
    pub processes: bool,

    /// Add each connection's workload (cgroup, unit, container, pod) to
    /// the jsonl events; a connection keeps its own through its TIME_WAIT
    /// (docs/workloads.md).
    #[arg(long)]
    pub workload: bool,

    /// Stop after this many events (at least 1).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,

    /// Stop after this long (e.g. 30, 30s, 5m; at most a year).
    #[arg(long, allow_hyphen_values = true, value_parser = parse_run_time)]
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
    pub select: Selection,
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
    #[arg(long, allow_hyphen_values = true, default_value = "1s", value_parser = parse_interval)]
    pub interval: std::time::Duration,

    /// `screen`: the full-screen view (keys: ? shows them). `jsonl`: one
    /// JSON object per refresh (`{time, interval_s, sockets}`), for scripts.
    #[arg(long, value_enum, default_value_t = TopFormat::Screen)]
    pub format: TopFormat,

    /// Stop after this many frames (at least 1).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,

    /// Add the processes holding each socket to the jsonl frames (the
    /// screen shows them whenever they can be read).
    #[arg(short = 'p', long = "processes")]
    pub processes: bool,

    /// Show each connection's workload (pod/container, else unit): a
    /// column on the screen (`w` groups by it), the `workload` group in
    /// jsonl frames (docs/workloads.md).
    #[arg(long)]
    pub workload: bool,

    #[command(flatten)]
    pub select: Selection,
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
