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
    // A scan that walked the kernel's iterator is not walked again here:
    // the one walk after this, for only the missing sockets but among
    // every process, costs the same and finds more
    // ([`owners_made_after_the_scan`]).
    if scan.walked || !sockets.iter().any(missing) {
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
    let passes = passes(scan.walked, rescanned, netns);
    for (i, &among) in passes.iter().enumerate() {
        let wanted: HashSet<u64> = sockets
            .iter()
            .filter(|e| missing(e))
            .map(|e| e.socket.inode)
            .collect();
        if wanted.is_empty() {
            return;
        }
        let again = OwnerScan::scan_for(root, &wanted, among);
        let Ok(again) = again else { return };
        let last = i + 1 == passes.len();
        for e in sockets.iter_mut().filter(|e| missing(e)) {
            if let Ownership::Owned(list) = again.ownership(&e.socket) {
                e.owners = Some(Owners::Owned(list.into()));
            } else if last && scan.denied == 0 && again.denied > 0 {
                e.owners = Some(Owners::Unknown);
            }
        }
    }
}

/// The scans after the dump, in turn, each for what the ones before did
/// not find. Reading `/proc`: the namespace's own processes first (the
/// scan before looked only there too), then every other process (or
/// every process, when the first scan looked among all); a rescan after
/// the dump ([`rescan_kept`]) has just read the first ones (or all). A
/// walk of the kernel's iterator visits every process's descriptors
/// whichever it keeps, so a scan that walked it looks among all at once.
fn passes(walked: bool, rescanned: bool, netns: Option<u64>) -> Vec<Among> {
    match (walked, rescanned, netns) {
        (true, ..) | (false, false, None) => vec![Among::All],
        (false, false, Some(netns)) => vec![Among::Of(netns), Among::Outside(netns)],
        (false, true, Some(netns)) => vec![Among::Outside(netns)],
        (false, true, None) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_walked_scan_looks_once_among_every_process() {
        assert_eq!(passes(true, false, Some(7)), [Among::All]);
        assert_eq!(passes(true, true, None), [Among::All]);
        assert_eq!(
            passes(false, false, Some(7)),
            [Among::Of(7), Among::Outside(7)]
        );
        assert_eq!(passes(false, true, Some(7)), [Among::Outside(7)]);
        assert_eq!(passes(false, true, None), []);
        assert_eq!(passes(false, false, None), [Among::All]);
    }
}
