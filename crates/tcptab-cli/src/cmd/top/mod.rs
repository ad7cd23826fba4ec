//! `tcptab top`: every connection with its receive and send rates, one
//! refresh per interval. The rates are tcp_info's cumulative counters
//! differenced between two looks ([`tcptab::rates`]); with the netlink
//! source and one namespace, the kernel's destroy notifications bring the
//! connections that closed since the last refresh, so one that lived less
//! than an interval still appears once, with its final counters.
//!
//! On a terminal, the full-screen view ([`screen`]). `--format jsonl`
//! prints one object per refresh instead, `{"schema_version", "time",
//! "interval_s", "sockets": [...]}`, each socket the common record plus
//! `rx_bytes_per_s`, `tx_bytes_per_s`, `age_s` and `closed`.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};
use tcptab::diag::{self, Extensions, NetlinkSocket};
use tcptab::rates::{Rate, RateTracker};
use tcptab::record::Record;
use tcptab::DiagSocket;
use tcptab::Key;
use tcptab::Source;
use tcptab::{Entry, Namespace};

use crate::cli::{TopArgs, TopFormat};
use crate::cmd::watch::{destroy_listener, ENOBUFS};
use crate::output::json::{string, JsonRecord};
use crate::query;

pub mod screen;

pub fn run(args: &TopArgs) -> Result<()> {
    if args.format != TopFormat::Jsonl && !std::io::stdout().is_terminal() {
        bail!("tcptab top: stdout is not a terminal; for scripts, --format jsonl prints one frame per refresh");
    }
    let expr = query::filter(&args.filter)?;
    // tcp_info for the counters the rates come from.
    let query = query::query(
        &args.source,
        &args.namespaces,
        expr,
        Extensions::TCP_INFO,
        args.processes,
    )?;
    let (mut looker, first) = Looker::start(&query, args.source.verbose)?;
    if args.format == TopFormat::Jsonl {
        frames(args, &mut looker)
    } else {
        run_screen(args, &mut looker, first)
    }
}

/// One refresh: the table, the rates of its connections, and the
/// connections that closed since the last refresh.
struct Look {
    snapshot: tcptab::Snapshot,
    rates: Vec<Rate>,
    closed: Vec<(DiagSocket, Rate)>,
    interval: Duration,
}

/// Takes the looks: the query, the rate tracker, and the destroy
/// notifications' socket (netlink, one namespace).
struct Looker<'q> {
    query: &'q tcptab::Query,
    rates: RateTracker,
    listener: Option<NetlinkSocket>,
    closed_filter: tcptab::filter::Expr,
    namespace: Option<Namespace>,
    previous: Instant,
    buf: Vec<u8>,
    lost_noted: bool,
    /// Which source the first look read, for the screen's header.
    source: String,
}

impl<'q> Looker<'q> {
    /// The first look, the baseline the first refresh's rates start from
    /// (returned too: the screen shows it, without rates, until then).
    fn start(query: &'q tcptab::Query, verbose: bool) -> Result<(Looker<'q>, Look)> {
        let snapshot = query.snapshot()?;
        query::notes(&snapshot.report, verbose);
        let mut looker = Looker {
            query,
            rates: RateTracker::new(),
            listener: None,
            closed_filter: query.filter_expr().clone(),
            namespace: None,
            previous: Instant::now(),
            buf: vec![0u8; 64 * 1024],
            lost_noted: false,
            source: source_label(&snapshot.report),
        };
        let report = &snapshot.report;
        if report.read.len() == 1 && report.read[0].source == Source::Netlink {
            let namespace = report.read[0].namespace.as_ref();
            looker.closed_filter = query.filter_for(namespace)?;
            looker.listener = destroy_listener(query, namespace, 4 << 20, verbose);
            looker.namespace = namespace.cloned();
        }
        let rates = looker.rate_all(&snapshot, looker.previous);
        looker.rates.end_look();
        let first = Look {
            snapshot,
            rates,
            closed: Vec::new(),
            interval: Duration::ZERO,
        };
        Ok((looker, first))
    }

    /// Begin a look of the rate tracker at `at` with every socket of
    /// `snapshot`: their rates, in order (the caller ends the look).
    fn rate_all(&mut self, snapshot: &tcptab::Snapshot, at: Instant) -> Vec<Rate> {
        self.rates.begin_look();
        snapshot
            .sockets
            .iter()
            .map(|kept| {
                let key = kept.key();
                self.rates.rate(key, kept.diag.as_ref(), at)
            })
            .collect()
    }

    /// Wait up to `timeout` for the kernel's notices of closed connections
    /// (or sleep, without them), adding them to `closed`.
    fn wait(&mut self, timeout: Duration, closed: &mut Vec<DiagSocket>) -> Result<()> {
        let Some(socket) = self.listener.as_mut() else {
            std::thread::sleep(timeout);
            return Ok(());
        };
        match socket.recv_within(&mut self.buf, timeout) {
            Ok(0) => {}
            Ok(len) => {
                for d in diag::destroyed(&self.buf[..len.min(self.buf.len())])? {
                    if self.closed_filter.matches(&d.socket, Some(&d.diag), None) {
                        closed.push(d);
                    }
                }
            }
            Err(e) if e.raw_os_error() == Some(ENOBUFS) => {
                if !self.lost_noted {
                    note!("tcptab: the kernel dropped destroy notifications (a burst overflowed their buffer): connections that closed meanwhile may be missing");
                    self.lost_noted = true;
                }
            }
            Err(e) => return Err(e).context("receiving destroy notifications"),
        }
        Ok(())
    }

    /// A refresh now, with the connections `closed` since the last one.
    fn look(&mut self, closed: Vec<DiagSocket>) -> Result<Look> {
        let snapshot = self.query.snapshot()?;
        let at = Instant::now();
        let interval = at.saturating_duration_since(self.previous);
        self.previous = at;
        let rates = self.rate_all(&snapshot, at);
        let netns = self.namespace.as_ref().map_or(0, |n| n.inode);
        let closed = closed
            .into_iter()
            .map(|d| {
                let key = Key::of(netns, &d.socket, Some(&d.diag));
                let rate = self.rates.closed(key, Some(&d.diag), at);
                (d, rate)
            })
            .collect();
        self.rates.end_look();
        Ok(Look {
            snapshot,
            rates,
            closed,
            interval,
        })
    }
}

/// `netlink`, `proc`, or both, with the namespace when there is one.
/// Destroy the connection `target` (confirmed on screen) through the kill
/// operation; what became of it, for the last line.
fn destroy(
    destroyer: &mut tcptab::kill::Destroyer<'_>,
    view: &screen::View,
    target: Key,
    namespaces: &[Option<std::sync::Arc<Namespace>>],
) -> String {
    let Some(row) = view.rows.iter().find(|r| r.key == target) else {
        return "it is no longer listed".into();
    };
    let netns = match target {
        Key::Cookie { netns, .. } | Key::Ends { netns, .. } => netns,
    };
    let namespace = namespaces
        .iter()
        .flatten()
        .find(|n| n.inode == netns)
        .map(|n| &**n);
    let entry = Entry::new(&row.socket, Source::Netlink)
        .with_diag(row.diag.as_ref())
        .with_namespace(namespace);
    let what = format!("{} -> {}", row.local, row.remote);
    match destroyer.destroy(&entry) {
        Ok(outcome) => format!("{what}: {outcome}"),
        Err(e) => format!("{what}: not destroyed: {e}"),
    }
}

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
    let fields = tcptab::record::Fields {
        netns: args.namespaces.named(),
        owners: args.processes,
        history: false,
    };
    // A frame is written socket by socket: its buffer holds one record.
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
    let mut line = Vec::with_capacity(4096);
    let mut count = 0u64;
    loop {
        let mut closed = Vec::new();
        let next = looker.previous + args.interval;
        while Instant::now() < next && !stop.load(Ordering::SeqCst) {
            let wait = next
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(100));
            looker.wait(wait, &mut closed)?;
        }
        if stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        let look = looker.look(closed)?;
        line.clear();
        line.extend_from_slice(b"{\"schema_version\":");
        line.extend_from_slice(tcptab::record::SCHEMA_VERSION.to_string().as_bytes());
        line.extend_from_slice(b",\"time\":");
        string(
            &mut line,
            &humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
        );
        line.extend_from_slice(
            format!(
                ",\"interval_s\":{:.3},\"sockets\":[",
                look.interval.as_secs_f64()
            )
            .as_bytes(),
        );
        let mut first = true;
        for (i, rate) in look.rates.iter().enumerate() {
            let entry = look.snapshot.entry(i);
            socket_into(&mut line, &mut first, &entry, fields, *rate, false);
            out.write_all(&line)?;
            line.clear();
        }
        let namespace = looker.namespace.as_ref();
        for (d, rate) in &look.closed {
            let entry = closed_entry(d, namespace);
            socket_into(&mut line, &mut first, &entry, fields, *rate, true);
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

/// A closed connection as an entry: the destroy notification's socket and
/// final counters.
fn closed_entry<'a>(d: &'a DiagSocket, namespace: Option<&'a Namespace>) -> Entry<'a> {
    Entry::new(&d.socket, Source::Netlink)
        .with_diag(Some(&d.diag))
        .with_namespace(namespace)
}

/// The full-screen view: raw mode on the alternate screen, restored on
/// the way out (quit, error or panic).
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
    terminal::enable_raw_mode().context("putting the terminal in raw mode")?;
    let _restore = Restore;
    crossterm::execute!(std::io::stdout(), EnterAlternateScreen)?;
    let mut terminal =
        ratatui::Terminal::new(ratatui::backend::CrosstermBackend::new(std::io::stdout()))?;
    let mut view = screen::View::new(looker.source.clone(), args.interval);
    let mut unread = std::collections::HashMap::new();
    let mut destroyer = tcptab::kill::Destroyer::new(looker.query);
    // The namespaces of the last look, to destroy a socket in its own.
    let mut namespaces: Vec<Option<std::sync::Arc<Namespace>>>;
    let mut closed = Vec::new();
    // The first look's rows at once, their rates after one interval.
    let (rows_now, findings) = rows(&first, looker.namespace.as_ref(), &mut unread);
    view.update(rows_now);
    view.findings = findings;
    namespaces = first.snapshot.namespaces.clone();
    let mut next = looker.previous + args.interval;
    loop {
        if Instant::now() >= next {
            let look = looker.look(std::mem::take(&mut closed))?;
            next = looker.previous + args.interval;
            if !view.paused {
                let (rows, findings) = rows(&look, looker.namespace.as_ref(), &mut unread);
                view.update(rows);
                view.findings = findings;
                namespaces = look.snapshot.namespaces.clone();
            }
        }
        terminal.draw(|f| screen::draw(f, &view))?;
        view.page = terminal.size()?.height.saturating_sub(4) as usize;
        // Keys until the next refresh; notices of closed connections
        // between them.
        while Instant::now() < next && !view.quit {
            let wait = next
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(50));
            if event::poll(wait)? {
                if let Event::Key(key) = event::read()? {
                    if key.kind == event::KeyEventKind::Press {
                        view.key(key);
                        if let Some(target) = view.destroy.take() {
                            view.message =
                                Some(destroy(&mut destroyer, &view, target, &namespaces));
                        }
                        terminal.draw(|f| screen::draw(f, &view))?;
                    }
                }
            } else {
                looker.wait(Duration::ZERO, &mut closed)?;
            }
        }
        if view.quit {
            return Ok(());
        }
    }
}

/// A look's connections as screen rows (the closed ones marked), and the
/// look's findings: diagnose's, and the connections whose application
/// does not read (`unread`: consecutive looks with a large receive queue).
fn rows(
    look: &Look,
    namespace: Option<&Namespace>,
    unread: &mut std::collections::HashMap<Key, u32>,
) -> (Vec<screen::Row>, Vec<String>) {
    let mut diagnoser = tcptab::diagnose::Diagnoser::new(Default::default());
    let mut still: std::collections::HashMap<Key, u32> = std::collections::HashMap::new();
    let mut not_reading = 0;
    let mut rows: Vec<screen::Row> = Vec::with_capacity(look.rates.len());
    for (i, rate) in look.rates.iter().enumerate() {
        let entry = look.snapshot.entry(i);
        diagnoser.add(&entry);
        let key = Key::of(
            entry.namespace.map_or(0, |n| n.inode),
            entry.socket,
            entry.diag,
        );
        let stays =
            entry.socket.state != tcptab::State::Listen && entry.socket.rx_queue >= UNREAD_BYTES;
        let looks = if stays {
            unread.get(&key).copied().unwrap_or(0) + 1
        } else {
            0
        };
        if looks > 0 {
            still.insert(key, looks);
        }
        let is_unread = looks >= UNREAD_LOOKS;
        not_reading += usize::from(is_unread);
        rows.push(row(&entry, *rate, 0, is_unread));
    }
    *unread = still;
    for (d, rate) in &look.closed {
        rows.push(row(
            &closed_entry(d, namespace),
            *rate,
            screen::CLOSED_REFRESHES,
            false,
        ));
    }
    let mut findings: Vec<String> = diagnoser.finish().into_iter().map(|f| f.summary).collect();
    if not_reading > 0 {
        findings.push(format!(
            "{not_reading} connection(s) whose application does not read: {UNREAD_BYTES} bytes or more waiting for {UNREAD_LOOKS} refreshes"
        ));
    }
    (rows, findings)
}

/// A receive queue this large for this many refreshes in a row: the
/// application is not reading.
const UNREAD_BYTES: u32 = 16 * 1024;
const UNREAD_LOOKS: u32 = 3;

fn row(entry: &Entry<'_>, rate: Rate, closed_for: u8, unread: bool) -> screen::Row {
    let s = entry.socket;
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
    let info = entry.diag.and_then(|d| d.tcp_info.as_deref());
    let owner = match entry.owners {
        Some(tcptab::Ownership::Owned(list)) => match list {
            [one] => format!("{}({})", one.command, one.pid),
            [one, rest @ ..] => format!("{}({}) +{}", one.command, one.pid, rest.len()),
            [] => String::new(),
        },
        Some(tcptab::Ownership::Unknown) => "?".to_string(),
        _ => String::new(),
    };
    screen::Row {
        key: Key::of(entry.namespace.map_or(0, |n| n.inode), s, entry.diag),
        state: s.state,
        local: crate::output::table::Endpoint(s.local, None).to_string(),
        remote: crate::output::table::Endpoint(s.remote, None).to_string(),
        owner,
        rx_bytes_per_s: rate.rx_bytes_per_s,
        tx_bytes_per_s: rate.tx_bytes_per_s,
        rtt_ms: info.map(|t| t.rtt_us as f64 / 1000.0),
        retransmits: info.map(|t| t.total_retrans),
        cwnd: info.map(|t| t.snd_cwnd),
        rx_queue: s.rx_queue,
        tx_queue: s.tx_queue,
        age: rate.age,
        closed_for,
        problem,
        netns: entry.namespace.map_or(String::new(), |n| n.label()),
        socket: *s,
        diag: entry.diag.cloned(),
    }
}

/// One socket of a frame: the record, then its rates, age and whether it
/// closed since the last refresh.
fn socket_into(
    line: &mut Vec<u8>,
    first: &mut bool,
    entry: &Entry<'_>,
    fields: tcptab::record::Fields,
    rate: Rate,
    closed: bool,
) {
    if !*first {
        line.push(b',');
    }
    *first = false;
    JsonRecord::write(line, &Record::new(entry, fields));
    line.pop(); // the record's closing brace
    let number = |line: &mut Vec<u8>, name: &str, value: Option<f64>| {
        line.extend_from_slice(format!(",\"{name}\":").as_bytes());
        match value {
            Some(v) => line.extend_from_slice(format!("{v:.1}").as_bytes()),
            None => line.extend_from_slice(b"null"),
        }
    };
    number(line, "rx_bytes_per_s", rate.rx_bytes_per_s);
    number(line, "tx_bytes_per_s", rate.tx_bytes_per_s);
    number(line, "age_s", Some(rate.age.as_secs_f64()));
    line.extend_from_slice(if closed {
        b",\"closed\":true}"
    } else {
        b",\"closed\":false}"
    });
}
