//! Owners looked up after the dump: the scan before it could not know
//! the sockets made since, and a scan kept from an earlier poll knows
//! only what was there then.

use std::collections::HashSet;
use std::path::Path;

use crate::model::{EntryBuf, Owners, Ownership, RowKind};
use crate::owners::{Among, OwnerScan};

use super::OwnerReport;

/// Whether `e` is a socket some process holds whose holder the scan did
/// not find.
fn missing(e: &EntryBuf) -> bool {
    e.socket.kind == RowKind::Full
        && e.socket.inode != 0
        && matches!(e.owners, Some(Owners::NotFound | Owners::Unknown))
}

/// A scan kept from an earlier poll (which the caller brought up to date
/// before the dump), brought up to date again when the table holds a
/// socket it does not know: [`OwnerScan::rescan`] reads again only the
/// tables of the processes that ran since, and the sockets without an
/// owner take theirs from it. True when it rescanned; `scan` and `seen`
/// are then the new scan's.
pub(super) fn rescan_kept(
    sockets: &mut [EntryBuf],
    scan: &mut OwnerScan,
    seen: &mut OwnerReport,
    root: &Path,
) -> bool {
    if !sockets.iter().any(missing) {
        return false;
    }
    // Should `/proc` fail here, the scan kept is an empty one, and the
    // next reading's rescan reads every table.
    let Ok(again) = std::mem::take(scan).rescan(root) else {
        return false;
    };
    // Only the missing: a socket the scan before found may have closed
    // since, and its owner then stands.
    for e in sockets.iter_mut().filter(|e| missing(e)) {
        if let Ownership::Owned(_) = again.ownership(&e.socket) {
            e.owners = Some(again.owners_of(&e.socket));
        }
    }
    *seen = OwnerReport {
        inspected: again.inspected,
        denied: again.denied,
        denied_reason: again.denied_reason,
        vanished: again.vanished,
        kept: true,
        reused: again.reused,
        walked: again.walked,
    };
    *scan = again;
    true
}

/// The owner scan runs before the dump (so that a listing can stream): a
/// socket made between the two is not in it. A snapshot, which holds its
/// sockets anyway, looks those up again in a second scan of only their
/// inodes; what it still does not find closed meanwhile, or is held by a
/// process that could not be read.
pub(super) fn owners_made_after_the_scan(
    sockets: &mut [EntryBuf],
    scan: &OwnerScan,
    root: &Path,
    netns: Option<u64>,
    rescanned: bool,
) {
    // The namespace's own processes first (the scan before looked only
    // there too), then for what is still missing every other process (or
    // every process, when the first scan looked among all). A rescan
    // after the dump has just read the first ones (or all).
    let passes: Vec<Option<u64>> = match (rescanned, netns) {
        (false, _) => netns.map(Some).into_iter().chain([None]).collect(),
        (true, Some(_)) => vec![None],
        (true, None) => Vec::new(),
    };
    for only in passes {
        let wanted: HashSet<u64> = sockets
            .iter()
            .filter(|e| missing(e))
            .map(|e| e.socket.inode)
            .collect();
        if wanted.is_empty() {
            return;
        }
        let among = match (only, netns) {
            (Some(netns), _) => Among::Of(netns),
            (None, Some(read)) => Among::Outside(read),
            (None, None) => Among::All,
        };
        let again = OwnerScan::scan_for(root, &wanted, among);
        let Ok(again) = again else { return };
        let last = only.is_none();
        for e in sockets.iter_mut().filter(|e| missing(e)) {
            if let Ownership::Owned(list) = again.ownership(&e.socket) {
                e.owners = Some(Owners::Owned(list.into()));
            } else if last && scan.denied == 0 && again.denied > 0 {
                e.owners = Some(Owners::Unknown);
            }
        }
    }
}
