//! ss's filter language, answered as ss answers it: a corpus of ss
//! expressions and random ones over a live namespace (testdata/scenario/
//! filters.py), each run through `ss -tanH` and tcptab in that namespace,
//! which must select the same sockets; through netlink with the filter's
//! program in the kernel, without it, and from /proc.

mod common;

use std::collections::BTreeSet;
use std::process::Command;

use testkit::{normalise_endpoint, Scenario, SsRow};

/// (local, peer): with a state filter ss leaves its State column out, and
/// the two ends name a socket within a namespace.
type Row = (String, String);

/// ss's rows.
fn ss_rows(scenario: &Scenario, words: &[&str]) -> BTreeSet<Row> {
    scenario
        .ss(words)
        .iter()
        .map(|r: &SsRow| (r.local.clone(), r.peer.clone()))
        .collect()
}

/// `10.99.0.1%tt0:5432` without its interface: /proc does not know it.
fn without_interface(endpoint: &str) -> String {
    match (endpoint.find('%'), endpoint.rfind(':')) {
        (Some(p), Some(c)) if p < c => format!("{}{}", &endpoint[..p], &endpoint[c..]),
        _ => endpoint.to_string(),
    }
}

/// `tcptab list` in the namespace of `pid`, with `options`, then the
/// filter's `words`.
fn list(pid: u32, options: &[&str], words: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tcptab"))
        .args(["list", "--netns-pid", &pid.to_string()])
        .args(options)
        .arg("--")
        .args(words)
        .output()
        .expect("running tcptab")
}

/// tcptab's rows for the same words, with `extra` options.
fn ours(pid: u32, words: &[&str], extra: &[&str]) -> Result<BTreeSet<Row>, String> {
    let out = list(pid, &[&["-H"], extra].concat(), words);
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    Ok(String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let w: Vec<&str> = line.split_whitespace().collect();
            (normalise_endpoint(w[3]), normalise_endpoint(w[4]))
        })
        .collect())
}

/// One expression, three ways: the kernel's program, user space only, and
/// (where /proc can answer it) the text tables. Returns ss's row count.
fn agree(scenario: &Scenario, expression: &str) -> usize {
    let words: Vec<&str> = expression.split_whitespace().collect();
    let theirs = ss_rows(scenario, &words);
    let pid = scenario.pid();
    let mut ways: Vec<&[&str]> = vec![&[], &["--no-kernel-filter"], &["--source", "proc"]];
    if expression.contains("autobound") {
        // Only the kernel knows whether a port was bound: without its
        // program, autobound is the ephemeral range alone.
        ways.truncate(1);
    } else if expression.contains("dev ") {
        ways.truncate(2); // /proc does not say which device
    }
    for extra in ways {
        let got = ours(pid, &words, extra)
            .unwrap_or_else(|e| panic!("tcptab {extra:?} refused {expression:?}: {e}"));
        let (got, theirs) = if extra.contains(&"proc") {
            let strip = |rows: &BTreeSet<Row>| -> BTreeSet<Row> {
                rows.iter()
                    .map(|(l, p)| (without_interface(l), p.clone()))
                    .collect()
            };
            (strip(&got), strip(&theirs))
        } else {
            (got, theirs.clone())
        };
        assert_eq!(
            got, theirs,
            "{expression:?} {extra:?}: tcptab (left) and ss (right) differ"
        );
    }
    theirs.len()
}

#[test]
fn a_corpus_of_ss_expressions_selects_what_ss_selects() {
    let Some(scenario) = testkit::live("filters.py") else { return };
    let auto = &scenario.manifest.names["auto"];
    let corpus: Vec<String> = [
        // States, groups, leading state words.
        "state established",
        "state listening",
        "state time-wait",
        "state close-wait",
        "state fin-wait-2",
        "state syn-sent",
        "state connected",
        "state synchronized",
        "state bucket",
        "state big",
        "state all",
        "state established state close-wait",
        "state listening state syn-sent",
        "exclude listening",
        "exclude established exclude listening",
        "state all exclude established",
        "state connected exclude time-wait",
        // Ports: numbers, service names, comparisons in every spelling.
        "dport = :80",
        "dport :80",
        "dport == 80",
        "dport eq :http",
        "sport = :https",
        "sport = :ssh",
        "dport != :80",
        "dport ne :80",
        "sport > :1024",
        "sport gt :1024",
        "sport < :1024",
        "sport lt :1024",
        "sport >= :8080",
        "sport geq :8080",
        "sport ge :8080",
        "dport <= :443",
        "dport leq :443",
        "dport le :443",
        "sport >= :40000 and sport <= :40000",
        // Addresses: prefixes, short prefixes, ports, brackets, names.
        "src 127.0.0.1",
        "src 127.0.0.2",
        "dst 127.0.0.1",
        "dst 127/8",
        "src 127.0.0.0/8",
        "src 10/8",
        "dst 10.99.0.2",
        "dst 10.99.0.2:443",
        "src 127.0.0.1:80",
        "src *:443",
        "dst :8080",
        "dst [::1]",
        "src [::1]:8443",
        "dst [::ffff:127.0.0.1]",
        "src [::ffff:127.0.0.1]:8080",
        "src ::/0",
        "dst 0.0.0.0/0",
        "src [::]",
        "dst localhost",
        "dst localhost:http",
        "src = 127.0.0.1",
        // Operators and precedence, as ss reads them.
        "dport = :80 or sport = :80",
        "dport = :80 || sport = :80",
        "dport = :80 | sport = :80",
        "dport = :80 or sport = :80 and src 127.0.0.5",
        "sport = :80 and dport = :5000 or sport = :5000",
        "sport = :80 & dport = :5000 | sport = :5000",
        "sport = :80 && src 127.0.0.1",
        "sport = :80 src 127.0.0.1",
        "not dport = :80",
        "! dport = :80",
        "not ( sport = :80 or sport = :443 )",
        "( sport = :80 or sport = :443 ) and not dst 127.0.0.2",
        "not not sport = :22",
        "( ( sport = :80 ) )",
        "state established ( dport = :80 or sport = :80 )",
        "state established ( sport = :https or dport = :https )",
        "exclude listening src 127.0.0.1",
        // autobound (the kernel's bind lock and the ephemeral range).
        "autobound",
        "not autobound",
        "state listening autobound",
        "autobound or sport = :80",
        // The bound interface.
        "dev tt0",
        "dev = tt0",
        "dev != tt0",
        "state syn-sent dev tt0",
        "dev lo",
    ]
    .iter()
    .map(|e| e.to_string())
    .chain([format!("sport = :{auto}"), format!("dst 127.0.0.1:{auto}")])
    .collect();
    assert!(corpus.len() >= 60, "{} expressions", corpus.len());
    let mut selecting = 0;
    for expression in &corpus {
        if agree(&scenario, expression) > 0 {
            selecting += 1;
        }
    }
    // The corpus means something: most expressions select sockets.
    assert!(
        selecting * 10 >= corpus.len() * 8,
        "only {selecting} of {} expressions select anything",
        corpus.len()
    );
}

/// A small deterministic generator (xorshift), so a failure repeats.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

/// Random expressions over the scenario's ports and addresses. No
/// zero-length prefix: the kernel's test of one keeps to its family
/// (`::/0` is IPv6 only), ss's own second pass takes every socket, and ss
/// prints what passes both, which under a `not` is neither answer; tcptab
/// answers as the kernel does (the corpus has them where the two agree).
fn random_expression(rng: &mut Rng, depth: u32) -> String {
    let leaves = [
        "sport = :80",
        "dport = :80",
        "sport = :443",
        "dport != :443",
        "sport > :1024",
        "sport < :8080",
        "dport >= :8080",
        "dport <= :22",
        "sport >= :40000",
        "src 127.0.0.1",
        "src 127.0.0.2/32",
        "dst 127/8",
        "src 10.99.0.0/24",
        "dst 10.99.0.2",
        "src [::1]",
        "dst ::1/128",
        "src [::ffff:127.0.0.1]",
        "dst ::ffff:127.0.0.0/104",
        "src fe80::/10",
        "dst 127.0.0.1:80",
        "src [::1]:8443",
        "dst *:8080",
        "dev tt0",
    ];
    if depth == 0 || rng.next().is_multiple_of(3) {
        return rng.pick(&leaves).to_string();
    }
    let a = random_expression(rng, depth - 1);
    let b = random_expression(rng, depth - 1);
    match rng.next() % 5 {
        0 => format!("not ( {a} )"),
        1 => format!("( {a} ) or ( {b} )"),
        2 => format!("( {a} ) and ( {b} )"),
        3 => format!("{a} or {b}"),
        _ => format!("{a} {b}"),
    }
}

#[test]
fn random_expressions_select_what_ss_selects_in_the_kernel_and_out() {
    let Some(scenario) = testkit::live("filters.py") else { return };
    let mut rng = Rng(0x7463_7074_6162);
    let mut selecting = 0;
    let count = 120;
    for _ in 0..count {
        let expression = random_expression(&mut rng, 4);
        if agree(&scenario, &expression) > 0 {
            selecting += 1;
        }
    }
    assert!(
        selecting > count / 3,
        "only {selecting} of {count} select anything"
    );
}

#[test]
fn verbose_says_what_ran_in_the_kernel() {
    let Some(scenario) = testkit::live("filters.py") else { return };
    let run_with = |options: &[&str], words: &[&str]| {
        let out = list(scenario.pid(), &[&["-v"], options].concat(), words);
        assert!(out.status.success());
        String::from_utf8(out.stderr).unwrap()
    };
    let run = |words: &[&str]| run_with(&[], words);
    let whole = run(&["sport = :80 or dport = :80"]);
    assert!(
        whole.contains("filter in the kernel for network namespace")
            && whole.contains(": sport = :80 or dport = :80 (the whole filter"),
        "{whole}"
    );
    assert!(!whole.contains("the request names"), "{whole}");
    // One port in every branch: named in the request too.
    let named = run(&["dport = :80 and ( src 127.0.0.1 or dst [::1]:80 )"]);
    assert!(
        named.contains("the request names remote port 80: the kernel skipped"),
        "{named}"
    );
    let part = run(&["sport = :80 or state listening and dst 127.0.0.1"]);
    assert!(
        part.contains(": dst 127.0.0.1/32 (the rest was tested after the dump"),
        "{part}"
    );
    // What the kernel sent: the matched rows of `sport = :443` and nothing
    // more (with no filter, every socket is sent).
    let sent = |text: &str| -> (u64, u64) {
        let line = text.lines().find(|l| l.ends_with(" matched")).unwrap();
        let n: Vec<u64> = line
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|w| w.parse().ok())
            .collect();
        (n[n.len() - 2], n[n.len() - 1])
    };
    let (sent_filtered, matched) = sent(&run(&["sport = :443"]));
    assert_eq!(sent_filtered, matched);
    let (sent_all, _) = sent(&run_with(&["--no-kernel-filter"], &["sport = :443"]));
    assert!(sent_all > sent_filtered, "{sent_all} vs {sent_filtered}");
}

#[test]
fn bound_only_sockets_are_listed_when_named() {
    let Some(scenario) = testkit::live("filters.py") else { return };
    let bound = ("127.0.0.1:4444".to_string(), "*:*".to_string());
    // Not by default, as ss and /proc: finding them walks the bind table.
    let all = ours(scenario.pid(), &[], &[]).unwrap();
    assert!(!all.contains(&bound), "{all:?}");
    assert_eq!(all, ss_rows(&scenario, &[]));
    let named = ours(scenario.pid(), &["state", "bound-inactive"], &[]).unwrap();
    assert_eq!(named, BTreeSet::from([bound]));
    // /proc has no such rows.
    let proc = ours(
        scenario.pid(),
        &["state", "bound-inactive"],
        &["--source", "proc"],
    )
    .unwrap();
    assert!(proc.is_empty(), "{proc:?}");
}

/// docs/filters.md, "Where ss's answer is not the kernel's": each case
/// there, with ss's answer and tcptab's. tcptab's is the same with the
/// program in the kernel, without it and from /proc; ss's differs exactly
/// as the document says.
#[test]
fn where_ss_differs_the_answer_is_the_kernels() {
    let Some(scenario) = testkit::live("filters.py") else { return };
    let pid = scenario.pid();
    let three_ways = |expression: &str| {
        let words: Vec<&str> = expression.split_whitespace().collect();
        let kernel = ours(pid, &words, &[]).unwrap();
        let user = ours(pid, &words, &["--no-kernel-filter"]).unwrap();
        assert_eq!(kernel, user, "{expression}: with and without the kernel");
        (kernel, ss_rows(&scenario, &words))
    };
    let ipv4 = ours(pid, &[], &["-4"]).unwrap();
    let ipv6 = ours(pid, &[], &["-6"]).unwrap();
    let all = ours(pid, &[], &[]).unwrap();
    // 1. No state left: nothing, where ss falls back to its default
    // without -a (the connected states less TIME-WAIT and SYN-RECV).
    let default = ours(
        pid,
        &[
            "state",
            "connected",
            "exclude",
            "time-wait",
            "exclude",
            "syn-recv",
        ],
        &[],
    )
    .unwrap();
    assert!(!default.is_empty() && default != all);
    for expression in ["exclude all", "exclude all exclude listening"] {
        let (ours, theirs) = three_ways(expression);
        assert!(ours.is_empty(), "{expression}: {ours:?}");
        assert_eq!(theirs, default, "{expression}: ss");
    }
    // 2. A prefix against the other family's sockets, under a negation:
    // the kernel holds them outside the prefix, ss's second pass compares
    // their leading bits and takes them out.
    for (expression, other) in [
        ("not src 0.0.0.0/0", &ipv6),
        ("not src 0/0", &ipv6),
        ("not dst 0.0.0.0/0", &ipv6),
        ("not src 0.0.0.0/8", &ipv6),
        ("not src 0.0.0.0", &ipv6),
        ("not dst ::/0", &ipv4),
        ("not src ::/1", &ipv4),
        ("not dst [::]", &ipv4),
    ] {
        let (ours, theirs) = three_ways(expression);
        assert!(
            theirs.is_subset(&ours),
            "{expression}: ss {theirs:?} ours {ours:?}"
        );
        let only_ours: BTreeSet<Row> = ours.difference(&theirs).cloned().collect();
        assert!(
            !only_ours.is_empty(),
            "{expression}: ss agrees now: update docs/filters.md"
        );
        assert!(
            only_ours.is_subset(other),
            "{expression}: beyond the other family: {only_ours:?}"
        );
        let strip = |rows: &BTreeSet<Row>| -> BTreeSet<Row> {
            rows.iter()
                .map(|(l, p)| (without_interface(l), p.clone()))
                .collect()
        };
        assert_eq!(
            ours_proc(pid, expression),
            strip(&ours),
            "{expression}: from /proc"
        );
    }
}

/// tcptab's rows from /proc (which does not know the bound interface).
fn ours_proc(pid: u32, expression: &str) -> BTreeSet<Row> {
    let words: Vec<&str> = expression.split_whitespace().collect();
    ours(pid, &words, &["--source", "proc"]).unwrap()
}
