//! ClickHouse's HTTP interface: one statement per request (what every
//! release accepts), inserts as `RowBinary` in ClickHouse's compressed
//! blocks, errors as one line.

use std::io::{BufRead, BufReader};
use std::ops::ControlFlow;
use std::time::Duration;

use base64::Engine;

use crate::history::table_columns;

/// Where a fleet's store is: `http(s)://HOST:PORT/?database=NAME`, and who
/// to be there.
#[derive(Clone, PartialEq, Eq)]
pub struct Target {
    /// `scheme://host:port`, no path.
    pub base: String,
    pub database: String,
    pub user: Option<String>,
    /// Never shown (not in `Debug`, not in errors).
    pub password: Option<String>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("base", &self.base)
            .field("database", &self.database)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "(set)"))
            .finish()
    }
}

/// What went wrong talking to the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("--clickhouse: '{url}' {why}")]
    Url { url: String, why: String },
    #[error("ClickHouse at {base}: {why}")]
    Unreachable { base: String, why: String },
    #[error("ClickHouse at {base}: {message}")]
    Server {
        base: String,
        status: u16,
        message: String,
    },
    #[error("ClickHouse at {base}: {what}")]
    Answer { base: String, what: String },
}

impl Target {
    /// `http://HOST:PORT/?database=NAME` (https too; the database is
    /// `default` when not given). Credentials are not read from the URL:
    /// a URL is often shown, a password must not be.
    pub fn parse(url: &str) -> Result<Target, Error> {
        let bad = |why: &str| Error::Url {
            url: url.to_string(),
            why: why.to_string(),
        };
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad("is not a URL such as http://HOST:8123/?database=NAME"))?;
        if scheme != "http" && scheme != "https" {
            return Err(bad("is not http:// or https://"));
        }
        let (authority, tail) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.is_empty() {
            return Err(bad("has no host"));
        }
        if authority.contains('@') {
            return Err(bad("carries credentials: give --clickhouse-user and a password file or TCPTAB_CLICKHOUSE_PASSWORD instead"));
        }
        let (path, query) = tail.split_once('?').unwrap_or((tail, ""));
        if !path.is_empty() && path != "/" {
            return Err(bad("has a path: only ?database=NAME may follow the host"));
        }
        let mut database = "default".to_string();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("database", name)) if valid_name(name) => database = name.to_string(),
                Some(("database", _)) => {
                    return Err(bad("names a database that is not [A-Za-z0-9_]+"))
                }
                _ => return Err(bad("has a parameter other than database=NAME")),
            }
        }
        Ok(Target {
            base: format!("{scheme}://{authority}"),
            database,
            user: None,
            password: None,
        })
    }
}

/// A database or table name tcptab puts in SQL unquoted.
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// A table sent with a statement ([`Client::for_each_line`]).
#[derive(Debug, Clone, Copy)]
pub struct External<'a> {
    /// Its name in the statement ([A-Za-z0-9_]+).
    pub name: &'a str,
    /// Its columns, as `name Type, ...`.
    pub structure: &'a str,
    /// Its rows as TabSeparated lines.
    pub rows: &'a str,
}

/// A connection to the store's HTTP interface.
#[derive(Debug, Clone)]
pub struct Client {
    agent: ureq::Agent,
    target: Target,
}

impl Client {
    /// A client whose every request gives up after `timeout`.
    pub fn new(target: Target, timeout: Duration) -> Client {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .build()
            .into();
        Client { agent, target }
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Run one statement; its answer as text.
    pub fn execute(&self, sql: &str) -> Result<String, Error> {
        self.post(&[], sql.as_bytes().to_vec())
    }

    /// Run one statement and hand each line of its answer to `each` as it
    /// comes, without holding the answer; `each` stops the reading by
    /// returning `Break`. With `table`, the statement reads it as a
    /// temporary table sent along ("external data": `structure` its
    /// columns, `rows` TSV lines), so that a set the client holds is read
    /// by the server once: the statement then goes in the URL, the table
    /// in the body. An error the server writes after its answer began (a
    /// line `Code: N, ...`) is returned as its error.
    pub fn for_each_line(
        &self,
        sql: &str,
        table: Option<&External<'_>>,
        each: &mut dyn FnMut(&str) -> ControlFlow<()>,
    ) -> Result<(), Error> {
        let resp = match table {
            None => self.open(&[], sql.as_bytes().to_vec(), &[])?,
            Some(table) => {
                let boundary = "tcptab-external-data-7f3a9c";
                let mut body = Vec::with_capacity(table.rows.len() + 256);
                body.extend_from_slice(
                    format!(
                        "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n",
                        name = table.name
                    )
                    .as_bytes(),
                );
                body.extend_from_slice(table.rows.as_bytes());
                body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
                let structure = format!("{}_structure", table.name);
                let format = format!("{}_format", table.name);
                let content_type = format!("multipart/form-data; boundary={boundary}");
                let params = [
                    ("query", sql),
                    (structure.as_str(), table.structure),
                    (format.as_str(), "TabSeparated"),
                ];
                self.open(&params, body, &[("Content-Type", &content_type)])?
            }
        };
        let mut reader = BufReader::new(resp.into_body().into_reader());
        let mut line = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(self.unreachable(e.to_string())),
            }
            let text = line.trim_end_matches(['\n', '\r']);
            if text.starts_with("Code: ") {
                return Err(Error::Server {
                    base: self.target.base.clone(),
                    status: 200,
                    message: one_line(text, 200),
                });
            }
            if each(text).is_break() {
                return Ok(());
            }
        }
    }

    /// Insert `rows` into `table`, in ClickHouse's `RowBinary` (each row's
    /// values in the order of [`table_columns`]), in ClickHouse's
    /// compressed blocks ([`compress`](super::compress)).
    pub fn insert(&self, table: &str, rows: &[u8]) -> Result<(), Error> {
        let columns: Vec<&str> = table_columns(table)
            .unwrap_or_default()
            .iter()
            .map(|c| c.0)
            .collect();
        let query = format!(
            "INSERT INTO {}.{table} ({}) FORMAT RowBinary",
            self.target.database,
            columns.join(", ")
        );
        let body = super::compress(rows);
        let params = [("query", query.as_str()), ("decompress", "1")];
        self.post(&params, body).map(drop)
    }

    fn post(&self, params: &[(&str, &str)], body: Vec<u8>) -> Result<String, Error> {
        let mut resp = self.open(params, body, &[])?;
        resp.body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_string()
            .map_err(|e| self.unreachable(e.to_string()))
    }

    /// Send one request; the answer, whose body is still to be read, if
    /// the server took it (else its error, read whole).
    fn open(
        &self,
        params: &[(&str, &str)],
        body: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> Result<ureq::http::Response<ureq::Body>, Error> {
        let t = &self.target;
        // Every statement names its database (`db.table`): the one of
        // the URL may not exist yet when its tables are made.
        let mut req = self.agent.post(format!("{}/", t.base));
        for (k, v) in params {
            req = req.query(*k, *v);
        }
        if t.user.is_some() || t.password.is_some() {
            let pair = format!(
                "{}:{}",
                t.user.as_deref().unwrap_or("default"),
                t.password.as_deref().unwrap_or("")
            );
            let token = base64::engine::general_purpose::STANDARD.encode(pair);
            req = req.header("Authorization", format!("Basic {token}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let mut resp = req
            .send(body)
            .map_err(|e| self.unreachable(e.to_string()))?;
        let status = resp.status().as_u16();
        if status != 200 {
            let text = resp
                .body_mut()
                .with_config()
                .limit(1 << 20)
                .read_to_string()
                .unwrap_or_default();
            return Err(Error::Server {
                base: t.base.clone(),
                status,
                message: one_line(&text, status),
            });
        }
        Ok(resp)
    }

    fn unreachable(&self, why: String) -> Error {
        Error::Unreachable {
            base: self.target.base.clone(),
            why,
        }
    }

    /// The server's version, as (major, minor).
    pub fn version(&self) -> Result<(u32, u32), Error> {
        let text = self.execute("SELECT version()")?;
        let mut parts = text.trim().split('.').map(|p| p.parse::<u32>().ok());
        match (parts.next().flatten(), parts.next().flatten()) {
            (Some(a), Some(b)) => Ok((a, b)),
            _ => Err(Error::Answer {
                base: self.target.base.clone(),
                what: format!("version() answered '{}'", text.trim()),
            }),
        }
    }
}

/// ClickHouse's error text as one line: its first line, without the
/// stack trace and the exception's class repeated.
fn one_line(text: &str, status: u16) -> String {
    let first = text.lines().map(str::trim).find(|l| !l.is_empty());
    let Some(line) = first else {
        return format!("HTTP status {status}");
    };
    let line = line.split(", e.what()").next().unwrap_or(line);
    let line = line.replace("e.displayText() = ", "");
    let mut out: String = line.chars().take(300).collect();
    if out.len() < line.len() {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_names_the_host_and_the_database() {
        let t = Target::parse("http://ch.example:8123/?database=fleet").unwrap();
        assert_eq!(t.base, "http://ch.example:8123");
        assert_eq!(t.database, "fleet");
        let t = Target::parse("https://ch.example:8443").unwrap();
        assert_eq!(
            (t.base.as_str(), t.database.as_str()),
            ("https://ch.example:8443", "default")
        );
    }

    #[test]
    fn a_bad_url_is_refused_with_why() {
        for (url, why) in [
            ("ch.example:8123", "is not a URL"),
            ("ftp://ch/", "not http"),
            ("http://u:p@ch:8123/", "carries credentials"),
            ("http://ch:8123/x", "has a path"),
            ("http://ch:8123/?database=a;drop", "not [A-Za-z0-9_]+"),
            ("http://ch:8123/?user=a", "other than database"),
        ] {
            let e = Target::parse(url).unwrap_err().to_string();
            assert!(e.contains(why), "{url}: {e}");
        }
    }

    /// A server on loopback that answers one request with `reply` (the
    /// status line and headers included), after reading the request.
    fn answering(reply: &'static str) -> Target {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            // The head, then the body its Content-Length says.
            while let Ok(n) = stream.read(&mut buf) {
                request.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&request);
                if let Some(end) = text.find("\r\n\r\n") {
                    let length = text[..end]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length: ")
                                .map(str::to_string)
                        })
                        .and_then(|v| v.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    if request.len() >= end + 4 + length {
                        break;
                    }
                }
                if n == 0 {
                    break;
                }
            }
            let _ = stream.write_all(reply.as_bytes());
        });
        Target::parse(&format!("http://{addr}/?database=fleet")).unwrap()
    }

    #[test]
    fn lines_come_one_by_one_and_an_error_after_them_is_the_server_s() {
        let target = answering(
            "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{\"a\":1}\n{\"a\":2}\nCode: 241, e.displayText() = DB::Exception: Memory limit (total) exceeded, e.what() = DB::Exception\n",
        );
        let client = Client::new(target, Duration::from_secs(10));
        let mut lines = Vec::new();
        let e = client
            .for_each_line("SELECT 1", None, &mut |l| {
                lines.push(l.to_string());
                ControlFlow::Continue(())
            })
            .unwrap_err();
        assert_eq!(lines, ["{\"a\":1}", "{\"a\":2}"]);
        assert!(
            e.to_string()
                .ends_with("Code: 241, DB::Exception: Memory limit (total) exceeded"),
            "{e}"
        );
        // Stopped by the reader: the rest is not read.
        let target = answering("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n1\n2\n3\n");
        let client = Client::new(target, Duration::from_secs(10));
        let mut n = 0;
        client
            .for_each_line("SELECT 1", None, &mut |_| {
                n += 1;
                ControlFlow::Break(())
            })
            .unwrap();
        assert_eq!(n, 1);
        // A refusal before the answer: the server's one line.
        let target = answering("HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\nContent-Length: 52\r\n\r\nCode: 60, e.displayText() = DB::Exception: no table\n");
        let client = Client::new(target, Duration::from_secs(10));
        let e = client
            .for_each_line("SELECT 1", None, &mut |_| ControlFlow::Continue(()))
            .unwrap_err();
        assert!(
            e.to_string().ends_with("Code: 60, DB::Exception: no table"),
            "{e}"
        );
    }

    #[test]
    fn a_server_error_is_one_line() {
        let old = "Code: 192, e.displayText() = DB::Exception: Unknown user tcptab, e.what() = DB::Exception\n";
        assert_eq!(
            one_line(old, 500),
            "Code: 192, DB::Exception: Unknown user tcptab"
        );
        assert_eq!(one_line("", 404), "HTTP status 404");
        assert!(format!(
            "{:?}",
            Target {
                password: Some("s3cret".into()),
                ..Target::parse("http://h:1").unwrap()
            }
        )
        .contains("(set)"));
    }
}
