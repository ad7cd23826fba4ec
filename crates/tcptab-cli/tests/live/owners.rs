//! Owners against `ss -tanp`.

use super::*;

#[test]
fn owners_agree_with_ss_tanp() {
    let Some(scenario) = testkit::live("sockets.py") else { return };
    let pid = scenario.pid().to_string();
    let rows = json(&["list", "--netns-pid", &pid, "-p"]);
    let ours: BTreeMap<_, BTreeSet<(u64, u64)>> = rows
        .iter()
        .map(|r| {
            let owners = common::items(&r["owners"])
                .map(|o| (o["pid"].as_u64().unwrap(), o["fd"].as_u64().unwrap()))
                .collect();
            (identity(r), owners)
        })
        .collect();
    let theirs: BTreeMap<_, BTreeSet<(u64, u64)>> = scenario
        .ss(&["-p"])
        .iter()
        .map(|r| (ss_identity(r), ss_users(&r.rest)))
        .collect();
    assert_eq!(ours, theirs);
    // The shared listener has two owners or more; TIME_WAIT and request
    // sockets are marked as having no process by nature.
    let shared = scenario.socket("listen_shared");
    let key = (
        "listening".to_string(),
        endpoint(shared.local),
        "*:*".to_string(),
    );
    assert!(ours[&key].len() >= 2, "{:?}", ours[&key]);
    for row in &rows {
        if row["kind"] != "full" {
            assert_eq!(row["owner_status"], "no_process", "{row}");
        }
    }
    // Another uid's socket: owned by the nobody child.
    let nobody = scenario.socket("listen_nobody");
    let row = rows
        .iter()
        .find(|r| identity(r).1 == endpoint(nobody.local) && r["state"] == "LISTEN")
        .unwrap();
    assert_eq!(row["uid"], 65534);
    assert!(row["owners"]
        .as_array()
        .unwrap()
        .iter()
        .any(|o| o["pid"] == nobody.pids[0]));
}
