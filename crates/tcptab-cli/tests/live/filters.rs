//! Filters against ss (the owner filters against `ss -p` too), and the
//! /proc format's filtering.

use super::*;

#[test]
fn filters_agree_with_ss() {
    let Some(scenario) = testkit::live("sockets.py") else { return };
    let pid = scenario.pid().to_string();
    let port = |name: &str| scenario.socket(name).local.port().to_string();
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
    let out = ok_line(&format!("list --netns-pid {pid} -l --format proc"));
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
