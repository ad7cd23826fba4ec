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

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,

    /// Shorthand for --format json.
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
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
