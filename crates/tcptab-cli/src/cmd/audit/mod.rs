//! `tcptab audit`: every listening socket with the scope of its address,
//! its holders and workload, judged by a policy (or by built-in rules), or
//! compared with a baseline; exit 1 on findings (docs/audit.md).

mod peers;
mod policy;
mod write;

use std::collections::BTreeSet;

use anyhow::{Context, Result};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::value::RawValue;
use tcptab::audit::{identity, Action, Policy, Scope};
use tcptab::diag::Extensions;
use tcptab::diagnose::Severity;
use tcptab::filter::Expr;
use tcptab::interfaces::{self, InterfaceAddress};
use tcptab::{EntryBuf, State, StateSet};

use crate::cli::AuditArgs;
use crate::report;

/// One listener and what the audit says of it.
struct Judged {
    entry: EntryBuf,
    scope: Scope,
    /// An IPv6 wildcard that takes IPv4 too (netlink says v6only is off).
    dual_stack: bool,
    /// `allow`, `deny` or `unlisted` under a policy; `seen` without one.
    verdict: &'static str,
    /// The rule that decided (its reason, else its number).
    rule: Option<String>,
    identity: String,
    /// The namespace's interface addresses it is reachable on (None: the
    /// namespace's addresses could not be read).
    reachable: Option<Vec<InterfaceAddress>>,
    /// When a recording (`--history`) first saw it listening (ms).
    listening_since: Option<i64>,
}

/// A finding, for the table and the JSON document.
#[derive(Debug, Clone, Serialize, JsonSchema)]
struct Finding {
    /// `denied`, `unlisted`, `exposed`, `any-beside-loopback`,
    /// `dual-stack`, `new` or `gone`.
    kind: &'static str,
    severity: Severity,
    /// One line: the listener and why it is a finding.
    summary: String,
    /// The listener's identity: namespace, address and port, holders.
    listener: String,
    /// The rule that decided (its reason, else `rule N`); null without one.
    rule: Option<String>,
}

/// `tcptab audit --format json`: every listener and the findings.
#[derive(Serialize, JsonSchema)]
#[schemars(title = "tcptab audit")]
pub struct Document {
    schema_version: u32,
    /// The machine the audit ran on.
    host: tcptab::Host,
    listeners: Vec<ListenerRecord>,
    /// With --connected: the established connections' remote addresses,
    /// global first; null without it.
    peers: Option<Vec<peers::Peer>>,
    findings: Vec<Finding>,
}

/// One listening socket and what the audit says of it.
#[derive(Serialize, JsonSchema)]
struct ListenerRecord {
    /// The bound address's scope: any, global, shared, private,
    /// unique-local, link-local or loopback.
    scope: &'static str,
    /// An IPv6 wildcard that takes IPv4 too (IPV6_V6ONLY off).
    dual_stack: bool,
    /// `seen` without a policy; `allow`, `deny` or `unlisted` under one.
    verdict: &'static str,
    /// The rule that decided (its reason, else `rule N`).
    rule: Option<String>,
    /// Namespace, address and port, holders: what a baseline keeps.
    identity: String,
    /// The interface addresses it is reachable on; null when its
    /// namespace's could not be read.
    reachable: Option<Vec<InterfaceAddress>>,
    /// With --history: when the recording first saw it listening (RFC
    /// 3339); null without --history or when the recording has not seen it.
    listening_since: Option<String>,
    /// The socket record (docs/schema.md), with owners and workload.
    #[schemars(schema_with = "crate::cmd::schema::record_item")]
    socket: Box<RawValue>,
}

pub fn run(args: &AuditArgs) -> Result<()> {
    let policy = args.policy.as_deref().map(policy::read).transpose()?;
    let baseline = args.baseline.as_deref().map(read_baseline).transpose()?;
    let listening = Expr::State(StateSet::of(&[State::Listen]));
    let filter = args.select.filter.expr()?.and(listening);
    let query = args
        .select
        .scope
        .query(filter, Extensions::default(), true)?
        .workloads(true);
    let snapshot = query.snapshot()?;
    report::notes(&snapshot.report, args.select.verbose());
    let mut addresses = Addresses::default();
    let since = args.history.as_deref().map(listening_since).transpose()?;
    let mut judged: Vec<Judged> = snapshot
        .sockets
        .iter()
        .map(|e| {
            let mut j = judge(e, policy.as_ref());
            j.reachable = addresses.reachable(&j);
            j.listening_since = since
                .as_ref()
                .and_then(|s| s.get(&listener_key(e)).copied());
            j
        })
        .collect();
    judged.sort_by(|a, b| (a.scope, &a.identity).cmp(&(b.scope, &b.identity)));
    if let Some(path) = &args.save_baseline {
        let lines: BTreeSet<&str> = judged.iter().map(|j| j.identity.as_str()).collect();
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        std::fs::write(path, text).with_context(|| format!("{}", path.display()))?;
    }
    let loopback = loopback_holders(&judged);
    let findings = match &baseline {
        Some(before) => changes(before, &judged),
        None => judged
            .iter()
            .flat_map(|j| findings(j, policy.is_some(), &loopback))
            .collect(),
    };
    let peers = args.connected.then(|| peers::peers(args)).transpose()?;
    write::write(args, &judged, peers.as_deref(), &findings)?;
    crate::exit::fail_on(args.fail_on, findings.iter().map(|f| f.severity))
}

/// The listener's scope and verdict.
fn judge(e: &EntryBuf, policy: Option<&Policy>) -> Judged {
    let entry = e.as_entry();
    let scope = Scope::of(e.socket.local.ip());
    let dual_stack = scope == Scope::Any
        && e.socket.local.is_ipv6()
        && e.diag.as_ref().and_then(|d| d.v6only) == Some(false);
    let (verdict, rule) = match policy.map(|p| p.decide(&entry)) {
        None => ("seen", None),
        Some(None) => ("unlisted", None),
        Some(Some((i, action, rule))) => (
            match action {
                Action::Allow => "allow",
                Action::Deny => "deny",
            },
            Some(
                rule.reason
                    .clone()
                    .unwrap_or_else(|| format!("rule {}", i + 1)),
            ),
        ),
    };
    Judged {
        entry: e.clone(),
        scope,
        dual_stack,
        verdict,
        rule,
        identity: identity(&entry),
        reachable: None,
        listening_since: None,
    }
}

/// A listener as a recording knows it: its namespace's inode and its
/// bound address.
type ListenerKey = (u64, std::net::SocketAddr);

fn listener_key(e: &EntryBuf) -> ListenerKey {
    let inode = e.namespace.as_ref().map_or_else(own_netns, |n| n.inode);
    (inode, tcptab::canonical(e.socket.local))
}

/// The processes of the host's network namespace that hold a listener on
/// a loopback address.
fn loopback_holders(judged: &[Judged]) -> BTreeSet<u32> {
    judged
        .iter()
        .filter(|j| j.scope == Scope::Loopback && in_host_netns(&j.entry))
        .flat_map(|j| pids(&j.entry))
        .collect()
}

fn pids(e: &EntryBuf) -> Vec<u32> {
    e.owners
        .as_ref()
        .map(|o| o.as_ownership().owners().iter().map(|o| o.pid).collect())
        .unwrap_or_default()
}

/// Whether a socket is in the machine's initial network namespace (the
/// kernel gives it a fixed inode).
fn in_host_netns(e: &EntryBuf) -> bool {
    let inode = e.namespace.as_ref().map_or_else(own_netns, |n| n.inode);
    inode == tcptab::Namespace::INITIAL
}

/// This process's network namespace inode.
fn own_netns() -> u64 {
    // Read once: asked for every listener.
    static OWN: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *OWN.get_or_init(|| {
        std::fs::metadata("/proc/thread-self/ns/net")
            .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
            .unwrap_or(0)
    })
}

/// When each listener open at a recording's last poll was first seen
/// (`--history`).
fn listening_since(db: &std::path::Path) -> Result<std::collections::HashMap<ListenerKey, i64>> {
    let reader = tcptab::history::Reader::open(db)?;
    let mut out = std::collections::HashMap::new();
    let Some(span) = reader.span()? else {
        note!("tcptab: --history {}: no poll recorded yet", db.display());
        return Ok(out);
    };
    reader.connections(
        tcptab::history::Window::At(span.last_poll),
        |lived: &tcptab::history::Lived| -> Result<()> {
            if lived.entry.socket.state == State::Listen {
                let key = listener_key(&lived.entry);
                let first = lived.lifetime.first_seen;
                out.entry(key)
                    .and_modify(|t: &mut i64| *t = (*t).min(first))
                    .or_insert(first);
            }
            Ok(())
        },
    )?;
    Ok(out)
}

/// Each namespace's interface addresses, read once (rtnetlink).
#[derive(Default)]
struct Addresses {
    /// By namespace inode (0: this process's).
    read: std::collections::HashMap<u64, Option<Vec<InterfaceAddress>>>,
}

impl Addresses {
    /// The addresses `j` is reachable on; None (said once per namespace)
    /// where its namespace's addresses cannot be read.
    fn reachable(&mut self, j: &Judged) -> Option<Vec<InterfaceAddress>> {
        let namespace = j.entry.namespace.as_deref();
        let all = self
            .read
            .entry(namespace.map_or(0, |n| n.inode))
            .or_insert_with(|| {
                match interfaces::addresses(namespace, std::path::Path::new("/proc")) {
                    Ok(all) => Some(all),
                    Err(e) => {
                        note!(
                            "tcptab: the interface addresses of {} could not be read ({e}): what its listeners are reachable on is unknown",
                            namespace.map_or_else(|| "this namespace".to_string(), |n| n.label())
                        );
                        None
                    }
                }
            })
            .as_deref()?;
        let device = j.entry.diag.as_ref().map_or(0, |d| d.interface);
        let found = interfaces::reachable(j.entry.socket.local, j.dual_stack, device, all);
        Some(found.into_iter().cloned().collect())
    }
}

/// What a listener is a finding for: denied or unlisted under a policy;
/// without one, a listener on every address or a global one, held by
/// root outside a service unit (`exposed`), a listener on every address
/// of the host's namespace whose process binds its other listeners to
/// loopback (`any-beside-loopback`), and an IPv6 wildcard that takes IPv4
/// too (`dual-stack`: reachable on the IPv4 addresses as well, which an
/// IPv4 firewall rule may not expect).
fn findings(j: &Judged, with_policy: bool, loopback: &BTreeSet<u32>) -> Vec<Finding> {
    let found = |kind, severity, summary: &str| Finding {
        kind,
        severity,
        summary: format!("{}: {summary}", j.identity),
        listener: j.identity.clone(),
        rule: j.rule.clone(),
    };
    match j.verdict {
        "deny" => return vec![found("denied", Severity::Critical, "a rule denies it")],
        "unlisted" => {
            return vec![found(
                "unlisted",
                Severity::Warning,
                "no rule of the policy matches it",
            )]
        }
        _ if with_policy => return Vec::new(),
        _ => {}
    }
    let mut out = Vec::new();
    let exposed = matches!(j.scope, Scope::Any | Scope::Global);
    let unit = j.entry.workload.as_ref().and_then(|w| w.unit.as_deref());
    let service = unit.is_some_and(|u| u.ends_with(".service"));
    if exposed && j.entry.socket.uid == 0 && !service {
        out.push(found(
            "exposed",
            Severity::Warning,
            "listens on every address or a global one, as root, outside a service unit",
        ));
    }
    let beside_loopback = j.scope == Scope::Any
        && in_host_netns(&j.entry)
        && pids(&j.entry).iter().any(|p| loopback.contains(p));
    if beside_loopback {
        out.push(found(
            "any-beside-loopback",
            Severity::Warning,
            "listens on every address of the host, while its process binds its other listeners to loopback only (a likely mistake)",
        ));
    }
    if j.dual_stack {
        out.push(found(
            "dual-stack",
            Severity::Warning,
            "an IPv6 wildcard without IPV6_V6ONLY: it takes IPv4 connections too",
        ));
    }
    out
}

fn read_baseline(path: &std::path::Path) -> Result<BTreeSet<String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    Ok(text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect())
}

/// Listeners new since the baseline, and those gone.
fn changes(before: &BTreeSet<String>, judged: &[Judged]) -> Vec<Finding> {
    let now: BTreeSet<String> = judged.iter().map(|j| j.identity.clone()).collect();
    let change = |kind: &'static str, listener: &String| Finding {
        kind,
        severity: Severity::Warning,
        summary: format!("{listener}: {kind} since the baseline"),
        listener: listener.clone(),
        rule: None,
    };
    now.difference(before)
        .map(|l| change("new", l))
        .chain(before.difference(&now).map(|l| change("gone", l)))
        .collect()
}
