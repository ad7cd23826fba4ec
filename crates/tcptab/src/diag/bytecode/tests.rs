use super::kernel::{audit, run, InetDiagEntry};
use super::*;
use crate::filter::Cidr;
use crate::model::{Family, RowKind, Socket};
use proptest::prelude::*;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

/// Addresses and ports from a small pool, so that conditions hit.
fn address() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        Just(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1))),
        Just(IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3))),
        Just(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        Just(IpAddr::V6(Ipv6Addr::LOCALHOST)),
        Just(IpAddr::V6(Ipv4Addr::new(127, 0, 0, 1).to_ipv6_mapped())),
        Just(IpAddr::V6(Ipv4Addr::new(10, 1, 9, 9).to_ipv6_mapped())),
        Just(IpAddr::V6("fe80::1".parse().unwrap())),
        Just(IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
    ]
}

fn port() -> impl Strategy<Value = u16> {
    prop_oneof![
        Just(0u16),
        Just(22),
        Just(80),
        Just(443),
        Just(40000),
        any::<u16>()
    ]
}

fn side() -> impl Strategy<Value = Side> {
    prop_oneof![Just(Side::Local), Just(Side::Remote), Just(Side::Either)]
}

fn cmp() -> impl Strategy<Value = Cmp> {
    prop_oneof![
        Just(Cmp::Eq),
        Just(Cmp::Ne),
        Just(Cmp::Lt),
        Just(Cmp::Le),
        Just(Cmp::Gt),
        Just(Cmp::Ge)
    ]
}

fn leaf() -> impl Strategy<Value = Expr> {
    prop_oneof![
        (side(), cmp(), port()).prop_map(|(side, cmp, port)| Expr::Port { side, cmp, port }),
        (side(), port(), port()).prop_map(|(side, a, b)| Expr::PortRange {
            side,
            range: PortRange {
                low: a.min(b),
                high: a.max(b)
            }
        }),
        (side(), address(), 0u8..=128, proptest::option::of(port())).prop_map(
            |(side, address, prefix, port)| {
                let max = if address.is_ipv4() { 32 } else { 128 };
                Expr::Addr {
                    side,
                    net: Cidr {
                        address,
                        prefix: prefix.min(max),
                    },
                    port,
                }
            }
        ),
        (0u32..3).prop_map(|i| Expr::Dev {
            name: i.to_string(),
            index: Some(i)
        }),
        proptest::option::of(1u64..4).prop_map(|id| Expr::Cgroup {
            path: format!("/cg{id:?}"),
            id
        }),
        // Tested here only: the workload's names.
        Just(Expr::Unit("nginx.service".into())),
        // What the kernel cannot test: states, uid.
        Just(Expr::State(crate::model::StateSet::of(&[
            crate::model::State::Listen
        ]))),
        Just(Expr::Uid(0)),
    ]
}

fn expr() -> impl Strategy<Value = Expr> {
    leaf().prop_recursive(5, 40, 2, |inner| {
        prop_oneof![
            inner.clone().prop_map(|e| Expr::Not(Box::new(e))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Expr::And(Box::new(a), Box::new(b))),
            (inner.clone(), inner).prop_map(|(a, b)| Expr::Or(Box::new(a), Box::new(b))),
        ]
    })
}

fn kernel_bytes(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(a) => {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&a.octets());
            b
        }
        IpAddr::V6(a) => a.octets(),
    }
}

/// A socket of one family (both ends), as the engine and the kernel
/// see it.
fn socket() -> impl Strategy<Value = (Socket, crate::model::Diag, InetDiagEntry)> {
    (
        address(),
        address(),
        port(),
        port(),
        0u32..3,
        any::<u32>(),
        1u64..4,
    )
        .prop_map(|(a, b, sport, dport, ifindex, uid, cgroup_id)| {
            // Both ends of one family: the first decides.
            let family = if a.is_ipv4() {
                Family::Ipv4
            } else {
                Family::Ipv6
            };
            let b = match (a, b) {
                (IpAddr::V4(_), IpAddr::V6(_)) => IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)),
                (IpAddr::V6(_), IpAddr::V4(v4)) => IpAddr::V6(v4.to_ipv6_mapped()),
                _ => b,
            };
            let mut s = Socket::empty(family, RowKind::Full);
            s.local = SocketAddr::new(a, sport);
            s.remote = SocketAddr::new(b, dport);
            s.uid = uid % 2;
            let diag = crate::model::Diag {
                interface: ifindex,
                cgroup_id,
                ..Default::default()
            };
            let entry = InetDiagEntry {
                family: if a.is_ipv4() { 2 } else { 10 },
                saddr: kernel_bytes(a),
                daddr: kernel_bytes(b),
                sport,
                dport,
                bind_locked: false,
                ifindex,
                cgroup_id,
            };
            (s, diag, entry)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// The kernel's answer to a compiled filter: exactly the filter's
    /// when it ran whole, a superset otherwise; and the kernel's audit
    /// accepts every program.
    #[test]
    fn programs_answer_as_the_filter_does(e in expr(), sockets in proptest::collection::vec(socket(), 1..24)) {
        let program = compile(&e);
        if let Some(p) = &program {
            prop_assert!(audit(&p.bytes).is_ok(), "{e}: {:?} refused: {:?}", p.bytes, audit(&p.bytes));
        }
        for (s, diag, entry) in &sockets {
            let ours = e.matches(s, Some(diag), None);
            let kernel = program.as_ref().is_none_or(|p| run(&p.bytes, entry));
            match &program {
                Some(p) if p.whole => prop_assert_eq!(ours, kernel, "{} on {:?}", e, s.local),
                _ => prop_assert!(!ours || kernel, "{} drops {:?} -> {:?}", e, s.local, s.remote),
            }
        }
    }

    /// The ports a request's socket id carries drop no socket the filter
    /// selects (the kernel skips a socket whose port differs).
    #[test]
    fn fixed_ports_drop_nothing_selected(e in expr(), sockets in proptest::collection::vec(socket(), 1..24)) {
        let ports = Ports::of(&e);
        for (s, diag, _) in &sockets {
            if e.matches(s, Some(diag), None) {
                prop_assert!(ports.local == 0 || ports.local == s.local.port(), "{} fixes {:?} but selects {:?}", e, ports, s.local);
                prop_assert!(ports.remote == 0 || ports.remote == s.remote.port(), "{} fixes {:?} but selects {:?}", e, ports, s.remote);
            }
        }
    }
}

#[test]
fn filters_on_one_port_fix_it_in_the_request() {
    let ports = |f: &str| {
        let p = Ports::of(&Expr::parse(f).unwrap());
        (p.local, p.remote)
    };
    assert_eq!(ports("dport = :5432"), (0, 5432));
    assert_eq!(ports("sport = :22 and state established"), (22, 0));
    assert_eq!(ports("dst 10.0.0.1:80 and src :8080"), (8080, 80));
    assert_eq!(ports("dport = :80 or dport = :80"), (0, 80));
    let one = |low, high| Expr::PortRange {
        side: Side::Local,
        range: PortRange { low, high },
    };
    assert_eq!(Ports::of(&one(443, 443)).local, 443);
    assert_eq!(Ports::of(&one(443, 444)).local, 0);
    // Each branch its own port, a comparison, either end, a negation, 0:
    // nothing fixed.
    assert_eq!(ports("dport = :80 or dport = :443"), (0, 0));
    assert_eq!(ports("dport > :80"), (0, 0));
    assert_eq!(ports("not dport = :80"), (0, 0));
    assert_eq!(ports("dport = :0"), (0, 0));
    assert_eq!(
        Ports::of(&Expr::Port {
            side: Side::Either,
            cmp: Cmp::Eq,
            port: 80
        }),
        Ports::default()
    );
}

#[test]
fn what_cannot_run_in_the_kernel_is_left_out() {
    let e = Expr::parse("uid 0 or sport = :22").unwrap_or_else(|_| {
        Expr::Or(
            Box::new(Expr::Uid(0)),
            Box::new(Expr::parse("sport = :22").unwrap()),
        )
    });
    // Either side may hold without the kernel knowing: nothing to run.
    assert_eq!(compile(&e), None);
    let e = Expr::parse("state established and sport = :22").unwrap();
    let p = compile(&e).unwrap();
    assert!(!p.whole);
    assert_eq!(p.runs.to_string(), "sport = :22");
    let e = Expr::parse("not ( state established and sport = :22 )").unwrap();
    // not (unknown and X) is wider than not X: nothing narrows it.
    assert_eq!(compile(&e), None);
    let e = Expr::parse("sport = :22 and dport != :80").unwrap();
    let p = compile(&e).unwrap();
    assert!(p.whole);
    assert_eq!(p.bytes.len(), 12 + 12 + 4);
    // An interface the namespace lacks matches nothing: the kernel
    // sends nothing.
    let e = Expr::Dev {
        name: "nosuch".into(),
        index: None,
    };
    let p = compile(&e).unwrap();
    assert_eq!(p.bytes, [1, 4, 8, 0]);
    // A cgroup: one operation with the id after it, as ss sends it.
    let e = Expr::Cgroup {
        path: "/a".into(),
        id: Some(0x0102),
    };
    let p = compile(&e).unwrap();
    assert!(p.whole);
    assert_eq!(p.bytes[..4], [13, 12, 16, 0]);
    assert_eq!(p.bytes[4..], 0x0102u64.to_ne_bytes());
}
