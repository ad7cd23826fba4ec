//! A row's values read straight from SQLite's statement, for the one
//! statement that reads a batch's rows ([`super::read`]).
//!
//! rusqlite's [`rusqlite::Row::get_ref`] makes three calls into SQLite
//! for each value (the column count, the value's type, the value), and
//! the last two each find the column's value again. By perf of
//! `examples/record_churn.rs` with shipping, that was a quarter of the
//! shipper's time, with 35 columns a row. [`Values::get`] asks SQLite
//! for the value once (`sqlite3_column_value`) and reads its type and
//! contents from it, which is what SQLite's own `sqlite3_column_*`
//! functions do inside. This is the only place in the crate that calls
//! SQLite's C interface itself.

use std::ffi::CStr;
use std::ptr::NonNull;

use rusqlite::ffi;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, Row, Rows};

/// Steps `rows` to their end, giving `each` every row with what reads its
/// values. `rows` are those of the statement of `conn` whose text is
/// `sql`, prepared by [`Connection::prepare_cached`].
///
/// A [`Values`] is made here and lent to `each` one row at a time, so it
/// never outlives the statement, which `rows` borrows meanwhile.
pub(super) fn each_row(
    conn: &Connection,
    sql: &str,
    rows: &mut Rows<'_>,
    mut each: impl FnMut(&Values, &Row<'_>) -> rusqlite::Result<()>,
) -> rusqlite::Result<()> {
    let mut values = None;
    while let Some(row) = rows.next()? {
        // Found on the first row: the statement is on a row from then on.
        let values = match &values {
            Some(values) => values,
            None => {
                let found = Values::of_statement(conn, sql)?;
                if found.count != row.as_ref().column_count() {
                    return Err(not_one(sql, "the statement found is not the rows'"));
                }
                values.insert(found)
            }
        };
        each(values, row)?;
    }
    Ok(())
}

/// The values of the rows of a statement being stepped ([`each_row`]).
pub(super) struct Values {
    stmt: NonNull<ffi::sqlite3_stmt>,
    count: usize,
}

impl Values {
    /// The statement of `conn` whose text is `sql` and which is on a row
    /// (its first row read by [`rusqlite::Rows::next`]).
    ///
    /// It is an error when no such statement is found or when two are: a
    /// statement prepared by [`Connection::prepare_cached`] is the only
    /// one of its text in use (rusqlite's cache keeps one a text, and
    /// takes it out while it is used).
    fn of_statement(conn: &Connection, sql: &str) -> rusqlite::Result<Values> {
        let mut found = None;
        // SAFETY: the connection's handle is valid while `conn` is, and is
        // only read here: `sqlite3_next_stmt` walks its prepared
        // statements, and `sqlite3_sql` and `sqlite3_stmt_busy` read each
        // (the text is SQLite's own, valid while the statement is).
        #[allow(unsafe_code)]
        unsafe {
            let db = conn.handle();
            let mut stmt = ffi::sqlite3_next_stmt(db, std::ptr::null_mut());
            while let Some(s) = NonNull::new(stmt) {
                let text = ffi::sqlite3_sql(s.as_ptr());
                let on_a_row = ffi::sqlite3_stmt_busy(s.as_ptr()) != 0;
                if on_a_row && !text.is_null() && CStr::from_ptr(text).to_bytes() == sql.as_bytes()
                {
                    if found.is_some() {
                        return Err(not_one(sql, "two statements of it are in use"));
                    }
                    let count = ffi::sqlite3_column_count(s.as_ptr()).max(0) as usize;
                    found = Some(Values { stmt: s, count });
                }
                stmt = ffi::sqlite3_next_stmt(db, s.as_ptr());
            }
        }
        found.ok_or_else(|| not_one(sql, "no statement of it is on a row"))
    }

    /// The value of column `i` of `row`, the row [`each_row`] gave with
    /// these values (which `row` borrows, so that the statement neither
    /// steps on nor ends while the value is read).
    #[inline]
    pub(super) fn get<'r>(&self, _row: &'r Row<'_>, i: usize) -> rusqlite::Result<ValueRef<'r>> {
        if i >= self.count {
            return Err(rusqlite::Error::InvalidColumnIndex(i));
        }
        // SAFETY: the statement is on the row `_row` (borrowed for 'r), so
        // column `i` (< its column count) has a value, valid until the
        // statement steps, is reset or ends; none of which can happen while
        // `_row` is borrowed. The value's text or blob is read after its
        // type, and its length after its bytes, as SQLite's documentation
        // asks; a value is not converted in between.
        #[allow(unsafe_code)]
        unsafe {
            let stmt = self.stmt.as_ptr();
            let v = ffi::sqlite3_column_value(stmt, i as i32);
            Ok(match ffi::sqlite3_value_type(v) {
                ffi::SQLITE_NULL => ValueRef::Null,
                ffi::SQLITE_INTEGER => ValueRef::Integer(ffi::sqlite3_value_int64(v)),
                ffi::SQLITE_FLOAT => ValueRef::Real(ffi::sqlite3_value_double(v)),
                ffi::SQLITE_TEXT => {
                    let text = ffi::sqlite3_value_text(v);
                    let n = ffi::sqlite3_value_bytes(v).max(0) as usize;
                    if text.is_null() {
                        return Err(rusqlite::Error::SqliteFailure(
                            ffi::Error::new(ffi::SQLITE_NOMEM),
                            Some(format!("column {i}'s text could not be read")),
                        ));
                    }
                    ValueRef::Text(std::slice::from_raw_parts(text, n))
                }
                _ => {
                    let blob = ffi::sqlite3_value_blob(v);
                    let n = ffi::sqlite3_value_bytes(v).max(0) as usize;
                    // An empty blob's bytes are a null pointer.
                    if blob.is_null() || n == 0 {
                        ValueRef::Blob(&[])
                    } else {
                        ValueRef::Blob(std::slice::from_raw_parts(blob.cast::<u8>(), n))
                    }
                }
            })
        }
    }

    /// Column `i` of `row`, a number or NULL (`None`).
    #[inline]
    pub(super) fn number(&self, row: &Row<'_>, i: usize) -> rusqlite::Result<Option<i64>> {
        match self.get(row, i)? {
            ValueRef::Null => Ok(None),
            ValueRef::Integer(n) => Ok(Some(n)),
            other => Err(not_a_number(i, other)),
        }
    }

    /// Column `i` of `row`, a number (NULL is an error).
    #[inline]
    pub(super) fn int(&self, row: &Row<'_>, i: usize) -> rusqlite::Result<i64> {
        self.number(row, i)?
            .ok_or_else(|| not_a_number(i, ValueRef::Null))
    }
}

fn not_a_number(i: usize, value: ValueRef<'_>) -> rusqlite::Error {
    rusqlite::Error::InvalidColumnType(i, format!("column {i} (a number)"), value.data_type())
}

fn not_one(sql: &str, why: &str) -> rusqlite::Error {
    rusqlite::Error::ModuleError(format!("reading a batch's rows from SQLite: {why}: {sql}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every type of value reads as rusqlite reads it, from the statement
    /// found by its text while another statement is in use beside it.
    #[test]
    fn values_read_as_rusqlite_reads_them() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE t (a INTEGER, b TEXT, c REAL, d BLOB, e);
             INSERT INTO t VALUES (-7, 'héllo', 2.5, x'00ff', NULL), (9, '', 0.0, x'', 3);",
        )
        .unwrap();
        let sql = "SELECT a, b, c, d, e FROM t ORDER BY a";
        let mut other = conn.prepare_cached("SELECT a FROM t").unwrap();
        let mut other_rows = other.query([]).unwrap();
        other_rows.next().unwrap().unwrap();
        let mut stmt = conn.prepare_cached(sql).unwrap();
        let mut rows = stmt.query([]).unwrap();
        let mut read = 0;
        each_row(&conn, sql, &mut rows, |columns, row| {
            for i in 0..5 {
                assert_eq!(
                    columns.get(row, i).unwrap(),
                    row.get_ref(i).unwrap(),
                    "column {i}"
                );
            }
            let a = row.get::<_, i64>(0).unwrap();
            assert_eq!(
                (
                    columns.int(row, 0).unwrap(),
                    columns.number(row, 0).unwrap()
                ),
                (a, Some(a))
            );
            let e = row.get::<_, Option<i64>>(4).unwrap();
            assert_eq!(columns.number(row, 4).unwrap(), e);
            assert_eq!(columns.int(row, 4).ok(), e, "NULL is not a number");
            assert!(columns.int(row, 1).is_err(), "a text is not a number");
            assert!(matches!(
                columns.get(row, 5),
                Err(rusqlite::Error::InvalidColumnIndex(5))
            ));
            read += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(read, 2);
    }

    /// A statement not stepped yet, or of another text, is not found; nor
    /// is one of two of the same text in use.
    #[test]
    fn only_a_statement_on_a_row_is_found() {
        let conn = Connection::open_in_memory().unwrap();
        let sql = "SELECT 1";
        let mut stmt = conn.prepare_cached(sql).unwrap();
        let mut rows = stmt.query([]).unwrap();
        assert!(Values::of_statement(&conn, sql).is_err());
        rows.next().unwrap().unwrap();
        assert!(Values::of_statement(&conn, sql).is_ok());
        assert!(Values::of_statement(&conn, "SELECT 2").is_err());
        let mut again = conn.prepare(sql).unwrap();
        let mut also = again.query([]).unwrap();
        also.next().unwrap().unwrap();
        assert!(Values::of_statement(&conn, sql).is_err());
    }
}
