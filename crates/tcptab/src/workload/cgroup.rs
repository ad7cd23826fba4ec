//! The cgroup v2 hierarchy: where it is mounted, and a cgroup's path from
//! its id (what sock_diag reports) and back. On cgroup v2 a cgroup's id is
//! its directory's inode number in the cgroup2 file system.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The mount point of the cgroup2 file system, from `PROC/self/mountinfo`:
/// `/sys/fs/cgroup` on a unified host, `/sys/fs/cgroup/unified` in hybrid
/// mode, anywhere else it was mounted. The mount of the hierarchy's root is
/// preferred over one of a subtree.
pub fn cgroup2_mount(proc_root: &Path) -> Option<PathBuf> {
    let text = fs::read_to_string(proc_root.join("self/mountinfo")).ok()?;
    let mut found: Option<(bool, PathBuf)> = None;
    for line in text.lines() {
        // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
        let Some((before, after)) = line.split_once(" - ") else { continue };
        if after.split(' ').next() != Some("cgroup2") {
            continue;
        }
        let fields: Vec<&str> = before.split(' ').collect();
        let (Some(root), Some(point)) = (fields.get(3), fields.get(4)) else {
            continue;
        };
        let whole = *root == "/";
        if found.as_ref().is_none_or(|(w, _)| whole && !w) {
            found = Some((whole, PathBuf::from(unescape(point))));
        }
    }
    found.map(|(_, p)| p)
}

/// mountinfo's octal escapes (`\040` for a space).
fn unescape(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match (bytes[i], octal) {
            (b'\\', Some(d)) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The cgroup2 hierarchy under one mount: ids to paths, walked once and
/// again when an id it does not know appears.
#[derive(Debug)]
pub struct Cgroups {
    mount: PathBuf,
    paths: HashMap<u64, String>,
    /// Walks so far (the first is made on the first lookup).
    walks: u32,
    /// Walked since [`Cgroups::new_look`]: an id still unknown is not
    /// looked for again until the next look.
    fresh: bool,
}

impl Cgroups {
    pub fn new(mount: PathBuf) -> Cgroups {
        Cgroups {
            mount,
            paths: HashMap::new(),
            walks: 0,
            fresh: false,
        }
    }

    pub fn mount(&self) -> &Path {
        &self.mount
    }

    /// The path of cgroup `id` (`/` for the root), walking the hierarchy
    /// again when the id is new (at most once per look at the table). None
    /// for an id that is not there (the cgroup was removed).
    pub fn path(&mut self, id: u64) -> Option<&str> {
        if !self.paths.contains_key(&id) && !self.fresh {
            self.walk();
        }
        self.paths.get(&id).map(String::as_str)
    }

    /// The id of the cgroup at `path` (from the mount's root), as
    /// `ss 'cgroup PATH'` takes it.
    pub fn id(&self, path: &str) -> std::io::Result<u64> {
        let relative = path.trim_start_matches('/');
        Ok(fs::metadata(self.mount.join(relative))?.ino())
    }

    /// A new look at the table: an unknown id may walk the hierarchy again.
    pub fn new_look(&mut self) {
        self.fresh = false;
    }

    fn walk(&mut self) {
        self.walks += 1;
        self.fresh = true;
        self.paths.clear();
        let mut stack = vec![(self.mount.clone(), String::from("/"))];
        while let Some((dir, path)) = stack.pop() {
            let Ok(meta) = fs::metadata(&dir) else { continue };
            self.paths.insert(meta.ino(), path.clone());
            let Ok(entries) = fs::read_dir(&dir) else { continue };
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    let child = if path == "/" {
                        format!("/{name}")
                    } else {
                        format!("{path}/{name}")
                    };
                    stack.push((entry.path(), child));
                }
            }
        }
    }

    /// How many times the hierarchy was walked.
    pub fn walks(&self) -> u32 {
        self.walks
    }
}

/// A process's cgroup v2 path: the `0::PATH` line of `PROC/PID/cgroup`.
pub fn of_process(proc_root: &Path, pid: u32) -> Option<String> {
    let text = fs::read_to_string(proc_root.join(pid.to_string()).join("cgroup")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(|p| p.trim_end().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cgroup2_mount_wherever_it_is() {
        let dir = std::env::temp_dir().join(format!("tcptab-mountinfo-{}", std::process::id()));
        fs::create_dir_all(dir.join("self")).unwrap();
        let write = |text: &str| fs::write(dir.join("self/mountinfo"), text).unwrap();
        write("31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n41 31 0:38 / /sys/fs/cgroup/unified rw,relatime shared:9 - cgroup2 cgroup2 rw\n");
        assert_eq!(
            cgroup2_mount(&dir),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        write("50 1 0:40 /sub /mnt/sub rw - cgroup2 cgroup2 rw\n51 1 0:40 / /mnt/my\\040cg rw - cgroup2 cgroup2 rw\n");
        assert_eq!(cgroup2_mount(&dir), Some(PathBuf::from("/mnt/my cg")));
        write("31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n");
        assert_eq!(cgroup2_mount(&dir), None);
        fs::remove_dir_all(&dir).unwrap();
    }
}
