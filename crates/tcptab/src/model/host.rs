//! Which machine a document speaks of: its host name, `/etc/machine-id`
//! and the boot's id, so that files and streams from a fleet merge by it
//! (and a reboot is told apart).

use std::path::Path;

/// The host a document was made on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[non_exhaustive]
pub struct Host {
    /// The host name (of this UTS namespace: `/proc/sys/kernel/hostname`).
    pub hostname: String,
    /// `/etc/machine-id`: stable across reboots; null where there is none.
    pub machine_id: Option<String>,
    /// `/proc/sys/kernel/random/boot_id`: new at every boot.
    pub boot_id: Option<String>,
}

impl Host {
    /// This machine's, from `/proc` and `/etc/machine-id`.
    pub fn read() -> Host {
        Host::read_from(Path::new("/proc"), Path::new("/etc/machine-id"))
    }

    /// From a `/proc` and a machine-id file elsewhere (a capture, a test).
    pub fn read_from(proc_root: &Path, machine_id: &Path) -> Host {
        let line = |path: &Path| {
            std::fs::read_to_string(path)
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
        };
        Host {
            hostname: line(&proc_root.join("sys/kernel/hostname")).unwrap_or_default(),
            machine_id: line(machine_id),
            boot_id: line(&proc_root.join("sys/kernel/random/boot_id")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_from_files_and_absent_ones() {
        let dir = std::env::temp_dir().join(format!("tcptab-host-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sys/kernel/random")).unwrap();
        std::fs::write(dir.join("sys/kernel/hostname"), "web-3\n").unwrap();
        std::fs::write(dir.join("sys/kernel/random/boot_id"), "b0\n").unwrap();
        let host = Host::read_from(&dir, &dir.join("no-machine-id"));
        assert_eq!(host.hostname, "web-3");
        assert_eq!(host.machine_id, None);
        assert_eq!(host.boot_id.as_deref(), Some("b0"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn this_machine_has_a_boot_id() {
        assert!(Host::read().boot_id.is_some());
    }
}
