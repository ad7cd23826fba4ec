//! `tcptab top`: every connection with its receive and send rates, one
//! refresh per interval. The rates are tcp_info's cumulative counters
//! differenced between two looks ([`tcptab::rates`]); with the netlink
//! source and one namespace, the kernel's destroy notifications bring the
//! connections that closed since the last refresh, so one that lived less
//! than an interval still appears once, with its final counters.
//!
//! On a terminal, the full-screen view: its state and keys ([`view`]),
//! drawn pane by pane ([`draw`]) with what fits ([`layout`]), the detail
//! of one connection ([`detail`]), the prompt's line ([`line`]). The
//! screen shows owners whenever they can be read. `--format jsonl`
//! prints one object per refresh instead, `{"schema_version", "time",
//! "interval_s", "sockets": [...]}`, each socket the common record plus
//! `rx_bytes_per_s`, `tx_bytes_per_s`, `age_s` and `closed`.

use std::collections::{HashMap, HashSet};
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use tcptab::diag::Extensions;
use tcptab::rates::{Rate, RateTracker};
use tcptab::record::{Fields, Record, SCHEMA_VERSION};
use tcptab::track::{Change, Conn, Happened, Monitor, MonitorOptions};
use tcptab::{Entry, Namespace};

use crate::cli::{TopArgs, TopFormat};
use crate::output::json::{string, JsonRecord};
use crate::report;

pub mod detail;
pub mod draw;
pub mod layout;
pub mod line;
pub mod view;

#[cfg(test)]
mod tests;

pub fn run(args: &TopArgs) -> Result<()> {
    if args.format != TopFormat::Jsonl && !std::io::stdout().is_terminal() {
        bail!("tcptab top: stdout is not a terminal; for scripts, --format jsonl prints one frame per refresh");
    }
    // tcp_info for the counters the rates come from; the screen shows
    // owners whenever they can be read, a frame only with -p.
    let owners = args.processes || args.format == TopFormat::Screen;
    let query = args
        .select
        .query(Extensions::TCP_INFO, owners)?
        .workloads(args.workload)
        // Read again every interval: one walk of the kernel's tables
        // for both families costs less than two.
        .one_walk_all(true);
    let mut looker = Looker::new(&query, args);
    let first = looker.look()?;
    if args.format == TopFormat::Jsonl {
        frames(args, &mut looker)
    } else {
        run_screen(args, &mut looker, first)
    }
}

/// One connection of a refresh: as it is (or as it closed), its rates
/// over the interval, and whether it closed since the last refresh.
struct Shown {
    conn: Conn,
    rate: Rate,
    closed: bool,
}

impl Shown {
    /// Its socket: one that closed since the last refresh as the kernel
    /// last reported it (its final counters; a TIME_WAIT it left behind
    /// is shown from the next refresh on).
    fn entry(&self) -> Entry<'_> {
        if self.closed {
            self.conn.closing_entry().as_entry()
        } else {
            self.conn.entry.as_entry()
        }
    }

    /// Time since it was first seen.
    fn age(&self, now_ms: i64) -> Duration {
        Duration::from_millis(now_ms.saturating_sub(self.conn.first_seen).max(0) as u64)
    }
}

/// One refresh: every connection once (a connection that closed since
/// the last refresh marked, with its final counters' rates).
struct Look {
    shown: Vec<Shown>,
    interval: Duration,
    namespaces: Vec<Option<Arc<Namespace>>>,
    at_ms: i64,
}

/// Takes the looks: the monitor (polls and destroy notifications), the
/// rates between looks, and what closed since the last.
struct Looker<'q> {
    monitor: Monitor<'q>,
    rates: RateTracker<u64>,
    /// Connections that closed since the last look (as they closed).
    closed: HashMap<u64, Conn>,
    previous: Instant,
    /// When the last look was taken (ms since the epoch).
    previous_ms: Option<i64>,
    lost_noted: bool,
    verbose: bool,
    /// Which source the first look read, for the screen's header.
    source: String,
}

impl<'q> Looker<'q> {
    fn new(query: &'q tcptab::Query, args: &TopArgs) -> Looker<'q> {
        Looker {
            monitor: Monitor::new(query, MonitorOptions::every(args.interval)),
            rates: RateTracker::new(),
            closed: HashMap::new(),
            previous: Instant::now(),
            previous_ms: None,
            lost_noted: false,
            verbose: args.select.verbose(),
            source: String::new(),
        }
    }

    fn happened(closed: &mut HashMap<u64, Conn>, lost_noted: &mut bool, h: Happened<'_>) {
        match h {
            Happened::Event(e) => {
                if let Change::Closed { .. } = e.change {
                    closed.insert(e.conn.id, e.conn);
                }
            }
            Happened::Lost { .. } if !*lost_noted => {
                note!("tcptab: the kernel dropped destroy notifications (a burst overflowed their buffer): connections that closed meanwhile are closed by the next refreshes, without their final counters");
                *lost_noted = true;
            }
            _ => {}
        }
    }

    /// Take notifications until `until` (or the stop).
    fn wait(&mut self, until: Instant, stop: &dyn Fn() -> bool) -> Result<()> {
        let (closed, lost) = (&mut self.closed, &mut self.lost_noted);
        self.monitor
            .wait_until(until, stop, &mut |h| -> Result<()> {
                Self::happened(closed, lost, h);
                Ok(())
            })
    }

    /// A refresh now.
    fn look(&mut self) -> Result<Look> {
        let (closed, lost) = (&mut self.closed, &mut self.lost_noted);
        let verbose = self.verbose;
        let mut namespaces = Vec::new();
        let mut source = None;
        let mut polled_at = None;
        self.monitor.poll(&mut |h| -> Result<()> {
            if let Happened::Polled(p) = &h {
                polled_at = Some(p.at);
                if p.first {
                    report::notes(&p.snapshot.report, verbose);
                    source = Some(source_label(&p.snapshot.report));
                }
                namespaces = p.snapshot.namespaces.clone();
            }
            Self::happened(closed, lost, h);
            Ok(())
        })?;
        if let Some(source) = source {
            self.source = source;
        }
        let at = Instant::now();
        let at_ms = tcptab::time::now_ms();
        let interval = at.saturating_duration_since(self.previous);
        self.previous = at;
        // Born since the last look: first seen after that poll began (by
        // this poll, or by a notification, also one the last look missed).
        let last_look = std::mem::replace(&mut self.previous_ms, polled_at);
        let born = |conn: &Conn| last_look.is_some_and(|t| conn.first_seen > t);
        self.rates.begin_look(at);
        let mut closed = std::mem::take(&mut self.closed);
        let mut shown = Vec::with_capacity(self.monitor.tracker().len() + closed.len());
        for conn in self.monitor.tracker().conns() {
            let was_closed = closed.remove(&conn.id).is_some();
            let rate = if was_closed {
                self.rates.closed(conn.id, counters(conn), at, born(conn))
            } else {
                self.rates.rate(conn.id, counters(conn), at, born(conn))
            };
            shown.push(Shown {
                conn: conn.clone(),
                rate,
                closed: was_closed,
            });
        }
        // Those no socket of which is left.
        for (_, conn) in closed {
            let rate = self.rates.closed(conn.id, counters(&conn), at, born(&conn));
            shown.push(Shown {
                conn,
                rate,
                closed: true,
            });
        }
        self.rates.end_look();
        Ok(Look {
            shown,
            interval,
            namespaces,
            at_ms,
        })
    }
}

/// tcp_info's received and acked bytes, as high as they were seen.
fn counters(conn: &Conn) -> Option<(u64, u64)> {
    conn.counters.bytes_received.zip(conn.counters.bytes_acked)
}

/// Destroy the connection `target` (confirmed on screen) through the kill
/// operation, in its own namespace; what became of it, for the last line.
fn destroy(
    destroyer: &mut tcptab::kill::Destroyer<'_>,
    looker: &Looker<'_>,
    target: u64,
) -> String {
    let Some(conn) = looker.monitor.tracker().get(target) else {
        return "it is no longer listed".into();
    };
    let entry = conn.entry.as_entry();
    let s = entry.socket;
    let what = format!(
        "{} -> {}",
        crate::output::cells::Endpoint(s.local, None),
        crate::output::cells::Endpoint(s.remote, None)
    );
    match destroyer.destroy(&entry) {
        Ok(outcome) => format!("{what}: {outcome}"),
        Err(e) => format!("{what}: not destroyed: {e}"),
    }
}

/// `netlink`, `proc`, or both, with the namespace when there is one.
fn source_label(report: &tcptab::Report) -> String {
    let mut sources: Vec<&str> = report.read.iter().map(|r| r.source.as_str()).collect();
    sources.sort();
    sources.dedup();
    let mut label = sources.join("+");
    if let [read] = &report.read[..] {
        if let Some(ns) = &read.namespace {
            label.push_str(&format!(" (netns {})", ns.label()));
        }
    }
    label
}

/// `--format jsonl`: one frame per refresh.
fn frames(args: &TopArgs, looker: &mut Looker<'_>) -> Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
        .context("installing the Ctrl-C handler")?;
    let stopped = || stop.load(Ordering::SeqCst);
    let fields = Fields {
        netns: args.select.named(),
        owners: args.processes,
        workload: args.workload,
        history: false,
    };
    // A frame is written socket by socket: its buffer holds one record.
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
    let mut line = Vec::with_capacity(4096);
    let mut count = 0u64;
    loop {
        let next = looker.monitor.next_poll();
        looker.wait(next, &stopped)?;
        if stopped() {
            return Ok(());
        }
        let look = looker.look()?;
        line.clear();
        line.extend_from_slice(b"{\"schema_version\":");
        line.extend_from_slice(SCHEMA_VERSION.to_string().as_bytes());
        crate::output::json::host_member(&mut line);
        line.extend_from_slice(b",\"time\":");
        string(&mut line, &tcptab::time::format_rfc3339(look.at_ms));
        line.extend_from_slice(
            format!(
                ",\"interval_s\":{:.3},\"sockets\":[",
                look.interval.as_secs_f64()
            )
            .as_bytes(),
        );
        let mut first = true;
        for shown in &look.shown {
            socket_into(&mut line, &mut first, shown, fields, look.at_ms);
            out.write_all(&line)?;
            line.clear();
        }
        out.write_all(b"]}\n")?;
        out.flush().context("writing output")?;
        count += 1;
        if args.count.is_some_and(|n| count >= n) {
            return Ok(());
        }
    }
}

/// The full-screen view: raw mode on the alternate screen, restored on
/// the way out (quit, error, panic, or SIGTERM, SIGINT or SIGHUP, which
/// then exit as the signal's conventional status).
fn run_screen(args: &TopArgs, looker: &mut Looker<'_>, first: Look) -> Result<()> {
    use crossterm::event::{self, Event};
    use crossterm::terminal::{self, EnterAlternateScreen, LeaveAlternateScreen};

    struct Restore;
    impl Drop for Restore {
        fn drop(&mut self) {
            let _ = terminal::disable_raw_mode();
            let _ = crossterm::execute!(
                std::io::stdout(),
                LeaveAlternateScreen,
                crossterm::cursor::Show
            );
        }
    }
    let signalled = Arc::new(AtomicUsize::new(0));
    for signal in [SIGTERM, SIGINT, SIGHUP] {
        signal_hook::flag::register_usize(signal, signalled.clone(), signal as usize)
            .context("installing the signal handlers")?;
    }
    let caught = || match signalled.load(Ordering::SeqCst) {
        0 => None,
        n => Some(n as i32),
    };
    terminal::enable_raw_mode().context("putting the terminal in raw mode")?;
    let _restore = Restore;
    crossterm::execute!(std::io::stdout(), EnterAlternateScreen)?;
    let mut terminal =
        ratatui::Terminal::new(ratatui::backend::CrosstermBackend::new(std::io::stdout()))?;
    let mut view = view::View::new(looker.source.clone(), args.interval);
    view.workload = args.workload;
    let query = looker.monitor.query();
    let mut destroyer = tcptab::kill::Destroyer::new(query);
    let mut state = Refreshes::default();
    // The first look's rows at once, their rates after one interval.
    let (rows_now, findings) = state.rows(&first);
    view.update(rows_now);
    view.findings = findings;
    let stop = || caught().is_some();
    loop {
        if Instant::now() >= looker.monitor.next_poll() {
            let look = looker.look()?;
            if !view.paused {
                let (rows, findings) = state.rows(&look);
                view.update(rows);
                view.findings = findings;
            }
        }
        terminal.draw(|f| draw::draw(f, &view))?;
        view.page = terminal.size()?.height.saturating_sub(4).max(1) as usize;
        // Keys until the next refresh; notices of closed connections
        // between them.
        while Instant::now() < looker.monitor.next_poll() && !view.quit && !stop() {
            if event::poll(Duration::from_millis(50))? {
                match event::read()? {
                    Event::Key(key) if key.kind == event::KeyEventKind::Press => {
                        view.key(key);
                        if let Some(target) = view.destroy.take() {
                            view.message = Some(destroy(&mut destroyer, looker, target));
                        }
                    }
                    Event::Resize(..) => {}
                    _ => continue,
                }
                terminal.draw(|f| draw::draw(f, &view))?;
                view.page = terminal.size()?.height.saturating_sub(4).max(1) as usize;
            } else {
                looker.wait(Instant::now(), &stop)?;
            }
        }
        if let Some(signal) = caught() {
            return Err(crate::exit::Signalled(signal).into());
        }
        if view.quit {
            return Ok(());
        }
    }
}

/// What the screen remembers between refreshes: the connections whose
/// application does not read (consecutive refreshes with a large receive
/// queue), and those that closed lately (shown dimmed by the view, so
/// their TIME_WAIT is not shown again meanwhile).
#[derive(Default)]
struct Refreshes {
    unread: HashMap<u64, u32>,
    dimmed: HashMap<u64, u8>,
}

impl Refreshes {
    /// A look's connections as screen rows (the closed ones marked), and
    /// the look's findings: diagnose's, and the connections whose
    /// application does not read.
    fn rows(&mut self, look: &Look) -> (Vec<view::Row>, Vec<String>) {
        let mut diagnoser = tcptab::diagnose::Diagnoser::new(Default::default());
        let mut still: HashMap<u64, u32> = HashMap::new();
        let mut not_reading = 0;
        let mut rows: Vec<view::Row> = Vec::with_capacity(look.shown.len());
        let mut dimmed: HashSet<u64> = HashSet::new();
        self.dimmed.retain(|id, left| {
            *left -= 1;
            dimmed.insert(*id);
            *left > 0
        });
        for shown in &look.shown {
            let id = shown.conn.id;
            let entry = shown.entry();
            let age = shown.age(look.at_ms);
            if shown.closed {
                self.dimmed.insert(id, view::CLOSED_REFRESHES);
                rows.push(row(
                    id,
                    &entry,
                    shown.rate,
                    age,
                    view::CLOSED_REFRESHES,
                    false,
                ));
                continue;
            }
            if dimmed.contains(&id) {
                continue;
            }
            diagnoser.add(&entry);
            let stays = entry.socket.state != tcptab::State::Listen
                && entry.socket.rx_queue >= UNREAD_BYTES;
            let looks = if stays {
                self.unread.get(&id).copied().unwrap_or(0) + 1
            } else {
                0
            };
            if looks > 0 {
                still.insert(id, looks);
            }
            let is_unread = looks >= UNREAD_LOOKS;
            not_reading += usize::from(is_unread);
            rows.push(row(id, &entry, shown.rate, age, 0, is_unread));
        }
        self.unread = still;
        let mut findings: Vec<String> = diagnoser.finish().into_iter().map(|f| f.summary).collect();
        if not_reading > 0 {
            findings.push(format!(
                "{} whose application does not read: {UNREAD_BYTES} bytes or more waiting for {UNREAD_LOOKS} refreshes",
                tcptab::counted(not_reading as u64, "connection")
            ));
        }
        let _ = &look.namespaces;
        (rows, findings)
    }
}

/// A receive queue this large for this many refreshes in a row: the
/// application is not reading.
const UNREAD_BYTES: u32 = 16 * 1024;
const UNREAD_LOOKS: u32 = 3;

fn row(
    key: u64,
    entry: &Entry<'_>,
    rate: Rate,
    age: Duration,
    closed_for: u8,
    unread: bool,
) -> view::Row {
    use tcptab::diagnose::{mark, Kind, Thresholds};
    let problem = match mark(entry, &Thresholds::default()) {
        _ if closed_for > 0 => None,
        Some(Kind::CloseWait) => Some("close-wait"),
        Some(Kind::AcceptQueue) => Some("queue full"),
        Some(Kind::ZeroWindow) => Some("zero window"),
        Some(Kind::Retransmits) => Some("retransmits"),
        Some(_) => None,
        None if unread => Some("not reading"),
        None => None,
    };
    view::Row {
        key,
        entry: entry.to_buf(),
        rx_bytes_per_s: rate.rx_bytes_per_s,
        tx_bytes_per_s: rate.tx_bytes_per_s,
        age,
        closed_for,
        problem,
    }
}

/// One socket of a frame: the record, then its rates, age and whether it
/// closed since the last refresh.
fn socket_into(line: &mut Vec<u8>, first: &mut bool, shown: &Shown, fields: Fields, now_ms: i64) {
    if !*first {
        line.push(b',');
    }
    *first = false;
    let entry = shown.entry();
    JsonRecord::write(line, &Record::new(&entry, fields));
    line.pop(); // the record's closing brace
    let number = |line: &mut Vec<u8>, name: &str, value: Option<f64>| {
        line.extend_from_slice(format!(",\"{name}\":").as_bytes());
        match value {
            Some(v) => line.extend_from_slice(format!("{v:.1}").as_bytes()),
            None => line.extend_from_slice(b"null"),
        }
    };
    number(line, "rx_bytes_per_s", shown.rate.rx_bytes_per_s);
    number(line, "tx_bytes_per_s", shown.rate.tx_bytes_per_s);
    number(line, "age_s", Some(shown.age(now_ms).as_secs_f64()));
    line.extend_from_slice(if shown.closed {
        b",\"closed\":true}"
    } else {
        b",\"closed\":false}"
    });
}
