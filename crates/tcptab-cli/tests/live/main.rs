//! `tcptab list` on real sockets in fresh network namespaces, checked
//! against `ss` for the same namespace: owners (`-p` vs `ss -tanp`), every
//! filter and the expression language (vs the same filter given to `ss`),
//! several namespaces at once, and an unprivileged run.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

#[path = "../common/mod.rs"]
mod common;
mod filters;
mod namespaces;
mod owners;
mod sources;
mod typed;

use common::{ok_line, tcptab, tcptab_line};
use serde_json::Value;
use testkit::{endpoint, Scenario, SsRow};

/// `tcptab ARGS --format json`, as the rows of its array.
fn json(args: &[&str]) -> Vec<Value> {
    let mut all = args.to_vec();
    all.extend(["--format", "json"]);
    common::json(&all).as_array().unwrap().clone()
}

/// (state in ss spelling, local, peer) of a JSON row, as testkit writes them.
fn identity(row: &Value) -> (String, String, String) {
    let state: tcptab::State = row["state"].as_str().unwrap().parse().unwrap();
    let addr = |a: &str, p: &str| {
        let ip: std::net::IpAddr = row[a].as_str().unwrap().parse().unwrap();
        endpoint(std::net::SocketAddr::new(
            ip,
            row[p].as_u64().unwrap() as u16,
        ))
    };
    (
        state.ss_name().unwrap().to_string(),
        addr("local_address", "local_port"),
        addr("remote_address", "remote_port"),
    )
}

fn ss_identity(row: &SsRow) -> (String, String, String) {
    let state: tcptab::State = row.state.parse().unwrap();
    (
        state.ss_name().unwrap().to_string(),
        row.local.clone(),
        row.peer.clone(),
    )
}

/// (local, peer): what identifies a socket within one namespace, and all
/// that `ss` prints when a state filter makes it drop the State column.
fn ends(row: &Value) -> (String, String) {
    let (_, local, peer) = identity(row);
    (local, peer)
}

fn ss_ends(row: &SsRow) -> (String, String) {
    (row.local.clone(), row.peer.clone())
}

/// `users:(("python3",pid=1,fd=4),("python3",pid=2,fd=4))` → {(1,4), (2,4)}.
fn ss_users(rest: &str) -> BTreeSet<(u64, u64)> {
    let mut users = BTreeSet::new();
    for part in rest.split("pid=").skip(1) {
        let pid: u64 = part.split(',').next().unwrap().parse().unwrap();
        let fd: u64 = part
            .split("fd=")
            .nth(1)
            .unwrap()
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap();
        users.insert((pid, fd));
    }
    users
}
