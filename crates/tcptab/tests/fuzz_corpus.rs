//! Replays the fuzz corpus (`fuzz/corpus/parse_table`, seeds and anything
//! the fuzzer found and was committed) through the fuzz target's checks, so
//! CI runs them without cargo-fuzz.

#[test]
fn fuzz_corpus_replays_cleanly() {
    let dir = testkit::repo_root().join("fuzz/corpus/parse_table");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        tcptab::fuzzing::check_table(&data);
        count += 1;
    }
    assert!(
        count >= 10,
        "the corpus in {} has {count} inputs",
        dir.display()
    );
}
