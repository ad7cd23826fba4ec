//! Test support: run `testdata/scenario/sockets.py` in a fresh network
//! namespace and hand its manifest to the test.
//!
//! Tests that need root call [`require_root`]: without root they say so on
//! stderr and skip, except under `CI=true`, where they fail.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

use serde::Deserialize;

pub mod diag;
pub mod fuzz;
pub mod generate;
pub mod http;

/// The Debian package that brings each program the tests run (what
/// `scripts/test` installs).
/// Every command of the `tcptab` binary, in the order of its `--help`: the
/// tests that walk all of them (documents, manual pages) share this list.
pub const COMMANDS: [&str; 13] = [
    "list",
    "summary",
    "explain",
    "watch",
    "top",
    "record",
    "history",
    "serve",
    "kill",
    "audit",
    "schema",
    "completions",
    "man",
];

pub const PACKAGES: &[(&str, &str)] = &[
    ("ss", "iproute2"),
    ("ip", "iproute2"),
    ("nstat", "iproute2"),
    ("nsenter", "util-linux"),
    ("unshare", "util-linux"),
    ("setpriv", "util-linux"),
    ("mount", "mount"),
    ("umount", "mount"),
    ("pgrep", "procps"),
    ("kill", "procps"),
    ("python3", "python3"),
    ("tmux", "tmux"),
    ("sqlite3", "sqlite3"),
    ("prometheus", "prometheus"),
    ("promtool", "prometheus"),
    ("groff", "groff-base"),
    ("clickhouse-server", "clickhouse-server"),
];

/// A command for `program`, which the test needs: when it is not on the
/// PATH, the test fails saying which Debian package brings it (and that
/// `scripts/test` installs it), not with a bare "No such file".
pub fn tool(program: &str) -> Command {
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()));
    if !found {
        let package = PACKAGES
            .iter()
            .find(|(p, _)| *p == program)
            .map_or("?", |(_, package)| package);
        panic!(
            "{program} is not installed: the tests need it; Debian's package {package} brings it (`bash scripts/test` installs what is missing)"
        );
    }
    Command::new(program)
}

/// The `nobody` user's flags for setpriv.
const NOBODY: [&str; 3] = ["--reuid=65534", "--regid=65534", "--clear-groups"];

/// `program` to be run as the `nobody` user (setpriv).
pub fn as_nobody(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut command = tool("setpriv");
    command.args(NOBODY).arg("--").arg(program);
    command
}

/// [`as_nobody`] inside the network namespace of process `pid`.
pub fn as_nobody_in(pid: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut command = tool("nsenter");
    command
        .args(["-t", pid, "-n", "setpriv"])
        .args(NOBODY)
        .arg("--")
        .arg(program);
    command
}

/// A test's scratch directory (`tcptab-NAME-XXXXXX` in the temporary
/// directory), removed when dropped: after the servers and files a test
/// made in it are gone, nothing is left behind. A failing test's is kept,
/// and its path printed, for a look.
#[derive(Debug)]
pub struct Scratch(Option<tempfile::TempDir>);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let dir = tempfile::Builder::new()
            .prefix(&format!("tcptab-{name}-"))
            .tempdir()
            .unwrap_or_else(|e| panic!("a scratch directory for {name}: {e}"));
        Scratch(Some(dir))
    }

    pub fn path(&self) -> &Path {
        self.0.as_ref().expect("until dropped").path()
    }
}

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        self.path()
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        self.path()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Some(dir) = self.0.take() {
                eprintln!("kept the failing test's directory {}", dir.keep().display());
            }
        }
    }
}

/// A copy of the binary `bin` that any user may run (the build tree may be
/// closed to them), removed when dropped.
#[derive(Debug)]
pub struct SharedBin(PathBuf);

impl SharedBin {
    pub fn of(bin: &str, name: &str) -> SharedBin {
        let path = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
        std::fs::copy(bin, &path).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        SharedBin(path)
    }
}

impl std::ops::Deref for SharedBin {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<std::ffi::OsStr> for SharedBin {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.0.as_os_str()
    }
}

impl Drop for SharedBin {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Whether the test may run: true as root. Without root, a loud skip, or a
/// failure under `CI=true`.
pub fn require_root(test: &str) -> bool {
    // The effective uid, from /proc (no libc needed).
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(2))
        .unwrap_or("");
    if euid == "0" {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test}: needs root (network namespaces, veth, raw sockets) and CI=true forbids skipping");
    }
    eprintln!("SKIPPED {test}: needs root (network namespaces); run the tests as root");
    false
}

/// [`require_root`] for the running test, named by its thread (what
/// `cargo test` names it).
pub fn may_run_as_root() -> bool {
    let thread = std::thread::current();
    require_root(thread.name().unwrap_or("a live test"))
}

/// Return from the running test unless it may run ([`may_run_as_root`]).
#[macro_export]
macro_rules! needs_root {
    () => {
        if !$crate::may_run_as_root() {
            return;
        }
    };
}

/// Filters of ss's language that select listeners without naming the
/// listening state (groups, exclusions, negations): `kill` must leave the
/// listeners they select alone. Tested in the library and on live tables.
pub const FILTERS_NOT_NAMING_LISTENERS: [&str; 6] = [
    "exclude established",
    "state big",
    "state all exclude close-wait",
    "state all",
    "not state established",
    "not state listening",
];

/// Assert that a finished command succeeded; when it did not, the message
/// is its stderr, after a context given as `format!`'s arguments.
#[macro_export]
macro_rules! assert_success {
    ($out:expr) => {{
        let out: &std::process::Output = &$out;
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }};
    ($out:expr, $($context:tt)+) => {{
        let out: &std::process::Output = &$out;
        assert!(
            out.status.success(),
            "{}: {}",
            format_args!($($context)+),
            String::from_utf8_lossy(&out.stderr)
        );
    }};
}

/// Assert that a finished command wrote nothing on stderr; when it did,
/// the message is `what`, then what it wrote.
pub fn assert_quiet(out: &std::process::Output, what: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.is_empty(), "{what}: {stderr}");
}

/// Asserts that a command succeeded and that its stderr says each of
/// `words` (notes a user must be shown).
pub fn assert_says(out: &std::process::Output, words: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    for w in words {
        assert!(stderr.contains(w), "stderr does not say '{w}': {stderr}");
    }
}

/// A live test's scenario: `script` started in a fresh network namespace
/// when the test may run ([`require_root`], named after the running test),
/// None when it skips.
pub fn live(script: &str) -> Option<Scenario> {
    live_with(script, &[])
}

/// [`live`] with arguments for the script.
pub fn live_with(script: &str, args: &[&str]) -> Option<Scenario> {
    may_run_as_root().then(|| Scenario::start_with(script, args))
}

/// One socket the scenario created and what it must look like.
#[derive(Debug, Clone, Deserialize)]
pub struct Expected {
    pub name: String,
    pub family: String,
    pub state: String,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub uid: u32,
    /// The processes that hold it; empty when none does (TIME_WAIT, request
    /// sockets, children not yet accepted).
    pub pids: Vec<u32>,
    pub kind: Option<String>,
    pub timer: Option<String>,
    pub rx_queue: Option<u32>,
    pub rx_queue_min: Option<u32>,
    pub tx_queue: Option<u32>,
    pub tx_queue_min: Option<u32>,
    pub backlog: Option<u32>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    pub pid: u32,
    pub sockets: Vec<Expected>,
    /// Named values a scenario reports (ports, addresses).
    #[serde(default)]
    pub names: std::collections::BTreeMap<String, String>,
    /// The listener port of the command-driven scenario.
    #[serde(default)]
    pub port: Option<u16>,
}

/// A running scenario: its sockets live until it is dropped.
#[derive(Debug)]
pub struct Scenario {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<std::process::ChildStdout>,
    pub manifest: Manifest,
}

impl Scenario {
    /// The socket the manifest names `name` (panics if there is none).
    pub fn socket(&self, name: &str) -> &Expected {
        self.manifest
            .sockets
            .iter()
            .find(|e| e.name == name)
            .unwrap_or_else(|| panic!("no socket {name} in the scenario's manifest"))
    }

    /// Start `testdata/scenario/<script>` under `unshare --net`.
    pub fn start(script: &str) -> Scenario {
        Scenario::start_with(script, &[])
    }

    /// Start `testdata/scenario/<script> ARGS` under `unshare --net`.
    pub fn start_with(script: &str, args: &[&str]) -> Scenario {
        let path = repo_root().join("testdata/scenario").join(script);
        let mut child = tool("unshare")
            .arg("--net")
            .arg("python3")
            .arg(&path)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("starting unshare --net python3 {}: {e}", path.display()));
        let stdin = child.stdin.take();
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut line = String::new();
        stdout
            .read_line(&mut line)
            .expect("reading the scenario's manifest");
        let manifest: Manifest = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("scenario {script} printed no manifest ({e}): {line:?}"));
        Scenario {
            child,
            stdin,
            stdout,
            manifest,
        }
    }

    /// Send one command line to a command-driven scenario; its answer.
    pub fn command(&mut self, command: &str) -> String {
        use std::io::Write;
        let stdin = self.stdin.as_mut().expect("the scenario's stdin");
        writeln!(stdin, "{command}").expect("sending a command");
        stdin.flush().expect("sending a command");
        let mut answer = String::new();
        self.stdout
            .read_line(&mut answer)
            .expect("reading the answer");
        assert!(answer.starts_with("ok"), "{command}: {answer}");
        answer.trim().to_string()
    }

    pub fn pid(&self) -> u32 {
        self.manifest.pid
    }

    /// `/proc/PID`: a proc root showing the scenario's namespace.
    pub fn proc_root(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}", self.pid()))
    }

    /// Run a command inside the scenario's network namespace; its stdout.
    pub fn run_in(&self, program: &str, args: &[&str]) -> String {
        let pid = self.pid().to_string();
        let out = tool("nsenter")
            .args(["-t", &pid, "-n", program])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("nsenter {program}: {e}"));
        crate::assert_success!(out, "{program} {args:?} failed");
        String::from_utf8(out.stdout).expect("utf-8 output")
    }

    /// `ss -tanH` in the scenario's namespace, parsed.
    pub fn ss(&self, extra: &[&str]) -> Vec<SsRow> {
        let mut args = vec!["-tanH"];
        args.extend_from_slice(extra);
        self.run_in("ss", &args)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(SsRow::parse)
            .collect()
    }
}

impl Drop for Scenario {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

/// One row of `ss -tanH`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SsRow {
    /// ss's spelling: ESTAB, SYN-SENT, ...
    pub state: String,
    pub recv_q: u64,
    pub send_q: u64,
    /// Address:port as ss prints it, with `*`, `0.0.0.0` and `[::]`
    /// wildcards all written `*`.
    pub local: String,
    pub peer: String,
    /// Anything after the peer (process column with -p).
    pub rest: String,
}

impl SsRow {
    /// A row of `ss -tanH`. With a state filter ss leaves the State column
    /// out; `state` is then empty.
    pub fn parse(line: &str) -> SsRow {
        let mut it = line.split_whitespace().peekable();
        let has_state = it.peek().is_some_and(|w| w.parse::<u64>().is_err());
        let mut next = |what: &str| {
            it.next()
                .unwrap_or_else(|| panic!("ss row without {what}: {line}"))
                .to_string()
        };
        let state = if has_state {
            next("state")
        } else {
            String::new()
        };
        let recv_q = next("recv-q").parse().expect("recv-q");
        let send_q = next("send-q").parse().expect("send-q");
        let local = normalise_endpoint(&next("local"));
        let peer = normalise_endpoint(&next("peer"));
        let rest = it.collect::<Vec<_>>().join(" ");
        SsRow {
            state,
            recv_q,
            send_q,
            local,
            peer,
            rest,
        }
    }
}

/// `0.0.0.0:22`, `[::]:22` and `*:22` all become `*:22`; `...:0` becomes `...:*`.
pub fn normalise_endpoint(text: &str) -> String {
    let (host, port) = text.rsplit_once(':').unwrap_or((text, "*"));
    let host = match host {
        "0.0.0.0" | "[::]" | "*" => "*",
        other => other,
    };
    let port = if port == "0" { "*" } else { port };
    format!("{host}:{port}")
}

/// A socket address in the same form as [`normalise_endpoint`].
pub fn endpoint(addr: SocketAddr) -> String {
    let text = if addr.is_ipv6() {
        format!("[{}]:{}", addr.ip(), addr.port())
    } else {
        addr.to_string()
    };
    normalise_endpoint(&text)
}

/// A named network namespace (`ip netns add`), with its loopback up,
/// deleted when dropped (also when a test fails).
#[derive(Debug)]
pub struct NamedNetns {
    pub name: String,
}

impl NamedNetns {
    /// `PREFIX-<this process's pid>`.
    pub fn add(prefix: &str) -> NamedNetns {
        let name = format!("{prefix}-{}", std::process::id());
        let ip = |args: &[&str]| {
            let status = tool("ip").args(args).status().expect("ip");
            assert!(status.success(), "ip {args:?}");
        };
        ip(&["netns", "add", &name]);
        let netns = NamedNetns { name };
        ip(&[
            "netns",
            "exec",
            &netns.name,
            "ip",
            "link",
            "set",
            "lo",
            "up",
        ]);
        netns
    }

    /// `ip netns exec NAME PROGRAM`, to run something inside.
    pub fn command(&self, program: &str) -> Command {
        let mut command = tool("ip");
        command.args(["netns", "exec", &self.name, program]);
        command
    }
}

impl Drop for NamedNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stderr(Stdio::null())
            .status();
    }
}

/// Start `command` with its stdout piped and wait for its first line (a
/// port, `ready`): the child, and the line without its line feed.
pub fn spawn_until_line(command: &mut Command) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {command:?}: {e}"));
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("piped stdout"))
        .read_line(&mut line)
        .expect("reading the child's first line");
    (child, line.trim_end().to_string())
}

#[cfg(test)]
mod tests {
    /// scripts/test installs exactly the packages of [`super::PACKAGES`].
    #[test]
    fn the_test_script_installs_what_the_tests_name() {
        let script = std::fs::read_to_string(super::repo_root().join("scripts/test")).unwrap();
        let start = script.find("packages=(").unwrap();
        let end = start + script[start..].find(')').unwrap();
        let mut listed: Vec<(String, String)> = script[start + "packages=(".len()..end]
            .split_whitespace()
            .map(|pair| {
                let (program, package) = pair.split_once(':').unwrap();
                (program.to_string(), package.to_string())
            })
            .collect();
        let mut named: Vec<(String, String)> = super::PACKAGES
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        listed.sort();
        named.sort();
        assert_eq!(listed, named);
    }
}
