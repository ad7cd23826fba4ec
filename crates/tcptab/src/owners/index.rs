//! The owner scan's index: where in its sorted list of inodes one is.

/// Slices of a sorted list of inodes by their value: the inodes between
/// `min + (b << shift)` and the next slice's first are at `starts[b]..`
/// `starts[b + 1]`, about four of them per slice.
#[derive(Debug, Default, Clone)]
pub(super) struct Index {
    min: u64,
    shift: u32,
    starts: Vec<u32>,
}

impl Index {
    pub(super) fn of(inodes: &[u64]) -> Index {
        let (Some(&min), Some(&max)) = (inodes.first(), inodes.last()) else {
            return Index::default();
        };
        let wanted = (inodes.len() as u64 / 4).max(1);
        let mut shift = 0;
        while shift < 63 && (max - min) >> shift >= wanted {
            shift += 1;
        }
        let slices = ((max - min) >> shift) as usize + 1;
        let mut starts = Vec::with_capacity(slices + 1);
        let mut at = 0;
        for slice in 0..slices as u64 {
            at += inodes[at..].partition_point(|&i| (i - min) >> shift < slice);
            starts.push(at as u32);
        }
        starts.push(inodes.len() as u32);
        Index { min, shift, starts }
    }

    /// The range of the list where `inode` can be (empty when outside).
    pub(super) fn slice(&self, inode: u64) -> (usize, usize) {
        let Some(slice) = inode
            .checked_sub(self.min)
            .map(|d| (d >> self.shift) as usize)
        else {
            return (0, 0);
        };
        match (
            self.starts.get(slice),
            self.starts.get(slice.saturating_add(1)),
        ) {
            (Some(&low), Some(&high)) => (low as usize, high as usize),
            _ => (0, 0),
        }
    }
}
