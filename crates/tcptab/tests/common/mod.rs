//! What the sock_diag tests share: the families, the extensions asked
//! for, a socket's key, and a scenario's namespace dumped.

use tcptab::diag::{self, Extensions, NetlinkSocket};
use tcptab::{DiagSocket, Family, Socket, State, StateSet};
use testkit::{endpoint, Scenario};

pub const ALL: [Family; 2] = [Family::Ipv4, Family::Ipv6];
pub const EVERYTHING: Extensions = Extensions {
    info: true,
    memory: true,
};

pub fn key(s: &Socket) -> (State, String, String) {
    (s.state, endpoint(s.local), endpoint(s.remote))
}

pub fn dump_namespace(scenario: &Scenario) -> Vec<DiagSocket> {
    let ns = scenario.proc_root().join("ns/net");
    let mut socket = NetlinkSocket::open_in(&ns).expect("a netlink socket in the namespace");
    diag::dump(&mut socket, &ALL, EVERYTHING, StateSet::ALL)
        .unwrap()
        .sockets
}
