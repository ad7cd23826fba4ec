//! Each socket's workload, from the cgroup v2 id sock_diag reports (or an
//! owner's `/proc/PID/cgroup` for the text tables): the path, what its
//! shape names, and the names the container runtimes' files add. One
//! lookup per cgroup, cached; a new id walks the hierarchy again.
//!
//! ```no_run
//! use tcptab::workload::{Roots, Workloads};
//!
//! let mut workloads = Workloads::new(Roots::default());
//! if let Some(w) = workloads.by_id(4242) {
//!     println!("{} {:?} {:?}", w.cgroup, w.unit, w.pod_name);
//! }
//! ```

pub mod cgroup;
pub mod runtime;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::model::Workload;
use cgroup::Cgroups;
use runtime::RuntimeFiles;

/// Where the workload's sources are: `/proc` (for the cgroup2 mount and the
/// processes' cgroups), the cgroup2 mount (found from mountinfo when None)
/// and the root of the runtimes' files (`/`).
#[derive(Debug, Clone)]
pub struct Roots {
    pub proc: PathBuf,
    pub cgroup: Option<PathBuf>,
    pub files: PathBuf,
}

impl Default for Roots {
    fn default() -> Roots {
        Roots {
            proc: PathBuf::from("/proc"),
            cgroup: None,
            files: PathBuf::from("/"),
        }
    }
}

/// The resolver: cgroup ids and paths to workloads, each resolved once.
#[derive(Debug)]
pub struct Workloads {
    roots: Roots,
    cgroups: Option<Cgroups>,
    files: RuntimeFiles,
    by_id: HashMap<u64, Option<Arc<Workload>>>,
    by_path: HashMap<String, Arc<Workload>>,
}

impl Workloads {
    pub fn new(roots: Roots) -> Workloads {
        let mount = roots
            .cgroup
            .clone()
            .or_else(|| cgroup::cgroup2_mount(&roots.proc));
        Workloads {
            files: RuntimeFiles::new(&roots.files),
            cgroups: mount.map(Cgroups::new),
            roots,
            by_id: HashMap::new(),
            by_path: HashMap::new(),
        }
    }

    /// A new look at the table begins: what was left unresolved (a cgroup
    /// not found, a container or pod whose names were missing) is looked
    /// up again when next asked for; what was resolved is kept (a cgroup's
    /// id is never reused).
    pub fn new_walk(&mut self) {
        self.by_id
            .retain(|_, w| w.as_ref().is_some_and(|w| w.missing.is_none()));
        self.by_path.retain(|_, w| w.missing.is_none());
        if let Some(c) = &mut self.cgroups {
            c.new_look();
        }
    }

    /// Why nothing can be resolved, if so: no cgroup2 file system mounted.
    pub fn unavailable(&self) -> Option<String> {
        match self.cgroups {
            Some(_) => None,
            None => Some(format!(
                "no cgroup2 file system is mounted ({} lists none): sockets have no workload",
                self.roots.proc.join("self/mountinfo").display()
            )),
        }
    }

    /// The cgroup2 mount used.
    pub fn mount(&self) -> Option<&std::path::Path> {
        self.cgroups.as_ref().map(Cgroups::mount)
    }

    /// The workload of cgroup `id` (sock_diag's `INET_DIAG_CGROUP_ID`);
    /// None when the id names no cgroup now (it was removed).
    pub fn by_id(&mut self, id: u64) -> Option<Arc<Workload>> {
        if let Some(known) = self.by_id.get(&id) {
            return known.clone();
        }
        let path = self.cgroups.as_mut()?.path(id).map(str::to_string);
        let found = path.map(|p| self.by_path(&p));
        self.by_id.insert(id, found.clone());
        found
    }

    /// The workload of the cgroup at `path` (from the hierarchy's root).
    pub fn by_path(&mut self, path: &str) -> Arc<Workload> {
        if let Some(w) = self.by_path.get(path) {
            return w.clone();
        }
        let mut w = Workload::from_cgroup(path);
        self.files.fill(&mut w);
        let w = Arc::new(w);
        self.by_path.insert(path.to_string(), w.clone());
        w
    }

    /// The workload of process `pid` (its `0::` cgroup line).
    pub fn by_pid(&mut self, pid: u32) -> Option<Arc<Workload>> {
        let path = cgroup::of_process(&self.roots.proc, pid)?;
        Some(self.by_path(&path))
    }

    /// The id of the cgroup at `path`, for a filter run in the kernel.
    pub fn id_of(&self, path: &str) -> std::io::Result<u64> {
        match &self.cgroups {
            Some(c) => c.id(path),
            None => Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no cgroup2 file system is mounted",
            )),
        }
    }
}
