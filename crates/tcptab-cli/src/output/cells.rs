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
        ip => f.write_str(tcptab::IpText::new(ip).as_str())?,
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

/// `-i`: tcp_info like `ss -i`, written straight into `out` (numbers
/// with itoa, no formatter: one such cell per socket).
pub(super) fn write_info(out: &mut String, d: &Diag) {
    let mut n = itoa::Buffer::new();
    let mut num = |out: &mut String, before: &str, value: u64| {
        out.push_str(before);
        out.push_str(n.format(value));
    };
    if let Some(cc) = &d.congestion_algorithm {
        out.push_str(cc);
        out.push(' ');
    }
    let Some(i) = &d.tcp_info else {
        out.push('-');
        return;
    };
    out.push_str("rtt:");
    milliseconds(out, i.rtt_us);
    out.push('/');
    milliseconds(out, i.rttvar_us);
    num(out, "ms rto:", u64::from(i.rto_us / 1000));
    num(out, "ms cwnd:", u64::from(i.snd_cwnd));
    match i.ssthresh() {
        Ssthresh::Segments(s) => num(out, " ssthresh:", u64::from(s)),
        _ => out.push_str(" ssthresh:-"),
    }
    num(out, " bytes_acked:", i.bytes_acked);
    num(out, " bytes_received:", i.bytes_received);
    num(out, " retrans:", u64::from(i.retrans));
    num(out, "/", u64::from(i.total_retrans));
    for (name, rate) in [
        (" delivery_rate:", i.delivery_rate),
        (" pacing_rate:", i.pacing_rate),
    ] {
        match rate {
            u64::MAX => {
                out.push_str(name);
                out.push_str("unlimited");
            }
            bytes => {
                num(out, name, bytes.saturating_mul(8));
                out.push_str("bps");
            }
        }
    }
    num(out, " snd_wnd:", u64::from(i.snd_wnd));
    num(out, " rcv_space:", u64::from(i.rcv_space));
    if i.truncated {
        num(out, " (tcp_info ", i.length as u64);
        out.push_str(" bytes: older kernel)");
    }
}

/// Microseconds as milliseconds, as an f64 of them prints (`0.046`, `1`,
/// `1.5`): the integer, then the thousandths without trailing zeros.
fn milliseconds(out: &mut String, us: u32) {
    out.push_str(itoa::Buffer::new().format(us / 1000));
    let mut frac = us % 1000;
    if frac == 0 {
        return;
    }
    let mut digits = 3;
    while frac.is_multiple_of(10) {
        frac /= 10;
        digits -= 1;
    }
    out.push('.');
    let mut buffer = itoa::Buffer::new();
    let text = buffer.format(frac);
    for _ in text.len()..digits {
        out.push('0');
    }
    out.push_str(text);
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

    #[test]
    fn milliseconds_are_written_as_an_f64_of_them_prints() {
        for us in [
            0,
            1,
            10,
            46,
            100,
            999,
            1000,
            1001,
            1500,
            20_050,
            201_000,
            u32::MAX,
        ] {
            let mut out = String::new();
            super::milliseconds(&mut out, us);
            assert_eq!(out, (us as f64 / 1000.0).to_string(), "{us}");
        }
    }
}
