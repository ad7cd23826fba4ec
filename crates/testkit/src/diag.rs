//! Netlink transports for tests: record a real dump's datagrams, replay
//! them, or fail like a refused socket.

use std::io;
use std::path::Path;

use tcptab::diag::Transport;

/// Wraps a transport and keeps every datagram it receives.
#[derive(Debug)]
pub struct Recorder<T> {
    pub inner: T,
    pub datagrams: Vec<Vec<u8>>,
}

impl<T: Transport> Transport for Recorder<T> {
    fn send(&mut self, request: &[u8]) -> io::Result<()> {
        self.inner.send(request)
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let len = self.inner.recv(buf)?;
        self.datagrams.push(buf[..len.min(buf.len())].to_vec());
        Ok(len)
    }
}

/// Answers with recorded datagrams, in order.
#[derive(Debug, Default)]
pub struct Replay {
    pub datagrams: std::collections::VecDeque<Vec<u8>>,
}

impl Replay {
    pub fn new(datagrams: Vec<Vec<u8>>) -> Replay {
        Replay {
            datagrams: datagrams.into(),
        }
    }
}

impl Transport for Replay {
    fn send(&mut self, _request: &[u8]) -> io::Result<()> {
        Ok(())
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(datagram) = self.datagrams.pop_front() else {
            return Ok(0);
        };
        let n = datagram.len().min(buf.len());
        buf[..n].copy_from_slice(&datagram[..n]);
        Ok(datagram.len())
    }
}

/// Fails every send with `errno`, as a socket refused by a seccomp filter
/// or a missing privilege would.
#[derive(Debug)]
pub struct Refused(pub i32);

impl Transport for Refused {
    fn send(&mut self, _request: &[u8]) -> io::Result<()> {
        Err(io::Error::from_raw_os_error(self.0))
    }

    fn recv(&mut self, _buf: &mut [u8]) -> io::Result<usize> {
        Err(io::Error::from_raw_os_error(self.0))
    }
}

/// Datagrams as a file: each one a little-endian u32 length, then its bytes.
pub fn save(path: &Path, datagrams: &[Vec<u8>]) -> io::Result<()> {
    let mut out = Vec::new();
    for d in datagrams {
        out.extend_from_slice(&(d.len() as u32).to_le_bytes());
        out.extend_from_slice(d);
    }
    std::fs::write(path, out)
}

pub fn load(path: &Path) -> io::Result<Vec<Vec<u8>>> {
    let bytes = std::fs::read(path)?;
    let mut out = Vec::new();
    let mut at = 0;
    while at + 4 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        at += 4;
        let end = (at + len).min(bytes.len());
        out.push(bytes[at..end].to_vec());
        at = end;
    }
    Ok(out)
}
