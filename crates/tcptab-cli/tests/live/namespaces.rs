//! Namespaces: every one, a named one without a process, and what an
//! unprivileged run could not see.

use super::*;

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
    testkit::needs_root!();
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
    let result = tcptab_line(&format!("list --netns {name} --format json"));
    drop(netns);
    testkit::assert_success!(result);
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
    testkit::assert_says(
        &auto,
        &[
            "source: proc for network namespace",
            "netlink unavailable: netlink: entering the network namespace",
        ],
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
    testkit::assert_says(
        &all,
        &[
            "the network namespace of ",
            "could not be read (permission denied)",
        ],
    );
    drop(bin);
    testkit::assert_success!(out);
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
