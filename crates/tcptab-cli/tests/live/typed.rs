//! ss's flags and the shell's habits, as typed; wildcard listeners written
//! as ss writes them.

use super::*;

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
    let proc = tcptab_line(&format!("list -H --netns-pid {pid} --format proc"));
    let text = String::from_utf8(proc.stdout).unwrap();
    assert!(
        text.lines()
            .all(|l| !tcptab::procnet::is_header(l.as_bytes())),
        "{text}"
    );
    // -s is the summary; -N NAME a named namespace (here: a missing one).
    let out = tcptab(&["-s"]);
    testkit::assert_success!(out);
    let text = String::from_utf8_lossy(&out.stdout);
    let first = text.lines().next().unwrap_or_default();
    let (count, rest) = first.split_once(' ').unwrap_or_default();
    let noun = if count == "1" {
        "socket: "
    } else {
        "sockets: "
    };
    assert!(
        count.parse::<u64>().is_ok() && rest.starts_with(noun),
        "{text}"
    );
    let out = tcptab(&["-N", "no-such-namespace-here"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such namespace in /run/netns"));
}

#[test]
fn options_behave_like_the_rest_of_the_shell() {
    // Other protocols alone: one line, exit 2.
    for (typed, named) in [
        ("-u", "-u"),
        ("-ua", "-u"),
        ("-x", "-x"),
        ("-w", "-w"),
        ("-S", "-S"),
        ("-d", "-d"),
        ("-0", "-0"),
        ("-M", "-M"),
        ("--udp", "--udp"),
        ("-A udp", "-A udp"),
        ("-f unix", "-f unix"),
    ] {
        let out = tcptab(&typed.split(' ').collect::<Vec<_>>());
        assert_eq!(out.status.code(), Some(2), "{typed}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.starts_with(&format!("error: {named}: tcptab reads TCP sockets only"))
                && err.lines().count() == 1,
            "{typed}: {err}"
        );
    }
    // ss's socket table and family options, as README.md has them:
    // IPv6's listener, not IPv4's.
    let v6 = std::net::TcpListener::bind("[::1]:0").unwrap();
    let v4 = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let out = tcptab(&["-A", "tcp", "-f", "inet6", "-l"]);
    testkit::assert_success!(out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.is_empty(), "{err}");
    let text = String::from_utf8_lossy(&out.stdout);
    let port = |l: &std::net::TcpListener| format!(":{} ", l.local_addr().unwrap().port());
    assert!(
        text.contains(&port(&v6)) && !text.contains(&port(&v4)),
        "{text}"
    );
    // ss's -F FILE (here the IPv6 listener's port), --cgroup and --net.
    let file = std::env::temp_dir().join(format!("tcptab-typed-filter-{}", std::process::id()));
    std::fs::write(
        &file,
        format!("state listening\nsport = {}\n", port(&v6).trim()),
    )
    .unwrap();
    let from_file = tcptab(&["-F", file.to_str().unwrap(), "-H"]);
    std::fs::remove_file(&file).unwrap();
    testkit::assert_success!(from_file);
    let text = String::from_utf8_lossy(&from_file.stdout);
    assert!(
        text.lines().count() == 1 && text.contains(&port(&v6)),
        "{text}"
    );
    let out = tcptab(&["--cgroup", "-l"]);
    testkit::assert_success!(out);
    let header = String::from_utf8_lossy(&out.stdout);
    assert!(
        header
            .lines()
            .next()
            .unwrap_or_default()
            .ends_with("Workload"),
        "{header}"
    );
    let out = tcptab(&["--net", "no-such-namespace-here"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such namespace in /run/netns"));
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
    testkit::needs_root!();
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
                let mut words: Vec<&str> = l.split_whitespace().collect();
                // [Netid] State Recv-Q Send-Q Local Peer (ss names the
                // protocol when more than one was asked)
                if words[0] == "tcp" {
                    words.remove(0);
                }
                (words[3].to_string(), words[4].to_string())
            })
            .collect()
    };
    let theirs = ends(&String::from_utf8(ss.stdout).unwrap());
    let ours = tcptab(&["-Hltn", "--netns", &netns.name]);
    assert!(ours.status.success(), "{ours:?}");
    let ours = ends(&String::from_utf8(ours.stdout).unwrap());
    // ss's tables and families, as ss answers them (the namespace holds
    // TCP's sockets only; of two families, ss reads the last).
    for options in [
        "-A tcp",
        "-f inet",
        "-f inet6",
        "-A inet -f inet6",
        "--family=inet6 -A tcp",
        "-f inet -f inet6",
        "-f inet6 -f inet",
    ] {
        let args: Vec<&str> = ["-Hln"].into_iter().chain(options.split(' ')).collect();
        let ss = netns.command("ss").args(&args).output().unwrap();
        assert!(ss.status.success(), "ss {options}: {ss:?}");
        let mut ours = args.clone();
        ours.extend(["--netns", &netns.name]);
        let ours = tcptab(&ours);
        assert!(ours.status.success(), "{options}: {ours:?}");
        let (ss, ours) = (
            ends(&String::from_utf8(ss.stdout).unwrap()),
            ends(&String::from_utf8(ours.stdout).unwrap()),
        );
        assert!(!ours.is_empty(), "{options}");
        assert_eq!(ours, ss, "tcptab {options} vs ss {options}");
    }
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
