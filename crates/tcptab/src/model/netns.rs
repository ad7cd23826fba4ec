//! A network namespace as sockets are labelled with it: its inode, and
//! the name and process that lead to it (finding and entering namespaces
//! is `netns`'s).

use std::path::{Path, PathBuf};

/// One network namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Namespace {
    /// The namespace's inode (`net:[N]` in /proc/PID/ns/net), unique while
    /// it exists.
    pub inode: u64,
    /// Its name under /run/netns, if it has one.
    pub name: Option<String>,
    /// A process living in it (the lowest pid), if any.
    pub pid: Option<u32>,
    /// The bind-mounted file of a named namespace.
    pub path: Option<PathBuf>,
    /// `NAMESPACE/POD` of the Kubernetes pod that owns it (its lowest
    /// process's cgroup names the pod), when workloads are looked up.
    pub pod: Option<String>,
}

impl Namespace {
    /// The inode of the initial network namespace (the kernel's
    /// `PROC_NET_INIT_INO`: the same on every machine).
    pub const INITIAL: u64 = 0xEFFF_FFF9;

    /// Whether it is the machine's initial namespace (the host's).
    pub fn is_initial(&self) -> bool {
        self.inode == Namespace::INITIAL
    }

    /// `name` if it has one, `host` for the initial namespace, `pod
    /// NAMESPACE/POD` for a pod's, `of pid N` when its inode could not be
    /// read (another user's process), else the inode.
    pub fn label(&self) -> String {
        match (&self.name, self.inode, self.pid) {
            (Some(name), _, _) => name.clone(),
            (None, inode, _) if inode != Namespace::INITIAL && self.pod.is_some() => {
                format!("pod {}", self.pod.as_deref().unwrap_or_default())
            }
            (None, Namespace::INITIAL, _) => "host".to_string(),
            (None, 0, Some(pid)) => format!("of pid {pid}"),
            (None, inode, _) => inode.to_string(),
        }
    }

    /// ` PREPOSITION network namespace LABEL` for a sentence about what
    /// is in `namespace` (`"in"`, `"for"`); nothing for none (the
    /// reader's own).
    pub fn in_sentence(namespace: Option<&Namespace>, preposition: &str) -> String {
        namespace
            .map(|n| format!(" {preposition} network namespace {}", n.label()))
            .unwrap_or_default()
    }

    /// The file that enters it with setns(2): its name's bind mount, or its
    /// process's `ns/net` under `proc_root`.
    pub fn file(&self, proc_root: &Path) -> Option<PathBuf> {
        match (&self.path, self.pid) {
            (Some(path), _) => Some(path.clone()),
            (None, Some(pid)) => Some(proc_root.join(pid.to_string()).join("ns/net")),
            (None, None) => None,
        }
    }
}
