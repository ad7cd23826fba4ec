//! Exact lifetimes, against what really happened: `testdata/scenario/
//! ledger.py` opens and closes thousands of connections at 500 a second
//! from two named processes, in every way a connection ends (the client
//! first, the server first, both reset, a flash of a few milliseconds, one
//! closed while no recorder runs), and writes its own ledger. `tcptab
//! record` (killed with SIGKILL in the middle and started again), `watch`
//! and `top --format jsonl` run beside it; afterwards every socket end of
//! the ledger is in each of their answers exactly once, nothing else is,
//! owners and byte counts are the ledger's, and the state at sampled
//! moments is the kernel's.

mod answers;
#[path = "../common/mod.rs"]
mod common;
use answers::*;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::recorder::{at, history, ledger_scenario, record, scratch_db, sql, stop, wait_polls};
use serde_json::Value;
use testkit::Scenario;

/// One connection of the ledger.
#[derive(Debug, Clone)]
struct Conn {
    id: u64,
    how: String,
    client: String,
    server: String,
    client_pid: u64,
    server_pid: u64,
    opened: i64,
    closed: i64,
    server_closed: i64,
    sent: u64,
    received: u64,
    /// Each side's socket cookie (the kernel's number for it, never
    /// reused, where its ends can be).
    client_cookie: u64,
    server_cookie: u64,
}

/// One socket end of a connection: (its ends as `local`, `remote`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Side {
    Client,
    Server,
}

impl Conn {
    fn ends(&self, side: Side) -> (String, String) {
        match side {
            Side::Client => (self.client.clone(), self.server.clone()),
            Side::Server => (self.server.clone(), self.client.clone()),
        }
    }

    fn pid(&self, side: Side) -> u64 {
        match side {
            Side::Client => self.client_pid,
            Side::Server => self.server_pid,
        }
    }

    fn cookie(&self, side: Side) -> u64 {
        match side {
            Side::Client => self.client_cookie,
            Side::Server => self.server_cookie,
        }
    }

    /// When this side's socket was closed by its process.
    fn close(&self, side: Side) -> i64 {
        match side {
            Side::Client => self.closed,
            Side::Server => self.server_closed,
        }
    }

    /// Whether this side goes to TIME_WAIT (it closed first).
    fn time_wait(&self, side: Side) -> bool {
        match side {
            Side::Client => matches!(self.how.as_str(), "client_first" | "flash" | "again"),
            Side::Server => self.how == "server_first",
        }
    }

    /// Whether the kernel keeps the byte counts to the end (a reset
    /// zeroes them before the notification).
    fn counted(&self) -> bool {
        self.how != "reset"
    }
}

fn ledger(path: &Path) -> Vec<Conn> {
    let mut server_closed: HashMap<u64, (i64, u64)> = HashMap::new();
    for line in std::fs::read_to_string(format!("{}.server", path.display()))
        .unwrap()
        .lines()
    {
        let v: Value = serde_json::from_str(line).unwrap();
        server_closed.insert(
            v["id"].as_u64().unwrap(),
            (
                v["server_closed_ms"].as_i64().unwrap(),
                v["server_cookie"].as_u64().unwrap(),
            ),
        );
    }
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap();
            let id = v["id"].as_u64().unwrap();
            let (server_closed, server_cookie) = *server_closed
                .get(&id)
                .unwrap_or_else(|| panic!("connection {id}: the server logged no close"));
            Conn {
                id,
                how: v["how"].as_str().unwrap().to_string(),
                client: v["client"].as_str().unwrap().to_string(),
                server: v["server"].as_str().unwrap().to_string(),
                client_pid: v["client_pid"].as_u64().unwrap(),
                server_pid: v["server_pid"].as_u64().unwrap(),
                opened: v["opened_ms"].as_i64().unwrap(),
                closed: v["closed_ms"].as_i64().unwrap(),
                server_closed,
                sent: v["sent"].as_u64().unwrap(),
                received: v["received"].as_u64().unwrap(),
                client_cookie: v["client_cookie"].as_u64().unwrap(),
                server_cookie,
            }
        })
        .collect()
}

/// `ADDR:PORT` of a record's local or remote end.
fn end(r: &Value, which: &str) -> String {
    format!(
        "{}:{}",
        r[format!("{which}_address")].as_str().unwrap(),
        r[format!("{which}_port")]
    )
}

/// Which ledger end a record (with its own time window) is: the latest
/// ledger connection with those ends whose life overlaps [from, to] and
/// that had opened by `from`, or by `to` with `by_to`.
fn which(
    index: &HashMap<(String, String), Vec<(usize, Side)>>,
    conns: &[Conn],
    r: &Value,
    from: i64,
    to: i64,
) -> Option<(usize, Side)> {
    let hint = Hint {
        opened_by: from,
        closed_near: to,
        closed_by: None,
        taken: &[],
    };
    which_with(index, conns, r, from, to, hint)
}

/// What else is known of a record's connection.
struct Hint<'a> {
    /// It had opened by then.
    opened_by: i64,
    /// A reset one closed near then.
    closed_near: i64,
    /// Its process had closed its end by then (a record of a closing: the
    /// kernel destroys a socket at its close or after it, never before).
    closed_by: Option<i64>,
    /// Ends already told by another record of the same output (two
    /// connections on the same ends closed in one of top's frames).
    taken: &'a [(usize, Side)],
}

fn which_with(
    index: &HashMap<(String, String), Vec<(usize, Side)>>,
    conns: &[Conn],
    r: &Value,
    from: i64,
    to: i64,
    hint: Hint,
) -> Option<(usize, Side)> {
    let Hint {
        opened_by,
        closed_near,
        closed_by,
        taken,
    } = hint;
    let key = (end(r, "local"), end(r, "remote"));
    // A record of the socket itself (not of its TIME_WAIT, which the
    // kernel may give a cookie of its own) is that end: its ends may have
    // been taken again within moments (a server's TIME_WAIT accepts a new
    // SYN on them, and a notification is stamped up to 50 ms late), its
    // cookie never.
    if let Some(cookie) = r["cookie"].as_u64() {
        let own = index.get(&key).and_then(|all| {
            all.iter()
                .copied()
                .find(|&(i, side)| conns[i].cookie(side) == cookie && !taken.contains(&(i, side)))
        });
        if own.is_some() {
            return own;
        }
    }
    let slack = 300;
    let during = |i: usize, side: Side| {
        if taken.contains(&(i, side)) {
            return false;
        }
        let c = &conns[i];
        // The ledger stamps a close just after close() returns.
        if closed_by.is_some_and(|t| c.close(side) > t + 50) {
            return false;
        }
        let last = if c.time_wait(side) {
            c.close(side) + 61_000
        } else {
            c.close(side)
        };
        from <= last + slack && to >= c.opened - slack
    };
    // The ends are used again (tcp_tw_reuse on loopback takes a
    // TIME_WAIT's ends for a new connection, and a new SYN ends a
    // TIME_WAIT of the server's): the latest connection with them that
    // had opened when the record begins. The ledger stamps an opening
    // before connect(), and a record begins at a poll's reading (a socket
    // the walk found opened after it by the walk's few milliseconds) or
    // at a notification: a connection that opened later than `opened_by`
    // by more than that is not the record's.
    let opened_slack = 100;
    if let Some(found) = index.get(&key).and_then(|all| {
        all.iter()
            .copied()
            .filter(|&(i, side)| during(i, side) && conns[i].opened <= opened_by + opened_slack)
            .max_by_key(|&(i, _)| conns[i].opened)
    }) {
        return Some(found);
    }
    // A client end reset before any poll saw it: the kernel cleared its
    // local address and remote port before it reported it destroyed (what
    // the record keeps: the local port and the remote address). A reset
    // leaves no TIME_WAIT, so the next connection may take the same local
    // port at once: of those, the one that closed nearest `closed_near`.
    let cleared = r["remote_port"] == 0 && r["local_address"] == "0.0.0.0";
    cleared.then(|| {
        let port = r["local_port"].as_u64().unwrap();
        let remote = r["remote_address"].as_str().unwrap();
        conns
            .iter()
            .enumerate()
            .filter(|(i, c)| {
                let (local, peer) = c.ends(Side::Client);
                c.how == "reset"
                    && local.ends_with(&format!(":{port}"))
                    && peer.starts_with(&format!("{remote}:"))
                    && during(*i, Side::Client)
            })
            .min_by_key(|(_, c)| (c.close(Side::Client) - closed_near).abs())
            .map(|(i, _)| (i, Side::Client))
    })?
}

/// When a history record was first seen and when it ended (or was last
/// seen).
fn lived(r: &Value) -> (i64, i64) {
    let time = |key: &str| {
        r[key]
            .as_str()
            .map(|t| tcptab::time::parse_rfc3339(t).unwrap())
    };
    (
        time("first_seen").unwrap(),
        time("closed_at").or(time("last_seen")).unwrap(),
    )
}

/// The scenario's sockets now, as `ss -tan` lists them: (local, peer) of
/// each, with its state.
fn sockets_now(scenario: &Scenario) -> HashMap<(String, String), String> {
    scenario
        .ss(&[])
        .into_iter()
        .map(|r| ((r.local, r.peer), r.state))
        .collect()
}

/// A child's stdout as lines, after it was stopped.
fn lines_of(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Start `tcptab ARGS` with stdout into `out`.
fn spawn(args: &[&str], out: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_tcptab"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(out).unwrap())
        .spawn()
        .unwrap()
}

/// The ledger's connections, indexed by their ends, with when each end's
/// last socket went.
struct Truth {
    conns: Vec<Conn>,
    index: HashMap<(String, String), Vec<(usize, Side)>>,
    gone: HashMap<(usize, Side), i64>,
    /// The connection held open across the recorder's gap.
    long: usize,
    /// When the recorded runs began.
    t0: i64,
}

impl Truth {
    fn read(ledger_path: &Path, held: &str, t0: i64) -> Truth {
        let conns = ledger(ledger_path);
        let mut index: HashMap<(String, String), Vec<(usize, Side)>> = HashMap::new();
        for (i, c) in conns.iter().enumerate() {
            for side in [Side::Client, Side::Server] {
                index.entry(c.ends(side)).or_default().push((i, side));
            }
        }
        // When each end's last socket went: its close, or a TIME_WAIT's 60 s
        // after it, cut short when its ends were used again (tcp_tw_reuse
        // gives a TIME_WAIT's ends to a new connection on loopback).
        let mut gone: HashMap<(usize, Side), i64> = HashMap::new();
        for ends in index.values() {
            for &(i, side) in ends {
                let c = &conns[i];
                let mut end = c.close(side) + if c.time_wait(side) { 60_000 } else { 0 };
                if let Some(next) = ends
                    .iter()
                    .map(|&(j, _)| conns[j].opened)
                    .filter(|&o| o > c.close(side))
                    .min()
                {
                    end = end.min(next);
                }
                gone.insert((i, side), end);
            }
        }
        let long = conns
            .iter()
            .position(|c| c.client.ends_with(&format!(":{}", &held[3..])))
            .expect("the held connection in the ledger");
        Truth {
            conns,
            index,
            gone,
            long,
            t0,
        }
    }

    /// A connection of the runs (each recorder saw all of its run's): one
    /// that opened at `t0` or after (the first may open within the same
    /// millisecond), the held one aside.
    fn ran(&self, c: &Conn) -> bool {
        c.opened >= self.t0 && c.id != self.conns[self.long].id
    }

    /// The end was open at `t`.
    fn alive(&self, i: usize, side: Side, t: i64) -> bool {
        self.conns[i].opened <= t && t <= self.gone[&(i, side)]
    }
}

#[test]
fn every_connection_once_with_its_owner_states_and_bytes() {
    testkit::needs_root!();
    let (dir, db) = scratch_db("ledger");
    let (mut scenario, pid, ledger_path) = ledger_scenario(&dir);
    let watch_out = dir.join("watch.jsonl");
    let top_out = dir.join("top.jsonl");
    let ns = ["--netns-pid", pid.as_str(), "--interval", "1"];
    let watch = spawn(
        &[&["watch", "-p", "--format", "jsonl"][..], &ns].concat(),
        &watch_out,
    );
    let top = spawn(
        &[&["top", "-p", "--format", "jsonl"][..], &ns].concat(),
        &top_out,
    );
    let recorder = record(&db, &ns);
    wait_polls(&db, 2);
    let t0 = tcptab::time::now_ms();
    let held = scenario.command("hold long");
    assert!(held.starts_with("ok "));
    assert!(scenario.command("run 500 4").starts_with("ok"));
    assert_eq!(scenario.command("wait"), "ok");
    std::thread::sleep(Duration::from_millis(2500));
    // The recorder dies; the held connection closes while none runs.
    common::signal(&recorder, "-KILL");
    let mut recorder = recorder;
    recorder.wait().unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(scenario.command("close long"), "ok");
    let unobserved = tcptab::time::now_ms();
    // The kernel's own word at that moment (ss), beside the ledger's.
    let kernel_then = sockets_now(&scenario);
    std::thread::sleep(Duration::from_millis(3500));
    let recorder = record(&db, &ns);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(scenario.command("run 500 3").starts_with("ok"));
    assert_eq!(scenario.command("wait"), "ok");
    std::thread::sleep(Duration::from_millis(2500));
    let quiet = tcptab::time::now_ms();
    let kernel_quiet = sockets_now(&scenario);
    std::thread::sleep(Duration::from_millis(1500));
    stop(recorder);
    common::signal(&watch, "-INT");
    common::signal(&top, "-INT");
    for mut child in [watch, top] {
        assert!(child.wait().unwrap().success());
    }
    let t1 = tcptab::time::now_ms();
    drop(scenario);

    let truth = Truth::read(&ledger_path, &held, t0);
    // Every way of ending happened, a connection on a TIME_WAIT's ends too.
    for how in ["client_first", "server_first", "reset", "flash", "again"] {
        let n = truth
            .conns
            .iter()
            .filter(|c| truth.ran(c) && c.how == how)
            .count();
        assert!(n > 0, "no {how} connection in the ledger");
    }

    let rows = history_has_every_end_once(&truth, &db, t1);

    the_held_connection_ended_in_the_gap(&truth, &rows);

    no_two_rows_hold_the_same_ends_at_once(&rows);

    a_moment_in_the_gap_lists_what_is_known(&truth, &db, unobserved, &kernel_then);

    a_quiet_moment_has_the_kernel_s_time_waits(&truth, &db, quiet, &kernel_quiet);

    watch_saw_every_end_once(&truth, &watch_out);

    top_closed_every_end_once(&truth, &top_out);
}
