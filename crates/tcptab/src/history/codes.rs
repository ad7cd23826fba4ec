//! What a file of version 5 stores instead of names: a small number for
//! each of the `connections` columns that hold one of a few names (a
//! state, a row shape, a timer, an owner status, ...). A name took 4 to 12
//! bytes in every row, a number takes one or none, and a connection's row
//! holds eight of them.
//!
//! The numbers live in the tables `connection_rows` and
//! `state_change_rows`; the views `connections` and `state_changes` name
//! them again, column for column as a file of version 4 has them, so that
//! a query of the file (tcptab's, or someone's with `sqlite3`) reads
//! names. The table below is the one place that pairs them: the views and
//! the migration from version 4 are made from it, and the writer's
//! numbers are checked against it.

use crate::model::{Family, Owners, RowKind, Source};
use crate::track::End;

/// The names one column holds, by number, and how a number without a name
/// is named, if it may be.
pub(super) struct Names {
    pub(super) pairs: &'static [(i64, &'static str)],
    other: Option<Other>,
}

/// How a number without a name is written and read back.
#[derive(Clone, Copy)]
enum Other {
    /// `UNKNOWN(0x0e)`: a state the kernel added after this tcptab.
    State,
    /// `unknown(7)`: a timer code the kernel added.
    Timer,
}

pub(super) const FAMILY: Names = Names {
    pairs: &[(4, "ipv4"), (6, "ipv6")],
    other: None,
};
pub(super) const KIND: Names = Names {
    pairs: &[(0, "full"), (1, "time_wait"), (2, "request")],
    other: None,
};
pub(super) const SOURCE: Names = Names {
    pairs: &[(0, "proc"), (1, "netlink")],
    other: None,
};
pub(super) const CLOSED_BY: Names = Names {
    pairs: &[
        (1, "destroy"),
        (2, "poll"),
        (3, "expired"),
        (4, "gap"),
        (5, "reboot"),
    ],
    other: None,
};
/// In the order of [`Owners::rank`]: the best seen is the highest.
pub(super) const OWNER_STATUS: Names = Names {
    pairs: &[
        (1, "no_process"),
        (2, "not_found"),
        (3, "unknown"),
        (4, "owned"),
    ],
    other: None,
};
/// The kernel's own numbers.
pub(super) const STATE: Names = Names {
    pairs: &[
        (1, "ESTABLISHED"),
        (2, "SYN_SENT"),
        (3, "SYN_RECV"),
        (4, "FIN_WAIT1"),
        (5, "FIN_WAIT2"),
        (6, "TIME_WAIT"),
        (7, "CLOSE"),
        (8, "CLOSE_WAIT"),
        (9, "LAST_ACK"),
        (10, "LISTEN"),
        (11, "CLOSING"),
        (12, "NEW_SYN_RECV"),
        (13, "BOUND_INACTIVE"),
    ],
    other: Some(Other::State),
};
/// The kernel's own numbers (the `tr` column of /proc/net/tcp).
pub(super) const TIMER: Names = Names {
    pairs: &[
        (0, "off"),
        (1, "retransmit"),
        (2, "keepalive"),
        (3, "time_wait"),
        (4, "zero_window_probe"),
    ],
    other: Some(Other::Timer),
};

impl Names {
    /// SQL naming the number `column` holds (NULL for NULL; a number
    /// tcptab does not write as its digits, which the reader refuses).
    pub(super) fn name_sql(&self, column: &str) -> String {
        let mut sql = format!("CASE {column}");
        for (code, name) in self.pairs {
            sql.push_str(&format!(" WHEN {code} THEN '{name}'"));
        }
        // A state or timer code the kernel added reads as the model names
        // it; any other number as itself, which the reader then names in
        // its error.
        let digits = format!("CAST({column} AS TEXT)");
        let other = match self.other {
            Some(Other::State) => format!(
                "CASE WHEN {column} BETWEEN 0 AND 255 THEN printf('UNKNOWN(0x%02x)', {column}) ELSE {digits} END"
            ),
            Some(Other::Timer) => format!(
                "CASE WHEN {column} BETWEEN 0 AND 255 THEN printf('unknown(%d)', {column}) ELSE {digits} END"
            ),
            None => digits,
        };
        sql.push_str(&format!(" ELSE {other} END"));
        sql
    }

    /// The name of `code`, as [`name_sql`](Names::name_sql) names it in
    /// SQL (what the shipper writes, reading the rows without the view).
    pub(super) fn name(&self, code: i64) -> std::borrow::Cow<'static, str> {
        if let Some((_, name)) = self.pairs.iter().find(|(c, _)| *c == code) {
            return std::borrow::Cow::Borrowed(name);
        }
        match self.other {
            Some(Other::State) if (0..=255).contains(&code) => format!("UNKNOWN(0x{code:02x})"),
            Some(Other::Timer) if (0..=255).contains(&code) => format!("unknown({code})"),
            _ => code.to_string(),
        }
        .into()
    }

    /// SQL numbering the name `column` holds (a file of version 4 taken
    /// up); NULL for a name tcptab does not write.
    pub(super) fn code_sql(&self, column: &str) -> String {
        let mut sql = format!("CASE {column}");
        for (code, name) in self.pairs {
            sql.push_str(&format!(" WHEN '{name}' THEN {code}"));
        }
        match self.other {
            Some(Other::State) => sql.push_str(&format!(
                " ELSE CASE WHEN {column} LIKE 'UNKNOWN(0x__)' THEN
                    (instr('0123456789abcdef', substr({column}, 11, 1)) - 1) * 16
                    + instr('0123456789abcdef', substr({column}, 12, 1)) - 1 END"
            )),
            Some(Other::Timer) => sql.push_str(&format!(
                " ELSE CASE WHEN {column} LIKE 'unknown(%)' THEN
                    CAST(substr({column}, 9, length({column}) - 9) AS INTEGER) END"
            )),
            None => {}
        }
        sql.push_str(" END");
        sql
    }
}

pub(super) fn family(f: Family) -> i64 {
    match f {
        Family::Ipv4 => 4,
        Family::Ipv6 => 6,
    }
}

pub(super) fn kind(k: RowKind) -> i64 {
    match k {
        RowKind::Full => 0,
        RowKind::TimeWait => 1,
        RowKind::Request => 2,
    }
}

pub(super) fn source(s: Source) -> i64 {
    match s {
        Source::Proc => 0,
        Source::Netlink => 1,
    }
}

pub(super) fn closed_by(e: End) -> i64 {
    match e {
        End::Destroy => 1,
        End::Poll => 2,
        End::Expired => 3,
        End::Gap => 4,
        End::Reboot => 5,
    }
}

pub(super) fn owner_status(o: &Owners) -> i64 {
    match o {
        Owners::NoProcess => 1,
        Owners::NotFound => 2,
        Owners::Unknown => 3,
        Owners::Owned(_) => 4,
    }
}

/// A column of `connection_rows`, and what the view makes of it.
enum Column {
    /// As stored.
    Kept(&'static str),
    /// A number for one of these names.
    Named(&'static str, &'static Names),
    /// Milliseconds after `first_seen`.
    After(&'static str),
}

use Column::{After, Kept, Named};

/// The columns of `connection_rows`, in the order of the `connections`
/// of a file of version 4 (which the view keeps).
const ROW_COLUMNS: [Column; 37] = [
    Kept("id"),
    Kept("boot"),
    Kept("netns"),
    Kept("cookie"),
    Kept("first_seen"),
    After("last_seen"),
    After("closed_at"),
    Named("closed_by", &CLOSED_BY),
    Named("first_state", &STATE),
    Named("family", &FAMILY),
    Named("kind", &KIND),
    Named("state", &STATE),
    Kept("local_address"),
    Kept("local_port"),
    Kept("remote_address"),
    Kept("remote_port"),
    Kept("tx_queue"),
    Kept("rx_queue"),
    Named("timer", &TIMER),
    Kept("timer_ms"),
    Kept("retransmits"),
    Kept("uid"),
    Kept("probes"),
    Kept("inode"),
    Named("source", &SOURCE),
    Kept("interface"),
    Kept("backlog_limit"),
    Kept("congestion_algorithm"),
    Kept("shutdown"),
    Kept("v6only"),
    Named("owner_status", &OWNER_STATUS),
    Kept("bytes_acked"),
    Kept("bytes_received"),
    Kept("total_retrans"),
    Kept("rtt_us"),
    Kept("workload"),
    Kept("follows"),
];

/// The names the column `name` of `connection_rows` holds numbers for;
/// None for a column kept as it is.
pub(super) fn names_of(name: &str) -> Option<&'static Names> {
    ROW_COLUMNS.iter().find_map(|c| match c {
        Named(n, names) if *n == name => Some(*names),
        _ => None,
    })
}

/// [`ROW_COLUMNS`] as `each` writes them, joined.
fn columns(each: impl Fn(&Column) -> String) -> String {
    ROW_COLUMNS.iter().map(each).collect::<Vec<_>>().join(", ")
}

/// The `connections` view: `connection_rows` with names and times since
/// the epoch, its columns in the order of a file of version 4; and
/// `state_changes`, `state_change_rows` with names.
pub(super) fn connections_view() -> String {
    let view = columns(|c| match c {
        Kept(name) => (*name).to_string(),
        Named(name, names) => format!("{} AS {name}", names.name_sql(name)),
        After(name) => format!("first_seen + {name} AS {name}"),
    });
    format!(
        "CREATE VIEW connections AS SELECT {view} FROM connection_rows;
         CREATE VIEW state_changes AS SELECT connection, at, {} AS state FROM state_change_rows;",
        STATE.name_sql("state"),
    )
}

/// The rows of a file of version 4 (`connections`, `state_changes`:
/// tables with names) into this version's tables, the tables dropped and
/// the views made in their place.
pub(super) fn from_version_4() -> String {
    let rows = columns(|c| match c {
        Kept(name) => (*name).to_string(),
        Named(name, names) => names.code_sql(name),
        After(name) => format!("{name} - first_seen"),
    });
    format!(
        "INSERT INTO connection_rows SELECT {rows} FROM connections;
         INSERT INTO state_change_rows SELECT connection, at, {} FROM state_changes;
         DROP VIEW sightings;
         DROP TABLE connections;
         DROP TABLE state_changes;
         {}",
        STATE.code_sql("state"),
        connections_view(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{State, TimerKind};

    fn name(names: &Names, code: i64) -> Option<&'static str> {
        names.pairs.iter().find(|p| p.0 == code).map(|p| p.1)
    }

    #[test]
    fn each_number_names_what_the_model_calls_it() {
        for f in [Family::Ipv4, Family::Ipv6] {
            assert_eq!(name(&FAMILY, family(f)), Some(f.as_str()));
        }
        for k in [RowKind::Full, RowKind::TimeWait, RowKind::Request] {
            assert_eq!(name(&KIND, kind(k)), Some(k.as_str()));
        }
        for s in [Source::Proc, Source::Netlink] {
            assert_eq!(name(&SOURCE, source(s)), Some(s.as_str()));
        }
        for e in [End::Destroy, End::Poll, End::Expired, End::Gap, End::Reboot] {
            assert_eq!(name(&CLOSED_BY, closed_by(e)), Some(e.as_str()));
        }
        let statuses = [
            Owners::NoProcess,
            Owners::NotFound,
            Owners::Unknown,
            Owners::Owned(std::sync::Arc::from([])),
        ];
        for o in &statuses {
            assert_eq!(name(&OWNER_STATUS, owner_status(o)), Some(o.as_str()));
        }
        // The best status seen is the highest number.
        for w in statuses.windows(2) {
            assert!(owner_status(&w[0]) < owner_status(&w[1]));
            assert!(w[0].rank() < w[1].rank());
        }
        for code in 0..=255u8 {
            let s = State::from_code(code);
            assert_eq!(name(&STATE, i64::from(code)), s.kernel_name(), "{code}");
            let t = TimerKind::from_code(code);
            assert_eq!(name(&TIMER, i64::from(code)), t.name(), "{code}");
        }
    }

    /// Rust names every number as the view's SQL does, those without a
    /// name included.
    #[test]
    fn rust_names_each_number_as_the_view_does() {
        let db = rusqlite::Connection::open_in_memory().unwrap();
        for names in [
            &FAMILY,
            &KIND,
            &SOURCE,
            &CLOSED_BY,
            &OWNER_STATUS,
            &STATE,
            &TIMER,
        ] {
            let sql = format!("SELECT {}", names.name_sql("?1"));
            for code in -3..=300 {
                let sqlite: String = db.query_row(&sql, [code], |r| r.get(0)).unwrap();
                assert_eq!(names.name(code), sqlite, "{code}");
            }
        }
        assert_eq!(names_of("state").unwrap().pairs, STATE.pairs);
        assert!(names_of("local_port").is_none() && names_of("netns").is_none());
    }

    /// Every number through the view's SQL and back through the
    /// migration's, in SQLite itself: the name is the model's, and the
    /// number comes back.
    #[test]
    fn names_and_numbers_go_both_ways_in_sql() {
        let db = rusqlite::Connection::open_in_memory().unwrap();
        let both = |names: &Names, code: i64| -> (Option<String>, Option<i64>) {
            let sql = format!(
                "SELECT {}, {} FROM (SELECT ?1 AS x, {} AS y)",
                names.name_sql("x"),
                names.code_sql("y"),
                names.name_sql("?1")
            );
            db.query_row(&sql, [code], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
        };
        for code in 0..=255u8 {
            let (text, back) = both(&STATE, i64::from(code));
            assert_eq!(text.as_deref(), Some(&*State::from_code(code).to_string()));
            assert_eq!(back, Some(i64::from(code)));
            let (text, back) = both(&TIMER, i64::from(code));
            assert_eq!(
                text,
                Some(crate::history::tests::timer_name(TimerKind::from_code(
                    code
                )))
            );
            assert_eq!(back, Some(i64::from(code)));
        }
        for names in [&FAMILY, &KIND, &SOURCE, &CLOSED_BY, &OWNER_STATUS] {
            for &(code, name) in names.pairs {
                assert_eq!(both(names, code), (Some(name.to_string()), Some(code)));
            }
            // A number tcptab does not write has no name.
            assert_eq!(both(names, 99), (Some("99".into()), None));
        }
        assert_eq!(both(&STATE, 256), (Some("256".into()), None));
        assert_eq!(both(&TIMER, -1), (Some("-1".into()), None));
    }

    /// The migration copies rows by position: [`ROW_COLUMNS`] is
    /// `connection_rows`' columns, in its order.
    #[test]
    fn the_column_list_is_the_table_s() {
        let db = rusqlite::Connection::open_in_memory().unwrap();
        db.execute_batch(&format!(
            "{} {}",
            super::super::SCHEMA,
            super::super::CONNECTION_TABLES
        ))
        .unwrap();
        let table: Vec<String> = db
            .prepare("SELECT name FROM pragma_table_info('connection_rows')")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        let listed: Vec<&str> = ROW_COLUMNS
            .iter()
            .map(|c| match c {
                Kept(name) | Named(name, _) | After(name) => *name,
            })
            .collect();
        assert_eq!(table, listed);
    }
}
