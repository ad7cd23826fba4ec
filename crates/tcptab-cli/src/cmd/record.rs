//! `tcptab record`: the recorder. The library's monitor
//! ([`tcptab::track::Monitor`]) polls the table every --interval (owners
//! looked up while the sockets are alive) and listens to the kernel's
//! destroy notifications in every namespace read through netlink; what it
//! says happened goes to [`tcptab::history::Writer`], one transaction per
//! poll. Ctrl-C and SIGTERM stop it after one last poll, so that every
//! notification received is written.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use tcptab::diag::Extensions;
use tcptab::history::{PollRecord, Writer};
use tcptab::track::{Event, Happened, Monitor, MonitorOptions, PollDone};

use crate::cli::RecordArgs;
use crate::report;

pub fn run(args: &RecordArgs) -> Result<()> {
    // tcp_info for the counters kept with each connection.
    // Each connection keeps its workload (a TIME_WAIT its connection's).
    let query = args
        .select
        .query(Extensions::TCP_INFO, !args.no_owners)?
        .workloads(true)
        // Read again every interval: one walk of the kernel's tables
        // for both families costs less than two.
        .one_walk_all(true);
    let retention = i64::try_from(args.retention.as_millis()).unwrap_or(i64::MAX);
    let mut writer = Writer::open(&args.db, retention)?;
    if let Some(name) = &args.host_name {
        writer.set_hostname(name)?;
    }
    let shipping = match args.store.target()? {
        Some(target) => Some(ship(&mut writer, target, args)?),
        None => None,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
        .context("installing the Ctrl-C and SIGTERM handler")?;
    let verbose = args.select.verbose();
    // The recorder writes at the polls: it need not wake for each
    // notification.
    let options = MonitorOptions {
        batched: true,
        ..MonitorOptions::every(args.interval)
    };
    let mut monitor = Monitor::new(&query, options);
    let taken = writer.resume(monitor.tracker_mut(), args.select.named())?;
    if verbose {
        note!(
            "tcptab: recording to {} every {} (retention {}){}",
            args.db.display(),
            humantime::format_duration(args.interval),
            humantime::format_duration(args.retention),
            if taken > 0 {
                format!(
                    "; {} taken up from the file",
                    tcptab::counted(taken as u64, "open connection")
                )
            } else {
                String::new()
            }
        );
    }
    let counted = AtomicBool::new(false);
    let mut recorder = Recorder {
        writer: &mut writer,
        args,
        events: Vec::new(),
        lost_noted: false,
        verbose,
    };
    let stopped = || stop.load(Ordering::SeqCst) || counted.load(Ordering::SeqCst);
    monitor.run(&stopped, &mut |h| -> Result<()> {
        recorder.happened(h)?;
        if args.count.is_some_and(|n| recorder.polls() >= n) {
            counted.store(true, Ordering::SeqCst);
        }
        Ok(())
    })?;
    // Stopped by a signal: one last poll, so that what the listeners heard
    // is applied. Stopped by --count: its polls were all.
    if counted.load(Ordering::SeqCst) {
        monitor.finish_without_poll(&mut |h| -> Result<()> { recorder.happened(h) })?;
    } else {
        monitor.finish(&mut |h| -> Result<()> { recorder.happened(h) })?;
    }
    recorder.flush(&monitor)?;
    writer.settle()?;
    // What was written last is shipped before the shipper stops.
    if let Some((stop, thread)) = shipping {
        stop.store(true, Ordering::SeqCst);
        thread.thread().unpark();
        let _ = thread.join();
    }
    Ok(())
}

/// Start shipping the file to a store: a thread beside the recorder,
/// which never waits for it; stopped by the flag returned.
fn ship(
    writer: &mut Writer,
    target: tcptab::fleet::Target,
    args: &RecordArgs,
) -> Result<(Arc<AtomicBool>, std::thread::JoinHandle<()>)> {
    let feed = writer.ship()?;
    let outbox = tcptab::history::Outbox::open(&args.db)?.fed(feed);
    let client = tcptab::fleet::Client::new(target, std::time::Duration::from_secs(30));
    let shipper = tcptab::fleet::Shipper::new(client, outbox, 10_000);
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let interval = args.ship_interval;
    let thread = std::thread::Builder::new()
        .name("ship".into())
        .spawn(move || shipper.run(interval, &flag, &mut |line| note!("{line}")))
        .context("starting the shipper")?;
    Ok((stop, thread))
}

/// What the recorder keeps between polls.
struct Recorder<'a> {
    writer: &'a mut Writer,
    args: &'a RecordArgs,
    /// The events since the last poll written.
    events: Vec<Event>,
    lost_noted: bool,
    verbose: bool,
}

impl Recorder<'_> {
    fn polls(&self) -> u64 {
        self.writer.polls()
    }

    fn happened(&mut self, h: Happened<'_>) -> Result<()> {
        match h {
            Happened::Event(e) => self.events.push(e),
            Happened::Lost { .. } => {
                if !self.lost_noted {
                    note!("tcptab: the kernel dropped destroy notifications (a burst overflowed their buffer): connections that closed meanwhile are closed by the next polls");
                    self.lost_noted = true;
                }
            }
            Happened::Polled(poll) => self.poll(poll)?,
        }
        Ok(())
    }

    fn poll(&mut self, poll: &PollDone<'_>) -> Result<()> {
        if poll.first {
            report::notes(&poll.snapshot.report, self.verbose);
        }
        let mut notes = poll.notes.to_vec();
        if self.args.no_owners {
            notes.push("owners were not looked up (--no-owners)".into());
        }
        if poll.lost > 0 {
            notes.push("the kernel dropped destroy notifications (a burst overflowed their buffer): some connections that closed were closed by a poll".into());
        }
        let record = PollRecord {
            at: poll.at,
            took_us: poll.took.as_micros() as u64,
            interval_ms: self.args.interval.as_millis() as i64,
            snapshot: poll.snapshot,
            notes: &notes,
        };
        let outcome = self
            .writer
            .record(&self.events, Some(&record), poll.tracker)?;
        self.events.clear();
        if self.verbose {
            let owners = match poll.snapshot.report.owners {
                Some(o) if o.walked => ", owners from one walk of the kernel's task files".into(),
                Some(o) if o.kept => format!(
                    ", owners from an earlier poll's scan brought up to date ({} links taken, not read)",
                    o.reused
                ),
                _ => String::new(),
            };
            note!(
                "tcptab: poll {}: {}, {} opened, {} closed ({} notified), {} expired, {} open, in {:.1} ms{owners}",
                outcome.id,
                tcptab::counted(outcome.sockets, "socket"),
                outcome.opened,
                outcome.closed,
                outcome.notifications,
                outcome.expired,
                self.writer.open_connections(),
                poll.took.as_secs_f64() * 1e3
            );
        }
        Ok(())
    }

    /// What came after the last poll.
    fn flush(&mut self, monitor: &Monitor<'_>) -> Result<()> {
        if !self.events.is_empty() {
            self.writer.record(&self.events, None, monitor.tracker())?;
            self.events.clear();
        }
        Ok(())
    }
}
