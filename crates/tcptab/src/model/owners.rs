//! Who holds a socket: the processes found holding it ([`Owner`]), or why
//! none is listed; borrowed from an owner scan ([`Ownership`]) or owned
//! ([`Owners`], what a kept socket carries).

use std::sync::Arc;

/// One process holding a socket.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Owner {
    pub pid: u32,
    /// The command name (`/proc/<pid>/comm`), shared by the process's
    /// sockets.
    pub command: Arc<str>,
    /// The file descriptor number in that process.
    pub fd: u32,
}

/// Why a socket has no owner listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ownership<'a> {
    /// These processes hold it (sorted by pid, then fd).
    Owned(&'a [Owner]),
    /// No process can hold it: TIME_WAIT and request sockets, orphaned
    /// sockets and children not yet accepted (inode 0).
    NoProcess,
    /// Not found, and some processes could not be inspected: it may be
    /// theirs.
    Unknown,
    /// Not found although every process was inspected (a socket held only
    /// by the kernel, or in flight over a Unix socket).
    NotFound,
}

impl<'a> Ownership<'a> {
    /// The command names of its holders, each once, sorted.
    pub fn commands(self) -> Vec<&'a str> {
        let mut names: Vec<&str> = self.owners().iter().map(|o| &*o.command).collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// The processes holding the socket (empty unless [`Ownership::Owned`]).
    pub fn owners(self) -> &'a [Owner] {
        match self {
            Ownership::Owned(list) => list,
            _ => &[],
        }
    }

    /// `owned`, `no_process`, `unknown` or `not_found`.
    pub fn as_str(self) -> &'static str {
        match self {
            Ownership::Owned(_) => "owned",
            Ownership::NoProcess => "no_process",
            Ownership::Unknown => "unknown",
            Ownership::NotFound => "not_found",
        }
    }
}

/// [`Ownership`] without the borrow: what a kept socket ([`EntryBuf`](super::EntryBuf))
/// carries.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Owners {
    /// These processes hold it (sorted by pid, then fd).
    Owned(Arc<[Owner]>),
    /// No process can hold it (TIME_WAIT, request, orphaned).
    #[default]
    NoProcess,
    /// Not found, and some processes could not be inspected.
    Unknown,
    /// Not found although every process was inspected.
    NotFound,
}

impl Owners {
    /// The borrowed view.
    pub fn as_ownership(&self) -> Ownership<'_> {
        match self {
            Owners::Owned(list) => Ownership::Owned(list),
            Owners::NoProcess => Ownership::NoProcess,
            Owners::Unknown => Ownership::Unknown,
            Owners::NotFound => Ownership::NotFound,
        }
    }

    /// The status's name, as [`Ownership::as_str`].
    pub fn as_str(&self) -> &'static str {
        self.as_ownership().as_str()
    }

    /// The status from its name (`owned` with no list).
    pub fn from_status(name: &str) -> Option<Owners> {
        Some(match name {
            "owned" => Owners::Owned(Arc::from([])),
            "no_process" => Owners::NoProcess,
            "unknown" => Owners::Unknown,
            "not_found" => Owners::NotFound,
            _ => return None,
        })
    }

    /// How much it says, to keep the best seen of a connection: owned
    /// over unknown over not found over no process.
    pub fn rank(&self) -> u8 {
        match self {
            Owners::NoProcess => 1,
            Owners::NotFound => 2,
            Owners::Unknown => 3,
            Owners::Owned(_) => 4,
        }
    }
}

impl Ownership<'_> {
    /// The owned twin (the list copied).
    pub fn to_owners(self) -> Owners {
        match self {
            Ownership::Owned(list) => Owners::Owned(Arc::from(list)),
            Ownership::NoProcess => Owners::NoProcess,
            Ownership::Unknown => Owners::Unknown,
            Ownership::NotFound => Owners::NotFound,
        }
    }
}
