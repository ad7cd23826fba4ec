//! Replays the fuzz corpora (`fuzz/corpus/parse_table`,
//! `fuzz/corpus/parse_diag` and `fuzz/corpus/parse_filter`: seeds and
//! anything the fuzzer found and was committed, crash inputs included) through the fuzz targets' checks, so
//! CI runs them without cargo-fuzz. Test builds have overflow checks on, as
//! the fuzz builds do.

fn replay(target: &str, check: fn(&[u8]), at_least: usize) {
    let dir = testkit::repo_root().join("fuzz/corpus").join(target);
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        check(&data);
        count += 1;
    }
    assert!(
        count >= at_least,
        "the corpus in {} has {count} inputs",
        dir.display()
    );
}

#[test]
fn parse_table_corpus_replays_cleanly() {
    replay("parse_table", testkit::fuzz::check_table, 10);
}

#[test]
fn parse_diag_corpus_replays_cleanly() {
    replay("parse_diag", testkit::fuzz::check_diag, 100);
}

#[test]
fn parse_filter_corpus_replays_cleanly() {
    replay("parse_filter", testkit::fuzz::check_filter, 8);
}
