//! A flat, serialisable view of a [`Socket`]: one key per decoded column, in
//! the units a person reads (milliseconds beside clock ticks). JSON, JSON
//! Lines and CSV output are this struct through serde.

use std::borrow::Cow;
use std::net::IpAddr;

use serde::Serialize;

use crate::socket::{PointerKind, Socket, Ssthresh};

/// One socket as a flat record. Columns a row shape does not have (rto ...
/// ssthresh on TIME_WAIT and request rows) are `None` (`null` in JSON, empty
/// in CSV).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SocketRecord {
    /// `"ipv4"` or `"ipv6"`.
    pub family: &'static str,
    /// `"full"`, `"time_wait"` or `"request"`.
    pub kind: &'static str,
    pub sl: u32,
    /// Kernel spelling: `ESTABLISHED`, `SYN_RECV`, ... (`UNKNOWN(0x..)`).
    pub state: Cow<'static, str>,
    pub state_code: u8,
    pub local_address: IpAddr,
    pub local_port: u16,
    pub remote_address: IpAddr,
    pub remote_port: u16,
    pub tx_queue: u32,
    pub rx_queue: u32,
    /// `off`, `retransmit`, `keepalive`, `time_wait`, `zero_window_probe`.
    pub timer: Cow<'static, str>,
    pub timer_ticks: u64,
    pub timer_ms: u64,
    pub retransmits: u32,
    pub uid: u32,
    /// Unanswered zero-window or keepalive probes (the `timeout` column).
    pub probes: i32,
    pub inode: u64,
    pub refcount: i32,
    /// The pointer column as printed.
    pub pointer: String,
    /// `zeroed`, `hashed`, `raw` or `unavailable`.
    pub pointer_kind: &'static str,
    pub rto_ticks: Option<u64>,
    pub rto_ms: Option<u64>,
    pub ato_ticks: Option<u64>,
    pub ato_ms: Option<u64>,
    pub quick_acks: Option<u32>,
    pub pingpong: Option<bool>,
    pub cwnd: Option<u32>,
    /// Slow start threshold in segments; `None` while in initial slow start
    /// (printed −1) and on LISTEN sockets.
    pub ssthresh: Option<u32>,
    /// `true` when the column says −1 (no loss yet, initial slow start).
    pub initial_slow_start: Option<bool>,
    /// LISTEN only: the TCP Fast Open queue limit (the same column).
    pub fastopen_queue_limit: Option<i32>,
}

impl From<&Socket> for SocketRecord {
    fn from(s: &Socket) -> SocketRecord {
        let c = s.congestion.as_ref();
        let (ssthresh, initial_slow_start, fastopen_queue_limit) = match c.map(|c| c.ssthresh) {
            None => (None, None, None),
            Some(Ssthresh::InitialSlowStart) => (None, Some(true), None),
            Some(Ssthresh::Segments(n)) => (Some(n), Some(false), None),
            Some(Ssthresh::FastOpenQueueLimit(n)) => (None, None, Some(n)),
        };
        SocketRecord {
            family: s.family.as_str(),
            kind: s.kind.as_str(),
            sl: s.sl,
            state: match s.state.kernel_name() {
                Some(name) => Cow::Borrowed(name),
                None => Cow::Owned(s.state.to_string()),
            },
            state_code: s.state.code(),
            local_address: s.local.ip(),
            local_port: s.local.port(),
            remote_address: s.remote.ip(),
            remote_port: s.remote.port(),
            tx_queue: s.tx_queue,
            rx_queue: s.rx_queue,
            timer: match s.timer.kind.name() {
                Some(name) => Cow::Borrowed(name),
                None => Cow::Owned(s.timer.kind.to_string()),
            },
            timer_ticks: s.timer.expires.0,
            timer_ms: s.timer.expires.as_millis(),
            retransmits: s.retransmits,
            uid: s.uid,
            probes: s.probes,
            inode: s.inode,
            refcount: s.refcount,
            pointer: s.pointer.as_str().to_string(),
            pointer_kind: match s.pointer.kind() {
                PointerKind::Zeroed => "zeroed",
                PointerKind::Hashed => "hashed",
                PointerKind::Raw => "raw",
                PointerKind::Unavailable => "unavailable",
            },
            rto_ticks: c.map(|c| c.rto.0),
            rto_ms: c.map(|c| c.rto.as_millis()),
            ato_ticks: c.map(|c| c.ato.0),
            ato_ms: c.map(|c| c.ato.as_millis()),
            quick_acks: c.map(|c| c.quick_acks()),
            pingpong: c.map(|c| c.pingpong()),
            cwnd: c.map(|c| c.cwnd),
            ssthresh,
            initial_slow_start,
            fastopen_queue_limit,
        }
    }
}
