//! Every field of one `/proc/net/tcp{,6}` line, labelled and decoded: the
//! raw text, the field's name, its value in units a person reads, and what
//! it means for this row shape and state (docs/proc-net-tcp.md §2 to §5).

use crate::error::LineError;
use crate::model::{PointerKind, RowKind, Socket, Ssthresh, State, TimerKind};
use crate::procnet::{parse_line, ByteOrder};

/// One field of a line.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Part {
    /// The text as it stands in the line.
    pub raw: String,
    /// The field's name (the kernel header's where it has one).
    pub field: &'static str,
    /// The decoded value.
    pub value: String,
    /// What it means.
    pub meaning: String,
}

/// A line explained.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Explained {
    pub kind: &'static str,
    pub family: &'static str,
    pub parts: Vec<Part>,
    #[cfg_attr(feature = "serde", serde(skip))]
    pub socket: Socket,
}

/// Explain `line`, or say which field is wrong.
pub fn explain_line(line: &str, order: ByteOrder) -> Result<Explained, LineError> {
    let socket = parse_line(line.as_bytes(), order)?;
    let tokens: Vec<&str> = line.split(' ').filter(|t| !t.is_empty()).collect();
    let raw = |i: usize| tokens.get(i).copied().unwrap_or("");
    let split = |i: usize| raw(i).split_once(':').unwrap_or((raw(i), ""));
    let s = &socket;
    let order_name = match order {
        ByteOrder::Little => "little-endian",
        ByteOrder::Big => "big-endian",
    };
    let mut parts = Vec::with_capacity(21);
    let mut add = |raw: &str, field: &'static str, value: String, meaning: String| {
        parts.push(Part {
            raw: raw.to_string(),
            field,
            value,
            meaning,
        })
    };

    add(
        raw(0),
        "sl",
        s.sl.to_string(),
        "entry number in this read of the table, from 0 (not a stable id)".into(),
    );
    let (local_addr, local_port) = split(1);
    add(
        local_addr,
        "local_address",
        s.local.ip().to_string(),
        format!(
            "local address, the address bytes read as {} words{}",
            order_name,
            if s.local.ip().is_unspecified() {
                "; all zero: bound to every address"
            } else {
                ""
            }
        ),
    );
    add(
        local_port,
        "local_port",
        s.local.port().to_string(),
        "local port, in hex".into(),
    );
    let (remote_addr, remote_port) = split(2);
    add(
        remote_addr,
        "rem_address",
        s.remote.ip().to_string(),
        if s.state == State::Listen {
            "peer address: none for a listener (all zero)".into()
        } else {
            "peer address".into()
        },
    );
    add(
        remote_port,
        "rem_port",
        s.remote.port().to_string(),
        "peer port, in hex".into(),
    );
    add(raw(3), "st", s.state.to_string(), state_meaning(s));
    let (tx, rx) = split(4);
    add(
        tx,
        "tx_queue",
        format!("{} bytes", s.tx_queue),
        match (s.kind, s.state) {
            (RowKind::Full, State::Listen) => "write_seq - snd_una, normally 0 for a listener: not the backlog limit (which the text table does not show)".into(),
            (RowKind::Full, State::SynSent) => "bytes not yet acknowledged: 1 is the SYN itself".into(),
            (RowKind::Full, _) => "bytes written by the application and not yet acknowledged by the peer (in flight or unsent)".into(),
            _ => "always 0 for this row kind".into(),
        },
    );
    add(
        rx,
        "rx_queue",
        if s.state == State::Listen && s.kind == RowKind::Full {
            format!("{} connections", s.rx_queue)
        } else {
            format!("{} bytes", s.rx_queue)
        },
        match (s.kind, s.state) {
            (RowKind::Full, State::Listen) => {
                "the accept queue: handshakes completed and waiting for accept()".into()
            }
            (RowKind::Full, _) => {
                "bytes received in order and not yet read by the application".into()
            }
            _ => "always 0 for this row kind".into(),
        },
    );
    let (tr, when) = split(5);
    add(tr, "tr", s.timer.kind.to_string(), timer_meaning(s));
    let ms = s.timer.expires.as_millis();
    add(
        when,
        "tm->when",
        format!("{} ticks = {} ms", s.timer.expires.0, ms),
        match s.timer.kind {
            TimerKind::Off => "no timer pending (printed 0)".into(),
            _ if s.timer.expires.0 == 0 => {
                "the timer is due and has not run yet (clamped to 0)".into()
            }
            kind => format!(
                "{} timer pending, expires in {} ticks = {} ms (ticks are 1/100 s)",
                kind, s.timer.expires.0, ms
            ),
        },
    );
    add(
        raw(6),
        "retrnsmt",
        s.retransmits.to_string(),
        match s.kind {
            RowKind::Request => "SYN-ACK retransmissions so far (the column is hex)".into(),
            RowKind::TimeWait => "always 0 for a TIME_WAIT socket".into(),
            RowKind::Full if s.state == State::SynSent => {
                "SYN retransmissions so far (the column is hex)".into()
            }
            RowKind::Full => {
                "retransmission timeouts in a row not yet recovered from (the column is hex)".into()
            }
        },
    );
    add(
        raw(7),
        "uid",
        s.uid.to_string(),
        match s.kind {
            RowKind::Request => "the listener's owner uid".into(),
            RowKind::TimeWait => "always 0 for a TIME_WAIT socket".into(),
            RowKind::Full => "owner uid, as seen from the reader's user namespace".into(),
        },
    );
    add(
        raw(8),
        "timeout",
        s.probes.to_string(),
        "unanswered zero-window or keepalive probes (despite the header's name)".into(),
    );
    add(
        raw(9),
        "inode",
        s.inode.to_string(),
        if s.inode == 0 {
            match s.kind {
                RowKind::Full => "0: no process holds this socket (closed by its application, or not yet accepted)".into(),
                _ => "always 0: no process holds a TIME_WAIT or request socket".into(),
            }
        } else {
            format!(
                "socket inode: socket:[{}] in /proc/PID/fd of its owners",
                s.inode
            )
        },
    );
    add(
        raw(10),
        "ref",
        s.refcount.to_string(),
        match s.kind {
            RowKind::TimeWait => "reference count of the TIME_WAIT socket (typically 3)".into(),
            RowKind::Request => "0 for request sockets (kernels since 4.4)".into(),
            RowKind::Full => "reference count of the kernel socket".into(),
        },
    );
    add(
        raw(11),
        "pointer",
        s.pointer.to_string(),
        match s.pointer.kind() {
            PointerKind::Zeroed => "kernel address hidden (kernel.kptr_restrict): all zeros".into(),
            PointerKind::Hashed => {
                "kernel address, hashed (kptr_restrict = 0, kernels since 4.15)".into()
            }
            PointerKind::Raw => "raw kernel address of the socket".into(),
            PointerKind::Unavailable => {
                "not available yet (printed before the hashing key existed)".into()
            }
        },
    );
    if let Some(c) = &s.congestion {
        add(
            raw(12),
            "rto",
            format!("{} ticks = {} ms", c.rto.0, c.rto.as_millis()),
            "retransmission timeout, including exponential backoff".into(),
        );
        add(
            raw(13),
            "ato",
            format!("{} ticks = {} ms", c.ato.0, c.ato.as_millis()),
            "delayed-ACK timeout estimate (0 before any data was received)".into(),
        );
        add(
            raw(14),
            "quick/pingpong",
            format!("quick={}, pingpong={}", c.quick_acks(), c.pingpong() as u8),
            "(quick << 1) | pingpong: quick ACKs still to send; pingpong 1 means interactive, delayed-ACK mode".into(),
        );
        add(
            raw(15),
            "cwnd",
            format!("{} segments", c.cwnd),
            "congestion window".into(),
        );
        let (value, meaning) = match c.ssthresh {
            Ssthresh::FastOpenQueueLimit(0) => (
                "0".to_string(),
                "LISTEN: the TCP Fast Open queue limit; 0: Fast Open is off".to_string(),
            ),
            Ssthresh::FastOpenQueueLimit(n) => (
                n.to_string(),
                "LISTEN: the TCP Fast Open queue limit".to_string(),
            ),
            Ssthresh::InitialSlowStart => (
                "-1".to_string(),
                "ssthresh -1: still in initial slow start (no loss seen yet)".to_string(),
            ),
            Ssthresh::Segments(n) => (format!("{n} segments"), "slow start threshold".to_string()),
        };
        add(raw(16), "ssthresh", value, meaning);
    }
    Ok(Explained {
        kind: s.kind.as_str(),
        family: s.family.as_str(),
        parts,
        socket,
    })
}

fn state_meaning(s: &Socket) -> String {
    let what = match s.state {
        State::Established => "connection open",
        State::SynSent => "connecting: SYN sent, waiting for the SYN-ACK",
        State::SynRecv if s.kind == RowKind::Request => {
            "half-open: a SYN arrived for a listener, SYN-ACK sent, waiting for the final ACK (a request socket)"
        }
        State::SynRecv => "SYN received (a full socket, e.g. a TCP Fast Open child)",
        State::FinWait1 => "this side closed; its FIN is not yet acknowledged",
        State::FinWait2 if s.kind == RowKind::TimeWait => {
            "this side closed and its FIN was acknowledged; the application is gone, so a TIME_WAIT mini-socket waits for the peer's FIN"
        }
        State::FinWait2 => "this side closed and its FIN was acknowledged; waiting for the peer's FIN",
        State::TimeWait => "closed; waiting out late segments before the address pair can be reused",
        State::Close => "closed",
        State::CloseWait => "the peer closed; waiting for this application to close its side",
        State::LastAck => "both closed; waiting for the ACK of this side's FIN",
        State::Listen => "waiting for connections",
        State::Closing => "both sides closed at once; waiting for the ACK of this side's FIN",
        _ => "a state code this tool does not know",
    };
    format!("{} ({:#04x}): {what}", s.state, s.state.code())
}

fn timer_meaning(s: &Socket) -> String {
    match (s.timer.kind, s.kind) {
        (TimerKind::Off, _) => "0: no timer pending".into(),
        (TimerKind::Retransmit, RowKind::Request) => "1: the SYN-ACK retransmit timer".into(),
        (TimerKind::Retransmit, _) => {
            "1: retransmit timer (or RACK reordering / tail loss probe)".into()
        }
        (TimerKind::Keepalive, _) => {
            "2: keepalive timer (or the FIN_WAIT2 timer of a closed socket)".into()
        }
        (TimerKind::TimeWait, _) => "3: the TIME_WAIT timer".into(),
        (TimerKind::ZeroWindowProbe, _) => {
            "4: zero window probe timer: the peer advertises no room to receive".into()
        }
        (TimerKind::Other(code), _) => format!("{code}: a timer code this tool does not know"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retransmit_timer_reads_as_the_issue_says() {
        let line = "   8: 0500000A:C738 6300000A:0016 02 00000001:00000000 01:00000019 00000000  1000        0 99001 2 0000000000000000 100 0 0 10 -1";
        let e = explain_line(line, ByteOrder::Little).unwrap();
        let when = e.parts.iter().find(|p| p.field == "tm->when").unwrap();
        assert_eq!(when.raw, "00000019");
        assert_eq!(
            when.meaning,
            "retransmit timer pending, expires in 25 ticks = 250 ms (ticks are 1/100 s)"
        );
        let last = e.parts.iter().find(|p| p.field == "ssthresh").unwrap();
        assert!(last.meaning.contains("initial slow start"));
        assert_eq!(e.parts.len(), 21);
    }

    #[test]
    fn listen_last_column_is_fast_open() {
        let line = "   1: 3500007F:0035 00000000:0000 0A 00000000:00000000 00:00000000 00000000   101        0 19876 1 0000000000000000 100 0 0 10 5";
        let e = explain_line(line, ByteOrder::Little).unwrap();
        let last = e.parts.last().unwrap();
        assert_eq!(last.value, "5");
        assert!(last.meaning.contains("Fast Open queue limit"));
    }
}
