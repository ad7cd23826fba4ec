//! `tcptab record` and `tcptab history` on real connections in fresh
//! namespaces: a connection of four seconds found with its owner in the
//! middle of its life and absent before and after, one of milliseconds
//! found with its final byte counts, a recorder killed with SIGKILL, the
//! retention window, namespaces that come and go, an unprivileged
//! recorder, and bad input. `sqlite3` is the oracle for the file.

#[path = "../common/mod.rs"]
mod common;
mod faults;
mod input;
mod kept;
mod lifetimes;
mod sources;
mod typed;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::recorder::{
    at, history, ledger_scenario, record, scratch, scratch_db, sql, stop, wait_polls,
};
use serde_json::Value;
use tcptab::time::now_ms;
use testkit::NamedNetns;

/// The rows of one connection's two ends (client port `port`).
fn ends(rows: &[Value], port: u64) -> Vec<&Value> {
    rows.iter()
        .filter(|r| r["local_port"] == port || r["remote_port"] == port)
        .collect()
}

/// A byte count of `n` bytes of data: tcp_info counts the SYN (and a FIN)
/// as a byte each.
fn bytes(v: &Value, n: u64) -> bool {
    (n..=n + 2).contains(&v.as_u64().unwrap())
}

/// What the lifetimes scenario did, and when (ms since the Unix epoch).
#[derive(Debug, Clone, Copy)]
struct Moments {
    pid: u32,
    /// The long connection's client port, and the flash's.
    a: u64,
    f: u64,
    opened: i64,
    opened_after: i64,
    closing: i64,
    closed: i64,
    flashed: i64,
}
