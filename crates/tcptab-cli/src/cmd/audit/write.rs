//! `audit`'s outputs: a table by scope, one JSON document, JSON Lines (a
//! line per listener, then one per finding, each with its `type`), CSV (a
//! row per listener, its findings in the last column; a listener gone
//! since the baseline is a row of its identity and `gone`).

use std::io::{self, Write};

use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::value::RawValue;
use tcptab::record::{Fields, Record};
use tcptab::Entry;

use super::peers::Peer;
use super::{Document, Finding, Judged, ListenerRecord};
use crate::cli::{AuditArgs, AuditFormat};
use crate::output::cells::Endpoint;
use crate::output::json::JsonRecord;
use crate::output::table::{Align, TextTable};

pub(super) fn write(
    args: &AuditArgs,
    judged: &[Judged],
    peers: Option<&[Peer]>,
    findings: &[Finding],
) -> Result<()> {
    let mut out = io::stdout().lock();
    match args.format {
        AuditFormat::Json => {
            let document = Document {
                schema_version: tcptab::record::SCHEMA_VERSION,
                host: crate::output::json::host().clone(),
                listeners: records(args, judged)?,
                peers: peers.map(<[Peer]>::to_vec),
                findings: findings.to_vec(),
            };
            serde_json::to_writer_pretty(&mut out, &document)?;
            writeln!(out)?;
        }
        AuditFormat::Jsonl => {
            for item in &records(args, judged)? {
                line(&mut out, "listener", item)?;
            }
            for item in peers.unwrap_or_default() {
                line(&mut out, "peer", item)?;
            }
            for item in findings {
                line(&mut out, "finding", item)?;
            }
        }
        AuditFormat::Csv => csv(&mut out, judged, findings)?,
        AuditFormat::Table => table(&mut out, judged, peers, findings)?,
    }
    out.flush().context("writing output")
}

/// One JSON line: the item's members after `schema_version` and its `type`.
fn line<T: Serialize>(out: &mut impl Write, kind: &'static str, item: &T) -> Result<()> {
    #[derive(Serialize)]
    struct Line<'a, T> {
        schema_version: u32,
        #[serde(rename = "type")]
        kind: &'static str,
        #[serde(flatten)]
        item: &'a T,
    }
    let line = Line {
        schema_version: tcptab::record::SCHEMA_VERSION,
        kind,
        item,
    };
    serde_json::to_writer(&mut *out, &line)?;
    writeln!(out)?;
    Ok(())
}

/// Each listener as its JSON record.
fn records(args: &AuditArgs, judged: &[Judged]) -> Result<Vec<ListenerRecord>> {
    let fields = Fields {
        netns: args.select.named(),
        owners: true,
        workload: true,
        history: false,
    };
    let mut listeners = Vec::with_capacity(judged.len());
    for j in judged {
        let mut text = Vec::new();
        JsonRecord::write(&mut text, &Record::new(&j.entry.as_entry(), fields));
        listeners.push(ListenerRecord {
            scope: j.scope.as_str(),
            dual_stack: j.dual_stack,
            verdict: j.verdict,
            rule: j.rule.clone(),
            identity: j.identity.clone(),
            reachable: j.reachable.clone(),
            listening_since: j.listening_since.map(tcptab::time::format_rfc3339),
            socket: RawValue::from_string(String::from_utf8(text)?)?,
        });
    }
    Ok(listeners)
}

/// A row per listener; its findings' kinds in the last column.
fn csv(out: &mut impl Write, judged: &[Judged], findings: &[Finding]) -> Result<()> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record([
        "scope",
        "dual_stack",
        "verdict",
        "rule",
        "identity",
        "netns",
        "local_address",
        "local_port",
        "uid",
        "processes",
        "workload",
        "reachable",
        "findings",
    ])?;
    let kinds = |identity: &str| -> String {
        let list: Vec<&str> = findings
            .iter()
            .filter(|f| f.listener == identity)
            .map(|f| f.kind)
            .collect();
        list.join(" ")
    };
    for j in judged {
        let e = j.entry.as_entry();
        let s = &j.entry.socket;
        let processes = holders(&e);
        let reachable = j.reachable.as_ref().map_or(String::new(), |list| {
            let all: Vec<String> = list
                .iter()
                .map(|a| format!("{}:{}", a.interface, a.address))
                .collect();
            all.join(" ")
        });
        w.write_record([
            j.scope.as_str().to_string(),
            j.dual_stack.to_string(),
            j.verdict.to_string(),
            j.rule.clone().unwrap_or_default(),
            j.identity.clone(),
            e.namespace
                .map_or_else(|| "host".to_string(), |n| n.label()),
            tcptab::canonical(s.local).ip().to_string(),
            s.local.port().to_string(),
            s.uid.to_string(),
            processes.join(" "),
            j.entry
                .workload
                .as_ref()
                .map_or(String::new(), |w| w.to_string()),
            reachable,
            kinds(&j.identity),
        ])?;
    }
    // What the baseline had and is gone: its identity and the finding.
    for f in findings
        .iter()
        .filter(|f| !judged.iter().any(|j| j.identity == f.listener))
    {
        let mut row = vec![String::new(); 13];
        row[4] = f.listener.clone();
        row[12] = f.kind.to_string();
        w.write_record(&row)?;
    }
    w.flush()?;
    Ok(())
}

fn table(
    out: &mut impl Write,
    judged: &[Judged],
    peers: Option<&[Peer]>,
    findings: &[Finding],
) -> io::Result<()> {
    // A recording given (--history): when each was first seen listening.
    let since = judged.iter().any(|j| j.listening_since.is_some());
    let mut columns = vec![
        ("Scope", Align::Left),
        ("Local Address:Port", Align::Left),
        ("Netns", Align::Left),
        ("Process", Align::Left),
        ("Uid", Align::Right),
        ("Queue", Align::Right),
        ("Workload", Align::Left),
        ("Reachable on", Align::Left),
        ("Verdict", Align::Left),
    ];
    if since {
        columns.push(("Listening since", Align::Left));
    }
    let mut t = TextTable::new(columns);
    for j in judged {
        let e = j.entry.as_entry();
        let scope = if j.dual_stack {
            "any (+ipv4)"
        } else {
            j.scope.as_str()
        };
        t.cell(format_args!("{scope}"));
        t.cell(format_args!("{}", Endpoint(j.entry.socket.local, None)));
        t.cell(format_args!(
            "{}",
            e.namespace
                .map_or_else(|| "host".to_string(), |n| n.label())
        ));
        let owners = holders(&e);
        t.cell(format_args!(
            "{}",
            if owners.is_empty() {
                "-".into()
            } else {
                owners.join(",")
            }
        ));
        t.cell(format_args!("{}", j.entry.socket.uid));
        // Waiting for accept() / the backlog limit (netlink only).
        let limit = j.entry.diag.as_ref().and_then(|d| d.backlog_limit);
        match limit {
            Some(limit) => t.cell(format_args!("{}/{limit}", j.entry.socket.rx_queue)),
            None => t.cell(format_args!("{}", j.entry.socket.rx_queue)),
        }
        match &j.entry.workload {
            Some(w) => t.cell(format_args!("{w}")),
            None => t.cell(format_args!("-")),
        }
        match &j.reachable {
            None => t.cell(format_args!("?")),
            Some(list) if list.is_empty() => t.cell(format_args!("-")),
            Some(list) => {
                let text: Vec<String> = list
                    .iter()
                    .map(|a| format!("{}:{}", a.interface, a.address))
                    .collect();
                t.cell(format_args!("{}", text.join(" ")))
            }
        }
        match &j.rule {
            Some(rule) => t.cell(format_args!("{} ({rule})", j.verdict)),
            None => t.cell(format_args!("{}", j.verdict)),
        }
        if since {
            match j.listening_since {
                Some(ms) => t.cell(format_args!("{}", tcptab::time::format_rfc3339(ms))),
                None => t.cell(format_args!("-")),
            }
        }
    }
    t.write_block(out)?;
    if let Some(peers) = peers {
        let mut p = TextTable::new(vec![
            ("Peer scope", Align::Left),
            ("Peer address", Align::Left),
            ("Connections", Align::Right),
            ("Processes", Align::Left),
        ]);
        for peer in peers {
            p.cell(format_args!("{}", peer.scope));
            p.cell(format_args!("{}", peer.address));
            p.cell(format_args!("{}", peer.connections));
            p.cell(format_args!("{}", peer.processes.join(",")));
        }
        writeln!(out)?;
        p.write_block(out)?;
    }
    if findings.is_empty() {
        writeln!(
            out,
            "\nNo findings in {}.",
            tcptab::counted(judged.len() as u64, "listener")
        )
    } else {
        writeln!(out)?;
        for f in findings {
            writeln!(out, "[{}] {}: {}", f.severity, f.kind, f.summary)?;
        }
        Ok(())
    }
}

/// Each process holding the socket, as `command(pid)`.
fn holders(e: &Entry<'_>) -> Vec<String> {
    e.owners
        .map_or(&[][..], |o| o.owners())
        .iter()
        .map(|o| format!("{}({})", o.command, o.pid))
        .collect()
}
