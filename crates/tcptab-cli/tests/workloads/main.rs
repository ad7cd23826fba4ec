//! Workloads on real cgroups: the test makes cgroup v2 directories in the
//! shape of each runtime and driver (a systemd service, Docker under both
//! drivers, containerd and CRI-O Kubernetes containers under both, Podman,
//! and a container whose files are missing), starts a process in each that
//! joins its cgroup and then listens, and lays out the runtimes' files in
//! a temporary root. Every answer is checked against that layout: the
//! record's `workload` group, the table's column, the filter words, and
//! `cgroup PATH` against `ss 'cgroup PATH'` (with the kernel program).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

#[path = "../common/mod.rs"]
mod common;
mod exporter;
mod pods;
mod recorded;
mod shapes;

use common::recorder::{history, record, scratch, sql, stop, wait_polls};
use common::{json, json_line, tcptab, tcptab_line};
use testkit::require_root;

/// One process of the layout and what it should be known as.
#[derive(Debug, Clone, Default)]
struct Expected {
    cgroup: String,
    unit: Option<&'static str>,
    runtime: Option<&'static str>,
    container_id: Option<String>,
    container_name: Option<&'static str>,
    pod: Option<(&'static str, &'static str)>,
    pod_uid: Option<String>,
    missing: bool,
}

impl Expected {
    /// The exporter's workload labels of a container: `namespace`, `pod`,
    /// `container` (its name, else its id) and `unit`.
    fn labels(&self) -> String {
        let container = self
            .container_name
            .map(str::to_string)
            .or(self.container_id.clone())
            .unwrap_or_default();
        let (namespace, pod) = self.pod.unwrap_or(("", ""));
        format!(
            "namespace=\"{namespace}\",pod=\"{pod}\",container=\"{container}\",unit=\"{}\"",
            self.unit.unwrap_or("")
        )
    }
}

/// `kill 'pod shop/*'` destroys the matching sockets of every layout on
/// the machine, and the exporter adds up the layouts' containers of one
/// name: those tests run alone (they write), the others side by side
/// (they read).
static MACHINE: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// The cgroups, processes and files of one test; all removed on drop.
struct Layout {
    mount: PathBuf,
    prefix: String,
    files: PathBuf,
    children: Vec<Child>,
    /// Local port of each process's listener, and what it should be.
    by_port: BTreeMap<u16, Expected>,
}

impl Drop for Layout {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Deepest first: a cgroup goes only once it is empty.
        let mut dirs: Vec<PathBuf> = walk(&self.mount.join(self.prefix.trim_start_matches('/')));
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for d in dirs {
            let _ = std::fs::remove_dir(&d);
        }
        let _ = std::fs::remove_dir_all(&self.files);
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                out.extend(walk(&e.path()));
            }
        }
    }
    out
}

fn id(n: u8) -> String {
    format!("{:064x}", 0x1234_5678_9abc_def0u64 * n as u64 + n as u64)
        .chars()
        .map(|c| if c == '0' { 'a' } else { c })
        .collect()
}

fn uid(n: u8) -> String {
    format!("{n:08x}-1c2d-4e5f-8a9b-0c1d2e3f4a5b")
}

fn write(path: PathBuf, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

impl Layout {
    /// `name` tells apart the layouts of tests running side by side.
    fn new(mount: PathBuf, name: &str) -> Layout {
        let tag = format!("{}-{name}", std::process::id());
        Layout {
            mount,
            prefix: format!("/tcptab-test-{tag}"),
            files: std::env::temp_dir().join(format!("tcptab-runtime-{tag}")),
            children: Vec::new(),
            by_port: BTreeMap::new(),
        }
    }

    /// A process in cgroup `PREFIX/path` (made here) that joins it, then
    /// listens on loopback; its port.
    fn spawn(&mut self, path: &str, mut expected: Expected) {
        let cgroup = format!("{}/{path}", self.prefix);
        let dir = self.mount.join(cgroup.trim_start_matches('/'));
        std::fs::create_dir_all(&dir).unwrap();
        let script = format!(
            "echo $$ > {}/cgroup.procs && exec python3 -c 'import socket,time; s=socket.socket(); s.bind((\"127.0.0.1\",0)); s.listen(); print(s.getsockname()[1], flush=True); time.sleep(300)'",
            dir.display()
        );
        let (child, line) = testkit::spawn_until_line(Command::new("sh").args(["-c", &script]));
        let port: u16 = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{path}: {line:?}"));
        self.children.push(child);
        expected.cgroup = cgroup;
        self.by_port.insert(port, expected);
    }

    /// Every shape, its files laid out under `self.files`.
    fn every_shape(mut self) -> Layout {
        self.spawn(
            "system.slice/nginx.service",
            Expected {
                unit: Some("nginx.service"),
                ..Expected::default()
            },
        );
        self.docker();
        self.containerd();
        self.cri_o();
        self.podman_and_a_container_without_files();
        self
    }

    /// Docker: a container of a compose service, and a plain one.
    fn docker(&mut self) {
        let f = self.files.clone();
        let (d1, d2) = (id(1), id(2));
        write(
            f.join(format!("var/lib/docker/containers/{d1}/config.v2.json")),
            r#"{"Name": "/web-1", "Config": {"Labels": {"com.docker.compose.service": "web"}}}"#,
        );
        write(
            f.join(format!("var/lib/docker/containers/{d2}/config.v2.json")),
            r#"{"Name": "/db", "Config": {"Labels": null}}"#,
        );
        self.spawn(
            &format!("system.slice/docker-{d1}.scope"),
            Expected {
                unit: Some(Box::leak(format!("docker-{d1}.scope").into_boxed_str())),
                runtime: Some("docker"),
                container_id: Some(d1.clone()),
                container_name: Some("web-1"),
                ..Expected::default()
            },
        );
        self.spawn(
            &format!("docker/{d2}"),
            Expected {
                runtime: Some("docker"),
                container_id: Some(d2.clone()),
                container_name: Some("db"),
                ..Expected::default()
            },
        );
    }

    /// containerd under Kubernetes, with either cgroup driver.
    fn containerd(&mut self) {
        let f = self.files.clone();
        // containerd, systemd driver: the CRI's annotations.
        let (c3, u1) = (id(3), uid(1));
        write(
            f.join(format!(
                "run/containerd/io.containerd.runtime.v2.task/k8s.io/{c3}/config.json"
            )),
            &format!(
                r#"{{"annotations": {{"io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.container-name": "cart", "io.kubernetes.cri.sandbox-name": "cart-7d9f", "io.kubernetes.cri.sandbox-namespace": "shop", "io.kubernetes.cri.sandbox-uid": "{u1}"}}}}"#
            ),
        );
        let pod_slice = format!("kubepods-burstable-pod{}.slice", u1.replace('-', "_"));
        self.spawn(
            &format!(
                "kubepods.slice/kubepods-burstable.slice/{pod_slice}/cri-containerd-{c3}.scope"
            ),
            Expected {
                unit: Some(Box::leak(
                    format!("cri-containerd-{c3}.scope").into_boxed_str(),
                )),
                runtime: Some("containerd"),
                container_id: Some(c3.clone()),
                container_name: Some("cart"),
                pod: Some(("shop", "cart-7d9f")),
                pod_uid: Some(u1.clone()),
                ..Expected::default()
            },
        );
        // containerd, cgroupfs driver: only the kubelet's log link.
        let (c4, u2) = (id(4), uid(2));
        write(
            f.join(format!(
                "var/log/containers/search-5c_shop_indexer-{c4}.log"
            )),
            "",
        );
        self.spawn(
            &format!("kubepods/besteffort/pod{u2}/{c4}"),
            Expected {
                container_id: Some(c4.clone()),
                container_name: Some("indexer"),
                pod: Some(("shop", "search-5c")),
                pod_uid: Some(u2.clone()),
                ..Expected::default()
            },
        );
    }

    /// CRI-O under Kubernetes, with either cgroup driver.
    fn cri_o(&mut self) {
        let f = self.files.clone();
        // CRI-O, systemd driver: the kubelet's annotations.
        let (c5, u3) = (id(5), uid(3));
        write(
            f.join(format!(
                "run/containers/storage/overlay-containers/{c5}/userdata/config.json"
            )),
            &format!(
                r#"{{"annotations": {{"io.kubernetes.container.name": "api", "io.kubernetes.pod.name": "api-6b", "io.kubernetes.pod.namespace": "prod", "io.kubernetes.pod.uid": "{u3}"}}}}"#
            ),
        );
        self.spawn(
            &format!(
                "kubepods.slice/kubepods-pod{}.slice/crio-{c5}.scope",
                u3.replace('-', "_")
            ),
            Expected {
                unit: Some(Box::leak(format!("crio-{c5}.scope").into_boxed_str())),
                runtime: Some("cri-o"),
                container_id: Some(c5.clone()),
                container_name: Some("api"),
                pod: Some(("prod", "api-6b")),
                pod_uid: Some(u3.clone()),
                ..Expected::default()
            },
        );
        // CRI-O, cgroupfs driver: only the pod's log directory, so the
        // container's name is missing.
        let (c6, u4) = (id(6), uid(4));
        std::fs::create_dir_all(f.join(format!("var/log/pods/prod_worker-0_{u4}/worker"))).unwrap();
        self.spawn(
            &format!("kubepods/burstable/pod{u4}/crio-{c6}"),
            Expected {
                runtime: Some("cri-o"),
                container_id: Some(c6.clone()),
                pod: Some(("prod", "worker-0")),
                pod_uid: Some(u4.clone()),
                missing: true,
                ..Expected::default()
            },
        );
    }

    /// Podman, and a Docker container whose files are missing.
    fn podman_and_a_container_without_files(&mut self) {
        let f = self.files.clone();
        let c7 = id(7);
        write(
            f.join("var/lib/containers/storage/overlay-containers/containers.json"),
            &format!(r#"[{{"id": "{c7}", "names": ["toolbox"]}}]"#),
        );
        self.spawn(
            &format!("machine.slice/libpod-{c7}.scope"),
            Expected {
                unit: Some(Box::leak(format!("libpod-{c7}.scope").into_boxed_str())),
                runtime: Some("podman"),
                container_id: Some(c7.clone()),
                container_name: Some("toolbox"),
                ..Expected::default()
            },
        );
        // A container whose files are missing.
        let c8 = id(8);
        self.spawn(
            &format!("system.slice/docker-{c8}.scope"),
            Expected {
                unit: Some(Box::leak(format!("docker-{c8}.scope").into_boxed_str())),
                runtime: Some("docker"),
                container_id: Some(c8.clone()),
                missing: true,
                ..Expected::default()
            },
        );
    }

    fn root_arg(&self) -> String {
        self.files.display().to_string()
    }

    /// The layout's local ports in a JSON listing.
    fn ports_of(&self, value: &serde_json::Value) -> BTreeSet<u16> {
        common::items(value)
            .map(|r| r["local_port"].as_u64().unwrap() as u16)
            .filter(|p| self.by_port.contains_key(p))
            .collect()
    }
}

fn layout(name: &str) -> Option<Layout> {
    if !require_root(name) {
        return None;
    }
    let mount = tcptab::workload::cgroup::cgroup2_mount(Path::new("/proc"))
        .expect("a cgroup2 file system mounted (it is where these tests run)");
    Some(Layout::new(mount, name).every_shape())
}

fn check(port: u16, e: &Expected, w: &serde_json::Value) {
    let s = |key: &str| w[key].as_str().map(str::to_string);
    let what = format!("port {port} in {}: {w}", e.cgroup);
    assert_eq!(s("cgroup").as_deref(), Some(e.cgroup.as_str()), "{what}");
    assert_eq!(s("unit").as_deref(), e.unit, "{what}");
    assert_eq!(s("runtime").as_deref(), e.runtime, "{what}");
    assert_eq!(s("container_id"), e.container_id, "{what}");
    assert_eq!(s("container_name").as_deref(), e.container_name, "{what}");
    assert_eq!(s("pod_namespace").as_deref(), e.pod.map(|p| p.0), "{what}");
    assert_eq!(s("pod_name").as_deref(), e.pod.map(|p| p.1), "{what}");
    assert_eq!(s("pod_uid"), e.pod_uid, "{what}");
    assert_eq!(w["missing"].is_string(), e.missing, "{what}");
}
