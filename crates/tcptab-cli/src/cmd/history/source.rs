//! Where `history` reads: one recorder's file, or a fleet's store
//! (`--clickhouse`); each says on stderr what it could not see of the
//! window.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Result;
use tcptab::filter::Expr;
use tcptab::fleet::Store;
use tcptab::history::{Lived, Reader, Span, Window};
use tcptab::time::format_rfc3339;

use crate::cli::HistoryArgs;

/// A history to ask.
pub enum Source {
    File {
        reader: Reader,
        db: PathBuf,
    },
    Fleet {
        store: Store,
        host: Option<String>,
        /// What of the filter the store's SQL applies.
        pushed: Option<String>,
        spans: Vec<(String, Span)>,
    },
}

impl Source {
    pub fn open(args: &HistoryArgs, expr: &Expr) -> Result<Source> {
        if let Some(target) = args.store.target()? {
            let client = tcptab::fleet::Client::new(target, std::time::Duration::from_secs(60));
            let store = Store::new(client).keys_sent(keys_sent()?);
            let spans = store.spans(args.host.as_deref())?;
            return Ok(Source::Fleet {
                store,
                host: args.host.clone(),
                pushed: tcptab::fleet::pushed(expr),
                spans,
            });
        }
        // clap lets these pass beside --db (which conflicts with the
        // --clickhouse they require): a file holds one host's history.
        let store_only = [
            ("--host", args.host.is_some()),
            ("--clickhouse-user", args.store.clickhouse_user.is_some()),
            (
                "--clickhouse-password-file",
                args.store.clickhouse_password_file.is_some(),
            ),
        ];
        if let Some((option, _)) = store_only.iter().find(|(_, given)| *given) {
            anyhow::bail!("{option} asks a fleet's store: give --clickhouse URL instead of --db");
        }
        let db = args
            .db
            .clone()
            .expect("clap requires --db without --clickhouse");
        Ok(Source::File {
            reader: Reader::open(&db)?,
            db,
        })
    }

    pub fn is_fleet(&self) -> bool {
        matches!(self, Source::Fleet { .. })
    }

    /// The time recorded: the file's polls, or from the first poll of any
    /// host to the last.
    pub fn span(&self) -> Result<Option<Span>> {
        match self {
            Source::File { reader, .. } => Ok(reader.span()?),
            Source::Fleet { spans, .. } => Ok(spans.iter().map(|(_, s)| *s).reduce(|mut a, b| {
                a.first_poll = a.first_poll.min(b.first_poll);
                a.last_poll = a.last_poll.max(b.last_poll);
                a.polls += b.polls;
                a
            })),
        }
    }

    /// Hand the connections of `window` to `f` (the filter is `f`'s to
    /// apply; a store has applied what it could already).
    pub fn connections(&self, window: Window, f: impl FnMut(&Lived) -> Result<()>) -> Result<()> {
        match self {
            Source::File { reader, .. } => reader.connections(window, f),
            Source::Fleet {
                store,
                host,
                pushed,
                ..
            } => store.connections(window, host.as_deref(), pushed.as_deref(), f),
        }
    }

    /// `--at now` on a recording that goes on: as of its last poll.
    pub fn as_of_last_poll(&self, window: Window, args: &HistoryArgs) -> Result<Window> {
        match self {
            Source::File { db, .. } => as_of_last_poll(window, args, db),
            Source::Fleet { .. } => {
                let Window::At(t) = window else {
                    return Ok(window);
                };
                let last = self.span()?.map(|s| s.last_poll);
                match last {
                    Some(last) if args.at.as_deref().map(str::trim) == Some("now") && last < t => {
                        note!(
                            "tcptab: --at now: as of the last poll shipped, {}",
                            format_rfc3339(last)
                        );
                        Ok(Window::At(last))
                    }
                    _ => Ok(window),
                }
            }
        }
    }

    /// Say what was not observed of `window`; false when nothing was.
    pub fn observed(&self, window: Window) -> Result<bool> {
        match self {
            Source::File { reader, db } => observed(reader, window, reader.span()?, db),
            Source::Fleet { spans, .. } => Ok(fleet_observed(spans, window)),
        }
    }
}

/// Each host whose recording does not cover the window, said.
fn fleet_observed(spans: &[(String, Span)], window: Window) -> bool {
    if spans.is_empty() {
        note!("tcptab: the store has no poll shipped yet (of this host): nothing was observed");
        return false;
    }
    let (from, to) = match window {
        Window::At(t) => (t, t),
        Window::Between(a, b) => (a, b),
        Window::All => return true,
    };
    let mut any = false;
    for (host, span) in spans {
        if to < span.first_poll || from > span.last_poll {
            note!(
                "tcptab: {host}: recorded from {} to {}: nothing of this window was observed there",
                format_rfc3339(span.first_poll),
                format_rfc3339(span.last_poll)
            );
        } else {
            any = true;
        }
    }
    any
}

/// `--at now` (or a moment after the last poll, up to one interval and a
/// second after it, on a recording that goes on): the last poll, which is
/// what is known; said with its age.
fn as_of_last_poll(window: Window, args: &HistoryArgs, db: &std::path::Path) -> Result<Window> {
    let Window::At(t) = window else {
        return Ok(window);
    };
    if args.at.as_deref().map(str::trim) != Some("now") {
        return Ok(window);
    }
    let reader = Reader::open(db)?;
    let Some(span) = reader.span()? else {
        return Ok(window);
    };
    if t <= span.last_poll {
        return Ok(window);
    }
    let interval = reader
        .polls(span.last_poll, span.last_poll)?
        .last()
        .and_then(|p| p.interval_ms)
        .unwrap_or(0);
    if t - span.last_poll > tcptab::track::gap_after_ms(interval) {
        return Ok(window);
    }
    note!(
        "tcptab: --at now: as of the last poll, {} ({:.1} s ago)",
        format_rfc3339(span.last_poll),
        (t - span.last_poll) as f64 / 1000.0
    );
    Ok(Window::At(span.last_poll))
}

/// Say what the recording could not see of `window` on stderr; false when
/// it saw none of it (no rows then).
fn observed(
    reader: &Reader,
    window: Window,
    span: Option<Span>,
    db: &std::path::Path,
) -> Result<bool> {
    let Some(span) = span else {
        note!(
            "tcptab: {}: no poll recorded yet: nothing was observed",
            db.display()
        );
        return Ok(false);
    };
    let recorded = format!(
        "{} to {}",
        format_rfc3339(span.first_poll),
        format_rfc3339(span.last_poll)
    );
    let (from, to) = match window {
        Window::At(t) => (t, t),
        Window::Between(a, b) => (a, b),
        Window::All => (span.first_poll, span.last_poll),
    };
    if to < span.first_poll || from > span.last_poll {
        let what = match window {
            Window::At(t) => format!("--at {}", format_rfc3339(t)),
            _ => format!("--between {} {}", format_rfc3339(from), format_rfc3339(to)),
        };
        note!(
            "tcptab: {what} is outside the recorded span ({recorded}): nothing was observed then"
        );
        return Ok(false);
    }
    if matches!(window, Window::Between(..)) && (from < span.first_poll || to > span.last_poll) {
        note!("tcptab: the recording covers only part of the interval ({recorded})");
    }
    // What the polls of the window (and the one before it) could not see.
    let polls = reader.polls(from, to)?;
    let mut unseen: BTreeMap<&str, usize> = BTreeMap::new();
    for p in &polls {
        for line in p.not_seen.as_deref().unwrap_or("").lines() {
            *unseen.entry(line).or_default() += 1;
        }
    }
    for (line, n) in unseen {
        note!(
            "tcptab: {n} of {} of this window: {line}",
            tcptab::counted(polls.len() as u64, "poll")
        );
    }
    // Gaps: the recorder was stopped, the machine slept, the clock
    // jumped. What ended in one ended unobserved after its last sighting.
    for g in reader.gaps(from, to)? {
        let inside = matches!(window, Window::At(t) if t > g.from && t < g.to);
        if inside {
            note!(
                "tcptab: {} was not observed: no poll from {} to {} (a gap of {}); listed are the connections seen open on both sides of it",
                format_rfc3339(from),
                format_rfc3339(g.from),
                format_rfc3339(g.to),
                humantime::format_duration(std::time::Duration::from_secs(((g.to - g.from) / 1000) as u64))
            );
        } else {
            note!(
                "tcptab: no poll from {} to {} (a gap): connections that ended meanwhile ended at an unobserved moment after their last sighting",
                format_rfc3339(g.from),
                format_rfc3339(g.to)
            );
        }
    }
    Ok(true)
}

/// The most candidate keys sent back to the store: `TCPTAB_FLEET_KEYS_SENT`
/// (docs/fleet.md), else the library's default.
fn keys_sent() -> Result<usize> {
    match std::env::var("TCPTAB_FLEET_KEYS_SENT") {
        Err(_) => Ok(tcptab::fleet::KEYS_SENT),
        Ok(v) => v.trim().parse().map_err(|_| {
            anyhow::anyhow!(
                "TCPTAB_FLEET_KEYS_SENT: '{v}' is not a whole number of keys (the default is {})",
                tcptab::fleet::KEYS_SENT
            )
        }),
    }
}
