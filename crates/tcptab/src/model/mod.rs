//! The ground floor: the socket and its states, what netlink adds to it
//! (as plain data), its owners and namespace, and the two forms every
//! layer above carries ([`Entry`], [`EntryBuf`]). It reads nothing and
//! imports nothing of the rest of the crate: the readers (`procnet`,
//! `diag`) fill it, the filter tests it, the engine hands it over.

/// A table of `decode(code)` for every one-byte code, built at compile time
/// (`fill` is any value of the type, overwritten). A lookup in it is one
/// load, where a `match` on a table of mixed codes compiles to a jump that
/// the CPU mispredicts.
macro_rules! by_code {
    ($decode:path, $fill:expr) => {{
        let mut table = [$fill; 256];
        let mut code = 0;
        while code < 256 {
            table[code] = $decode(code as u8);
            code += 1;
        }
        table
    }};
}

mod diag;
mod entry;
mod host;
mod netns;
mod owners;
mod socket;
mod state;
mod workload;

pub(crate) use diag::{congestion_named, tcp_info_boxed};
pub use diag::{Diag, DiagSocket, MemInfo, TcpInfo};
pub use entry::{Entry, EntryBuf, Key, Source};
pub use host::Host;
pub use netns::Namespace;
pub use owners::{Owner, Owners, Ownership};
pub use socket::{
    canonical, Congestion, Family, IpText, Pointer, PointerKind, RowKind, Socket, Ssthresh, Ticks,
    Timer, TimerKind, USER_HZ,
};
pub use state::{State, StateSet, UnknownState};
pub use workload::Workload;
