//! The checks the fuzz targets run (`fuzz/fuzz_targets/`), here in test
//! support so the corpora are also replayed by ordinary tests
//! (`crates/tcptab/tests/fuzz_corpus.rs`) without cargo-fuzz. They reach
//! the library's internals through its `internals` feature.

use tcptab::procnet::{
    header_extra, is_header, parse_line, reference, render_line, ByteOrder, ReadOptions,
    SliceReader, TableReader,
};
use tcptab::{Error, Socket};

/// What a reader returns, with errors reduced to their line numbers.
fn outcomes(results: impl Iterator<Item = Result<Socket, Error>>) -> Vec<Result<Socket, u64>> {
    results
        .map(|r| {
            r.map_err(|e| match e {
                Error::Parse { line, .. } => line,
                other => panic!("not a parse error: {other}"),
            })
        })
        .collect()
}

/// What a reader must return for `data` (not empty): each line on its own
/// through `parse_line`, headers skipped, bad lines an error (strict: the
/// last item) or skipped (lenient, until more than the limit come in a row:
/// then an error).
fn line_by_line(data: &[u8], lenient: bool) -> Vec<Result<Socket, u64>> {
    let limit = ReadOptions::default().max_bad_lines;
    let data = data.strip_suffix(b"\n").unwrap_or(data);
    let mut out = Vec::new();
    let mut in_a_row = 0;
    for (i, line) in data.split(|&b| b == b'\n').enumerate() {
        match parse_line(line, ByteOrder::native()) {
            Ok(socket) => {
                in_a_row = 0;
                out.push(Ok(socket));
            }
            Err(_) if is_header(line) && header_extra(line).is_none() => in_a_row = 0,
            Err(_) if lenient && in_a_row < limit => in_a_row += 1,
            Err(_) => {
                out.push(Err(i as u64 + 1));
                break;
            }
        }
    }
    out
}

/// Feed `data` to the table readers (strict and lenient) and to the line
/// parser. Panics if anything panics, if a reader returns other sockets or
/// errors than parsing the lines one by one does, if a parsed line does not
/// render back to a line that parses to the same socket, or if the fast
/// parser and the reference parser disagree.
pub fn check_table(data: &[u8]) {
    for lenient in [false, true] {
        let options = ReadOptions {
            lenient,
            ..ReadOptions::default()
        };
        let expected = if data.is_empty() {
            Vec::new()
        } else {
            line_by_line(data, lenient)
        };
        let table = outcomes(TableReader::new(data, "fuzz", options));
        let slice = outcomes(SliceReader::new(data, "fuzz", options));
        assert_eq!(
            table, expected,
            "TableReader and the lines one by one differ"
        );
        assert_eq!(
            slice, expected,
            "SliceReader and the lines one by one differ"
        );
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
    use tcptab::diag::response::parse_message;
    use tcptab::diag::wire::{messages, View};
    for message in messages(View::new(data)).flatten() {
        let _ = parse_message(message.payload, 0);
    }
    let _ = parse_message(View::new(data), 0);
    struct Once<'a>(Option<&'a [u8]>);
    impl tcptab::diag::Transport for Once<'_> {
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
    let _ = tcptab::diag::dump(
        &mut Once(Some(data)),
        &[tcptab::Family::Ipv4],
        tcptab::diag::Extensions::default(),
        tcptab::StateSet::ALL,
    );
}

/// Feed `data` to the filter language and to the address and port parsers
/// (as text, lossily): never a panic or a stack overflow; what parses
/// evaluates on a socket.
pub fn check_filter(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(expr) = tcptab::filter::Expr::parse(&text) {
        let socket = tcptab::Socket::empty(tcptab::Family::Ipv6, tcptab::RowKind::Full);
        let _ = expr.matches(&socket, None, None);
        let _ = expr.states();
        let _ = expr.to_string();
        // Whatever compiles, the kernel's audit accepts.
        if let Some(program) = tcptab::diag::bytecode::compile(&expr) {
            if let Err(e) = tcptab::diag::bytecode::kernel::audit(&program.bytes) {
                panic!("{text:?} compiles to a program the kernel refuses: {e}");
            }
        }
        let _ = expr.needs_owners();
    }
    for word in text.split_whitespace().take(64) {
        let _ = word.parse::<tcptab::filter::Cidr>();
        let _ = word.parse::<tcptab::filter::PortRange>();
    }
}
