//! The record behind JSON, JSON Lines and CSV: the socket's own fields
//! (`tcptab::SocketRecord`) plus, when asked for, its namespace and owners.

use serde::Serialize;
use tcptab::diag::Diag;
use tcptab::{Owner, Ownership, SocketRecord};

use super::{Columns, Row};

#[derive(Debug, Serialize)]
pub struct RowRecord<'a> {
    #[serde(flatten)]
    pub socket: SocketRecord,
    /// Where the socket was read: `netlink` or `proc`.
    pub source: &'static str,
    /// Netlink only (absent from /proc sources): cookie, LISTEN backlog
    /// limit, tcp_info, congestion algorithm, memory, shutdown.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub diag: Option<&'a Diag>,
    /// The namespace inode (with --all-netns, --netns, --netns-pid).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub netns: Option<Option<u64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub netns_name: Option<Option<&'a str>>,
    /// `owned`, `no_process` (TIME_WAIT, request, orphaned: no process can
    /// hold it), `unknown` (some processes could not be inspected) or
    /// `not_found` (with -p).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner_status: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owners: Option<&'a [Owner]>,
}

impl<'a> RowRecord<'a> {
    pub fn new(row: &Row<'a>, columns: Columns) -> RowRecord<'a> {
        let with_netns = columns.netns || row.netns.is_some();
        let (owner_status, owners) = match row.owners {
            None => (None, None),
            Some(Ownership::Owned(list)) => (Some("owned"), Some(list)),
            Some(Ownership::NoProcess) => (Some("no_process"), Some(&[][..])),
            Some(Ownership::Unknown) => (Some("unknown"), Some(&[][..])),
            Some(Ownership::NotFound) => (Some("not_found"), Some(&[][..])),
        };
        RowRecord {
            socket: SocketRecord::from(row.socket),
            source: row.source,
            diag: row.diag,
            netns: with_netns.then(|| row.netns.map(|n| n.inode)),
            netns_name: with_netns.then(|| row.netns.and_then(|n| n.name.as_deref())),
            owner_status,
            owners,
        }
    }
}
