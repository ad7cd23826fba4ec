//! A fleet's connection history in ClickHouse: what `tcptab record`
//! writes to its history file, shipped to a store every host writes to,
//! and asked of it for every host at once.
//!
//! - [`Target`] and [`Client`]: the store's HTTP interface (one statement
//!   per request, `RowBinary` inserts in ClickHouse's LZ4 blocks
//!   ([`compress`]), basic authentication, errors as one line).
//! - [`Schema`]: the tables, for the oldest server in use (18.16: no TTL)
//!   and current ones (TTL from the retention).
//! - [`Shipper`]: sends the history file's outbox
//!   ([`crate::history::Outbox`]), oldest first, and marks what the store
//!   acknowledged; the file is the spool.
//! - [`Store`]: the connections of a window, read back through the file's
//!   decoder, with the filter pushed into SQL where it can be ([`pushed`]).
//!
//! `docs/fleet.md` in the repository explains the tables and the
//! guarantees (every connection once after `FINAL`, nothing lost while the
//! store is away).

mod ask;
mod client;
mod compress;
mod row;
mod schema;
mod ship;

pub use ask::{pushed, Store, KEYS_SENT};
pub use client::{Client, Error as StoreError, Target};
pub use compress::compress;
pub use schema::{has_ttl, Schema};
pub use ship::Shipper;

pub(crate) use client::valid_name;

/// What went wrong shipping to or asking a store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] client::Error),
    #[error(transparent)]
    History(#[from] crate::history::Error),
}
