//! `--format json`: one array, one object per socket (see `SocketRecord`).

use std::io::{self, Write};

use tcptab::{Socket, SocketRecord};

use super::Sink;

pub struct JsonSink<'a> {
    out: Box<dyn Write + 'a>,
    records: Vec<SocketRecord>,
}

impl<'a> JsonSink<'a> {
    pub fn new(out: Box<dyn Write + 'a>) -> JsonSink<'a> {
        JsonSink {
            out,
            records: Vec::new(),
        }
    }
}

impl Sink for JsonSink<'_> {
    fn socket(&mut self, socket: &Socket) -> io::Result<()> {
        self.records.push(SocketRecord::from(socket));
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> io::Result<()> {
        let mut out = io::BufWriter::with_capacity(64 * 1024, &mut self.out);
        serde_json::to_writer_pretty(&mut out, &self.records)?;
        out.write_all(b"\n")?;
        out.flush()
    }
}
