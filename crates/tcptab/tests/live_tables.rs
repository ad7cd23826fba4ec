//! Real sockets in a fresh network namespace: the tables the kernel prints
//! for them, decoded, checked against what was created and against `ss`,
//! and rendered back byte for byte.

use std::collections::BTreeMap;

use tcptab::procnet::{render_table, TableReader};
use tcptab::procnet::{ProcRoot, ReadOptions};
use tcptab::{Family, RowKind, Socket, State};
use testkit::endpoint;

fn find<'a>(sockets: &'a [Socket], e: &testkit::Expected) -> &'a Socket {
    let state: State = e.state.parse().unwrap();
    let matches: Vec<&Socket> = sockets
        .iter()
        .filter(|s| s.state == state && s.local == e.local && s.remote == e.remote)
        .collect();
    assert_eq!(
        matches.len(),
        1,
        "{} ({} {} -> {}): {:?}",
        e.name,
        e.state,
        e.local,
        e.remote,
        matches
    );
    matches[0]
}

/// The scenario's namespace's tables, read from /proc.
fn proc_tables(scenario: &testkit::Scenario) -> tcptab::procnet::Table {
    let root = ProcRoot::new(scenario.proc_root());
    root.read(ReadOptions::default()).unwrap()
}

#[test]
fn live_tables_decode_to_what_was_created() {
    let Some(scenario) = testkit::live("sockets.py") else { return };
    let table = proc_tables(&scenario);
    assert_eq!(
        table.sockets.len(),
        scenario.manifest.sockets.len(),
        "every socket in the namespace is one the scenario made: {:#?}",
        table.sockets
    );
    for e in &scenario.manifest.sockets {
        let s = find(&table.sockets, e);
        let name = &e.name;
        assert_eq!(s.family.as_str(), e.family, "{name}");
        assert_eq!(s.uid, e.uid, "{name}: uid");
        if let Some(kind) = &e.kind {
            assert_eq!(s.kind.as_str(), kind, "{name}: row kind");
        }
        if let Some(timer) = &e.timer {
            assert_eq!(s.timer.kind.name(), Some(timer.as_str()), "{name}: timer");
        }
        if let Some(rx) = e.rx_queue {
            assert_eq!(s.rx_queue, rx, "{name}: rx_queue");
        }
        if let Some(min) = e.rx_queue_min {
            assert!(s.rx_queue >= min, "{name}: rx_queue {} < {min}", s.rx_queue);
        }
        if let Some(tx) = e.tx_queue {
            assert_eq!(s.tx_queue, tx, "{name}: tx_queue");
        }
        if let Some(min) = e.tx_queue_min {
            assert!(s.tx_queue >= min, "{name}: tx_queue {} < {min}", s.tx_queue);
        }
        // A socket no process holds has no inode; one that is held does.
        assert_eq!(s.inode == 0, e.pids.is_empty(), "{name}: inode {}", s.inode);
        match s.kind {
            RowKind::Full => assert!(s.congestion.is_some(), "{name}"),
            RowKind::TimeWait | RowKind::Request => assert!(s.congestion.is_none(), "{name}"),
        }
    }
    // The FIN_WAIT2 substate of a TIME_WAIT mini-socket, and a full FIN_WAIT2.
    let fin_wait2: Vec<RowKind> = table
        .sockets
        .iter()
        .filter(|s| s.state == State::FinWait2)
        .map(|s| s.kind)
        .collect();
    assert!(
        fin_wait2.contains(&RowKind::Full) && fin_wait2.contains(&RowKind::TimeWait),
        "{fin_wait2:?}"
    );
}

#[test]
fn live_tables_agree_with_ss() {
    let Some(scenario) = testkit::live("sockets.py") else { return };
    let table = proc_tables(&scenario);
    let ss = scenario.ss(&[]);
    // (state, local, peer) -> (recv-q, send-q); for LISTEN ss's Send-Q is the
    // backlog limit, which /proc/net/tcp does not have.
    let ours: BTreeMap<(String, String, String), (u64, Option<u64>)> = table
        .sockets
        .iter()
        .map(|s| {
            let state = s.state.ss_name().unwrap().to_string();
            let send = (s.state != State::Listen).then_some(s.tx_queue as u64);
            (
                (state, endpoint(s.local), endpoint(s.remote)),
                (s.rx_queue as u64, send),
            )
        })
        .collect();
    let theirs: BTreeMap<(String, String, String), (u64, Option<u64>)> = ss
        .iter()
        .map(|r| {
            let state: State = r.state.parse().unwrap();
            let send = (state != State::Listen).then_some(r.send_q);
            (
                (
                    state.ss_name().unwrap().to_string(),
                    r.local.clone(),
                    r.peer.clone(),
                ),
                (r.recv_q, send),
            )
        })
        .collect();
    assert_eq!(
        ours.len(),
        table.sockets.len(),
        "no two sockets share an identity"
    );
    assert_eq!(ours, theirs);
}

#[test]
fn rendering_reproduces_the_live_files_byte_for_byte() {
    let Some(scenario) = testkit::live("sockets.py") else { return };
    let root = ProcRoot::new(scenario.proc_root());
    for family in [Family::Ipv4, Family::Ipv6] {
        let path = root.table_path(family);
        // Read once: timers tick, so a second read would differ.
        let bytes = std::fs::read(&path).unwrap();
        let sockets: Vec<Socket> = TableReader::new(&bytes[..], &path, ReadOptions::default())
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(sockets.len() > 3, "{}", path.display());
        let rendered = render_table(family, &sockets, tcptab::procnet::ByteOrder::native());
        assert_eq!(
            String::from_utf8_lossy(&rendered),
            String::from_utf8_lossy(&bytes),
            "{}",
            path.display()
        );
    }
}
