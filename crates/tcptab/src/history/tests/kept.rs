//! The rows a writer keeps in memory for its shipper ([`Stored`]) against
//! the file: any sequence of the writer's statements on one row, with
//! counters that go down or are not known, a clock set back and owners
//! seen again, leaves the two equal after each statement.

use std::sync::Arc;

use proptest::prelude::*;

use super::*;
use crate::history::rows;
use crate::history::stored::Stored;
use crate::model::{Owner, Owners};
use crate::track::{Conn, Counters, End};

/// One of the writer's statements on a row.
#[derive(Debug, Clone)]
enum Step {
    /// `rows::update` of the connection as it is now.
    Update(Look),
    /// `rows::update_counters`.
    Counters(Look),
    StateChange(i64, State),
    /// `rows::owners` of the connection's owners ((pid, fd) of a few).
    Owners(Vec<(u32, u32)>),
    Close(i64, i64),
    Reopen,
    Pin(i64),
    Unpin(i64),
    Workload(i64),
}

/// What changes between two looks at a connection.
#[derive(Debug, Clone)]
struct Look {
    last_seen: i64,
    state: State,
    counters: [Option<u64>; 4],
    cookie: u64,
    inode: u64,
    shutdown: Option<u8>,
    congestion: Option<&'static str>,
    owned: bool,
}

fn state() -> impl Strategy<Value = State> {
    prop_oneof![
        Just(State::Established),
        Just(State::FinWait2),
        Just(State::TimeWait),
        Just(State::Close),
        Just(State::Other(0x0e)),
    ]
}

fn look() -> impl Strategy<Value = Look> {
    let counter = || prop::option::of(0u64..5);
    (
        -3000i64..3000,
        state(),
        [counter(), counter(), counter(), counter()],
        0u64..3,
        0u64..3,
        prop::option::of(0u8..3),
        prop::option::of(prop_oneof![Just("cubic"), Just("bbr")]),
        any::<bool>(),
    )
        .prop_map(
            |(last_seen, state, counters, cookie, inode, shutdown, congestion, owned)| Look {
                last_seen: T + last_seen,
                state,
                counters,
                cookie,
                inode,
                shutdown,
                congestion,
                owned,
            },
        )
}

fn step() -> impl Strategy<Value = Step> {
    let at = || (-3000i64..3000).prop_map(|t| T + t);
    prop_oneof![
        look().prop_map(Step::Update),
        look().prop_map(Step::Counters),
        (at(), state()).prop_map(|(at, s)| Step::StateChange(at, s)),
        prop::collection::vec((1u32..4, 3u32..5), 0..3).prop_map(Step::Owners),
        (at(), at()).prop_map(|(at, seen)| Step::Close(at, seen)),
        Just(Step::Reopen),
        at().prop_map(Step::Pin),
        at().prop_map(Step::Unpin),
        (1i64..3).prop_map(Step::Workload),
    ]
}

/// The connection as `look` saw it (first seen at `T`).
fn conn(look: &Look, owners: &[(u32, u32)]) -> Conn {
    let mut d = socket(40500, look.state, look.cookie);
    d.socket.inode = look.inode;
    d.diag.shutdown = look.shutdown;
    d.diag.congestion_algorithm = look.congestion.map(Arc::from);
    let mut entry = EntryBuf::dumped(d);
    let list: Vec<Owner> = owners
        .iter()
        .map(|&(pid, fd)| Owner {
            pid,
            command: Arc::from(format!("cmd{pid}")),
            fd,
        })
        .collect();
    entry.owners = look.owned.then(|| Owners::Owned(list.into()));
    let [bytes_acked, bytes_received, total_retrans, rtt_us] = look.counters;
    Conn {
        id: 1,
        entry,
        first_state: State::Established,
        first_seen: T,
        last_seen: look.last_seen,
        seen_by_poll: true,
        closed: None,
        ended: None,
        counters: Counters {
            bytes_acked,
            bytes_received,
            total_retrans,
            total_rto: None,
            rtt_us,
        },
        last_words: None,
    }
}

/// Applies `step` to the row `id` in the file and to `kept`.
fn apply(
    tx: &rusqlite::Transaction<'_>,
    id: i64,
    kept: &mut Stored,
    stored_owners: &mut Vec<(u32, u32)>,
    (step, seq): (&Step, Option<i64>),
) -> rusqlite::Result<()> {
    match step {
        Step::Update(look) => {
            let c = conn(look, &[]);
            rows::update(tx, id, &c, seq)?;
            kept.update(&c, seq);
        }
        Step::Counters(look) => {
            let c = conn(look, &[]);
            rows::update_counters(tx, id, &c, seq)?;
            kept.update_counters(&c, seq);
        }
        Step::StateChange(at, state) => {
            rows::state_change(tx, id, *at, *state)?;
            kept.state_change(*at, i64::from(state.code()));
        }
        Step::Owners(owners) => {
            let mut look = look_at(T);
            look.owned = true;
            let c = conn(&look, owners);
            kept.owners(&c, stored_owners);
            rows::owners(tx, id, &c, T, stored_owners)?;
        }
        Step::Close(at, seen) => {
            rows::close(tx, id, (*at, End::Destroy), (T, *seen), true, seq)?;
            kept.close((*at, End::Destroy), *seen, seq);
        }
        Step::Reopen => {
            rows::reopen(tx, id, seq)?;
            kept.reopen(seq);
        }
        Step::Pin(seen) => {
            tx.execute(
                "UPDATE connection_rows SET last_seen = ?2 - first_seen, follows = NULL WHERE id = ?1",
                rusqlite::params![id, seen],
            )?;
            kept.pin(*seen);
        }
        Step::Unpin(seen) => {
            tx.execute(
                "UPDATE connection_rows SET last_seen = max(last_seen, ?2 - first_seen), follows = 1 WHERE id = ?1",
                rusqlite::params![id, seen],
            )?;
            kept.unpin(*seen);
        }
        Step::Workload(w) => {
            tx.execute(
                "UPDATE connection_rows SET workload = ?2 WHERE id = ?1",
                rusqlite::params![id, w],
            )?;
            kept.set_workload(*w);
        }
    }
    Ok(())
}

fn look_at(last_seen: i64) -> Look {
    Look {
        last_seen,
        state: State::Established,
        counters: [Some(1), None, Some(0), Some(0)],
        cookie: 1,
        inode: 1,
        shutdown: None,
        congestion: None,
        owned: false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// After every statement, the row kept says what the file says.
    #[test]
    fn a_row_kept_in_memory_is_the_row_in_the_file(
        first in look(),
        steps in prop::collection::vec(step(), 1..12),
    ) {
        let path = scratch("kept");
        drop(Writer::open(&path, 3_600_000).unwrap());
        let mut db = rusqlite::Connection::open(&*path).unwrap();
        let tx = db.transaction().unwrap();
        let c = conn(&first, &[]);
        let boot: i64 = tx.query_row("SELECT max(id) FROM boots", [], |r| r.get(0)).unwrap();
        let netns = rows::namespace(&tx, boot, 4_026_531_840, None, T).unwrap();
        let mut kept = Stored::new((boot, netns, None), &c, Some(1));
        let (id, _) = rows::insert(&tx, &mut kept).unwrap();
        let file = Stored::read(&tx, id).unwrap();
        prop_assert_eq!(file.as_ref(), Some(&kept));
        let mut stored_owners = Vec::new();
        for (i, step) in steps.iter().enumerate() {
            let seq = Some(2 + i as i64);
            apply(&tx, id, &mut kept, &mut stored_owners, (step, seq)).unwrap();
            let file = Stored::read(&tx, id).unwrap();
            prop_assert_eq!(file.as_ref(), Some(&kept), "after {:?}", step);
        }
    }
}
