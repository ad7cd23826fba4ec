//! Each command's answer held against the scenario's own ledger.

use super::*;

/// history over the whole run: every end once, nothing else, owners and
/// counts exact; its rows.
pub(super) fn history_has_every_end_once(truth: &Truth, db: &Path, t1: i64) -> Vec<Value> {
    let Truth {
        conns, index, t0, ..
    } = truth;
    let t0 = *t0;
    let ran = |c: &Conn| truth.ran(c);
    let expected = 2 * conns.iter().filter(|c| ran(c)).count();
    assert!(expected >= 2 * 3400, "{expected} sockets in the ledger");
    // history: every end once, nothing else, owners and counts exact.
    let (rows, _) = history(db, &["--between", &at(t0 - 1000), &at(t1)]);
    let mut found: BTreeMap<(usize, Side), u32> = BTreeMap::new();
    let mut strays = Vec::new();
    let (mut owned, mut not_found) = (0, 0);
    for r in &rows {
        if r["state"] == "LISTEN" {
            continue;
        }
        let (first, last) = lived(r);
        // A row its notification closed: its process had closed the end
        // by then (a reset leaves no TIME_WAIT, so the next connection may
        // take the same ends within the matcher's slack).
        let notified = matches!(r["closed_by"].as_str(), Some("destroy" | "expired"));
        let hint = Hint {
            opened_by: first,
            closed_near: last,
            closed_by: notified.then_some(last),
            taken: &[],
        };
        let Some((i, side)) = which_with(index, conns, r, first, last, hint) else {
            strays.push(r.clone());
            continue;
        };
        *found.entry((i, side)).or_default() += 1;
        let c = &conns[i];
        // The owner, on every connection a poll saw open.
        let owners: Vec<u64> = common::items(&r["owners"])
            .map(|o| o["pid"].as_u64().unwrap())
            .collect();
        match r["owner_status"].as_str() {
            Some("owned") => {
                assert_eq!(owners, [c.pid(side)], "{r}");
                owned += 1;
            }
            // Made after the poll's owner scan and closed before the
            // second look: its process no longer held it.
            Some("not_found") => {
                assert!(
                    c.close(side) - first < 1000,
                    "a connection seen open for a second without its owner: {r}"
                );
                not_found += 1;
            }
            other => assert!(
                matches!(other, None | Some("no_process")),
                "a connection seen open without its owner: {r}"
            ),
        }
        // The final counts, from the notification: the data the ledger
        // says, and the control bits the kernel counts as a byte of the
        // sequence each: the client's SYN, acked by the SYN-ACK (the
        // server's SYN-ACK is acked before its socket is made), and a FIN,
        // counted when it was acked or received before the kernel turned
        // the socket into a mini-socket (which depends on the order of
        // the segments).
        if c.counted() && notified {
            let (acked, received) = match side {
                Side::Client => (c.sent + 1, c.received),
                Side::Server => (c.received, c.sent),
            };
            let (got_acked, got_received) = (
                r["bytes_acked"].as_u64().unwrap(),
                r["bytes_received"].as_u64().unwrap(),
            );
            assert!(
                (acked..=acked + 1).contains(&got_acked)
                    && (received..=received + 1).contains(&got_received),
                "{side:?} of {c:?}: {r}"
            );
        }
    }
    assert!(strays.is_empty(), "rows of no connection: {strays:#?}");
    eprintln!("{owned} connections owned, {not_found} closed before their owner was read");
    assert!(
        not_found * 10 <= owned,
        "{not_found} without their owner, {owned} with"
    );
    let twice: Vec<_> = found.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "twice: {twice:?}");
    let missing: Vec<_> = conns
        .iter()
        .enumerate()
        .filter(|(_, c)| ran(c))
        .flat_map(|(i, _)| [(i, Side::Client), (i, Side::Server)])
        .filter(|k| !found.contains_key(k))
        .map(|(i, side)| (side, conns[i].clone()))
        .collect();
    assert!(
        missing.is_empty(),
        "{} missing: {missing:#?}",
        missing.len()
    );
    // sqlite3 agrees: one row per socket, none open.
    let counted: u64 = sql(
        db,
        "SELECT count(*) FROM connections WHERE state != 'LISTEN'",
    )
    .parse()
    .unwrap();
    assert_eq!(counted as usize, expected + 2, "rows in the file");
    rows
}

/// The kernel has one socket on a set of ends at a time: a TIME_WAIT a new
/// connection replaced ended by the time that connection was known.
pub(super) fn no_two_rows_hold_the_same_ends_at_once(rows: &[Value]) {
    let mut by_ends: HashMap<(String, String), Vec<(i64, i64)>> = HashMap::new();
    for r in rows {
        let (local, remote) = (end(r, "local"), end(r, "remote"));
        // A reset no poll saw: the kernel had cleared part of its ends.
        if r["state"] == "LISTEN" || local.ends_with(":0") || remote.ends_with(":0") {
            continue;
        }
        by_ends.entry((local, remote)).or_default().push(lived(r));
    }
    for (ends, mut lives) in by_ends {
        lives.sort();
        for pair in lives.windows(2) {
            assert!(
                pair[0].1 <= pair[1].0,
                "two rows on {ends:?} at once: {pair:?}"
            );
        }
    }
}

/// The held connection closed while no recorder ran.
pub(super) fn the_held_connection_ended_in_the_gap(truth: &Truth, rows: &[Value]) {
    let Truth {
        conns, index, long, ..
    } = truth;
    let long = *long;
    // The held connection closed while no recorder ran: its server end
    // ended unobserved in the gap (at its last sighting); its client end
    // went on as a TIME_WAIT, the same connection.
    let long_rows: Vec<(Side, &Value)> = rows
        .iter()
        .filter_map(|r| {
            let (first, last) = lived(r);
            match which(index, conns, r, first, last) {
                Some((i, side)) if i == long => Some((side, r)),
                _ => None,
            }
        })
        .collect();
    assert_eq!(long_rows.len(), 2, "{long_rows:#?}");
    for (side, r) in &long_rows {
        assert_eq!(r["owner_status"], "owned", "{r}");
        match side {
            Side::Server => assert_eq!(r["closed_by"], "gap", "{r}"),
            Side::Client => assert_eq!(r["state"], "TIME_WAIT", "{r}"),
        }
    }
}

/// `--at` a moment when no recorder ran.
pub(super) fn a_moment_in_the_gap_lists_what_is_known(
    truth: &Truth,
    db: &Path,
    unobserved: i64,
    kernel_then: &HashMap<(String, String), String>,
) {
    let Truth {
        conns, index, gone, ..
    } = truth;
    let alive = |i: usize, side: Side, t: i64| truth.alive(i, side, t);
    // Said not observed: said not observed; listed exactly the ends open
    // at the polls on both sides of it (known open), and no other.
    let around: Vec<i64> = sql(
        db,
        &format!(
            "SELECT (SELECT max(at) FROM polls WHERE at < {unobserved}) || ' ' || (SELECT min(at) FROM polls WHERE at > {unobserved})"
        ),
    )
    .split(' ')
    .map(|w| w.parse().unwrap())
    .collect();
    let (before, after) = (around[0], around[1]);
    let (open_then, stderr) = history(db, &["--at", &at(unobserved)]);
    assert!(stderr.contains("was not observed"), "{stderr}");
    let near = |i: usize, side: Side, t: i64| {
        (conns[i].opened - t).abs() < 300 || (gone[&(i, side)] - t).abs() < 300
    };
    let listed: std::collections::BTreeSet<(usize, Side)> = open_then
        .iter()
        .filter_map(|r| which(index, conns, r, unobserved, unobserved))
        .collect();
    for (i, _) in conns.iter().enumerate() {
        for side in [Side::Client, Side::Server] {
            if near(i, side, before) || near(i, side, after) {
                continue;
            }
            let there = kernel_then.contains_key(&conns[i].ends(side));
            let known = alive(i, side, before) && alive(i, side, after) && there;
            assert_eq!(
                listed.contains(&(i, side)),
                known,
                "--at {unobserved} in the gap: the {side:?} end of {:?}",
                conns[i]
            );
        }
    }
}

/// `--at` a quiet moment: the TIME_WAITs ss listed then.
pub(super) fn a_quiet_moment_has_the_kernel_s_time_waits(
    truth: &Truth,
    db: &Path,
    quiet: i64,
    kernel_quiet: &HashMap<(String, String), String>,
) {
    let Truth { conns, index, .. } = truth;
    let alive = |i: usize, side: Side, t: i64| truth.alive(i, side, t);
    // The state at a quiet moment: every TIME_WAIT of the last run, and
    // nothing else of it.
    let (then, _) = history(db, &["--at", &at(quiet)]);
    let mut tw: Vec<(usize, Side)> = Vec::new();
    for r in &then {
        if let Some((i, side)) = which(index, conns, r, quiet, quiet) {
            assert_eq!(r["state"], "TIME_WAIT", "{side:?} of {:?}: {r}", conns[i]);
            tw.push((i, side));
        }
    }
    // ss's TIME_WAITs then, each the ledger's end it is.
    let mut want: Vec<(usize, Side)> = kernel_quiet
        .iter()
        .filter(|(_, state)| *state == "TIME-WAIT")
        .filter_map(|((local, peer), _)| {
            index
                .get(&(local.clone(), peer.clone()))?
                .iter()
                .copied()
                .find(|&(i, side)| conns[i].time_wait(side) && alive(i, side, quiet))
        })
        .collect();
    tw.sort();
    want.sort();
    let extra: Vec<_> = tw
        .iter()
        .filter(|k| !want.contains(k))
        .map(|&(i, s)| (s, &conns[i]))
        .collect();
    let lacking: Vec<_> = want
        .iter()
        .filter(|k| !tw.contains(k))
        .map(|&(i, s)| (s, &conns[i]))
        .collect();
    assert!(
        extra.is_empty() && lacking.is_empty(),
        "TIME_WAITs at the quiet moment {quiet}: not the kernel's {extra:#?}, missing {lacking:#?}"
    );
}

/// watch's events: every end opened and closed once.
pub(super) fn watch_saw_every_end_once(truth: &Truth, watch_out: &Path) {
    let Truth { conns, index, .. } = truth;
    let ran = |c: &Conn| truth.ran(c);
    // watch: every end opened and closed once.
    let events = lines_of(watch_out);
    let mut seen: BTreeMap<((usize, Side), &str), u32> = BTreeMap::new();
    for e in &events {
        let kind = e["event"].as_str().unwrap();
        assert_ne!(kind, "lost", "notifications lost under the default buffer");
        if !matches!(kind, "opened" | "closed") || e["state"] == "LISTEN" {
            continue;
        }
        let t = tcptab::time::parse_rfc3339(e["time"].as_str().unwrap()).unwrap();
        // A close is told at or after the kernel destroyed the socket, so
        // its process had closed the end by then (a reset leaves no
        // TIME_WAIT: the next connection may take its ends at once).
        let hint = Hint {
            opened_by: t,
            closed_near: t,
            closed_by: (kind == "closed").then_some(t),
            taken: &[],
        };
        let k =
            which_with(index, conns, e, t, t, hint).unwrap_or_else(|| panic!("no connection: {e}"));
        *seen.entry((k, kind)).or_default() += 1;
    }
    for (i, c) in conns.iter().enumerate().filter(|(_, c)| ran(c)) {
        for side in [Side::Client, Side::Server] {
            for kind in ["opened", "closed"] {
                assert_eq!(
                    seen.get(&((i, side), kind)),
                    Some(&1),
                    "watch: {kind} of the {side:?} end of {c:?}"
                );
            }
        }
    }
}

/// top's frames: every end closed in one frame, once.
pub(super) fn top_closed_every_end_once(truth: &Truth, top_out: &Path) {
    let Truth {
        conns, index, gone, ..
    } = truth;
    let ran = |c: &Conn| truth.ran(c);
    // top: every end closed in one frame, once; no connection twice in a
    // frame; a closed one with its rates.
    let frames = lines_of(top_out);
    let mut closed: BTreeMap<(usize, Side), Vec<&Value>> = BTreeMap::new();
    for f in &frames {
        let t = tcptab::time::parse_rfc3339(f["time"].as_str().unwrap()).unwrap();
        let mut open: HashMap<(String, String), u32> = HashMap::new();
        let mut ended = Vec::new();
        for s in f["sockets"].as_array().unwrap() {
            if s["closed"] == true {
                ended.push(s);
            } else {
                *open.entry((end(s, "local"), end(s, "remote"))).or_default() += 1;
            }
        }
        // Its age says when it was first seen (for one only its
        // notification brought, when it closed): it had opened by then,
        // which tells it from a later connection that took the same ends
        // (a reset leaves no TIME_WAIT). An age is to a tenth of a second,
        // so when two on the same ends closed in one frame, the youngest
        // takes the latest connection first, and the older one the
        // connection before it.
        let age = |s: &Value| s["age_s"].as_f64().unwrap();
        ended.sort_by(|a, b| age(a).total_cmp(&age(b)));
        let mut taken = Vec::new();
        for s in ended {
            let closed_near = t - (age(s) * 1000.0) as i64;
            let hint = Hint {
                opened_by: closed_near,
                closed_near,
                closed_by: Some(t),
                taken: &taken,
            };
            let k = which_with(index, conns, s, t - 2000, t, hint)
                .unwrap_or_else(|| panic!("no connection: {s}"));
            taken.push(k);
            closed.entry(k).or_default().push(s);
            assert!(!s["rx_bytes_per_s"].is_null(), "{s}");
        }
        let twice: Vec<_> = open.iter().filter(|(_, n)| **n > 1).collect();
        assert!(twice.is_empty(), "{twice:?} in the frame at {}", f["time"]);
    }
    for (i, c) in conns.iter().enumerate().filter(|(_, c)| ran(c)) {
        for side in [Side::Client, Side::Server] {
            let records = closed.get(&(i, side)).map_or(&[][..], |v| &v[..]);
            assert_eq!(
                records.len(),
                1,
                "top: {side:?} end of {c:?}, gone at {}: {records:#?}",
                gone[&(i, side)]
            );
        }
    }
}
