//! `--per-process` across collections: the owner scan kept and brought
//! up to date from one collection to the next.

use super::*;

/// With --per-process, each collection counts a process's sockets as `ss
/// -tanp` does, while the process opens and closes connections between
/// collections, sleeps through others, and forks: the owner scan is kept
/// from one collection to the next and brought up to date (only the
/// tables of the processes that ran are read again).
#[test]
fn per_process_sockets_follow_the_processes_across_collections() {
    let Some(mut scenario) = testkit::live("driver.py") else {
        return;
    };
    let pid = scenario.pid().to_string();
    let server = Server::start(&["--netns-pid", &pid, "--per-process", "--min-interval", "0s"]);
    let series = "tcptab_process_sockets{command=\"python3\"}";
    for step in [
        "", "", "open a", "", "open b", "flash", "", "close a", "", "fork", "", "open c", "",
    ] {
        if !step.is_empty() {
            assert!(scenario.command(step).starts_with("ok"), "{step}");
        }
        let held = scenario
            .ss(&["-p"])
            .iter()
            .filter(|row| row.rest.contains("\"python3\""))
            .count();
        let body = server.metrics();
        assert_eq!(
            sample(&body, series),
            Some(held as f64),
            "after {step:?}: {series} in\n{body}"
        );
    }
}
