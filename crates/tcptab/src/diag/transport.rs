//! The netlink socket (NETLINK_SOCK_DIAG), behind a small trait so tests can
//! put a failing or scripted transport in its place.

use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::net::netlink::{SocketAddrNetlink, SOCK_DIAG};

use super::abi::{SKNLGRP_INET6_TCP_DESTROY, SKNLGRP_INET_TCP_DESTROY};
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};

/// Sends requests and receives datagrams.
pub trait Transport {
    fn send(&mut self, request: &[u8]) -> io::Result<()>;
    /// One datagram into `buf`; returns its full length (which may exceed
    /// `buf.len()` if it was truncated).
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize>;
}

/// A `NETLINK_SOCK_DIAG` socket, bound to the network namespace it was
/// created in.
#[derive(Debug)]
pub struct NetlinkSocket {
    fd: OwnedFd,
    /// The receive timeout [`recv_within`](Self::recv_within) set.
    timeout: Option<std::time::Duration>,
}

impl NetlinkSocket {
    /// A socket in this thread's network namespace.
    pub fn open() -> io::Result<NetlinkSocket> {
        let fd = rustix::net::socket_with(
            AddressFamily::NETLINK,
            SocketType::DGRAM,
            SocketFlags::CLOEXEC,
            Some(SOCK_DIAG),
        )?;
        // Larger datagrams mean fewer system calls; the kernel caps them.
        let _ = rustix::net::sockopt::set_socket_recv_buffer_size(&fd, 1 << 20);
        Ok(NetlinkSocket { fd, timeout: None })
    }

    /// A socket in the network namespace of `ns` (`/proc/PID/ns/net` or a
    /// file under /run/netns): created on a thread that enters it, so this
    /// process stays where it is. Needs CAP_SYS_ADMIN.
    pub fn open_in(ns: &Path) -> io::Result<NetlinkSocket> {
        crate::netns::run_in(ns, NetlinkSocket::open)
    }
}

/// The multicast groups of destroyed TCP sockets, both families.
const TCP_DESTROY_GROUPS: u32 =
    (1 << (SKNLGRP_INET_TCP_DESTROY - 1)) | (1 << (SKNLGRP_INET6_TCP_DESTROY - 1));

impl NetlinkSocket {
    /// Subscribe this socket to the kernel's notifications of destroyed TCP
    /// sockets (both families), with a receive buffer of `buffer` bytes
    /// (forced past net.core.rmem_max where allowed; a burst of closing
    /// connections fills a small one, and the kernel then drops
    /// notifications: `recv` fails with ENOBUFS). Needs CAP_NET_ADMIN.
    pub fn subscribe_destroy(self, buffer: usize) -> io::Result<NetlinkSocket> {
        if rustix::net::sockopt::set_socket_recv_buffer_size_force(&self.fd, buffer).is_err() {
            rustix::net::sockopt::set_socket_recv_buffer_size(&self.fd, buffer)?;
        }
        rustix::net::bind(&self.fd, &SocketAddrNetlink::new(0, TCP_DESTROY_GROUPS))?;
        Ok(self)
    }

    /// The default receive buffer of [`subscribe_destroy`](Self::subscribe_destroy):
    /// 8 MiB, tens of thousands of notifications.
    pub const DESTROY_BUFFER: usize = 8 << 20;

    /// Wait up to `timeout` for a datagram and receive it. `Ok(0)` when
    /// nothing came. One system call per datagram: the wait is the
    /// socket's receive timeout (SO_RCVTIMEO), set here when it changes,
    /// so a socket read this way (a subscription) is read only this way.
    pub fn recv_within(
        &mut self,
        buf: &mut [u8],
        timeout: std::time::Duration,
    ) -> io::Result<usize> {
        // A zero SO_RCVTIMEO would wait for ever: no wait is DONTWAIT.
        let flags = if timeout.is_zero() {
            RecvFlags::TRUNC | RecvFlags::DONTWAIT
        } else {
            if self.timeout != Some(timeout) {
                use rustix::net::sockopt::{set_socket_timeout, Timeout};
                set_socket_timeout(&self.fd, Timeout::Recv, Some(timeout))?;
                self.timeout = Some(timeout);
            }
            RecvFlags::TRUNC
        };
        match rustix::net::recv(&self.fd, &mut *buf, flags) {
            Ok((_, len)) => Ok(len),
            Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) => Ok(0),
            Err(e) => Err(e.into()),
        }
    }
}

impl Transport for NetlinkSocket {
    fn send(&mut self, request: &[u8]) -> io::Result<()> {
        rustix::net::sendto(
            &self.fd,
            request,
            SendFlags::empty(),
            &SocketAddrNetlink::new(0, 0),
        )?;
        Ok(())
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match rustix::net::recv(&self.fd, &mut *buf, RecvFlags::TRUNC) {
                Ok((_, len)) => return Ok(len),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// A subscription waits as long as it is told and no longer, returns
    /// at once when told not to wait, and receives a notification when a
    /// connection closes (as root: subscribing needs CAP_NET_ADMIN).
    #[test]
    fn a_subscription_waits_as_told_and_hears_a_close() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: needs root (subscribing to destroy notifications)");
            return;
        }
        let mut socket = NetlinkSocket::open()
            .and_then(|s| s.subscribe_destroy(NetlinkSocket::DESTROY_BUFFER))
            .unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        // Whatever this host closes may arrive: drain it first.
        while socket.recv_within(&mut buf, Duration::ZERO).unwrap() > 0 {}
        let started = Instant::now();
        socket.recv_within(&mut buf, Duration::ZERO).unwrap();
        assert!(started.elapsed() < Duration::from_millis(50), "no wait");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        drop((client, server, listener));
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut heard = 0;
        while heard == 0 && Instant::now() < deadline {
            let started = Instant::now();
            heard = socket
                .recv_within(&mut buf, Duration::from_millis(100))
                .unwrap();
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "waited past its timeout"
            );
        }
        assert!(heard > 0, "no destroy notification within 5 s");
        // Nothing more is closed: the wait ends by its timeout.
        while socket.recv_within(&mut buf, Duration::ZERO).unwrap() > 0 {}
        let started = Instant::now();
        socket
            .recv_within(&mut buf, Duration::from_millis(100))
            .unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "waited past its timeout"
        );
    }
}
