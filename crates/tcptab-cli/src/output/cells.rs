//! The cells of the table that are more than a value: endpoints as `ss`
//! writes them, owners, timers, and the `-e`, `-i` and `-m` details.

use std::net::SocketAddr;

use tcptab::{Diag, MemInfo};
use tcptab::{Ownership, Socket, Ssthresh, TimerKind};

use super::services::Services;

/// `address:port` as `ss` writes it: IPv6 in brackets, the IPv4 wildcard
/// as `0.0.0.0` and the IPv6 one as `[::]`, port 0 as `*`, the port as a
/// service name when one is given. ([`DualStack`] writes the wildcard of an
/// IPv6 socket that also takes IPv4 as `*`.)
pub struct Endpoint<'a>(pub SocketAddr, pub Option<&'a Services>);

impl std::fmt::Display for Endpoint<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write_endpoint(f, self.0, self.1, false, None)
    }
}

/// [`Endpoint`] for a socket whose IPv6 wildcard takes IPv4 too (netlink's
/// v6only is false): written `*`, as ss writes a dual-stack listener.
pub struct DualStack<'a>(pub SocketAddr, pub Option<&'a Services>, pub bool);

impl std::fmt::Display for DualStack<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write_endpoint(f, self.0, self.1, self.2, None)
    }
}

/// [`DualStack`] with the interface the socket is bound to, as ss writes
/// it: `10.99.0.1%tt0:5432`.
pub(super) struct Bound<'a>(pub(super) DualStack<'a>, pub(super) Option<&'a str>);

impl std::fmt::Display for Bound<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let DualStack(addr, services, dual) = self.0;
        write_endpoint(f, addr, services, dual, self.1)
    }
}

pub(super) fn write_endpoint(
    f: &mut std::fmt::Formatter<'_>,
    addr: SocketAddr,
    services: Option<&Services>,
    dual_stack: bool,
    interface: Option<&str>,
) -> std::fmt::Result {
    match addr.ip() {
        ip if ip.is_unspecified() && (dual_stack && ip.is_ipv6()) => f.write_str("*")?,
        std::net::IpAddr::V6(ip) => write!(f, "[{ip}]")?,
        std::net::IpAddr::V4(ip) => f.write_str(ipv4(ip, &mut [0; 15]))?,
    }
    if let Some(name) = interface {
        write!(f, "%{name}")?;
    }
    let port = addr.port();
    match services.and_then(|s| s.name(port)) {
        _ if port == 0 => f.write_str(":*"),
        Some(name) => write!(f, ":{name}"),
        None => {
            f.write_str(":")?;
            f.write_str(itoa::Buffer::new().format(port))
        }
    }
}

/// An IPv4 address in dotted decimal, written into `buf` (the table writes
/// two a row: this skips the formatter's padding machinery).
fn ipv4(ip: std::net::Ipv4Addr, buf: &mut [u8; 15]) -> &str {
    let mut n = 0;
    for (i, octet) in ip.octets().into_iter().enumerate() {
        if i > 0 {
            buf[n] = b'.';
            n += 1;
        }
        if octet >= 100 {
            buf[n] = b'0' + octet / 100;
            n += 1;
        }
        if octet >= 10 {
            buf[n] = b'0' + octet / 10 % 10;
            n += 1;
        }
        buf[n] = b'0' + octet % 10;
        n += 1;
    }
    std::str::from_utf8(&buf[..n]).unwrap_or("?")
}

/// The owners cell: `nginx(pid=12,fd=3),nginx(pid=13,fd=3)`; `-` when no
/// process can hold the socket, `?` when its owner could not be seen.
pub struct OwnersCell<'a>(pub Ownership<'a>);

impl std::fmt::Display for OwnersCell<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Ownership::Owned(owners) => {
                for (i, o) in owners.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    // Written piece by piece: Display of a str pads.
                    let mut number = itoa::Buffer::new();
                    f.write_str(&o.command)?;
                    f.write_str("(pid=")?;
                    f.write_str(number.format(o.pid))?;
                    f.write_str(",fd=")?;
                    f.write_str(number.format(o.fd))?;
                    f.write_str(")")?;
                }
                Ok(())
            }
            Ownership::NoProcess => f.write_str("-"),
            Ownership::Unknown => f.write_str("?"),
            Ownership::NotFound => f.write_str("(none)"),
        }
    }
}

/// `-o`: `keepalive,7175240ms,0` (timer, time left, retransmits).
pub(super) struct TimerCell<'a>(pub(super) &'a Socket);

impl std::fmt::Display for TimerCell<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.0;
        match s.timer.kind {
            TimerKind::Off => write!(f, "off,{}", s.retransmits),
            kind => write!(
                f,
                "{kind},{}ms,{}",
                s.timer.expires.as_millis(),
                s.retransmits
            ),
        }
    }
}

/// `-e`: `uid:1000 ino:98765 ref:2 rto:230ms ato:40ms cwnd:10 ssthresh:7 probes:0`.
pub(super) struct ExtendedCell<'a>(pub(super) &'a Socket);

impl std::fmt::Display for ExtendedCell<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.0;
        write!(f, "uid:{} ino:{} ref:{}", s.uid, s.inode, s.refcount)?;
        if let Some(c) = &s.congestion {
            write!(
                f,
                " rto:{}ms ato:{}ms cwnd:{}",
                c.rto.as_millis(),
                c.ato.as_millis(),
                c.cwnd
            )?;
            match c.ssthresh {
                Ssthresh::InitialSlowStart => f.write_str(" ssthresh:-")?,
                Ssthresh::Segments(n) => write!(f, " ssthresh:{n}")?,
                Ssthresh::FastOpenQueueLimit(n) => write!(f, " fastopen_qlen:{n}")?,
            }
        }
        write!(f, " probes:{}", s.probes)
    }
}

/// `-i`: tcp_info like `ss -i`.
pub(super) struct InfoCell<'a>(pub(super) &'a Diag);

impl std::fmt::Display for InfoCell<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let d = self.0;
        if let Some(cc) = &d.congestion_algorithm {
            write!(f, "{cc} ")?;
        }
        let Some(i) = &d.tcp_info else {
            return f.write_str("-");
        };
        let ms = |us: u32| us as f64 / 1000.0;
        write!(
            f,
            "rtt:{}/{}ms rto:{}ms cwnd:{}",
            ms(i.rtt_us),
            ms(i.rttvar_us),
            i.rto_us / 1000,
            i.snd_cwnd
        )?;
        match i.ssthresh() {
            Ssthresh::Segments(n) => write!(f, " ssthresh:{n}")?,
            _ => f.write_str(" ssthresh:-")?,
        }
        write!(
            f,
            " bytes_acked:{} bytes_received:{} retrans:{}/{} delivery_rate:{} pacing_rate:{} snd_wnd:{} rcv_space:{}",
            i.bytes_acked,
            i.bytes_received,
            i.retrans,
            i.total_retrans,
            Rate(i.delivery_rate),
            Rate(i.pacing_rate),
            i.snd_wnd,
            i.rcv_space
        )?;
        if i.truncated {
            write!(f, " (tcp_info {} bytes: older kernel)", i.length)?;
        }
        Ok(())
    }
}

/// A rate the kernel gives in bytes per second, shown in bits per second;
/// `u64::MAX` means no limit.
pub(super) struct Rate(pub(super) u64);

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            u64::MAX => f.write_str("unlimited"),
            bytes => write!(f, "{}bps", bytes.saturating_mul(8)),
        }
    }
}

/// `-m`: socket memory like `ss -m`.
pub(super) struct MemoryCell<'a>(pub(super) &'a MemInfo);

impl std::fmt::Display for MemoryCell<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = self.0;
        write!(
            f,
            "skmem:(r{},rb{},t{},tb{},f{},w{},o{},bl{},d{})",
            m.rmem_alloc,
            m.rcvbuf,
            m.wmem_alloc,
            m.sndbuf,
            m.fwd_alloc,
            m.wmem_queued,
            m.optmem,
            m.backlog,
            m.drops
        )
    }
}

#[cfg(test)]
mod tests {
    use super::ipv4;

    #[test]
    fn ipv4_is_written_as_std_writes_it() {
        for ip in [
            "0.0.0.0",
            "255.255.255.255",
            "10.0.0.5",
            "192.168.100.9",
            "1.20.3.40",
        ] {
            let ip: std::net::Ipv4Addr = ip.parse().unwrap();
            assert_eq!(ipv4(ip, &mut [0; 15]), ip.to_string());
        }
    }
}
