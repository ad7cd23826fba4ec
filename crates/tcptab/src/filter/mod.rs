//! Socket filters: state sets (with `ss`'s groups), port ranges, address
//! prefixes, owners, and an expression language with the common part of
//! `ss`'s:
//!
//! ```text
//! state established and ( dport = :443 or dport = :80 ) and dst 10.0.0.0/8
//! ```
//!
//! Words: `state NAME`, `sport OP PORT`, `dport OP PORT` (OP one of `=` `==`
//! `eq` `!=` `ne` `neq` `<` `lt` `>` `gt` `<=` `le` `leq` `>=` `ge` `geq`;
//! PORT `443`, `:443` or a service name from /etc/services, `:https`),
//! `src ADDR` and `dst ADDR` (ADDR an address, a prefix such as `10.0.0.0/8`
//! or `10/8`, or a host name from /etc/hosts, each optionally with `:PORT`;
//! IPv6 with a port in brackets), `dev NAME` (the bound interface, netlink
//! only), `autobound` (a local port the kernel chose), `and`/`&&`/`&` (or
//! nothing), `or`/`||`/`|`, `not`/`!`, parentheses.
//!
//! As in `ss`, `and` and `or` bind equally, from left to right:
//! `A or B and C` is `(A or B) and C`. An IPv4 prefix also matches the
//! IPv4-mapped IPv6 addresses in it; an IPv4-mapped prefix matches only
//! IPv6 sockets (so `0.0.0.0/0` is every IPv4 and mapped address, `::/0`
//! every IPv6 one), as the kernel judges them.

mod display;
mod facts;
mod parse;
#[cfg(test)]
mod tests;

use std::net::IpAddr;
use std::str::FromStr;

use crate::model::{Diag, Entry, Family, Owner, Socket, State, StateSet, Workload};
use crate::owners::OwnerScan;
pub use facts::Facts;
pub use parse::{excerpt, FilterError, MAX_DEPTH, MAX_WORDS};

/// An inclusive port range (`443`, `1000-2000`, `:443`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortRange {
    pub low: u16,
    pub high: u16,
}

impl PortRange {
    pub fn contains(self, port: u16) -> bool {
        (self.low..=self.high).contains(&port)
    }
}

impl FromStr for PortRange {
    type Err = String;

    fn from_str(s: &str) -> Result<PortRange, String> {
        let text = s.strip_prefix(':').unwrap_or(s);
        let port = |p: &str| {
            p.parse::<u16>().map_err(|_| {
                format!(
                    "'{}' is not a port or a port range (e.g. 443 or 1000-2000)",
                    excerpt(s)
                )
            })
        };
        let (low, high) = match text.split_once('-') {
            Some((a, b)) => (port(a)?, port(b)?),
            None => (port(text)?, port(text)?),
        };
        if low > high {
            return Err(format!("'{s}': the range is empty ({low} > {high})"));
        }
        Ok(PortRange { low, high })
    }
}

/// An address prefix (`10.0.0.0/8`, `10/8`, `::1`, `fe80::/10`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    pub address: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    /// Whether `ip` is in the prefix, as the kernel's filter judges it:
    /// an address of the prefix's family, or for an IPv4 prefix an
    /// IPv4-mapped IPv6 address of an IPv4 address in it (`0.0.0.0/0`
    /// holds IPv4 and mapped addresses, `::/0` IPv6 ones).
    pub fn contains(self, ip: IpAddr) -> bool {
        let ip = match (self.address, ip) {
            (IpAddr::V4(_), IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => return false,
            },
            (_, ip) => ip,
        };
        match (self.address, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - self.prefix as u32).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - self.prefix as u32).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// An IPv4 address as `ss` reads one: up to four decimal parts, the missing
/// ones zero (`127` is 127.0.0.0, `10.1` is 10.1.0.0). Parts with a leading
/// zero are refused rather than read in another base.
fn short_ipv4(text: &str) -> Option<std::net::Ipv4Addr> {
    let mut octets = [0u8; 4];
    let parts: Vec<&str> = text.split('.').collect();
    if parts.len() > 4 {
        return None;
    }
    for (slot, part) in octets.iter_mut().zip(&parts) {
        if part.is_empty()
            || part.len() > 3
            || !part.bytes().all(|b| b.is_ascii_digit())
            || (part.len() > 1 && part.starts_with('0'))
        {
            return None;
        }
        *slot = part.parse().ok()?;
    }
    Some(octets.into())
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Cidr, String> {
        let bad = || {
            format!(
                "'{}' is not an address or prefix (e.g. 10.0.0.0/8 or ::1)",
                excerpt(s)
            )
        };
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p.parse::<u8>().map_err(|_| bad())?)),
            None => (s, None),
        };
        // `[::1]` as `::1`; a bracket alone is an error, not ignored.
        let addr = match (addr.strip_prefix('['), addr.ends_with(']')) {
            (Some(inside), true) => &inside[..inside.len() - 1],
            (None, false) => addr,
            _ => return Err(format!("'{}': an unmatched bracket", excerpt(s))),
        };
        let address: IpAddr = match addr.parse::<IpAddr>() {
            Ok(a) => a,
            Err(_) => IpAddr::V4(short_ipv4(addr).ok_or_else(bad)?),
        };
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return Err(format!(
                "'{s}': a prefix length of {prefix} is longer than {max}"
            ));
        }
        Ok(Cidr { address, prefix })
    }
}

/// Which end of a connection a condition looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The local end (`sport`, `src`).
    Local,
    /// The remote end (`dport`, `dst`).
    Remote,
    /// Either end (`--port`).
    Either,
}

/// A comparison in `sport OP PORT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Cmp {
    /// As written in an expression (and in SQL): `=`, `!=`, `<`, ...
    pub fn symbol(self) -> &'static str {
        match self {
            Cmp::Eq => "=",
            Cmp::Ne => "!=",
            Cmp::Lt => "<",
            Cmp::Le => "<=",
            Cmp::Gt => ">",
            Cmp::Ge => ">=",
        }
    }
}

impl Cmp {
    fn from_word(word: &str) -> Option<Cmp> {
        Some(match word {
            "=" | "==" | "eq" => Cmp::Eq,
            "!=" | "ne" | "neq" => Cmp::Ne,
            "<" | "lt" => Cmp::Lt,
            "<=" | "le" | "leq" => Cmp::Le,
            ">" | "gt" => Cmp::Gt,
            ">=" | "ge" | "geq" => Cmp::Ge,
            _ => return None,
        })
    }

    fn holds(self, a: u16, b: u16) -> bool {
        match self {
            Cmp::Eq => a == b,
            Cmp::Ne => a != b,
            Cmp::Lt => a < b,
            Cmp::Le => a <= b,
            Cmp::Gt => a > b,
            Cmp::Ge => a >= b,
        }
    }
}

/// A filter over sockets.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Expr {
    /// Every socket.
    All,
    State(StateSet),
    Family(Family),
    Port {
        side: Side,
        cmp: Cmp,
        port: u16,
    },
    PortRange {
        side: Side,
        range: PortRange,
    },
    Addr {
        side: Side,
        net: Cidr,
        port: Option<u16>,
    },
    /// The local port was chosen by the kernel, not bound by the program:
    /// through netlink the kernel judges it (the socket's port is not
    /// bind-locked) and, as in `ss`, the port must also be in the
    /// namespace's ephemeral range (`net.ipv4.ip_local_port_range`), which
    /// is all /proc can tell. The range is the kernel's default until
    /// [`Expr::bind`] reads the namespace's.
    Autobound {
        ephemeral: PortRange,
    },
    /// Bound to this interface (`SO_BINDTODEVICE`): netlink only. `index`
    /// is None until [`Expr::bind`] finds the name in the namespace (a
    /// number is an index already); an unbound name matches nothing.
    Dev {
        name: String,
        index: Option<u32>,
    },
    Uid(u32),
    /// In this cgroup v2 (`cgroup PATH`, as `ss`: the socket's own cgroup,
    /// not its descendants): netlink only, tested in the kernel. `id` is
    /// None until [`Expr::bind`] finds the path (a path it cannot find
    /// matches nothing).
    Cgroup {
        path: String,
        id: Option<u64>,
    },
    /// Its workload's systemd unit matches this glob (`*` any text).
    Unit(String),
    /// Its container's name or id matches this glob (an id may be given by
    /// its first 12 or more digits).
    Container(String),
    /// Its pod matches `[NAMESPACE/]NAME` (globs).
    Pod(String),
    /// Held by this process (needs an owner scan).
    Pid(u32),
    /// Held by a process with this command name (needs an owner scan).
    Process(String),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
}

impl Expr {
    /// `self and other`, dropping `All`.
    pub fn and(self, other: Expr) -> Expr {
        match (self, other) {
            (Expr::All, e) | (e, Expr::All) => e,
            (a, b) => Expr::And(Box::new(a), Box::new(b)),
        }
    }

    /// `a or b or ...` of `items` (All for none).
    pub fn any(items: impl IntoIterator<Item = Expr>) -> Expr {
        items
            .into_iter()
            .reduce(|a, b| Expr::Or(Box::new(a), Box::new(b)))
            .unwrap_or(Expr::All)
    }

    /// Whether the expression names `state` in a state condition (one that
    /// is not `all`): what `tcptab kill` requires before it destroys
    /// listeners. A state under `not` is not named.
    pub fn names_state(&self, state: State) -> bool {
        match self {
            Expr::State(set) => *set != StateSet::ALL && set.contains(state),
            Expr::And(a, b) | Expr::Or(a, b) => a.names_state(state) || b.names_state(state),
            _ => false,
        }
    }

    /// Whether any condition satisfies `test`.
    pub fn has(&self, test: &dyn Fn(&Expr) -> bool) -> bool {
        match self {
            Expr::Not(e) => e.has(test),
            Expr::And(a, b) | Expr::Or(a, b) => a.has(test) || b.has(test),
            e => test(e),
        }
    }

    /// Whether evaluating needs to know the sockets' owners.
    pub fn needs_owners(&self) -> bool {
        self.has(&|e| matches!(e, Expr::Pid(_) | Expr::Process(_)))
    }

    /// Whether evaluating needs what only netlink reports (`dev`,
    /// `cgroup`).
    pub fn needs_netlink(&self) -> bool {
        self.has(&|e| matches!(e, Expr::Dev { .. } | Expr::Cgroup { .. }))
    }

    /// Whether evaluating needs each socket's workload (`unit`,
    /// `container`, `pod`).
    pub fn needs_workload(&self) -> bool {
        self.has(&|e| matches!(e, Expr::Unit(_) | Expr::Container(_) | Expr::Pod(_)))
    }

    /// Whether the expression needs facts of the namespace it is evaluated
    /// in ([`Expr::bind`]): `autobound`, `dev NAME` or `cgroup PATH`.
    pub fn needs_facts(&self) -> bool {
        self.has(&|e| {
            matches!(
                e,
                Expr::Autobound { .. } | Expr::Dev { .. } | Expr::Cgroup { .. }
            )
        })
    }

    /// The paths `cgroup` conditions name.
    pub fn cgroup_paths(&self) -> Vec<String> {
        let mut paths = Vec::new();
        self.visit_leaves(&mut |e| {
            if let Expr::Cgroup { path, .. } = e {
                if !paths.contains(path) {
                    paths.push(path.clone());
                }
            }
        });
        paths
    }

    /// The names `dev` conditions use (those not given as numbers).
    pub fn device_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        self.visit_leaves(&mut |e| {
            if let Expr::Dev { name, .. } = e {
                if name.parse::<u32>().is_err() && !names.contains(name) {
                    names.push(name.clone());
                }
            }
        });
        names
    }

    fn visit_leaves(&self, f: &mut dyn FnMut(&Expr)) {
        match self {
            Expr::Not(e) => e.visit_leaves(f),
            Expr::And(a, b) | Expr::Or(a, b) => {
                a.visit_leaves(f);
                b.visit_leaves(f);
            }
            e => f(e),
        }
    }

    /// The expression with the facts of one namespace filled in: its
    /// ephemeral port range for `autobound`, its interface indexes for
    /// `dev NAME` (a name it lacks stays unbound: it matches nothing).
    pub fn bind(&self, facts: &Facts) -> Expr {
        match self {
            Expr::Autobound { .. } => Expr::Autobound {
                ephemeral: facts.ephemeral,
            },
            Expr::Dev { name, index } => Expr::Dev {
                name: name.clone(),
                index: name
                    .parse::<u32>()
                    .ok()
                    .or_else(|| facts.interfaces.get(name).copied())
                    .or(*index),
            },
            Expr::Cgroup { path, id } => Expr::Cgroup {
                path: path.clone(),
                id: facts.cgroups.get(path).copied().or(*id),
            },
            Expr::Not(e) => Expr::Not(Box::new(e.bind(facts))),
            Expr::And(a, b) => Expr::And(Box::new(a.bind(facts)), Box::new(b.bind(facts))),
            Expr::Or(a, b) => Expr::Or(Box::new(a.bind(facts)), Box::new(b.bind(facts))),
            e => e.clone(),
        }
    }

    /// The states a matching socket can be in (a superset), so a source
    /// can ask the kernel for only those.
    pub fn states(&self) -> StateSet {
        match self {
            Expr::State(set) => *set,
            Expr::And(a, b) => a.states().intersection(b.states()),
            Expr::Or(a, b) => a.states().union(b.states()),
            _ => StateSet::ALL,
        }
    }

    /// Whether a socket of `family` can match (false where every branch
    /// names the other family, as `-4` and `-6` do): that family's table
    /// need not be read.
    pub fn may_be(&self, family: Family) -> bool {
        match self {
            Expr::Family(f) => *f == family,
            Expr::And(a, b) => a.may_be(family) && b.may_be(family),
            Expr::Or(a, b) => a.may_be(family) || b.may_be(family),
            _ => true,
        }
    }

    /// Whether `socket` matches. `diag` (what netlink adds) is needed for
    /// `Dev`, `owners` for `Pid` and `Process`; without them they match
    /// nothing.
    pub fn matches(&self, s: &Socket, diag: Option<&Diag>, owners: Option<&OwnerScan>) -> bool {
        self.test(s, diag, &|s| owners.map(|o| o.owners(s)))
    }

    /// Whether `socket` matches, with its owners given as a list (None:
    /// not known): a recorded connection's, which no scan holds.
    pub fn matches_owners(
        &self,
        s: &Socket,
        diag: Option<&Diag>,
        owners: Option<&[Owner]>,
    ) -> bool {
        self.test(s, diag, &|_| owners)
    }

    /// Whether the socket of `entry` matches, with its owners and
    /// workload as the entry has them.
    pub fn matches_entry(&self, entry: &Entry<'_>) -> bool {
        let owners = entry.owners.map(|o| o.owners());
        self.test_with(entry.socket, entry.diag, &|_| owners, &|| {
            entry.workload.map(|w| &**w)
        })
    }

    /// The test behind all: `owners` looks a socket's owners up, only
    /// when a condition needs them.
    fn test<'o>(
        &self,
        s: &Socket,
        diag: Option<&Diag>,
        owners: &dyn Fn(&Socket) -> Option<&'o [Owner]>,
    ) -> bool {
        self.test_with(s, diag, owners, &|| None)
    }

    /// [`Expr::test`] with the socket's workload, looked up only when a
    /// condition needs it.
    pub(crate) fn test_with<'o, 'w>(
        &self,
        s: &Socket,
        diag: Option<&Diag>,
        owners: &dyn Fn(&Socket) -> Option<&'o [Owner]>,
        workload: &dyn Fn() -> Option<&'w Workload>,
    ) -> bool {
        let port = |side: Side, test: &dyn Fn(u16) -> bool| match side {
            Side::Local => test(s.local.port()),
            Side::Remote => test(s.remote.port()),
            Side::Either => test(s.local.port()) || test(s.remote.port()),
        };
        match self {
            Expr::All => true,
            Expr::State(set) => set.contains(s.state),
            Expr::Family(f) => s.family == *f,
            Expr::Port { side, cmp, port: p } => port(*side, &|x| cmp.holds(x, *p)),
            Expr::PortRange { side, range } => port(*side, &|x| range.contains(x)),
            Expr::Addr { side, net, port: p } => {
                let end = |addr: std::net::SocketAddr| {
                    net.contains(addr.ip()) && p.is_none_or(|p| p == addr.port())
                };
                match side {
                    Side::Local => end(s.local),
                    Side::Remote => end(s.remote),
                    Side::Either => end(s.local) || end(s.remote),
                }
            }
            Expr::Autobound { ephemeral } => ephemeral.contains(s.local.port()),
            Expr::Dev { index, .. } => {
                index.is_some_and(|i| diag.is_some_and(|d| d.interface == i))
            }
            Expr::Uid(uid) => s.uid == *uid,
            Expr::Cgroup { id, .. } => id.is_some_and(|i| diag.is_some_and(|d| d.cgroup_id == i)),
            Expr::Unit(_) | Expr::Container(_) | Expr::Pod(_) => {
                workload().is_some_and(|w| workload_matches(self, w))
            }
            Expr::Pid(pid) => owners(s).is_some_and(|o| o.iter().any(|o| o.pid == *pid)),
            Expr::Process(name) => {
                owners(s).is_some_and(|o| o.iter().any(|o| *o.command == **name))
            }
            Expr::Not(e) => !e.test_with(s, diag, owners, workload),
            Expr::And(a, b) => {
                a.test_with(s, diag, owners, workload) && b.test_with(s, diag, owners, workload)
            }
            Expr::Or(a, b) => {
                a.test_with(s, diag, owners, workload) || b.test_with(s, diag, owners, workload)
            }
        }
    }
}

/// Whether workload condition `e` holds for `w`.
fn workload_matches(e: &Expr, w: &Workload) -> bool {
    let some =
        |value: &Option<String>, pattern: &str| value.as_deref().is_some_and(|v| glob(pattern, v));
    match e {
        Expr::Unit(p) => some(&w.unit, p),
        Expr::Container(p) => {
            let id = w.container_id.as_deref().unwrap_or("");
            let by_id = p.len() >= 12 && !p.contains('*') && id.starts_with(p.as_str());
            some(&w.container_name, p) || by_id || (!id.is_empty() && glob(p, id))
        }
        Expr::Pod(p) => match p.split_once('/') {
            Some((ns, name)) => some(&w.pod_namespace, ns) && some(&w.pod_name, name),
            None => some(&w.pod_name, p),
        },
        _ => false,
    }
}

/// Whether `text` matches `pattern`, where `*` stands for any text
/// (nothing else is special).
pub fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if text.len() < first.len() + last.len() || !text.starts_with(first) || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}
