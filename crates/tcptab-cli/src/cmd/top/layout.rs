//! What fits on a line, and how a value is written so that it is never
//! cut: the table's columns are dropped whole, by priority (the ends,
//! the state and the rates last to go); an address that still does not
//! fit is elided in the middle, its port kept; text lines (the header, the
//! keys) keep the whole parts that fit.

use std::time::Duration;

/// The mark of an elision.
pub const ELIDED: char = '…';

/// One column of the connections table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Col {
    State,
    Local,
    Peer,
    Owner,
    Workload,
    Rx,
    Tx,
    Rtt,
    Retr,
    Cwnd,
    RecvQ,
    SendQ,
    Age,
    Problem,
}

impl Col {
    /// Left to right.
    pub const ALL: [Col; 14] = [
        Col::State,
        Col::Local,
        Col::Peer,
        Col::Owner,
        Col::Workload,
        Col::Rx,
        Col::Tx,
        Col::Rtt,
        Col::Retr,
        Col::Cwnd,
        Col::RecvQ,
        Col::SendQ,
        Col::Age,
        Col::Problem,
    ];

    /// The order columns are dropped in when the line is too narrow:
    /// first dropped first. The two ends go last, then the state, then the
    /// rates.
    pub const DROPPED_FIRST: [Col; 14] = [
        Col::Cwnd,
        Col::Retr,
        Col::SendQ,
        Col::RecvQ,
        Col::Age,
        Col::Rtt,
        Col::Workload,
        Col::Owner,
        Col::Problem,
        Col::Tx,
        Col::Rx,
        Col::State,
        Col::Peer,
        Col::Local,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Col::State => "State",
            Col::Local => "Local",
            Col::Peer => "Peer",
            Col::Owner => "Owner",
            Col::Workload => "Workload",
            Col::Rx => "Rx/s",
            Col::Tx => "Tx/s",
            Col::Rtt => "RTT ms",
            Col::Retr => "Retr",
            Col::Cwnd => "Cwnd",
            Col::RecvQ => "RecvQ",
            Col::SendQ => "SendQ",
            Col::Age => "Age",
            Col::Problem => "Problem",
        }
    }

    /// Whether its cells line up to the right (numbers).
    pub fn right(self) -> bool {
        matches!(
            self,
            Col::Rx
                | Col::Tx
                | Col::Rtt
                | Col::Retr
                | Col::Cwnd
                | Col::RecvQ
                | Col::SendQ
                | Col::Age
        )
    }
}

/// The columns that fit in `width` (a space between two), in order, each
/// with its width, given each column's widest cell (its title included).
/// The ends may be narrowed below their widest cell: their cells are then
/// elided ([`elide_address`]), down to `min_end` each.
pub fn fit(widest: &[(Col, usize)], width: usize, min_end: usize) -> Vec<(Col, usize)> {
    let total = |cols: &[(Col, usize)]| {
        cols.iter().map(|(_, w)| w).sum::<usize>() + cols.len().saturating_sub(1)
    };
    let mut kept: Vec<(Col, usize)> = widest.to_vec();
    for drop in Col::DROPPED_FIRST {
        if total(&kept) <= width {
            return kept;
        }
        if matches!(
            drop,
            Col::Tx | Col::Rx | Col::State | Col::Peer | Col::Local
        ) {
            // Before a rate, the state or an end goes, the ends are
            // narrowed (the wider first, one character at a time), down to
            // `min_end`.
            let mut narrowed = kept.clone();
            while total(&narrowed) > width {
                let widest_end = narrowed
                    .iter_mut()
                    .filter(|(c, w)| matches!(c, Col::Local | Col::Peer) && *w > min_end)
                    .max_by_key(|(_, w)| *w);
                match widest_end {
                    Some((_, w)) => *w -= 1,
                    None => break,
                }
            }
            if total(&narrowed) <= width {
                return narrowed;
            }
        }
        kept.retain(|(c, _)| *c != drop);
    }
    kept
}

/// `address:port` in at most `width` characters: whole when it fits, else
/// the host elided in the middle with [`ELIDED`] and the port kept whole;
/// None when not even the port and a character of the host fit.
pub fn elide_address(text: &str, width: usize) -> Option<String> {
    let len = text.chars().count();
    if len <= width {
        return Some(text.to_string());
    }
    let (host, port) = text.rsplit_once(':')?;
    let port_len = port.chars().count() + 1;
    let host_chars: Vec<char> = host.chars().collect();
    // What is left for the host: its head, the mark, its tail.
    let room = width.checked_sub(port_len + 1)?;
    if room < 2 {
        return None;
    }
    let head = room.div_ceil(2);
    let tail = room - head;
    let mut out: String = host_chars[..head].iter().collect();
    out.push(ELIDED);
    out.extend(&host_chars[host_chars.len() - tail..]);
    out.push(':');
    out.push_str(port);
    Some(out)
}

/// Text in at most `width` characters: whole, or cut at a space with
/// [`ELIDED`] (never in the middle of a word or a number).
pub fn elide_words(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut out = String::new();
    for word in text.split(' ') {
        let extra = usize::from(!out.is_empty()) + word.chars().count();
        if out.chars().count() + extra + 1 > width {
            break;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out.push(ELIDED);
    out
}

/// Text in lines of at most `width` characters, broken between words (a
/// word longer than a line has a line of its own, elided).
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        let extra = usize::from(!line.is_empty()) + word.chars().count();
        if !line.is_empty() && line.chars().count() + extra > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
        .into_iter()
        .map(|l| {
            if l.chars().count() > width {
                let mut cut: String = l.chars().take(width.saturating_sub(1)).collect();
                cut.push(ELIDED);
                cut
            } else {
                l
            }
        })
        .collect()
}

/// The parts that fit in `width`, joined by `sep`, in order (a part that
/// does not fit is left out whole; a shorter one after it may fit).
pub fn fit_parts(parts: &[String], sep: &str, width: usize) -> String {
    let mut out = String::new();
    for part in parts {
        let extra = if out.is_empty() {
            0
        } else {
            sep.chars().count()
        } + part.chars().count();
        if out.chars().count() + extra > width {
            continue;
        }
        if !out.is_empty() {
            out.push_str(sep);
        }
        out.push_str(part);
    }
    out
}

/// Bytes per second in human units (`1.9M`, `512`), `-` when unknown.
pub fn rate(v: Option<f64>) -> String {
    match v {
        None => "-".to_string(),
        Some(v) if v >= 1e9 => format!("{:.1}G", v / 1e9),
        Some(v) if v >= 1e6 => format!("{:.1}M", v / 1e6),
        Some(v) if v >= 1e3 => format!("{:.1}k", v / 1e3),
        Some(v) => format!("{v:.0}"),
    }
}

/// A time since, in the largest two units.
pub fn age(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s / 60 % 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_keeps_its_port_and_both_ends_of_its_host() {
        assert_eq!(
            elide_address("127.0.0.1:5432", 14).unwrap(),
            "127.0.0.1:5432"
        );
        assert_eq!(elide_address("127.0.0.1:5432", 12).unwrap(), "127…0.1:5432");
        assert_eq!(
            elide_address("[2001:db8::1]:443", 10).unwrap(),
            "[20…1]:443"
        );
        assert_eq!(elide_address("127.0.0.1:60791", 8), None);
    }

    #[test]
    fn columns_go_whole_in_their_order_and_the_ends_last() {
        let widest: Vec<(Col, usize)> = Col::ALL.iter().map(|&c| (c, 8)).collect();
        // 13 columns of 8 and 12 spaces: 116.
        assert_eq!(fit(&widest, 116, 6).len(), 13);
        let kept: Vec<Col> = fit(&widest, 62, 6).into_iter().map(|(c, _)| c).collect();
        assert_eq!(
            kept,
            [
                Col::State,
                Col::Local,
                Col::Peer,
                Col::Owner,
                Col::Rx,
                Col::Tx,
                Col::Problem
            ]
        );
        // Narrower than state, ends and rates: the ends are narrowed
        // before a rate goes, then the rates go, the ends never.
        let kept = fit(&widest, 40, 6);
        let cols: Vec<Col> = kept.iter().map(|(c, _)| *c).collect();
        assert_eq!(cols, [Col::State, Col::Local, Col::Peer, Col::Rx, Col::Tx]);
        assert_eq!(
            kept.iter().map(|(_, w)| w).sum::<usize>() + 4,
            40,
            "{kept:?}"
        );
        let kept = fit(&widest, 31, 6);
        let cols: Vec<Col> = kept.iter().map(|(c, _)| *c).collect();
        assert_eq!(cols, [Col::State, Col::Local, Col::Peer, Col::Rx]);
        assert_eq!(
            kept.iter().map(|(_, w)| w).sum::<usize>() + 3,
            31,
            "{kept:?}"
        );
        let cols: Vec<Col> = fit(&widest, 30, 6).iter().map(|(c, _)| *c).collect();
        assert_eq!(cols, [Col::State, Col::Local, Col::Peer]);
    }

    #[test]
    fn text_is_cut_between_words() {
        assert_eq!(elide_words("3 connections of nginx", 14), "3 connections…");
        assert_eq!(
            fit_parts(&["a".into(), "bb".into(), "ccc".into()], "  ", 7),
            "a  bb"
        );
        assert_eq!(
            wrap("one row per process", 8),
            ["one row", "per", "process"]
        );
    }
}
