//! What the language reads from the machine: service names
//! (/etc/services), host names (/etc/hosts), and a namespace's facts for
//! `autobound` and `dev` ([`Facts`]).

use std::net::IpAddr;

use super::PortRange;

/// The port of a TCP service named `name` (or by an alias) in
/// /etc/services.
pub(super) fn service_port(name: &str) -> Option<u16> {
    let text = std::fs::read_to_string("/etc/services").ok()?;
    text.lines().find_map(|line| {
        let line = line.split('#').next()?;
        let mut words = line.split_whitespace();
        let service = words.next()?;
        let (port, proto) = words.next()?.split_once('/')?;
        let named = service == name || words.any(|alias| alias == name);
        (named && proto == "tcp").then(|| port.parse().ok())?
    })
}

/// The addresses /etc/hosts gives `name` (no other lookup: a filter never
/// waits on the network), IPv4 first as `ss` asks for them.
pub(super) fn hosts_file_addresses(name: &str) -> Vec<IpAddr> {
    let Ok(text) = std::fs::read_to_string("/etc/hosts") else {
        return Vec::new();
    };
    let mut found: Vec<IpAddr> = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut words = line.split_whitespace();
        let Some(Ok(address)) = words.next().map(str::parse::<IpAddr>) else {
            continue;
        };
        if words.any(|w| w.eq_ignore_ascii_case(name)) && !found.contains(&address) {
            found.push(address);
        }
    }
    found.sort_by_key(|a| a.is_ipv6());
    found
}

/// What `autobound` and `dev NAME` need to know of a network namespace
/// (see [`Expr::bind`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    /// `net.ipv4.ip_local_port_range`.
    pub ephemeral: PortRange,
    /// Interface indexes by name.
    pub interfaces: std::collections::HashMap<String, u32>,
    /// cgroup v2 ids by path (cgroups are the machine's, not a
    /// namespace's).
    pub cgroups: std::collections::HashMap<String, u64>,
}

impl Default for Facts {
    /// The kernel's default range (32768-60999), no interfaces.
    fn default() -> Facts {
        Facts {
            ephemeral: PortRange {
                low: 32768,
                high: 60999,
            },
            interfaces: Default::default(),
            cgroups: Default::default(),
        }
    }
}

impl Facts {
    /// Read in the calling thread's network namespace: the range from
    /// `range_file` (`/proc/sys/net/ipv4/ip_local_port_range`; the
    /// default when absent, as in a capture) and the index of each of
    /// `names` (those the namespace lacks are left out).
    pub fn read(range_file: &std::path::Path, names: &[String]) -> std::io::Result<Facts> {
        let mut facts = Facts::default();
        match std::fs::read_to_string(range_file) {
            Ok(text) => {
                let bad = || {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!(
                            "{}: expected two port numbers, found {text:?}",
                            range_file.display()
                        ),
                    )
                };
                let mut words = text.split_whitespace().map(str::parse::<u16>);
                match (words.next(), words.next()) {
                    (Some(Ok(low)), Some(Ok(high))) => facts.ephemeral = PortRange { low, high },
                    _ => return Err(bad()),
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        if !names.is_empty() {
            use rustix::net::{socket, AddressFamily, SocketType};
            let fd = socket(AddressFamily::INET, SocketType::DGRAM, None)?;
            for name in names {
                if let Ok(index) = rustix::net::netdevice::name_to_index(&fd, name) {
                    facts.interfaces.insert(name.clone(), index);
                }
            }
        }
        Ok(facts)
    }
}
