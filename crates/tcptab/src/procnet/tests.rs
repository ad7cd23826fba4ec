use super::*;

const V4: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0\n   1: 0100007F:0017 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 100 0 0 10 0";

#[test]
fn reads_across_tiny_reads_and_without_final_newline() {
    struct Trickle<'a>(&'a [u8]);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.0.len().min(buf.len()).min(7);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }
    let reader = TableReader::new(Trickle(V4.as_bytes()), "t", ReadOptions::default());
    let inodes: Vec<u64> = reader.map(|s| s.unwrap().inode).collect();
    assert_eq!(inodes, [1, 2]);
}

#[test]
fn strict_stops_lenient_counts() {
    let bad = V4.replace(
        "0A 00000000:00000000 00:00000000 00000000     0        0 1",
        "0A 00000000:00000000 00:00000000 00000000     0        0 x",
    );
    let mut strict = TableReader::new(bad.as_bytes(), "/x/net/tcp", ReadOptions::default());
    let e = strict.next().unwrap().unwrap_err();
    assert_eq!(
        e.to_string(),
        "/x/net/tcp:2: field 'inode': not a decimal number: \"x\""
    );
    assert!(strict.next().is_none());

    let options = ReadOptions {
        lenient: true,
        ..Default::default()
    };
    let mut lenient = TableReader::new(bad.as_bytes(), "/x/net/tcp", options);
    let inodes: Vec<u64> = lenient.by_ref().map(|s| s.unwrap().inode).collect();
    assert_eq!(inodes, [2]);
    assert_eq!(lenient.lines().skipped(), 1);
    assert!(lenient.lines().first_error().is_some());
}

/// The slice reader returns what the buffered reader returns: the
/// sockets, the strict error, the lenient counts, with or without a
/// final line feed.
#[test]
fn slice_reader_reads_as_the_table_reader() {
    let bad = V4.replace(" 1 1 0000000000000000", " x 1 0000000000000000");
    for text in [
        V4.to_string(),
        format!("{V4}\n"),
        bad.clone(),
        format!("{bad}\n\n"),
    ] {
        for lenient in [false, true] {
            let options = ReadOptions {
                lenient,
                ..Default::default()
            };
            let table = TableReader::new(text.as_bytes(), "t", options);
            let slice = SliceReader::new(text.as_bytes(), "t", options);
            let render = |r: Result<Socket>| format!("{r:?}");
            let expected: Vec<String> = table.map(render).collect();
            let mut reader = slice;
            let got: Vec<String> = reader.by_ref().map(render).collect();
            assert_eq!(got, expected, "{text:?} lenient {lenient}");
            assert!(!expected.is_empty());
        }
    }
    let capture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/6.18.44-sockets/net/"
    );
    for table in ["tcp", "tcp6"] {
        let bytes = std::fs::read(format!("{capture}{table}")).unwrap();
        let expected: Vec<Socket> = TableReader::new(&bytes[..], "t", ReadOptions::default())
            .map(Result::unwrap)
            .collect();
        let got: Vec<Socket> = SliceReader::new(&bytes, "t", ReadOptions::default())
            .map(Result::unwrap)
            .collect();
        assert_eq!(got, expected);
        assert_eq!(
            got.len(),
            bytes
                .split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .count()
                - 1
        );
    }
}

#[test]
fn empty_line_is_an_error() {
    let text = format!("{V4}\n\n");
    let mut r = TableReader::new(text.as_bytes(), "t", ReadOptions::default());
    assert!(r.next().unwrap().is_ok());
    assert!(r.next().unwrap().is_ok());
    let e = r.next().unwrap().unwrap_err();
    assert!(
        matches!(
            e,
            Error::Parse {
                line: 4,
                kind: ParseErrorKind::EmptyLine,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn over_long_line_is_an_error_not_a_hang() {
    let text = vec![b'1'; MAX_LINE + 10];
    let mut r = TableReader::new(&text[..], "t", ReadOptions::default());
    let e = r.next().unwrap().unwrap_err();
    assert!(
        matches!(
            e,
            Error::Parse {
                kind: ParseErrorKind::LineTooLong,
                ..
            }
        ),
        "{e}"
    );
    assert!(r.next().is_none());
}

#[test]
fn root_rules() {
    let dir = std::env::temp_dir().join(format!("tcptab-root-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("net")).unwrap();
    std::fs::write(dir.join("net/tcp"), V4).unwrap();
    let table = ProcRoot::new(&dir).read(ReadOptions::default()).unwrap();
    assert_eq!(table.sockets.len(), 2);
    assert!(table.ipv6_missing, "a missing tcp6 is not an error");
    std::fs::remove_file(dir.join("net/tcp")).unwrap();
    let e = ProcRoot::new(&dir)
        .read(ReadOptions::default())
        .unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "a missing tcp is: {e}");
    let e = ProcRoot::new(dir.join("nope"))
        .read(ReadOptions::default())
        .unwrap_err();
    assert!(matches!(e, Error::RootNotFound { .. }), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}
