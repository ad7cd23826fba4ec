//! What is exposed: each listening socket's address scope, its verdict
//! under a policy (rules that allow or deny, the first matching one
//! deciding), and its identity for a baseline (what changed since).
//! Reading the table is the query's; this module judges what it read.

use std::net::IpAddr;

use crate::filter::{glob, PortRange};
use crate::model::{canonical, Entry};

/// The reach of a bound address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// `0.0.0.0` or `::`: every address of the namespace.
    Any,
    /// A global unicast address.
    Global,
    /// 100.64.0.0/10, carrier-grade NAT's shared space.
    Shared,
    /// RFC 1918 (10/8, 172.16/12, 192.168/16).
    Private,
    /// fc00::/7.
    UniqueLocal,
    /// 169.254/16, fe80::/10.
    LinkLocal,
    /// 127/8, ::1.
    Loopback,
}

impl Scope {
    pub const ALL: [Scope; 7] = [
        Scope::Any,
        Scope::Global,
        Scope::Shared,
        Scope::Private,
        Scope::UniqueLocal,
        Scope::LinkLocal,
        Scope::Loopback,
    ];

    /// The scope of `ip` (an IPv4-mapped address as its IPv4 address).
    pub fn of(ip: IpAddr) -> Scope {
        let ip = canonical(std::net::SocketAddr::new(ip, 0)).ip();
        match ip {
            IpAddr::V4(a) => {
                let [x, y, ..] = a.octets();
                if a.is_unspecified() {
                    Scope::Any
                } else if a.is_loopback() {
                    Scope::Loopback
                } else if a.is_link_local() {
                    Scope::LinkLocal
                } else if a.is_private() {
                    Scope::Private
                } else if x == 100 && (64..128).contains(&y) {
                    Scope::Shared
                } else {
                    Scope::Global
                }
            }
            IpAddr::V6(a) => {
                let first = a.segments()[0];
                if a.is_unspecified() {
                    Scope::Any
                } else if a.is_loopback() {
                    Scope::Loopback
                } else if first & 0xffc0 == 0xfe80 {
                    Scope::LinkLocal
                } else if first & 0xfe00 == 0xfc00 {
                    Scope::UniqueLocal
                } else {
                    Scope::Global
                }
            }
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Any => "any",
            Scope::Global => "global",
            Scope::Shared => "shared",
            Scope::Private => "private",
            Scope::UniqueLocal => "unique-local",
            Scope::LinkLocal => "link-local",
            Scope::Loopback => "loopback",
        }
    }
}

display_by_name!(Scope, as_str);

impl std::str::FromStr for Scope {
    type Err = String;

    fn from_str(s: &str) -> Result<Scope, String> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Scope::ALL.iter().map(|s| s.as_str()).collect();
                format!("'{s}' is not a scope ({})", names.join(", "))
            })
    }
}

/// What a rule says of the listeners it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Allow,
    Deny,
}

/// One rule of a policy: every condition given must hold (none given:
/// every listener). Text conditions take `*` globs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Rule {
    pub port: Option<PortRange>,
    pub scope: Option<Scope>,
    /// An address or a prefix of the bound address.
    pub address: Option<crate::filter::Cidr>,
    /// A command name of an owner.
    pub process: Option<String>,
    pub user: Option<u32>,
    pub unit: Option<String>,
    pub container: Option<String>,
    /// `[NAMESPACE/]POD`.
    pub pod: Option<String>,
    /// The namespace's label (`host`, a name under /run/netns, `pod ...`).
    pub netns: Option<String>,
    pub reason: Option<String>,
}

impl Rule {
    /// Whether the listener `e` meets every condition.
    pub fn matches(&self, e: &Entry<'_>) -> bool {
        let s = e.socket;
        let w = e.workload.map(|w| &**w);
        let text = |pattern: &Option<String>, value: Option<&str>| {
            pattern
                .as_deref()
                .is_none_or(|p| value.is_some_and(|v| glob(p, v)))
        };
        let owners = e.owners.map_or(&[][..], |o| o.owners());
        let netns = e
            .namespace
            .map_or_else(|| "host".to_string(), |n| n.label());
        self.port.is_none_or(|r| r.contains(s.local.port()))
            && self.scope.is_none_or(|sc| sc == Scope::of(s.local.ip()))
            && self.address.is_none_or(|net| net.contains(s.local.ip()))
            && self.user.is_none_or(|u| u == s.uid)
            && self
                .process
                .as_deref()
                .is_none_or(|p| owners.iter().any(|o| glob(p, &o.command)))
            && text(&self.unit, w.and_then(|w| w.unit.as_deref()))
            && text(
                &self.container,
                w.and_then(|w| w.container_name.as_deref().or(w.container_id.as_deref())),
            )
            && self.pod.as_deref().is_none_or(|p| {
                let (ns, name) = w.map_or((None, None), |w| {
                    (w.pod_namespace.as_deref(), w.pod_name.as_deref())
                });
                match p.split_once('/') {
                    Some((pn, pp)) => text(&Some(pn.into()), ns) && text(&Some(pp.into()), name),
                    None => text(&Some(p.into()), name),
                }
            })
            && text(&self.netns, Some(&netns))
    }
}

/// A policy: rules, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    pub rules: Vec<(Action, Rule)>,
}

impl Policy {
    /// The first rule `e` matches, and its index.
    pub fn decide(&self, e: &Entry<'_>) -> Option<(usize, Action, &Rule)> {
        self.rules
            .iter()
            .enumerate()
            .find(|(_, (_, r))| r.matches(e))
            .map(|(i, (a, r))| (i, *a, r))
    }
}

/// What identifies a listener across runs (not its pid): its namespace's
/// label, its bound address and port, and its holders' commands (or, in a
/// container, its workload).
pub fn identity(e: &Entry<'_>) -> String {
    let netns = e
        .namespace
        .map_or_else(|| "host".to_string(), |n| n.label());
    let commands = e.owners.map_or_else(Vec::new, |o| o.commands());
    let holder = match e.workload.filter(|w| w.container_id.is_some()) {
        Some(w) => w.to_string(),
        None if commands.is_empty() => "-".to_string(),
        None => commands.join(","),
    };
    let local = canonical(e.socket.local);
    format!("{netns} {local} {holder}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_of_every_kind() {
        for (ip, scope) in [
            ("0.0.0.0", Scope::Any),
            ("::", Scope::Any),
            ("127.0.0.5", Scope::Loopback),
            ("::1", Scope::Loopback),
            ("::ffff:127.0.0.1", Scope::Loopback),
            ("169.254.1.1", Scope::LinkLocal),
            ("fe80::1", Scope::LinkLocal),
            ("10.1.2.3", Scope::Private),
            ("172.20.0.1", Scope::Private),
            ("192.168.1.1", Scope::Private),
            ("100.64.0.1", Scope::Shared),
            ("100.128.0.1", Scope::Global),
            ("fd00::1", Scope::UniqueLocal),
            ("203.0.113.5", Scope::Global),
            ("2001:db8::1", Scope::Global),
        ] {
            assert_eq!(Scope::of(ip.parse().unwrap()), scope, "{ip}");
        }
        assert_eq!("unique-local".parse::<Scope>(), Ok(Scope::UniqueLocal));
        assert!("public"
            .parse::<Scope>()
            .unwrap_err()
            .contains("any, global"));
    }
}
