//! The checks the fuzz targets run, kept in the library so the corpus can
//! be replayed by an ordinary test (`tests/fuzz_corpus.rs`) without
//! cargo-fuzz. Not part of the stable API.

use crate::procnet::{parse_line, reference, render_line, ByteOrder, ReadOptions, TableReader};

/// Feed `data` to the table reader (strict and lenient) and to the line
/// parser. Panics if anything panics, if a parsed line does not render back
/// to a line that parses to the same socket, or if the fast parser and the
/// reference parser disagree.
pub fn check_table(data: &[u8]) {
    for lenient in [false, true] {
        let options = ReadOptions {
            lenient,
            ..ReadOptions::default()
        };
        for socket in TableReader::new(data, "fuzz", options).flatten() {
            let mut line = Vec::new();
            render_line(&socket, ByteOrder::native(), &mut line);
            line.pop();
            let again = parse_line(&line, ByteOrder::native())
                .unwrap_or_else(|e| panic!("rendered line does not parse: {e}: {line:?}"));
            assert_eq!(again, socket, "render then parse changed the socket");
        }
    }
    for line in data.split(|&b| b == b'\n') {
        let fast = parse_line(line, ByteOrder::Little);
        let slow = std::str::from_utf8(line)
            .map_err(|_| String::new())
            .and_then(|text| reference::parse_line(text, ByteOrder::Little));
        match (&fast, &slow) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "fast and reference parsers differ"),
            (Err(_), Err(_)) => {}
            _ => panic!("fast {fast:?} vs reference {slow:?}"),
        }
    }
}

/// Feed `data` to the netlink parsers as one datagram: every message and
/// attribute walk and `inet_diag_msg` decode must end in a value or an
/// error, never a panic; and through `dump` with a replayed transport.
pub fn check_diag(data: &[u8]) {
    use crate::diag::response::parse_message;
    use crate::diag::wire::{messages, View};
    for message in messages(View::new(data)).flatten() {
        let _ = parse_message(message.payload, 0);
    }
    let _ = parse_message(View::new(data), 0);
    struct Once<'a>(Option<&'a [u8]>);
    impl crate::diag::Transport for Once<'_> {
        fn send(&mut self, _: &[u8]) -> std::io::Result<()> {
            Ok(())
        }
        fn recv(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let Some(d) = self.0.take() else { return Ok(0) };
            let n = d.len().min(buf.len());
            buf[..n].copy_from_slice(&d[..n]);
            Ok(d.len())
        }
    }
    let _ = crate::diag::dump(
        &mut Once(Some(data)),
        &[crate::Family::Ipv4],
        crate::diag::Extensions::default(),
        crate::StateSet::ALL,
    );
}
