//! How the kernel is asked for sockets, against the plain dumps per
//! family: a filter compiled into a program (and one it refuses), both
//! families in one walk (held, or handed over in turn), and the ports a
//! request names.

use std::collections::BTreeMap;

use tcptab::diag::{self, NetlinkSocket};
use tcptab::DiagSocket;
use tcptab::{Error, Family, State, StateSet};
use testkit::diag::Replay;
use testkit::endpoint;

mod common;
use common::{dump_namespace, key, ALL, EVERYTHING};

/// The sockets a query selects, by their ends, and its report.
fn selected(query: &tcptab::Query) -> (Vec<(String, String)>, tcptab::Report) {
    let snapshot = query.snapshot().expect("the query");
    let mut ends: Vec<_> = snapshot
        .sockets
        .iter()
        .map(|k| (endpoint(k.socket.local), endpoint(k.socket.remote)))
        .collect();
    ends.sort();
    (ends, snapshot.report)
}

#[test]
fn a_program_the_kernel_refuses_falls_back_to_filtering_here() {
    let Some(scenario) = testkit::live("filters.py") else { return };
    let query = tcptab::Query::new()
        .source(diag::Choice::Netlink)
        .namespaces(tcptab::Namespaces::Pid(scenario.pid()))
        .filter(tcptab::filter::Expr::parse("sport = :80 or dport = :80").unwrap());
    let (compiled, report) = selected(&query);
    let kernel = report.read[0]
        .kernel_filter
        .as_ref()
        .expect("a program ran");
    assert!(kernel.whole, "{kernel:?}");
    // What the kernel sent is what matched: it filtered.
    assert_eq!(report.read[0].sockets, report.read[0].matched);
    assert!(compiled.len() >= 6, "{compiled:?}");
    // Filtered here only: every socket is sent, the same ones match.
    let (here, report) = selected(&query.clone().kernel_filter(false));
    assert_eq!(here, compiled);
    assert!(report.read[0].kernel_filter.is_none());
    assert!(report.read[0].sockets > report.read[0].matched);
    // An operation the kernel does not know: its audit refuses the
    // program (EINVAL), the dump is asked again without one, the answer is
    // the same and the report says so.
    let (refused, report) = selected(&query.clone().kernel_program(vec![99, 4, 8, 0]));
    assert_eq!(refused, compiled);
    let read = &report.read[0];
    assert!(read.kernel_filter.is_none());
    assert!(
        read.notes
            .iter()
            .any(|n| n.contains("the kernel refused the filter program")),
        "{:?}",
        read.notes
    );
    // A jump into the middle of an operation is refused too.
    let bad_jump = vec![7, 12, 6, 0, 0, 0, 0, 0, 80, 0, 0, 0];
    let (refused, _) = selected(&query.kernel_program(bad_jump));
    assert_eq!(refused, compiled);
}

/// One walk handed over in turn (what the commands that poll read): a real
/// one-walk dump's datagrams, recorded and replayed, give its IPv4 sockets
/// in the walk's order and then its IPv6 ones in theirs, each family
/// numbered from 0; the room kept is emptied first; a malformed IPv6
/// message, kept undecoded at first, is still an error.
#[test]
fn one_walk_in_turn_hands_over_ipv4_then_ipv6_in_the_walk_s_order() {
    let Some(scenario) = testkit::live("sockets.py") else { return };
    let ns = scenario.proc_root().join("ns/net");
    let socket = NetlinkSocket::open_in(&ns).expect("a netlink socket in the namespace");
    let mut recorder = testkit::diag::Recorder {
        inner: socket,
        datagrams: Vec::new(),
    };
    let ask = diag::Ask::new(EVERYTHING, StateSet::ALL);
    let mut walked = Vec::new();
    diag::dump_both_each(&mut recorder, &ask, &mut |d| {
        walked.push((d.socket.family, key(&d.socket), d.diag.cookie));
        Ok::<(), Error>(())
    })
    .unwrap();
    let families: Vec<Family> = walked.iter().map(|w| w.0).collect();
    assert!(
        !families.is_sorted(),
        "the walk mixes the families: {families:?}"
    );
    let mut expected = walked.clone();
    expected.sort_by_key(|w| w.0); // stable: each family in the walk's order
    let mut room = b"what the last read left".to_vec();
    let mut in_turn = Vec::new();
    let mut numbers: BTreeMap<Family, Vec<u32>> = BTreeMap::new();
    let replay = &mut Replay::new(recorder.datagrams.clone());
    diag::dump_both_in_turn(replay, &ask, &mut room, &mut |d| {
        in_turn.push((d.socket.family, key(&d.socket), d.diag.cookie));
        numbers
            .entry(d.socket.family)
            .or_default()
            .push(d.socket.sl);
        Ok::<(), Error>(())
    })
    .unwrap();
    assert_eq!(in_turn, expected);
    for (family, sl) in &numbers {
        assert_eq!(*sl, (0..sl.len() as u32).collect::<Vec<_>>(), "{family:?}");
    }

    // An IPv6 message whose inet_diag_msg is cut short: the walk goes on,
    // and the message is refused when its turn comes.
    let mut datagrams = recorder.datagrams;
    let (d, at) = datagrams
        .iter()
        .enumerate()
        .find_map(|(i, d)| {
            let mut at = 0;
            while at + 20 <= d.len() {
                let len = u32::from_ne_bytes(d[at..at + 4].try_into().unwrap()) as usize;
                if d[at + 16] == 10 {
                    return Some((i, at));
                }
                at += len.next_multiple_of(4);
            }
            None
        })
        .expect("an IPv6 socket's message");
    // Its length now says a header and 8 bytes, and the rest of it is gone.
    let len = u32::from_ne_bytes(datagrams[d][at..at + 4].try_into().unwrap()) as usize;
    let mut patched = datagrams[d][..at + 24].to_vec();
    patched[at..at + 4].copy_from_slice(&24u32.to_ne_bytes());
    patched.extend_from_slice(&datagrams[d][at + len.next_multiple_of(4)..]);
    datagrams[d] = patched;
    let mut seen = 0;
    let err = diag::dump_both_in_turn(&mut Replay::new(datagrams), &ask, &mut room, &mut |_| {
        seen += 1;
        Ok::<(), Error>(())
    })
    .unwrap_err();
    assert!(err.to_string().contains("inet_diag_msg"), "{err}");
    let ipv4 = expected.iter().filter(|w| w.0 == Family::Ipv4).count();
    assert!(seen >= ipv4, "{seen} sockets before the error, {ipv4} IPv4");
}

#[test]
fn one_walk_returns_the_sockets_of_the_two_per_family_dumps() {
    let Some(scenario) = testkit::live("sockets.py") else { return };
    let ns = scenario.proc_root().join("ns/net");
    let mut socket = NetlinkSocket::open_in(&ns).expect("a netlink socket in the namespace");
    let ident = |d: &DiagSocket| (key(&d.socket), d.socket.inode, d.diag.cookie);
    let mut per_family: Vec<_> = diag::dump(&mut socket, &ALL, EVERYTHING, StateSet::ALL)
        .unwrap()
        .sockets
        .iter()
        .map(ident)
        .collect();
    let mut one_walk = Vec::new();
    let ask = diag::Ask::new(EVERYTHING, StateSet::ALL);
    diag::dump_both_each(&mut socket, &ask, &mut |d| {
        one_walk.push(ident(&d));
        Ok::<(), tcptab::Error>(())
    })
    .unwrap();
    per_family.sort();
    one_walk.sort();
    // Every state and both families, the request sockets and TIME_WAIT
    // included.
    let states: std::collections::BTreeSet<State> = per_family.iter().map(|k| k.0 .0).collect();
    assert!(states.len() >= 7, "{states:?}");
    assert!(per_family.iter().any(|k| k.0 .1.starts_with('[')));
    assert_eq!(one_walk, per_family);

    // Through the engine, with a program that selects everything: one walk,
    // one walk with more IPv6 sockets than it holds, one dump per family.
    let query = tcptab::Query::new()
        .source(diag::Choice::Netlink)
        .namespaces(tcptab::Namespaces::Pid(scenario.pid()))
        .filter(tcptab::filter::Expr::parse("not sport = :1").unwrap());
    let (walked, report) = selected(&query);
    assert!(
        report.read[0]
            .notes
            .iter()
            .any(|n| n == "both families in one walk of the kernel's tables"),
        "{:?}",
        report.read[0].notes
    );
    let (overflowed, report) = selected(&query.clone().held_ipv6(1));
    assert!(
        report.read[0]
            .notes
            .iter()
            .any(|n| n.contains("IPv6 read again by its own dump")),
        "{:?}",
        report.read[0].notes
    );
    let (two, _) = selected(&query.clone().one_walk(false));
    assert_eq!(walked, two);
    assert_eq!(overflowed, two);
    assert_eq!(two.len(), per_family.len());
    // The tables still come one family after the other.
    let snapshot = query.snapshot().unwrap();
    let families: Vec<Family> = snapshot.sockets.iter().map(|k| k.socket.family).collect();
    assert!(families.is_sorted_by_key(|f| *f == Family::Ipv6));

    // Every socket, each family's dump read ahead on a thread of its own or not:
    // the same sockets in the same order (the kernel's, family by family).
    let all = tcptab::Query::new()
        .source(diag::Choice::Netlink)
        .namespaces(tcptab::Namespaces::Pid(scenario.pid()));
    let in_order = |q: &tcptab::Query| -> Vec<(String, String, Family)> {
        q.snapshot()
            .unwrap()
            .sockets
            .iter()
            .map(|k| {
                (
                    endpoint(k.socket.local),
                    endpoint(k.socket.remote),
                    k.socket.family,
                )
            })
            .collect()
    };
    let ahead = in_order(&all);
    assert_eq!(ahead, in_order(&all.clone().read_ahead(false)));
    assert!(ahead.iter().any(|k| k.2 == Family::Ipv6), "{ahead:?}");
    assert_eq!(ahead.len(), per_family.len());

    // Both families in one walk on the caller's thread (what the commands
    // that poll ask): the same sockets in the same order, each numbered
    // within its family, the same tables read, and with the kernel's
    // fields (cookie, state, tcp_info).
    let one_walk = all.clone().one_walk_all(true);
    assert_eq!(ahead, in_order(&one_walk));
    let in_turn = all
        .clone()
        .read_ahead(false)
        .extensions(diag::Extensions::TCP_INFO);
    let one_walk = one_walk.extensions(diag::Extensions::TCP_INFO);
    let looks = |q: &tcptab::Query| {
        let snapshot = q.snapshot().unwrap();
        let sockets: Vec<_> = snapshot
            .sockets
            .iter()
            .map(|k| {
                let diag = k.diag.as_ref().expect("netlink's fields");
                let info = diag.tcp_info.as_ref().map(|i| i.state);
                (
                    endpoint(k.socket.local),
                    k.socket.family,
                    k.socket.sl,
                    diag.cookie,
                    k.socket.state,
                    info,
                )
            })
            .collect();
        (sockets, snapshot.report.read)
    };
    let (walked, read) = looks(&one_walk);
    let (expected, expected_read) = looks(&in_turn);
    assert_eq!(walked, expected);
    assert_eq!(read, expected_read);
    assert_eq!(read[0].tables, [Family::Ipv4, Family::Ipv6]);
    assert!(walked.iter().any(|k| k.5.is_some()), "{walked:?}");
    // Numbered from 0 in each family, as /proc numbers its rows.
    for family in [Family::Ipv4, Family::Ipv6] {
        let sl: Vec<u32> = walked
            .iter()
            .filter(|k| k.1 == family)
            .map(|k| k.2)
            .collect();
        assert_eq!(sl, (0..sl.len() as u32).collect::<Vec<_>>(), "{family:?}");
    }
}

/// The ports a dump request names (`inet_diag_sockid`'s, for the kernel
/// to skip other sockets before it runs a program): for each port of a
/// live table, as local and as remote port, per family and in one walk,
/// the kernel sends exactly the sockets on that port (no listener for a
/// remote port), both families, every state.
#[test]
fn the_kernel_sends_only_the_sockets_on_the_ports_a_request_names() {
    let Some(scenario) = testkit::live("sockets.py") else { return };
    let ns = scenario.proc_root().join("ns/net");
    let mut socket = NetlinkSocket::open_in(&ns).unwrap();
    let everything = dump_namespace(&scenario);
    let ident = |d: &DiagSocket| (key(&d.socket), d.diag.cookie);
    let mut ports: Vec<u16> = everything
        .iter()
        .flat_map(|d| [d.socket.local.port(), d.socket.remote.port()])
        .filter(|&p| p != 0)
        .collect();
    ports.sort();
    ports.dedup();
    assert!(ports.len() >= 4, "{ports:?}");
    let mut listeners_left_out = 0;
    for port in ports {
        for (local, remote) in [(port, 0), (0, port)] {
            let named = diag::Ports { local, remote };
            let mut expected: Vec<_> = everything
                .iter()
                .filter(|d| local == 0 || d.socket.local.port() == local)
                .filter(|d| remote == 0 || d.socket.remote.port() == remote)
                .map(ident)
                .collect();
            expected.sort();
            let mut per_family = Vec::new();
            let ask = diag::Ask {
                ports: named,
                ..diag::Ask::new(EVERYTHING, StateSet::ALL)
            };
            diag::dump_each(&mut socket, &ALL, &ask, &mut |d| {
                per_family.push(ident(&d));
                Ok::<(), Error>(())
            })
            .unwrap();
            per_family.sort();
            assert_eq!(per_family, expected, "{named:?}, per family");
            let mut one_walk = Vec::new();
            diag::dump_both_each(&mut socket, &ask, &mut |d| {
                one_walk.push(ident(&d));
                Ok::<(), Error>(())
            })
            .unwrap();
            one_walk.sort();
            assert_eq!(one_walk, expected, "{named:?}, one walk");
            if remote != 0 {
                listeners_left_out += everything
                    .iter()
                    .filter(|d| d.socket.state == State::Listen && d.socket.local.port() == port)
                    .count();
            }
        }
    }
    // A listener's port was named as a remote port too: left out.
    assert!(listeners_left_out > 0);
}
