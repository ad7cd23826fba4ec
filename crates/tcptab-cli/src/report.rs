//! What a query's report calls for on stderr, after the query ran: the
//! source under -v, what could not be read or seen, always.

use tcptab::{NotInspectedReason, Report, Why};

/// Say on stderr what the report holds that a user should know: under -v
/// the source of each namespace and why; always, lenient skips, interrupted
/// dumps, namespaces and processes that could not be inspected.
pub fn notes(report: &Report, verbose: bool) {
    for read in &report.read {
        let target = read.target("for");
        if verbose {
            match &read.why {
                Why::Chosen if read.source == tcptab::Source::Netlink => {
                    note!("tcptab: source: netlink (sock_diag){target}")
                }
                Why::Chosen => note!("tcptab: source: proc{target}"),
                Why::Captured => {
                    note!("tcptab: source: proc{target} (a captured root is read from its files)")
                }
                Why::Fallback(why) => {
                    note!("tcptab: source: proc{target} (netlink unavailable: {why})")
                }
            }
        }
        if verbose {
            match &read.kernel_filter {
                Some(k) => note!(
                    "tcptab: filter in the kernel{target}: {} ({}; {} bytes of bytecode); it sent {}, {} matched",
                    k.runs,
                    if k.whole {
                        "the whole filter"
                    } else {
                        "the rest was tested after the dump"
                    },
                    k.bytes,
                    tcptab::counted(read.sockets, "socket"),
                    read.matched
                ),
                None if read.source == tcptab::Source::Netlink => note!(
                    "tcptab: no filter in the kernel{target}; {} read, {} matched",
                    tcptab::counted(read.sockets, "socket"),
                    read.matched
                ),
                None => note!(
                    "tcptab: {} read{target}, {} matched",
                    tcptab::counted(read.sockets, "socket"),
                    read.matched
                ),
            }
            for n in &read.notes {
                note!("tcptab: {n}");
            }
        }
        if verbose && read.repeated > 0 {
            note!(
                "tcptab: dropped {}{target} that the kernel's walk of /proc listed twice (sockets changed while it was read)",
                tcptab::counted(read.repeated, "row")
            );
        }
        if read.interrupted {
            note!("tcptab: the kernel's socket tables changed during the dump{target}; a socket may be missing or repeated");
        }
        if read.skipped_lines > 0 {
            note!(
                "tcptab: skipped {}{target} (first: {})",
                tcptab::counted(read.skipped_lines, "malformed line"),
                read.first_skipped.as_deref().unwrap_or("?")
            );
        }
    }
    let vanished = report
        .not_inspected
        .iter()
        .filter(|n| n.reason == NotInspectedReason::Vanished)
        .count();
    if verbose && vanished > 0 {
        note!(
            "tcptab: {} vanished while being read (skipped)",
            tcptab::counted(vanished as u64, "network namespace")
        );
    }
    for n in &report.not_inspected {
        if let NotInspectedReason::PermissionDenied(why) = &n.reason {
            note!(
                "tcptab: network namespace {} not inspected: {why}",
                n.namespace.label()
            );
        }
    }
    if report.processes_unreadable > 0 {
        let advice = if is_root() {
            "even as root (a sandbox or a security module hides them)"
        } else {
            "run as root to see every namespace"
        };
        note!(
            "tcptab: the network namespace of {} could not be read (permission denied); {advice}",
            tcptab::counted(report.processes_unreadable, "process")
        );
    }
    if let Some(owners) = &report.owners {
        if owners.denied > 0 {
            let why = match owners.denied_reason {
                Some(std::io::ErrorKind::PermissionDenied) | None => {
                    "permission denied".to_string()
                }
                Some(kind) => kind.to_string(),
            };
            let advice = if is_root() {
                "Even root may not read them here (a sandbox or a security module)."
            } else {
                "Run as root to see every owner."
            };
            let they = if owners.denied == 1 { "it" } else { "they" };
            note!(
                "tcptab: {} could not be inspected ({why}); sockets {they} may hold show their owner as unknown. {advice}",
                tcptab::counted(owners.denied, "process")
            );
        }
    }
}

/// Whether every namespace was read from /proc (for notes about what
/// only netlink has).
pub fn any_proc(report: &Report) -> bool {
    report.read.iter().any(|r| r.source == tcptab::Source::Proc)
}

/// Whether this process runs as root (effective uid 0), from /proc.
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("Uid:"))?;
            line.split_whitespace().nth(2).map(|euid| euid == "0")
        })
        .unwrap_or(false)
}
