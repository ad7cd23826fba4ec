//! `tcptab list` on real sockets in fresh network namespaces, checked
//! against `ss` for the same namespace: owners (`-p` vs `ss -tanp`), every
//! filter and the expression language (vs the same filter given to `ss`),
//! several namespaces at once, and an unprivileged run.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

mod common;

use common::tcptab;
use serde_json::Value;
use testkit::{endpoint, require_root, Scenario, SsRow};

/// `tcptab ARGS --format json`, as the rows of its array.
fn json(args: &[&str]) -> Vec<Value> {
    let mut all = args.to_vec();
    all.extend(["--format", "json"]);
    common::json(&all).as_array().unwrap().clone()
}

/// (state in ss spelling, local, peer) of a JSON row, as testkit writes them.
fn identity(row: &Value) -> (String, String, String) {
    let state: tcptab::State = row["state"].as_str().unwrap().parse().unwrap();
    let addr = |a: &str, p: &str| {
        let ip: std::net::IpAddr = row[a].as_str().unwrap().parse().unwrap();
        endpoint(std::net::SocketAddr::new(
            ip,
            row[p].as_u64().unwrap() as u16,
        ))
    };
    (
        state.ss_name().unwrap().to_string(),
        addr("local_address", "local_port"),
        addr("remote_address", "remote_port"),
    )
}

fn ss_identity(row: &SsRow) -> (String, String, String) {
    let state: tcptab::State = row.state.parse().unwrap();
    (
        state.ss_name().unwrap().to_string(),
        row.local.clone(),
        row.peer.clone(),
    )
}

/// (local, peer): what identifies a socket within one namespace, and all
/// that `ss` prints when a state filter makes it drop the State column.
fn ends(row: &Value) -> (String, String) {
    let (_, local, peer) = identity(row);
    (local, peer)
}

fn ss_ends(row: &SsRow) -> (String, String) {
    (row.local.clone(), row.peer.clone())
}

/// `users:(("python3",pid=1,fd=4),("python3",pid=2,fd=4))` → {(1,4), (2,4)}.
fn ss_users(rest: &str) -> BTreeSet<(u64, u64)> {
    let mut users = BTreeSet::new();
    for part in rest.split("pid=").skip(1) {
        let pid: u64 = part.split(',').next().unwrap().parse().unwrap();
        let fd: u64 = part
            .split("fd=")
            .nth(1)
            .unwrap()
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap();
        users.insert((pid, fd));
    }
    users
}

#[test]
fn owners_agree_with_ss_tanp() {
    let Some(scenario) = testkit::live("sockets.py") else { return };
    let pid = scenario.pid().to_string();
    let rows = json(&["list", "--netns-pid", &pid, "-p"]);
    let ours: BTreeMap<_, BTreeSet<(u64, u64)>> = rows
        .iter()
        .map(|r| {
            let owners = r["owners"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| (o["pid"].as_u64().unwrap(), o["fd"].as_u64().unwrap()))
                .collect();
            (identity(r), owners)
        })
        .collect();
    let theirs: BTreeMap<_, BTreeSet<(u64, u64)>> = scenario
        .ss(&["-p"])
        .iter()
        .map(|r| (ss_identity(r), ss_users(&r.rest)))
        .collect();
    assert_eq!(ours, theirs);
    // The shared listener has two owners or more; TIME_WAIT and request
    // sockets are marked as having no process by nature.
    let shared = scenario
        .manifest
        .sockets
        .iter()
        .find(|e| e.name == "listen_shared")
        .unwrap();
    let key = (
        "listening".to_string(),
        endpoint(shared.local),
        "*:*".to_string(),
    );
    assert!(ours[&key].len() >= 2, "{:?}", ours[&key]);
    for row in &rows {
        if row["kind"] != "full" {
            assert_eq!(row["owner_status"], "no_process", "{row}");
        }
    }
    // Another uid's socket: owned by the nobody child.
    let nobody = scenario
        .manifest
        .sockets
        .iter()
        .find(|e| e.name == "listen_nobody")
        .unwrap();
    let row = rows
        .iter()
        .find(|r| identity(r).1 == endpoint(nobody.local) && r["state"] == "LISTEN")
        .unwrap();
    assert_eq!(row["uid"], 65534);
    assert!(row["owners"]
        .as_array()
        .unwrap()
        .iter()
        .any(|o| o["pid"] == nobody.pids[0]));
}

/// (tcptab arguments, ss arguments) that must select the same sockets;
/// `{p}` and `{q}` are the two listeners' ports, `{lo}`-`{hi}` the range
/// between them.
const FILTER_CASES: &[(&[&str], &[&str])] = &[
    (&["-l"], &["-l"]),
    (&["--state", "established"], &["state", "established"]),
    (
        &["--state", "estab", "--state", "time-wait"],
        &["state", "established", "state", "time-wait"],
    ),
    (&["--state", "connected"], &["state", "connected"]),
    (&["--state", "synchronized"], &["state", "synchronized"]),
    (&["--state", "bucket"], &["state", "bucket"]),
    (&["--state", "big"], &["state", "big"]),
    (&["--state", "FIN_WAIT2"], &["state", "fin-wait-2"]),
    (&["-4"], &["-4"]),
    (&["-6"], &["-6"]),
    (&["--sport", "{p}"], &["sport = :{p}"]),
    (&["--dport", "{p}"], &["dport = :{p}"]),
    (&["--port", "{p}"], &["( sport = :{p} or dport = :{p} )"]),
    (
        &["--sport", "{lo}-{hi}"],
        &["( sport >= :{lo} and sport <= :{hi} )"],
    ),
    (&["--src", "10.99.0.0/24"], &["src", "10.99.0.0/24"]),
    (&["--dst", "127.0.0.1"], &["dst", "127.0.0.1"]),
    (&["--dst", "::1"], &["dst", "[::1]"]),
    (
        &["state established and ( dport = :{p} or sport = :{p} )"],
        &["state", "established", "( dport = :{p} or sport = :{p} )"],
    ),
    (
        &["not ( sport = :{p} ) and dst 127.0.0.0/8"],
        &["not ( sport = :{p} ) and dst 127.0.0.0/8"],
    ),
    (
        &["sport gt :{p} || dport lt :{q}"],
        &["sport gt :{p} or dport lt :{q}"],
    ),
    (&["src 127.0.0.1:{p}"], &["src 127.0.0.1:{p}"]),
    // Repeated address and port options: any of them.
    (
        &["--src", "10.99.0.0/24", "--src", "::1"],
        &["( src 10.99.0.0/24 or src [::1] )"],
    ),
    (
        &["--sport", "{p}", "--sport", "{q}"],
        &["( sport = :{p} or sport = :{q} )"],
    ),
    // ss's leading state words: a repeated state is the union, an
    // exclude takes away (from every state when it comes first).
    (
        &["state established state close-wait"],
        &["state", "established", "state", "close-wait"],
    ),
    (
        &["state listening state time-wait state syn-recv"],
        &[
            "state",
            "listening",
            "state",
            "time-wait",
            "state",
            "syn-recv",
        ],
    ),
    (&["exclude listening"], &["exclude", "listening"]),
    (
        &["state all exclude established"],
        &["state", "all", "exclude", "established"],
    ),
    (
        &["exclude listening exclude established"],
        &["exclude", "listening", "exclude", "established"],
    ),
    (
        &["state established state close-wait sport = :{p}"],
        &[
            "state",
            "established",
            "state",
            "close-wait",
            "sport = :{p}",
        ],
    ),
];

/// Owner filters, against ss -p.
fn owner_filters_agree_with_ss_p(scenario: &testkit::Scenario, pid: &str, p: &str) {
    let ss_p = scenario.ss(&["-p"]);
    let twin = ss_users(
        &ss_p
            .iter()
            .find(|r| r.local.ends_with(&format!(":{p}")) && r.state == "LISTEN")
            .unwrap()
            .rest,
    )
    .iter()
    .map(|(pid, _)| *pid)
    .max()
    .unwrap();
    let ours: BTreeSet<_> = json(&["list", "--netns-pid", pid, "--pid", &twin.to_string()])
        .iter()
        .map(identity)
        .collect();
    let theirs: BTreeSet<_> = ss_p
        .iter()
        .filter(|r| ss_users(&r.rest).iter().any(|(p, _)| *p == twin))
        .map(ss_identity)
        .collect();
    assert_eq!(ours, theirs, "--pid {twin}");
    let ours: BTreeSet<_> = json(&["list", "--netns-pid", pid, "--process", "python3"])
        .iter()
        .map(identity)
        .collect();
    let theirs: BTreeSet<_> = ss_p
        .iter()
        .filter(|r| r.rest.contains("\"python3\""))
        .map(ss_identity)
        .collect();
    assert_eq!(ours, theirs, "--process python3");
    let ours: Vec<_> = json(&["list", "--netns-pid", pid, "--uid", "65534"]);
    assert_eq!(ours.len(), 1, "only the nobody listener: {ours:?}");
}

#[test]
fn filters_agree_with_ss() {
    let Some(scenario) = testkit::live("sockets.py") else { return };
    let pid = scenario.pid().to_string();
    let port = |name: &str| {
        scenario
            .manifest
            .sockets
            .iter()
            .find(|e| e.name == name)
            .unwrap()
            .local
            .port()
            .to_string()
    };
    let p = port("listen");
    let q = port("listen_queued");
    let range = format!(
        "{}-{}",
        p.parse::<u16>().unwrap().min(q.parse().unwrap()),
        p.parse::<u16>().unwrap().max(q.parse().unwrap())
    );
    let (lo, hi) = range.split_once('-').unwrap();
    let fill = |arg: &&str| {
        arg.replace("{p}", &p)
            .replace("{q}", &q)
            .replace("{lo}", lo)
            .replace("{hi}", hi)
    };
    let cases = FILTER_CASES.iter().map(|(ours, ss)| {
        (
            ours.iter().map(fill).collect::<Vec<_>>(),
            ss.iter().map(fill).collect::<Vec<_>>(),
        )
    });
    for (ours_args, ss_args) in cases {
        let mut args: Vec<&str> = vec!["list", "--netns-pid", &pid];
        args.extend(ours_args.iter().map(String::as_str));
        let ours: BTreeSet<_> = json(&args).iter().map(ends).collect();
        let ss_args: Vec<&str> = ss_args.iter().map(String::as_str).collect();
        let theirs: BTreeSet<_> = scenario.ss(&ss_args).iter().map(ss_ends).collect();
        assert!(
            !theirs.is_empty() || ours_args[0] == "-6",
            "{ss_args:?} selects something"
        );
        assert_eq!(ours, theirs, "tcptab {ours_args:?} vs ss {ss_args:?}");
    }
    owner_filters_agree_with_ss_p(&scenario, &pid, &p);
}

#[test]
fn proc_format_applies_filters_and_renumbers() {
    let Some(scenario) = testkit::live("sockets.py") else { return };
    let pid = scenario.pid().to_string();
    let out = tcptab(&["list", "--netns-pid", &pid, "-l", "--format", "proc"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let root = format!("/proc/{pid}");
    let table = tcptab::procnet::ProcRoot::new(&root)
        .read(Default::default())
        .unwrap();
    let listeners = table.sockets.iter().filter(|s| s.is_listening()).count();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("sl"))
        .collect();
    assert_eq!(lines.len(), listeners);
    // sl counts from 0 in each table, and every line is a listener's.
    let parsed: Vec<tcptab::Socket> = lines
        .iter()
        .map(|l| {
            tcptab::procnet::parse_line(l.as_bytes(), tcptab::procnet::ByteOrder::native()).unwrap()
        })
        .collect();
    for family in [tcptab::Family::Ipv4, tcptab::Family::Ipv6] {
        let sls: Vec<u32> = parsed
            .iter()
            .filter(|s| s.family == family)
            .map(|s| s.sl)
            .collect();
        assert_eq!(sls, (0..sls.len() as u32).collect::<Vec<_>>());
    }
    assert!(parsed.iter().all(|s| s.is_listening()));
}

#[test]
fn all_netns_finds_sockets_in_two_namespaces() {
    let Some(a) = testkit::live("sockets.py") else { return };
    let b = Scenario::start("sockets.py");
    let rows = json(&["list", "--all-netns"]);
    for scenario in [&a, &b] {
        let ns = std::fs::metadata(format!("/proc/{}/ns/net", scenario.pid())).unwrap();
        let inode = std::os::unix::fs::MetadataExt::ino(&ns);
        let in_ns: BTreeSet<_> = rows
            .iter()
            .filter(|r| r["netns"] == inode)
            .map(identity)
            .collect();
        let theirs: BTreeSet<_> = scenario.ss(&[]).iter().map(ss_identity).collect();
        assert_eq!(in_ns, theirs, "namespace {inode}");
    }
    // The table labels each socket with its namespace.
    let out = tcptab(&["list", "--all-netns"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.lines().next().unwrap().contains("Netns"));
}

#[test]
fn named_namespace_is_entered_even_without_a_process() {
    if !require_root("named_namespace_is_entered_even_without_a_process") {
        return;
    }
    let netns = testkit::NamedNetns::add("tcptab-test");
    let name = netns.name.clone();
    // A connection that closes at once leaves a TIME_WAIT socket, which
    // outlives the process: the namespace then has sockets but no process.
    let script = "import socket\nl=socket.socket();l.bind(('127.0.0.1',0));l.listen()\nport=l.getsockname()[1]\nc=socket.create_connection(('127.0.0.1',port));s,_=l.accept()\nc.close();s.close();l.close();print(port)";
    let out = netns
        .command("python3")
        .args(["-c", script])
        .output()
        .unwrap();
    let port = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let result = tcptab(&["list", "--netns", &name, "--format", "json"]);
    drop(netns);
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    let rows: Vec<Value> = serde_json::from_slice::<Value>(&result.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone();
    assert!(
        rows.iter()
            .any(|r| r["state"] == "TIME_WAIT"
                && r["remote_port"] == port.parse::<u64>().unwrap_or(0)),
        "a TIME_WAIT to port {port}: {rows:?}"
    );
    assert!(rows.iter().all(|r| r["netns_name"] == name.as_str()));
}

#[test]
fn unprivileged_run_lists_sockets_and_says_what_it_could_not_see() {
    let Some(scenario) = testkit::live("sockets.py") else { return };
    let pid = scenario.pid().to_string();
    // A copy of the binary that the nobody user may execute.
    let bin = testkit::SharedBin::of(env!("CARGO_BIN_EXE_tcptab"), "tcptab-unpriv");
    let out = testkit::as_nobody(&bin)
        .args(["list", "--netns-pid", &pid, "-p", "--format", "json"])
        .output()
        .unwrap();
    // The same note into a pipe nobody reads (EPIPE) is lost, not a panic
    // (it once killed `serve`'s collection task).
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let closed = testkit::as_nobody(&bin)
        .args(["list", "--netns-pid", &pid, "-p"])
        .stdout(std::process::Stdio::null())
        .stderr(writer)
        .status()
        .unwrap();
    assert!(closed.success(), "{closed:?}");
    // A namespace it may not enter: auto falls back to the namespace's
    // /proc tables and says why under -v; an explicit netlink is an error,
    // never an empty answer (it once printed an empty table, exit 0).
    let as_nobody = |args: &[&str]| testkit::as_nobody(&bin).args(args).output().unwrap();
    let auto = as_nobody(&["list", "--netns-pid", &pid, "-v", "--format", "jsonl"]);
    assert!(auto.status.success(), "{auto:?}");
    let auto_err = String::from_utf8_lossy(&auto.stderr);
    assert!(
        auto_err.contains("source: proc for network namespace")
            && auto_err.contains("netlink unavailable: netlink: entering the network namespace"),
        "{auto_err}"
    );
    assert_eq!(
        String::from_utf8_lossy(&auto.stdout).lines().count(),
        scenario.manifest.sockets.len()
    );
    for args in [
        &["list", "--netns-pid", &pid, "--source", "netlink"][..],
        &[
            "list",
            "--netns-pid",
            &pid,
            "--source",
            "netlink",
            "--format",
            "json",
        ],
        &["summary", "--netns-pid", &pid, "--source", "netlink"],
        &[
            "explain",
            "--diagnose",
            "--netns-pid",
            &pid,
            "--source",
            "netlink",
        ],
    ] {
        let refused = as_nobody(args);
        assert_eq!(refused.status.code(), Some(2), "{args:?}: {refused:?}");
        assert!(refused.stdout.is_empty(), "{args:?}: {refused:?}");
        let err = String::from_utf8_lossy(&refused.stderr);
        assert!(
            err.starts_with("error: netlink: entering the network namespace (needs root")
                && err.lines().count() == 1,
            "{args:?}: {err}"
        );
    }
    // Every namespace, unprivileged: its own namespace read, and what it
    // could not see said (the scenario's processes are root's), not a
    // quiet answer for the machine.
    let all = as_nobody(&["list", "--all-netns", "--format", "jsonl"]);
    assert!(all.status.success(), "{all:?}");
    let all_err = String::from_utf8_lossy(&all.stderr);
    assert!(
        all_err.contains("the network namespace of ")
            && all_err.contains("process(es) could not be read (permission denied)"),
        "{all_err}"
    );
    drop(bin);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        stderr
            .matches("could not be inspected (permission denied)")
            .count(),
        1,
        "{stderr}"
    );
    let rows: Vec<Value> = serde_json::from_slice::<Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(
        rows.len(),
        scenario.manifest.sockets.len(),
        "every socket is still listed"
    );
    for row in &rows {
        let status = row["owner_status"].as_str().unwrap();
        // Every holder here is root's, or nobody's after setuid() from root
        // (not dumpable, so not inspectable either).
        if row["kind"] != "full" || row["inode"] == 0 {
            assert_eq!(status, "no_process", "{row}");
        } else {
            assert_eq!(status, "unknown", "{row}");
        }
    }
}

#[test]
fn bad_input_is_a_one_line_error() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["list", "--state", "establishd"],
            "unknown TCP state 'establishd'",
        ),
        (
            &["list", "--src", "10.0.0.0/33"],
            "--src: '10.0.0.0/33': a prefix length of 33 is longer than 32",
        ),
        (
            &["list", "--dst", "10.0.0.x"],
            "--dst: '10.0.0.x' is not an address",
        ),
        (
            &["list", "--sport", "http"],
            "--sport: 'http' is not a port",
        ),
        (
            &["list", "state established and ( dport = :nosuchservice )"],
            "filter: word 7 ':nosuchservice'",
        ),
        (&["list", "dport = :80 )"], "filter: word 4 ')'"),
        (
            &["list", "--netns", "no-such-namespace-here"],
            "network namespace no-such-namespace-here: no such namespace in /run/netns",
        ),
        (
            &["list", "--netns-pid", "4000000000"],
            "of pid 4000000000: no such process",
        ),
        (
            &["list", "--root", "testdata", "--all-netns"],
            "cannot be combined",
        ),
    ];
    for (args, expected) in cases {
        let out = tcptab(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.starts_with("error: ") && err.contains(expected),
            "{args:?}: {err}"
        );
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn netlink_source_lists_what_proc_lists() {
    let Some(scenario) = testkit::live("sockets.py") else { return };
    let pid = scenario.pid().to_string();
    let via = |source: &str| -> BTreeSet<(String, String, String)> {
        let rows = json(&["list", "--netns-pid", &pid, "--source", source]);
        assert!(rows.iter().all(|r| r["source"] == source), "{source}");
        rows.iter().map(identity).collect()
    };
    assert_eq!(via("netlink"), via("proc"));
    // The table shows a listener's backlog limit as Send-Q, like ss.
    let out = tcptab(&["list", "--netns-pid", &pid, "--source", "netlink", "-l"]);
    let text = String::from_utf8(out.stdout).unwrap();
    let queued = scenario
        .manifest
        .sockets
        .iter()
        .find(|e| e.name == "listen_queued")
        .unwrap();
    let line = text
        .lines()
        .find(|l| l.contains(&endpoint(queued.local)))
        .unwrap();
    let cols: Vec<&str> = line.split_whitespace().collect();
    assert_eq!((cols[1], cols[2]), ("2", "8"), "{line}");
    // -i shows tcp_info; --format proc from netlink renders parseable text.
    let out = tcptab(&[
        "list",
        "--netns-pid",
        &pid,
        "--source",
        "netlink",
        "-i",
        "--state",
        "established",
    ]);
    assert!(String::from_utf8(out.stdout).unwrap().contains("rtt:"));
    let out = tcptab(&[
        "list",
        "--netns-pid",
        &pid,
        "--source",
        "netlink",
        "--format",
        "proc",
    ]);
    let text = String::from_utf8(out.stdout).unwrap();
    let parsed =
        tcptab::procnet::TableReader::new(text.as_bytes(), "netlink-rendered", Default::default())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
    assert_eq!(parsed.len(), scenario.manifest.sockets.len());
    assert!(parsed
        .iter()
        .all(|s| s.pointer.kind() == tcptab::PointerKind::Zeroed));
}

#[test]
fn all_netns_survives_namespaces_that_vanish() {
    if !require_root("all_netns_survives_namespaces_that_vanish") {
        return;
    }
    // Namespaces whose only process exits while tcptab scans: before the
    // fix, one vanishing between discovery and reading failed the run.
    // They are reaped only at the end: an exited, unreaped process (a
    // zombie) keeps its /proc directory but not its namespace. Named
    // namespaces are added and deleted meanwhile: a deleted name can leave
    // its mount point behind for a moment, which setns refuses.
    struct NamedChurn {
        stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
        thread: Option<std::thread::JoinHandle<()>>,
        name: String,
    }
    impl Drop for NamedChurn {
        // Also on a failed assertion: no namespace is left behind.
        fn drop(&mut self) {
            self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
            if let Some(thread) = self.thread.take() {
                let _ = thread.join();
            }
            let _ = Command::new("ip")
                .args(["netns", "del", &self.name])
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let name = format!("tcptab-churn-{}", std::process::id());
    let named = NamedChurn {
        stop: stop.clone(),
        thread: Some({
            let name = name.clone();
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    for verb in ["add", "del"] {
                        let status = Command::new("ip").args(["netns", verb, &name]).status();
                        assert!(status.unwrap().success(), "ip netns {verb} {name}");
                    }
                }
            })
        }),
        name,
    };
    let mut churn = Vec::new();
    for i in 0..60 {
        churn.push(
            testkit::tool("unshare")
                .args(["--net", "sleep", &format!("0.0{}", i % 9)])
                .spawn()
                .unwrap(),
        );
        for args in [
            &["list", "--all-netns"][..],
            &["summary", "--all-netns"][..],
        ] {
            let out = tcptab(args);
            assert!(
                out.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    drop(named);
    for mut child in churn {
        child.wait().unwrap();
    }
}

#[test]
fn proc_under_churn_lists_no_row_twice() {
    if !require_root("proc_under_churn_lists_no_row_twice") {
        return;
    }
    // Thousands of connections opened and closed while /proc is read: the
    // kernel's walk resumes by position between reads and can repeat a
    // row; tcptab drops and counts them.
    let scenario = Scenario::start("quiet.py");
    let pid = scenario.pid().to_string();
    let script = testkit::repo_root().join("testdata/scenario/churn.py");
    let mut churn = testkit::tool("nsenter")
        .args(["-t", &pid, "-n", "python3"])
        .arg(&script)
        .arg("120")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(2));
    // Five reads while the churn goes on (it is stopped after them, so
    // a slow machine reads as often as a fast one).
    let (mut runs, mut dropped_runs) = (0, 0);
    while runs < 5 {
        let out = tcptab(&[
            "list",
            "--netns-pid",
            &pid,
            "--source",
            "proc",
            "-v",
            "--format",
            "jsonl",
        ]);
        assert!(out.status.success(), "{out:?}");
        let mut seen = BTreeSet::new();
        for line in String::from_utf8(out.stdout).unwrap().lines() {
            let r: Value = serde_json::from_str(line).unwrap();
            let key = (
                r["local_address"].to_string(),
                r["local_port"].to_string(),
                r["remote_address"].to_string(),
                r["remote_port"].to_string(),
                r["inode"].to_string(),
            );
            assert!(seen.insert(key.clone()), "run {runs}: {key:?} listed twice");
        }
        runs += 1;
        if String::from_utf8_lossy(&out.stderr)
            .contains("that the kernel's walk of /proc listed twice")
        {
            dropped_runs += 1;
        }
    }
    assert!(
        churn.try_wait().unwrap().is_none(),
        "the churn ended before the five reads: they did not all read a changing table"
    );
    let _ = churn.kill();
    let _ = churn.wait();
    eprintln!("{runs} runs under churn, {dropped_runs} with repeated rows dropped");
}

#[test]
fn ss_flag_bundles_select_what_ss_selects() {
    let Some(scenario) = testkit::live("sockets.py") else { return };
    let pid = scenario.pid().to_string();
    // (tcptab's bundle, ss's flags for the same sockets)
    for (bundle, ss) in [
        ("-tlnp", &["-l", "-p"][..]),
        ("-tanp", &["-a", "-p"]),
        ("-ltn", &["-l"]),
        ("-nta4", &["-a", "-4"]),
        ("-tan6", &["-a", "-6"]),
    ] {
        let rows = json(&[bundle, "--netns-pid", &pid]);
        let ours: BTreeSet<_> = rows.iter().map(ends).collect();
        let theirs: BTreeSet<_> = scenario.ss(ss).iter().map(ss_ends).collect();
        assert!(!theirs.is_empty(), "{bundle}");
        assert_eq!(ours, theirs, "tcptab {bundle} vs ss {ss:?}");
        if bundle.contains('p') {
            assert!(
                rows.iter().all(|r| r.get("owners").is_some()),
                "{bundle}: owners"
            );
        }
    }
    // -H: no header, one line per socket, as ss -Hltn.
    let out = tcptab(&["-Hltn", "--netns-pid", &pid]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.starts_with("State"), "{text}");
    assert_eq!(text.lines().count(), scenario.ss(&["-l"]).len(), "{text}");
    let proc = tcptab(&["list", "-H", "--netns-pid", &pid, "--format", "proc"]);
    let text = String::from_utf8(proc.stdout).unwrap();
    assert!(
        text.lines()
            .all(|l| !tcptab::procnet::is_header(l.as_bytes())),
        "{text}"
    );
    // -s is the summary; -N NAME a named namespace (here: a missing one).
    let out = tcptab(&["-s"]);
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains(" sockets: "));
    let out = tcptab(&["-N", "no-such-namespace-here"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such namespace in /run/netns"));
}

#[test]
fn options_behave_like_the_rest_of_the_shell() {
    // Other protocols alone: one line, exit 2.
    for flag in ["-u", "-ua", "-x", "-w", "-S", "-d", "-0", "-A"] {
        let out = tcptab(&[flag]);
        assert_eq!(out.status.code(), Some(2), "{flag}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("tcptab reads TCP sockets only") && err.lines().count() == 1,
            "{flag}: {err}"
        );
    }
    // A mistyped command is said so, not read as a filter word.
    let out = tcptab(&["lsit"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("did you mean 'list'"));
    let out = tcptab(&["sumary"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("did you mean 'summary'"));
    // Users by name; bad numbers named by their option.
    assert!(tcptab(&["list", "--uid", "root"]).status.success());
    for (args, expected) in [
        (
            &["list", "--uid", "nosuchuser-x"][..],
            "'nosuchuser-x' is neither a uid nor a user in /etc/passwd",
        ),
        (
            &["list", "--pid", "abc"],
            "--pid <PID>': 'abc' is not a process id",
        ),
        (
            &["list", "--sort", "nope"],
            "invalid value 'nope' for '--sort",
        ),
        // A fleet's options beside a file are refused, not ignored.
        (
            &[
                "history",
                "--db",
                "/nonexistent/h.db",
                "--host",
                "web-7",
                "--at",
                "now",
            ],
            "--host asks a fleet's store",
        ),
        (
            &[
                "history",
                "--db",
                "/nonexistent/h.db",
                "--clickhouse-user",
                "u",
                "--at",
                "now",
            ],
            "--clickhouse-user asks a fleet's store",
        ),
        // A count of nothing is refused, not taken as one.
        (
            &["top", "--count", "0"],
            "invalid value '0' for '--count <N>'",
        ),
        (
            &["watch", "--count", "0"],
            "invalid value '0' for '--count <N>'",
        ),
        (
            &["record", "--db", "/nonexistent/h.db", "--count", "0"],
            "invalid value '0' for '--count <N>'",
        ),
    ] {
        let out = tcptab(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(expected),
            "{args:?}: {out:?}"
        );
    }
    // Several sort keys, and the README's spellings.
    for sort in ["state,rx-queue", "rx_queue", "state,tx_queue,local"] {
        assert!(tcptab(&["list", "--sort", sort]).status.success(), "{sort}");
    }
}

#[test]
fn wildcard_listeners_are_written_as_ss_writes_them() {
    if !require_root("wildcard_listeners_are_written_as_ss_writes_them") {
        return;
    }
    // An IPv4 wildcard, an IPv6-only wildcard and a dual-stack wildcard.
    let netns = testkit::NamedNetns::add("tcptab-wild");
    let script = "import socket, sys\n\
        a = socket.socket(); a.bind(('0.0.0.0', 0)); a.listen()\n\
        b = socket.socket(socket.AF_INET6); b.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1); b.bind(('::', 0)); b.listen()\n\
        c = socket.socket(socket.AF_INET6); c.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0); c.bind(('::', 0)); c.listen()\n\
        print('ready', flush=True)\n\
        sys.stdin.read()";
    let mut holder = netns
        .command("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "ready");
    let ss = netns.command("ss").args(["-Hltn"]).output().unwrap();
    let ends = |text: &str| -> BTreeSet<(String, String)> {
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let words: Vec<&str> = l.split_whitespace().collect();
                // State Recv-Q Send-Q Local Peer
                (words[3].to_string(), words[4].to_string())
            })
            .collect()
    };
    let theirs = ends(&String::from_utf8(ss.stdout).unwrap());
    let ours = tcptab(&["-Hltn", "--netns", &netns.name]);
    assert!(ours.status.success(), "{ours:?}");
    let ours = ends(&String::from_utf8(ours.stdout).unwrap());
    drop(holder.stdin.take());
    let _ = holder.wait();
    assert_eq!(theirs.len(), 3, "{theirs:?}");
    for (local, peer) in &theirs {
        let wildcard = local.rsplit_once(':').unwrap().0;
        assert!(["0.0.0.0", "[::]", "*"].contains(&wildcard), "{local}");
        assert!(peer.ends_with(":*"), "{peer}");
    }
    assert_eq!(ours, theirs, "tcptab -Hltn vs ss -Hltn");
}
