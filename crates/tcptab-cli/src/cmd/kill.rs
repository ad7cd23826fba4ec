//! `tcptab kill`: destroy the sockets a filter selects, safely. A dry run
//! unless `--yes`; refuses a run without a filter (unless `-a`), more
//! matches than `--max`, and listeners the filter does not name; on
//! `--yes`, one result per socket from the library's `kill::Destroyer`,
//! which names each socket by the dump's full socket id in its own
//! namespace.

use std::io::{self, Write};

use anyhow::{bail, Context, Result};
use tcptab::diag::{Choice, Extensions};
use tcptab::filter::Expr;
use tcptab::kill::{Destroyer, Outcome};
use tcptab::record::Fields;
use tcptab::record::Value;
use tcptab::{Entry, EntryBuf, Query};

use crate::cli::{KillArgs, KillFormat};
use crate::exit::Partial;
use crate::output::cells::{Endpoint, OwnersCell};
use crate::output::csv::{header, Cells};
use crate::output::json::{string, value_into, JsonRecord};
use crate::report;

pub fn run(args: &KillArgs) -> Result<()> {
    let (expr, named) = args.select.filter.expr_naming()?;
    if expr == Expr::All && !args.select.filter.all {
        bail!("kill: no filter, so every socket would be destroyed; give a filter, or -a/--all to mean every socket");
    }
    // Netlink only: its dump names every socket exactly (the cookie).
    let source = &args.select.scope.source;
    if source.source == crate::cli::SourceArg::Proc || source.root != std::path::Path::new("/proc")
    {
        bail!("kill: sockets are destroyed through netlink (SOCK_DESTROY), which reads the live kernel; --source proc and --root cannot be used");
    }
    let query = args
        .select
        .query(Extensions::default(), true)?
        .source(Choice::Netlink);
    let snapshot = query.snapshot()?;
    report::notes(&snapshot.report, args.select.verbose());
    // The rule is on the sockets selected: a listener only when named.
    let plan = tcptab::kill::plan(snapshot.sockets, named, args.listeners);
    let matched = plan.destroy.len();
    if matched > args.max {
        bail!(
            "kill: {matched} sockets match, more than --max {}; nothing destroyed (narrow the filter or raise --max)",
            args.max
        );
    }
    let format = args.format;
    let fields = Fields {
        netns: args.select.named(),
        owners: true,
        workload: false,
        history: false,
    };
    let mut out = Output::new(format, fields);
    for (e, why) in &plan.left_out {
        out.socket(&e.as_entry(), "left_out", Some(&why.to_string()));
    }
    if !plan.left_out.is_empty() {
        note!(
            "tcptab: {} left out: the filter does not name the listening state (-l, --state listening, or --listeners to destroy them)",
            tcptab::counted(plan.left_out.len() as u64, "listening socket")
        );
    }
    if !args.yes {
        for e in &plan.destroy {
            out.socket(&e.as_entry(), "would_destroy", None);
        }
        out.finish()?;
        note!(
            "tcptab: dry run: {} would be destroyed; nothing was destroyed. Run again with --yes to destroy them.",
            tcptab::counted(matched as u64, "socket")
        );
        return Ok(());
    }
    destroy_all(&query, &plan.destroy, &mut out)
}

fn destroy_all(query: &Query, sockets: &[EntryBuf], out: &mut Output) -> Result<()> {
    let mut destroyer = Destroyer::new(query);
    let (mut destroyed, mut gone, mut refused) = (0usize, 0usize, 0usize);
    for (i, e) in sockets.iter().enumerate() {
        let entry = e.as_entry();
        let outcome = destroyer
            .destroy(&entry)
            .with_context(|| format!("destroying {}", Endpoint(entry.socket.local, None)))?;
        if i == 0 && outcome.refuses_every_socket() {
            // The first answer says no socket can be destroyed here: one
            // error, and nothing was.
            bail!("kill: {outcome}; nothing destroyed");
        }
        match outcome {
            Outcome::Destroyed => destroyed += 1,
            Outcome::Gone(_) => gone += 1,
            Outcome::Refused(_) => refused += 1,
        }
        let detail = outcome.to_string();
        out.socket(&entry, outcome.as_str(), Some(&detail));
    }
    out.finish()?;
    let total = sockets.len();
    let summary = format!(
        "{destroyed} of {} destroyed, {gone} already gone, {refused} refused",
        tcptab::counted(total as u64, "socket")
    );
    if refused > 0 {
        return Err(Partial(summary).into());
    }
    note!("tcptab: {summary}");
    Ok(())
}

/// The listing and results, in the chosen format, written at the end (the
/// matches are few: at most --max).
struct Output {
    format: KillFormat,
    fields: Fields,
    text: Vec<u8>,
    rows: usize,
    cells: Cells,
}

impl Output {
    fn new(format: KillFormat, fields: Fields) -> Output {
        Output {
            format,
            fields,
            text: Vec::new(),
            rows: 0,
            cells: Cells::default(),
        }
    }

    fn socket(&mut self, entry: &Entry<'_>, result: &str, detail: Option<&str>) {
        let out = &mut self.text;
        match self.format {
            KillFormat::Table => {
                let s = entry.socket;
                let _ = write!(
                    out,
                    "{result:<13} {:<11} {} -> {}",
                    s.state,
                    Endpoint(s.local, None),
                    Endpoint(s.remote, None)
                );
                if let Some(ns) = entry.namespace {
                    let _ = write!(out, " netns {}", ns.label());
                }
                if let Some(owners) = entry.owners {
                    let _ = write!(out, " {}", OwnersCell(owners));
                }
                if let Some(detail) = detail.filter(|d| *d != result) {
                    let _ = write!(out, " ({detail})");
                }
                out.push(b'\n');
            }
            KillFormat::Csv => {
                let mut writer = csv::Writer::from_writer(&mut *out);
                if self.rows == 0 {
                    let names = ["result".to_string(), "detail".to_string()];
                    let _ = writer.write_record(names.into_iter().chain(header(self.fields)));
                }
                let record = tcptab::record::Record::new(entry, self.fields);
                let own = [result.as_bytes(), detail.unwrap_or("").as_bytes()];
                let _ = writer.write_record(own.into_iter().chain(self.cells.of(&record)));
                let _ = writer.flush();
            }
            KillFormat::Json | KillFormat::Jsonl => {
                if self.format == KillFormat::Json {
                    out.extend_from_slice(if self.rows == 0 { b"[\n" } else { b",\n" });
                }
                out.extend_from_slice(b"{\"result\":");
                string(out, result);
                out.extend_from_slice(b",\"detail\":");
                value_into(out, detail.map_or(Value::Null, Value::Str));
                let mut record = Vec::with_capacity(1024);
                JsonRecord::write(
                    &mut record,
                    &tcptab::record::Record::new(entry, self.fields),
                );
                out.push(b',');
                out.extend_from_slice(&record[1..]);
                if self.format == KillFormat::Jsonl {
                    out.push(b'\n');
                }
            }
        }
        self.rows += 1;
    }

    fn finish(&mut self) -> Result<()> {
        if self.format == KillFormat::Csv && self.rows == 0 {
            let mut writer = csv::Writer::from_writer(&mut self.text);
            let names = ["result".to_string(), "detail".to_string()];
            writer.write_record(names.into_iter().chain(header(self.fields)))?;
            writer.flush()?;
        }
        if self.format == KillFormat::Json {
            self.text
                .extend_from_slice(if self.rows == 0 { b"[]\n" } else { b"\n]\n" });
        }
        let mut stdout = io::stdout().lock();
        stdout.write_all(&self.text)?;
        stdout.flush().context("writing output")
    }
}
