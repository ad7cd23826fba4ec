//! A network namespace's interface addresses, from the kernel's routing
//! netlink (`RTM_GETADDR`, what `ip addr` reads), and the ones a listening
//! socket is reachable on: every address of its family for a wildcard
//! (IPv4 too for an IPv6 wildcard without `IPV6_V6ONLY`), only the bound
//! interface's for a socket bound to a device, the bound address itself
//! otherwise.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;

use rustix::net::netlink::SocketAddrNetlink;
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};

use crate::diag::wire::{
    align4, attributes, messages, View, NLMSG_DONE, NLMSG_ERROR, NLMSG_HDRLEN, NLM_F_DUMP,
    NLM_F_REQUEST,
};
use crate::model::{canonical, Namespace};

/// `RTM_NEWADDR`, `RTM_GETADDR` (linux/rtnetlink.h).
const RTM_NEWADDR: u16 = 20;
const RTM_GETADDR: u16 = 22;
/// `struct ifaddrmsg` (linux/if_addr.h): family, prefix length, flags,
/// scope, interface index.
const IFADDRMSG_LEN: usize = 8;
/// `IFA_ADDRESS`, `IFA_LOCAL` (linux/if_addr.h).
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;

/// One address of one interface.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[non_exhaustive]
pub struct InterfaceAddress {
    /// The interface's name (`lo`, `eth0`).
    pub interface: String,
    pub address: IpAddr,
    pub prefix: u8,
    #[cfg_attr(feature = "serde", serde(skip))]
    pub index: u32,
}

/// Every interface address of `namespace` (this process's for None).
/// Entering another namespace needs CAP_SYS_ADMIN.
pub fn addresses(
    namespace: Option<&Namespace>,
    proc_root: &Path,
) -> io::Result<Vec<InterfaceAddress>> {
    match namespace.and_then(|n| n.file(proc_root)) {
        None => dump(),
        Some(file) => crate::netns::run_in(&file, dump),
    }
}

/// The addresses a listener bound to `local` (on interface `device`, 0
/// for none) is reachable on, of `all` its namespace's.
pub fn reachable(
    local: SocketAddr,
    dual_stack: bool,
    device: u32,
    all: &[InterfaceAddress],
) -> Vec<&InterfaceAddress> {
    let bound = canonical(local).ip();
    all.iter()
        .filter(|a| device == 0 || a.index == device)
        .filter(|a| match bound {
            IpAddr::V4(ip) if ip.is_unspecified() => a.address.is_ipv4(),
            IpAddr::V6(ip) if ip.is_unspecified() => a.address.is_ipv6() || dual_stack,
            ip => a.address == ip,
        })
        .collect()
}

/// The dump, in this thread's namespace; interface names looked up here.
fn dump() -> io::Result<Vec<InterfaceAddress>> {
    let fd = rustix::net::socket_with(
        AddressFamily::NETLINK,
        SocketType::DGRAM,
        SocketFlags::CLOEXEC,
        None, // NETLINK_ROUTE is protocol 0
    )?;
    let mut request = Vec::with_capacity(NLMSG_HDRLEN + IFADDRMSG_LEN);
    let len = (NLMSG_HDRLEN + IFADDRMSG_LEN) as u32;
    request.extend_from_slice(&len.to_ne_bytes());
    request.extend_from_slice(&RTM_GETADDR.to_ne_bytes());
    request.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    request.extend_from_slice(&1u32.to_ne_bytes()); // seq
    request.extend_from_slice(&0u32.to_ne_bytes()); // pid
    request.extend_from_slice(&[0u8; IFADDRMSG_LEN]); // AF_UNSPEC: both families
    rustix::net::sendto(
        &fd,
        &request,
        SendFlags::empty(),
        &SocketAddrNetlink::new(0, 0),
    )?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let (_, len) = rustix::net::recv(&fd, &mut buf[..], RecvFlags::TRUNC)?;
        if len > buf.len() {
            return Err(io::Error::other("an RTM_GETADDR answer larger than 64 KiB"));
        }
        for message in messages(View::new(&buf[..len])) {
            let message = message.map_err(|e| io::Error::other(e.to_string()))?;
            match message.kind {
                NLMSG_DONE => return named(out),
                NLMSG_ERROR => {
                    let errno = message.payload.i32(0, "nlmsgerr.error").unwrap_or(-1);
                    return Err(io::Error::from_raw_os_error(-errno));
                }
                RTM_NEWADDR => {
                    if let Some(a) = address(message.payload) {
                        out.push(a);
                    }
                }
                _ => {}
            }
        }
    }
}

/// One `RTM_NEWADDR` message: the interface's own address (`IFA_LOCAL`,
/// else `IFA_ADDRESS`, which is the peer's on a point-to-point link).
fn address(payload: View<'_>) -> Option<InterfaceAddress> {
    let family = payload.u8(0, "ifaddrmsg.ifa_family").ok()?;
    let prefix = payload.u8(1, "ifaddrmsg.ifa_prefixlen").ok()?;
    let index = payload.u32(4, "ifaddrmsg.ifa_index").ok()?;
    let (mut local, mut any) = (None, None);
    for attribute in attributes(payload.tail(align4(IFADDRMSG_LEN))) {
        let attribute = attribute.ok()?;
        let ip = match (family, attribute.data.len()) {
            (AF_INET, 4) => {
                let b = attribute.data.bytes();
                IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
            }
            (AF_INET6, 16) => IpAddr::V6(Ipv6Addr::from(attribute.data.bytes16(0, "ifa").ok()?)),
            _ => continue,
        };
        match attribute.kind {
            IFA_LOCAL => local = Some(ip),
            IFA_ADDRESS => any = Some(ip),
            _ => {}
        }
    }
    Some(InterfaceAddress {
        interface: String::new(),
        address: local.or(any)?,
        prefix,
        index,
    })
}

/// The interfaces' names, looked up in the namespace the dump was read in.
fn named(mut out: Vec<InterfaceAddress>) -> io::Result<Vec<InterfaceAddress>> {
    let socket = rustix::net::socket(AddressFamily::INET, SocketType::DGRAM, None)?;
    for a in &mut out {
        a.interface = rustix::net::netdevice::index_to_name(&socket, a.index)
            .unwrap_or_else(|_| format!("if{}", a.index));
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(interface: &str, index: u32, address: &str) -> InterfaceAddress {
        InterfaceAddress {
            interface: interface.into(),
            address: address.parse().unwrap(),
            prefix: 24,
            index,
        }
    }

    #[test]
    fn a_wildcard_reaches_its_family_a_device_only_its_own() {
        let all = [
            a("lo", 1, "127.0.0.1"),
            a("lo", 1, "::1"),
            a("eth0", 2, "10.0.0.2"),
            a("eth0", 2, "fe80::1"),
        ];
        let names = |v: Vec<&InterfaceAddress>| -> Vec<String> {
            v.iter().map(|a| a.address.to_string()).collect()
        };
        let at = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert_eq!(
            names(reachable(at("0.0.0.0:80"), false, 0, &all)),
            ["127.0.0.1", "10.0.0.2"]
        );
        assert_eq!(
            names(reachable(at("[::]:80"), false, 0, &all)),
            ["::1", "fe80::1"]
        );
        assert_eq!(names(reachable(at("[::]:80"), true, 0, &all)).len(), 4);
        assert_eq!(
            names(reachable(at("0.0.0.0:80"), false, 2, &all)),
            ["10.0.0.2"]
        );
        assert_eq!(
            names(reachable(at("10.0.0.2:80"), false, 0, &all)),
            ["10.0.0.2"]
        );
        assert_eq!(
            names(reachable(at("[::ffff:10.0.0.2]:80"), false, 0, &all)),
            ["10.0.0.2"]
        );
        assert!(reachable(at("192.0.2.1:80"), false, 0, &all).is_empty());
    }
}
