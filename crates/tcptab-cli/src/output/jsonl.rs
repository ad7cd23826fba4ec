//! `--format jsonl`: one JSON object per line, written as it comes.

use std::io::{self, Write};

use tcptab::{Socket, SocketRecord};

use super::{Chunked, Sink};

pub struct JsonlSink<'a> {
    out: Chunked<Box<dyn Write + 'a>>,
}

impl<'a> JsonlSink<'a> {
    pub fn new(out: Box<dyn Write + 'a>) -> JsonlSink<'a> {
        JsonlSink {
            out: Chunked::new(out),
        }
    }
}

impl Sink for JsonlSink<'_> {
    fn socket(&mut self, socket: &Socket) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, &SocketRecord::from(socket))?;
        self.out.write_all(b"\n")
    }

    fn finish(mut self: Box<Self>) -> io::Result<()> {
        self.out.finish()
    }
}
