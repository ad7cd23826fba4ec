//! Network namespaces: find them, name them, and open their TCP tables.
//!
//! A namespace with a process in it is read through `/proc/<pid>/net`
//! (no privilege beyond reading /proc). A named namespace (`ip netns add`,
//! a bind mount under `/run/netns`) with no process is entered with
//! `setns(2)` on a short-lived thread, which opens the tables and leaves;
//! the open files keep showing that namespace.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::model::{Family, Namespace};
use crate::procnet::{ProcRoot, ReadOptions, TableReader};

/// Where named namespaces live (`ip netns`).
pub const NETNS_RUN_DIR: &str = "/run/netns";

impl Namespace {
    /// Open its two tables (tcp6 may be absent).
    pub fn open(
        &self,
        proc_root: &Path,
        options: ReadOptions,
    ) -> Result<[Option<TableReader<File>>; 2]> {
        if let Some(pid) = self.pid {
            let root = ProcRoot::new(proc_root.join(pid.to_string()));
            match (
                root.open(Family::Ipv4, options),
                root.open(Family::Ipv6, options),
            ) {
                (Ok(v4), Ok(v6)) => return Ok([v4, v6]),
                // The process may have exited; try the named file below.
                (Err(e), _) | (_, Err(e)) if self.path.is_none() => return Err(e),
                _ => {}
            }
        }
        match &self.path {
            Some(path) => open_in(path, &self.label(), options),
            None => Err(Error::Namespace {
                name: self.label(),
                error: io::Error::new(io::ErrorKind::NotFound, "no process left in it"),
            }),
        }
    }
}

/// `NSFS_MAGIC` (linux/magic.h): the filesystem of namespace files.
const NSFS_MAGIC: u64 = 0x6e73_6673;

/// Whether `path` is a namespace file. A name under /run/netns is a bind
/// mount over an empty file: while `ip netns del` runs, and after a failed
/// add, the empty file is there without the namespace.
fn is_namespace_file(path: &Path) -> bool {
    rustix::fs::statfs(path).is_ok_and(|fs| fs.f_type as u64 == NSFS_MAGIC)
}

/// The namespace named `name` under /run/netns. A name is one file name
/// there: no `/`, not `.` or `..`, not empty.
pub fn named(name: &str) -> Result<Namespace> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(Error::Namespace {
            name: crate::filter::excerpt(name),
            error: io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("not a namespace name (a file name under {NETNS_RUN_DIR}, as `ip netns list` shows)"),
            ),
        });
    }
    let path = Path::new(NETNS_RUN_DIR).join(name);
    let meta = fs::metadata(&path).map_err(|source| Error::Namespace {
        name: name.to_string(),
        error: if source.kind() == io::ErrorKind::NotFound {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("no such namespace in {NETNS_RUN_DIR} (see `ip netns list`)"),
            )
        } else {
            source
        },
    })?;
    if !is_namespace_file(&path) {
        return Err(Error::Namespace {
            name: name.to_string(),
            error: io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "{} is not a mounted namespace (being deleted?)",
                    path.display()
                ),
            ),
        });
    }
    Ok(Namespace {
        inode: meta.ino(),
        name: Some(name.to_string()),
        pid: None,
        path: Some(path),
        pod: None,
    })
}

/// Every distinct network namespace: those of the processes under
/// `proc_root` and the named ones under /run/netns. Sorted by inode.
/// Processes whose namespace cannot be read (another user's, when not root)
/// are counted in the second value.
pub fn discover(proc_root: &Path) -> Result<(Vec<Namespace>, u32)> {
    let mut found: BTreeMap<u64, Namespace> = BTreeMap::new();
    let mut denied = 0u32;
    let entries = fs::read_dir(proc_root).map_err(|source| Error::Io {
        path: proc_root.to_path_buf(),
        error: source,
    })?;
    let mut pids: Vec<u32> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    for pid in pids {
        match fs::metadata(proc_root.join(pid.to_string()).join("ns/net")) {
            Ok(meta) => {
                found.entry(meta.ino()).or_insert(Namespace {
                    inode: meta.ino(),
                    name: None,
                    pid: Some(pid),
                    path: None,
                    pod: None,
                });
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(_) => denied += 1,
        }
    }
    if let Ok(dir) = fs::read_dir(NETNS_RUN_DIR) {
        for entry in dir.flatten() {
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            let Ok(meta) = fs::metadata(entry.path()) else {
                continue;
            };
            if !is_namespace_file(&entry.path()) {
                continue;
            }
            let ns = found.entry(meta.ino()).or_insert(Namespace {
                inode: meta.ino(),
                name: None,
                pid: None,
                path: None,
                pod: None,
            });
            ns.name.get_or_insert(name);
            ns.path.get_or_insert(entry.path());
        }
    }
    Ok((found.into_values().collect(), denied))
}

/// The namespace of process `pid`, read through `<proc_root>/<pid>`.
pub fn of_process(proc_root: &Path, pid: u32) -> Result<Namespace> {
    let dir = proc_root.join(pid.to_string());
    let inode = match fs::metadata(dir.join("ns/net")) {
        Ok(meta) => meta.ino(),
        // Another user's process: its namespace link is hidden, but its
        // tables (/proc/PID/net) are often still readable.
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied && dir.is_dir() => 0,
        Err(e) => {
            return Err(Error::Namespace {
                name: format!("of pid {pid}"),
                error: if e.kind() == io::ErrorKind::NotFound {
                    io::Error::new(io::ErrorKind::NotFound, "no such process")
                } else {
                    e
                },
            })
        }
    };
    Ok(Namespace {
        inode,
        name: None,
        pid: Some(pid),
        path: None,
        pod: None,
    })
}

/// Enter the namespace at `path` on a new thread and open both tables
/// there through /proc/thread-self.
fn open_in(
    path: &Path,
    label: &str,
    options: ReadOptions,
) -> Result<[Option<TableReader<File>>; 2]> {
    let path = path.to_path_buf();
    let name = label.to_string();
    let opened = std::thread::spawn(move || -> Result<[Option<(File, PathBuf)>; 2]> {
        let ns_error = |error: io::Error| Error::Namespace {
            name: name.clone(),
            error,
        };
        let ns = File::open(&path).map_err(ns_error)?;
        rustix::thread::move_into_link_name_space(
            std::os::fd::AsFd::as_fd(&ns),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )
        .map_err(|errno| {
            let e = io::Error::from(errno);
            if e.kind() == io::ErrorKind::PermissionDenied {
                ns_error(io::Error::new(
                    e.kind(),
                    format!("{e}: entering a network namespace needs root (CAP_SYS_ADMIN)"),
                ))
            } else {
                ns_error(e)
            }
        })?;
        let mut files = [None, None];
        for (slot, family) in files.iter_mut().zip([Family::Ipv4, Family::Ipv6]) {
            let table = PathBuf::from("/proc/thread-self/net").join(family.table_name());
            match File::open(&table) {
                Ok(f) => *slot = Some((f, table)),
                Err(e) if e.kind() == io::ErrorKind::NotFound && family == Family::Ipv6 => {}
                Err(error) => return Err(Error::Io { path: table, error }),
            }
        }
        Ok(files)
    })
    .join()
    .map_err(|_| Error::Namespace {
        name: label.to_string(),
        error: io::Error::other("the thread entering the namespace panicked"),
    })??;
    let [v4, v6] = opened;
    let label_path = |p: PathBuf| PathBuf::from(format!("netns {label}: {}", p.display()));
    Ok([
        v4.map(|(f, p)| TableReader::new(f, label_path(p), options)),
        v6.map(|(f, p)| TableReader::new(f, label_path(p), options)),
    ])
}

/// Run `f` on a new thread that enters the network namespace at `path`
/// (what must be opened or asked inside it: a netlink socket, a sysctl,
/// an interface index).
pub fn run_in<T: Send + 'static>(
    path: &Path,
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    let ns = File::open(path)?;
    std::thread::spawn(move || {
        rustix::thread::move_into_link_name_space(
            std::os::fd::AsFd::as_fd(&ns),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )?;
        f()
    })
    .join()
    .map_err(|_| io::Error::other("the thread entering the namespace panicked"))?
}

/// The name of interface `index` in `namespace` (this process's for None),
/// as `ss` writes a socket bound to it (`10.0.0.1%eth0:22`); None when the
/// namespace has no such interface (or cannot be entered).
pub fn interface_name(namespace: Option<&Namespace>, index: u32) -> Option<String> {
    fn lookup(index: u32) -> io::Result<String> {
        use rustix::net::{socket, AddressFamily, SocketType};
        let fd = socket(AddressFamily::INET, SocketType::DGRAM, None)?;
        Ok(rustix::net::netdevice::index_to_name(&fd, index)?)
    }
    match namespace.and_then(|n| n.file(Path::new("/proc"))) {
        None => lookup(index).ok(),
        Some(file) => run_in(&file, move || lookup(index)).ok(),
    }
}
