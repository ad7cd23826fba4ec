//! The pods at the other end: with every namespace read and workloads
//! looked up, the addresses of each pod's namespace (its sandbox's
//! interfaces), so that a connection whose remote address is one of them
//! names that pod, and both ends of a pod-to-pod connection on this host
//! have names.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use crate::model::Namespace;

/// Remote address -> `NAMESPACE/POD`.
#[derive(Debug, Default)]
pub(super) struct Peers {
    by_address: HashMap<IpAddr, Option<Arc<str>>>,
}

impl Peers {
    /// The addresses of the namespaces named after a pod. Loopback,
    /// link-local and unspecified addresses are every namespace's own and
    /// name no peer; an address two pods both have names neither. A
    /// namespace whose addresses cannot be read (gone meanwhile) adds
    /// none.
    pub(super) fn of(targets: &[Option<Namespace>], root: &Path) -> Peers {
        let mut by_address: HashMap<IpAddr, Option<Arc<str>>> = HashMap::new();
        for ns in targets.iter().flatten() {
            let Some(pod) = &ns.pod else { continue };
            let Ok(addresses) = crate::interfaces::addresses(Some(ns), root) else {
                continue;
            };
            let pod: Arc<str> = pod.as_str().into();
            for a in addresses {
                if !names_a_peer(a.address) {
                    continue;
                }
                by_address
                    .entry(a.address)
                    .and_modify(|known| {
                        if known.as_deref() != Some(&*pod) {
                            *known = None;
                        }
                    })
                    .or_insert_with(|| Some(pod.clone()));
            }
        }
        Peers { by_address }
    }

    /// The pod whose namespace has address `ip` (an IPv4-mapped IPv6
    /// address as its IPv4 one).
    pub(super) fn pod(&self, ip: IpAddr) -> Option<&Arc<str>> {
        if self.by_address.is_empty() {
            return None;
        }
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.by_address.get(&ip)?.as_ref()
    }
}

/// Whether an interface address can name the namespace that has it.
fn names_a_peer(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !(v4.is_loopback() || v4.is_link_local() || v4.is_unspecified()),
        IpAddr::V6(v6) => {
            !(v6.is_loopback() || v6.is_unspecified() || (v6.segments()[0] & 0xffc0) == 0xfe80)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_link_local_name_no_peer() {
        for a in ["127.0.0.1", "::1", "169.254.1.1", "fe80::1", "0.0.0.0"] {
            assert!(!names_a_peer(a.parse().unwrap()), "{a}");
        }
        for a in ["10.244.1.5", "fd00::5", "192.0.2.7"] {
            assert!(names_a_peer(a.parse().unwrap()), "{a}");
        }
    }

    #[test]
    fn a_mapped_address_is_its_ipv4_one_and_a_shared_one_names_no_pod() {
        let mut peers = Peers::default();
        peers
            .by_address
            .insert("10.244.1.5".parse().unwrap(), Some("shop/web".into()));
        peers.by_address.insert("10.244.1.9".parse().unwrap(), None);
        assert_eq!(
            peers
                .pod("::ffff:10.244.1.5".parse().unwrap())
                .map(|p| &**p),
            Some("shop/web")
        );
        assert_eq!(peers.pod("10.244.1.9".parse().unwrap()), None);
    }
}
