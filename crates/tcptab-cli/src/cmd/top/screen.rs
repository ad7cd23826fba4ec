//! `tcptab top`'s full-screen view: the state ([`View`]: rows, selection,
//! sort, pause, help), what a key does to it, and how it is drawn (ratatui).
//! Drawing is a function of the view alone, so the tests render it on
//! ratatui's test backend.

use std::time::Duration;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Row as TableRow, Table, TableState};
use ratatui::Frame;
use tcptab::State;

/// How many refreshes a closed connection stays on screen (dimmed).
pub const CLOSED_REFRESHES: u8 = 3;

/// One connection on screen.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Its connection (the tracker's id, which a TIME_WAIT keeps).
    pub key: u64,
    pub state: State,
    pub local: String,
    pub remote: String,
    /// `command(pid)` of its first owner, with `+N` for more.
    pub owner: String,
    pub rx_bytes_per_s: Option<f64>,
    pub tx_bytes_per_s: Option<f64>,
    pub rtt_ms: Option<f64>,
    pub retransmits: Option<u32>,
    pub cwnd: Option<u32>,
    pub rx_queue: u32,
    pub tx_queue: u32,
    pub age: Duration,
    /// Refreshes it stays visible after it closed (0: open).
    pub closed_for: u8,
    /// What is wrong with it, when something is (`zero window`, ...).
    pub problem: Option<&'static str>,
    /// Its network namespace's label (empty for this process's own).
    pub netns: String,
    /// The socket as read, for the filter prompt and the detail view.
    pub socket: tcptab::Socket,
    pub diag: Option<tcptab::Diag>,
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

    fn name(self) -> &'static str {
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
}

impl Grouping {
    /// A row's group.
    fn of(self, r: &Row) -> String {
        let name = match self {
            Grouping::Process => &r.owner,
            Grouping::Namespace => &r.netns,
        };
        if name.is_empty() {
            "-".to_string()
        } else {
            name.clone()
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
    /// The filter prompt's text while it is open (`/`).
    pub prompt: Option<String>,
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
                self.filter
                    .as_ref()
                    .is_none_or(|(e, _)| e.matches(&r.socket, r.diag.as_ref(), None))
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

    /// The prompt's keys: text, Enter applies (or shows the error), Esc
    /// clears the filter and closes the prompt.
    fn prompt_key(&mut self, key: KeyEvent) {
        let Some(text) = self.prompt.as_mut() else {
            return;
        };
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
            KeyCode::Backspace => {
                text.pop();
                self.prompt_error = None;
            }
            KeyCode::Char(c) => {
                text.push(c);
                self.prompt_error = None;
            }
            _ => {}
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
                Column::Rtt => number(b.rtt_ms).total_cmp(&number(a.rtt_ms)),
                Column::Age => b.age.cmp(&a.age),
                Column::State => a.state.code().cmp(&b.state.code()),
                Column::Local => a.local.cmp(&b.local),
                Column::Remote => a.remote.cmp(&b.remote),
                Column::Owner => a.owner.cmp(&b.owner),
            };
            by.then_with(|| (&a.local, &a.remote).cmp(&(&b.local, &b.remote)))
        });
        if self.reverse {
            self.rows.reverse();
        }
    }

    fn index(&self) -> usize {
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
        let Some(row) = self.selected_row() else {
            return;
        };
        self.message = if row.closed_for > 0 {
            Some("it has closed already".into())
        } else if row.state == State::Listen {
            Some("a listener is destroyed with tcptab kill --state listening".into())
        } else if row.diag.is_none() {
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
                self.prompt = Some(
                    self.filter
                        .as_ref()
                        .map_or(String::new(), |(_, t)| t.clone()),
                );
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

/// Bytes per second in human units (`1.9M`, `512`), `-` when unknown.
fn rate(v: Option<f64>) -> String {
    match v {
        None => "-".to_string(),
        Some(v) if v >= 1e9 => format!("{:.1}G", v / 1e9),
        Some(v) if v >= 1e6 => format!("{:.1}M", v / 1e6),
        Some(v) if v >= 1e3 => format!("{:.1}k", v / 1e3),
        Some(v) => format!("{v:.0}"),
    }
}

fn age(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s / 60 % 60),
    }
}

const KEYS: &[(&str, &str)] = &[
    ("q, Esc, Ctrl-C", "quit (Esc first closes what is open)"),
    ("/", "filter (ss's language; Esc clears it)"),
    ("Enter", "every field of the selected connection"),
    (
        "g, n",
        "one row per process, per namespace (Enter: its connections)",
    ),
    ("Up, Down, j", "move"),
    ("k", "destroy the selected connection (asks first)"),
    ("PgUp, PgDn, Home, End", "move by a page, to the ends"),
    ("s", "sort by the next column"),
    ("r", "reverse the sort"),
    ("space", "pause the rows (again: resume)"),
    ("?", "this help (Esc closes it)"),
];

/// The last line: the prompt (with its error) when open, else the keys.
fn bottom_line(frame: &mut Frame<'_>, area: ratatui::layout::Rect, view: &View) {
    let asking = view
        .confirm
        .and_then(|k| view.rows.iter().find(|r| r.key == k))
        .map(|r| {
            format!(
                "destroy {} {} -> {}? y to confirm, any other key to keep it",
                r.state, r.local, r.remote
            )
        });
    let text = match (&view.prompt, &view.prompt_error) {
        _ if asking.is_some() => asking.unwrap_or_default(),
        _ if view.message.is_some() => view.message.clone().unwrap_or_default(),
        (Some(text), Some(error)) => format!("/{text}   {error}"),
        (Some(text), None) => format!("/{text}"),
        (None, _) => {
            let mut filter = view
                .filter
                .as_ref()
                .map_or(String::new(), |(_, t)| format!("  filter: {t}"));
            if let Some((_, name)) = &view.expanded {
                filter.push_str(&format!("  only: {name} (Esc: all)"));
            }
            format!(
                "q quit  / filter  Enter detail  g processes  k destroy  s sort ({})  r reverse  space pause  ? keys{filter}",
                view.sort.name()
            )
        }
    };
    let style = if view.prompt_error.is_some() || view.confirm.is_some() {
        Style::default().add_modifier(Modifier::BOLD)
    } else {
        Style::default()
    };
    frame.render_widget(Paragraph::new(text).style(style), area);
}

/// Every field of a connection, as the socket record names them.
pub fn fields(row: &Row) -> Vec<(String, String)> {
    use tcptab::record::{FieldDef, Record, Value, Visit};
    struct Collect {
        out: Vec<(String, String)>,
        group: Option<&'static str>,
        skipping: bool,
    }
    impl Visit for Collect {
        fn field(&mut self, def: &'static FieldDef, value: Value<'_>) {
            if self.skipping {
                return;
            }
            let text = match value {
                Value::Null => "-".to_string(),
                Value::Bool(b) => b.to_string(),
                Value::U64(n) => n.to_string(),
                Value::I64(n) => n.to_string(),
                Value::Str(s) => s.to_string(),
                Value::Ip(ip) => ip.to_string(),
                Value::Owners(owners) => owners
                    .iter()
                    .map(|o| format!("{}(pid={},fd={})", o.command, o.pid, o.fd))
                    .collect::<Vec<_>>()
                    .join(","),
            };
            let name = match self.group {
                Some(g) => format!("{g}.{}", def.name),
                None => def.name.to_string(),
            };
            self.out.push((name, text));
        }
        fn group(&mut self, def: &'static FieldDef, present: bool) {
            self.group = Some(def.name);
            self.skipping = !present;
            if !present {
                self.out.push((def.name.to_string(), "-".to_string()));
            }
        }
        fn end_group(&mut self) {
            self.group = None;
            self.skipping = false;
        }
    }
    let source = if row.diag.is_some() {
        tcptab::Source::Netlink
    } else {
        tcptab::Source::Proc
    };
    let entry = tcptab::Entry::new(&row.socket, source).with_diag(row.diag.as_ref());
    let mut c = Collect {
        out: Vec::new(),
        group: None,
        skipping: false,
    };
    Record::new(&entry, tcptab::record::Fields::default()).visit(&mut c);
    c.out
}

/// Draw the view: the totals line, the table, the keys line.
pub fn draw(frame: &mut Frame<'_>, view: &View) {
    let shown_findings = view.findings.len().min(3) as u16;
    let [top, body, problems, bottom] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(shown_findings),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    if shown_findings > 0 {
        let lines: Vec<Line> = view
            .findings
            .iter()
            .take(3)
            .map(|f| Line::from(format!("! {f}")))
            .collect();
        frame.render_widget(
            Paragraph::new(lines).style(Style::default().add_modifier(Modifier::BOLD)),
            problems,
        );
    }
    let shown = view.shown();
    let open: Vec<&Row> = shown
        .iter()
        .copied()
        .filter(|r| r.closed_for == 0)
        .collect();
    let total = |f: &dyn Fn(&Row) -> Option<f64>| open.iter().filter_map(|r| f(r)).sum::<f64>();
    // Sockets per state, the states present in the kernel's order.
    let per_state: Vec<String> = State::LISTED
        .iter()
        .filter_map(|state| {
            let n = open.iter().filter(|r| r.state == *state).count();
            (n > 0).then(|| format!("{n} {}", state.ss_name().unwrap_or("?")))
        })
        .collect();
    let header = format!(
        "tcptab top  {} sockets: {}  rx {}/s  tx {}/s  {} every {:?}{}",
        open.len(),
        per_state.join(", "),
        rate(Some(total(&|r| r.rx_bytes_per_s))),
        rate(Some(total(&|r| r.tx_bytes_per_s))),
        view.source,
        view.interval,
        if view.paused { "  PAUSED" } else { "" }
    );
    frame.render_widget(Paragraph::new(header), top);

    let titles = [
        ("State", Some(Column::State)),
        ("Local", Some(Column::Local)),
        ("Peer", Some(Column::Remote)),
        ("Owner", Some(Column::Owner)),
        ("Rx/s", Some(Column::Rx)),
        ("Tx/s", Some(Column::Tx)),
        ("RTT ms", Some(Column::Rtt)),
        ("Retr", None),
        ("Cwnd", None),
        ("RecvQ", None),
        ("SendQ", None),
        ("Age", Some(Column::Age)),
        ("Problem", None),
    ];
    // The sorted column is marked: ▼ as sorted (numbers busiest first), ▲
    // reversed.
    let head = TableRow::new(titles.iter().map(|(t, c)| match c {
        Some(c) if *c == view.sort => format!("{t}{}", if view.reverse { "▲" } else { "▼" }),
        _ => t.to_string(),
    }))
    .style(Style::default().add_modifier(Modifier::BOLD));
    if let Some(by) = view.grouped {
        let groups = view.groups();
        let title = match by {
            Grouping::Process => "Process",
            Grouping::Namespace => "Network namespace",
        };
        let head = TableRow::new([title, "Sockets", "Rx/s▼", "Tx/s"])
            .style(Style::default().add_modifier(Modifier::BOLD));
        let rows = groups.iter().map(|(name, n, rx, tx)| {
            TableRow::new([
                name.clone(),
                n.to_string(),
                rate(Some(*rx)),
                rate(Some(*tx)),
            ])
        });
        let widths = [
            Constraint::Min(20),
            Constraint::Length(8),
            Constraint::Length(8),
            Constraint::Length(8),
        ];
        let table = Table::new(rows, widths)
            .header(head)
            .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED));
        let mut state = TableState::default()
            .with_selected(Some(view.group_selected).filter(|_| !groups.is_empty()));
        frame.render_stateful_widget(table, body, &mut state);
        bottom_line(frame, bottom, view);
        return;
    }
    let rows = shown.iter().map(|r| {
        let opt = |v: Option<u32>| v.map_or("-".to_string(), |v| v.to_string());
        let cells = vec![
            r.state.to_string(),
            r.local.clone(),
            r.remote.clone(),
            r.owner.clone(),
            rate(r.rx_bytes_per_s),
            rate(r.tx_bytes_per_s),
            r.rtt_ms.map_or("-".to_string(), |v| format!("{v:.2}")),
            opt(r.retransmits),
            opt(r.cwnd),
            r.rx_queue.to_string(),
            r.tx_queue.to_string(),
            age(r.age),
            r.problem.unwrap_or("").to_string(),
        ];
        let row = TableRow::new(cells);
        if r.problem.is_some() && r.closed_for == 0 {
            row.style(Style::default().add_modifier(Modifier::BOLD))
        } else if r.closed_for > 0 {
            row.style(Style::default().add_modifier(Modifier::DIM))
        } else {
            row
        }
    });
    let widths = [
        Constraint::Length(11),
        Constraint::Min(15),
        Constraint::Min(15),
        Constraint::Min(10),
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Length(5),
        Constraint::Length(5),
        Constraint::Length(6),
        Constraint::Length(6),
        Constraint::Length(6),
        Constraint::Min(11),
    ];
    let table = Table::new(rows, widths)
        .header(head)
        .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED));
    let mut state =
        TableState::default().with_selected(Some(view.index()).filter(|_| !shown.is_empty()));
    frame.render_stateful_widget(table, body, &mut state);
    bottom_line(frame, bottom, view);

    if let (true, Some(row)) = (view.detail, view.selected_row()) {
        let all = fields(row);
        let offset = view.detail_offset.min(all.len().saturating_sub(1));
        let lines: Vec<Line> = all
            .into_iter()
            .skip(offset)
            .map(|(name, value)| Line::from(format!("{name:<28}{value}")))
            .collect();
        let area = frame.area();
        let detail = ratatui::layout::Rect {
            x: area.x + 2,
            y: area.y + 1,
            width: area.width.saturating_sub(4),
            height: area.height.saturating_sub(2),
        };
        frame.render_widget(Clear, detail);
        frame.render_widget(
            Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(format!(
                " {} -> {} (Up, Down, PgUp, PgDn scroll; Esc closes) ",
                row.local, row.remote
            ))),
            detail,
        );
    }

    if view.help {
        let lines: Vec<Line> = KEYS
            .iter()
            .map(|(k, what)| Line::from(format!("{k:<24}{what}")))
            .collect();
        let height = lines.len() as u16 + 2;
        let area = frame.area();
        let width = area.width.min(72);
        let help = ratatui::layout::Rect {
            x: area.x + (area.width - width) / 2,
            y: area.y + area.height.saturating_sub(height) / 2,
            width,
            height: height.min(area.height),
        };
        frame.render_widget(Clear, help);
        frame.render_widget(
            Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(" keys ")),
            help,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;
    use std::net::SocketAddr;

    fn row(local: &str, remote: &str, state: State, rx: f64, tx: f64, closed_for: u8) -> Row {
        let (l, r): (SocketAddr, SocketAddr) = (local.parse().unwrap(), remote.parse().unwrap());
        let mut socket = tcptab::Socket::empty(tcptab::Family::Ipv4, tcptab::RowKind::Full);
        socket.local = l;
        socket.remote = r;
        socket.state = state;
        socket.inode = 4242;
        Row {
            key: u64::from(l.port()) << 16 | u64::from(r.port()),
            state,
            local: crate::output::table::Endpoint(l, None).to_string(),
            remote: crate::output::table::Endpoint(r, None).to_string(),
            owner: if state == State::Listen {
                "nginx(812)".into()
            } else {
                "curl(4410)".into()
            },
            rx_bytes_per_s: Some(rx),
            tx_bytes_per_s: Some(tx),
            rtt_ms: Some(0.25),
            retransmits: Some(0),
            cwnd: Some(10),
            rx_queue: 0,
            tx_queue: 0,
            age: Duration::from_secs(75),
            closed_for,
            problem: (state == State::CloseWait).then_some("close-wait"),
            netns: String::new(),
            socket,
            diag: None,
        }
    }

    fn view() -> View {
        let mut v = View::new("netlink".into(), Duration::from_secs(1));
        v.findings = vec!["1 CLOSE_WAIT socket held by curl (pid 4410)".into()];
        v.update(vec![
            row("10.0.0.5:443", "0.0.0.0:0", State::Listen, 0.0, 0.0, 0),
            row(
                "10.0.0.5:443",
                "10.0.0.9:51000",
                State::Established,
                2_000_000.0,
                15_000.0,
                0,
            ),
            row(
                "10.0.0.5:443",
                "10.0.0.7:40000",
                State::Established,
                300.0,
                9_500_000.0,
                0,
            ),
            row(
                "10.0.0.5:443",
                "10.0.0.8:41000",
                State::CloseWait,
                0.0,
                0.0,
                CLOSED_REFRESHES,
            ),
        ]);
        v
    }

    fn screen(v: &View) -> String {
        let mut terminal = Terminal::new(TestBackend::new(132, 16)).unwrap();
        terminal.draw(|f| draw(f, v)).unwrap();
        let buffer = terminal.backend().buffer();
        let mut text = String::new();
        for y in 0..buffer.area.height {
            let line: String = (0..buffer.area.width)
                .map(|x| buffer[(x, y)].symbol().to_string())
                .collect();
            text.push_str(line.trim_end());
            text.push('\n');
        }
        text
    }

    #[test]
    fn the_table() {
        insta::assert_snapshot!("top_table", screen(&view()));
    }

    #[test]
    fn the_help() {
        let mut v = view();
        v.key(KeyEvent::from(KeyCode::Char('?')));
        insta::assert_snapshot!("top_help", screen(&v));
        v.key(KeyEvent::from(KeyCode::Esc));
        assert!(!v.help && !v.quit);
        v.key(KeyEvent::from(KeyCode::Esc));
        assert!(v.quit);
    }

    fn keys(v: &mut View, keys: &str) {
        for c in keys.chars() {
            v.key(KeyEvent::from(KeyCode::Char(c)));
        }
    }

    #[test]
    fn the_filter_prompt_with_an_error_then_applied() {
        let mut v = view();
        keys(&mut v, "/dport = :nosuchservice");
        v.key(KeyEvent::from(KeyCode::Enter));
        assert!(v.prompt_error.is_some(), "no such service");
        assert!(v.prompt.is_some(), "the prompt stays open");
        let mut v = view();
        keys(&mut v, "/dport = :4x");
        v.key(KeyEvent::from(KeyCode::Enter));
        insta::assert_snapshot!("top_prompt_error", screen(&v));
        // Fixed and applied: only the matching rows are shown.
        for _ in 0..3 {
            v.key(KeyEvent::from(KeyCode::Backspace));
        }
        keys(&mut v, "51000");
        v.key(KeyEvent::from(KeyCode::Enter));
        assert!(v.prompt.is_none() && v.prompt_error.is_none());
        let shown: Vec<&str> = v.shown().iter().map(|r| r.remote.as_str()).collect();
        assert_eq!(shown, ["10.0.0.9:51000"]);
        // Esc clears it.
        v.key(KeyEvent::from(KeyCode::Esc));
        assert_eq!(v.shown().len(), 4);
        assert!(!v.quit);
    }

    #[test]
    fn the_grouped_view_and_the_detail_view() {
        let mut v = view();
        keys(&mut v, "g");
        insta::assert_snapshot!("top_grouped", screen(&v));
        // Enter: the busiest process's connections only; Esc back.
        v.key(KeyEvent::from(KeyCode::Enter));
        assert!(v.grouped.is_none());
        assert!(v.shown().iter().all(|r| r.owner == "curl(4410)"));
        assert_eq!(v.shown().len(), 3);
        v.key(KeyEvent::from(KeyCode::Esc));
        assert_eq!(v.grouped, Some(Grouping::Process));
        assert_eq!(v.shown().len(), 4);
        keys(&mut v, "n");
        assert_eq!(v.groups().len(), 1, "one namespace: {:?}", v.groups());
        v.key(KeyEvent::from(KeyCode::Esc));
        assert!(v.grouped.is_none() && !v.quit);
        let mut v = view();
        v.key(KeyEvent::from(KeyCode::Enter));
        let detail = screen(&v);
        assert!(
            detail.contains("local_address") && detail.contains("10.0.0.9"),
            "{detail}"
        );
        insta::assert_snapshot!("top_detail", detail);
        // It scrolls to the fields further down, the last one included.
        for _ in 0..100 {
            v.key(KeyEvent::from(KeyCode::Down));
        }
        let scrolled = screen(&v);
        assert!(
            scrolled.contains("memory") && !scrolled.contains("local_address"),
            "{scrolled}"
        );
        v.key(KeyEvent::from(KeyCode::Esc));
        assert!(!v.detail && !v.quit);
    }

    #[test]
    fn k_asks_before_it_destroys_and_refuses_listeners() {
        let mut v = view();
        for row in &mut v.rows {
            row.diag = Some(Default::default());
        }
        // The busiest connection is selected: k asks, n keeps it.
        keys(&mut v, "k");
        assert!(v.confirm.is_some());
        assert!(screen(&v).contains("y to confirm"));
        keys(&mut v, "n");
        assert_eq!((v.confirm, v.destroy), (None, None));
        assert_eq!(v.message.as_deref(), Some("not destroyed"));
        // y confirms: the caller destroys it.
        let chosen = v.selected;
        keys(&mut v, "ky");
        assert_eq!(v.destroy, chosen);
        // A listener is tcptab kill's, naming its state.
        v.destroy = None;
        v.key(KeyEvent::from(KeyCode::End));
        v.key(KeyEvent::from(KeyCode::Up));
        assert_eq!(v.selected_row().unwrap().state, State::Listen);
        keys(&mut v, "k");
        assert!(v.confirm.is_none());
        assert!(v.message.as_deref().unwrap().contains("tcptab kill"));
    }

    #[test]
    fn sorting_keeps_the_selection_and_rows_do_not_jump() {
        let mut v = view();
        // Busiest receiver first; the selection follows its connection.
        assert_eq!(v.rows[0].remote, "10.0.0.9:51000");
        v.key(KeyEvent::from(KeyCode::Down));
        let chosen = v.selected;
        v.key(KeyEvent::from(KeyCode::Char('s'))); // by tx
        assert_eq!(v.rows[0].remote, "10.0.0.7:40000");
        assert_eq!(v.selected, chosen);
        v.key(KeyEvent::from(KeyCode::Char('r')));
        assert_eq!(v.rows.last().unwrap().remote, "10.0.0.7:40000");
        // The same rows again: the same order (ties by the ends).
        let order: Vec<String> = v.rows.iter().map(|r| r.remote.clone()).collect();
        let again: Vec<Row> = v
            .rows
            .iter()
            .filter(|r| r.closed_for == 0)
            .cloned()
            .collect();
        v.update(again);
        let after: Vec<String> = v.rows.iter().map(|r| r.remote.clone()).collect();
        assert_eq!(order, after);
        // A closed row stays for its refreshes, then goes.
        for _ in 0..CLOSED_REFRESHES {
            let open: Vec<Row> = v
                .rows
                .iter()
                .filter(|r| r.closed_for == 0)
                .cloned()
                .collect();
            v.update(open);
        }
        assert!(v.rows.iter().all(|r| r.closed_for == 0), "{:?}", v.rows);
        v.key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL));
        assert!(v.quit);
    }
}
