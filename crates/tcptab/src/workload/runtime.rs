//! The container runtimes' own files, read for the names a cgroup path
//! does not carry: no runtime socket is opened and no API called. Every
//! path is under one root (`/` on a live host), so that a test or a
//! captured copy can stand in for the machine.
//!
//! | runtime | file | gives |
//! |---|---|---|
//! | Docker | `var/lib/docker/containers/ID/config.v2.json` | `Name`, Kubernetes labels |
//! | containerd | `run/containerd/io.containerd.runtime.v2.task/NS/ID/config.json` | CRI annotations |
//! | CRI-O | `run/containers/storage/overlay-containers/ID/userdata/config.json` | Kubernetes annotations |
//! | Podman | `var/lib/containers/storage/overlay-containers/containers.json` | `names` |
//! | kubelet | `var/log/containers/POD_NAMESPACE_CONTAINER-ID.log` | pod, namespace, container |
//! | kubelet | `var/log/pods/NAMESPACE_POD_UID/` | pod and namespace of a uid |

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::model::Workload;

pub const DOCKER: &str = "var/lib/docker/containers";
pub const CONTAINERD: &str = "run/containerd/io.containerd.runtime.v2.task";
pub const CRIO: &str = "run/containers/storage/overlay-containers";
pub const PODMAN: &str = "var/lib/containers/storage/overlay-containers/containers.json";
pub const LOG_CONTAINERS: &str = "var/log/containers";
pub const LOG_PODS: &str = "var/log/pods";

/// The runtime files under `root`.
#[derive(Debug, Clone)]
pub struct RuntimeFiles {
    root: PathBuf,
}

/// The Kubernetes names, from annotations or labels.
#[derive(Debug, Default)]
struct Names {
    runtime: Option<&'static str>,
    container: Option<String>,
    pod_namespace: Option<String>,
    pod_name: Option<String>,
    pod_uid: Option<String>,
}

impl RuntimeFiles {
    pub fn new(root: impl Into<PathBuf>) -> RuntimeFiles {
        RuntimeFiles { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Fill in what the files say of `w`'s container and pod; when a
    /// container or pod is left without its names, `missing` says which
    /// files were looked for.
    pub fn fill(&self, w: &mut Workload) {
        if let Some(id) = w.container_id.clone() {
            let names = self
                .docker(&id)
                .or_else(|| self.containerd(&id))
                .or_else(|| self.crio(&id))
                .or_else(|| self.podman(&id))
                .or_else(|| self.log_link(&id));
            if let Some(n) = names {
                if w.runtime.is_none() {
                    w.runtime = n.runtime.map(str::to_string);
                }
                w.container_name = n.container.or(w.container_name.take());
                w.pod_namespace = n.pod_namespace.or(w.pod_namespace.take());
                w.pod_name = n.pod_name.or(w.pod_name.take());
                w.pod_uid = n.pod_uid.or(w.pod_uid.take());
            }
        }
        if let (Some(uid), None) = (&w.pod_uid, &w.pod_name) {
            if let Some((namespace, name)) = self.pod_dir(uid) {
                w.pod_namespace = Some(namespace);
                w.pod_name = Some(name);
            }
        }
        let unnamed_container = w.container_id.is_some() && w.container_name.is_none();
        let unnamed_pod = w.pod_uid.is_some() && w.pod_name.is_none();
        if unnamed_container || unnamed_pod {
            w.missing = Some(format!(
                "no runtime file names this {} under {} (looked in {DOCKER}, {CONTAINERD}, {CRIO}, {PODMAN}, {LOG_CONTAINERS}, {LOG_PODS})",
                if unnamed_container { "container" } else { "pod" },
                self.root.display()
            ));
        }
    }

    fn json(&self, path: &Path) -> Option<Value> {
        serde_json::from_slice(&fs::read(path).ok()?).ok()
    }

    fn docker(&self, id: &str) -> Option<Names> {
        let v = self.json(&self.root.join(DOCKER).join(id).join("config.v2.json"))?;
        let labels = &v["Config"]["Labels"];
        let mut names = kubernetes(labels);
        names.runtime = Some("docker");
        if names.container.is_none() {
            names.container = v["Name"]
                .as_str()
                .map(|n| n.trim_start_matches('/').to_string());
        }
        Some(names)
    }

    fn containerd(&self, id: &str) -> Option<Names> {
        let base = self.root.join(CONTAINERD);
        for ns in fs::read_dir(&base).ok()?.flatten() {
            if let Some(v) = self.json(&ns.path().join(id).join("config.json")) {
                let mut names = kubernetes(&v["annotations"]);
                names.runtime = Some("containerd");
                return Some(names);
            }
        }
        None
    }

    fn crio(&self, id: &str) -> Option<Names> {
        let v = self.json(&self.root.join(CRIO).join(id).join("userdata/config.json"))?;
        let mut names = kubernetes(&v["annotations"]);
        names.runtime = Some("cri-o");
        Some(names)
    }

    fn podman(&self, id: &str) -> Option<Names> {
        let v = self.json(&self.root.join(PODMAN))?;
        let c = v
            .as_array()?
            .iter()
            .find(|c| c["id"].as_str() == Some(id))?;
        Some(Names {
            runtime: Some("podman"),
            container: c["names"][0].as_str().map(str::to_string),
            ..Names::default()
        })
    }

    /// `POD_NAMESPACE_CONTAINER-ID.log` (pod names and namespaces have no
    /// `_`; a container name may not either).
    fn log_link(&self, id: &str) -> Option<Names> {
        let suffix = format!("-{id}.log");
        for entry in fs::read_dir(self.root.join(LOG_CONTAINERS)).ok()?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(stem) = name.strip_suffix(&suffix) else { continue };
            let mut parts = stem.splitn(3, '_');
            if let (Some(pod), Some(ns), Some(container)) =
                (parts.next(), parts.next(), parts.next())
            {
                return Some(Names {
                    container: Some(container.to_string()),
                    pod_namespace: Some(ns.to_string()),
                    pod_name: Some(pod.to_string()),
                    ..Names::default()
                });
            }
        }
        None
    }

    /// `NAMESPACE_POD_UID` under var/log/pods.
    fn pod_dir(&self, uid: &str) -> Option<(String, String)> {
        let suffix = format!("_{uid}");
        for entry in fs::read_dir(self.root.join(LOG_PODS)).ok()?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some((ns, pod)) = name.strip_suffix(&suffix).and_then(|s| s.split_once('_')) {
                return Some((ns.to_string(), pod.to_string()));
            }
        }
        None
    }
}

/// The Kubernetes names in a map of annotations or labels: the CRI's
/// (`io.kubernetes.cri.*`, containerd) or the kubelet's
/// (`io.kubernetes.pod.*`, CRI-O and Docker).
fn kubernetes(map: &Value) -> Names {
    let get = |keys: &[&str]| {
        keys.iter()
            .find_map(|k| map[*k].as_str())
            .map(str::to_string)
    };
    Names {
        runtime: None,
        container: get(&[
            "io.kubernetes.cri.container-name",
            "io.kubernetes.container.name",
        ]),
        pod_namespace: get(&[
            "io.kubernetes.cri.sandbox-namespace",
            "io.kubernetes.pod.namespace",
        ]),
        pod_name: get(&["io.kubernetes.cri.sandbox-name", "io.kubernetes.pod.name"]),
        pod_uid: get(&["io.kubernetes.cri.sandbox-uid", "io.kubernetes.pod.uid"]),
    }
}
