//! A `tcptab serve` started for a test, and the samples of what it serves.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use testkit::http::get;

/// A running `tcptab serve`, stopped when dropped.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
}

impl Server {
    pub fn start(args: &[&str]) -> Server {
        Server::start_with(Command::new(env!("CARGO_BIN_EXE_tcptab")), args)
    }

    pub fn start_with(mut command: Command, args: &[&str]) -> Server {
        let mut child = command
            .arg("serve")
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting tcptab serve");
        let mut line = String::new();
        BufReader::new(child.stderr.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .parse()
            .unwrap();
        Server { child, addr }
    }

    pub fn metrics(&self) -> String {
        let reply = get(self.addr, "/metrics").unwrap();
        assert_eq!(reply.status, 200);
        reply.body
    }

    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of the first sample `name{labels...}` (a prefix match).
pub fn sample(metrics: &str, prefix: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// `promtool check metrics` accepts `body` (it fails the test otherwise,
/// with promtool's words and the body).
pub fn promtool_accepts(body: &str) {
    use std::io::Write;
    let mut promtool = testkit::tool("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package; .ci/run installs it)");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}{}\n{body}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A real Prometheus scraping one target every second, on a free port
/// with its own data directory; stopped and removed when dropped.
pub struct Prometheus {
    child: Child,
    dir: std::path::PathBuf,
    api: SocketAddr,
}

impl Prometheus {
    pub fn scraping(target: SocketAddr, name: &str) -> Prometheus {
        let dir =
            std::env::temp_dir().join(format!("tcptab-prometheus-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: tcptab\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let port = testkit::http::free_port();
        let child = testkit::tool("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus (Debian's prometheus package; .ci/run installs it)");
        let api = format!("127.0.0.1:{port}").parse().unwrap();
        Prometheus { child, dir, api }
    }

    /// The result rows of the instant query `expr` (empty until there are
    /// some, or while Prometheus is starting).
    pub fn query(&self, expr: &str) -> Vec<serde_json::Value> {
        let mut path = String::from("/api/v1/query?query=");
        for b in expr.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                    path.push(b as char)
                }
                _ => path.push_str(&format!("%{b:02X}")),
            }
        }
        get(self.api, &path)
            .ok()
            .and_then(|r| serde_json::from_str::<serde_json::Value>(&r.body).ok())
            .and_then(|v| v["data"]["result"].as_array().cloned())
            .unwrap_or_default()
    }

    /// The rows of `expr` once it has some (within a minute).
    pub fn query_until(
        &self,
        expr: &str,
        done: impl Fn(&[serde_json::Value]) -> bool,
    ) -> Vec<serde_json::Value> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let rows = self.query(expr);
            if !rows.is_empty() && done(&rows) {
                return rows;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "Prometheus never answered {expr} as expected: {rows:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A row's value.
pub fn value(row: &serde_json::Value) -> f64 {
    row["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}
