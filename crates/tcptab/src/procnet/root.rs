//! A directory laid out like `/proc`, and both tables read from it.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use super::{ReadOptions, TableReader};
use crate::error::{Error, Result};
use crate::model::{Family, Socket};

/// A directory laid out like `/proc`: the tables are `<root>/net/tcp` and
/// `<root>/net/tcp6`. `/proc` itself, `/proc/PID` (that process's network
/// namespace), or a captured copy (a sosreport, `cp -r /proc/net`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcRoot {
    path: PathBuf,
}

impl Default for ProcRoot {
    fn default() -> ProcRoot {
        ProcRoot::new("/proc")
    }
}

impl ProcRoot {
    pub fn new(path: impl Into<PathBuf>) -> ProcRoot {
        ProcRoot { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path of a family's table under this root.
    pub fn table_path(&self, family: Family) -> PathBuf {
        self.path.join("net").join(family.table_name())
    }

    /// Open a family's table. `Ok(None)` when `tcp6` is absent (IPv6
    /// disabled); a missing root or a missing `tcp` is an error.
    pub fn open(&self, family: Family, options: ReadOptions) -> Result<Option<TableReader<File>>> {
        if !self.path.is_dir() {
            return Err(Error::RootNotFound {
                path: self.path.clone(),
            });
        }
        let path = self.table_path(family);
        match File::open(&path) {
            Ok(file) => Ok(Some(TableReader::new(file, path, options))),
            Err(e) if e.kind() == io::ErrorKind::NotFound && family == Family::Ipv6 => Ok(None),
            Err(error) => Err(Error::Io { path, error }),
        }
    }

    /// Read both tables, IPv4 then IPv6, into memory.
    pub fn read(&self, options: ReadOptions) -> Result<Table> {
        let mut table = Table::default();
        for family in [Family::Ipv4, Family::Ipv6] {
            let Some(mut reader) = self.open(family, options)? else {
                table.ipv6_missing = true;
                continue;
            };
            for socket in reader.by_ref() {
                table.sockets.push(socket?);
            }
            table.skipped += reader.lines().skipped();
            if let Some(e) = reader.lines_mut().take_first_error() {
                table.first_error.get_or_insert(e);
            }
        }
        Ok(table)
    }
}

/// Both tables of one root, as read.
#[derive(Debug, Default)]
pub struct Table {
    /// IPv4 sockets in file order, then IPv6 sockets in file order.
    pub sockets: Vec<Socket>,
    /// Malformed lines skipped (lenient mode).
    pub skipped: u64,
    /// The first skipped line's error (lenient mode).
    pub first_error: Option<Error>,
    /// `tcp6` was absent (IPv6 disabled on the producer).
    pub ipv6_missing: bool,
}
