//! Drawing `tcptab top`'s screen, a function of the [`View`] alone, pane
//! by pane: the header line, the connections (or groups) table, the
//! findings, the last line (keys, prompt, question or message), and the
//! detail and help popups over them. Nothing is cut: what does not fit is
//! left out whole or elided with a marker ([`super::layout`]).

use ratatui::layout::{Constraint, Layout, Position, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line as TextLine;
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Row as TableRow, Table, TableState};
use ratatui::Frame;
use tcptab::State;

use super::detail;
use super::layout::{self, age, elide_address, elide_words, fit, fit_parts, rate, Col};
use super::view::{Column, Grouping, Row, View};

/// An end's column is never narrower than this: room for the longest
/// port, the marker and a few characters of the host.
const MIN_END: usize = 12;

/// At most this many findings lines.
const FINDINGS: usize = 3;

const BOLD: Style = Style::new().add_modifier(Modifier::BOLD);

/// The keys, as the help popup lists them.
pub const KEYS: &[(&str, &str)] = &[
    ("q, Esc, Ctrl-C", "quit (Esc first closes what is open)"),
    ("/", "filter in ss's language (Esc clears it)"),
    ("Enter", "every field of the selected connection"),
    ("g", "one row per process (Enter: its connections)"),
    (
        "n",
        "one row per network namespace (Enter: its connections)",
    ),
    ("w", "one row per workload, with --workload"),
    ("Up, Down, j", "move"),
    ("PgUp, PgDn, Home, End", "move by a page, to the ends"),
    ("k", "destroy the selected connection (asks first)"),
    ("s", "sort by the next column"),
    ("r", "reverse the sort"),
    ("space", "pause the rows (again: resume)"),
    ("?", "this help (Esc closes it)"),
];

/// Draw the view.
pub fn draw(frame: &mut Frame<'_>, view: &View) {
    let findings = view.findings.len().min(FINDINGS) as u16;
    let [top, body, problems, bottom] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(findings),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    header(frame, top, view);
    match view.grouped {
        Some(by) => groups(frame, body, view, by),
        None => connections(frame, body, view),
    }
    findings_pane(frame, problems, view);
    last_line(frame, bottom, view);
    if view.detail {
        if let Some(row) = view.selected_row() {
            detail_popup(frame, view, row);
        }
    }
    if view.help {
        help_popup(frame);
    }
}

/// The totals: sockets per state, the summed rates, the source.
fn header(frame: &mut Frame<'_>, area: Rect, view: &View) {
    let shown = view.shown();
    let open: Vec<&Row> = shown.into_iter().filter(|r| r.closed_for == 0).collect();
    // (A sum of no floats is -0.)
    let total = |f: fn(&Row) -> Option<f64>| 0.0 + open.iter().filter_map(|r| f(r)).sum::<f64>();
    // Sockets per state, the states present in the kernel's order.
    let per_state: Vec<String> = State::LISTED
        .iter()
        .filter_map(|state| {
            let n = open.iter().filter(|r| r.state() == *state).count();
            (n > 0).then(|| format!("{n} {}", state.ss_name().unwrap_or("?")))
        })
        .collect();
    let mut parts = vec!["tcptab top".to_string()];
    if view.paused {
        parts.push("PAUSED".into());
    }
    parts.extend([
        tcptab::counted(open.len() as u64, "socket"),
        format!("rx {}/s", rate(Some(total(|r| r.rx_bytes_per_s)))),
        format!("tx {}/s", rate(Some(total(|r| r.tx_bytes_per_s)))),
        per_state.join(", "),
        format!("{} every {:?}", view.source, view.interval),
    ]);
    let text = fit_parts(&parts, "  ", area.width as usize);
    frame.render_widget(Paragraph::new(text), area);
}

/// The sort column of the table that a sort key sorts by.
fn sorted_col(sort: Column) -> Col {
    match sort {
        Column::Rx => Col::Rx,
        Column::Tx => Col::Tx,
        Column::State => Col::State,
        Column::Local => Col::Local,
        Column::Remote => Col::Peer,
        Column::Owner => Col::Owner,
        Column::Rtt => Col::Rtt,
        Column::Age => Col::Age,
    }
}

/// A row's cell in a column, whole.
pub fn cell(r: &Row, col: Col) -> String {
    let s = &r.entry.socket;
    let count = |v: Option<u32>| v.map_or("-".to_string(), |v| v.to_string());
    match col {
        Col::State => s.state.to_string(),
        Col::Local => crate::output::cells::Endpoint(s.local, None).to_string(),
        Col::Peer => crate::output::cells::Endpoint(s.remote, None).to_string(),
        Col::Owner => r.owner(),
        Col::Workload => r.workload(),
        Col::Rx => rate(r.rx_bytes_per_s),
        Col::Tx => rate(r.tx_bytes_per_s),
        Col::Rtt => r.rtt_ms().map_or("-".to_string(), |v| format!("{v:.2}")),
        Col::Retr => count(r.retransmits()),
        Col::Cwnd => count(r.cwnd()),
        Col::RecvQ => s.rx_queue.to_string(),
        Col::SendQ => s.tx_queue.to_string(),
        Col::Age => age(r.age),
        Col::Problem => r.problem.unwrap_or("").to_string(),
    }
}

/// The column's title, the sorted one marked (▼ as sorted, ▲ reversed).
fn title(col: Col, view: &View) -> String {
    if col == sorted_col(view.sort) {
        format!("{}{}", col.title(), if view.reverse { "▲" } else { "▼" })
    } else {
        col.title().to_string()
    }
}

/// The rows that fit from `offset` keep the selected one in sight.
fn window(selected: usize, height: usize, len: usize) -> std::ops::Range<usize> {
    let height = height.max(1);
    let start = selected
        .saturating_sub(height - 1)
        .min(len.saturating_sub(height));
    start..(start + height).min(len)
}

/// The connections table: the columns that fit, each cell whole or, for an
/// end narrowed to fit, elided in its host.
fn connections(frame: &mut Frame<'_>, area: Rect, view: &View) {
    let shown = view.shown();
    let rows = window(
        view.index(),
        area.height.saturating_sub(1) as usize,
        shown.len(),
    );
    let visible = &shown[rows.clone()];
    let cells: Vec<Vec<String>> = visible
        .iter()
        .map(|r| Col::ALL.iter().map(|&c| cell(r, c)).collect())
        .collect();
    // The workload column only when asked for (`top --workload`).
    let widest: Vec<(Col, usize)> = Col::ALL
        .iter()
        .enumerate()
        .filter(|(_, &c)| c != Col::Workload || view.workload)
        .map(|(i, &c)| {
            let title = title(c, view).chars().count();
            let widest = cells
                .iter()
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0);
            (c, title.max(widest))
        })
        .collect();
    let columns = fit(&widest, area.width as usize, MIN_END);
    let place = |c: Col| Col::ALL.iter().position(|&x| x == c).unwrap_or(0);
    let head =
        TableRow::new(columns.iter().map(|&(c, w)| align(&title(c, view), w, c))).style(BOLD);
    let body = visible.iter().zip(&cells).map(|(r, cells)| {
        let texts = columns.iter().map(|&(c, w)| {
            let text = &cells[place(c)];
            let text = match c {
                Col::Local | Col::Peer => {
                    elide_address(text, w).unwrap_or_else(|| layout::ELIDED.to_string())
                }
                _ => text.clone(),
            };
            align(&text, w, c)
        });
        let row = TableRow::new(texts.collect::<Vec<_>>());
        if r.closed_for > 0 {
            row.style(Style::new().add_modifier(Modifier::DIM))
        } else if r.problem.is_some() {
            row.style(BOLD)
        } else {
            row
        }
    });
    let widths = columns.iter().map(|&(_, w)| Constraint::Length(w as u16));
    let table = Table::new(body, widths)
        .header(head)
        .column_spacing(1)
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED));
    let selected = view.index().checked_sub(rows.start);
    let mut state = TableState::default().with_selected(selected.filter(|_| !visible.is_empty()));
    frame.render_stateful_widget(table, area, &mut state);
}

/// A cell padded to its column's width, numbers to the right.
fn align(text: &str, width: usize, col: Col) -> String {
    if col.right() {
        format!("{text:>width$}")
    } else {
        format!("{text:<width$}")
    }
}

/// One row per process or namespace: its sockets and summed rates.
fn groups(frame: &mut Frame<'_>, area: Rect, view: &View, by: Grouping) {
    let groups = view.groups();
    let title = match by {
        Grouping::Process => "Process",
        Grouping::Namespace => "Network namespace",
        Grouping::Workload => "Workload",
    };
    let numbers = 3 * (8 + 1);
    let name_width = (area.width as usize).saturating_sub(numbers).max(8);
    let head = TableRow::new(vec![
        title.to_string(),
        format!("{:>8}", "Sockets"),
        format!("{:>8}", "Rx/s▼"),
        format!("{:>8}", "Tx/s"),
    ])
    .style(BOLD);
    let rows = groups.iter().map(|(name, n, rx, tx)| {
        TableRow::new(vec![
            elide_words(name, name_width),
            format!("{n:>8}"),
            format!("{:>8}", rate(Some(*rx))),
            format!("{:>8}", rate(Some(*tx))),
        ])
    });
    let widths = [
        Constraint::Length(name_width as u16),
        Constraint::Length(8),
        Constraint::Length(8),
        Constraint::Length(8),
    ];
    let table = Table::new(rows, widths)
        .header(head)
        .column_spacing(1)
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED));
    let mut state = TableState::default()
        .with_selected(Some(view.group_selected).filter(|_| !groups.is_empty()));
    frame.render_stateful_widget(table, area, &mut state);
}

/// The findings, one line each, cut between words.
fn findings_pane(frame: &mut Frame<'_>, area: Rect, view: &View) {
    let width = area.width as usize;
    let lines: Vec<TextLine> = view
        .findings
        .iter()
        .take(FINDINGS)
        .map(|f| TextLine::from(elide_words(&format!("! {f}"), width)))
        .collect();
    frame.render_widget(Paragraph::new(lines).style(BOLD), area);
}

/// The last line: the question (`k`), a message, the prompt (with its
/// error), or what is applied and the keys.
fn last_line(frame: &mut Frame<'_>, area: Rect, view: &View) {
    let width = area.width as usize;
    let asking = view
        .confirm
        .and_then(|k| view.rows.iter().find(|r| r.key == k));
    let (text, style) = if let Some(r) = asking {
        let question = format!(
            "destroy {} {} -> {}? y to confirm, any other key to keep it",
            r.state(),
            cell(r, Col::Local),
            cell(r, Col::Peer)
        );
        (elide_words(&question, width), BOLD)
    } else if let Some(message) = &view.message {
        (elide_words(message, width), Style::new())
    } else if let Some(line) = &view.prompt {
        return prompt(frame, area, view, line);
    } else {
        (keys_line(view, width), Style::new())
    };
    frame.render_widget(Paragraph::new(text).style(style), area);
}

/// The filter and group applied, then the keys that fit.
fn keys_line(view: &View, width: usize) -> String {
    let mut parts = Vec::new();
    if let Some((_, text)) = &view.filter {
        parts.push(format!("filter: {text}"));
    }
    if let Some((_, name)) = &view.expanded {
        parts.push(format!("only: {name} (Esc: all)"));
    }
    parts.extend(
        [
            "q quit",
            "? keys",
            "/ filter",
            "Enter detail",
            "g processes",
            "n namespaces",
            "k destroy",
        ]
        .map(String::from),
    );
    parts.push(format!("s sort ({})", view.sort.name()));
    parts.extend(["r reverse", "space pause"].map(String::from));
    fit_parts(&parts, "  ", width)
}

/// The prompt: `/` and the line, scrolled to keep the cursor in sight,
/// then its error; the terminal's cursor at the line's.
fn prompt(frame: &mut Frame<'_>, area: Rect, view: &View, line: &super::line::Line) {
    let width = area.width as usize;
    let chars: Vec<char> = line.text().chars().collect();
    let error = view.prompt_error.as_deref().map(|e| format!("   {e}"));
    let error_len = error.as_ref().map_or(0, |e| e.chars().count());
    // The line gets what the error leaves, at least half the width.
    let room = width.saturating_sub(1 + error_len).max(width / 2).max(1);
    let start = (line.cursor() + 1).saturating_sub(room);
    let visible: String = chars.iter().skip(start).take(room).collect();
    let mut text = format!("/{visible}");
    if let Some(error) = error {
        let left = width.saturating_sub(text.chars().count());
        text.push_str(&elide_words(&error, left));
    }
    let style = if view.prompt_error.is_some() {
        BOLD
    } else {
        Style::new()
    };
    frame.render_widget(Paragraph::new(text).style(style), area);
    let x = area.x + (1 + line.cursor() - start).min(width.saturating_sub(1)) as u16;
    frame.set_cursor_position(Position::new(x, area.y));
}

/// The selected connection in full, scrolled by the view's offset.
fn detail_popup(frame: &mut Frame<'_>, view: &View, row: &Row) {
    let area = frame.area();
    let popup = Rect {
        x: area.x + 1,
        y: area.y + 1,
        width: area.width.saturating_sub(2),
        height: area.height.saturating_sub(2),
    };
    let inner = popup.width.saturating_sub(2) as usize;
    let height = popup.height.saturating_sub(2) as usize;
    let all: Vec<TextLine> = detail::lines(row)
        .iter()
        .flat_map(|l| detail_line(l, inner))
        .collect();
    let offset = view.detail_offset.min(all.len().saturating_sub(height));
    let lines: Vec<TextLine> = all.iter().skip(offset).take(height).cloned().collect();
    let more = if offset + height < all.len() {
        format!(" {}/{} Down: more, Esc closes ", offset + height, all.len())
    } else {
        " Esc closes ".to_string()
    };
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(more)),
        popup,
    );
}

/// One of the detail's lines in lines of `width`: a title in bold, a
/// field's value wrapped under itself.
fn detail_line(line: &str, width: usize) -> Vec<TextLine<'static>> {
    let at = detail::VALUE_AT;
    if !line.starts_with(' ') {
        return layout::wrap(line, width)
            .into_iter()
            .map(|l| TextLine::from(l).style(BOLD))
            .collect();
    }
    let (name, value): (String, String) = (
        line.chars().take(at).collect(),
        line.chars().skip(at).collect(),
    );
    if width <= at + 8 {
        // Too narrow for two columns: the name, then the value under it.
        let mut out = vec![TextLine::from(name.trim_end().to_string())];
        out.extend(
            layout::wrap(&value, width.saturating_sub(4).max(1))
                .into_iter()
                .map(|l| TextLine::from(format!("    {l}"))),
        );
        return out;
    }
    layout::wrap(&value, width - at)
        .into_iter()
        .enumerate()
        .map(|(i, part)| {
            let head = if i == 0 { name.as_str() } else { "" };
            TextLine::from(format!("{head:<at$}{part}"))
        })
        .collect()
}

/// The keys, sized to them, each explanation wrapped when narrow.
fn help_popup(frame: &mut Frame<'_>) {
    let area = frame.area();
    let key_width = KEYS
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0)
        + 2;
    let widest = KEYS
        .iter()
        .map(|(_, what)| key_width + what.chars().count())
        .max()
        .unwrap_or(0);
    let width = (widest + 2).min(area.width as usize);
    let inner = width.saturating_sub(2);
    let mut lines = Vec::new();
    for (key, what) in KEYS {
        if inner > key_width + 8 {
            let wrapped = layout::wrap(what, inner - key_width);
            for (i, part) in wrapped.iter().enumerate() {
                let key = if i == 0 { *key } else { "" };
                lines.push(TextLine::from(format!("{key:<key_width$}{part}")));
            }
        } else {
            // Too narrow for two columns: the key, then its explanation.
            lines.push(TextLine::from(key.to_string()).style(BOLD));
            for part in layout::wrap(what, inner.saturating_sub(2).max(1)) {
                lines.push(TextLine::from(format!("  {part}")));
            }
        }
    }
    let height = (lines.len() + 2).min(area.height as usize) as u16;
    let popup = Rect {
        x: area.x + (area.width - width as u16) / 2,
        y: area.y + area.height.saturating_sub(height) / 2,
        width: width as u16,
        height,
    };
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(" keys ")),
        popup,
    );
}
