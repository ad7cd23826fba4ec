//! Running a prepared statement with its values bound by their own types
//! ([`execute_typed!`]).

/// Runs a prepared statement (`&mut Statement`) with `values` bound one by
/// one, each by its own type (`raw_bind_parameter`), and returns from the
/// calling function with [`rusqlite::Error::InvalidParameterCount`] when
/// they are not all its parameters (one left out would keep the value of
/// the row before). rusqlite's `params!` binds each value through
/// `&dyn ToSql`, whose large `Result` is copied for every value: for the
/// insert of a connection's 36 values, that was 44% of the insert's time
/// by perf (`record_churn`).
macro_rules! execute_typed {
    ($stmt:expr, [$($value:expr),+ $(,)?]) => {{
        let stmt: &mut rusqlite::Statement<'_> = $stmt;
        let mut index = 0usize;
        $(
            index += 1;
            stmt.raw_bind_parameter(index, $value)?;
        )+
        let expected = stmt.parameter_count();
        if index != expected {
            return Err(rusqlite::Error::InvalidParameterCount(index, expected));
        }
        stmt.raw_execute()
    }};
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    fn insert(db: &Connection, sql: &str, a: i64, b: Option<&str>) -> rusqlite::Result<usize> {
        let mut stmt = db.prepare_cached(sql)?;
        execute_typed!(&mut stmt, [a, b])
    }

    #[test]
    fn values_are_bound_in_order_and_by_type() {
        let db = Connection::open_in_memory().unwrap();
        db.execute_batch("CREATE TABLE t (a INTEGER, b TEXT)")
            .unwrap();
        let sql = "INSERT INTO t (a, b) VALUES (?1, ?2)";
        assert_eq!(insert(&db, sql, 7, Some("x")).unwrap(), 1);
        assert_eq!(insert(&db, sql, 8, None).unwrap(), 1);
        let rows: Vec<(i64, Option<String>, String)> = db
            .prepare("SELECT a, b, typeof(a) FROM t ORDER BY a")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let integer = "integer".to_string();
        assert_eq!(
            rows,
            [(7, Some("x".into()), integer.clone()), (8, None, integer)]
        );
    }

    #[test]
    fn a_value_left_out_is_refused_not_taken_from_the_row_before() {
        let db = Connection::open_in_memory().unwrap();
        db.execute_batch("CREATE TABLE t (a INTEGER, b TEXT, c INTEGER)")
            .unwrap();
        let sql = "INSERT INTO t (a, b, c) VALUES (?1, ?2, ?3)";
        let err = insert(&db, sql, 1, Some("x")).unwrap_err();
        assert!(
            matches!(err, rusqlite::Error::InvalidParameterCount(2, 3)),
            "{err:?}"
        );
        let count: i64 = db
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(count, 0);
    }
}
