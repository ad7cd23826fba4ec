//! Bad input, and each source listing what the other lists: with
//! namespaces that vanish, and under churn.

use super::*;

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
    let out = tcptab_line(&format!("list --netns-pid {pid} --source netlink -l"));
    let text = String::from_utf8(out.stdout).unwrap();
    let queued = scenario.socket("listen_queued");
    let line = text
        .lines()
        .find(|l| l.contains(&endpoint(queued.local)))
        .unwrap();
    let cols: Vec<&str> = line.split_whitespace().collect();
    assert_eq!((cols[1], cols[2]), ("2", "8"), "{line}");
    // -i shows tcp_info; --format proc from netlink renders parseable text.
    let out = tcptab_line(&format!(
        "list --netns-pid {pid} --source netlink -i --state established"
    ));
    assert!(String::from_utf8(out.stdout).unwrap().contains("rtt:"));
    let out = tcptab_line(&format!(
        "list --netns-pid {pid} --source netlink --format proc"
    ));
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
    testkit::needs_root!();
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
            testkit::assert_success!(out, "{args:?}");
        }
    }
    drop(named);
    for mut child in churn {
        child.wait().unwrap();
    }
}

#[test]
fn proc_under_churn_lists_no_row_twice() {
    // Thousands of connections opened and closed while /proc is read: the
    // kernel's walk resumes by position between reads and can repeat a
    // row; tcptab drops and counts them.
    let Some(scenario) = testkit::live("quiet.py") else { return };
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
        let out = tcptab_line(&format!(
            "list --netns-pid {pid} --source proc -v --format jsonl"
        ));
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
