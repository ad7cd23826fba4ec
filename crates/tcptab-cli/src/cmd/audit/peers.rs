//! `audit --connected`: who the established connections talk to, by the
//! scope of the remote address (global first), with the processes on this
//! side.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use anyhow::Result;
use schemars::JsonSchema;
use serde::Serialize;
use tcptab::audit::Scope;
use tcptab::diag::Extensions;
use tcptab::filter::Expr;
use tcptab::{State, StateSet};

use crate::cli::AuditArgs;

/// One remote address of established connections.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Peer {
    /// The remote address's scope: global, shared, private, unique-local,
    /// link-local or loopback.
    pub scope: &'static str,
    pub address: IpAddr,
    /// Established connections with it.
    pub connections: u64,
    /// The commands holding them on this side, sorted.
    pub processes: Vec<String>,
}

/// The established connections of the selection, by remote address.
pub fn peers(args: &AuditArgs) -> Result<Vec<Peer>> {
    let established = Expr::State(StateSet::of(&[State::Established]));
    let filter = args.select.filter.expr()?.and(established);
    let query = args
        .select
        .scope
        .query(filter, Extensions::default(), true)?;
    let snapshot = query.snapshot()?;
    let mut by_peer: BTreeMap<(Scope, IpAddr), (u64, BTreeSet<String>)> = BTreeMap::new();
    for e in &snapshot.sockets {
        let ip = tcptab::canonical(e.socket.remote).ip();
        let (n, commands) = by_peer.entry((Scope::of(ip), ip)).or_default();
        *n += 1;
        let owners = e.as_entry().owners;
        commands.extend(
            owners
                .map_or_else(Vec::new, |o| o.commands())
                .into_iter()
                .map(str::to_string),
        );
    }
    let mut list: Vec<Peer> = by_peer
        .into_iter()
        .map(|((scope, address), (connections, processes))| Peer {
            scope: scope.as_str(),
            address,
            connections,
            processes: processes.into_iter().collect(),
        })
        .collect();
    // Global first (Scope's order), then the busiest.
    list.sort_by(|a, b| {
        let rank = |p: &Peer| Scope::ALL.iter().position(|s| s.as_str() == p.scope);
        (rank(a), b.connections, a.address).cmp(&(rank(b), a.connections, b.address))
    });
    Ok(list)
}
