//! A real ClickHouse server for one test (Debian's `clickhouse-server`):
//! on free loopback ports, with its own data directory, a user `tcptab`
//! with a password, stopped (and restartable) by the test.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// The test user's password.
pub const PASSWORD: &str = "s3cret";

#[derive(Debug)]
pub struct ClickHouse {
    child: Option<Child>,
    pub dir: PathBuf,
    pub http_port: u16,
}

impl ClickHouse {
    /// Start a server in `dir` (made fresh) and wait until it answers.
    pub fn start(dir: &Path) -> ClickHouse {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).unwrap();
        let http_port = testkit::http::free_port();
        let tcp_port = testkit::http::free_port();
        let d = dir.display();
        std::fs::write(
            dir.join("config.xml"),
            format!(
                "<yandex>
  <logger><level>warning</level><log>{d}/server.log</log><errorlog>{d}/error.log</errorlog></logger>
  <listen_host>127.0.0.1</listen_host>
  <http_port>{http_port}</http_port>
  <tcp_port>{tcp_port}</tcp_port>
  <path>{d}/data/</path>
  <tmp_path>{d}/tmp/</tmp_path>
  <user_files_path>{d}/user_files/</user_files_path>
  <format_schema_path>{d}/format_schemas/</format_schema_path>
  <users_config>{d}/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>268435456</mark_cache_size>
  <max_concurrent_queries>50</max_concurrent_queries>
</yandex>
"
            ),
        )
        .unwrap();
        let user = |name: &str, password: &str| {
            format!("<{name}><password>{password}</password><networks><ip>::/0</ip></networks><profile>default</profile><quota>default</quota></{name}>")
        };
        std::fs::write(
            dir.join("users.xml"),
            format!(
                "<yandex><profiles><default></default></profiles><users>{}{}</users><quotas><default></default></quotas></yandex>\n",
                user("default", ""),
                user("tcptab", PASSWORD)
            ),
        )
        .unwrap();
        std::fs::write(dir.join("password"), format!("{PASSWORD}\n")).unwrap();
        let mut server = ClickHouse {
            child: None,
            dir: dir.to_path_buf(),
            http_port,
        };
        server.restart();
        server
    }

    /// Start the server again (after [`ClickHouse::stop`]).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "the server runs already");
        let child = testkit::tool("clickhouse-server")
            .arg(format!(
                "--config-file={}",
                self.dir.join("config.xml").display()
            ))
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting clickhouse-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        let addr = ([127, 0, 0, 1], self.http_port).into();
        loop {
            if testkit::http::get(addr, "/ping").is_ok_and(|r| r.body.starts_with("Ok.")) {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "clickhouse-server exited with {status}: {}",
                    std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "clickhouse-server did not answer in 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stop the server (SIGTERM) and wait for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = testkit::tool("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }

    /// Kill the server (SIGKILL: what it was doing is cut short) and wait
    /// for it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `http://127.0.0.1:PORT/?database=DB`.
    pub fn url(&self, database: &str) -> String {
        format!("http://127.0.0.1:{}/?database={database}", self.http_port)
    }

    /// The options that name the store as the test user.
    pub fn options(&self, database: &str) -> Vec<String> {
        self.options_via(database, self.http_port)
    }

    /// The same, through a proxy on `port`.
    pub fn options_via(&self, database: &str, port: u16) -> Vec<String> {
        vec![
            "--clickhouse".into(),
            format!("http://127.0.0.1:{port}/?database={database}"),
            "--clickhouse-user".into(),
            "tcptab".into(),
            "--clickhouse-password-file".into(),
            self.dir.join("password").display().to_string(),
        ]
    }

    /// Run one statement as the test user; its answer.
    pub fn query(&self, sql: &str) -> String {
        let mut target = tcptab::fleet::Target::parse(&self.url("default")).unwrap();
        target.user = Some("tcptab".into());
        target.password = Some(PASSWORD.into());
        tcptab::fleet::Client::new(target, Duration::from_secs(60))
            .execute(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }
}

impl Drop for ClickHouse {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
