//! The options of `serve`, the Prometheus exporter.

use std::path::PathBuf;

use clap::Args;

use super::values::{parse_interval, parse_min_interval, parse_read_timeout};
use super::Scope;

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

    /// Count sockets per remote port: the services' ports, those outside
    /// the kernel's ephemeral range (of each namespace), where the clients'
    /// own ports are (--every-remote-port counts those too).
    #[arg(long)]
    pub per_remote_port: bool,

    /// With --per-remote-port: every remote port, also those in the
    /// ephemeral range (one series per client connection: many).
    #[arg(long, requires = "per_remote_port")]
    pub every_remote_port: bool,

    /// Count sockets per process command name (reads /proc/*/fd).
    #[arg(long)]
    pub per_process: bool,

    /// Export each namespace's kernel TCP counters (/proc/net/snmp Tcp and
    /// /proc/net/netstat TcpExt: ListenOverflows, RetransSegs, OutRsts,
    /// ...) as `tcptab_kernel_tcp_total{counter}`, read inside each
    /// namespace read (docs/exporter.md).
    #[arg(long)]
    pub kernel_counters: bool,

    /// Export the shipping status of this history file (`record
    /// --clickhouse`): tcptab_ship_rows_sent_total, _batches_failed_total,
    /// _rows_waiting, _oldest_waiting_seconds, _rows_dropped_total
    /// (docs/fleet.md).
    #[arg(long, value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    pub ship_status: Option<PathBuf>,

    /// Count sockets per workload: `tcptab_workload_sockets` with the
    /// labels namespace, pod, container and unit (docs/workloads.md);
    /// bounded by --max-series.
    #[arg(long)]
    pub per_workload: bool,

    /// Count what happened to connections, per listener (and namespace,
    /// and workload with --per-workload): connections opened and closed,
    /// bytes received and acked, segments retransmitted, how long they
    /// lived, accept queues found full. Exact: the closed connections'
    /// final counters from the kernel's destroy notifications, the open
    /// ones' from a poll every --counters-interval (docs/exporter.md).
    #[arg(long)]
    pub connection_counters: bool,

    /// With --connection-counters: time between two polls of the open
    /// connections (what they count between polls shows at the next).
    #[arg(long, allow_hyphen_values = true, default_value = "5s", value_parser = parse_interval, requires = "connection_counters")]
    pub counters_interval: std::time::Duration,

    /// Export smoothed RTTs as a histogram (netlink source).
    #[arg(long)]
    pub rtt_histogram: bool,

    /// At most this many series in each optional family and in the
    /// listener family; what is cut is counted in tcptab_series_dropped.
    #[arg(long, default_value_t = 100, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_series: u32,

    /// Collect at most once per this interval; scrapes in between, and
    /// concurrent scrapes, share the last collection (0s: every scrape
    /// collects, concurrent ones still share).
    #[arg(long, allow_hyphen_values = true, default_value = "1s", value_parser = parse_min_interval)]
    pub min_interval: std::time::Duration,

    /// Connections open at once (1 or more). At the cap, a new connection
    /// closes one that has not sent a whole request yet (the oldest), else
    /// the one idle the longest; one whose request has arrived is never
    /// closed; with every one busy, the new one is closed at once.
    #[arg(long, default_value_t = 64, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=65_536))]
    pub max_connections: u32,

    /// Time a client has to send a complete request head (100ms to 60s);
    /// a connection that sends nothing is closed after it.
    #[arg(long, allow_hyphen_values = true, default_value = "2s", value_parser = parse_read_timeout)]
    pub read_timeout: std::time::Duration,

    #[command(flatten)]
    pub scope: Scope,
}
