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

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use crate::diag::Diag;
use crate::owners::{Owner, OwnerScan};
use crate::socket::{Family, Socket, State, UnknownState};

/// A set of TCP states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct StateSet(u32);

impl StateSet {
    pub const EMPTY: StateSet = StateSet(0);
    /// Every state but BOUND_INACTIVE (sockets bound and neither listening
    /// nor connected): as in `ss`, those are shown only when named
    /// (`state bound-inactive`), since finding them makes the kernel walk
    /// its bind table too, and /proc never lists them.
    pub const ALL: StateSet = StateSet(!(1 << 13));

    pub fn of(states: &[State]) -> StateSet {
        let mut set = StateSet::EMPTY;
        for &s in states {
            set.insert(s);
        }
        set
    }

    pub fn insert(&mut self, state: State) {
        self.0 |= 1 << (state.code() % 32);
    }

    pub fn contains(self, state: State) -> bool {
        self.0 & (1 << (state.code() % 32)) != 0
    }

    pub fn union(self, other: StateSet) -> StateSet {
        StateSet(self.0 | other.0)
    }

    pub fn intersection(self, other: StateSet) -> StateSet {
        StateSet(self.0 & other.0)
    }

    /// The states of [`StateSet::ALL`] not in `self`.
    pub fn complement(self) -> StateSet {
        StateSet(StateSet::ALL.0 & !self.0)
    }

    /// The kernel's bit mask over state codes (`1 << code`), as inet_diag
    /// requests take it.
    pub fn kernel_mask(self) -> u32 {
        self.0
    }

    /// A state name (kernel or `ss` spelling) or one of `ss`'s groups:
    /// `all`, `connected` (all but LISTEN and CLOSE), `synchronized`
    /// (connected but not SYN_SENT), `bucket` (SYN_RECV and TIME_WAIT, the
    /// mini-sockets) and `big` (all but bucket). `bound-inactive` (sockets
    /// bound and neither listening nor connected: netlink only, which
    /// reports them in state CLOSE) is in none of them.
    pub fn from_name(name: &str) -> Result<StateSet, UnknownState> {
        let listed = StateSet::of(&State::LISTED);
        let connected = StateSet(listed.0 & !StateSet::of(&[State::Listen, State::Close]).0);
        let bucket = StateSet::of(&[State::SynRecv, State::TimeWait]);
        Ok(match name.to_ascii_lowercase().as_str() {
            "all" => StateSet::ALL,
            "connected" => connected,
            "synchronized" => StateSet(connected.0 & !StateSet::of(&[State::SynSent]).0),
            "bucket" => bucket,
            "big" => StateSet(listed.0 & !bucket.0),
            // Sockets only bound: the kernel finds them in its bind table
            // when BOUND_INACTIVE is asked and reports them as CLOSE.
            "bound-inactive" | "bound_inactive" => {
                StateSet::of(&[State::BoundInactive, State::Close])
            }
            _ => StateSet::of(&[name.parse::<State>()?]),
        })
    }
}

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
        let addr = addr.trim_start_matches('[').trim_end_matches(']');
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

    /// Whether evaluating needs what only netlink reports (`dev`).
    pub fn needs_netlink(&self) -> bool {
        self.has(&|e| matches!(e, Expr::Dev { .. }))
    }

    /// Whether the expression needs facts of the namespace it is evaluated
    /// in ([`Expr::bind`]): `autobound` or `dev NAME`.
    pub fn needs_facts(&self) -> bool {
        self.has(&|e| matches!(e, Expr::Autobound { .. } | Expr::Dev { .. }))
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

    /// The test behind both: `owners` looks a socket's owners up, only
    /// when a condition needs them.
    fn test<'o>(
        &self,
        s: &Socket,
        diag: Option<&Diag>,
        owners: &dyn Fn(&Socket) -> Option<&'o [Owner]>,
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
            Expr::Pid(pid) => owners(s).is_some_and(|o| o.iter().any(|o| o.pid == *pid)),
            Expr::Process(name) => {
                owners(s).is_some_and(|o| o.iter().any(|o| *o.command == **name))
            }
            Expr::Not(e) => !e.test(s, diag, owners),
            Expr::And(a, b) => a.test(s, diag, owners) && b.test(s, diag, owners),
            Expr::Or(a, b) => a.test(s, diag, owners) || b.test(s, diag, owners),
        }
    }

    /// Parse the expression language (see the module documentation).
    /// Bounded: at most [`MAX_WORDS`] words and [`MAX_DEPTH`] levels of
    /// parentheses and `not`, so no input can exhaust the stack.
    pub fn parse(text: &str) -> Result<Expr, FilterError> {
        let words = split_words(text);
        if words.len() > MAX_WORDS {
            return Err(FilterError {
                word: MAX_WORDS + 1,
                text: excerpt(&words[MAX_WORDS]),
                message: format!("a filter has at most {MAX_WORDS} words"),
            });
        }
        let mut parser = Parser {
            words,
            at: 0,
            depth: 0,
        };
        if parser.words.is_empty() {
            return Ok(Expr::All);
        }
        // ss's leading state words: `state A state B` is the union,
        // `exclude C` takes C away (from every state when it comes first),
        // as ss reads them before its expression.
        if let Some(states) = parser.leading_states()? {
            if parser.at == parser.words.len() {
                return Ok(Expr::State(states));
            }
            let rest = parser.list()?;
            if parser.at < parser.words.len() {
                return Err(parser.error("expected 'and', 'or' or the end of the filter"));
            }
            return Ok(Expr::State(states).and(rest));
        }
        let expr = parser.list()?;
        if parser.at < parser.words.len() {
            return Err(parser.error("expected 'and', 'or' or the end of the filter"));
        }
        Ok(expr)
    }
}

/// The most words a filter expression may have.
pub const MAX_WORDS: usize = 10_000;
/// The deepest a filter may nest parentheses and `not`.
pub const MAX_DEPTH: usize = 100;

/// At most 40 characters of `word`, for an error message.
pub fn excerpt(word: &str) -> String {
    const MAX: usize = 40;
    if word.chars().count() <= MAX {
        word.to_string()
    } else {
        let head: String = word.chars().take(MAX).collect();
        format!("{head}... ({} characters)", word.chars().count())
    }
}

/// A filter expression that could not be parsed, pointing at the word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError {
    /// 1-based index of the offending word (0: the end of the filter).
    pub word: usize,
    /// The offending word ("" at the end).
    pub text: String,
    pub message: String,
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.word == 0 {
            write!(f, "filter: at the end: {}", self.message)
        } else {
            write!(
                f,
                "filter: word {} '{}': {}",
                self.word, self.text, self.message
            )
        }
    }
}

impl std::error::Error for FilterError {}

/// Split on white space, with `(`, `)` and a leading `!` as words of their
/// own.
fn split_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    for raw in text.split_whitespace() {
        let mut w = raw;
        loop {
            if let Some(rest) = w.strip_prefix('(') {
                words.push("(".to_string());
                w = rest;
            } else if let Some(rest) = w
                .strip_prefix('!')
                .filter(|r| !r.is_empty() && !r.starts_with('='))
            {
                words.push("!".to_string());
                w = rest;
            } else {
                break;
            }
        }
        let mut closing = 0;
        while let Some(rest) = w.strip_suffix(')') {
            closing += 1;
            w = rest;
        }
        if !w.is_empty() {
            words.push(w.to_string());
        }
        words.extend(std::iter::repeat_n(")".to_string(), closing));
    }
    words
}

struct Parser {
    words: Vec<String>,
    at: usize,
    /// Parentheses and `not`s open around the word at `at`.
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&str> {
        self.words.get(self.at).map(String::as_str)
    }

    fn error(&self, message: impl Into<String>) -> FilterError {
        match self.words.get(self.at) {
            Some(text) => FilterError {
                word: self.at + 1,
                text: excerpt(text),
                message: message.into(),
            },
            None => FilterError {
                word: 0,
                text: String::new(),
                message: message.into(),
            },
        }
    }

    /// A list of conditions joined by `and`, `or` or nothing (`and`), all
    /// of one precedence and read from left to right, as `ss`'s grammar
    /// reads them: `A or B and C` is `(A or B) and C`.
    fn list(&mut self) -> Result<Expr, FilterError> {
        let mut left = self.unary()?;
        loop {
            let or = match self.peek() {
                Some("or" | "||" | "|") => true,
                Some("and" | "&&" | "&") => false,
                Some(")") | None => return Ok(left),
                Some(_) => {
                    // Juxtaposition means "and", as in ss.
                    let right = self.unary()?;
                    left = Expr::And(Box::new(left), Box::new(right));
                    continue;
                }
            };
            self.at += 1;
            let right = self.unary()?;
            left = if or {
                Expr::Or(Box::new(left), Box::new(right))
            } else {
                Expr::And(Box::new(left), Box::new(right))
            };
        }
    }

    /// The run of `state NAME` and `exclude NAME` words the filter starts
    /// with, as ss reads them: a union of the states named, less those
    /// excluded (an `exclude` first starts from every state). `None` when
    /// the filter does not start with such a run, or when the run is one
    /// `state NAME` followed by `or` (then it is an ordinary condition of
    /// the expression). After the run, one `and` is skipped.
    fn leading_states(&mut self) -> Result<Option<StateSet>, FilterError> {
        let start = self.at;
        let mut set: Option<StateSet> = None;
        let mut terms = 0;
        while let Some(word @ ("state" | "exclude" | "excl")) =
            self.peek().map(str::to_string).as_deref()
        {
            let exclude = word != "state";
            self.at += 1;
            let Some(name) = self.peek().map(str::to_string) else {
                return Err(self.error(format!("expected a state name after '{word}'")));
            };
            let named = StateSet::from_name(&name).map_err(|e| self.error(e.to_string()))?;
            self.at += 1;
            terms += 1;
            let base = set.unwrap_or(if exclude {
                StateSet::ALL
            } else {
                StateSet::EMPTY
            });
            set = Some(if exclude {
                base.intersection(named.complement())
            } else {
                base.union(named)
            });
        }
        let Some(set) = set else {
            return Ok(None);
        };
        match self.peek() {
            Some("or" | "||" | "|") if terms == 1 && self.words[start] == "state" => {
                self.at = start;
                return Ok(None);
            }
            Some("and" | "&&" | "&") => self.at += 1,
            _ => {}
        }
        Ok(Some(set))
    }

    /// The optional `=` or `!=` after `src`, `dst` or `dev`: whether it
    /// negates.
    fn negation(&mut self) -> bool {
        let negate = match self.peek() {
            Some("=" | "==" | "eq") => false,
            Some("!=" | "ne" | "neq") => true,
            _ => return false,
        };
        self.at += 1;
        negate
    }

    /// One level deeper (a parenthesis or a `not`), within the limit.
    fn deeper(&mut self) -> Result<(), FilterError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error(format!(
                "nested more than {MAX_DEPTH} deep (parentheses and 'not'): the limit"
            )));
        }
        Ok(())
    }

    fn unary(&mut self) -> Result<Expr, FilterError> {
        if matches!(self.peek(), Some("not" | "!")) {
            self.deeper()?;
            self.at += 1;
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, FilterError> {
        let Some(word) = self.peek().map(str::to_string) else {
            return Err(self.error(
                "expected a condition (state, sport, dport, src, dst, dev, autobound) or '('",
            ));
        };
        match word.as_str() {
            "(" => {
                self.deeper()?;
                self.at += 1;
                let inner = self.list()?;
                if self.peek() != Some(")") {
                    return Err(self.error("expected ')'"));
                }
                self.at += 1;
                self.depth -= 1;
                Ok(inner)
            }
            "state" => {
                self.at += 1;
                let Some(name) = self.peek().map(str::to_string) else {
                    return Err(self.error("expected a state name after 'state'"));
                };
                let set = StateSet::from_name(&name).map_err(|e| self.error(e.to_string()))?;
                self.at += 1;
                Ok(Expr::State(set))
            }
            "sport" | "dport" => {
                self.at += 1;
                let side = if word == "sport" {
                    Side::Local
                } else {
                    Side::Remote
                };
                let cmp = match self.peek().and_then(Cmp::from_word) {
                    Some(cmp) => {
                        self.at += 1;
                        cmp
                    }
                    None => Cmp::Eq,
                };
                let Some(text) = self.peek().map(str::to_string) else {
                    return Err(self.error(format!("expected a port after '{word}' (e.g. :443)")));
                };
                let port = port_or_service(text.strip_prefix(':').unwrap_or(&text))
                    .map_err(|m| self.error(m))?;
                self.at += 1;
                Ok(Expr::Port { side, cmp, port })
            }
            "src" | "dst" => {
                self.at += 1;
                let side = if word == "src" {
                    Side::Local
                } else {
                    Side::Remote
                };
                let negate = self.negation();
                let Some(text) = self.peek().map(str::to_string) else {
                    return Err(self.error(format!(
                        "expected an address after '{word}' (e.g. 10.0.0.0/8)"
                    )));
                };
                let (nets, port) = parse_endpoint(&text).map_err(|m| self.error(m))?;
                self.at += 1;
                let e = match nets {
                    None => match port {
                        Some(port) => Expr::Port {
                            side,
                            cmp: Cmp::Eq,
                            port,
                        },
                        None => Expr::All,
                    },
                    Some(nets) => {
                        Expr::any(nets.into_iter().map(|net| Expr::Addr { side, net, port }))
                    }
                };
                Ok(if negate { Expr::Not(Box::new(e)) } else { e })
            }
            "dev" => {
                self.at += 1;
                let negate = self.negation();
                let Some(name) = self.peek().map(str::to_string) else {
                    return Err(self.error("expected an interface name after 'dev' (e.g. eth0)"));
                };
                self.at += 1;
                let index = name.parse::<u32>().ok();
                let e = Expr::Dev { name, index };
                Ok(if negate { Expr::Not(Box::new(e)) } else { e })
            }
            "autobound" => {
                self.at += 1;
                Ok(Expr::Autobound {
                    ephemeral: Facts::default().ephemeral,
                })
            }
            ")" => Err(self.error("unexpected ')'")),
            _ => Err(self.error(
                "expected a condition (state, sport, dport, src, dst, dev, autobound) or '('",
            )),
        }
    }
}

/// The host part and the port of `src`/`dst`'s operand, as `ss` splits
/// them: `10.0.0.0/8`, `10/8`, `127.0.0.1:80`, `[::1]:443`, `[::1]`,
/// `::1/128`, `*:22` or `:22` (any address), `localhost:http`. The
/// addresses are None for any address; a host name gives each address
/// /etc/hosts has for it.
fn parse_endpoint(text: &str) -> Result<(Option<Vec<Cidr>>, Option<u16>), String> {
    let port = |p: &str| -> Result<Option<u16>, String> {
        match p {
            "" | "*" => Ok(None),
            p => port_or_service(p)
                .map(Some)
                .map_err(|m| format!("'{}': {m}", excerpt(text))),
        }
    };
    let (host, port_text) = if let Some(rest) = text.strip_prefix('[') {
        let (inside, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("'{}': missing ']'", excerpt(text)))?;
        // `[fe80::]/10:22`: the prefix length after the bracket.
        let (length, port_text) = match after.split_once(':') {
            Some((l, p)) => (l, Some(p)),
            None => (after, None),
        };
        (format!("{inside}{length}"), port_text)
    } else if let Some(rest) = text.strip_prefix('*') {
        (String::new(), Some(rest.strip_prefix(':').unwrap_or(rest)))
    } else if text.matches(':').count() > 1 {
        // IPv6 without brackets: no port (ss refuses these but for a
        // prefix; reading the address whole gives no other answer).
        (text.to_string(), None)
    } else {
        match text.split_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (text.to_string(), None),
        }
    };
    let port = match port_text {
        Some(p) => port(p)?,
        None => None,
    };
    if host.is_empty() || host == "*" {
        return Ok((None, port));
    }
    match host.parse::<Cidr>() {
        Ok(net) => Ok((Some(vec![net]), port)),
        Err(e) if host.contains('/') || host.starts_with(|c: char| c.is_ascii_digit()) => Err(e),
        Err(_) => {
            let found = hosts_file_addresses(&host);
            if found.is_empty() {
                return Err(format!(
                    "'{}' is not an address, a prefix or a name in /etc/hosts (tcptab looks up no names over the network)",
                    excerpt(&host)
                ));
            }
            let nets = found
                .into_iter()
                .map(|address| Cidr {
                    address,
                    prefix: if address.is_ipv4() { 32 } else { 128 },
                })
                .collect();
            Ok((Some(nets), port))
        }
    }
}

/// A port number, or a TCP service name from /etc/services (`http`).
fn port_or_service(text: &str) -> Result<u16, String> {
    if let Ok(port) = text.parse::<u16>() {
        return Ok(port);
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("'{}' is not a port (0 to 65535)", excerpt(text)));
    }
    service_port(text).ok_or_else(|| {
        format!(
            "'{}' is not a port number or a TCP service in /etc/services (e.g. :443 or :https)",
            excerpt(text)
        )
    })
}

/// The port of a TCP service named `name` (or by an alias) in
/// /etc/services.
fn service_port(name: &str) -> Option<u16> {
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
fn hosts_file_addresses(name: &str) -> Vec<IpAddr> {
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

impl fmt::Display for Expr {
    /// The expression in the filter language (compound operands in
    /// parentheses), e.g. for saying what ran in the kernel.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let side = |side: Side, port: bool| match (side, port) {
            (Side::Local, true) => "sport",
            (Side::Remote, true) => "dport",
            (Side::Local, false) => "src",
            (Side::Remote, false) => "dst",
            (Side::Either, true) => "port",
            (Side::Either, false) => "host",
        };
        let operand = |f: &mut fmt::Formatter<'_>, e: &Expr| match e {
            Expr::And(..) | Expr::Or(..) => write!(f, "( {e} )"),
            e => write!(f, "{e}"),
        };
        match self {
            Expr::All => write!(f, "all"),
            Expr::State(set) => {
                let names: Vec<&str> = State::ALL
                    .iter()
                    .filter(|s| set.contains(**s))
                    .filter_map(|s| s.ss_name())
                    .collect();
                write!(f, "state {}", names.join("|"))
            }
            Expr::Family(family) => write!(f, "family {}", family.as_str()),
            Expr::Port { side: s, cmp, port } => {
                let op = match cmp {
                    Cmp::Eq => "=",
                    Cmp::Ne => "!=",
                    Cmp::Lt => "<",
                    Cmp::Le => "<=",
                    Cmp::Gt => ">",
                    Cmp::Ge => ">=",
                };
                write!(f, "{} {op} :{port}", side(*s, true))
            }
            Expr::PortRange { side: s, range } => {
                write!(f, "{} :{}-{}", side(*s, true), range.low, range.high)
            }
            Expr::Addr { side: s, net, port } => {
                let host = match net.address {
                    IpAddr::V6(a) => format!("[{a}]/{}", net.prefix),
                    IpAddr::V4(a) => format!("{a}/{}", net.prefix),
                };
                match port {
                    Some(p) => write!(f, "{} {host}:{p}", side(*s, false)),
                    None => write!(f, "{} {host}", side(*s, false)),
                }
            }
            Expr::Autobound { .. } => write!(f, "autobound"),
            Expr::Dev { name, .. } => write!(f, "dev {name}"),
            Expr::Uid(uid) => write!(f, "uid {uid}"),
            Expr::Pid(pid) => write!(f, "pid {pid}"),
            Expr::Process(name) => write!(f, "process {name}"),
            Expr::Not(e) => {
                write!(f, "not ")?;
                operand(f, e)
            }
            Expr::And(a, b) | Expr::Or(a, b) => {
                operand(f, a)?;
                write!(
                    f,
                    " {} ",
                    if matches!(self, Expr::And(..)) {
                        "and"
                    } else {
                        "or"
                    }
                )?;
                operand(f, b)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_and_length_are_bounded() {
        let deep = format!("{}sport = :22{}", "( ".repeat(2_000), " )".repeat(2_000));
        let e = Expr::parse(&deep).unwrap_err();
        assert!(e.message.contains("nested more than 100 deep"), "{e}");
        let nots = format!("{}sport = :22", "not ".repeat(5_000));
        assert!(Expr::parse(&nots)
            .unwrap_err()
            .message
            .contains("the limit"));
        // Within the limit it parses, and evaluates.
        let ok = format!("{}sport = :22{}", "( ".repeat(100), " )".repeat(100));
        assert!(Expr::parse(&ok).is_ok());
        let long = vec!["sport = :22"; 4_000].join(" or ");
        let e = Expr::parse(&long).unwrap_err();
        assert!(e.message.contains("at most 10000 words"), "{e}");
        let fine = vec!["sport = :22"; 2_000].join(" or ");
        let expr = Expr::parse(&fine).unwrap();
        let socket = crate::Socket::empty(crate::Family::Ipv4, crate::RowKind::Full);
        assert!(!expr.matches(&socket, None, None));
    }

    #[test]
    fn leading_states_read_as_ss_reads_them() {
        let set = |e: Expr| match e {
            Expr::State(s) => s,
            other => panic!("{other:?}"),
        };
        let union = set(Expr::parse("state established state close-wait").unwrap());
        assert!(union.contains(State::Established) && union.contains(State::CloseWait));
        assert!(!union.contains(State::Listen));
        let excluded = set(Expr::parse("exclude listening").unwrap());
        assert!(!excluded.contains(State::Listen) && excluded.contains(State::TimeWait));
        let all_but = set(Expr::parse("state all exclude established").unwrap());
        assert!(!all_but.contains(State::Established) && all_but.contains(State::Listen));
        // One `state` before `or` is an ordinary condition of the expression.
        assert!(matches!(
            Expr::parse("state established or state listening").unwrap(),
            Expr::Or(..)
        ));
        // With an expression after the run: and-ed, one `and` skipped.
        let e = Expr::parse("state established state close-wait and sport = :22").unwrap();
        assert!(matches!(e, Expr::And(..)), "{e:?}");
        assert!(Expr::parse("state").is_err());
        assert!(Expr::parse("exclude nosuchstate").is_err());
    }

    #[test]
    fn a_bad_word_is_quoted_short() {
        let word = "x".repeat(100_000);
        let e = Expr::parse(&word).unwrap_err().to_string();
        assert!(e.len() < 200, "{} bytes", e.len());
        assert!(e.contains("(100000 characters)"), "{e}");
        let e = word.parse::<PortRange>().unwrap_err();
        assert!(e.len() < 200, "{e}");
    }
    use crate::procnet::{parse_line, ByteOrder};

    fn sock(line: &str) -> Socket {
        parse_line(line.as_bytes(), ByteOrder::Little).unwrap()
    }

    const HTTPS: &str = "   7: 0500000A:A8CA 22D8B85D:01BB 01 000005A8:00000000 01:00000017 00000000  1000        0 98765 2 0000000000000000 23 4 30 10 -1";
    const LISTEN: &str = "   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 23145 1 0000000000000000 100 0 0 10 0";
    const MAPPED: &str = "   7: 0000000000000000FFFF00000A01A8C0:1F90 0000000000000000FFFF00003201A8C0:C93B 01 00000000:00000000 00:00000000 00000000  1000        0 99100 1 0000000000000000 20 4 0 10 -1";

    fn m(expr: &str, line: &str) -> bool {
        Expr::parse(expr).unwrap().matches(&sock(line), None, None)
    }

    #[test]
    fn expressions() {
        assert!(m(
            "state established and ( dport = :443 or dport = :80 )",
            HTTPS
        ));
        assert!(!m(
            "state established and ( dport = :22 or dport = :80 )",
            HTTPS
        ));
        assert!(m("dst 93.184.216.0/24", HTTPS));
        assert!(m("dst 93.184.216.34:443", HTTPS));
        assert!(!m("dst 93.184.216.34:80", HTTPS));
        assert!(m("src 10.0.0.5 sport > :1024", HTTPS));
        assert!(m("not state listening", HTTPS));
        assert!(m("!(state listening)", HTTPS));
        assert!(m("state listening", LISTEN));
        assert!(m("sport = :22 || sport = :23", LISTEN));
        assert!(m("state connected", HTTPS) && !m("state connected", LISTEN));
        // A mapped address matches its IPv4 form, and the mapped form.
        assert!(m("src 192.168.1.0/24", MAPPED));
        assert!(m("src ::ffff:192.168.1.10", MAPPED));
        assert!(m("dst [::ffff:192.168.1.50]:51515", MAPPED));
        assert!(m("", HTTPS));
    }

    #[test]
    fn errors_point_at_the_word() {
        let e = Expr::parse("state established and ( dport = :nosuchservice )").unwrap_err();
        assert_eq!((e.word, e.text.as_str()), (7, ":nosuchservice"));
        assert!(e.message.contains("/etc/services"), "{e}");
        let e = Expr::parse("dst nosuchhost.invalid").unwrap_err();
        assert!(e.message.contains("/etc/hosts"), "{e}");
        let e = Expr::parse("dport = :70000").unwrap_err();
        assert!(e.message.contains("not a port"), "{e}");
        let e = Expr::parse("state estabished").unwrap_err();
        assert_eq!(e.word, 2);
        assert!(
            e.to_string().contains("unknown TCP state 'estabished'"),
            "{e}"
        );
        let e = Expr::parse("( dport = :80").unwrap_err();
        assert_eq!(e.word, 0, "{e}");
        let e = Expr::parse("dst 10.0.0.0/33").unwrap_err();
        assert_eq!(e.word, 2, "{e}");
        let e = Expr::parse("dport = :80 )").unwrap_err();
        assert_eq!(e.word, 4, "{e}");
        let e = Expr::parse("frobnicate").unwrap_err();
        assert_eq!(e.to_string(), "filter: word 1 'frobnicate': expected a condition (state, sport, dport, src, dst, dev, autobound) or '('");
    }

    #[test]
    fn and_and_or_bind_equally_from_the_left() {
        // ss: `A or B and C` is `(A or B) and C`.
        let e = Expr::parse("dport = :80 or sport = :80 and src 127.0.0.5").unwrap();
        assert_eq!(
            e.to_string(),
            "( dport = :80 or sport = :80 ) and src 127.0.0.5/32"
        );
        let e = Expr::parse("sport = :1 & dport = :2 | sport = :3").unwrap();
        assert_eq!(e.to_string(), "( sport = :1 and dport = :2 ) or sport = :3");
        let e = Expr::parse("sport = :1 or ( dport = :2 dport = :3 )").unwrap();
        assert_eq!(e.to_string(), "sport = :1 or ( dport = :2 and dport = :3 )");
    }

    #[test]
    fn ss_words_for_ports_hosts_devices() {
        let s = |t: &str| Expr::parse(t).unwrap().to_string();
        assert_eq!(s("dport = :http"), "dport = :80");
        assert_eq!(s("sport geq :ssh"), "sport >= :22");
        assert_eq!(s("dst localhost:https"), "dst 127.0.0.1/32:443");
        assert_eq!(s("src *:22"), "sport = :22");
        assert_eq!(s("dst [::1]:443"), "dst [::1]/128:443");
        assert_eq!(s("dst 10/8"), "dst 10.0.0.0/8");
        assert_eq!(s("dev lo or dev != 3"), "dev lo or not dev 3");
        assert_eq!(s("autobound"), "autobound");
        // Facts bind per namespace.
        let mut facts = Facts::default();
        facts.interfaces.insert("lo".into(), 1);
        facts.ephemeral = PortRange {
            low: 1000,
            high: 2000,
        };
        let bound = Expr::parse("dev lo and autobound").unwrap().bind(&facts);
        let mut socket = crate::Socket::empty(crate::Family::Ipv4, crate::RowKind::Full);
        socket.local = "127.0.0.1:1500".parse().unwrap();
        let diag = Diag {
            interface: 1,
            ..Default::default()
        };
        assert!(bound.matches(&socket, Some(&diag), None));
        assert!(!bound.matches(&socket, None, None), "dev needs netlink");
        socket.local = "127.0.0.1:2500".parse().unwrap();
        assert!(!bound.matches(&socket, Some(&diag), None));
        let unbound = Expr::parse("dev eth9").unwrap().bind(&facts);
        assert!(!unbound.matches(&socket, Some(&Diag::default()), None));
    }

    #[test]
    fn state_groups_follow_ss() {
        let bucket = StateSet::from_name("bucket").unwrap();
        assert!(bucket.contains(State::TimeWait) && bucket.contains(State::SynRecv));
        assert!(!bucket.contains(State::Established));
        let sync = StateSet::from_name("synchronized").unwrap();
        assert!(!sync.contains(State::SynSent) && sync.contains(State::CloseWait));
        let big = StateSet::from_name("big").unwrap();
        assert!(big.contains(State::Listen) && !big.contains(State::TimeWait));
        assert!(StateSet::from_name("FIN-WAIT-2")
            .unwrap()
            .contains(State::FinWait2));
    }

    #[test]
    fn ports_and_prefixes() {
        assert_eq!(
            "1000-2000".parse::<PortRange>().unwrap(),
            PortRange {
                low: 1000,
                high: 2000
            }
        );
        assert_eq!(
            ":443".parse::<PortRange>().unwrap(),
            PortRange {
                low: 443,
                high: 443
            }
        );
        assert!("2000-1000".parse::<PortRange>().is_err());
        assert!("http".parse::<PortRange>().is_err());
        // A mapped prefix holds mapped addresses only; an IPv4 prefix both.
        let mapped: Cidr = "::ffff:10.0.0.0/104".parse().unwrap();
        let v4: Cidr = "10/8".parse().unwrap();
        assert_eq!(v4, "10.0.0.0/8".parse().unwrap());
        let m = |a: &str| a.parse::<IpAddr>().unwrap();
        assert!(mapped.contains(m("::ffff:10.1.2.3")) && !mapped.contains(m("10.1.2.3")));
        assert!(v4.contains(m("::ffff:10.1.2.3")) && v4.contains(m("10.1.2.3")));
        // Length 0 holds a family (IPv4's with the mapped addresses), as
        // the kernel judges it.
        let any4: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(!any4.contains(m("::1")) && any4.contains(m("::ffff:1.2.3.4")));
        assert!(!"::/0".parse::<Cidr>().unwrap().contains(m("1.2.3.4")));
        assert_eq!(
            "127".parse::<Cidr>().unwrap(),
            "127.0.0.0/32".parse().unwrap()
        );
        assert!("010.0.0.1".parse::<Cidr>().is_err());
        assert!("1.2.3.4.5".parse::<Cidr>().is_err());
        assert!("10.0.0.0/8x".parse::<Cidr>().is_err());
        assert!("fe80::/10"
            .parse::<Cidr>()
            .unwrap()
            .contains("fe80::1".parse().unwrap()));
    }
}
