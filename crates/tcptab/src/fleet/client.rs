//! ClickHouse's HTTP interface: one statement per request (what every
//! release accepts), inserts as gzip-compressed `JSONEachRow`, errors as
//! one line.

use std::io::Write;
use std::time::Duration;

use base64::Engine;

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

/// A table sent with a statement ([`Client::execute_with`]).
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
        self.post(&[], sql.as_bytes().to_vec(), false)
    }

    /// Run one statement that reads `table`, a temporary table sent with
    /// it ("external data": `structure` its columns, `rows` TSV lines),
    /// so that a set the client holds is read by the server once; its
    /// answer as text. The statement goes in the URL, the table in the
    /// body.
    pub fn execute_with(&self, sql: &str, table: &External<'_>) -> Result<String, Error> {
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
        self.send(
            &[
                ("query", sql),
                (&structure, table.structure),
                (&format, "TabSeparated"),
            ],
            body,
            &[("Content-Type", &content_type)],
        )
    }

    /// Insert `rows` (JSONEachRow lines) into `table`, gzip-compressed.
    pub fn insert(&self, table: &str, rows: &str) -> Result<(), Error> {
        let query = format!(
            "INSERT INTO {}.{table} FORMAT JSONEachRow",
            self.target.database
        );
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(rows.as_bytes())
            .and_then(|()| gz.flush())
            .map_err(|e| self.unreachable(e.to_string()))?;
        let body = gz.finish().map_err(|e| self.unreachable(e.to_string()))?;
        self.post(&[("query", &query)], body, true).map(drop)
    }

    fn post(&self, params: &[(&str, &str)], body: Vec<u8>, gzip: bool) -> Result<String, Error> {
        let headers: &[(&str, &str)] = match gzip {
            true => &[("Content-Encoding", "gzip")],
            false => &[],
        };
        self.send(params, body, headers)
    }

    fn send(
        &self,
        params: &[(&str, &str)],
        body: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> Result<String, Error> {
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
        let text = resp
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_string()
            .map_err(|e| self.unreachable(e.to_string()))?;
        if status != 200 {
            return Err(Error::Server {
                base: t.base.clone(),
                status,
                message: one_line(&text, status),
            });
        }
        Ok(text)
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
