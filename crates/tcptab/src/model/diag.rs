//! What a sock_diag dump has beyond the text tables, as plain data: the
//! cookie, the listen backlog limit, `tcp_info`, socket memory and the
//! rest ([`Diag`]); the decoder in `diag/` fills it from the wire.

use std::sync::Arc;

use super::socket::{Socket, Ssthresh};

/// What a sock_diag dump has that /proc/net/tcp does not.
#[derive(Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Diag {
    /// The socket cookie: a stable id for the socket's lifetime.
    pub cookie: u64,
    /// LISTEN: the accept queue limit (the backlog given to listen(),
    /// capped by net.core.somaxconn).
    pub backlog_limit: Option<u32>,
    /// The bound interface index (0 for none).
    pub interface: u32,
    /// Time to the pending timer's expiry, in ms (the model keeps ticks).
    pub timer_ms: u32,
    /// `tcp_info`, when asked for (full sockets only).
    pub tcp_info: Option<Arc<TcpInfo>>,
    /// The congestion control algorithm, when asked for (shared: a dump
    /// gives every socket of one algorithm the same name).
    pub congestion_algorithm: Option<Arc<str>>,
    /// Socket memory, when asked for.
    pub memory: Option<Box<MemInfo>>,
    /// `shutdown()` state: bit 0 receive side shut, bit 1 send side.
    pub shutdown: Option<u8>,
    /// IPv6 sockets: whether it is IPv6-only (`IPV6_V6ONLY`); an IPv6
    /// wildcard listener that is not takes IPv4 connections too.
    pub v6only: Option<bool>,
    /// The cgroup v2 id of the socket (of the process that made it); 0 when
    /// not reported (not a full socket, or a kernel before 5.7), as the
    /// kernel's filter sees those.
    pub cgroup_id: u64,
}

// `clone_from` keeps the memory box and the string it has, and shares
// the tcp_info: a tracker takes each connection's new look this way at
// every poll, for every socket. The tcp_info it let go of, when nothing
// else holds it, is kept for the thread's next decode ([`tcp_info_boxed`]).
impl Clone for Diag {
    fn clone(&self) -> Diag {
        Diag {
            cookie: self.cookie,
            backlog_limit: self.backlog_limit,
            interface: self.interface,
            timer_ms: self.timer_ms,
            tcp_info: self.tcp_info.clone(),
            congestion_algorithm: self.congestion_algorithm.clone(),
            memory: self.memory.clone(),
            shutdown: self.shutdown,
            v6only: self.v6only,
            cgroup_id: self.cgroup_id,
        }
    }

    fn clone_from(&mut self, from: &Diag) {
        self.cookie = from.cookie;
        self.backlog_limit = from.backlog_limit;
        self.interface = from.interface;
        self.timer_ms = from.timer_ms;
        match (&mut self.tcp_info, &from.tcp_info) {
            (Some(mine), Some(theirs)) if Arc::ptr_eq(mine, theirs) => {}
            (mine, theirs) => {
                if let Some(old) = std::mem::replace(mine, theirs.clone()) {
                    recycle_tcp_info(old);
                }
            }
        }
        self.congestion_algorithm
            .clone_from(&from.congestion_algorithm);
        self.memory.clone_from(&from.memory);
        self.shutdown = from.shutdown;
        self.v6only = from.v6only;
        self.cgroup_id = from.cgroup_id;
    }
}

/// The congestion control algorithm named `name`: the name last made on
/// this thread, shared, when it is the same (a dump's or a history's
/// sockets nearly all have one), so that a read makes it once.
pub(crate) fn congestion_named(name: &[u8]) -> Arc<str> {
    thread_local! {
        static LAST: std::cell::RefCell<Option<Arc<str>>> = const { std::cell::RefCell::new(None) };
    }
    LAST.with_borrow_mut(|last| match last {
        Some(known) if known.as_bytes() == name => known.clone(),
        _ => last.insert(String::from_utf8_lossy(name).into()).clone(),
    })
}

/// The most `tcp_info` boxes a thread keeps for its next decode: about
/// one a socket of the tables polled (each about 300 bytes).
const TCP_INFO_KEPT: usize = 1 << 17;

/// A thread's `tcp_info` boxes let go of by [`Diag::clone_from`], held by
/// nothing else: a poll's decode fills them again instead of asking the
/// allocator for one a socket (and freeing the last poll's).
#[derive(Default)]
struct Boxes {
    kept: Vec<Arc<TcpInfo>>,
    /// Boxes this thread's decode filled: a thread keeps no more than it
    /// fills (one that only takes looks, decoded elsewhere, keeps none).
    filled: usize,
}

thread_local! {
    static TCP_INFO_BOXES: std::cell::RefCell<Boxes> = std::cell::RefCell::default();
}

/// `info` in a box: one this thread let go of when it has one.
pub(crate) fn tcp_info_boxed(info: TcpInfo) -> Arc<TcpInfo> {
    let kept = TCP_INFO_BOXES.with_borrow_mut(|boxes| {
        boxes.filled = boxes.filled.saturating_add(1);
        boxes.kept.pop()
    });
    match kept {
        Some(mut boxed) => match Arc::get_mut(&mut boxed) {
            Some(slot) => {
                *slot = info;
                boxed
            }
            // Only boxes held by nothing else are kept.
            None => Arc::new(info),
        },
        None => Arc::new(info),
    }
}

/// `old` kept for [`tcp_info_boxed`] when nothing else holds it (and the
/// thread keeps fewer than it filled, and than [`TCP_INFO_KEPT`]); else
/// let go.
fn recycle_tcp_info(mut old: Arc<TcpInfo>) {
    if Arc::get_mut(&mut old).is_some() {
        TCP_INFO_BOXES.with_borrow_mut(|boxes| {
            if boxes.kept.len() < boxes.filled.min(TCP_INFO_KEPT) {
                boxes.kept.push(old);
            }
        });
    }
}

#[cfg(test)]
fn tcp_info_boxes_kept() -> usize {
    TCP_INFO_BOXES.with_borrow(|boxes| boxes.kept.len())
}

/// One socket from a dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiagSocket {
    pub socket: Socket,
    pub diag: Diag,
}

/// `struct tcp_info` (linux/tcp.h), in the units the kernel gives: times in
/// microseconds (`_us`) or milliseconds (`_ms`), rates in bytes per second,
/// windows and counts in segments unless named `bytes`.
///
/// Parsed by its length: a kernel older than this layout sends a shorter
/// struct, whose missing fields are zero here and `truncated` is true; a
/// newer kernel's extra fields are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct TcpInfo {
    /// Bytes the kernel sent.
    pub length: usize,
    /// Shorter than this crate's layout (248 bytes, Linux 6.7): later
    /// fields are zero.
    pub truncated: bool,
    pub state: u8,
    /// Congestion state: 0 open, 1 disorder, 2 cwr, 3 recovery, 4 loss.
    pub ca_state: u8,
    pub retransmits: u8,
    pub probes: u8,
    pub backoff: u8,
    pub options: u8,
    pub snd_wscale: u8,
    pub rcv_wscale: u8,
    pub delivery_rate_app_limited: bool,
    pub fastopen_client_fail: u8,
    pub rto_us: u32,
    pub ato_us: u32,
    pub snd_mss: u32,
    pub rcv_mss: u32,
    pub unacked: u32,
    pub sacked: u32,
    pub lost: u32,
    pub retrans: u32,
    pub fackets: u32,
    pub last_data_sent_ms: u32,
    pub last_ack_sent_ms: u32,
    pub last_data_recv_ms: u32,
    pub last_ack_recv_ms: u32,
    pub pmtu: u32,
    pub rcv_ssthresh: u32,
    pub rtt_us: u32,
    pub rttvar_us: u32,
    pub snd_ssthresh: u32,
    pub snd_cwnd: u32,
    pub advmss: u32,
    pub reordering: u32,
    pub rcv_rtt_us: u32,
    pub rcv_space: u32,
    pub total_retrans: u32,
    pub pacing_rate: u64,
    pub max_pacing_rate: u64,
    pub bytes_acked: u64,
    pub bytes_received: u64,
    pub segs_out: u32,
    pub segs_in: u32,
    pub notsent_bytes: u32,
    pub min_rtt_us: u32,
    pub data_segs_in: u32,
    pub data_segs_out: u32,
    pub delivery_rate: u64,
    pub busy_time_us: u64,
    pub rwnd_limited_us: u64,
    pub sndbuf_limited_us: u64,
    pub delivered: u32,
    pub delivered_ce: u32,
    pub bytes_sent: u64,
    pub bytes_retrans: u64,
    pub dsack_dups: u32,
    pub reord_seen: u32,
    pub rcv_ooopack: u32,
    /// The peer's advertised receive window, in bytes.
    pub snd_wnd: u32,
    /// This side's advertised receive window, in bytes (Linux 6.2).
    pub rcv_wnd: u32,
    /// PLB or timeout triggered rehash attempts (Linux 6.2).
    pub rehash: u32,
    /// Retransmission timeouts over the connection's life, SYN and SYN-ACK
    /// ones included (Linux 6.7).
    pub total_rto: u16,
    /// Recoveries from a retransmission timeout (Linux 6.7).
    pub total_rto_recoveries: u16,
    /// Time spent recovering from retransmission timeouts, ms (Linux 6.7).
    pub total_rto_time_ms: u32,
}

impl TcpInfo {
    /// The size of the layout this crate knows (linux/tcp.h of 6.7).
    pub const KNOWN_LEN: usize = 248;

    /// ssthresh as the model has it: "infinite" (≥ 0x7fffffff) is initial
    /// slow start.
    pub fn ssthresh(&self) -> Ssthresh {
        if self.snd_ssthresh >= 0x7FFF_FFFF {
            Ssthresh::InitialSlowStart
        } else {
            Ssthresh::Segments(self.snd_ssthresh)
        }
    }
}

/// `INET_DIAG_SKMEMINFO`: socket memory, in bytes (linux/sock_diag.h).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct MemInfo {
    pub rmem_alloc: u32,
    pub rcvbuf: u32,
    pub wmem_alloc: u32,
    pub sndbuf: u32,
    pub fwd_alloc: u32,
    pub wmem_queued: u32,
    pub optmem: u32,
    pub backlog: u32,
    pub drops: u32,
}

#[cfg(test)]
mod tests {
    use super::{congestion_named, tcp_info_boxed, tcp_info_boxes_kept, Diag, TcpInfo};
    use std::sync::Arc;

    fn info(rtt_us: u32) -> TcpInfo {
        TcpInfo {
            rtt_us,
            ..TcpInfo::default()
        }
    }

    #[test]
    fn a_tcp_info_let_go_of_is_filled_again_and_one_still_held_is_not() {
        let look = |rtt| Diag {
            tcp_info: Some(tcp_info_boxed(info(rtt))),
            ..Diag::default()
        };
        // A connection's look, then the next poll's: the first box is
        // held by nothing else once taken over, and is filled again.
        let mut kept = look(1);
        let first = Arc::as_ptr(kept.tcp_info.as_ref().unwrap());
        let next = look(2);
        kept.clone_from(&next);
        assert_eq!(kept, next, "clone_from gives what clone gives");
        assert!(Arc::ptr_eq(
            kept.tcp_info.as_ref().unwrap(),
            next.tcp_info.as_ref().unwrap()
        ));
        assert_eq!(tcp_info_boxes_kept(), 1);
        let again = tcp_info_boxed(info(3));
        assert_eq!(
            Arc::as_ptr(&again),
            first,
            "the box let go of is used again"
        );
        assert_eq!(again.rtt_us, 3);
        // A box something else still holds is not taken back.
        assert_eq!(tcp_info_boxes_kept(), 0);
        let held = look(4);
        let other = held.tcp_info.clone().unwrap();
        let mut taker = held;
        taker.clone_from(&look(5));
        assert_eq!(tcp_info_boxes_kept(), 0, "a box held elsewhere is not kept");
        let fresh = tcp_info_boxed(info(6));
        assert!(!Arc::ptr_eq(&fresh, &other));
        assert_eq!(
            (other.rtt_us, fresh.rtt_us),
            (4, 6),
            "the held one keeps its value"
        );
        // A thread that takes looks decoded elsewhere keeps none.
        std::thread::scope(|scope| {
            scope.spawn(|| {
                let mut taker = Diag {
                    tcp_info: Some(Arc::new(info(8))),
                    ..Diag::default()
                };
                taker.clone_from(&Diag::default());
                assert_eq!(tcp_info_boxes_kept(), 0, "kept by a thread that fills none");
            });
        });
        // The same box on both sides stays.
        let shared = look(7);
        let mut same = shared.clone();
        same.clone_from(&shared);
        assert_eq!(same.tcp_info.as_ref().unwrap().rtt_us, 7);
    }

    #[test]
    fn congestion_names_are_shared_while_the_same_and_made_anew_otherwise() {
        let cubic = congestion_named(b"cubic");
        let again = congestion_named(b"cubic");
        assert_eq!(&*again, "cubic");
        assert!(Arc::ptr_eq(&cubic, &again), "the same name is shared");
        let bbr = congestion_named(b"bbr");
        assert_eq!(&*bbr, "bbr");
        assert_eq!(&*congestion_named(b"cubic"), "cubic");
        // Not UTF-8: the kernel's bytes, as lossily as before.
        assert_eq!(&*congestion_named(b"x\xff"), "x\u{fffd}");
    }
}
