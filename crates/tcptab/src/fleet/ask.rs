//! Asking the store: the connections of a window across every host (or
//! one), read back through the history file's own decoder
//! ([`crate::history::lived`]) so that both answer alike. The window, the
//! host and what of the filter SQL can say exactly are pushed into the
//! query ([`pushed`]); the rest of the filter is the caller's, as for a
//! file.

use std::ops::ControlFlow;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::client::External;
use super::row::{extra_columns, json_int, row_error, JsonRow};
use super::schema::BUCKET_MS;
use super::{valid_name, Client, Error, StoreError};
use crate::filter::{Expr, Side};
use crate::history::{lived, Lived, Span, Window, COLUMN_NAMES};
use crate::model::{Host, Owner, Owners, Workload};

/// A fleet's store, asked.
#[derive(Debug)]
pub struct Store {
    client: Client,
    /// The most candidate keys read and sent back ([`Store::keys_sent`]).
    keys_sent: usize,
}

/// The most candidate keys a window's query reads and sends back by
/// default (about 25 MB of text): a window with more is asked in one
/// statement, the server computing the keys twice.
pub const KEYS_SENT: usize = 1_000_000;

/// A string as a SQL literal.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if c == '\'' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// What of `expr` SQL can say exactly over the stored columns: None where
/// it cannot (a state, which depends on the window; an owner, a workload,
/// a network prefix), and the caller's filter decides.
fn exact(expr: &Expr) -> Option<String> {
    let port = |side: Side, op: &str, n: u16| match side {
        Side::Local => format!("local_port {op} {n}"),
        Side::Remote => format!("remote_port {op} {n}"),
        Side::Either => format!("(local_port {op} {n} OR remote_port {op} {n})"),
    };
    Some(match expr {
        Expr::All => "1".into(),
        Expr::Family(f) => format!("family = '{}'", f.as_str()),
        Expr::Uid(u) => format!("uid = {u}"),
        Expr::Port { side, cmp, port: n } => port(*side, cmp.symbol(), *n),
        Expr::PortRange { side, range } => format!(
            "({} AND {})",
            port(*side, ">=", range.low),
            port(*side, "<=", range.high)
        ),
        Expr::Addr { side, net, port: p } => {
            let full = if net.address.is_ipv4() { 32 } else { 128 };
            if net.prefix != full || *side == Side::Either {
                return None;
            }
            let column = if *side == Side::Local {
                "local"
            } else {
                "remote"
            };
            // An IPv4 address is also matched in its IPv4-mapped form.
            let mut forms = vec![quote(&net.address.to_string())];
            if let std::net::IpAddr::V4(v4) = net.address {
                forms.push(quote(&v4.to_ipv6_mapped().to_string()));
            }
            let mut sql = format!("{column}_address IN ({})", forms.join(", "));
            if let Some(p) = p {
                sql = format!("({sql} AND {column}_port = {p})");
            }
            sql
        }
        Expr::Not(e) => format!("NOT ({})", exact(e)?),
        Expr::And(a, b) => format!("({} AND {})", exact(a)?, exact(b)?),
        Expr::Or(a, b) => format!("({} OR {})", exact(a)?, exact(b)?),
        _ => return None,
    })
}

/// SQL that holds for every row `expr` may select (None: every row may):
/// what is pushed into the store's query.
pub fn pushed(expr: &Expr) -> Option<String> {
    if let Some(sql) = exact(expr) {
        return (sql != "1").then_some(sql);
    }
    match expr {
        Expr::And(a, b) => match (pushed(a), pushed(b)) {
            (Some(a), Some(b)) => Some(format!("({a} AND {b})")),
            (one, other) => one.or(other),
        },
        Expr::Or(a, b) => Some(format!("({} OR {})", pushed(a)?, pushed(b)?)),
        _ => None,
    }
}

impl Store {
    pub fn new(client: Client) -> Store {
        Store {
            client,
            keys_sent: KEYS_SENT,
        }
    }

    /// Read and send back at most `n` candidate keys (see [`KEYS_SENT`]).
    pub fn keys_sent(mut self, n: usize) -> Store {
        self.keys_sent = n;
        self
    }

    fn db(&self) -> &str {
        &self.client.target().database
    }

    /// Each recorder's first and last poll, as (hostname, span), for
    /// `host` or every host.
    pub fn spans(&self, host: Option<&str>) -> Result<Vec<(String, Span)>, Error> {
        let db = self.db();
        let host_sql = host.map_or(String::new(), |h| format!("WHERE hostname = {}", quote(h)));
        let text = self.client.execute(&format!(
            "SELECT hostname, min(at) AS first, max(at) AS last, count() AS n FROM (SELECT DISTINCT hostname, machine_id, recorder, id, at FROM {db}.polls {host_sql}) GROUP BY hostname, machine_id, recorder ORDER BY hostname FORMAT JSONEachRow"
        ))?;
        let mut out = Vec::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let v: Map<String, Value> = serde_json::from_str(line).map_err(|e| self.answer(e))?;
            let int = |k: &str| v.get(k).and_then(json_int).unwrap_or(0);
            let name = v.get("hostname").and_then(Value::as_str).unwrap_or("");
            out.push((
                name.to_string(),
                Span {
                    first_poll: int("first"),
                    last_poll: int("last"),
                    polls: int("n") as u64,
                },
            ));
        }
        Ok(out)
    }

    fn answer(&self, e: impl std::fmt::Display) -> Error {
        Error::Store(StoreError::Answer {
            base: self.client.target().base.clone(),
            what: format!("an answer tcptab cannot read: {e}"),
        })
    }

    /// Hand every connection of `window` (of `host`, or of every host)
    /// that `filter` (SQL from [`pushed`]) may select to `f`, in the order
    /// they were first seen. An open row lasts until its recorder's last
    /// poll shipped (a row is shipped when it changes, not at every poll).
    ///
    /// How: a row of the store is one version of a connection, and a condition
    /// on what changes between versions (its close, its counters) must not be
    /// tested before the newest is chosen: so the candidates are first the keys
    /// of every version in the window (and the filter's SQL), read from narrow
    /// columns by one statement; then, with those keys sent back as a table
    /// (or, past [`KEYS_SENT`] of them, computed again by the server), the
    /// newest version of each (`FINAL`, selected by what never changes: its
    /// time bucket, first sighting and id, so only their granules are read),
    /// whose close is checked after FINAL (a closed connection's older versions
    /// are candidates); the window is checked again on it by the caller, where
    /// an open row lasts until its recorder's last poll. A store of the whole
    /// recording needs no candidates.
    pub fn connections<E: From<Error>>(
        &self,
        window: Window,
        host: Option<&str>,
        filter: Option<&str>,
        mut f: impl FnMut(&Lived) -> Result<(), E>,
    ) -> Result<(), E> {
        let db = self.db();
        debug_assert!(valid_name(db));
        let (from, to) = match window {
            Window::At(t) => (t, t),
            Window::Between(a, b) => (a, b),
            Window::All => (i64::MIN / 2, i64::MAX / 2),
        };
        let sent;
        let (sql, table) = match window {
            Window::All => (everything(db, host, filter), None),
            _ => {
                let keys = candidates(db, from, to, host, filter);
                // Read once and sent back (18.16 has no common subquery to
                // share them), unless there are too many to hold.
                sent = self
                    .client
                    .execute(&format!(
                        "{keys} LIMIT {} FORMAT TabSeparated",
                        self.keys_sent.saturating_add(1)
                    ))
                    .map_err(|e| E::from(e.into()))?;
                match sent.lines().take(self.keys_sent.saturating_add(1)).count() {
                    0 => return Ok(()),
                    n if n > self.keys_sent => (newest(db, from, host, &format!("({keys})")), None),
                    _ => {
                        let table = External {
                            rows: &sent,
                            ..CANDIDATES
                        };
                        (newest(db, from, host, table.name), Some(table))
                    }
                }
            }
        };
        // Each line as it comes: the answer is never held whole.
        let mut failed: Option<E> = None;
        let mut each = |line: &str| -> ControlFlow<()> {
            if line.trim().is_empty() {
                return ControlFlow::Continue(());
            }
            let handled = JsonRow::parse(line)
                .map_err(|e| E::from(self.answer(e)))
                .and_then(|row| self.lived(&row, window, from, to).map_err(E::from))
                .and_then(|lived| {
                    // The window, on the newest version (the query's
                    // candidates may hold an older one's key; an open row
                    // lasts until its recorder's last poll).
                    let l = &lived.lifetime;
                    match l.first_seen <= to && l.closed_at.unwrap_or(l.last_seen) >= from {
                        true => f(&lived),
                        false => Ok(()),
                    }
                });
            match handled {
                Ok(()) => ControlFlow::Continue(()),
                Err(e) => {
                    failed = Some(e);
                    ControlFlow::Break(())
                }
            }
        };
        let read = self.client.for_each_line(&sql, table.as_ref(), &mut each);
        match failed {
            Some(e) => Err(e),
            None => read.map_err(|e| E::from(e.into())),
        }
    }

    fn lived(&self, row: &JsonRow<'_>, window: Window, from: i64, to: i64) -> Result<Lived, Error> {
        let mut lived = lived(row).map_err(|e| self.answer(row_error(e)))?;
        let text = |k: &str| row.text_of(k);
        let list = |k: &str| row.list(k);
        if lived.lifetime.closed_at.is_none() {
            let last_poll = row.int_of("last_poll").unwrap_or(0);
            lived.lifetime.last_seen = lived.lifetime.last_seen.max(last_poll);
        }
        let changes: Vec<(i64, crate::model::State)> = list("state_times")
            .iter()
            .zip(list("states").iter())
            .filter_map(|(t, s)| Some((json_int(t)?, s.as_str()?.parse().ok()?)))
            .collect();
        let mut states = crate::history::states_during(lived.first_state, changes, from, to);
        if let Window::At(_) = window {
            let then = *states.last().expect("at least the first state");
            crate::history::set_state(&mut lived.entry.socket, then);
            states = vec![then];
        }
        lived.states = states;
        if lived.entry.owners == Some(Owners::Owned(Arc::from([]))) {
            let (pids, fds, commands) = (
                list("owner_pids"),
                list("owner_fds"),
                list("owner_commands"),
            );
            let owners: Vec<Owner> = pids
                .iter()
                .zip(fds.iter())
                .zip(commands.iter())
                .filter_map(|((p, fd), c)| {
                    Some(Owner {
                        pid: u32::try_from(json_int(p)?).ok()?,
                        fd: u32::try_from(json_int(fd)?).ok()?,
                        command: Arc::from(c.as_str()?),
                    })
                })
                .collect();
            lived.entry.owners = Some(Owners::Owned(owners.into()));
        }
        if let Some(cgroup) = text("workload_cgroup") {
            let mut w = Workload::from_cgroup(&cgroup);
            w.unit = text("unit");
            w.slice = text("slice");
            w.runtime = text("runtime");
            w.container_id = text("container_id");
            w.container_name = text("container_name");
            w.pod_namespace = text("pod_namespace");
            w.pod_name = text("pod_name");
            w.pod_uid = text("pod_uid");
            lived.entry.workload = Some(Arc::new(w));
        }
        lived.lifetime.host = Some(Arc::new(Host {
            hostname: text("hostname").unwrap_or_default(),
            machine_id: text("machine_id"),
            boot_id: text("boot_id"),
        }));
        Ok(lived)
    }
}

/// Every connection's newest version.
fn everything(db: &str, host: Option<&str>, filter: Option<&str>) -> String {
    let columns = read_back();
    let conds: Vec<String> = host
        .map(|h| format!("hostname = {}", quote(h)))
        .into_iter()
        .chain(filter.map(str::to_string))
        .collect();
    let conds = match conds.is_empty() {
        true => "1".to_string(),
        false => conds.join(" AND "),
    };
    with_last_poll(
        db,
        &format!("SELECT {columns} FROM {db}.connections FINAL WHERE {conds}"),
    )
}

/// The keys (first sighting, id) of every version that may be in the
/// window (a statement to complete). The narrow columns first (PREWHERE),
/// then, on the rows they leave, the host, the filter and the recorder: a
/// version open but last seen before the window counts only if its
/// recorder polled since (an open row is shipped when it changes, and
/// lasts until its recorder's last poll), so the open rows a stopped
/// recorder left are not candidates.
fn candidates(db: &str, from: i64, to: i64, host: Option<&str>, filter: Option<&str>) -> String {
    let mut rest: Vec<String> = host
        .map(|h| format!("hostname = {}", quote(h)))
        .into_iter()
        .collect();
    rest.extend(filter.map(|f| format!("({f})")));
    rest.push(format!(
        "(closed_at >= {from} OR last_seen >= {from}
           OR recorder IN (SELECT recorder FROM {db}.polls GROUP BY recorder HAVING max(at) >= {from}))"
    ));
    format!(
        "SELECT DISTINCT first_seen, id FROM {db}.connections
         PREWHERE first_seen <= {to} AND (closed_at IS NULL OR closed_at >= {from})
         WHERE {}",
        rest.join(" AND ")
    )
}

/// The newest version of each candidate in `keys` (the table
/// [`CANDIDATES`] sent with the statement, or the candidates' statement
/// in parentheses), still open at `from`. The close is tested on the
/// newest version: WHERE runs after FINAL (and, with a PREWHERE given, is
/// not moved into it), so a version left open by an older one's key is
/// dropped here, not sent.
fn newest(db: &str, from: i64, host: Option<&str>, keys: &str) -> String {
    let columns = read_back();
    let same_host = host.map_or(String::new(), |h| format!(" AND hostname = {}", quote(h)));
    with_last_poll(
        db,
        &format!(
            "SELECT {columns} FROM {db}.connections FINAL
             PREWHERE intDiv(first_seen, {BUCKET_MS}) IN (SELECT intDiv(first_seen, {BUCKET_MS}) FROM {keys})
               AND (first_seen, id) IN {keys}{same_host}
             WHERE closed_at IS NULL OR closed_at >= {from}"
        ),
    )
}

/// The candidates' keys as sent back ([`newest`]).
const CANDIDATES: External<'static> = External {
    name: "candidates",
    structure: "first_seen Int64, id Int64",
    rows: "",
};

/// The columns read back: [`COLUMN_NAMES`], then [`extra_columns`].
fn read_back() -> String {
    COLUMN_NAMES
        .iter()
        .copied()
        .chain(extra_columns())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `rows` with each one's recorder's last poll, in the order they were
/// first seen.
fn with_last_poll(db: &str, rows: &str) -> String {
    let columns = read_back();
    format!(
        "SELECT {columns}, last_poll FROM ({rows})
         ANY LEFT JOIN
           (SELECT machine_id, recorder, max(at) AS last_poll FROM {db}.polls GROUP BY machine_id, recorder)
         USING (machine_id, recorder)
         ORDER BY first_seen, hostname, id
         FORMAT JSONEachRow"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sql(filter: &str) -> Option<String> {
        pushed(&Expr::parse(filter).unwrap())
    }

    #[test]
    fn ports_and_exact_addresses_are_pushed() {
        assert_eq!(sql("dport = :5432").as_deref(), Some("remote_port = 5432"));
        assert_eq!(
            sql("dst 10.0.0.5").as_deref(),
            Some("remote_address IN ('10.0.0.5', '::ffff:10.0.0.5')")
        );
        // A state is not, its port is.
        assert_eq!(
            sql("state established and sport = :80").as_deref(),
            Some("local_port = 80")
        );
        // Or pushes only when both sides say something.
        assert_eq!(sql("state established or sport = :80"), None);
        assert_eq!(
            sql("not dport = :22").as_deref(),
            Some("NOT (remote_port = 22)")
        );
        assert_eq!(sql("not state listening"), None);
        assert_eq!(sql("dst 10.0.0.0/8"), None);
    }

    #[test]
    fn quotes_are_escaped() {
        assert_eq!(quote("a'b\\c"), "'a\\'b\\\\c'");
    }
}
