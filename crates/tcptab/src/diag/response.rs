//! The dump's answer: `inet_diag_msg` and its attributes, to the socket
//! model plus what only netlink has ([`Diag`]).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::abi::{
    AF_INET, AF_INET6, INET_DIAG_CGROUP_ID, INET_DIAG_CONG, INET_DIAG_INFO, INET_DIAG_SHUTDOWN,
    INET_DIAG_SKMEMINFO, INET_DIAG_SKV6ONLY,
};
use super::wire::{attributes, View, WireResult};
use crate::model::{
    Congestion, Diag, DiagSocket, Family, MemInfo, Pointer, RowKind, Socket, Ssthresh, State,
    TcpInfo, Ticks, Timer, TimerKind,
};

pub use super::abi::INET_DIAG_MSG_LEN;

impl TcpInfo {
    pub(crate) fn parse(v: View<'_>) -> TcpInfo {
        let len = v.len();
        let u8_ = |at: usize| v.u8(at, "tcp_info").unwrap_or(0);
        let u32_ = |at: usize| v.u32(at, "tcp_info").unwrap_or(0);
        let u64_ = |at: usize| v.u64(at, "tcp_info").unwrap_or(0);
        TcpInfo {
            length: len,
            truncated: len < TcpInfo::KNOWN_LEN,
            state: u8_(0),
            ca_state: u8_(1),
            retransmits: u8_(2),
            probes: u8_(3),
            backoff: u8_(4),
            options: u8_(5),
            snd_wscale: u8_(6) & 0x0F,
            rcv_wscale: u8_(6) >> 4,
            delivery_rate_app_limited: u8_(7) & 1 == 1,
            fastopen_client_fail: (u8_(7) >> 1) & 3,
            rto_us: u32_(8),
            ato_us: u32_(12),
            snd_mss: u32_(16),
            rcv_mss: u32_(20),
            unacked: u32_(24),
            sacked: u32_(28),
            lost: u32_(32),
            retrans: u32_(36),
            fackets: u32_(40),
            last_data_sent_ms: u32_(44),
            last_ack_sent_ms: u32_(48),
            last_data_recv_ms: u32_(52),
            last_ack_recv_ms: u32_(56),
            pmtu: u32_(60),
            rcv_ssthresh: u32_(64),
            rtt_us: u32_(68),
            rttvar_us: u32_(72),
            snd_ssthresh: u32_(76),
            snd_cwnd: u32_(80),
            advmss: u32_(84),
            reordering: u32_(88),
            rcv_rtt_us: u32_(92),
            rcv_space: u32_(96),
            total_retrans: u32_(100),
            pacing_rate: u64_(104),
            max_pacing_rate: u64_(112),
            bytes_acked: u64_(120),
            bytes_received: u64_(128),
            segs_out: u32_(136),
            segs_in: u32_(140),
            notsent_bytes: u32_(144),
            min_rtt_us: u32_(148),
            data_segs_in: u32_(152),
            data_segs_out: u32_(156),
            delivery_rate: u64_(160),
            busy_time_us: u64_(168),
            rwnd_limited_us: u64_(176),
            sndbuf_limited_us: u64_(184),
            delivered: u32_(192),
            delivered_ce: u32_(196),
            bytes_sent: u64_(200),
            bytes_retrans: u64_(208),
            dsack_dups: u32_(216),
            reord_seen: u32_(220),
            rcv_ooopack: u32_(224),
            snd_wnd: u32_(228),
            rcv_wnd: u32_(232),
            rehash: u32_(236),
            total_rto: v.u16(240, "tcp_info").unwrap_or(0),
            total_rto_recoveries: v.u16(242, "tcp_info").unwrap_or(0),
            total_rto_time_ms: u32_(244),
        }
    }
}

impl MemInfo {
    fn parse(v: View<'_>) -> MemInfo {
        let at = |i: usize| v.u32(i * 4, "sk_meminfo").unwrap_or(0);
        MemInfo {
            rmem_alloc: at(0),
            rcvbuf: at(1),
            wmem_alloc: at(2),
            sndbuf: at(3),
            fwd_alloc: at(4),
            wmem_queued: at(5),
            optmem: at(6),
            backlog: at(7),
            drops: at(8),
        }
    }
}

/// Decode one `SOCK_DIAG_BY_FAMILY` message payload (crate-private but for
/// the `internals` feature, like the wire views it takes).
#[cfg(feature = "internals")]
#[doc(hidden)]
pub fn parse_message(payload: View<'_>, sl: u32) -> WireResult<DiagSocket> {
    decode(payload, sl)
}

#[cfg(not(feature = "internals"))]
pub(crate) fn parse_message(payload: View<'_>, sl: u32) -> WireResult<DiagSocket> {
    decode(payload, sl)
}

fn decode(payload: View<'_>, sl: u32) -> WireResult<DiagSocket> {
    let msg = payload.slice(0, INET_DIAG_MSG_LEN, "inet_diag_msg")?;
    let family = match msg.u8(0, "inet_diag_msg.idiag_family")? {
        AF_INET => Family::Ipv4,
        AF_INET6 => Family::Ipv6,
        other => {
            return Err(msg.malformed(
                0,
                "inet_diag_msg.idiag_family",
                format!("{other} is not AF_INET or AF_INET6"),
            ))
        }
    };
    let state = State::from_code(msg.u8(1, "inet_diag_msg.idiag_state")?);
    let timer_code = msg.u8(2, "inet_diag_msg.idiag_timer")?;
    let retrans = msg.u8(3, "inet_diag_msg.idiag_retrans")?;
    let sport = msg.u16_be(4, "inet_diag_sockid.idiag_sport")?;
    let dport = msg.u16_be(6, "inet_diag_sockid.idiag_dport")?;
    let src = msg.bytes16(8, "inet_diag_sockid.idiag_src")?;
    let dst = msg.bytes16(24, "inet_diag_sockid.idiag_dst")?;
    let interface = msg.u32(40, "inet_diag_sockid.idiag_if")?;
    let cookie = msg.u32(44, "idiag_cookie")? as u64 | (msg.u32(48, "idiag_cookie")? as u64) << 32;
    let expires_ms = msg.u32(52, "inet_diag_msg.idiag_expires")?;
    let rqueue = msg.u32(56, "inet_diag_msg.idiag_rqueue")?;
    let wqueue = msg.u32(60, "inet_diag_msg.idiag_wqueue")?;
    let uid = msg.u32(64, "inet_diag_msg.idiag_uid")?;
    let inode = msg.u32(68, "inet_diag_msg.idiag_inode")? as u64;

    let ip = |bytes: [u8; 16]| match family {
        Family::Ipv4 => IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3])),
        Family::Ipv6 => IpAddr::V6(Ipv6Addr::from(bytes)),
    };
    let timer = TimerKind::from_code(timer_code);
    let kind = match (state, timer) {
        (State::TimeWait, _) | (_, TimerKind::TimeWait) => RowKind::TimeWait,
        (State::SynRecv | State::NewSynRecv, TimerKind::Retransmit) if inode == 0 => {
            RowKind::Request
        }
        _ => RowKind::Full,
    };
    let state = if state == State::NewSynRecv {
        State::SynRecv
    } else {
        state
    };

    let mut diag = Diag {
        cookie,
        backlog_limit: (state == State::Listen).then_some(wqueue),
        interface,
        timer_ms: expires_ms,
        tcp_info: None,
        congestion_algorithm: None,
        memory: None,
        shutdown: None,
        v6only: None,
        cgroup_id: 0,
    };
    for attr in attributes(payload.tail(INET_DIAG_MSG_LEN)) {
        let attr = attr?;
        match attr.kind {
            INET_DIAG_INFO => {
                diag.tcp_info = Some(crate::model::tcp_info_boxed(TcpInfo::parse(attr.data)))
            }
            INET_DIAG_CONG => {
                let text = attr.data.bytes();
                let end = text.iter().position(|&b| b == 0).unwrap_or(text.len());
                diag.congestion_algorithm = Some(crate::model::congestion_named(&text[..end]));
            }
            INET_DIAG_SKMEMINFO => diag.memory = Some(Box::new(MemInfo::parse(attr.data))),
            INET_DIAG_SHUTDOWN => diag.shutdown = Some(attr.data.u8(0, "INET_DIAG_SHUTDOWN")?),
            INET_DIAG_SKV6ONLY => diag.v6only = Some(attr.data.u8(0, "INET_DIAG_SKV6ONLY")? != 0),
            INET_DIAG_CGROUP_ID => diag.cgroup_id = attr.data.u64(0, "INET_DIAG_CGROUP_ID")?,
            _ => {}
        }
    }
    let congestion = match (&diag.tcp_info, kind) {
        (Some(info), RowKind::Full) => Some(Congestion {
            rto: Ticks(info.rto_us as u64 / 10_000),
            ato: Ticks(info.ato_us as u64 / 10_000),
            // Not in tcp_info: icsk_ack.quick and pingpong.
            quick_pingpong: 0,
            cwnd: info.snd_cwnd,
            ssthresh: if state == State::Listen {
                // The Fast Open queue limit is not in tcp_info.
                Ssthresh::FastOpenQueueLimit(0)
            } else {
                info.ssthresh()
            },
        }),
        _ => None,
    };
    let socket = Socket {
        sl,
        family,
        kind,
        state,
        local: SocketAddr::new(ip(src), sport),
        remote: SocketAddr::new(ip(dst), dport),
        // LISTEN: the queue limit is in `Diag::backlog_limit`; the model
        // keeps the text table's meaning (write_seq - snd_una, 0).
        tx_queue: if state == State::Listen { 0 } else { wqueue },
        rx_queue: rqueue,
        timer: Timer {
            kind: timer,
            expires: Ticks(expires_ms as u64 / 10),
        },
        retransmits: retrans as u32,
        uid,
        probes: diag.tcp_info.as_ref().map_or(0, |i| i.probes as i32),
        inode,
        // Not reported by sock_diag.
        refcount: 0,
        pointer: Pointer::ZERO,
        congestion,
    };
    Ok(DiagSocket { socket, diag })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_stay_small() {
        // A dump of 100k sockets is held in memory: keep each record lean
        // (tcp_info and memory are boxed, present only when asked for).
        assert!(
            std::mem::size_of::<DiagSocket>() <= 256,
            "{}",
            std::mem::size_of::<DiagSocket>()
        );
    }
}
