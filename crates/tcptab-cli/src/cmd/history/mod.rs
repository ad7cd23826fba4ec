//! `tcptab history`: the connections a recording saw at a moment or during
//! an interval, filtered as `list` filters, in every format (the socket
//! record plus when each was seen), or counted (`--summary`).
//!
//! What the recorder could not see during the window (its polls' notes,
//! gaps between polls, a window outside the recorded span) is said on
//! stderr: an answer says what was actually observed.

use std::io::{self, Write};

use anyhow::{bail, Context, Result};
use tcptab::filter::Expr;
use tcptab::history::{Lived, Window};
use tcptab::time::{format_rfc3339, parse_rfc3339};

use crate::cli::{HistoryArgs, HistoryFormat};
use source::Source;

mod source;
mod summary;
use crate::output::cells::Endpoint;
use crate::output::table::{Align, TextTable};
use crate::output::{self, Columns, OutputOptions};
pub use summary::Summary;
use summary::{write_summary, Counts};

pub fn run(args: &HistoryArgs) -> Result<()> {
    let now = tcptab::time::now_ms();
    let window = match (&args.at, &args.between[..]) {
        (Some(t), _) => Window::At(moment("--at", t, now, None)?),
        (None, [a, b]) => {
            let a = moment("--between", a, now, None)?;
            let b = moment("--between", b, now, Some(a))?;
            if a > b {
                bail!(
                    "--between: {} is after {} (give the earlier time first)",
                    format_rfc3339(a),
                    format_rfc3339(b)
                );
            }
            Window::Between(a, b)
        }
        _ => Window::All,
    };
    let expr = args.filter.expr()?;
    if expr.needs_facts() {
        bail!("history: `dev` and `autobound` need the live namespace's interfaces and port range, which a recording does not keep");
    }
    let source = Source::open(args, &expr)?;
    let window = source.as_of_last_poll(window, args)?;
    let span = source.span()?;
    let observed = source.observed(window)?;

    if args.summary {
        let mut summary = Counts::default();
        if observed {
            source.connections(window, |lived: &Lived| -> Result<()> {
                if matches(&expr, lived) {
                    summary.add(lived);
                }
                Ok(())
            })?;
        }
        return write_summary(args, window, span, summary);
    }

    let stdout = io::stdout().lock();
    match args.format {
        HistoryFormat::Table => {
            let mut out = io::BufWriter::new(stdout);
            let mut table = Table::new(args.no_header, source.is_fleet());
            if observed {
                source.connections(window, |lived: &Lived| -> Result<()> {
                    if matches(&expr, lived) {
                        table.row(lived);
                        if table.t.block_full() {
                            table.t.write_block(&mut out)?;
                        }
                    }
                    Ok(())
                })?;
            }
            if table.rows > 0 || !args.no_header {
                table.t.write_block(&mut out)?;
            }
            out.flush().context("writing output")?;
        }
        format => {
            let format = match format {
                HistoryFormat::Json => crate::cli::Format::Json,
                HistoryFormat::Jsonl => crate::cli::Format::Jsonl,
                _ => crate::cli::Format::Csv,
            };
            let options = OutputOptions {
                format,
                byte_order: tcptab::procnet::ByteOrder::Little,
                columns: Columns {
                    processes: true,
                    workload: true,
                    netns_fields: true,
                    history: true,
                    no_header: args.no_header,
                    ..Columns::default()
                },
            };
            let mut sink = output::sink(Box::new(stdout), options)?;
            if observed {
                let mut sl = 0;
                source.connections(window, |lived: &Lived| -> Result<()> {
                    if matches(&expr, lived) {
                        let mut socket = lived.entry.socket;
                        socket.sl = sl;
                        sl += 1;
                        let entry = lived.entry.as_entry().with_socket(&socket);
                        sink.lived(&entry, &lived.lifetime)?;
                    }
                    Ok(())
                })?;
            }
            sink.finish().context("writing output")?;
        }
    }
    Ok(())
}

/// A time option's value: RFC 3339 (its seconds may be left out), a time
/// of day with its offset (`03:12Z`: the latest such moment, today or
/// yesterday; with `from`, an interval's start, the first such moment at
/// or after it), `now`, relative to now (`-15m`), or Unix time
/// (`@SECONDS`).
fn moment(option: &str, text: &str, now: i64, from: Option<i64>) -> Result<i64> {
    let shown = tcptab::filter::excerpt(text);
    let text = text.trim();
    if text == "now" {
        return Ok(now);
    }
    if let Some(seconds) = text.strip_prefix('@') {
        let s = seconds
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && s.abs() < 1e14)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "{option}: '{shown}' is not a Unix time: @ takes seconds since 1970-01-01T00:00:00Z (@1796500000)"
                )
            })?;
        return Ok((s * 1000.0).round() as i64);
    }
    let text = &with_seconds(text);
    let b = text.as_bytes();
    let time_of_day = b.len() >= 8
        && b[2] == b':'
        && b[5] == b':'
        && [0, 1, 3, 4, 6, 7].iter().all(|&i| b[i].is_ascii_digit());
    if time_of_day {
        // The day is the one (in the offset given) whose such moment is
        // the latest at or before now, or the first at or after `from`
        // (at most two days before now): with an offset of up to a day
        // either way, one of the UTC days from three before now's to two
        // after.
        let on = |day: i64| {
            let date = &tcptab::time::format_rfc3339(now + day * 86_400_000)[..10];
            parse_rfc3339(&format!("{date}T{text}"))
        };
        let today = on(0)
            .map_err(|why| anyhow::anyhow!("{option}: '{shown}' is not a time of day: {why}"))?;
        let days = (-3..=2).filter_map(|day| on(day).ok());
        let chosen = match from {
            Some(from) => days.filter(|t| *t >= from).min(),
            None => days.filter(|t| *t <= now).max(),
        };
        return Ok(chosen.unwrap_or(today));
    }
    if let Some(ago) = text.strip_prefix('-') {
        let d = humantime::parse_duration(ago.trim()).map_err(|e| {
            anyhow::anyhow!(
                "{option}: '{shown}' is not a relative time such as -15m, -2h or -1d ({e})"
            )
        })?;
        return Ok(now - i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2));
    }
    parse_rfc3339(text).map_err(|why| {
        anyhow::anyhow!(
            "{option}: '{shown}' is not a time: {why}; or use now, or a relative time such as -15m"
        )
    })
}

/// `HH:MM` at the start of a time of day, or after a date's `T`, without
/// its seconds: `:00` added (ISO 8601 leaves them out, RFC 3339 does not).
fn with_seconds(text: &str) -> String {
    let b = text.as_bytes();
    let digits = |at: usize| {
        b.get(at..at + 2)
            .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
    };
    let minutes_at = if b.get(10).is_some_and(|c| matches!(c, b'T' | b't' | b' ')) {
        11
    } else {
        0
    };
    if digits(minutes_at)
        && b.get(minutes_at + 2) == Some(&b':')
        && digits(minutes_at + 3)
        && b.get(minutes_at + 5) != Some(&b':')
    {
        let at = minutes_at + 5;
        return format!("{}:00{}", &text[..at], &text[at..]);
    }
    text.to_string()
}

/// Whether the filter selects the connection in any state it had during
/// the window (with --at, the one).
fn matches(expr: &Expr, lived: &Lived) -> bool {
    let e = lived.entry.as_entry();
    let mut socket = lived.entry.socket;
    lived.states.iter().any(|&state| {
        socket.state = state;
        expr.matches_entry(&e.with_socket(&socket))
    })
}

/// `--format table`: one line per connection.
struct Table {
    t: TextTable,
    rows: u64,
    /// A Host column (a fleet's connections).
    host: bool,
}

impl Table {
    fn new(no_header: bool, host: bool) -> Table {
        use Align::Left;
        let host_column = host.then_some(("Host", Left));
        let mut t = TextTable::new(
            host_column
                .into_iter()
                .chain([
                    ("State", Left),
                    ("Local Address:Port", Left),
                    ("Peer Address:Port", Left),
                    ("First seen", Left),
                    ("Closed", Left),
                    ("Netns", Left),
                    ("Process", Left),
                ])
                .collect(),
        );
        if no_header {
            t.no_header();
        }
        Table { t, rows: 0, host }
    }

    fn row(&mut self, lived: &Lived) {
        let s = &lived.entry.socket;
        let l = &lived.lifetime;
        let t = &mut self.t;
        if self.host {
            let name = l.host.as_ref().map_or("", |h| h.hostname.as_str());
            t.cell(format_args!("{name}"));
        }
        match s.state.ss_name() {
            Some(name) => t.cell(format_args!("{name}")),
            None => t.cell(format_args!("{}", s.state)),
        }
        t.cell(format_args!("{}", Endpoint(s.local, None)));
        t.cell(format_args!("{}", Endpoint(s.remote, None)));
        t.cell(format_args!("{}", short_time(l.first_seen)));
        match (l.closed_at, l.closed_by.as_deref()) {
            (Some(at), Some("destroy" | "expired")) | (Some(at), None) => {
                t.cell(format_args!("{}", short_time(at)))
            }
            (Some(at), Some(by)) => t.cell(format_args!("{} ({by})", short_time(at))),
            (None, _) => t.cell(format_args!("open at {}", short_time(l.last_seen))),
        }
        let e = lived.entry.as_entry();
        t.cell(format_args!(
            "{}",
            e.namespace.map_or(String::new(), |n| n.label())
        ));
        match e.owners {
            Some(tcptab::Ownership::Owned(list)) => {
                let owners: Vec<String> = list
                    .iter()
                    .map(|o| format!("{}/{}", o.pid, o.command))
                    .collect();
                t.cell(format_args!("{}", owners.join(",")))
            }
            Some(tcptab::Ownership::Unknown) => t.cell(format_args!("?")),
            _ => t.cell(format_args!("-")),
        }
        self.rows += 1;
    }
}

/// A time for people: RFC 3339 to the second.
fn short_time(ms: i64) -> String {
    let full = format_rfc3339(ms);
    format!("{}Z", &full[..19])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments() {
        let now = 1_796_094_720_000;
        assert_eq!(moment("--at", "now", now, None).unwrap(), now);
        assert_eq!(moment("--at", "-15m", now, None).unwrap(), now - 900_000);
        assert_eq!(moment("--at", "-1d", now, None).unwrap(), now - 86_400_000);
        assert_eq!(
            moment("--at", "2026-12-01T04:12:00+01:00", now, None).unwrap(),
            now
        );
        // Seconds left out; a time of day: the latest such moment.
        assert_eq!(
            moment("--at", "2026-12-01T04:12+01:00", now, None).unwrap(),
            now
        );
        assert_eq!(moment("--at", "2026-12-01 03:12Z", now, None).unwrap(), now);
        assert_eq!(moment("--at", "03:12Z", now, None).unwrap(), now);
        assert_eq!(moment("--at", "03:12:00.000Z", now, None).unwrap(), now);
        assert_eq!(moment("--at", "04:12+01:00", now, None).unwrap(), now);
        assert_eq!(moment("--at", "03:11:59Z", now, None).unwrap(), now - 1000);
        assert_eq!(
            moment("--at", "03:12:01Z", now, None).unwrap(),
            now + 1000 - 86_400_000
        );
        assert_eq!(
            moment("--at", "23:00-05:00", now, None).unwrap(),
            now - (23 * 60 + 12) * 60_000
        );
        assert_eq!(
            moment("--at", "02:00+23:00", now, None).unwrap(),
            now - 12 * 60_000
        );
        // An interval's end as a time of day: the first such moment at or
        // after its start (03:12 is between 03:00 today and 03:30 today).
        let from = moment("--between", "03:00Z", now, None).unwrap();
        assert_eq!(from, now - 12 * 60_000);
        assert_eq!(
            moment("--between", "03:30Z", now, Some(from)).unwrap(),
            now + 18 * 60_000
        );
        let from = moment("--between", "23:00Z", now, None).unwrap();
        assert_eq!(
            moment("--between", "01:00Z", now, Some(from)).unwrap(),
            now - (2 * 60 + 12) * 60_000
        );
        // Unix time, as date's @.
        assert_eq!(moment("--at", "@1796094720", now, None).unwrap(), now);
        assert_eq!(
            moment("--at", "@1796094720.5", now, None).unwrap(),
            now + 500
        );
        for (text, said) in [
            (
                "03:12",
                "--at: '03:12' is not a time of day: a time needs Z or an offset",
            ),
            (
                "25:00Z",
                "--at: '25:00Z' is not a time of day: 25:00:00 is not a time of day",
            ),
            ("2026-12-01T03:12", "a time needs Z or an offset"),
            ("@soon", "--at: '@soon' is not a Unix time"),
            ("2026-12-01", "expected YYYY-MM-DD"),
        ] {
            let e = moment("--at", text, now, None).unwrap_err().to_string();
            assert!(e.contains(said), "{text}: {e}");
        }
        let e = moment("--between", "-15 parsecs", now, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a relative time"), "{e}");
    }
}
