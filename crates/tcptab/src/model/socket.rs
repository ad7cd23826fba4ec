//! The socket model: one record per line of `/proc/net/tcp{,6}` (or per
//! sock_diag message), keeping every column of all three row shapes.
//!
//! Field meanings follow `docs/proc-net-tcp.md` (§2.1 and §5);
//! the doc comment of each field says which column it is and its unit.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use super::state::State;

/// Clock ticks per second of the `tm->when`, `rto` and `ato` columns
/// (`USER_HZ`, 100 on every mainstream architecture).
pub const USER_HZ: u64 = 100;

/// Address family of a socket: which of the two tables it is listed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// `AF_INET`, listed in `/proc/net/tcp`.
    Ipv4,
    /// `AF_INET6`, listed in `/proc/net/tcp6` (including IPv4-mapped sockets).
    Ipv6,
}

impl Family {
    /// `"ipv4"` or `"ipv6"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Ipv4 => "ipv4",
            Family::Ipv6 => "ipv6",
        }
    }

    /// The table file name under `<root>/net/`.
    pub fn table_name(self) -> &'static str {
        match self {
            Family::Ipv4 => "tcp",
            Family::Ipv6 => "tcp6",
        }
    }
}

display_by_name!(Family, as_str);

/// Which of the three row shapes a line has (docs/proc-net-tcp.md §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RowKind {
    /// A full socket: 17 tokens, any state.
    Full,
    /// A TIME_WAIT mini-socket: 12 tokens, timer code 3, state TIME_WAIT or
    /// (for an orphaned FIN_WAIT2 socket) FIN_WAIT2.
    TimeWait,
    /// A request socket (half-open connection, shown as SYN_RECV): 12 tokens,
    /// timer code 1, state 03.
    Request,
}

impl RowKind {
    /// `"full"`, `"time_wait"` or `"request"`.
    pub fn as_str(self) -> &'static str {
        match self {
            RowKind::Full => "full",
            RowKind::TimeWait => "time_wait",
            RowKind::Request => "request",
        }
    }
}

display_by_name!(RowKind, as_str);

/// What the `tr` column says is pending (docs/proc-net-tcp.md §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimerKind {
    /// 0: no timer reported.
    Off,
    /// 1: retransmit, RACK reordering or tail loss probe timer (for a
    /// request socket: its SYN-ACK retransmit timer).
    Retransmit,
    /// 2: the keepalive timer (also the FIN_WAIT2 timer of orphaned sockets).
    Keepalive,
    /// 3: the TIME_WAIT death timer.
    TimeWait,
    /// 4: the zero window probe timer (the peer advertises a zero window).
    ZeroWindowProbe,
    /// Any other code, kept as read.
    Other(u8),
}

impl TimerKind {
    /// Decode the `tr` column (a table lookup, see `by_code`).
    pub fn from_code(code: u8) -> TimerKind {
        const TABLE: [TimerKind; 256] = by_code!(TimerKind::decode, TimerKind::Other(0));
        TABLE[code as usize]
    }

    const fn decode(code: u8) -> TimerKind {
        match code {
            0 => TimerKind::Off,
            1 => TimerKind::Retransmit,
            2 => TimerKind::Keepalive,
            3 => TimerKind::TimeWait,
            4 => TimerKind::ZeroWindowProbe,
            other => TimerKind::Other(other),
        }
    }

    pub fn code(self) -> u8 {
        match self {
            TimerKind::Off => 0,
            TimerKind::Retransmit => 1,
            TimerKind::Keepalive => 2,
            TimerKind::TimeWait => 3,
            TimerKind::ZeroWindowProbe => 4,
            TimerKind::Other(code) => code,
        }
    }

    /// `"off"`, `"retransmit"`, `"keepalive"`, `"time_wait"`,
    /// `"zero_window_probe"`, or `None` for an unknown code.
    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            TimerKind::Off => "off",
            TimerKind::Retransmit => "retransmit",
            TimerKind::Keepalive => "keepalive",
            TimerKind::TimeWait => "time_wait",
            TimerKind::ZeroWindowProbe => "zero_window_probe",
            TimerKind::Other(_) => return None,
        })
    }
}

impl fmt::Display for TimerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "unknown({})", self.code()),
        }
    }
}

/// A time in clock ticks (`USER_HZ`, 1/100 s), as the `tm->when`, `rto` and
/// `ato` columns give it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Ticks(pub u64);

impl Ticks {
    pub fn as_duration(self) -> Duration {
        Duration::from_millis(self.as_millis())
    }

    /// Milliseconds (saturating).
    pub fn as_millis(self) -> u64 {
        self.0.saturating_mul(1000 / USER_HZ)
    }

    /// Ticks from a duration, rounded down (the kernel's conversion).
    pub fn from_millis(ms: u64) -> Ticks {
        Ticks(ms / (1000 / USER_HZ))
    }
}

/// The `tr:tm->when` token: which timer is pending and when it expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Timer {
    pub kind: TimerKind,
    /// Time to expiry. 0 when no timer is pending or the timer is due.
    /// Kernels before 3.6 could print a due timer as a huge value (a negative
    /// delta read as unsigned); it is kept as read.
    pub expires: Ticks,
}

/// How the kernel printed the socket pointer (`%pK`, docs/proc-net-tcp.md §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PointerKind {
    /// All zeros: `kptr_restrict` hid it (or the source had none, as netlink).
    Zeroed,
    /// A 16-digit value whose upper 32 bits are zero: the per-boot hash of
    /// kernels since 4.15 with `kptr_restrict = 0`.
    Hashed,
    /// Any other hex value: a raw kernel address (or, on a 32-bit kernel,
    /// possibly a hash: 8 digits cannot tell).
    Raw,
    /// A non-hex placeholder such as `(____ptrval____)`.
    Unavailable,
}

/// The pointer column, kept verbatim (up to 16 characters) so it renders back
/// exactly as read.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pointer {
    bytes: [u8; Pointer::MAX_LEN],
    len: u8,
}

impl Pointer {
    /// The longest pointer token kept: 16 hex digits, or `(____ptrval____)`.
    pub const MAX_LEN: usize = 16;

    /// The all-zero 64-bit pointer (what an unprivileged reader sees, and
    /// what is rendered for sources that have no pointer).
    pub const ZERO: Pointer = Pointer {
        bytes: [b'0'; 16],
        len: 16,
    };

    /// Keep `text` verbatim. Returns `None` when it is empty, longer than 16
    /// bytes, or holds a byte that is not printable ASCII.
    pub fn from_text(text: &[u8]) -> Option<Pointer> {
        if text.is_empty()
            || text.len() > Self::MAX_LEN
            || !text.iter().all(|b| b.is_ascii_graphic())
        {
            return None;
        }
        let mut bytes = [0u8; Self::MAX_LEN];
        bytes[..text.len()].copy_from_slice(text);
        Some(Pointer {
            bytes,
            len: text.len() as u8,
        })
    }

    /// Sixteen hex digits already checked by the caller (the parser's fast
    /// path): no second look at each byte.
    pub(crate) fn from_hex16(text: &[u8; 16]) -> Pointer {
        Pointer {
            bytes: *text,
            len: 16,
        }
    }

    /// The text as read.
    pub fn as_str(&self) -> &str {
        // Only printable ASCII is ever stored.
        std::str::from_utf8(self.as_bytes()).unwrap_or("")
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }

    /// The numeric value, when the text is hex.
    pub fn value(&self) -> Option<u64> {
        let text = self.as_bytes();
        if text.iter().all(u8::is_ascii_hexdigit) {
            u64::from_str_radix(self.as_str(), 16).ok()
        } else {
            None
        }
    }

    pub fn kind(&self) -> PointerKind {
        match self.value() {
            None => PointerKind::Unavailable,
            Some(0) => PointerKind::Zeroed,
            Some(v) if self.len == 16 && v >> 32 == 0 => PointerKind::Hashed,
            Some(_) => PointerKind::Raw,
        }
    }
}

impl Default for Pointer {
    fn default() -> Pointer {
        Pointer::ZERO
    }
}

impl fmt::Debug for Pointer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pointer({:?})", self.as_str())
    }
}

display_by_name!(Pointer, as_str);

/// The last column of a full socket line, whose meaning depends on the state
/// (docs/proc-net-tcp.md §2.1, column 21).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ssthresh {
    /// Not LISTEN, printed −1: `snd_ssthresh` is still "infinite", the socket
    /// has seen no loss and is in its initial slow start.
    InitialSlowStart,
    /// Not LISTEN: the slow start threshold, in segments.
    Segments(u32),
    /// LISTEN: the TCP Fast Open queue limit (`fastopenq.max_qlen`); 0 when
    /// Fast Open is not enabled on the listener. (Kernels before 3.7 printed
    /// −1 here.)
    FastOpenQueueLimit(i32),
}

impl Ssthresh {
    /// Decode the column for a socket in `state`.
    pub fn from_column(state: State, value: i32) -> Ssthresh {
        match (state, value) {
            (State::Listen, v) => Ssthresh::FastOpenQueueLimit(v),
            (_, -1) => Ssthresh::InitialSlowStart,
            (_, v) => Ssthresh::Segments(v as u32),
        }
    }

    /// The column as the kernel prints it (`%d`).
    pub fn to_column(self) -> i32 {
        match self {
            Ssthresh::InitialSlowStart => -1,
            Ssthresh::Segments(v) => v as i32,
            Ssthresh::FastOpenQueueLimit(v) => v,
        }
    }
}

/// Columns 17 to 21, present only on full socket lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Congestion {
    /// Current retransmission timeout including backoff (`icsk_rto`).
    pub rto: Ticks,
    /// Delayed-ACK timeout estimate (`icsk_ack.ato`).
    pub ato: Ticks,
    /// `(icsk_ack.quick << 1) | pingpong`, as printed.
    pub quick_pingpong: u32,
    /// Congestion window, in segments.
    pub cwnd: u32,
    /// The last column: ssthresh, or the Fast Open queue limit on LISTEN.
    pub ssthresh: Ssthresh,
}

impl Congestion {
    /// Quick ACKs still to send (`icsk_ack.quick`).
    pub fn quick_acks(&self) -> u32 {
        self.quick_pingpong >> 1
    }

    /// Whether the connection is in delayed-ACK "pingpong" (interactive) mode.
    pub fn pingpong(&self) -> bool {
        self.quick_pingpong & 1 == 1
    }
}

/// One TCP socket: every column of a `/proc/net/tcp{,6}` line, decoded.
///
/// Fields that only one source has are `Option`s: `congestion` is absent on
/// TIME_WAIT and request lines, which print only 12 columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Socket {
    /// `sl`: the entry number in the table it was read from (from 0; not a
    /// stable id).
    pub sl: u32,
    pub family: Family,
    pub kind: RowKind,
    pub state: State,
    /// Local address and port; the address is 0 for a wildcard bind.
    pub local: SocketAddr,
    /// Peer address and port; all zero for listeners.
    pub remote: SocketAddr,
    /// Bytes written and not yet acknowledged (sent or unsent). For LISTEN,
    /// from /proc 0 ; from netlink the listen backlog limit.
    pub tx_queue: u32,
    /// Bytes received and not yet read; for LISTEN, the accept queue length.
    pub rx_queue: u32,
    pub timer: Timer,
    /// `retrnsmt` (hex in the file): unrecovered RTO timeouts, or SYN-ACK
    /// retransmissions of a request socket.
    pub retransmits: u32,
    /// Owner uid, as mapped into the reader's user namespace. A request
    /// socket shows its listener's uid; a TIME_WAIT socket 0.
    pub uid: u32,
    /// The `timeout` column: unanswered zero-window or keepalive probes.
    pub probes: i32,
    /// Socket inode (`socket:[N]` in /proc/PID/fd), 0 when no process holds
    /// the socket. Not necessarily unique.
    pub inode: u64,
    /// `sk_refcnt` (0 for request sockets, typically 3 for TIME_WAIT).
    pub refcount: i32,
    /// The kernel object's address as printed (hashed, zeroed or raw).
    pub pointer: Pointer,
    /// Columns 17 to 21 (full sockets only).
    pub congestion: Option<Congestion>,
}

impl Socket {
    pub fn is_listening(&self) -> bool {
        self.state == State::Listen
    }

    /// The local address with an IPv4-mapped IPv6 address shown as IPv4.
    pub fn local_canonical(&self) -> SocketAddr {
        canonical(self.local)
    }

    /// The remote address with an IPv4-mapped IPv6 address shown as IPv4.
    pub fn remote_canonical(&self) -> SocketAddr {
        canonical(self.remote)
    }

    /// A socket with every column zero / empty, of the given family and kind.
    /// Useful as a starting point in tests and for other sources.
    pub fn empty(family: Family, kind: RowKind) -> Socket {
        let unspecified = match family {
            Family::Ipv4 => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            Family::Ipv6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        Socket {
            sl: 0,
            family,
            kind,
            state: match kind {
                RowKind::Full => State::Close,
                RowKind::TimeWait => State::TimeWait,
                RowKind::Request => State::SynRecv,
            },
            local: SocketAddr::new(unspecified, 0),
            remote: SocketAddr::new(unspecified, 0),
            tx_queue: 0,
            rx_queue: 0,
            timer: Timer {
                kind: match kind {
                    RowKind::Full => TimerKind::Off,
                    RowKind::TimeWait => TimerKind::TimeWait,
                    RowKind::Request => TimerKind::Retransmit,
                },
                expires: Ticks(0),
            },
            retransmits: 0,
            uid: 0,
            probes: 0,
            inode: 0,
            refcount: 0,
            pointer: Pointer::ZERO,
            congestion: None,
        }
    }
}

/// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) as its IPv4 form; any other
/// address unchanged.
pub fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), addr.port()),
            None => addr,
        },
        IpAddr::V4(_) => addr,
    }
}

/// An address's text as `Display` writes it, made on the stack: the
/// history writes two a row and the table two a line, where a `String`
/// each (and the formatter's padding machinery, for IPv4) is most of the
/// cost.
#[derive(Clone, Copy)]
pub struct IpText {
    buf: [u8; 45],
    len: u8,
}

impl IpText {
    pub fn new(ip: IpAddr) -> IpText {
        let mut text = IpText {
            buf: [0; 45],
            len: 0,
        };
        match ip {
            IpAddr::V4(ip) => {
                let mut n = 0;
                for (i, octet) in ip.octets().into_iter().enumerate() {
                    if i > 0 {
                        text.buf[n] = b'.';
                        n += 1;
                    }
                    if octet >= 100 {
                        text.buf[n] = b'0' + octet / 100;
                        n += 1;
                    }
                    if octet >= 10 {
                        text.buf[n] = b'0' + octet / 10 % 10;
                        n += 1;
                    }
                    text.buf[n] = b'0' + octet % 10;
                    n += 1;
                }
                text.len = n as u8;
            }
            IpAddr::V6(ip) => {
                use std::io::Write;
                let mut rest = &mut text.buf[..];
                // At most 45 bytes (`ffff:...:255.255.255.255`).
                let _ = write!(rest, "{ip}");
                let left = rest.len();
                text.len = (45 - left) as u8;
            }
        }
        text
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..usize::from(self.len)]).unwrap_or("?")
    }
}

impl fmt::Debug for IpText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_text_is_what_display_writes() {
        for ip in [
            "0.0.0.0",
            "255.255.255.255",
            "10.0.0.5",
            "192.168.100.9",
            "1.20.3.40",
            "::",
            "::1",
            "fe80::1",
            "2001:db8:85a3:8d3:1319:8a2e:370:7348",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "::ffff:255.255.255.255",
            "1:2:3:4:5:6:255.255.255.255",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(IpText::new(ip).as_str(), ip.to_string());
        }
    }

    #[test]
    fn ssthresh_column_meanings() {
        assert_eq!(
            Ssthresh::from_column(State::Established, -1),
            Ssthresh::InitialSlowStart
        );
        assert_eq!(
            Ssthresh::from_column(State::Established, 7),
            Ssthresh::Segments(7)
        );
        assert_eq!(
            Ssthresh::from_column(State::Listen, 5),
            Ssthresh::FastOpenQueueLimit(5)
        );
        assert_eq!(
            Ssthresh::from_column(State::Listen, -1).to_column(),
            -1,
            "a pre-3.7 listener's -1 is kept"
        );
    }

    #[test]
    fn pointer_kinds() {
        assert_eq!(Pointer::ZERO.kind(), PointerKind::Zeroed);
        let hashed = Pointer::from_text(b"000000007d1e9a4c").unwrap();
        assert_eq!(hashed.kind(), PointerKind::Hashed);
        let raw = Pointer::from_text(b"ffff8881043a2d00").unwrap();
        assert_eq!(raw.kind(), PointerKind::Raw);
        assert_eq!(raw.value(), Some(0xffff8881043a2d00));
        let early = Pointer::from_text(b"(____ptrval____)").unwrap();
        assert_eq!(early.kind(), PointerKind::Unavailable);
        assert!(Pointer::from_text(b"").is_none());
        assert!(Pointer::from_text(b"00000000000000000").is_none());
    }

    #[test]
    fn ticks_convert_at_user_hz() {
        assert_eq!(Ticks(25).as_millis(), 250);
        assert_eq!(
            Ticks(717524).as_duration(),
            Duration::from_millis(7_175_240)
        );
        assert_eq!(Ticks::from_millis(255), Ticks(25));
    }

    #[test]
    fn mapped_addresses_canonicalise() {
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:80".parse().unwrap();
        assert_eq!(canonical(mapped), "127.0.0.1:80".parse().unwrap());
        let v6: SocketAddr = "[::1]:80".parse().unwrap();
        assert_eq!(canonical(v6), v6);
    }
}
