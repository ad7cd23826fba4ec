//! The expression language's parser: words, `ss`'s leading states and
//! precedence, endpoints and service names, errors that point at the word.

use std::fmt;

use super::facts::{hosts_file_addresses, service_port, Facts};
use super::{Cidr, Cmp, Expr, Side};
use crate::model::{State, StateSet};

impl Expr {
    /// Parse the expression language (see the module documentation).
    /// Bounded: at most [`MAX_WORDS`] words and [`MAX_DEPTH`] levels of
    /// parentheses and `not`, so no input can exhaust the stack.
    pub fn parse(text: &str) -> Result<Expr, FilterError> {
        Expr::parse_naming(text).map(|(expr, _)| expr)
    }

    /// [`parse`](Expr::parse), and the states the text names one by one:
    /// a state word with a single state (`state listening`), not a group
    /// (`state all`, `state big`), not an `exclude`, not under a `not`.
    /// What a destructive command asks to be named before it touches those
    /// states' sockets.
    pub fn parse_naming(text: &str) -> Result<(Expr, StateSet), FilterError> {
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
            negated: 0,
            named: StateSet::EMPTY,
        };
        if parser.words.is_empty() {
            return Ok((Expr::All, StateSet::EMPTY));
        }
        let expr = parser.whole()?;
        Ok((expr, parser.named))
    }
}

impl Parser {
    /// Every word: ss's leading state words (`state A state B` is the
    /// union, `exclude C` takes C away, from every state when it comes
    /// first, as ss reads them before its expression), then the list.
    fn whole(&mut self) -> Result<Expr, FilterError> {
        let leading = self.leading_states()?;
        let expr = match leading {
            Some(states) if self.at == self.words.len() => return Ok(Expr::State(states)),
            Some(states) => Expr::State(states).and(self.list()?),
            None => self.list()?,
        };
        if self.at < self.words.len() {
            return Err(self.error("expected 'and', 'or' or the end of the filter"));
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
    /// `not`s open around the word at `at`.
    negated: usize,
    /// The states named one by one (not by a group, an `exclude` or under
    /// a `not`): what a filter asks for by name.
    named: StateSet,
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
            if !exclude {
                self.by_name(&name);
            }
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

    /// A state word: a state named by itself (not a group), outside every
    /// `not`, is named.
    fn by_name(&mut self, name: &str) {
        if self.negated.is_multiple_of(2) {
            if let Ok(state) = name.parse::<State>() {
                self.named.insert(state);
            }
        }
    }

    /// The optional `=` or `!=` after `src`, `dst`, `dev` or a workload
    /// word: whether it negates.
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
            self.negated += 1;
            let inner = self.unary()?;
            self.negated -= 1;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, FilterError> {
        let Some(word) = self.peek().map(str::to_string) else {
            return Err(self.error(
                "expected a condition (state, sport, dport, src, dst, dev, autobound, cgroup, unit, container, pod) or '('",
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
                self.by_name(&name);
                self.at += 1;
                Ok(Expr::State(set))
            }
            "sport" | "dport" => {
                self.at += 1;
                let side = side_of(&word);
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
                let side = side_of(&word);
                let negate = self.negation();
                let Some(text) = self.peek().map(str::to_string) else {
                    return Err(self.error(format!(
                        "expected an address after '{word}' (e.g. 10.0.0.0/8)"
                    )));
                };
                let e = Expr::endpoint(side, &text).map_err(|m| self.error(m))?;
                self.at += 1;
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
            "cgroup" | "unit" | "container" | "pod" => {
                self.at += 1;
                let negate = self.negation();
                let example = match word.as_str() {
                    "cgroup" => "a cgroup path, e.g. /system.slice/nginx.service",
                    "unit" => "a systemd unit, e.g. nginx.service or 'app-*'",
                    "container" => "a container name or id, e.g. web or 3f1c2a9b8d7e",
                    _ => "a pod, e.g. shop/cart-7d9 or 'cart-*'",
                };
                let Some(value) = self.peek().map(str::to_string) else {
                    return Err(self.error(format!("expected {example} after '{word}'")));
                };
                self.at += 1;
                let e = match word.as_str() {
                    "cgroup" => Expr::Cgroup {
                        path: format!("/{}", value.trim_start_matches('/')),
                        id: None,
                    },
                    "unit" => Expr::Unit(value),
                    "container" => Expr::Container(value),
                    _ => Expr::Pod(value),
                };
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
                "expected a condition (state, sport, dport, src, dst, dev, autobound, cgroup, unit, container, pod) or '('",
            )),
        }
    }
}

impl Expr {
    /// `src TEXT` (`side` local) or `dst TEXT` (remote): an address or
    /// prefix, optionally with a port, any address with a port, or a name
    /// from /etc/hosts (each of its addresses). What `--src` and `--dst`
    /// take too.
    pub fn endpoint(side: Side, text: &str) -> Result<Expr, String> {
        let (nets, port) = parse_endpoint(text)?;
        Ok(match nets {
            None => match port {
                Some(port) => Expr::Port {
                    side,
                    cmp: Cmp::Eq,
                    port,
                },
                None => Expr::All,
            },
            Some(nets) => Expr::any(nets.into_iter().map(|net| Expr::Addr { side, net, port })),
        })
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

/// The end a word names: `sport` and `src` the local one, `dport` and
/// `dst` the remote one.
fn side_of(word: &str) -> Side {
    match word {
        "sport" | "src" => Side::Local,
        _ => Side::Remote,
    }
}
