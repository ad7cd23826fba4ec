//! `tcptab explain`: a raw /proc/net/tcp line decoded field by field, or
//! (`--diagnose`) findings about the live table.

use std::io::{self, BufRead, Write};

use crate::output::table::{Align, TextTable};
use anyhow::{bail, Context, Result};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::value::RawValue;
use tcptab::diag::Extensions;
use tcptab::diagnose::{Diagnoser, Finding, Kind, Process, Severity, Thresholds};
use tcptab::explain::{explain_line, Explained};
use tcptab::filter::Expr;
use tcptab::procnet::ByteOrder;

use crate::cli::{ExplainArgs, ReportFormat};
use crate::output::json::JsonRecord;
use crate::report;

pub fn run(args: &ExplainArgs) -> Result<()> {
    let format = args.output.format;
    if args.diagnose {
        return run_diagnose(args, format);
    }
    let lines: Vec<String> = if args.lines.is_empty() {
        io::stdin()
            .lock()
            .lines()
            .collect::<io::Result<_>>()
            .context("reading stdin")?
    } else {
        args.lines.clone()
    };
    let order: ByteOrder = args.scope.source.byte_order.into();
    let mut explained = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        if line.trim().is_empty() || tcptab::procnet::is_header(line.as_bytes()) {
            continue;
        }
        match explain_line(line, order) {
            Ok(e) => explained.push(e),
            Err(e) => {
                let from = e.offset.min(line.len());
                // Bytes, not str slicing: the offset may split a character.
                let rest = String::from_utf8_lossy(&line.as_bytes()[from..]).into_owned();
                let token: String = rest
                    .split(' ')
                    .next()
                    .unwrap_or("")
                    .chars()
                    .take(40)
                    .collect();
                bail!(
                    "line {}: field '{}' at column {}: {}: {token:?}",
                    n + 1,
                    e.field,
                    from + 1,
                    e.kind
                );
            }
        }
    }
    if explained.is_empty() {
        bail!("no line to explain: give a /proc/net/tcp line as an argument or on stdin");
    }
    let mut out = io::stdout().lock();
    match format {
        ReportFormat::Json => {
            serde_json::to_writer_pretty(&mut out, &explained)?;
            writeln!(out)?;
        }
        ReportFormat::Table => {
            for (i, e) in explained.iter().enumerate() {
                if i > 0 {
                    writeln!(out)?;
                }
                write_explained(&mut out, e)?;
            }
        }
    }
    out.flush().context("writing output")
}

fn write_explained(out: &mut impl Write, e: &Explained) -> io::Result<()> {
    let kind = match e.kind {
        "full" => "full socket (17 fields)",
        "time_wait" => "TIME_WAIT mini-socket (12 fields)",
        _ => "request socket, a half-open connection (12 fields)",
    };
    writeln!(out, "{} {}, {kind}", e.family, e.socket.state)?;
    let mut t = TextTable::new(vec![
        ("Raw", Align::Left),
        ("Field", Align::Left),
        ("Value", Align::Left),
        ("Meaning", Align::Left),
    ]);
    for p in &e.parts {
        t.cell(format_args!("{}", p.raw));
        t.cell(format_args!("{}", p.field));
        t.cell(format_args!("{}", p.value));
        t.cell(format_args!("{}", p.meaning));
    }
    t.write_block(out)
}

fn run_diagnose(args: &ExplainArgs, format: ReportFormat) -> Result<()> {
    let t = &args.thresholds;
    if !(0.0..=1.0).contains(&t.accept_queue) {
        bail!(
            "--accept-queue takes a fraction from 0 to 1, not {}",
            t.accept_queue
        );
    }
    let thresholds = Thresholds {
        close_wait: t.close_wait,
        accept_queue: t.accept_queue,
        retransmits: t.retransmits,
        time_wait: t.time_wait,
        orphans: t.orphans,
    };
    let query = args
        .scope
        .query(
            Expr::All,
            // tcp_info: a peer's zero window shows in snd_wnd.
            Extensions::TCP_INFO,
            args.processes,
        )?
        .workloads(args.workload);
    // The table streams through the diagnoser, which keeps only its groups
    // and a few sockets of evidence.
    let mut diagnoser = Diagnoser::new(thresholds);
    let report = query.for_each(|e| {
        diagnoser.add(e);
        Ok::<(), anyhow::Error>(())
    })?;
    report::notes(&report, args.scope.verbose());
    let examined = diagnoser.examined();
    let findings = diagnoser.finish();
    let mut out = io::stdout().lock();
    match format {
        ReportFormat::Json => {
            let fields = tcptab::record::Fields {
                netns: args.scope.named(),
                owners: args.processes,
                workload: args.workload,
                history: false,
            };
            let report = DiagnoseReport {
                schema_version: tcptab::record::SCHEMA_VERSION,
                host: crate::output::json::host().clone(),
                sockets_examined: examined,
                findings: findings
                    .iter()
                    .map(|f| FindingRecord::new(f, fields, kill_command(f, args)))
                    .collect::<Result<_>>()?,
            };
            serde_json::to_writer_pretty(&mut out, &report)?;
            writeln!(out)?;
        }
        ReportFormat::Table if findings.is_empty() => {
            writeln!(out, "No findings in {examined} sockets.")?;
        }
        ReportFormat::Table => {
            for f in &findings {
                writeln!(out, "[{}] {}: {}", f.severity, f.kind, f.summary)?;
                for line in &f.details {
                    writeln!(out, "    {line}")?;
                }
                let workloads = workloads(f);
                if !workloads.is_empty() {
                    writeln!(out, "  workloads: {}", workloads.join(", "))?;
                }
                if f.count as usize > f.details.len() && f.details.len() > 1 {
                    writeln!(out, "    ... {} in all", f.count)?;
                }
                writeln!(out, "  what to do: {}", f.advice)?;
                if let Some(command) = kill_command(f, args) {
                    writeln!(
                        out,
                        "  to destroy them now: {command}  (a dry run; add --yes)"
                    )?;
                }
                writeln!(out)?;
            }
        }
    }
    out.flush().context("writing output")?;
    crate::exit::fail_on(args.fail_on, findings.iter().map(|f| f.severity))
}

/// `explain --diagnose --format json` (docs/schema.md).
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(title = "tcptab diagnose report")]
pub struct DiagnoseReport {
    /// The version of tcptab's documents (docs/schema.md).
    schema_version: u32,
    /// The machine it is about.
    host: tcptab::Host,
    /// Sockets looked at.
    sockets_examined: u64,
    findings: Vec<FindingRecord>,
}

#[derive(Debug, Serialize, JsonSchema)]
struct FindingRecord {
    kind: Kind,
    severity: Severity,
    summary: String,
    advice: &'static str,
    /// Sockets involved (the evidence shows a few of them).
    count: u64,
    evidence: Evidence,
    /// The evidence for people, one line per socket or group.
    details: Vec<String>,
    /// For a finding that destroying the sockets would clear: the exact
    /// `tcptab kill` command (a dry run; `--yes` destroys). Null otherwise.
    kill_command: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
struct Evidence {
    /// Socket records, as `list --format json` writes them (a few at most).
    #[schemars(schema_with = "crate::cmd::schema::records")]
    sockets: Vec<Box<RawValue>>,
    /// The processes involved (with -p).
    processes: Vec<Process>,
    /// The workloads of the evidence's sockets (with --workload): pod and
    /// container, else unit, else cgroup.
    workloads: Vec<String>,
}

/// The workloads of a finding's evidence, each once, in order.
fn workloads(f: &Finding) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for w in f.sockets.iter().filter_map(|e| e.workload.as_deref()) {
        let label = w.label();
        if !names.contains(&label) {
            names.push(label);
        }
    }
    names
}

impl FindingRecord {
    fn new(
        f: &Finding,
        fields: tcptab::record::Fields,
        kill_command: Option<String>,
    ) -> Result<FindingRecord> {
        let mut sockets = Vec::with_capacity(f.sockets.len());
        for evidence in &f.sockets {
            let mut text = Vec::new();
            let entry = evidence.as_entry();
            JsonRecord::write(&mut text, &tcptab::record::Record::new(&entry, fields));
            let text = String::from_utf8(text).context("a socket record is not UTF-8")?;
            sockets.push(RawValue::from_string(text).context("a socket record is not JSON")?);
        }
        Ok(FindingRecord {
            kind: f.kind,
            severity: f.severity,
            summary: f.summary.clone(),
            advice: f.advice,
            count: f.count,
            evidence: Evidence {
                sockets,
                processes: f.processes.clone(),
                workloads: workloads(f),
            },
            details: f.details.clone(),
            kill_command,
        })
    }
}

/// `tcptab kill` with the namespace options of this run and the finding's
/// filter.
fn kill_command(f: &Finding, args: &ExplainArgs) -> Option<String> {
    let filter = f.kill_filter.as_deref()?;
    let ns = &args.scope.namespaces;
    let namespaces = if let Some(name) = &ns.netns {
        format!(" --netns {name}")
    } else if let Some(pid) = ns.netns_pid {
        format!(" --netns-pid {pid}")
    } else if ns.all_netns {
        " --all-netns".to_string()
    } else {
        String::new()
    };
    Some(format!("tcptab kill{namespaces} {filter}"))
}
