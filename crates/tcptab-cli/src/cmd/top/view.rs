//! `tcptab top`'s screen state ([`View`]: rows, selection, sort, pause,
//! the panes open) and what a key does to it. Drawing is `draw`'s, a
//! function of the view alone.

use std::time::Duration;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use tcptab::{canonical, EntryBuf, State};

use super::line::Line;

/// How many refreshes a closed connection stays on screen (dimmed).
pub const CLOSED_REFRESHES: u8 = 3;

/// One connection on screen: the socket and what came with it, and what
/// top adds: its rates, age, how long it stays shown closed, its problem.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Its connection (the tracker's id, which a TIME_WAIT keeps).
    pub key: u64,
    pub entry: EntryBuf,
    pub rx_bytes_per_s: Option<f64>,
    pub tx_bytes_per_s: Option<f64>,
    pub age: Duration,
    /// Refreshes it stays visible after it closed (0: open).
    pub closed_for: u8,
    /// What is wrong with it, when something is (`zero window`, ...).
    pub problem: Option<&'static str>,
}

impl Row {
    pub fn state(&self) -> State {
        self.entry.socket.state
    }

    fn tcp_info(&self) -> Option<&tcptab::TcpInfo> {
        self.entry.diag.as_ref().and_then(|d| d.tcp_info.as_deref())
    }

    pub fn rtt_ms(&self) -> Option<f64> {
        self.tcp_info().map(|t| f64::from(t.rtt_us) / 1000.0)
    }

    pub fn retransmits(&self) -> Option<u32> {
        self.tcp_info().map(|t| t.total_retrans)
    }

    pub fn cwnd(&self) -> Option<u32> {
        self.tcp_info().map(|t| t.snd_cwnd)
    }

    /// `command(pid)` of its first owner, with `+N` for more; `?` when
    /// some processes could not be read; `-` when none holds it.
    pub fn owner(&self) -> String {
        match self.entry.as_entry().owners {
            Some(tcptab::Ownership::Owned([one])) => format!("{}({})", one.command, one.pid),
            Some(tcptab::Ownership::Owned([one, rest @ ..])) => {
                format!("{}({}) +{}", one.command, one.pid, rest.len())
            }
            Some(tcptab::Ownership::Unknown) => "?".to_string(),
            _ => "-".to_string(),
        }
    }

    /// Its workload as a table shows it (pod/container, else unit, else
    /// cgroup); `-` when none is known.
    pub fn workload(&self) -> String {
        self.entry
            .workload
            .as_ref()
            .map_or("-".to_string(), |w| w.label())
    }

    /// Its network namespace's label (empty for the reader's own).
    pub fn netns(&self) -> String {
        self.entry
            .namespace
            .as_ref()
            .map_or(String::new(), |n| n.label())
    }
}

/// The columns, in the order `s` cycles the sort through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    Rx,
    Tx,
    State,
    Local,
    Remote,
    Owner,
    Rtt,
    Age,
}

impl Column {
    const ALL: [Column; 8] = [
        Column::Rx,
        Column::Tx,
        Column::State,
        Column::Local,
        Column::Remote,
        Column::Owner,
        Column::Rtt,
        Column::Age,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Column::Rx => "rx/s",
            Column::Tx => "tx/s",
            Column::State => "state",
            Column::Local => "local",
            Column::Remote => "peer",
            Column::Owner => "owner",
            Column::Rtt => "rtt",
            Column::Age => "age",
        }
    }
}

/// What the grouped view groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grouping {
    Process,
    Namespace,
    Workload,
}

impl Grouping {
    /// A row's group.
    pub fn of(self, r: &Row) -> String {
        match self {
            Grouping::Process => r.owner(),
            Grouping::Workload => r.workload(),
            Grouping::Namespace => match r.netns() {
                name if name.is_empty() => "-".to_string(),
                name => name,
            },
        }
    }
}

/// Everything the screen shows.
#[derive(Debug, Clone)]
pub struct View {
    pub rows: Vec<Row>,
    /// The selected row's connection (kept across refreshes).
    pub selected: Option<u64>,
    pub sort: Column,
    pub reverse: bool,
    pub paused: bool,
    pub help: bool,
    pub quit: bool,
    /// Where the sockets come from (`netlink`, `proc`, a namespace).
    pub source: String,
    pub interval: Duration,
    /// Rows that fit under the header (for PgUp/PgDn).
    pub page: usize,
    /// The filter prompt's line while it is open (`/`).
    pub prompt: Option<Line>,
    /// Why the prompt's expression was refused, shown in the prompt.
    pub prompt_error: Option<String>,
    /// The filter the prompt applied, and its text.
    pub filter: Option<(tcptab::filter::Expr, String)>,
    /// The detail view of the selected connection is open (Enter), and
    /// how far it is scrolled (Up, Down, PgUp, PgDn).
    pub detail: bool,
    pub detail_offset: usize,
    /// One row per process (`g`) or per namespace (`n`).
    pub grouped: Option<Grouping>,
    /// The workload column is shown (`top --workload`).
    pub workload: bool,
    /// The selected group's line.
    pub group_selected: usize,
    /// Enter on a group: only its connections (Esc goes back).
    pub expanded: Option<(Grouping, String)>,
    /// This refresh's findings (diagnose), one line each.
    pub findings: Vec<String>,
    /// `k` asked to destroy this connection: waiting for `y`.
    pub confirm: Option<u64>,
    /// Confirmed: the caller destroys it (and clears this).
    pub destroy: Option<u64>,
    /// What the last action did, shown on the last line until a key.
    pub message: Option<String>,
}

impl View {
    pub fn new(source: String, interval: Duration) -> View {
        View {
            rows: Vec::new(),
            selected: None,
            sort: Column::Rx,
            reverse: false,
            paused: false,
            help: false,
            quit: false,
            source,
            interval,
            page: 20,
            prompt: None,
            prompt_error: None,
            filter: None,
            detail: false,
            detail_offset: 0,
            grouped: None,
            workload: false,
            group_selected: 0,
            expanded: None,
            findings: Vec::new(),
            confirm: None,
            destroy: None,
            message: None,
        }
    }

    /// The rows the filter (and an expanded group) lets through, in order.
    pub fn shown(&self) -> Vec<&Row> {
        self.rows
            .iter()
            .filter(|r| {
                self.filter.as_ref().is_none_or(|(e, _)| {
                    let entry = r.entry.as_entry();
                    let owners = entry.owners.map(|o| o.owners());
                    e.matches_owners(entry.socket, entry.diag, owners)
                })
            })
            .filter(|r| {
                self.expanded
                    .as_ref()
                    .is_none_or(|(g, name)| g.of(r) == *name)
            })
            .collect()
    }

    /// One line per process (or namespace): its sockets and their summed
    /// rates, busiest receiver first (`-` for sockets no process holds, or
    /// when owners were not looked up; for this process's namespace).
    pub fn groups(&self) -> Vec<(String, usize, f64, f64)> {
        let by = self.grouped.unwrap_or(Grouping::Process);
        let mut groups: Vec<(String, usize, f64, f64)> = Vec::new();
        for r in self.shown().into_iter().filter(|r| r.closed_for == 0) {
            let name = by.of(r);
            let at = match groups.iter().position(|g| g.0 == name) {
                Some(at) => at,
                None => {
                    groups.push((name, 0, 0.0, 0.0));
                    groups.len() - 1
                }
            };
            let g = &mut groups[at];
            g.1 += 1;
            g.2 += r.rx_bytes_per_s.unwrap_or(0.0);
            g.3 += r.tx_bytes_per_s.unwrap_or(0.0);
        }
        groups.sort_by(|a, b| b.2.total_cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
        groups
    }

    /// The prompt's keys: a shell's line editing, Enter applies (or shows
    /// the error), Esc clears the filter and closes the prompt.
    fn prompt_key(&mut self, key: KeyEvent) {
        let Some(line) = self.prompt.as_mut() else { return };
        let text = &line.text();
        match key.code {
            KeyCode::Esc => {
                self.prompt = None;
                self.prompt_error = None;
                self.filter = None;
            }
            KeyCode::Enter => match tcptab::filter::Expr::parse(text) {
                Ok(tcptab::filter::Expr::All) => {
                    self.filter = None;
                    self.prompt = None;
                    self.prompt_error = None;
                }
                Ok(e) if e.needs_facts() => {
                    self.prompt_error =
                        Some("dev and autobound: give them on the command line".into());
                }
                Ok(e) => {
                    self.filter = Some((e, text.clone()));
                    self.prompt = None;
                    self.prompt_error = None;
                }
                Err(e) => self.prompt_error = Some(e.to_string()),
            },
            _ => {
                if line.key(key) {
                    self.prompt_error = None;
                }
            }
        }
    }

    /// A new look's rows. A connection that closed stays for
    /// [`CLOSED_REFRESHES`] refreshes, dimmed: with its final counters
    /// when a destroy notification brought it (it comes marked), else as
    /// the last look saw it (it is simply missing from this one). Then the
    /// sort.
    pub fn update(&mut self, rows: Vec<Row>) {
        let present: std::collections::HashSet<u64> = rows.iter().map(|r| r.key).collect();
        let mut kept: Vec<Row> = self
            .rows
            .drain(..)
            .filter(|r| !present.contains(&r.key))
            .filter_map(|mut r| match r.closed_for {
                // Gone without a notification: closed, as last seen.
                0 => {
                    r.closed_for = CLOSED_REFRESHES - 1;
                    r.problem = None;
                    Some(r)
                }
                1 => None,
                n => {
                    r.closed_for = n - 1;
                    Some(r)
                }
            })
            .collect();
        kept.extend(rows);
        self.rows = kept;
        self.sort_rows();
        if self
            .selected
            .is_none_or(|k| !self.rows.iter().any(|r| r.key == k))
        {
            self.selected = self.rows.first().map(|r| r.key);
        }
    }

    /// Sort by the column, ties by the ends, so rows do not jump between
    /// refreshes.
    fn sort_rows(&mut self) {
        let sort = self.sort;
        let number = |v: Option<f64>| v.unwrap_or(-1.0);
        self.rows.sort_by(|a, b| {
            let by = match sort {
                // Busiest first.
                Column::Rx => number(b.rx_bytes_per_s).total_cmp(&number(a.rx_bytes_per_s)),
                Column::Tx => number(b.tx_bytes_per_s).total_cmp(&number(a.tx_bytes_per_s)),
                Column::Rtt => number(b.rtt_ms()).total_cmp(&number(a.rtt_ms())),
                Column::Age => b.age.cmp(&a.age),
                Column::State => a.state().code().cmp(&b.state().code()),
                // Addresses and ports as numbers (`:80` before `:7000`).
                Column::Local => ends(a).cmp(&ends(b)),
                Column::Remote => (ends(a).1, ends(a).0).cmp(&(ends(b).1, ends(b).0)),
                Column::Owner => a.owner().cmp(&b.owner()),
            };
            by.then_with(|| ends(a).cmp(&ends(b)))
        });
        if self.reverse {
            self.rows.reverse();
        }
    }

    pub fn index(&self) -> usize {
        self.selected
            .and_then(|k| self.shown().iter().position(|r| r.key == k))
            .unwrap_or(0)
    }

    fn select(&mut self, index: usize) {
        let shown = self.shown();
        self.selected = shown
            .get(index.min(shown.len().saturating_sub(1)))
            .map(|r| r.key);
    }

    fn toggle_grouping(&mut self, by: Grouping) {
        self.expanded = None;
        self.group_selected = 0;
        self.grouped = if self.grouped == Some(by) {
            None
        } else {
            Some(by)
        };
    }

    /// `k`: ask to destroy the selected connection, with the kill
    /// command's rules (a listener only when its state is named, which is
    /// `tcptab kill`'s to do; nothing that has closed).
    fn ask_destroy(&mut self) {
        let Some(row) = self.selected_row() else { return };
        self.message = if row.closed_for > 0 {
            Some("it has closed already".into())
        } else if row.state() == State::Listen {
            Some("a listener is destroyed with tcptab kill --state listening".into())
        } else if row.entry.diag.is_none() {
            Some("only a socket from the netlink source can be destroyed".into())
        } else {
            self.confirm = Some(row.key);
            None
        };
    }

    /// The selected connection, if any is shown.
    pub fn selected_row(&self) -> Option<&Row> {
        let shown = self.shown();
        shown.get(self.index()).copied()
    }

    /// What a key does.
    pub fn key(&mut self, key: KeyEvent) {
        if key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL) {
            self.quit = true;
            return;
        }
        if self.prompt.is_some() {
            return self.prompt_key(key);
        }
        self.message = None;
        if let Some(target) = self.confirm.take() {
            if key.code == KeyCode::Char('y') {
                self.destroy = Some(target);
            } else {
                self.message = Some("not destroyed".into());
            }
            return;
        }
        if self.detail {
            let step = match key.code {
                KeyCode::Down | KeyCode::Char('j') => Some(1isize),
                KeyCode::Up => Some(-1),
                KeyCode::PageDown => Some(self.page as isize),
                KeyCode::PageUp => Some(-(self.page as isize)),
                _ => None,
            };
            if let Some(step) = step {
                self.detail_offset = self.detail_offset.saturating_add_signed(step);
                return;
            }
        }
        let at = self.index();
        match key.code {
            KeyCode::Char('q') => self.quit = true,
            KeyCode::Esc if self.help => self.help = false,
            KeyCode::Esc if self.detail => self.detail = false,
            KeyCode::Esc if self.expanded.is_some() => {
                self.grouped = self.expanded.take().map(|(g, _)| g);
            }
            KeyCode::Esc if self.grouped.is_some() => self.grouped = None,
            KeyCode::Esc if self.filter.is_some() => self.filter = None,
            KeyCode::Esc => self.quit = true,
            KeyCode::Char('/') => {
                self.prompt = Some(Line::new(
                    self.filter.as_ref().map_or("", |(_, t)| t.as_str()),
                ));
            }
            KeyCode::Enter if self.grouped.is_some() => {
                let groups = self.groups();
                if let (Some(g), Some(line)) = (self.grouped, groups.get(self.group_selected)) {
                    self.expanded = Some((g, line.0.clone()));
                    self.grouped = None;
                    self.select(0);
                }
            }
            KeyCode::Enter => {
                self.detail = !self.detail && self.selected_row().is_some();
                self.detail_offset = 0;
            }
            KeyCode::Char('g') => self.toggle_grouping(Grouping::Process),
            KeyCode::Char('n') => self.toggle_grouping(Grouping::Namespace),
            KeyCode::Char('w') => self.toggle_grouping(Grouping::Workload),
            KeyCode::Down | KeyCode::Char('j') if self.grouped.is_some() => {
                self.group_selected =
                    (self.group_selected + 1).min(self.groups().len().saturating_sub(1));
            }
            KeyCode::Up if self.grouped.is_some() => {
                self.group_selected = self.group_selected.saturating_sub(1);
            }
            KeyCode::Char('?') => self.help = !self.help,
            KeyCode::Char(' ') => self.paused = !self.paused,
            KeyCode::Char('s') => {
                let next = Column::ALL
                    .iter()
                    .position(|c| *c == self.sort)
                    .unwrap_or(0)
                    + 1;
                self.sort = Column::ALL[next % Column::ALL.len()];
                self.sort_rows();
            }
            KeyCode::Char('r') => {
                self.reverse = !self.reverse;
                self.sort_rows();
            }
            KeyCode::Down | KeyCode::Char('j') => self.select(at + 1),
            KeyCode::Up => self.select(at.saturating_sub(1)),
            KeyCode::Char('k') => self.ask_destroy(),
            KeyCode::PageDown => self.select(at + self.page),
            KeyCode::PageUp => self.select(at.saturating_sub(self.page)),
            KeyCode::Home => self.select(0),
            KeyCode::End => self.select(usize::MAX),
            _ => {}
        }
    }
}

/// A row's ends, canonical (an IPv4-mapped address as IPv4), as numbers.
fn ends(r: &Row) -> (std::net::SocketAddr, std::net::SocketAddr) {
    let s = &r.entry.socket;
    (canonical(s.local), canonical(s.remote))
}
