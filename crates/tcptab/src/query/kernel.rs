//! The kernel's TCP counters of a namespace the query reads
//! ([`crate::netstat`]), read inside that namespace.

use std::path::Path;

use super::Query;
use crate::error::{Error, Result};
use crate::model::Namespace;
use crate::netns;
use crate::netstat::{self, Counter};

impl Query {
    /// The `Tcp` and `TcpExt` counters of `namespace` (the reader's own,
    /// or the capture's, for None), read inside it.
    pub fn kernel_counters(&self, namespace: Option<&Namespace>) -> Result<Vec<Counter>> {
        match namespace.and_then(|n| n.file(&self.root).map(|f| (n, f))) {
            None => {
                let dir = self.root.join("net");
                netstat::read(&dir).map_err(|error| Error::Io { path: dir, error })
            }
            Some((ns, file)) => {
                netns::run_in(&file, || netstat::read(Path::new("/proc/thread-self/net"))).map_err(
                    |error| Error::Namespace {
                        name: ns.label(),
                        error,
                    },
                )
            }
        }
    }
}
