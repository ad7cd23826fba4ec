//! Every shape named in every output and filter word (and by ss's kernel
//! program for `cgroup`), counted by summary and destroyed by kill.

use super::*;

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
    let out = tcptab_line(&format!("list -l --workload --runtime-root {root}"));
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
    let value = json_line(&format!(
        "summary --workload --format json --top 1000 --runtime-root {root}"
    ));
    let counts: BTreeMap<String, (u64, u64)> = common::items(&value["workloads"])
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
