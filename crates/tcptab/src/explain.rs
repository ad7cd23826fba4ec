//! Every field of one `/proc/net/tcp{,6}` line, labelled and decoded: the
//! raw text, the field's name, its value in units a person reads, and what
//! it means for this row shape and state (docs/proc-net-tcp.md §2 to §5).

use crate::error::LineError;
use crate::model::{Congestion, PointerKind, RowKind, Socket, Ssthresh, State, TimerKind};
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
#[non_exhaustive]
pub struct Explained {
    pub kind: &'static str,
    pub family: &'static str,
    pub parts: Vec<Part>,
    #[cfg_attr(feature = "serde", serde(skip))]
    pub socket: Socket,
}

/// Where a field's text stands in the line: a whole token, or one side of
/// an `a:b` token (address:port, tx:rx, tr:when).
#[derive(Clone, Copy)]
enum At {
    Token(usize),
    Before(usize),
    After(usize),
}

impl At {
    fn raw<'l>(self, tokens: &[&'l str]) -> &'l str {
        let token = |i: usize| tokens.get(i).copied().unwrap_or("");
        let split = |i: usize| token(i).split_once(':').unwrap_or((token(i), ""));
        match self {
            At::Token(i) => token(i),
            At::Before(i) => split(i).0,
            At::After(i) => split(i).1,
        }
    }
}

/// A field's value and what it means, for one socket read in one byte
/// order.
type Decode = fn(&Socket, ByteOrder) -> (String, String);

/// The columns every row has, in order: name, place, decoding.
const FIELDS: [(&str, At, Decode); 16] = [
    ("sl", At::Token(0), sl),
    ("local_address", At::Before(1), local_address),
    ("local_port", At::After(1), |s, _| {
        (s.local.port().to_string(), "local port, in hex".into())
    }),
    ("rem_address", At::Before(2), rem_address),
    ("rem_port", At::After(2), |s, _| {
        (s.remote.port().to_string(), "peer port, in hex".into())
    }),
    ("st", At::Token(3), |s, _| {
        (s.state.to_string(), state_meaning(s))
    }),
    ("tx_queue", At::Before(4), tx_queue),
    ("rx_queue", At::After(4), rx_queue),
    ("tr", At::Before(5), |s, _| {
        (s.timer.kind.to_string(), timer_meaning(s))
    }),
    ("tm->when", At::After(5), when),
    ("retrnsmt", At::Token(6), retrnsmt),
    ("uid", At::Token(7), uid),
    ("timeout", At::Token(8), |s, _| {
        let meaning = "unanswered zero-window or keepalive probes (despite the header's name)";
        (s.probes.to_string(), meaning.into())
    }),
    ("inode", At::Token(9), inode),
    ("ref", At::Token(10), refcount),
    ("pointer", At::Token(11), pointer),
];

/// The five columns only a full socket has (its congestion state).
type DecodeCongestion = fn(&Congestion) -> (String, String);

const CONGESTION: [(&str, At, DecodeCongestion); 5] = [
    ("rto", At::Token(12), |c| {
        let value = format!("{} ticks = {} ms", c.rto.0, c.rto.as_millis());
        (
            value,
            "retransmission timeout, including exponential backoff".into(),
        )
    }),
    ("ato", At::Token(13), |c| {
        let value = format!("{} ticks = {} ms", c.ato.0, c.ato.as_millis());
        (
            value,
            "delayed-ACK timeout estimate (0 before any data was received)".into(),
        )
    }),
    ("quick/pingpong", At::Token(14), |c| {
        let value = format!("quick={}, pingpong={}", c.quick_acks(), c.pingpong() as u8);
        (value, "(quick << 1) | pingpong: quick ACKs still to send; pingpong 1 means interactive, delayed-ACK mode".into())
    }),
    ("cwnd", At::Token(15), |c| {
        (format!("{} segments", c.cwnd), "congestion window".into())
    }),
    ("ssthresh", At::Token(16), ssthresh),
];

/// Explain `line`, or say which field is wrong.
pub fn explain_line(line: &str, order: ByteOrder) -> Result<Explained, LineError> {
    let socket = parse_line(line.as_bytes(), order)?;
    let tokens: Vec<&str> = line.split(' ').filter(|t| !t.is_empty()).collect();
    let part = |field: &'static str, at: At, (value, meaning): (String, String)| Part {
        raw: at.raw(&tokens).to_string(),
        field,
        value,
        meaning,
    };
    let mut parts: Vec<Part> = FIELDS
        .iter()
        .map(|&(field, at, decode)| part(field, at, decode(&socket, order)))
        .collect();
    if let Some(c) = &socket.congestion {
        parts.extend(
            CONGESTION
                .iter()
                .map(|&(field, at, decode)| part(field, at, decode(c))),
        );
    }
    Ok(Explained {
        kind: socket.kind.as_str(),
        family: socket.family.as_str(),
        parts,
        socket,
    })
}

fn sl(s: &Socket, _: ByteOrder) -> (String, String) {
    let meaning = "entry number in this read of the table, from 0 (not a stable id)";
    (s.sl.to_string(), meaning.into())
}

fn local_address(s: &Socket, order: ByteOrder) -> (String, String) {
    let order_name = match order {
        ByteOrder::Little => "little-endian",
        ByteOrder::Big => "big-endian",
    };
    let every = if s.local.ip().is_unspecified() {
        "; all zero: bound to every address"
    } else {
        ""
    };
    let meaning = format!("local address, the address bytes read as {order_name} words{every}");
    (s.local.ip().to_string(), meaning)
}

fn rem_address(s: &Socket, _: ByteOrder) -> (String, String) {
    let meaning = if s.state == State::Listen {
        "peer address: none for a listener (all zero)"
    } else {
        "peer address"
    };
    (s.remote.ip().to_string(), meaning.into())
}

fn tx_queue(s: &Socket, _: ByteOrder) -> (String, String) {
    let meaning = match (s.kind, s.state) {
        (RowKind::Full, State::Listen) => "write_seq - snd_una, normally 0 for a listener: not the backlog limit (which the text table does not show)",
        (RowKind::Full, State::SynSent) => "bytes not yet acknowledged: 1 is the SYN itself",
        (RowKind::Full, _) => "bytes written by the application and not yet acknowledged by the peer (in flight or unsent)",
        _ => "always 0 for this row kind",
    };
    (crate::counted(s.tx_queue, "byte"), meaning.into())
}

fn rx_queue(s: &Socket, _: ByteOrder) -> (String, String) {
    match (s.kind, s.state) {
        (RowKind::Full, State::Listen) => (
            crate::counted(s.rx_queue, "connection"),
            "the accept queue: handshakes completed and waiting for accept()".into(),
        ),
        (RowKind::Full, _) => (
            crate::counted(s.rx_queue, "byte"),
            "bytes received in order and not yet read by the application".into(),
        ),
        _ => (
            crate::counted(s.rx_queue, "byte"),
            "always 0 for this row kind".into(),
        ),
    }
}

fn when(s: &Socket, _: ByteOrder) -> (String, String) {
    let (ticks, ms) = (s.timer.expires.0, s.timer.expires.as_millis());
    let meaning = match s.timer.kind {
        TimerKind::Off => "no timer pending (printed 0)".into(),
        _ if ticks == 0 => "the timer is due and has not run yet (clamped to 0)".into(),
        kind => {
            format!("{kind} timer pending, expires in {ticks} ticks = {ms} ms (ticks are 1/100 s)")
        }
    };
    (format!("{ticks} ticks = {ms} ms"), meaning)
}

fn retrnsmt(s: &Socket, _: ByteOrder) -> (String, String) {
    let meaning = match s.kind {
        RowKind::Request => "SYN-ACK retransmissions so far (the column is hex)",
        RowKind::TimeWait => "always 0 for a TIME_WAIT socket",
        RowKind::Full if s.state == State::SynSent => {
            "SYN retransmissions so far (the column is hex)"
        }
        RowKind::Full => {
            "retransmission timeouts in a row not yet recovered from (the column is hex)"
        }
    };
    (s.retransmits.to_string(), meaning.into())
}

fn uid(s: &Socket, _: ByteOrder) -> (String, String) {
    let meaning = match s.kind {
        RowKind::Request => "the listener's owner uid",
        RowKind::TimeWait => "always 0 for a TIME_WAIT socket",
        RowKind::Full => "owner uid, as seen from the reader's user namespace",
    };
    (s.uid.to_string(), meaning.into())
}

fn inode(s: &Socket, _: ByteOrder) -> (String, String) {
    let meaning = match (s.inode, s.kind) {
        (0, RowKind::Full) => {
            "0: no process holds this socket (closed by its application, or not yet accepted)"
                .into()
        }
        (0, _) => "always 0: no process holds a TIME_WAIT or request socket".into(),
        (inode, _) => format!("socket inode: socket:[{inode}] in /proc/PID/fd of its owners"),
    };
    (s.inode.to_string(), meaning)
}

fn refcount(s: &Socket, _: ByteOrder) -> (String, String) {
    let meaning = match s.kind {
        RowKind::TimeWait => "reference count of the TIME_WAIT socket (typically 3)",
        RowKind::Request => "0 for request sockets (kernels since 4.4)",
        RowKind::Full => "reference count of the kernel socket",
    };
    (s.refcount.to_string(), meaning.into())
}

fn pointer(s: &Socket, _: ByteOrder) -> (String, String) {
    let meaning = match s.pointer.kind() {
        PointerKind::Zeroed => "kernel address hidden (kernel.kptr_restrict): all zeros",
        PointerKind::Hashed => "kernel address, hashed (kptr_restrict = 0, kernels since 4.15)",
        PointerKind::Raw => "raw kernel address of the socket",
        PointerKind::Unavailable => "not available yet (printed before the hashing key existed)",
    };
    (s.pointer.to_string(), meaning.into())
}

fn ssthresh(c: &Congestion) -> (String, String) {
    match c.ssthresh {
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
    }
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
