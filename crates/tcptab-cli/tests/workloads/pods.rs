//! Pods: their network namespaces named after them, and both ends of a
//! pod-to-pod connection naming the other pod.

use super::*;

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
    let out = tcptab_line(&format!(
        "list -l --all-netns --workload --runtime-root {root} sport = :{port}"
    ));
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
    let out = tcptab_line(&format!(
        "list --all-netns --workload --format jsonl --runtime-root {root} sport = :{port} or dport = :{port}"
    ));
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
