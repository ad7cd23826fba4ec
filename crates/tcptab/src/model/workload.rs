//! What a socket's cgroup says about who runs it: the systemd unit and
//! slice, the container runtime and container, the Kubernetes pod
//! ([`Workload`]). [`Workload::from_cgroup`] reads what the cgroup path
//! alone names; the runtime's files (read in `workload/`) add the names.

use std::fmt;

/// The workload a socket belongs to. Every part the path or the runtime's
/// files did not give is None; [`Workload::missing`] says why.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Workload {
    /// The cgroup v2 path, from the cgroup2 mount's root (`/` for the root).
    pub cgroup: String,
    /// The systemd unit: the deepest `.service` or `.scope` of the path.
    pub unit: Option<String>,
    /// The slice that unit is in: the deepest `.slice` above it.
    pub slice: Option<String>,
    /// `docker`, `containerd`, `cri-o` or `podman`.
    pub runtime: Option<String>,
    /// The container's full id (64 hex digits).
    pub container_id: Option<String>,
    /// The container's name: Docker's or Podman's name, or the name in its
    /// Kubernetes pod.
    pub container_name: Option<String>,
    pub pod_namespace: Option<String>,
    pub pod_name: Option<String>,
    pub pod_uid: Option<String>,
    /// Why a name is missing for a container or pod (its runtime's files
    /// were not found or not readable); None when nothing is missing.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub missing: Option<String>,
}

impl Workload {
    /// What the cgroup path `cgroup` names by its shape: the unit and slice
    /// (systemd driver), the container runtime and id, and the pod's uid
    /// (Kubernetes, either driver). Names come from the runtime's files.
    pub fn from_cgroup(cgroup: &str) -> Workload {
        let mut w = Workload {
            cgroup: cgroup.to_string(),
            ..Workload::default()
        };
        let parts: Vec<&str> = cgroup.split('/').filter(|p| !p.is_empty()).collect();
        for (i, part) in parts.iter().enumerate() {
            if part.ends_with(".service") || part.ends_with(".scope") {
                w.unit = Some(part.to_string());
                w.slice = parts[..i]
                    .iter()
                    .rev()
                    .find(|p| p.ends_with(".slice"))
                    .map(|s| s.to_string());
            }
            if let Some(uid) = pod_uid(part) {
                w.pod_uid = Some(uid);
            }
            if let Some((runtime, id)) = container(part, parts.get(i.wrapping_sub(1)).copied()) {
                w.runtime = runtime.map(str::to_string);
                w.container_id = Some(id.to_string());
            }
        }
        w
    }

    /// The short name a table shows: `namespace/pod/container`, else the
    /// container's name or short id, else the unit, else the cgroup.
    pub fn label(&self) -> String {
        self.to_string()
    }

    /// Whether the path names a container.
    pub fn is_container(&self) -> bool {
        self.container_id.is_some()
    }
}

impl fmt::Display for Workload {
    /// [`Workload::label`], written without making a string.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.pod_namespace, &self.pod_name, &self.container_name) {
            (Some(ns), Some(pod), Some(c)) => write!(f, "{ns}/{pod}/{c}"),
            (Some(ns), Some(pod), None) => write!(f, "{ns}/{pod}"),
            (_, _, Some(name)) => f.write_str(name),
            _ => match (&self.container_id, &self.unit) {
                (Some(id), _) => f.write_str(id.get(..12).unwrap_or(id)),
                (None, Some(unit)) => f.write_str(unit),
                (None, None) => f.write_str(&self.cgroup),
            },
        }
    }
}

/// A container id: 64 lowercase hex digits.
fn is_id(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The container one path component names, and its runtime when the shape
/// says it: `docker-ID.scope`, `cri-containerd-ID.scope`, `crio-ID.scope`,
/// `libpod-ID.scope` (systemd driver); `docker/ID`, `crio-ID`,
/// `libpod-ID`, or a bare id under a pod (cgroupfs driver: containerd's,
/// whose runtime the files tell).
fn container<'a>(part: &'a str, parent: Option<&str>) -> Option<(Option<&'static str>, &'a str)> {
    let name = part.strip_suffix(".scope").unwrap_or(part);
    for (prefix, runtime) in [
        ("docker-", "docker"),
        ("cri-containerd-", "containerd"),
        ("crio-", "cri-o"),
        ("libpod-", "podman"),
    ] {
        if let Some(id) = name.strip_prefix(prefix).filter(|id| is_id(id)) {
            return Some((Some(runtime), id));
        }
    }
    if is_id(part) {
        let runtime = match parent {
            Some("docker") => Some("docker"),
            _ => None,
        };
        return Some((runtime, part));
    }
    None
}

/// The pod uid a component names: `kubepods-burstable-pod<UID>.slice`
/// (systemd driver, dashes written as underscores) or `pod<UID>`
/// (cgroupfs driver).
fn pod_uid(part: &str) -> Option<String> {
    let name = part.strip_suffix(".slice").unwrap_or(part);
    let at = name.rfind("pod")?;
    if at > 0 && !name[..at].ends_with('-') {
        return None;
    }
    if !name.starts_with("kubepods") && at > 0 {
        return None;
    }
    let uid = name[at + 3..].replace('_', "-");
    let uuid = uid.len() == 36
        && uid.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        });
    uuid.then_some(uid)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f1c2a9b8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a";
    const UID: &str = "0b6e7f3a-1c2d-4e5f-8a9b-0c1d2e3f4a5b";

    fn of(path: &str) -> Workload {
        Workload::from_cgroup(path)
    }

    #[test]
    fn systemd_units_and_slices() {
        let w = of("/system.slice/nginx.service");
        assert_eq!(w.unit.as_deref(), Some("nginx.service"));
        assert_eq!(w.slice.as_deref(), Some("system.slice"));
        assert_eq!(w.container_id, None);
        let w = of("/user.slice/user-1000.slice/user@1000.service/app.slice/app-web.scope");
        assert_eq!(w.unit.as_deref(), Some("app-web.scope"));
        assert_eq!(w.slice.as_deref(), Some("app.slice"));
        let w = of("/");
        assert_eq!((w.unit, w.slice, w.cgroup.as_str()), (None, None, "/"));
    }

    #[test]
    fn every_runtime_under_both_drivers() {
        let shapes = [
            (format!("/system.slice/docker-{ID}.scope"), Some("docker"), None),
            (format!("/docker/{ID}"), Some("docker"), None),
            (
                format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{ID}.scope", UID.replace('-', "_")),
                Some("containerd"),
                Some(UID),
            ),
            (format!("/kubepods/burstable/pod{UID}/{ID}"), None, Some(UID)),
            (
                format!("/kubepods.slice/kubepods-pod{}.slice/crio-{ID}.scope", UID.replace('-', "_")),
                Some("cri-o"),
                Some(UID),
            ),
            (format!("/kubepods/besteffort/pod{UID}/crio-{ID}"), Some("cri-o"), Some(UID)),
            (format!("/machine.slice/libpod-{ID}.scope"), Some("podman"), None),
            (format!("/libpod_parent/libpod-{ID}"), Some("podman"), None),
        ];
        for (path, runtime, uid) in shapes {
            let w = of(&path);
            assert_eq!(w.runtime.as_deref(), runtime, "{path}");
            assert_eq!(w.container_id.as_deref(), Some(ID), "{path}");
            assert_eq!(w.pod_uid.as_deref(), uid, "{path}");
        }
    }

    #[test]
    fn look_alikes_are_not_containers_or_pods() {
        for path in [
            "/system.slice/docker.service",
            "/system.slice/docker-short.scope",
            "/system.slice/crio-conmon-abc.scope",
            "/user.slice/ipod-player.service",
            "/kubepods.slice/kubepods-besteffort.slice",
        ] {
            let w = of(path);
            assert_eq!(
                (w.container_id.as_deref(), w.pod_uid.as_deref()),
                (None, None),
                "{path}"
            );
        }
    }

    #[test]
    fn the_label_is_the_most_specific_name() {
        let mut w = of(&format!("/docker/{ID}"));
        assert_eq!(w.label(), &ID[..12]);
        w.container_name = Some("web".into());
        assert_eq!(w.label(), "web");
        w.pod_namespace = Some("shop".into());
        w.pod_name = Some("cart-7d9".into());
        assert_eq!(w.label(), "shop/cart-7d9/web");
        assert_eq!(of("/system.slice/sshd.service").label(), "sshd.service");
        assert_eq!(of("/").label(), "/");
    }
}
