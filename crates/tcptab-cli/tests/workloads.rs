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

mod common;

use common::recorder::{history, record, scratch, sql, stop, wait_polls};
use common::{json, tcptab};
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
        value
            .as_array()
            .unwrap()
            .iter()
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

#[test]
fn every_shape_named_in_every_output_and_filter() {
    let _beside = MACHINE.read().unwrap_or_else(|e| e.into_inner());
    let Some(layout) = layout("named") else { return };
    let root = layout.root_arg();

    // The record's group, for each process, from both sources.
    for source in ["netlink", "proc"] {
        let mut args = vec!["list", "-l", "--workload", "--format", "json"];
        args.extend(["--runtime-root", &root, "--source", source]);
        if source == "proc" {
            // A /proc row's workload is its owner's.
            args.push("-p");
        }
        let value = json(&args);
        let mut seen = BTreeSet::new();
        for r in value.as_array().unwrap() {
            let port = r["local_port"].as_u64().unwrap() as u16;
            if let Some(e) = layout.by_port.get(&port) {
                check(port, e, &r["workload"]);
                seen.insert(port);
            }
        }
        let all: BTreeSet<u16> = layout.by_port.keys().copied().collect();
        assert_eq!(seen, all, "{source}: every process's listener, once");
    }

    // The table's column: pod/container, container, unit.
    let out = tcptab(&["list", "-l", "--workload", "--runtime-root", &root]);
    let table = String::from_utf8(out.stdout).unwrap();
    for (port, label) in layout.by_port.iter().map(|(p, e)| {
        let label = match (e.pod, e.container_name) {
            (Some((ns, pod)), Some(c)) => format!("{ns}/{pod}/{c}"),
            (Some((ns, pod)), None) => format!("{ns}/{pod}"),
            (None, Some(c)) => c.to_string(),
            (None, None) => match &e.container_id {
                Some(id) => id[..12].to_string(),
                None => e.unit.unwrap().to_string(),
            },
        };
        (p, label)
    }) {
        let line = table
            .lines()
            .find(|l| l.contains(&format!("127.0.0.1:{port} ")))
            .unwrap_or_else(|| panic!("{port}: {table}"));
        assert!(line.trim_end().ends_with(&label), "{port} {label}: {line}");
    }

    the_filter_words_select_what_the_layout_says(&layout, &root);

    top_s_frames_carry_the_workloads(&layout, &root);
}

/// The filter words select what the layout says.
fn the_filter_words_select_what_the_layout_says(layout: &Layout, root: &str) {
    // The filter words select what the layout says.
    let select = |filter: &str| -> BTreeSet<u16> {
        let value = json(&["list", "--format", "json", "--runtime-root", root, filter]);
        layout.ports_of(&value)
    };
    let expect = |test: &dyn Fn(&Expected) -> bool| -> BTreeSet<u16> {
        layout
            .by_port
            .iter()
            .filter(|(_, e)| test(e))
            .map(|(p, _)| *p)
            .collect()
    };
    assert_eq!(
        select("unit nginx.service"),
        expect(&|e| e.unit == Some("nginx.service"))
    );
    assert_eq!(
        select("unit docker-*"),
        expect(&|e| e.unit.is_some_and(|u| u.starts_with("docker-")))
    );
    assert_eq!(
        select("container web-1"),
        expect(&|e| e.container_name == Some("web-1"))
    );
    let short = &layout
        .by_port
        .values()
        .find(|e| e.missing && e.pod.is_none())
        .unwrap();
    let short_id = &short.container_id.as_ref().unwrap()[..12];
    assert_eq!(
        select(&format!("container {short_id}")),
        expect(&|e| e
            .container_id
            .as_deref()
            .is_some_and(|i| i.starts_with(short_id)))
    );
    assert_eq!(
        select("pod shop/*"),
        expect(&|e| e.pod.is_some_and(|p| p.0 == "shop"))
    );
    assert_eq!(
        select("pod api-6b"),
        expect(&|e| e.pod.is_some_and(|p| p.1 == "api-6b"))
    );
    assert_eq!(
        select("not pod * and container *"),
        expect(&|e| e.pod.is_none() && e.container_id.is_some())
    );
}

/// top's frames carry each connection's workload too.
fn top_s_frames_carry_the_workloads(layout: &Layout, root: &str) {
    // top's frames carry each connection's workload too.
    let out = tcptab(&[
        "top",
        "--format",
        "jsonl",
        "--workload",
        "--count",
        "1",
        "--interval",
        "200ms",
        "--runtime-root",
        root,
        "state listening",
    ]);
    assert!(out.status.success(), "{out:?}");
    let frame: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().next().unwrap()).unwrap();
    let mut seen = BTreeSet::new();
    for r in frame["sockets"].as_array().unwrap() {
        let port = r["local_port"].as_u64().unwrap() as u16;
        if let Some(e) = layout.by_port.get(&port) {
            check(port, e, &r["workload"]);
            seen.insert(port);
        }
    }
    assert_eq!(seen.len(), layout.by_port.len(), "{frame}");
}

#[test]
fn cgroup_selects_what_ss_selects_in_the_kernel() {
    let _beside = MACHINE.read().unwrap_or_else(|e| e.into_inner());
    let Some(layout) = layout("cgroup") else { return };
    for (port, e) in &layout.by_port {
        let filter = format!("cgroup {}", e.cgroup);
        let out = tcptab(&["list", "-v", &filter]);
        assert!(out.status.success(), "{out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("filter in the kernel: cgroup") && stderr.contains("(the whole filter"),
            "{stderr}"
        );
        let ours: BTreeSet<String> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .skip(1)
            .map(|l| l.split_whitespace().nth(3).unwrap().to_string())
            .collect();
        let ss = testkit::tool("ss")
            .args(["-Htan", &filter])
            .output()
            .unwrap();
        let theirs: BTreeSet<String> = String::from_utf8(ss.stdout)
            .unwrap()
            .lines()
            .map(|l| l.split_whitespace().nth(3).unwrap().to_string())
            .collect();
        assert_eq!(ours, theirs, "{filter}");
        assert_eq!(
            ours,
            BTreeSet::from([format!("127.0.0.1:{port}")]),
            "{filter}"
        );
    }
    // A path that names no cgroup: a one-line error naming it.
    let out = tcptab(&["list", "cgroup /no/such/cgroup"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("cgroup '/no/such/cgroup'") && err.lines().count() == 1,
        "{err}"
    );
}

#[test]
fn summary_counts_and_kill_destroys_by_workload() {
    let _alone = MACHINE.write().unwrap_or_else(|e| e.into_inner());
    let Some(layout) = layout("kill") else { return };
    let root = layout.root_arg();

    // One listener per cgroup of the layout, counted under its cgroup.
    let value = json(&[
        "summary",
        "--workload",
        "--format",
        "json",
        "--top",
        "1000",
        "--runtime-root",
        &root,
    ]);
    let counts: BTreeMap<String, (u64, u64)> = value["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|w| {
            let cgroup = w["cgroup"].as_str()?.to_string();
            let sockets = (
                w["sockets"].as_u64().unwrap(),
                w["listening"].as_u64().unwrap(),
            );
            Some((cgroup, sockets))
        })
        .filter(|(cgroup, _)| cgroup.starts_with(&layout.prefix))
        .collect();
    let expected: BTreeMap<String, (u64, u64)> = layout
        .by_port
        .values()
        .map(|e| (e.cgroup.clone(), (1, 1)))
        .collect();
    assert_eq!(counts, expected);

    // kill by pod: the listeners of namespace shop's pods, named as
    // listeners, and nothing else.
    let listening = |port: &u16| {
        let out = testkit::tool("ss")
            .args(["-Htln", &format!("sport = :{port}")])
            .output()
            .unwrap();
        !String::from_utf8_lossy(&out.stdout).trim().is_empty()
    };
    let shop: BTreeSet<u16> = layout
        .by_port
        .iter()
        .filter(|(_, e)| e.pod.is_some_and(|p| p.0 == "shop"))
        .map(|(p, _)| *p)
        .collect();
    assert_eq!(shop.len(), 2);
    let out = tcptab(&[
        "kill",
        "--runtime-root",
        &root,
        "--yes",
        "state listening and pod shop/*",
    ]);
    assert!(out.status.success(), "{out:?}");
    for port in layout.by_port.keys() {
        assert_eq!(listening(port), !shop.contains(port), "port {port}");
    }
}

/// What `tcptab serve ARGS` serves at its first scrape.
fn scrape(args: &[&str]) -> String {
    common::server::Server::start(args).metrics()
}

#[test]
fn the_exporter_counts_per_workload_within_its_bound() {
    // The exporter counts every layout's containers of one name as one
    // series: it runs alone.
    let _alone = MACHINE.write().unwrap_or_else(|e| e.into_inner());
    let Some(layout) = layout("serve") else { return };
    let root = layout.root_arg();
    let body = scrape(&[
        "--per-workload",
        "--max-series",
        "1000",
        "--runtime-root",
        &root,
    ]);
    common::server::promtool_accepts(&body);
    // Each container of the layout is one series of its own, value 1.
    for e in layout.by_port.values().filter(|e| e.container_id.is_some()) {
        let series = format!("tcptab_workload_sockets{{{}}} 1", e.labels());
        assert!(body.lines().any(|l| l == series), "{series} in\n{body}");
    }
    // Bounded: the busiest three, the rest counted as dropped.
    let all = body
        .lines()
        .filter(|l| l.starts_with("tcptab_workload_sockets{"))
        .count();
    let body = scrape(&[
        "--per-workload",
        "--max-series",
        "3",
        "--runtime-root",
        &root,
    ]);
    let kept = body
        .lines()
        .filter(|l| l.starts_with("tcptab_workload_sockets{"))
        .count();
    assert_eq!(kept, 3);
    let dropped = format!("tcptab_series_dropped{{family=\"workload\"}} {}", all - 3);
    assert!(body.lines().any(|l| l == dropped), "{dropped} in\n{body}");
}

/// `serve --connection-counters --per-workload`: a connection accepted by
/// a container's listener is counted in that listener's group with the
/// container's workload (the kernel gives the accepted socket its
/// listener's cgroup).
#[test]
fn the_exporter_s_counters_carry_the_listener_s_workload() {
    let _beside = MACHINE.read().unwrap_or_else(|e| e.into_inner());
    let Some(layout) = layout("counters") else { return };
    let root = layout.root_arg();
    let server = common::server::Server::start(&[
        "--connection-counters",
        "--counters-interval",
        "200ms",
        "--per-workload",
        "--max-series",
        "100000",
        "--runtime-root",
        &root,
    ]);
    // The listeners are known from the counters' first poll on.
    std::thread::sleep(std::time::Duration::from_millis(800));
    let held: Vec<std::net::TcpStream> = layout
        .by_port
        .keys()
        .map(|port| std::net::TcpStream::connect(("127.0.0.1", *port)).unwrap())
        .collect();
    let series: Vec<String> = layout
        .by_port
        .iter()
        .filter(|(_, e)| e.container_id.is_some())
        .map(|(port, e)| {
            format!(
                "tcptab_connections_opened_total{{listener=\"127.0.0.1:{port}\",{}}} 1",
                e.labels()
            )
        })
        .collect();
    assert!(!series.is_empty());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let body = server.metrics();
        let missing: Vec<&String> = series
            .iter()
            .filter(|s| !body.lines().any(|l| l == s.as_str()))
            .collect();
        if missing.is_empty() {
            common::server::promtool_accepts(&body);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{missing:#?} not in\n{body}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    drop(held);
}

/// A connection made in a unit's cgroup and closed from its side: the
/// recorder keeps its workload on every row it writes, its TIME_WAIT
/// included (the kernel keeps no cgroup for a TIME_WAIT).
#[test]
fn history_keeps_each_connection_s_workload_through_time_wait() {
    let _beside = MACHINE.read().unwrap_or_else(|e| e.into_inner());
    let Some(mut layout) = layout("history") else { return };
    // The client: in its unit's cgroup, it listens, connects to itself,
    // holds the connection for six seconds (watch and the recorder see it
    // open in a poll, even on a loaded machine), closes first and says so.
    let cgroup = format!("{}/system.slice/client.service", layout.prefix);
    let dir = layout.mount.join(cgroup.trim_start_matches('/'));
    std::fs::create_dir_all(&dir).unwrap();
    let script = r#"
import socket, threading, time
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen()
def serve():
    s, _ = l.accept()
    while s.recv(100): pass
    s.close()
threading.Thread(target=serve, daemon=True).start()
c = socket.create_connection(l.getsockname())
print(c.getsockname()[1], l.getsockname()[1], flush=True)
time.sleep(6)
c.close()
print("closed", flush=True)
time.sleep(300)
"#;
    let db_dir = scratch("workload-history");
    let db = db_dir.join("h.db");
    let recorder = record(&db, &["--interval", "500ms", "--source", "netlink"]);
    let watch = Command::new(env!("CARGO_BIN_EXE_tcptab"))
        .args([
            "watch",
            "--format",
            "jsonl",
            "--workload",
            "--interval",
            "500ms",
        ])
        .args(["--duration", "14s", "--source", "netlink"])
        // Only the unit's connections: a busy machine's others would only
        // slow watch down (a filter on the workload, tested here).
        .arg("unit client.service")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    wait_polls(&db, 1);
    let mut child = Command::new("sh")
        .args([
            "-c",
            &format!(
                "echo $$ > {}/cgroup.procs && exec python3 -c '{script}'",
                dir.display()
            ),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ports = lines.next().unwrap().unwrap();
    let (client, server) = ports.split_once(' ').unwrap();
    assert_eq!(lines.next().unwrap().unwrap(), "closed");
    layout.children.push(child);
    // Two polls after the close: the TIME_WAIT has been seen.
    let polls: u64 = sql(&db, "SELECT count(*) FROM polls").parse().unwrap();
    wait_polls(&db, polls + 2);
    stop(recorder);

    the_file_and_history_keep_the_workload(&db, &cgroup, client, server);

    let _ = std::fs::remove_dir_all(&db_dir);

    watch_s_events_carry_the_workload(watch, client, server);
}

/// The file (through sqlite3) and `history` (its filter and summary): the
/// client's connection with its workload, from opening to TIME_WAIT.
fn the_file_and_history_keep_the_workload(db: &Path, cgroup: &str, client: &str, server: &str) {
    // The oracle: every row of the client's connection has the workload.
    let rows = sql(
        db,
        &format!(
            "SELECT c.state, coalesce(w.cgroup, '-'), coalesce(w.unit, '-') FROM connections c LEFT JOIN workloads w ON w.id = c.workload WHERE c.local_port = {client} AND c.remote_port = {server}"
        ),
    );
    assert_eq!(
        rows,
        format!("TIME_WAIT|{cgroup}|client.service"),
        "one connection, closed into TIME_WAIT, with its workload"
    );
    // history says the same, and filters by it.
    let (found, _) = history(
        db,
        &[
            "--between",
            "-1h",
            "now",
            &format!("sport = :{client} and dport = :{server}"),
        ],
    );
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        found[0]["workload"]["unit"], "client.service",
        "{}",
        found[0]
    );
    assert_eq!(found[0]["workload"]["cgroup"].as_str(), Some(cgroup));
    // (Other programs on the machine may use the same ports: the test
    // looks at its own ends only.)
    let mine = format!("unit client.service and ( sport = :{client} or sport = :{server} )");
    let (by_unit, _) = history(db, &["--between", "-1h", "now", &mine]);
    let mut ports: Vec<u64> = by_unit
        .iter()
        .map(|r| r["local_port"].as_u64().unwrap())
        .collect();
    ports.sort();
    let mut expected: Vec<u64> = vec![client.parse().unwrap(), server.parse().unwrap()];
    // The listener, the client's end and the server's accepted end.
    expected.push(server.parse().unwrap());
    expected.sort();
    assert_eq!(ports, expected, "{by_unit:?}");
    // The summary counts them under their workload.
    let out = tcptab(&[
        "history",
        "--db",
        db.to_str().unwrap(),
        "--between",
        "-1h",
        "now",
        "--summary",
        "--format",
        "json",
        &mine,
    ]);
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        summary["workloads"],
        serde_json::json!([{"workload": "client.service", "connections": 3}]),
        "{summary}"
    );
}

/// watch's events of the client's connection, each with its workload.
fn watch_s_events_carry_the_workload(watch: std::process::Child, client: &str, server: &str) {
    // watch's events of the client's connection, from its opening (seen
    // by a poll: a destroy notification carries no cgroup) to its
    // TIME_WAIT, each with the connection's workload.
    let out = watch.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|e: &serde_json::Value| {
            e["local_port"].as_u64() == client.parse().ok()
                && e["remote_port"].as_u64() == server.parse().ok()
        })
        .collect();
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    assert!(kinds.contains(&"opened") && kinds.len() >= 2, "{events:?}");
    for e in &events {
        assert_eq!(e["workload"]["unit"], "client.service", "{e}");
        // Each event names its machine (as tests/host.rs checks it).
        assert_eq!(e["host"], events[0]["host"]);
        assert!(e["host"]["boot_id"].is_string(), "{e}");
    }
}

/// Under --all-netns a namespace without a name is named after the pod its
/// processes are in.
#[test]
fn a_pod_s_network_namespace_is_named_after_the_pod() {
    let _beside = MACHINE.read().unwrap_or_else(|e| e.into_inner());
    let Some(mut layout) = layout("netns") else { return };
    let root = layout.root_arg();
    let cart = layout
        .by_port
        .values()
        .find(|e| e.container_name == Some("cart"))
        .unwrap()
        .clone();
    let dir = layout.mount.join(cart.cgroup.trim_start_matches('/'));
    // A process of the pod in a namespace of its own (as a pod's are): it
    // joins the pod's cgroup, then listens.
    let mut child = in_pod(
        &dir,
        "import socket,time; s=socket.socket(); s.bind((\"127.0.0.1\",0)); s.listen(); print(s.getsockname()[1], flush=True); time.sleep(300)",
    );
    assert_eq!(next_line(&mut child), "ready");
    let port = next_line(&mut child);
    layout.children.push(child);
    let out = tcptab(&[
        "list",
        "-l",
        "--all-netns",
        "--workload",
        "--runtime-root",
        &root,
        &format!("sport = :{port}"),
    ]);
    let table = String::from_utf8_lossy(&out.stdout);
    let row = table
        .lines()
        .find(|l| l.contains(&format!("127.0.0.1:{port} ")))
        .unwrap_or_else(|| panic!("{port} in {table}"));
    assert!(row.contains("pod shop/cart-7d9f"), "{row}");
    assert!(row.trim_end().ends_with("shop/cart-7d9f/cart"), "{row}");
}

/// A process that joins cgroup `dir`, then runs `code` (python) in a
/// network namespace of its own; its pid (for `ip link set ... netns`).
/// Its first line, `ready`, says that its namespace is made.
fn in_pod(dir: &std::path::Path, code: &str) -> Child {
    let script = format!(
        "echo $$ > {}/cgroup.procs && ip link set lo up && echo ready && exec python3 -c '{code}'",
        dir.display()
    );
    testkit::tool("unshare")
        .args(["--net", "sh", "-c", &script])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// `ip ARGS`, which must succeed.
fn ip(args: &[&str]) {
    let out = testkit::tool("ip").args(args).output().unwrap();
    assert!(out.status.success(), "ip {args:?}: {out:?}");
}

/// The next line a child writes (read byte by byte: nothing after it is
/// taken).
fn next_line(child: &mut Child) -> String {
    use std::io::Read;
    let out = child.stdout.as_mut().unwrap();
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while out.read(&mut byte).unwrap() == 1 && byte[0] != b'\n' {
        line.push(byte[0]);
    }
    String::from_utf8(line).unwrap().trim().to_string()
}

/// Two pods in namespaces of their own, joined by a veth pair: each end of
/// a connection between them names the pod at the other end.
#[test]
fn both_ends_of_a_pod_to_pod_connection_name_the_other_pod() {
    let _beside = MACHINE.read().unwrap_or_else(|e| e.into_inner());
    let Some(mut layout) = layout("peers") else { return };
    let root = layout.root_arg();
    let dir_of = |name: &str| {
        let e = layout
            .by_port
            .values()
            .find(|e| e.container_name == Some(name))
            .unwrap();
        layout.mount.join(e.cgroup.trim_start_matches('/'))
    };
    let (cart, api) = (dir_of("cart"), dir_of("api"));
    // The server waits for its address, listens, accepts and holds; the
    // client connects once it can and holds.
    let mut server = in_pod(
        &api,
        "import socket,time\n\
         s = socket.socket()\n\
         while True:\n\
         \x20   try: s.bind((\"10.254.7.2\", 0)); break\n\
         \x20   except OSError: time.sleep(0.05)\n\
         s.listen(); print(s.getsockname()[1], flush=True)\n\
         c, _ = s.accept(); time.sleep(300)",
    );
    assert_eq!(next_line(&mut server), "ready");
    let tag = std::process::id() % 10_000;
    let (a, b) = (format!("tpa{tag}"), format!("tpb{tag}"));
    ip(&["link", "add", &a, "type", "veth", "peer", "name", &b]);
    ip(&["link", "set", &b, "netns", &server.id().to_string()]);
    let in_ns = |pid: u32, args: &[&str]| {
        let pid = pid.to_string();
        let mut all = vec!["-t", &pid, "-n", "ip"];
        all.extend_from_slice(args);
        let out = testkit::tool("nsenter").args(&all).output().unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
    };
    in_ns(server.id(), &["addr", "add", "10.254.7.2/24", "dev", &b]);
    in_ns(server.id(), &["link", "set", &b, "up"]);
    let port = next_line(&mut server);
    let mut client = in_pod(
        &cart,
        &format!(
            "import socket,time\n\
             while True:\n\
             \x20   try: c = socket.create_connection((\"10.254.7.2\", {port})); break\n\
             \x20   except OSError: time.sleep(0.05)\n\
             print(c.getsockname()[1], flush=True); time.sleep(300)"
        ),
    );
    assert_eq!(next_line(&mut client), "ready");
    ip(&["link", "set", &a, "netns", &client.id().to_string()]);
    in_ns(client.id(), &["addr", "add", "10.254.7.1/24", "dev", &a]);
    in_ns(client.id(), &["link", "set", &a, "up"]);
    let client_port = next_line(&mut client);
    layout.children.push(server);
    layout.children.push(client);
    let out = tcptab(&[
        "list",
        "--all-netns",
        "--workload",
        "--format",
        "jsonl",
        "--runtime-root",
        &root,
        &format!("sport = :{port} or dport = :{port}"),
    ]);
    assert!(out.status.success(), "{out:?}");
    let ends: BTreeMap<String, (String, String)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["state"] == "ESTABLISHED")
        .map(|r| {
            let end = format!(
                "{}:{}",
                r["local_address"].as_str().unwrap(),
                r["local_port"]
            );
            let pod = |w: &serde_json::Value| {
                format!(
                    "{}/{}",
                    w["pod_namespace"].as_str().unwrap_or("-"),
                    w["pod_name"].as_str().unwrap_or("-")
                )
            };
            (
                end,
                (
                    pod(&r["workload"]),
                    r["peer_pod"].as_str().unwrap_or("null").to_string(),
                ),
            )
        })
        .collect();
    let want = BTreeMap::from([
        (
            format!("10.254.7.1:{client_port}"),
            ("shop/cart-7d9f".to_string(), "prod/api-6b".to_string()),
        ),
        (
            format!("10.254.7.2:{port}"),
            ("prod/api-6b".to_string(), "shop/cart-7d9f".to_string()),
        ),
    ]);
    assert_eq!(ends, want);
}
