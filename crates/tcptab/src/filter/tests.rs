//! The language's unit tests.

use super::*;

#[test]
fn nesting_and_length_are_bounded() {
    let deep = format!("{}sport = :22{}", "( ".repeat(2_000), " )".repeat(2_000));
    let e = Expr::parse(&deep).unwrap_err();
    assert!(e.message.contains("nested more than 100 deep"), "{e}");
    let nots = format!("{}sport = :22", "not ".repeat(5_000));
    assert!(Expr::parse(&nots)
        .unwrap_err()
        .message
        .contains("the limit"));
    // Within the limit it parses, and evaluates.
    let ok = format!("{}sport = :22{}", "( ".repeat(100), " )".repeat(100));
    assert!(Expr::parse(&ok).is_ok());
    let long = vec!["sport = :22"; 4_000].join(" or ");
    let e = Expr::parse(&long).unwrap_err();
    assert!(e.message.contains("at most 10000 words"), "{e}");
    let fine = vec!["sport = :22"; 2_000].join(" or ");
    let expr = Expr::parse(&fine).unwrap();
    let socket =
        crate::model::Socket::empty(crate::model::Family::Ipv4, crate::model::RowKind::Full);
    assert!(!expr.matches(&socket, None, None));
}

#[test]
fn leading_states_read_as_ss_reads_them() {
    let set = |e: Expr| match e {
        Expr::State(s) => s,
        other => panic!("{other:?}"),
    };
    let union = set(Expr::parse("state established state close-wait").unwrap());
    assert!(union.contains(State::Established) && union.contains(State::CloseWait));
    assert!(!union.contains(State::Listen));
    let excluded = set(Expr::parse("exclude listening").unwrap());
    assert!(!excluded.contains(State::Listen) && excluded.contains(State::TimeWait));
    let all_but = set(Expr::parse("state all exclude established").unwrap());
    assert!(!all_but.contains(State::Established) && all_but.contains(State::Listen));
    // One `state` before `or` is an ordinary condition of the expression.
    assert!(matches!(
        Expr::parse("state established or state listening").unwrap(),
        Expr::Or(..)
    ));
    // With an expression after the run: and-ed, one `and` skipped.
    let e = Expr::parse("state established state close-wait and sport = :22").unwrap();
    assert!(matches!(e, Expr::And(..)), "{e:?}");
    assert!(Expr::parse("state").is_err());
    assert!(Expr::parse("exclude nosuchstate").is_err());
}

#[test]
fn a_bad_word_is_quoted_short() {
    let word = "x".repeat(100_000);
    let e = Expr::parse(&word).unwrap_err().to_string();
    assert!(e.len() < 200, "{} bytes", e.len());
    assert!(e.contains("(100000 characters)"), "{e}");
    let e = word.parse::<PortRange>().unwrap_err();
    assert!(e.len() < 200, "{e}");
}
use crate::procnet::{parse_line, ByteOrder};

fn sock(line: &str) -> Socket {
    parse_line(line.as_bytes(), ByteOrder::Little).unwrap()
}

const HTTPS: &str = "   7: 0500000A:A8CA 22D8B85D:01BB 01 000005A8:00000000 01:00000017 00000000  1000        0 98765 2 0000000000000000 23 4 30 10 -1";
const LISTEN: &str = "   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 23145 1 0000000000000000 100 0 0 10 0";
const MAPPED: &str = "   7: 0000000000000000FFFF00000A01A8C0:1F90 0000000000000000FFFF00003201A8C0:C93B 01 00000000:00000000 00:00000000 00000000  1000        0 99100 1 0000000000000000 20 4 0 10 -1";

fn m(expr: &str, line: &str) -> bool {
    Expr::parse(expr).unwrap().matches(&sock(line), None, None)
}

#[test]
fn expressions() {
    assert!(m(
        "state established and ( dport = :443 or dport = :80 )",
        HTTPS
    ));
    assert!(!m(
        "state established and ( dport = :22 or dport = :80 )",
        HTTPS
    ));
    assert!(m("dst 93.184.216.0/24", HTTPS));
    assert!(m("dst 93.184.216.34:443", HTTPS));
    assert!(!m("dst 93.184.216.34:80", HTTPS));
    assert!(m("src 10.0.0.5 sport > :1024", HTTPS));
    assert!(m("not state listening", HTTPS));
    assert!(m("!(state listening)", HTTPS));
    assert!(m("state listening", LISTEN));
    assert!(m("sport = :22 || sport = :23", LISTEN));
    assert!(m("state connected", HTTPS) && !m("state connected", LISTEN));
    // A mapped address matches its IPv4 form, and the mapped form.
    assert!(m("src 192.168.1.0/24", MAPPED));
    assert!(m("src ::ffff:192.168.1.10", MAPPED));
    assert!(m("dst [::ffff:192.168.1.50]:51515", MAPPED));
    assert!(m("", HTTPS));
}

#[test]
fn errors_point_at_the_word() {
    let e = Expr::parse("state established and ( dport = :nosuchservice )").unwrap_err();
    assert_eq!((e.word, e.text.as_str()), (7, ":nosuchservice"));
    assert!(e.message.contains("/etc/services"), "{e}");
    let e = Expr::parse("dst nosuchhost.invalid").unwrap_err();
    assert!(e.message.contains("/etc/hosts"), "{e}");
    let e = Expr::parse("dport = :70000").unwrap_err();
    assert!(e.message.contains("not a port"), "{e}");
    let e = Expr::parse("state estabished").unwrap_err();
    assert_eq!(e.word, 2);
    assert!(
        e.to_string().contains("unknown TCP state 'estabished'"),
        "{e}"
    );
    let e = Expr::parse("( dport = :80").unwrap_err();
    assert_eq!(e.word, 0, "{e}");
    let e = Expr::parse("dst 10.0.0.0/33").unwrap_err();
    assert_eq!(e.word, 2, "{e}");
    let e = Expr::parse("dport = :80 )").unwrap_err();
    assert_eq!(e.word, 4, "{e}");
    let e = Expr::parse("frobnicate").unwrap_err();
    assert_eq!(e.to_string(), "filter: word 1 'frobnicate': expected a condition (state, sport, dport, src, dst, dev, autobound, cgroup, unit, container, pod) or '('");
}

#[test]
fn and_and_or_bind_equally_from_the_left() {
    // ss: `A or B and C` is `(A or B) and C`.
    let e = Expr::parse("dport = :80 or sport = :80 and src 127.0.0.5").unwrap();
    assert_eq!(
        e.to_string(),
        "( dport = :80 or sport = :80 ) and src 127.0.0.5/32"
    );
    let e = Expr::parse("sport = :1 & dport = :2 | sport = :3").unwrap();
    assert_eq!(e.to_string(), "( sport = :1 and dport = :2 ) or sport = :3");
    let e = Expr::parse("sport = :1 or ( dport = :2 dport = :3 )").unwrap();
    assert_eq!(e.to_string(), "sport = :1 or ( dport = :2 and dport = :3 )");
}

#[test]
fn ss_words_for_ports_hosts_devices() {
    let s = |t: &str| Expr::parse(t).unwrap().to_string();
    assert_eq!(s("dport = :http"), "dport = :80");
    assert_eq!(s("sport geq :ssh"), "sport >= :22");
    assert_eq!(s("dst localhost:https"), "dst 127.0.0.1/32:443");
    assert_eq!(s("src *:22"), "sport = :22");
    assert_eq!(s("dst [::1]:443"), "dst [::1]/128:443");
    assert_eq!(s("dst 10/8"), "dst 10.0.0.0/8");
    assert_eq!(s("dev lo or dev != 3"), "dev lo or not dev 3");
    assert_eq!(s("autobound"), "autobound");
    // Facts bind per namespace.
    let mut facts = Facts::default();
    facts.interfaces.insert("lo".into(), 1);
    facts.ephemeral = PortRange {
        low: 1000,
        high: 2000,
    };
    let bound = Expr::parse("dev lo and autobound").unwrap().bind(&facts);
    let mut socket =
        crate::model::Socket::empty(crate::model::Family::Ipv4, crate::model::RowKind::Full);
    socket.local = "127.0.0.1:1500".parse().unwrap();
    let diag = Diag {
        interface: 1,
        ..Default::default()
    };
    assert!(bound.matches(&socket, Some(&diag), None));
    assert!(!bound.matches(&socket, None, None), "dev needs netlink");
    socket.local = "127.0.0.1:2500".parse().unwrap();
    assert!(!bound.matches(&socket, Some(&diag), None));
    let unbound = Expr::parse("dev eth9").unwrap().bind(&facts);
    assert!(!unbound.matches(&socket, Some(&Diag::default()), None));
}

#[test]
fn state_groups_follow_ss() {
    let bucket = StateSet::from_name("bucket").unwrap();
    assert!(bucket.contains(State::TimeWait) && bucket.contains(State::SynRecv));
    assert!(!bucket.contains(State::Established));
    let sync = StateSet::from_name("synchronized").unwrap();
    assert!(!sync.contains(State::SynSent) && sync.contains(State::CloseWait));
    let big = StateSet::from_name("big").unwrap();
    assert!(big.contains(State::Listen) && !big.contains(State::TimeWait));
    assert!(StateSet::from_name("FIN-WAIT-2")
        .unwrap()
        .contains(State::FinWait2));
}

#[test]
fn ports_and_prefixes() {
    assert_eq!(
        "1000-2000".parse::<PortRange>().unwrap(),
        PortRange {
            low: 1000,
            high: 2000
        }
    );
    assert_eq!(
        ":443".parse::<PortRange>().unwrap(),
        PortRange {
            low: 443,
            high: 443
        }
    );
    assert!("2000-1000".parse::<PortRange>().is_err());
    assert!("http".parse::<PortRange>().is_err());
    // A mapped prefix holds mapped addresses only; an IPv4 prefix both.
    let mapped: Cidr = "::ffff:10.0.0.0/104".parse().unwrap();
    let v4: Cidr = "10/8".parse().unwrap();
    assert_eq!(v4, "10.0.0.0/8".parse().unwrap());
    let m = |a: &str| a.parse::<IpAddr>().unwrap();
    assert!(mapped.contains(m("::ffff:10.1.2.3")) && !mapped.contains(m("10.1.2.3")));
    assert!(v4.contains(m("::ffff:10.1.2.3")) && v4.contains(m("10.1.2.3")));
    // Length 0 holds a family (IPv4's with the mapped addresses), as
    // the kernel judges it.
    let any4: Cidr = "0.0.0.0/0".parse().unwrap();
    assert!(!any4.contains(m("::1")) && any4.contains(m("::ffff:1.2.3.4")));
    assert!(!"::/0".parse::<Cidr>().unwrap().contains(m("1.2.3.4")));
    assert_eq!(
        "127".parse::<Cidr>().unwrap(),
        "127.0.0.0/32".parse().unwrap()
    );
    assert!("010.0.0.1".parse::<Cidr>().is_err());
    assert!("1.2.3.4.5".parse::<Cidr>().is_err());
    assert!("10.0.0.0/8x".parse::<Cidr>().is_err());
    assert!("fe80::/10"
        .parse::<Cidr>()
        .unwrap()
        .contains("fe80::1".parse().unwrap()));
}

#[test]
fn a_family_is_read_only_where_the_filter_allows_it() {
    use crate::model::Family::{Ipv4, Ipv6};
    let v4 = || Expr::Family(Ipv4);
    let v6 = || Expr::Family(Ipv6);
    let port = || Expr::parse("dport = :22").unwrap();
    let and = |a: Expr, b: Expr| Expr::And(Box::new(a), Box::new(b));
    let or = |a: Expr, b: Expr| Expr::Or(Box::new(a), Box::new(b));
    for (expr, ipv4, ipv6) in [
        (Expr::All, true, true),
        (port(), true, true),
        (and(v4(), port()), true, false),
        (and(port(), v6()), false, true),
        (or(v4(), v6()), true, true),
        (or(and(v4(), port()), v6()), true, true),
        (and(v4(), v6()), false, false),
    ] {
        assert_eq!(
            (expr.may_be(Ipv4), expr.may_be(Ipv6)),
            (ipv4, ipv6),
            "{expr:?}"
        );
    }
}
