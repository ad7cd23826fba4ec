//! `--format json`: one array, written as it goes (one record per line),
//! and the JSON writer of the socket record that JSON Lines shares.

use std::io::{self, Write};

use tcptab::record::{FieldDef, Fields, Record, Value, Visit};

use super::{Chunked, Columns, RecordSink};

/// Writes one record as a JSON object into a byte buffer.
pub struct JsonRecord<'b> {
    out: &'b mut Vec<u8>,
    /// Whether the object (or group) being written has a member yet.
    first: bool,
    /// Inside a group that is absent: its members are not written.
    skipping: bool,
}

impl<'b> JsonRecord<'b> {
    /// Write `record` as one JSON object (no newline).
    pub fn write(out: &'b mut Vec<u8>, record: &Record<'_>) {
        out.push(b'{');
        let mut w = JsonRecord {
            out,
            first: true,
            skipping: false,
        };
        record.visit(&mut w);
        w.out.push(b'}');
    }

    /// A member's key: the record's field names are plain (letters, digits,
    /// `_`, `.`), so they need no escaping.
    fn key(&mut self, name: &str) {
        debug_assert!(!name.bytes().any(needs_escape), "{name}");
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.push(b'"');
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(b"\":");
    }
}

impl Visit for JsonRecord<'_> {
    fn field(&mut self, def: &'static FieldDef, value: Value<'_>) {
        if self.skipping {
            return;
        }
        self.key(def.name);
        value_into(self.out, value);
    }

    fn group(&mut self, def: &'static FieldDef, present: bool) {
        self.key(def.name);
        if present {
            self.out.push(b'{');
            self.first = true;
        } else {
            self.out.extend_from_slice(b"null");
            self.skipping = true;
        }
    }

    fn end_group(&mut self) {
        if self.skipping {
            self.skipping = false;
        } else {
            self.out.push(b'}');
        }
        self.first = false;
    }
}

/// A value as JSON.
pub fn value_into(out: &mut Vec<u8>, value: Value<'_>) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::U64(n) => out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes()),
        Value::I64(n) => out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes()),
        Value::Str(s) => string(out, s),
        Value::Ip(ip) => {
            out.push(b'"');
            let _ = write!(out, "{ip}");
            out.push(b'"');
        }
        Value::Owners(owners) => {
            out.push(b'[');
            for (i, o) in owners.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(b"{\"pid\":");
                out.extend_from_slice(itoa::Buffer::new().format(o.pid).as_bytes());
                out.extend_from_slice(b",\"command\":");
                string(out, &o.command);
                out.extend_from_slice(b",\"fd\":");
                out.extend_from_slice(itoa::Buffer::new().format(o.fd).as_bytes());
                out.push(b'}');
            }
            out.push(b']');
        }
    }
}

/// Whether a byte must be escaped in a JSON string.
fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// A JSON string, escaped.
pub fn string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    // Most strings (states, names, addresses) have nothing to escape.
    if !bytes.iter().any(|&b| needs_escape(b)) {
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1F => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

pub struct JsonSink<'a> {
    out: Chunked<Box<dyn Write + 'a>>,
    fields: Fields,
    rows: u64,
    line: Vec<u8>,
}

impl<'a> JsonSink<'a> {
    pub fn new(out: Box<dyn Write + 'a>, columns: Columns) -> JsonSink<'a> {
        JsonSink {
            out: Chunked::new(out),
            fields: columns.fields(),
            rows: 0,
            line: Vec::with_capacity(4096),
        }
    }
}

impl RecordSink for JsonSink<'_> {
    fn fields(&self) -> Fields {
        self.fields
    }

    fn end(mut self: Box<Self>) -> io::Result<()> {
        self.out
            .write_all(if self.rows == 0 { b"[]\n" } else { b"\n]\n" })?;
        self.out.finish()
    }

    fn record(&mut self, record: Record<'_>) -> io::Result<()> {
        self.line.clear();
        self.line
            .extend_from_slice(if self.rows == 0 { b"[\n" } else { b",\n" });
        JsonRecord::write(&mut self.line, &record);
        self.rows += 1;
        self.out.write_all(&self.line)?;
        self.out.end_record()
    }
}

/// This machine (read once per run): what every JSON document says it is
/// about, so that a fleet's files and streams merge by it.
pub fn host() -> &'static tcptab::Host {
    static HOST: std::sync::OnceLock<tcptab::Host> = std::sync::OnceLock::new();
    HOST.get_or_init(tcptab::Host::read)
}

/// `,"host":{...}`: the member a JSON line carries after its first.
pub fn host_member(out: &mut Vec<u8>) {
    out.extend_from_slice(b",\"host\":");
    serde_json::to_writer(&mut *out, host()).expect("a host serialises");
}

#[cfg(test)]
mod tests {
    use super::string;

    /// What a process may name itself (comm is any 15 bytes but NUL):
    /// escaped so that serde_json reads back the same text.
    #[test]
    fn strings_read_back_as_written() {
        for s in [
            "nginx",
            "",
            "say \"hi\"",
            "back\\slash",
            "tab\there",
            "line\nfeed",
            "\u{1}\u{1f}bell\u{7}",
            "ünïcödé ✓",
        ] {
            let mut out = Vec::new();
            string(&mut out, s);
            let back: String = serde_json::from_slice(&out).unwrap();
            assert_eq!(back, s, "{}", String::from_utf8_lossy(&out));
        }
    }
}
