//! Property tests: render then parse is the identity for every row shape and
//! both families; the fast parser agrees with the reference parser on random
//! valid lines and on random corruptions of them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use proptest::prelude::*;
use tcptab::procnet::ByteOrder;
use tcptab::procnet::{parse_line, reference, render_line};
use tcptab::{
    Congestion, Family, Pointer, RowKind, Socket, Ssthresh, State, Ticks, Timer, TimerKind,
};

fn family() -> impl Strategy<Value = Family> {
    prop_oneof![Just(Family::Ipv4), Just(Family::Ipv6)]
}

fn ip(family: Family) -> BoxedStrategy<IpAddr> {
    match family {
        Family::Ipv4 => any::<u32>()
            .prop_map(|v| IpAddr::V4(Ipv4Addr::from(v)))
            .boxed(),
        Family::Ipv6 => any::<u128>()
            .prop_map(|v| IpAddr::V6(Ipv6Addr::from(v)))
            .boxed(),
    }
}

fn pointer() -> impl Strategy<Value = Pointer> {
    prop_oneof![
        Just(Pointer::ZERO),
        any::<u32>().prop_map(|v| Pointer::from_text(format!("{v:016x}").as_bytes()).unwrap()),
        any::<u64>().prop_map(|v| Pointer::from_text(format!("{v:016x}").as_bytes()).unwrap()),
        any::<u32>().prop_map(|v| Pointer::from_text(format!("{v:08x}").as_bytes()).unwrap()),
        Just(Pointer::from_text(b"(____ptrval____)").unwrap()),
    ]
}

prop_compose! {
    fn congestion(state: State)(
        rto in any::<u64>(), ato in any::<u64>(), qp in any::<u32>(),
        cwnd in any::<u32>(), last in any::<i32>(),
    ) -> Congestion {
        Congestion {
            rto: Ticks(rto),
            ato: Ticks(ato),
            quick_pingpong: qp,
            cwnd,
            ssthresh: Ssthresh::from_column(state, last),
        }
    }
}

/// Any socket a kernel could print, in any of the three row shapes.
fn socket() -> impl Strategy<Value = Socket> {
    (family(), 0u8..3)
        .prop_flat_map(|(family, shape)| {
            let state = match shape {
                0 => (1u8..=0x0B).prop_map(State::from_code).boxed(),
                1 => prop_oneof![Just(State::TimeWait), Just(State::FinWait2)].boxed(),
                _ => Just(State::SynRecv).boxed(),
            };
            (Just(family), Just(shape), state, ip(family), ip(family))
        })
        .prop_flat_map(|(family, shape, state, local, remote)| {
            let timer = match shape {
                0 => prop_oneof![Just(0u8), Just(1), Just(2), Just(4)].boxed(),
                1 => Just(3u8).boxed(),
                _ => Just(1u8).boxed(),
            };
            let congestion = if shape == 0 {
                congestion(state).prop_map(Some).boxed()
            } else {
                Just(None).boxed()
            };
            (
                (Just(family), Just(shape), Just(state)),
                (Just(local), any::<u16>(), Just(remote), any::<u16>()),
                (
                    any::<u32>(),
                    any::<u32>(),
                    timer,
                    any::<u64>(),
                    any::<u32>(),
                ),
                (
                    any::<u32>(),
                    any::<i32>(),
                    any::<u64>(),
                    any::<i32>(),
                    pointer(),
                ),
                (0u32..100_000, congestion),
            )
        })
        .prop_map(
            |(
                (family, shape, state),
                (l, lp, r, rp),
                (tx, rx, tr, when, retr),
                (uid, probes, inode, refc, ptr),
                (sl, congestion),
            )| {
                Socket {
                    sl,
                    family,
                    kind: [RowKind::Full, RowKind::TimeWait, RowKind::Request][shape as usize],
                    state,
                    local: SocketAddr::new(l, lp),
                    remote: SocketAddr::new(r, rp),
                    tx_queue: tx,
                    rx_queue: rx,
                    timer: Timer {
                        kind: TimerKind::from_code(tr),
                        expires: Ticks(when),
                    },
                    retransmits: retr,
                    uid,
                    probes,
                    inode,
                    refcount: refc,
                    pointer: ptr,
                    congestion,
                }
            },
        )
}

fn order() -> impl Strategy<Value = ByteOrder> {
    prop_oneof![Just(ByteOrder::Little), Just(ByteOrder::Big)]
}

fn rendered(s: &Socket, order: ByteOrder) -> Vec<u8> {
    let mut out = Vec::new();
    render_line(s, order, &mut out);
    assert_eq!(out.pop(), Some(b'\n'));
    out
}

/// A corruption of a valid line.
#[derive(Debug, Clone)]
enum Edit {
    Replace(usize, u8),
    Delete(usize),
    Insert(usize, u8),
    Truncate(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    let byte = prop_oneof![
        Just(b' '),
        Just(b':'),
        Just(b'-'),
        Just(b'0'),
        Just(b'9'),
        Just(b'F'),
        Just(b'f'),
        Just(b'G'),
        Just(b'('),
        Just(b')'),
        Just(b'\t'),
        any::<u8>(),
    ];
    prop_oneof![
        (any::<usize>(), byte.clone()).prop_map(|(i, b)| Edit::Replace(i, b)),
        any::<usize>().prop_map(Edit::Delete),
        (any::<usize>(), byte).prop_map(|(i, b)| Edit::Insert(i, b)),
        any::<usize>().prop_map(Edit::Truncate),
    ]
}

fn apply(line: &mut Vec<u8>, edit: &Edit) {
    let n = line.len().max(1);
    match *edit {
        Edit::Replace(i, b) => {
            if !line.is_empty() {
                line[i % n] = b
            }
        }
        Edit::Delete(i) => {
            if !line.is_empty() {
                line.remove(i % n);
            }
        }
        Edit::Insert(i, b) => line.insert(i % (line.len() + 1), b),
        Edit::Truncate(i) => line.truncate(i % n),
    }
}

fn agree(line: &[u8], order: ByteOrder) -> Result<(), TestCaseError> {
    let fast = parse_line(line, order);
    let slow = match std::str::from_utf8(line) {
        Ok(text) => reference::parse_line(text, order),
        Err(_) => Err("not utf-8".into()),
    };
    match (&fast, &slow) {
        (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
        (Err(_), Err(_)) => {}
        _ => prop_assert!(
            false,
            "fast {:?} vs reference {:?} on {:?}",
            fast,
            slow,
            String::from_utf8_lossy(line)
        ),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn render_then_parse_is_identity(s in socket(), order in order()) {
        let line = rendered(&s, order);
        let back = parse_line(&line, order).map_err(|e| TestCaseError::fail(format!("{e}: {}", String::from_utf8_lossy(&line))))?;
        prop_assert_eq!(back, s);
        if s.family == Family::Ipv4 {
            prop_assert!(line.len() >= 149);
        }
    }

    #[test]
    fn fast_parser_agrees_with_reference_on_valid_lines(s in socket(), order in order()) {
        agree(&rendered(&s, order), order)?;
    }

    #[test]
    fn fast_parser_agrees_with_reference_on_corrupted_lines(
        s in socket(), order in order(), edits in proptest::collection::vec(edit(), 1..4),
    ) {
        let mut line = rendered(&s, order);
        for e in &edits {
            apply(&mut line, e);
        }
        agree(&line, order)?;
    }

    #[test]
    fn fast_parser_agrees_with_reference_on_random_tokens(
        tokens in proptest::collection::vec("[0-9A-Fa-f:()x-]{0,18}", 0..20),
        spaces in proptest::collection::vec(1usize..4, 20),
    ) {
        let mut line = String::new();
        for (t, n) in tokens.iter().zip(&spaces) {
            line.push_str(&" ".repeat(*n));
            line.push_str(t);
        }
        agree(line.as_bytes(), ByteOrder::Little)?;
    }
}
