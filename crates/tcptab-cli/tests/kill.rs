//! `tcptab kill` on real sockets in fresh namespaces (testdata/scenario/
//! stuck.py: four CLOSE_WAIT sockets, two healthy connections, two
//! listeners), with `ss` of the same namespace as the oracle of what is
//! left, and the holding process as the witness of what was destroyed.

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;

mod common;

use common::{ok_line, strict_json, tcptab, tcptab_line};
use testkit::Scenario;

/// ss's states in the scenario's namespace, sorted.
fn states(scenario: &Scenario) -> Vec<String> {
    let mut states: Vec<String> = scenario.ss(&[]).into_iter().map(|r| r.state).collect();
    states.sort();
    states
}

/// Every socket's ends: what a destroy takes away (a state may still move
/// on by itself, FIN_WAIT1 to FIN_WAIT2).
fn ends(scenario: &Scenario) -> Vec<(String, String)> {
    let mut ends: Vec<_> = scenario
        .ss(&[])
        .into_iter()
        .map(|r| (r.local, r.peer))
        .collect();
    ends.sort();
    ends
}

fn count(states: &[String], state: &str) -> usize {
    states.iter().filter(|s| *s == state).count()
}

#[test]
fn dry_run_lists_exactly_the_matches_and_destroys_nothing() {
    let Some(scenario) = testkit::live("stuck.py") else { return };
    let pid = scenario.pid().to_string();
    let before = states(&scenario);
    assert_eq!(count(&before, "CLOSE-WAIT"), 4, "{before:?}");
    let before = ends(&scenario);
    for format in ["json", "jsonl", "table"] {
        let out = tcptab(&[
            "kill",
            "--netns-pid",
            &pid,
            "--state",
            "close-wait",
            "--format",
            format,
        ]);
        assert!(out.status.success(), "{format}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("dry run: 4 sockets would be destroyed; nothing was destroyed"),
            "{err}"
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let rows: Vec<serde_json::Value> = match format {
            "json" => strict_json(&text).unwrap().as_array().unwrap().clone(),
            "jsonl" => text.lines().map(|l| strict_json(l).unwrap()).collect(),
            _ => {
                assert_eq!(text.lines().count(), 4, "{text}");
                assert!(
                    text.lines()
                        .all(|l| l.starts_with("would_destroy") && l.contains("python3(pid=")),
                    "{text}"
                );
                continue;
            }
        };
        assert_eq!(rows.len(), 4);
        let schema = common::schema("kill");
        for r in &rows {
            common::conforms(&schema, r, "kill dry run");
            assert_eq!(r["result"], "would_destroy", "{r}");
            assert_eq!(r["state"], "CLOSE_WAIT", "{r}");
            assert_eq!(r["owners"][0]["pid"], scenario.pid(), "{r}");
        }
    }
    // ss's -K: the same command, a dry run too.
    let out = ok_line(&format!("-K --netns-pid {pid} --state close-wait --json"));
    let rows = strict_json(&String::from_utf8(out.stdout).unwrap()).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 4);
    assert_eq!(ends(&scenario), before, "a dry run destroys nothing");
}

#[test]
fn yes_destroys_exactly_the_matches_and_the_holder_sees_it() {
    let Some(mut scenario) = testkit::live("stuck.py") else { return };
    let pid = scenario.pid().to_string();
    // (Writing to them now would draw a reset from their closed peers.)
    assert_eq!(count(&states(&scenario), "CLOSE-WAIT"), 4);
    let out = tcptab_line(&format!(
        "kill --netns-pid {pid} --state close-wait --yes --json"
    ));
    assert!(out.status.success(), "{out:?}");
    let rows = strict_json(&String::from_utf8(out.stdout).unwrap()).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 4);
    assert!(rows.iter().all(|r| r["result"] == "destroyed"), "{rows:?}");
    let schema = common::schema("kill");
    for r in rows {
        common::conforms(&schema, r, "kill --yes");
    }
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("4 of 4 sockets destroyed, 0 already gone, 0 refused"),
        "{err}"
    );
    let after = states(&scenario);
    assert_eq!(count(&after, "CLOSE-WAIT"), 0, "{after:?}");
    assert_eq!(
        count(&after, "LISTEN"),
        2,
        "the listeners are untouched: {after:?}"
    );
    assert_eq!(
        count(&after, "ESTAB"),
        4,
        "the other connections are untouched: {after:?}"
    );
    // The process holding them learns on its next write.
    assert_eq!(
        scenario.command("check"),
        "ok ECONNABORTED,ECONNABORTED,ECONNABORTED,ECONNABORTED"
    );
    assert_eq!(scenario.command("healthy"), "ok yes");
}

#[test]
fn refusals_destroy_nothing() {
    let Some(scenario) = testkit::live("stuck.py") else { return };
    let pid = scenario.pid().to_string();
    let other = scenario.manifest.names["other_port"].clone();
    let before = ends(&scenario);
    let cases: &[(&[&str], &str)] = &[
        (&[], "no filter, so every socket would be destroyed"),
        (
            &["--state", "close-wait", "--max", "3"],
            "4 sockets match, more than --max 3; nothing destroyed",
        ),
    ];
    for (filter, expected) in cases {
        let mut args = vec!["kill", "--netns-pid", &pid, "--yes"];
        args.extend_from_slice(filter);
        let out = tcptab(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(expected) && err.lines().count() == 1,
            "{args:?}: {err}"
        );
        assert!(out.stdout.is_empty(), "{args:?}");
        assert_eq!(ends(&scenario), before, "{args:?} destroyed something");
    }
    // Unprivileged inside the namespace: the dump works, the kernel
    // refuses the destroy; one line, exit 2, nothing destroyed.
    let bin = testkit::SharedBin::of(env!("CARGO_BIN_EXE_tcptab"), "tcptab-kill");
    let out = testkit::as_nobody_in(&pid, &bin)
        .args(["kill", "--state", "close-wait", "--yes"])
        .output()
        .unwrap();
    drop(bin);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert!(
        errors.len() == 1
            && errors[0].contains("destroying sockets needs CAP_NET_ADMIN")
            && errors[0].contains("nothing destroyed"),
        "{err}"
    );
    assert_eq!(
        ends(&scenario),
        before,
        "an unprivileged kill destroyed something"
    );
    // A listener the filter selects without naming its state is left out,
    // and said so.
    let out = tcptab_line(&format!(
        "kill --netns-pid {pid} --sport {other} --format jsonl"
    ));
    assert!(out.status.success(), "{out:?}");
    let listed: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let left: Vec<_> = listed
        .iter()
        .filter(|r| r["result"] == "left_out")
        .collect();
    assert_eq!(left.len(), 1, "{listed:?}");
    assert_eq!(left[0]["state"], "LISTEN");
    assert!(left[0]["detail"]
        .as_str()
        .unwrap()
        .contains("listening state"));
    assert!(listed
        .iter()
        .filter(|r| r["result"] != "left_out")
        .all(|r| r["result"] == "would_destroy" && r["state"] != "LISTEN"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 listening socket left out"));
    assert_eq!(
        ends(&scenario),
        before,
        "a listener not named was destroyed"
    );
    // A listener is destroyed when the filter names the listening state.
    ok_line(&format!("kill --netns-pid {pid} --sport {other} -l --yes"));
    let after = states(&scenario);
    assert_eq!(count(&after, "LISTEN"), 1, "{after:?}");
    assert_eq!(count(&after, "CLOSE-WAIT"), 4, "{after:?}");
}

#[test]
fn a_named_namespace_is_killed_from_the_root_namespace() {
    testkit::needs_root!();
    let netns = testkit::NamedNetns::add("tcptab-kill");
    let name = netns.name.clone();
    let script = testkit::repo_root().join("testdata/scenario/stuck.py");
    let mut child = netns
        .command("python3")
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert!(line.contains("close_wait_port"), "{line}");
    let out = ok_line(&format!("kill --netns {name} --state close-wait --yes"));
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        text.lines().filter(|l| l.starts_with("destroyed")).count(),
        4,
        "{text}"
    );
    assert!(
        text.lines().all(|l| l.contains(&format!("netns {name}"))),
        "{text}"
    );
    writeln!(stdin, "check").unwrap();
    line.clear();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(
        line.trim(),
        "ok ECONNABORTED,ECONNABORTED,ECONNABORTED,ECONNABORTED"
    );
    drop(stdin);
    let _ = child.wait();
}

#[test]
fn a_socket_closed_after_the_dump_is_already_gone() {
    testkit::needs_root!();
    use tcptab::filter::Expr;
    use tcptab::kill::{Destroyer, GoneWhy, Outcome};
    use tcptab::Namespaces;
    use tcptab::{Query, State, StateSet};
    let mut scenario = Scenario::start("stuck.py");
    let query = Query::new()
        .source(tcptab::diag::Choice::Netlink)
        .namespaces(Namespaces::Pid(scenario.pid()))
        .filter(Expr::State(StateSet::of(&[State::CloseWait])));
    let snapshot = query.snapshot().unwrap();
    assert_eq!(snapshot.sockets.len(), 4);
    // Close one of them after the dump, and wait until it is gone.
    let peer: u16 = scenario.command("close 0")[3..].parse().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while scenario
        .ss(&[])
        .iter()
        .any(|r| r.peer.ends_with(&format!(":{peer}")) && r.state != "TIME-WAIT")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the closed socket stays"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let mut destroyer = Destroyer::new(&query);
    let mut outcomes = Vec::new();
    for entry in snapshot.entries() {
        let outcome = destroyer.destroy(&entry).unwrap();
        outcomes.push((entry.socket.remote.port(), outcome));
    }
    for (port, outcome) in &outcomes {
        if *port == peer {
            assert!(
                matches!(outcome, Outcome::Gone(GoneWhy::Closed)),
                "{port}: {outcome}"
            );
        } else {
            assert!(matches!(outcome, Outcome::Destroyed), "{port}: {outcome}");
        }
    }
}

#[test]
fn time_wait_and_request_sockets_can_be_destroyed() {
    // sockets.py holds one TIME_WAIT and one SYN_RECV request socket.
    let Some(scenario) = testkit::live("sockets.py") else { return };
    let pid = scenario.pid().to_string();
    let before = states(&scenario);
    assert_eq!(
        (count(&before, "TIME-WAIT"), count(&before, "SYN-RECV")),
        (1, 1),
        "{before:?}"
    );
    let out = tcptab_line(&format!(
        "kill --netns-pid {pid} --state time-wait --state syn-recv --yes --format csv"
    ));
    assert!(out.status.success(), "{out:?}");
    let mut reader = csv::Reader::from_reader(&out.stdout[..]);
    let header = reader.headers().unwrap().clone();
    assert_eq!(&header[0], "result");
    let state = header.iter().position(|h| h == "state").unwrap();
    let mut destroyed: Vec<String> = reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            assert_eq!(r.len(), header.len());
            assert_eq!(&r[0], "destroyed", "{r:?}");
            r[state].to_string()
        })
        .collect();
    destroyed.sort();
    assert_eq!(destroyed, ["SYN_RECV", "TIME_WAIT"]);
    let after = states(&scenario);
    assert_eq!(
        (count(&after, "TIME-WAIT"), count(&after, "SYN-RECV")),
        (0, 0),
        "{after:?}"
    );
    assert_eq!(after.len(), before.len() - 2, "only those two: {after:?}");
}

#[test]
fn no_listener_is_destroyed_unless_its_state_is_named() {
    // Filters that select listeners without naming the listening state:
    // ss's groups, exclusions, negations and ports (and a few random
    // shapes); each run with --yes destroys what it selects but them.
    let Some(scenario) = testkit::live("sockets.py") else { return };
    let pid = scenario.pid().to_string();
    let listeners = |s: &Scenario| {
        let mut l: Vec<String> = s
            .ss(&[])
            .into_iter()
            .filter(|r| r.state == "LISTEN")
            .map(|r| r.local)
            .collect();
        l.sort();
        l
    };
    let before = listeners(&scenario);
    assert!(before.len() >= 2, "{before:?}");
    let more = [
        "state connected or sport > :0",
        "( sport > :0 or dport > :0 ) and not state time-wait",
        "! ( state listening ) or src 0.0.0.0/0",
        "exclude syn-sent exclude fin-wait-1",
    ];
    for filter in testkit::FILTERS_NOT_NAMING_LISTENERS
        .into_iter()
        .chain(more)
    {
        let mut args = vec!["kill", "--netns-pid", &pid, "--yes", "--max", "1000"];
        args.extend(filter.split(' '));
        let out = tcptab(&args);
        assert!(out.status.success(), "{filter}: {out:?}");
        assert_eq!(
            listeners(&scenario),
            before,
            "{filter} destroyed a listener"
        );
    }
    // Named, they go.
    ok_line(&format!("kill --netns-pid {pid} --yes state listening"));
    assert!(listeners(&scenario).is_empty());
}
